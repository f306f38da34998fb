"""Charts as inline SVG, drawn on the server: no script, no chart library, no CDN.

Pure functions: figures in, markup out. Each chart is an image with a title and a description
(`role="img"`, `aria-labelledby`); the page puts the same numbers beside it in a table, which
is what a screen reader reads. Every piece of text is escaped (course titles may hold < & ").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

# The kiosk.css colours, written out: an SVG attribute cannot read a CSS variable in every
# renderer. Each has at least 3:1 against the white background (WCAG 1.4.11).
BAR = "#0b5563"  # --p, 8.0:1
OVER = "#9a4a00"  # --acc, 6.0:1: seats kept above a lowered cap
INK = "#1b1f23"  # --ink, for text
LINE = "#5b6670"  # --line, 5.9:1: axes and the gauge's outline
TRACK = "#e3f1f3"  # --pl: the empty part of the gauge (its outline carries the contrast)
FONT = 'font-family="system-ui, sans-serif" font-size="13"'

Number = int | float
Formatter = Callable[[Number], str]


def _text(value: object) -> str:
    return str(escape(str(value)))


def _short(label: str, limit: int) -> str:
    """A label cut to fit beside the bars; the table and the bar's tooltip have it whole."""
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


def _open(chart_id: str, title: str, desc: str, width: int, height: int) -> str:
    cid = _text(chart_id)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'preserveAspectRatio="xMinYMin meet" aria-labelledby="{cid}-title {cid}-desc">'
            f'<title id="{cid}-title">{_text(title)}</title>'
            f'<desc id="{cid}-desc">{_text(desc)}</desc>')


def _scale(values: Sequence[Number]) -> Number:
    top = max(values, default=0)
    return top if top > 0 else 1


def bar_chart(chart_id: str, title: str, desc: str, bars: Sequence[tuple[str, Number]], *,
              fmt: Formatter = str, width: int = 640, label_width: int = 230,
              bar_height: int = 20, gap: int = 8) -> Markup:
    """Horizontal bars, one per (label, value), in the order given, labels on the left and
    the value at the end of each bar."""
    value_room = 70
    plot = width - label_width - value_room
    top = _scale([v for _label, v in bars])
    height = max(1, len(bars)) * (bar_height + gap) + gap
    parts = [_open(chart_id, title, desc, width, height), f'<g {FONT} fill="{INK}">']
    for i, (label, value) in enumerate(bars):
        y = gap + i * (bar_height + gap)
        length = round(plot * value / top, 1)
        middle = y + bar_height / 2
        parts.append(
            f'<g><title>{_text(label)}: {_text(fmt(value))}</title>'
            f'<text x="{label_width - 8}" y="{middle}" text-anchor="end" '
            f'dominant-baseline="middle">{_text(_short(label, 32))}</text>'
            f'<rect x="{label_width}" y="{y}" width="{length}" height="{bar_height}" '
            f'fill="{BAR}"/>'
            f'<text x="{label_width + length + 6}" y="{middle}" '
            f'dominant-baseline="middle">{_text(fmt(value))}</text></g>')
    parts.append(f'<line x1="{label_width}" y1="0" x2="{label_width}" y2="{height}" '
                 f'stroke="{LINE}" stroke-width="1"/></g></svg>')
    return Markup("".join(parts))


def column_chart(chart_id: str, title: str, desc: str, columns: Sequence[tuple[str, Number]],
                 *, fmt: Formatter = str, label_every: int = 7, width: int = 640,
                 height: int = 220) -> Markup:
    """Columns over days (or any sequence), oldest left; every `label_every`th column is
    labelled below the axis, counting back from the last so today always is."""
    left, right, top_room, bottom = 44, 24, 16, 28
    plot_w, plot_h = width - left - right, height - top_room - bottom
    top = _scale([v for _label, v in columns])
    step = plot_w / max(1, len(columns))
    base = top_room + plot_h
    parts = [_open(chart_id, title, desc, width, height), f'<g {FONT} fill="{INK}">',
             # The scale: the highest value and zero, with a faint line at the top.
             f'<text x="{left - 6}" y="{top_room}" text-anchor="end" '
             f'dominant-baseline="middle">{_text(fmt(top))}</text>',
             f'<text x="{left - 6}" y="{base}" text-anchor="end" '
             f'dominant-baseline="middle">{_text(fmt(0))}</text>',
             f'<line x1="{left}" y1="{top_room}" x2="{width - right}" y2="{top_room}" '
             f'stroke="{LINE}" stroke-width="1" stroke-dasharray="3 3"/>']
    last = len(columns) - 1
    for i, (label, value) in enumerate(columns):
        x = round(left + i * step, 2)
        h = round(plot_h * value / top, 2)
        parts.append(f'<g><title>{_text(label)}: {_text(fmt(value))}</title>'
                     f'<rect x="{x + step * 0.1:.2f}" y="{base - h:.2f}" '
                     f'width="{step * 0.8:.2f}" height="{h}" fill="{BAR}"/></g>')
        if (last - i) % label_every == 0:
            parts.append(f'<text x="{x + step / 2:.2f}" y="{base + 18}" '
                         f'text-anchor="middle">{_text(label)}</text>')
    parts.append(f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" '
                 f'stroke="{LINE}" stroke-width="1"/></g></svg>')
    return Markup("".join(parts))


def gauge(chart_id: str, title: str, desc: str, value: Number, maximum: Number, *,
          caption: str = "", width: int = 640, height: int = 56) -> Markup:
    """A progress bar: `value` of `maximum`. Past the maximum (seats kept above a lowered
    cap) the bar is full and the part above is drawn in the warning colour."""
    bar_y, bar_h = 4, 28
    full = width - 2
    if maximum > 0:
        filled = full * min(value, maximum) / maximum
        over = full * (value - maximum) / value if value > maximum else 0
    else:
        filled, over = (full if value > 0 else 0), (full if value > 0 else 0)
    parts = [_open(chart_id, title, desc, width, height),
             f'<rect x="1" y="{bar_y}" width="{full}" height="{bar_h}" rx="4" fill="{TRACK}" '
             f'stroke="{LINE}" stroke-width="2"/>',
             f'<rect x="1" y="{bar_y}" width="{filled:.1f}" height="{bar_h}" rx="4" '
             f'fill="{BAR}"/>']
    if over:
        parts.append(f'<rect x="{1 + full - over:.1f}" y="{bar_y}" width="{over:.1f}" '
                     f'height="{bar_h}" fill="{OVER}"/>')
    if caption:
        parts.append(f'<text x="1" y="{bar_y + bar_h + 18}" {FONT} '
                     f'fill="{INK}">{_text(caption)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
