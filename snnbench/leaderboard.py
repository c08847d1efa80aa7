"""Records → leaderboard tables (mean ± std over seeds per method × T) and the files in ``results/<suite>``.

Only records of this suite, the chosen budget and the suite's current version are ranked, one row per
set-up (:mod:`snnbench.rows`); published reference rows are listed apart and never mixed with measured ones.
Rows whose records were produced by another source of the method are flagged ``stale``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from snnbench.errors import SnnbenchError
from snnbench.metrics import METRICS
from snnbench.records import load_records
from snnbench.rows import group_rows
from snnbench.suite import TRACKS, Suite

# metric columns shown by default after the accuracy columns, when present in the records
DEFAULT_COLUMNS: list[str] = ["spike_rate", "synops_per_sample", "energy_nj", "train_time_s"]
# Pareto plots written with every report: x axis → file stem
PLOT_AXES = {"T": "pareto", "energy": "pareto-energy"}


def _current_sources() -> dict[str, tuple[int, str]]:
    from snnbench.algorithms import algorithms
    from snnbench.provenance import source_sha256

    return {
        name: (algorithms.get(name).version, source_sha256(algorithms.get(name)))
        for name in algorithms.names()
    }


def select_records(df: pd.DataFrame, suite: Suite, budget: str | None = None) -> pd.DataFrame:
    """Records of this suite, ``budget`` (default: the suite's) and the suite's current version; rows are
    then told apart by their whole set-up (:func:`snnbench.rows.group_rows`)."""
    if df.empty:
        return df
    budget = budget or suite.default_budget
    return df[(df["suite"] == suite.name) & (df["budget"] == budget) & (df["suite_version"] == suite.version)]


SETUP_COLUMNS = ["arch", "params", "epochs", "batch_size", "encoding", "preprocess", "tuning"]


def build(df: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """One row per set-up × T of ONE track (:func:`snnbench.rows.group_rows`; the ``algorithm`` column is the
    entry, with the fields that tell set-ups apart when one entry has several at a T): top-1 mean ± std over
    ok runs, n, the set-up columns (so that a
    reader sees what was held equal), divergences, failures, stale, extras. Rows of different tracks are never
    ranked together: records of several tracks are refused (rank each track with :func:`by_track`)."""
    columns = DEFAULT_COLUMNS if columns is None else columns
    unknown = [c for c in columns if c not in METRICS]
    if unknown:
        from snnbench.errors import UnknownNameError

        raise UnknownNameError("metric column", unknown[0], METRICS)
    if df.empty:
        return pd.DataFrame(columns=["track", "algorithm", "T", "top1_mean", "top1_std", "n"])
    tracks = sorted(set(df["track"])) if "track" in df else ["official"]
    if len(tracks) > 1:
        raise SnnbenchError(
            f"records of tracks {', '.join(tracks)} cannot be ranked in one table: rank each track apart"
        )
    current = _current_sources()
    rows: list[dict[str, Any]] = []
    for one in group_rows(df):  # one row = one set-up, each seed once (snnbench.rows)
        group, T = one.records, one.T
        ok = group[group["status"] == "ok"]
        stale = sum(
            current.get(a, (v, s)) != (v, s)
            for a, v, s in zip(
                group["algorithm"], group["algorithm_version"], group["algorithm_source_sha256"], strict=True
            )
        )
        top1 = ok["top1"].astype(float) if "top1" in ok else pd.Series(dtype=float)
        row: dict[str, Any] = {
            "track": tracks[0],
            "algorithm": one.label,
            "T": int(T),
            "top1_mean": top1.mean() if len(top1) else math.nan,
            "top1_std": top1.std(ddof=1) if len(top1) > 1 else (0.0 if len(top1) == 1 else math.nan),
            "n": len(top1),
            "n_diverged": int((group["status"] == "diverged").sum()),
            "n_failed": int((group["status"] == "failed").sum()),
            "stale": int(stale),
            "seeds": ",".join(str(s) for s in sorted(ok["seed"])),
        }
        for column in SETUP_COLUMNS:
            if column == "params":
                values = sorted({int(v) for v in ok.get("params", pd.Series(dtype=float)).dropna()})
                row["params"] = "/".join(str(v) for v in values) if values else "–"
            else:
                values = sorted({str(v) for v in group.get(column, pd.Series(dtype=object)).dropna()})
                row[column] = "/".join(values) if values else "–"
        if "top1_val_selected" in ok and ok["top1_val_selected"].notna().any():
            row["top1_val_selected_mean"] = pd.to_numeric(ok["top1_val_selected"], errors="coerce").mean()
        for column in columns:
            if column in ok:
                row[f"{column}_mean"] = pd.to_numeric(ok[column], errors="coerce").mean()
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(["top1_mean", "T"], ascending=[False, True], na_position="last").reset_index(
        drop=True
    )


def by_track(df: pd.DataFrame, columns: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """One ranked table per track, in the order of :data:`snnbench.suite.TRACKS`."""
    if df.empty:
        return {}
    tracks = df["track"] if "track" in df else pd.Series(["official"] * len(df), index=df.index)
    return {track: build(df[tracks == track], columns) for track in TRACKS if (tracks == track).any()}


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _fmt_metric(value: Any) -> str:
    if (
        isinstance(value, float)
        and not math.isnan(value)
        and value != 0
        and (abs(value) >= 1e4 or abs(value) < 1e-2)
    ):
        return f"{value:.3g}"
    return _fmt(value, 3)


def to_markdown(
    tables: dict[str, pd.DataFrame], suite: Suite, n_records: int, revisions: list[str], budget: str
) -> str:
    """The committed ``leaderboard.md``: header naming the command, records and revision, one ranked table
    per track, then the published figures with their selection rule."""
    lines = [
        f"# {suite.name} leaderboard",
        "",
        suite.description.strip(),
        "",
        f"Generated by `snnbench leaderboard --suite {suite.name}"
        f"{'' if budget == suite.default_budget else f' --budget {budget}'}` from {n_records} records "
        f"(budget `{budget}`, suite version {suite.version}, revision {', '.join(revisions) or 'unknown'}).",
        "Top-1 is the **final-epoch** accuracy on the whole test set, mean ± std over seeds (n runs); the "
        "test set is evaluated once per run. Per-epoch curves and every model selection use a validation "
        f"split carved from the training set ({suite.validation.fraction:g} per class, seed "
        f"{suite.validation.seed})."
        + (
            " *val-selected* is the test top-1 of the epoch with the best validation top-1 (secondary)."
            if suite.validation.select
            else ""
        ),
        "Rows are ranked only within their track; tracks are never mixed.",
        "",
    ]
    for track, table in tables.items():
        lines += [f"## Track `{track}`", "", TRACKS[track] + ".", ""]
        lines += _markdown_table(table)
        lines.append("")
    if suite.reference:
        lines += [
            "## Published figures (not measured here)",
            "",
            "*best-epoch*: the best test accuracy over epochs (test-set selection, as most official codes "
            "report); *final-epoch*: the last epoch's.",
            "",
            "| algorithm | T | top-1 (%) | selection | runs | architecture | source |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in suite.reference:  # the rows themselves, not a DataFrame: T stays an int, None stays None
            top1 = _fmt(row.top1) + (f" ± {_fmt(row.top1_std)}" if row.top1_std is not None else "")
            note = f" ({row.note})" if row.note else ""
            read = f"; read from {row.read_from}" if row.read_from else ""
            lines.append(
                f"| {row.algorithm} | {_fmt(row.T)} | {top1} | {row.selection} | {_fmt(row.runs)} | "
                f"{_fmt(row.arch)} | {row.source}{note}{read} |"
            )
    return "\n".join(lines).rstrip("\n") + "\n"


def _markdown_table(table: pd.DataFrame) -> list[str]:
    selected = "top1_val_selected_mean" in table
    extra = [
        c for c in table.columns if c.endswith("_mean") and c not in ("top1_mean", "top1_val_selected_mean")
    ]
    header = ["#", "algorithm", "T", "top-1 (%)", "n"]
    header += ["val-selected (%)"] if selected else []
    header += ["arch", "params", "epochs", "batch", "encoding", "preprocess", "tuning"]
    header += [f"{c[:-5]} ({METRICS[c[:-5]].unit})" for c in extra]
    header += ["diverged", "failed", "stale"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, row in enumerate(table.to_dict("records"), start=1):
        cells = [
            str(rank),
            row["algorithm"],
            str(row["T"]),
            f"{_fmt(row['top1_mean'])} ± {_fmt(row['top1_std'])}",
        ]
        cells.append(str(row["n"]))
        if selected:
            cells.append(_fmt(row.get("top1_val_selected_mean")))
        cells += [str(row[c]) for c in SETUP_COLUMNS]
        cells += [_fmt_metric(row[c]) for c in extra]
        cells += [str(row["n_diverged"]), str(row["n_failed"]), str(row["stale"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# the table's own columns (metric columns are described by METRICS)
COLUMNS = {
    "algorithm": "the suite entry (a method, or a labelled variant of one)",
    "T": "time steps",
    "n": "ok runs averaged (seeds)",
    "n_diverged": "runs stopped on a non-finite loss or weights",
    "n_failed": "runs that raised an error",
    "stale": "records made by another version or source of the method than the current one",
    "seeds": "seeds of the ok runs",
    "track": "controlled (one set-up for every method), official (each paper's set-up) or extra",
    "arch": "architecture(s) of the runs",
    "params": "parameter count(s) of the runs",
    "epochs": "training epochs",
    "batch_size": "training batch size",
    "encoding": "input encoding",
    "preprocess": "input normalisation: the dataset's statistics or the entry's own",
    "tuning": "where the hyperparameters came from (defaults, or trials on the validation split)",
}


def _column_meta(column: str) -> dict[str, Any]:
    metric = METRICS.get(column.removesuffix("_mean").removesuffix("_std"))
    if metric is None:
        return {"definition": COLUMNS.get(column, "")}
    if column.endswith("_std"):
        return {"unit": metric.unit, "definition": f"std over seeds (ddof 1) of {metric.definition}"}
    return {
        "unit": metric.unit,
        "higher_is_better": metric.higher_is_better,
        "definition": f"mean over ok runs of {metric.definition}",
    }


def to_json(table: pd.DataFrame, df: pd.DataFrame, suite: Suite, budget: str) -> str:
    """The leaderboard for scripts: every column with its unit and direction, each row with the records it
    was computed from (run ids, revisions, devices, method versions); published figures apart."""

    def plain(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        return value.item() if hasattr(value, "item") else value

    rows = []
    parts = {(r.label, r.T): r.records for r in group_rows(df)}
    for row in table.to_dict(orient="records"):
        part = parts[(row["algorithm"], row["T"])]
        provenance = {
            "run_ids": sorted(part["run_id"]),
            "statuses": {str(k): int(v) for k, v in sorted(part["status"].value_counts().items())},
            "git_revisions": sorted({str(r) for r in part["git_revision"].dropna()}),
            "devices": sorted({str(d) for d in part["device"].dropna()}),
            "algorithm_versions": sorted({int(v) for v in part["algorithm_version"]}),
            "algorithm_source_sha256": sorted(set(part["algorithm_source_sha256"])),
        }
        rows.append({**{k: plain(v) for k, v in row.items()}, "provenance": provenance})
    document = {
        "suite": suite.name,
        "suite_version": suite.version,
        "budget": budget,
        "n_records": len(df),
        "generated_by": f"snnbench leaderboard --suite {suite.name} --budget {budget} --format json",
        "columns": {c: _column_meta(c) for c in table.columns},
        "rows": rows,
        "published": [r.model_dump(mode="json") for r in suite.reference],
    }
    return json.dumps(document, indent=1, allow_nan=False) + "\n"


def report_dir(suite: Suite, suite_dir: Path, budget: str | None = None) -> Path:
    """Where a budget's reports live: ``suite_dir`` for the suite's default budget, ``suite_dir/budgets/<b>``
    for another, so that a smoke run never replaces the committed full-budget leaderboard and plots."""
    budget = budget or suite.default_budget
    if budget not in suite.budgets:
        from snnbench.errors import UnknownNameError

        raise UnknownNameError(f"budget of suite {suite.name}", budget, suite.budgets)
    return suite_dir if budget == suite.default_budget else suite_dir / "budgets" / budget


def write_reports(
    suite: Suite,
    suite_dir: Path,
    budget: str | None = None,
    columns: list[str] | None = None,
    into: Path | None = None,
) -> list[Path]:
    """Write ``leaderboard.md``, ``leaderboard.csv`` (every track, a ``track`` column) and one set of Pareto
    plots per track (``pareto-<track>.png`` ...) of the records in ``suite_dir/runs`` into ``into`` (default:
    :func:`report_dir`); return the paths."""
    from snnbench.plots import pareto
    from snnbench.records import atomic_write_bytes

    budget = budget or suite.default_budget
    target = into or report_dir(suite, suite_dir, budget)
    df = select_records(
        load_records(suite_dir) if (suite_dir / "runs").is_dir() else pd.DataFrame(), suite, budget
    )
    if df.empty:
        raise SnnbenchError(f"no records of budget {budget!r} for suite {suite.name} under {suite_dir}")
    tables = by_track(df, columns)
    revisions = sorted({str(r)[:10] for r in df["git_revision"].dropna()})
    markdown = to_markdown(tables, suite, len(df), revisions, budget)
    files = [target / "leaderboard.md", target / "leaderboard.csv"]
    atomic_write_bytes(files[0], markdown.encode())
    combined = pd.concat(list(tables.values()), ignore_index=True)
    atomic_write_bytes(files[1], combined.to_csv(index=False, float_format="%.4f").encode())
    for track, table in tables.items():
        for axis, stem in PLOT_AXES.items():
            files += pareto(table, suite, target / f"{stem}-{track}", x=axis, track=track)
    return files
