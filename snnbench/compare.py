"""Seed-aware comparison of one method against baselines (and published rows) at each T.

For each T and baseline: mean ± std over seeds of both, the difference (new − baseline) with a 95 %
percentile-bootstrap confidence interval (resampling seeds within each method, or seed pairs when the
seeds pair up, 10,000 resamples, fixed generator), a paired t-test when both have the same seeds (Welch's
t-test otherwise), and a verdict: "better"/"worse" when p < 0.05 and the interval excludes 0, otherwise
"no difference at n seeds" with the number of seeds per method that the same two-sided t-test at α = 0.05
would need for 80 % power to detect the observed difference (noncentral t, with the observed paired or
pooled standard deviation). Published reference rows of
the suite are compared by a one-sample t-test of the new method's seeds against the published value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from snnbench.errors import SnnbenchError
from snnbench.rows import Row, group_rows
from snnbench.suite import Suite

ALPHA, POWER, RESAMPLES = 0.05, 0.80, 10_000


@dataclass(frozen=True)
class Comparison:
    """One row: the new method against one baseline (or a published figure) at one T."""

    T: int
    baseline: str
    kind: str  # "measured" or "published"
    new_mean: float
    new_std: float
    new_n: int
    base_mean: float
    base_std: float
    base_n: int
    difference: float
    ci_low: float
    ci_high: float
    test: str
    p_value: float
    verdict: str


def _seeds_needed(sigma: float, delta: float, paired: bool) -> int | None:
    """Smallest seeds per method for 80 % power of the two-sided t-test at α = 0.05 (noncentral t)."""
    if delta == 0 or not math.isfinite(sigma) or sigma == 0:
        return None
    effect = abs(delta) / sigma
    for n in range(2, 100_001):
        df = n - 1 if paired else 2 * n - 2
        noncentrality = effect * math.sqrt(n if paired else n / 2)
        critical = stats.t.ppf(1 - ALPHA / 2, df)
        power = stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality)
        if power >= POWER:
            return n
    return None


def _verdict(delta: float, low: float, high: float, p: float, n: int, sigma: float, paired: bool) -> str:
    if math.isfinite(p) and p < ALPHA and (low > 0 or high < 0):
        return "better" if delta > 0 else "worse"
    needed = _seeds_needed(sigma, delta, paired)
    hint = f"; about {needed} seeds would be needed to detect {abs(delta):.2f} points" if needed else ""
    return f"no difference at {n} seeds{hint}"


def compare_groups(new: dict[int, float], base: dict[int, float], T: int, baseline: str) -> Comparison:
    """Compare two {seed: top-1} groups (see the module docstring)."""
    if len(new) < 2 or len(base) < 2:
        raise SnnbenchError(
            f"T={T}: need at least 2 seeds of each method to compare (have {len(new)} and {len(base)})"
        )
    rng = np.random.default_rng(0)
    a, b = np.array(list(new.values())), np.array(list(base.values()))
    delta = float(a.mean() - b.mean())
    paired = set(new) == set(base)
    if paired:
        seeds = sorted(new)
        d = np.array([new[s] - base[s] for s in seeds])
        boot = d[rng.integers(0, len(d), (RESAMPLES, len(d)))].mean(1)
        p = (
            float(stats.ttest_rel([new[s] for s in seeds], [base[s] for s in seeds]).pvalue)
            if d.std() > 0
            else (1.0 if d.mean() == 0 else 0.0)
        )
        sigma, test = float(d.std(ddof=1)), "paired t"
    else:
        boot = a[rng.integers(0, len(a), (RESAMPLES, len(a)))].mean(1) - b[
            rng.integers(0, len(b), (RESAMPLES, len(b)))
        ].mean(1)
        both_constant = a.std() == 0 and b.std() == 0
        p = (
            float(stats.ttest_ind(a, b, equal_var=False).pvalue)
            if not both_constant
            else (1.0 if delta == 0 else 0.0)
        )
        sigma, test = float(math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)), "Welch t"
    low, high = (float(q) for q in np.percentile(boot, [2.5, 97.5]))
    n = min(len(a), len(b))
    return Comparison(
        T,
        baseline,
        "measured",
        float(a.mean()),
        float(a.std(ddof=1)),
        len(a),
        float(b.mean()),
        float(b.std(ddof=1)),
        len(b),
        delta,
        low,
        high,
        test,
        p,
        _verdict(delta, low, high, p, n, sigma, paired),
    )


def compare_published(new: dict[int, float], value: float, T: int, name: str) -> Comparison:
    """The new method's seeds against a published figure (one-sample t-test; bootstrap of the mean)."""
    a = np.array(list(new.values()))
    if len(a) < 2:
        raise SnnbenchError(f"T={T}: need at least 2 seeds to compare with a published figure")
    rng = np.random.default_rng(0)
    boot = a[rng.integers(0, len(a), (RESAMPLES, len(a)))].mean(1) - value
    low, high = (float(q) for q in np.percentile(boot, [2.5, 97.5]))
    delta = float(a.mean() - value)
    p = float(stats.ttest_1samp(a, value).pvalue) if a.std() > 0 else (1.0 if delta == 0 else 0.0)
    verdict = _verdict(delta, low, high, p, len(a), float(a.std(ddof=1)), True)
    return Comparison(
        T,
        name,
        "published",
        float(a.mean()),
        float(a.std(ddof=1)),
        len(a),
        value,
        math.nan,
        0,
        delta,
        low,
        high,
        "one-sample t",
        p,
        verdict,
    )


def compare(
    records: pd.DataFrame,
    suite: Suite,
    method: str,
    baselines: list[str] | None = None,
    timesteps: list[int] | None = None,
) -> list[Comparison]:
    """All rows for ``method`` (a suite entry) against ``baselines`` (default: every other entry) from the
    ``ok`` records of one budget (see :func:`snnbench.leaderboard.select_records`), grouped as the
    leaderboard groups them (:func:`snnbench.rows.group_rows`): each seed once, and an entry with records of
    several set-ups at a T is refused there."""
    ok = records[records["status"] == "ok"]
    entries = sorted(set(ok["entry"]))
    if method not in entries:
        from snnbench.errors import UnknownNameError

        raise UnknownNameError("method with records", method, entries)
    setup = _setups(ok)
    if baselines is None:  # every other entry run alike (same track and tuning budget)
        baselines = [e for e in entries if e != method and setup[e] == setup[method]]
    for name in baselines:
        if name not in entries:
            from snnbench.errors import UnknownNameError

            raise UnknownNameError("baseline with records", name, entries)
        if setup[name] != setup[method]:
            raise SnnbenchError(
                f"{method} ({_describe(setup[method])}) and {name} ({_describe(setup[name])}) were not run "
                "alike: compare only runs of the same track, T, budget and tuning budget"
            )

    rows_at: dict[tuple[str, int], list[Row]] = {}
    for row in group_rows(ok):  # the leaderboard's rows: one set-up each, each seed once
        rows_at.setdefault((row.entry, row.T), []).append(row)

    def by_seed(entry: str, T: int) -> dict[int, float]:
        found = rows_at.get((entry, T), [])
        if len(found) > 1:
            labels = "; ".join(r.label for r in found)
            raise SnnbenchError(
                f"{entry} has records of {len(found)} set-ups at T={T} ({labels}): compare one set-up (a "
                "suite version bump or another --out separates them)"
            )
        rows = found[0].records if found else ok.iloc[:0]
        return {int(s): float(v) for s, v in zip(rows["seed"], rows["top1"], strict=True)}

    rows: list[Comparison] = []
    for T in sorted(set(ok.loc[ok["entry"] == method, "T"])):
        if timesteps and T not in timesteps:
            continue
        new = by_seed(method, int(T))
        for name in baselines:
            base = by_seed(name, int(T))
            if base:
                rows.append(compare_groups(new, base, int(T), name))
        algorithm = ok.loc[ok["entry"] == method, "algorithm"].iloc[0]
        for ref in suite.reference:
            if ref.T == T and ref.algorithm in (method, algorithm):
                rows.append(compare_published(new, ref.top1, int(T), f"{ref.algorithm} ({ref.source})"))
    if not rows:
        raise SnnbenchError(f"no T at which {method} and the baselines both have records")
    return rows


def _setups(records: pd.DataFrame) -> dict[str, tuple[tuple[str, str], ...]]:
    """Entry → its (track, tuning budget) pairs over all its records: what must match for two entries' runs
    to be compared (an entry with records of several is like no other)."""
    track = records["track"] if "track" in records else pd.Series("official", index=records.index)
    tuning = records["tuning"] if "tuning" in records else pd.Series("defaults", index=records.index)
    pairs = pd.DataFrame(
        {"entry": records["entry"], "track": track.astype(str), "tuning": tuning.astype(str)}
    )
    return {
        str(entry): tuple(sorted(set(zip(part["track"], part["tuning"], strict=True))))
        for entry, part in pairs.groupby("entry")
    }


def _describe(setup: tuple[tuple[str, str], ...]) -> str:
    return " and ".join(f"track {track}, tuning: {tuning}" for track, tuning in setup)


def to_frame(rows: list[Comparison]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows])


def to_markdown(rows: list[Comparison], method: str) -> str:
    """A table for papers and READMEs."""
    lines = [
        f"| T | {method} | baseline | baseline top-1 | Δ (95 % CI) | test, p | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = f"{r.base_mean:.2f}" + (
            f" ± {r.base_std:.2f} (n={r.base_n})" if r.kind == "measured" else " (published)"
        )
        lines.append(
            f"| {r.T} | {r.new_mean:.2f} ± {r.new_std:.2f} (n={r.new_n}) | {r.baseline} | {base} | "
            f"{r.difference:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}] | "
            f"{r.test}, {r.p_value:.3g} | {r.verdict} |"
        )
    return "\n".join(lines) + "\n"
