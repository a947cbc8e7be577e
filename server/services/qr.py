"""QR codes for notices: the short URL a code encodes, and the code as PNG or SVG.

Pure functions on plain values (no Flask request, no database), so print pages, the API and
the screens all draw the same code. Phones read a code from across a room by its module size,
so the URL is kept short (every character can raise the QR version and shrink the modules),
modules are whole pixels and the 4-module quiet zone is kept.
"""

from __future__ import annotations

import functools
import io
from urllib.parse import quote
from xml.etree import ElementTree as ET

import segno
from PIL import Image, ImageDraw, ImageFont

from player import fonts

ERROR = "m"  # error correction M: survives a smudged or partly covered print
QUIET_ZONE = 4  # modules of white around the code, as the QR standard asks


def notice_url(base_url: str, code: str, screen: str | None = None) -> str:
    """The public address of a notice, e.g. ``http://host/n/Ab3xK9`` (``?s=<screen>`` when a
    screen's code is given, so scans are counted per screen)."""
    url = f"{base_url.rstrip('/')}/n/{quote(code, safe='')}"
    if screen:
        url += "?s=" + quote(screen, safe="")
    return url


def screen_url(base_url: str, code: str) -> str:
    """The public address of a screen's own page, e.g. ``http://host/s/Xy7pQ2``."""
    return f"{base_url.rstrip('/')}/s/{quote(code, safe='')}"


def make(url: str) -> segno.QRCode:
    """The QR symbol for `url` (a regular QR code, never a Micro QR)."""
    return segno.make(url, error=ERROR, boost_error=False, micro=False)


def qr_png(url: str, scale: int = 10, border: int = QUIET_ZONE, label: str = "") -> bytes:
    """A black-on-white PNG with `scale` whole pixels per module; `label` (the code residents
    type, e.g. "编码 hgdpzh") is printed under it."""
    out = io.BytesIO()
    make(url).save(out, kind="png", scale=max(1, int(scale)), border=border)
    if not label:
        return out.getvalue()
    code = Image.open(io.BytesIO(out.getvalue())).convert("L")
    size = max(12, code.width // 10)
    font = _label_font(size)
    text = label if font is not None else label.split()[-1]  # no CJK font: the code alone
    face = font or ImageFont.load_default(size)
    band = int(size * 1.8)
    page = Image.new("L", (code.width, code.height + band), 255)
    page.paste(code, (0, 0))
    draw = ImageDraw.Draw(page)
    # The quiet zone's lower part holds the text's top: the code stays clear of it.
    draw.text((code.width / 2, code.height + band / 2 - size * 0.6), text, fill=0, font=face,
              anchor="mm")
    out = io.BytesIO()
    page.save(out, format="PNG", optimize=True)
    return out.getvalue()


@functools.lru_cache(maxsize=8)
def _label_font(size: int) -> ImageFont.FreeTypeFont | None:
    try:
        return fonts.load(fonts.find_fonts().regular, size)
    except fonts.FontError:
        return None


SVG = "http://www.w3.org/2000/svg"


def qr_svg(url: str, scale: int = 10, border: int = QUIET_ZONE, title: str = "",
           label: str = "") -> bytes:
    """A standalone SVG document (XML declaration, svg namespace), sharp at any print size;
    `label` is printed under the code (in the viewer's sans-serif font)."""
    out = io.BytesIO()
    make(url).save(
        out,
        kind="svg",
        scale=max(1, int(scale)),
        border=border,
        xmldecl=False,
        svgns=True,
        title=title or None,
        light="#fff",  # opaque: the code must also read when placed on a dark page
    )
    ET.register_namespace("", SVG)
    root = ET.fromstring(out.getvalue())
    if label:
        width, height = int(root.get("width", "0")), int(root.get("height", "0"))
        size = max(12, width // 10)
        band = int(size * 1.8)
        root.set("height", str(height + band))
        root.set("viewBox", f"0 0 {width} {height + band}")
        ET.SubElement(root, f"{{{SVG}}}rect", x="0", y=str(height), width=str(width),
                      height=str(band), fill="#fff")
        text = ET.SubElement(root, f"{{{SVG}}}text", {
            "x": str(width / 2), "y": str(height + band / 2 - size * 0.1),
            "text-anchor": "middle", "font-family": "sans-serif", "font-size": str(size),
            "fill": "#000"})
        text.text = label
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8",
                                                                  xml_declaration=False)
