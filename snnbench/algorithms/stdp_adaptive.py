"""Unsupervised STDP SNN with adaptive synaptic filter, adaptive threshold balance and adaptive lateral
inhibition, read out by label voting.

Dong, Zhao, Li & Zeng, "An Unsupervised STDP-based Spiking Neural Network Inspired By Biologically Plausible
Learning Rules and Connections", Neural Networks 165 (2023), arXiv 2207.02727. The paper's text could not be
read here (abstract only); the equations below are those of the official code, BrainCog-X/Brain-Cog @3998fd5
``examples/Perception_and_Learning/UnsupervisedSTDP/codef.py`` (cited as ``codef:LINE``) and the BrainCog
classes it uses (``braincog/base/node/node.py`` ``LIFSTDPNode``, ``braincog/base/strategy/surrogate.py``
``STDPGrad``, ``braincog/base/connection/layer.py`` ``WTALayer``,
``braincog/base/strategy/LateralInhibition.py``), re-derived, no code copied.

Network (``12C3-MP2-6400``): static image x ∈ [0, 1] (``ToTensor`` only, codef:405) → convolution W_c
(1 → 12, 3×3, padding 1, no bias) of spiking neurons → 2×2 max pooling of their spike counts → division by
each sample's largest pooled count → fully connected W_f (2,352 → 6,400, no bias) of spiking neurons →
label voting. Per forward, for each layer (its input is constant over the T steps):

Convolutional layer, current u = relu(W_c * x):
  (1) threshold balance  θ_c = max_{b,h,w} (W_c * x)_{b,c,h,w} + 10⁻⁴ (over the batch, codef:136-140)
  (2) synaptic filter    I = θ / (1 + exp(−(u − 0.4 θ) · 8 / θ))                      (codef:88-89)
  (3) neuron, per step   v ← λ v + I;  s = [v > θ];  v ← v (1 − s)  (λ = e^{−1/100}, codef:48; node:641-647)
  (4) winner-take-all    at every (b, h, w) one spiking channel is kept, drawn at random: s ← s · [s·r ≥
                         max_c s·r], r ~ U(0, 1) (only at steps where some neuron of the batch spikes)
  (5) adaptive lateral inhibition  v ← v − 1.625 θ_c (max_c s − s)  (mode "threshold", codef:63, 337)
Fully connected layer, current I = W_f y (y the normalised pooled counts):
  (3') v ← 0.99 v + I;  s = [v > θ_j]; v ← v (1 − s)   (codef:145); (4') winner-take-all over the neurons;
  (5') v ← v − 25 · max_j I_j · (max_j s − s)   (mode "max", codef:159, 329)
  θ_j is set once, at the first training batch of the layer, to 3 · max_b I_bj (codef:162-164).

Learning (sample-temporal-batch STDP, ``STDPGrad``: the gradient of the spike count through each step's
spike is the spike itself, so the update is post-spike count × presynaptic term; codef:420-487):
  conv, N_{bchw} the spike counts over T and f the filtered current (1)-(2) as a function of W_c:
  (6) G = (1 / (B H W)) ∂/∂W_c Σ N · f   (θ_c of (1) differentiated through its arg-max element)
  (7) W_c ← W_c + η_c (G − min G − 0.3 · max_{k} min_{in} G)   per output channel (codef:110-119, 430-434)
  (8) W_c ← (W_c − mean) / std per output channel (biased std, codef:121-133; also at initialisation)
  fc, N_bj the spike counts over T:
  (9)  W_f ← W_f + η_f Σ_b N_bj y_bi    (sum over samples and steps; the 0.05 offset of the code is computed
       but never used, codef:207-215)
  (10) θ_j ← θ_j + 0.002 Σ_b I_bj N_bj; if max θ > 350 every θ is lowered by max θ − 350 (codef:236-241)
  (11) W_f ← clip(W_f, 0, 1); each row scaled to a maximum of 0.1 (codef:218-229; also at initialisation)
Schedule (codef:420-487): 3 epochs of the conv layer alone (T = 100, η_c = 0.1), then the conv layer is
frozen and the fc layer trains (T = 200 for the whole network, η_f = 10⁻⁴), batch 1024.
Label voting (codef:287-327): after each fc epoch, from the spike counts of that epoch's training pass,
  (12) R_jk ← R_jk + mean_{b: y_b = k} N_bj,   a_j = argmax_k R_jk,   then R ← R / 2   (codef:486-487)
  (13) score_k = mean_{j: a_j = k} N_j  (0 for a class with no neuron), prediction argmax_k.
Deviations: docs/algorithms/stdp-adaptive.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from snnbench.algorithms import (
    Algorithm,
    AlgorithmConfig,
    Paper,
    RunContext,
    TrainState,
    algorithms,
)
from snnbench.architectures import Conv, Dense, Pool, conv_output_shape
from snnbench.errors import SnnbenchError
from snnbench.neurons.layers import SpikingLayer
from snnbench.wta import native_available, simulate_native

SOURCE = "BrainCog-X/Brain-Cog@3998fd5:examples/Perception_and_Learning/UnsupervisedSTDP/codef.py"


class StdpAdaptiveConfig(AlgorithmConfig):
    """Official values of codef.py @3998fd5 (line numbers in each description)."""

    conv_epochs: int = Field(
        3, ge=0, description="epochs of conv STDP before the fc layer trains (codef:422)"
    )
    conv_timesteps: int = Field(
        100, gt=0, description="steps per image while the conv layer trains (codef:402)"
    )
    conv_lr: float = Field(0.1, ge=0.0, description="SGD rate of the conv STDP update η_c (codef:421)")
    conv_offset: float = Field(0.3, description="offset subtracted in the conv update, × max (codef:40)")
    conv_tau: float = Field(100.0, gt=0.0, description="conv membrane decay e^{−1/τ} (codef:48)")
    conv_inhibition: float = Field(1.625, ge=0.0, description="conv lateral inhibition × θ (codef:337)")
    filter_centre: float = Field(0.4, description="synaptic filter midpoint, × θ (codef:89: 4·n/10)")
    filter_slope: float = Field(8.0, gt=0.0, description="synaptic filter slope, × 1/θ (codef:89: 8/n)")
    threshold_epsilon: float = Field(1e-4, gt=0.0, description="added to the conv threshold (codef:138)")
    fc_lr: float = Field(1e-4, ge=0.0, description="SGD rate of the fc STDP update η_f (codef:449)")
    fc_decay: float = Field(0.99, gt=0.0, le=1.0, description="fc membrane decay per step (codef:145)")
    fc_inhibition: float = Field(25.0, ge=0.0, description="fc lateral inhibition × max current (codef:329)")
    fc_threshold_scale: float = Field(
        3.0, gt=0.0, description="initial fc threshold, × the first batch's max current (codef:163)"
    )
    threshold_plus: float = Field(0.002, ge=0.0, description="fc threshold growth per I·N (codef:448)")
    threshold_cap: float = Field(350.0, gt=0.0, description="largest fc threshold (codef:239)")
    fc_weight_max: float = Field(0.1, gt=0.0, description="each fc row rescaled to this maximum (codef:229)")
    rate_decay: float = Field(
        0.5, ge=0.0, description="voting rates carried to the next epoch, × this (codef:487)"
    )


# ---- pure pieces of the rules -----------------------------------------------------------------------------
def conv_threshold(current: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Eq. (1): ``[1, C, 1, 1]`` the largest current of each channel over batch and positions, + ε."""
    return current.amax(dim=(0, 2, 3), keepdim=True) + epsilon


def synaptic_filter(current: torch.Tensor, theta: torch.Tensor, centre: float, slope: float) -> torch.Tensor:
    """Eq. (2): θ / (1 + exp(−(relu(I) − centre·θ)·slope/θ)) — a sigmoid from 0 to θ, steepest at centre·θ."""
    return theta * torch.sigmoid((current.clamp(min=0.0) - centre * theta) * (slope / theta))


def winner_take_all(spikes: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Eq. (4): along dim 1, keep one of the spiking neurons, drawn uniformly (U(0, 1) scores of the whole
    tensor, drawn only when some element spikes, as the official layer)."""
    if not bool((spikes > 0).any()):
        return spikes
    score = spikes * torch.rand(spikes.shape, generator=generator, dtype=spikes.dtype, device=spikes.device)
    return spikes * (score >= score.amax(dim=1, keepdim=True)).to(spikes.dtype)


def simulate(
    current: torch.Tensor,
    threshold: torch.Tensor,
    decay: float,
    inhibition: torch.Tensor,
    T: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Eqs. (3)-(5) for T steps of a constant input current ``[B, N, ...]`` (neurons along dim 1): the spike
    counts of the winners. ``inhibition`` (broadcast to the current): what a position's non-winners lose
    when a neuron there wins (conv: 1.625 θ_c; fc: 25 · max_j I_bj). On CPU the native loop of
    :mod:`snnbench.wta` runs (same counts and random stream as :func:`simulate_torch`, tested); elsewhere,
    or without a compiler, :func:`simulate_torch`."""
    counts = simulate_native(current, threshold, decay, inhibition, T, generator)
    if counts is not None:
        return counts
    return simulate_torch(current, threshold, decay, inhibition, T, generator)


def simulate_torch(
    current: torch.Tensor,
    threshold: torch.Tensor,
    decay: float,
    inhibition: torch.Tensor,
    T: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """:func:`simulate` in torch ops, step by step (the fallback and the reference of the native loop)."""
    v = torch.zeros_like(current)
    counts = torch.zeros_like(current)
    for _ in range(T):
        v = v * decay + current
        fired = (v > threshold).to(current.dtype)
        v = v * (1.0 - fired)
        if bool(fired.any()):
            won = winner_take_all(fired, generator)
            v = v - inhibition * (won.amax(dim=1, keepdim=True) - won)
            counts += won
    return counts


def conv_update(
    x: torch.Tensor,
    weight: torch.Tensor,
    counts: torch.Tensor,
    padding: int,
    cfg: StdpAdaptiveConfig,
) -> torch.Tensor:
    """Eqs. (6)-(7): the conv STDP step direction (before × η_c) from the input ``x`` and spike counts."""
    w = weight.detach().clone().requires_grad_(True)
    raw = F.conv2d(x, w, padding=padding)
    # θ_c as the official chained max keeps it: one element per channel (first largest in w, then h, then b)
    flat = raw.permute(1, 3, 2, 0).reshape(raw.shape[1], -1)
    index = flat.detach().argmax(dim=1, keepdim=True)
    theta = (flat.gather(1, index) + cfg.threshold_epsilon).view(1, -1, 1, 1)
    filtered = synaptic_filter(raw, theta, cfg.filter_centre, cfg.filter_slope)
    b, _, h, wd = raw.shape
    (grad,) = torch.autograd.grad((counts * filtered).sum() / (b * h * wd), w)
    low = grad.amin(dim=(1, 2, 3), keepdim=True)
    high = grad.amin(dim=1, keepdim=True).amax(dim=(2, 3), keepdim=True)
    return grad - low - cfg.conv_offset * high


def standardise(weight: torch.Tensor) -> torch.Tensor:
    """Eq. (8): zero mean, unit (biased) standard deviation per output channel."""
    centred = weight - weight.mean(dim=tuple(range(1, weight.dim())), keepdim=True)
    return centred / centred.flatten(1).std(dim=1, unbiased=False).view(-1, *[1] * (weight.dim() - 1))


def fc_update(inputs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Eq. (9): ``[post, pre]`` = Σ_b N_bj y_bi (summed over samples; N already sums the steps)."""
    return counts.t() @ inputs


def adapt_threshold(
    theta: torch.Tensor, current: torch.Tensor, counts: torch.Tensor, plus: float, cap: float
) -> torch.Tensor:
    """Eq. (10): θ_j + plus · Σ_b I_bj N_bj, then all lowered together so that none exceeds ``cap``."""
    theta = theta + plus * (current * counts).sum(0)
    excess = theta.max() - cap
    return theta - excess if excess > 0 else theta


def bound_rows(weight: torch.Tensor, row_max: float, inplace: bool = False) -> torch.Tensor:
    """Eq. (11): clip to [0, 1], then each row scaled so that its largest weight is ``row_max`` (a row with
    no positive weight stays zero). ``inplace``: in ``weight``'s memory (no 60 MB temporaries per fc step)."""
    weight = weight.clamp_(0.0, 1.0) if inplace else weight.clamp(0.0, 1.0)
    top = weight.amax(dim=1, keepdim=True)
    # a row without a positive weight is multiplied by 1: torch.where(top > 0, weight · scale, weight)
    return weight.mul_(torch.where(top > 0, row_max / top.clamp(min=1e-30), torch.ones_like(top)))


def assign_labels(
    rates: torch.Tensor, counts: torch.Tensor, labels: torch.Tensor, classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (12) before the decay: ``rates`` ``[N, classes]`` plus each class's mean count per neuron (classes
    absent from ``labels`` unchanged); returns (new rates, assignments = argmax over classes)."""
    rates = rates.clone()
    for k in range(classes):
        members = labels == k
        if bool(members.any()):
            rates[:, k] += counts[members].float().mean(0)
    return rates, rates.argmax(dim=1)


def vote(counts: torch.Tensor, assignments: torch.Tensor, classes: int) -> torch.Tensor:
    """Eq. (13): ``[B, classes]`` the mean count of the neurons assigned to each class (0 where none is)."""
    member = F.one_hot(assignments.clamp(min=0), classes).to(counts.dtype)
    member = member * (assignments >= 0).unsqueeze(1).to(counts.dtype)
    size = member.sum(0)
    return (counts @ member) / size.clamp(min=1.0)


# ---- network ----------------------------------------------------------------------------------------------
class ConvSpiking(SpikingLayer):
    """The conv layer's neurons, eqs. (1)-(5): filtered current in, spike counts over T out."""

    def __init__(self, cfg: StdpAdaptiveConfig) -> None:
        super().__init__()
        self.cfg, self.decay, self.steps = cfg, math.exp(-1.0 / cfg.conv_tau), 1

    def forward(self, raw: torch.Tensor, T: int, generator: torch.Generator | None) -> torch.Tensor:
        cfg, self.steps = self.cfg, T
        theta = conv_threshold(raw, cfg.threshold_epsilon)
        current = synaptic_filter(raw, theta, cfg.filter_centre, cfg.filter_slope)
        return simulate(current, theta, self.decay, cfg.conv_inhibition * theta, T, generator)

    def spike_statistics(self, output: torch.Tensor) -> tuple[int, int]:
        return int(output.sum()), output.numel() * self.steps


class FcSpiking(SpikingLayer):
    """The fc layer's neurons, eqs. (3')-(5'), with the per-neuron threshold θ (a buffer)."""

    def __init__(self, n: int, cfg: StdpAdaptiveConfig) -> None:
        super().__init__()
        self.cfg, self.steps = cfg, 1
        self.register_buffer("theta", torch.zeros(n))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))  # θ set from a first batch

    def forward(self, current: torch.Tensor, T: int, generator: torch.Generator | None) -> torch.Tensor:
        cfg, self.steps = self.cfg, T
        inhibition = cfg.fc_inhibition * current.amax(dim=1, keepdim=True)
        return simulate(current, self.theta, cfg.fc_decay, inhibition, T, generator)

    def spike_statistics(self, output: torch.Tensor) -> tuple[int, int]:
        return int(output.sum()), output.numel() * self.steps


class StdpAdaptiveNet(nn.Module):
    """Conv (WTA, inhibition) → max-pool → per-sample normalisation → fc (WTA, inhibition) → voting."""

    def __init__(
        self,
        in_shape: tuple[int, ...],
        conv: Conv,
        pool: int,
        units: int,
        classes: int,
        cfg: StdpAdaptiveConfig,
    ) -> None:
        super().__init__()
        self.cfg, self.classes, self.pool_size = cfg, classes, pool
        self.conv = nn.Conv2d(in_shape[0], conv.channels, conv.kernel, conv.stride, conv.pad, bias=False)
        c, h, w = conv_output_shape(tuple(in_shape), conv)
        features = c * (h // pool) * (w // pool)
        if features < 1:
            raise SnnbenchError(f"stdp-adaptive: pooling {pool} leaves nothing of the {h}×{w} conv output")
        self.fc = nn.Linear(features, units, bias=False)
        for p in self.parameters():
            p.requires_grad_(False)
        with torch.no_grad():  # the official initialisation: PyTorch's default, then eqs. (8) and (11)
            self.conv.weight.copy_(standardise(self.conv.weight))
            self.fc.weight.copy_(bound_rows(self.fc.weight, cfg.fc_weight_max))
        self.conv_neurons = ConvSpiking(cfg)
        self.fc_neurons = FcSpiking(units, cfg)
        self.register_buffer("rates", torch.zeros(units, classes))
        self.register_buffer("assignments", torch.full((units,), -1, dtype=torch.long))

    def conv_counts(self, x: torch.Tensor, T: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.conv_neurons(self.conv(x), T, generator)

    def features(self, counts: torch.Tensor) -> torch.Tensor:
        """Max-pool the conv counts, divide each sample by its largest value (a silent sample stays 0)."""
        pooled = F.max_pool2d(counts, self.pool_size).flatten(1)
        top = pooled.amax(dim=1, keepdim=True)
        return pooled / torch.where(top > 0, top, torch.ones_like(top))

    def forward(
        self, x: torch.Tensor, T: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fc inputs y, fc currents I, fc spike counts N) for images ``[B, C, H, W]``."""
        y = self.features(self.conv_counts(x, T, generator))
        current = self.fc(y)
        return y, current, self.fc_neurons(current, T, generator)


@algorithms.register("stdp-adaptive")
class StdpAdaptive(Algorithm):
    """Unsupervised STB-STDP in a conv and a fc layer with adaptive filter, threshold and inhibition."""

    paper = Paper(
        authors="Dong, Zhao, Li & Zeng",
        title="An Unsupervised STDP-based Spiking Neural Network Inspired By Biologically Plausible Learning "
        "Rules and Connections",
        venue="Neural Networks 165",
        year=2023,
        url="https://arxiv.org/abs/2207.02727",
        equations="conv with adaptive threshold balance (θ = max current) and sigmoid synaptic filter, WTA "
        "and adaptive lateral inhibition; sample-temporal-batch STDP (post-spike × presynaptic term, "
        "offset, SGD); fc layer with adaptive threshold θ += 0.002 I N; label-voting read-out",
    )
    description = "unsupervised STDP (conv then fc, WTA, adaptive filter/threshold/inhibition), label voting"
    Config = StdpAdaptiveConfig
    default_encoding = "direct"
    version = 1
    changelog = ("1: first version",)

    def build(self, T: int) -> nn.Module:
        cfg: StdpAdaptiveConfig = self.config  # type: ignore[assignment]
        layers = self.arch.layers
        if (
            len(layers) != 3
            or not isinstance(layers[0], Conv)
            or not isinstance(layers[1], Pool)
            or layers[1].kind not in ("max", "default")
            or not isinstance(layers[2], Dense)
            or layers[2].recurrent
        ):
            raise SnnbenchError(
                "stdp-adaptive needs conv → max-pool → fully connected (official 12C3-MP2-6400), not "
                f"{self.arch.notation!r}"
            )
        conv, pool, dense = layers
        return StdpAdaptiveNet(
            tuple(self.data.input_shape), conv, pool.size, dense.units, self.data.num_classes, cfg
        )

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        if ctx.device.type == "cpu":
            native_available()  # the native simulation loop built before the timed epochs (first use only)
        return TrainState(extra={"last_loss": 1.0})  # no optimiser: eqs. (7) and (9) are plain SGD steps

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        cfg: StdpAdaptiveConfig = self.config  # type: ignore[assignment]
        assert isinstance(net, StdpAdaptiveNet)
        net.train()
        if ctx.epoch < cfg.conv_epochs:
            return self.conv_epoch(net, batches, ctx)
        counts_all, labels_all = [], []
        store = torch.uint8 if ctx.T <= 255 else torch.int32
        with torch.no_grad():
            for x, y in batches:
                y_in, current, counts = self.fc_step(net, x, ctx)
                counts_all.append(counts.to(store).cpu())
                labels_all.append(y.cpu())
        counts, labels = torch.cat(counts_all), torch.cat(labels_all)
        rates, assignments = assign_labels(net.rates.cpu(), counts, labels, net.classes)
        net.assignments.copy_(assignments)
        net.rates.copy_(rates * cfg.rate_decay)
        predicted = vote(counts.float(), assignments, net.classes).argmax(1)
        error = float((predicted != labels).double().mean())
        state.extra["last_loss"] = error
        return {"loss": error, "train_top1": 100.0 * (1.0 - error)}

    def conv_epoch(
        self, net: StdpAdaptiveNet, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], ctx: RunContext
    ) -> dict[str, float]:
        """Eqs. (6)-(8) per batch, the conv layer alone (T = conv_timesteps); loss: 1 (no read-out yet)."""
        cfg: StdpAdaptiveConfig = self.config  # type: ignore[assignment]
        rate, seen = 0.0, 0
        for x, _ in batches:
            with torch.no_grad():
                counts = net.conv_counts(x, cfg.conv_timesteps, ctx.generator)
            step = conv_update(x, net.conv.weight, counts, net.conv.padding[0], cfg)
            with torch.no_grad():
                net.conv.weight.copy_(standardise(net.conv.weight + cfg.conv_lr * step))
            rate += float(counts.sum()) / (counts[0].numel() * cfg.conv_timesteps)
            seen += len(x)
        return {"loss": 1.0, "conv_spikes_per_neuron_step": rate / max(seen, 1)}

    def fc_step(
        self, net: StdpAdaptiveNet, x: torch.Tensor, ctx: RunContext
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One training batch of the fc layer: forward, then eqs. (9)-(11)."""
        cfg: StdpAdaptiveConfig = self.config  # type: ignore[assignment]
        neurons = net.fc_neurons
        y = net.features(net.conv_counts(x, ctx.T, ctx.generator))
        current = net.fc(y)
        if not bool(neurons.ready):  # the official first-batch threshold (codef:162-164)
            neurons.theta.copy_(cfg.fc_threshold_scale * current.amax(dim=0))
            neurons.ready.fill_(True)
        counts = neurons(current, ctx.T, ctx.generator)
        w = net.fc.weight
        step = fc_update(y, counts).mul_(cfg.fc_lr).add_(w)  # w + η_f Σ_b N y, in the update's memory
        w.copy_(bound_rows(step, cfg.fc_weight_max, inplace=True))
        neurons.theta.copy_(
            adapt_threshold(neurons.theta, current, counts, cfg.threshold_plus, cfg.threshold_cap)
        )
        return y, current, counts

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        assert isinstance(net, StdpAdaptiveNet)
        if not bool((net.assignments >= 0).any()):  # no fc epoch yet: no neuron has a class
            return torch.zeros(len(x), net.classes, device=x.device)
        _, _, counts = net(x, ctx.T, ctx.generator)
        return vote(counts, net.assignments, net.classes)


def official_summary() -> dict[str, Any]:
    """The official configuration (codef.py @3998fd5), for the fidelity cards and tests."""
    return {
        "arch": "stdp-adaptive-mnist",
        "timesteps": [200],  # codef:446 (T of the fc phase and of the test)
        "batch_size": 1024,  # codef:401, 445
        "fc_epochs": 1000,  # codef:457, best test epoch kept (codef:520-521)
        **StdpAdaptiveConfig().model_dump(),
    }
