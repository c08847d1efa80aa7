"""What a row's method actually set up, read from the objects a run builds (not typed by hand).

For a resolved spec (:class:`snnbench.suite.RunSpec`, or a record's ``spec``) :func:`facts` builds the
method's network and training state exactly as :func:`snnbench.runner.run_one` does (the algorithm for the
spec's config, architecture and data facts, ``build(T)``, ``configure(net, ctx)``), runs one prediction on
two blank samples, and reads:

- ``optimiser``: the optimiser's class, learning rate, momentum, betas (when not the default), weight decay
  and the scheduler (``Adam 0.001, cosine``; ``own rule`` where the method updates its weights itself);
- ``normalisation``: whether the method's prediction called ``DatasetInfo.normalize`` (where the runner puts
  the entry's ``preprocess`` statistics), and with which mean/std (``none`` when the input is used raw);
- ``outputs_per_class``: the width of the last linear or convolution operation of the prediction divided by
  the classes (STL's population of 10 output neurons per class reads 10);
- ``extra_weights``: the network's parameter count less that of the plain network of the same architecture
  (its dense/convolution layers with biases and one output per class), with the modules holding the
  parameters the plain network has no counterpart for.

Facts are cached per spec (less its seed and scheduling fields): a leaderboard builds each set-up once.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections import Counter
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

FACT_COLUMNS = ["optimiser", "normalisation", "outputs_per_class", "extra_weights"]
FACT_LABELS = {
    "optimiser": "optimiser",
    "normalisation": "normalisation",
    "outputs_per_class": "outputs/class",
    "extra_weights": "extra weights",
}
FACT_DEFINITIONS = {
    "optimiser": "the optimiser the method builds (class, learning rate, momentum, weight decay) and its "
    "learning-rate schedule, read from the objects its configure() returns (snnbench.setups)",
    "normalisation": "how the method's input is normalised before coding: the dataset's published mean/std, "
    "the entry's preprocess statistics, or none (raw [0, 1] intensities), read from what its prediction "
    "calls",
    "outputs_per_class": "output neurons per class: the width of the network's last synaptic operation "
    "divided by the classes",
    "extra_weights": "parameters beyond the plain network of the row's architecture (its layers with "
    "biases, one output per class): the difference in count, and the modules holding the parameters the "
    "plain network has no counterpart for",
}
_NOT_FACTS = ("seed", "num_cpus", "num_gpus", "energy", "run_id", "spec_hash", "training_key")
_LINEAR = {F.linear, torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm, torch.addmm}
_CONV = {F.conv1d, F.conv2d, F.conv3d}


def _number(value: float) -> str:
    return f"{value:.3g}"


def _schedule(scheduler: Any) -> str:
    if scheduler is None:
        return "constant"
    name = type(scheduler).__name__
    if name == "CosineAnnealingLR":
        return "cosine"
    if name == "MultiStepLR":
        at = ",".join(str(m) for m in sorted(scheduler.milestones.elements()))
        return f"step ×{_number(scheduler.gamma)} at epochs {at}" if at else "constant"
    if name == "StepLR":
        return f"step ×{_number(scheduler.gamma)} every {scheduler.step_size} epochs"
    if name == "ExponentialLR":
        return f"exponential ×{_number(scheduler.gamma)}/epoch"
    if name == "LambdaLR":
        factors = [fn(e) for fn in scheduler.lr_lambdas[:1] for e in (1, 3)]
        return "lr × " + ", ".join(f"{_number(f)} at epoch {e}" for f, e in zip(factors, (1, 3), strict=True))
    return name


def optimiser_text(state: Any, config: Any) -> tuple[str, str]:
    """``(with lr, without lr)`` descriptions of a :class:`~snnbench.algorithms.TrainState`'s optimiser."""
    optimizer = state.optimizer
    if optimizer is None:
        lr = getattr(config, "lr", None)
        return ("own rule" + (f" {_number(lr)}" if lr is not None else ""), "own rule (no torch optimiser)")
    groups = optimizer.param_groups
    lrs = sorted({g.get("initial_lr", g["lr"]) for g in groups})
    family = type(optimizer).__name__
    parts = []
    momentum = sorted({g.get("momentum", 0.0) or 0.0 for g in groups})
    if momentum != [0.0] and "momentum" in groups[0]:
        parts.append("m" + "/".join(_number(m) for m in momentum))
    if any(g.get("nesterov") for g in groups):
        parts.append("nesterov")
    betas = sorted({tuple(g["betas"]) for g in groups if "betas" in g})
    if betas and betas != [(0.9, 0.999)]:
        parts.append("β" + "/".join(",".join(_number(b) for b in pair) for pair in betas))
    decays = sorted({g.get("weight_decay", 0.0) for g in groups})
    if decays != [0.0]:
        parts.append("wd" + "/".join(_number(d) for d in decays))
    tail = (" " + " ".join(parts) if parts else "") + ", " + _schedule(state.scheduler)
    return f"{family} {'/'.join(_number(lr) for lr in lrs)}{tail}", family + tail


class _Widths(TorchFunctionMode):
    """Records the output width of every linear or convolution operation (module or functional)."""

    def __init__(self) -> None:
        super().__init__()
        self.widths: list[int] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's protocol
        out = func(*args, **(kwargs or {}))
        if torch.is_tensor(out) and out.dim() >= 1:
            if func in _LINEAR:
                self.widths.append(int(out.shape[-1]))
            elif func in _CONV:
                self.widths.append(int(out.shape[1]))
        return out


def plain_network(arch: Any, input_shape: tuple[int, ...], num_classes: int) -> nn.Module | None:
    """The plain network of ``arch``: its layers (with biases) and a dense output of one unit per class;
    None where the architecture has no plain feedforward form (residual blocks, recurrent layers)."""
    from snnbench.networks import build_feedforward

    try:
        body, features = build_feedforward(arch, input_shape, lambda shape: nn.Identity())
    except Exception:  # noqa: BLE001 - blocks, recurrent layers: no plain counterpart
        return None
    return nn.Sequential(body, nn.Linear(features, num_classes))


def extra_weights(net: nn.Module, plain: nn.Module | None) -> tuple[int | None, str]:
    """``(count, text)``: ``net``'s parameters less ``plain``'s and the modules of ``net`` holding parameters
    that match none of ``plain``'s (weights matched by shape, biases by shape)."""
    if plain is None:
        return None, "– (no plain form of the architecture)"
    count = sum(p.numel() for p in net.parameters()) - sum(p.numel() for p in plain.parameters())

    def role(name: str, p: torch.Tensor) -> tuple[str, tuple[int, ...]]:
        return ("bias" if name.rsplit(".", 1)[-1] == "bias" and p.dim() == 1 else "weight", tuple(p.shape))

    available = Counter(role(n, p) for n, p in plain.named_parameters() if p.dim() >= 1)
    held: dict[str, int] = {}
    for name, p in net.named_parameters():
        key = role(name, p)
        if p.dim() >= 1 and available[key] > 0 and (key[0] == "bias" or p.dim() >= 2):
            available[key] -= 1
            continue
        module = name.rsplit(".", 1)[0] if "." in name else name
        held[module] = held.get(module, 0) + p.numel()
    notes = [f"{m} {n:,}" for m, n in held.items()]
    absent = [k for k, n in available.items() for _ in range(n)]
    notes += [f"no {'×'.join(map(str, shape))} weight" for kind, shape in absent if kind == "weight"]
    notes += ["no biases"] if any(kind == "bias" for kind, _ in absent) else []
    return count, f"{count:+,}" + (f" ({'; '.join(notes)})" if notes else "")


def _normalised(calls: list[tuple[Any, Any]], info: Any, preprocess: Any) -> str:
    if not calls or info.mean is None:
        return "none"
    mean, std = calls[-1]
    stats = f"mean {'/'.join(_number(m) for m in mean)}, std {'/'.join(_number(s) for s in std)}"
    return f"entry preprocess ({stats})" if preprocess else f"dataset ({stats})"


@functools.lru_cache(maxsize=512)
def _facts(key: str) -> tuple[tuple[str, Any], ...]:
    from snnbench.algorithms import RunContext, algorithms
    from snnbench.architectures import resolve_architecture
    from snnbench.data import DatasetInfo, datasets
    from snnbench.data.encoding import encodings

    spec = json.loads(key)
    algorithm_cls = algorithms.get(spec["algorithm"])
    dataset_cls = datasets.get(spec["dataset"])
    info = dataset_cls().info(dataset_cls.Options.model_validate(spec.get("dataset_options") or {}))
    if spec.get("preprocess"):  # as snnbench.runner.data_info: the entry's statistics replace the dataset's
        info = dataclasses.replace(
            info, mean=tuple(spec["preprocess"]["mean"]), std=tuple(spec["preprocess"]["std"])
        )
    config = algorithm_cls.Config.model_validate(spec["hparams"])
    arch = resolve_architecture(spec["arch"])
    T = int(spec["T"])
    with torch.random.fork_rng():
        torch.manual_seed(0)
        algorithm = algorithm_cls(config, arch, info)
        net = algorithm.build(T)
        ctx = RunContext(
            T=T,
            device=torch.device("cpu"),
            epochs=int(spec["epochs"]),
            batch_size=int(spec["batch_size"]),
            eval_batch_size=2,
            encoding=spec["encoding"],
            generator=torch.Generator().manual_seed(0),
            encode_fn=encodings.get(spec["encoding"]),
        )
        state = algorithm.configure(net, ctx)
        with_lr, family = optimiser_text(state, config)
        calls: list[tuple[Any, Any]] = []
        original = DatasetInfo.normalize

        def normalize(self: Any, x: torch.Tensor) -> torch.Tensor:
            calls.append((self.mean, self.std))
            return original(self, x)

        widths = _Widths()
        net.eval()
        DatasetInfo.normalize = normalize  # type: ignore[method-assign]
        try:
            with torch.no_grad(), widths:
                # event data arrive binned to T steps, [B, T, ...]; every other input is one frame, [B, ...]
                frames = (T,) if spec["encoding"] == "events" else ()
                algorithm.predict(net, torch.zeros(2, *frames, *info.input_shape), ctx)
        finally:
            DatasetInfo.normalize = original  # type: ignore[method-assign]
    width = widths.widths[-1] if widths.widths else None
    classes = info.num_classes
    outputs = (
        "–" if width is None else str(width // classes) if width % classes == 0 else f"{width}/{classes}"
    )
    count, extra = extra_weights(net, plain_network(arch, info.input_shape, classes))
    return (
        ("optimiser", with_lr),
        ("optimiser_family", family),
        ("normalisation", _normalised(calls, info, spec.get("preprocess"))),
        ("outputs_per_class", outputs),
        ("extra_weights", extra),
        ("extra_count", count),
    )


def facts(spec: Any) -> dict[str, Any]:
    """The set-up facts of a resolved spec (a :class:`~snnbench.suite.RunSpec` or a record's ``spec``
    dict): :data:`FACT_COLUMNS` plus ``optimiser_family`` (without the learning rate) and ``extra_count``."""
    data = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else dict(spec)
    key = json.dumps({k: v for k, v in data.items() if k not in _NOT_FACTS}, sort_keys=True)
    return dict(_facts(key))


def row_facts(spec: Any) -> dict[str, str]:
    """The table's fact columns of a row whose records share ``spec`` (``–`` without a spec, or where the
    method cannot be built here: a plugin not loaded)."""
    from pydantic import ValidationError

    from snnbench.errors import UnknownNameError

    spec = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else spec
    if not spec or not {"algorithm", "hparams", "arch", "T"} <= set(spec):  # records built in memory
        return dict.fromkeys(FACT_COLUMNS, "–")
    try:
        found = facts(spec)
    except UnknownNameError:  # a plugin's method, not loaded here
        return dict.fromkeys(FACT_COLUMNS, "– (method not loaded)")
    except ValidationError:  # an old record whose configuration today's method no longer accepts
        return dict.fromkeys(FACT_COLUMNS, "– (configuration no longer valid)")
    return {c: str(found[c]) for c in FACT_COLUMNS}


def controlled_text(suite: Any) -> str:
    """The paragraph on what differs between the controlled entries of ``suite``, from :func:`facts` of
    every controlled entry at every T of its grid (markdown)."""
    from snnbench.suite import Overrides, expand

    plugins = set(getattr(suite, "plugin_entries", ()))  # a plugin loaded in this process is not the suite's
    keys = [k for k, e in suite.algorithms.items() if e.track == "controlled" and k not in plugins]
    per_entry: dict[str, dict[str, list[str]]] = {}
    shared: dict[str, Any] = {}
    for key in keys:
        specs = [s for s in expand(suite, Overrides(algorithms=[key])) if s.seed == suite.seeds[0]]
        shared.setdefault("arch", specs[0].arch)
        values: dict[str, list[str]] = {}
        for spec in specs:
            found = facts(spec)
            for column in ("optimiser_family", "normalisation", "outputs_per_class", "extra_weights"):
                values.setdefault(column, []).append(f"{found[column]}\0{spec.T}")
        for column, texts in values.items():  # a value that differs by T is given at each T
            distinct = list(dict.fromkeys(t.split("\0")[0] for t in texts))
            values[column] = distinct if len(distinct) == 1 else [t.replace("\0", " at T = ") for t in texts]
        per_entry[key] = values

    def grouped(column: str, skip: set[str] | None = None) -> list[str]:
        groups: dict[str, list[str]] = {}
        for key, values in per_entry.items():
            text = "; ".join(values[column])
            if skip is None or text not in skip:
                groups.setdefault(text, []).append(key)
        return [
            f"{text}: {', '.join(members)}"
            for text, members in sorted(groups.items(), key=lambda g: -len(g[1]))
        ]

    plain = {k for k, v in per_entry.items() if all(t.startswith("+0") for t in v["extra_weights"])}
    extra = [f"{key}: {'; '.join(per_entry[key]['extra_weights'])}" for key in keys if key not in plain]
    lines = [
        f"What differs between the {len(keys)} controlled entries of `{suite.name}` beyond the neuron and "
        f"learning rule (generated by `python tools/readme_leaderboard.py` from `snnbench.setups`, which "
        f"builds each entry's network and optimiser as a run does; columns *optimiser*, *normalisation*, "
        f"*outputs/class* and *extra weights* of the leaderboard):",
        "",
        "- **optimiser and schedule** (the learning rate is tuned per entry): "
        + "; ".join(f"{g}" for g in grouped("optimiser_family")),
        "- **input normalisation**: " + "; ".join(grouped("normalisation")),
        "- **outputs per class**: " + "; ".join(grouped("outputs_per_class")),
        f"- **extra weights** (against the plain `{shared.get('arch')}` network with biases, one output per "
        "class): "
        + ("; ".join(extra) if extra else "none")
        + (f"; none: {', '.join(sorted(plain))}" if plain else ""),
    ]
    return "\n".join(lines)
