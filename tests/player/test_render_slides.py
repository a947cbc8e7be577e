"""The renderer with the real fonts (fonts-noto-cjk): notice slides at every resolution, QR codes
that decode from across a room, pagination that loses nothing, bad input, the other slides, and
golden images (CUNPING_UPDATE_GOLDEN=1 rewrites tests/player/golden/*.png)."""

from __future__ import annotations

import io
import itertools
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import segno
import zxingcpp
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from player import qr as qrlib
from player.fonts import Fonts, find_fonts
from player.render import BG, CHINA, Box, Renderer

SIZES = [(1920, 1080), (1280, 720), (1080, 1920)]
QR_URL = "http://cunping.test/n/Ab3xK9?s=XY12"
SCREEN_URL = "http://cunping.test/s/XY12"
GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=CHINA)


@pytest.fixture(scope="module")
def fonts() -> Fonts:
    return find_fonts(None)


@pytest.fixture(scope="module")
def renderers(fonts: Fonts) -> dict[tuple[int, int], Renderer]:
    return {size: Renderer(fonts, size) for size in SIZES}


def runs(text: str, bold: bool = False) -> list[dict[str, Any]]:
    return [{"text": text, "bold": bold}]


def notice(blocks: list[dict[str, Any]], *, title: str = "前王庄村2026年第三季度村集体财务收支公示",
           code: str = "Ab3xK9", images: list[str] | None = None) -> dict[str, Any]:
    return {
        "code": code,
        "version": 3,
        "category": {"key": "finance", "name": "财务公开", "color": "#2e7d32"},
        "title": title,
        "blocks": blocks,
        "regions": ["清源县 · 柳河镇 · 前王庄村"],
        "targets": [12],
        "published_at": "2026-11-22T02:00:00Z",
        "expire_at": None,
        "duration_s": 20,
        "pinned": False,
        "url": f"http://cunping.test/n/{code}",
        "images": images or [],
    }


def finance_table(rows: int) -> dict[str, Any]:
    return {
        "type": "table",
        "align": ["left", "right", "left"],
        "header": [runs("项目"), runs("金额（元）"), runs("说明")],
        "rows": [[runs(f"土地承包费收入{i + 1}"), runs(f"{128500 + i * 37:,}.00"),
                  runs("南洼地块，共42户")] for i in range(rows)],
    }


def finance_notice(rows: int = 6) -> dict[str, Any]:
    return notice([
        {"type": "paragraph", "runs": [
            {"text": "根据《村民委员会组织法》和县农业农村局要求，现将本村2026年7月至9月集体财务"
                     "收支情况公示如下，", "bold": False},
            {"text": "公示期为10天。", "bold": True}]},
        finance_table(rows),
        {"type": "paragraph", "runs": runs("如有疑问，请于11月30日前联系村务监督委员会（电话："
                                           "0531-88886666）。")},
    ], code=f"Fin{rows}")  # layouts are cached by code and version


def text_notice() -> dict[str, Any]:
    return notice([
        {"type": "heading", "runs": runs("冬季防火安全提示")},
        {"type": "paragraph", "runs": runs(
            "近期天气干燥，请各位村民注意用火安全：“人走火灭”，不在山林、田间焚烧秸秆；"
            "家中使用电暖器、电热毯时，睡前务必断电。发现火情请立即拨打119，并报告村委会。")},
        {"type": "list", "ordered": True, "items": [
            runs("检查家中电线是否老化；"), runs("柴草堆放远离房屋……"),
            runs("老人、儿童在家时，注意看护（尤其是独居老人）。")]},
    ], title="关于做好冬季防火工作的通知", code="Fire01")


def decode(img: Image.Image) -> list[str]:
    return [b.text for b in zxingcpp.read_barcodes(img)]


def body_text_of(r: Renderer, n: dict[str, Any], url: str = QR_URL) -> str:
    """The body text the layout placed, each table header counted once."""
    seen_headers: set[int] = set()
    parts = []
    for page in r.layout(n, url).pages:
        for unit, _y in page.units:
            if unit.kind == "table-header":
                if id(unit) in seen_headers:
                    continue
                seen_headers.add(id(unit))
            parts.append(unit.text)
    return "".join(parts)


def squash(text: str) -> str:
    return re.sub(r"\s", "", text)


def boxes_of(r: Renderer, n: dict[str, Any], url: str = QR_URL,
             **kw: Any) -> list[tuple[Image.Image, list[Box]]]:
    return r.notice_pages_with_boxes(n, url, **kw)


def only(boxes: list[Box], kind: str) -> list[Box]:
    return [b for b in boxes if b.kind == kind]


def overlaps(a: Box, b: Box) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


# ---- the notice slide ---------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_finance_notice_renders_at_each_size(renderers: dict, size: tuple[int, int]) -> None:
    r = renderers[size]
    pages = boxes_of(r, finance_notice())
    assert pages
    for img, boxes in pages:
        assert img.size == size
        assert img.mode == "RGB"
        assert decode(img) == [QR_URL]
        qr = only(boxes, "qr")[0]
        w, h = size
        for box in boxes:
            if box.kind in ("text", "cell", "marker", "title", "footer", "table-row"):
                assert r.margin - 1 <= box.x0 and box.x1 <= w - r.margin + 1, box
                assert box.y1 <= h - r.margin + 1, box
                assert not overlaps(box, qr), box
    # The table is drawn as a table: a shaded header and one row per line of data.
    first = pages[0][1]
    assert [b.text for b in only(first, "cell")][:3] == ["项目", "金额（元）", "说明"]
    assert any(b.text == "128,500.00" for b in only(first, "cell"))
    assert squash(body_text_of(r, finance_notice())) == squash(
        "根据《村民委员会组织法》和县农业农村局要求，现将本村2026年7月至9月集体财务收支情况公示如下，"
        "公示期为10天。项目金额（元）说明"
        + "".join(f"土地承包费收入{i + 1}{128500 + i * 37:,}.00南洼地块，共42户" for i in range(6))
        + "如有疑问，请于11月30日前联系村务监督委员会（电话：0531-88886666）。")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_body_text_is_at_least_a_thirtieth_of_the_height(renderers: dict,
                                                         size: tuple[int, int]) -> None:
    r = renderers[size]
    assert r.layout(text_notice(), QR_URL).body_size >= size[1] / 30
    # And the glyphs drawn are that big: the ink of a line of 国 is ~0.9 em tall.
    img = r.notice_pages(notice([{"type": "paragraph", "runs": runs("国" * 3)}], code="Big01"),
                         QR_URL)[0]
    line = next(b for b in boxes_of(r, notice([{"type": "paragraph", "runs": runs("国" * 3)}],
                                              code="Big01"))[0][1] if b.kind == "text")
    crop = img.crop((int(line.x0), int(line.y0), int(line.x1), int(line.y1)))
    ink = ImageChops.difference(crop, Image.new("RGB", crop.size, BG)).convert("L").point(
        lambda v: 255 if v > 100 else 0).getbbox()
    assert ink is not None
    assert ink[3] - ink[1] >= 0.8 * size[1] / 30


def test_qr_decodes_from_across_the_room_at_1080p(renderers: dict) -> None:
    """DOMAIN.md: the frame shrunk to a third and blurred (σ=1) still decodes."""
    img = renderers[(1920, 1080)].notice_pages(finance_notice(), QR_URL)[0]
    assert decode(img) == [QR_URL]
    far = img.resize((640, 360), Image.Resampling.LANCZOS).filter(ImageFilter.GaussianBlur(1))
    assert decode(far) == [QR_URL]


def test_qr_modules_are_at_least_8_px_at_1080p(renderers: dict) -> None:
    r = renderers[(1920, 1080)]
    img = r.notice_pages(finance_notice(), QR_URL)[0]
    (code,) = zxingcpp.read_barcodes(img)
    modules = segno.make(QR_URL, error="m", micro=False).symbol_size(scale=1, border=0)[0]
    pos = code.position
    width_px = pos.top_right.x - pos.top_left.x
    assert width_px / modules >= 8
    assert r.module_px >= 8
    # Whole pixels per module, the quiet zone kept: the card is exactly the code's size.
    qr_box = only(boxes_of(r, finance_notice())[0][1], "qr")[0]
    assert qr_box.x1 - qr_box.x0 == qrlib.modules(QR_URL) * r.module_px


ALERT_URL = "http://cunping.test/a/Qx7Lm2?s=XY12"


def assert_qr_legible(img: Image.Image, boxes: list[Box], url: str) -> None:
    """The frame's QR decodes (with zxing-cpp, a real decoder) from a third of the size with a
    slight blur (σ=1), and from a quarter at 1920×1080 and 1280×720 (landscape layouts); the
    code drawn under it ("编码 …") is the code in the decoded URL."""
    w, h = img.size
    assert decode(img) == [url]
    third = img.resize((w // 3, h // 3), Image.Resampling.LANCZOS).filter(
        ImageFilter.GaussianBlur(1))
    assert decode(third) == [url], "no decode at 1/3 with blur"
    if (w, h) in ((1920, 1080), (1280, 720)):
        quarter = img.resize((w // 4, h // 4), Image.Resampling.LANCZOS)
        assert decode(quarter) == [url], "no decode at 1/4"
    (label,) = only(boxes, "qr-code")
    code = url.split("?")[0].rsplit("/", 1)[-1]
    assert label.text == f"编码 {code}"
    # ... and it is drawn: dark ink in the code line of the white card.
    line = img.crop((int(label.x0), int(label.y0), int(label.x1), int(label.y1))).convert("L")
    assert line.point(lambda v: 255 if v < 100 else 0).getbbox() is not None


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_frames_qr_decodes_from_across_the_room(renderers: dict,
                                                      size: tuple[int, int]) -> None:
    r = renderers[size]
    url = "http://cunping.test/n/hgdpzh?s=XY12"
    for n in (finance_notice(rows=40), text_notice(), scripts_notice(), demo_finance_notice()):
        n = {**n, "code": "hgdpzh", "url": "http://cunping.test/n/hgdpzh"}
        for img, boxes in boxes_of(r, n, url=url)[:2]:
            assert_qr_legible(img, boxes, url)
    from tests.player.test_alert_slide import rainstorm

    img, boxes = r.alert_with_boxes(rainstorm(1), ALERT_URL, index=0, total=2)
    assert_qr_legible(img, boxes, ALERT_URL)


def test_qr_modules_are_at_least_9_px_at_720p(renderers: dict) -> None:
    assert renderers[(1280, 720)].module_px >= 9
    assert qrlib.module_px_for(720) == 9 and qrlib.module_px_for(1080) == 10


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_200_character_title_renders_without_overflow(renderers: dict,
                                                        size: tuple[int, int]) -> None:
    r = renderers[size]
    title = ("关于2026年度前王庄村农村人居环境整治、厕所改造补助资金发放及“美丽庭院”"
             "评选结果的公示，请广大村民（含外出务工人员）相互转告……") * 3
    title = (title + "村" * 200)[:200]
    n = notice([{"type": "paragraph", "runs": runs("详见附件。")}], title=title, code="Long01")
    pages = boxes_of(r, n)
    w, h = size
    first = pages[0][1]
    titles = only(first, "title")
    assert squash("".join(b.text for b in titles)) == squash(title)  # shown in full on page 1
    for img, boxes in pages:
        assert img.size == size
        assert decode(img) == [QR_URL]
        for box in only(boxes, "title"):
            assert r.margin - 1 <= box.x0 and box.x1 <= w - r.margin + 1
            assert box.y1 < h - r.margin
        # The body is still shown, below the title.
        assert only(boxes, "text"), "no body text on a page"
        bottom = max(b.y1 for b in only(boxes, "title"))
        assert all(b.y0 >= bottom for b in only(boxes, "text"))
    assert squash(body_text_of(r, n)) == "详见附件。"


def long_mixed_body(chars: int) -> list[dict[str, Any]]:
    piece = ("村民们好🎉！本村2026年冬季清洁取暖改造工程（Clean Heating Project, phase 2）"
             "已经开始，请大家配合施工队👍🏻入户安装。联系电话：0531-88886666，"
             "微信群 cunping_2026 同步通知。❤️ ")
    text = (piece * (chars // len(piece) + 1))[:chars]
    # Paragraphs of ~400 characters, with hard line breaks inside some.
    paras = [text[i:i + 400] for i in range(0, len(text), 400)]
    return [{"type": "paragraph", "runs": runs(p.replace("。联系", "。\n联系", 1))}
            for p in paras]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_10000_character_mixed_body_paginates_and_nothing_is_lost(
        renderers: dict, size: tuple[int, int]) -> None:
    r = renderers[size]
    blocks = long_mixed_body(10_000)
    n = notice(blocks, code="Long10k")
    pages = boxes_of(r, n)
    assert len(pages) >= 5
    expected = r.clean("".join(run["text"] for b in blocks for run in b["runs"]))
    assert "🎉" in expected and "👍🏻" in expected and "□" not in expected  # emoji drawn as emoji
    assert squash(body_text_of(r, n)) == squash(expected)
    # Longer body, more pages.
    shorter = len(r.layout(notice(long_mixed_body(3_000), code="Long3k"), QR_URL).pages)
    assert 1 < shorter < len(pages)
    w, h = size
    m = r.margin
    for number, (img, boxes) in enumerate(pages, 1):
        assert img.size == size
        qr = only(boxes, "qr")[0]
        footer_top = min(b.y0 for b in only(boxes, "footer"))
        texts = only(boxes, "text")
        assert texts, f"page {number} has no body text"
        for box in texts:
            assert m - 1 <= box.x0 and box.x1 <= w - m + 1, box
            assert box.y1 <= footer_top or box.x1 <= only(boxes, "footer")[0].x0, box
            assert not overlaps(box, qr), box
        # Margins stay background: left, right and bottom strips below the band.
        for strip in [(0, r.band_h + 1, m - 4, h), (w - m + 4, r.band_h + 1, w, h),
                      (0, h - m + 4, w, h)]:
            region = img.crop(strip)
            assert region.getcolors(1) == [(region.width * region.height, BG)], (number, strip)
        assert only(boxes, "page")[0].text == f"{number}/{len(pages)}"
    # The last page is not blank: its body holds text.
    _last_img, last_boxes = pages[-1]
    assert sum(len(b.text) for b in only(last_boxes, "text")) > 0


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_long_table_repeats_its_header_on_the_next_page(renderers: dict,
                                                          size: tuple[int, int]) -> None:
    r = renderers[size]
    n = finance_notice(rows=40)
    lay = r.layout(n, QR_URL)
    assert len(lay.pages) >= 2
    for page in lay.pages:
        rows = [u for u, _ in page.units if u.kind == "table-row"]
        if not rows:
            continue
        first_table = next(u for u, _ in page.units if u.kind.startswith("table"))
        assert first_table.kind == "table-header", "a page of rows without the header"
        assert first_table.text == "项目金额（元）说明"
    # Drawn: page 2 shows the header cells in bold, above the first data row, shaded.
    img, boxes = boxes_of(r, n)[1]
    cells = only(boxes, "cell")
    assert [c.text for c in cells[:3]] == ["项目", "金额（元）", "说明"]
    header_row = only(boxes, "table-row")[0]
    shade = img.getpixel((int(header_row.x0) + 3, int(header_row.y0) + 3))
    assert shade != BG and shade != (255, 255, 255)
    data_row = only(boxes, "table-row")[1]
    assert img.getpixel((int(data_row.x0) + 3, int(data_row.y0) + 3)) == BG
    # Every data row is placed exactly once.
    assert squash(body_text_of(r, n)).count("南洼地块") == 40


def demo_finance_notice() -> dict[str, Any]:
    """The demo's finance slide (server/demo.py FINANCE_BODY), as the server parses it."""
    rows = [("上月结余", "86,420.35", "", ""),
            ("集体土地租赁收入", "42,000.00", "", "村西50亩，承包人王建军"),
            ("上级转移支付", "30,000.00", "", "村级组织运转经费"),
            ("村内道路维修", "", "18,600.00", "前街300米，经村民代表会议通过"),
            ("路灯电费", "", "1,236.80", "10月份，12盏"),
            ("保洁员工资", "", "3,000.00", "2人 × 1,500元"),
            ("办公费用", "", "412.50", "打印纸、墨盒"),
            ("合计", "158,420.35", "23,249.30", "本月结余 135,171.05 元")]
    return notice([
        {"type": "paragraph", "runs": runs(
            "前王庄村2026年10月财务收支情况公开如下，请村民监督。如有疑问，请在公开之日起10日内"
            "向村务监督委员会反映，或扫描屏幕上的二维码留言。")},
        {"type": "table", "align": ["left", "right", "right", "left"],
         "header": [runs("项目"), runs("收入（元）"), runs("支出（元）"), runs("说明")],
         "rows": [[runs(c) if c else [] for c in row] for row in rows]},
    ], title="前王庄村2026年10月财务公开", code="Demo01")


def lone_last_lines(boxes: list[Box]) -> list[str]:
    """Cells and text lines that end a paragraph or cell on one Chinese character."""
    from player.linebreak import NO_START

    out = []
    rows: dict[float, list[Box]] = {}
    for b in only(boxes, "cell"):
        rows.setdefault(round(b.x0), []).append(b)
    for column in rows.values():
        column.sort(key=lambda b: b.y0)
        for prev, box in itertools.pairwise(column):
            text = [c for c in box.text if c not in NO_START]
            # the next line of the same cell sits right under the previous one
            if box.y0 - prev.y1 < 2 and len(text) == 1 and ord(text[0]) >= 0x2E80:
                out.append(prev.text + " / " + box.text)
    return out


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_table_text_is_never_below_the_floor(renderers: dict, size: tuple[int, int]) -> None:
    """Portrait included: table text is at least 1/30 of the height (64 px at 1920 high); the
    table wraps cells and goes on to further pages instead of shrinking."""
    r = renderers[size]
    assert r.table_size >= size[1] / 30
    n = finance_notice(rows=12)
    pages = boxes_of(r, n)
    cells = [b for _img, bs in pages for b in only(bs, "cell")]
    assert cells and all(b.y1 - b.y0 >= size[1] / 30 * 1.3 for b in cells)
    img, cell = next((img, b) for img, bs in pages for b in only(bs, "cell")
                     if b.text.startswith("南洼"))
    crop = img.crop((int(cell.x0), int(cell.y0), int(cell.x1), int(cell.y1)))
    ink = ImageChops.difference(crop, Image.new("RGB", crop.size, BG)).convert("L").point(
        lambda v: 255 if v > 100 else 0).getbbox()
    assert ink is not None and ink[3] - ink[1] >= 0.8 * size[1] / 30
    # Nothing lost: every row placed once, the header on every page that has rows.
    assert squash(body_text_of(r, n)).count("南洼地块") == 12
    for _img, bs in pages:
        if only(bs, "table-row"):
            assert [c.text for c in only(bs, "cell")][:3] == ["项目", "金额（元）", "说明"]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_no_lone_character_in_the_demo_finance_slide(renderers: dict,
                                                      size: tuple[int, int]) -> None:
    """No "集体土地租赁收 / 入" nor "经村民代表会议通 / 过": a cell or paragraph never ends on a
    line of one character."""
    pages = boxes_of(renderers[size], demo_finance_notice())
    boxes = [b for _img, bs in pages for b in bs]
    assert [lone for _img, bs in pages for lone in lone_last_lines(bs)] == []
    assert any(b.text == "集体土地租赁收入" for b in only(boxes, "cell"))
    texts = [b.text for b in only(boxes, "text")]
    assert all(len(t) > 1 for t in texts)


def test_a_portrait_finance_table_too_wide_is_shown_record_by_record(renderers: dict) -> None:
    r = renderers[(1080, 1920)]
    pages = boxes_of(r, demo_finance_notice())
    cells = [b for _img, bs in pages for b in only(bs, "cell")]
    # Label and value side by side, every value whole on one line (no "86,420.3 / 5").
    labels = [c.text for c in cells if c.text in ("项目", "收入（元）", "支出（元）", "说明")]
    assert labels.count("项目") == 8
    for value in ("86,420.35", "158,420.35", "23,249.30", "18,600.00", "集体土地租赁收入"):
        assert value in [c.text for c in cells]
    # Records are never split across pages: each page's first cell is a 项目 label.
    for _img, bs in pages[1:]:
        assert only(bs, "cell")[0].text == "项目"
    # Landscape keeps the table as a table.
    wide = [b for _img, bs in boxes_of(renderers[(1920, 1080)], demo_finance_notice())
            for b in only(bs, "cell")]
    assert [c.text for c in wide][:4] == ["项目", "收入（元）", "支出（元）", "说明"]


def test_the_lone_character_check_can_fail() -> None:
    a = Box("cell", 10, 0, 200, 50, "集体土地租赁收")
    b = Box("cell", 10, 50, 40, 100, "入")
    assert lone_last_lines([a, b]) == ["集体土地租赁收 / 入"]


def jpeg_bytes() -> bytes:
    img = Image.new("RGB", (400, 300), (200, 80, 40))
    ImageDraw.Draw(img).ellipse([100, 50, 300, 250], fill=(40, 120, 200))
    out = io.BytesIO()
    img.save(out, "JPEG")
    return out.getvalue()


def test_broken_and_missing_images_do_not_stop_rendering(renderers: dict) -> None:
    r = renderers[(1920, 1080)]
    good = Image.open(io.BytesIO(jpeg_bytes()))
    data = jpeg_bytes()
    truncated = Image.open(io.BytesIO(data[:len(data) // 2]))  # opens, fails on load()
    with pytest.raises(Exception):  # noqa: B017 - Pillow raises OSError or SyntaxError kinds
        Image.open(io.BytesIO(b"\x89PNG garbage" * 10)).load()
    notice_ = notice([{"type": "paragraph", "runs": runs("村口道路施工，请绕行。")}],
                     code="Img01", images=["http://x/broken.jpg", "http://x/missing.jpg",
                                           "http://x/good.jpg"])
    images = {"http://x/broken.jpg": truncated, "http://x/good.jpg": good}
    pages = boxes_of(r, notice_, images=images)
    boxes = [b for _img, bs in pages for b in bs]
    assert len(only(boxes, "image")) == 1  # the good one
    assert any("村口道路施工" in b.text for b in only(boxes, "text"))
    assert decode(pages[0][0]) == [QR_URL]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_emoji_and_odd_characters_do_not_crash(renderers: dict, size: tuple[int, int]) -> None:
    r = renderers[size]
    odd = "🎉👨‍👩‍👧‍👦🇨🇳❤️\u200b\x00\ufeff村民大会\t明天召开 👍🏻"
    n = notice([{"type": "paragraph", "runs": runs(odd)},
                {"type": "list", "ordered": False, "items": [runs("😀"), runs("")]},
                {"type": "table", "align": [], "header": [], "rows": [[runs("🐷"), []]]},
                {"type": "heading", "runs": []}, {"type": "bogus"}, "not a block"],  # type: ignore[list-item]
               title="🎉春节联欢会🏮", code="Emoji1")
    pages = boxes_of(r, n)
    assert pages and all(img.size == size for img, _ in pages)
    text = squash("".join(b.text for _, bs in pages for b in bs if b.kind in ("text", "title")))
    assert "村民大会" in text and "春节联欢会" in text
    # Every emoji is kept whole (ZWJ family, flag, skin tone), nothing drawn as □.
    for emoji in ("🎉", "👨\u200d👩\u200d👧\u200d👦", "🇨🇳", "❤️", "👍🏻", "🏮"):
        assert emoji in text
    assert "□" not in text and "\u200b" not in text and "\ufeff" not in text


# ---- the other slides ---------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_standby_pairing_and_message_slides(renderers: dict, size: tuple[int, int]) -> None:
    r = renderers[size]
    standby = r.standby(county_name="清源县", screen_name="前王庄村村委会门口大屏",
                        qr_url=SCREEN_URL, now=NOW)
    assert standby.size == size and standby.mode == "RGB"
    assert decode(standby) == [SCREEN_URL]
    no_qr = r.standby(county_name="", screen_name="", qr_url=None, now=NOW)
    assert no_qr.size == size and decode(no_qr) == []
    pairing = r.pairing("428615", "http://cunping.test")
    assert pairing.size == size and pairing.mode == "RGB"
    # Something big is drawn in the middle third (the code).
    w, h = size
    middle = pairing.crop((w // 4, h // 3, 3 * w // 4, 2 * h // 3))
    assert len(middle.getcolors(1 << 16) or []) > 2
    message = r.message("此屏幕已被停用", "管理员停用了本屏幕：设备已迁至新村委会办公楼。" * 4)
    assert message.size == size and message.mode == "RGB"
    m = r.margin
    for img in (standby, pairing, message):
        for strip in [(0, r.band_h + 1, m - 4, h), (w - m + 4, r.band_h + 1, w, h)]:
            region = img.crop(strip)
            assert region.getcolors(1) == [(region.width * region.height, BG)], strip


def test_standby_qr_decodes_when_shrunk_at_1080p(renderers: dict) -> None:
    img = renderers[(1920, 1080)].standby(county_name="清源县", screen_name="大屏",
                                          qr_url=SCREEN_URL, now=NOW)
    far = img.resize((640, 360), Image.Resampling.LANCZOS).filter(ImageFilter.GaussianBlur(1))
    assert decode(far) == [SCREEN_URL]


# ---- golden images ------------------------------------------------------------------------


def compare(a: Image.Image, b: Image.Image) -> tuple[float, float]:
    """(mean absolute difference per channel, fraction of pixels differing by more than 64 in
    some channel)."""
    assert a.size == b.size
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    hist = diff.histogram()
    total = a.width * a.height
    mean = max(sum(v * hist[c * 256 + v] for v in range(256)) / total for c in range(3))
    r, g, bl = diff.split()
    worst = ImageChops.lighter(ImageChops.lighter(r, g), bl)
    over = sum(worst.histogram()[65:]) / total
    return mean, over


MAX_MEAN = 2.0
MAX_OVER = 0.01


def assert_matches_golden(img: Image.Image, name: str) -> None:
    path = GOLDEN / f"{name}.png"
    if os.environ.get("CUNPING_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        # A 32-colour palette keeps the files small (~0.1 of the mean-difference budget).
        img.quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            path, optimize=True)
        return
    assert path.exists(), f"{path} is missing: run with CUNPING_UPDATE_GOLDEN=1 and look at it"
    with Image.open(path) as golden:
        mean, over = compare(img, golden)
    assert mean < MAX_MEAN and over < MAX_OVER, (
        f"{name}: mean difference {mean:.2f}, {over:.2%} of pixels differ by > 64; if the "
        f"change is intended, rerun with CUNPING_UPDATE_GOLDEN=1 and look at {path}")


def scripts_notice() -> dict[str, Any]:
    """Fallback fonts: Arabic (shaped, right to left), emoji with a ZWJ sequence, a flag and a
    skin tone, Latin with diacritics, Greek, Cyrillic, Devanagari, CJK extension A; CJK
    extension B (𠀀) is not in Noto Sans CJK and stays □."""
    return notice([
        {"type": "paragraph", "runs": runs("阿拉伯语：مرحبا بكم في قريتنا، الاجتماع غدا")},
        {"type": "paragraph", "runs": runs("表情：春节快乐🎉🏮 全家福👨\u200d👩\u200d👧\u200d👦 "
                                           "点赞👍🏻 爱心❤️ 国旗🇨🇳")},
        {"type": "paragraph", "runs": runs("越南语姓名：Nguyễn Thị Ánh；希腊语：Ελληνικά；"
                                           "俄语：Привет；印地语：नमस्ते")},
        {"type": "paragraph", "runs": runs("扩展汉字：䶮（扩展A）𠀀（扩展B）")},
    ], title="多语种与表情 🎉 Nguyễn Thị Ánh", code="Script1")


def golden_slides(renderers: dict[tuple[int, int], Renderer]) -> dict[str, Image.Image]:
    return {
        "scripts_1920x1080": renderers[(1920, 1080)].notice_pages(scripts_notice(), QR_URL)[0],
        "finance_1920x1080_p1": renderers[(1920, 1080)].notice_pages(
            finance_notice(rows=12), QR_URL)[0],
        "text_1280x720": renderers[(1280, 720)].notice_pages(text_notice(), QR_URL)[0],
        "finance_1080x1920_p1": renderers[(1080, 1920)].notice_pages(finance_notice(),
                                                                    QR_URL)[0],
        # A four-column table too wide for a portrait screen at 64 px: one record at a time.
        "demo_finance_1080x1920_p2": renderers[(1080, 1920)].notice_pages(
            demo_finance_notice(), QR_URL)[1],
        "standby_1920x1080": renderers[(1920, 1080)].standby(
            county_name="清源县", screen_name="前王庄村村委会门口大屏", qr_url=SCREEN_URL, now=NOW),
        "pairing_1280x720": renderers[(1280, 720)].pairing("428615", "http://cunping.test"),
    }


@pytest.mark.parametrize("name", ["finance_1920x1080_p1", "text_1280x720", "finance_1080x1920_p1",
                                  "standby_1920x1080", "pairing_1280x720", "scripts_1920x1080",
                                  "demo_finance_1080x1920_p2"])
def test_golden(renderers: dict, name: str) -> None:
    assert_matches_golden(golden_slides(renderers)[name], name)


def shifted(img: Image.Image, dx: int, dy: int) -> Image.Image:
    out = Image.new("RGB", img.size, BG)
    out.paste(img, (dx, dy))
    return out


@pytest.mark.parametrize("name", ["finance_1920x1080_p1", "text_1280x720", "pairing_1280x720"])
def test_golden_comparison_catches_a_layout_change(name: str) -> None:
    """The tolerance lets font hinting through but not a slide moved by a few pixels, nor a
    changed word."""
    with Image.open(GOLDEN / f"{name}.png") as f:
        golden = f.convert("RGB")
    assert compare(golden, golden) == (0.0, 0.0)
    mean, over = compare(shifted(golden, 0, 4), golden)
    assert not (mean < MAX_MEAN and over < MAX_OVER), (mean, over)
    mean, over = compare(shifted(golden, 3, 0), golden)
    assert not (mean < MAX_MEAN and over < MAX_OVER), (mean, over)
    # Slight blur (like different hinting or anti-aliasing) passes.
    soft = golden.filter(ImageFilter.GaussianBlur(0.4))
    mean, over = compare(soft, golden)
    assert mean < MAX_MEAN and over < MAX_OVER, (mean, over)


# ---- the time budget's last page ----------------------------------------------------------


def long_notice() -> dict[str, Any]:
    """4,800 characters of plain Chinese text, in paragraphs of 400."""
    piece = ("为做好今冬明春农村人居环境整治工作，村委会决定开展房前屋后环境卫生大清理，"
             "请各户清理门前杂物、柴草和生活垃圾，做到物品摆放整齐，道路通畅。")
    text = (piece * (4800 // len(piece) + 1))[:4800]
    return {**notice([{"type": "paragraph", "runs": runs(text[i:i + 400])}
                      for i in range(0, 4800, 400)],
                     title="关于开展冬季村庄清洁行动的通知", code="hgdpzh"),
            "url": "http://cunping.test/n/hgdpzh", "duration_s": 20, "budget_s": 120}


def test_a_4800_character_notice_shows_6_pages_per_turn_and_says_what_is_left(
        renderers: dict) -> None:
    from player.schedule import Rotation

    r = renderers[(1080, 1920)]
    n = long_notice()
    url = "http://cunping.test/n/hgdpzh?s=XY12"
    total = len(r.notice_pages(n, url))
    assert 28 <= total <= 36  # about 32 pages on a portrait screen
    rotation = Rotation()
    other = {**notice([], code="Other1"), "pinned": False}
    rotation.update([{**n, "pinned": True}, other])
    turn = [rotation.next(lambda x: total if x["code"] == "hgdpzh" else 1) for _ in range(7)]
    assert [s.code for s in turn if s] == ["hgdpzh"] * 6 + ["Other1"]
    last = turn[5]
    assert last is not None and last.more == total - 6 and last.page == 5
    img, boxes = r.notice_pages_with_boxes(n, url, more=(last.page, last.more))[0]
    note = "".join(b.text for b in only(boxes, "more"))
    assert note in (f"还有 {total - 6} 页 · 扫码看全文", f"还有 {total - 6} 页扫码看全文")
    assert only(boxes, "page")[0].text == f"6/{total}"
    assert not only(boxes, "footer")  # the note takes the footer's place
    assert_qr_legible(img, boxes, url)
    # The same page without the note is the plain page.
    plain = boxes_of(r, n, url=url)[5][1]
    assert not only(plain, "more") and only(plain, "footer")


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_budget_page_qr_decodes_on_landscape(renderers: dict, size: tuple[int, int]) -> None:
    url = "http://cunping.test/n/hgdpzh?s=XY12"
    img, boxes = renderers[size].notice_pages_with_boxes(long_notice(), url, more=(2, 9))[0]
    assert "".join(b.text for b in only(boxes, "more")) == "还有 9 页 · 扫码看全文"
    assert_qr_legible(img, boxes, url)


def test_golden_budget_page() -> None:
    r = Renderer(find_fonts(None), (1080, 1920))
    img = r.notice_more_page(long_notice(), "http://cunping.test/n/hgdpzh?s=XY12", 5, 26)
    assert_matches_golden(img, "budget_1080x1920")
