"""Chinese line breaking by pixel width, with the line-start and line-end rules (避头尾).

Pure: the caller passes a width function, so the rules are tested without any font.

- Chinese (and any other non-Latin) text breaks between any two characters.
- Latin words and numbers stay whole where they fit on a line; a single word wider than the
  line is broken inside.
- No line starts with closing punctuation (，。、；：？！）》」』】〕…—·% or a closing
  quote), and no line ends with an opening bracket or quote: the break moves back, taking
  one or more characters from the line to the next one.
- "\\n" in a run is a hard line break; whitespace at a soft break is dropped.
- Runs carry a bold flag; one line can mix bold and regular.
- The unit is the user-perceived character (`clusters`): a letter with its combining marks,
  an emoji with its skin tone, variation selector or ZWJ sequence, a flag's two regional
  indicators — never split across lines nor measured apart.
- No lone character (孤字): when a paragraph's last line would hold a single Chinese character
  (punctuation after it aside), characters are pulled down from the line before, as far as the
  line-start and line-end rules allow.

Pillow's own wrapping splits on spaces only, so it cannot be used for Chinese.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

# Characters that must not begin a line (closing punctuation, closing quotes, marks that
# belong to what precedes them).
NO_START = frozenset(
    "，。、；：？！）》」』】〕…—·%"
    "”’〉〗〙〛｝］％"
    ",.;:?!)]}"
    "ー々〻ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮ"
)
# Characters that must not end a line (opening brackets and quotes).
NO_END = frozenset("（《「『【〔“‘〈〖〘〚｛［([{")
# Marks written doubled in Chinese (——, ……): a pair is never split.
_DOUBLED = frozenset("—…")
# Non-Latin punctuation below U+2E80 that must not glue to a Latin word.
_NOT_WORD = frozenset("—…·“”‘’•")

Measure = Callable[[str, bool], float]

ZWJ = "\u200d"
# Characters that extend the cluster before them: variation selectors, emoji skin tones, the
# keycap mark and emoji tag characters (subdivision flags); combining marks are found by
# their Unicode category.
_EXTEND = frozenset(chr(c) for c in [*range(0xFE00, 0xFE10), *range(0x1F3FB, 0x1F400), 0x20E3,
                                    *range(0xE0020, 0xE0080), *range(0xE0100, 0xE01F0)])


def _is_ri(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


# Text made only of these (ASCII, Latin, punctuation, CJK, Hangul, full-width forms) has no
# combining or joining character: each character is a cluster (the fast path).
_SIMPLE = re.compile("[\x00-\u02ff\u2010-\u20cf\u2100-\u2bff\u3000-\u3029\u3030-\u3098"
                     "\u309b-\u9fff\uac00-\ud7a3\uf900-\ufdff\ufe30-\ufe4f\uff00-\uffef]*")


def clusters(text: str) -> Iterator[str]:
    """`text` in user-perceived characters (a simplified UAX #29 grapheme segmentation):
    combining marks, variation selectors, skin tones, keycaps and tags stay with their base, a
    ZWJ joins the characters either side (emoji sequences), regional indicators pair up."""
    if _SIMPLE.fullmatch(text):
        yield from text
        return
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        if _is_ri(text[i]) and j < n and _is_ri(text[j]):
            j += 1
        while j < n:
            ch = text[j]
            if ch in _EXTEND or unicodedata.category(ch) in ("Mn", "Me", "Mc"):
                j += 1
            elif ch == ZWJ:
                j += 2 if j + 1 < n and text[j + 1] != "\n" else 1
            else:
                break
        yield text[i:j]
        i = j


@dataclass(frozen=True)
class Run:
    text: str
    bold: bool = False


@dataclass
class Line:
    """One laid-out line: (text, bold) segments and their total width."""

    segments: list[tuple[str, bool]] = field(default_factory=list)
    width: float = 0.0
    hard_end: bool = False  # the line ended at a "\\n" (or the end of the text)

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.segments)


@dataclass
class _Atom:
    text: str
    bold: bool | None  # None: mixed (a word spanning runs); see pieces
    pieces: list[tuple[str, bool]]
    width: float
    kind: str  # "word", "char", "space", "newline"


def _is_wordish(ch: str) -> bool:
    """Part of a Latin (or Cyrillic, Greek, Arabic…) word: a letter, digit or ASCII mark; not
    Chinese, not a symbol or emoji (`ch` is one cluster)."""
    base = ch[0]
    return (ord(base) < 0x2E80 and not base.isspace() and base not in _NOT_WORD
            and "\ufe0f" not in ch and unicodedata.category(base) != "So")


def _chars(runs: Iterable[Run | dict]) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for run in runs:
        if isinstance(run, dict):
            text, bold = str(run.get("text", "")), bool(run.get("bold", False))
        else:
            text, bold = run.text, run.bold
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        out.extend((ch, bold) for ch in clusters(text))
    return out


def _pieces(chars: Sequence[tuple[str, bool]]) -> list[tuple[str, bool]]:
    pieces: list[tuple[str, bool]] = []
    for ch, bold in chars:
        if pieces and pieces[-1][1] == bold:
            pieces[-1] = (pieces[-1][0] + ch, bold)
        else:
            pieces.append((ch, bold))
    return pieces


def _atom(chars: Sequence[tuple[str, bool]], kind: str, measure: Measure) -> _Atom:
    pieces = _pieces(chars)
    width = sum(measure(text, bold) for text, bold in pieces)
    bold = pieces[0][1] if len(pieces) == 1 else None
    return _Atom("".join(ch for ch, _ in chars), bold, pieces, width, kind)


def atoms(runs: Iterable[Run | dict], measure: Measure, max_width: float) -> list[_Atom]:
    """Split runs into unbreakable pieces: Latin words, single characters, spaces, newlines."""
    chars = _chars(runs)
    out: list[_Atom] = []
    i, n = 0, len(chars)
    while i < n:
        ch = chars[i][0]
        if ch == "\n":
            out.append(_Atom("\n", False, [], 0.0, "newline"))
            i += 1
        elif ch.isspace():
            out.append(_atom([(" ", chars[i][1])], "space", measure))
            i += 1
        elif _is_wordish(ch):
            if ch in NO_START:
                # Closing punctuation glued to what precedes it ("村%000000"): its own piece,
                # so the word after it may still start the next line.
                out.append(_atom([chars[i]], "char", measure))
                i += 1
                continue
            j = i
            while j < n and _is_wordish(chars[j][0]):
                j += 1
            word = _atom(chars[i:j], "word", measure)
            if word.width > max_width:
                # Wider than the line: it has to break inside, so let it break anywhere.
                out.extend(_atom([c], "char", measure) for c in chars[i:j])
            else:
                out.append(word)
            i = j
        elif ch in _DOUBLED:
            j = i
            while j < n and chars[j][0] == ch and j - i < 2:
                j += 1
            out.append(_atom(chars[i:j], "char", measure))
            i = j
        else:
            out.append(_atom([chars[i]], "char", measure))
            i += 1
    return out


def _can_break(line: list[_Atom], k: int) -> bool:
    """May a line end after line[:k] and the next one begin with line[k]?"""
    before = next((a for a in reversed(line[:k]) if a.kind != "space"), None)
    after = line[k]
    if before is None:
        return False
    if after.kind != "space" and after.text[0] in NO_START:
        return False
    return not (before.kind != "space" and before.text[-1] in NO_END)


def _finish(line: list[_Atom], hard_end: bool) -> Line:
    while line and line[-1].kind == "space":
        line = line[:-1]
    out = Line(hard_end=hard_end)
    for atom in line:
        for text, bold in atom.pieces:
            if out.segments and out.segments[-1][1] == bold:
                out.segments[-1] = (out.segments[-1][0] + text, bold)
            else:
                out.segments.append((text, bold))
        out.width += atom.width
    return out


def _is_lone(line: list[_Atom]) -> bool:
    """Does the line hold a single Chinese character, closing punctuation after it aside?"""
    shown = [a for a in line if a.kind != "space"]
    if not shown or any(a.kind != "char" for a in shown):
        return False
    chars = [a for a in shown if not all(c in NO_START for c in a.text)]
    return len(chars) == 1 and ord(chars[0].text[0]) >= 0x2E80


def _width(line: list[_Atom]) -> float:
    while line and line[-1].kind == "space":
        line = line[:-1]
    return sum(a.width for a in line)


def _rebalance(prev: list[_Atom], last: list[_Atom], max_width: float
               ) -> tuple[list[_Atom], list[_Atom]] | None:
    """Pull characters down from `prev` so that `last` (a paragraph's last line) is no longer
    a lone character; None when the rules or the width do not allow it."""
    joined = prev + last
    for k in range(len(prev) - 1, max(0, len(prev) - 4), -1):
        moved = prev[k:]
        if any(a.kind == "space" for a in moved) or not _can_break(joined, k):
            continue
        head = [a for a in prev[:k] if a.kind != "space"]
        if len(head) < 2:
            return None
        if _width(moved + last) <= max_width:
            return prev[:k], moved + last
    return None


def break_lines(runs: Iterable[Run | dict], max_width: float, measure: Measure) -> list[Line]:
    """Lay `runs` out in lines no wider than `max_width` (by `measure(text, bold)`).

    Always returns at least one line (an empty one for empty text). A single character wider
    than the line gets a line of its own (the caller must pick a font that fits a character).
    """
    raw: list[tuple[list[_Atom], bool]] = []  # (atoms, hard_end)
    line: list[_Atom] = []
    width = 0.0
    pending = atoms(runs, measure, max_width)
    pending.reverse()  # a stack: pop() takes the next atom
    while pending:
        atom = pending.pop()
        if atom.kind == "newline":
            raw.append((line, True))
            line, width = [], 0.0
            continue
        if atom.kind == "space" and not line:
            continue  # whitespace at the start of a wrapped line is dropped
        if not line or width + atom.width <= max_width or atom.kind == "space":
            line.append(atom)
            width += atom.width
            continue
        # atom does not fit: break before it, moving the break back to satisfy 避头尾.
        line.append(atom)
        k = len(line) - 1
        while k > 0 and not _can_break(line, k):
            k -= 1
        if k == 0:
            k = len(line) - 1  # nothing allowed (e.g. a line of punctuation): break anyway
        carry = line[k:]
        raw.append((line[:k], False))
        line, width = [], 0.0
        for moved in reversed(carry):
            pending.append(moved)
    raw.append((line, True))
    # No lone character on a paragraph's last line (孤字).
    for i in range(1, len(raw)):
        (prev, prev_hard), (last, hard) = raw[i - 1], raw[i]
        if hard and not prev_hard and _is_lone(last):
            fixed = _rebalance(prev, last, max_width)
            if fixed is not None:
                raw[i - 1], raw[i] = (fixed[0], False), (fixed[1], True)
    return [_finish(atoms_, hard) for atoms_, hard in raw]


def laid_out_text(lines: Iterable[Line]) -> str:
    """The text of `lines` joined without breaks (for checking that nothing was lost)."""
    return "".join(line.text for line in lines)
