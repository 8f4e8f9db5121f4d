"""A font for the overlay legend that can draw the class names, or a visible stand-in where none can.

Pillow's built-in font covers little beyond ASCII, so "café" or "自行车" came out as empty boxes. The legend
therefore looks for a TrueType/OpenType font that has a glyph for every character of every class name:
first `$RNS_FONT` (any .ttf/.otf/.ttc file), then the system's fonts, preferring DejaVu Sans (Latin, Greek,
Cyrillic; in nearly every Linux install) and common CJK fonts (Noto Sans CJK, WenQuanYi, Droid Sans
Fallback). On Debian/Ubuntu `apt-get install fonts-dejavu-core fonts-wqy-microhei` gives both.

When no font has some character, the legend does not draw a box that looks like a glyph: it writes that
character's code point instead (`<U+81EA>`), so the name stays identifiable and the missing font is
obvious; classes.json and the summaries always hold the exact UTF-8 names.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

FONT_ENV = "RNS_FONT"
_PREFERRED = (
    "DejaVuSans.ttf",
    "NotoSansCJK-Regular.ttc",
    "NotoSansCJKsc-Regular.otf",
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
    "DroidSansFallbackFull.ttf",
    "NotoSans-Regular.ttf",
    "LiberationSans-Regular.ttf",
    "Arial Unicode.ttf",
    "arialuni.ttf",
    "msyh.ttc",
)
_SUFFIXES = (".ttf", ".otf", ".ttc")
_NEVER_A_GLYPH = "\uffff"  # a noncharacter: every font draws its "missing glyph" for it

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _font_dirs() -> list[Path]:
    home = Path.home()
    if sys.platform == "darwin":
        return [Path("/System/Library/Fonts"), Path("/Library/Fonts"), home / "Library/Fonts"]
    if os.name == "nt":
        return [Path(os.environ.get("WINDIR", "C:/Windows")) / "Fonts"]
    return [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), home / ".local/share/fonts",
            home / ".fonts"]  # fmt: skip


@lru_cache(maxsize=1)
def candidate_fonts() -> tuple[Path, ...]:
    """Font files to try, best first: $RNS_FONT, the preferred names, then every other font found."""
    found: list[Path] = []
    for folder in _font_dirs():
        if folder.is_dir():
            for dirpath, _dirs, files in os.walk(folder):
                found.extend(Path(dirpath) / name for name in files if name.lower().endswith(_SUFFIXES))
    rank = {name.lower(): i for i, name in enumerate(_PREFERRED)}
    found.sort(key=lambda path: (rank.get(path.name.lower(), len(rank)), str(path)))
    explicit = os.environ.get(FONT_ENV)
    return tuple(([Path(explicit)] if explicit else []) + found)


def _load(path: Path | None, size: int) -> Font | None:
    try:
        if path is None:
            return ImageFont.load_default(size=size)
        return ImageFont.truetype(str(path), size=size)
    except (OSError, ValueError, TypeError, ImportError):
        return None


def has_glyph(font: Font, char: str) -> bool:
    """Whether `font` draws `char` with a glyph of its own rather than its "missing glyph" box."""
    if char.isspace():
        return True
    try:
        drawn, missing = font.getmask(char), font.getmask(_NEVER_A_GLYPH)
    except (UnicodeEncodeError, OSError, ValueError):
        return False
    return drawn.size != missing.size or bytes(drawn) != bytes(missing)


def _missing(font: Font, chars: Iterable[str]) -> set[str]:
    return {char for char in chars if not has_glyph(font, char)}


@lru_cache(maxsize=32)
def legend_font(names: tuple[str, ...], size: int) -> tuple[Font, frozenset[str]]:
    """The first font that draws every character of `names` at `size`, else the one missing fewest.

    Returns the font and the characters it cannot draw (empty when it covers everything).
    """
    chars = set("".join(names)) | set("0123456789.% ")
    best: tuple[Font, frozenset[str]] | None = None
    for path in (*candidate_fonts(), None):  # None: Pillow's own font, the last resort
        font = _load(path, size)
        if font is None:
            continue
        missing = frozenset(_missing(font, chars))
        if not missing:
            return font, missing
        if best is None or len(missing) < len(best[1]):
            best = (font, missing)
    if best is None:
        return ImageFont.load_default(), frozenset(chars)
    return best


def drawable(text: str, missing: frozenset[str]) -> str:
    """`text` with every character the font cannot draw written as its code point, e.g. `<U+81EA>`."""
    return "".join(f"<U+{ord(char):04X}>" if char in missing else char for char in text)


def legend_texts(names: Sequence[str], size: int) -> tuple[Font, list[str]]:
    """The font for a legend of `names` and each name as it will be drawn."""
    font, missing = legend_font(tuple(names), size)
    return font, [drawable(name, missing) for name in names]
