"""``snnbench reproduce``: retrained records compared exactly and against the committed rows' CIs."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.grid import run_suite
from snnbench.records import RecordStore, record_sha256
from snnbench.reproduce import mean_ci, reproduce, sample
from snnbench.suite import load_suite

runner = CliRunner()


def test_mean_ci_is_students_t_worked_by_hand():
    mean, low, high = mean_ci([96.0, 97.0, 98.0])  # std 1, t(0.975, 2) = 4.3027, half = 4.3027 / √3
    assert (
        mean == 97.0
        and low == pytest.approx(97.0 - 2.4842, abs=1e-4)
        and high == pytest.approx(99.4842, abs=1e-4)
    )
    assert math.isnan(mean_ci([90.0])[1])


def test_sample_is_deterministic_and_bounded(write_suite, tmp_path):
    class R:
        def __init__(self, run_id):
            self.run_id = run_id

    records = [R(f"r{i}") for i in range(10)]
    first = [r.run_id for r in sample(records, 3, seed=4)]
    assert first == [r.run_id for r in sample(list(reversed(records)), 3, seed=4)]  # order-independent
    assert len(sample(records, 99, seed=0)) == 10


def test_same_machine_reproduces_exactly_and_an_edited_record_falls_outside_its_ci(write_suite, tmp_path):
    path = write_suite({"seeds": [0, 1]})
    suite, out = load_suite(path), tmp_path / "results"
    run_suite(suite, out_dir=out, device="cpu", write_reports=False)
    result = reproduce(suite, out / "tiny", 1, seed=0)
    (check,) = result.records
    assert check.exact and check.new_top1 == check.committed_top1 and check.max_loss_difference == 0.0
    (row,) = result.rows
    assert row.within and row.committed_n == 2 and row.new_n == 1

    for top1, file in zip((10.0, 12.0), sorted((out / "tiny" / "runs").glob("*.json")), strict=True):
        data = json.loads(file.read_text())
        data["metrics"]["top1"] = top1  # committed figures that this code cannot produce
        data["content_sha256"] = record_sha256(data)  # rehashed: only retraining shows the edit
        file.write_text(json.dumps(data))
    cli = runner.invoke(app, ["reproduce", "--suite", str(path), "--out", str(out), "--sample", "1"])
    assert cli.exit_code == 1, cli.output
    assert "exact" not in cli.output and "11.00 [" in cli.output  # the record differs; the row is outside
    assert not list(RecordStore(out, "tiny").runs.glob(".*")) and len(list(out.rglob("*.json"))) == 2


def test_a_record_beyond_the_tolerance_or_a_failed_retrain_exits_1(write_suite, tmp_path, monkeypatch):
    """Issue 47: `reproduce` exited 0 on "differs" and left failed retrains out of its verdict."""
    import inspect

    from snnbench import runner as runner_module
    from snnbench.cli.records import reproduce as reproduce_command
    from snnbench.reproduce import TOLERANCE_PP

    assert inspect.signature(reproduce_command).parameters["tolerance"].default == TOLERANCE_PP
    path = write_suite({"seeds": [0, 1]})
    suite, out = load_suite(path), tmp_path / "results"
    run_suite(suite, out_dir=out, device="cpu", write_reports=False)
    files = sorted((out / "tiny" / "runs").glob("*.json"))
    for shift, file in zip((5.0, -5.0), files, strict=True):  # a wide CI around the true mean
        data = json.loads(file.read_text())
        data["metrics"]["top1"] += shift
        data["content_sha256"] = record_sha256(data)
        file.write_text(json.dumps(data))
    command = ["reproduce", "--suite", str(path), "--out", str(out), "--sample", "1"]
    cli = runner.invoke(app, command)
    assert cli.exit_code == 1, cli.output
    assert "does not reproduce: " in cli.output and "more than 1 points apart" in cli.output
    assert "outside the committed" not in cli.output  # the row is inside its CI: the record alone fails
    assert runner.invoke(app, [*command, "--tolerance", "6"]).exit_code == 0

    real = runner_module.run_one

    def failing(*args, **kwargs):
        record = real(*args, **kwargs)
        return record.model_copy(update={"status": "failed", "error": "Traceback\nRuntimeError: boom"})

    monkeypatch.setattr(runner_module, "run_one", failing)
    cli = runner.invoke(app, [*command, "--tolerance", "6"])
    assert cli.exit_code == 1 and "the retrain ended failed (RuntimeError: boom)" in cli.output, cli.output


@pytest.mark.parametrize("edit", ["top1", "unhashed"])
def test_a_record_failing_its_content_hash_is_refused_before_any_training(
    write_suite, tmp_path, monkeypatch, edit
):
    """Issue 47: `reproduce` did not check the content hash. A record edited without rehashing (or with no
    hash) is refused with its file named before anything trains, whether or not it is the sampled one:
    it would enter its row's CI."""
    from snnbench import runner as runner_module

    path = write_suite({"seeds": [0, 1]})
    suite, out = load_suite(path), tmp_path / "results"
    run_suite(suite, out_dir=out, device="cpu", write_reports=False)
    edited = sorted((out / "tiny" / "runs").glob("*.json"))[1]
    data = json.loads(edited.read_text())
    if edit == "top1":
        data["metrics"]["top1"] = 99.0
    else:
        del data["content_sha256"]
    edited.write_text(json.dumps(data))
    monkeypatch.setattr(runner_module, "run_one", lambda *a, **k: pytest.fail("trained an edited suite"))
    cli = runner.invoke(app, ["reproduce", "--suite", str(path), "--out", str(out), "--sample", "1"])
    reason = "content hash mismatch: edited after it was written" if edit == "top1" else "unhashed record"
    assert cli.exit_code == 1 and f"{edited}: {reason}" in cli.stderr, cli.output
