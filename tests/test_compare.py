"""Plugins (file and entry point) run on an unchanged suite; compare finds planted differences and none
where there are none; bad plugin files are named."""

from __future__ import annotations

import inspect
import io
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.compare import (
    CROSS_CPU_TOLERANCE,
    _seeds_needed,
    compare,
    compare_groups,
    compare_published,
    holm,
    t_power,
)
from snnbench.errors import SnnbenchError
from snnbench.suite import ReferenceRow, load_suite

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "my_method.py"


def synthetic(
    groups: dict[str, tuple[float, float]], seeds: list[int], T: int = 4, seed: int = 0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {
            "entry": name,
            "algorithm": name,
            "T": T,
            "seed": s,
            "status": "ok",
            "top1": mean + sd * rng.standard_normal(),
            "test_size": N,
        }
        for name, (mean, sd) in groups.items()
        for s in seeds
    ]
    return pd.DataFrame(rows)


N = 360  # the digits test set: one image is 0.28 points


def test_a_planted_difference_is_found_both_ways():
    suite = load_suite("digits-lowT")
    records = synthetic({"new": (95.0, 0.3), "base": (92.0, 0.3)}, seeds=list(range(10)))
    (row,) = compare(records, suite, "new", ["base"])
    assert row.verdict == "better" and row.test == "sign-flip" and row.ci_low > 0
    assert row.p_value == row.p_min == 2 / 2**10 and row.p_holm == row.p_value  # a family of one
    assert row.difference == pytest.approx(
        records[records.entry == "new"].top1.mean() - records[records.entry == "base"].top1.mean()
    )
    (row,) = compare(records, suite, "base", ["new"])
    assert row.verdict == "worse" and row.ci_high < 0


def test_identical_distributions_are_not_separated_more_often_than_alpha():
    """300 draws of 10 seeds from one distribution, spread wide enough that |Δ| often passes the cross-CPU
    tolerance: the exact test alone keeps false verdicts at α (5 %, plus 3 binomial errors of 300 draws)."""
    rejected = verdicts = beyond = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        new, base = (dict(enumerate(95.0 + 3.0 * rng.standard_normal(10))) for _ in range(2))
        row = compare_groups(new, base, 4, "b", N)
        rejected += row.p_value < 0.05
        verdicts += row.verdict in ("better", "worse")
        beyond += abs(row.difference) > CROSS_CPU_TOLERANCE
        assert row.verdict in ("better", "worse") or row.verdict.startswith("not separated: ")
    assert rejected <= 0.05 * 300 + 3 * (0.05 * 0.95 * 300) ** 0.5 and verdicts <= rejected
    assert beyond >= 30  # the tolerance did not do the exact test's work
    same = compare_groups({0: 97.0, 1: 97.5}, {0: 97.0, 1: 97.5}, 4, "b", N)
    assert same.verdict.startswith("not separated: ") and same.difference == 0 and same.p_value == 1


def test_three_seeds_never_separate_and_say_why():
    """A 5-point difference at every one of 3 seeds: the paired t-test calls it p ≈ 1e-4, but the exact
    sign-flip test cannot go below 2/2³ = 0.25, and the verdict says so."""
    new = {0: 95.0, 1: 96.1, 2: 94.2}
    base = {0: 90.0, 1: 91.0, 2: 89.3}
    row = compare_groups(new, base, 4, "b", N)
    assert row.t_p_value < 0.001 and row.p_value == row.p_min == 0.25
    assert row.verdict.startswith("not separated: the smallest possible p at 3 seeds is 0.25")
    unpaired = compare_groups(new, {5: 90.0, 6: 91.0, 7: 89.3}, 4, "b", N)
    assert unpaired.test == "permutation" and unpaired.p_value == unpaired.p_min == 0.1  # 2 / C(6, 3)
    assert unpaired.verdict.startswith("not separated: the smallest possible p at 3 and 3 seeds is 0.1")


def test_one_test_image_at_every_seed_is_not_a_win():
    """The same single image (100/360 points) at each of 12 seeds: exact p = 2/2¹², yet within what another
    CPU family moves a mean."""
    base = {s: 97.0 + (s % 3) * 100 / N for s in range(12)}
    new = {s: v + 100 / N for s, v in base.items()}
    row = compare_groups(new, base, 8, "b", N)
    assert row.p_value == pytest.approx(2 / 2**12) and row.difference / row.image_points == pytest.approx(1)
    assert (
        row.verdict
        == f"not separated: Δ within ±{CROSS_CPU_TOLERANCE:.2f} points, what another CPU family moves a mean"
    )
    assert row.image_points == pytest.approx(100 / 360) and row.test_size == N
    p = base[0] / 100
    assert row.base_binomial_se[0] == pytest.approx(100 * (p * (1 - p) / N) ** 0.5)
    assert len(row.new_binomial_se) == len(row.base_binomial_se) == 12


def test_cross_cpu_tolerance_is_the_figure_the_readme_measured():
    """The constant is the README's measured cross-CPU move of a row's mean, not a number of its own."""
    readme = (ROOT / "README.md").read_text()
    assert f"by at most {CROSS_CPU_TOLERANCE} points" in readme


def test_seeds_pair_by_seed_not_by_order():
    """Each seed of the new method is 3 points above the same seed of the baseline; listed in another order,
    pairing by position would give differences of both signs and no verdict."""
    new = {s: 90.0 - 5 * s + 3 for s in range(6)}
    base = {s: 90.0 - 5 * s for s in reversed(range(6))}
    row = compare_groups(new, base, 4, "b", N)
    assert row.test == "sign-flip" and (row.ci_low, row.ci_high) == (3.0, 3.0)
    assert row.p_value == 2 / 2**6 and row.verdict == "better"


def test_the_bootstrap_interval_is_95_percent():
    """With 40 seeds the bootstrap mean is close to normal: the interval is the mean ± 1.96 standard errors
    (± 1.64 would be a 90 % interval)."""
    rng = np.random.default_rng(1)
    a, b = 95.0 + rng.standard_normal(40), 94.0 + 2.0 * rng.standard_normal(40)
    new, base = dict(enumerate(a)), {s + 100: v for s, v in enumerate(b)}
    paired = compare_groups(new, dict(enumerate(b)), 4, "b", N)
    welch = compare_groups(new, base, 4, "b", N)
    published = compare_published(new, 94.0, 4, "paper", N)
    for row, center, error in [
        (paired, (a - b).mean(), (a - b).std() / 40**0.5),
        (welch, a.mean() - b.mean(), (a.var() / 40 + b.var() / 40) ** 0.5),
        (published, a.mean() - 94.0, a.std() / 40**0.5),
    ]:
        assert (row.ci_high - row.ci_low) / 2 == pytest.approx(1.96 * error, rel=0.05)
        assert (row.ci_high + row.ci_low) / 2 == pytest.approx(center, abs=0.1 * error)


def test_exact_p_values_equal_scipys_permutation_test():
    """Both exact tests against scipy.stats.permutation_test enumerating every permutation, with |Δ| as the
    statistic so that 'greater' is the two-sided p; unequal group sizes (whose null is not symmetric) too."""
    rng = np.random.default_rng(3)
    for n_new, n_base in [(5, 5), (4, 7), (8, 8)]:
        a, b = 95 + rng.standard_normal(n_new), 94.2 + 2 * rng.standard_normal(n_base)
        unpaired = compare_groups(dict(enumerate(a)), {s + 50: v for s, v in enumerate(b)}, 4, "b", N)
        scipy = stats.permutation_test(
            (a, b), lambda x, y: abs(x.mean() - y.mean()), permutation_type="independent",
            alternative="greater", n_resamples=np.inf,
        )  # fmt: skip
        assert unpaired.test == "permutation" and unpaired.p_value == pytest.approx(scipy.pvalue, abs=1e-12)
        if n_new == n_base:
            paired = compare_groups(dict(enumerate(a)), dict(enumerate(b)), 4, "b", N)
            scipy = stats.permutation_test(
                (a, b), lambda x, y: abs((x - y).mean()), permutation_type="samples",
                alternative="greater", n_resamples=np.inf,
            )  # fmt: skip
            assert paired.test == "sign-flip" and paired.p_value == pytest.approx(scipy.pvalue, abs=1e-12)
            assert paired.p_min == 2 / 2**n_new


def test_secondary_t_tests_equal_scipys():
    """Unequal sizes and spreads, where Welch's and Student's t differ: the shown p is Welch's; paired and
    one-sample rows show ttest_rel's and ttest_1samp's."""
    rng = np.random.default_rng(7)
    a, b = 95 + 0.3 * rng.standard_normal(4), 94 + 2.5 * rng.standard_normal(9)
    row = compare_groups(dict(enumerate(a)), {s + 10: v for s, v in enumerate(b)}, 4, "b", N)
    welch = stats.ttest_ind(a, b, equal_var=False).pvalue
    student = stats.ttest_ind(a, b, equal_var=True).pvalue
    assert abs(welch - student) > 0.01  # the test can tell them apart
    assert row.t_test == "Welch t" and row.t_p_value == pytest.approx(welch, rel=1e-12)
    c = 94 + rng.standard_normal(4)
    paired = compare_groups(dict(enumerate(a)), dict(enumerate(c)), 4, "b", N)
    assert paired.t_test == "paired t" and paired.t_p_value == pytest.approx(stats.ttest_rel(a, c).pvalue)
    published = compare_published(dict(enumerate(a)), 94.5, 4, "paper", N)
    assert published.t_p_value == pytest.approx(stats.ttest_1samp(a, 94.5).pvalue)


def _power_by_integration(difference: float, sigma: float, n: int, paired: bool, alpha: float) -> float:
    """Power of the two-sided t-test written from its definition, without scipy's noncentral t: T = (Z +
    λ)/√(V/df), λ the difference over the standard error of its estimate (σ/√n for n paired differences,
    σ·√(1/n + 1/n) for two means of n), V ~ χ²(df); P(|T| > c) integrated over V."""
    error = sigma / math.sqrt(n) if paired else sigma * math.sqrt(1 / n + 1 / n)
    shift, df = difference / error, (n - 1 if paired else 2 * n - 2)
    c = stats.t.ppf(1 - alpha / 2, df)

    def given(v: float) -> float:
        scale = c * math.sqrt(v / df)
        return (stats.norm.sf(scale - shift) + stats.norm.cdf(-scale - shift)) * stats.chi2.pdf(v, df)

    return integrate.quad(given, 0, np.inf, limit=200)[0]


def test_seeds_needed_match_an_independent_power_calculation():
    """Cohen's table: d = 0.5 at α = 0.05 and 80 % power needs 64 per group (two groups) and 34 pairs; and the
    hint's n is the first at which the integrated power reaches 80 % (d·√n for two groups would say 34)."""
    assert _seeds_needed(1.0, 0.5, paired=False) == 64 and _seeds_needed(1.0, 0.5, paired=True) == 34
    for sigma, difference, paired, alpha in [
        (1.0, 0.5, False, 0.05),
        (0.8, 1.1, False, 0.05 / 13),
        (1.3, 0.9, True, 0.01),
    ]:
        n = _seeds_needed(sigma, difference, paired, alpha)
        assert _power_by_integration(difference, sigma, n, paired, alpha) >= 0.8 - 1e-6
        assert _power_by_integration(difference, sigma, n - 1, paired, alpha) < 0.8
        assert t_power(difference / sigma, n, paired, alpha) == pytest.approx(
            _power_by_integration(difference, sigma, n, paired, alpha), abs=1e-6
        )


def test_holm_over_every_baseline_and_T():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    suite = load_suite("digits-lowT")
    seeds = list(range(6))  # smallest p 2/2⁶ = 0.031: separated alone, not after Holm over 13
    groups = {"new": (95.0, 0.0), "base": (92.0, 0.0)} | {f"same{i}": (95.0, 1.0) for i in range(12)}
    records = synthetic(groups, seeds)
    (alone,) = compare(records, suite, "new", ["base"])
    assert alone.p_value == 2 / 64 and alone.verdict == "better"
    rows = compare(records, suite, "new")
    (row,) = [r for r in rows if r.baseline == "base"]
    assert len(rows) == row.comparisons == 13 and row.p_holm == pytest.approx(13 * 2 / 64)
    needed = "about 10 seeds would be needed to detect 3.00 points"  # 2/2¹⁰ < 0.05/13 (no spread)
    assert row.verdict == f"not separated: exact p 0.0312, {13 * 2 / 64:.3g} after Holm over 13; {needed}"
    two_T = pd.concat([synthetic({"new": (95.0, 0.0), "base": (92.0, 0.0)}, seeds, T=T) for T in (2, 4)])
    assert [r.p_holm for r in compare(two_T, suite, "new", ["base"])] == [2 * 2 / 64] * 2  # T counts too


def test_unpaired_seeds_use_permutation_and_published_rows_are_marked():
    suite = load_suite("digits-lowT").model_copy(
        update={"reference": [ReferenceRow(algorithm="new", T=4, top1=90.0, source="Someone 2020")]}
    )
    records = pd.concat(
        [
            synthetic({"new": (95.0, 0.3)}, seeds=list(range(7))),
            synthetic({"base": (95.0, 0.3)}, seeds=[10, 11, 12, 13]),
        ]
    )
    rows = compare(records, suite, "new", ["base"])
    assert rows[0].test == "permutation" and rows[0].t_test == "Welch t" and rows[0].base_n == 4
    assert rows[0].verdict.startswith("not separated")
    assert rows[1].kind == "published" and rows[1].baseline.startswith("new (Someone 2020)")
    assert rows[1].p_value == 2 / 2**7 and rows[1].p_holm == 2 * 2 / 2**7 and rows[1].verdict == "better"


def test_compare_command_formats_and_unknown_method(tmp_path, monkeypatch):
    records = synthetic({"bptt": (95.0, 0.3), "ottt": (99.0, 0.3)}, seeds=list(range(10)))
    runs = tmp_path / "digits-lowT" / "runs"
    runs.mkdir(parents=True)
    monkeypatch.setattr("snnbench.leaderboard.select_records", lambda df, suite, budget: records)
    monkeypatch.setattr("snnbench.records.load_records", lambda path: records)
    args = ["compare", "--suite", "digits-lowT", "--method", "ottt", "--out", str(tmp_path)]
    out = runner.invoke(app, [*args, "--format", "json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert rows[0]["baseline"] == "bptt" and rows[0]["verdict"] == "better" and rows[0]["test_size"] == N
    md = runner.invoke(app, [*args, "--format", "md"])
    assert md.exit_code == 0 and md.stdout.startswith("| T | ottt | baseline |")
    assert "one test image = 0.28 points (N = 360)" in md.stdout
    assert all(line.count("|") == 9 for line in md.stdout.splitlines() if line.startswith("|"))
    csv = runner.invoke(app, [*args, "--format", "csv"])
    shown = pd.read_csv(io.StringIO(csv.stdout))
    assert csv.exit_code == 0 and shown["p_value"][0] == pytest.approx(2 / 2**10, rel=1e-5)
    assert len(shown["new_binomial_se"][0].split(";")) == 10
    table = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert table.exit_code == 0 and "better" in table.stdout and "sign-flip, 10 seeds" in table.stdout
    bad = runner.invoke(
        app, ["compare", "--suite", "digits-lowT", "--method", "otttt", "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "did you mean 'ottt'" in bad.stderr
    del records["test_size"]  # the object both patched loaders return
    no_size = runner.invoke(app, args)
    assert no_size.exit_code == 1 and "metrics.test_size" in no_size.stderr


def test_committed_digits_ottt_is_not_better_than_bntt_by_one_image():
    """Issue 42: on the committed records ottt against bntt at T = 8 differed by one test image at every seed
    and the paired t-test called it p = 2.9e-28, "better". Three seeds cannot separate anything."""
    args = ["compare", "--suite", "digits-lowT", "--method", "ottt", "--baselines", "bntt"]
    result = runner.invoke(
        app, [*args, "--timesteps", "8", "--out", str(ROOT / "results"), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["verdict"].startswith("not separated: the smallest possible p at 3 seeds is 0.25")
    assert row["test"] == "sign-flip" and row["p_value"] >= row["p_min"] == 0.25
    assert row["image_points"] == pytest.approx(100 / 360)


def test_plugin_file_runs_on_the_unchanged_suite_and_is_recorded(tmp_path):
    from test_plugin_path import write_plugin_tuning_record

    listing = runner.invoke(app, ["list", "algorithms", "--plugin", str(EXAMPLE)])
    assert listing.exit_code == 0 and "bptt-arctan" in listing.output
    write_plugin_tuning_record(tmp_path)  # its controlled-track entry runs tuned (tests/test_plugin_path.py)
    result = runner.invoke(
        app,
        [
            "run",
            "--suite",
            "digits-lowT",
            "--budget",
            "smoke",
            "--plugin",
            str(EXAMPLE),
            "--algorithms",
            "bptt-arctan",
            "--seeds",
            "0",
            "--timesteps",
            "2",
            "--out",
            str(tmp_path),
            "--quiet",
            "--tuned",
        ],
    )
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "digits-lowT" / "runs").glob("bptt-arctan_*.json")
    record = json.loads(path.read_text())
    assert (
        record["status"] == "ok" and record["algorithm"] == "bptt-arctan" and record["algorithm_version"] == 1
    )
    from snnbench.algorithms import algorithms
    from snnbench.provenance import code_files, source_sha256

    plugin = algorithms.get("bptt-arctan")  # registered in this process by --plugin
    assert record["algorithm_source_sha256"] == source_sha256(plugin)
    assert "my_method.py" in code_files(inspect.getmodule(plugin))  # the plugin file, keyed by its name
    assert record["spec"]["hparams"]["surrogate"] == "arctan"


def test_bad_plugin_file_is_named(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import does_not_exist_anywhere\n")
    result = runner.invoke(app, ["run", "--suite", "digits-lowT", "--plugin", str(broken)])
    assert result.exit_code == 1
    assert f"plugin file {broken} failed to import: ModuleNotFoundError" in result.stderr


def test_entry_point_plugin_is_discovered_and_runs(tmp_path):
    """An installed package (a dist-info with an ``snnbench.algorithms`` entry point) in a fresh process."""
    (tmp_path / "lab_method.py").write_text(
        textwrap.dedent('''
        from snnbench.algorithms import algorithms
        from snnbench.algorithms.bptt import BPTT

        @algorithms.register("lab-bptt")
        class LabBPTT(BPTT):
            """A lab's method shipped as a package."""
            description = "entry-point plugin"
            suite_entries = {"digits-lowT": {"lab-bptt": {"arch": "mlp", "lr": 0.003}}}
    ''')
    )
    dist = tmp_path / "lab_method-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-method\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[snnbench.algorithms]\nlab = lab_method\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    command = [
        sys.executable,
        "-m",
        "snnbench.cli",
        "run",
        "--suite",
        "digits-lowT",
        "--budget",
        "smoke",
        "--algorithms",
        "lab-bptt",
        "--seeds",
        "0",
        "--timesteps",
        "1",
        "--out",
        str(tmp_path / "out"),
        "--quiet",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    (path,) = (tmp_path / "out" / "digits-lowT" / "runs").glob("lab-bptt_*.json")
    assert json.loads(path.read_text())["status"] == "ok"


def test_only_like_runs_are_compared():
    suite = load_suite("digits-lowT")
    records = synthetic({"new": (95.0, 0.3), "same": (94.0, 0.3), "other": (99.0, 0.3)}, seeds=[0, 1, 2])
    records["track"] = records["entry"].map({"new": "controlled", "same": "controlled", "other": "extra"})
    records["tuning"] = "8 trials on val"
    assert [r.baseline for r in compare(records, suite, "new")] == [
        "same"
    ]  # the extra-track entry is left out
    with pytest.raises(SnnbenchError, match="new .track controlled.*other .track extra.*not run alike"):
        compare(records, suite, "new", ["other"])
    records.loc[records["entry"] == "same", "tuning"] = "defaults"
    with pytest.raises(SnnbenchError, match="tuning: defaults.*not run alike"):
        compare(records, suite, "new", ["same"])
