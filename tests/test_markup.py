"""Notice bodies: the safe Markdown subset (server/services/markup.py)."""

from __future__ import annotations

import re

import pytest
from markupsafe import Markup

from server.services.markup import clean_text, to_html, to_plain

FINANCE = """\
2025年3月收支明细：

| 项目 | 收入（元） | 支出（元） |
|---|---:|---:|
| 上级转移支付 | 50,000.00 | |
| 路灯电费 | | 1,230.00 |
"""


def test_paragraphs() -> None:
    html = to_html("第一段。\n\n第二段。")
    assert html == "<p>第一段。</p>\n<p>第二段。</p>\n"


@pytest.mark.parametrize(
    ("body", "tag"),
    [("- 张三\n- 李四", "ul"), ("1. 报名\n2. 审核", "ol")],
)
def test_lists(body: str, tag: str) -> None:
    html = to_html(body)
    assert html.startswith(f"<{tag}>") and html.count("<li>") == 2


def test_bold() -> None:
    assert "<strong>补贴标准</strong>" in to_html("**补贴标准**：每亩 120 元")


def test_table_is_wrapped_so_it_scrolls_on_a_phone() -> None:
    html = str(to_html(FINANCE))
    assert '<div class="table-wrap' in html
    assert html.count("<table>") == 1 and "</table></div>" in html
    assert "<th>项目</th>" in html
    assert re.search(r'<td style="text-align:right"[^>]*>1,230\.00</td>', html)


def test_returns_markup_safe_for_templates() -> None:
    assert isinstance(to_html("x"), Markup)


@pytest.mark.parametrize(
    "raw",
    [
        "<script>alert(1)</script>",
        '<img src="x" onerror="alert(1)">',
        "<iframe src=//evil></iframe>",
        '<a href="javascript:alert(1)">点我</a>',
        "<b>粗</b>",
    ],
)
def test_raw_html_is_shown_as_text(raw: str) -> None:
    html = str(to_html(f"前文 {raw} 后文"))
    assert "<script" not in html and "<img" not in html and "<iframe" not in html
    assert "<b>" not in html and "<a href" not in html
    assert "&lt;" in html  # the text is kept, escaped, for the reader to see


def test_raw_html_block_is_escaped() -> None:
    html = str(to_html("<div onclick=x>\n块\n</div>"))
    assert "<div" not in html and "&lt;div onclick=x&gt;" in html


@pytest.mark.parametrize(
    "link",
    [
        "[点我](javascript:alert(1))",
        "[点我](JaVaScRiPt:alert(1))",
        "[点我](vbscript:msgbox(1))",
        "[点我](data:text/html;base64,PHNjcmlwdD4=)",
        "<javascript:alert(1)>",
    ],
)
def test_dangerous_links_are_dropped(link: str) -> None:
    html = str(to_html(link)).lower()
    assert "href" not in html
    assert "<a" not in html


def test_ordinary_links_are_kept_and_marked_nofollow() -> None:
    html = str(to_html("[县政府网站](https://www.example.gov.cn/)"))
    assert '<a rel="nofollow noopener" href="https://www.example.gov.cn/">县政府网站</a>' in html


def test_images_are_disabled() -> None:
    html = str(to_html("![村委会照片](http://example.com/photo.jpg)"))
    assert "<img" not in html


def test_control_characters_are_removed() -> None:
    assert str(to_html("村\x00务\x07公\x1b开\x7f")) == "<p>村务公开</p>\n"
    assert clean_text("a\r\nb\rc\td") == "a\nb\nc\td"  # tabs and newlines stay


def test_to_plain_drops_markup() -> None:
    text = to_plain("**粗体** 和 *斜体*\n\n- 一\n- 二\n\n" + FINANCE)
    assert "*" not in text and "|" not in text and "<" not in text
    assert text.startswith("粗体 和 斜体 一 二")
    assert "路灯电费" in text and "1,230.00" in text


def test_to_plain_keeps_html_as_text() -> None:
    assert to_plain("<b>粗</b>") == "<b>粗</b>"  # plain text; the template escapes it


def test_to_plain_limit() -> None:
    assert to_plain("长" * 50, limit=10) == "长" * 9 + "…"
    assert to_plain("短文", limit=10) == "短文"


def test_a_wide_table_reflows_on_a_phone_with_each_cell_labelled() -> None:
    finance = to_html(
        "| 项目 | 收入（元） | 支出（元） | 说明 |\n| --- | ---: | ---: | --- |\n"
        "| 集体土地租赁收入 | 42,000.00 | | 村西50亩 |\n"
        "| **合计** | **42,000.00** | **0.00** | 本月结余 |\n"
    )
    assert '<div class="table-wrap reflow">' in finance
    assert '<td style="text-align:right" data-label="收入（元）">42,000.00</td>' in finance
    assert finance.count('<tr class="total">') == 1  # the 合计 row, kept prominent
    narrow = to_html("| 户主 | 金额（元） |\n| --- | ---: |\n| 王*明 | 716.72 |\n")
    assert "reflow" not in narrow and 'data-label="金额（元）"' in narrow


def test_labels_are_escaped() -> None:
    html = to_html('| a"<b> | c | d | e |\n|---|---|---|---|\n| 1 | 2 | 3 | 4 |\n')
    assert 'data-label="a&quot;&lt;b&gt;"' in html and "<b>" not in html
