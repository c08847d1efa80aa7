"""A suite's grid: expand it, skip the runs that have a record, run the rest with an executor, write the
reports. The chain of calls is one-way: grid → executors → runner (one run) and grid → leaderboard."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from snnbench import events as ev
from snnbench.algorithms import algorithms
from snnbench.data import data_root, datasets
from snnbench.environment import resolve_device
from snnbench.executors import execute, group_tasks, has_record, holder
from snnbench.leaderboard import write_reports as write
from snnbench.records import RecordStore, RunRecord
from snnbench.suite import Overrides, RunSpec, Suite, expand, load_suite


@dataclass
class SuiteResult:
    """What :func:`run_suite` did."""

    suite: Suite
    out_dir: Path
    specs: list[RunSpec]
    records: list[RunRecord]
    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # "run_id (host:pid)": left to another process's live lock
    failed: list[str] = field(default_factory=list)  # trained runs whose record says failed
    # ``save_models``: runs with records but no network, retrained for it (records untouched)
    models_kept: list[str] = field(default_factory=list)  # the retrain reproduced the record: network kept
    models_not_reproduced: list[str] = field(default_factory=list)  # one line each: why none was kept


def run_suite(
    ref: str | Path | Suite,
    overrides: Overrides | None = None,
    *,
    out_dir: str | Path = "results",
    device: str = "auto",
    resume: bool = True,
    data_dir: str | Path | None = None,
    on_event: ev.EventSink = ev.ignore,
    write_reports: bool = True,
    executor: str = "local",
    jobs: int = 2,
    address: str | None = None,
    save_models: bool = False,
) -> SuiteResult:
    """Expand a suite, run what has no record (or everything with ``resume=False``) with the chosen
    executor (see :mod:`snnbench.executors`), and write the reports. ``save_models`` keeps each trained
    run's final network, and gets one for each selected ok run whose record exists without it: retrained
    in a temporary folder and kept when it reproduces the record exactly, the record untouched
    (:func:`snnbench.saved.retrain_for_models`)."""
    began = time.time()
    from snnbench.tuning import refuse_untuned_plugin_entries

    suite = ref if isinstance(ref, Suite) else load_suite(ref)
    specs = expand(suite, overrides)
    chosen = overrides or Overrides()
    refuse_untuned_plugin_entries(suite, chosen.algorithms, out_dir, chosen.timesteps)
    resolve_device(device)  # fail before training on a bad device
    store = RecordStore(out_dir, suite.name)
    done = {}
    if resume:
        for spec in specs:
            record = store.load(spec.run_id)
            if record is not None and record.status in ("ok", "diverged"):
                done[spec.run_id] = record
    result = SuiteResult(suite, store.root, specs, [])
    todo = [s for s in specs if s.run_id not in done]
    need_model = []
    if save_models:
        from snnbench.saved import has_saved_model

        need_model = [r for r in done.values() if r.status == "ok" and not has_saved_model(store, r)]
    if todo or need_model:  # an unwritable --out, missing or corrupt data fail here, before any training
        datasets.get(suite.dataset)().verify(data_root(data_dir))
        store.ensure_writable()
        store.remove_stale_temporaries()  # of atomic writes a killed run left behind
    on_event(ev.SuiteStarted(suite.name, len(specs), len(todo), store.root))
    for spec in specs:
        if spec.run_id in done:
            result.skipped.append(spec.run_id)
            result.records.append(done[spec.run_id])
            on_event(ev.RunSkipped(spec, done[spec.run_id].status))
    with algorithms.frozen():
        records = execute(
            group_tasks(todo),
            executor=executor,
            out_dir=out_dir,
            device=device,
            data_dir=data_dir,
            jobs=jobs,
            address=address,
            on_event=on_event,
            save_models=save_models,
            recorded_since=0.0 if resume else began,
        )
    if need_model:
        from snnbench.saved import retrain_for_models

        with algorithms.frozen():
            retrained = retrain_for_models(
                store, need_model, executor=executor, device=device, data_dir=data_dir, jobs=jobs,
                address=address, on_event=on_event,
            )  # fmt: skip
        result.models_kept += retrained.kept
        result.models_not_reproduced += retrained.not_reproduced
    result.records += records
    result.trained += [r.run_id for r in records]
    result.failed += [r.run_id for r in records if r.status == "failed"]
    for spec in todo:  # not trained here: claimed by a concurrent run, which may have finished it meanwhile
        if spec.run_id in result.trained:
            continue
        if has_record(store, spec, 0.0 if resume else began):
            result.skipped.append(spec.run_id)
            result.records.append(store.load(spec.run_id))  # type: ignore[arg-type]  # has_record: it exists
        else:
            result.held.append(f"{spec.run_id} ({holder(store, spec.run_id) or 'lock released, no record'})")
    if write_reports and result.records:  # nothing to report when every run was claimed elsewhere
        with store.reports_lock():
            result.files = write(suite, store.root, (overrides or Overrides()).budget)
    on_event(
        ev.SuiteFinished(
            suite.name, store.root, len(result.trained), len(result.skipped), tuple(result.files)
        )
    )
    return result
