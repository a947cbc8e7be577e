"""The player's renderer: pure functions from a notice (protocol.NoticePayload) to images.

Layout of a notice slide (landscape):

    ┌──────────────────────────────────────────────────────────────┐
    │ 财务公开 (header band in the category colour)            2/3 │
    │ Title, bold, large (shrinks step by step to fit 3 lines)     │
    │ ──────────────────────────────────────────────────────────── │
    │ body: paragraphs, headings, lists, tables, images   ┌──────┐ │
    │ ...                                                 │  QR  │ │
    │ regions · 2026年11月22日 (footer)                   │扫码看详情│ │
    └──────────────────────────────────────────────────────────────┘

Portrait screens put the footer and the QR code in a band below the body. Everything is sized
from the screen's short side so 1920×1080, 1280×720 and 1080×1920 look alike; body text is at
least 1/28 of the short side (39 px at 1080p) and 1/30 of the height (64 px on portrait).

Nothing is cut off silently: long bodies continue on further pages (a table repeats its
header), a long title shrinks and, past three lines at its smallest size, is shown in full on
the first page and abridged with "…" on the following ones. Every script is drawn with the
fallback fonts (player.fonts: Noto Sans families, Arabic shaped right to left, colour emoji);
only a character no installed font has becomes □. Layouts are cached per notice content, QR
URL and size.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from player import fonts as fontlib
from player import qr as qrlib
from player.fonts import Fonts
from player.linebreak import Line, break_lines

log = logging.getLogger(__name__)

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")  # no DST since 1991
WEEKDAYS = "一二三四五六日"

BG = (250, 249, 245)
TEXT = (24, 24, 24)
MUTED = (80, 80, 80)
RULE = (200, 196, 188)
GRID = (110, 110, 110)
WHITE = (255, 255, 255)
DEFAULT_COLOR = (31, 78, 121)

Color = tuple[int, int, int]


def parse_color(value: Any, default: Color = DEFAULT_COLOR) -> Color:
    """'#2e7d32' → (46, 125, 50); anything else → `default`."""
    if isinstance(value, str) and value.startswith("#") and len(value) in (4, 7):
        digits = value[1:]
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        try:
            return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))
        except ValueError:
            return default
    return default


def _luminance(c: Color) -> float:
    def lin(v: int) -> float:
        x = v / 255
        return x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])


def on_color(c: Color) -> Color:
    """White or near-black text, whichever contrasts more with `c`."""
    lum = _luminance(c)
    return WHITE if (1.05 / (lum + 0.05)) >= ((lum + 0.05) / 0.05) else TEXT


def darken_for_band(c: Color) -> Color:
    """A category colour light enough to fail contrast with white is darkened (band text
    stays white and calm)."""
    while _luminance(c) > 0.18:
        c = (int(c[0] * 0.85), int(c[1] * 0.85), int(c[2] * 0.85))
    return c


def tint(c: Color, amount: float) -> Color:
    """`c` mixed with white (amount 0 = white, 1 = c)."""
    return tuple(round(255 + (v - 255) * amount) for v in c)  # type: ignore[return-value]


def chinese_date(value: str | datetime | None) -> str:
    """An ISO time (UTC 'Z' or with offset) as 2026年11月22日 in China time; '' if unreadable."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return ""
    if value.tzinfo is not None:
        value = value.astimezone(CHINA)
    return f"{value.year}年{value.month}月{value.day}日"


@functools.lru_cache(maxsize=200_000)
def _length(chain: fontlib.FontChain, size: int, text: str) -> float:
    return chain.length(text, size)


@dataclass
class Box:
    """Something drawn on a page, for tests and checks: kind, rectangle, text."""

    kind: str
    x0: float
    y0: float
    x1: float
    y1: float
    text: str = ""


@dataclass
class Unit:
    """One piece of the body flow that is never split across pages (a line, a table row, an
    image)."""

    height: int
    gap: int  # space above it, dropped at the top of a page
    draw: Callable[[ImageDraw.ImageDraw, Image.Image, int, int], list[Box]]
    text: str = ""  # the body text it shows (for the nothing-lost check)
    kind: str = "line"
    header: Unit | None = None  # table rows: the header row to repeat on a new page
    keep_with_next: bool = False  # headings and table headers


@dataclass
class Page:
    units: list[tuple[Unit, int]] = field(default_factory=list)  # (unit, y)


@dataclass
class Layout:
    """A notice laid out for one screen size: pages of body units plus the fixed parts."""

    title_size: int
    title_lines: list[Line]  # full title (page 1)
    short_title_lines: list[Line]  # title on later pages (same as full when it fits)
    pages: list[Page]
    body_size: int


class Renderer:
    """Draws notices and the player's other slides at one screen size, in RGB."""

    def __init__(self, fonts: Fonts, size: tuple[int, int]) -> None:
        self.fonts = fonts
        self._chains = (fontlib.chain(fonts, False), fontlib.chain(fonts, True))
        self.size = (int(size[0]), int(size[1]))
        w, h = self.size
        self.portrait = h > w
        short = min(w, h)
        self.short = short
        # Body text: 1/28 of the short side (39 px at 1080p) and never below 1/30 of the
        # screen height (the floor for reading from a few metres): 64 px on a
        # 1080×1920 portrait screen, where lines are short anyway and the screen is tall.
        self.body_size = max(-(-short // 28), -(-h // 30))
        # Table text is body text: never below the floor, portrait screens included. Cells wrap
        # and rows go on to further pages (the header repeated) instead of the text shrinking.
        self.table_size = self.body_size
        self.margin = round(short * 0.045)
        self.band_h = round(short * 0.095)
        self.band_size = round(short * 0.046)
        self.footer_size = max(-(-short // 34), 14)
        self.title_max = round(short / 13)
        self.title_min = max(round(short / 22), self.body_size + 2)
        self.module_px = qrlib.module_px_for(short)
        self.line = max(1, round(short / 540))  # grid and rule thickness
        self._layouts: OrderedDict[tuple[Any, ...], Layout] = OrderedDict()

    # ---- text helpers ---------------------------------------------------------------------

    def _path(self, bold: bool) -> str:
        return self.fonts.bold if bold else self.fonts.regular

    def font(self, size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
        return fontlib.load(self._path(bold), size)

    def measure(self, size: int) -> Callable[[str, bool], float]:
        """Width of a text in px at `size`, with the same fonts (fallbacks included) as drawn."""
        regular, bold = self._chains

        def measure(text: str, is_bold: bool) -> float:
            return _length(bold if is_bold else regular, size, text)

        return measure

    def clean(self, text: str) -> str:
        """`text` as it will be drawn (characters no installed font has as □)."""
        return fontlib.clean(text, self.fonts)

    def _runs(self, runs: Any) -> list[tuple[str, bool]]:
        out = []
        for run in runs if isinstance(runs, list) else []:
            if isinstance(run, dict) and isinstance(run.get("text"), str):
                out.append((self.clean(run["text"]), bool(run.get("bold"))))
        return out

    def wrap(self, runs: Sequence[tuple[str, bool]], width: float, size: int) -> list[Line]:
        return break_lines([{"text": t, "bold": b} for t, b in runs], width, self.measure(size))

    def draw_line(self, draw: ImageDraw.ImageDraw, line: Line, x: float, top: float, size: int,
                  line_h: int, fill: Color = TEXT, bold: bool | None = None) -> Box:
        """Draw `line` with its top at `top` in a line box `line_h` tall; returns its box."""
        baseline = top + (line_h - size) / 2 + 0.88 * size
        cx = x
        for text, is_bold in line.segments:
            b = is_bold if bold is None else bold
            cx += self._chains[b].draw(draw, cx, baseline, text, size, fill)
        return Box("text", x, top, max(cx, x + line.width), top + line_h, line.text)

    # ---- the notice slide -----------------------------------------------------------------

    def _qr_card(self, qr_url: str, caption: str, code: str | None = None) -> Image.Image:
        """The QR code with its caption below it and, for a notice or an alert, its code
        ("编码 hgdpzh": residents are told to type the code under the QR code on the site)."""
        qr = qrlib.qr_image(qr_url, self.module_px)
        cap_size = self.footer_size
        cap_h = round(cap_size * 1.2)
        code = self.clean(code or "").strip()
        code_size = round(cap_size * 1.1)
        code_h = round(code_size * 1.3) if code else 0
        card = Image.new("RGB", (qr.width, qr.height + cap_h + code_h), WHITE)
        card.paste(qr, (0, 0))
        d = ImageDraw.Draw(card)
        # The caption sits in the lower quiet zone and below it: the code keeps 4 white modules.
        quiet = qrlib.QUIET_ZONE * self.module_px
        y = qr.height - quiet + (quiet + cap_h) / 2 + 0.35 * cap_size
        d.text((card.width / 2, y), caption, font=self.font(cap_size, True), fill=TEXT,
               anchor="ms")
        if code:
            label = f"编码 {code}"
            while code_size > 12 and self.measure(code_size)(label, True) > card.width - 8:
                code_size -= 1
            d.text((card.width / 2, qr.height + cap_h + code_h * 0.8), label,
                   font=self.font(code_size, True), fill=TEXT, anchor="ms")
        return card

    def card_boxes(self, card: Image.Image, qr_url: str, code: Any, x: float,
                   y: float) -> list[Box]:
        """Boxes of a QR card pasted at (x, y): the card, and the code line under it."""
        boxes = [Box("qr", x, y, x + card.width, y + card.height)]
        code = self.clean(str(code or "")).strip()
        if code:
            top = y + qrlib.qr_image(qr_url, self.module_px).height + round(self.footer_size * 1.2)
            boxes.append(Box("qr-code", x, top, x + card.width, y + card.height, f"编码 {code}"))
        return boxes

    def _geometry(self, card: Image.Image, footer_lines: int) -> dict[str, int]:
        w, h = self.size
        m = self.margin
        g: dict[str, int] = {"left": m, "right": w - m}
        footer_lh = round(self.footer_size * 1.45)
        if self.portrait:
            band_top = h - m - card.height
            g["body_right"] = w - m
            g["body_bottom"] = band_top - m // 2
            g["card_x"] = w - m - card.width
            g["card_y"] = band_top
            g["footer_x"] = m
            g["footer_w"] = g["card_x"] - m - m // 2
            g["footer_top"] = band_top + (card.height - footer_lines * footer_lh) // 2
        else:
            g["card_x"] = w - m - card.width
            g["card_y"] = h - m - card.height
            g["body_right"] = g["card_x"] - m
            g["footer_x"] = m
            g["footer_w"] = g["body_right"] - m
            g["footer_top"] = h - m - footer_lines * footer_lh
            g["body_bottom"] = g["footer_top"] - m // 2
        g["footer_lh"] = footer_lh
        return g

    def _title(self, title: str, width: int) -> tuple[int, list[Line], list[Line]]:
        runs = [(self.clean(title.replace("\n", " ")) or " ", True)]
        size = self.title_max
        while True:
            lines = self.wrap(runs, width, size)
            if len(lines) <= 3 or size <= self.title_min:
                break
            size = max(self.title_min, round(size * 0.92))
        short = lines
        if len(lines) > 3:
            # Later pages show an abridged title: two lines, the last ending in "…".
            short = [*lines[:1], self._ellipsize(lines[1], width, size)]
        return size, lines, short

    def _ellipsize(self, line: Line, width: int, size: int) -> Line:
        measure = self.measure(size)
        text = line.text
        while text and measure(text + "…", True) > width:
            text = text[:-1]
        return Line([(text + "…", True)], measure(text + "…", True))

    def _footer_lines(self, notice: dict[str, Any], width: int) -> list[Line]:
        regions = [self.clean(r) for r in notice.get("regions") or [] if isinstance(r, str)]
        date = chinese_date(notice.get("published_at"))
        size = self.footer_size
        max_lines = 4 if self.portrait else 2
        shown = len(regions)
        while True:
            text = "；".join(regions[:shown])
            if shown < len(regions):
                text += f" 等{len(regions)}处"
            parts = [p for p in (text, f"发布于{date}" if date else "") if p]
            lines = self.wrap([("\n".join(parts), False)], width, size)
            if len(lines) <= max_lines or shown <= 1:
                return lines[:max_lines] if shown <= 1 else lines
            shown -= 1

    def layout(self, notice: dict[str, Any], qr_url: str,
               images: dict[str, Image.Image] | None = None) -> Layout:
        """The notice laid out in pages (cached by its content, QR URL and images: a draft
        previewed twice with edits in between must not get the first layout back)."""
        category = notice.get("category") if isinstance(notice.get("category"), dict) else {}
        self._band_color = darken_for_band(parse_color(category.get("color")))
        usable = self._usable_images(notice, images)
        content = hashlib.sha1(
            json.dumps(notice, sort_keys=True, ensure_ascii=False, default=str).encode()
        ).hexdigest()
        key = (notice.get("code"), content, qr_url, tuple((u, id(i)) for u, i in usable))
        if key[0] is not None and key in self._layouts:
            self._layouts.move_to_end(key)
            return self._layouts[key]
        result = self._layout(notice, qr_url, usable)
        if key[0] is not None:
            self._layouts[key] = result
            while len(self._layouts) > 64:
                self._layouts.popitem(last=False)
        return result

    def _usable_images(self, notice: dict[str, Any],
                       images: dict[str, Image.Image] | None) -> list[tuple[str, Image.Image]]:
        out = []
        for url in notice.get("images") or []:
            img = (images or {}).get(url) if isinstance(url, str) else None
            if img is None:
                continue
            try:
                img.load()
                if img.width < 1 or img.height < 1:
                    continue
                out.append((url, img.convert("RGB")))
            except Exception as exc:  # any broken picture is skipped; the rest renders
                log.warning("skipping a broken picture %s: %s", url, exc)
                continue
        return out

    def _layout(self, notice: dict[str, Any], qr_url: str,
                usable: list[tuple[str, Image.Image]]) -> Layout:
        card = self._qr_card(qr_url, "扫码看详情", notice.get("code"))
        probe = self._geometry(card, 1)
        footer = self._footer_lines(notice, probe["footer_w"])
        g = self._geometry(card, len(footer))
        title_w = g["right"] - g["left"]
        title_size, title_lines, short_lines = self._title(str(notice.get("title") or ""), title_w)
        title_lh = round(title_size * 1.3)
        top = self.band_h + round(self.margin * 0.6)
        first_top = top + len(title_lines) * title_lh + self.margin // 2
        rest_top = top + len(short_lines) * title_lh + self.margin // 2
        body_w = g["body_right"] - g["left"]
        heights = (g["body_bottom"] - first_top, g["body_bottom"] - rest_top)
        units = self._body_units(notice.get("blocks") or [], body_w, min(heights), usable)
        pages = self._paginate(units, heights)
        return Layout(title_size, title_lines, short_lines, pages, self.body_size)

    # ---- body flow ------------------------------------------------------------------------

    def _text_units(self, lines: list[Line], x_off: int, size: int, gap: int, *,
                    bold: bool | None = None, kind: str = "line",
                    marker: str = "") -> list[Unit]:
        lh = round(size * 1.6)
        units = []
        for i, line in enumerate(lines):
            def draw(d: ImageDraw.ImageDraw, _img: Image.Image, x: int, y: int,
                     line: Line = line, first: bool = i == 0) -> list[Box]:
                boxes = [self.draw_line(d, line, x + x_off, y, size, lh, bold=bold)]
                if first and marker:
                    m = Line([(marker, False)], self.measure(size)(marker, False))
                    boxes.append(self.draw_line(d, m, x, y, size, lh))
                    boxes[-1].kind = "marker"
                return boxes

            units.append(Unit(lh, gap if i == 0 else 0, draw, line.text, kind,
                              keep_with_next=kind == "heading"))
        return units

    def _body_units(self, blocks: list[Any], width: int, page_h: int,
                    usable: list[tuple[str, Image.Image]]) -> list[Unit]:
        s = self.body_size
        units: list[Unit] = []
        para_gap = round(s * 0.55)
        for block in blocks:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "paragraph":
                lines = self.wrap(self._runs(block.get("runs")), width, s)
                units += self._text_units(lines, 0, s, para_gap)
            elif kind == "heading":
                hs = round(s * 1.15)
                lines = self.wrap([(t, True) for t, _ in self._runs(block.get("runs"))], width, hs)
                units += self._text_units(lines, 0, hs, round(s * 0.9), kind="heading")
            elif kind == "list":
                units += self._list_units(block, width)
            elif kind == "table":
                units += self._table_units(block, width, page_h)
        for _url, img in usable:
            units.append(self._image_unit(img, width, page_h))
        return units

    def _list_units(self, block: dict[str, Any], width: int) -> list[Unit]:
        s = self.body_size
        items = [i for i in block.get("items") or [] if isinstance(i, list)]
        ordered = bool(block.get("ordered"))
        markers = [f"{n}." if ordered else "•" for n in range(1, len(items) + 1)]
        measure = self.measure(s)
        indent = round(max((measure(m, False) for m in markers), default=0) + s * 0.6)
        units: list[Unit] = []
        for n, item in enumerate(items):
            lines = self.wrap(self._runs(item), width - indent, s)
            units += self._text_units(lines, indent, s, round(s * (0.55 if n == 0 else 0.25)),
                                      kind="list", marker=markers[n])
        return units

    def _image_unit(self, img: Image.Image, width: int, page_h: int) -> Unit:
        scale = min(width / img.width, page_h / img.height, 1.0 if img.width > width / 3 else 2.0)
        w, h = max(1, int(img.width * scale)), max(1, int(img.height * scale))
        scaled = img.resize((w, h), Image.Resampling.LANCZOS)

        def draw(d: ImageDraw.ImageDraw, canvas: Image.Image, x: int, y: int) -> list[Box]:
            x += (width - w) // 2
            canvas.paste(scaled, (x, y))
            return [Box("image", x, y, x + w, y + h)]

        return Unit(h, self.body_size, draw, "", "image")

    def _table_units(self, block: dict[str, Any], width: int, page_h: int) -> list[Unit]:
        s = self.table_size
        header = [self._runs(c) for c in block.get("header") or [] if isinstance(c, list)]
        rows = [[self._runs(c) for c in row if isinstance(c, list)]
                for row in block.get("rows") or [] if isinstance(row, list)]
        ncols = max([len(header)] + [len(r) for r in rows] + [0])
        if ncols == 0:
            return []
        align = [a if a in ("left", "right", "center") else "left"
                 for a in (block.get("align") or [])][:ncols]
        align += ["left"] * (ncols - len(align))
        pad_x, pad_y = round(s * 0.4), round(s * 0.2)
        lh = round(s * 1.4)
        measure = self.measure(s)

        def natural(cell: list[tuple[str, bool]]) -> float:
            return max((line.width for line in break_lines(
                [{"text": t, "bold": b} for t, b in cell], 1e9, measure)), default=0)

        def longest_word(cell: list[tuple[str, bool]]) -> float:
            from player.linebreak import atoms
            return max((a.width for a in atoms([{"text": t, "bold": b} for t, b in cell],
                                               measure, 1e9) if a.kind != "space"), default=0)

        all_rows = ([[(t, True) for t, _ in c] for c in header],) if header else ()
        cells = [*all_rows, *rows]
        nat = [0.0] * ncols
        mins = [0.0] * ncols
        for row in cells:
            for c, cell in enumerate(row):
                nat[c] = max(nat[c], natural(cell) + 2 * pad_x + 1)
                # A column is never narrower than its longest word (up to 6 em) nor than two
                # characters: a column of one character per line reads as nothing.
                least = max(min(longest_word(cell), s * 6), min(natural(cell), s * 2))
                mins[c] = max(mins[c], least + 2 * pad_x + 1)
        avail = width - self.line
        if sum(mins) > avail and header and ncols > 2:
            return self._stacked_units(header, rows, width, page_h)
        if sum(nat) <= avail:
            extra = avail - sum(nat) if sum(nat) > avail * 0.55 else 0
            widths = [n + extra * n / sum(nat) for n in nat]
        elif sum(mins) >= avail:
            widths = [avail * m / sum(mins) for m in mins]
        else:
            widths = self._balance_columns(cells, nat, mins, avail, s, 2 * pad_x)
        widths = [int(w) for w in widths]
        xs = [0]
        for w in widths:
            xs.append(xs[-1] + w)
        fill_head = tint(self._band_color, 0.16)
        line_w = self.line

        def wrap_row(row: list[list[tuple[str, bool]]]) -> list[list[Line]]:
            out = []
            for c in range(ncols):
                cell = row[c] if c < len(row) else []
                out.append(self.wrap(cell, widths[c] - 2 * pad_x, s) if cell else [])
            return out

        def make_unit(cols: list[list[Line]], is_header: bool) -> Unit:
            n = max([len(c) for c in cols] + [1])
            height = n * lh + 2 * pad_y

            def draw(d: ImageDraw.ImageDraw, _img: Image.Image, x: int, y: int) -> list[Box]:
                boxes = []
                if is_header:
                    d.rectangle([x, y, x + xs[-1], y + height], fill=fill_head)
                d.rectangle([x, y, x + xs[-1], y + height], outline=GRID, width=line_w)
                for c in range(ncols):
                    if c:
                        d.line([(x + xs[c], y), (x + xs[c], y + height)], fill=GRID,
                               width=line_w)
                    inner = widths[c] - 2 * pad_x
                    for k, line in enumerate(cols[c]):
                        lx = x + xs[c] + pad_x
                        if align[c] == "right":
                            lx += inner - line.width
                        elif align[c] == "center":
                            lx += (inner - line.width) / 2
                        box = self.draw_line(d, line, lx, y + pad_y + k * lh, s, lh,
                                             bold=True if is_header else None)
                        box.kind = "cell"
                        boxes.append(box)
                boxes.append(Box("table-row", x, y, x + xs[-1], y + height))
                return boxes

            text = "".join(line.text for col in cols for line in col)
            return Unit(height, 0, draw, text, "table-header" if is_header else "table-row",
                        keep_with_next=is_header)

        head_unit = make_unit(wrap_row([[(t, True) for t, _ in c] for c in header]), True) \
            if header else None
        units: list[Unit] = []
        if head_unit:
            head_unit.gap = round(s * 0.6)
            units.append(head_unit)
        max_lines = max(1, (page_h - (head_unit.height if head_unit else 0) - 2 * pad_y) // lh)
        for row in rows:
            cols = wrap_row(row)
            n = max([len(c) for c in cols] + [1])
            # A row taller than a page is split into parts, each repeating nothing but going on.
            for start in range(0, n, max_lines):
                part = [c[start:start + max_lines] for c in cols]
                unit = make_unit(part, False)
                unit.header = head_unit
                units.append(unit)
        if not head_unit and units:
            units[0].gap = round(s * 0.6)
        return units

    def _stacked_units(self, header: list[list[tuple[str, bool]]],
                       rows: list[list[list[tuple[str, bool]]]], width: int,
                       page_h: int) -> list[Unit]:
        """A table too wide for the screen at the text floor (a four-column finance table on a
        portrait screen) is shown one record at a time: each row as a small two-column table,
        the header's labels on the left, the row's values on the right (empty cells left
        out). Text keeps its size; nothing is squeezed to a character per line."""
        def as_runs(cell: list[tuple[str, bool]], bold: bool | None = None) -> list[dict]:
            return [{"text": t, "bold": b if bold is None else bold} for t, b in cell]

        records = []
        for row in rows:
            pairs = [[as_runs(header[c] if c < len(header) else [], True), as_runs(cell)]
                     for c, cell in enumerate(row) if cell]
            if pairs:
                records.append(pairs)
        block = {"type": "table", "align": ["left", "left"], "header": [],
                 "rows": [pair for record in records for pair in record]}
        units = self._table_units(block, width, page_h)
        if len(units) != len(block["rows"]):  # a value taller than a page was split: as is
            return units
        out: list[Unit] = []
        k = 0
        for record in records:
            parts = units[k:k + len(record)]
            k += len(record)
            tops = [sum(u.height for u in parts[:i]) for i in range(len(parts))]
            if tops[-1] + parts[-1].height > page_h:
                out += parts
                continue

            def draw(d: ImageDraw.ImageDraw, img: Image.Image, x: int, y: int,
                     parts: list[Unit] = parts, tops: list[int] = tops) -> list[Box]:
                return [b for u, t in zip(parts, tops, strict=True) for b in u.draw(d, img, x,
                                                                                   y + t)]

            # One record, one unit: never split across pages.
            out.append(Unit(tops[-1] + parts[-1].height, round(self.table_size * 0.6), draw,
                            "".join(u.text for u in parts), "table-row"))
        return out

    def _balance_columns(self, cells: list[list[list[tuple[str, bool]]]], nat: list[float],
                         mins: list[float], avail: float, size: int, pad: int) -> list[float]:
        """Column widths for a table wider than the body: starting from each column's minimum,
        the room left goes, a step at a time, where it saves the most lines (rows are as tall
        as their tallest cell), then where it ends the most cells on a last line of one or
        two characters (a few pixels spare a 孤字 and its pulled-down neighbour); what no
        step improves is shared in proportion to what each column still lacks."""
        ncols = len(nat)
        sample = cells[:24]  # enough to judge a long table's columns, cheap on a weak box
        lone = 2.2 * size  # a last line this short holds one or two characters
        memo: dict[tuple[int, int], list[tuple[int, bool]]] = {}

        def column(c: int, w: float) -> list[tuple[int, bool]]:
            key = (c, int(w))
            if key not in memo:
                out = []
                for row in sample:
                    cell = row[c] if c < len(row) else []
                    lines = self.wrap(cell, int(w) - pad, size) if cell else []
                    out.append((len(lines), len(lines) > 1 and lines[-1].width < lone))
                memo[key] = out
            return memo[key]

        def cost(ws: list[float]) -> tuple[int, int]:
            cols = [column(c, ws[c]) for c in range(ncols)]
            lines = sum(max([col[r][0] for col in cols] + [1]) for r in range(len(sample)))
            return lines, sum(short for col in cols for _n, short in col)

        widths = [float(m) for m in mins]
        step = max(4.0, size / 4)
        best = cost(widths)
        while sum(widths) + step <= avail:
            tries = []
            for c in range(ncols):
                if widths[c] >= nat[c]:
                    continue
                trial = list(widths)
                trial[c] += step
                tries.append((cost(trial), -(nat[c] - widths[c]), c))
            if not tries:
                break
            got, _lack, c = min(tries)
            if got >= best:
                # No single step helps (a cell needs several): look further ahead for the
                # column whose next saving is nearest.
                ahead = []
                for c2 in range(ncols):
                    trial = list(widths)
                    k = 1
                    while trial[c2] < nat[c2] and sum(trial) + step <= avail and k <= 12:
                        trial[c2] += step
                        if cost(trial) < best:
                            ahead.append((k, c2))
                            break
                        k += 1
                if not ahead:
                    break
                _k, c = min(ahead)
                widths[c] += step
                best = cost(widths)
                continue
            widths[c] += step
            best = got
        spare = avail - sum(widths)
        lack = [max(0.0, n - w) for n, w in zip(nat, widths, strict=True)]
        if spare > 0 and sum(lack) > 0:
            widths = [w + spare * lk / sum(lack) for w, lk in zip(widths, lack, strict=True)]
        elif spare > 0:
            widths = [w + spare / ncols for w in widths]
        return widths

    @staticmethod
    def _paginate(units: list[Unit], heights: tuple[int, int]) -> list[Page]:
        pages = [Page()]
        y = 0
        i = 0
        while i < len(units):
            unit = units[i]
            limit = heights[0] if len(pages) == 1 else heights[1]
            page = pages[-1]
            gap = unit.gap if page.units else 0
            need = gap + unit.height
            # Keep a heading (or table header) with what follows it.
            if unit.keep_with_next and i + 1 < len(units):
                need += units[i + 1].gap + units[i + 1].height
            if page.units and y + need > limit:
                pages.append(Page())
                y = 0
                # A table continuing on a new page repeats its header.
                if unit.header is not None:
                    pages[-1].units.append((unit.header, 0))
                    y = unit.header.height
                continue
            page.units.append((unit, y + gap))
            y += gap + unit.height
            i += 1
        return pages

    # ---- drawing --------------------------------------------------------------------------

    _band_color: Color = DEFAULT_COLOR

    def notice_pages(self, notice: dict[str, Any], qr_url: str, *,
                     images: dict[str, Image.Image] | None = None) -> list[Image.Image]:
        """One RGB image per page of `notice`, each exactly the renderer's size."""
        return [img for img, _boxes in self.notice_pages_with_boxes(notice, qr_url,
                                                                    images=images)]

    def notice_more_page(self, notice: dict[str, Any], qr_url: str, page: int, left: int, *,
                         images: dict[str, Image.Image] | None = None) -> Image.Image:
        """Page `page` (0-based) of `notice` as the last one its turn shows (the time budget,
        player.schedule): it says how many pages are left and how to read them ("还有 27 页 ·
        扫码看全文"), the QR card framed in the category colour."""
        return self.notice_pages_with_boxes(notice, qr_url, images=images,
                                            more=(page, left))[0][0]

    def _more_note(self, d: ImageDraw.ImageDraw, left: int, g: dict[str, int],
                   zone: tuple[int, int]) -> list[Box]:
        """The budget's note in the footer's place: 还有 N 页 · 扫码看全文, bold, large."""
        top, bottom = zone
        text = f"还有 {left} 页 · 扫码看全文"
        size = self.body_size
        while True:
            lh = round(size * 1.3)
            lines = self.wrap([(text, True)], g["footer_w"], size)
            if len(lines) > 1:  # two lines: what is left, then what to do
                lines = self.wrap([(f"还有 {left} 页\n扫码看全文", True)], g["footer_w"], size)
            if len(lines) * lh <= bottom - top or size <= self.footer_size:
                break
            size -= 2
        color = self._band_color
        d.rectangle([g["footer_x"] - self.margin // 3, top, g["footer_x"] + g["footer_w"],
                     bottom], fill=tint(color, 0.14))
        y = top + (bottom - top - len(lines) * lh) / 2
        boxes = []
        for line in lines:
            box = self.draw_line(d, line, g["footer_x"], y, size, lh, fill=color, bold=True)
            box.kind = "more"
            boxes.append(box)
            y += lh
        return boxes

    def notice_pages_with_boxes(self, notice: dict[str, Any], qr_url: str, *,
                                images: dict[str, Image.Image] | None = None,
                                more: tuple[int, int] | None = None
                                ) -> list[tuple[Image.Image, list[Box]]]:
        """Like notice_pages, with the boxes of everything drawn (for checks). With `more`
        (page, pages left): that page alone, as the last of a turn cut short by the budget."""
        category = notice.get("category") if isinstance(notice.get("category"), dict) else {}
        self._band_color = darken_for_band(parse_color(category.get("color")))
        lay = self.layout(notice, qr_url, images)
        card = self._qr_card(qr_url, "扫码看详情", notice.get("code"))
        footer = self._footer_lines(notice, self._geometry(card, 1)["footer_w"])
        g = self._geometry(card, len(footer))
        out = []
        total = len(lay.pages)
        for n, page in enumerate(lay.pages):
            if more is not None and n != min(max(0, more[0]), total - 1):
                continue
            img = Image.new("RGB", self.size, BG)
            d = ImageDraw.Draw(img)
            boxes: list[Box] = []
            boxes += self._band(d, self.clean(str(category.get("name") or "通知公告")),
                                f"{n + 1}/{total}" if total > 1 else "")
            title = lay.title_lines if n == 0 else lay.short_title_lines
            tlh = round(lay.title_size * 1.3)
            ty = self.band_h + round(self.margin * 0.6)
            for line in title:
                box = self.draw_line(d, line, g["left"], ty, lay.title_size, tlh, bold=True)
                box.kind = "title"
                boxes.append(box)
                ty += tlh
            rule_y = ty + self.margin // 4
            d.line([(g["left"], rule_y), (g["right"], rule_y)], fill=RULE, width=self.line * 2)
            body_top = ty + self.margin // 2
            for unit, y in page.units:
                boxes += unit.draw(d, img, g["left"], body_top + y)
            fy = g["footer_top"]
            shown_card = card
            if more is not None:
                # The footer's place (beside the card on portrait, under the body on
                # landscape) says what is left; the card says 扫码看全文, framed.
                zone = (g["card_y"], g["card_y"] + card.height) if self.portrait else (
                    g["footer_top"], g["footer_top"] + len(footer) * g["footer_lh"])
                boxes += self._more_note(d, more[1], g, zone)
                shown_card = self._qr_card(qr_url, "扫码看全文", notice.get("code"))
                frame = max(4, self.margin // 5)
                d.rectangle([g["card_x"] - frame, g["card_y"] - frame,
                             g["card_x"] + card.width + frame - 1,
                             g["card_y"] + card.height + frame - 1], fill=self._band_color)
                footer_drawn: list[Line] = []
            else:
                footer_drawn = footer
            for line in footer_drawn:
                box = self.draw_line(d, line, g["footer_x"], fy, self.footer_size,
                                     g["footer_lh"], fill=MUTED)
                box.kind = "footer"
                boxes.append(box)
                fy += g["footer_lh"]
            card = shown_card
            img.paste(card, (g["card_x"], g["card_y"]))
            boxes += self.card_boxes(card, qr_url, notice.get("code"), g["card_x"], g["card_y"])
            out.append((img, boxes))
        return out

    def _band(self, d: ImageDraw.ImageDraw, name: str, right: str,
              color: Color | None = None) -> list[Box]:
        color = color or self._band_color
        w = self.size[0]
        d.rectangle([0, 0, w, self.band_h], fill=color)
        fg = on_color(color)
        size = self.band_size
        lines = self.wrap([(name, True)], w - 2 * self.margin - size * 4, size)
        line = lines[0] if len(lines) == 1 else self._ellipsize(lines[0], w - 2 * self.margin
                                                               - size * 4, size)
        boxes = [self.draw_line(d, line, self.margin, 0, size, self.band_h, fill=fg, bold=True)]
        boxes[0].kind = "band"
        if right:
            rw = self.measure(size)(right, True)
            box = self.draw_line(d, Line([(right, True)], rw), w - self.margin - rw, 0, size,
                                 self.band_h, fill=fg, bold=True)
            box.kind = "page"
            boxes.append(box)
        return boxes

    # ---- other slides ---------------------------------------------------------------------

    def _centered(self, d: ImageDraw.ImageDraw, text: str, y: float, size: int, width: int,
                  bold: bool = False, fill: Color = TEXT, cx: float | None = None) -> float:
        """Draw `text` wrapped to `width`, each line centred on cx; returns the y below."""
        lh = round(size * 1.45)
        cx = self.size[0] / 2 if cx is None else cx
        for line in self.wrap([(self.clean(text), bold)], width, size):
            self.draw_line(d, line, cx - line.width / 2, y, size, lh, fill=fill, bold=bold)
            y += lh
        return y

    def standby(self, *, county_name: str, screen_name: str, qr_url: str | None,
                now: datetime) -> Image.Image:
        """The slide shown when there is nothing to show: county, clock, date, screen QR."""
        w, h = self.size
        m = self.margin
        img = Image.new("RGB", self.size, BG)
        d = ImageDraw.Draw(img)
        self._band(d, self.clean(county_name or "村屏") + " · 村务公开", "", DEFAULT_COLOR)
        local = now.astimezone(CHINA) if now.tzinfo is not None else now
        clock = f"{local.hour:02d}:{local.minute:02d}"
        date = f"{local.year}年{local.month}月{local.day}日  星期{WEEKDAYS[local.weekday()]}"
        card = self._qr_card(qr_url, "扫码查看本屏公告") if qr_url else None
        clock_size = round(self.short * 0.26)
        date_size = round(self.short / 17)
        if self.portrait or card is None:
            cx, area_w = w / 2, w - 2 * m
        else:
            area_w = w - 3 * m - card.width
            cx = m + area_w / 2
        block_h = clock_size * 1.1 + date_size * 1.6
        if self.portrait and card is not None:
            top = self.band_h + (h - self.band_h - card.height - m - block_h) / 2 - m
        else:
            top = self.band_h + (h - self.band_h - block_h) / 2 - m
        cw = self.measure(clock_size)(clock, True)
        d.text((cx - cw / 2, top + clock_size * 0.95), clock, font=self.font(clock_size, True),
               fill=TEXT, anchor="ls")
        self._centered(d, date, top + clock_size * 1.15, date_size, area_w, cx=cx)
        if card is not None:
            if self.portrait:
                x, y = (w - card.width) // 2, h - m * 2 - card.height
            else:
                x, y = w - m - card.width, self.band_h + (h - self.band_h - card.height) // 2
            img.paste(card, (x, y))
        name = self.clean(screen_name or "")
        if name:
            line = self.wrap([(name, False)], w - 2 * m, self.footer_size)[0]
            if self.portrait:
                self.draw_line(d, line, (w - line.width) / 2, h - m - self.footer_size * 1.2,
                               self.footer_size, round(self.footer_size * 1.2), fill=MUTED)
            else:
                self.draw_line(d, line, m, h - m - self.footer_size * 1.4, self.footer_size,
                               round(self.footer_size * 1.4), fill=MUTED)
        return img

    def pairing(self, code: str, server: str) -> Image.Image:
        """The pairing slide: the 6-digit code, huge, and what to do with it."""
        w, h = self.size
        m = self.margin
        img = Image.new("RGB", self.size, BG)
        d = ImageDraw.Draw(img)
        self._band(d, "屏幕配对", "", DEFAULT_COLOR)
        code = self.clean(code)
        shown = f"{code[:3]} {code[3:]}" if len(code) == 6 and code.isdigit() else code
        size = round(self.short * 0.2)
        while size > 20 and self.measure(size)(shown, True) > w - 2 * m:
            size = round(size * 0.9)
        text_size = round(self.short / 22)
        y = self.band_h + (h - self.band_h) * 0.12
        y = self._centered(d, "配对码", y, text_size, w - 2 * m, fill=MUTED)
        cw = self.measure(size)(shown, True)
        box_pad = round(size * 0.25)
        d.rounded_rectangle([w / 2 - cw / 2 - box_pad, y + size * 0.05, w / 2 + cw / 2 + box_pad,
                             y + size * 1.35], radius=round(size * 0.12), fill=WHITE,
                            outline=RULE, width=self.line * 2)
        d.text((w / 2 - cw / 2, y + size * 1.05), shown, font=self.font(size, True),
               fill=TEXT, anchor="ls")
        y += size * 1.35 + m
        y = self._centered(d, "在管理后台“屏幕”页面输入此配对码", y, text_size, w - 2 * m,
                           bold=True)
        y = self._centered(d, "输入后本屏幕会自动开始播放公告", y, text_size, w - 2 * m)
        self._centered(d, f"服务器：{server}", max(y + m / 2, h - m - self.footer_size * 1.5),
                       self.footer_size, w - 2 * m, fill=MUTED)
        return img

    def alert(self, alert: dict[str, Any], qr_url: str, *, index: int = 0,
              total: int = 1) -> Image.Image:
        """The emergency alert slide (player.alert_slide); `index`/`total` for the "1/2"
        counter when several alerts take turns."""
        return self.alert_with_boxes(alert, qr_url, index=index, total=total)[0]

    def alert_with_boxes(self, alert: dict[str, Any], qr_url: str, *, index: int = 0,
                         total: int = 1) -> tuple[Image.Image, list[Box]]:
        from player.alert_slide import render_alert

        return render_alert(self, alert, qr_url, index=index, total=total)

    def message(self, title: str, text: str) -> Image.Image:
        """A plain slide with a title and a text, centred (e.g. 此屏幕已被停用)."""
        w, h = self.size
        m = self.margin
        img = Image.new("RGB", self.size, BG)
        d = ImageDraw.Draw(img)
        title_size = round(self.short / 13)
        size = self.body_size + 4
        width = w - 4 * m
        tl = self.wrap([(self.clean(title), True)], width, title_size)
        bl = self.wrap([(self.clean(text), False)], width, size)
        total = len(tl) * title_size * 1.45 + m + len(bl) * size * 1.45
        y = max(m, (h - total) / 2)
        y = self._centered(d, title, y, title_size, width, bold=True)
        d.line([(w / 2 - m * 2, y + m / 3), (w / 2 + m * 2, y + m / 3)], fill=RULE,
               width=self.line * 3)
        self._centered(d, text, y + m, size, width)
        return img
