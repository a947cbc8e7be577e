"""The emergency alert slide: the whole screen in the level's colour, read from 5 m away.

    ┌───────────────────────────────────────────────────────────────┐  level colour
    │ ⚠  暴雨红色预警  [Ⅰ级]                                    1/2 │  heading, huge
    │    清源县气象台发布                                              │  title less heading
    │ ┌─────────────────────────────────────────────┐ ┌───────────┐ │
    │ │ text (dark on white, large)                 │ │    QR     │ │
    │ │ ┃防御指引                                   │ │ 扫码看详情 │ │
    │ │ ┃1. step (bold)                             │ │编码 Qx7Lm2│ │
    │ │ ┃2. step                                    │ └───────────┘ │
    │ └─────────────────────────────────────────────┘               │
    │ 发布单位 · 发布时间 · 有效期至 (China time)                      │  footer
    └───────────────────────────────────────────────────────────────┘

The title is not drawn twice: where it repeats the heading ("清源县气象台发布暴雨红色预警信号"
under "暴雨红色预警"), only what it adds is shown (the issuer, "清源县气象台发布"). The instruction
is called 防御指引, as on the admin and the residents' page; numbered steps in it ("1. … 2. …",
"1、…2、…", "（1）…") are drawn one per line with their numbers, wrapped lines indented.

On a portrait screen the QR card sits at the bottom right with the footer beside it. The text
and the instruction shrink step by step to fit; past the smallest size they are cut with "…"
(the QR code leads to the full alert). Text on the colour is white, or near-black on yellow
(whichever contrasts more); the body is dark on white.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from PIL import Image, ImageDraw

from player import protocol
from player.linebreak import Line
from player.render import (
    CHINA,
    TEXT,
    WHITE,
    Box,
    Color,
    Renderer,
    darken_for_band,
    on_color,
    parse_color,
    tint,
)

GRADES = {1: "Ⅰ级", 2: "Ⅱ级", 3: "Ⅲ级", 4: "Ⅳ级"}
LABEL = "防御指引"  # as the admin and the residents' page call the instruction
# A step number: "（1）" "(1)" anywhere; "1." "1、" "1．" "1)" at the start or after a space or
# a stop (not inside a number such as 3.5).
_STEP = re.compile(r"(?:[（(](\d{1,2})[)）]"
                   r"|(?:^|(?<=[\s；;。，,！!：:]))(\d{1,2})[.．、)）](?!\d))\s*")


def steps(instruction: str) -> list[tuple[str, str]]:
    """The numbered steps of an instruction as (number, text); [("", instruction)] when it is
    not a list of at least two steps numbered 1, 2, … in order."""
    marks = list(_STEP.finditer(instruction))
    numbers = [int(m.group(1) or m.group(2)) for m in marks]
    if len(marks) < 2 or numbers != list(range(1, len(marks) + 1)):
        return [("", instruction)] if instruction else []
    out = []
    head = instruction[:marks[0].start()].strip()
    if head:
        out.append(("", head))
    for k, m in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(instruction)
        out.append((f"{numbers[k]}.", instruction[m.end():end].strip()))
    return out


def title_beyond_heading(title: str, head: str) -> str:
    """The alert's title less what the heading already says: "清源县气象台发布暴雨红色预警信号"
    under "暴雨红色预警" → "清源县气象台发布" ('' when nothing is left)."""
    if not head or head not in title:
        return title
    before, after = title.split(head, 1)
    after = after.strip()
    rest = before.strip()
    if after and after not in ("信号", "。"):
        rest = f"{rest} {after}".strip()
    return rest


def heading(alert: dict[str, Any]) -> str:
    """'暴雨红色预警': the event, the level's colour name, 预警."""
    return f"{alert.get('event') or ''}{protocol.LEVEL_NAMES.get(_level(alert), '')}预警"


def _level(alert: dict[str, Any]) -> int:
    level = alert.get("level")
    return level if isinstance(level, int) else 0


def local_time(value: Any) -> str:
    """An ISO time as 11月22日 10:00 in China time; '' if unreadable."""
    if not isinstance(value, str):
        return ""
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if when.tzinfo is not None:
        when = when.astimezone(CHINA)
    return f"{when.month}月{when.day}日 {when.hour:02d}:{when.minute:02d}"


def level_color(alert: dict[str, Any]) -> Color:
    fallback = parse_color(protocol.LEVEL_COLORS.get(_level(alert), "#d32f2f"))
    return parse_color(protocol.LEVEL_COLORS.get(_level(alert)) or alert.get("color"), fallback)


def _warning_sign(d: ImageDraw.ImageDraw, x: float, y: float, size: float, fill: Color,
                  mark: Color, r: Renderer) -> None:
    """A warning triangle `size` tall with an exclamation mark."""
    w = size * 1.12
    d.polygon([(x + w / 2, y), (x + w, y + size), (x, y + size)], fill=fill)
    bar_w = size * 0.12
    cx = x + w / 2
    d.rounded_rectangle([cx - bar_w / 2, y + size * 0.32, cx + bar_w / 2, y + size * 0.7],
                        radius=bar_w / 2, fill=mark)
    dot = bar_w * 0.62
    d.ellipse([cx - dot, y + size * 0.78 - dot, cx + dot, y + size * 0.78 + dot], fill=mark)


def render_alert(r: Renderer, alert: dict[str, Any], qr_url: str, *, index: int = 0,
                 total: int = 1) -> tuple[Image.Image, list[Box]]:
    w, h = r.size
    short, m = r.short, r.margin
    color = level_color(alert)
    fg = on_color(color)
    accent = darken_for_band(color)  # the level's colour, dark enough to read on white
    img = Image.new("RGB", r.size, color)
    d = ImageDraw.Draw(img)
    boxes: list[Box] = []

    # -- the counter (several alerts take turns) -------------------------------------------
    top = round(m * 0.7)
    counter_w = 0.0
    if total > 1:
        cs = round(short / 19)
        text = f"{index + 1}/{total}"
        tw = r.measure(cs)(text, True)
        pad = cs * 0.35
        counter_w = tw + 2 * pad + m / 2
        x1, y0 = w - m, top
        d.rounded_rectangle([x1 - tw - 2 * pad, y0, x1, y0 + cs * 1.45], radius=cs * 0.3,
                            outline=fg, width=max(2, r.line * 3))
        box = r.draw_line(d, Line([(text, True)], tw), x1 - tw - pad, y0, cs,
                          round(cs * 1.45), fill=fg, bold=True)
        box.kind = "counter"
        boxes.append(box)

    # -- the heading: ⚠ 暴雨红色预警 [Ⅰ级] -----------------------------------------------------
    hs = round(short * 0.12)
    head = r.clean(heading(alert))
    grade = GRADES.get(_level(alert), "")
    gs = round(hs * 0.42)

    def head_width(size: int) -> float:
        return size * 1.12 + size * 0.3 + r.measure(size)(head, True)

    pill_w = r.measure(gs)(grade, True) + gs * 0.9 + hs * 0.3
    room = w - 2 * m - counter_w - pill_w
    while hs > round(short * 0.06) and head_width(hs) > room:
        hs = round(hs * 0.93)
    icon = hs * 0.92
    _warning_sign(d, m, top + (hs * 1.2 - icon) / 2, icon, fg, color, r)
    hx = m + icon * 1.12 + hs * 0.3
    lines = r.wrap([(head, True)], room - (hx - m), hs)
    line = lines[0] if len(lines) == 1 else r._ellipsize(lines[0], int(room - (hx - m)), hs)
    box = r.draw_line(d, line, hx, top, hs, round(hs * 1.2), fill=fg, bold=True)
    box.kind = "heading"
    boxes.append(box)
    if grade:
        gs = round(hs * 0.42)
        gw = r.measure(gs)(grade, True)
        px = hx + line.width + hs * 0.3
        py = top + (hs * 1.2 - gs * 1.5) / 2
        d.rounded_rectangle([px, py, px + gw + gs * 0.9, py + gs * 1.5], radius=gs * 0.3,
                            fill=fg)
        box = r.draw_line(d, Line([(grade, True)], gw), px + gs * 0.45, py, gs,
                          round(gs * 1.5), fill=color, bold=True)
        box.kind = "grade"
        boxes.append(box)
    y = top + round(hs * 1.2) + round(m * 0.15)

    # -- the alert's title -------------------------------------------------------------------
    ts = round(short / 17)
    title = r.clean(str(alert.get("title") or "").replace("\n", " "))
    title = title_beyond_heading(title, head)
    title_w = w - 2 * m
    title_lines = r.wrap([(title, False)], title_w, ts)
    while len(title_lines) > 2 and ts > round(short / 24):
        ts = round(ts * 0.92)
        title_lines = r.wrap([(title, False)], title_w, ts)
    if len(title_lines) > 2:
        title_lines = [title_lines[0], r._ellipsize(title_lines[1], title_w, ts)]
    for tl in title_lines if title else []:
        box = r.draw_line(d, tl, m, y, ts, round(ts * 1.3), fill=fg, bold=False)
        box.kind = "title"
        boxes.append(box)
        y += round(ts * 1.3)
    y += round(m * 0.5)

    # -- the QR card and the footer -------------------------------------------------------------
    fs = max(round(short / 25), 14)
    card = r._qr_card(qr_url, "扫码看详情", str(alert.get("code") or "")) if qr_url else None
    sender = r.clean(str(alert.get("sender_name") or ""))
    issued = local_time(alert.get("issued_at") or alert.get("starts_at"))
    expires = local_time(alert.get("expires_at"))
    parts = [f"发布单位：{sender}" if sender else "",
             f"发布时间：{issued}" if issued else "",
             f"有效期至：{expires}" if expires else ""]
    footer_text = ("\n" if r.portrait else "  ·  ").join(p for p in parts if p)
    flh = round(fs * 1.4)
    if r.portrait or card is None:
        fw = w - 2 * m - (card.width + m if card is not None else 0)
    else:
        fw = w - 2 * m
    footer = r.wrap([(footer_text, False)], fw, fs) if footer_text else []
    footer = footer[:4] if r.portrait else footer[:2]
    card_xy: tuple[float, float] = (0, 0)

    if r.portrait:
        band_h = max(card.height if card else 0, len(footer) * flh)
        band_top = h - m - band_h
        panel_bottom = band_top - m // 2
        panel_right = w - m
        if card is not None:
            card_xy = (w - m - card.width, band_top)
        footer_top = band_top + (band_h - len(footer) * flh) / 2
    else:
        footer_top = h - m * 0.8 - len(footer) * flh
        panel_bottom = round(footer_top - m * 0.4)
        panel_right = w - m - (card.width + m if card is not None else 0)
        if card is not None:
            card_xy = (w - m - card.width, y)
    for fl in footer:
        box = r.draw_line(d, fl, m, footer_top, fs, flh, fill=fg)
        box.kind = "footer"
        boxes.append(box)
        footer_top += flh
    if card is not None:
        border = max(2, r.line * 2)
        cx, cy = card_xy
        d.rectangle([cx - border, cy - border, cx + card.width + border - 1,
                     cy + card.height + border - 1], fill=WHITE)
        img.paste(card, (int(cx), int(cy)))
        boxes += r.card_boxes(card, qr_url, alert.get("code"), int(cx), int(cy))

    # -- the panel: text and instruction -----------------------------------------------------------
    panel = (m, y, panel_right, panel_bottom)
    d.rounded_rectangle(panel, radius=round(m * 0.3), fill=WHITE)
    boxes.append(Box("panel", *panel))
    pad = round(m * 0.55)
    inner_w = panel_right - m - 2 * pad
    inner_h = panel_bottom - y - 2 * pad
    boxes += _panel(r, d, alert, accent, color, m + pad, y + pad, inner_w, inner_h)
    return img, boxes


def _panel(r: Renderer, d: ImageDraw.ImageDraw, alert: dict[str, Any], accent: Color,
           color: Color, x: int, y: int, width: int, height: int) -> list[Box]:
    """Text, then the instruction in a tinted box, at the largest size that fits."""
    short = r.short
    paragraphs = [r.clean(p.strip()) for p in str(alert.get("text") or "").split("\n")]
    paragraphs = [p for p in paragraphs if p]
    instruction = r.clean(" ".join(str(alert.get("instruction") or "").split()))
    numbered = steps(instruction)
    size = round(short / 14)
    smallest = max(round(short / 25), r.body_size)
    bar = max(4, round(short / 120))
    while True:
        lh = round(size * 1.45)
        para_gap = round(size * 0.35)
        text_lines = [r.wrap([(p, False)], width, size) for p in paragraphs]
        label_size = round(size * 0.9)
        ins_pad = round(size * 0.35)
        ins_w = width - bar - 2 * ins_pad
        ins_lines: list[Line] = []
        ins_meta: list[tuple[float, str]] = []  # (indent, number drawn before the line)
        indent = max((r.measure(size)(f"{n} ", True) for n, _t in numbered), default=0)
        for number, text in numbered:
            lead = indent if number else 0
            wrapped = r.wrap([(text, True)], ins_w - lead, size)
            ins_lines += wrapped
            ins_meta += [(lead, number if k == 0 else "") for k in range(len(wrapped))]
        text_h = sum(len(ls) * lh for ls in text_lines) + para_gap * max(0, len(text_lines) - 1)
        ins_h = (round(label_size * 1.4) + len(ins_lines) * lh + 2 * ins_pad) if ins_lines else 0
        gap = round(size * 0.6) if ins_lines and text_lines else 0
        if text_h + gap + ins_h <= height or size <= smallest:
            break
        size = max(smallest, round(size * 0.92))

    flat_text: list[tuple[Line, int]] = []  # (line, gap above)
    for n, ls in enumerate(text_lines):
        for k, line in enumerate(ls):
            flat_text.append((line, para_gap if n and k == 0 else 0))
    if text_h + gap + ins_h > height:
        # Too long even at the smallest size: keep the instruction (what to do) whole if it
        # fits in two thirds of the panel, and cut the text before it, each ending with "…".
        ins_fixed = round(label_size * 1.4) + 2 * ins_pad
        ins_room = max(0, min(ins_h, height * 2 // 3) - ins_fixed) if ins_lines else 0
        keep_ins = min(len(ins_lines), ins_room // lh)
        if keep_ins < len(ins_lines) and keep_ins > 0:
            lead = ins_meta[keep_ins - 1][0]
            ins_lines = [*ins_lines[:keep_ins - 1], r._ellipsize(ins_lines[keep_ins - 1],
                                                                   int(ins_w - lead), size)]
        else:
            ins_lines = ins_lines[:keep_ins]
        ins_meta = ins_meta[:len(ins_lines)]
        ins_h = (ins_fixed + len(ins_lines) * lh) if ins_lines else 0
        gap = round(size * 0.6) if ins_lines and flat_text else 0
        room = height - ins_h - gap
        kept: list[tuple[Line, int]] = []
        used = 0
        for line, g in flat_text:
            if used + g + lh > room:
                break
            kept.append((line, g))
            used += g + lh
        if len(kept) < len(flat_text) and kept:
            last, g = kept[-1]
            kept[-1] = (r._ellipsize(last, width, size), g)
        flat_text = kept

    boxes: list[Box] = []
    for line, g in flat_text:
        y += g
        box = r.draw_line(d, line, x, y, size, lh, fill=TEXT, bold=False)
        box.kind = "text"
        boxes.append(box)
        y += lh
    if ins_lines:
        y += gap
        d.rectangle([x, y, x + width, y + ins_h], fill=tint(color, 0.16))
        d.rectangle([x, y, x + bar, y + ins_h], fill=accent)
        iy = y + ins_pad
        label = Line([(LABEL, True)], r.measure(label_size)(LABEL, True))
        box = r.draw_line(d, label, x + bar + ins_pad, iy, label_size, round(label_size * 1.4),
                          fill=accent, bold=True)
        box.kind = "label"
        boxes.append(box)
        iy += round(label_size * 1.4)
        for line, (lead, number) in zip(ins_lines, ins_meta, strict=True):
            lx = x + bar + ins_pad
            if number:
                mark = Line([(number, True)], r.measure(size)(number, True))
                box = r.draw_line(d, mark, lx, iy, size, lh, fill=accent, bold=True)
                box.kind = "step"
                boxes.append(box)
            box = r.draw_line(d, line, lx + lead, iy, size, lh, fill=TEXT, bold=True)
            box.kind = "instruction"
            boxes.append(box)
            iy += lh
    return boxes
