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

A worker that dies (SIGKILL, the out-of-memory killer, a crash in native code) takes only its own run: the
parent records it failed with the reason (``WorkerDied: worker process killed by signal 9 (SIGKILL)``; not
retried), gives the rest of that worker's task to a fresh worker (pool) or a new Ray task, and the other
runs go on; ``run`` then exits 3. A pool worker dies with its parent (``PR_SET_PDEATHSIG`` on Linux, and a
thread that sees it reparented): a killed ``run`` leaves no orphan training. Ray ends a dead driver's tasks
itself.
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
    tasks: dict[str, list[RunSpec]] = {}
    for spec in specs:
        shares = not spec.training_depends_on_T
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
    task: str | None = None  # the executor's token of the task whose worker took it (see :func:`run_task`)


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
        locked_at, started, task = float(data["locked_at"]), data.get("process_started"), data.get("task")
    except (ValueError, TypeError, KeyError):  # the older "host:pid" form (no start times)
        try:
            host, pid_text = text.strip().rsplit(":", 1)
            pid, locked_at, started, task = int(pid_text), modified, None, None
        except ValueError:
            return Lock(repr(text[:40]), "unreadable lock file (not written by snnbench)")
    owner = f"{host}:{pid}"
    if host != socket.gethostname():  # its owner refreshes the file while it trains
        age = time.time() - modified
        if age > lock_stale_after():
            return Lock(owner, f"another host's lock not refreshed for {age:.0f} s", task)
        return Lock(owner, None, task)
    actual = process_started(pid)
    if actual is None:
        return Lock(owner, f"process {pid} is gone", task)
    if started is not None and actual != math.inf and abs(actual - float(started)) > CLOCK_SLACK_S:
        return Lock(owner, f"process {pid} is not the one that took the lock (pid reused)", task)
    if actual != math.inf and actual > locked_at + CLOCK_SLACK_S:
        return Lock(owner, f"process {pid} started after the lock was taken (pid reused)", task)
    return Lock(owner, None, task)


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


def claim(store: RecordStore, run_id: str, task: str | None = None) -> bool:
    """Take the run's lock file; False when a live process (or another host's refreshed lock) holds it.

    The lock names host, pid, the process's start time, when it was taken and ``task`` (the executor's
    token of the task training it: a parent whose worker died finds the run it was training by it). A
    stale lock (its process is gone, or its pid now belongs to a process started later, or another host
    stopped refreshing it, or the file is empty or unreadable) is taken over with a warning. Deciding and
    taking happen under a guard ``flock``, so two claimers never both take over; the file appears with its
    content (hard link of a written temporary file), so no reader sees it empty."""
    import fcntl

    lock = _lock_path(store, run_id)
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process_started": process_started(os.getpid()),
        "locked_at": time.time(),
    }
    if task is not None:
        me["task"] = task
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
    task_id: str | None = None,
) -> list[RunRecord]:
    """Run a task's specs in order (in any process); runs claimed elsewhere are left out, and so are runs
    whose ok or diverged record was written at or after ``recorded_since`` (0: any record; a start time:
    only records of a concurrent process) once the lock is ours. Subnormal floats are flushed to zero
    meanwhile (:func:`snnbench.environment.flushed_denormals`). ``task_id`` goes into each lock taken (see
    :func:`after_death`)."""
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
            if not claim(store, spec.run_id, task_id):
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


def died(exitcode: int | None) -> str:
    """Why a worker process ended, in words: ``worker process killed by signal 9 (SIGKILL)``."""
    import signal

    if exitcode is not None and exitcode < 0:
        try:
            name = f" ({signal.Signals(-exitcode).name})"
        except ValueError:
            name = ""
        hint = " (the kernel's out-of-memory killer sends it)" if -exitcode == signal.SIGKILL else ""
        return f"worker process killed by signal {-exitcode}{name}{hint}"
    return f"worker process exited with code {exitcode} while training"


def _fresh_record(store: RecordStore, spec: RunSpec, since: float) -> RunRecord | None:
    """The run's record when it was written at or after ``since`` (any status), else None."""
    try:
        if store.record_path(spec.run_id).stat().st_mtime < since - CLOCK_SLACK_S:
            return None
        return store.load(spec.run_id)
    except (OSError, RecordError):
        return None


def after_death(
    store: RecordStore,
    task: list[RunSpec],
    task_id: str,
    sent_at: float,
    reason: str,
    device: str,
    *,
    charge_first: bool = True,
) -> tuple[list[RunRecord], list[RunSpec], bool]:
    """A task's worker died (killed, out of memory, crashed): the records its task wrote (those written
    since ``sent_at``), the run it was training recorded ``failed`` with ``reason`` (its lock names
    ``task_id``), the specs left to train (those after it without a record), for a fresh worker, and whether
    a run was charged. When no lock names the task, the worker died between runs: the runs without a
    record are left to train, none charged, unless ``charge_first`` (its previous worker died so too): then
    the first of them is charged, so that a worker that dies at once cannot make the pool loop. Not
    retried: a run that killed its worker (out of memory) would kill the next one."""
    from datetime import datetime, timezone

    from snnbench.runner import record_failure

    records: list[RunRecord] = []
    victim: int | None = None
    for i, spec in enumerate(task):
        record = _fresh_record(store, spec, sent_at)
        lock = lock_state(store, spec.run_id)
        ours = lock is not None and lock.task == task_id
        if record is not None:
            records.append(record)
            if ours:  # died between writing the record and dropping the lock
                release(store, spec.run_id)
        elif ours and victim is None:
            victim = i
    unfinished = [i for i, s in enumerate(task) if _fresh_record(store, s, sent_at) is None]
    if victim is None and not charge_first:
        return records, [task[i] for i in unfinished], False
    if victim is None:
        victim = unfinished[0] if unfinished else None
    if victim is None:  # every run of the task has its record
        return records, [], False
    spec = task[victim]
    started = datetime.fromtimestamp(sent_at, timezone.utc).isoformat(timespec="seconds")
    with contextlib.suppress(OSError):  # the lock names when the run was taken
        started = datetime.fromtimestamp(
            float(json.loads(_lock_path(store, spec.run_id).read_text())["locked_at"]), timezone.utc
        ).isoformat(timespec="seconds")
    error = f"WorkerDied: {reason}; the other runs went on (its checkpoint, if any, is kept for a rerun)"
    records.append(record_failure(spec, store, error, device=device, started_at=started))
    lock = lock_state(store, spec.run_id)
    if lock is not None and lock.task == task_id:
        release(store, spec.run_id)
    left = [s for s in task[victim + 1 :] if _fresh_record(store, s, sent_at) is None]
    return records, left, True


PARENT_POLL_S = 1.0  # a pool worker checks this often that its parent is alive


def _exit_with_parent(parent: int) -> None:
    """End this worker when the parent that started it dies: Linux delivers SIGKILL at once
    (``PR_SET_PDEATHSIG``); elsewhere, and as a fallback, a thread sees the worker reparented (its parent
    pid changes) within :data:`PARENT_POLL_S` and exits. A worker never trains on as an orphan."""
    import signal
    import sys
    import threading

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # died before the prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent watch", daemon=True).start()


def _pool_worker(connection: Any, parent: int) -> None:
    """A pool worker: run the tasks sent on ``connection`` (``(task_id, args, kwargs)``, None: stop) and send
    back ``("ok", records)`` or ``("error", exception)``."""
    _exit_with_parent(parent)
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        task_id, args, kwargs = job
        try:
            reply: tuple[str, Any] = ("ok", run_task(*args, task_id=task_id, **kwargs))
        except BaseException as exc:  # handed to the parent, which raises it
            import traceback

            exc.add_note(f"in pool worker {os.getpid()}:\n{traceback.format_exc()}")
            reply = ("error", exc)
        try:
            connection.send(reply)
        except Exception as exc:  # an exception that does not pickle
            connection.send(("error", SnnbenchError(f"{type(reply[1]).__name__}: {reply[1]} ({exc})")))


@dataclass
class _Job:
    task_id: str  # named by the locks its worker takes
    task: list[RunSpec]
    device: str
    sent_at: float
    charge_first: bool  # its previous worker died before taking a run (see :func:`after_death`)


@dataclass
class _Worker:
    process: Any  # multiprocessing.Process
    connection: Any  # the parent's end of its pipe
    job: _Job | None = None


def _pool(
    tasks: list[list[RunSpec]], common: dict[str, Any], jobs: int, on_event: ev.EventSink
) -> list[RunRecord]:
    """Run the tasks on ``jobs`` worker processes (spawned: no forked torch state). A worker that dies
    (killed, out of memory) has its run recorded failed (:func:`after_death`) and is replaced; the rest of
    its task goes to the next free worker, the other workers go on. Workers end with this process."""
    import collections
    import multiprocessing
    import uuid
    from multiprocessing.connection import wait

    import torch

    gpus = torch.cuda.device_count() if common["device"] in ("auto", "cuda") else 0
    threads = pool_threads(jobs)
    store = RecordStore(common["out_dir"], tasks[0][0].suite) if tasks else None
    context = multiprocessing.get_context("spawn")
    queue = collections.deque(
        (task, f"cuda:{i % gpus}" if gpus > 1 else common["device"], False) for i, task in enumerate(tasks)
    )
    kwargs = {
        "threads": threads,
        "save_models": common["save_models"],
        "recorded_since": common["recorded_since"],
    }
    workers: list[_Worker] = []
    records: list[RunRecord] = []

    def start() -> _Worker:
        mine, theirs = context.Pipe()
        process = context.Process(target=_pool_worker, args=(theirs, os.getpid()))
        process.start()
        theirs.close()
        return _Worker(process, mine)

    try:
        while queue or any(w.job is not None for w in workers):
            idle = [w for w in workers if w.job is None]
            for worker in [w for w in idle if not w.process.is_alive()]:  # died between tasks
                worker.process.join()
                worker.connection.close()
                workers.remove(worker)
                idle.remove(worker)
            while len(workers) < jobs and len(queue) > len(idle):
                workers.append(start())
                idle.append(workers[-1])
            for worker in idle[: len(queue)]:
                task, device, charge = queue.popleft()
                worker.job = _Job(uuid.uuid4().hex, task, device, time.time(), charge)
                args = (task, common["out_dir"], device, common["data_dir"])
                worker.connection.send((worker.job.task_id, args, kwargs))
            busy = [w for w in workers if w.job is not None]
            wait([w.connection for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                job = worker.job
                assert job is not None
                reply = None
                try:
                    if worker.connection.poll():
                        reply = worker.connection.recv()
                    elif worker.process.is_alive():
                        continue
                except (EOFError, OSError):
                    pass
                if reply is not None:
                    worker.job = None
                    status, value = reply
                    if status == "error":
                        raise value
                    _finished(on_event, value, job.task)
                    records += value
                    continue
                worker.process.join()
                reason = died(worker.process.exitcode)
                done, left, charged = after_death(
                    store,
                    job.task,
                    job.task_id,
                    job.sent_at,
                    reason,
                    job.device,
                    charge_first=job.charge_first,
                )
                _finished(on_event, done, job.task)
                records += done
                if left:  # a worker that died before taking a run: its first run is charged next time
                    queue.appendleft((left, job.device, not charged))
                worker.connection.close()
                workers.remove(worker)
    finally:
        for worker in workers:
            with contextlib.suppress(OSError, ValueError):
                worker.connection.send(None)
        for worker in workers:
            worker.process.join(timeout=5 if worker.job is None else 0)
            if worker.process.is_alive():  # still training: this process is stopping (an error, Ctrl-C)
                worker.process.terminate()
                worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()
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
    store = RecordStore(common["out_dir"], tasks[0][0].suite) if tasks else None
    refs: dict[Any, _Job] = {}

    def submit(task: list[RunSpec], charge_first: bool = False) -> None:
        import uuid

        first = task[0]
        options = {"num_cpus": first.num_cpus, "num_gpus": first.num_gpus, "max_retries": 0}
        job = _Job(uuid.uuid4().hex, task, common["device"], time.time(), charge_first)
        ref = remote.options(**options).remote(
            task,
            common["out_dir"],
            common["device"],
            common["data_dir"],
            save_models=common["save_models"],
            recorded_since=common["recorded_since"],
            task_id=job.task_id,
        )
        refs[ref] = job

    for task in tasks:
        submit(task)
    records: list[RunRecord] = []
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1)
        job = refs.pop(ready[0])
        try:
            done = ray.get(ready[0])
        except ray.exceptions.RayTaskError:  # the task raised (a full disk, a bug): as the local executor
            raise
        except ray.exceptions.RayError as exc:  # its worker died (killed, out of memory, node lost)
            assert store is not None
            reason = f"Ray worker died: {str(exc).strip().splitlines()[0][:300]}"
            done, left, charged = after_death(
                store, job.task, job.task_id, job.sent_at, reason, job.device, charge_first=job.charge_first
            )
            if left:
                submit(left, charge_first=not charged)
        _finished(on_event, done, job.task)
        records += done
    return records
