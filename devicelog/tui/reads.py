"""Reads the TUI logs (issue 15): opening a device or a patient's history is on record.

Called from a worker thread; a refusal (a role that may not read it) is shown in one line."""

from __future__ import annotations


def log_opened(app, what: str, *, patients=(), devices=(), engine=None) -> bool:
    """Append the read entry for what the screen shows; False (and a one-line notice) when refused."""
    from devicelog.problems import InputError
    from devicelog.store.audit import log_read

    try:
        log_read(engine if engine is not None else app.engine, author=app.user, what=what, patients=patients, devices=devices)
    except InputError as exc:
        app.call_from_thread(app.notify, f"Not shown: {exc}", severity="error")
        return False
    return True
