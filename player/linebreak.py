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

Pillow's own wrapping splits on spaces only, so it cannot be used for Chinese.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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
    return ord(ch) < 0x2E80 and not ch.isspace() and ch not in _NOT_WORD


def _chars(runs: Iterable[Run | dict]) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for run in runs:
        if isinstance(run, dict):
            text, bold = str(run.get("text", "")), bool(run.get("bold", False))
        else:
            text, bold = run.text, run.bold
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        out.extend((ch, bold) for ch in text)
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


def break_lines(runs: Iterable[Run | dict], max_width: float, measure: Measure) -> list[Line]:
    """Lay `runs` out in lines no wider than `max_width` (by `measure(text, bold)`).

    Always returns at least one line (an empty one for empty text). A single character wider
    than the line gets a line of its own (the caller must pick a font that fits a character).
    """
    lines: list[Line] = []
    line: list[_Atom] = []
    width = 0.0
    pending = atoms(runs, measure, max_width)
    pending.reverse()  # a stack: pop() takes the next atom
    while pending:
        atom = pending.pop()
        if atom.kind == "newline":
            lines.append(_finish(line, True))
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
        lines.append(_finish(line[:k], False))
        line, width = [], 0.0
        for moved in reversed(carry):
            pending.append(moved)
    lines.append(_finish(line, True))
    return lines


def laid_out_text(lines: Iterable[Line]) -> str:
    """The text of `lines` joined without breaks (for checking that nothing was lost)."""
    return "".join(line.text for line in lines)
