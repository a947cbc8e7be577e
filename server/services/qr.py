"""QR codes for notices: the short URL a code encodes, and the code as PNG or SVG.

Pure functions on plain values (no Flask request, no database), so print pages, the API and
the screens all draw the same code. Phones read a code from across a room by its module size,
so the URL is kept short (every character can raise the QR version and shrink the modules),
modules are whole pixels and the 4-module quiet zone is kept.
"""

from __future__ import annotations

import io
from urllib.parse import quote

import segno

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


def qr_png(url: str, scale: int = 10, border: int = QUIET_ZONE) -> bytes:
    """A black-on-white PNG with `scale` whole pixels per module."""
    out = io.BytesIO()
    make(url).save(out, kind="png", scale=max(1, int(scale)), border=border)
    return out.getvalue()


def qr_svg(url: str, scale: int = 10, border: int = QUIET_ZONE, title: str = "") -> bytes:
    """A standalone SVG document (XML declaration, svg namespace), sharp at any print size."""
    out = io.BytesIO()
    make(url).save(
        out,
        kind="svg",
        scale=max(1, int(scale)),
        border=border,
        xmldecl=True,
        svgns=True,
        title=title or None,
        light="#fff",  # opaque: the code must also read when placed on a dark page
    )
    return out.getvalue()
