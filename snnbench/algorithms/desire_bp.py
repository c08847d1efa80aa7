"""Desire backpropagation: desired spike activity from the output error, then local STDP updates.

Gerlinghoff, Luo, Goh & Wong, "Desire Backpropagation: A Lightweight Training Algorithm for Multi-Layer
Spiking Neural Networks based on Spike-Timing-Dependent Plasticity", Neurocomputing 556: 126773, 2023,
https://arxiv.org/abs/2211.05412. Official code: DanielGerlinghoff/desire-backpropagation
(``desire_pytorch.py``, commit b93267d); every constant below is that file's default.

Network (fully connected, no bias), simulated over T steps, ϑ = 1, λ = 1 − 2^(−2) = 0.75:
  (1) input IF neurons      u ← u + x  (pixel intensity in [0, 1]);  s = [u ≥ ϑ];  u ← u − ϑ s
  (2) LIF neurons           u ← λ u + W s_in;  s = [u ≥ ϑ];  u ← u − ϑ s   (soft reset)
      every linear layer after the first sees the previous layer's spikes one step late (the official
      simulation order); dropout masks are drawn per sample and held over the T steps (kept spikes ×
      1/(1 − p) downstream during training).
  (3) trace                 x_j(t) = λ x_j(t − 1) + min(s_j(t), 1)   (presynaptic, per layer)
Desire (two bits per neuron: d ∈ {0, 1} "consider", σ ∈ {−1, +1} "spike / do not spike"):
  (4) output                c_k = spike count, N = T − margin;  e_k = c_k / N (k ≠ label),
                            e_label = 1 − c_label / N;  d_k = [e_k > θ_out],  σ_k = +1 iff k = label
  (5) error of a neuron     ε_i = |[σ_i = +1] − c_i / N|   (c_i without the dropout scaling)
  (6) to the layer below    S_j = Σ_i w_ij ε_i σ_i d_i m_i   (m: dropout mask)
                            d_j = [|S_j| ≥ θ_hid],  σ_j = +1 iff S_j > 0
Update (every layer, after all desires are computed with the same weights):
  (7) Δw_ij = η(epoch) σ_i d_i m_i Σ_t s_i(t) x_j(t),   η(epoch) = η₀ exp(−0.04 · epoch)
A neuron that is desired to spike potentiates its active inputs at each of its own spikes (STDP-like,
pre-before-post through the trace); one desired silent depresses them. Prediction: output spike counts.

Batching: the official code trains one sample at a time. A batch here runs B samples with the same weights
and applies the sum of their B per-sample updates (7); batch size 1 is the official algorithm exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from snnbench.algorithms import (
    Algorithm,
    AlgorithmConfig,
    EpochTally,
    Evaluation,
    Paper,
    RunContext,
    TrainState,
    algorithms,
)
from snnbench.architectures import Dense
from snnbench.data import Split
from snnbench.errors import SnnbenchError
from snnbench.neurons.layers import SpikingLayer

REFERENCE_T = 20  # the official T, at which the margin of 4 spikes was set


class DesireBPConfig(AlgorithmConfig):
    """Every default is the official argparse default (``desire_pytorch.py``)."""

    lr: float = Field(1e-5, gt=0.0, description="η₀ of linear layers (official --lr, second value)")
    lr_decay: float = Field(0.04, ge=0.0, description="η(epoch) = η₀ exp(−lr_decay · epoch) (--lr-decay)")
    threshold: float = Field(1.0, gt=0.0, description="membrane threshold ϑ (--mempot-thres)")
    decay_exponent: int = Field(2, ge=0, description="λ = 1 − 2^(−decay_exponent) (--mempot-decay)")
    desire_threshold_hidden: float = Field(0.05, ge=0.0, description="θ_hid, eq. (6) (--desire-thres lin)")
    desire_threshold_output: float = Field(0.30, ge=0.0, description="θ_out, eq. (4) (--desire-thres out)")
    error_margin: float = Field(
        4.0, ge=0.0, description="N = T − margin spikes, eqs. (4)-(5) (--error-margin)"
    )
    margin_scaling: Literal["absolute", "proportional"] = Field(
        "absolute",
        description="absolute: N = T − margin (official); proportional: N = T (1 − margin / 20), the "
        "official ratio at the official T = 20, for grids with T ≤ margin (ours)",
    )
    dropout_input: float = Field(0.0, ge=0.0, lt=1.0, description="input dropout (--dropout, first value)")
    dropout_hidden: float = Field(0.3, ge=0.0, lt=1.0, description="hidden dropout (--dropout, second value)")
    layer_delay: bool = Field(
        True, description="layers after the first see the previous layer's spikes one step late (official)"
    )


def target_count(cfg: DesireBPConfig, T: int) -> float:
    """N of eqs. (4)-(5): the spike count at which a desired neuron's error reaches zero."""
    if cfg.margin_scaling == "proportional":
        return T * (REFERENCE_T - cfg.error_margin) / REFERENCE_T  # exactly T − margin at T = 20
    return T - cfg.error_margin


def output_desire(
    counts: torch.Tensor, labels: torch.Tensor, target: float, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (4): (consider d, spike σ = +1) as booleans ``[B, C]`` from output counts ``[B, C]``."""
    want = F.one_hot(labels, counts.shape[1]).bool()
    error = torch.where(want, 1.0 - counts / target, counts / target)
    return error > threshold, want


def propagate_desire(
    weight: torch.Tensor,
    consider: torch.Tensor,
    want: torch.Tensor,
    counts: torch.Tensor,
    keep: torch.Tensor,
    target: float,
    threshold: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. (5)-(6): the desire of the layer below from layer ``[B, N_out]`` desires through ``weight``
    ``[N_out, N_in]``; ``counts`` are the layer's unscaled spike counts, ``keep`` its dropout mask."""
    error = (want.to(counts.dtype) - counts / target).abs()
    sign = (want.to(counts.dtype) * 2 - 1) * (consider & keep).to(counts.dtype)
    total = (error * sign) @ weight
    return total.abs() >= threshold, total > 0


def presynaptic_trace(inputs: torch.Tensor, decay: float) -> torch.Tensor:
    """Eq. (3): ``x(t) = λ x(t − 1) + min(s(t), 1)`` over ``[T, B, N]``."""
    trace, out = torch.zeros_like(inputs[0]), []
    for s in inputs.clamp(max=1.0):
        trace = trace * decay + s
        out.append(trace)
    return torch.stack(out)


def stdp_update(
    inputs: torch.Tensor,
    spikes: torch.Tensor,
    consider: torch.Tensor,
    want: torch.Tensor,
    keep: torch.Tensor,
    decay: float,
) -> torch.Tensor:
    """Eq. (7) without η, summed over the batch: ``[N_out, N_in]`` from the layer's inputs ``[T, B, N_in]``
    (as it saw them, delay included), its spikes ``[T, B, N_out]`` and its desire ``[B, N_out]``."""
    gate = (want.to(inputs.dtype) * 2 - 1) * (consider & keep).to(inputs.dtype)
    post = (spikes != 0).to(inputs.dtype) * gate.unsqueeze(0)
    return torch.einsum("tbi,tbj->ij", post, presynaptic_trace(inputs, decay))


class DesireNeurons(SpikingLayer):
    """Eqs. (1)-(2): (leaky) integrate-and-fire with soft reset; ``decay`` 1 = the IF input layer."""

    def __init__(self, decay: float, threshold: float) -> None:
        super().__init__()
        self.decay, self.threshold = decay, threshold

    def forward(
        self, current: torch.Tensor, keep: torch.Tensor | None = None, scale: float = 1.0
    ) -> torch.Tensor:
        u, out = torch.zeros_like(current[0]), []
        for i_t in current:
            u = u * self.decay + i_t
            s = u >= self.threshold
            if keep is not None:
                s = s & keep
            u = u - self.threshold * s.to(u.dtype)
            out.append(s)
        spikes = torch.stack(out).to(current.dtype)
        return spikes * scale if scale != 1.0 else spikes

    def extra_repr(self) -> str:
        return f"decay={self.decay}, threshold={self.threshold}"


class DesireNet(nn.Module):
    """IF input layer, then fully connected LIF layers (the last is the output). ``forward`` keeps, for the
    update, each linear layer's inputs and spikes (``self.inputs``, ``self.spikes``)."""

    def __init__(self, sizes: list[int], cfg: DesireBPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.decay = 1.0 - 2.0 ** (-cfg.decay_exponent)
        self.input = DesireNeurons(1.0, cfg.threshold)
        self.synapses = nn.ModuleList(
            nn.Linear(a, b, bias=False) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        for synapse in self.synapses:
            nn.init.kaiming_normal_(synapse.weight)  # official: fan-in, gain √2
            synapse.weight.requires_grad_(False)
        self.neurons = nn.ModuleList(DesireNeurons(self.decay, cfg.threshold) for _ in self.synapses)
        self.inputs: list[torch.Tensor] = []
        self.spikes: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, keep: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        """``x`` ``[T, B, ...]`` (the analog image at every step) → output spikes ``[T, B, C]``; ``keep``:
        dropout masks (input, then every layer; None = no dropout)."""
        keep = keep or [None] * (len(self.synapses) + 1)
        rates = [self.cfg.dropout_input] + [self.cfg.dropout_hidden] * (len(self.synapses) - 1) + [0.0]
        scales = [1.0 / (1.0 - p) if k is not None else 1.0 for p, k in zip(rates, keep, strict=True)]
        s = self.input(x.flatten(2), keep[0], scales[0])
        self.inputs, self.spikes = [], []
        for index, (synapse, neurons) in enumerate(zip(self.synapses, self.neurons, strict=True)):
            if index > 0 and self.cfg.layer_delay:
                s = torch.cat([torch.zeros_like(s[:1]), s[:-1]])
            self.inputs.append(s)
            s = neurons(synapse(s), keep[index + 1], scales[index + 1])
            self.spikes.append(s)
        return s

    def masks(
        self, batch: int, generator: torch.Generator, device: torch.device
    ) -> list[torch.Tensor | None]:
        """Per-sample dropout masks (input, hidden layers, output: never dropped)."""
        cfg, out = self.cfg, []
        sizes = [self.synapses[0].in_features] + [s.out_features for s in self.synapses]
        for index, n in enumerate(sizes):
            p = cfg.dropout_input if index == 0 else cfg.dropout_hidden if index < len(sizes) - 1 else 0.0
            out.append(None if p == 0.0 else (torch.rand(batch, n, generator=generator) >= p).to(device))
        return out


def desire_step(
    net: DesireNet, x: torch.Tensor, labels: torch.Tensor, lr: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward, desire (4)-(6) and update (7) of every layer; returns output counts and the batch's
    summed output error Σ_k ε_k."""
    cfg, T, batch = net.cfg, x.shape[0], x.shape[1]
    target = target_count(cfg, T)
    keep = (
        net.masks(batch, generator, x.device) if generator is not None else [None] * (len(net.synapses) + 1)
    )
    out = net(x, keep)
    layer_keep, counts = [], []
    for synapse, mask, spikes in zip(net.synapses, keep[1:], net.spikes, strict=True):
        ones = torch.ones(batch, synapse.out_features, dtype=torch.bool, device=x.device)
        layer_keep.append(ones if mask is None else mask)
        counts.append((spikes != 0).sum(0).to(x.dtype))  # counts without the dropout scaling
    consider, want = output_desire(counts[-1], labels, target, cfg.desire_threshold_output)
    desires = [(consider, want)]
    for index in range(len(net.synapses) - 1, 0, -1):
        consider, want = propagate_desire(
            net.synapses[index].weight,
            consider,
            want,
            counts[index],
            layer_keep[index],
            target,
            cfg.desire_threshold_hidden,
        )
        desires.insert(0, (consider, want))
    error = (F.one_hot(labels, counts[-1].shape[1]).to(counts[-1].dtype) - counts[-1] / target).abs().sum()
    updates = [
        stdp_update(net.inputs[i], net.spikes[i], d, w, layer_keep[i], net.decay)
        for i, (d, w) in enumerate(desires)
    ]
    for synapse, update in zip(net.synapses, updates, strict=True):
        synapse.weight.add_(update, alpha=lr)
    return out.sum(0), error


@algorithms.register("desire-bp")
class DesireBP(Algorithm):
    """Desire backpropagation: ternary desires from the output error, STDP-like local updates."""

    paper = Paper(
        authors="Gerlinghoff, Luo, Goh & Wong",
        title="Desire Backpropagation: A Lightweight Training Algorithm for Multi-Layer Spiking Neural "
        "Networks based on Spike-Timing-Dependent Plasticity",
        venue="Neurocomputing",
        year=2023,
        url="https://arxiv.org/abs/2211.05412",
        equations="output desire d_k = [e_k > θ_out] from the count error; hidden "
        "d_j = [|Σ_i w_ij ε_i σ_i d_i| ≥ θ_hid], σ_j = sign; Δw_ij = η σ_i d_i Σ_t s_i(t) x_j(t) (STDP)",
    )
    description = (
        "desire backpropagation: desired spike/no-spike per neuron from the output error + local STDP"
    )
    Config = DesireBPConfig
    default_encoding = "direct"  # the network's own IF input layer turns intensities into spikes (official)

    def build(self, T: int) -> nn.Module:
        cfg: DesireBPConfig = self.config  # type: ignore[assignment]
        if target_count(cfg, T) <= 0:
            raise SnnbenchError(
                f"desire-bp: T = {T} leaves no target count (T − error_margin = {T - cfg.error_margin}); "
                "use margin_scaling: proportional for short windows"
            )
        sizes = [math.prod(self.data.input_shape)]
        for layer in self.arch.layers:
            if not isinstance(layer, Dense) or layer.recurrent:
                raise SnnbenchError(f"desire-bp builds fully connected layers only, not {layer}")
            sizes.append(layer.units)
        return DesireNet([*sizes, self.data.num_classes], cfg)

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        return TrainState()  # the update is the rule itself; η(epoch) is computed from ctx.epoch

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        cfg: DesireBPConfig = self.config  # type: ignore[assignment]
        assert isinstance(net, DesireNet)
        net.train()
        lr = cfg.lr * math.exp(-cfg.lr_decay * ctx.epoch)
        tally = EpochTally()
        with torch.no_grad():
            for x, y in batches:
                counts, error = desire_step(net, ctx.encode(x), y, lr, ctx.generator)
                tally.add(error.item(), counts, y)
        return tally.summary()

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return net(ctx.encode(x)).sum(0)  # output spike counts

    def evaluate(self, net: nn.Module, test: Split, ctx: RunContext) -> Evaluation:
        result = super().evaluate(net, test, ctx)
        top = result.logits.max(1, keepdim=True).values
        tied = (result.logits == top).sum(1) > 1
        alone = (result.logits.gather(1, result.labels[:, None]).squeeze(1) == top.squeeze(1)) & ~tied
        result.extra["top1_ties_wrong"] = 100.0 * alone.double().mean().item()
        result.extra["tie_fraction"] = tied.double().mean().item()
        return result
