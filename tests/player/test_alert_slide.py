"""The alert slide with the real fonts: golden images (level I red, level III yellow), a QR code
that decodes with big modules, readable colours, long text that stays inside, every size."""

from __future__ import annotations

from typing import Any

import pytest

from player import protocol
from player import qr as qrlib
from player.alert_slide import heading, local_time
from player.fonts import Fonts, find_fonts
from player.render import TEXT, WHITE, Renderer
from tests.player.test_render_slides import assert_matches_golden, decode

QR = "http://cunping.test/a/Qx7Lm2?s=XY12"
SIZES = [(1920, 1080), (1280, 720), (1080, 1920)]


def rainstorm(level: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "code": "Qx7Lm2", "version": 2, "level": level, "color": protocol.LEVEL_COLORS[level],
        "event": "暴雨",
        "title": f"清源县气象台发布暴雨{protocol.LEVEL_NAMES[level]}预警信号",
        "text": "受强降雨云团影响，预计未来3小时内柳河镇、前王庄村等地将出现100毫米以上强降水，"
                "并伴有雷电、短时大风，山洪、泥石流等灾害发生的可能性极大。\n"
                "请低洼地带、沿河及山脚下的村民立即转移。",
        "instruction": "立即停止户外活动和田间作业；远离河道、山体和危旧房屋；听从村干部指挥，"
                       "到村委会或学校安置点避险。",
        "sender_name": "清源县应急管理局",
        "starts_at": "2026-11-22T02:00:00Z", "expires_at": "2026-11-23T02:00:00Z",
        "issued_at": "2026-11-22T02:00:00Z", "targets": [12],
        "url": "http://cunping.test/a/Qx7Lm2", **extra,
    }


def gale() -> dict[str, Any]:
    return rainstorm(3, event="大风", title="清源县气象台发布大风黄色预警信号",
                     text="预计今天夜间到明天白天，我县将出现6～8级偏北大风，阵风9级以上。",
                     instruction="加固围板、棚架、广告牌等易被风吹动的搭建物；妥善安置易受大风"
                                 "影响的室外物品；减少外出。")


@pytest.fixture(scope="module")
def fonts() -> Fonts:
    return find_fonts(None)


@pytest.fixture(scope="module")
def renderers(fonts: Fonts) -> dict[tuple[int, int], Renderer]:
    return {size: Renderer(fonts, size) for size in SIZES}


def test_golden_alert_level_1(renderers: dict) -> None:
    img = renderers[(1920, 1080)].alert(rainstorm(1), QR, index=0, total=2)
    assert_matches_golden(img, "alert_1920x1080_level1")


def test_golden_alert_level_3(renderers: dict) -> None:
    assert_matches_golden(renderers[(1920, 1080)].alert(gale(), QR), "alert_1920x1080_level3")


def test_heading_and_times() -> None:
    assert heading(rainstorm(1)) == "暴雨红色预警"
    assert heading(gale()) == "大风黄色预警"
    assert local_time("2026-11-22T02:00:00Z") == "11月22日 10:00"  # China time
    assert local_time("nonsense") == ""


def kinds(boxes: list[Any], kind: str) -> list[Any]:
    return [b for b in boxes if b.kind == kind]


def test_the_slide_says_what_an_elderly_villager_needs(renderers: dict) -> None:
    img, boxes = renderers[(1920, 1080)].alert_with_boxes(rainstorm(1), QR, index=1, total=3)
    assert img.size == (1920, 1080)
    assert kinds(boxes, "heading")[0].text == "暴雨红色预警"
    assert kinds(boxes, "grade")[0].text == "Ⅰ级"
    assert kinds(boxes, "counter")[0].text == "2/3"
    # The heading is not drawn twice: the title shows only what it adds (the issuer).
    assert "".join(b.text for b in kinds(boxes, "title")) == "清源县气象台发布"
    drawn = "".join(b.text for b in boxes)
    assert drawn.count("暴雨红色预警") == 1
    text = "".join(b.text for b in kinds(boxes, "text"))
    assert text == rainstorm(1)["text"].replace("\n", "")  # all of it, nothing cut
    assert "".join(b.text for b in kinds(boxes, "instruction")) == rainstorm(1)["instruction"]
    footer = "".join(b.text for b in kinds(boxes, "footer"))
    assert "清源县应急管理局" in footer and "11月22日 10:00" in footer \
        and "11月23日 10:00" in footer
    # big type: the heading a ninth of the height, the body over 1/22 (notices: 1/28)
    heading_box = kinds(boxes, "heading")[0]
    assert heading_box.y1 - heading_box.y0 >= 1080 / 9
    body = kinds(boxes, "text")[0]
    assert body.y1 - body.y0 >= 1080 / 22 * 1.4
    # the whole screen is the level's colour
    assert img.getpixel((3, 3)) == img.getpixel((1916, 1076)) == (0xd3, 0x2f, 0x2f)
    assert kinds(boxes, "counter")  # and nothing overlaps the QR code
    qr = kinds(boxes, "qr")[0]
    panel = kinds(boxes, "panel")[0]
    assert panel.x1 < qr.x0 and qr.x1 <= 1920


def test_qr_decodes_with_modules_of_at_least_8_px(renderers: dict) -> None:
    r = renderers[(1920, 1080)]
    img, boxes = r.alert_with_boxes(rainstorm(1), QR)
    assert decode(img) == [QR]
    assert r.module_px >= 8
    qr = kinds(boxes, "qr")[0]
    assert qr.x1 - qr.x0 >= qrlib.modules(QR) * 8
    # from across the room: a third of the size still decodes
    small = img.resize((640, 360))
    assert decode(small) == [QR]


def test_text_colours_are_readable_on_every_level(renderers: dict) -> None:
    r = renderers[(1920, 1080)]
    for level, want in ((1, WHITE), (3, TEXT), (4, WHITE)):
        img, boxes = r.alert_with_boxes(rainstorm(level), QR)
        h = kinds(boxes, "heading")[0]
        colours = {c for _n, c in img.crop((int(h.x0), int(h.y0), int(h.x1),
                                            int(h.y1))).getcolors(1 << 16)}
        assert want in colours, level
        other = TEXT if want == WHITE else WHITE
        assert other not in colours


@pytest.mark.parametrize("size", SIZES)
def test_a_very_long_alert_stays_inside_at_every_size(renderers: dict,
                                                      size: tuple[int, int]) -> None:
    long = rainstorm(2, text="强降雨" * 1600, instruction="请立即转移" * 200,
                     event="森林火险气象等级" * 8, title="标题" * 100)
    img, boxes = renderers[size].alert_with_boxes(long, QR, index=0, total=2)
    assert img.size == size
    panel = kinds(boxes, "panel")[0]
    for box in boxes:
        assert box.x0 >= 0 and box.x1 <= size[0] + 1 and box.y0 >= 0 and box.y1 <= size[1]
        if box.kind in ("text", "instruction", "label"):
            assert panel.y0 <= box.y0 and box.y1 <= panel.y1, box
    assert kinds(boxes, "text")[-1].text.endswith("…")
    assert kinds(boxes, "instruction")  # what to do is never cut away
    assert decode(img) == [QR]


@pytest.mark.parametrize("size", SIZES)
def test_every_size_renders_the_normal_alert_whole(renderers: dict,
                                                   size: tuple[int, int]) -> None:
    img, boxes = renderers[size].alert_with_boxes(gale(), QR)
    assert img.size == size
    assert "".join(b.text for b in kinds(boxes, "instruction")) == gale()["instruction"]
    assert decode(img) == [QR]


STEPS = ("1. 立即停止户外活动和田间作业；2. 远离河道、山体和危旧房屋；"
         "3. 听从村干部指挥，到村委会或学校安置点避险。")


def test_steps_are_split_by_their_numbers() -> None:
    from player.alert_slide import steps, title_beyond_heading

    assert steps(STEPS) == [("1.", "立即停止户外活动和田间作业；"),
                            ("2.", "远离河道、山体和危旧房屋；"),
                            ("3.", "听从村干部指挥，到村委会或学校安置点避险。")]
    assert [n for n, _t in steps("请注意：1、关好门窗 2、不要外出")] == ["", "1.", "2."]
    assert [n for n, _t in steps("（1）转移（2）避险")] == ["1.", "2."]
    # Not a list: numbers in the text, one step only, or out of order.
    assert steps("预计降雨100毫米，风力9级。") == [("", "预计降雨100毫米，风力9级。")]
    assert steps("1. 只有一条") == [("", "1. 只有一条")]
    assert steps("2. 甲 1. 乙") == [("", "2. 甲 1. 乙")]
    assert steps("温度为3.5度，2.0米") == [("", "温度为3.5度，2.0米")]
    head = "暴雨红色预警"
    assert title_beyond_heading("清源县气象台发布暴雨红色预警信号", head) == "清源县气象台发布"
    assert title_beyond_heading("暴雨红色预警", head) == ""
    assert title_beyond_heading("县应急局：山洪转移通知", head) == "县应急局：山洪转移通知"


@pytest.mark.parametrize("size", SIZES)
def test_numbered_steps_are_drawn_one_per_line_under_the_right_label(
        renderers: dict, size: tuple[int, int]) -> None:
    img, boxes = renderers[size].alert_with_boxes(rainstorm(1, instruction=STEPS), QR)
    assert [b.text for b in kinds(boxes, "label")] == ["防御指引"]
    assert "防范措施" not in "".join(b.text for b in boxes)
    marks = kinds(boxes, "step")
    assert [b.text for b in marks] == ["1.", "2.", "3."]
    lines = kinds(boxes, "instruction")
    for mark in marks:  # each number starts a line of its own, its step's text beside it
        first = next(b for b in lines if abs(b.y0 - mark.y0) < 1)
        assert first.x0 > mark.x1 - 1
    assert "".join(b.text for b in lines) == "".join(t for _n, t in __import__(
        "player.alert_slide", fromlist=["steps"]).steps(STEPS))
    # wrapped lines of a step are indented like its first line (hanging indent)
    assert len({round(b.x0) for b in lines}) == 1
    assert decode(img) == [QR]


def test_golden_alert_with_steps(renderers: dict) -> None:
    img = renderers[(1920, 1080)].alert(rainstorm(1, instruction=STEPS), QR)
    assert_matches_golden(img, "alert_1920x1080_steps")
