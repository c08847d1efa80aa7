"""Run a suite: expand the grid, skip runs that have a record, train/evaluate the rest, write records.

:func:`run_one` owns everything an algorithm should not: seeding, device, data order, the epoch loop,
checkpoints (a killed run resumes from its last checkpointed epoch with identical numbers), divergence
detection, timing, memory and the atomic record.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import math
import os
import random
import time
import traceback
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnbench import events as ev
from snnbench.algorithms import Algorithm, RunContext, TrainState, algorithms
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo, LoadedDataset, Split, data_root, datasets
from snnbench.data.encoding import encodings
from snnbench.environment import environment, resolve_device
from snnbench.errors import OutputError
from snnbench.metrics import (
    OperationCounter,
    PeakMemory,
    connection_sparsity,
    footprint_bytes,
    parameter_count,
)
from snnbench.provenance import source_sha256
from snnbench.records import RecordStore, RunRecord, atomic_torch_save
from snnbench.suite import RunSpec, Validation
from snnbench.ties import PROTOCOL, TieTop1, tie_aware_top1

EVAL_SEED_OFFSET = 1_000_003  # evaluation noise (rate coding) never consumes the training generator
# A mean epoch loss above this has exploded: cross-entropy starts near ln C and spike-count losses are
# bounded by C·T²/2 (the largest in the committed records: ST-RSBP, 211). lr 1e6 gives 1e8 and more.
EXPLODED_LOSS = 1e6
LOSS_GROWTH = 1e3
# A bounded loss (cross-entropy saturates near ln C once the outputs blow up) never explodes: such a run is
# diverged when it ends at chance on validation and its last epoch did not bring the loss below the lowest
# earlier epoch's by this fraction (:func:`stalled`). 0: any fall keeps the run ok (bptt at its paper lr on
# the tests' 3-epoch digits budget falls 0.003 % an epoch, at chance, and is learning); a dead or saturated
# network repeats its loss exactly (ST-RSBP's committed digits rows: the same loss for 40 epochs).
STALL_TOLERANCE = 0.0
STALL_MIN_EPOCHS = 3  # fewer epochs are too little evidence that a run cannot learn (a 2-epoch smoke run)
INPUT_CHECK_CHUNK = 4096  # samples normalised at a time by the non-finite input check


class InputDataError(RuntimeError):
    """The run's data cannot be trained on (NaN or infinite inputs): the run is ``failed`` with one line."""


CHECKPOINT_EVERY_ENV = "SNNBENCH_CHECKPOINT_EVERY_S"
CHECKPOINT_EVERY_S = 30.0


def checkpoint_interval() -> float:
    """Seconds of training between checkpoints (``$SNNBENCH_CHECKPOINT_EVERY_S``, default 30): a run
    checkpoints after the first epoch that ends at least this long after its last checkpoint (or its
    start), so a killed run loses at most this long plus one epoch. Every epoch of a long run is
    checkpointed; a run of many short epochs is not checkpointed after each, whose writes cost it more than
    a restart would (digits: 39 checkpoints of ~4 ms in a 1.2 s training)."""
    return float(os.environ.get(CHECKPOINT_EVERY_ENV, CHECKPOINT_EVERY_S))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and make CPU kernels deterministic. Deterministic mode also fills
    every new tensor with NaN (``torch.utils.deterministic.fill_uninitialized_memory``), which only makes a
    read of uninitialised memory visible, at the cost of a memory pass over every operation's output (a
    memory-bound 4 M-element multiply 1.59 → 1.84 ms here, one thread): off, with the deterministic
    kernels kept."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every generator's state in types ``torch.load(weights_only=True)`` reads (NumPy's key as a list)."""
    kind, key, position, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, key.tolist(), position, has_gauss, gauss),
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    random.setstate(state["python"])
    kind, key, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(key, dtype=np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@functools.lru_cache(maxsize=4)
def _load_dataset(name: str, options_json: str, root: str, T: int) -> LoadedDataset:
    import json

    dataset = datasets.get(name)()
    options = dataset.Options.model_validate(json.loads(options_json))
    return dataset.load(options, Path(root), T)


def load_data(spec: RunSpec, root: Path) -> LoadedDataset:
    """The run's dataset (static sets are shared by every T in this process)."""
    import json

    dataset_cls = datasets.get(spec.dataset)
    options = dataset_cls.Options.model_validate(spec.dataset_options)
    T_key = spec.T if dataset_cls().info(options).kind == "events" else 0
    return _load_dataset(spec.dataset, json.dumps(spec.dataset_options, sort_keys=True), str(root), T_key)


def data_info(spec: RunSpec, data: LoadedDataset) -> DatasetInfo:
    """The dataset's facts as the method sees them: the entry's own normalisation statistics replace the
    dataset's published ones when the suite gives them (``preprocess``, as the official code fixes them)."""
    if spec.preprocess is None:
        return data.info
    return dataclasses.replace(
        data.info, mean=tuple(spec.preprocess["mean"]), std=tuple(spec.preprocess["std"])
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def divergence(loss: float, earlier: list[float], net: torch.nn.Module) -> str | None:
    """Why an epoch's training diverged, or None. Diverged: a non-finite loss or weight; a mean loss above
    :data:`EXPLODED_LOSS`; or one :data:`LOSS_GROWTH` times the lowest of the earlier epochs."""
    if not math.isfinite(loss) or not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
        return f"non-finite loss or weights (loss={loss})"
    if loss > EXPLODED_LOSS:
        return f"exploding loss {loss:.3g} > {EXPLODED_LOSS:g}"
    if earlier and loss > LOSS_GROWTH * min(earlier):
        return f"exploding loss {loss:.3g} > {LOSS_GROWTH:g} × the lowest earlier epoch's {min(earlier):.3g}"
    return None


def stalled(history: list[dict[str, Any]], num_classes: int, val_size: int) -> str | None:
    """Why a finished training diverged although its loss stayed bounded, or None. Diverged: the last
    epoch's validation top-1 is at chance (:func:`snnbench.leaderboard.chance_bound` of the validation
    split) AND its loss is at least ``(1 − STALL_TOLERANCE)`` × the lowest loss of the earlier epochs (the
    loss did not fall in the end: flat, or back up after a blow-up). Needs a validation split and
    ``STALL_MIN_EPOCHS`` epochs; a run at chance whose loss still falls is left ``ok`` (the leaderboard
    lists it apart, at chance)."""
    from snnbench.leaderboard import chance_bound

    losses = [h.get("loss") for h in history]
    last_val = history[-1].get("val_top1") if history else None
    if (
        val_size < 1
        or num_classes < 2
        or len(losses) < STALL_MIN_EPOCHS
        or None in losses
        or last_val is None
    ):
        return None
    bound = chance_bound(num_classes, val_size)
    lowest = min(losses[:-1])
    if last_val <= bound and losses[-1] >= (1.0 - STALL_TOLERANCE) * lowest:
        return (
            f"validation top-1 {last_val:.2f} % at chance (≤ {bound:.2f} %) and the loss did not fall "
            f"(last epoch {losses[-1]:.6g}, the lowest earlier {lowest:.6g})"
        )
    return None


def non_finite_inputs(splits: dict[str, Split], info: DatasetInfo, normalize: bool) -> str | None:
    """Which split holds NaN or infinite inputs, as the method gets them (after the entry's ``preprocess``
    normalisation when ``normalize``), or None. One pass over the data, a chunk at a time."""
    for name, split in splits.items():
        if not split.x.is_floating_point():  # event counts (int16) are finite
            continue
        bad = 0
        for start in range(0, len(split), INPUT_CHECK_CHUNK):
            chunk = split.x[start : start + INPUT_CHECK_CHUNK]
            chunk = info.normalize(chunk) if normalize else chunk
            bad += int((~torch.isfinite(chunk)).sum())
        if bad:
            after = " after the entry's preprocess normalisation" if normalize else ""
            return f"the {name} split holds {bad:,} non-finite input values (NaN or ±inf){after}"
    return None


def _load_saved(path: Path, device: torch.device) -> dict[str, Any] | None:
    """A checkpoint or shared training under the output folder, loaded without running code from it
    (``weights_only``); None when absent, or unreadable (then ignored with a warning: the run trains)."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign: whatever torch.load raises
        warnings.warn(f"{path}: ignored, not a loadable snnbench checkpoint ({exc})", stacklevel=2)
        return None
    return saved if isinstance(saved, dict) else None


def checkpoint_problem(checkpoint: dict[str, Any], spec: RunSpec, source: str) -> str | None:
    """Why ``checkpoint`` cannot resume ``spec``, or None. A checkpoint names the code, run, spec hash, seed
    and epoch it was written at, and its history must hold exactly that many epochs: another run's
    checkpoint at this run's path (seed 1's at seed 0's), a relabelled epoch (5 trained, labelled 40), or
    one made by other code of the method is refused. The fields are not keyed: a forger who rewrites all of
    them consistently is not caught here (``snnbench reproduce`` retrains and is the check of truth)."""
    if checkpoint.get("source_sha256") != source:
        return "written by another version of the method's code"
    if checkpoint.get("metrics_protocol") != PROTOCOL:  # its history's validation top-1s: another tie rule
        return (
            f"written before the tie rule {PROTOCOL} (its validation figures gave a tie to the lowest index)"
        )
    for key, expected in (("run_id", spec.run_id), ("spec_hash", spec.spec_hash), ("seed", spec.seed)):
        if checkpoint.get(key) != expected:
            return f"{key} {str(checkpoint.get(key))[:80]!r} is not this run's {expected!r}"
    epoch, history = checkpoint.get("epoch"), checkpoint.get("history")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 < epoch < spec.epochs:
        return f"epoch {str(epoch)[:80]!r} is not one of this run's epochs 1..{spec.epochs - 1}"
    if not isinstance(history, list) or [
        row.get("epoch") if isinstance(row, dict) else None for row in history
    ] != list(range(1, epoch + 1)):
        return f"its history does not hold epochs 1..{epoch}: relabelled"
    best = checkpoint.get("best")
    if best is not None and not (isinstance(best, dict) and 0 < best.get("epoch", 0) <= epoch):
        return f"its validation-selected epoch is not one of epochs 1..{epoch}"
    return None


def scored(algorithm: Algorithm, net: torch.nn.Module, split: Any, ctx: RunContext) -> tuple[TieTop1, Any]:
    """Evaluate ``net`` on ``split`` and score it by the common tie rule
    (:func:`snnbench.ties.tie_aware_top1`: expected top-1 under uniform random tie-breaking, the tie share
    and the method's own argmax read-out); also returns the :class:`~snnbench.algorithms.Evaluation`."""
    evaluation = algorithm.evaluate(net, split, ctx)
    return tie_aware_top1(evaluation.logits, evaluation.labels), evaluation


def run_one(
    spec: RunSpec,
    store: RecordStore,
    *,
    device: str = "auto",
    data_dir: str | Path | None = None,
    on_event: ev.EventSink = ev.ignore,
    index: int = 1,
    total: int = 1,
    final_test: bool = True,
    save_model: bool = False,
) -> RunRecord:
    """Train and evaluate one spec and save its record; a crash inside the method gives a ``failed``
    record. ``final_test=False`` (tuning trials) never reads the test set: the record then holds validation
    figures only. ``save_model``: also keep the final network's state dict (see
    :meth:`RecordStore.model_path`)."""
    started = _now()
    torch_device = resolve_device(device)
    algorithm_cls = algorithms.get(spec.algorithm)
    base = _record_base(spec, torch_device, started)
    try:
        outcome = _train_and_evaluate(
            spec, store, algorithm_cls, torch_device, data_dir, on_event, index, total, final_test, save_model
        )
    except (KeyboardInterrupt, OutputError):  # a full disk is not the method's failure
        raise
    except InputDataError as exc:  # the data's fault, not the method's: one line, no traceback
        record = RunRecord(**base, status="failed", error=f"{type(exc).__name__}: {exc}", finished_at=_now())
    except Exception as exc:  # the method crashed: record it, keep the suite going
        record = RunRecord(
            **base,
            status="failed",
            error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}",
            finished_at=_now(),
        )
    else:
        record = RunRecord(**base, **outcome, finished_at=_now())
    store.save(record)
    store.checkpoint_path(spec.run_id).unlink(missing_ok=True)
    on_event(ev.RunFinished(spec, record))
    return record


def record_failure(
    spec: RunSpec, store: RecordStore, error: str, *, device: str, started_at: str
) -> RunRecord:
    """Save a ``failed`` record for a run that died with the process training it (written by the process
    that saw it die: an executor's parent). Its checkpoint is kept: the next ``run`` resumes from it."""
    base = _record_base(spec, resolve_device(device), started_at)
    record = RunRecord(**base, status="failed", error=error, finished_at=_now())
    store.save(record)
    return record


def _record_base(spec: RunSpec, torch_device: torch.device, started: str) -> dict[str, Any]:
    """The fields every record of ``spec`` has, whatever its outcome."""
    algorithm_cls = algorithms.get(spec.algorithm)
    return {
        "run_id": spec.run_id,
        "suite": spec.suite,
        "suite_version": spec.suite_version,
        "entry": spec.entry,
        "algorithm": spec.algorithm,
        "algorithm_version": algorithm_cls.version,
        "algorithm_source_sha256": source_sha256(algorithm_cls),
        "dataset": spec.dataset,
        "T": spec.T,
        "seed": spec.seed,
        "budget": spec.budget,
        "spec": spec.model_dump(mode="json"),
        "spec_hash": spec.spec_hash,
        "environment": environment(torch_device),
        "started_at": started,
        "metrics_protocol": dict(PROTOCOL),  # every accuracy: snnbench.ties.tie_aware_top1
    }


def training_batches(train, batch_size: int, generator, device, augment):
    """One epoch's shuffled training batches, without a last batch of a single sample: batch norm cannot
    normalise one sample in training (torch raises), and carving the validation split can leave such a
    remainder where the official training set had none (MNIST: 54,001 samples, ≡ 1 mod 8, 10, 16, 50, 100).
    Each epoch drops whichever sample the shuffle puts last; every method of a suite gets the same rule."""
    batches = train.batches(batch_size, shuffle=True, generator=generator, device=device, transform=augment)
    if len(train) > 1 and len(train) % batch_size == 1:
        return itertools.islice(batches, len(train) // batch_size)
    return batches


def _train_and_evaluate(
    spec: RunSpec,
    store: RecordStore,
    algorithm_cls: type[Algorithm],
    device: torch.device,
    data_dir: str | Path | None,
    on_event: ev.EventSink,
    index: int,
    total: int,
    final_test: bool,
    save_model: bool,
) -> dict[str, Any]:
    data = load_data(spec, data_root(data_dir))
    validation = Validation.model_validate(spec.validation)
    train, val, val_provenance = data.train.take(spec.train_subset).carve_validation(
        validation.fraction, validation.seed
    )
    test = data.test.take(spec.test_subset)  # touched once, by the final evaluation(s) below
    select = validation.select and spec.training_depends_on_T
    info = data_info(spec, data)
    splits = {"training": train, "validation": val, "test": test}
    if (problem := non_finite_inputs(splits, info, spec.preprocess is not None)) is not None:
        raise InputDataError(problem)

    seed_everything(spec.seed)
    algorithm = algorithm_cls(
        algorithm_cls.Config.model_validate(spec.hparams),
        resolve_architecture(spec.arch),
        info,
    )
    net = algorithm.build(spec.T).to(device)
    generator = torch.Generator().manual_seed(spec.seed)
    encode = encodings.get(spec.encoding)
    ctx = RunContext(
        T=spec.T,
        device=device,
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        eval_batch_size=spec.eval_batch_size,
        encoding=spec.encoding,
        generator=generator,
        encode_fn=encode,
    )

    def evaluation_context(salt: int) -> RunContext:
        eval_ctx = copy.copy(ctx)
        eval_ctx.generator = torch.Generator().manual_seed(spec.seed + EVAL_SEED_OFFSET + salt)
        return eval_ctx

    history: list[dict[str, Any]] = []
    status, error = "ok", None
    start_epoch, train_seconds, peak_mib = 0, 0.0, 0.0
    best: dict[str, Any] | None = None  # the validation-selected epoch: {"epoch", "val_top1", "net"}
    shared_with: str | None = None
    trained_path = store.trained_path(spec.training_key)
    source = source_sha256(algorithm_cls)
    shared = _load_saved(trained_path, device) if not spec.training_depends_on_T else None
    if shared is not None and (
        shared.get("source_sha256") != source or shared.get("metrics_protocol") != PROTOCOL
    ):
        shared = None  # trained by another version of the method's code, or scored by another tie rule
    elif shared is not None and len(shared.get("history") or []) != spec.epochs:
        warnings.warn(
            f"{trained_path}: refused (does not hold {spec.epochs} epochs); trained again", stacklevel=2
        )
        shared = None

    if shared is not None:
        net.load_state_dict(shared["net"])
        history, train_seconds, peak_mib = shared["history"], shared["train_seconds"], shared["peak_mib"]
        shared_with = shared["run_id"]
        on_event(ev.RunStarted(spec, index, total, resumed_from=spec.epochs))
    else:
        state: TrainState = algorithm.configure(net, ctx)
        checkpoint_path = store.checkpoint_path(spec.run_id)
        checkpoint = _load_saved(checkpoint_path, device)
        problem = checkpoint_problem(checkpoint, spec, source) if checkpoint is not None else None
        if problem:
            warnings.warn(
                f"{checkpoint_path}: refused ({problem}); the run restarts from scratch", stacklevel=2
            )
        elif checkpoint is not None:
            net.load_state_dict(checkpoint["net"])
            state.load_state_dict(checkpoint["state"])
            _set_rng_state(checkpoint["rng"], generator)
            start_epoch, history = checkpoint["epoch"], checkpoint["history"]
            train_seconds, peak_mib = checkpoint["train_seconds"], checkpoint["peak_mib"]
            best = checkpoint.get("best")
        on_event(ev.RunStarted(spec, index, total, resumed_from=start_epoch))
        every, last_checkpoint = checkpoint_interval(), time.monotonic()
        for epoch in range(start_epoch, spec.epochs):
            ctx.epoch = epoch
            batches = training_batches(train, spec.batch_size, generator, device, data.augment)
            tick = time.perf_counter()
            with PeakMemory(device) as memory:
                stats = algorithm.train_epoch(net, state, batches, ctx)
            seconds = time.perf_counter() - tick
            train_seconds += seconds
            peak_mib = max(peak_mib, memory.mib)
            loss = float(stats["loss"])
            diverged = divergence(loss, [h["loss"] for h in history], net)
            if diverged:
                status, error = "diverged", f"epoch {epoch + 1}: {diverged}"
                history.append({"epoch": epoch + 1, "loss": None, "seconds": seconds})
                break
            val_score = scored(algorithm, net, val, evaluation_context(epoch))[0]
            val_top1 = val_score.expected_top1  # the common tie rule also selects the epoch
            row = {"epoch": epoch + 1, "loss": loss, "val_top1": val_top1, "seconds": seconds}
            row["val_tie_fraction"] = val_score.tie_fraction
            row.update({k: float(v) for k, v in stats.items() if k != "loss"})
            history.append(row)
            if select and (best is None or val_top1 > best["val_top1"]):
                best = {"epoch": epoch + 1, "val_top1": val_top1, "net": copy.deepcopy(net.state_dict())}
            on_event(
                ev.EpochEnd(spec, epoch + 1, spec.epochs, loss, stats.get("train_top1"), val_top1, seconds)
            )
            if epoch + 1 < spec.epochs and time.monotonic() - last_checkpoint >= every:
                last_checkpoint = time.monotonic()
                atomic_torch_save(
                    checkpoint_path,
                    {
                        "epoch": epoch + 1,
                        "net": net.state_dict(),
                        "state": state.state_dict(),
                        "rng": _rng_state(generator),
                        "history": history,
                        "train_seconds": train_seconds,
                        "peak_mib": peak_mib,
                        "source_sha256": source,
                        "run_id": spec.run_id,
                        "spec_hash": spec.spec_hash,
                        "seed": spec.seed,
                        "best": best,
                        "metrics_protocol": PROTOCOL,
                    },
                )
        if status == "ok" and len(history) != spec.epochs:  # an ok record trained every epoch it claims
            raise RuntimeError(f"trained {len(history)} epochs of the spec's {spec.epochs}")
        if status == "ok" and (stuck := stalled(history, data.info.num_classes, len(val))) is not None:
            status, error = "diverged", f"epoch {len(history)}: {stuck}"
        if status == "ok":
            algorithm.finalize(net, train, ctx)
            if not spec.training_depends_on_T:
                atomic_torch_save(
                    trained_path,
                    {
                        "net": net.state_dict(),
                        "history": history,
                        "train_seconds": train_seconds,
                        "peak_mib": peak_mib,
                        "source_sha256": source,
                        "run_id": spec.run_id,
                        "metrics_protocol": PROTOCOL,
                    },
                )

    metrics: dict[str, Any] = {
        "params": parameter_count(net),
        "model_bytes": footprint_bytes(net),
        "train_time_s": train_seconds,
        "train_samples_per_s": len(train) * len(history) / train_seconds if train_seconds > 0 else None,
        "peak_train_memory_mb": peak_mib,
        "epochs_completed": len([h for h in history if h.get("loss") is not None]),
        "train_size": len(train),
        "val_size": len(val),
        "test_size": len(test),
    }
    if status == "ok" and final_test:
        tick = time.perf_counter()
        score, evaluation = scored(algorithm, net, test, evaluation_context(-1))
        metrics["inference_ms_per_sample"] = 1000.0 * (time.perf_counter() - tick) / len(test)
        metrics.update(
            evaluation.extra
        )  # the method's extras first: the runner's tie figures are the ones kept
        metrics["top1"] = score.expected_top1
        metrics["top1_official_ties"] = score.official_top1
        metrics["tie_fraction"] = score.tie_fraction
    if status == "ok":
        # the final network at this T (after finalize: the converted SNN, not the ANN of the history)
        val_score = scored(algorithm, net, val, evaluation_context(-3))[0]
        metrics["val_top1"] = val_score.expected_top1
        metrics["val_top1_official_ties"] = val_score.official_top1
        metrics["val_tie_fraction"] = val_score.tie_fraction
        if best is not None and final_test:
            selected = copy.deepcopy(net)
            selected.load_state_dict(best["net"])
            algorithm.finalize(selected, train, ctx)
            chosen = scored(algorithm, selected, test, evaluation_context(-1))[0]
            metrics["top1_val_selected"] = chosen.expected_top1
            metrics["top1_val_selected_official_ties"] = chosen.official_top1
            metrics["val_selected_tie_fraction"] = chosen.tie_fraction
            metrics["val_selected_epoch"] = best["epoch"]
        metrics.update(count_operations(algorithm, net, val, evaluation_context(-2), spec))
        metrics["connection_sparsity"] = connection_sparsity(net)
    model_sha256 = None
    if save_model and status == "ok":  # tensors only: loadable with torch.load(..., weights_only=True)
        model_sha256 = atomic_torch_save(store.model_path(spec.run_id), net.state_dict())
    return {
        "status": status,
        "error": error,
        "metrics": metrics,
        "history": history,
        "dataset_provenance": {**data.provenance, "validation": val_provenance},
        "resumed_from_epoch": start_epoch,
        "training_shared_with": shared_with,
        "model_sha256": model_sha256,
    }


def count_operations(
    algorithm: Algorithm, net: torch.nn.Module, split: Any, ctx: RunContext, spec: RunSpec
) -> dict[str, Any]:
    """Spikes and synaptic operations of one inference pass over ``split`` (the validation split: the test
    set is touched only by the final evaluation; hooks only here)."""
    net.eval()
    with OperationCounter(net) as counter, torch.no_grad():
        for x, _ in split.batches(spec.eval_batch_size, shuffle=False, device=ctx.device):
            algorithm.predict(net, x, ctx)
    return counter.summary(len(split), **spec.energy)  # the suite's constants (metrics' defaults if none)
