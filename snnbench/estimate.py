"""How long a grid would take, before training it (``snnbench run --dry-run``).

The model. A run costs ``build + epochs × ⌈train/batch⌉ × t_train(T) + n_eval × t_eval(T)`` seconds, where
``train`` is the training split after the validation carve-out and ``n_eval`` counts the evaluation
batches the runner makes: one pass over the validation split after every epoch, then the test split once
for the record (twice with validation-selected epochs), the validation split once for the record and
once for the operation count. A method whose training ignores T (conversion, train-once) pays its
training at the first T of each seed only; the others at that T cost ``build`` and the final passes
("training shared" in the output, and ``describe`` names the T the training is charged to).

``t_train(T)`` and ``t_eval(T)`` are seconds per batch, probed on this device (see :func:`_probe_entry`):

* per batch size: a batch is timed on ``PROBE_SAMPLES`` samples and on a larger probe (the whole batch
  when that is cheap, else ``PROBE_LARGE`` samples) and the cost is taken affine in the sample count,
  ``a + b·n`` (a per-batch overhead plus a per-sample cost), extrapolated to the run's batch size;
* per T: each entry is probed at its smallest and largest T of the grid first, then at the T in between
  while its share of the time budget lasts; a T between probed ones is interpolated linearly (the cost of
  every method here is affine in T: a loop over the T steps), one beyond them is scaled in proportion to
  T; and the per-T figures of an entry are made non-decreasing in T (a later T never estimated cheaper:
  what remains of probe noise after the minimum is taken);
* noise: a probe counts the smaller of its wall and CPU time (the time this process computed, not the
  turns other processes took on the cores), the probes of one point are repeated in interleaved rounds
  (each point once per round, up to ``PROBE_ROUNDS`` rounds) and the minimum is kept, with Python's
  garbage collector paused: a stall of a busy machine or a collection lands in one repetition, not in the
  estimate. The estimate is thus of the runs on this machine when it is not shared;
* time: the probes share ``probe_budget_s`` (15 s for ``--dry-run``, ``QUICK_PROBE_BUDGET_S`` before a
  real run) equally among the entries still to probe; an entry whose budget is spent keeps its warm-up
  timings (an overestimate: first calls pay allocations) and its smallest T only.

A finished record of the same entry, T and budget (any seed) gives its measured wall time instead, unless
``fresh=True``. Data that is not on disk is replaced by synthetic input of the dataset's shape
(:meth:`~snnbench.data.Dataset.info` needs no files) and published sizes; the output says so. Not counted:
data loading, kernel compilation, and second phases such as conversion's calibration.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch

from snnbench.algorithms import RunContext, algorithms
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo, Split, data_root, datasets
from snnbench.data.encoding import encodings
from snnbench.environment import resolve_device
from snnbench.errors import SnnbenchError
from snnbench.records import RecordStore, RunRecord
from snnbench.suite import Overrides, RunSpec, Suite, Validation, expand, load_suite

PRINT_BEFORE_RUN_S = 180.0  # ``run`` prints the estimate when the grid needs longer than this
DRY_RUN_PROBE_BUDGET_S = 15.0  # seconds of probes ``--dry-run`` spends, shared by the entries
QUICK_PROBE_BUDGET_S = 3.0  # before a real run (printed only when long): a coarser, quicker estimate
PROBE_SAMPLES = 2  # the small probe batch
PROBE_LARGE = 8  # the large probe batch when the whole batch is not cheap
CHEAP_BATCH_S = 0.25  # a whole batch estimated under this (from the small probe) is timed whole
PROBE_ROUNDS = 3  # at most this many timed repetitions of each probe point (the minimum is kept)


@dataclass(frozen=True)
class RunEstimate:
    """One run's expected wall time and where the figure comes from."""

    spec: RunSpec
    seconds: float
    source: str  # "record <run_id>", "timed", "timed (training shared)", "done"
    training_s: float = 0.0  # the part of ``seconds`` that trains (shared training: charged here)


@dataclass
class GridEstimate:
    """Every run of a grid with its estimate, the total and the warnings to show."""

    suite: Suite
    device: str
    runs: list[RunEstimate]
    synthetic_shape: tuple[int, ...] | None = None  # set when data was not on disk
    warnings: list[str] = field(default_factory=list)
    probe_seconds: float = 0.0  # wall time the probes took

    @property
    def total_s(self) -> float:
        """Seconds for the whole grid, run one after another."""
        return sum(r.seconds for r in self.runs if not math.isnan(r.seconds))


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.4 h`` or ``2.1 d`` (``?`` when not timed)."""
    if math.isnan(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@dataclass
class EntryCost:
    """One entry's probed costs: seconds to build, and per batch at each probed T."""

    build_s: float
    train: dict[int, float] = field(default_factory=dict)  # T -> seconds per training batch
    eval: dict[int, float] = field(default_factory=dict)  # T -> seconds per evaluation batch

    def scaled_copy(self) -> EntryCost:
        """The costs per step of T (per batch ÷ T), for another entry of the same network: read back at
        any T through :meth:`at`, proportional to T."""
        return EntryCost(
            self.build_s,
            {1: min(s / t for t, s in self.train.items())},
            {1: min(s / t for t, s in self.eval.items())},
        )

    def at(self, T: int, Ts: list[int]) -> tuple[float, float]:
        """Seconds per training and per evaluation batch at ``T``: probed, interpolated, or scaled in
        proportion to T; then the running maximum over ``Ts`` up to ``T`` (non-decreasing in T)."""
        below = [t for t in sorted(set(Ts)) if t <= T] or [T]
        train = max(_in_T(self.train, t) for t in below)
        evaluation = max(_in_T(self.eval, t) for t in below)
        return train, evaluation


def _in_T(probed: dict[int, float], T: int) -> float:
    """Linear interpolation between the nearest probed T; proportional to T beyond them."""
    if T in probed:
        return probed[T]
    lower = [t for t in probed if t < T]
    upper = [t for t in probed if t > T]
    if lower and upper:
        t0, t1 = max(lower), min(upper)
        return probed[t0] + (probed[t1] - probed[t0]) * (T - t0) / (t1 - t0)
    nearest = max(lower) if lower else min(upper)
    return probed[nearest] * T / nearest if lower else probed[nearest]  # below the probes: not cheaper


def estimate_suite(
    ref: str | Path | Suite,
    overrides: Overrides | None = None,
    *,
    out_dir: str | Path = "results",
    device: str = "auto",
    resume: bool = True,
    data_dir: str | Path | None = None,
    synthetic: bool = True,
    fresh: bool = False,
    probe_budget_s: float = DRY_RUN_PROBE_BUDGET_S,
    threads: int | None = None,
) -> GridEstimate:
    """Estimate every run of the grid ``run_suite`` would expand, without writing anything.

    ``synthetic=False``: an empty estimate when the data is not on disk (``run`` then stops on the missing
    data itself, before any timing). ``fresh=True``: probe every run, ignoring finished records (their
    measured times and the runs they mark done). ``threads``: torch threads of each run (the pool executor
    sets one per worker's share of the cores), used by the probes, which also flush subnormal floats as the
    runs do. None (a local run on all cores): the probes use one thread, an upper bound for a run on more
    threads of an idle machine; on a busy one, threads that wait for each other's turn on the cores made a
    two-thread probe 40-300× slower than the run, in wall and in CPU time (OpenMP threads spin)."""
    suite = ref if isinstance(ref, Suite) else load_suite(ref)
    specs = expand(suite, overrides)
    torch_device = resolve_device(device)
    store = RecordStore(out_dir, suite.name)
    records = [] if fresh else [r for r in store.all() if r.status == "ok"]
    grid = GridEstimate(suite, str(torch_device), [])
    gpus = max((s.num_gpus for s in specs), default=0.0)
    if gpus > 0 and torch_device.type != "cuda":
        budget = specs[0].budget
        grid.warnings.append(
            f"budget {budget!r} asks for {gpus:g} GPU per run (num_gpus) but this estimate and the runs "
            f"use {torch_device}: no CUDA device is available here"
        )
    dataset = datasets.get(suite.dataset)()
    root = data_root(data_dir)
    status = dataset.status(root)
    on_disk = status in ("embedded", "present", "extracted") or status.startswith("verified")
    if not on_disk and not synthetic:
        return grid
    plan: list[tuple[RunSpec, RunEstimate | None]] = []
    for spec in specs:
        own = store.load(spec.run_id) if resume and not fresh else None
        if own is not None and own.status in ("ok", "diverged"):  # run_suite skips these
            plan.append((spec, RunEstimate(spec, 0.0, "done")))
            continue
        like = next((r for r in records if _same_cell(r, spec)), None)
        if like is not None:
            plan.append((spec, RunEstimate(spec, _wall_seconds(like), f"record {like.run_id}")))
            continue
        plan.append((spec, None))
    to_probe: dict[str, dict[int, RunSpec]] = {}
    for spec, known in plan:
        if known is None:
            to_probe.setdefault(spec.entry, {}).setdefault(spec.T, spec)
    tick = time.monotonic()
    deadline = tick + probe_budget_s
    costs: dict[str, EntryCost] = {}
    sizes: dict[str, tuple[int, int, int]] = {}
    from snnbench.environment import flushed_denormals

    previous_threads = torch.get_num_threads()
    try:
        with flushed_denormals():
            torch.set_num_threads(threads or 1)
            # one entry of each network first, so that a spent budget leaves every network timed once
            first_of_arch: dict[str, str] = {}
            for entry, by_T in to_probe.items():
                first_of_arch.setdefault(_arch_key(by_T[min(by_T)]), entry)
            order = [*first_of_arch.values(), *(e for e in to_probe if e not in first_of_arch.values())]
            for left, entry in enumerate(order):
                if costs and time.monotonic() >= deadline:
                    break
                share = max(0.0, deadline - time.monotonic()) / (len(order) - left)
                by_T = to_probe[entry]
                costs[entry], sizes[entry] = _probe_entry(by_T, on_disk, root, grid, torch_device, share)
    finally:
        torch.set_num_threads(previous_threads)
    grid.probe_seconds = time.monotonic() - tick
    trained: set[str] = set()
    for spec, known in plan:
        if known is not None:
            grid.runs.append(known)
            continue
        borrowed = ""
        if spec.entry not in costs:  # the budget ran out before this entry: its network's probe, by T
            donor = next(
                (e for e in costs if _arch_key(to_probe[e][min(to_probe[e])]) == _arch_key(spec)), None
            )
            if donor is None:
                grid.runs.append(RunEstimate(spec, math.nan, "not timed"))
                continue
            costs[spec.entry], sizes[spec.entry] = costs[donor].scaled_copy(), sizes[donor]
            borrowed = f" (probe of {donor}, same network)"
        train_batch_s, eval_batch_s = costs[spec.entry].at(spec.T, list(to_probe[spec.entry]))
        trains = spec.training_depends_on_T or spec.training_key not in trained
        trained.add(spec.training_key)
        seconds, training = run_seconds(
            spec, sizes[spec.entry], costs[spec.entry].build_s, train_batch_s, eval_batch_s, trains
        )
        source = ("timed" if trains else "timed (training shared)") + borrowed
        grid.runs.append(RunEstimate(spec, seconds, source, training))
    return grid


def run_seconds(
    spec: RunSpec,
    sizes: tuple[int, int, int],
    build_s: float,
    train_batch_s: float,
    eval_batch_s: float,
    trains: bool,
) -> tuple[float, float]:
    """The model of the module docstring: a run's seconds and the part that trains, from its split sizes
    (training, validation, test), the seconds to build and per training and evaluation batch, and whether it
    trains (False: a method that trains once per seed, at a later T: the final passes only)."""
    n_train, n_val, n_test = sizes
    select = Validation.model_validate(spec.validation).select
    batches = _batches(n_val, spec.eval_batch_size)
    final = 2 * batches + (2 if select and trains else 1) * _batches(n_test, spec.eval_batch_size)
    training = 0.0
    if trains:
        training = spec.epochs * (_batches(n_train, spec.batch_size) * train_batch_s + batches * eval_batch_s)
    return build_s + training + final * eval_batch_s, training


def _arch_key(spec: RunSpec) -> str:
    """Runs with the same network, batch sizes and input cost alike per step (the method aside)."""
    return f"{spec.arch}|{spec.batch_size}|{spec.eval_batch_size}|{spec.encoding}"


def _batches(n: int, batch: int) -> int:
    """Batches of ``batch`` samples in ``n`` (0 for an empty split)."""
    return math.ceil(n / batch) if n > 0 else 0


def _same_cell(record: RunRecord, spec: RunSpec) -> bool:
    return (record.entry, record.T, record.budget) == (spec.entry, spec.T, spec.budget)


def _wall_seconds(record: RunRecord) -> float:
    started, finished = record.started_at, record.finished_at
    if not started or not finished:
        return float(record.metrics.get("train_time_s") or 0.0)
    return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()


def _sizes(spec: RunSpec, info: DatasetInfo) -> tuple[int, int]:
    if info.sizes is None:
        if spec.train_subset is None or spec.test_subset is None:
            raise SnnbenchError(
                f"dataset {spec.dataset!r} is not on disk and its size is unknown: download it "
                f"(snnbench datasets download {spec.dataset}) or give the budget train/test subsets"
            )
        return spec.train_subset, spec.test_subset
    n_train, n_test = info.sizes
    return min(n_train, spec.train_subset or n_train), min(n_test, spec.test_subset or n_test)


def _data(
    spec: RunSpec, on_disk: bool, root: Path, grid: GridEstimate
) -> tuple[Split, Split, DatasetInfo, tuple[int, int, int]]:
    """Training and test samples to time on and the run's training, validation and test sizes: the run's
    own data, or synthetic batches of its shape (uniform in [0, 1]; event counts in {0, 1}) and the
    dataset's published sizes (the validation split carved as ``round(fraction · n)``)."""
    validation = Validation.model_validate(spec.validation)
    if on_disk:
        from snnbench.runner import load_data

        data = load_data(spec, root)
        train, test = data.train.take(spec.train_subset), data.test.take(spec.test_subset)
        n_val = round(validation.fraction * len(train)) if validation.fraction > 0 else 0
        return train, test, data.info, (len(train) - n_val, n_val, len(test))
    dataset = datasets.get(spec.dataset)()
    info = dataset.info(dataset.Options.model_validate(spec.dataset_options))
    shape = (spec.T, *info.input_shape) if info.kind == "events" else info.input_shape
    grid.synthetic_shape = info.input_shape
    generator = torch.Generator().manual_seed(0)

    def synthetic(n: int) -> Split:
        x = torch.rand(n, *shape, generator=generator)
        x = (x < 0.1).float() if info.kind == "events" else x
        return Split(x, torch.randint(info.num_classes, (n,), generator=generator))

    n_train, n_test = _sizes(spec, info)
    n_val = round(validation.fraction * n_train) if validation.fraction > 0 else 0
    sizes = (n_train - n_val, n_val, n_test)
    return synthetic(spec.batch_size), synthetic(spec.eval_batch_size), info, sizes


def _probe_entry(
    by_T: dict[int, RunSpec],
    on_disk: bool,
    root: Path,
    grid: GridEstimate,
    device: torch.device,
    budget_s: float,
) -> tuple[EntryCost, tuple[int, int, int]]:
    """One entry's costs: probed at its smallest and largest T, then the T between while ``budget_s``
    lasts (the smallest T is always probed, however long it takes)."""
    Ts = sorted(by_T)
    order = [Ts[0], *([Ts[-1]] if len(Ts) > 1 else []), *_bisection_order(Ts)]
    deadline = time.monotonic() + budget_s
    cost: EntryCost | None = None
    sizes = (0, 0, 0)
    for T in order:
        if cost is not None and time.monotonic() >= deadline:
            break
        spec = by_T[T]
        loading = time.monotonic()
        train, test, info, sizes = _data(spec, on_disk, root, grid)
        deadline += time.monotonic() - loading  # reading the dataset from disk (once) is not a probe
        # the budget left for this T, shared with the T still to probe (at least the first two)
        left = max(0.0, deadline - time.monotonic()) / max(1, min(2, len(order) - order.index(T)))
        build_s, train_s, eval_s = _time_batches(spec, train, test, info, device, left)
        if cost is None:
            cost = EntryCost(build_s)
        cost.build_s = min(cost.build_s, build_s)  # the first build also pays one-off imports
        cost.train[T], cost.eval[T] = train_s, eval_s
    assert cost is not None
    return cost, sizes


def _bisection_order(Ts: list[int]) -> list[int]:
    """The T strictly between the first and last, widest gap first (each halves the largest gap left)."""
    inner, done, order = Ts[1:-1], [Ts[0], Ts[-1]], []
    while inner:
        best = max(inner, key=lambda t: min(abs(t - d) for d in done))
        order.append(best)
        done.append(best)
        inner.remove(best)
    return order


def _time_batches(
    spec: RunSpec, train: Split, test: Split, info: DatasetInfo, device: torch.device, budget_s: float
) -> tuple[float, float, float]:
    """Seconds to build and configure the network, per training batch and per evaluation batch."""
    from snnbench.runner import seed_everything

    tick = time.perf_counter()
    seed_everything(spec.seed)
    algorithm_cls = algorithms.get(spec.algorithm)
    algorithm = algorithm_cls(
        algorithm_cls.Config.model_validate(spec.hparams), resolve_architecture(spec.arch), info
    )
    net = algorithm.build(spec.T).to(device)
    ctx = RunContext(
        T=spec.T,
        device=device,
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        eval_batch_size=spec.eval_batch_size,
        encoding=spec.encoding,
        generator=torch.Generator().manual_seed(spec.seed),
        encode_fn=encodings.get(spec.encoding),
    )
    state = algorithm.configure(net, ctx)
    build_s = time.perf_counter() - tick
    deadline = time.monotonic() + budget_s
    x, y = next(train.batches(spec.batch_size, shuffle=False, device=device))
    train_s = _per_batch(
        lambda n: algorithm.train_epoch(net, state, iter([(x[:n], y[:n])]), ctx),
        spec.batch_size,
        len(x),
        (deadline + time.monotonic()) / 2,
    )
    x_test, _ = next(test.batches(spec.eval_batch_size, shuffle=False, device=device))
    net.eval()
    with torch.no_grad():
        eval_s = _per_batch(
            lambda n: algorithm.predict(net, x_test[:n], ctx), spec.eval_batch_size, len(x_test), deadline
        )
    return build_s, train_s, eval_s


def _timed(step: Callable[[int], object], n: int) -> float:
    """Seconds of one ``step(n)`` with Python's cyclic garbage collector paused (a full collection of this
    process's heap, 0.1-0.2 s once a grid's probes have run, landing in a 2-sample probe was scaled by the
    batch size into hours); the collector's state is restored, also when the step raises."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        tick, cpu = time.perf_counter(), time.process_time()
        step(n)
        # the smaller of wall and CPU time: on a busy machine the wall clock counts the other processes'
        # turns on the cores (5× on 2 cores at load 10), this process's CPU time does not; on an idle one
        # a multi-threaded step's CPU time exceeds its wall time
        return min(time.perf_counter() - tick, time.process_time() - cpu)
    finally:
        if collecting:
            gc.enable()


def _per_batch(step: Callable[[int], object], full: int, available: int, deadline: float) -> float:
    """Seconds for ``step`` on a batch of ``full`` samples (``available`` of them at hand to time on).

    Two points: ``PROBE_SAMPLES`` samples and a large probe (the whole batch when the small probe says it
    is cheap, else ``PROBE_LARGE``); each is run once first (warm-up: allocations, kernel selection; the
    only call, and the timing, when it alone outlasts the deadline: ``--dry-run`` stays near its budget),
    then timed in interleaved rounds (small, large, small, large, …) until ``PROBE_ROUNDS`` rounds or the
    deadline (at least one round), the minimum of each kept. The cost is
    affine in the sample count through the two points, extrapolated to ``full``."""
    small = min(PROBE_SAMPLES, full, available)
    warm = _warm_up(step, small)
    if time.monotonic() >= deadline:  # the warm-up spent the budget (a large network on a busy machine):
        return warm * full / small  # it is the timing, linear in n (an upper bound); no second slow call
    best = {small: min(warm, _timed(step, small))}
    if time.monotonic() >= deadline:  # one step is all the budget allows: linear in n (an upper bound)
        return best[small] * full / small
    large = min(full, available)
    if best[small] * full / small >= CHEAP_BATCH_S:
        large = min(PROBE_LARGE, full, available)
    if large != small:
        best[large] = _warm_up(step, large)
    for round_ in range(PROBE_ROUNDS):
        if round_ > 0 and time.monotonic() >= deadline:  # one timed round always: a warm-up is no timing
            break
        for n in best:
            best[n] = min(best[n], _timed(step, n))
    if large == small:
        return best[small] * full / small
    per_sample = max(0.0, (best[large] - best[small]) / (large - small))
    overhead = max(0.0, best[small] - per_sample * small)
    return overhead + per_sample * full


def _warm_up(step: Callable[[int], object], n: int) -> float:
    """The first call at a batch size (allocations, kernel selection), timed: an upper bound."""
    return _timed(step, n)


def _source_label(source: str) -> str:
    """A run's source as its cell shows it: ``record``, ``timed`` or ``not timed`` (the details, the record's
    run id or the network probed, go to the cell's note)."""
    return "record" if source.startswith("record ") else source.split(" (")[0]


def describe(grid: GridEstimate, workers: int = 1) -> list[str]:
    """The estimate as lines: the warnings first, then one line per entry × T (runs, time per run,
    subtotal, source), where the training of a method that trains once per seed is charged (to its first
    T, said so), then the total and, for ``workers`` > 1 processes running independent runs side by side,
    the wall time that spreads over them (the total divided among them, at least the longest run)."""
    lines = [f"Warning: {w}" for w in grid.warnings]
    lines.append(f"Estimate for {grid.suite.name} on {grid.device} ({len(grid.runs)} runs):")
    if grid.synthetic_shape is not None:
        lines.append(
            f"  {grid.suite.dataset} is not on disk: timed on synthetic input of its shape "
            f"{tuple(grid.synthetic_shape)} and its published split sizes"
        )
    cells: dict[tuple[str, int], list[RunEstimate]] = {}
    for run in grid.runs:
        cells.setdefault((run.spec.entry, run.spec.T), []).append(run)
    width = max((len(entry) for entry, _ in cells), default=5)
    shared_entries = {r.spec.entry for r in grid.runs if r.source == "timed (training shared)"}
    for (entry, T), runs in cells.items():
        todo = [r for r in runs if r.source != "done"]
        sources = sorted({_source_label(r.source) for r in todo}) or ["done"]
        per_run = max((r.seconds for r in todo), default=0.0)
        note = ""
        if entry in shared_entries:
            charged = [r for r in todo if r.source == "timed" and r.training_s > 0]
            if charged:
                note = f"; includes training {duration(charged[0].training_s)}, shared by its other T"
            elif any(r.source == "timed (training shared)" for r in todo):
                note = "; training shared (charged to the first T)"
        donors = sorted(
            {r.source.split("(probe of ")[1].split(",")[0] for r in todo if "(probe of " in r.source}
        )
        if donors:
            note += f"; scaled from the probe of {', '.join(donors)}, the same network"
        lines.append(
            f"  {entry:<{width}}  T={T:<4} {len(todo)}/{len(runs)} to run  {duration(per_run):>7} each  "
            f"{duration(sum(r.seconds for r in runs)):>7}  ({', '.join(sources)}{note})"
        )
    if shared_entries:
        lines.append(
            f"  {', '.join(sorted(shared_entries))} train once per seed: the training is charged to the "
            "first T of each seed; the other T only convert and evaluate"
        )
    untimed = sorted({r.spec.entry for r in grid.runs if math.isnan(r.seconds)})
    if untimed:
        lines.append(
            f"  not timed (the probe budget ran out; no entry with the same network was timed): "
            f"{', '.join(untimed)}: the total leaves them out"
        )
    total = f"Total: {duration(grid.total_s)} run one after another on {grid.device}"
    if workers > 1:
        longest = max(
            (r.seconds for r in grid.runs if not math.isnan(r.seconds)), default=0.0
        )  # a run with a record counts 0 s
        total += f"; about {duration(max(grid.total_s / workers, longest))} on {workers} workers"
    if grid.probe_seconds >= 0.5:  # "0 s" says nothing
        total += f" (probes took {grid.probe_seconds:.0f} s)"
    lines.append(total + ".")
    return lines
