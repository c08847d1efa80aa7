"""``leaderboard --check`` catches tampered reports; ``merge`` folds results and reports conflicts."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from snnbench.check import merge
from snnbench.cli import app
from snnbench.grid import run_suite

runner = CliRunner()


def test_check_passes_then_fails_with_a_diff_after_tampering(write_suite, tmp_path):
    path = str(write_suite({"seeds": [0, 1]}))
    out = tmp_path / "results"
    run_suite(path, out_dir=out, device="cpu")
    ok = runner.invoke(app, ["leaderboard", "--suite", path, "--out", str(out), "--check"])
    assert ok.exit_code == 0 and "match the records" in ok.output
    board = out / "tiny" / "leaderboard.md"
    board.write_text(board.read_text().replace("| 1 | bptt | 2 |", "| 1 | bptt | 2 | 99.99 ± 0.00 |", 1))
    bad = runner.invoke(app, ["leaderboard", "--suite", path, "--out", str(out), "--check"])
    assert bad.exit_code == 1
    assert (
        "Error: 1 stale file(s)" in bad.stderr
        and "(committed)" in bad.stderr
        and "(from records)" in bad.stderr
    )
    assert "-| 1 | bptt | 2 | 99.99" in bad.stderr


def test_committed_digits_results_are_current():
    result = runner.invoke(app, ["leaderboard", "--suite", "digits-lowT", "--check"])
    assert result.exit_code == 0, result.stderr


def test_merge_copies_skips_duplicates_and_reports_conflicts(write_suite, tmp_path):
    path = write_suite({"seeds": [0, 1]})
    a = tmp_path / "a"
    b = tmp_path / "b"
    run_suite(path, out_dir=a, device="cpu", write_reports=False)
    run_suite(
        path,
        out_dir=b,
        device="cpu",
        write_reports=False,
    )
    target = tmp_path / "merged"
    first = merge([a], target)
    assert len(first.copied) == 2 and not first.duplicates and not first.conflicts
    second = merge([b], target)  # same seeds, same numbers: duplicates
    assert len(second.duplicates) == 2 and not second.copied
    record = next((b / "tiny" / "runs").glob("*.json"))
    record.write_text(record.read_text().replace('"status": "ok"', '"status": "diverged"'))
    third = runner.invoke(app, ["merge", str(b), "--out", str(target)])
    assert third.exit_code == 1 and "conflicts 1" in third.output and "conflict: tiny/" in third.output
    shutil.rmtree(target)
