"""devicelog: follow-up and programming log for implanted neuromodulation devices."""

__version__ = "0.1.0"
