"""Documentation that is tested: version agreement, every CLI command in the README, the README's
leaderboard equal to the committed one, and committed records that regenerate it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
import typer.main

import snnbench
from snnbench.cli import app

ROOT = Path(__file__).resolve().parent.parent


def test_versions_agree():
    citation = (ROOT / "CITATION.cff").read_text()
    assert re.findall(r"^version: (\S+)$", citation, flags=re.M) == [snnbench.__version__]
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] == snnbench.__version__


def test_every_cli_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    group = typer.main.get_group(app)
    for name in group.commands:
        assert f"snnbench {name}" in readme, f"README does not show `snnbench {name}`"


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\| \d+ \| ", line)]


COMMITTED_SUITES = ["fmnist-cpu", "digits-lowT"]  # the suites whose results are committed and shown


def test_readme_shows_every_committed_leaderboard_real_data_first():
    readme = (ROOT / "README.md").read_text()
    marks = re.findall(r"<!-- leaderboard:(\S+) -->", readme)
    assert marks == COMMITTED_SUITES
    assert all((ROOT / "results" / suite / "leaderboard.md").is_file() for suite in marks)


@pytest.mark.parametrize("suite", COMMITTED_SUITES)
def test_readme_shows_the_committed_leaderboard(suite):
    import runpy

    readme = (ROOT / "README.md").read_text()
    block = readme.split(f"<!-- leaderboard:{suite} -->")[1].split("<!-- /leaderboard -->")[0]
    committed = (ROOT / "results" / suite / "leaderboard.md").read_text()
    readme_block = runpy.run_path(str(ROOT / "tools" / "readme_leaderboard.py"))["readme_block"]
    assert block.strip() == readme_block(committed, suite).strip()
    # the per-T tables with tied ranks and the legend are there; the long table ranked across T is not
    assert table_rows(block) and set(table_rows(block)) <= set(table_rows(committed))
    assert "#### Top-1 at each T" in block and "### How to read the tables" in block
    assert "### All rows" in committed and "### All rows" not in block


@pytest.mark.parametrize("suite", COMMITTED_SUITES)
def test_committed_records_regenerate_the_committed_leaderboard(tmp_path, suite):
    import shutil

    from snnbench.leaderboard import write_reports
    from snnbench.suite import load_suite

    for folder in ("runs", "tuning"):  # the tuning column labels each tuned row by its tuning record's state
        shutil.copytree(ROOT / "results" / suite / folder, tmp_path / suite / folder)
    write_reports(load_suite(suite), tmp_path / suite)
    regenerated = (tmp_path / suite / "leaderboard.md").read_text()
    committed = (ROOT / "results" / suite / "leaderboard.md").read_text()
    assert regenerated == committed
    import pandas as pd

    table = pd.read_csv(ROOT / "results" / suite / "leaderboard.csv").set_index(["algorithm", "T"])
    floor = {"digits-lowT": 95.0, "fmnist-cpu": 80.0}[suite]  # measured in the committed records
    assert table.loc[("bptt", 4), "top1_mean"] >= floor


def test_results_readme_names_the_files_that_are_there():
    """Issue 44: results/README.md named `pareto.png`, a file no command writes. Every file it names exists
    under results/digits-lowT (``<track>``, ``<entry>``, ``<run_id>`` as placeholders), and every entry there
    is named."""
    readme = (ROOT / "results" / "README.md").read_text()
    suite_dir = ROOT / "results" / "digits-lowT"
    named = [
        name
        for line in readme.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([^`]+)`", line.split(" | ")[0])
    ]
    patterns = [
        re.sub(r"<[a-z_]+>", "[^/]+", re.escape(n).replace("<track>", "[a-z]+")).rstrip("/") for n in named
    ]
    import subprocess

    def ignored(path: Path) -> bool:  # runtime files git ignores (locks, checkpoints): not in a clean clone
        return subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT).returncode == 0

    present = [str(p.relative_to(suite_dir)) for p in suite_dir.rglob("*")]
    for name, pattern in zip(named, patterns, strict=True):
        assert any(re.fullmatch(pattern, path) for path in present), f"results/README.md names {name}: absent"
    for top in (p for p in suite_dir.iterdir() if not ignored(p)):
        assert any(re.fullmatch(p.split("/")[0], top.name) for p in patterns), f"{top.name} is not described"


def test_readme_names_the_split_the_costs_are_counted_on():
    """Issue 42 item 6: the README said the costs are counted on the test set; the runner counts them on the
    validation split (its one test pass is the final evaluation: test_fairness.py's
    test_the_test_split_is_touched_only_by_the_final_evaluation)."""
    import inspect

    from snnbench import runner

    assert "count_operations(algorithm, net, val," in inspect.getsource(runner)
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "inference pass over the validation split" in readme
    assert not re.search(r"(counted|cost)[^.]{0,80} (over|on) the test (set|split)", readme)
