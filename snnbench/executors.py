"""Executors: where the runs of a suite execute, behind one function, :func:`execute`.

``local`` runs in this process (progress per epoch); ``pool`` runs in a local process pool (``--jobs N``,
one GPU per worker, round robin, where several exist); ``ray`` submits each task to a Ray cluster
(``--address auto|HOST:PORT``; without an address, a local Ray is started), asking for the budget's
``num_cpus``/``num_gpus``. All write the same records into the same store. A task is a list of specs run in
order in one worker: the specs of a method whose training ignores T share one task, so that the network is
trained once per seed. Every executor claims a run before training it (a lock file naming host, pid, the
process's start time and when it was taken; refreshed every 30 s while the run trains), so two executors
sharing a results directory never train the same run at once, and checks again for its record once the lock
is its own (a concurrent run may have just written it). A lock that cannot be held by a running process is
stale and taken over with a warning: its pid is gone or now belongs to a process started after the lock
(a reused pid), another host stopped refreshing it (``$SNNBENCH_LOCK_STALE_S``, 300 s), or the file is
empty or unreadable. A failed run is retried once and then recorded as failed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snnbench import events as ev
from snnbench.errors import RecordError, SnnbenchError
from snnbench.records import RecordStore, RunRecord, temporary_prefix
from snnbench.suite import RunSpec

EXECUTORS = ("local", "pool", "ray")


def group_tasks(specs: list[RunSpec]) -> list[list[RunSpec]]:
    """One task per spec, except that specs sharing training (method ignores T) share a task."""
    from snnbench.algorithms import algorithms

    tasks: dict[str, list[RunSpec]] = {}
    for spec in specs:
        shares = not algorithms.get(spec.algorithm).training_depends_on_T
        tasks.setdefault(spec.training_key if shares else spec.run_id, []).append(spec)
    return list(tasks.values())


CLOCK_SLACK_S = 1.0  # process start times are known to the clock tick; the boot time to a second
LOCK_HEARTBEAT_S = 30.0  # a holder refreshes its lock's mtime this often while it trains
LOCK_STALE_ENV = "SNNBENCH_LOCK_STALE_S"


def lock_stale_after() -> float:
    """Seconds after which another host's lock that was not refreshed is stale (``$SNNBENCH_LOCK_STALE_S``,
    default 300: ten missed heartbeats)."""
    value = os.environ.get(LOCK_STALE_ENV, "")
    try:
        return float(value) if value else 10 * LOCK_HEARTBEAT_S
    except ValueError:
        raise SnnbenchError(f"${LOCK_STALE_ENV}: expected a number of seconds, got {value[:40]!r}") from None


def process_started(pid: int) -> float | None:
    """When process ``pid`` of this host started (seconds since the epoch); None when it does not exist."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:  # exists but cannot be inspected (another user's): treat as alive, age unknown
        return math.inf


@dataclass(frozen=True)
class Lock:
    """A run's lock file as read: who holds it and, when the holder cannot be running it, why."""

    owner: str  # "host:pid", or what the file held
    stale: str | None  # None: held by a live process (or another host's recently refreshed lock)


def _read_lock(path: Path) -> Lock | None:
    """The lock at ``path`` judged live or stale; None when there is no lock file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Lock("unreadable lock", f"unreadable lock file ({exc.strerror or exc})")
    if not text.strip():
        return Lock("empty lock", "empty lock file (its writer died before naming itself)")
    try:
        data = json.loads(text)
        host, pid = str(data["host"]), int(data["pid"])
        locked_at, started = float(data["locked_at"]), data.get("process_started")
    except (ValueError, TypeError, KeyError):  # the older "host:pid" form (no start times)
        try:
            host, pid_text = text.strip().rsplit(":", 1)
            pid, locked_at, started = int(pid_text), modified, None
        except ValueError:
            return Lock(repr(text[:40]), "unreadable lock file (not written by snnbench)")
    owner = f"{host}:{pid}"
    if host != socket.gethostname():  # its owner refreshes the file while it trains
        age = time.time() - modified
        if age > lock_stale_after():
            return Lock(owner, f"another host's lock not refreshed for {age:.0f} s")
        return Lock(owner, None)
    actual = process_started(pid)
    if actual is None:
        return Lock(owner, f"process {pid} is gone")
    if started is not None and actual != math.inf and abs(actual - float(started)) > CLOCK_SLACK_S:
        return Lock(owner, f"process {pid} is not the one that took the lock (pid reused)")
    if actual != math.inf and actual > locked_at + CLOCK_SLACK_S:
        return Lock(owner, f"process {pid} started after the lock was taken (pid reused)")
    return Lock(owner, None)


def _lock_path(store: RecordStore, run_id: str) -> Path:
    return store.checkpoints / f"{run_id}.lock"


def holder(store: RecordStore, run_id: str) -> str | None:
    """``host:pid`` of the live process (or recently refreshed other host) holding the run's lock; None when
    the run is free or its lock is stale (see :func:`lock_state`)."""
    lock = _read_lock(_lock_path(store, run_id))
    return None if lock is None or lock.stale else lock.owner


def lock_state(store: RecordStore, run_id: str) -> Lock | None:
    """The run's lock as read (live or stale, and why); None when there is none."""
    return _read_lock(_lock_path(store, run_id))


def claim(store: RecordStore, run_id: str) -> bool:
    """Take the run's lock file; False when a live process (or another host's refreshed lock) holds it.

    The lock names host, pid, the process's start time and when it was taken. A stale lock (its process is
    gone, or its pid now belongs to a process started later, or another host stopped refreshing it, or the
    file is empty or unreadable) is taken over with a warning. Deciding and taking happen under a guard
    ``flock``, so two claimers never both take over; the file appears with its content (hard link of a
    written temporary file), so no reader sees it empty."""
    import fcntl

    lock = _lock_path(store, run_id)
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process_started": process_started(os.getpid()),
        "locked_at": time.time(),
    }
    with open(lock.parent / ".locks.guard", "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        found = _read_lock(lock)
        if found is not None:
            if found.stale is None:
                return False
            warnings.warn(f"{lock}: taking over a stale lock of {found.owner}: {found.stale}", stacklevel=2)
            lock.unlink(missing_ok=True)
        tmp = lock.with_name(f"{temporary_prefix(lock)}lock.tmp")
        tmp.write_text(json.dumps(me))
        try:
            os.link(tmp, lock)
        except FileExistsError:  # a claimer that ignores the guard (an older snnbench) was first
            return False
        finally:
            tmp.unlink(missing_ok=True)
    return True


def release(store: RecordStore, run_id: str) -> None:
    """Drop the run's lock file."""
    _lock_path(store, run_id).unlink(missing_ok=True)


@contextlib.contextmanager
def _heartbeat(store: RecordStore, run_id: str) -> Iterator[None]:
    """Refresh the lock's mtime every :data:`LOCK_HEARTBEAT_S` while the run trains: another host judges the
    lock by it."""
    import threading

    stop = threading.Event()
    path = _lock_path(store, run_id)

    def beat() -> None:
        while not stop.wait(LOCK_HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(path)

    thread = threading.Thread(target=beat, name=f"lock {run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def has_record(store: RecordStore, spec: RunSpec, since: float = 0.0) -> bool:
    """Whether the run has an ok or diverged record written at or after ``since`` (0: any record, as with
    resume; a start time: only a record a concurrent process wrote meanwhile)."""
    path = store.record_path(spec.run_id)
    try:
        if path.stat().st_mtime < since:
            return False
        record = store.load(spec.run_id)
    except (OSError, RecordError):  # absent or unreadable: the run trains and replaces it
        return False
    return record is not None and record.status in ("ok", "diverged")


def run_task(
    specs: list[RunSpec],
    out_dir: str,
    device: str,
    data_dir: str | None,
    on_event: ev.EventSink = ev.ignore,
    threads: int | None = None,
    save_models: bool = False,
    recorded_since: float = 0.0,
) -> list[RunRecord]:
    """Run a task's specs in order (in any process); runs claimed elsewhere are left out, and so are runs
    whose ok or diverged record was written at or after ``recorded_since`` (0: any record; a start time:
    only records of a concurrent process) once the lock is ours. Subnormal floats are flushed to zero
    meanwhile (:func:`snnbench.environment.flushed_denormals`)."""
    from snnbench.environment import flushed_denormals, reuse_freed_cpu_memory
    from snnbench.runner import run_one

    reuse_freed_cpu_memory()
    store = RecordStore(out_dir, specs[0].suite)
    options = {"device": device, "data_dir": data_dir, "on_event": on_event, "save_model": save_models}
    records = []
    with flushed_denormals():  # set before torch's threads start in a fresh worker, so that they inherit it
        if threads:
            import torch

            torch.set_num_threads(threads)
        for spec in specs:
            if not claim(store, spec.run_id):
                continue
            try:
                if has_record(store, spec, recorded_since):  # a concurrent run finished it before we claimed
                    continue
                with _heartbeat(store, spec.run_id):
                    record = run_one(spec, store, **options)
                    if record.status == "failed":  # retried once, then recorded as failed
                        record = run_one(spec, store, **options)
            finally:
                release(store, spec.run_id)
            records.append(record)
    return records


def execute(
    tasks: list[list[RunSpec]],
    *,
    executor: str = "local",
    out_dir: str | Path,
    device: str = "auto",
    data_dir: str | Path | None = None,
    jobs: int = 2,
    address: str | None = None,
    on_event: ev.EventSink = ev.ignore,
    save_models: bool = False,
    recorded_since: float = 0.0,
) -> list[RunRecord]:
    """Run every task with the chosen executor; returns the records written (``recorded_since``: see
    :func:`run_task`)."""
    common = {
        "out_dir": str(out_dir),
        "device": device,
        "data_dir": None if data_dir is None else str(data_dir),
        "save_models": save_models,
        "recorded_since": recorded_since,
    }
    if executor == "local":
        return [r for task in tasks for r in run_task(task, on_event=on_event, **common)]
    if executor == "pool":
        return _pool(tasks, common, jobs, on_event)
    if executor == "ray":
        return _ray(tasks, common, address, on_event)
    from snnbench.errors import UnknownNameError

    raise UnknownNameError("executor", executor, EXECUTORS)


def _finished(on_event: ev.EventSink, records: list[RunRecord], specs: list[RunSpec]) -> None:
    by_id = {s.run_id: s for s in specs}
    for record in records:
        on_event(ev.RunFinished(by_id[record.run_id], record))


def pool_threads(jobs: int) -> int:
    """Torch threads of each of ``jobs`` pool workers: an equal share of this machine's cores."""
    return max(1, (os.cpu_count() or 1) // jobs)


def _pool(
    tasks: list[list[RunSpec]], common: dict[str, Any], jobs: int, on_event: ev.EventSink
) -> list[RunRecord]:
    import multiprocessing

    import torch

    gpus = torch.cuda.device_count() if common["device"] in ("auto", "cuda") else 0
    threads = pool_threads(jobs)
    records: list[RunRecord] = []
    context = multiprocessing.get_context("spawn")  # no forked torch state
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {}
        for i, task in enumerate(tasks):
            device = f"cuda:{i % gpus}" if gpus > 1 else common["device"]
            future = pool.submit(
                run_task,
                task,
                common["out_dir"],
                device,
                common["data_dir"],
                threads=threads,
                save_models=common["save_models"],
                recorded_since=common["recorded_since"],
            )
            futures[future] = task
        for future in as_completed(futures):
            done = future.result()
            _finished(on_event, done, futures[future])
            records += done
    return records


def _check_ray_resources(tasks: list[list[RunSpec]], cluster: dict[str, float]) -> None:
    """Fail before submitting when a run asks for more CPUs or GPUs than the whole cluster has (Ray would
    keep such a task pending forever, silently)."""
    for task in tasks:
        spec = task[0]
        for resource, asked in (("CPU", spec.num_cpus), ("GPU", spec.num_gpus)):
            field, total = f"num_{resource.lower()}s", cluster.get(resource, 0.0)
            if asked > total:
                raise SnnbenchError(
                    f"budget {spec.budget!r} of suite {spec.suite!r} asks {field}: {asked:g} per run, but "
                    f"the Ray cluster has {total:g} {resource}s in all: no run could start; lower {field} in "
                    f"the budget or add nodes that have them"
                )


def _ray(
    tasks: list[list[RunSpec]], common: dict[str, Any], address: str | None, on_event: ev.EventSink
) -> list[RunRecord]:
    try:
        import ray
    except ImportError:
        raise SnnbenchError("--executor ray needs Ray: pip install 'snnbench[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    _check_ray_resources(tasks, ray.cluster_resources())
    remote: Callable[..., Any] = ray.remote(run_task)
    refs = {}
    for task in tasks:
        first = task[0]
        options = {"num_cpus": first.num_cpus, "num_gpus": first.num_gpus, "max_retries": 0}
        refs[
            remote.options(**options).remote(
                task,
                common["out_dir"],
                common["device"],
                common["data_dir"],
                save_models=common["save_models"],
                recorded_since=common["recorded_since"],
            )
        ] = task
    records: list[RunRecord] = []
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        done = ray.get(ready[0])
        _finished(on_event, done, refs[ready[0]])
        records += done
    return records
