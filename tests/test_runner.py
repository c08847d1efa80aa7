"""The runner: determinism, resume (also after a kill), divergence, failures, atomic records."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snnbench.algorithms import algorithms
from snnbench.errors import OutputError
from snnbench.records import RecordStore, read_record
from snnbench.runner import run_suite
from snnbench.suite import load_suite

PLUGIN = Path(__file__).parent / "fixtures" / "plugins" / "testing_methods.py"
TIMING = {"train_time_s", "train_samples_per_s", "peak_train_memory_mb", "inference_ms_per_sample"}


def numbers(record) -> dict:
    """Metrics and history without wall-clock figures."""
    metrics = {k: v for k, v in record.metrics.items() if k not in TIMING and not k.endswith("_seconds")}
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in record.history]
    return {"metrics": metrics, "history": history}


@pytest.fixture(scope="module")
def plugins():
    if "exploding" not in algorithms:
        algorithms.add_plugin_file(PLUGIN)


def test_same_seed_gives_identical_numbers_and_full_record(write_suite, tmp_path):
    path = write_suite()
    first = run_suite(path, out_dir=tmp_path / "a", device="cpu").records[0]
    second = run_suite(path, out_dir=tmp_path / "b", device="cpu").records[0]
    assert first.status == "ok" and numbers(first) == numbers(second)
    assert first.metrics["top1"] > 50.0  # it learns (chance is 10 %; measured 70-87 %)
    # self-describing record
    assert first.spec["hparams"]["lr"] == 0.01 and first.spec_hash == second.spec_hash
    assert first.seed == 0 and first.algorithm_version == 1 and len(first.algorithm_source_sha256) == 64
    env = first.environment
    assert env["packages"]["torch"].startswith("2.13.0") and env["device"] == "cpu"
    assert "revision" in env["git"] and "dirty" in env["git"]
    assert first.dataset_provenance["test_fingerprint"]
    assert [row["epoch"] for row in first.history] == [1, 2, 3]


def test_second_run_trains_nothing(write_suite, tmp_path):
    path = write_suite({"seeds": [0, 1]})
    first = run_suite(path, out_dir=tmp_path, device="cpu")
    again = run_suite(path, out_dir=tmp_path, device="cpu")
    assert len(first.trained) == 2 and again.trained == [] and len(again.skipped) == 2
    rerun = run_suite(path, out_dir=tmp_path, device="cpu", resume=False)
    assert len(rerun.trained) == 2


def test_nan_is_recorded_as_diverged_and_the_suite_goes_on(plugins, write_suite, tmp_path):
    path = write_suite(
        {"algorithms": {"exploding": {"arch": "mlp"}, "crashing": {"arch": "mlp"}, "bptt": {"arch": "mlp"}}}
    )
    result = run_suite(path, out_dir=tmp_path, device="cpu")
    status = {r.entry: r for r in result.records}
    assert status["exploding"].status == "diverged"
    assert "non-finite" in status["exploding"].error and status["exploding"].metrics["epochs_completed"] == 1
    assert "top1" not in status["exploding"].metrics
    assert status["crashing"].status == "failed" and "RuntimeError: boom" in status["crashing"].error
    assert status["bptt"].status == "ok"
    again = run_suite(path, out_dir=tmp_path, device="cpu")
    assert again.trained == [status["crashing"].run_id]  # failed runs are retried, diverged ones are results


def test_training_that_ignores_T_runs_once_per_seed(plugins, write_suite, tmp_path):
    path = write_suite({"timesteps": [1, 2], "algorithms": {"t-free": {"arch": "mlp"}}})
    records = {r.T: r for r in run_suite(path, out_dir=tmp_path, device="cpu").records}
    assert records[1].training_shared_with is None
    assert records[2].training_shared_with == records[1].run_id
    assert records[1].history == records[2].history


def test_shared_training_from_other_code_is_not_reused(plugins, write_suite, tmp_path):
    """A cached T-independent training made by a different version of the method's source is retrained."""
    import torch

    path = write_suite({"timesteps": [1], "algorithms": {"t-free": {"arch": "mlp"}}})
    run_suite(path, out_dir=tmp_path, device="cpu")
    (cached,) = RecordStore(tmp_path, "tiny").root.glob("cache/*.pt")
    saved = torch.load(cached, weights_only=False)
    torch.save({**saved, "source_sha256": "0" * 64}, cached)
    path = write_suite({"timesteps": [2], "algorithms": {"t-free": {"arch": "mlp"}}})
    (record,) = run_suite(path, out_dir=tmp_path, device="cpu").records
    assert record.status == "ok" and record.training_shared_with is None


def test_records_are_written_atomically(write_suite, tmp_path, monkeypatch):
    path = write_suite()
    store = RecordStore(tmp_path, "tiny")
    good = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    before = store.record_path(good.run_id).read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OutputError, match=r"\.json: cannot write \(disk full\)"):
        store.save(good.model_copy(update={"status": "failed"}))
    assert store.record_path(good.run_id).read_bytes() == before  # the old record is intact
    assert [p.name for p in store.runs.iterdir()] == [f"{good.run_id}.json"]  # no temp file left


def test_a_killed_run_resumes_with_the_same_final_record(write_suite, tmp_path):
    suite_changes = {
        "timesteps": [8],
        "budgets": {"smoke": {"epochs": 8, "batch_size": 32}},
        "algorithms": {"bptt": {"arch": "mlp2"}},
    }
    path = write_suite(suite_changes).resolve()
    spec_run_id = None
    command = [sys.executable, "-m", "snnbench", "run", "--suite", str(path), "--device", "cpu", "--quiet"]
    process = subprocess.Popen([*command, "--out", str(tmp_path / "killed")], cwd=tmp_path)
    checkpoints = tmp_path / "killed" / "tiny" / "checkpoints"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (checkpoints.is_dir() and any(checkpoints.glob("*.pt"))):
        time.sleep(0.05)
    time.sleep(0.2)  # into the next epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert any(checkpoints.glob("*.pt")), "the run never wrote a checkpoint"
    assert not any((tmp_path / "killed" / "tiny" / "runs").glob("*.json")), (
        "killed too late: run had finished"
    )
    checkpoint = next(checkpoints.glob("*.pt"))
    spec_run_id = checkpoint.stem

    resumed = run_suite(path, out_dir=tmp_path / "killed", device="cpu").records[0]
    straight = run_suite(path, out_dir=tmp_path / "straight", device="cpu").records[0]
    assert resumed.run_id == spec_run_id and resumed.resumed_from_epoch >= 1
    assert numbers(resumed) == numbers(straight)
    assert not checkpoint.exists()  # removed once the record is written
    on_disk = json.loads((tmp_path / "killed" / "tiny" / "runs" / f"{spec_run_id}.json").read_text())
    assert (
        read_record(tmp_path / "killed" / "tiny" / "runs" / f"{spec_run_id}.json").status
        == on_disk["status"]
        == "ok"
    )


def test_unknown_device_fails_before_training(write_suite, tmp_path):
    from snnbench.errors import SnnbenchError

    with pytest.raises(SnnbenchError, match="unknown device 'tpu'"):
        run_suite(load_suite(write_suite()), out_dir=tmp_path, device="tpu")
    assert not (tmp_path / "tiny").exists()


def test_the_source_hash_covers_shared_code_and_not_the_checkout_location(tmp_path, monkeypatch):
    """A record goes stale when code the method uses changes, not only its own file; the hash is the same
    wherever the package lies."""
    import importlib
    import shutil

    from snnbench.algorithms import algorithms
    from snnbench.runner import code_files, source_sha256

    assert "snnbench/neurons/lif_cpu.cpp" in code_files(inspect.getmodule(algorithms.get("bptt")))

    def write_package(root: Path, helper_body: str) -> None:
        (root / "methodpkg").mkdir(parents=True, exist_ok=True)
        (root / "methodpkg" / "__init__.py").write_text("")
        (root / "methodpkg" / "helper.py").write_text(f"def helper():\n    return {helper_body}\n")
        (root / "methodpkg" / "method.py").write_text(
            "from methodpkg.helper import helper\n\nclass Method:\n    pass\n"
        )

    def hash_from(root: Path) -> str:
        monkeypatch.syspath_prepend(str(root))
        for name in ("methodpkg.method", "methodpkg.helper", "methodpkg"):
            sys.modules.pop(name, None)
        importlib.invalidate_caches()
        method = importlib.import_module("methodpkg.method")
        monkeypatch.undo()
        return source_sha256(method.Method)

    write_package(tmp_path / "a", "1")
    original = hash_from(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert hash_from(tmp_path / "b") == original  # another location, same code
    write_package(tmp_path / "b", "2")  # only the helper the method imports changes
    assert hash_from(tmp_path / "b") != original
    for name in ("methodpkg.method", "methodpkg.helper", "methodpkg"):
        sys.modules.pop(name, None)
