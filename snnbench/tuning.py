"""Equal tuning budgets: ``snnbench tune`` searches each entry's declared space on the validation split.

Every entry of the tuned tracks gets the same number of trials (the suite's ``tuning.trials``), each a full
training run of the tuning budget at one time step, scored by its final-epoch **validation** top-1 (the
test set is never read: the runner evaluates it only at the end of a run, and trial records keep only
validation figures). The sampler is Optuna's TPE, seeded; trial 0 is the entry's resolved configuration
(the paper's defaults or the suite's values), so tuning can only keep or improve it on validation.

The search space of a method: every ``Config`` field that declares ``json_schema_extra={"search": {"low":
…, "high": …, "log": …}}`` (or ``{"choices": [...]}``); a method that declares none has its learning rate
``lr`` searched log-uniformly over [value / 10, value × 10] around the entry's resolved value — one rule for
every method, so that no method gets a wider search than another by accident.

Results: ``OUT/<suite>/tuning/<entry>.json`` lists every trial (values, validation top-1, status, run id),
the chosen values and the budget; the trial runs' own records (validation figures only) are under
``OUT/<suite>/tuning/trials/runs/``. The
``tuned:`` block to paste into the suite entry is printed; ``run --tuned`` applies the records directly
(only the selected entries' records are needed).

Progress and resume: every finished trial is reported as a :class:`snnbench.events.TrialFinished` event
(the CLI prints one line per trial). A trial whose spec already has an ok or diverged record made by the
method's current source (an interrupted or repeated ``tune``) reuses that record instead of retraining; as
the sampler is seeded and sees the same scores, a resumed study proposes the same trials and ends with the
same record.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from snnbench import events as ev
from snnbench.errors import RecordError, SnnbenchError
from snnbench.records import RecordStore, RunRecord, atomic_write_bytes
from snnbench.suite import Overrides, RunSpec, Suite, Tuned, expand


class Search(BaseModel):
    """One searched hyperparameter: a numeric range (log-uniform when ``log``) or a list of choices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: list[Any] | None = None


def search_space(algorithm_cls: type, resolved: dict[str, Any]) -> dict[str, Search]:
    """The declared space of ``algorithm_cls`` (module docstring); ``resolved``: the entry's values."""
    space: dict[str, Search] = {}
    for name, info in algorithm_cls.Config.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and "search" in extra:
            space[name] = Search.model_validate(extra["search"])
    if not space and isinstance(resolved.get("lr"), (int, float)):
        lr = float(resolved["lr"])
        space["lr"] = Search(low=lr / 10, high=lr * 10, log=True)
    return space


def _suggest(trial: Any, name: str, search: Search) -> Any:
    if search.choices is not None:
        return trial.suggest_categorical(name, search.choices)
    if search.integer:
        return trial.suggest_int(name, int(search.low), int(search.high), log=search.log)
    return trial.suggest_float(name, search.low, search.high, log=search.log)


@dataclass
class TuningJob:
    """One entry to tune: its spec at the tuning T and seed, and the output folder."""

    spec: RunSpec
    trials: int
    seed: int
    out_dir: str
    data_dir: str | None
    threads: int | None = None


def tuning_specs(suite: Suite, entries: list[str] | None = None) -> list[RunSpec]:
    """One spec per tuned entry: the tuning budget, the tuning T (or the entry's first T) and seed."""
    if suite.tuning is None:
        raise SnnbenchError(f"suite {suite.name} declares no tuning budget (a `tuning:` block)")
    tuning = suite.tuning
    keys = [k for k, e in suite.algorithms.items() if e.track in tuning.tracks]
    if entries is not None:
        unknown = [e for e in entries if e not in keys]
        if unknown:
            raise SnnbenchError(
                f"{unknown[0]!r} is not an entry of the tuned tracks ({', '.join(tuning.tracks)}) of "
                f"{suite.name}: {', '.join(keys)}"
            )
        keys = [k for k in keys if k in entries]
    # a new search starts from the entry's own values, never from a `tuned` block of an earlier search
    untuned = suite.model_copy(
        update={"algorithms": {k: e.model_copy(update={"tuned": None}) for k, e in suite.algorithms.items()}}
    )
    specs = []
    for key in keys:
        grid = expand(untuned, Overrides(budget=tuning.budget, algorithms=[key], seeds=[tuning.seed]))
        specs.append({s.T: s for s in grid}.get(tuning.T, grid[0]))
    return specs


def tune_entry(job: TuningJob, on_event: ev.EventSink = ev.ignore) -> dict[str, Any]:
    """Run one entry's study and write its tuning record; returns the record. Subnormal floats are flushed
    to zero meanwhile, as in the runner's workers (:func:`snnbench.environment.flushed_denormals`)."""
    from snnbench.environment import flushed_denormals

    with flushed_denormals():
        return _study(job, on_event)


def reusable_trial(store: RecordStore, spec: RunSpec, algorithm_cls: type) -> RunRecord | None:
    """The finished record of a trial ``spec`` from an earlier ``tune`` (ok or diverged, made by the
    method's current version and source), or None: the trial trains."""
    from snnbench.provenance import source_sha256

    try:
        record = store.load(spec.run_id)
    except RecordError:  # unreadable: the trial trains again and replaces it
        return None
    if record is None or record.status not in ("ok", "diverged") or record.spec_hash != spec.spec_hash:
        return None
    if (record.algorithm_version, record.algorithm_source_sha256) != (
        algorithm_cls.version,
        source_sha256(algorithm_cls),
    ):
        return None
    return record


def trial_event(entry: str, trials: int, trial: dict[str, Any]) -> ev.TrialFinished:
    """The progress event of one trial of a tuning record."""
    return ev.TrialFinished(
        entry,
        trial["number"] + 1,
        trials,
        trial["values"],
        trial["val_top1"],
        trial["status"],
        trial.get("seconds", 0.0),
        trial.get("reused", False),
    )


def _study(job: TuningJob, on_event: ev.EventSink = ev.ignore) -> dict[str, Any]:
    import optuna

    from snnbench.algorithms import algorithms
    from snnbench.environment import environment, resolve_device, reuse_freed_cpu_memory
    from snnbench.runner import run_one

    reuse_freed_cpu_memory()
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    base = job.spec
    algorithm_cls = algorithms.get(base.algorithm)
    space = search_space(algorithm_cls, base.hparams)
    if not space:
        raise SnnbenchError(f"{base.entry}: {base.algorithm} declares no search space and has no lr")
    folder = Path(job.out_dir) / base.suite / "tuning"
    store = RecordStore(folder, "trials")
    trials: list[dict[str, Any]] = []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=job.seed, n_startup_trials=max(1, job.trials // 3))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({name: base.hparams[name] for name in space})  # trial 0: the resolved values

    def objective(trial: Any) -> float:
        values = {name: _suggest(trial, name, search) for name, search in space.items()}
        hparams = algorithm_cls.Config.model_validate({**base.hparams, **values}).model_dump(mode="json")
        spec = base.model_copy(update={"hparams": hparams, "tuned_fields": sorted(values)})
        record = reusable_trial(store, spec, algorithm_cls)
        reused = record is not None
        if record is None:
            began = time.perf_counter()
            record = run_one(spec, store, data_dir=job.data_dir, final_test=False)
            seconds = time.perf_counter() - began
        else:
            seconds = float(record.metrics.get("train_time_s") or 0.0)
        val = record.metrics.get("val_top1") if record.status == "ok" else None
        trials.append(
            {
                "number": trial.number,
                "values": values,
                "val_top1": val,
                "status": record.status,
                "run_id": record.run_id,
                "seconds": round(seconds, 3),
                "reused": reused,
            }
        )
        on_event(trial_event(base.entry, job.trials, trials[-1]))
        return float(val) if val is not None else 0.0  # a diverged or failed trial scores chance or worse

    study.optimize(objective, n_trials=job.trials)
    best = max(trials, key=lambda t: (t["val_top1"] if t["val_top1"] is not None else -1.0, -t["number"]))
    record = {
        "suite": base.suite,
        "suite_version": base.suite_version,
        "entry": base.entry,
        "algorithm": base.algorithm,
        "objective": "final-epoch validation top-1 (%)",
        "budget": {"trials": job.trials, "T": base.T, "seed": base.seed, "budget": base.budget},
        "sampler": f"optuna TPE (seed {job.seed}, {max(1, job.trials // 3)} startup trials), trial 0 = "
        "the entry's resolved values",
        "space": {name: search.model_dump(exclude_none=True) for name, search in space.items()},
        "trials": trials,
        "chosen": {"values": best["values"], "val_top1": best["val_top1"], "trial": best["number"]},
        "environment": environment(resolve_device("cpu")),
    }
    path = folder / f"{base.entry}.json"
    atomic_write_bytes(path, (json.dumps(record, indent=2) + "\n").encode())
    return record


def tune_suite(
    suite: Suite,
    entries: list[str] | None = None,
    *,
    out_dir: str | Path = "results",
    trials: int | None = None,
    jobs: int = 1,
    data_dir: str | Path | None = None,
    on_event: ev.EventSink = ev.ignore,
) -> list[dict[str, Any]]:
    """Tune every entry of the suite's tuned tracks (or ``entries``) with the same number of trials;
    ``on_event`` gets a :class:`~snnbench.events.TrialFinished` per trial (with ``jobs`` > 1, an entry's
    trials are reported when its study ends)."""
    specs = tuning_specs(suite, entries)  # raises the clear error when the suite has no tuning block
    assert suite.tuning is not None
    count = trials or suite.tuning.trials
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    folder = None if data_dir is None else str(data_dir)
    jobs_list = [TuningJob(spec, count, suite.tuning.seed, str(out_dir), folder, threads) for spec in specs]
    if jobs <= 1:
        return [tune_entry(job, on_event) for job in jobs_list]
    import multiprocessing

    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(tune_entry, job): index for index, job in enumerate(jobs_list)}
        records: list[dict[str, Any] | None] = [None] * len(jobs_list)
        for future in as_completed(futures):
            record = future.result()
            records[futures[future]] = record
            for trial in record["trials"]:
                on_event(trial_event(record["entry"], count, trial))
        return [r for r in records if r is not None]


def tuned_block(record: dict[str, Any], path: Path) -> Tuned:
    """The suite entry's ``tuned:`` block for a tuning record."""
    return Tuned(values=record["chosen"]["values"], trials=record["budget"]["trials"], record=str(path))


def with_tuning_records(suite: Suite, out_dir: str | Path, entries: list[str] | None = None) -> Suite:
    """``suite`` with every tuned-track entry's ``tuned`` block taken from ``OUT/<suite>/tuning/<entry>.json``
    (``run --tuned``); only ``entries`` (default: all) need a record, and a selected entry without one is
    an error naming the command that makes it."""
    folder = Path(out_dir) / suite.name / "tuning"
    updated = {}
    for key, entry in suite.algorithms.items():
        skipped = entries is not None and key not in entries  # not run: its record is not needed
        if skipped or suite.tuning is None or entry.track not in suite.tuning.tracks:
            updated[key] = entry
            continue
        path = folder / f"{key}.json"
        if not path.is_file():
            raise SnnbenchError(
                f"--tuned: no tuning record {path}; make it with `snnbench tune --suite {suite.name} "
                f"--algorithms {key} --out {out_dir}`"
            )
        try:
            record = json.loads(path.read_text())
            block = tuned_block(record, path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RecordError(path, f"not a tuning record ({exc})") from None
        updated[key] = entry.model_copy(update={"tuned": block})
    return suite.model_copy(update={"algorithms": updated})


def _plugin_file(algorithm: str) -> str:
    """The file a plugin method was loaded from, relative to the working directory where it lies below it."""
    import inspect

    from snnbench.algorithms import algorithms

    try:
        path = Path(inspect.getsourcefile(algorithms.get(algorithm)) or "FILE").resolve()
    except TypeError:
        return "FILE"
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _tuning_problem(suite: Suite, key: str, tuned: Tuned | None) -> str | None:
    """Why the ``tuned`` block of entry ``key`` is not a record made with the suite's tuning budget."""
    assert suite.tuning is not None
    if tuned is None:
        return "it was given no tuned values (`run --tuned` takes them from its tuning record)"
    path = Path(tuned.record)
    try:
        record = json.loads(path.read_text())
        made_with = record["budget"]
        chosen = record["chosen"]["values"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"its tuned values come from no readable tuning record ({tuned.record or 'none named'})"
    (spec,) = tuning_specs(suite, [key])
    budget = {"trials": suite.tuning.trials, "T": spec.T, "seed": spec.seed, "budget": spec.budget}
    if (record.get("suite"), record.get("entry")) != (suite.name, key) or made_with != budget:
        return f"its tuning record {path} was made with {made_with}, not the suite's tuning budget {budget}"
    if chosen != tuned.values or tuned.trials != suite.tuning.trials:
        return f"its tuned values are not the ones its tuning record {path} chose"
    return None


def refuse_untuned_plugin_entries(
    suite: Suite, entries: list[str] | None = None, out_dir: str | Path = "results"
) -> None:
    """A plugin's entry (``suite_entries``) in a tuned track, such as the controlled track, where every
    built-in entry was tuned with the suite's budget, runs only with a tuning record made with that budget
    (``tune --plugin``, then ``run --tuned``); otherwise it would be ranked untuned against tuned baselines.
    ``entries``: the selected ones (default: all)."""
    if suite.tuning is None:
        return
    for key in suite.plugin_entries:
        entry = suite.algorithms[key]
        if (entries is not None and key not in entries) or entry.track not in suite.tuning.tracks:
            continue
        problem = _tuning_problem(suite, key, entry.tuned)
        if problem is None:
            continue
        plugin = _plugin_file(entry.algorithm or key)
        common = f"--suite {suite.name} --plugin {plugin} --algorithms {key} --out {out_dir}"
        raise SnnbenchError(
            f"{key}: a plugin's entry in the {entry.track} track of {suite.name} runs only tuned with the "
            f"suite's tuning budget ({suite.tuning.trials} trials on validation), as every entry there is, "
            f"and {problem}; make it with `snnbench tune {common}`, then `snnbench run {common} --tuned`"
        )
