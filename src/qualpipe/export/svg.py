"""Small plotting helpers that return inline SVG (no matplotlib, no network).

The SVG is meant to be pasted into an HTML page: no ``xmlns`` (HTML5 does not need it
and the report must not contain any URL), every text escaped, sizes in a ``viewBox`` so
the figure scales with the page and prints sharply. Text widths are estimated from the
character count (there are no font metrics here), so labels are wrapped generously.

* :func:`grouped_hbar` - horizontal grouped bars (one group per category, one bar per
  series), shares 0..1 with value labels, x axis in per cent, legend;
* :func:`heatmap` - a matrix of counts with row/column labels, optional column groups
  (e.g. participants grouped by role) and a legend of colour classes;
* :func:`shade` - the background colour of a value on the sequential scale, for HTML
  tables shaded the same way.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#555555",
)  # fmt: skip

#: Sequential scale (light to dark blue) for heatmaps and shaded tables.
SEQUENTIAL = ("#eef4fa", "#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c", "#08306b")
EMPTY = "#f2f2f2"
INK = "#222222"
MUTED = "#666666"
GRID = "#d9d9d9"

CHAR_W = 0.58  # average glyph width of a sans-serif face, in em


def esc(value: object) -> str:
    """Escape any value for SVG/HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def text_width(text: str, size: float) -> float:
    """Estimated rendered width of ``text`` at font size ``size`` (px)."""
    return len(text) * size * CHAR_W


def wrap(text: str, width: int, max_lines: int = 3) -> list[str]:
    """Split ``text`` into lines of at most ``width`` characters (at spaces when possible);
    the last line ends in an ellipsis when text is left over."""
    words = text.split()
    lines: list[str] = []
    line = ""
    for word in words:
        while len(word) > width:  # a very long word: cut it
            if line:
                lines.append(line)
                line = ""
            lines.append(word[: width - 1] + "-")
            word = word[width - 1 :]
        candidate = f"{line} {word}".strip()
        if len(candidate) <= width:
            line = candidate
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        lines = [*lines[: max_lines - 1], last[: max(1, width - 1)].rstrip() + "…"]
    return lines or [""]


def shade(value: float, vmax: float) -> str:
    """Colour of ``value`` on the sequential scale from 0 to ``vmax`` (0 is :data:`EMPTY`)."""
    if value <= 0 or vmax <= 0:
        return EMPTY
    step = min(len(SEQUENTIAL) - 1, math.ceil(value / vmax * len(SEQUENTIAL)) - 1)
    return SEQUENTIAL[max(0, step)]


def ink_on(background: str) -> str:
    """Black or white text, whichever reads better on ``background`` (#rrggbb)."""
    r, g, b = (int(background[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#ffffff" if luminance < 140 else INK


def _text(
    x: float,
    y: float,
    content: str,
    size: float = 12,
    anchor: str = "start",
    fill: str = INK,
    weight: str = "normal",
    extra: str = "",
) -> str:
    attrs = f'x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" fill="{fill}"'
    if anchor != "start":
        attrs += f' text-anchor="{anchor}"'
    if weight != "normal":
        attrs += f' font-weight="{weight}"'
    return f"<text {attrs}{extra}>{esc(content)}</text>"


def _svg(width: float, height: float, label: str, body: Sequence[str], cls: str) -> str:
    return (
        f'<svg class="{esc(cls)}" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
        f'height="{height:.0f}" role="img" aria-label="{esc(label)}" '
        "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, "
        f'sans-serif"><title>{esc(label)}</title>' + "".join(body) + "</svg>"
    )


@dataclass(frozen=True)
class Series:
    """One series of a grouped bar chart (e.g. a role) with its group size."""

    name: str
    total: int | None = None
    colour: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} (n = {self.total})" if self.total is not None else self.name


def grouped_hbar(
    categories: Sequence[str],
    series: Sequence[Series],
    shares: Mapping[tuple[str, str], float],
    counts: Mapping[tuple[str, str], int] | None = None,
    *,
    title: str,
    x_label: str,
    width: int = 900,
    label_chars: int = 30,
) -> str:
    """Horizontal grouped bars: for each category (row group) one bar per series.

    ``shares[(category, series name)]`` is a value in 0..1 drawn as per cent;
    ``counts`` (optional) adds the count to the value label: ``83% (5/6)``. Every bar
    is a ``<rect class="bar" data-category=... data-series=...>`` with a tooltip.
    """
    counts = counts or {}
    font = 13.0
    bar_h, bar_gap, group_gap = 16.0, 3.0, 16.0
    label_lines = {c: wrap(c, label_chars) for c in categories}
    left = 24 + max(
        [text_width(line, font) for lines in label_lines.values() for line in lines] or [80.0]
    )
    left = min(left, width * 0.4)
    right = 104.0  # room for "100% (12/12)"
    plot_w = width - left - right
    colours = [s.colour or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]

    # legend: swatches in rows that fit the width
    legend: list[str] = []
    lx, ly = left, 22.0
    for s, colour in zip(series, colours, strict=True):
        item_w = 22 + text_width(s.label, font) + 24
        if lx + item_w > width and lx > left:
            lx, ly = left, ly + 22
        legend.append(
            f'<rect x="{lx:.1f}" y="{ly - 11:.1f}" width="14" height="14" fill="{colour}" rx="2"/>'
        )
        legend.append(_text(lx + 20, ly, s.label, font))
        lx += item_w
    top = ly + 22

    body: list[str] = []
    y = top
    group_h = len(series) * bar_h + (len(series) - 1) * bar_gap
    for ci, cat in enumerate(categories):
        if ci % 2 == 1:  # zebra band helps the eye across the row group
            body.append(
                f'<rect x="0" y="{y - group_gap / 2:.1f}" width="{width}" '
                f'height="{group_h + group_gap:.1f}" fill="#f6f8fa"/>'
            )
        lines = label_lines[cat]
        ty = y + group_h / 2 - (len(lines) - 1) * font * 0.6 + font * 0.35
        for i, line in enumerate(lines):
            body.append(_text(left - 10, ty + i * font * 1.2, line, font, "end"))
        for si, (s, colour) in enumerate(zip(series, colours, strict=True)):
            by = y + si * (bar_h + bar_gap)
            share = max(0.0, min(1.0, float(shares.get((cat, s.name), 0.0))))
            w = share * plot_w
            n = counts.get((cat, s.name))
            value = f"{share * 100:.0f}%" + (
                f" ({n}/{s.total})" if n is not None and s.total is not None else ""
            )
            tip = f"{cat} – {s.name}: {value}"
            body.append(
                f'<rect class="bar" data-category="{esc(cat)}" data-series="{esc(s.name)}" '
                f'x="{left:.1f}" y="{by:.1f}" width="{max(w, 0.0):.1f}" height="{bar_h:.1f}" '
                f'fill="{colour}"><title>{esc(tip)}</title></rect>'
            )
            body.append(_text(left + w + 5, by + bar_h - 4, value, font - 1, fill=INK))
        y += group_h + group_gap
    bottom = y - group_gap / 2

    axis: list[str] = []
    for tick in range(0, 101, 20):
        x = left + plot_w * tick / 100
        axis.append(
            f'<line x1="{x:.1f}" y1="{top - 8:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
        )
        axis.append(_text(x, bottom + 18, f"{tick}%", font - 1, "middle", MUTED))
    axis.append(
        f'<line x1="{left:.1f}" y1="{top - 8:.1f}" x2="{left:.1f}" y2="{bottom:.1f}" '
        f'stroke="{INK}" stroke-width="1"/>'
    )
    axis.append(
        f'<line x1="{left:.1f}" y1="{bottom:.1f}" x2="{left + plot_w:.1f}" y2="{bottom:.1f}" '
        f'stroke="{INK}" stroke-width="1"/>'
    )
    axis.append(_text(left + plot_w / 2, bottom + 40, x_label, font, "middle"))
    height = bottom + 54
    # gridlines first, bars over them, legend on top
    return _svg(width, height, title, [*axis[:-3], *body, *axis[-3:], *legend], "chart hbar")


def heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    values: Mapping[tuple[str, str], float],
    *,
    title: str,
    row_title: str = "",
    column_title: str = "",
    column_groups: Sequence[tuple[str, int]] = (),
    value_name: str = "count",
    width: int = 900,
    label_chars: int = 34,
) -> str:
    """A matrix of non-negative values: ``values[(row, column)]`` (missing = 0).

    ``column_groups`` lists consecutive column groups as (name, number of columns): a
    coloured band above the columns names each group (e.g. participants by role).
    Every cell is a ``<rect class="cell" data-row=... data-column=... data-value=...>``.
    """
    font = 13.0
    row_lines = {r: wrap(r, label_chars, 1)[0] for r in rows}
    left = 16 + max([text_width(v, font) for v in row_lines.values()] or [60.0])
    left = min(left, width * 0.35)
    n_cols = max(1, len(columns))
    cell = max(10.0, min(40.0, (width - left - 16) / n_cols))
    # wide enough that each group band can hold its name (few participants per group)
    for name, span in column_groups:
        cell = max(cell, min(90.0, (text_width(name, font - 1) + 20) / max(1, span)))
    col_label_h = 8 + max([text_width(c, font - 1) for c in columns] or [20.0])
    band = 22.0 if column_groups else 0.0
    top = 8 + (16 if column_title else 0) + band + col_label_h
    vmax = max([v for v in values.values() if v > 0] or [0.0])
    show_numbers = cell >= 20

    body: list[str] = []
    if column_title:
        body.append(_text(left, 18, column_title, font, weight="bold"))
    # column group bands
    gx = left
    gy = 8 + (16 if column_title else 0)
    for gi, (name, span) in enumerate(column_groups):
        w = span * cell
        colour = PALETTE[gi % len(PALETTE)]
        body.append(
            f'<rect x="{gx:.1f}" y="{gy:.1f}" width="{w - 1:.1f}" height="{band - 6:.1f}" '
            f'fill="{colour}" rx="2"><title>{esc(name)} ({span})</title></rect>'
        )
        label = name if text_width(name, font - 1) < w - 6 else wrap(name, int(w / 7) or 1, 1)[0]
        body.append(
            _text(gx + w / 2, gy + band - 11, label, font - 1, "middle", ink_on(colour), "bold")
        )
        gx += w
    # column labels, rotated
    for ci, col in enumerate(columns):
        x = left + ci * cell + cell / 2 + 4
        y = top - 6
        body.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{font - 1:g}" fill="{INK}" '
            f'transform="rotate(-90 {x:.1f} {y:.1f})">{esc(col)}</text>'
        )
    for ri, row in enumerate(rows):
        y = top + ri * cell
        body.append(_text(left - 8, y + cell / 2 + font * 0.35, row_lines[row], font, "end"))
        for ci, col in enumerate(columns):
            v = float(values.get((row, col), 0.0))
            fill = shade(v, vmax)
            x = left + ci * cell
            shown = f"{v:g}"
            body.append(
                f'<rect class="cell" data-row="{esc(row)}" data-column="{esc(col)}" '
                f'data-value="{shown}" x="{x:.1f}" y="{y:.1f}" width="{cell - 1:.1f}" '
                f'height="{cell - 1:.1f}" fill="{fill}"><title>{esc(row)} – {esc(col)}: '
                f"{shown} {esc(value_name)}</title></rect>"
            )
            if show_numbers and v > 0:
                body.append(
                    _text(
                        x + (cell - 1) / 2,
                        y + cell / 2 + 4,
                        shown,
                        font - 1 if cell >= 30 else font - 3,
                        "middle",
                        ink_on(fill),
                    )
                )
    bottom = top + len(rows) * cell
    if row_title:
        body.append(_text(8, top - 6, row_title, font, weight="bold"))
    # legend: colour classes with the values they stand for
    ly = bottom + 22
    body.append(_text(left, ly + 11, f"{value_name}:", font, fill=MUTED))
    lx = left + text_width(f"{value_name}:", font) + 10
    for label, colour in legend_classes(vmax):
        body.append(
            f'<rect x="{lx:.1f}" y="{ly:.1f}" width="16" height="14" fill="{colour}" '
            f'stroke="{GRID}"/>'
        )
        body.append(_text(lx + 21, ly + 11, label, font - 1))
        lx += 30 + text_width(label, font - 1)
    height = ly + 24
    total_w = max(width, left + n_cols * cell + 16)
    return _svg(total_w, height, title, body, "chart heatmap")


def legend_classes(vmax: float) -> list[tuple[str, str]]:
    """(label, colour) pairs describing :func:`shade` for values 0..``vmax``."""
    if vmax <= 0:
        return [("0", EMPTY)]
    classes = [("0", EMPTY)]
    n = len(SEQUENTIAL)
    integer = float(vmax).is_integer()
    lo = 0.0
    for i in range(n):
        hi = vmax * (i + 1) / n
        if integer:
            a, b = math.floor(lo) + 1, math.floor(hi)
            if b < a:
                lo = hi
                continue
            label = f"{a}" if a == b else f"{a}–{b}"
        else:
            label = f"≤{hi:.2g}"
        classes.append((label, shade(hi, vmax)))
        lo = hi
    return classes
