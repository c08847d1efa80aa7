"""Plugins (file and entry point) run on an unchanged suite; compare finds planted differences and none
where there are none; bad plugin files are named."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.compare import compare, compare_groups, compare_published
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
        }
        for name, (mean, sd) in groups.items()
        for s in seeds
    ]
    return pd.DataFrame(rows)


def test_a_planted_difference_is_found_both_ways():
    suite = load_suite("digits-lowT")
    records = synthetic({"new": (95.0, 0.3), "base": (93.0, 0.3)}, seeds=[0, 1, 2, 3, 4])
    (row,) = compare(records, suite, "new", ["base"])
    assert row.verdict == "better" and row.test == "paired t" and row.ci_low > 0 and row.p_value < 0.01
    assert row.difference == pytest.approx(
        records[records.entry == "new"].top1.mean() - records[records.entry == "base"].top1.mean()
    )
    (row,) = compare(records, suite, "base", ["new"])
    assert row.verdict == "worse" and row.ci_high < 0


def test_identical_distributions_give_no_difference_and_a_seed_estimate():
    suite = load_suite("digits-lowT")
    found = 0
    for seed in range(20):
        records = synthetic({"new": (95.0, 0.5), "base": (95.0, 0.5)}, seeds=[0, 1, 2], seed=seed)
        (row,) = compare(records, suite, "new", ["base"])
        found += row.verdict in ("better", "worse")
        if row.verdict.startswith(
            "no difference"
        ):  # (a 3-seed bootstrap interval alone can miss 0: both must agree)
            assert row.verdict.startswith("no difference at 3 seeds; about ")
    assert found <= 3  # α = 5 %: a false "better/worse" is rare
    same = compare_groups({0: 97.0, 1: 97.5}, {0: 97.0, 1: 97.5}, 4, "b")
    assert same.verdict == "no difference at 2 seeds" and same.difference == 0


def test_seeds_pair_by_seed_not_by_order():
    """Each seed of the new method is 1 point above the same seed of the baseline; listed in another order,
    pairing by position would give differences 21, 1, −19 and no verdict."""
    row = compare_groups({0: 90.0, 1: 80.0, 2: 70.0}, {2: 69.0, 1: 79.0, 0: 89.0}, 4, "b")
    assert row.test == "paired t" and (row.ci_low, row.ci_high) == (1.0, 1.0) and row.verdict == "better"


def test_the_bootstrap_interval_is_95_percent():
    """With 40 seeds the bootstrap mean is close to normal: the interval is the mean ± 1.96 standard errors
    (± 1.64 would be a 90 % interval)."""
    rng = np.random.default_rng(1)
    a, b = 95.0 + rng.standard_normal(40), 94.0 + 2.0 * rng.standard_normal(40)
    new, base = dict(enumerate(a)), {s + 100: v for s, v in enumerate(b)}
    paired = compare_groups(new, dict(enumerate(b)), 4, "b")
    welch = compare_groups(new, base, 4, "b")
    published = compare_published(new, 94.0, 4, "paper")
    for row, center, error in [
        (paired, (a - b).mean(), (a - b).std() / 40**0.5),
        (welch, a.mean() - b.mean(), (a.var() / 40 + b.var() / 40) ** 0.5),
        (published, a.mean() - 94.0, a.std() / 40**0.5),
    ]:
        assert (row.ci_high - row.ci_low) / 2 == pytest.approx(1.96 * error, rel=0.05)
        assert (row.ci_high + row.ci_low) / 2 == pytest.approx(center, abs=0.1 * error)


def test_unpaired_seeds_use_welch_and_published_rows_are_marked():
    suite = load_suite("digits-lowT").model_copy(
        update={"reference": [ReferenceRow(algorithm="new", T=4, top1=90.0, source="Someone 2020")]}
    )
    records = pd.concat(
        [
            synthetic({"new": (95.0, 0.3)}, seeds=[0, 1, 2]),
            synthetic({"base": (95.0, 0.3)}, seeds=[3, 4, 5, 6]),
        ]
    )
    rows = compare(records, suite, "new", ["base"])
    assert rows[0].test == "Welch t" and rows[0].base_n == 4
    assert (
        rows[1].kind == "published"
        and rows[1].baseline.startswith("new (Someone 2020)")
        and rows[1].verdict == "better"
    )


def test_compare_command_formats_and_unknown_method(tmp_path, monkeypatch):
    records = synthetic({"bptt": (95.0, 0.3), "ottt": (96.0, 0.3)}, seeds=[0, 1, 2])
    runs = tmp_path / "digits-lowT" / "runs"
    runs.mkdir(parents=True)
    monkeypatch.setattr("snnbench.leaderboard.select_records", lambda df, suite, budget: records)
    monkeypatch.setattr("snnbench.records.load_records", lambda path: records)
    out = runner.invoke(
        app,
        ["compare", "--suite", "digits-lowT", "--method", "ottt", "--out", str(tmp_path), "--format", "json"],
    )
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert rows[0]["baseline"] == "bptt" and rows[0]["verdict"] == "better"
    md = runner.invoke(
        app,
        ["compare", "--suite", "digits-lowT", "--method", "ottt", "--out", str(tmp_path), "--format", "md"],
    )
    assert md.exit_code == 0 and md.stdout.startswith("| T | ottt | baseline |")
    bad = runner.invoke(
        app, ["compare", "--suite", "digits-lowT", "--method", "otttt", "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "did you mean 'ottt'" in bad.stderr


def test_plugin_file_runs_on_the_unchanged_suite_and_is_recorded(tmp_path):
    listing = runner.invoke(app, ["list", "algorithms", "--plugin", str(EXAMPLE)])
    assert listing.exit_code == 0 and "bptt-arctan" in listing.output
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
