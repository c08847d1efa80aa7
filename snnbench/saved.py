"""Saved networks: where they are, how they are loaded, how one is got for a run that already has a record,
and how one is evaluated again (``snnbench evaluate``).

A run trained with ``run --save-models`` keeps its final state dict in ``<out>/<suite>/models/<run_id>.pt``
(tensors only, read back with ``torch.load(..., weights_only=True)``) and its sha256 in the record's
``model_sha256``. A run whose record exists without a network (the committed records, or a run made without
the flag) gets one from ``run --save-models`` too: it is retrained in a temporary folder and its network is
kept only when the retrain reproduces the record (:func:`reproduces`: the same test and validation top-1 to
the last bit, every epoch's loss within 1e-4 relative), so that the network is the record's up to float
summation order; the record is not rewritten (its file and content hash stay as committed):
the network's sha256 goes into a sidecar ``<out>/<suite>/models/<run_id>.json`` that names the record's
``content_sha256`` and the machine of the retrain. A retrain that does not reproduce keeps nothing and says
how to train records of one's own with networks.

``snnbench evaluate`` runs a saved network at any T its method can build with the same parameters, on the
test or validation split of the run's data, and writes an *evaluation record*
(``<out>/<suite>/evaluations/<run_id>_T<T>_<split>.json``, ``kind: evaluation``): not a training record,
never read by the leaderboard, ``compare`` or the site, which read ``runs/`` only.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from snnbench import events as ev
from snnbench.errors import SnnbenchError
from snnbench.records import RecordStore, RunRecord, atomic_write_bytes, record_sha256
from snnbench.suite import RunSpec
from snnbench.ties import as_scored_by

SPLITS = ("test", "val")


def sidecar_path(store: RecordStore, run_id: str) -> Path:
    """Where a network retrained for an existing record is described (``models/<run_id>.json``)."""
    return store.model_path(run_id).with_suffix(".json")


def expected_sha256(store: RecordStore, record: RunRecord) -> str | None:
    """The sha256 the saved network of ``record`` must have: the record's own ``model_sha256`` (saved with
    the run), else that of a retrain that reproduced this very record (the sidecar names its content hash);
    None when the run has no network."""
    if record.model_sha256 is not None:
        return record.model_sha256
    path = sidecar_path(store, record.run_id)
    try:
        sidecar = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(sidecar, dict) or sidecar.get("run_id") != record.run_id:
        return None
    if record.content_sha256 is None or sidecar.get("record_content_sha256") != record.content_sha256:
        return None  # the record was rewritten since: that network is not this record's
    sha = sidecar.get("model_sha256")
    return sha if isinstance(sha, str) else None


def has_saved_model(store: RecordStore, record: RunRecord) -> bool:
    """Whether ``record``'s network is on disk (its hash is checked when it is loaded)."""
    return expected_sha256(store, record) is not None and store.model_path(record.run_id).is_file()


def get_model_command(record: RunRecord) -> str:
    """The command that gets ``record``'s network (retrained when its record already exists)."""
    return (
        f"snnbench run --suite {record.suite} --budget {record.budget} --algorithms {record.entry} "
        f"--timesteps {record.T} --seeds {record.seed} --save-models"
    )


def load_model(out_dir: str | Path, suite: str, run_id: str) -> tuple[RunRecord, nn.Module]:
    """The record and the saved final network of a run (hash checked, weights only)."""
    store = RecordStore(out_dir, suite)
    record = store.load(run_id)
    if record is None:
        raise SnnbenchError(f"no record {run_id} under {store.runs}")
    if record.status != "ok":
        raise SnnbenchError(f"{run_id}: its record says {record.status}: no network is kept for such a run")
    path = store.model_path(run_id)
    sha = expected_sha256(store, record)
    if sha is None or not path.is_file():
        raise SnnbenchError(
            f"{run_id}: no saved network in {path.parent} (--out is the folder the run was trained into); "
            f"get one with `{get_model_command(record)} --out {out_dir}` (retrains the run and keeps its "
            "network when the retrain reproduces the record)"
        )
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha:
        raise SnnbenchError(f"{path}: sha256 differs from the record's model_sha256 (file changed)")
    net = build_network(record.spec)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return record, net.eval()


def _algorithm(spec: dict[str, Any]) -> Any:
    from snnbench.algorithms import algorithms
    from snnbench.architectures import resolve_architecture
    from snnbench.data import datasets

    algorithm_cls = algorithms.get(spec["algorithm"])
    dataset = datasets.get(spec["dataset"])()
    info = dataset.info(dataset.Options.model_validate(spec["dataset_options"]))
    return algorithm_cls(
        algorithm_cls.Config.model_validate(spec["hparams"]), resolve_architecture(spec["arch"]), info
    )


def build_network(spec: dict[str, Any], T: int | None = None) -> nn.Module:
    """The untrained network a run spec (``RunRecord.spec``) builds, at its T or at ``T``."""
    return _algorithm(spec).build(spec["T"] if T is None else T)


# --- networks for runs that already have records ----------------------------------------------------------


LOSS_RTOL = 1e-4  # relative difference of an epoch's loss a retrain may show and still reproduce its record


def reproduces(old: RunRecord, new: RunRecord) -> bool:
    """Whether a retrain reproduces its record's figures: ok, the same final test top-1 and validation
    top-1 to the last bit, and every epoch's loss within :data:`LOSS_RTOL` (float summation order differs
    between CPU models and thread counts; a different network would not give the same top-1s)."""
    if new.status != "ok" or old.status != "ok":
        return False
    if any(  # like for like: a record made before the tie rule holds the method's own read-out
        as_scored_by(old.metrics_protocol, new.metrics, new.metrics_protocol, key) != old.metrics.get(key)
        for key in ("top1", "val_top1")
    ):
        return False
    old_losses, new_losses = [h.get("loss") for h in old.history], [h.get("loss") for h in new.history]
    if len(old_losses) != len(new_losses):
        return False
    return all(
        a is not None and b is not None and abs(a - b) <= LOSS_RTOL * max(abs(a), abs(b))
        for a, b in zip(old_losses, new_losses, strict=True)
    )


@dataclass
class ModelRetrain:
    """What :func:`retrain_for_models` did: networks kept (run ids) and retrains that did not reproduce."""

    kept: list[str] = field(default_factory=list)
    not_reproduced: list[str] = field(default_factory=list)  # one line each: run id, why, what to do


def retrain_for_models(
    store: RecordStore,
    records: list[RunRecord],
    *,
    executor: str = "local",
    device: str = "auto",
    data_dir: str | Path | None = None,
    jobs: int = 2,
    address: str | None = None,
    on_event: ev.EventSink = ev.ignore,
) -> ModelRetrain:
    """Retrain the ok ``records`` of ``store`` in a temporary folder with their networks saved; keep each
    network (``models/<run_id>.pt`` and its sidecar) when the retrain :func:`reproduces` its record. The
    records themselves are not touched."""
    from snnbench.executors import execute, group_tasks
    from snnbench.reproduce import _check, run_spec

    result = ModelRetrain()
    specs = [run_spec(record, store.runs / f"{record.run_id}.json") for record in records]
    old = {record.run_id: record for record in records}
    with tempfile.TemporaryDirectory(prefix="snnbench-models-") as tmp:
        new_records = execute(
            group_tasks(specs),
            executor=executor,
            out_dir=tmp,
            device=device,
            data_dir=data_dir,
            jobs=jobs,
            address=address,
            on_event=on_event,
            save_models=True,
            recorded_since=0.0,
        )
        retrained = RecordStore(tmp, store.root.name)
        for new in new_records:
            record = old[new.run_id]
            check = _check(record, new)
            if reproduces(record, new) and new.model_sha256 is not None:
                data = retrained.model_path(new.run_id).read_bytes()
                atomic_write_bytes(store.model_path(new.run_id), data)
                sidecar = {
                    "run_id": new.run_id,
                    "model_sha256": new.model_sha256,
                    "record_content_sha256": record.content_sha256 or record_sha256(record.model_dump()),
                    "retrained": {
                        "bit_identical": check.exact,  # top-1 and every epoch's loss identical
                        "top1": new.metrics.get("top1"),
                        "val_top1": new.metrics.get("val_top1"),
                        "max_loss_difference": check.max_loss_difference,
                        "environment": new.environment,
                        "finished_at": new.finished_at,
                    },
                }
                atomic_write_bytes(sidecar_path(store, new.run_id), json.dumps(sidecar, indent=2).encode())
                result.kept.append(new.run_id)
                continue
            if check.new_top1 is None:
                why = f"the retrain ended {check.status}"
            else:
                loss = (
                    ""
                    if check.max_loss_difference is None
                    else f", losses up to {check.max_loss_difference:.3g} apart"
                )
                why = (
                    f"the retrain gave top-1 {check.new_top1:.2f} against the record's "
                    f"{check.committed_top1:.2f}{loss}"
                )
            result.not_reproduced.append(
                f"{new.run_id}: {why}, so its network is not this "
                f"record's and was not kept; for networks with records of their own, train into a folder "
                f"of yours: `{get_model_command(record)} --out DIR`"
            )
    return result


# --- evaluation of a saved network ------------------------------------------------------------------------


class EvaluationRecord(BaseModel):
    """One evaluation of a saved network (``snnbench evaluate``): not a training record."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["evaluation"] = "evaluation"
    schema_version: int = 1
    run_id: str  # the training run whose network was evaluated
    suite: str
    entry: str
    algorithm: str
    dataset: str
    model_sha256: str
    trained_T: int
    T: int
    split: Literal["test", "val"]
    samples: int
    metrics: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    evaluated_at: str
    content_sha256: str | None = None


def network_at(record: RunRecord, trained: nn.Module, T: int) -> nn.Module:
    """``trained`` (the saved network of ``record``) rebuilt for ``T`` time steps: refused when the method's
    network has other parameters at ``T`` (e.g. batch norm per time step)."""
    from snnbench.suite import MAX_TIMESTEPS

    if not 1 <= T <= MAX_TIMESTEPS:
        raise SnnbenchError(f"--timesteps: expected 1 to {MAX_TIMESTEPS}, got {T}")
    if T == record.T:
        return trained
    net = _algorithm(record.spec).build(T)
    try:
        net.load_state_dict(trained.state_dict())
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[1:2] or [str(exc)]
        raise SnnbenchError(
            f"{record.algorithm}'s network at T = {T} has other parameters than at its training T = "
            f"{record.T} ({first[0].strip()[:160]}): it cannot run at another T"
        ) from None
    return net.eval()


def load_split(
    record: RunRecord, split: str = "test", *, T: int | None = None, data_dir: str | Path | None = None
) -> Any:
    """The run's test subset or validation split (``split``: test or val), as the runner carved them; a
    :class:`~snnbench.data.Split` (``.batches(n, shuffle=False)`` gives raw ``(x, labels)`` batches)."""
    from snnbench.data import data_root
    from snnbench.runner import load_data
    from snnbench.suite import Validation

    if split not in SPLITS:
        raise SnnbenchError(f"--split: expected one of {', '.join(SPLITS)}, got {split!r}")
    spec = RunSpec.model_validate({**record.spec, "T": record.T if T is None else T})
    data = load_data(spec, data_root(data_dir))
    if split == "test":
        return data.test.take(spec.test_subset)
    validation = Validation.model_validate(spec.validation)
    _, val, _ = data.train.take(spec.train_subset).carve_validation(validation.fraction, validation.seed)
    return val


def _context(spec: RunSpec, T: int, device: torch.device, salt: int) -> Any:
    from snnbench.algorithms import RunContext
    from snnbench.data.encoding import encodings
    from snnbench.runner import EVAL_SEED_OFFSET

    return RunContext(
        T=T,
        device=device,
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        eval_batch_size=spec.eval_batch_size,
        encoding=spec.encoding,
        generator=torch.Generator().manual_seed(spec.seed + EVAL_SEED_OFFSET + salt),
        encode_fn=encodings.get(spec.encoding),
    )


def predict(record: RunRecord, net: nn.Module, x: torch.Tensor, *, T: int | None = None) -> torch.Tensor:
    """Class scores ``[B, classes]`` of the saved network ``net`` (from :func:`load_model`) for a batch of
    raw inputs ``x`` (as a split's batches give them): encoded with the run's encoding over ``T`` steps
    (default: the run's T) and read out as the method does."""
    T = record.T if T is None else T
    net = network_at(record, net, T).eval()
    spec = RunSpec.model_validate(record.spec)
    device = next(net.parameters()).device
    with torch.no_grad():
        return _algorithm(record.spec).predict(net, x.to(device), _context(spec, T, device, -1))


def evaluation_path(store: RecordStore, run_id: str, T: int, split: str) -> Path:
    return store.root / "evaluations" / f"{run_id}_T{T}_{split}.json"


def evaluate_saved(
    out_dir: str | Path,
    suite: str,
    run_id: str,
    *,
    T: int | None = None,
    split: str = "test",
    device: str = "cpu",
    data_dir: str | Path | None = None,
) -> tuple[EvaluationRecord, Path]:
    """Run ``run_id``'s saved network at ``T`` (default: its training T) on ``split`` of its data (the
    run's own validation carve and test subset) and write the evaluation record. At the training T the
    figures are the training record's (same evaluation noise: test top-1 as ``top1``, validation as
    ``val_top1`` and the spike metrics)."""
    from snnbench.environment import environment, resolve_device
    from snnbench.reproduce import run_spec
    from snnbench.runner import count_operations

    if split not in SPLITS:
        raise SnnbenchError(f"--split: expected one of {', '.join(SPLITS)}, got {split!r}")
    store = RecordStore(out_dir, suite)
    record, trained = load_model(out_dir, suite, run_id)
    spec = run_spec(record, store.runs / f"{run_id}.json")
    T = record.T if T is None else T
    net = network_at(record, trained, T)
    torch_device = resolve_device(device)
    net = net.to(torch_device).eval()
    algorithm = _algorithm(record.spec)
    chosen = load_split(record, split, T=T, data_dir=data_dir)

    def context(salt: int) -> Any:  # the runner's evaluation noise: the same figures at the training T
        return _context(spec, T, torch_device, salt)

    tick = time.perf_counter()
    evaluation = algorithm.evaluate(net, chosen, context(-1 if split == "test" else -3))
    seconds = time.perf_counter() - tick
    metrics: dict[str, Any] = {
        "top1": evaluation.top1,
        "inference_ms_per_sample": 1000.0 * seconds / len(chosen),
        **evaluation.extra,
        **count_operations(algorithm, net, chosen, context(-2), spec),
    }
    result = EvaluationRecord(
        run_id=run_id,
        suite=record.suite,
        entry=record.entry,
        algorithm=record.algorithm,
        dataset=record.dataset,
        model_sha256=hashlib.sha256(store.model_path(run_id).read_bytes()).hexdigest(),
        trained_T=record.T,
        T=T,
        split=split,  # type: ignore[arg-type]
        samples=len(chosen),
        metrics={k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isnan(v))},
        environment=environment(torch_device),
        evaluated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    data_out = result.model_dump(mode="json")
    result.content_sha256 = record_sha256(data_out)
    path = evaluation_path(store, run_id, T, split)
    atomic_write_bytes(path, (json.dumps(result.model_dump(mode="json"), indent=2) + "\n").encode())
    return result, path


def read_evaluation(path: str | Path) -> EvaluationRecord:
    """An evaluation record, refused (naming the file) when it is not one."""
    from pydantic import ValidationError

    from snnbench.errors import RecordError

    path = Path(path)
    try:
        return EvaluationRecord.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise RecordError(path, f"not an evaluation record ({str(exc).splitlines()[0][:160]})") from None
