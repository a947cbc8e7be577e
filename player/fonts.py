"""Finding a font that draws Chinese, the fallback fonts for every other script, and drawing
text with them.

A set-top box gets its fonts from Debian's packages (fonts-noto-cjk, or fonts-wqy-microhei /
fonts-wqy-zenhei); a font file can also be named in the player's config (--font). A font that
cannot draw Chinese would put boxes (tofu) on every screen, so the player refuses to start.

Fallback (fonts-noto-core, fonts-noto-color-emoji): a character the Chinese font lacks is drawn
with the first Noto Sans family that has it (Noto Sans for Latin, Greek and Cyrillic with any
diacritics, then Arabic, Hebrew, Devanagari, Thai and the other core scripts), and an emoji
with Noto Color Emoji (a bitmap font Pillow loads only at EMOJI_SIZE: the glyphs are drawn
there and scaled to the line). `FontChain.runs` splits a text into runs of one font, by
user-perceived character (a mark or a ZWJ sequence stays with its base; a word in a script is
kept in one font; spaces and punctuation between two runs of one font join them), so each run
is shaped whole by raqm: Arabic letters joined and drawn right to left. Coverage comes from the
fonts' cmap tables, read once. A text the Chinese font covers entirely takes the fast path (one
Pillow call, as before). A character no installed font has is drawn as □; a missing fallback
font is never an error.
"""

from __future__ import annotations

import functools
import glob
import itertools
import os
import shutil
import struct
import subprocess
import unicodedata
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from player.linebreak import ZWJ, clusters

# (regular, bold) candidates, best first.
CANDIDATES: list[tuple[str, str]] = [
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
     "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
    ("/usr/share/fonts/opentype/noto-cjk/NotoSansCJK-Regular.ttc",
     "/usr/share/fonts/opentype/noto-cjk/NotoSansCJK-Bold.ttc"),
    ("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
     "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Bold.ttc"),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
     "/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc"),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
     "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
     "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
]
SAMPLE = "村务公开"
FALLBACK_CHAR = "□"  # drawn instead of a character the font has no glyph for (e.g. emoji)
HELP = ("install one with `apt-get install fonts-noto-cjk` (or fonts-wqy-microhei), "
        "or name a font file that draws Chinese with --font")


class FontError(RuntimeError):
    """No usable font: the message says what to install or configure."""


# Where Debian (and other distributions) put the Noto families, and the core families in the
# order they are tried after the Chinese font; the other Noto Sans families found follow.
NOTO_DIRS = ["/usr/share/fonts/truetype/noto", "/usr/share/fonts/noto",
             "/usr/share/fonts/google-noto", "/usr/share/fonts/google-noto-vf"]
CORE_FAMILIES = ["NotoSans", "NotoSansArabic", "NotoNaskhArabic", "NotoSansHebrew",
                 "NotoSansDevanagari", "NotoSansThai", "NotoSansBengali", "NotoSansTamil",
                 "NotoSansArmenian", "NotoSansGeorgian", "NotoSansEthiopic", "NotoSansKhmer",
                 "NotoSansLao", "NotoSansMyanmar", "NotoSansSinhala", "NotoSansMath",
                 "NotoSansSymbols", "NotoSansSymbols2"]
EMOJI_CANDIDATES = ["/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
                    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
                    "/usr/share/fonts/google-noto-color-emoji/NotoColorEmoji.ttf",
                    "/usr/share/fonts/truetype/noto-color-emoji/NotoColorEmoji.ttf"]
EMOJI_SIZE = 109  # the only size of Noto Color Emoji's bitmaps (CBDT)
EMOJI = "emoji"  # the font of an emoji run


@dataclass(frozen=True)
class Fonts:
    regular: str  # path to a font file that draws Chinese
    bold: str  # path (may equal regular)
    # (regular, bold) paths of the fallback fonts, tried in order after the Chinese font
    fallbacks: tuple[tuple[str, str], ...] = ()
    emoji: str | None = None  # Noto Color Emoji, when installed


@functools.lru_cache(maxsize=16)
def face_index(path: str) -> int:
    """The face of a font collection to use: Simplified Chinese where the file has several
    (Noto's .ttc starts with the Japanese face, whose glyph shapes differ)."""
    if not path.lower().endswith((".ttc", ".otc")):
        return 0
    best = 0
    for index in range(32):
        try:
            family, _style = ImageFont.truetype(path, 16, index=index).getname()
        except OSError:
            break
        family = family or ""
        if "Mono" in family:
            continue
        if family.endswith(" SC") or "SC " in family:
            return index
    return best


@functools.lru_cache(maxsize=256)
def load(path: str, size: int) -> ImageFont.FreeTypeFont:
    """The font at `path` in pixel `size` (cached: loading a .ttc is slow)."""
    return ImageFont.truetype(path, max(1, int(size)), index=face_index(path))


@functools.lru_cache(maxsize=8)
def _notdef(path: str) -> bytes:
    return bytes(load(path, 24).getmask("\ue000"))


@functools.lru_cache(maxsize=65536)
def has_glyph(path: str, ch: str) -> bool:
    """Does the font draw `ch` (rather than its empty-box .notdef glyph)?"""
    font = load(path, 24)
    mask = font.getmask(ch)
    if mask.getbbox() is None:
        return font.getlength(ch) > 0 or ch.isspace()
    return bytes(mask) != _notdef(path)


def draws_chinese(path: str) -> bool:
    """True when the font at `path` has real, distinct glyphs for a few Chinese characters."""
    try:
        font = load(path, 32)
    except OSError:
        return False
    masks = [bytes(font.getmask(ch)) for ch in SAMPLE]
    if any(font.getmask(ch).getbbox() is None for ch in SAMPLE):
        return False
    return len(set(masks)) == len(SAMPLE) and _notdef(path) not in masks


def _fc_list() -> list[str]:
    """Font files fontconfig says cover Chinese (a fallback for unusual layouts)."""
    if not shutil.which("fc-list"):
        return []
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True,
                             timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    files = sorted({line.split(":")[0].strip() for line in out.splitlines() if line.strip()})
    # Sans before serif, regular before bold.
    return sorted(files, key=lambda f: ("Serif" in f, "Bold" in f, f))


def find_fallbacks(dirs: list[str] | None = None) -> tuple[tuple[str, str], ...]:
    """The installed Noto Sans families (and Naskh Arabic) as (regular, bold) paths: the core
    families first (CORE_FAMILIES), then the others by name. Empty when none is installed."""
    found: dict[str, tuple[str, str]] = {}
    for folder in dirs if dirs is not None else NOTO_DIRS:
        for regular in sorted(glob.glob(os.path.join(folder, "Noto*-Regular.ttf"))):
            family = os.path.basename(regular)[:-len("-Regular.ttf")]
            if family in found or not family.startswith(("NotoSans", "NotoNaskh")) \
                    or family.endswith(("Mono", "Display", "UI")) or "Unjoined" in family:
                continue
            bold = regular.replace("-Regular.ttf", "-Bold.ttf")
            found[family] = (regular, bold if os.path.isfile(bold) else regular)
    core = [found.pop(f) for f in CORE_FAMILIES if f in found]
    return (*core, *(found[f] for f in sorted(found)))


def find_emoji(candidates: list[str] | None = None) -> str | None:
    for path in candidates if candidates is not None else EMOJI_CANDIDATES:
        if os.path.isfile(path):
            try:
                ImageFont.truetype(path, EMOJI_SIZE)
            except OSError:
                continue
            return path
    return None


def find_fonts(configured: str | None = None) -> Fonts:
    """The fonts to draw with: `configured` (a file) if given, else the first installed CJK
    font from CANDIDATES (then fontconfig), with the installed fallbacks. Raises FontError if
    no font draws Chinese (missing fallbacks only mean □ for those characters)."""
    extra = {"fallbacks": find_fallbacks(), "emoji": find_emoji()}
    if configured:
        if not os.path.isfile(configured):
            raise FontError(f"font file {configured} does not exist; {HELP}")
        if not draws_chinese(configured):
            raise FontError(f"font {configured} cannot draw Chinese; {HELP}")
        return Fonts(regular=configured, bold=configured, **extra)
    for regular, bold in CANDIDATES:
        if os.path.isfile(regular) and draws_chinese(regular):
            return Fonts(regular, bold if os.path.isfile(bold) and draws_chinese(bold)
                         else regular, **extra)
    for path in _fc_list():
        if draws_chinese(path):
            return Fonts(path, path, **extra)
    raise FontError(f"no font that draws Chinese was found; {HELP}")


# ---- coverage: which characters a font has (its cmap) -----------------------------------------


def _read_cmap(path: str, index: int) -> frozenset[int]:
    """The code points the font's cmap maps to a glyph (formats 4 and 12)."""
    with open(path, "rb") as f:
        def at(offset: int, size: int) -> bytes:
            f.seek(offset)
            return f.read(size)

        base = 0
        if at(0, 4) == b"ttcf":
            base = struct.unpack(">I", at(12 + 4 * index, 4))[0]
        count = struct.unpack(">H", at(base + 4, 2))[0]
        directory = at(base + 12, 16 * count)
        cmap = None
        for i in range(count):
            tag, _sum, offset, _len = struct.unpack_from(">4sIII", directory, 16 * i)
            if tag == b"cmap":
                cmap = offset
        if cmap is None:
            raise ValueError("no cmap")
        _version, subtables = struct.unpack(">HH", at(cmap, 4))
        records = at(cmap + 4, 8 * subtables)
        best: dict[int, int] = {}
        for i in range(subtables):
            platform, encoding, offset = struct.unpack_from(">HHI", records, 8 * i)
            fmt = struct.unpack(">H", at(cmap + offset, 2))[0]
            if (platform, encoding) in ((3, 10), (0, 4), (0, 6)) and fmt == 12:
                best.setdefault(12, cmap + offset)
            elif (platform, encoding) in ((3, 1), (0, 3), (0, 1), (3, 0)) and fmt == 4:
                best.setdefault(4, cmap + offset)
        out: set[int] = set()
        if 12 in best:
            start = best[12]
            groups = struct.unpack(">I", at(start + 12, 4))[0]
            for g in range(groups):
                first, last, glyph = struct.unpack(">III", at(start + 16 + 12 * g, 12))
                out.update(range(first if glyph else first + 1, last + 1))
            return frozenset(out)
        if 4 not in best:
            raise ValueError("no usable cmap subtable")
        start = best[4]
        length = struct.unpack(">H", at(start + 2, 2))[0]
        table = at(start, length)
        segs = struct.unpack_from(">H", table, 6)[0] // 2
        ends = struct.unpack_from(f">{segs}H", table, 14)
        starts = struct.unpack_from(f">{segs}H", table, 16 + 2 * segs)
        deltas = struct.unpack_from(f">{segs}h", table, 16 + 4 * segs)
        range_at = 16 + 6 * segs
        ranges = struct.unpack_from(f">{segs}H", table, range_at)
        for s, (first, last, delta, ro) in enumerate(zip(starts, ends, deltas, ranges,
                                                         strict=True)):
            if first == 0xFFFF:
                continue
            for cp in range(first, last + 1):
                if ro == 0:
                    glyph = (cp + delta) & 0xFFFF
                else:
                    where = range_at + 2 * s + ro + 2 * (cp - first)
                    glyph = struct.unpack_from(">H", table, where)[0] if where + 2 <= len(
                        table) else 0
                    glyph = (glyph + delta) & 0xFFFF if glyph else 0
                if glyph:
                    out.add(cp)
        return frozenset(out)


@functools.lru_cache(maxsize=512)
def coverage(path: str) -> frozenset[int] | None:
    """The code points the font at `path` draws; None when its cmap cannot be read (then
    has_glyph decides, character by character)."""
    try:
        return _read_cmap(path, face_index(path))
    except (OSError, ValueError, struct.error):
        return None


def covers(path: str, ch: str) -> bool:
    cov = coverage(path)
    if cov is not None:
        return ord(ch) in cov
    try:
        return has_glyph(path, ch)
    except OSError:
        return False


# ---- clusters and runs -------------------------------------------------------------------

# Joiners, variation selectors, skin tones, keycaps and tags: part of a cluster, never needing
# a glyph of their own in a text font.
_IGNORABLE = frozenset(chr(c) for c in [0x200C, 0x200D, *range(0xFE00, 0xFE10), 0x20E3,
                                        *range(0x1F3FB, 0x1F400), *range(0xE0020, 0xE0080),
                                        *range(0xE0100, 0xE01F0)])
_KEEP_FORMAT = frozenset(chr(c) for c in [0x200C, 0x200D, *range(0xE0020, 0xE0080)])
# Emoji drawn as emoji by default (Emoji_Presentation) in the BMP; from U+1F000 all are.
_EMOJI_BMP = frozenset(chr(c) for c in [
    0x231A, 0x231B, *range(0x23E9, 0x23ED), 0x23F0, 0x23F3, 0x25FD, 0x25FE, 0x2614, 0x2615,
    *range(0x2648, 0x2654), 0x267F, 0x2693, 0x26A1, 0x26AA, 0x26AB, 0x26BD, 0x26BE, 0x26C4,
    0x26C5, 0x26CE, 0x26D4, 0x26EA, 0x26F2, 0x26F3, 0x26F5, 0x26FA, 0x26FD, 0x2705, 0x270A,
    0x270B, 0x2728, 0x274C, 0x274E, 0x2753, 0x2754, 0x2755, 0x2757, 0x2795, 0x2796, 0x2797,
    0x27B0, 0x27BF, 0x2B1B, 0x2B1C, 0x2B50, 0x2B55])


def is_emoji(cluster: str) -> bool:
    """Should the cluster be drawn as a colour emoji (not as a text symbol)?"""
    if "\ufe0e" in cluster:
        return False
    base = cluster[0]
    return (ord(base) >= 0x1F000 or base in _EMOJI_BMP or "\ufe0f" in cluster
            or "\u20e3" in cluster or (ZWJ in cluster and ord(base) >= 0x2000))


def _is_neutral(cluster: str) -> bool:
    """Spaces, punctuation and digits: they take the font of the text around them."""
    cat = unicodedata.category(cluster[0])
    return cat[0] in "PZ" or cat == "Nd"


def _is_letter(cluster: str) -> bool:
    return ord(cluster[0]) < 0x2E80 and unicodedata.category(cluster[0])[0] in "LM"


class FontChain:
    """The Chinese font (regular or bold) and its fallbacks: which font draws what, how wide a
    text is and how to draw it. Get one with `chain(fonts, bold)` (cached)."""

    def __init__(self, fonts: Fonts, bold: bool) -> None:
        self.primary = fonts.bold if bold else fonts.regular
        self.paths = [self.primary, *(b if bold else r for r, b in fonts.fallbacks)]
        self.emoji = fonts.emoji
        self._fast = coverage(self.primary)
        self._font_of: dict[str, str | None] = {}
        self._runs: dict[str, list[tuple[str, str | None]]] = {}

    def fast(self, text: str) -> bool:
        """Does the Chinese font alone draw all of `text` (no emoji, no joiner)?"""
        cov = self._fast
        if cov is None:
            return all(covers(self.primary, c) for c in text if c not in " \n")
        for c in text:
            o = ord(c)
            if o not in cov or o >= 0x1F000 or c in _IGNORABLE:
                return False
        return True

    def font_of(self, cluster: str) -> str | None:
        """The font that draws `cluster` (a path, EMOJI), or None when no font has it."""
        found = self._font_of.get(cluster, "")
        if found != "":
            return found
        needed = [c for c in cluster if c not in _IGNORABLE] or [cluster[0]]
        emoji = self.emoji if self.emoji and covers(self.emoji, cluster[0]) else None
        result: str | None = None
        if emoji and is_emoji(cluster):
            result = EMOJI
        else:
            result = next((p for p in self.paths if all(covers(p, c) for c in needed)), None)
            if result is None:
                result = next((p for p in self.paths if covers(p, needed[0])), None)
            if result is None and emoji:
                result = EMOJI
        if len(self._font_of) > 20000:
            self._font_of.clear()
        self._font_of[cluster] = result
        return result

    def runs(self, text: str) -> list[tuple[str, str | None]]:
        """`text` split into (text, font) runs: one run per stretch of one font."""
        cached = self._runs.get(text)
        if cached is not None:
            return cached
        parts = list(clusters(text))
        fonts = [self.font_of(c) for c in parts]
        # A word (letters of one script) is drawn in one font where one font has it all:
        # "Nguyễn" in Noto Sans, not "Nguy" in the Chinese font and "ễ" in another.
        i = 0
        while i < len(parts):
            if not _is_letter(parts[i]):
                i += 1
                continue
            j = i
            while j < len(parts) and _is_letter(parts[j]):
                j += 1
            if len(set(fonts[i:j])) > 1:
                word = [c for p in parts[i:j] for c in p if c not in _IGNORABLE]
                one = next((p for p in self.paths if all(covers(p, c) for c in word)), None)
                if one is not None:
                    fonts[i:j] = [one] * (j - i)
            i = j
        # Spaces, punctuation and digits between two runs of one font join them (an Arabic
        # sentence is one run, shaped and ordered right to left as a whole).
        strong = [k for k, p in enumerate(parts) if not _is_neutral(p)]
        for a, b in itertools.pairwise(strong):
            f = fonts[a]
            if b > a + 1 and fonts[b] == f and f not in (None, EMOJI, self.primary) and all(
                    all(covers(f, c) for c in parts[k]) for k in range(a + 1, b)):
                fonts[a + 1:b] = [f] * (b - a - 1)
        out: list[tuple[str, str | None]] = []
        for part, f in zip(parts, fonts, strict=True):
            if out and out[-1][1] == f:
                out[-1] = (out[-1][0] + part, f)
            else:
                out.append((part, f))
        if len(self._runs) > 20000:
            self._runs.clear()
        self._runs[text] = out
        return out

    def length(self, text: str, size: int) -> float:
        """The width of `text` drawn at `size` px."""
        if self.fast(text):
            return load(self.primary, size).getlength(text)
        total = 0.0
        for run, f in self.runs(text):
            if f == EMOJI:
                total += emoji_image(self.emoji or "", run, size).width
            else:
                total += load(f or self.primary, size).getlength(run)
        return total

    def draw(self, d: ImageDraw.ImageDraw, x: float, baseline: float, text: str, size: int,
             fill: tuple[int, ...]) -> float:
        """Draw `text` with its left end at x on `baseline`; returns its width."""
        if self.fast(text):
            font = load(self.primary, size)
            d.text((x, baseline), text, font=font, fill=fill, anchor="ls")
            return font.getlength(text)
        start = x
        for run, f in self.runs(text):
            if f == EMOJI:
                glyphs = emoji_image(self.emoji or "", run, size)
                top = round(baseline - glyphs.height * EMOJI_ASCENT)
                d._image.paste(glyphs, (round(x), top), glyphs)  # type: ignore[attr-defined]
                x += glyphs.width
            else:
                font = load(f or self.primary, size)
                d.text((x, baseline), run, font=font, fill=fill, anchor="ls")
                x += font.getlength(run)
        return x - start


EMOJI_ASCENT = 101 / 128  # Noto Color Emoji: ascent over the bitmap's line height


@functools.lru_cache(maxsize=512)
def emoji_image(path: str, text: str, size: int) -> Image.Image:
    """`text` (emoji) drawn in colour at EMOJI_SIZE and scaled so a glyph is `size` px tall
    (RGBA; its width is the run's advance)."""
    font = ImageFont.truetype(path, EMOJI_SIZE)
    ascent, descent = font.getmetrics()
    width = max(1, round(font.getlength(text)))
    big = Image.new("RGBA", (width, ascent + descent), (0, 0, 0, 0))
    ImageDraw.Draw(big).text((0, ascent), text, font=font, embedded_color=True, anchor="ls")
    scale = size / (ascent + descent) * 1.05
    return big.resize((max(1, round(width * scale)), max(1, round(big.height * scale))),
                      Image.Resampling.LANCZOS)


@functools.lru_cache(maxsize=8)
def chain(fonts: Fonts, bold: bool = False) -> FontChain:
    return FontChain(fonts, bold)


def clean(text: str, path_or_fonts: str | Fonts) -> str:
    """`text` made safe to draw: NFC, control and format characters dropped (except newlines
    and the joiners and tags of emoji sequences), tabs as spaces, and each character no
    installed font draws as □. `path_or_fonts`: the Chinese font alone, or Fonts with its
    fallbacks."""
    fonts = path_or_fonts if isinstance(path_or_fonts, Fonts) else Fonts(path_or_fonts,
                                                                        path_or_fonts)
    fc = chain(fonts, False)
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    kept: list[str] = []
    for ch in text:
        if ch == "\n" or ch in _KEEP_FORMAT:
            kept.append(ch)
        elif ch == "\t" or (ch.isspace() and ch != " "):
            kept.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        else:
            kept.append(ch)
    out: list[str] = []
    for cluster in clusters("".join(kept)):
        cluster = cluster.lstrip("".join(_KEEP_FORMAT)) if cluster[0] in _KEEP_FORMAT \
            else cluster
        if not cluster:
            continue
        if cluster in ("\n", " ") or fc.fast(cluster):
            out.append(cluster)
        elif fc.font_of(cluster) is not None:
            if fc.font_of(cluster) != EMOJI and not fonts.emoji:
                cluster = "".join(c for c in cluster if c not in _IGNORABLE) or cluster
            out.append(cluster)
        else:
            out.append(FALLBACK_CHAR)
    return "".join(out)
