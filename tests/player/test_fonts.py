"""Font fallback (player/fonts.py) with the installed fonts: which font draws what, runs of one
font that keep clusters and words whole, Arabic shaped right to left, colour emoji, and □ only
where no installed font has the character (never a crash)."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from player import fonts as fontlib
from player.fonts import EMOJI, Fonts, chain, clean, find_fonts
from player.render import Renderer

ARABIC = "مرحبا بكم في قريتنا"
FAMILY = "👨\u200d👩\u200d👧\u200d👦"


@pytest.fixture(scope="module")
def fonts() -> Fonts:
    f = find_fonts(None)
    if not f.fallbacks or not f.emoji:
        # scripts/test installs them: missing here is a broken setup, not a reason to skip.
        raise RuntimeError("fonts-noto-core and fonts-noto-color-emoji are not installed "
                           "(apt-get install fonts-noto-core fonts-noto-color-emoji)")
    return f


def name(path: str | None) -> str:
    return "None" if path is None else path if path == EMOJI else path.rsplit("/", 1)[-1]


def test_fallbacks_are_found_core_families_first(fonts: Fonts) -> None:
    regular = [name(r) for r, _b in fonts.fallbacks]
    assert regular[:3] == ["NotoSans-Regular.ttf", "NotoSansArabic-Regular.ttf",
                           "NotoNaskhArabic-Regular.ttf"]
    assert all(not n.startswith("NotoSerif") for n in regular)
    assert name(fonts.emoji) == "NotoColorEmoji.ttf"
    bold = dict(fonts.fallbacks)
    assert name(bold[fonts.fallbacks[0][0]]) == "NotoSans-Bold.ttf"


def test_cmap_coverage_matches_the_glyphs(fonts: Fonts) -> None:
    cjk = fontlib.coverage(fonts.regular)
    assert cjk is not None and ord("村") in cjk and ord("A") in cjk and ord("䶮") in cjk
    assert ord("م") not in cjk and 0x1F389 not in cjk
    arabic = fonts.fallbacks[1][0]
    assert fontlib.covers(arabic, "م") and not fontlib.covers(arabic, "村")
    # The cmap agrees with what FreeType draws (a real glyph, not the empty box).
    assert fontlib.has_glyph(arabic, "م") and not fontlib.has_glyph(fonts.regular, "م")


def test_runs_split_by_font_and_keep_clusters_and_words_whole(fonts: Fonts) -> None:
    fc = chain(fonts)
    text = f"村民{FAMILY}大会👍🏻 {ARABIC}。Nguyễn Ελληνικά"
    runs = [(t, name(f)) for t, f in fc.runs(text)]
    assert "".join(t for t, _ in runs) == text
    assert (FAMILY, EMOJI) in runs  # the ZWJ family is one emoji run, not four
    assert ("👍🏻 ", EMOJI) not in runs and any(t.startswith("👍🏻") and f == EMOJI
                                               for t, f in runs)
    # The Arabic sentence is ONE run (spaces inside joined), so raqm shapes and orders it.
    assert (ARABIC, "NotoSansArabic-Regular.ttf") in runs
    # Nguyễn: the Chinese font has these letters; Ελληνικά (with its tonos) is one word in one
    # font, not split between two.
    greek = [f for t, f in runs if "Ελληνικά" in t]
    assert greek == ["NotoSans-Regular.ttf"]
    assert fc.runs("村务公开 2026") == [("村务公开 2026", fonts.regular)]
    assert fc.fast("村务公开 2026，Nguyễn") and not fc.fast("村" + FAMILY)


def test_arabic_is_shaped_and_drawn_right_to_left(fonts: Fonts) -> None:
    fc = chain(fonts)
    word = "بكم"
    # Joined letters are narrower than the isolated forms side by side.
    assert fc.length(word, 64) < sum(fc.length(c, 64) for c in word) - 5
    # Right to left: in "اااب" the beh (its dot under the line) is drawn leftmost.
    img = Image.new("L", (400, 120), 0)
    fc.draw(ImageDraw.Draw(img), 10, 80, "اااب", 64, (255,))
    ink = img.getbbox()
    assert ink is not None
    below = img.crop((0, 84, 400, 120)).getbbox()  # what hangs under the baseline: beh's dot
    assert below is not None
    assert (below[0] + below[2]) / 2 < (ink[0] + ink[2]) / 2


def test_emoji_are_drawn_in_colour_at_the_line_size(fonts: Fonts) -> None:
    fc = chain(fonts)
    img = Image.new("RGB", (300, 100), (255, 255, 255))
    width = fc.draw(ImageDraw.Draw(img), 10, 70, FAMILY, 64, (0, 0, 0))
    assert 55 <= width <= 80  # one glyph, about the size of a Chinese character
    assert fc.length(FAMILY, 64) == width
    ink = img.convert("L").point(lambda v: 255 if v < 200 else 0).getbbox()
    assert ink is not None and 40 <= ink[3] - ink[1] <= 75  # drawn, about 64 px tall
    party = Image.new("RGB", (300, 100), (255, 255, 255))
    fc.draw(ImageDraw.Draw(party), 10, 70, "🎉", 64, (0, 0, 0))
    colours = {c for _n, c in party.getcolors(1 << 16) or []}
    assert any(abs(r - g) > 60 or abs(g - b) > 60 for r, g, b in colours)  # in colour


def test_without_fallback_fonts_other_scripts_degrade_to_boxes(fonts: Fonts) -> None:
    bare = Fonts(fonts.regular, fonts.bold)  # fonts-noto-core / -color-emoji missing
    assert clean(f"村{ARABIC[:5]}👍🏻{FAMILY}", bare) == "村" + "□" * 7
    assert clean("Nguyễn 䶮", bare) == "Nguyễn 䶮"
    gone = Fonts(fonts.regular, fonts.bold, (("/nonexistent/NotoSans-Regular.ttf",) * 2,),
                 "/nonexistent/NotoColorEmoji.ttf")
    assert clean("村مر👍", gone) == "村□□□"
    r = Renderer(gone, (1280, 720))
    n = {"code": "Bare1", "version": 1, "title": "🎉 مرحبا", "category": {"name": "通知"},
         "blocks": [{"type": "paragraph", "runs": [{"text": f"{ARABIC}{FAMILY}"}]}],
         "url": "http://cunping.test/n/Bare1"}
    assert r.notice_pages(n, "http://cunping.test/n/Bare1")[0].size == (1280, 720)


def test_a_character_no_font_has_is_one_box(fonts: Fonts) -> None:
    # CJK extension B: □ unless an installed font has it
    assert clean("村\U00020000民", fonts) in ("村□民", "村\U00020000民")
    assert clean("a\u200bb\ufeff\x00c\td", fonts) == "abc d"
    assert clean("\u200d村", fonts) == "村"  # a stray joiner is dropped
