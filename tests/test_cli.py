"""The CLI through Typer's runner: exact error text, exit codes, help examples, the run/leaderboard path."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from snnbench.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "command",
    [
        "run",
        "list",
        "leaderboard",
        "plot",
        "merge",
        "report",
        "show",
        "tune",
        "status",
        "datasets list",
        "datasets download",
        "datasets verify",
    ],  # fmt: skip
)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0
    assert "Example: snnbench " in result.output


def test_bad_suite_exits_2_with_one_error_line(write_suite):
    path = write_suite({"algorithms": {"bptt": {"arch": "mlp", "lr": "fast"}}})
    result = runner.invoke(app, ["run", "--suite", str(path), "--quiet"])
    assert result.exit_code == 2
    assert result.stderr == "Error: tiny.yaml: algorithms.bptt.lr: expected a number, got 'fast'\n"


def test_bad_option_value(write_suite):
    result = runner.invoke(app, ["run", "--suite", str(write_suite()), "--timesteps", "1,x"])
    assert result.exit_code == 2 and "expected comma-separated integers, got '1,x'" in result.output
    result = runner.invoke(app, ["run", "--suite", str(write_suite()), "--timesteps", "-1"])
    assert result.exit_code == 2 and "expected comma-separated integers from 1 to" in result.output
    assert "Traceback" not in result.output


def test_run_twice_then_leaderboard(write_suite, tmp_path):
    path = str(write_suite())
    out = str(tmp_path / "out")
    first = runner.invoke(app, ["run", "--suite", path, "--out", out])
    assert first.exit_code == 0, first.output
    assert "Trained 1 runs" in first.output and "leaderboard.md" in first.output
    second = runner.invoke(app, ["run", "--suite", path, "--out", out])
    assert second.exit_code == 0 and "Nothing to train: all 1 runs already have records" in second.output
    csv = runner.invoke(app, ["leaderboard", "--suite", path, "--out", out, "--format", "csv"])
    header = csv.stdout.splitlines()[0]
    assert csv.exit_code == 0 and header.startswith("track,algorithm,T,top1_mean,top1_std,n,")
    plot = runner.invoke(app, ["plot", "--suite", path, "--out", out])
    assert plot.exit_code == 0 and "pareto-official.png" in plot.output
    for axis in ("sops", "energy"):
        plot = runner.invoke(app, ["plot", "--suite", path, "--out", out, "--x", axis])
        assert plot.exit_code == 0 and f"pareto-{axis}-official.png" in plot.output
    picked = runner.invoke(
        app,
        [
            "leaderboard",
            "--suite",
            path,
            "--out",
            out,
            "--format",
            "csv",
            "--columns",
            "acs_per_sample,energy_ratio",
        ],
    )
    header = picked.stdout.splitlines()[0]
    assert (
        picked.exit_code == 0
        and "acs_per_sample_mean,energy_ratio_mean" in header
        and "spike_rate" not in header
    )
    wrong = runner.invoke(app, ["leaderboard", "--suite", path, "--out", out, "--columns", "energy_nJ"])
    assert wrong.exit_code == 2 and "did you mean" in wrong.stderr and "energy_nj" in wrong.stderr


def test_leaderboard_without_records_is_an_error(write_suite, tmp_path):
    result = runner.invoke(
        app, ["leaderboard", "--suite", str(write_suite()), "--out", str(tmp_path / "none")]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no records of budget 'smoke' for suite tiny under ")


@pytest.mark.parametrize(
    ("what", "expected"),
    [("algorithms", "bptt"), ("datasets", "digits"), ("suites", "digits-lowT"), ("architectures", "convnet"),
     ("encodings", "rate")],
)  # fmt: skip
def test_list(what, expected):
    result = runner.invoke(app, ["list", what])
    assert result.exit_code == 0 and expected in result.output


def test_list_algorithms_shows_citation_and_origin(monkeypatch):
    from rich.console import Console

    import snnbench.cli

    monkeypatch.setattr(snnbench.cli, "console", Console(width=300))
    result = runner.invoke(app, ["list", "algorithms"])
    line = next(line for line in result.output.splitlines() if " bptt " in line)
    assert "Neftci, Mostafa & Zenke" in line and "snnbench/algorithms/bptt.py:" in line


def test_unknown_listing_is_rejected():
    result = runner.invoke(app, ["list", "algorithmz"])
    assert result.exit_code == 2


def test_bad_input_writes_nothing(write_suite, tmp_path):
    """A traversal name, T = 0 on the command line: exit 2, one error line, nothing under --out or above."""
    before = sorted(p for p in tmp_path.parent.rglob("*") if "x" == p.name)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", "--suite", str(write_suite({"name": "../../x"})), "--out", str(out)])
    assert result.exit_code == 2 and result.stderr.startswith("Error: tiny.yaml: name: expected a name of")
    result = runner.invoke(app, ["run", "--suite", str(write_suite()), "--timesteps", "0", "--out", str(out)])
    flat = " ".join(result.output.replace("│", " ").split())  # rich wraps the message in a box
    assert result.exit_code == 2 and "expected comma-separated integers from 1 to 100000, got '0'" in flat
    assert not out.exists() and sorted(p for p in tmp_path.parent.rglob("*") if "x" == p.name) == before
