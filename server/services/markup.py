"""Notice bodies: a small, safe Markdown (paragraphs, lists, bold, simple tables).

Editors and county CMSs send Markdown text; raw HTML in it is never interpreted — it is shown
as the text it is. Images come as attachments, not through the markup (no outside URLs).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode
from markupsafe import Markup

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # breaks: a single newline is a line break, as editors who type Chinese notices expect.
    md = MarkdownIt(
        "commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True}
    )
    md.enable("table")
    md.enable("strikethrough")
    md.disable("image")  # no remote images: pictures are uploaded and checked
    return md


def clean_text(text: str) -> str:
    """Normalise line endings and drop control characters that have no place in a notice."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


# A row whose first filled cell starts so is a totals row: kept prominent on a phone.
TOTALS = re.compile(r"^\s*(合\s*计|总\s*计|小\s*计|共\s*计|total|subtotal|sum)", re.IGNORECASE)
# A table whose columns need more than this (in em of the phone's type, cell padding included)
# becomes a card per row on a phone (public.css); narrower ones stay tables, their text wrapped.
PHONE_EM = 16.0
NUMBER = re.compile(r"^[\s\d.,%+\-−¥￥元]*$")


def _em(text: str) -> float:
    """How wide `text` sets, in em: CJK and full-width characters one, the others about half."""
    return sum(1.0 if ord(ch) >= 0x2E80 else 0.55 for ch in text)


def _needs_em(header: list[str], rows: list[list[str]]) -> float:
    """The narrowest a table sets without breaking a number: a number keeps its width, text
    wraps down to four characters, a heading to two lines."""
    total = 0.0
    for column, head in enumerate(header):
        cells = [row[column] for row in rows if column < len(row)]
        width = min(_em(head), max(_em(head) / 2, 4.0))
        for cell in cells:
            width = max(width, _em(cell) if NUMBER.match(cell) else min(_em(cell), 4.0))
        total += width + 1.1
    return total


def _label_cells(tokens: list[Any]) -> None:
    """Give each body cell its column's header as `data-label` (a phone shows each row as a
    card of "label: value"), mark totals rows, and mark wide tables for that reflow."""
    header: list[str] = []
    rows: list[list[str]] = []
    table_open = row_open = None
    column, row_has_text, in_head = 0, False, False
    for i, tok in enumerate(tokens):
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        text = following.content if following is not None and following.type == "inline" else ""
        text = text.replace("*", "").strip()
        if tok.type == "table_open":
            table_open, header, rows = tok, [], []
        elif tok.type == "thead_open":
            in_head = True
        elif tok.type == "thead_close":
            in_head = False
        elif tok.type == "th_open" and in_head:
            header.append(text)
        elif tok.type == "tr_open" and not in_head:
            row_open, column, row_has_text = tok, 0, False
            rows.append([])
        elif tok.type == "td_open":
            rows[-1].append(text)
            if column < len(header) and header[column]:
                tok.attrSet("data-label", header[column])
            column += 1
            if text and not row_has_text:
                row_has_text = True
                if row_open is not None and TOTALS.match(text):
                    row_open.attrSet("class", "total")
        elif (tok.type == "table_close" and table_open is not None
              and _needs_em(header, rows) > PHONE_EM):
            table_open.attrSet("class", "reflow")


def to_html(body: str) -> Markup:
    """Render a body to HTML that is safe to put in a page as is."""
    md = _parser()
    env: dict[str, Any] = {}
    tokens = md.parse(clean_text(body), env)
    _label_cells(tokens)
    html = md.renderer.render(tokens, md.options, env)
    # Tables get a wrapper: wide ones scroll on a narrow screen, or reflow as cards on a phone.
    html = re.sub(r'<table( class="reflow")?>',
                  lambda m: f'<div class="table-wrap{" reflow" if m.group(1) else ""}"><table>',
                  html)
    html = html.replace("</table>", "</table></div>")
    html = html.replace("<a href=", '<a rel="nofollow noopener" href=')
    return Markup(html)


def to_plain(body: str, limit: int | None = None) -> str:
    """The text of a body without markup, for excerpts and search."""
    tokens = _parser().parse(clean_text(body))
    parts: list[str] = []
    for tok in tokens:
        if tok.type == "inline" and tok.content:
            parts.append(
                "".join(c.content for c in (tok.children or []) if c.content) or tok.content
            )
    text = " ".join(p.strip() for p in parts if p.strip())
    if limit is not None and len(text) > limit:
        return text[: limit - 1] + "…"
    return text


# --- blocks for the screens ----------------------------------------------------------------

Run = dict[str, Any]
Block = dict[str, Any]


def _runs(inline: SyntaxTreeNode | None) -> list[Run]:
    """Text runs of an inline node: bold where `**strong**`, "\\n" for line breaks; links
    become their text (a screen cannot follow them), everything else plain text."""
    runs: list[Run] = []
    if inline is None or inline.token is None:
        return runs
    bold = 0
    for tok in inline.token.children or []:
        if tok.type == "strong_open":
            bold += 1
            continue
        if tok.type == "strong_close":
            bold = max(0, bold - 1)
            continue
        if tok.type in ("softbreak", "hardbreak"):
            text = "\n"
        elif tok.type in ("text", "code_inline", "html_inline"):
            text = tok.content
        else:  # em, s, link open/close...: their text comes as text tokens
            continue
        if not text:
            continue
        if runs and runs[-1]["bold"] == bool(bold):
            runs[-1]["text"] += text
        else:
            runs.append({"text": text, "bold": bool(bold)})
    return runs


def _inline_child(node: SyntaxTreeNode) -> SyntaxTreeNode | None:
    return next((c for c in node.children if c.type == "inline"), None)


def _join(parts: list[list[Run]], sep: str = "\n") -> list[Run]:
    runs: list[Run] = []
    for part in parts:
        if not part:
            continue
        if runs:
            part = [{"text": sep + part[0]["text"], "bold": part[0]["bold"]}, *part[1:]]
        for run in part:
            if runs and runs[-1]["bold"] == run["bold"]:
                runs[-1]["text"] += run["text"]
            else:
                runs.append(dict(run))
    return runs


def _item_runs(item: SyntaxTreeNode) -> list[Run]:
    """A list item as one run list: its paragraphs on separate lines, a nested list as
    further lines prefixed with a bullet or its number."""
    parts: list[list[Run]] = []
    for child in item.children:
        if child.type in ("paragraph", "heading"):
            parts.append(_runs(_inline_child(child)))
        elif child.type in ("bullet_list", "ordered_list"):
            start = int(child.attrs.get("start", 1) or 1)
            for n, sub in enumerate(child.children, start=start):
                marker = f"{n}. " if child.type == "ordered_list" else "· "
                sub_runs = _item_runs(sub)
                if sub_runs:
                    first = {"text": marker + sub_runs[0]["text"], "bold": sub_runs[0]["bold"]}
                    parts.append([first, *sub_runs[1:]])
        else:
            parts.append(_plain_runs(child))
    return _join(parts)


def _plain_runs(node: SyntaxTreeNode) -> list[Run]:
    blocks: list[Block] = []
    _walk(node, blocks)
    parts: list[list[Run]] = []
    for block in blocks:
        if "runs" in block:
            parts.append(block["runs"])
        elif block["type"] == "list":
            parts.extend(block["items"])
    return _join(parts)


def _align(cell: SyntaxTreeNode) -> str:
    style = str(cell.attrs.get("style", "") or "")
    for value in ("right", "center", "left"):
        if f"text-align:{value}" in style.replace(" ", ""):
            return value
    return "left"


def _table(node: SyntaxTreeNode) -> Block:
    header: list[list[Run]] = []
    align: list[str] = []
    rows: list[list[list[Run]]] = []
    for section in node.children:
        for tr in section.children:
            cells = [_runs(_inline_child(cell)) for cell in tr.children]
            if section.type == "thead":
                header = cells
                align = [_align(cell) for cell in tr.children]
            else:
                rows.append(cells)
    width = len(header)
    rows = [(row + [[] for _ in range(width - len(row))])[:width] if width else row for row in rows]
    return {"type": "table", "align": align, "header": header, "rows": rows}


def _walk(node: SyntaxTreeNode, out: list[Block]) -> None:
    kind = node.type
    if kind in ("paragraph", "heading"):
        runs = _runs(_inline_child(node))
        if runs:
            out.append({"type": kind, "runs": runs})
    elif kind in ("bullet_list", "ordered_list"):
        items = [_item_runs(item) for item in node.children]
        out.append({"type": "list", "ordered": kind == "ordered_list", "items": items})
    elif kind == "table":
        out.append(_table(node))
    elif kind in ("code_block", "fence"):
        text = node.content.rstrip("\n")
        if text:
            out.append({"type": "paragraph", "runs": [{"text": text, "bold": False}]})
    elif kind == "hr":
        return
    else:  # root, blockquote and anything else that holds blocks
        for child in node.children:
            _walk(child, out)


def to_blocks(body: str) -> list[Block]:
    """The body as blocks for the screens (player/protocol.py, Block and Run): paragraphs,
    headings, lists, tables with their column alignment, bold runs and line breaks."""
    tree = SyntaxTreeNode(_parser().parse(clean_text(body)))
    blocks: list[Block] = []
    _walk(tree, blocks)
    return blocks
