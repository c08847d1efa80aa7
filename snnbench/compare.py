"""Seed-aware comparison of one method against baselines (and published rows) at each T.

For each T and baseline:

- mean ± std over seeds of both, and each run's binomial standard error of its top-1
  (``100·√(p(1 − p)/N)`` points, N the records' test-set size), beside the test set's granularity: one
  test image is ``100/N`` points (0.28 on digits, N = 360); the difference is also given in test images;
- the difference (new − baseline) with a 95 % percentile-bootstrap confidence interval (resampling seeds
  within each method, or seed pairs when the seeds pair up, 10,000 resamples, fixed generator);
- an **exact** permutation test, the primary test: when both methods ran the same seeds, the sign-flip test
  of the paired per-seed differences (all 2ⁿ sign patterns); otherwise the two-sample permutation test of
  the difference of means (all splits of the pooled seeds). Two-sided, so with n paired seeds the smallest
  p it can give is 2/2ⁿ: **0.25 at 3 seeds**, whatever the difference; 6 seeds are needed for any p < 0.05;
- Holm's step-down correction of those p-values over every row (baselines × T, published rows included) of
  one invocation;
- as secondary figures only, the paired t-test (``scipy.stats.ttest_rel``) or Welch's t-test
  (``scipy.stats.ttest_ind(equal_var=False)``) p-value;
- a verdict: "better"/"worse" only when the Holm-adjusted exact p is below α = 0.05 **and** the difference
  is larger than :data:`CROSS_CPU_TOLERANCE`, what re-running the same seeds on another CPU family moved a
  row's mean (a difference within it could come from the machine alone). Otherwise "not separated", with
  the reasons, and, where more seeds could help, the seeds per method that the t-test at Holm's strictest
  level α/m would need for 80 % power to detect the observed difference (noncentral t, noncentrality
  d·√n paired and d·√(n/2) for two groups of n, d the observed effect size), and at least as many as the
  exact test needs to reach p < α/m at all.

Published reference rows of the suite are compared by the one-sample sign-flip test of the new method's
seeds about the published value (secondary: the one-sample t-test).
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from snnbench.errors import SnnbenchError
from snnbench.rows import MACHINES, Row, group_rows
from snnbench.suite import Suite
from snnbench.ties import OLD_RULE, OWN_RULE, RULE

ALPHA, POWER, RESAMPLES = 0.05, 0.80, 10_000

# Points of top-1 by which re-running the same seeds on another CPU family moved a row's mean: the committed
# digits-lowT records made on an Intel Xeon (AVX-512) and again on an AMD EPYC (Zen 1, AVX2) by code that
# computes the same bits moved 43 of 80 row means, by at most 1.94 points (stdbp T = 4, 82.59 → 84.54; one
# seed by 3.9; bntt T = 4 by 0.83) — README.md, "Current digits-lowT leaderboard", and benchmarks/README.md.
# A difference between two methods no larger than this may be the machine, not the method.
CROSS_CPU_TOLERANCE = 1.94

EXACT_LIMIT = 1 << 16  # sign patterns / splits enumerated exactly; beyond, a fixed-seed Monte Carlo sample
MONTE_CARLO = 100_000


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
    test: str  # the exact test
    p_value: float  # its two-sided p
    p_min: float  # the smallest p that test can give with these seeds
    p_holm: float  # p after Holm's correction over `comparisons` rows
    comparisons: int
    t_test: str  # secondary figure
    t_p_value: float
    test_size: int  # N: one test image is 100/N points
    image_points: float
    new_binomial_se: tuple[float, ...]  # per run, in seed order (points)
    base_binomial_se: tuple[float, ...]
    tolerance: float  # CROSS_CPU_TOLERANCE
    verdict: str
    new_machine: str = ""  # the machine kind(s) the method's records ran on (snnbench.rows.machine_kind)
    base_machine: str = ""  # the baseline's ("" for a published figure)
    new_rule: str = ""  # the tie rule that made the method's top-1 (snnbench.ties.rule_of; "" unknown)
    base_rule: str = ""  # the baseline's ("" for a published figure)
    new_ties: float = math.nan  # mean share of tied test images over the method's seeds (its rule's records)
    base_ties: float = math.nan

    @property
    def other_rule(self) -> bool:
        """Whether the method's and a measured baseline's top-1 were made by different tie rules."""
        return self.kind == "measured" and self.new_rule != self.base_rule

    @property
    def other_machine(self) -> bool:
        """Whether the method and a measured baseline ran on different machine kinds."""
        return self.kind == "measured" and self.new_machine != self.base_machine


def sign_flip_p(d: np.ndarray) -> tuple[float, float, bool]:
    """Two-sided p of the sign-flip test of mean(d) = 0, the smallest p possible, and whether it is exact
    (all 2ⁿ sign patterns; beyond :data:`EXACT_LIMIT` a fixed-seed sample of :data:`MONTE_CARLO`)."""
    n = len(d)
    if 2**n <= EXACT_LIMIT:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
        exact = True
    else:
        signs = np.random.default_rng(0).choice([-1, 1], size=(MONTE_CARLO, n))
        exact = False
    observed = abs(float(d.mean()))
    statistic = np.abs(signs @ d) / n
    hits = int((statistic >= observed - 1e-9).sum())
    p = hits / len(signs) if exact else (hits + 1) / (len(signs) + 1)
    return min(1.0, p), 2 / 2**n, exact


def permutation_p(a: np.ndarray, b: np.ndarray) -> tuple[float, float, bool]:
    """Two-sided p of the two-sample permutation test of the difference of means, the smallest p possible,
    and whether it is exact (all splits of the pooled values; beyond :data:`EXACT_LIMIT`, a sample)."""
    pooled = np.concatenate([a, b])
    total, k = len(pooled), len(a)
    splits = math.comb(total, k)
    observed = abs(float(a.mean() - b.mean()))
    if splits <= EXACT_LIMIT:
        member = np.zeros((splits, total), dtype=bool)
        for row, chosen in enumerate(itertools.combinations(range(total), k)):
            member[row, list(chosen)] = True
        exact = True
    else:
        rng = np.random.default_rng(0)
        member = np.zeros((MONTE_CARLO, total), dtype=bool)
        for row in range(MONTE_CARLO):
            member[row, rng.permutation(total)[:k]] = True
        exact = False
    sums = member @ pooled
    statistic = np.abs(sums / k - (pooled.sum() - sums) / (total - k))
    hits = int((statistic >= observed - 1e-9).sum())
    p = hits / len(member) if exact else (hits + 1) / (len(member) + 1)
    return min(1.0, p), 2 / splits, exact


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (the family's error rate controlled at any α)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def noncentrality(effect: float, n: int, paired: bool) -> float:
    """The t statistic's noncentrality for effect size ``effect`` (difference / σ) at n seeds per method:
    the difference over its standard error, σ/√n for n paired differences, σ·√(2/n) for two groups of n."""
    return effect * math.sqrt(n if paired else n / 2)


def t_power(effect: float, n: int, paired: bool, alpha: float = ALPHA) -> float:
    """Power of the two-sided t-test (paired, or two groups of n) at level ``alpha``."""
    df = n - 1 if paired else 2 * n - 2
    delta = noncentrality(effect, n, paired)
    critical = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(critical, df, delta) + stats.nct.cdf(-critical, df, delta))


def _seeds_needed(sigma: float, delta: float, paired: bool, alpha: float = ALPHA) -> int | None:
    """Smallest seeds per method for 80 % power of the two-sided t-test at ``alpha`` (noncentral t)."""
    if delta == 0 or not math.isfinite(sigma) or sigma == 0:
        return None
    effect = abs(delta) / sigma
    for n in range(2, 100_001):
        if t_power(effect, n, paired, alpha) >= POWER:
            return n
    return None


def _exact_seeds_needed(paired: bool, alpha: float) -> int:
    """Fewest seeds per method at which the exact test can give p < alpha at all."""
    n = 2
    while (2 / 2**n if paired else 2 / math.comb(2 * n, n)) >= alpha:
        n += 1
    return n


def binomial_se(top1: float, test_size: int) -> float:
    """A run's binomial standard error of top-1 on ``test_size`` images, in points."""
    p = min(max(top1 / 100, 0.0), 1.0)
    return 100 * math.sqrt(p * (1 - p) / test_size)


def _verdict(row: Comparison, sigma: float, paired: bool) -> str:
    separated = row.p_holm < ALPHA
    beyond_cpu = abs(row.difference) > row.tolerance
    if separated and beyond_cpu:
        return "better" if row.difference > 0 else "worse"
    reasons = []
    if row.p_min >= ALPHA:
        seeds = f"{row.new_n}" if paired else f"{row.new_n} and {row.base_n}"
        reasons.append(f"the smallest possible p at {seeds} seeds is {row.p_min:.3g}")
    elif not separated:
        holm_note = f", {row.p_holm:.3g} after Holm over {row.comparisons}" if row.comparisons > 1 else ""
        reasons.append(f"exact p {row.p_value:.3g}{holm_note}")
    if not beyond_cpu:
        reasons.append(f"Δ within ±{row.tolerance:.2f} points, what another CPU family moves a mean")
    elif not separated:
        alpha = ALPHA / row.comparisons
        needed = _seeds_needed(sigma, row.difference, paired, alpha)
        if needed is not None or sigma == 0:  # no spread: the exact test's floor is all that is needed
            needed = max(needed or 0, _exact_seeds_needed(paired, alpha))
            reasons.append(f"about {needed} seeds would be needed to detect {abs(row.difference):.2f} points")
    return "not separated: " + "; ".join(reasons)


def _judge(row: Comparison, sigma: float, paired: bool) -> Comparison:
    return replace(row, verdict=_verdict(row, sigma, paired))


def _check_test_size(test_size: int, what: str) -> int:
    if not isinstance(test_size, (int, np.integer)) or test_size < 1:
        raise SnnbenchError(
            f"{what}: metrics.test_size must be a positive number of images, got {test_size!r}"
        )
    return int(test_size)


def _measured(
    new: dict[int, float], base: dict[int, float], T: int, baseline: str, test_size: int
) -> tuple[Comparison, float, bool]:
    if len(new) < 2 or len(base) < 2:
        raise SnnbenchError(
            f"T={T}: need at least 2 seeds of each method to compare (have {len(new)} and {len(base)})"
        )
    test_size = _check_test_size(test_size, f"T={T}")
    rng = np.random.default_rng(0)
    a, b = np.array(list(new.values())), np.array(list(base.values()))
    delta = float(a.mean() - b.mean())
    paired = set(new) == set(base)
    if paired:
        seeds = sorted(new)
        d = np.array([new[s] - base[s] for s in seeds])
        boot = d[rng.integers(0, len(d), (RESAMPLES, len(d)))].mean(1)
        p, p_min, exact = sign_flip_p(d)
        test = "sign-flip" if exact else "sign-flip (sampled)"
        with warnings.catch_warnings():  # near-constant differences: scipy warns, its p is shown as computed
            warnings.simplefilter("ignore", RuntimeWarning)
            t_p = float(stats.ttest_rel([new[s] for s in seeds], [base[s] for s in seeds]).pvalue)
        sigma, t_test = float(d.std(ddof=1)), "paired t"
    else:
        boot = a[rng.integers(0, len(a), (RESAMPLES, len(a)))].mean(1) - b[
            rng.integers(0, len(b), (RESAMPLES, len(b)))
        ].mean(1)
        p, p_min, exact = permutation_p(a, b)
        test = "permutation" if exact else "permutation (sampled)"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            t_p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
        sigma, t_test = float(math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)), "Welch t"
    low, high = (float(q) for q in np.percentile(boot, [2.5, 97.5]))
    row = Comparison(
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
        p_min,
        p,
        1,
        t_test,
        t_p,
        test_size,
        100 / test_size,
        tuple(binomial_se(new[s], test_size) for s in sorted(new)),
        tuple(binomial_se(base[s], test_size) for s in sorted(base)),
        CROSS_CPU_TOLERANCE,
        "",
    )
    return row, sigma, paired


def compare_groups(
    new: dict[int, float], base: dict[int, float], T: int, baseline: str, test_size: int
) -> Comparison:
    """Compare two {seed: top-1} groups measured on ``test_size`` test images, as a family of one row
    (see the module docstring; :func:`compare` corrects over all its rows)."""
    row, sigma, paired = _measured(new, base, T, baseline, test_size)
    return _judge(row, sigma, paired)


def _published(
    new: dict[int, float], value: float, T: int, name: str, test_size: int
) -> tuple[Comparison, float, bool]:
    a = np.array([new[s] for s in sorted(new)])
    if len(a) < 2:
        raise SnnbenchError(f"T={T}: need at least 2 seeds to compare with a published figure")
    test_size = _check_test_size(test_size, f"T={T}")
    rng = np.random.default_rng(0)
    boot = a[rng.integers(0, len(a), (RESAMPLES, len(a)))].mean(1) - value
    low, high = (float(q) for q in np.percentile(boot, [2.5, 97.5]))
    delta = float(a.mean() - value)
    p, p_min, exact = sign_flip_p(a - value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t_p = float(stats.ttest_1samp(a, value).pvalue)
    row = Comparison(
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
        "sign-flip (one-sample)" if exact else "sign-flip (one-sample, sampled)",
        p,
        p_min,
        p,
        1,
        "one-sample t",
        t_p,
        test_size,
        100 / test_size,
        tuple(binomial_se(float(v), test_size) for v in a),
        (),
        CROSS_CPU_TOLERANCE,
        "",
    )
    return row, float(a.std(ddof=1)), True


def compare_published(new: dict[int, float], value: float, T: int, name: str, test_size: int) -> Comparison:
    """The new method's seeds against a published figure (one-sample sign-flip test; bootstrap of the
    mean), as a family of one row."""
    row, sigma, paired = _published(new, value, T, name, test_size)
    return _judge(row, sigma, paired)


def compare(
    records: pd.DataFrame,
    suite: Suite,
    method: str,
    baselines: list[str] | None = None,
    timesteps: list[int] | None = None,
) -> list[Comparison]:
    """All rows for ``method`` (a suite entry) against ``baselines`` (default: every other entry) from the
    ``ok`` records of one budget (see :func:`snnbench.leaderboard.select_records`), grouped as the
    leaderboard groups them (:func:`snnbench.rows.group_rows`: each seed once, an entry with records of
    several set-ups at a T refused), Holm-corrected over all of them."""
    ok = records[records["status"] == "ok"]
    entries = sorted(set(ok["entry"]))
    if method not in entries:
        from snnbench.errors import UnknownNameError

        raise UnknownNameError("method with records", method, entries)
    if "test_size" not in ok or ok["test_size"].isna().any():
        raise SnnbenchError("records without metrics.test_size: the test set's size is needed to compare")
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

    def ties(entry: str, T: int) -> tuple[str, float]:
        found = rows_at.get((entry, T), [])
        records = found[0].records if found else ok.iloc[:0]
        rules = sorted({str(r) for r in records.get("ties_rule", pd.Series(dtype=object)).dropna()})
        rule = "/".join(rules)
        shares = pd.to_numeric(records.get("tie_fraction", pd.Series(dtype=float)), errors="coerce")
        return rule, float(shares.mean()) if rule == RULE and shares.notna().any() else math.nan

    def machines(entry: str, T: int) -> str:
        found = rows_at.get((entry, T), [])
        records = found[0].records if found else ok.iloc[:0]
        return MACHINES.join(sorted({str(m) for m in records.get("machine", pd.Series()).dropna()}))

    def test_size(entries: list[str], T: int) -> int:
        sizes = set(ok.loc[ok["entry"].isin(entries) & (ok["T"] == T), "test_size"].astype(int))
        if len(sizes) != 1:
            raise SnnbenchError(
                f"T={T}: {' and '.join(entries)} were tested on different test-set sizes {sorted(sizes)}"
            )
        return sizes.pop()

    found: list[tuple[Comparison, float, bool]] = []
    for T in sorted(set(ok.loc[ok["entry"] == method, "T"])):
        if timesteps and T not in timesteps:
            continue
        new = by_seed(method, int(T))
        for name in baselines:
            base = by_seed(name, int(T))
            if base:
                row, sigma, paired = _measured(new, base, int(T), name, test_size([method, name], int(T)))
                where = {"new_machine": machines(method, int(T)), "base_machine": machines(name, int(T))}
                (new_rule, new_ties), (base_rule, base_ties) = ties(method, int(T)), ties(name, int(T))
                where |= {
                    "new_rule": new_rule,
                    "base_rule": base_rule,
                    "new_ties": new_ties,
                    "base_ties": base_ties,
                }
                found.append((replace(row, **where), sigma, paired))
        algorithm = ok.loc[ok["entry"] == method, "algorithm"].iloc[0]
        for ref in suite.reference:
            if ref.T == T and ref.algorithm in (method, algorithm):
                name = f"{ref.algorithm} ({ref.source})"
                row, sigma, paired = _published(new, ref.top1, int(T), name, test_size([method], int(T)))
                new_rule, new_ties = ties(method, int(T))
                where = {"new_machine": machines(method, int(T)), "new_rule": new_rule, "new_ties": new_ties}
                found.append((replace(row, **where), sigma, paired))
    if not found:
        raise SnnbenchError(f"no T at which {method} and the baselines both have records")
    adjusted = holm([row.p_value for row, _, _ in found])
    return [
        _judge(replace(row, p_holm=p, comparisons=len(found)), sigma, paired)
        for (row, sigma, paired), p in zip(found, adjusted, strict=True)
    ]


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


def _p(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "–"


def _se(values: tuple[float, ...]) -> str:
    if not values:
        return "–"
    low, high = min(values), max(values)
    return f"{low:.2f}" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}–{high:.2f}"


def has_ties(rows: list[Comparison]) -> bool:
    """Whether any compared row was scored by the common tie rule (then the tables show a ties column)."""
    return any(RULE in (r.new_rule, r.base_rule) for r in rows)


def _ties(rule: str, share: float) -> str:
    if rule != RULE:
        return OLD_RULE
    return f"{100 * share:.1f}" if math.isfinite(share) else "–"


def cells(r: Comparison, ties: bool = False) -> dict[str, str]:
    """One row's displayed cells (the markdown table and the terminal table); ``ties``: with the ties cell
    (the method's and the baseline's tie share, %), for rows where :func:`has_ties`."""
    base = f"{r.base_mean:.2f}" + (
        f" ± {r.base_std:.2f} (n={r.base_n}; SE/run {_se(r.base_binomial_se)})"
        if r.kind == "measured"
        else " (published)"
    )
    images = r.difference / r.image_points
    verdict = r.verdict
    if r.other_machine:  # the tolerance is in every verdict; here the machine may be all the difference is
        verdict += (
            "; other machine"
            if "another CPU family" in verdict
            else f"; other machine: up to ±{r.tolerance:.2f} points may be the CPU"
        )
    if r.other_rule:
        verdict += "; other tie rule: one top-1 gave a tie to the lowest class index"
    base_ties = _ties(r.base_rule, r.base_ties) if r.kind == "measured" else "–"
    shown = {"ties": f"{_ties(r.new_rule, r.new_ties)} / {base_ties}"}
    return {
        "T": str(r.T),
        "new": f"{r.new_mean:.2f} ± {r.new_std:.2f} (n={r.new_n}; SE/run {_se(r.new_binomial_se)})",
        "baseline": f"{r.baseline} ({OTHER_MACHINE})" if r.other_machine else r.baseline,
        "baseline top-1": base,
        "Δ": f"{r.difference:+.2f} = {images:+.1f} images [{r.ci_low:+.2f}, {r.ci_high:+.2f}]",
        "exact p": f"{r.test}, {_p(r.p_value)} (min {_p(r.p_min)}); Holm {_p(r.p_holm)}",
        "t p": f"{r.t_test}, {_p(r.t_p_value)}",
        **(shown if ties else {}),
        "verdict": verdict,
    }


OTHER_MACHINE = "other machine"  # marks a baseline run on another machine kind than the method (cells)


def machine_note(rows: list[Comparison]) -> str:
    """The line under the table naming the machine kind(s): the one all compared records ran on, or the
    method's and each baseline's that ran on another."""
    new = sorted({r.new_machine for r in rows if r.new_machine})
    other = sorted({(r.baseline, r.base_machine) for r in rows if r.other_machine})
    if not new:
        return "Machine: unknown (records without an environment)."
    method = " and ".join(new)
    if not other:
        return f"Machine: the method and every measured baseline ran on {method}."
    return (
        f"Machine: the method ran on {method}; baselines marked ({OTHER_MACHINE}): "
        + "; ".join(f"{name} on {machine or 'unknown'}" for name, machine in other)
        + f". A CPU change alone moved a row's mean by up to {CROSS_CPU_TOLERANCE} points."
    )


def notes(rows: list[Comparison]) -> list[str]:
    """What every verdict of ``rows`` rests on, in sentences shown under the table."""
    sizes = sorted({r.test_size for r in rows})
    image = "; ".join(f"one test image = {100 / n:.2f} points (N = {n})" for n in sizes)
    smallest = sorted({(r.test, r.new_n, r.base_n, r.p_min) for r in rows})
    floors = "".join(
        f" {test}, {n}"
        + (f" and {m}" if test == "permutation" else "")
        + f" seeds: smallest two-sided p {p:.3g}."
        for test, n, m, p in smallest
    )
    tie_note = [
        f"Ties (% of test images, method / baseline): top-1 counts a tied image as 1/k correct when its "
        f"label is among the k tied classes (expected accuracy under uniform random tie-breaking, "
        f"snnbench.ties); {OLD_RULE}: records made before that rule, whose top-1 is the method's own "
        f"read-out ({OWN_RULE})."
    ]
    return [
        machine_note(rows),
        *(tie_note if has_ties(rows) else []),
        f"{image}; SE/run: each run's binomial standard error, 100·√(p(1−p)/N) points.",
        f"Exact test: sign-flip of the paired per-seed differences (two-group permutation when the seeds "
        f"differ); Holm-corrected over the {rows[0].comparisons} comparison(s) of this invocation.{floors}",
        f"'better'/'worse' needs Holm p < {ALPHA} and |Δ| > {CROSS_CPU_TOLERANCE} points, what re-running "
        "on another CPU family moved a row's mean (README.md, 'Current digits-lowT leaderboard'). "
        "t-test p-values are shown for reference only.",
    ]


def to_markdown(rows: list[Comparison], method: str) -> str:
    """A table for papers and READMEs, with the notes under it."""
    ties = has_ties(rows)
    lines = [
        f"| T | {method} | baseline | baseline top-1 | Δ (images) [95 % CI] | exact test, p (min); Holm "
        "| t-test, p |" + (" ties (%) |" if ties else "") + " verdict |",
        "|---|---|---|---|---|---|---|" + ("---|" if ties else "") + "---|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(cells(r, ties).values()) + " |")
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes(rows)) + "\n"
