"""Every metric a run record carries: one documented function per metric and the :data:`METRICS` table.

Definitions follow NeuroBench where they overlap (footprint, parameter count); the table gives unit and
direction for leaderboards and plots.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import psutil
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Metric:
    """Name, unit, direction and a one-line definition."""

    name: str
    unit: str
    higher_is_better: bool
    definition: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("top1", "%", True, "final-epoch top-1 accuracy on the whole test set (the primary number)"),
        Metric(
            "top1_val_selected",
            "%",
            True,
            "test top-1 of the epoch with the best validation top-1 (model selection on the validation "
            "split, never on test; secondary, only where the suite asks for it)",
        ),
        Metric("val_top1", "%", True, "final-epoch top-1 on the validation split carved from training"),
        Metric("params", "count", False, "number of parameters (NeuroBench ParameterCount)"),
        Metric("model_bytes", "B", False, "bytes of parameters and buffers (NeuroBench Footprint)"),
        Metric("train_time_s", "s", False, "wall time of all training epochs (excludes evaluation)"),
        Metric("train_samples_per_s", "1/s", True, "training samples processed per second of training time"),
        Metric(
            "peak_train_memory_mb",
            "MiB",
            False,
            "peak memory during training: CUDA max allocated, or CPU resident set of the process",
        ),
        Metric(
            "inference_ms_per_sample", "ms", False, "test-set evaluation wall time per sample (all T steps)"
        ),
        Metric("epochs_completed", "count", True, "epochs trained before the run ended"),
        # method-specific evaluation extras (present only in those methods' records)
        Metric("ann_top1", "%", True, "conversion: top-1 of the ANN the SNN was converted from"),
        Metric("top1_continuous", "%", True, "STDBP: top-1 in continuous time (no clock)"),
        Metric(
            "decision_time_steps",
            "steps",
            False,
            "STDBP: mean earliest output spike time in continuous time, in steps of t_max / T",
        ),
        Metric(
            "no_decision_fraction",
            "fraction",
            False,
            "STDBP: test samples with no output spike within the T steps (decided by the highest output "
            "potential at the end of step T)",
        ),
        Metric("top1_early_exit", "%", True, "BNTT: top-1 with the early-exit rule"),
        Metric("early_exit_steps", "steps", False, "BNTT: time steps the early-exit rule uses"),
    ]
}


def top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent; ``argmax`` breaks ties toward the lowest index (ties are not credited)."""
    return 100.0 * (logits.argmax(dim=1) == labels).double().mean().item()


def parameter_count(net: nn.Module) -> int:
    """Number of parameters returned by ``net.parameters()``."""
    return sum(p.numel() for p in net.parameters())


def footprint_bytes(net: nn.Module) -> int:
    """Σ numel × element size over parameters and buffers (zero weights included)."""
    tensors = list(net.parameters()) + list(net.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


class PeakMemory:
    """Peak training memory in MiB: CUDA max allocated, or the process's resident set sampled every 10 ms."""

    def __init__(self, device: torch.device, interval_s: float = 0.01) -> None:
        self.device, self.interval_s = device, interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            process = psutil.Process()
            self.peak_bytes = process.memory_info().rss

            def sample() -> None:
                while not self._stop.wait(self.interval_s):
                    self.peak_bytes = max(self.peak_bytes, process.memory_info().rss)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.device.type == "cuda":
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, psutil.Process().memory_info().rss)

    @property
    def mib(self) -> float:
        """The peak in MiB."""
        return self.peak_bytes / 2**20


# ---- workload metrics: spikes and synaptic operations, counted exactly during one inference pass ---------
SYNAPTIC_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
E_AC_PJ, E_MAC_PJ = 0.9, 4.6  # 45 nm, 32-bit float add and multiply-add (Horowitz 2014)

METRICS.update(
    {
        m.name: m
        for m in [
            Metric("spike_rate", "1/step", False, "spikes per neuron per time step over all spiking layers"),
            Metric(
                "activation_sparsity", "", True, "1 − spike_rate: fraction of zero outputs of neuron layers"
            ),
            Metric(
                "acs_per_sample", "ops", False, "accumulates triggered by binary/ternary inputs, per sample"
            ),
            Metric("macs_per_sample", "ops", False, "multiply-accumulates on non-binary inputs, per sample"),
            Metric("synops_per_sample", "ops", False, "ACs + MACs per sample (NeuroBench effective synops)"),
            Metric("energy_nj", "nJ", False, "ACs × E_AC + MACs × E_MAC per sample"),
            Metric(
                "ann_energy_nj", "nJ", False, "the same architecture as a dense ANN: MACs of one step × E_MAC"
            ),
            Metric("energy_ratio", "", False, "energy_nj / ann_energy_nj"),
            Metric(
                "input_energy_nj",
                "nJ",
                False,
                "the part of energy_nj spent by the first synaptic layer, which takes the encoded input "
                "(MACs on analog pixels for direct coding, ACs on spikes for rate/latency coding), "
                "per sample",
            ),
            Metric("connection_sparsity", "", False, "fraction of zero weights in conv/linear layers"),
        ]
    }
)


def connection_sparsity(net: nn.Module) -> float:
    """Σ zero weights / Σ weights over linear and convolution layers (NeuroBench ConnectionSparsity)."""
    weights = [m.weight for m in net.modules() if isinstance(m, SYNAPTIC_LAYERS)]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total if total else 0.0


def effective_operations(
    active: torch.Tensor,
    weight: torch.Tensor,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> int:
    """Σ over outputs of the nonzero inputs that meet a nonzero weight: the op applied to ``active``
    (0/1 input mask) and ``weight ≠ 0``, bias excluded; 2-D weight = linear, 3-D/4-D = conv1d/conv2d."""
    w = (weight != 0).to(active.dtype)
    if w.dim() == 2:
        return int(F.linear(active, w).sum())
    conv = F.conv1d if w.dim() == 3 else F.conv2d
    return int(conv(active, w, None, stride, padding, dilation, groups).sum())


def standard_operations(layer: nn.Module, x: torch.Tensor) -> tuple[int, bool, int]:
    """(effective ops, inputs binary?, dense ops of one sample) of a torch Linear/Conv layer."""
    binary = bool(((x == 0) | (x == 1) | (x == -1)).all())
    geometry = (
        {}
        if isinstance(layer, nn.Linear)
        else {k: getattr(layer, k) for k in ("stride", "padding", "dilation", "groups")}
    )
    ops = effective_operations((x != 0).to(x.dtype), layer.weight, **geometry)
    # one sample, whatever leads the input: x[:1] of a time-major [T, B, …] input is a whole batch
    one_sample = torch.ones((1, *x.shape[x.dim() - layer.weight.dim() + 1 :]), dtype=x.dtype)
    dense = effective_operations(one_sample, torch.ones_like(layer.weight), **geometry)
    return ops, binary, dense


class OperationCounter:
    """Hooks that count, during the passes inside the ``with`` block, for every synaptic layer the
    effective operations (each nonzero input times each nonzero weight it meets: ``layer(x ≠ 0, w ≠ 0)``
    summed, bias excluded, border effects of padding and stride included), split into ACs (inputs all in
    {−1, 0, 1}) and MACs (anything else), plus the dense operations of one time step (all-ones input and
    weights) for the ANN counterpart; and for every :class:`SpikingLayer` its spikes and neuron-steps.

    Layers that are not torch Linear/Conv (event-driven or spike-time layers) take part by defining
    ``count_operations(input) -> (effective ops, inputs binary?, dense ops of one sample)``, usually with
    :func:`effective_operations`; spiking layers by overriding ``SpikingLayer.spike_statistics``.
    """

    def __init__(self, net: nn.Module) -> None:
        from snnbench.neurons.layers import SpikingLayer

        self.net = net
        counted = [
            (name, m)
            for name, m in net.named_modules()
            if isinstance(m, SYNAPTIC_LAYERS) or callable(getattr(m, "count_operations", None))
        ]
        custom = [name for name, m in counted if callable(getattr(m, "count_operations", None))]
        # a layer that counts itself owns the torch layers inside it (they are not called on their own)
        self.synaptic = {
            name: m for name, m in counted if not any(name.startswith(f"{owner}.") for owner in custom)
        }
        self.spiking = {name: m for name, m in net.named_modules() if isinstance(m, SpikingLayer)}
        self.acs = dict.fromkeys(self.synaptic, 0)
        self.macs = dict.fromkeys(self.synaptic, 0)
        self.dense_per_row: dict[str, int] = {}
        self.spikes = dict.fromkeys(self.spiking, 0)
        self.neuron_steps = dict.fromkeys(self.spiking, 0)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> OperationCounter:
        for name, module in self.synaptic.items():
            self._handles.append(module.register_forward_pre_hook(self._synaptic_hook(name)))
        for name, module in self.spiking.items():
            self._handles.append(module.register_forward_hook(self._spiking_hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _synaptic_hook(self, name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0].detach()
            with torch.no_grad():
                custom = getattr(module, "count_operations", None)
                ops, binary, dense = custom(x) if callable(custom) else standard_operations(module, x)
            (self.acs if binary else self.macs)[name] += ops
            self.dense_per_row.setdefault(name, dense)  # first call: execution order, input layer first

        return hook

    def _spiking_hook(self, name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            statistics = module.spike_statistics(output)
            if statistics is not None:
                self.spikes[name] += statistics[0]
                self.neuron_steps[name] += statistics[1]

        return hook

    def summary(
        self, samples: int, e_ac_pj: float = E_AC_PJ, e_mac_pj: float = E_MAC_PJ
    ) -> dict[str, object]:
        """Per-sample metrics (names in :data:`METRICS`) and per-layer details; operation metrics are None
        for networks without standard conv/linear layers (their methods report their own)."""
        if not self.synaptic:
            return {}
        acs, macs = sum(self.acs.values()) / samples, sum(self.macs.values()) / samples
        spikes, steps = sum(self.spikes.values()), sum(self.neuron_steps.values())
        ann_macs = sum(self.dense_per_row.values())
        energy = (acs * e_ac_pj + macs * e_mac_pj) / 1000.0
        first = next(iter(self.dense_per_row), None)  # the first layer that ran: the encoded input's
        input_energy = (
            (self.acs[first] * e_ac_pj + self.macs[first] * e_mac_pj) / 1000.0 / samples if first else None
        )
        ann_energy = ann_macs * e_mac_pj / 1000.0
        return {
            "spike_rate": spikes / steps if steps else None,
            "activation_sparsity": 1.0 - spikes / steps if steps else None,
            "acs_per_sample": acs,
            "macs_per_sample": macs,
            "synops_per_sample": acs + macs,
            "energy_nj": energy,
            "ann_energy_nj": ann_energy,
            "energy_ratio": energy / ann_energy if ann_energy else None,
            "input_energy_nj": input_energy,
            "energy_constants_pj": {"ac": e_ac_pj, "mac": e_mac_pj},
            "spike_rate_per_layer": {n: self.spikes[n] / s for n, s in self.neuron_steps.items() if s},
            "synops_per_layer": {n: (self.acs[n] + self.macs[n]) / samples for n in self.synaptic},
        }
