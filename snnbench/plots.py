"""Pareto plots: accuracy against latency (T), synaptic operations or energy; one line per method, error bars
of the 95 % CI over seeds, the front marked, published points in their method's colour.

The front is :func:`snnbench.leaderboard.pareto_front`, the leaderboard's own rule: a ranked row is on it
unless another row of equal-or-lower cost has its whole 95 % CI above this row's; rows at chance or without an
interval are never on it. The dashed step line is only a guide: the best mean at each cost among the front's
rows.

:func:`plot_data` decides what is drawn (series, front, published points, y-range, clipped points) once;
:func:`pareto` draws it with matplotlib (PNG + SVG) and :mod:`snnbench.report` with Plotly (HTML).
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from snnbench.leaderboard import pareto_front
from snnbench.records import atomic_write_bytes
from snnbench.suite import ReferenceRow, Suite


def best_so_far(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The step line's corners: the points ``(cost, mean)`` whose mean is higher than every point's of
    lower-or-equal cost (one per cost), by cost."""
    line: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not line or y > line[-1][1]:
            line.append((x, y))
    return line


AXES = {
    "T": ("T", "time steps T (latency)"),
    "sops": ("synops_per_sample_mean", "synaptic operations per sample (ACs + MACs)"),
    "energy": ("energy_nj_mean", "estimated energy per sample (nJ)"),
}
# matplotlib's tab10, then ten more distinct hues: a method keeps its colour on every plot and page
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
    "#756bb1", "#636363",
]  # fmt: skip
MARKERS = "osD^vP*Xh<>"
DODGE = 0.035  # horizontal separation of points stacked on one x, in decades of the log axis ...
DODGE_WIDTH = 0.12  # ... at most this wide in all (decades), however many points share the x
FRONT_LABEL = "Pareto front (no row of ≤ cost separably above, 95 % CI)"
BEST_LABEL = "best mean at ≤ cost (front rows)"
SHOWN_BELOW_FRONT = 25.0  # top-1 points (%) shown below the lowest front point; lower ones are clipped


@dataclass
class Series:
    """One method's points: x as measured, x as drawn (stacked points dodged apart), top-1 mean ± the
    half-width of its 95 % CI (0 where there is none)."""

    name: str
    colour: str
    marker: str
    x: list[float]
    x_drawn: list[float]
    y: list[float]
    ci: list[float]
    T: list[int]
    n: list[int]


@dataclass
class Published:
    """A published figure placed on the plot, in the colour of the method it reports."""

    algorithm: str
    colour: str
    T: float
    top1: float
    std: float | None
    label: str


@dataclass
class PlotData:
    """Everything a Pareto plot shows, independent of the drawing library."""

    column: str
    x_label: str
    title: str
    subtitle: str
    series: list[Series]
    front: list[tuple[float, float]]  # (x drawn, top-1) of the rows on the front (95 % CI rule)
    best: list[tuple[float, float]]  # (x drawn, top-1): the step line, the best front mean at each cost
    published: list[Published]
    y_range: tuple[float, float] | None
    clipped: list[tuple[str, float, float]] = field(default_factory=list)  # (method, x drawn, y) below range


def colours(names: list[str]) -> dict[str, str]:
    """A stable colour per method name (sorted order)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(set(names)))}


def _dodged(points: list[tuple[int, float]]) -> dict[int, float]:
    """Spread points sharing one x symmetrically around it on the log axis: {point index: drawn x}."""
    by_x: dict[float, list[int]] = {}
    for i, x in points:
        by_x.setdefault(x, []).append(i)
    drawn = {}
    for x, members in by_x.items():
        step = min(DODGE, DODGE_WIDTH / max(len(members) - 1, 1))
        for j, i in enumerate(members):
            drawn[i] = x * 10 ** (step * (j - (len(members) - 1) / 2))
    return drawn


def _y_range(front: list[float], points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Top-1 range shown: every point (± CI) within ``SHOWN_BELOW_FRONT`` of the lowest front or published
    point, up to 100; points further below are drawn clipped on the bottom edge."""
    if not front:
        return None
    floor = min(front) - SHOWN_BELOW_FRONT
    low = min(y - s for y, s in points if y >= floor)
    span = max(100.0 - low, 5.0)
    return max(0.0, low - 0.06 * span), 100.0 + 0.03 * span


def _published_label(row: ReferenceRow) -> str:
    rule = "selection not stated" if row.selection == "unknown" else row.selection
    return f"{row.algorithm} (published, {rule})"


def plot_data(table: pd.DataFrame, suite: Suite, x: str = "T", track: str | None = None) -> PlotData:
    """What the Pareto plot of accuracy against ``x`` (``T``, ``sops`` or ``energy``) shows for the rows of
    one ``track`` (published points only beside the official track, whose set-ups they report)."""
    column, x_label = AXES[x]
    if column not in table:
        table = table.assign(**{column: float("nan")})
    ok = table.dropna(subset=[column, "top1_mean"])
    palette = colours(list(table["algorithm"]) + [r.algorithm for r in suite.reference])
    groups = [(name, g.sort_values(column)) for name, g in ok.groupby("algorithm", sort=True)]
    flat = [(name, float(v)) for name, g in groups for v in g[column]]
    drawn = _dodged([(i, v) for i, (_, v) in enumerate(flat)])
    series, offset = [], 0
    for k, (name, g) in enumerate(groups):
        series.append(
            Series(
                name=str(name),
                colour=palette[name],
                marker=MARKERS[k % len(MARKERS)],
                x=[float(v) for v in g[column]],
                x_drawn=[drawn[offset + j] for j in range(len(g))],
                y=[float(v) for v in g["top1_mean"]],
                ci=[0.0 if math.isnan(s) else float(s) for s in g["top1_ci95"]],
                T=[int(t) for t in g["T"]],
                n=[int(n) for n in g["n"]],
            )
        )
        offset += len(g)
    # the rows in the order of the series' points: (x drawn, top-1 mean, interval or None when unranked)
    rows = [
        (
            drawn[i],
            float(r["top1_mean"]),
            None if pd.isna(r["rank"]) else (r["top1_ci_low"], r["top1_ci_high"]),
        )
        for i, r in enumerate(r for _, g in groups for r in g.to_dict("records"))
    ]
    measured = [x for _, g in groups for x in g[column]]
    ranked = [i for i, (_, _, interval) in enumerate(rows) if interval is not None]
    on_front = [
        ranked[k]
        for k in pareto_front([(float(measured[i]), *rows[i][2]) for i in ranked])  # type: ignore[misc]
    ]
    front = sorted((rows[i][0], rows[i][1]) for i in on_front)
    best = best_so_far(front)
    published = [
        Published(r.algorithm, palette[r.algorithm], float(r.T), r.top1, r.top1_std, _published_label(r))
        for r in suite.reference
        if x == "T" and r.T is not None and track in (None, "official")
    ]
    points = [(y, ci) for s in series for y, ci in zip(s.y, s.ci, strict=True)]
    points += [(p.top1, p.std or 0.0) for p in published]
    y_range = _y_range([y for _, y in front] + [p.top1 for p in published], points)
    clipped = [
        (s.name, dx, y)
        for s in series
        for dx, y in zip(s.x_drawn, s.y, strict=True)
        if y_range is not None and y < y_range[0]
    ]
    subtitle = ""
    if x == "energy":
        subtitle = (
            f"E = ACs × {suite.energy.e_ac_pj:g} pJ + MACs × {suite.energy.e_mac_pj:g} pJ "
            "(32-bit float add / multiply-add, 45 nm, Horowitz 2014)"
        )
    what = "latency" if x == "T" else x_label.split(" per ")[0]
    title = f"{suite.name}{f' ({track} track)' if track else ''}: accuracy vs {what}"
    return PlotData(column, x_label, title, subtitle, series, front, best, published, y_range, clipped)


def clipped_note(data: PlotData, name: str) -> str:
    """What a method's legend entry adds for its points below the shown range (drawn as ▼ on the bottom
    edge, unlabelled on the plot, so that no label overlaps another): their count and top-1 range."""
    ys = [y for n, _, y in data.clipped if n == name]
    if not ys:
        return ""
    span = f"{min(ys):.1f}" if min(ys) == max(ys) else f"{min(ys):.1f}–{max(ys):.1f}"
    return f" (▼ {len(ys)} below: {span} %)"


def overlapping_texts(fig: Any) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts of a drawn figure whose extents intersect, and texts reaching
    outside the figure (paired with ``"<figure edge>"``): empty for a legible plot."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    edge = fig.bbox
    undrawn = set()  # tick labels of ticks outside the view: kept by matplotlib, never drawn
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            ticks = [*zip(axis.get_major_ticks(), axis.get_majorticklocs(), strict=False)]
            ticks += zip(axis.get_minor_ticks(), axis.get_minorticklocs(), strict=False)
            for tick, loc in ticks:
                if not low - 1e-9 * abs(high - low) <= loc <= high + 1e-9 * abs(high - low):
                    undrawn |= {id(tick.label1), id(tick.label2)}
    boxes = []
    for text in fig.findobj(Text):
        if id(text) in undrawn or not text.get_visible() or not text.get_text().strip():
            continue
        boxes.append((text.get_text(), text.get_window_extent(renderer)))
    problems = []
    for i, (a, box) in enumerate(boxes):
        if (
            box.x0 < edge.x0 - 0.5
            or box.y0 < edge.y0 - 0.5
            or box.x1 > edge.x1 + 0.5
            or box.y1 > edge.y1 + 0.5
        ):
            problems.append((a, "<figure edge>"))
        problems += [(a, b) for b, other in boxes[i + 1 :] if box.overlaps(other)]
    return problems


def _declutter(texts: list[Any], renderer: Any) -> None:
    """Hide each text (tick labels, in order) that would overlap one kept before it."""
    kept: list[Any] = []
    for text in texts:
        if not text.get_visible() or not text.get_text():
            continue
        box = text.get_window_extent(renderer)
        if any(box.overlaps(other) for other in kept):
            text.set_visible(False)
        else:
            kept.append(box)


def figure(data: PlotData, x: str = "T") -> Any:
    """The matplotlib figure of a Pareto plot (legend outside the axes, no overlapping texts)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "snnbench"  # deterministic SVG ids: committed plots can be checked
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.0, 5.4), dpi=150)
    for s in data.series:
        ax.errorbar(
            s.x_drawn,
            s.y,
            yerr=s.ci,
            marker=s.marker,
            markersize=5,
            capsize=3,
            linewidth=1.4,
            color=s.colour,
            label=s.name + clipped_note(data, s.name),
        )
    if data.front:
        xs, ys = zip(*data.best, strict=True)
        ax.step(xs, ys, where="post", color="black", linestyle="--", linewidth=1, alpha=0.6, label=BEST_LABEL)
        xs, ys = zip(*data.front, strict=True)
        ax.scatter(
            xs, ys, s=150, facecolors="none", edgecolors="black", linewidths=1.2, zorder=5, label=FRONT_LABEL
        )
    for p in data.published:
        ax.errorbar(
            [p.T], [p.top1], yerr=[p.std or 0.0], marker="*", markersize=11, color=p.colour,
            markeredgecolor="black", markeredgewidth=0.6, linestyle="none", capsize=3, label=p.label,
        )  # fmt: skip
    if data.y_range is not None:
        ax.set_ylim(*data.y_range)
        colour = {s.name: s.colour for s in data.series}
        for name, dx, _ in data.clipped:  # below the range: a ▼ on the bottom edge, the values in the legend
            ax.plot([dx], [data.y_range[0]], marker="v", markersize=6, color=colour[name], clip_on=False,
                    markeredgecolor="black", markeredgewidth=0.4, zorder=6)  # fmt: skip
    values = sorted({v for s in data.series for v in s.x})
    if x == "T" and values:
        ax.set_xscale("log", base=2)
        ax.set_xticks(values)
        ax.set_xticklabels([str(int(v)) for v in values])
        ax.minorticks_off()
    elif values:
        ax.set_xscale("log")
    if values and values[0] > 0 and values[-1] / values[0] < 2:  # a readable span
        ax.set_xlim(values[0] / 1.6, values[-1] * 1.6)
    ax.set_xlabel(data.x_label)
    ax.set_ylabel("top-1 accuracy (%), final epoch, mean ± 95 % CI")
    title = data.title + (f"\n{textwrap.fill(data.subtitle, 80)}" if data.subtitle else "")
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    else:
        ax.text(
            0.5, 0.5, f"no records carry {data.column}", transform=ax.transAxes, ha="center", color="grey"
        )
    fig.tight_layout()
    fig.canvas.draw()
    _declutter(ax.get_xticklabels(which="both"), fig.canvas.get_renderer())  # e.g. T = 16 and 20 side by side
    return fig


def _save(fig: Any, stem: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    try:
        for path in paths:  # rendered in memory, then written atomically: never a torn plot
            buffer = io.BytesIO()
            fig.savefig(
                buffer, format=path.suffix[1:], metadata={"Date": None} if path.suffix == ".svg" else None
            )
            atomic_write_bytes(path, buffer.getvalue())
    finally:
        plt.close(fig)
    return paths


def pareto(
    table: pd.DataFrame, suite: Suite, stem: Path, x: str = "T", track: str | None = None
) -> list[Path]:
    """Draw ``stem.png`` and ``stem.svg`` of accuracy against ``x`` (``T``, ``sops`` or ``energy``) for one
    track's rows."""
    return _save(figure(plot_data(table, suite, x, track), x), stem)


@dataclass
class Cell:
    """One method at one T in the method × T matrix: top-1 mean ± CI half-width over n seeds and its state:
    ``best`` (rank 1 at this T: no row of this T separably above), ``ranked``, ``chance`` (at chance,
    unranked, greyed) or ``few`` (fewer than two ok seeds, unranked)."""

    mean: float
    ci: float
    n: int
    state: str


@dataclass
class Matrix:
    """The method × T matrix of one track: methods (best top-1 first, methods only at chance last) by T."""

    title: str
    methods: list[str]
    Ts: list[int]
    cells: dict[tuple[str, int], Cell]


def matrix_data(table: pd.DataFrame, suite: Suite, track: str | None = None) -> Matrix:
    """The per-T view of one track's rows as a method × T matrix (the leaderboard's ranks at each T)."""
    cells = {}
    for r in table.to_dict("records"):
        if r["at_chance"]:
            state = "chance"
        elif pd.isna(r["rank_at_T"]):
            state = "few"
        else:
            state = "best" if int(r["rank_at_T"]) == 1 else "ranked"
        ci = 0.0 if pd.isna(r["top1_ci95"]) else float(r["top1_ci95"])
        cells[(str(r["algorithm"]), int(r["T"]))] = Cell(float(r["top1_mean"]), ci, int(r["n"]), state)
    best = {}
    for (name, _), cell in cells.items():
        score = -1.0 if cell.state == "chance" else cell.mean
        best[name] = max(best.get(name, -2.0), score)
    methods = sorted(best, key=lambda name: (-best[name], name))
    title = f"{suite.name}{f' ({track} track)' if track else ''}: top-1 (%) by method and T"
    return Matrix(title, methods, sorted({T for _, T in cells}), cells)


MATRIX_NOTE = (
    "mean ± 95 % CI; boxed, bold: rank 1 at its T (no row of that T separably above); grey: at chance"
)


def matrix_figure(data: Matrix) -> Any:
    """The matplotlib figure of the method × T matrix: cells shaded by top-1 (chance rows grey)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "snnbench"
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    width, height = 1.6 + 0.95 * len(data.Ts), 1.3 + 0.32 * len(data.methods)
    fig, ax = plt.subplots(figsize=(max(width, 6.5), height), dpi=150)
    shown = [c.mean for c in data.cells.values() if c.state != "chance"]
    low, high = (min(shown), max(shown)) if shown else (0.0, 100.0)
    cmap = matplotlib.colormaps["YlGn"]
    for i, name in enumerate(data.methods):
        for j, T in enumerate(data.Ts):
            cell = data.cells.get((name, T))
            if cell is None:
                continue
            if cell.state == "chance":
                face, colour, text = "#e6e6e6", "#8a8a8a", f"{cell.mean:.1f}\nchance"
            else:
                shade = 0.1 + 0.55 * ((cell.mean - low) / (high - low) if high > low else 1.0)
                face, colour = cmap(shade), "black"
                text = f"{cell.mean:.1f}" + (f"\n± {cell.ci:.1f}" if cell.state != "few" else "\nn < 2")
            best = cell.state == "best"
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor=face, edgecolor="black" if best else "white",
                                   linewidth=1.6 if best else 0.8, zorder=2 if best else 1))  # fmt: skip
            ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=6.5, color=colour,
                    fontweight="bold" if best else "normal", linespacing=1.0, zorder=3)  # fmt: skip
    ax.set_xlim(0, len(data.Ts))
    ax.set_ylim(len(data.methods), 0)
    ax.set_xticks([j + 0.5 for j in range(len(data.Ts))], [str(T) for T in data.Ts])
    ax.set_yticks([i + 0.5 for i in range(len(data.methods))], data.methods, fontsize=7.5)
    ax.tick_params(length=0)
    ax.xaxis.set_ticks_position("top")
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("time steps T")
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(data.title, fontsize=10, loc="left", pad=24)
    fig.text(0.01, 0.01, MATRIX_NOTE, fontsize=6.5, color="dimgrey", va="bottom")  # descenders inside
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def matrix(table: pd.DataFrame, suite: Suite, stem: Path, track: str | None = None) -> list[Path]:
    """Draw ``stem.png`` and ``stem.svg``: the method × T matrix of one track's rows."""
    return _save(matrix_figure(matrix_data(table, suite, track)), stem)
