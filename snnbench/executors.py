"""Executors: where the runs of a suite execute, behind one function, :func:`execute`.

``local`` runs in this process (progress per epoch); ``pool`` runs in a local process pool (``--jobs N``,
one GPU per worker, round robin, where several exist); ``ray`` submits each task to a Ray cluster
(``--address auto|HOST:PORT``; without an address, a local Ray is started), asking for the budget's
``num_cpus``/``num_gpus``. All write the same records into the same store. A task is a list of specs run in
order in one worker: the specs of a method whose training ignores T share one task, so that the network is
trained once per seed. Every executor claims a run before training it (a lock file naming host and pid),
so two executors sharing a results directory never train the same run at once; a failed run is retried
once and then recorded as failed.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from snnbench import events as ev
from snnbench.errors import SnnbenchError
from snnbench.records import RecordStore, RunRecord
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder(store: RecordStore, run_id: str) -> str | None:
    """``host:pid`` of the live process (or other host) holding the run's lock file; None when free."""
    lock = store.checkpoints / f"{run_id}.lock"
    try:
        text = lock.read_text()
        host, pid = text.rsplit(":", 1)
        alive = host != socket.gethostname() or _pid_alive(int(pid))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "unreadable lock"
    return text if alive else None


def claim(store: RecordStore, run_id: str) -> bool:
    """Take the run's lock file; False when a live process (or another host) holds it."""
    lock = store.checkpoints / f"{run_id}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = f"{socket.gethostname()}:{os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if holder(store, run_id) is not None:
                return False
            lock.unlink(missing_ok=True)  # its owner died (killed run): take it over
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(me)
        return True
    return False


def release(store: RecordStore, run_id: str) -> None:
    """Drop the run's lock file."""
    (store.checkpoints / f"{run_id}.lock").unlink(missing_ok=True)


def run_task(
    specs: list[RunSpec],
    out_dir: str,
    device: str,
    data_dir: str | None,
    on_event: ev.EventSink = ev.ignore,
    threads: int | None = None,
    save_models: bool = False,
) -> list[RunRecord]:
    """Run a task's specs in order (in any process); runs claimed elsewhere are left out. Subnormal floats
    are flushed to zero meanwhile (:func:`snnbench.environment.flushed_denormals`)."""
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
) -> list[RunRecord]:
    """Run every task with the chosen executor; returns the records written."""
    common = {
        "out_dir": str(out_dir),
        "device": device,
        "data_dir": None if data_dir is None else str(data_dir),
        "save_models": save_models,
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


def _pool(
    tasks: list[list[RunSpec]], common: dict[str, Any], jobs: int, on_event: ev.EventSink
) -> list[RunRecord]:
    import multiprocessing

    import torch

    gpus = torch.cuda.device_count() if common["device"] in ("auto", "cuda") else 0
    threads = max(1, (os.cpu_count() or 1) // jobs)
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
