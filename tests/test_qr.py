"""QR codes as pure functions: the URL they encode, decoded back with a real decoder."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
import zxingcpp
from PIL import Image

from server.services import qr


def decode(png: bytes) -> list[str]:
    with Image.open(io.BytesIO(png)) as img:
        return [r.text for r in zxingcpp.read_barcodes(img.convert("L"))]


def test_notice_url_is_short_and_tolerates_a_trailing_slash() -> None:
    assert qr.notice_url("https://cp.example", "Ab3xK9") == "https://cp.example/n/Ab3xK9"
    assert qr.notice_url("https://cp.example/", "Ab3xK9") == "https://cp.example/n/Ab3xK9"
    assert qr.notice_url("http://h", "Ab3xK9", "scr01") == "http://h/n/Ab3xK9?s=scr01"


def test_notice_url_quotes_what_it_is_given() -> None:
    assert qr.notice_url("http://h", "a/b?c", "x y&z") == "http://h/n/a%2Fb%3Fc?s=x%20y%26z"


@pytest.mark.parametrize("screen", [None, "scr01"])
def test_png_decodes_to_exactly_the_url(screen: str | None) -> None:
    url = qr.notice_url("http://cp.test", "Ab3xK9", screen)
    assert decode(qr.qr_png(url, scale=4)) == [url]


def test_png_modules_are_whole_pixels_with_a_four_module_quiet_zone() -> None:
    url = qr.notice_url("https://cp.example", "Ab3xK9")
    symbol = qr.make(url)
    assert symbol.error == "M"
    assert symbol.version <= 3  # a short URL keeps the modules large on a screen
    modules = symbol.symbol_size(scale=1, border=0)[0]
    scale = 7
    with Image.open(io.BytesIO(qr.qr_png(url, scale=scale))) as img:
        gray = img.convert("L")
        assert gray.size == ((modules + 8) * scale,) * 2
        quiet = 4 * scale
        # The quiet zone is white all round...
        assert gray.crop((0, 0, gray.width, quiet)).getextrema() == (255, 255)
        assert gray.crop((0, 0, quiet, gray.height)).getextrema() == (255, 255)
        # ...and the finder pattern's corner module starts right after it, a full module wide.
        assert gray.getpixel((quiet, quiet)) == 0
        assert gray.getpixel((quiet + scale - 1, quiet + scale - 1)) == 0
        assert gray.getpixel((quiet - 1, quiet)) == 255


def test_svg_is_a_standalone_svg_document() -> None:
    url = qr.notice_url("http://cp.test", "Ab3xK9")
    svg = qr.qr_svg(url, title="Ab3xK9")
    assert svg.startswith(b"<?xml")
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.find("{http://www.w3.org/2000/svg}title").text == "Ab3xK9"  # type: ignore[union-attr]
