"""Equal tuning budgets: ``snnbench tune`` searches each entry's declared space on the validation split.

Every entry of the tuned tracks gets the same number of trials (the suite's ``tuning.trials``), each a full
training run of the tuning budget at one time step, scored by its final-epoch **validation** top-1 (the
test set is never read: the runner evaluates it only at the end of a run, and trial records keep only
validation figures). The sampler is Optuna's TPE, seeded; trial 0 is the entry's resolved configuration
(the paper's defaults or the suite's values), so tuning can only keep or improve it on validation.

**Which T** (:func:`tuning_specs`): by default every entry is tuned once, at ``tuning.T`` (its first T when
its grid lacks it), and the chosen values apply at every T. With ``tuning.per_T: true`` every entry is tuned
at **every T of its grid**, each T a study of its own with the same trials, its own record and its own
values (``tuned: {by_T: {T: {values, trials, record}}}``, which each T's runs take) — except a method whose
training does not depend on T (``training_depends_on_T = False``: conversion, soft-lif, stdbp with
``deadline: false``; :func:`snnbench.suite.training_depends_on_T`), which trains
the same network at every T and is tuned once, at ``tuning.T`` (or its first T), for every T
(:func:`tuned_per_T`). One rule for every method: per T exactly where the method's training sees T.

The search space of a method: every ``Config`` field that declares ``json_schema_extra={"search": {"low":
…, "high": …, "log": …}}`` (or ``{"choices": [...]}``); a method that declares none has its learning rate
``lr`` searched log-uniformly over [value / 10, value × 10] around the entry's resolved value — one rule for
every method, so that no method gets a wider search than another by accident. An entry may declare its own
``search`` block in the suite file (the same fields as the ``search`` of a ``Config`` field), which replaces
the method's space for that entry and makes ``tune`` search it whatever its track (:func:`tuned_entries`):
how an extra-track set-up's hand-picked values are re-chosen on validation, visibly.

**A choice at the edge of its range widens it** (:func:`at_edge`, :func:`widen`): a numeric value chosen
within a factor 1.5 of ``low`` or ``high`` of a log range, or in the outer 5 % of a linear one, moves that
edge outward — ×10 (÷10 at ``low``) for a log range, by the range's width for a linear one, never past the
bound the ``Config`` field declares — and the entry is searched again over the widened space with the same
number of trials (a second round, once; the chosen values are the best of both rounds). One rule for every
method: an entry gets a second round only because its first choice sat at an edge.

Results: ``OUT/<suite>/tuning/<entry>.json`` (values for every T) or ``<entry>_T<T>.json`` (tuned per T:
values for T only, ``"per_T": true``; :func:`record_name`) lists every trial (round, values, validation top-1,
status, run id), the rounds (space and choice of each), the chosen values, the budget, the code that ran the
trials (``algorithm_version`` and ``algorithm_source_sha256``, the hash of run records:
:func:`snnbench.provenance.source_sha256`), the suite version, the ``spec_hash`` of the entry's resolved spec
at the record's T, seed and budget before tuning (the tuned values excluded) and whether every trial was at
chance (validation top-1 at most :func:`snnbench.leaderboard.chance_bound` of the validation split). A record
whose code or set-up differs from today's is *stale*; one without a code hash (made before hashes were
recorded) is *unverifiable* (:func:`tuning_states`; the leaderboard's ``tuning`` column shows both and
``leaderboard --check`` fails on a stale one; per T, each (entry, T) record has its own state, and a record
for every T where the suite now tunes the entry per T is stale). The trial runs' own records (validation
figures only) are under ``OUT/<suite>/tuning/trials/runs/``. The ``tuned:`` block to paste into the suite
entry is printed; ``run --tuned`` applies the records directly (per T: each T its own record). ``tune
--dry-run`` lists the studies (entry, T, record file) without training.

The trials' training seed should never be an evaluation seed of the suite (the chosen values would be
fitted to one of the seeds they are then scored on): ``tune`` warns where ``tuning.seed`` is one of
``seeds`` and the leaderboard's legend says so (:func:`seed_note`). Such suites are not refused, so that a
committed suite's records stay loadable; a new suite should pick a trial seed outside ``seeds``.

Progress and resume: every finished trial is reported as a :class:`snnbench.events.TrialFinished` event
(the CLI prints one line per trial). A trial whose spec already has an ok or diverged record made by the
method's current source (an interrupted or repeated ``tune``) reuses that record instead of retraining; as
the sampler is seeded and sees the same scores, a resumed study proposes the same trials and ends with the
same record. Trial run ids carry T, so this holds per (entry, T).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snnbench import events as ev
from snnbench.errors import RecordError, SnnbenchError
from snnbench.records import RecordStore, RunRecord, atomic_write_bytes
from snnbench.suite import AlgorithmEntry, Overrides, RunSpec, Search, Suite, Tuned, expand


def tuned_entries(suite: Suite) -> list[str]:
    """The entries ``tune`` searches: those of the tuned tracks and those declaring their own ``search``."""
    tracks = suite.tuning.tracks if suite.tuning is not None else []
    return [k for k, e in suite.algorithms.items() if e.track in tracks or e.search is not None]


def is_tuned(suite: Suite, entry: AlgorithmEntry) -> bool:
    """Whether ``tune`` searches ``entry`` (:func:`tuned_entries`)."""
    return suite.tuning is not None and (entry.track in suite.tuning.tracks or entry.search is not None)


def search_space(
    algorithm_cls: type, resolved: dict[str, Any], own: dict[str, Search] | None = None, name: str = ""
) -> dict[str, Search]:
    """The declared space of ``algorithm_cls`` (module docstring), or the entry's ``own`` space (its
    ``search`` block; every name must be a hyperparameter of the method); ``resolved``: the entry's values."""
    if own is not None:
        unknown = sorted(set(own) - set(algorithm_cls.Config.model_fields))
        if unknown:
            raise SnnbenchError(
                f"search: {unknown[0]!r} is not a hyperparameter of {name or algorithm_cls.__name__} "
                f"({', '.join(algorithm_cls.Config.model_fields)})"
            )
        return dict(own)
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
    """One entry to tune at one T: its spec at that T and the tuning seed, and the output folder."""

    spec: RunSpec
    trials: int
    seed: int
    out_dir: str
    data_dir: str | None
    threads: int | None = None
    per_T: bool = False  # the record holds the values of spec.T only (`<entry>_T<T>.json`)
    search: dict[str, Search] | None = None  # the entry's own space (its `search` block), if it declares one


def tuned_per_T(suite: Suite, algorithm: str, hparams: dict[str, Any] | None = None) -> bool:
    """Whether ``algorithm`` (with the entry's ``hparams``, for a method that decides per configuration:
    :func:`snnbench.suite.training_depends_on_T`) is tuned at every T of its entries' grids in ``suite``
    (``tuning.per_T`` and training that depends on T); otherwise once, at the tuning T, for every T."""
    from snnbench.suite import training_depends_on_T

    return bool(suite.tuning and suite.tuning.per_T and training_depends_on_T(algorithm, hparams))


def record_name(entry: str, T: int | None) -> str:
    """The tuning record's file name: ``<entry>_T<T>.json`` for the values of one T, ``<entry>.json`` for
    values that apply at every T (``T`` None)."""
    return f"{entry}.json" if T is None else f"{entry}_T{T}.json"


def record_label(record: dict[str, Any]) -> str:
    """How progress lines and messages name a tuning record: the entry, and its T for a per-T record."""
    return f"{record['entry']} at T={record['budget']['T']}" if record.get("per_T") else str(record["entry"])


def tuning_specs(
    suite: Suite, entries: list[str] | None = None, timesteps: list[int] | None = None
) -> list[RunSpec]:
    """The specs to tune, with the tuning budget and seed: per tuned entry, one at the tuning T (or the
    entry's first T when its grid lacks it), or with ``tuning.per_T`` one at every T of its grid (only
    those in ``timesteps`` when given) for a method whose training depends on T (:func:`tuned_per_T`)."""
    from snnbench.algorithms import algorithms

    if suite.tuning is None:
        raise SnnbenchError(f"suite {suite.name} declares no tuning budget (a `tuning:` block)")
    tuning = suite.tuning
    keys = tuned_entries(suite)
    if entries is not None:
        unknown = [e for e in entries if e not in keys]
        if unknown:
            raise SnnbenchError(
                f"{unknown[0]!r} is not an entry of the tuned tracks ({', '.join(tuning.tracks)}) of "
                f"{suite.name}, nor declares its own `search`: {', '.join(keys)}"
            )
        keys = [k for k in keys if k in entries]
    # a new search starts from the entry's own values, never from a `tuned` block of an earlier search
    untuned = suite.model_copy(
        update={"algorithms": {k: e.model_copy(update={"tuned": None}) for k, e in suite.algorithms.items()}}
    )
    specs = []
    for key in keys:
        grid = expand(untuned, Overrides(budget=tuning.budget, algorithms=[key], seeds=[tuning.seed]))
        own = suite.algorithms[key].search
        if own is not None:  # a name the method lacks fails here, before any trial trains
            name = f"{grid[0].algorithm} ({key})"
            search_space(algorithms.get(grid[0].algorithm), grid[0].hparams, own, name)
        if tuned_per_T(suite, grid[0].algorithm, grid[0].hparams):
            specs += [s for s in grid if timesteps is None or s.T in timesteps]
        else:
            specs.append({s.T: s for s in grid}.get(tuning.T, grid[0]))
    return specs


def tune_entry(job: TuningJob, on_event: ev.EventSink = ev.ignore) -> dict[str, Any]:
    """Run one entry's study and write its tuning record; returns the record. Subnormal floats are flushed
    to zero meanwhile, as in the runner's workers (:func:`snnbench.environment.flushed_denormals`)."""
    from snnbench.environment import flushed_denormals

    with flushed_denormals():
        return _study(job, on_event)


EDGE_LOG_FACTOR = 1.5  # log range: a value within this factor of low or high is at the edge
EDGE_LINEAR_FRACTION = 0.05  # linear range: a value in this outer fraction of the width is at the edge
WIDEN_LOG_FACTOR = 10.0  # a log range's edge moves out ×10 (÷10 at low); a linear one's by the width


def at_edge(search: Search, value: Any) -> str | None:
    """``"low"`` or ``"high"`` when ``value`` sits at that edge of a numeric range (module docstring), else
    None (choices have no edge)."""
    if search.choices is not None or search.low is None or search.high is None:
        return None
    value, low, high = float(value), float(search.low), float(search.high)
    if search.log:
        if value <= low * EDGE_LOG_FACTOR:
            return "low"
        if value >= high / EDGE_LOG_FACTOR:
            return "high"
        return None
    margin = EDGE_LINEAR_FRACTION * (high - low)
    if value <= low + margin:
        return "low"
    if value >= high - margin:
        return "high"
    return None


def _field_bounds(info: Any) -> tuple[float | None, float | None, bool, bool]:
    """``(lower, upper, lower_strict, upper_strict)`` declared by a pydantic field (ge/gt/le/lt)."""
    lower = upper = None
    lower_strict = upper_strict = False
    for item in getattr(info, "metadata", []):
        for name, strict in (("ge", False), ("gt", True)):
            if getattr(item, name, None) is not None:
                lower, lower_strict = float(getattr(item, name)), strict
        for name, strict in (("le", False), ("lt", True)):
            if getattr(item, name, None) is not None:
                upper, upper_strict = float(getattr(item, name)), strict
    return lower, upper, lower_strict, upper_strict


def widen(search: Search, side: str, info: Any = None) -> Search:
    """``search`` with its ``side`` edge moved out (module docstring), kept inside the bounds the field
    ``info`` declares (a strict bound: halfway between the old edge and it). Unchanged when no room."""
    low, high = float(search.low), float(search.high)  # type: ignore[arg-type]
    lower, upper, lower_strict, upper_strict = _field_bounds(info)
    if side == "low":
        new = low / WIDEN_LOG_FACTOR if search.log else low - (high - low)
        if lower is not None and new <= lower:
            new = (lower + low) / 2 if lower_strict else lower
        update = {"low": min(new, low)}
    else:
        new = high * WIDEN_LOG_FACTOR if search.log else high + (high - low)
        if upper is not None and new >= upper:
            new = (upper + high) / 2 if upper_strict else upper
        update = {"high": max(new, high)}
    if search.integer:
        update = {k: float(math.floor(v) if k == "low" else math.ceil(v)) for k, v in update.items()}
    return search.model_copy(update=update)


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
    """The progress event of one trial of a tuning record (numbered within its round)."""
    round_index = int(trial.get("round", 0))
    return ev.TrialFinished(
        entry,
        trial["number"] - round_index * trials + 1,
        trials,
        trial["values"],
        trial["val_top1"],
        trial["status"],
        trial.get("seconds", 0.0),
        trial.get("reused", False),
        round_index + 1,
    )


# an objective runs one trial: values → {"val_top1": float | None, "status": str, "run_id": str, ...}
Objective = Callable[[dict[str, Any]], dict[str, Any]]


def _best(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The trial of the highest validation top-1 (a failed trial never wins); ties: the earliest."""
    return max(trials, key=lambda t: (t["val_top1"] if t["val_top1"] is not None else -1.0, -t["number"]))


def _round(
    space: dict[str, Search],
    start: dict[str, Any] | None,
    trials: int,
    seed: int,
    objective: Objective,
    first_number: int,
    round_index: int,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """One seeded-TPE round of ``trials`` trials over ``space``; trial 0 is ``start`` when given."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, trials // 3))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    if start is not None:
        study.enqueue_trial(start)
    done: list[dict[str, Any]] = []

    def run(trial: Any) -> float:
        values = {name: _suggest(trial, name, search) for name, search in space.items()}
        outcome = objective(values)
        val = outcome.get("val_top1")
        done.append(
            {"round": round_index, "number": first_number + trial.number, "values": values, **outcome}
        )
        if on_trial is not None:
            on_trial(done[-1])
        return float(val) if val is not None else 0.0  # a diverged or failed trial scores chance or worse

    study.optimize(run, n_trials=trials)
    return done


def search_rounds(
    space: dict[str, Search],
    start: dict[str, Any],
    trials: int,
    seed: int,
    objective: Objective,
    fields: dict[str, Any] | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Search ``space`` with ``trials`` trials (trial 0 = ``start``); when the best trial's value of a
    numeric hyperparameter is at an edge of its range (:func:`at_edge`), widen that edge (:func:`widen`,
    within the bounds of ``fields``: name → pydantic field info) and search the widened space again with
    the same number of trials. Returns ``{"rounds": [{"space", "chosen", "edges"}], "trials": [...],
    "chosen": {...}, "widened": [names]}``; the choice is the best trial of all rounds."""
    rounds: list[dict[str, Any]] = []
    every: list[dict[str, Any]] = []
    current, widened = space, []
    for index in range(2):
        found = _round(
            current, start if index == 0 else None, trials, seed, objective, len(every), index, on_trial
        )
        every += found
        best = _best(found)
        edges = {
            name: side
            for name, search in current.items()
            if (side := at_edge(search, best["values"][name])) is not None
        }
        rounds.append(
            {
                "space": {name: search.model_dump(exclude_none=True) for name, search in current.items()},
                "chosen": {"values": best["values"], "val_top1": best["val_top1"], "trial": best["number"]},
                "edges": edges,
            }
        )
        if index == 1 or not edges:
            break
        wider = {
            name: widen(search, edges[name], (fields or {}).get(name)) if name in edges else search
            for name, search in current.items()
        }
        widened = [name for name in wider if wider[name] != current[name]]
        if not widened:  # every edge already at the field's own bound: nothing to widen
            break
        current = wider
    best = _best(every)
    chosen = {"values": best["values"], "val_top1": best["val_top1"], "trial": best["number"]}
    return {"rounds": rounds, "trials": every, "chosen": chosen, "widened": widened}


def all_at_chance(trials: list[dict[str, Any]], num_classes: int, val_size: int | None = None) -> bool | None:
    """Whether no trial's validation top-1 exceeds the chance bound of the validation split
    (:func:`snnbench.leaderboard.chance_bound`; a failed trial is not above it); ``val_size``: the split's
    size when the trials do not carry it. None when the size is unknown."""
    from snnbench.leaderboard import chance_bound

    sizes = [int(t["val_size"]) for t in trials if t.get("val_size")]
    size = sizes[0] if sizes else val_size
    if not size or num_classes < 1:
        return None
    bound = chance_bound(num_classes, size)
    return all(t["val_top1"] is None or float(t["val_top1"]) <= bound for t in trials)


def _num_classes(dataset: str, options: dict[str, Any]) -> int:
    from snnbench.data import datasets

    cls = datasets.get(dataset)
    return int(cls().info(cls.Options.model_validate(options)).num_classes)


def _study(job: TuningJob, on_event: ev.EventSink = ev.ignore) -> dict[str, Any]:
    from snnbench.algorithms import algorithms
    from snnbench.environment import environment, resolve_device, reuse_freed_cpu_memory
    from snnbench.provenance import source_sha256
    from snnbench.records import RecordStore
    from snnbench.runner import run_one

    reuse_freed_cpu_memory()
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    base = job.spec
    algorithm_cls = algorithms.get(base.algorithm)
    space = search_space(algorithm_cls, base.hparams, job.search, base.algorithm)
    if not space:
        raise SnnbenchError(f"{base.entry}: {base.algorithm} declares no search space and has no lr")
    folder = Path(job.out_dir) / base.suite / "tuning"
    store = RecordStore(folder, "trials")

    def objective(values: dict[str, Any]) -> dict[str, Any]:
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
        return {
            "val_top1": val,
            "status": record.status,
            "run_id": record.run_id,
            "val_size": record.metrics.get("val_size"),
            "seconds": round(seconds, 3),
            "reused": reused,
        }

    start = {name: base.hparams[name] for name in space}  # trial 0: the resolved values
    fields = algorithm_cls.Config.model_fields

    label = f"{base.entry} at T={base.T}" if job.per_T else base.entry

    def report(trial: dict[str, Any]) -> None:  # one progress event per finished trial, as it finishes
        on_event(trial_event(label, job.trials, trial))

    found = search_rounds(space, start, job.trials, job.seed, objective, fields, on_trial=report)
    at_chance = all_at_chance(found["trials"], _num_classes(base.dataset, base.dataset_options))
    record = {
        "suite": base.suite,
        "suite_version": base.suite_version,
        "entry": base.entry,
        "algorithm": base.algorithm,
        "algorithm_version": algorithm_cls.version,
        "algorithm_source_sha256": source_sha256(algorithm_cls),
        "spec_hash": base.spec_hash,  # the entry's resolved spec at the tuning T, seed and budget, untuned
        "objective": "final-epoch validation top-1 (%)",
        "budget": {"trials": job.trials, "T": base.T, "seed": base.seed, "budget": base.budget},
        "per_T": job.per_T,  # the chosen values apply at budget.T only (else: at every T)
        "sampler": f"optuna TPE (seed {job.seed}, {max(1, job.trials // 3)} startup trials), trial 0 = "
        "the entry's resolved values; a choice at the edge of its range widens it for a second round of as "
        "many trials",
        "space": found["rounds"][-1]["space"],
        "rounds": found["rounds"],
        "widened": found["widened"],
        "trials": found["trials"],
        "chosen": found["chosen"],
        "all_trials_at_chance": at_chance,
        "environment": environment(resolve_device("cpu")),
    }
    path = folder / record_name(base.entry, base.T if job.per_T else None)
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
    timesteps: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Tune every entry of the suite's tuned tracks (or ``entries``) with the same number of trials, at
    each T of :func:`tuning_specs` (per-T studies only at ``timesteps`` when given); ``on_event`` gets a
    :class:`~snnbench.events.TrialFinished` per trial
    (with ``jobs`` > 1, a study's trials are reported when it ends)."""
    specs = tuning_specs(suite, entries, timesteps)  # the clear error when the suite has no tuning block
    assert suite.tuning is not None
    count = trials or suite.tuning.trials
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    folder = None if data_dir is None else str(data_dir)
    jobs_list = [
        TuningJob(
            spec,
            count,
            suite.tuning.seed,
            str(out_dir),
            folder,
            threads,
            tuned_per_T(suite, spec.algorithm, spec.hparams),
            suite.algorithms[spec.entry].search,
        )
        for spec in specs
    ]
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
                on_event(trial_event(record_label(record), count, trial))
        return [r for r in records if r is not None]


def tuned_block(record: dict[str, Any], path: Path) -> Tuned:
    """The ``tuned:`` values of one tuning record, with the tuning budget it was made with (trials per round:
    the same for every entry; a widening round, the same rule for all, is in the record, not the count), so
    that entries tuned alike read alike in every table and comparison."""
    return Tuned(values=record["chosen"]["values"], trials=int(record["budget"]["trials"]), record=str(path))


def tuned_blocks(found: list[tuple[str, int | None, Tuned]]) -> dict[str, Tuned]:
    """Entry → its ``tuned:`` block from the values of its tuning records, given as ``(entry, T, values)``
    with ``T`` None for a record that applies at every T: that record's values, or ``by_T`` (each T its own
    record's values) for per-T records."""
    every_T: dict[str, Tuned] = {}
    by_T: dict[str, dict[int, Tuned]] = {}
    for entry, T, block in found:
        if T is None:
            every_T[entry] = block
        else:
            by_T.setdefault(entry, {})[int(T)] = block
    order = list(dict.fromkeys(entry for entry, _, _ in found))  # the entries in the order found
    return {e: every_T[e] if e in every_T else Tuned(by_T=dict(sorted(by_T[e].items()))) for e in order}


def record_T(record: dict[str, Any]) -> int | None:
    """The T a tuning record's values apply at (None: every T)."""
    return int(record["budget"]["T"]) if record.get("per_T") else None


def with_tuning_records(
    suite: Suite, out_dir: str | Path, entries: list[str] | None = None, timesteps: list[int] | None = None
) -> Suite:
    """``suite`` with every tuned-track entry's ``tuned`` block taken from its tuning records
    ``OUT/<suite>/tuning/<entry>.json`` (or, tuned per T, ``<entry>_T<T>.json`` for each T: a ``by_T``
    block) (``run --tuned``); only ``entries`` (default: all) at ``timesteps`` (default: their grids) need a
    record, and a selected one without it is an error naming the command that makes it."""
    folder = Path(out_dir) / suite.name / "tuning"
    selected = [
        key
        for key, entry in suite.algorithms.items()
        if (entries is None or key in entries)  # not run: its record is not needed
        and is_tuned(suite, entry)
    ]
    found = []
    for spec in tuning_specs(suite, selected) if selected else []:
        per_T = tuned_per_T(suite, spec.algorithm, spec.hparams)
        if per_T and timesteps is not None and spec.T not in timesteps:
            continue
        path = folder / record_name(spec.entry, spec.T if per_T else None)
        if not path.is_file():
            raise SnnbenchError(
                f"--tuned: no tuning record {path}; make it with `snnbench tune --suite {suite.name} "
                f"--algorithms {spec.entry} --out {out_dir}`"
            )
        try:
            found.append(
                (spec.entry, spec.T if per_T else None, tuned_block(json.loads(path.read_text()), path))
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RecordError(path, f"not a tuning record ({exc})") from None
    blocks = tuned_blocks(found)
    updated = {
        key: entry.model_copy(update={"tuned": blocks[key]}) if key in blocks else entry
        for key, entry in suite.algorithms.items()
    }
    return suite.model_copy(update={"algorithms": updated})


UNVERIFIABLE = "unverifiable (made before code hashes were recorded)"


@dataclass
class TuningState:
    """What a tuning record is worth today (:func:`tuning_states`)."""

    path: Path
    stale: str | None  # why the record no longer matches today's code or set-up (None: current)
    unverifiable: bool  # no code hash: made before hashes were recorded
    at_chance: bool | None  # every trial at chance (None: unknown)
    widened: list[str]  # hyperparameters whose range a second round widened
    budget: str | None = None  # the trials' budget when it is not the suite's default (a reduced one)

    def labels(self) -> list[str]:
        """Short labels for the leaderboard's ``tuning`` column."""
        labels = ["stale"] if self.stale else (["unverifiable"] if self.unverifiable else [])
        labels += [f"{self.budget} budget"] if self.budget else []
        labels += ["all trials at chance"] if self.at_chance else []
        return labels + ([f"range of {', '.join(self.widened)} widened"] if self.widened else [])


def tuning_states(
    suite: Suite, suite_dir: Path, val_sizes: dict[tuple[str, str], int] | None = None
) -> dict[tuple[str, int | None], TuningState]:
    """(entry, T) → the state of its tuning record under ``suite_dir/tuning/`` (entries of the suite's tuned
    tracks that have one; ``T`` None for ``<entry>.json``, whose values apply at every T; an int for a per-T
    record ``<entry>_T<T>.json``): *stale* when the method's version or code hash (:func:`~snnbench.
    provenance.source_sha256`, as run records) or the entry's untuned spec at the record's T, seed and budget
    (``spec_hash``) differs from today's, or when the suite tunes the entry per T (``tuning.per_T``) and the
    record is an earlier one for every T; *unverifiable* when it has no code hash. ``val_sizes``: (entry,
    budget) → validation size, for records whose trials do not carry it (made before it was recorded)."""
    from snnbench.algorithms import algorithms
    from snnbench.provenance import source_sha256

    folder = suite_dir / "tuning"
    if suite.tuning is None or not folder.is_dir():
        return {}
    keys = tuned_entries(suite)
    classes = _num_classes(suite.dataset, suite.dataset_options)
    states: dict[tuple[str, int | None], TuningState] = {}
    for spec in tuning_specs(suite, keys) if keys else []:
        key, per_T = spec.entry, tuned_per_T(suite, spec.algorithm, spec.hparams)
        T = spec.T if per_T else None
        path = folder / record_name(key, T)
        one_for_every_T = None  # a per-T entry's record from before the suite tuned it per T
        if per_T and not path.is_file():
            path, T = folder / record_name(key, None), None
            one_for_every_T = (
                "the suite now tunes this entry at every T (`tuning.per_T`); this record is one for every T"
            )
        if not path.is_file() or (key, T) in states:
            continue
        try:
            record = json.loads(path.read_text())
            trials = list(record["trials"])
            budget = str(record["budget"]["budget"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RecordError(path, f"not a tuning record ({exc})") from None
        stale = one_for_every_T
        source = record.get("algorithm_source_sha256")
        if source and stale is None:
            algorithm_cls = algorithms.get(record.get("algorithm", key))
            made = (record.get("algorithm_version"), source)
            if made != (algorithm_cls.version, source_sha256(algorithm_cls)):
                stale = "the method's code or version changed since"
            elif record.get("spec_hash") and record["spec_hash"] != spec.spec_hash:
                stale = (
                    f"the entry's set-up (untuned spec at T={spec.T}, tuning seed and budget) changed since"
                )
        at_chance = record.get("all_trials_at_chance")
        if at_chance is None:
            at_chance = all_at_chance(trials, classes, (val_sizes or {}).get((key, budget)))
        reduced = budget if budget != suite.default_budget else None
        widened = list(record.get("widened", []))
        states[(key, T)] = TuningState(path, stale, not source, at_chance, widened, reduced)
    return states


def seed_note(suite: Suite) -> str | None:
    """A warning when the tuning trials' seed is one of the suite's evaluation seeds (module docstring)."""
    if suite.tuning is None or suite.tuning.seed not in suite.seeds:
        return None
    return (
        f"tuning seed = evaluation seed: the trials of {suite.name} train with seed {suite.tuning.seed}, "
        "which is also one of its evaluation seeds, so the tuned values were chosen on that seed's training "
        "run (on validation, never on test); a trial seed outside `seeds` avoids it"
    )


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


def _tuning_problem(
    suite: Suite, key: str, tuned: Tuned | None, timesteps: list[int] | None = None
) -> str | None:
    """Why the ``tuned`` block of entry ``key`` is not a record made with the suite's tuning budget (at each
    T of :func:`tuning_specs`, only ``timesteps`` when given: tuned per T, every T run needs its own
    record's values)."""
    assert suite.tuning is not None
    if tuned is None:
        return "it was given no tuned values (`run --tuned` takes them from its tuning record)"
    for spec in tuning_specs(suite, [key], timesteps):
        block = tuned.at(spec.T) if tuned_per_T(suite, spec.algorithm, spec.hparams) else tuned
        if block is None or block.by_T is not None:
            return f"it was given no tuned values for T={spec.T} (`run --tuned` takes them from its records)"
        path = Path(block.record)
        try:
            record = json.loads(path.read_text())
            made_with = record["budget"]
            chosen = record["chosen"]["values"]
        except (OSError, ValueError, KeyError, TypeError):
            return f"its tuned values come from no readable tuning record ({block.record or 'none named'})"
        budget = {"trials": suite.tuning.trials, "T": spec.T, "seed": spec.seed, "budget": spec.budget}
        if (record.get("suite"), record.get("entry")) != (suite.name, key) or made_with != budget:
            return (
                f"its tuning record {path} was made with {made_with}, not the suite's tuning budget {budget}"
            )
        run = len(record.get("trials") or [])  # every trial run, a widening round's included
        if chosen != block.values or block.trials != made_with["trials"] or run < suite.tuning.trials:
            return f"its tuned values are not the ones its tuning record {path} chose"
    return None


def refuse_untuned_plugin_entries(
    suite: Suite,
    entries: list[str] | None = None,
    out_dir: str | Path = "results",
    timesteps: list[int] | None = None,
) -> None:
    """A plugin's entry (``suite_entries``) in a tuned track, such as the controlled track, where every
    built-in entry was tuned with the suite's budget, runs only with a tuning record made with that budget
    (``tune --plugin``, then ``run --tuned``); otherwise it would be ranked untuned against tuned baselines.
    ``entries``, ``timesteps``: the selected ones (default: all)."""
    if suite.tuning is None:
        return
    for key in suite.plugin_entries:
        entry = suite.algorithms[key]
        if (entries is not None and key not in entries) or not is_tuned(suite, entry):
            continue
        problem = _tuning_problem(suite, key, entry.tuned, timesteps)
        if problem is None:
            continue
        plugin = _plugin_file(entry.algorithm or key)
        common = f"--suite {suite.name} --plugin {plugin} --algorithms {key} --out {out_dir}"
        raise SnnbenchError(
            f"{key}: a plugin's entry in the {entry.track} track of {suite.name} runs only tuned with the "
            f"suite's tuning budget ({suite.tuning.trials} trials on validation), as every entry there is, "
            f"and {problem}; make it with `snnbench tune {common}`, then `snnbench run {common} --tuned`"
        )
