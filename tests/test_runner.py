"""The runner: determinism, data order, resume (also after a kill), divergence, failures, source hashes."""

from __future__ import annotations

import copy
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from snnbench.algorithms import algorithms
from snnbench.grid import run_suite
from snnbench.records import RecordStore, read_record
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


def test_each_seed_and_epoch_shuffles_the_data_its_own_way(plugins, write_suite, tmp_path):
    path = write_suite({"seeds": [0, 1, 2], "algorithms": {"order-probe": {"arch": "mlp"}}})
    records = run_suite(path, out_dir=tmp_path, device="cpu").records
    orders = [tuple(row["loss"] for row in record.history) for record in records]
    assert len(set(orders)) == 3 and all(len(set(epochs)) == 3 for epochs in orders)


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
    events = []
    again = run_suite(path, out_dir=tmp_path, device="cpu", on_event=events.append)
    assert again.trained == [status["crashing"].run_id]  # failed runs are retried, diverged ones are results
    (started,) = [e for e in events if type(e).__name__ == "SuiteStarted"]
    assert started.to_run == 1  # the resume plan itself leaves the diverged record alone, not just the worker
    skipped = {e.spec.entry: e.status for e in events if type(e).__name__ == "RunSkipped"}
    assert skipped == {"exploding": "diverged", "bptt": "ok"}


def test_an_exploding_loss_is_recorded_as_diverged(write_suite, tmp_path):
    """lr 1e6 keeps the loss finite (1e8 and more) but no longer meaningful: ``diverged``, not a
    leaderboard row."""
    path = write_suite({"algorithms": {"bptt": {"arch": "mlp", "lr": 1e6}}})
    (record,) = run_suite(path, out_dir=tmp_path, device="cpu").records
    assert record.status == "diverged" and "exploding loss" in record.error, record.error
    assert "top1" not in record.metrics


def test_divergence_rule():
    import torch

    from snnbench.runner import divergence

    net = torch.nn.Linear(2, 2)
    assert divergence(2.3, [], net) is None and divergence(150.0, [210.0, 120.0], net) is None
    assert "1000 × the lowest earlier epoch's 0.1" in divergence(101.0, [2.3, 0.1], net)
    assert "exploding loss 2e+06 > 1e+06" in divergence(2e6, [], net)
    with torch.no_grad():
        net.weight[0, 0] = float("inf")
    assert "non-finite" in divergence(2.3, [], net)


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
    saved = torch.load(cached, weights_only=True)
    torch.save({**saved, "source_sha256": "0" * 64}, cached)
    path = write_suite({"timesteps": [2], "algorithms": {"t-free": {"arch": "mlp"}}})
    (record,) = run_suite(path, out_dir=tmp_path, device="cpu").records
    assert record.status == "ok" and record.training_shared_with is None


class _Planted:
    """Pickles to a call of ``os.system``: loading it with ``weights_only=False`` runs the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_planted_checkpoints_and_caches_run_no_code(plugins, write_suite, tmp_path):
    """A checkpoint or shared training under --out is loaded with ``weights_only``: a pickle that would run
    a command is ignored with a warning, and the run trains from scratch."""
    import torch

    from snnbench.suite import expand

    path = write_suite({"timesteps": [1], "algorithms": {"bptt": {"arch": "mlp"}, "t-free": {"arch": "mlp"}}})
    specs = {s.entry: s for s in expand(load_suite(path))}
    store = RecordStore(tmp_path, "tiny")
    planted = {
        store.checkpoint_path(specs["bptt"].run_id): tmp_path / "from-checkpoint",
        store.trained_path(specs["t-free"].training_key): tmp_path / "from-cache",
    }
    for file, marker in planted.items():
        file.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"epoch": 2, "net": _Planted(marker)}, file)
    with pytest.warns(UserWarning, match="ignored, not a loadable snnbench checkpoint"):
        records = run_suite(path, out_dir=tmp_path, device="cpu").records
    assert not any(marker.exists() for marker in planted.values())
    assert [(r.status, r.resumed_from_epoch, r.training_shared_with) for r in records] == [
        ("ok", 0, None)
    ] * 2


def test_records_and_reports_get_the_umask_permissions(write_suite, tmp_path):
    """Not mkstemp's 0600: a group that shares the results folder can read them."""
    old = os.umask(0o022)
    try:
        result = run_suite(write_suite(), out_dir=tmp_path, device="cpu")
    finally:
        os.umask(old)
    files = [*result.files, *RecordStore(tmp_path, "tiny").runs.iterdir()]
    assert len(files) >= 3 and {oct(f.stat().st_mode & 0o777) for f in files} == {"0o644"}


@pytest.mark.parametrize(("every", "saved"), [("0", 4), ("1e9", 0)])
def test_checkpoints_follow_the_interval(write_suite, tmp_path, monkeypatch, every, saved):
    """After each of 5 epochs but the last with an interval of 0 s; none in a run shorter than the
    interval (its checkpoints would cost more than redoing it); the record is the same either way."""
    from snnbench import runner

    written: list[str] = []
    original = runner.atomic_torch_save

    def counting(path, obj):  # noqa: ANN001, ANN202
        if path.parent.name == "checkpoints":
            written.append(path.name)
        return original(path, obj)

    monkeypatch.setattr(runner, "atomic_torch_save", counting)
    monkeypatch.setenv("SNNBENCH_CHECKPOINT_EVERY_S", every)
    budget = {"smoke": {"epochs": 5, "batch_size": 32, "train_subset": 128, "test_subset": 32}}
    record = run_suite(write_suite({"budgets": budget}), out_dir=tmp_path, device="cpu").records[0]
    assert len(written) == saved and record.status == "ok"
    assert [h["epoch"] for h in record.history] == [1, 2, 3, 4, 5]


def test_runs_use_deterministic_kernels_without_nan_filling_new_tensors():
    """Deterministic algorithms on; the NaN fill of every new tensor that comes with them off (it only
    shows reads of uninitialised memory and costs a pass over every output; the records are the same)."""
    from snnbench.runner import seed_everything

    seed_everything(0)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory is False


def test_a_killed_run_resumes_with_the_same_final_record(write_suite, tmp_path):
    suite_changes = {
        "timesteps": [8],
        "budgets": {"smoke": {"epochs": 8, "batch_size": 32}},
        "algorithms": {"bptt": {"arch": "mlp2"}},
    }
    path = write_suite(suite_changes).resolve()
    spec_run_id = None
    command = [sys.executable, "-m", "snnbench", "run", "--suite", str(path), "--device", "cpu", "--quiet"]
    every_epoch = {**os.environ, "SNNBENCH_CHECKPOINT_EVERY_S": "0"}
    process = subprocess.Popen([*command, "--out", str(tmp_path / "killed")], cwd=tmp_path, env=every_epoch)
    checkpoints = tmp_path / "killed" / "tiny" / "checkpoints"
    # a generous deadline: with load 10 on 2 cores this test took 6 min, the first checkpoint minutes
    deadline = time.monotonic() + 1200
    while process.poll() is None and time.monotonic() < deadline and not any(checkpoints.glob("*.pt")):
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
    from snnbench.provenance import code_files, source_sha256

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


def test_a_last_training_batch_of_one_sample_is_dropped_so_batch_norm_runs(write_suite):
    """23 digits minus 10 for validation leave 13 to train in batches of 4: BNTT's per-step batch norm
    raised on the last, single-sample batch; now every epoch trains 12 of them."""
    from snnbench.data import Split
    from snnbench.runner import training_batches

    budget = {"epochs": 2, "batch_size": 4, "train_subset": 23, "test_subset": 8}
    path = write_suite({"budgets": {"smoke": budget}, "algorithms": {"bntt": {"arch": "mlp"}}})
    record = run_suite(load_suite(str(path)), out_dir="results").records[0]
    assert record.status == "ok", record.error
    assert record.metrics["train_size"] == 13 and record.metrics["epochs_completed"] == 2

    split = Split(torch.arange(13.0).reshape(13, 1), torch.zeros(13, dtype=torch.long))
    sizes = [len(y) for _, y in training_batches(split, 4, torch.Generator().manual_seed(0), "cpu", None)]
    assert sizes == [4, 4, 4]
    kept = [len(y) for _, y in training_batches(split, 5, torch.Generator().manual_seed(0), "cpu", None)]
    assert kept == [5, 5, 3]  # a remainder of two or more samples is trained


def _checkpoints_of(path, tmp_path, monkeypatch, out: str) -> dict[str, dict]:
    """Run the suite at ``path`` into ``tmp_path/out`` checkpointing every epoch; returns each run's
    epoch-2 checkpoint (as written) by seed."""
    from snnbench import runner

    kept: dict[str, dict] = {}
    original = runner.atomic_torch_save

    def keeping(file, obj):  # noqa: ANN001, ANN202
        if file.parent.name == "checkpoints" and obj["epoch"] == 2:  # a copy: training goes on in place
            kept[obj["seed"]] = copy.deepcopy(obj)
        return original(file, obj)

    monkeypatch.setattr(runner, "atomic_torch_save", keeping)
    monkeypatch.setenv("SNNBENCH_CHECKPOINT_EVERY_S", "0")
    run_suite(path, out_dir=tmp_path / out, device="cpu")
    monkeypatch.setattr(runner, "atomic_torch_save", original)
    return kept


@pytest.mark.parametrize(
    ("plant", "refusal"),
    [
        ("own", None),  # control: the run's own epoch-2 checkpoint resumes
        ("other-seed", "run_id"),  # seed 1's checkpoint at seed 0's path
        ("other-seed-relabelled", "history does not hold epochs 1..4"),  # and its labels rewritten to seed 0
        ("final-epoch", "is not one of this run's epochs 1..4"),  # labelled as trained to the end
        ("other-spec", "spec_hash"),  # another lr's checkpoint at this run's path
    ],
)
def test_a_planted_checkpoint_is_refused_and_the_run_restarts(
    write_suite, tmp_path, monkeypatch, plant, refusal
):
    """Issue 47: seed 1's epoch-5 checkpoint relabelled epoch 40 at seed 0's path gave an ``ok`` record of 5
    epochs under a 40-epoch row. A checkpoint names its run, spec hash, seed and epoch, and its history
    must hold that many epochs: a mismatch is refused with a warning naming the file, and the run trains
    from scratch to the numbers of a straight run; its own checkpoint still resumes."""
    from snnbench.suite import expand

    budget = {"smoke": {"epochs": 5, "batch_size": 32, "train_subset": 128, "test_subset": 32}}
    path = write_suite({"seeds": [0, 1], "budgets": budget})
    kept = _checkpoints_of(path, tmp_path, monkeypatch, "donor")
    other_lr = write_suite(
        {"seeds": [0], "budgets": budget, "algorithms": {"bptt": {"arch": "mlp", "lr": 0.02}}}, "lr.yaml"
    )
    kept_other = _checkpoints_of(other_lr, tmp_path, monkeypatch, "donor-lr")
    straight = {r.seed: r for r in RecordStore(tmp_path / "donor", "tiny").all()}
    monkeypatch.setenv("SNNBENCH_CHECKPOINT_EVERY_S", "1e9")
    target = next(s for s in expand(load_suite(path)) if s.seed == 0)
    relabel = {"run_id": target.run_id, "spec_hash": target.spec_hash, "seed": 0, "epoch": 4}
    planted = {
        "own": kept[0],
        "other-seed": kept[1],
        "other-seed-relabelled": {**kept[1], **relabel},
        "final-epoch": {**kept[0], "epoch": 5},
        "other-spec": {**kept_other[0], "run_id": target.run_id},
    }[plant]
    store = RecordStore(tmp_path / "victim", "tiny")
    store.checkpoint_path(target.run_id).parent.mkdir(parents=True, exist_ok=True)
    torch.save(planted, store.checkpoint_path(target.run_id))
    one_seed = write_suite({"seeds": [0], "budgets": budget}, "seed0.yaml")
    if refusal is None:
        (record,) = run_suite(one_seed, out_dir=tmp_path / "victim", device="cpu").records
        assert record.resumed_from_epoch == 2
    else:
        with pytest.warns(UserWarning, match=r"checkpoints/bptt_T2_s0_smoke_\w+\.pt: refused \(.*" + refusal):
            (record,) = run_suite(one_seed, out_dir=tmp_path / "victim", device="cpu").records
        assert record.resumed_from_epoch == 0
    assert record.status == "ok" and record.metrics["epochs_completed"] == 5
    assert numbers(record) == numbers(straight[0])


def test_a_shared_training_of_fewer_epochs_is_refused(plugins, write_suite, tmp_path):
    """A T-independent training cached under --out must hold every epoch of the spec: one cut short (or
    planted from a shorter budget) is refused with a warning and trained again."""
    path = write_suite({"timesteps": [1], "algorithms": {"t-free": {"arch": "mlp"}}})
    run_suite(path, out_dir=tmp_path, device="cpu")
    (cached,) = RecordStore(tmp_path, "tiny").root.glob("cache/*.pt")
    saved = torch.load(cached, weights_only=True)
    torch.save({**saved, "history": saved["history"][:1]}, cached)
    path = write_suite({"timesteps": [2], "algorithms": {"t-free": {"arch": "mlp"}}})
    with pytest.warns(UserWarning, match=r"cache/\S+\.pt: refused \(does not hold 3 epochs\)"):
        (record,) = run_suite(path, out_dir=tmp_path, device="cpu").records
    assert record.status == "ok" and record.training_shared_with is None
    assert record.metrics["epochs_completed"] == 3


def test_workload_metrics_are_per_validation_sample_as_docs_metrics_says(write_suite, tmp_path, monkeypatch):
    """Issue 44: docs/metrics.md said "per test sample"; the counts come from one pass over the validation
    split, divided by its size (``val_size``), and the page says so."""
    import snnbench.metrics
    from snnbench.grid import run_suite

    counted: list[int] = []
    summary = snnbench.metrics.OperationCounter.summary

    def spy(self, samples, *args, **kwargs):
        counted.append(samples)
        return summary(self, samples, *args, **kwargs)

    monkeypatch.setattr(snnbench.metrics.OperationCounter, "summary", spy)
    path = write_suite(
        {"budgets": {"smoke": {"epochs": 1, "batch_size": 32, "train_subset": 200, "test_subset": 96}}}
    )
    (record,) = run_suite(path, out_dir=tmp_path / "out", device="cpu", write_reports=False).records
    metrics = record.metrics
    assert counted == [metrics["val_size"]] and metrics["val_size"] != metrics["test_size"]
    page = (Path(__file__).resolve().parents[1] / "docs" / "metrics.md").read_text()
    assert "## Workload (per validation sample)" in page and "per test sample" not in page
    assert "counted on the **validation split**, not the test set" in page
