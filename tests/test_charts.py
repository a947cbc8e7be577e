"""Server-drawn SVG charts: well-formed, escaped, accessible, the right number of marks."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from markupsafe import Markup

from server.services import charts

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script> & \'quote\''


def parse(markup: Markup) -> ET.Element:
    assert isinstance(markup, Markup)
    return ET.fromstring(str(markup))  # raises on anything not well-formed


def texts(root: ET.Element) -> list[str]:
    return [el.text or "" for el in root.iter() if el.tag in (SVG + "text", SVG + "title")]


def test_bar_chart_has_one_bar_per_item_scaled_to_the_largest() -> None:
    items = [("前王庄村财务公开", 300.0), ("防火提示", 150.0), ("医保缴费", 0.0)]
    root = parse(charts.bar_chart(items, title="播放时长", desc="前三条", width=600))
    bars = root.findall(f".//{SVG}rect[@class='bar']")
    assert len(bars) == 3
    widths = [float(b.get("width", "")) for b in bars]
    assert widths[0] > 0 and abs(widths[1] - widths[0] / 2) < 0.2 and widths[2] == 0
    assert all(float(b.get("x", "")) + w <= 600 for b, w in zip(bars, widths, strict=True))
    # Accessible: role=img, labelled by its own title and desc.
    assert root.get("role") == "img"
    title_id, desc_id = root.get("aria-labelledby", "").split()
    assert root.find(f"{SVG}title").get("id") == title_id  # type: ignore[union-attr]
    assert root.find(f"{SVG}title").text == "播放时长"  # type: ignore[union-attr]
    assert root.find(f"{SVG}desc").get("id") == desc_id  # type: ignore[union-attr]
    # Each bar says what it is, in Chinese, with its value.
    row_titles = [g.find(f"{SVG}title").text for g in root.findall(f"{SVG}g")]  # type: ignore[union-attr]
    assert row_titles == ["前王庄村财务公开: 300", "防火提示: 150", "医保缴费: 0"]


def test_labels_and_titles_are_escaped() -> None:
    for markup in (
        charts.bar_chart([(HOSTILE, 3)], title=HOSTILE, desc=HOSTILE),
        charts.line_chart([(HOSTILE, 3), ("b", 4)], title=HOSTILE, desc=HOSTILE),
        charts.bar_chart([], title=HOSTILE, empty=HOSTILE),
    ):
        raw = str(markup)
        assert "<script" not in raw and "&lt;script&gt;" in raw
        assert "&amp;" in raw
        root = parse(markup)
        assert root.find(f".//{SVG}script") is None
        assert HOSTILE in texts(root)  # the reader gets the text back exactly


def test_long_labels_are_cut_to_fit_and_kept_whole_in_the_title() -> None:
    label = "关于2027年度城乡居民基本医疗保险集中缴费工作的通知" * 2
    root = parse(charts.bar_chart([(label, 1)], title="t", label_width=200))
    shown = root.find(f".//{SVG}g/{SVG}text").text or ""  # type: ignore[union-attr]
    assert shown.endswith("…") and len(shown) < len(label)
    assert charts.text_width(shown, 13) <= 200 - 12
    assert root.find(f".//{SVG}g/{SVG}title").text == f"{label}: 1"  # type: ignore[union-attr]


def test_line_chart_has_a_point_per_value_and_at_most_the_asked_labels() -> None:
    points = [(f"3月{d}日", float(d * 10)) for d in range(1, 31)]
    root = parse(charts.line_chart(points, title="每日播放", max_labels=8, height=240))
    assert len(root.findall(f".//{SVG}circle[@class='point']")) == 30
    line = root.find(f".//{SVG}polyline[@class='line']")
    coords = [tuple(map(float, p.split(","))) for p in line.get("points", "").split()]  # type: ignore[union-attr]
    assert len(coords) == 30
    xs, ys = [c[0] for c in coords], [c[1] for c in coords]
    assert xs == sorted(xs)
    assert ys == sorted(ys, reverse=True)  # rising values: SVG y goes down
    assert min(ys) >= 0 and max(ys) <= 240
    labels = root.findall(f".//{SVG}text[@class='x-label']")
    assert 2 <= len(labels) <= 8 and labels[0].text == "3月1日"
    # The y axis tops at a round number at or above the largest value.
    y_labels = [t.text for t in root.findall(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert y_labels[0] == "0" and y_labels[-1] == "300"


def test_a_single_point_and_all_zero_values_draw() -> None:
    root = parse(charts.line_chart([("今天", 0)], title="t"))
    assert len(root.findall(f".//{SVG}circle")) == 1
    root = parse(charts.bar_chart([("a", 0), ("b", 0)], title="t"))
    assert [b.get("width") for b in root.findall(f".//{SVG}rect")] == ["0.0", "0.0"]


def test_empty_charts_say_so() -> None:
    for markup in (charts.bar_chart([], title="t", empty="暂无数据"),
                   charts.line_chart([], title="t", empty="暂无数据")):
        root = parse(markup)
        assert root.find(f".//{SVG}text[@class='empty']").text == "暂无数据"  # type: ignore[union-attr]


def test_value_format_is_used_and_nice_ceiling() -> None:
    def hours(s: float) -> str:
        return f"{s / 3600:.1f} 小时"

    root = parse(charts.bar_chart([("a", 5400)], title="t", value_format=hours))
    assert "a: 1.5 小时" in texts(root)
    assert [charts.nice_ceiling(v) for v in (0, 1, 7, 12, 23, 180, 300, 301, 700)] == [
        1, 1, 8, 20, 30, 200, 300, 400, 800]


def test_two_charts_on_a_page_get_different_ids() -> None:
    a = parse(charts.bar_chart([("a", 1)], title="一"))
    b = parse(charts.bar_chart([("a", 2)], title="一"))
    assert a.get("aria-labelledby") != b.get("aria-labelledby")


def test_axis_text_is_legible_and_never_cut_at_the_edges() -> None:
    def hours(v: float) -> str:
        return f"{v:,.0f} 小时"

    svg = str(charts.line_chart([(f"11-{d:02d}", d * 100.0) for d in range(1, 31)],
                                title="t", value_format=hours))
    sizes = {float(x) for x in re.findall(r'font-size="([\d.]+)"', svg)}
    assert min(sizes) >= 13, sizes
    for x, text in re.findall(r'<text x="([\d.]+)"[^>]*text-anchor="end"[^>]*>([^<]+)</text>',
                              svg):
        assert float(x) - charts.text_width(text, charts.AXIS) >= 0, (x, text)
    first = re.search(r'<text class="x-label" x="([\d.]+)"[^>]*text-anchor="(\w+)"', svg)
    assert first is not None
    x, anchor = float(first.group(1)), first.group(2)
    assert anchor == "start" or x - charts.text_width("11-01", charts.AXIS) / 2 >= 0
