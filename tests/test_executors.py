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

    from test_plugin_path import write_plugin_tuning_record

    example = Path(__file__).resolve().parents[1] / "examples" / "my_method.py"
    out = tmp_path / "out"
    write_plugin_tuning_record(out)  # its controlled-track entry runs tuned (tests/test_plugin_path.py)
    command = [sys.executable, "-m", "snnbench", "run", "--suite", "digits-lowT", "--budget", "smoke",
               "--plugin", str(example), "--algorithms", "bptt-arctan", "--seeds", "0,1", "--timesteps", "1",
               "--out", str(out), "--quiet", "--executor", "pool", "--jobs", "2", "--tuned"]  # fmt: skip
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


# locks that never block forever (issue 47) --------------------------------------------------------------
def _lock_of(tmp_path, write_suite):
    from snnbench.suite import expand, load_suite

    path = write_suite()
    (spec,) = expand(load_suite(path))
    store = RecordStore(tmp_path, "tiny")
    store.checkpoints.mkdir(parents=True, exist_ok=True)
    return path, spec, store, store.checkpoints / f"{spec.run_id}.lock"


def _my_lock(**changes) -> str:
    import os
    import socket
    import time

    import psutil

    data = {"host": socket.gethostname(), "pid": os.getpid(),
            "process_started": psutil.Process().create_time(), "locked_at": time.time()}  # fmt: skip
    return json.dumps({**data, **changes})


def _old(path, seconds: float) -> None:
    import os
    import time

    os.utime(path, (time.time() - seconds, time.time() - seconds))


def _stale_cases(spec_lock):
    """(what the lock file says, how to age it, why it is stale) for every lock no running process holds."""
    import os
    import socket

    import psutil

    started = psutil.Process().create_time()
    host = socket.gethostname()
    return {
        "dead pid": (f"{host}:999999999", None, "process 999999999 is gone"),
        "pid reused (lock older than its process)": (
            _my_lock(process_started=None, locked_at=started - 100), None, "started after the lock"),
        "pid reused (another start time recorded)": (
            _my_lock(process_started=started - 50, locked_at=started + 1), None, "not the one that took"),
        "pid reused (old host:pid form, file older than its process)": (
            f"{host}:{os.getpid()}", 10**6, "started after the lock"),
        "another host, not refreshed": ("elsewhere.example:4242", 10**4, "not refreshed for"),
        "empty file": ("", None, "empty lock file"),
        "unreadable file": ("\x00\ufffdgarbage", None, "unreadable lock file"),
    }  # fmt: skip


@pytest.mark.parametrize("case", list(_stale_cases(None)))
def test_stale_locks_are_taken_over_with_a_warning_and_shown_stale(case, write_suite, tmp_path):
    from snnbench.executors import claim, holder, lock_state, release
    from snnbench.status import suite_status
    from snnbench.suite import load_suite

    path, spec, store, lock = _lock_of(tmp_path, write_suite)
    text, age, why = _stale_cases(None)[case]
    lock.write_text(text)
    if age:
        _old(lock, age)
    assert holder(store, spec.run_id) is None and why in lock_state(store, spec.run_id).stale
    (status,) = suite_status(load_suite(path), tmp_path)
    assert dict(status.counts) == {"pending": 1} and status.running == []
    assert len(status.stale_locks) == 1 and why in status.stale_locks[0]
    with pytest.warns(UserWarning, match="taking over a stale lock"):
        assert claim(store, spec.run_id)
    assert json.loads(lock.read_text())["pid"] == __import__("os").getpid()  # ours now, with our name
    release(store, spec.run_id)


def test_live_locks_hold_and_are_named(write_suite, tmp_path, monkeypatch):
    import os
    import socket

    from typer.testing import CliRunner

    from snnbench.cli import app
    from snnbench.executors import claim, holder

    path, spec, store, lock = _lock_of(tmp_path, write_suite)
    live = {
        "this process, as it wrote it": _my_lock(),
        "parent process, old host:pid form": f"{socket.gethostname()}:{os.getppid()}",
        "another host, refreshed": "elsewhere.example:4242",
    }
    for text in live.values():
        lock.write_text(text)
        assert holder(store, spec.run_id) is not None and not claim(store, spec.run_id)
    cli = CliRunner().invoke(app, ["run", "--suite", str(path), "--out", str(tmp_path), "--device", "cpu"])
    assert cli.exit_code == 0, cli.output
    assert f"Nothing trained here: 0 runs have records; 1 held by another process's lock: {spec.run_id} " \
        "(elsewhere.example:4242)" in cli.output  # fmt: skip
    assert "Nothing to train" not in cli.output
    status = CliRunner().invoke(app, ["status", "--suite", str(path), "--out", str(tmp_path)])
    assert f"running: {spec.run_id} (elsewhere.example:4242)" in status.output
    monkeypatch.setenv("SNNBENCH_LOCK_STALE_S", "0")  # the other host stopped refreshing it
    _old(lock, 1)
    assert holder(store, spec.run_id) is None


def test_a_claim_rechecks_for_a_record_written_meanwhile(write_suite, tmp_path, monkeypatch):
    """Two `run`s into one --out: the second claims a run only after the first released it with its record
    written; it must not train it again (issue 47: 9 trainings for 8 runs)."""
    import shutil

    from snnbench import executors, runner

    path = write_suite()
    first = run_suite(path, out_dir=tmp_path / "first", device="cpu")
    (record_file,) = (tmp_path / "first" / "tiny" / "runs").glob("*.json")
    real_claim, trained = executors.claim, []

    def claim_after_the_other_run(store, run_id, task=None):  # the concurrent run finishes meanwhile
        store.runs.mkdir(parents=True, exist_ok=True)
        shutil.copy(record_file, store.record_path(run_id))
        return real_claim(store, run_id, task)

    real_run_one = runner.run_one
    monkeypatch.setattr(
        runner, "run_one", lambda spec, *a, **k: trained.append(spec) or real_run_one(spec, *a, **k)
    )
    monkeypatch.setattr(executors, "claim", claim_after_the_other_run)
    second = run_suite(path, out_dir=tmp_path / "second", device="cpu")
    assert trained == [] and second.trained == [] and second.skipped == first.trained and second.held == []
    assert [r.run_id for r in second.records] == first.trained
    # --no-resume: a record written meanwhile is kept, one older than this run is replaced
    again = run_suite(path, out_dir=tmp_path / "second", device="cpu", resume=False)
    assert trained == [] and again.trained == [] and again.skipped == first.trained
    monkeypatch.setattr(executors, "claim", real_claim)
    again = run_suite(path, out_dir=tmp_path / "second", device="cpu", resume=False)
    assert len(trained) == 1 and again.trained == first.trained


# killed workers and killed parents (issue 47) -------------------------------------------------------------
PLUGIN = __import__("pathlib").Path(__file__).parent / "fixtures" / "plugins" / "testing_methods.py"


def _run_command(path, out, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snnbench", "run", "--suite", str(path), "--out", str(out),
            "--device", "cpu", "--quiet", "--plugin", str(PLUGIN), *extra]  # fmt: skip


def _kill_and_check_the_worker_ends(
    parent, out, *, take_s: float, end_s: float, poll_s: float, ray: bool = False, descendants=None
) -> None:
    """Wait (up to ``take_s``) until the worker of ``run`` process ``parent`` takes its run (its lock under
    ``out``), SIGKILL ``parent``, and fail unless the worker ends within ``end_s`` (a zombie has ended; a
    survivor is killed). ``descendants`` receives ``parent``'s process tree as it was before the kill."""
    import os
    import signal
    import time

    import psutil

    task, worker_name, parent_name = (
        ("Ray task", "Ray worker", "driver") if ray else ("worker", "worker", "parent")
    )
    deadline = time.monotonic() + take_s
    locks: list = []
    while not locks and time.monotonic() < deadline and parent.poll() is None:
        time.sleep(poll_s)
        locks = list((out / "tiny" / "checkpoints").glob("*.lock"))
    assert locks, f"the {task} never took its run"
    worker = json.loads(locks[0].read_text())["pid"]
    assert worker != parent.pid and psutil.pid_exists(worker)
    if descendants is not None:
        descendants += psutil.Process(parent.pid).children(recursive=True)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + end_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(worker).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(poll_s / 2)
    os.kill(worker, signal.SIGKILL)
    pytest.fail(f"{worker_name} {worker} still trains after its {parent_name} was killed")


def test_a_killed_pool_worker_fails_its_run_and_the_pool_goes_on(write_suite, tmp_path):
    """The worker training T = 1 of a method that trains once per seed (one task: T = 1, 2, 3 in order) is
    SIGKILLed (as by the out-of-memory killer): that run is recorded failed with the signal, the pool starts
    a fresh worker for the rest of the task (T = 2 trains, T = 3 shares its training), and ``run`` exits 3
    (a run failed); no lock is left behind."""
    from snnbench.cli.run import RUN_FAILED_EXIT

    budget = {"smoke": {"epochs": 1, "batch_size": 64, "train_subset": 128, "test_subset": 64}}
    suite = {"timesteps": [1, 2, 3], "budgets": budget, "algorithms": {"worker-killer": {"arch": "mlp"}}}
    path = write_suite(suite).resolve()
    out = tmp_path / "out"
    command = _run_command(path, out, "--executor", "pool", "--jobs", "1")
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == RUN_FAILED_EXIT, done.stderr
    assert "1 of 3 runs failed" in done.stderr
    store = RecordStore(out, "tiny")
    records = {r.T: r for r in (read_record(f) for f in store.runs.glob("*.json"))}
    assert {T: r.status for T, r in records.items()} == {1: "failed", 2: "ok", 3: "ok"}
    assert "worker process killed by signal 9 (SIGKILL)" in records[1].error
    assert records[1].started_at and records[1].finished_at
    assert records[3].training_shared_with == records[2].run_id
    assert not list(store.checkpoints.glob("*.lock"))


def test_after_death_charges_the_run_the_dead_worker_held_and_leaves_the_rest(write_suite, tmp_path):
    """Of a task's runs, the one whose lock names the dead worker's task is failed, a run with a record
    written meanwhile is kept, the runs after the dead one are handed back; a worker that died holding no
    run charges none, unless its previous worker died so too."""
    from snnbench.executors import after_death, claim, run_task
    from snnbench.suite import expand, load_suite

    budget = {"smoke": {"epochs": 1, "batch_size": 64, "train_subset": 128, "test_subset": 64}}
    path = write_suite({"timesteps": [1, 2, 4], "budgets": budget})
    specs = expand(load_suite(path))
    store = RecordStore(tmp_path, "tiny")
    import time

    sent = time.time()
    (first,) = run_task(specs[:1], str(tmp_path), "cpu", None, task_id="t1")
    assert claim(store, specs[1].run_id, "t1")  # the worker died training T = 2
    records, left, charged = after_death(store, specs, "t1", sent, "worker process killed by signal 9", "cpu")
    assert charged and [r.run_id for r in left] == [specs[2].run_id]
    assert [(r.T, r.status) for r in records] == [(1, "ok"), (2, "failed")]
    assert "killed by signal 9" in records[1].error and store.load(specs[1].run_id).status == "failed"
    assert not (store.checkpoints / f"{specs[1].run_id}.lock").exists()
    # died before taking a run: nothing charged, everything handed back; the second time, its first run
    sent = time.time() + 2.0
    assert after_death(store, specs[2:], "t2", sent, "gone", "cpu", charge_first=False)[1:] == (
        specs[2:],
        False,
    )
    records, left, charged = after_death(store, specs[2:], "t2", sent, "gone", "cpu", charge_first=True)
    assert charged and left == [] and [(r.T, r.status) for r in records] == [(4, "failed")]


def test_a_killed_pool_parent_takes_its_workers_with_it(write_suite, tmp_path):
    """SIGKILL of ``run --executor pool`` while its worker trains: the worker ends within seconds (no orphan
    keeps training)."""
    path = write_suite({"algorithms": {"sleeper": {"arch": "mlp"}}}).resolve()
    out = tmp_path / "out"
    parent = subprocess.Popen(_run_command(path, out, "--executor", "pool", "--jobs", "1"), cwd=tmp_path)
    try:
        _kill_and_check_the_worker_ends(parent, out, take_s=60, end_s=10, poll_s=0.2)
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.mark.slow  # 30 s on two busy cores, mostly ray.init
def test_a_killed_ray_worker_fails_its_run_and_the_others_go_on(write_suite, tmp_path):
    """As with the pool: the Ray worker training T = 1 is SIGKILLed; that run is recorded failed (Ray's
    reason), the rest of its task (T = 2, 3) is resubmitted and trains. (A killed driver takes its tasks
    with it: Ray's own job fate sharing.)"""
    ray = pytest.importorskip("ray")
    from snnbench.algorithms import algorithms

    if "worker-killer" not in algorithms:
        algorithms.add_plugin_file(PLUGIN)  # before ray.init: its workers inherit the plugin list
    budget = {"smoke": {"epochs": 1, "batch_size": 64, "train_subset": 128, "test_subset": 64}}
    suite = {"timesteps": [1, 2, 3], "budgets": budget, "algorithms": {"worker-killer": {"arch": "mlp"}}}
    path = write_suite(suite)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        result = run_suite(path, out_dir=tmp_path / "ray", device="cpu", executor="ray")
    finally:
        ray.shutdown()
    statuses = {r.T: r.status for r in result.records}
    assert statuses == {1: "failed", 2: "ok", 3: "ok"} and len(result.failed) == 1
    (failed,) = [r for r in result.records if r.status == "failed"]
    assert failed.error.startswith("WorkerDied: Ray worker died")
    assert not list((tmp_path / "ray" / "tiny" / "checkpoints").glob("*.lock"))


@pytest.mark.slow  # a local Ray start in a subprocess: 10-60 s on two busy cores
def test_a_killed_ray_driver_takes_its_tasks_with_it(write_suite, tmp_path):
    """SIGKILL of ``run --executor ray`` (a local Ray it started) while a task trains: the Ray worker
    training it ends (Ray's fate sharing of a job's tasks with its driver), no orphan trains on."""
    pytest.importorskip("ray")
    import psutil

    path = write_suite({"algorithms": {"sleeper": {"arch": "mlp"}}}).resolve()
    out = tmp_path / "out"
    parent = subprocess.Popen(_run_command(path, out, "--executor", "ray"), cwd=tmp_path)
    ray_processes: list = []
    try:
        _kill_and_check_the_worker_ends(
            parent, out, take_s=120, end_s=30, poll_s=0.5, ray=True, descendants=ray_processes
        )
    finally:
        if parent.poll() is None:
            parent.kill()
        for process in ray_processes:  # Ray's agents outlive a killed driver (idle)
            with __import__("contextlib").suppress(psutil.Error):
                process.kill()
