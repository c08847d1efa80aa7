"""The CLI through Typer's runner: exact error text, exit codes, help examples, the run/leaderboard path."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

import snnbench
from snnbench.cli import app
from snnbench.suite import load_suite

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
        "export",
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


def test_version():
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.output) == (0, f"snnbench {snnbench.__version__}\n")


def test_quiet_keeps_the_summary_line(write_suite, tmp_path):
    result = runner.invoke(app, ["run", "--suite", str(write_suite()), "--out", str(tmp_path), "--quiet"])
    assert (result.exit_code, result.output) == (0, "Trained 1 runs, skipped 0 with records.\n")


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


def test_list_algorithms_shows_citation_and_origin():
    result = runner.invoke(app, ["list", "algorithms"], env={"COLUMNS": "300"})
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


# ---- an 80-column terminal, readable help, the published-figures table, one datasets listing ----

NARROW = {"COLUMNS": "80"}


@pytest.mark.parametrize("what", ["algorithms", "datasets", "suites", "architectures", "encodings"])
def test_list_at_80_columns_cuts_nothing_and_shows_no_markup(what):
    result = runner.invoke(app, ["list", what], env=NARROW)
    assert result.exit_code == 0
    assert "…" not in result.output and "``" not in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80


def test_list_algorithms_at_80_columns_wraps_at_word_boundaries():
    """Every word of every description, citation and origin appears whole (none split over two lines)."""
    from snnbench.algorithms import algorithms as registry
    from snnbench.cli.listing import citation

    result = runner.invoke(app, ["list", "algorithms"], env=NARROW)
    words = set(result.output.split())
    for name in registry.names():
        cls = registry.get(name)
        text = f"{cls.description} {citation(cls.paper) if cls.paper else ''} {registry.origin(name)}"
        missing = [word for word in text.split() if word not in words]
        assert not missing, (name, missing)


def test_list_encodings_shows_the_first_paragraph_as_plain_text():
    result = runner.invoke(app, ["list", "encodings"], env={"COLUMNS": "300"})
    line = next(line for line in result.output.splitlines() if " latency " in line)
    assert "floor((1 − x) T)" in line  # plain text
    assert "zero intensity never fires" in line  # the paragraph, not cut at the docstring's first line end


def test_show_entry_wraps_at_80_columns_with_plain_markup():
    result = runner.invoke(app, ["show", "digits-lowT/bptt"], env=NARROW)
    assert result.exit_code == 0 and "Resolved configuration:" in result.output
    lines = result.output.splitlines()
    assert all(len(line) <= 80 or " " not in line.strip() for line in lines)
    assert lines[1].startswith("    ") and "``" not in result.output  # continuation lines indented


@pytest.mark.parametrize("command", [[], ["run"], ["merge"], ["compare"], ["datasets"], ["datasets", "list"]])
def test_help_shows_flags_without_a_value_and_paths_readably(command):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "<bool>" not in result.output and "list[Path]" not in result.output
    if command in (["run"], ["merge"], ["compare"]):
        assert "PATH…" in result.output


def test_published_figures_print_integers_and_no_missing_markers(write_suite):
    """T as an integer, no "± –" for a row without a std, "–" (never "nan") for a missing architecture."""
    from snnbench.leaderboard import to_markdown

    reference = [
        {"algorithm": "bptt", "T": 25, "top1": 90.5, "source": "Someone 2020"},
        {"algorithm": "bptt", "T": 4, "top1": 97.5, "top1_std": 0.25, "arch": "mlp", "runs": 5,
         "source": "Someone 2021", "note": "n", "read_from": "Table 1"},
    ]  # fmt: skip
    suite = load_suite(str(write_suite({"reference": reference})))
    text = to_markdown({}, suite, 0, [], suite.default_budget)
    rows = [line for line in text.splitlines() if line.startswith("| bptt ")]
    assert rows[0] == "| bptt | 25 | 90.50 | unknown | – | – | Someone 2020 |"
    assert rows[1] == "| bptt | 4 | 97.50 ± 0.25 | unknown | 5 | mlp | Someone 2021 (n); read from Table 1 |"
    assert "nan" not in text and "± –" not in text


def test_list_datasets_is_an_alias_of_datasets_list(tmp_path):
    env = {"SNNBENCH_DATA": str(tmp_path), "COLUMNS": "200"}
    listed = runner.invoke(app, ["list", "datasets"], env=env)
    group = runner.invoke(app, ["datasets", "list"], env=env)
    assert listed.exit_code == group.exit_code == 0
    assert listed.output == group.output and "description" in listed.output and "folder" in listed.output


@pytest.mark.parametrize("command", ["compare", "plot"])
def test_only_records_of_another_budget_suggest_that_budget(command, tmp_path, monkeypatch):
    import pandas as pd

    import snnbench.records

    suite = load_suite("digits-lowT")
    smoke = pd.DataFrame(
        [{"suite": "digits-lowT", "entry": "bptt", "algorithm": "bptt", "T": 4, "seed": 0, "status": "ok",
          "top1": 10.0, "budget": "smoke", "suite_version": suite.version, "track": "controlled"}]
    )  # fmt: skip
    monkeypatch.setattr(snnbench.records, "load_records", lambda _: smoke)
    (tmp_path / "digits-lowT" / "runs").mkdir(parents=True)
    args = ["--suite", "digits-lowT", "--out", str(tmp_path)]
    args += ["--method", "bptt"] if command == "compare" else []
    result = runner.invoke(app, [command, *args])
    assert result.exit_code == 1
    assert "no records of budget 'full'" in result.output and "add --budget smoke" in result.output


@pytest.mark.parametrize("group", [[], ["datasets"]])
def test_the_commands_list_keeps_no_line_break_of_the_docstrings(group):
    """Issue 44: at 600 columns every command's first paragraph is one line of the commands list (the
    docstrings' hard line breaks are not kept); at 80 columns it wraps at the terminal's width."""
    from snnbench.cli import data, summary

    infos = data.datasets_app.registered_commands if group else app.registered_commands
    wide = runner.invoke(app, [*group, "--help"], env={"COLUMNS": "600"})
    assert wide.exit_code == 0
    lines = [" ".join(line.strip("│ ").split()) for line in wide.output.splitlines()]
    for info in infos:
        name = info.name or info.callback.__name__
        text = summary(info.callback.__doc__)
        assert f"{name} {text}" in lines, (name, text)
    narrow = runner.invoke(app, [*group, "--help"], env=NARROW)
    assert max(len(line) for line in narrow.output.splitlines()) <= 80


def test_list_algorithms_gives_each_year_once():
    """Issue 44: conversion's venue names its years ("…, 2017; ICLR 2022"): "ICLR 2022 2022" was printed."""
    result = runner.invoke(app, ["list", "algorithms"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    assert "ICLR 2022)" in result.output
    assert not re.search(r"\b(\d{4}) \1\b", result.output)
    from snnbench.algorithms import algorithms as registry

    bptt = registry.get("bptt").paper
    assert f"({bptt.venue} {bptt.year})" in result.output  # a venue without its year gets it appended
