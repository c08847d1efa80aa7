"""Records → leaderboard tables (mean ± 95 % CI over seeds per method × T), files in ``results/<suite>``.

Only records of this suite, the chosen budget and the suite's current version are ranked, one row per
set-up (:mod:`snnbench.rows`); published reference rows are listed apart and never mixed with measured ones.
Rows whose records were produced by another source of the method are flagged ``stale``.

Ranks say only what the seeds separate (:func:`tied_ranks`): a row's interval is the two-sided 95 % Student's
t interval of its mean top-1 over seeds, never narrower than ± half a test image (:func:`ci_half_width`); a
row is separably better than another when its whole interval lies above the other's (:func:`beats`), and its
rank is 1 + the number of rows separably better than it, so rows that overlap share a rank. Rows at chance
(:func:`chance_bound`) and rows of fewer than two ok seeds are listed apart, unranked, and are never on a
front. The latency front (and every Pareto plot's front, :func:`pareto_front`) uses the same rule: a row is on
it unless another row of equal-or-lower cost is separably better.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from snnbench.errors import SnnbenchError
from snnbench.latency import SHOWN_WHEN_PRESENT
from snnbench.metrics import METRICS
from snnbench.records import load_records
from snnbench.rows import MACHINES, group_rows, machine_counts
from snnbench.setups import FACT_COLUMNS, FACT_DEFINITIONS, FACT_LABELS, row_facts
from snnbench.suite import TRACKS, Suite
from snnbench.ties import OLD_RULE, OWN_RULE, RULE

TIE_COLUMNS = ["ties_rule", "tie_fraction_mean", "top1_official_ties_mean"]  # only in tables of the rule

# metric columns shown by default after the accuracy columns, when present in the records
DEFAULT_COLUMNS: list[str] = [
    "spike_rate",
    "synops_per_sample",
    "energy_nj",
    "input_energy_nj",
    "energy_ratio",
    "train_time_s",
]
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


CONFIDENCE = 0.95  # two-sided level of every row's top-1 interval
CHANCE_QUANTILE = 0.95  # at chance: mean top-1 at most this quantile of a uniform guesser's top-1


def ci_half_width(values: Sequence[float], test_size: int | None = None) -> float:
    """Half-width (points) of the two-sided 95 % Student's t confidence interval of the mean of ``values``
    (one top-1 per seed): ``t(0.975, n − 1) · s / √n``, ``s`` the std (ddof 1), and never less than half a
    test image (``50 / test_size`` points) where the test-set size is known, so that two rows whose means
    differ by one image or less are never separated (three seeds that agree give ``s = 0``, not certainty).
    NaN for fewer than two values: one seed has no interval."""
    n = len(values)
    if n < 2:
        return math.nan
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * statistics.stdev(values) / math.sqrt(n)
    return max(half, 50.0 / test_size) if test_size else half


def chance_bound(num_classes: int, test_size: int) -> float:
    """The chance level's upper bound (%): ``100 · k / N``, ``k`` the smallest count of correct answers that
    a uniform guesser over ``num_classes`` classes stays at or under with probability ≥ 95 % on
    ``N = test_size`` images (the 0.95 quantile of Binomial(N, 1/num_classes)); 12.78 % for 10 classes and
    360 images. A row whose mean top-1 is at most this bound is at chance."""
    if num_classes < 1 or test_size < 1:
        raise SnnbenchError(
            f"chance level needs positive class and test-set counts, got {num_classes} and {test_size}"
        )
    k = float(stats.binom.ppf(CHANCE_QUANTILE, test_size, 1.0 / num_classes))
    return 100.0 * k / test_size


def beats(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether interval ``a = (low, high)`` is separably better than ``b``: it lies entirely above it
    (``a.low > b.high``). Overlapping or touching intervals, identical ones included, do not separate."""
    return a[0] > b[1]


def tied_ranks(intervals: Sequence[tuple[float, float] | None]) -> list[int | None]:
    """The tied-groups rule, one rank per interval ``(low, high)``: 1 + the number of OTHER intervals lying
    entirely above it (:func:`beats`). Rows whose intervals overlap every better row share its rank; equal
    intervals always share one, whatever else (T, name, order) differs. ``None`` (an unranked row: at chance,
    or no interval) gets ``None`` and pushes no one down. Ranks are not equivalence classes: a rank-2 row is
    beaten by at least one row, yet may overlap other rank-1 rows."""
    shown = [iv for iv in intervals if iv is not None]
    return [None if iv is None else 1 + sum(beats(other, iv) for other in shown) for iv in intervals]


def pareto_front(points: Sequence[tuple[float, float, float]]) -> list[int]:
    """Indices of the points ``(cost, low, high)`` on the front, in input order: a point is on it unless
    another point of equal-or-lower cost is separably better (:func:`beats`, the rule of :func:`tied_ranks`).
    A point beaten only within noise stays on the front."""
    return [
        i
        for i, (x, low, high) in enumerate(points)
        if not any(x2 <= x and beats((low2, high2), (low, high)) for x2, low2, high2 in points)
    ]


def _num_classes(datasets: Sequence[str]) -> int | None:
    """The class count of the records' dataset (None when unknown or several: no chance level then)."""
    from snnbench.data import datasets as registry

    names = sorted(set(datasets))
    if len(names) != 1:
        return None
    try:
        cls = registry.get(names[0])
        return int(cls().info(cls.Options.model_validate({})).num_classes)
    except (SnnbenchError, ValueError):  # unknown here, or options that need values: no class count
        return None


RANK_COLUMNS = ["top1_ci95", "top1_ci_low", "top1_ci_high", "rank", "rank_at_T", "latency_front", "at_chance"]
# read from the records; then the facts of what the method builds (snnbench.setups: optimiser, input
# normalisation (the entry's preprocess statistics included), outputs per class, extra weights)
RECORD_SETUP_COLUMNS = ["arch", "params", "epochs", "batch_size", "encoding", "tuning"]
SETUP_COLUMNS = [*RECORD_SETUP_COLUMNS, *FACT_COLUMNS]
SETUP_LABELS = {"batch_size": "batch", **FACT_LABELS}


def build(df: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """One row per set-up × T of ONE track (:func:`snnbench.rows.group_rows`; the ``algorithm`` column is the
    entry, with the fields that tell set-ups apart when one entry has several at a T): top-1 mean ± std and
    95 % CI over ok runs, n, the tied ranks (``rank`` over the whole track, ``rank_at_T`` within its T;
    :func:`tied_ranks`), chance level (``at_chance``, ``chance_top1``: :func:`chance_bound`), membership of
    the latency front (``latency_front``: :func:`pareto_front` over T), the set-up columns (so that a reader
    sees what was held equal), divergences, failures, stale, extras. Ranked rows first, by rank, then mean
    (best first), then name and T for display only. Rows of different tracks are never ranked together:
    records of several tracks are refused (rank each track with :func:`by_track`)."""
    columns = DEFAULT_COLUMNS if columns is None else columns
    unknown = [c for c in columns if c not in METRICS]
    if unknown:
        from snnbench.errors import UnknownNameError

        raise UnknownNameError("metric column", unknown[0], METRICS)
    if df.empty:
        return pd.DataFrame(columns=["track", "algorithm", "T", "top1_mean", "top1_std", "n", *RANK_COLUMNS])
    tracks = sorted(set(df["track"])) if "track" in df else ["official"]
    if len(tracks) > 1:
        raise SnnbenchError(
            f"records of tracks {', '.join(tracks)} cannot be ranked in one table: rank each track apart"
        )
    current = _current_sources()
    classes = _num_classes(list(df["dataset"])) if "dataset" in df else None
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
        sizes = pd.to_numeric(ok["test_size"], errors="coerce").dropna() if "test_size" in ok else []
        test_size = int(min(sizes)) if len(sizes) else None
        mean = top1.mean() if len(top1) else math.nan
        half = ci_half_width(list(top1), test_size)
        bound = chance_bound(classes, test_size) if classes and test_size else math.nan
        row: dict[str, Any] = {
            "track": tracks[0],
            "algorithm": one.label,
            "T": int(T),
            "top1_mean": mean,
            "top1_std": top1.std(ddof=1) if len(top1) > 1 else (0.0 if len(top1) == 1 else math.nan),
            "n": len(top1),
            "top1_ci95": half,
            # a top-1 lies in [0, 100]: the t interval's ends are clipped there (ranks compare ends that
            # never pass 100 or 0 against each other, so clipping changes no rank)
            "top1_ci_low": float(np.clip(mean - half, 0.0, 100.0)),
            "top1_ci_high": float(np.clip(mean + half, 0.0, 100.0)),
            "at_chance": bool(mean <= bound),  # False when the bound or the mean is unknown (NaN)
            "chance_top1": bound,
            "n_diverged": int((group["status"] == "diverged").sum()),
            "n_failed": int((group["status"] == "failed").sum()),
            "stale": int(stale),
            "seeds": ",".join(str(s) for s in sorted(ok["seed"])),
            "machine": MACHINES.join(sorted({str(m) for m in group.get("machine", pd.Series()).dropna()}))
            or "–",
        }
        for column in RECORD_SETUP_COLUMNS:
            if column == "params":
                values = sorted({int(v) for v in ok.get("params", pd.Series(dtype=float)).dropna()})
                row["params"] = "/".join(str(v) for v in values) if values else "–"
            else:
                values = sorted({str(v) for v in group.get(column, pd.Series(dtype=object)).dropna()})
                row[column] = "/".join(values) if values else "–"
        identity = json.loads(group["row_identity"].iloc[0]) if "row_identity" in group else {}
        row.update(row_facts(identity.get("spec")))  # what the method builds for the row's spec
        rules = sorted({str(r) for r in group["ties_rule"]}) if "ties_rule" in group else ["lowest-index"]
        row["ties_rule"] = "/".join(rules)  # one rule per row: it is part of the row identity
        ruled = ok[ok["ties_rule"] == RULE] if "ties_rule" in ok else ok.iloc[:0]
        for column in ("tie_fraction", "top1_official_ties"):  # the rule's figures; never an old record's
            values = pd.to_numeric(ruled[column], errors="coerce") if column in ruled else pd.Series()
            row[f"{column}_mean"] = values.mean() if len(values) and rules == [RULE] else math.nan
        if "top1_val_selected" in ok and ok["top1_val_selected"].notna().any():
            row["top1_val_selected_mean"] = pd.to_numeric(ok["top1_val_selected"], errors="coerce").mean()
        for column in columns:
            if column in ok:
                row[f"{column}_mean"] = pd.to_numeric(ok[column], errors="coerce").mean()
        for column in SHOWN_WHEN_PRESENT:  # labelled method-specific columns: where any record has one
            if column in df and df[column].notna().any():
                values = pd.to_numeric(ok[column], errors="coerce") if column in ok else pd.Series()
                row[f"{column}_mean"] = values.mean() if values.notna().any() else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    if not (table["ties_rule"] == RULE).any():  # records made before the tie rule only: tables as they were
        table = table.drop(columns=TIE_COLUMNS)
    intervals = [
        None if r["at_chance"] or math.isnan(r["top1_ci95"]) else (r["top1_ci_low"], r["top1_ci_high"])
        for r in rows
    ]
    ranked = [iv is not None for iv in intervals]
    at_T: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        at_T.setdefault(r["T"], []).append(i)
    rank_at_T: list[int | None] = [None] * len(rows)
    for members in at_T.values():
        for i, rank in zip(members, tied_ranks([intervals[i] for i in members]), strict=True):
            rank_at_T[i] = rank
    eligible = [i for i in range(len(rows)) if ranked[i]]
    front = {
        eligible[k]
        for k in pareto_front([(float(rows[i]["T"]), *intervals[i]) for i in eligible])  # type: ignore[misc]
    }
    position = table.columns.get_loc("top1_ci95")
    for offset, (name, values) in enumerate(
        [
            ("rank", pd.array(tied_ranks(intervals), dtype="Int64")),
            ("rank_at_T", pd.array(rank_at_T, dtype="Int64")),
            ("latency_front", [i in front for i in range(len(rows))]),
        ]
    ):
        table.insert(position + 3 + offset, name, values)  # after top1_ci95, top1_ci_low, top1_ci_high
    order = sorted(
        range(len(rows)),
        key=lambda i: (
            not ranked[i],
            table["rank"].iloc[i] if ranked[i] else 0,
            -rows[i]["top1_mean"] if not math.isnan(rows[i]["top1_mean"]) else math.inf,
            str(rows[i]["algorithm"]),
            rows[i]["T"],
        ),
    )
    return table.iloc[order].reset_index(drop=True)


def per_T(table: pd.DataFrame) -> list[tuple[int, pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """The primary view of one track's table: per T (ascending), its ranked rows (by ``rank_at_T``, then
    mean), its rows at chance and its rows without an interval (fewer than two ok seeds), both unranked."""
    views = []
    for T in sorted({int(t) for t in table["T"]}):
        rows = table[table["T"] == T]
        ranked = rows[rows["rank_at_T"].notna()]
        ranked = ranked.assign(_m=-ranked["top1_mean"]).sort_values(["rank_at_T", "_m", "algorithm"])
        chance = rows[rows["rank_at_T"].isna() & rows["at_chance"]]
        few = rows[rows["rank_at_T"].isna() & ~rows["at_chance"]]
        views.append((T, ranked.drop(columns="_m"), chance, few))
    return views


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


def _metric_head(name: str) -> str:
    """A metric column's head: its label (:data:`SHOWN_WHEN_PRESENT`) or name, with its unit if it has one."""
    unit = METRICS[name].unit
    return SHOWN_WHEN_PRESENT.get(name, name) + (f" ({unit})" if unit else "")


def _fmt_metric(value: Any) -> str:
    if (
        isinstance(value, float)
        and not math.isnan(value)
        and value != 0
        and (abs(value) >= 1e4 or abs(value) < 1e-2)
    ):
        return f"{value:.3g}"
    return _fmt(value, 3)


def _top1(row: dict[str, Any]) -> str:
    """``mean ± CI half-width`` (the mean alone when there is no interval)."""
    if isinstance(row["top1_ci95"], float) and math.isnan(row["top1_ci95"]):
        return _fmt(row["top1_mean"])
    return f"{_fmt(row['top1_mean'])} ± {_fmt(row['top1_ci95'])}"


def _interval(row: dict[str, Any]) -> str:
    if isinstance(row["top1_ci95"], float) and math.isnan(row["top1_ci95"]):
        return "–"
    return f"[{_fmt(row['top1_ci_low'])}, {_fmt(row['top1_ci_high'])}]"


def _rank(row: dict[str, Any], key: str = "rank") -> str:
    if not pd.isna(row[key]):
        return str(int(row[key]))
    return "– (chance)" if row["at_chance"] else "– (n < 2)"


def has_ties(table: pd.DataFrame) -> bool:
    """Whether ``table`` holds rows scored by the common tie rule (then it shows the tie columns)."""
    return "ties_rule" in table


def ties_cell(row: dict[str, Any]) -> str:
    """A row's tie share (% of test images whose top score is tied, mean over seeds), or :data:`OLD_RULE`
    for a row whose records predate the rule (their top-1 gave a tie to the lowest class index)."""
    if row.get("ties_rule") != RULE:
        return OLD_RULE
    return _fmt(100.0 * row["tie_fraction_mean"], 1) if not pd.isna(row["tie_fraction_mean"]) else "–"


def own_cell(row: dict[str, Any]) -> str:
    """A row's top-1 by the method's own read-out (secondary): its mean where it differs from the row's
    top-1 by the common rule, ``= top-1`` where it does not (and for a row made before the rule)."""
    if row.get("ties_rule") != RULE or pd.isna(row["top1_official_ties_mean"]):
        return "= top-1"
    own = row["top1_official_ties_mean"]
    return "= top-1" if _fmt(own) == _fmt(row["top1_mean"]) else _fmt(own)


def ties_legend() -> list[str]:
    """The legend's lines on the tie rule (tables that hold rows scored by it)."""
    return [
        "- **ties (%)**: test images whose top class score is shared by two or more classes, mean over "
        "seeds. *top-1* counts such an image as 1/k correct when its label is among the k tied classes: "
        "the expected accuracy under uniform random tie-breaking, one rule for every method, applied by the "
        f"runner (`snnbench.ties`). *{OLD_RULE}*: the row's records were made before the rule; their "
        f"top-1 is the method's own read-out ({OWN_RULE}) and the row never pools with rows of the rule.",
        f"- **top-1, own read-out (%)**: the method's own read-out ({OWN_RULE}), mean over seeds, shown "
        "where it differs from top-1 (secondary; `top1_official_ties` in the records).",
    ]


def _apart(rows: pd.DataFrame) -> str:
    return ", ".join(f"{r['algorithm']} {_top1(r)} (n = {r['n']})" for r in rows.to_dict("records"))


OTHER_MACHINE, MIXED_MACHINES = "‡", "†"  # marks after a row's name (machine_legend)


def machine_marks(table: pd.DataFrame, counts: dict[str, int]) -> pd.DataFrame:
    """``table`` with ``machine_code`` (its machine kinds as ``M1``, ``M2`` ... numbered by
    :func:`snnbench.rows.machine_counts`' order, ``M1`` the majority) and ``machine_mark``: ``†`` for a row
    whose records ran on several machine kinds, ``‡`` for one that ran on another kind than the majority,
    empty otherwise (and for every row when all records ran on one kind)."""
    codes = {kind: f"M{i + 1}" for i, kind in enumerate(counts)}
    majority = next(iter(counts), None)

    def code(machine: str) -> str:
        return "+".join(codes.get(kind, "?") for kind in machine.split(MACHINES)) if machine != "–" else "–"

    def mark(machine: str) -> str:
        kinds = machine.split(MACHINES)
        if len(kinds) > 1:
            return MIXED_MACHINES
        return OTHER_MACHINE if majority is not None and machine not in ("–", majority) else ""

    machines = [str(m) for m in table["machine"]] if "machine" in table else ["–"] * len(table)
    return table.assign(machine_code=[code(m) for m in machines], machine_mark=[mark(m) for m in machines])


def machine_legend(counts: dict[str, int]) -> list[str]:
    """The legend's line naming the machine kinds the records ran on (empty when none is known)."""
    from snnbench.compare import CROSS_CPU_TOLERANCE

    named = ", ".join(f"M{i + 1} = {kind} ({n} records)" for i, (kind, n) in enumerate(counts.items()))
    if not counts:
        return []
    if len(counts) == 1:
        return [f"- **machine** (device, CPU name, family and model): every record ran on {named}."]
    return [
        f"- **machine** (device, CPU name, family and model): {named}. {OTHER_MACHINE} after a name: the "
        f"row ran on another machine kind than most records (M1); {MIXED_MACHINES}: the row's seeds ran on "
        f"several. A CPU change alone moved a row's mean by up to {CROSS_CPU_TOLERANCE} points "
        "(`snnbench.compare.CROSS_CPU_TOLERANCE`): a marked row's lead or lag within that may be the machine."
    ]


def legend(suite: Suite) -> list[str]:
    """The legend of ``leaderboard.md``: how rows are ranked, and what every column means."""
    lines = [
        "## How to read the tables",
        "",
        "- **top-1 (%)**: final-epoch accuracy on the whole test set, mean over the n ok seeds ± the "
        "half-width of its **95 % CI**: Student's t over seeds, t(0.975, n − 1) · s / √n with s the std "
        "(ddof 1), never narrower than ± half a test image (50 / N points, N test images), so that means one "
        "image apart or closer never separate. One seed has no interval.",
        "- **#** (tied rank): 1 + the number of rows (of the same T in the per-T tables, of the whole track "
        "in *All rows*) whose 95 % CI lies entirely above this row's. Rows whose intervals overlap share a "
        "rank, exact ties always do, and nothing else (T, name) breaks a tie; a rank is not a group: a "
        "rank-2 row is beaten by some rank-1 row, and may overlap others. Rows are listed by rank, then "
        "mean.",
        "- **at chance**: mean top-1 at most the 95th percentile of a uniform guesser's top-1, "
        "100 · F⁻¹(0.95; Binomial(N, 1/K)) / N for K classes; such rows and rows of fewer than two ok seeds "
        "are listed apart, unranked (`–`), and are never on a front.",
        "- **latency front** (✓): no row of equal-or-lower T lies separably above it (its CI entirely above "
        "this row's); a row beaten only within noise stays on the front. The Pareto plots' fronts (T, "
        "synaptic operations, energy) use the same rule.",
    ]
    shown = {
        "n": "n",
        "top1_val_selected_mean": "val-selected (%)",
        "arch": "arch",
        "params": "params",
        "epochs": "epochs",
        "batch_size": "batch",
        "encoding": "encoding",
        "tuning": "tuning",
        **FACT_LABELS,
    }
    for column, label in shown.items():
        if column == "top1_val_selected_mean":
            if suite.validation.select:
                lines.append(
                    "- **val-selected (%)**: test top-1 of the epoch with the best validation top-1, mean "
                    "over seeds (secondary)"
                )
            continue
        lines.append(f"- **{label}**: {COLUMNS[column]}")
    lines.append(
        "- **metric columns** (unit in brackets): mean over ok seeds; "
        + "; ".join(f"*{name}*: {METRICS[name].definition}" for name in DEFAULT_COLUMNS)
    )
    lines += [f"- **{c}**: {COLUMNS[k]}" for c, k in (("diverged", "n_diverged"), ("failed", "n_failed"))]
    lines += [f"- **stale**: {COLUMNS['stale']}"]
    if suite.tuning is not None:
        from snnbench.tuning import seed_note

        where = (
            "the entry's tuning record at the row's T, `tuning/<entry>_T<T>.json`, or for every T, "
            "`tuning/<entry>.json`"
            if suite.tuning.per_T
            else "the entry's tuning record, `tuning/<entry>.json`"
        )
        lines.append(
            f"- **tuning labels** (from {where}): *stale*: the "
            "method's code or version, or the entry's untuned set-up, changed since the trials ran "
            "(`--check` fails); *unverifiable*: made before code hashes were recorded in tuning records, so "
            "nothing tells whether today's code would choose the same; *all trials at chance*: no trial's "
            "validation top-1 exceeded the chance bound of the validation split, so the tuned value is "
            "arbitrary; *range of X widened*: the first round chose X at the edge of its range, and a second "
            "round of as many trials searched the widened range"
        )
        if note := seed_note(suite):
            lines.append(f"- **{note.split(':')[0]}**:{note.split(':', 1)[1]}")
    return lines + [""]


def label_tuning(df: pd.DataFrame, suite: Suite, suite_dir: Path) -> pd.DataFrame:
    """``df`` with the ``tuning`` column of tuned runs labelled by the state of their entry's tuning record at
    their T (a per-T record), else for every T (:class:`snnbench.tuning.TuningState`: stale, unverifiable,
    all trials at chance, range widened)."""
    from snnbench.tuning import tuning_states

    if df.empty or "tuning" not in df or "entry" not in df:
        return df
    sizes: dict[tuple[str, str], int] = {}
    if "val_size" in df:
        for entry, budget, size in zip(df["entry"], df["budget"], df["val_size"], strict=True):
            if not pd.isna(size):
                sizes[(str(entry), str(budget))] = int(size)
    states = tuning_states(suite, suite_dir, sizes)
    times = df["T"] if "T" in df else [None] * len(df)

    def label(entry: str, T: Any, text: Any) -> Any:  # a per-T record labels the rows of its T only
        state = states.get((entry, None if T is None or pd.isna(T) else int(T))) or states.get((entry, None))
        labels = state.labels() if state is not None else []
        return f"{text} ({'; '.join(labels)})" if labels and text != "defaults" else text

    rows = zip(df["entry"], times, df["tuning"], strict=True)
    return df.assign(tuning=[label(str(e), T, t) for e, T, t in rows])


def to_markdown(
    tables: dict[str, pd.DataFrame],
    suite: Suite,
    n_records: int,
    revisions: list[str],
    budget: str,
    machines: dict[str, int] | None = None,
) -> str:
    """The committed ``leaderboard.md``: header naming the command, records and revision, the legend, then
    per track the per-T tables with tied ranks (the primary view), the latency front and all rows ranked
    across T; then the published figures with their selection rule. ``machines`` (machine kind → records,
    :func:`snnbench.rows.machine_counts`) adds the legend's machine line, the marks of rows run on another
    machine kind or several (:func:`machine_marks`) and the *All rows* table's machine column."""
    lines = [
        f"# {suite.name} leaderboard",
        "",
        suite.description.strip(),
        "",
        f"Generated by `snnbench leaderboard --suite {suite.name}"
        f"{'' if budget == suite.default_budget else f' --budget {budget}'}` from {n_records} records "
        f"(budget `{budget}`, suite version {suite.version}, revision {', '.join(revisions) or 'unknown'}).",
        "Top-1 is the **final-epoch** accuracy on the whole test set, mean ± 95 % CI over seeds (n runs); "
        "the test set is evaluated once per run. Per-epoch curves and every model selection use a validation "
        f"split carved from the training set ({suite.validation.fraction:g} per class, seed "
        f"{suite.validation.seed})."
        + (
            " *val-selected* is the test top-1 of the epoch with the best validation top-1 (secondary)."
            if suite.validation.select
            else ""
        ),
        "Rows are ranked only within their track; tracks are never mixed. Ranks are tied where the seeds do "
        "not separate rows.",
        "",
    ]
    lines += legend(suite)
    if machines:
        lines[-1:-1] = machine_legend(machines)  # before the legend's closing blank line
    if any(has_ties(table) for table in tables.values()):
        lines[-1:-1] = ties_legend()
    for track, table in tables.items():
        if machines:
            table = machine_marks(table, machines)
            marked = zip(table["algorithm"], table["machine_mark"], strict=True)
            table = table.assign(algorithm=[f"{a} {m}" if m else a for a, m in marked])
        lines += [f"## Track `{track}`", "", TRACKS[track] + ".", ""]
        lines += _per_T_markdown(table)
        lines += _front_markdown(table)
        lines += ["### All rows", "", "Every row of the track, ranked across T by the same rule.", ""]
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


def _per_T_markdown(table: pd.DataFrame) -> list[str]:
    lines = ["### Top-1 at each T", ""]
    for T, ranked, chance, few in per_T(table):
        lines += [f"#### T = {T}", ""]
        if len(ranked):
            ties = has_ties(table)
            lines += [
                "| # | algorithm | top-1 (%) | 95 % CI | n | latency front |"
                + (" ties (%) |" if ties else ""),
                "|---|---|---|---|---|---|" + ("---|" if ties else ""),
            ]
            for row in ranked.to_dict("records"):
                lines.append(
                    f"| {_rank(row, 'rank_at_T')} | {row['algorithm']} | {_top1(row)} | {_interval(row)} | "
                    f"{row['n']} | {'✓' if row['latency_front'] else ''} |"
                    + (f" {ties_cell(row)} |" if ties else "")
                )
            lines.append("")
        if len(chance):
            bound = float(chance["chance_top1"].max())
            lines += [f"At chance (top-1 ≤ {_fmt(bound)} %), unranked: {_apart(chance)}.", ""]
        if len(few):
            lines += [f"Fewer than two ok seeds (no interval), unranked: {_apart(few)}.", ""]
    return lines


def _front_markdown(table: pd.DataFrame) -> list[str]:
    front = table[table["latency_front"].astype(bool)]
    front = front.assign(_m=-front["top1_mean"]).sort_values(["T", "_m", "algorithm"])
    lines = [
        "### Latency front",
        "",
        "Rows that no row of equal-or-lower T beats separably (95 % CI entirely above), by T, then mean; "
        "chance-level rows are never on it.",
        "",
    ]
    if front.empty:
        return lines + ["No ranked row.", ""]
    lines += ["| T | algorithm | top-1 (%) | 95 % CI | n |", "|---|---|---|---|---|"]
    for row in front.to_dict("records"):
        lines.append(f"| {row['T']} | {row['algorithm']} | {_top1(row)} | {_interval(row)} | {row['n']} |")
    return lines + [""]


def _markdown_table(table: pd.DataFrame) -> list[str]:
    selected = "top1_val_selected_mean" in table
    ties = has_ties(table)
    extra = [
        c
        for c in table.columns
        if c.endswith("_mean") and c not in ("top1_mean", "top1_val_selected_mean", *TIE_COLUMNS)
    ]
    header = ["#", "algorithm", "T", "top-1 (%)", "95 % CI", "n"]
    header += ["ties (%)", "top-1, own read-out (%)"] if ties else []
    header += ["val-selected (%)"] if selected else []
    header += [SETUP_LABELS.get(c, c) for c in SETUP_COLUMNS]
    header += [_metric_head(c[:-5]) for c in extra]
    header += ["diverged", "failed", "stale"]
    header += ["machine"] if "machine_code" in table else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.to_dict("records"):
        cells = [_rank(row), row["algorithm"], str(row["T"]), _top1(row), _interval(row), str(row["n"])]
        cells += [ties_cell(row), own_cell(row)] if ties else []
        if selected:
            cells.append(_fmt(row.get("top1_val_selected_mean")))
        cells += [str(row[c]) for c in SETUP_COLUMNS]
        cells += [_fmt_metric(row[c]) for c in extra]
        cells += [str(row["n_diverged"]), str(row["n_failed"]), str(row["stale"])]
        cells += [row["machine_code"]] if "machine_code" in row else []
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# the table's own columns (metric columns are described by METRICS)
COLUMNS = {
    "algorithm": "the suite entry (a method, or a labelled variant of one)",
    "T": "time steps",
    "n": "ok runs averaged (seeds)",
    "top1_ci95": "half-width (points) of the 95 % Student's t CI of the mean top-1 over seeds, at least half "
    "a test image (snnbench.leaderboard.ci_half_width)",
    "top1_ci_low": "top1_mean − top1_ci95, at least 0",
    "top1_ci_high": "top1_mean + top1_ci95, at most 100",
    "rank": "tied rank in the track: 1 + rows whose CI lies entirely above this row's (empty: unranked)",
    "rank_at_T": "tied rank among the rows of the same T, by the same rule (empty: unranked)",
    "latency_front": "no row of equal-or-lower T has its CI entirely above this row's",
    "at_chance": "mean top-1 at most chance_top1: listed apart, unranked, never on a front",
    "chance_top1": "the 0.95 quantile of a uniform guesser's top-1 on the test set (%; "
    "snnbench.leaderboard.chance_bound)",
    "n_diverged": "runs stopped on a non-finite loss or weights",
    "n_failed": "runs that raised an error",
    "stale": "records made by another version or source of the method than the current one",
    "seeds": "seeds of the ok runs",
    "ties_rule": "the tie rule that made the row's top-1: expected-uniform (snnbench.ties: expected accuracy "
    "under uniform random tie-breaking) or lowest-index (records made before it: argmax, the method's own "
    "read-out)",
    "machine": "the machine kind(s) the row's records ran on (snnbench.rows.machine_kind), joined by ' + '",
    "track": "controlled (one set-up for every method), official (each paper's set-up) or extra",
    "arch": "architecture(s) of the runs",
    "params": "parameter count(s) of the runs",
    "epochs": "training epochs",
    "batch_size": "training batch size",
    "encoding": "input encoding",
    **FACT_DEFINITIONS,
    "tuning": "where the hyperparameters came from (defaults, or trials on the validation split), with the "
    "state of the tuning record in brackets (see *tuning labels*)",
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
        if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
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
            "machines": sorted({str(m) for m in part.get("machine", pd.Series()).dropna()}),
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
    """Write ``leaderboard.md``, ``leaderboard.csv`` (every track, a ``track`` column), and per track its
    Pareto plots (``pareto-<track>.png`` ...) and its method × T matrix (``matrix-<track>.png``, ``.svg``)
    of the records in ``suite_dir/runs`` into ``into`` (default: :func:`report_dir`); return the paths."""
    from snnbench.plots import matrix, pareto
    from snnbench.records import atomic_write_bytes

    budget = budget or suite.default_budget
    target = into or report_dir(suite, suite_dir, budget)
    df = select_records(
        load_records(suite_dir) if (suite_dir / "runs").is_dir() else pd.DataFrame(), suite, budget
    )
    if df.empty:
        raise SnnbenchError(f"no records of budget {budget!r} for suite {suite.name} under {suite_dir}")
    df = label_tuning(df, suite, suite_dir)
    tables = by_track(df, columns)
    revisions = sorted({str(r)[:10] for r in df["git_revision"].dropna()})
    markdown = to_markdown(tables, suite, len(df), revisions, budget, machine_counts(df))
    files = [target / "leaderboard.md", target / "leaderboard.csv"]
    atomic_write_bytes(files[0], markdown.encode())
    combined = pd.concat(list(tables.values()), ignore_index=True)
    atomic_write_bytes(files[1], combined.to_csv(index=False, float_format="%.4f").encode())
    for track, table in tables.items():
        for axis, stem in PLOT_AXES.items():
            files += pareto(table, suite, target / f"{stem}-{track}", x=axis, track=track)
        files += matrix(table, suite, target / f"matrix-{track}", track=track)
    return files
