"""Notice bodies: a small, safe Markdown (paragraphs, lists, bold, simple tables).

Editors and county CMSs send Markdown text; raw HTML in it is never interpreted — it is shown
as the text it is. Images come as attachments, not through the markup (no outside URLs).
"""

from __future__ import annotations

import re
from functools import lru_cache

from markdown_it import MarkdownIt
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


def to_html(body: str) -> Markup:
    """Render a body to HTML that is safe to put in a page as is."""
    html = _parser().render(clean_text(body))
    # Tables get a wrapper class so that wide finance tables scroll on a phone.
    html = html.replace("<table>", '<div class="table-wrap"><table>').replace(
        "</table>", "</table></div>"
    )
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
