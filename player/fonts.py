"""Finding a font that draws Chinese, and loading it at a size.

A set-top box gets its fonts from Debian's packages (fonts-noto-cjk, or fonts-wqy-microhei /
fonts-wqy-zenhei); a font file can also be named in the player's config (--font). A font that
cannot draw Chinese would put boxes (tofu) on every screen, so the player refuses to start.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass

from PIL import ImageFont

# (regular, bold) candidates, best first.
CANDIDATES: list[tuple[str, str]] = [
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
     "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
    ("/usr/share/fonts/opentype/noto-cjk/NotoSansCJK-Regular.ttc",
     "/usr/share/fonts/opentype/noto-cjk/NotoSansCJK-Bold.ttc"),
    ("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
     "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Bold.ttc"),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
     "/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc"),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
     "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
     "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
]
SAMPLE = "村务公开"
FALLBACK_CHAR = "□"  # drawn instead of a character the font has no glyph for (e.g. emoji)
HELP = ("install one with `apt-get install fonts-noto-cjk` (or fonts-wqy-microhei), "
        "or name a font file that draws Chinese with --font")


class FontError(RuntimeError):
    """No usable font: the message says what to install or configure."""


@dataclass(frozen=True)
class Fonts:
    regular: str  # path to a font file that draws Chinese
    bold: str  # path (may equal regular)


@functools.lru_cache(maxsize=16)
def face_index(path: str) -> int:
    """The face of a font collection to use: Simplified Chinese where the file has several
    (Noto's .ttc starts with the Japanese face, whose glyph shapes differ)."""
    if not path.lower().endswith((".ttc", ".otc")):
        return 0
    best = 0
    for index in range(32):
        try:
            family, _style = ImageFont.truetype(path, 16, index=index).getname()
        except OSError:
            break
        family = family or ""
        if "Mono" in family:
            continue
        if family.endswith(" SC") or "SC " in family:
            return index
    return best


@functools.lru_cache(maxsize=256)
def load(path: str, size: int) -> ImageFont.FreeTypeFont:
    """The font at `path` in pixel `size` (cached: loading a .ttc is slow)."""
    return ImageFont.truetype(path, max(1, int(size)), index=face_index(path))


@functools.lru_cache(maxsize=8)
def _notdef(path: str) -> bytes:
    return bytes(load(path, 24).getmask("\ue000"))


@functools.lru_cache(maxsize=65536)
def has_glyph(path: str, ch: str) -> bool:
    """Does the font draw `ch` (rather than its empty-box .notdef glyph)?"""
    font = load(path, 24)
    mask = font.getmask(ch)
    if mask.getbbox() is None:
        return font.getlength(ch) > 0 or ch.isspace()
    return bytes(mask) != _notdef(path)


def draws_chinese(path: str) -> bool:
    """True when the font at `path` has real, distinct glyphs for a few Chinese characters."""
    try:
        font = load(path, 32)
    except OSError:
        return False
    masks = [bytes(font.getmask(ch)) for ch in SAMPLE]
    if any(font.getmask(ch).getbbox() is None for ch in SAMPLE):
        return False
    return len(set(masks)) == len(SAMPLE) and _notdef(path) not in masks


def _fc_list() -> list[str]:
    """Font files fontconfig says cover Chinese (a fallback for unusual layouts)."""
    if not shutil.which("fc-list"):
        return []
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True,
                             timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    files = sorted({line.split(":")[0].strip() for line in out.splitlines() if line.strip()})
    # Sans before serif, regular before bold.
    return sorted(files, key=lambda f: ("Serif" in f, "Bold" in f, f))


def find_fonts(configured: str | None = None) -> Fonts:
    """The fonts to draw with: `configured` (a file) if given, else the first installed CJK
    font from CANDIDATES (then fontconfig). Raises FontError if none draws Chinese."""
    if configured:
        if not os.path.isfile(configured):
            raise FontError(f"font file {configured} does not exist; {HELP}")
        if not draws_chinese(configured):
            raise FontError(f"font {configured} cannot draw Chinese; {HELP}")
        return Fonts(regular=configured, bold=configured)
    for regular, bold in CANDIDATES:
        if os.path.isfile(regular) and draws_chinese(regular):
            return Fonts(regular, bold if os.path.isfile(bold) and draws_chinese(bold)
                         else regular)
    for path in _fc_list():
        if draws_chinese(path):
            return Fonts(path, path)
    raise FontError(f"no font that draws Chinese was found; {HELP}")


# Emoji modifiers and joiners: dropped, so one emoji becomes one fallback box.
_DROP = frozenset(chr(c) for c in [*range(0x1F3FB, 0x1F400), *range(0xFE00, 0xFE10), 0x200D,
                                    0x20E3])


def clean(text: str, path: str) -> str:
    """`text` made safe to draw with the font at `path`: NFC, control and format characters
    dropped (except newlines), tabs as spaces, and characters without a glyph as □."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    for ch in text:
        if ch == "\n":
            out.append(ch)
        elif ch == "\t" or (ch.isspace() and ch != " "):
            out.append(" ")
        elif ch in _DROP or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        elif has_glyph(path, ch):
            out.append(ch)
        else:
            out.append(FALLBACK_CHAR)
    return "".join(out)
