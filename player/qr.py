"""QR codes drawn for screens: whole-pixel modules, the 4-module quiet zone, black on white.

Phones read a code from across a room by its module size (DOMAIN.md): at 1080p modules are at
least 10 px and at 720p 9 px, so the code still decodes from the frame shrunk to a quarter (a
photo of the screen taken from a distance).
Mirrors server/services/qr.py (error correction M, never Micro QR) without importing server/.
"""

from __future__ import annotations

import functools

import segno
from PIL import Image

ERROR = "m"
QUIET_ZONE = 4


def make(url: str) -> segno.QRCode:
    return segno.make(url, error=ERROR, boost_error=False, micro=False)


@functools.lru_cache(maxsize=64)
def modules(url: str, border: int = QUIET_ZONE) -> int:
    """The width of the code for `url` in modules, quiet zone included."""
    return make(url).symbol_size(scale=1, border=border)[0]


@functools.lru_cache(maxsize=64)
def qr_image(url: str, module_px: int, border: int = QUIET_ZONE) -> Image.Image:
    """The code for `url` as an RGB image, `module_px` whole pixels per module, quiet zone
    included (white)."""
    qr = make(url)
    size = qr.symbol_size(scale=1, border=border)[0]
    small = Image.new("L", (size, size), 255)
    pixels = small.load()
    assert pixels is not None
    for y, row in enumerate(qr.matrix_iter(scale=1, border=border)):
        for x, dark in enumerate(row):
            if dark:
                pixels[x, y] = 0
    module_px = max(1, int(module_px))
    return small.resize((size * module_px, size * module_px), Image.Resampling.NEAREST).convert(
        "RGB")


MIN_MODULE_PX = 9  # a 1280×720 frame shrunk to a quarter still decodes (2.25 px a module)


def module_px_for(height: int) -> int:
    """Module size for a screen `height` px tall (short side): 10 px at 1080, and never under
    MIN_MODULE_PX (9 px at 720, where 1/108 of the height gave 7 px: a phone across the room
    — the frame at a quarter of its size — could not read it)."""
    return max(MIN_MODULE_PX, -(-height // 108))
