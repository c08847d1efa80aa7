"""How long a grid would take, before training it (``snnbench run --dry-run``).

Each entry × T is timed on this device for a few training batches and one evaluation batch, then scaled
to the run: ``epochs × ⌈train/batch⌉`` training batches and ``(epochs + 2) × ⌈test/eval batch⌉``
evaluation batches (the runner tests after every epoch, then once for the record and once for the
operation count). A finished record of the same entry, T and budget (any seed) gives its measured
wall time instead. Data that is not on disk is replaced by synthetic input of the dataset's shape
(:meth:`~snnbench.data.Dataset.info` needs no files) and sizes; the output says so. Not counted: data
loading, kernel compilation, and second phases such as conversion's calibration.
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
from snnbench.suite import Overrides, RunSpec, Suite, expand, load_suite

PRINT_BEFORE_RUN_S = 180.0  # ``run`` prints the estimate when the grid needs longer than this
PROBE_SAMPLES = 2  # large batches are timed on this many samples and scaled linearly
QUICK_PROBE_S = 0.05  # a probe quicker than this is repeated on the whole batch


@dataclass(frozen=True)
class RunEstimate:
    """One run's expected wall time and where the figure comes from."""

    spec: RunSpec
    seconds: float
    source: str  # "record <run_id>", "timed", "timed (training shared)", "done"


@dataclass
class GridEstimate:
    """Every run of a grid with its estimate, the total and the warnings to show."""

    suite: Suite
    device: str
    runs: list[RunEstimate]
    synthetic_shape: tuple[int, ...] | None = None  # set when data was not on disk
    warnings: list[str] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        """Seconds for the whole grid, run one after another."""
        return sum(r.seconds for r in self.runs)


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.4 h`` or ``2.1 d``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def estimate_suite(
    ref: str | Path | Suite,
    overrides: Overrides | None = None,
    *,
    out_dir: str | Path = "results",
    device: str = "auto",
    resume: bool = True,
    data_dir: str | Path | None = None,
    timed_batches: int = 1,
    synthetic: bool = True,
) -> GridEstimate:
    """Estimate every run of the grid ``run_suite`` would expand, without writing anything.

    ``synthetic=False``: an empty estimate when the data is not on disk (``run`` then stops on the missing
    data itself, before any timing)."""
    suite = ref if isinstance(ref, Suite) else load_suite(ref)
    specs = expand(suite, overrides)
    torch_device = resolve_device(device)
    store = RecordStore(out_dir, suite.name)
    records = [r for r in store.all() if r.status == "ok"]
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
    timings: dict[tuple[str, int], tuple[float, float, int, int]] = {}
    trained: set[str] = set()
    for spec in specs:
        own = store.load(spec.run_id) if resume else None
        if own is not None and own.status in ("ok", "diverged"):  # run_suite skips these
            grid.runs.append(RunEstimate(spec, 0.0, "done"))
            continue
        like = next((r for r in records if _same_cell(r, spec)), None)
        if like is not None:
            grid.runs.append(RunEstimate(spec, _wall_seconds(like), f"record {like.run_id}"))
            continue
        key = (spec.entry, spec.T)
        if key not in timings:
            train, test, info, sizes = _data(spec, on_disk, root, grid)
            timings[key] = (*_time_batches(spec, train, test, info, torch_device, timed_batches), *sizes)
        train_batch_s, eval_batch_s, n_train, n_test = timings[key]
        evaluation = (spec.epochs + 2) * math.ceil(n_test / spec.eval_batch_size) * eval_batch_s
        training = spec.epochs * math.ceil(n_train / spec.batch_size) * train_batch_s
        shared = not algorithms.get(spec.algorithm).training_depends_on_T and spec.training_key in trained
        trained.add(spec.training_key)
        source = "timed (training shared)" if shared else "timed"
        grid.runs.append(RunEstimate(spec, evaluation + (0.0 if shared else training), source))
    return grid


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
) -> tuple[Split, Split, DatasetInfo, tuple[int, int]]:
    """Training and test samples to time on and the run's split sizes: the run's own data, or synthetic
    batches of its shape (uniform in [0, 1]; event counts in {0, 1}) and the dataset's published sizes."""
    if on_disk:
        from snnbench.runner import load_data

        data = load_data(spec, root)
        train, test = data.train.take(spec.train_subset), data.test.take(spec.test_subset)
        return train, test, data.info, (len(train), len(test))
    dataset = datasets.get(spec.dataset)()
    info = dataset.info(dataset.Options.model_validate(spec.dataset_options))
    shape = (spec.T, *info.input_shape) if info.kind == "events" else info.input_shape
    grid.synthetic_shape = info.input_shape
    generator = torch.Generator().manual_seed(0)

    def synthetic(n: int) -> Split:
        x = torch.rand(n, *shape, generator=generator)
        x = (x < 0.1).float() if info.kind == "events" else x
        return Split(x, torch.randint(info.num_classes, (n,), generator=generator))

    return synthetic(spec.batch_size), synthetic(spec.eval_batch_size), info, _sizes(spec, info)


def _time_batches(
    spec: RunSpec, train: Split, test: Split, info: DatasetInfo, device: torch.device, timed: int
) -> tuple[float, float]:
    """Seconds per training batch and per evaluation batch (after one untimed warm-up batch each)."""
    from snnbench.runner import seed_everything

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
    x, y = next(train.batches(spec.batch_size, shuffle=False, device=device))
    train_s = _per_batch(
        lambda n: algorithm.train_epoch(net, state, iter([(x[:n], y[:n])]), ctx), len(x), timed
    )
    x_test, _ = next(test.batches(spec.eval_batch_size, shuffle=False, device=device))
    net.eval()
    with torch.no_grad():
        eval_s = _per_batch(lambda n: algorithm.predict(net, x_test[:n], ctx), len(x_test), timed)
    return train_s, eval_s


def _per_batch(step: Callable[[int], object], full: int, timed: int) -> float:
    """Seconds for ``step`` on a batch of ``full`` samples: timed on ``PROBE_SAMPLES`` and scaled linearly,
    or on the whole batch when the probe is quick (fixed costs would dominate the scaling). Python's cyclic
    garbage collector is paused while a probe is timed: a full collection of this process's heap (0.1-0.2 s
    once a grid's probes have run) landing in a 2-sample probe was scaled by the batch size into hours."""
    for n in sorted({min(PROBE_SAMPLES, full), full}):
        step(n)  # warm-up: allocations, kernel selection
        collecting = gc.isenabled()
        gc.disable()
        try:
            tick = time.perf_counter()
            for _ in range(timed):
                step(n)
            seconds = (time.perf_counter() - tick) / timed
        finally:
            if collecting:
                gc.enable()
        if seconds > QUICK_PROBE_S:
            break
    return seconds * full / n


def describe(grid: GridEstimate, workers: int = 1) -> list[str]:
    """The estimate as lines: one per entry × T (runs, time per run, subtotal, source), then the total and,
    for ``workers`` > 1 processes running independent runs side by side, the wall time that spreads over
    them (the total divided among them, at least the longest run)."""
    lines = [f"Estimate for {grid.suite.name} on {grid.device} ({len(grid.runs)} runs):"]
    if grid.synthetic_shape is not None:
        lines.append(
            f"  {grid.suite.dataset} is not on disk: timed on synthetic input of its shape "
            f"{tuple(grid.synthetic_shape)} and its published split sizes"
        )
    cells: dict[tuple[str, int], list[RunEstimate]] = {}
    for run in grid.runs:
        cells.setdefault((run.spec.entry, run.spec.T), []).append(run)
    width = max((len(entry) for entry, _ in cells), default=5)
    for (entry, T), runs in cells.items():
        todo = [r for r in runs if r.source != "done"]
        sources = sorted({r.source.split(" ")[0] for r in todo}) or ["done"]
        per_run = max((r.seconds for r in todo), default=0.0)
        lines.append(
            f"  {entry:<{width}}  T={T:<4} {len(todo)}/{len(runs)} to run  {duration(per_run):>7} each  "
            f"{duration(sum(r.seconds for r in runs)):>7}  ({', '.join(sources)})"
        )
    total = f"Total: {duration(grid.total_s)} run one after another on {grid.device}"
    if workers > 1:
        longest = max((r.seconds for r in grid.runs), default=0.0)  # a run with a record counts 0 s
        total += f"; about {duration(max(grid.total_s / workers, longest))} on {workers} workers"
    lines.append(total + ".")
    return [*lines, *(f"Warning: {w}" for w in grid.warnings)]
