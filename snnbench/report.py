"""``snnbench report``: a static, self-contained HTML site built from a suite's records alone.

``index.html`` holds, per track, the sortable and filterable leaderboard, the interactive Pareto plots
(accuracy against T, synaptic operations and energy, drawn from :func:`snnbench.plots.plot_data` like the
PNG/SVG plots) and the published figures; ``runs/<run_id>.html`` holds one run: configuration, fidelity
card, cost metrics, per-epoch curves, provenance and the command that reproduces it. Plotly's basic bundle
(``assets/plotly-basic.min.js``, MIT, 1.2 MB) is copied once into the site, so every page opens from disk
with no server and no network. The output is byte-deterministic, so a committed site can be checked.
"""

from __future__ import annotations

import html
import json
import math
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd

from snnbench.errors import SnnbenchError
from snnbench.latency import SHOWN_WHEN_PRESENT
from snnbench.leaderboard import (
    SETUP_COLUMNS,
    SETUP_LABELS,
    _fmt,
    _fmt_metric,
    _interval,
    _top1,
    by_track,
    has_ties,
    label_tuning,
    machine_legend,
    machine_marks,
    own_cell,
    per_T,
    select_records,
    ties_cell,
    ties_legend,
)
from snnbench.metrics import METRICS
from snnbench.plots import (
    AXES,
    BEST_LABEL,
    FRONT_LABEL,
    MATRIX_NOTE,
    Matrix,
    PlotData,
    clipped_note,
    matrix_data,
    plot_data,
)
from snnbench.records import RunRecord, atomic_write_bytes, read_record
from snnbench.rows import group_rows, machine_counts
from snnbench.suite import TRACKS, Suite
from snnbench.ties import OWN_RULE, RULE, rule_of

ASSETS = Path(__file__).parent / "assets"
COPIED = ["plotly-basic.min.js", "plotly-LICENSE.txt", "site.js", "site.css"]
LEADERBOARD_METRICS = {"spike_rate": "spike rate", "synops_per_sample": "synops", "energy_nj": "energy",
                       "train_time_s": "train time"}  # fmt: skip
_e = html.escape
TOOLBAR = 34  # px at the top of each plot kept for Plotly's toolbar (the mode bar)
PLOT_HEIGHT = 440  # px, at least; taller when the legend needs it
LEGEND_ROW = 21  # px per legend entry (font size 11)
AXES_SHORT = {"T": "T", "synops_per_sample_mean": "synops", "energy_nj_mean": "energy (nJ)"}


def _num(value: Any, digits: int = 2) -> str:
    return _fmt_metric(value) if digits > 2 else _fmt(value, digits)


def _cell(value: Any, digits: int = 2) -> str:
    """A numeric table cell: shown rounded, sorted by its full value (``data-v``; empty when missing)."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return f'<td class="num" data-v="{"" if missing else value}">{_num(value, digits)}</td>'


def _page(title: str, body: str, depth: int = 0) -> str:
    up = "../" * depth
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title>"
        f'<link rel="stylesheet" href="{up}site.css">'
        f'<script src="{up}plotly-basic.min.js"></script><script src="{up}site.js"></script>'
        f"</head>\n<body>\n{body}\n</body></html>\n"
    )


def _plot(target: str, figure: dict[str, Any]) -> str:
    spec = json.dumps(figure, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    height = figure["layout"].get("height")
    style = f' style="height: {height}px"' if height else ""
    return (
        f'<div class="plot" id="{target}"{style}></div>'
        f'<script type="application/json" class="plot" data-target="{target}">{spec}</script>'
    )


def _r(value: float) -> float:
    return float(f"{value:.5g}")


def pareto_figure(data: PlotData) -> dict[str, Any]:
    """A Plotly figure (data + layout) of what :func:`snnbench.plots.pareto` draws as PNG/SVG."""
    traces: list[dict[str, Any]] = []
    for s in data.series:
        text = [
            f"{s.name}<br>T = {t}<br>top-1 {y:.2f} ± {ci:.2f} % (95 % CI, n = {n})<br>"
            f"{AXES_SHORT[data.column]} {_num(x)}"
            for t, y, ci, n, x in zip(s.T, s.y, s.ci, s.n, s.x, strict=True)
        ]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": s.name + clipped_note(data, s.name),
                "x": [_r(v) for v in s.x_drawn],
                "y": [_r(v) for v in s.y],
                "error_y": {"type": "data", "array": [_r(v) for v in s.ci], "visible": True},
                "marker": {"color": s.colour, "size": 7},
                "line": {"color": s.colour},
                "text": text,
                "hovertemplate": "%{text}<extra></extra>",
            }
        )
    if data.front:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": FRONT_LABEL,
                "x": [_r(x) for x, _ in data.front],
                "y": [_r(y) for _, y in data.front],
                "marker": {"symbol": "circle-open", "size": 16, "color": "black"},
                "hoverinfo": "skip",
            }
        )
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": BEST_LABEL,
                "x": [_r(x) for x, _ in data.best],
                "y": [_r(y) for _, y in data.best],
                "line": {"shape": "hv", "dash": "dash", "color": "black", "width": 1},
                "hoverinfo": "skip",
            }
        )
    for p in data.published:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": p.label,
                "x": [p.T],
                "y": [p.top1],
                "error_y": {"type": "data", "array": [p.std or 0.0], "visible": p.std is not None},
                "marker": {"symbol": "star", "size": 14, "color": p.colour, "line": {"width": 1}},
                "hovertemplate": f"{_e(p.label)}<br>T = {p.T:g}<br>top-1 {p.top1:.2f} %<extra></extra>",
            }
        )
    xs = sorted({v for s in data.series for v in s.x})
    xaxis: dict[str, Any] = {"title": {"text": data.x_label}, "type": "log"}
    if data.column == "T" and xs:
        xaxis.update(tickvals=xs, ticktext=[str(int(v)) for v in xs])
    if xs and xs[-1] / xs[0] < 2:  # a readable span, not the dodge's hundredths of a decade
        xaxis["range"] = [_r(math.log10(xs[0] / 1.6)), _r(math.log10(xs[-1] * 1.6))]
    elif xs and data.column != "T":
        xaxis["dtick"] = 1  # powers of ten only: Plotly's labels of 2 and 5 collide with them
    if data.clipped and data.y_range is not None:  # below the range: ▼ on the bottom edge, value on hover
        colour = {s.name: s.colour for s in data.series}
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "below the shown range",
                "showlegend": False,
                "cliponaxis": False,
                "x": [_r(dx) for _, dx, _ in data.clipped],
                "y": [data.y_range[0]] * len(data.clipped),
                "marker": {"symbol": "triangle-down", "size": 9, "line": {"width": 0.5},
                           "color": [colour[name] for name, _, _ in data.clipped]},
                "text": [f"{name}: top-1 {y:.1f} % (below the shown range)" for name, _, y in data.clipped],
                "hovertemplate": "%{text}<extra></extra>",
            }
        )  # fmt: skip
    subtitle = textwrap.wrap(data.subtitle, 64) if data.subtitle else []
    title = _e(data.title) + "".join(f"<br><sub>{_e(line)}</sub>" for line in subtitle)
    entries = len(data.series) + 2 * bool(data.front) + len(data.published)
    top = TOOLBAR + 26 + 16 * len(subtitle)  # the title sits below the toolbar, never under it
    layout = {
        "title": {"text": title, "font": {"size": 14}, "x": 0, "xref": "container", "xanchor": "left",
                  "y": 1, "yref": "container", "yanchor": "top", "pad": {"t": TOOLBAR, "l": 8}},
        "xaxis": xaxis,
        "yaxis": {"title": {"text": "top-1 (%), final epoch, mean ± 95 % CI"}, "range": data.y_range},
        "legend": {"font": {"size": 11}, "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top"},
        "margin": {"t": top, "b": 60},
        "height": max(PLOT_HEIGHT, top + 70 + LEGEND_ROW * entries),  # the whole legend, no scrolling
    }  # fmt: skip
    return {"data": traces, "layout": layout}


def _leaderboard(table: pd.DataFrame, runs: dict[tuple[str, int], list[tuple[int, str]]], key: str) -> str:
    metrics = [c for c in {**LEADERBOARD_METRICS, **SHOWN_WHEN_PRESENT} if f"{c}_mean" in table]
    selected = "top1_val_selected_mean" in table
    setup = [c for c in SETUP_COLUMNS if c in table]
    heads = [("rank", "#"), ("algorithm", "algorithm"), ("T", "T"), ("top1", "top-1 %"), ("ci", "± 95 % CI")]
    heads += [("n", "n"), ("rank_at_T", "# at T"), ("front", "latency front")]
    ties = has_ties(table)
    heads += [("ties", "ties %"), ("own", "top-1, own read-out %")] if ties else []
    heads += [("selected", "val-selected %")] if selected else []
    heads += [(c, SETUP_LABELS.get(c, c)) for c in setup]
    labels = {**LEADERBOARD_METRICS, **SHOWN_WHEN_PRESENT}
    heads += [(c, labels[c] + (f" ({METRICS[c].unit})" if METRICS[c].unit else "")) for c in metrics]
    heads += [("diverged", "diverged"), ("failed", "failed"), ("stale", "stale"), ("machine", "machine")]
    head = "".join(f'<th data-key="{k}">{_e(label)}</th>' for k, label in heads) + "<th>runs</th>"
    rows = []
    for row in table.to_dict("records"):
        seeds = runs[(row["algorithm"], row["T"])]
        links = " ".join(f'<a href="runs/{_e(rid)}.html">s{seed}</a>' for seed, rid in seeds)
        cells = [_rank_cell(row, "rank"), f"<td>{_name(row)}</td>", _cell(int(row["T"]))]
        cells += [_cell(row["top1_mean"]), _cell(row["top1_ci95"]), _cell(int(row["n"]))]
        cells += [_rank_cell(row, "rank_at_T"), f"<td>{'✓' if row['latency_front'] else ''}</td>"]
        cells += [_text_cell(ties_cell(row)), _text_cell(own_cell(row))] if ties else []
        cells += [_cell(row["top1_val_selected_mean"])] if selected else []
        cells += [f"<td>{_e(str(row[c]))}</td>" for c in setup]
        cells += [_cell(row[f"{c}_mean"], 3) for c in metrics]
        cells += [_cell(int(row[c])) for c in ("n_diverged", "n_failed", "stale")]
        cells.append(f'<td title="{_e(row["machine"])}">{_e(row["machine_code"])}</td>')
        stale = ' class="stale"' if row["stale"] else ""
        rows.append(f"<tr{stale}>" + "".join(cells) + f"<td>{links}</td></tr>")
    return (
        f'<p><input class="filter" id="filter-{key}" placeholder="filter rows (e.g. bptt, 4)"> '
        '<span class="muted">click a column header to sort</span></p>'
        f'<table class="sortable" id="leaderboard-{key}" data-filter="filter-{key}">'
        f"<thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"
    )


def _text_cell(text: str) -> str:
    """A cell shown as ``text`` (a number, or ``n/a (lowest index)``, ``= top-1``): a number sorts by value,
    a word sorts last."""
    try:
        value = str(float(text))
    except ValueError:
        value = ""
    return f'<td class="num" data-v="{value}">{_e(text)}</td>'


def _name(row: dict[str, Any]) -> str:
    """The row's name with its machine mark (:func:`snnbench.leaderboard.machine_marks`), escaped."""
    mark = row.get("machine_mark") or ""
    return _e(f"{row['algorithm']} {mark}" if mark else row["algorithm"])


def _rank_cell(row: dict[str, Any], key: str) -> str:
    """A tied rank (sorted by it); unranked rows say why and sort last."""
    if not pd.isna(row[key]):
        return _cell(int(row[key]))
    return f'<td class="num" data-v="">{"chance" if row["at_chance"] else "n &lt; 2"}</td>'


def _per_T(table: pd.DataFrame) -> str:
    """The primary view: one small table per T with tied ranks and 95 % CIs; rows at chance listed apart."""
    parts = ['<h3>Top-1 at each T</h3><div class="per-t">']
    ties = has_ties(table)
    for T, ranked, chance, few in per_T(table):
        rows = "".join(
            f"<tr><td>{int(r['rank_at_T'])}</td><td>{_name(r)}</td><td>{_top1(r)}</td>"
            f"<td>{_interval(r)}</td><td>{r['n']}</td><td>{'✓' if r['latency_front'] else ''}</td>"
            + (f"<td>{_e(ties_cell(r))}</td>" if ties else "")
            + "</tr>"
            for r in ranked.to_dict("records")
        )
        parts.append(f"<h4>T = {T}</h4>")
        if rows:
            parts.append(
                "<table><thead><tr><th>#</th><th>algorithm</th><th>top-1 %</th><th>95 % CI</th><th>n</th>"
                "<th>latency front</th>"
                + ("<th>ties %</th>" if ties else "")
                + f"</tr></thead><tbody>{rows}</tbody></table>"
            )
        for what, rows_apart in (("at chance", chance), ("fewer than two ok seeds", few)):
            if len(rows_apart):
                listed = ", ".join(
                    f"{_name(r)} {_top1(r)} (n = {r['n']})" for r in rows_apart.to_dict("records")
                )
                parts.append(f'<p class="muted">Unranked, {what}: {listed}.</p>')
    return "".join(parts) + "</div>"


def _matrix(data: Matrix) -> str:
    """The method × T matrix beside the latency plot: mean ± 95 % CI per cell, rank 1 at its T outlined
    and bold, rows at chance greyed, cells shaded by top-1 (the static ``matrix-<track>.png`` as a table)."""
    shown = [c.mean for c in data.cells.values() if c.state != "chance"]
    low, high = (min(shown), max(shown)) if shown else (0.0, 100.0)
    head = "".join(f'<th class="num">T = {T}</th>' for T in data.Ts)
    rows = []
    for name in data.methods:
        cells = [f"<th>{_e(name)}</th>"]
        for T in data.Ts:
            cell = data.cells.get((name, T))
            if cell is None:
                cells.append("<td></td>")
                continue
            what = {"best": "rank 1 at this T", "ranked": "ranked", "chance": "at chance, unranked",
                    "few": "fewer than two ok seeds, unranked"}[cell.state]  # fmt: skip
            tip = f"{name} at T = {T}: {cell.mean:.2f} ± {cell.ci:.2f} % (n = {cell.n}), {what}"
            text = f"{cell.mean:.1f}<br>" + {"chance": "chance", "few": "(n &lt; 2)"}.get(
                cell.state, f"± {cell.ci:.1f}"
            )  # one decimal and the interval on a second line, so that every T fits the page's width
            # (the digits extra track has 10 T columns); the tooltip has two decimals
            shade = ""
            if (
                cell.state != "chance"
            ):  # green, darker with top-1: 92 % lightness at the lowest, 62 % at the top
                level = (cell.mean - low) / (high - low) if high > low else 1.0
                shade = f' style="background: hsl(120, 40%, {92 - 30 * level:.0f}%)"'
            cells.append(f'<td class="num {cell.state}" title="{_e(tip)}"{shade}>{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<div class="matrix-wrap"><table class="matrix">'
        f"<caption>{_e(data.title)}</caption><thead><tr><th>method</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        f'<p class="muted">{_e(MATRIX_NOTE)}; hover a cell for n.</p></div>'
    )


def _published(suite: Suite) -> str:
    rows = [row.model_dump() for row in suite.reference]  # not a DataFrame: T stays an int, None stays "–"
    keys = [k for k in (rows[0] if rows else {}) if any(r[k] is not None for r in rows)]
    if not rows:
        return ""
    body = "".join("<tr>" + "".join(f"<td>{_e(_num(r[k]))}</td>" for k in keys) + "</tr>" for r in rows)
    head = "".join(f"<th>{_e(k)}</th>" for k in keys)
    return (
        "<h3>Published figures (not measured here)</h3>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _index(suite: Suite, df: pd.DataFrame, budget: str) -> str:
    revisions = sorted({str(r)[:10] for r in df["git_revision"].dropna()})
    body = [
        f"<h1>{_e(suite.name)}</h1><p>{_e(suite.description.strip())}</p>",
        f'<p class="muted">Generated by <code>snnbench report --suite {_e(suite.name)}</code> from {len(df)} '
        f"records (budget <code>{_e(budget)}</code>, suite version {suite.version}, revision "
        f"{_e(', '.join(revisions) or 'unknown')}). Top-1 is the final-epoch accuracy on the whole test set, "
        "mean ± 95 % CI over seeds (Student's t, at least ± half a test image); the test set is evaluated "
        "once per run, curves and model selection use the validation split. Rankings and fronts stay inside "
        "one track. A rank is 1 + the number of rows whose CI lies entirely above this row's, so rows that "
        "the seeds do not separate share it; rows at chance (top-1 at most the 95th percentile of a uniform "
        "guesser's) are unranked and never on a front; a row is on a front unless a row of equal-or-lower "
        "cost is separably better. The legend of every column is in <code>leaderboard.md</code>.</p>",
    ]
    machines = machine_counts(df)
    body += [
        f'<p class="muted">{_e(line.removeprefix("- ").replace("**", "").replace("`", ""))}</p>'
        for line in machine_legend(machines)
    ]
    tables = by_track(df)
    if any(has_ties(table) for table in tables.values()):
        body += [
            f'<p class="muted">{_e(line.removeprefix("- ").replace("*", "").replace("`", ""))}</p>'
            for line in ties_legend()
        ]
    tracks = df["track"] if "track" in df else pd.Series(["official"] * len(df), index=df.index)
    for track, table in tables.items():
        table = machine_marks(table, machines)  # the rows, each with its machine kind marked
        runs = {  # the leaderboard's rows (snnbench.rows), each seed once
            (row.label, row.T): sorted(
                (int(seed), str(rid))
                for seed, rid in zip(row.records["seed"], row.records["run_id"], strict=True)
            )
            for row in group_rows(df[tracks == track])
        }
        body.append(f"<h2>Track <code>{_e(track)}</code></h2><p>{_e(TRACKS[track])}.</p>")
        figures = [pareto_figure(plot_data(table, suite, axis, track)) for axis in AXES]
        plots = [_plot(f"pareto-{track}-{axis}", figure) for axis, figure in zip(AXES, figures, strict=True)]
        body.append('<div class="plots">' + plots[0] + "</div>")  # the overview, then the matrix beside it
        body.append(_matrix(matrix_data(table, suite, track)))
        body.append('<div class="plots">' + "".join(plots[1:]) + "</div>")
        body.append(_per_T(table))
        body.append("<h3>All rows (ranked across T)</h3>")
        body.append(_leaderboard(table, runs, track))
    body.append(_published(suite))
    return _page(f"{suite.name} — snnbench report", "\n".join(body))


def _flat(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict) and data:
        return [kv for k, v in data.items() for kv in _flat(v, f"{prefix}{k}.")]
    return [(prefix.rstrip("."), data)]


def reproduce_command(record: RunRecord) -> str:
    """The ``snnbench run`` line that recreates this run (same suite version and revision)."""
    return (
        f"snnbench run --suite {record.suite} --budget {record.budget} --algorithms {record.entry} "
        f"--timesteps {record.T} --seeds {record.seed} --no-resume"
    )


def _tie_lines(record: RunRecord) -> list[tuple[str, Any]]:
    """The summary's tie line of a record scored by the common rule (none for a record made before it)."""
    if rule_of(record.metrics_protocol) != RULE:
        return []
    m = record.metrics
    ties = m.get("tie_fraction")
    return [
        (
            "tie rule",
            "top-1 is the expected accuracy under uniform random tie-breaking"
            + (f"; {100 * ties:.1f} % of test images tied" if isinstance(ties, (int, float)) else "")
            + f"; the method's own read-out ({OWN_RULE}): {_num(m.get('top1_official_ties'))} %",
        )
    ]


def record_sections(record: RunRecord, suite: Suite | None = None) -> list[tuple[str, list[tuple[str, Any]]]]:
    """A record as titled key/value sections (shared by the run pages and ``snnbench show``)."""
    git = record.environment.get("git", {})
    summary = [
        ("run", record.run_id),
        ("suite", f"{record.suite} (version {record.suite_version})"),
        ("entry", f"{record.entry} ({record.algorithm} v{record.algorithm_version})"),
        ("T · seed · budget", f"{record.T} · {record.seed} · {record.budget}"),
        ("status", record.status + (f": {record.error}" if record.error else "")),
        ("top-1 (%)", _num(record.metrics.get("top1"))),
        *_tie_lines(record),
        ("reproduce", f"{reproduce_command(record)}  # at revision {git.get('revision', 'unknown')}"),
    ]
    metrics = [
        (f"{k} ({METRICS[k].unit})" if k in METRICS and METRICS[k].unit else k, _num(v, 4))
        for k, v in _flat(record.metrics)
    ]
    entry = suite.algorithms.get(record.entry) if suite is not None else None
    card = entry.fidelity if entry is not None else None
    fidelity: list[tuple[str, Any]] = []
    if card is not None:  # the suite entry's card (the record's spec holds the values it was checked against)
        fidelity = [("official source", card.source)]
        fidelity += [(f"mirrors {k}", v) for k, v in card.mirrors.items()]
        fidelity += [
            (f"deviation {d.field}", f"ours {d.ours!r}, official {d.official!r}: {d.reason}")
            for d in card.deviations
        ]
        fidelity += [("notes", card.notes)] if card.notes else []
    provenance = [
        ("algorithm source sha256", record.algorithm_source_sha256),
        ("spec hash", record.spec_hash),
        ("started", record.started_at),
        ("finished", record.finished_at),
        ("resumed from epoch", record.resumed_from_epoch),
        ("training shared with", record.training_shared_with or "–"),
    ]
    provenance += _flat(record.dataset_provenance, "dataset.") + _flat(record.environment, "environment.")
    sections = [
        ("Run", summary),
        ("Cost and accuracy metrics", metrics),
        ("Configuration", _flat(record.spec)),
    ]
    if fidelity:
        sections.append(("Fidelity card", fidelity))
    sections.append(("Provenance", provenance))
    return sections


def find_record(out: Path, run_id: str) -> RunRecord:
    """The record ``<out>/<suite>/runs/<run_id>.json`` of any suite; near run ids suggested when absent."""
    from snnbench.errors import suggest

    paths = sorted(out.glob("*/runs/*.json"))
    matches = [p for p in paths if p.stem == run_id]
    if not matches:
        near = suggest(run_id, [p.stem for p in paths])
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        error = SnnbenchError(f"no record {run_id!r} under {out}/*/runs ({len(paths)} records){hint}")
        error.exit_code = 2  # bad input
        raise error
    return read_record(matches[0])


def _curves(record: RunRecord) -> dict[str, Any] | None:
    if not record.history:
        return None
    epochs = [row.get("epoch") for row in record.history]
    traces = []
    for key in ("val_top1", "test_top1", "train_top1"):
        if any(key in row for row in record.history):
            ys = [None if row.get(key) is None else _r(row[key]) for row in record.history]
            traces.append(
                {"type": "scatter", "mode": "lines+markers", "name": f"{key} (%)", "x": epochs, "y": ys}
            )
    losses = [None if row.get("loss") is None else _r(row["loss"]) for row in record.history]
    traces.append(
        {"type": "scatter", "mode": "lines", "name": "loss", "x": epochs, "y": losses, "yaxis": "y2"}
    )
    layout = {
        "title": {"text": "per-epoch curves"},
        "xaxis": {"title": {"text": "epoch"}},
        "yaxis": {"title": {"text": "top-1 (%)"}},
        "yaxis2": {"title": {"text": "training loss"}, "overlaying": "y", "side": "right"},
        "legend": {"x": 1.08},
    }
    return {"data": traces, "layout": layout}


def _run_page(record: RunRecord, suite: Suite) -> str:
    body = [
        '<p><a href="../index.html">← leaderboard</a></p>',
        f"<h1>{_e(record.entry)} · T = {record.T} · seed {record.seed}</h1>",
    ]
    curves = _curves(record)
    for title, items in record_sections(record, suite):
        body.append(f"<h2>{_e(title)}</h2>")
        command = dict(items).get("reproduce") if title == "Run" else None
        if command:  # a copyable block rather than a table cell
            body.append(f"<pre>{_e(command)}</pre>")
        rows = "".join(
            f"<dt>{_e(str(k))}</dt><dd>{_e(_num(v, 4))}</dd>"
            for k, v in items
            if k != "reproduce" or not command
        )
        body.append(f'<dl class="kv">{rows}</dl>')
        if title == "Run" and curves is not None:
            body.append(_plot("curves", curves))
    return _page(f"{record.run_id} — snnbench report", "\n".join(body), depth=1)


def _records(suite: Suite, suite_dir: Path, budget: str) -> pd.DataFrame:
    from snnbench.records import load_records

    df = select_records(
        load_records(suite_dir) if (suite_dir / "runs").is_dir() else pd.DataFrame(), suite, budget
    )
    df = label_tuning(df, suite, suite_dir)  # the tuning column as in leaderboard.md
    if df.empty:
        raise SnnbenchError(f"no records of budget {budget!r} for suite {suite.name} under {suite_dir}")
    return df


def index_page(suite: Suite, suite_dir: Path, budget: str | None = None) -> str:
    """The site's ``index.html`` of ``suite_dir``'s records, alone (no run pages, no assets)."""
    budget = budget or suite.default_budget
    return _index(suite, _records(suite, suite_dir, budget), budget)


def _write_site(suite: Suite, suite_dir: Path, site: Path, budget: str) -> list[Path]:
    df = _records(suite, suite_dir, budget)
    files = {"index.html": _index(suite, df, budget).encode()}
    for run_id in df["run_id"]:
        record = read_record(suite_dir / "runs" / f"{run_id}.json")
        files[f"runs/{run_id}.html"] = _run_page(record, suite).encode()
    files.update({name: (ASSETS / name).read_bytes() for name in COPIED})
    written = []
    for name, data in sorted(files.items()):
        atomic_write_bytes(site / name, data)
        written.append(site / name)
    return written


def write_site(
    suite: Suite, suite_dir: Path, site: Path | None = None, budget: str | None = None
) -> list[Path]:
    """Write the report of ``suite_dir``'s records to ``site`` (default ``<suite_dir>/site``), replacing
    pages of runs that are gone; return the written paths."""
    site = site or suite_dir / "site"
    written = _write_site(suite, suite_dir, site, budget or suite.default_budget)
    for old in site.glob("runs/*.html"):
        if old not in written:
            old.unlink()
    return written


def check_site(
    suite: Suite, suite_dir: Path, site: Path | None = None, budget: str | None = None
) -> list[str]:
    """Files of the committed ``site`` that differ from what the records produce (empty: current)."""
    site = site or suite_dir / "site"
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        expected = {
            p.relative_to(fresh): p.read_bytes()
            for p in _write_site(suite, suite_dir, fresh, budget or suite.default_budget)
        }
        present = {p.relative_to(site) for p in site.rglob("*") if p.is_file()} if site.is_dir() else set()
        problems = [
            f"{site / name}: missing (the records produce it)" for name in sorted(expected.keys() - present)
        ]
        problems += [f"{site / name}: no record produces it" for name in sorted(present - expected.keys())]
        problems += [
            f"{site / name}: differs from what the records produce"
            for name in sorted(expected.keys() & present)
            if (site / name).read_bytes() != expected[name]
        ]
    return problems


__all__ = [
    "check_site",
    "find_record",
    "index_page",
    "pareto_figure",
    "record_sections",
    "reproduce_command",
    "write_site",
]
