"""The Unicode TrueType fonts the PDF reports use.

fpdf2's core fonts are Latin-1 only: "µs", "Ω", "—" or "≥" raise.  devicelog ships
DejaVu Sans (regular and bold) in ``devicelog/data/`` so a fresh machine prints the
same PDF without any font installed and nothing is downloaded at run time.  DejaVu is
free to copy and redistribute under the Bitstream Vera licence (public-domain DejaVu
changes); its notice is ``devicelog/data/DejaVu-LICENSE.txt``.

If a packager strips the shipped files, the system's DejaVu (Debian's
``fonts-dejavu-core``) is used instead; if neither exists, ``FontNotFound`` says
which files were looked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

FAMILY = "DejaVu"
REGULAR = "DejaVuSans.ttf"
BOLD = "DejaVuSans-Bold.ttf"

SYSTEM_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts"),
    Path("/Library/Fonts"),
)


class FontNotFound(RuntimeError):
    """No Unicode TTF font could be found for the PDF reports."""


@dataclass(frozen=True)
class FontFiles:
    family: str
    regular: Path
    bold: Path


def _shipped(name: str) -> Path | None:
    try:
        path = Path(str(resources.files("devicelog.data").joinpath(name)))
    except (ModuleNotFoundError, TypeError):
        return None
    return path if path.is_file() else None


def _system(name: str) -> Path | None:
    for folder in SYSTEM_DIRS:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def find_font(name: str) -> Path:
    """The shipped copy of font file ``name``, else a system copy."""
    path = _shipped(name) or _system(name)
    if path is None:
        looked = ", ".join(str(d) for d in ("devicelog/data", *SYSTEM_DIRS))
        raise FontNotFound(f"font file {name} not found in {looked}")
    return path


def unicode_fonts() -> FontFiles:
    """The regular and bold Unicode fonts."""
    return FontFiles(FAMILY, find_font(REGULAR), find_font(BOLD))


def register(pdf) -> str:
    """Register the Unicode family on an ``fpdf.FPDF`` (regular and bold); returns its name.

    Use ``pdf.set_font(register(pdf), size=10)`` then ``style="B"`` for bold.
    """
    fonts = unicode_fonts()
    if fonts.family.lower() not in getattr(pdf, "fonts", {}):
        pdf.add_font(fonts.family, "", str(fonts.regular))
        pdf.add_font(fonts.family, "B", str(fonts.bold))
    return fonts.family
