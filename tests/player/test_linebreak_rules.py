"""Chinese line breaking (player/linebreak.py) with a fake width function: every wide (CJK)
character is 1 unit, everything else 0.5 — so the rules are checked without any font."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from player.linebreak import NO_END, NO_START, Line, Run, break_lines, laid_out_text

# The characters DOMAIN.md names ("Chinese text on screens"), plus the closing/opening quotes.
DOMAIN_NO_START = "，。、；：？！）》」』】〕…—·%" + "”’"
DOMAIN_NO_END = "（《「『【〔" + "“‘"


def width(text: str, bold: bool = False) -> float:
    return sum(1.0 if unicodedata.east_asian_width(c) in "WF" else 0.5 for c in text)


def bold_width(text: str, bold: bool) -> float:
    """Bold is wider, to check that widths follow the bold flag."""
    return width(text) * (1.5 if bold else 1.0)


def starts_with_any(text: str, chars: str | frozenset[str]) -> bool:
    return bool(text) and text[0] in chars


def ends_with_any(text: str, chars: str | frozenset[str]) -> bool:
    return bool(text) and text[-1] in chars


def texts(lines: list[Line]) -> list[str]:
    return [line.text for line in lines]


def lay(text: str, max_width: float, measure=width) -> list[Line]:  # type: ignore[no-untyped-def]
    return break_lines([Run(text)], max_width, measure)


def test_domain_characters_are_in_the_rule_sets() -> None:
    assert set(DOMAIN_NO_START) <= NO_START
    assert set(DOMAIN_NO_END) <= NO_END


def test_chinese_breaks_per_character_at_the_width() -> None:
    lines = lay("一二三四五六七八九十", 4)
    assert texts(lines) == ["一二三四", "五六七八", "九十"]
    assert [line.width for line in lines] == [4, 4, 2]
    assert [line.hard_end for line in lines] == [False, False, True]


def test_fractional_width_breaks_before_the_character_that_overflows() -> None:
    assert texts(lay("一二三四五", 2.9)) == ["一二", "三四", "五"]


def test_empty_text_is_one_empty_line() -> None:
    lines = break_lines([], 10, width)
    assert texts(lines) == [""]
    assert texts(lay("", 10)) == [""]


@pytest.mark.parametrize("ch", list(DOMAIN_NO_START))
def test_no_line_starts_with_closing_punctuation(ch: str) -> None:
    # Without the rule the break would fall right before `ch`.
    text = "一二三" + ch + "四五六七"
    lines = lay(text, 3)
    assert all(not line.text.startswith(ch) for line in lines), texts(lines)
    assert laid_out_text(lines) == text
    # The break moved back one character: 三 goes with its punctuation.
    assert lines[0].text == "一二"
    assert lines[1].text.startswith("三" + ch)


@pytest.mark.parametrize("ch", list(DOMAIN_NO_START))
def test_closing_punctuation_at_every_position(ch: str) -> None:
    """Wherever the punctuation falls in a long text, no line starts with it."""
    text = ("春耕" + ch + "村委会") * 12
    for max_width in (3, 4, 5, 6, 7.5):
        lines = lay(text, max_width)
        assert laid_out_text(lines) == text
        for line in lines:
            assert not starts_with_any(line.text, DOMAIN_NO_START), (max_width, texts(lines))
            assert width(line.text) <= max_width


@pytest.mark.parametrize("ch", list(DOMAIN_NO_END))
def test_no_line_ends_with_an_opening_bracket_or_quote(ch: str) -> None:
    # Without the rule the first line would be "一二" + ch.
    text = "一二" + ch + "三四五六"
    lines = lay(text, 3)
    assert all(not line.text.endswith(ch) for line in lines), texts(lines)
    assert laid_out_text(lines) == text
    assert lines[0].text == "一二"
    assert lines[1].text.startswith(ch + "三")


@pytest.mark.parametrize("ch", list(DOMAIN_NO_END))
def test_opening_punctuation_at_every_position(ch: str) -> None:
    text = ("村委会" + ch + "通知") * 12
    for max_width in (3, 4, 5, 6, 7.5):
        lines = lay(text, max_width)
        assert laid_out_text(lines) == text
        for line in lines[:-1]:
            assert not ends_with_any(line.text, DOMAIN_NO_END), (max_width, texts(lines))


def test_two_closing_marks_in_a_row_move_together() -> None:
    text = "他说：「好的。」然后走了"
    for max_width in range(3, 10):
        lines = lay(text, max_width)
        assert laid_out_text(lines) == text
        assert all(not starts_with_any(line.text, NO_START) for line in lines), texts(lines)
        assert all(not ends_with_any(line.text, NO_END) for line in lines[:-1]), texts(lines)


@pytest.mark.parametrize("mark", ["——", "……"])
def test_doubled_dash_and_ellipsis_are_never_split(mark: str) -> None:
    text = "一二三" + mark + "四五"
    for max_width in (2, 3, 3.5, 4):
        lines = lay(text, max_width)
        assert laid_out_text(lines) == text
        assert all(mark in line.text or mark[0] not in line.text for line in lines), texts(lines)


def test_a_line_of_nothing_but_punctuation_still_breaks() -> None:
    text = "。" * 10
    lines = lay(text, 3)
    assert laid_out_text(lines) == text
    assert len(lines) >= 4
    assert all(width(line.text) <= 3 for line in lines)


@pytest.mark.parametrize("word", ["WiFi", "2026", "13800138000", "COVID-19", "50%", "v2.1"])
def test_latin_words_and_numbers_stay_whole(word: str) -> None:
    text = f"请各位村民注意{word}相关事项，详情咨询村委会"
    for max_width in (6, 7, 8.5, 10):  # the phone number is 5.5 wide
        lines = lay(text, max_width)
        assert laid_out_text(lines) == text
        assert any(word in line.text for line in lines), (max_width, texts(lines))


def test_latin_text_breaks_at_spaces_and_drops_them() -> None:
    text = "the quick brown fox jumps"
    lines = lay(text, 6)  # 12 Latin characters
    assert texts(lines) == ["the quick", "brown fox", "jumps"]
    for line in lines:
        assert line.text == line.text.strip()


def test_whitespace_at_a_soft_break_is_dropped_but_kept_inside_a_line() -> None:
    lines = lay("一二 三四   五六", 4)
    assert texts(lines) == ["一二 三", "四   五", "六"]
    lines = lay("一二三四   五六", 4)
    assert texts(lines) == ["一二三四", "五六"]  # the spaces at the break are gone


def test_a_word_longer_than_the_line_is_split() -> None:
    word = "https://cunping.example.com/n/Ab3xK9?s=XY12"
    lines = lay("网址：" + word, 5)  # 10 Latin characters per line
    assert laid_out_text(lines) == "网址：" + word
    assert len(lines) >= 5
    assert all(line.width <= 5 for line in lines)
    # Lines are filled: the word is split where the line ends, not into single letters.
    assert all(line.width >= 4 for line in lines[:-1]), texts(lines)


def test_hard_newlines() -> None:
    lines = lay("第一行\n第二行\n\n第四行", 10)
    assert texts(lines) == ["第一行", "第二行", "", "第四行"]
    assert all(line.hard_end for line in lines)
    # A wrapped paragraph ends hard only at its end.
    lines = lay("一二三四五\n六", 3)
    assert texts(lines) == ["一二三", "四五", "六"]
    assert [line.hard_end for line in lines] == [False, True, True]


def test_windows_and_mac_newlines_are_hard_breaks() -> None:
    assert texts(lay("一\r\n二\r三", 10)) == ["一", "二", "三"]


def test_bold_keeps_its_flag_across_breaks() -> None:
    runs = [Run("一二三四五六", bold=True), Run("七八九", bold=False)]
    lines = break_lines(runs, 4, width)
    assert [line.segments for line in lines] == [
        [("一二三四", True)],
        [("五六", True), ("七", False)],
        [("八九", False)],  # not a lone 九 (孤字): 八 is pulled down
    ]


def test_mixed_bold_in_a_line_and_widths_follow_the_flag() -> None:
    runs = [Run("应收", bold=True), Run("合计"), Run("1200元", bold=True)]
    lines = break_lines(runs, 100, bold_width)
    assert lines[0].segments == [("应收", True), ("合计", False), ("1200元", True)]
    assert lines[0].width == pytest.approx(2 * 1.5 + 2 + (4 * 0.5 + 1) * 1.5)
    lines = break_lines(runs, 4, bold_width)
    for line in lines:
        assert line.width == pytest.approx(sum(bold_width(t, b) for t, b in line.segments))
        assert line.width <= 4


def test_a_word_spanning_runs_stays_whole_with_both_flags() -> None:
    runs = [Run("请拨打"), Run("0531", bold=True), Run("-88886666"), Run("咨询")]
    lines = break_lines(runs, 8, width)
    joined = [line for line in lines if "0531-88886666" in line.text]
    assert joined, texts(lines)
    assert ("0531", True) in joined[0].segments
    assert any(t.startswith("-88886666") and not b for t, b in joined[0].segments)


def test_dict_runs_as_sent_in_the_protocol() -> None:
    runs = [{"text": "村务", "bold": True}, {"text": "公开"}]
    lines = break_lines(runs, 10, width)
    assert lines[0].segments == [("村务", True), ("公开", False)]


def test_nothing_lost_in_a_long_mixed_text() -> None:
    text = ("根据《村民委员会组织法》规定，现将2026年第三季度村集体收支情况公示如下："
            "（一）土地承包费收入128,500元；（二）Wi-Fi 设备维护支出3,200元……如有疑问，"
            "请于11月30日前联系村委会“财务监督小组”。") * 3
    for max_width in (3, 4.5, 7, 12, 20):
        lines = lay(text, max_width)
        joined = laid_out_text(lines)
        assert re.sub(r"\s", "", joined) == re.sub(r"\s", "", text)
        for line in lines:
            assert line.text in text
            assert line.width <= max_width
            assert not starts_with_any(line.text, DOMAIN_NO_START)
        for line in lines[:-1]:
            assert not ends_with_any(line.text, DOMAIN_NO_END)


# ---- property tests -----------------------------------------------------------------------

HAN = st.sampled_from("村委会通知公示土地财务收支一二三四五六七八九十")
LATIN_WORD = st.text(alphabet="abcdefxyzABC0123456789", min_size=1, max_size=14)


@st.composite
def token(draw: st.DrawFn) -> str:
    """A piece of text: Han characters, optionally with punctuation attached the way it is
    written (closing after a character, opening before one), a Latin word with spaces, or a
    hard newline."""
    kind = draw(st.sampled_from(["han", "close", "open", "latin", "newline"]))
    han = draw(HAN)
    if kind == "close":
        return han + draw(st.sampled_from(DOMAIN_NO_START))
    if kind == "open":
        return draw(st.sampled_from(DOMAIN_NO_END)) + han
    if kind == "latin":
        return " " * draw(st.integers(0, 2)) + draw(LATIN_WORD) + " " * draw(st.integers(0, 2))
    if kind == "newline":
        return "\n"
    return han


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(token(), max_size=60), max_width=st.floats(4, 30))
def test_property_nothing_lost_widths_respected_rules_hold(tokens: list[str],
                                                           max_width: float) -> None:
    text = "".join(tokens)
    lines = lay(text, max_width)
    assert lines
    # Nothing lost: the lines are pieces of the input, in order, and only whitespace at
    # breaks is dropped.
    assert re.sub(r"\s", "", laid_out_text(lines)) == re.sub(r"\s", "", text)
    pos = 0
    for line in lines:
        found = text.find(line.text, pos)
        assert found >= 0, (line.text, text)
        pos = found + len(line.text)
        assert line.text == line.text.strip(" ")
        assert line.width == pytest.approx(width(line.text))
        assert line.width <= max_width + 1e-9, (texts(lines), max_width)
        assert not starts_with_any(line.text, DOMAIN_NO_START), texts(lines)
    # Hard breaks are kept: one line per "\n" at least.
    assert len(lines) >= text.count("\n") + 1
    for line in lines:
        if not line.hard_end:
            assert not ends_with_any(line.text, DOMAIN_NO_END), texts(lines)


@settings(max_examples=200, deadline=None)
@given(runs=st.lists(st.tuples(st.text(alphabet="一二三四ab c，。「」\n", max_size=12),
                               st.booleans()), max_size=8),
       max_width=st.floats(2, 12))
def test_property_bold_flags_survive(runs: list[tuple[str, bool]], max_width: float) -> None:
    """Every laid-out character keeps the bold flag of the run it came from."""
    lines = break_lines([Run(t, b) for t, b in runs], max_width, bold_width)
    source = [(c, b) for t, b in runs for c in t if not c.isspace()]
    laid = [(c, b) for line in lines for t, b in line.segments for c in t if not c.isspace()]
    assert laid == source


# ---- clusters (user-perceived characters) ---------------------------------------------------


def test_clusters_keep_marks_and_emoji_sequences_with_their_base() -> None:
    from player.linebreak import clusters

    family = "👨\u200d👩\u200d👧\u200d👦"
    text = f"Nguye\u0302\u0303n{family}👍🏻❤️🇨🇳1\ufe0f\u20e3مَرْحَبًا村"
    got = list(clusters(text))
    assert "".join(got) == text  # nothing lost
    assert "e\u0302\u0303" in got  # two combining marks stay on their e
    assert family in got  # a ZWJ family is one cluster
    assert "👍🏻" in got and "❤️" in got and "🇨🇳" in got and "1\ufe0f\u20e3" in got
    assert "مَ" in got and "رْ" in got  # Arabic harakat stay on their letter
    assert got[-1] == "村"
    assert list(clusters("🇨🇳🇺🇸")) == ["🇨🇳", "🇺🇸"]  # regional indicators pair up
    assert list(clusters("a\u200d")) == ["a\u200d"]  # a trailing ZWJ does not crash


def test_an_emoji_sequence_is_never_split_across_lines() -> None:
    family = "👨\u200d👩\u200d👧\u200d👦"
    lines = lay("一二三" + family + "四五", 3.5)
    assert len(lines) > 1
    assert sum(family in line.text for line in lines) == 1
    assert laid_out_text(lines) == "一二三" + family + "四五"


# ---- no lone character on a paragraph's last line (孤字) ------------------------------------


def test_a_lone_last_character_pulls_one_down() -> None:
    # 7 per line: "集体土地租赁收 / 入" becomes "集体土地租赁 / 收入".
    assert texts(lay("集体土地租赁收入", 7)) == ["集体土地租赁", "收入"]
    assert texts(lay("经村民代表会议通过", 8)) == ["经村民代表会议", "通过"]
    # The lone character with its closing punctuation counts as lone too.
    assert texts(lay("经村民代表会议通过。", 8)) == ["经村民代表会议", "通过。"]


def test_the_rule_is_per_paragraph_and_leaves_other_lines_alone() -> None:
    # Two paragraphs, each would end with a lone character.
    assert texts(lay("一二三四五\n六七八九十", 4)) == ["一二三", "四五", "六七八", "九十"]
    # A last line of two characters is fine as it is.
    assert texts(lay("一二三四五六", 4)) == ["一二三四", "五六"]
    # A one-line paragraph is not a lone character.
    assert texts(lay("一", 4)) == ["一"]


def test_the_rebalance_respects_the_line_start_and_end_rules() -> None:
    # Pulling 四 down would leave "（" at a line end, so （四 move together.
    assert texts(lay("一二（四五", 4)) == ["一二", "（四五"]
    # A Latin word on the last line is not a lone character.
    assert texts(lay("一二三四 word", 4)) == ["一二三四", "word"]
