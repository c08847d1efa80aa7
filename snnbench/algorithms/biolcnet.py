"""BioLCNet: a locally connected SNN trained by STDP (features) and reward-modulated STDP (decoder).

Ghaemi, Mirzaei, Nouri & Kheradpisheh, "BioLCNet: Reward-modulated Locally Connected Spiking Neural
Networks", arXiv 2109.05539 (2021; LOD 2022, doi 10.1007/978-3-031-25891-6_42). The paper's text could not
be read here; the equations below are those of the official code (Singular-Brain/BioLCNet 35c2c3c:
``biolcnet.py``, ``learning.py``, ``reward.py``, ``main.ipynb``) and of the BindsNET classes it builds on
(``LocalConnection``, ``AdaptiveLIFNodes``, ``LIFNodes``, ``MSTDP``), re-derived, no code copied.

Network: Poisson input (rate ``intensity``·x Hz, dt = 1 ms) → locally connected hidden layer (C channels per
position, own weights per position, BindsNET ``LocalConnection``) of adaptive-threshold LIF neurons with
recurrent inhibition −w_inh between the channels of one position → decoding layer of ``neurons_per_class``
LIF neurons per class with inhibition −w_inh between neurons of different classes. Per step t (BindsNET
order: layers in turn, each seeing the current spikes of the layer before and its own of step t − 1):
  (1) v ← v_rest + e^{−1/τ_v}(v − v_rest);  v ← v + I (not while refractory);  s = [v ≥ ϑ + θ];
      on a spike v ← v_reset, 5 refractory steps; hidden only, while training: θ ← e^{−1/τ_θ} θ + θ₊ Σ_b s
  (2) traces x ← e^{−1/τ_x} x, set to 1 at a spike (non-additive traces)
Hidden layer, unsupervised STDP (BindsNET ``PostPre``), w_ij = synapse pre j → post i inside i's field:
  (3) Δw_ij = ν_post x_j s_i − ν_pre s_j x_i, summed over the batch; w clipped to [w_min, w_max], zero
      outside the receptive field; after each presentation Σ_j w_ij = norm · k² for every hidden neuron i
Decoding layer, R-STDP (BindsNET ``MSTDP``, Florian 2007), from the decision on:
  (4) P⁺_j ← e^{−1/τ₊} P⁺_j + a₊ s_j,  P⁻_i ← e^{−1/τ₋} P⁻_i + a₋ s_i (a₊ = 1, a₋ = −1),
      e_ij(t) = P⁺_j s_i + s_j P⁻_i
  (5) w_ij ← clip(w_ij + ν r e_ij(t − 1)) (the eligibility of the step before, as MSTDP applies it)
Reward (official ``scalar`` variant): the class whose population fired most in the decision window is the
decision; r = +1 (``reward``) if it is the label, −1 (``punishment``) otherwise, held over the learning
window.
Presentation of one image (T = the test latency, official 512): observation T/2 steps, decision T/2 steps
(spikes counted), then, in training, T/2 learning steps with r on. Training: ``feature_samples`` images of
STDP on the hidden layer (T/2 steps each, official pre-training), then the hidden weights are frozen and
``output_samples`` images of R-STDP. Deviations: docs/algorithms/biolcnet.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
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
from snnbench.architectures import Conv, conv_output_shape
from snnbench.errors import SnnbenchError
from snnbench.neurons.layers import SpikingLayer


class BioLCNetConfig(AlgorithmConfig):
    """Official values: Singular-Brain/BioLCNet ``main.ipynb`` (classification block) and
    ``feature_extraction_pretraining.py``; neuron and rule constants not set there are BindsNET's defaults."""

    intensity: float = Field(
        128.0, gt=0.0, description="Poisson rate of a white pixel in Hz at dt = 1 ms (official 128)"
    )
    crop_size: int = Field(22, gt=0, description="centre crop of the image (official crop_size 22 on MNIST)")
    neurons_per_class: int = Field(
        100, gt=0, description="decoding neurons per class (official n_neurons 1000 for 10 classes)"
    )
    observation_fraction: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="share of the T test steps before the decision window (official 256 of 512)",
    )
    feature_samples: int = Field(
        2000, ge=0, description="images of hidden-layer STDP before it is frozen (official n_train 2000)"
    )
    output_samples: int = Field(
        10000, gt=0, description="images of decoder R-STDP after that (official n_train 10000)"
    )
    nu_pre: float = Field(1e-4, ge=0.0, description="STDP depression rate ν_pre (official nu_LC[0])")
    nu_post: float = Field(1e-2, ge=0.0, description="STDP potentiation rate ν_post (official nu_LC[1])")
    nu_output: float = Field(0.1, ge=0.0, description="R-STDP rate ν (official nu_Output 0.1)")
    tc_trace: float = Field(20.0, gt=0.0, description="STDP trace time constant in steps (official tc_trace)")
    tc_eligibility: float = Field(
        20.0, gt=0.0, description="R-STDP P⁺/P⁻ time constants (BindsNET MSTDP tc_plus = tc_minus = 20)"
    )
    a_plus: float = Field(
        1.0, description="R-STDP P⁺ increment per presynaptic spike (BindsNET MSTDP a_plus 1)"
    )
    a_minus: float = Field(
        -1.0, description="R-STDP P⁻ increment per postsynaptic spike (BindsNET MSTDP a_minus −1)"
    )
    wmin: float = Field(0.0, description="weight lower bound (official wmin)")
    wmax: float = Field(1.0, description="weight upper bound (official wmax)")
    norm_lc: float = Field(
        0.25, gt=0.0, description="mean hidden weight per field after normalisation (official 0.25 × k²)"
    )
    theta_plus: float = Field(0.05, ge=0.0, description="adaptive-threshold increment θ₊ (official)")
    tc_theta_decay: float = Field(1e6, gt=0.0, description="adaptive-threshold decay τ_θ (official 1e6)")
    theta_plus_decoder: float | None = Field(
        None,
        ge=0.0,
        description="θ₊ while the decoder trains (None: theta_plus, official; θ restarts from 0 there, as "
        "the official classification run loads the pre-trained hidden weights only)",
    )
    inh_lc: float = Field(100.0, ge=0.0, description="inhibition between channels of a position (official)")
    inh_output: float = Field(100.0, ge=0.0, description="inhibition between class populations (official)")
    v_rest: float = Field(-65.0, description="resting potential (BindsNET LIFNodes)")
    v_reset: float = Field(-65.0, description="reset potential (BindsNET LIFNodes)")
    v_thresh: float = Field(-52.0, description="threshold ϑ (BindsNET LIFNodes)")
    refractory: int = Field(5, ge=0, description="refractory steps (BindsNET LIFNodes)")
    tc_decay: float = Field(100.0, gt=0.0, description="membrane time constant τ_v (BindsNET LIFNodes)")
    reward: float = Field(1.0, ge=0.0, description="dopamine for a correct decision (official reward_base)")
    punishment: float = Field(
        1.0, ge=0.0, description="dopamine taken for a wrong decision (official punishment_base)"
    )


# ---- pure pieces of the rules (Linear orientation: weights [post, pre]) ---------------------------------
def lc_mask(height: int, width: int, kernel: int, stride: int, channels: int) -> torch.Tensor:
    """``[C·H'·W', H·W]`` 0/1: post neuron (c, p, q) (channel-major, as BindsNET orders it) sees the input
    pixels of its own k × k field at (p·stride, q·stride); the same field for every channel."""
    rows, cols = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    if rows < 1 or cols < 1:
        raise SnnbenchError(f"biolcnet: a {kernel}×{kernel} field does not fit a {height}×{width} input")
    field = torch.zeros(rows, cols, height, width)
    for p in range(rows):
        for q in range(cols):
            field[p, q, p * stride : p * stride + kernel, q * stride : q * stride + kernel] = 1.0
    return field.reshape(1, rows * cols, height * width).expand(channels, -1, -1).reshape(-1, height * width)


def trace_step(x: torch.Tensor, s: torch.Tensor, decay: float) -> torch.Tensor:
    """Eq. (2): decay, then 1 where the neuron spiked (BindsNET traces_additive=False)."""
    return torch.where(s > 0, torch.ones_like(x), x * decay)


def stdp_update(
    w: torch.Tensor,
    pre_s: torch.Tensor,
    pre_x: torch.Tensor,
    post_s: torch.Tensor,
    post_x: torch.Tensor,
    nu_pre: float,
    nu_post: float,
    mask: torch.Tensor,
    wmin: float,
    wmax: float,
) -> torch.Tensor:
    """Eq. (3) for one step, summed over the batch: ``[B, N]`` spikes/traces, ``w`` ``[post, pre]``."""
    delta = nu_post * post_s.t() @ pre_x - nu_pre * post_x.t() @ pre_s
    return (w + delta).clamp(wmin, wmax) * mask


def eligibility(
    p_plus: torch.Tensor,
    pre_s: torch.Tensor,
    post_s: torch.Tensor,
    p_minus: torch.Tensor,
    reward: torch.Tensor,
) -> torch.Tensor:
    """Σ_b r_b e_ij^b of eq. (4): ``[post, pre]`` from ``[B, N]`` traces/spikes and ``reward`` ``[B]``."""
    r = reward.unsqueeze(1)
    return (r * post_s).t() @ p_plus + (r * p_minus).t() @ pre_s


def decision_reward(
    counts: torch.Tensor, labels: torch.Tensor, reward: float, punishment: float
) -> torch.Tensor:
    """Official scalar dopamine: +reward where the most active class population (first on ties, as
    ``torch.argmax``) is the label, −punishment otherwise; ``counts`` ``[B, classes]``."""
    correct = counts.argmax(1) == labels
    return torch.where(
        correct, torch.full_like(counts[:, 0], reward), torch.full_like(counts[:, 0], -punishment)
    )


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision ``CenterCrop`` on ``[B, C, H, W]``."""
    h, w = x.shape[-2:]
    if size > h or size > w:
        raise SnnbenchError(f"biolcnet: crop_size {size} is larger than the {h}×{w} input")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return x[..., top : top + size, left : left + size]


# ---- network ---------------------------------------------------------------------------------------------
class LIFPopulation(SpikingLayer):
    """BindsNET LIF neurons, eq. (1), stepped one time step per call on ``[B, N]`` input currents; the state
    (v, refractory counters, spikes, trace) lives between calls until :meth:`reset`. ``adaptive``: the
    threshold θ (a buffer, kept across images like BindsNET's) rises by θ₊ per spike while ``learning``."""

    def __init__(self, n: int, cfg: BioLCNetConfig, adaptive: bool) -> None:
        super().__init__()
        self.n, self.cfg, self.adaptive = n, cfg, adaptive
        self.decay = math.exp(-1.0 / cfg.tc_decay)
        self.theta_decay = math.exp(-1.0 / cfg.tc_theta_decay)
        self.register_buffer("theta", torch.zeros(n))
        self.learning = False
        self.theta_plus = cfg.theta_plus
        self.v = self.refrac = self.s = torch.zeros(0)

    def reset(self, batch: int) -> None:
        """A new presentation: v at rest, no refractoriness, no spikes."""
        device = self.theta.device
        self.v = torch.full((batch, self.n), self.cfg.v_rest, device=device, dtype=self.theta.dtype)
        self.refrac = torch.zeros_like(self.v)
        self.s = torch.zeros_like(self.v)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        self.v = cfg.v_rest + self.decay * (self.v - cfg.v_rest)
        if self.adaptive and self.learning:
            self.theta.mul_(self.theta_decay)
        self.v = self.v + (self.refrac <= 0).to(current.dtype) * current
        self.refrac = self.refrac - 1.0
        threshold = cfg.v_thresh + (self.theta if self.adaptive else 0.0)
        fired = self.v >= threshold
        self.refrac = torch.where(fired, torch.full_like(self.refrac, float(cfg.refractory)), self.refrac)
        self.v = torch.where(fired, torch.full_like(self.v, cfg.v_reset), self.v)
        self.s = fired.to(current.dtype)
        if self.adaptive and self.learning:
            self.theta.add_(self.theta_plus * self.s.sum(0))
        return self.s


class BioLCNetNet(nn.Module):
    """Input → locally connected adaptive LIF layer → decoding LIF layer (see the module docstring)."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        layer: Conv,
        classes: int,
        cfg: BioLCNetConfig,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        if in_shape[0] != 1:
            raise SnnbenchError("biolcnet takes one input channel (the official network is for MNIST)")
        size = cfg.crop_size
        self.cfg, self.classes, self.size, self.kernel = cfg, classes, size, layer.kernel
        self.hidden_shape = conv_output_shape((1, size, size), layer)
        n_in, n_hidden = size * size, math.prod(self.hidden_shape)
        n_out = classes * cfg.neurons_per_class
        self.register_buffer("mask", lc_mask(size, size, layer.kernel, layer.stride, layer.channels))
        self.lc = nn.Linear(n_in, n_hidden, bias=False)
        self.output = nn.Linear(n_hidden, n_out, bias=False)
        with torch.no_grad():  # BindsNET: U(w_min, w_max) inside the fields / everywhere
            span = cfg.wmax - cfg.wmin
            self.lc.weight.copy_(
                (cfg.wmin + span * torch.rand(n_hidden, n_in, generator=generator)) * self.mask
            )
            self.output.weight.copy_(cfg.wmin + span * torch.rand(n_out, n_hidden, generator=generator))
        for p in self.parameters():
            p.requires_grad_(False)
        self.normalize()
        self.hidden = LIFPopulation(n_hidden, cfg, adaptive=True)
        self.decoder = LIFPopulation(n_out, cfg, adaptive=False)
        self.trace_decay = math.exp(-1.0 / cfg.tc_trace)
        self.eligibility_decay = math.exp(-1.0 / cfg.tc_eligibility)

    def normalize(self) -> None:
        """Σ_j w_ij = norm · k² for every hidden neuron (BindsNET ``LocalConnection.normalize``)."""
        w = self.lc.weight
        total = w.sum(1, keepdim=True)
        target = self.cfg.norm_lc * self.kernel**2
        w.mul_(torch.where(total > 0, target / total.clamp(min=1e-12), torch.ones_like(total)))

    def inhibition(self, s_hidden: torch.Tensor, s_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Recurrent inhibition currents from the previous step's spikes: −w_inh × (spikes of the other
        channels at the same position) and −w_inh × (spikes of the other classes' populations)."""
        cfg, batch = self.cfg, s_hidden.shape[0]
        c, h, w = self.hidden_shape
        grid = s_hidden.view(batch, c, h * w)
        hidden = -cfg.inh_lc * (grid.sum(1, keepdim=True) - grid).view(batch, -1)
        pops = s_out.view(batch, self.classes, -1)
        out = -cfg.inh_output * (s_out.sum(1).view(batch, 1, 1) - pops.sum(2, keepdim=True)).expand_as(pops)
        return hidden, out.reshape(batch, -1)

    def class_counts(self, out_spikes: torch.Tensor) -> torch.Tensor:
        """``[B, classes]``: spikes of each class population (summed over the given steps)."""
        return out_spikes.view(out_spikes.shape[0], self.classes, -1).sum(2)

    def present(
        self,
        spikes: torch.Tensor,
        decide_from: int,
        decide_until: int,
        learn_lc: bool = False,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run one presentation of input trains ``[T, B, N_in]``; returns the class counts over the decision
        steps [decide_from, decide_until). ``learn_lc``: STDP on the hidden layer at every step (eq. 3), then
        normalise. ``labels``: R-STDP on the decoder from ``decide_until`` on, with the decision's reward."""
        cfg, batch = self.cfg, spikes.shape[1]
        self.hidden.reset(batch)
        self.decoder.reset(batch)
        x_in = torch.zeros_like(spikes[0])
        x_hidden = torch.zeros_like(self.hidden.s)
        counts = torch.zeros(batch, self.classes, dtype=spikes.dtype, device=spikes.device)
        reward = p_plus = p_minus = pending = None
        for t in range(len(spikes)):
            if labels is not None and t == decide_until:
                reward = decision_reward(counts, labels, cfg.reward, cfg.punishment)
                p_plus = torch.zeros_like(self.hidden.s)
                p_minus = torch.zeros_like(self.decoder.s)
                pending = torch.zeros_like(self.output.weight)
            s_in = spikes[t]
            x_in = trace_step(x_in, s_in, self.trace_decay)
            inh_hidden, inh_out = self.inhibition(self.hidden.s, self.decoder.s)
            s_hidden = self.hidden(self.lc(s_in) + inh_hidden)
            x_hidden = trace_step(x_hidden, s_hidden, self.trace_decay)
            s_out = self.decoder(self.output(s_hidden) + inh_out)
            if decide_from <= t < decide_until:
                counts += self.class_counts(s_out)
            if learn_lc:
                w = self.lc.weight
                w.copy_(
                    stdp_update(
                        w,
                        s_in,
                        x_in,
                        s_hidden,
                        x_hidden,
                        cfg.nu_pre,
                        cfg.nu_post,
                        self.mask,
                        cfg.wmin,
                        cfg.wmax,
                    )
                )
            if reward is not None:  # eqs. (4)-(5): the previous step's eligibility, then the new one
                w = self.output.weight
                w.add_(cfg.nu_output * pending).clamp_(cfg.wmin, cfg.wmax)
                p_plus = self.eligibility_decay * p_plus + cfg.a_plus * s_hidden
                p_minus = self.eligibility_decay * p_minus + cfg.a_minus * s_out
                pending = eligibility(p_plus, s_hidden, s_out, p_minus, reward)
        if learn_lc:
            self.normalize()
        return counts

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        """Class counts ``[B, classes]`` over the decision window of a test presentation ``[T, B, N_in]``."""
        T = len(spikes)
        return self.present(spikes, decision_start(T, self.cfg), T)


def decision_start(T: int, cfg: BioLCNetConfig) -> int:
    """First step of the decision window of a T-step presentation (official 256 of 512)."""
    return min(max(int(round(T * cfg.observation_fraction)), 0), T - 1)


@algorithms.register("biolcnet")
class BioLCNet(Algorithm):
    """Unsupervised STDP in a locally connected layer, then a reward-modulated STDP decoder (no backprop)."""

    paper = Paper(
        authors="Ghaemi, Mirzaei, Nouri & Kheradpisheh",
        title="BioLCNet: Reward-modulated Locally Connected Spiking Neural Networks",
        venue="arXiv 2109.05539 / LOD",
        year=2021,
        url="https://arxiv.org/abs/2109.05539",
        equations="BindsNET LIF/adaptive-threshold neurons; PostPre STDP with non-additive traces and weight "
        "normalisation in a locally connected layer with inter-channel inhibition; MSTDP (Florian 2007) "
        "decoder with the ±1 scalar reward of a spike-count vote",
    )
    description = "locally connected SNN: STDP features, R-STDP decoder trained by a ±1 reward; no backprop"
    Config = BioLCNetConfig
    default_encoding = "rate"
    version = 1
    changelog = ("1: first version",)

    def build(self, T: int) -> nn.Module:
        cfg: BioLCNetConfig = self.config  # type: ignore[assignment]
        layers = self.arch.layers
        if len(layers) != 1 or not isinstance(layers[0], Conv) or layers[0].pad != 0:
            raise SnnbenchError(
                f"biolcnet needs one locally connected layer written as a convolution without padding "
                f"(e.g. 100C15p0s4), not {self.arch.notation!r}"
            )
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,)).item()))
        return BioLCNetNet(tuple(self.data.input_shape), layers[0], self.data.num_classes, cfg, generator)

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        return TrainState(extra={"feature_seen": 0, "output_seen": 0, "last_loss": 1.0})

    def encode(self, net: BioLCNetNet, x: torch.Tensor, ctx: RunContext, T: int) -> torch.Tensor:
        """Poisson trains ``[T, B, crop²]``: p = intensity · x / 1000 per 1 ms step (the run's encoding)."""
        cfg: BioLCNetConfig = self.config  # type: ignore[assignment]
        x = centre_crop(x, net.size).flatten(1)
        return ctx.encode((x * cfg.intensity / 1000.0).clamp(0.0, 1.0), T)

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        cfg: BioLCNetConfig = self.config  # type: ignore[assignment]
        assert isinstance(net, BioLCNetNet)
        net.train()
        net.hidden.learning = True
        half = max(ctx.T // 2, 1)
        wrong = seen = 0
        with torch.no_grad():
            for x, y in batches:
                if state.extra["feature_seen"] < cfg.feature_samples:
                    # official pre-training: T/2 steps of STDP; the decision is read from the second half
                    spikes = self.encode(net, x, ctx, half)
                    counts = net.present(spikes, half // 2, half, learn_lc=True)
                    state.extra["feature_seen"] += len(y)
                elif state.extra["output_seen"] < cfg.output_samples:
                    if state.extra["output_seen"] == 0:  # a new run in the official code: θ from 0
                        net.hidden.theta.zero_()
                    plus = cfg.theta_plus if cfg.theta_plus_decoder is None else cfg.theta_plus_decoder
                    net.hidden.theta_plus = plus
                    start = decision_start(ctx.T, cfg)
                    spikes = self.encode(net, x, ctx, ctx.T + (ctx.T - start))
                    counts = net.present(spikes, start, ctx.T, labels=y)
                    state.extra["output_seen"] += len(y)
                else:
                    break
                wrong += int((counts.argmax(1) != y).sum())
                seen += len(y)
        net.hidden.learning = False
        net.hidden.theta_plus = cfg.theta_plus
        if seen:
            state.extra["last_loss"] = wrong / seen
            return {"loss": wrong / seen, "train_top1": 100.0 * (1.0 - wrong / seen)}
        return {"loss": state.extra["last_loss"]}  # schedule already complete: nothing trained

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        assert isinstance(net, BioLCNetNet)
        net.hidden.learning = False
        return net(self.encode(net, x, ctx, ctx.T))
