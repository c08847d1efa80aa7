"""TSSL-BP: Temporal Spike Sequence Learning via Backpropagation.

Zhang & Li, "Temporal Spike Sequence Learning via Backpropagation for Deep Spiking Neural Networks",
NeurIPS 2020, https://arxiv.org/abs/2002.10085; defaults from the official code (github.com/stonezwr/TSSL-BP,
head ``ffaac71``: ``functions/tsslbp.py``, ``global_v.py``, ``layers/pooling.py``, ``main.py``,
``Networks/*.yaml``).

Discrete time, per layer and step t (time-major, no bias):
  (1) input current     I(t) = W a_pre(t)                          conv or linear on presynaptic PSPs
  (2) membrane          Δu(t) = −u⁺(t−1)/τm + I(t),  u(t) = u⁺(t−1) + Δu(t)
  (3) fire, reset       s(t) = [u(t) > ϑ],  u⁺(t) = u(t)(1 − s(t))         (hard reset to 0)
  (4) PSP (output)      a(t) = (1 − 1/τs) a(t−1) + s(t)/τs,  i.e. a = ε ∗ s with ε(k) = (1 − 1/τs)^k / τs
  (5) ∂L/∂s(t)          S(t) = Σ_{t'≥t} ε(t' − t) ∂L/∂a(t')
  (6) inter-neuron      at a firing step only: ∂a/∂t_f · ∂t_f/∂u = 1/Δu(t) (clamped to ≤ 8), term S(t)/Δu(t)
  (7) intra-neuron      δ(t) = [s(t)] (S(t) + δ(t+1) u(t)/τm) / Δu(t) + [1 − s(t)] (1 − 1/τm) δ(t+1):
                        a spike's time moves the reset, and so the next spike; a silent step leaks δ on
  (8) silent neurons    ``warmup``: the official head's per-neuron fallback δ(t) = S(t) σ'(u(t) − ϑ) where
                        a(t) < 1/(4τs) (σ' of a sigmoid with width 0.2, exponent clamped to ±8); the
                        paper-era per-layer switch rule (the whole layer uses the fallback while its firing
                        rate is ≤ 10 %; with the head's clamp and fallback, not the paper-era code's ±10 clamp
                        and reset terms); or none. The carried δ(t+1) is always the TSSL-BP value (7).
  (9) pooling           2×2 sum-pool of PSPs × 1.1 (``layers/pooling.py``: θ_pool is never set in the configs)
 (10) loss              ``kernel``: ½ Σ_{k,t} (a_k(t) − â_k(t))², â = ε ∗ ε ∗ (desired spike train of the
                        label neuron; none for the others): the official code filters the desired train
                        twice (``main.py`` builds the target through ``psp``, then ``functions/loss_f.py``'s
                        ``loss_kernel`` filters it again): at T = 5, τs = 3 â = [0, .111, .259, .407, .539];
                        ``kernel_target: single-filtered`` (ε ∗ desired, [0, .333, .556, .704, .803]), the
                        paper's equation read literally, is a declared option; ``count`` (N-MNIST):
                        e_k = (Σ_t a_k − c_k)/T with
                        c = desired/undesired counts, zero once on the right side, L = ½ Σ_k Σ_t e_k²
 (11) decision          argmax_k Σ_t a_k(t)
The network input is the normalised image, constant over t, through the same synaptic filter (4); event
frames likewise. Layers exchange PSPs, not spikes. Training: AdamW (lr 5e-4, PyTorch's default weight decay
0.01), gradient-norm clipping at 1, weights clamped to [−4, 4] after every step; linear weights
Kaiming-normal, convolutions PyTorch's default init, each × ``weight_scale`` (CIFAR-10 convolutions: 5).
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
    Paper,
    RunContext,
    TrainState,
    algorithms,
)
from snnbench.architectures import Conv, Dense, Dropout, Pool
from snnbench.errors import SnnbenchError
from snnbench.metrics import effective_operations, standard_operations
from snnbench.networks import SharedDropout
from snnbench.neurons.layers import SpikingLayer, TimeDistributed
from snnbench.pooling import avg_pool2d


class TSSLBPConfig(AlgorithmConfig):
    """Defaults of the official head configs (MNIST/Fashion-MNIST/CIFAR-10; N-MNIST in its suite entry)."""

    tau_m: float = Field(5.0, gt=1.0, description="membrane time constant (N-MNIST 8)")
    tau_s: float = Field(3.0, gt=1.0, description="synaptic time constant (N-MNIST 4; paper-era configs 2)")
    threshold: float = Field(1.0, gt=0.0, description="ϑ of every layer")
    loss: Literal["kernel", "count"] = Field("kernel", description="kernel (static sets) or count (N-MNIST)")
    desired_count: float = Field(15.0, gt=0.0, description="count loss: label neuron's target (N-MNIST 15)")
    undesired_count: float = Field(3.0, ge=0.0, description="count loss: other neurons' target (N-MNIST 3)")
    kernel_target: Literal["double-filtered", "single-filtered"] = Field(
        "double-filtered",
        description="kernel loss target: ε∗ε∗desired (official main.py + loss_f.py) or ε∗desired",
    )
    warmup: Literal["per-neuron", "per-layer", "none"] = Field(
        "per-neuron",
        description="silent-neuron remedy (8): official head per-neuron, or paper-era per-layer switch rule",
    )
    warmup_psp: float = Field(0.25, gt=0.0, description="per-neuron fallback where a(t) < warmup_psp / τs")
    warmup_rate: float = Field(0.1, ge=0.0, le=1.0, description="per-layer fallback while firing rate ≤ this")
    surrogate_width: float = Field(0.2, gt=0.0, description="fallback sigmoid width")
    max_inverse_du: float = Field(8.0, gt=0.0, description="clamp of 1/Δu (paper-era code 10)")
    pool_scale: float = Field(1.1, gt=0.0, description="sum-pool scale θ_pool")
    conv_weight_scale: float = Field(1.0, gt=0.0, description="× default init (CIFAR-10 configs 5)")
    linear_weight_scale: float = Field(1.0, gt=0.0, description="× Kaiming-normal init")
    lr: float = Field(5e-4, gt=0.0, description="AdamW (CIFAR-10 config 2e-4)")
    weight_decay: float = Field(0.01, ge=0.0, description="AdamW's default, in effect in the official code")
    grad_clip: float = Field(1.0, gt=0.0, description="gradient-norm clipping")
    weight_clip: float = Field(4.0, gt=0.0, description="weights clamped to [−w, w] after each step")


def psp(x: torch.Tensor, tau_s: float) -> torch.Tensor:
    """a(t) = (1 − 1/τs) a(t−1) + x(t)/τs over the leading time axis, eq. (4)."""
    a = torch.zeros_like(x[0])
    out = []
    for x_t in x:
        a = a * (1.0 - 1.0 / tau_s) + x_t / tau_s
        out.append(a)
    return torch.stack(out)


def fallback_derivative(u_minus_threshold: torch.Tensor, width: float) -> torch.Tensor:
    """σ'(x) = f / (width (1 + f)²), f = exp(clamp(−x / width, −8, 8)): the official fallback's derivative."""
    f = torch.exp(torch.clamp(-u_minus_threshold / width, -8.0, 8.0))
    return f / ((1.0 + f) ** 2 * width)


class TSSLBPFunction(torch.autograd.Function):
    """LIF forward (2)–(4) returning PSPs and spikes; TSSL-BP backward (5)–(8) to the input current."""

    @staticmethod
    def forward(ctx, current: torch.Tensor, cfg: TSSLBPConfig) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        u_reset = torch.zeros_like(current[0])
        a = torch.zeros_like(current[0])
        us, dus, spikes, psps = [], [], [], []
        for i_t in current:
            du = i_t - u_reset / cfg.tau_m  # (2)
            u = u_reset + du
            s = u > cfg.threshold  # (3)
            u_reset = u.masked_fill(s, 0.0)
            a = a * (1.0 - 1.0 / cfg.tau_s) + s.to(current.dtype) / cfg.tau_s  # (4)
            us.append(u)
            dus.append(du)
            spikes.append(s)
            psps.append(a)
        a_all, s_all = torch.stack(psps), torch.stack(spikes)
        warm = a_all < cfg.warmup_psp / cfg.tau_s
        ctx.save_for_backward(torch.stack(us), torch.stack(dus), s_all, warm)
        ctx.cfg = cfg
        ctx.mark_non_differentiable(s_all)
        return a_all, s_all

    @staticmethod
    def backward(ctx, grad_a: torch.Tensor, _grad_s: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        u, du, s, warm = ctx.saved_tensors
        cfg: TSSLBPConfig = ctx.cfg
        grad_s = psp(grad_a.flip(0), cfg.tau_s).flip(0)  # (5): ε is causal, so S is the filter run backwards
        inverse_du = torch.where(s, 1.0 / du, 0.0).clamp(max=cfg.max_inverse_du)  # Δu > 0 wherever s = 1
        delta = torch.empty_like(grad_a)
        carried = torch.zeros_like(grad_a[0])
        for t in range(grad_a.shape[0] - 1, -1, -1):  # (6), (7)
            fired = inverse_du[t] * (grad_s[t] + carried * u[t] / cfg.tau_m)
            carried = torch.where(s[t], fired, carried * (1.0 - 1.0 / cfg.tau_m))
            delta[t] = carried
        if cfg.warmup == "none":
            return delta, None
        fallback = grad_s * fallback_derivative(u - cfg.threshold, cfg.surrogate_width)  # (8)
        if cfg.warmup == "per-neuron":
            return torch.where(warm, fallback, delta), None
        return (fallback if s.float().mean() <= cfg.warmup_rate else delta), None


class TSSLNeuron(SpikingLayer):
    """LIF layer trained by TSSL-BP; outputs PSPs ``[T, B, ...]`` (its last spikes in ``last_spikes``)."""

    output_is_spikes = False

    def __init__(self, cfg: TSSLBPConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        a, self.last_spikes = TSSLBPFunction.apply(current, self.cfg)
        return a


class SumPool(nn.Module):
    """k×k sum-pool (stride k) of PSPs × ``scale``, eq. (9)."""

    def __init__(self, size: int, scale: float) -> None:
        super().__init__()
        self.size, self.scale = size, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        y = avg_pool2d(x.reshape(T * B, *x.shape[2:]), self.size) * (self.size**2 * self.scale)
        return y.reshape(T, B, *y.shape[1:])


class PSPSynapse(TimeDistributed):
    """A conv/linear synapse on PSPs. For the operation count it acts on the events behind them: the PSP
    filter is linear, so W (ε ∗ s) = ε ∗ (W s) and hardware adds a row of W per presynaptic spike; the
    events are recovered exactly from the PSPs, s(t) = τs (a(t) − (1 − 1/τs) a(t−1)) / (pool scale)."""

    def __init__(self, module: nn.Module, tau_s: float, event_scale: float | None) -> None:
        super().__init__(module)
        self.tau_s = tau_s
        self.event_scale = event_scale  # None: analog network input (MACs)

    def count_operations(self, x: torch.Tensor) -> tuple[int, bool, int]:
        layer = self.module
        if self.event_scale is None:
            ops, _, dense = standard_operations(layer, x.flatten(0, 1))
            return ops, False, dense
        previous = torch.cat([torch.zeros_like(x[:1]), x[:-1]])
        events = torch.round(self.tau_s * (x - (1.0 - 1.0 / self.tau_s) * previous) / self.event_scale)
        events = events.flatten(0, 1)
        geometry = {}
        if isinstance(layer, nn.Conv2d):
            geometry = {"stride": layer.stride, "padding": layer.padding}
        ops = effective_operations(events, layer.weight, **geometry)
        dense = effective_operations(torch.ones_like(events[:1]), torch.ones_like(layer.weight), **geometry)
        return ops, True, dense


class TSSLNet(nn.Module):
    """Input PSP filter, the hidden layers and the output layer; returns the output PSPs ``[T, B, C]``."""

    def __init__(self, layers: nn.Sequential, tau_s: float) -> None:
        super().__init__()
        self.layers, self.tau_s = layers, tau_s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(psp(x, self.tau_s))


def desired_spike_train(T: int) -> torch.Tensor:
    """The label neuron's desired spikes (``main.py``): T = 5k → [0,1,1,1,1] repeated, T = 10k → [0,1]
    repeated; other T continue the same rule (T < 10: silent first step then spikes; T ≥ 10: alternate;
    T = 1: one spike)."""
    if T == 1:
        return torch.ones(1)
    if T < 10:
        return torch.tensor([0.0] + [1.0] * (T - 1))
    return torch.arange(T).remainder(2).float()


def kernel_target(T: int, tau_s: float, filtering: str = "double-filtered") -> torch.Tensor:
    """â(t) of the kernel loss (10): the desired train through ε twice (official) or once."""
    target = psp(desired_spike_train(T), tau_s)
    return psp(target, tau_s) if filtering == "double-filtered" else target


@algorithms.register("tssl-bp")
class TSSLBP(Algorithm):
    """PSP-passing LIF network trained with TSSL-BP's inter-/intra-neuron spike-time gradient."""

    paper = Paper(
        authors="Zhang & Li",
        title="Temporal Spike Sequence Learning via Backpropagation for Deep Spiking Neural Networks",
        venue="NeurIPS",
        year=2020,
        url="https://arxiv.org/abs/2002.10085",
        equations="LIF with first-order synaptic PSP; inter-neuron ∂a/∂t_f·∂t_f/∂u at firing steps, "
        "intra-neuron reset dependence; per-neuron warm-up fallback; kernel (spike-sequence) or count loss",
    )
    description = (
        "TSSL-BP: spike-time (inter-neuron) and reset (intra-neuron) gradients, PSP layers, kernel loss"
    )
    Config = TSSLBPConfig
    default_encoding = "direct"

    def build(self, T: int) -> nn.Module:
        cfg: TSSLBPConfig = self.config  # type: ignore[assignment]
        modules: list[nn.Module] = []
        shape = tuple(self.data.input_shape)
        event_scale: float | None = None  # the network input is analog
        for layer in (*self.arch.layers, Dense(self.data.num_classes)):
            if isinstance(layer, Pool):
                if layer.kind not in ("default", "avg") or len(shape) != 3:
                    raise SnnbenchError(f"tssl-bp pools PSPs with its scaled sum-pool (P2), not {layer}")
                modules.append(SumPool(layer.size, cfg.pool_scale))
                shape = (shape[0], shape[1] // layer.size, shape[2] // layer.size)
                event_scale = None if event_scale is None else event_scale * cfg.pool_scale
                continue
            if isinstance(layer, Dropout):
                modules.append(SharedDropout(layer.p))
                continue
            if isinstance(layer, Conv):
                if len(shape) != 3:
                    raise SnnbenchError(f"tssl-bp: a convolution needs image input, got {shape}")
                synapse: nn.Module = nn.Conv2d(
                    shape[0], layer.channels, layer.kernel, layer.stride, layer.pad, bias=False
                )
                with torch.no_grad():
                    synapse.weight.mul_(cfg.conv_weight_scale)
                shape = (
                    layer.channels,
                    *((n + 2 * layer.pad - layer.kernel) // layer.stride + 1 for n in shape[1:]),
                )
            elif isinstance(layer, Dense) and not layer.recurrent:
                if len(shape) > 1:
                    modules.append(TimeDistributed(nn.Flatten()))
                    shape = (math.prod(shape),)
                synapse = nn.Linear(shape[0], layer.units, bias=False)
                with torch.no_grad():
                    nn.init.kaiming_normal_(synapse.weight)
                    synapse.weight.mul_(cfg.linear_weight_scale)
                shape = (layer.units,)
            else:
                raise SnnbenchError(f"tssl-bp supports conv, dense, P2 and dropout layers, not {layer}")
            modules += [PSPSynapse(synapse, cfg.tau_s, event_scale), TSSLNeuron(cfg)]
            event_scale = 1.0
        return TSSLNet(nn.Sequential(*modules), cfg.tau_s)

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: TSSLBPConfig = self.config  # type: ignore[assignment]
        return TrainState(torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay))

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Eq. (10) on output PSPs ``[T, B, C]``, summed over the batch as the official code does."""
        cfg: TSSLBPConfig = self.config  # type: ignore[assignment]
        T = out.shape[0]
        label = F.one_hot(y, out.shape[-1]).to(out.dtype)  # [B, C]
        if cfg.loss == "kernel":
            target = kernel_target(T, cfg.tau_s, cfg.kernel_target).to(out)  # [T]
            return 0.5 * ((out - target.view(T, 1, 1) * label) ** 2).sum()
        counts = out.sum(0)
        goal = cfg.undesired_count + (cfg.desired_count - cfg.undesired_count) * label
        error = (counts - goal) / T
        satisfied = ((label == 1) & (error > 0)) | ((label == 0) & (error < 0))
        return 0.5 * T * (error.masked_fill(satisfied, 0.0) ** 2).sum()

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        cfg: TSSLBPConfig = self.config  # type: ignore[assignment]
        assert state.optimizer is not None
        net.train()
        tally = EpochTally()
        for x, y in batches:
            out = net(ctx.encode(self.data.normalize(x)))
            loss = self.loss(out, y)
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            state.optimizer.step()
            with torch.no_grad():
                for p in net.parameters():
                    p.clamp_(-cfg.weight_clip, cfg.weight_clip)
            tally.add(loss.item(), out.detach().sum(0), y)
        return tally.summary()

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return net(ctx.encode(self.data.normalize(x))).sum(0)  # eq. (11)
