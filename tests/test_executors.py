"""Executors: the process pool and Ray write the same records as the local executor; two pools sharing
one results directory lose nothing and leave every record whole."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from snnbench.grid import run_suite
from snnbench.records import RecordStore, read_record

TIMING = {"train_time_s", "train_samples_per_s", "peak_train_memory_mb", "inference_ms_per_sample"}


def numbers(records) -> dict:
    out = {}
    for r in records:
        metrics = {k: v for k, v in r.metrics.items() if k not in TIMING}
        out[r.run_id] = (
            r.status,
            metrics,
            [{k: v for k, v in h.items() if k != "seconds"} for h in r.history],
        )
    return out


GRID = {"timesteps": [1, 2], "seeds": [0, 1]}


def test_pool_equals_local(write_suite, tmp_path):
    path = write_suite(GRID)
    local = run_suite(path, out_dir=tmp_path / "local", device="cpu")
    pool = run_suite(path, out_dir=tmp_path / "pool", device="cpu", executor="pool", jobs=2)
    assert len(pool.trained) == 4 and numbers(pool.records) == numbers(local.records)


def test_two_pools_into_one_directory_lose_nothing(write_suite, tmp_path):
    path = write_suite({"timesteps": [1, 2, 4], "seeds": [0, 1]}).resolve()
    out = tmp_path / "shared"
    command = [sys.executable, "-m", "snnbench", "run", "--suite", str(path), "--out", str(out),
               "--device", "cpu", "--quiet", "--executor", "pool", "--jobs", "2"]  # fmt: skip
    first = subprocess.Popen(command, cwd=tmp_path)
    second = subprocess.Popen(command, cwd=tmp_path)
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0
    store = RecordStore(out, "tiny")
    files = sorted(store.runs.glob("*.json"))
    assert len(files) == 6  # every run of the grid, none lost
    for file in files:
        json.loads(file.read_text())  # whole JSON
        assert read_record(file).status == "ok"
    assert not list(store.runs.glob(".*.tmp")) and not list(store.checkpoints.glob("*.lock"))
    assert (out / "tiny" / "leaderboard.md").is_file()


def test_ray_cluster_equals_local(write_suite, tmp_path):
    ray = pytest.importorskip("ray")
    path = write_suite(GRID)
    local = run_suite(path, out_dir=tmp_path / "local", device="cpu")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_suite(path, out_dir=tmp_path / "ray", device="cpu", executor="ray")
    finally:
        ray.shutdown()
    assert len(remote.trained) == 4 and numbers(remote.records) == numbers(local.records)


def test_ray_fails_fast_when_a_budget_asks_for_gpus_the_cluster_lacks(write_suite, tmp_path):
    ray = pytest.importorskip("ray")
    from snnbench.errors import SnnbenchError

    smoke = {"epochs": 1, "batch_size": 32, "num_gpus": 1}
    path = write_suite({"budgets": {"smoke": smoke}})
    ray.init(num_cpus=1, num_gpus=0, include_dashboard=False, log_to_driver=False)
    try:
        with pytest.raises(SnnbenchError, match="asks num_gpus: 1 per run, but the Ray cluster has 0 GPUs"):
            run_suite(path, out_dir=tmp_path, device="cpu", executor="ray")
    finally:
        ray.shutdown()
    assert not list(tmp_path.glob("tiny/runs/*.json"))


def test_claimed_runs_are_not_trained_twice(write_suite, tmp_path):
    import os
    import socket

    from snnbench.executors import claim, release
    from snnbench.suite import expand, load_suite

    path = write_suite()
    (spec,) = expand(load_suite(path))
    store = RecordStore(tmp_path, "tiny")
    lock = store.checkpoints / f"{spec.run_id}.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(f"{socket.gethostname()}:{os.getppid()}")  # a live process holds it
    assert run_suite(path, out_dir=tmp_path, device="cpu").trained == []
    lock.write_text(f"{socket.gethostname()}:999999999")  # its holder died: taken over
    assert claim(store, spec.run_id)
    release(store, spec.run_id)
    assert len(run_suite(path, out_dir=tmp_path, device="cpu").trained) == 1


def test_pool_workers_load_plugin_files(tmp_path):
    """Spawned workers import nothing from the parent: the plugin reaches them through the environment."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "my_method.py"
    out = tmp_path / "out"
    command = [sys.executable, "-m", "snnbench", "run", "--suite", "digits-lowT", "--budget", "smoke",
               "--plugin", str(example), "--algorithms", "bptt-arctan", "--seeds", "0,1", "--timesteps", "1",
               "--out", str(out), "--quiet", "--executor", "pool", "--jobs", "2"]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = [read_record(f) for f in sorted((out / "digits-lowT" / "runs").glob("*.json"))]
    assert [r.algorithm for r in records] == ["bptt-arctan", "bptt-arctan"]
    assert all(r.status == "ok" for r in records)


def test_runs_flush_subnormals_and_leave_the_process_as_they_found_it(write_suite, tmp_path):
    from snnbench.environment import flushes_denormals

    assert not flushes_denormals()
    path = write_suite({"timesteps": [1], "seeds": [0]})
    local = run_suite(path, out_dir=tmp_path / "local", device="cpu")
    pool = run_suite(path, out_dir=tmp_path / "pool", device="cpu", executor="pool", jobs=1)
    assert [r.environment["flush_denormal"] for r in local.records + pool.records] == [True, True]
    assert not flushes_denormals()
