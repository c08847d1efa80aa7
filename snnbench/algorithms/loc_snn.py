"""LOC-SNN: location spiking neurons (LSRM) and the hybrid of a time-axis and a location-axis SRM network.

Kang, Banerjee, Chopp, Katsaggelos & Cossairt, "Event-Driven Tactile Learning with Location Spiking
Neurons", IJCNN 2022, arXiv 2209.01080; journal version "Boost event-driven tactile learning with location
spiking neurons", Frontiers in Neuroscience 17:1127537 (2023), doi 10.3389/fnins.2023.1127537, arXiv
2210.04277. Official code pkang2017/TactileLocNeurons @d75039b (``locsnn/models/snn.py``,
``locsnn/train_location_snn.py``, ``network_config/container_weight_location*.yml``) on SLAYER
(bamsumit/slayerPytorch, the copy shipped in that repository: ``src/slayer.py``, ``src/spikeLoss.py``,
``src/cuda/convKernels.h``, ``src/cuda/spikeKernels.h``). Only the papers' abstracts could be read here:
every equation below is read from the code (line references in docs/algorithms/loc-snn.md). This covers the
IJCNN part (TSRM/LSRM MLPs and their hybrid); the journal's LLIF neurons and spiking graph networks are not
implemented.

SLAYER's SRM-alpha neuron on a sequence axis k = 0 … L−1 (time for TSRM, location for LSRM), Ts = 1:
  (1) kernel        ε(k) = k/τ_sr · e^{1 − k/τ_sr},  k = 0, 1, …, cut at the first k > τ_sr with |ε(k)| < 0.01
                    (τ_sr = 10: 77 values); refractory ν(k) = −scale_ref·θ · k/τ_ref · e^{1 − k/τ_ref}, same
                    cut (τ_ref = 1: 11 values)
  (2) response      u(k) = Σ_i ε(i) (W x)(k − i)                  dense (no bias), then causal convolution
  (3) spike         s(k) = [u(k) ≥ θ] (amplitude 1/Ts = 1); on a spike u(k + j) += ν(j) for j ≥ 0 (additive
                    refractory response, sequential in k; no reset)
  (4) surrogate     ∂s/∂u = scale_rho/(τ_rho θ) · exp(−|u − θ|/(τ_rho θ)), u the membrane **after** the
                    refractory additions (SLAYER's kernel modifies it in place before it is saved); the
                    refractory path itself is not differentiated; the response's gradient is the exact
                    correlation with ε
  (5) TSRM branch   s₂ = SRM(W₂ SRM(W₁ x)) run along time on the [T, B, N] input (N taxels)
  (6) LSRM branch   the same along the location axis: x transposed to [N, B, T] (``torch.transpose(x, 1, 4)``
                    of SLAYER's NCHWT layout), optionally in a taxel order (whorl / arch / random), then
                    dense T → hidden → classes and SRM along the N locations
  (7) hybrid        the two output spike trains concatenated along the sequence axis: [T + N, B, C]
  (8) NumSpikes     e_c = (Σ_k s_c(k) − n_c)/L over the region (the whole output), n_c = n_true for the label,
                    n_false otherwise (the count is a constant to autograd); error(k) = (ε ∗ (s − ŝ))(k) + e_c
                    with ŝ = s detached inside the region (zero in value, ε-correlated gradient);
                    E = ½ Σ error² summed over the batch
  (9) decision      argmax_c Σ_k s_c(k) over the concatenated train
Recipe: weights 10 × PyTorch's default (U(±1/√fan_in)), RMSprop lr 1e-3, weight decay 0.5, hidden 32,
θ = 10, τ_sr = 10, τ_ref = 1, scale_ref = 2, τ_rho = 1, scale_rho = 1; NeuTouch T = 325, targets 150 / 5
over 481 output steps. Proxy images (ours): the rate-coded pixels in raster order are the taxels (time =
the run's T); targets scaled to the output length (docs/algorithms/loc-snn.md).
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
from snnbench.architectures import Dense
from snnbench.errors import SnnbenchError
from snnbench.neurons.layers import SpikingLayer, TimeDistributed

# official NeuTouch regions of the 150 / 5 counts: hybrid 325 time steps + 156 taxel locations
# (container_weight_location.yml tgtSpikeRegion stop 481); location-only 156
# (container_weight_location_only.yml); time-only 325 (VT-SNN's SlayerMLP, clear-nus/VT_SNN @9215087
# network_config/container_weight.yml)
OFFICIAL_REGION = {"hybrid": 481, "location": 156, "time": 325}
# taxel orders of one NeuTouch finger (39 taxels, numbered from 1), official snn.py LocationSlayerWhorl /
# LocationSlayerArch (data: taxel numbers, inner to outer and top to bottom)
WHORL = (21, 15, 16, 23, 27, 24, 17, 6, 9, 12, 20, 29, 33, 34, 31, 28, 22, 14, 10, 1, 2, 7, 18, 30, 37,
         39, 38, 32, 19, 8, 3, 4, 11, 25, 35, 36, 26, 13, 5)  # fmt: skip
ARCH = (11, 25, 35, 4, 18, 30, 7, 2, 20, 37, 29, 12, 9, 33, 23, 16, 1, 6, 15, 21, 27, 34, 39, 24, 17, 10,
        31, 38, 28, 14, 3, 22, 32, 8, 19, 36, 5, 13, 26)  # fmt: skip
NEUTOUCH_CHANNELS = 156  # 2 fingers × 39 taxels × 2 polarities: 78·finger + 2·(taxel − 1) + polarity


class LocSNNConfig(AlgorithmConfig):
    """Official values: pkang2017/TactileLocNeurons @d75039b (network_config/container_weight_location.yml,
    README commands, train_location_snn.py) and SLAYER's defaults (slayer.py)."""

    branches: Literal["hybrid", "location", "time"] = Field(
        "hybrid",
        description="hybrid (--mode location: TSRM ⊕ LSRM), location (--mode only_location), time (TSRM)",
    )
    ordering: Literal["natural", "whorl", "arch", "random"] = Field(
        "natural",
        description="taxel order of the location axis (--mode location_cat_whorl/arch/random); whorl and "
        "arch need the 156 NeuTouch channels",
    )
    theta: float = Field(10.0, gt=0.0, description="θ, neuron.theta")
    tau_sr: float = Field(10.0, gt=0.0, description="SRM-alpha τ, neuron.tauSr")
    tau_ref: float = Field(1.0, gt=0.0, description="refractory τ, neuron.tauRef")
    scale_ref: float = Field(2.0, ge=0.0, description="refractory scale (× θ), neuron.scaleRef")
    tau_rho: float = Field(1.0, gt=0.0, description="surrogate width (× θ), neuron.tauRho")
    scale_rho: float = Field(1.0, gt=0.0, description="surrogate scale, neuron.scaleRho")
    weight_scale: float = Field(10.0, gt=0.0, description="× PyTorch's default init (slayer dense default)")
    target_true: float | None = Field(
        None,
        gt=0.0,
        description="label neuron's spike count over the output; None: 150 × L/L_official (ours; "
        "tgtSpikeCount true 150 over the official region)",
    )
    target_false: float | None = Field(
        None,
        ge=0.0,
        description="other neurons' count; None: 5 × L/L_official (ours; tgtSpikeCount false 5)",
    )
    taxel_pool: int = Field(
        1,
        ge=1,
        description="ours (image proxy): k×k average pooling of the image before the rate coding, fewer "
        "taxels (Fashion-MNIST 2: 14×14 = 196, near NeuTouch's 156)",
    )
    lr: float = Field(1e-3, gt=0.0, description="RMSprop, --lr 0.001 (README commands)")
    weight_decay: float = Field(0.5, ge=0.0, description="RMSprop weight_decay=0.5 (train_location_snn.py)")


def alpha_kernel(tau: float, scale: float = 1.0, length: int | None = None) -> torch.Tensor:
    """Eq. (1): scale·k/τ·e^{1−k/τ} for k = 0, 1, … up to the first k > τ where |value| < 0.01 (excluded),
    or ``length`` values; computed in float64, returned in float32 as SLAYER's ``torch.tensor(list)``."""
    values = []
    k = 0
    while length is None or k < length:
        value = scale * k / tau * math.exp(1.0 - k / tau)
        if length is None and abs(value) < 0.01 and k > tau:
            break
        values.append(value)
        k += 1
    return torch.tensor(values, dtype=torch.float32)


def response_matrix(kernel: torch.Tensor, length: int) -> torch.Tensor:
    """The causal convolution with ε as an ``[L, L]`` lower-triangular Toeplitz matrix E[k, j] = ε(k − j)."""
    lag = torch.arange(length).view(-1, 1) - torch.arange(length).view(1, -1)
    padded = torch.cat([kernel, kernel.new_zeros(1)])  # lags outside [0, K) read the appended zero
    outside = (lag < 0) | (lag >= kernel.numel())
    return padded[lag.masked_fill(outside, kernel.numel())]


def srm_response(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Eq. (2) along axis 0 of ``[L, ...]``: u(k) = Σ_i ε(i) x(k − i) (Ts = 1), as one matrix product (its
    gradient, Eᵀ g, is SLAYER's correlation ``corr``)."""
    matrix = response_matrix(kernel.to(x), x.shape[0])
    return (matrix @ x.reshape(x.shape[0], -1)).reshape(x.shape)


class SRMSpikeFunction(torch.autograd.Function):
    """Eqs. (3), (4): SLAYER's ``getSpikes`` forward, ``_spikeFunction`` backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, u: torch.Tensor, refractory: torch.Tensor, theta: float, tau_rho: float, scale_rho: float
    ) -> torch.Tensor:
        shape = u.shape
        u = u.detach().reshape(shape[0], -1).clone()  # [L, M]
        spikes = torch.zeros_like(u)
        L, K = u.shape[0], refractory.numel()
        nu = refractory.to(u)[1:].view(-1, 1)  # ν(0) = 0: the spike's own step is unchanged
        for k in range(L):
            torch.ge(u[k], theta, out=spikes[k])  # eq. (3): amplitude 1/Ts = 1
            span = min(K, L - k) - 1
            if span > 0:
                u[k + 1 : k + 1 + span].addcmul_(nu[:span], spikes[k].unsqueeze(0))
        u, spikes = u.reshape(shape), spikes.reshape(shape)
        ctx.save_for_backward(u)  # the membrane with the refractory response, as SLAYER saves it
        ctx.params = (theta, tau_rho, scale_rho)
        return spikes

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:  # type: ignore[override]
        (u,) = ctx.saved_tensors
        theta, tau_rho, scale_rho = ctx.params
        width = tau_rho * theta
        surrogate = scale_rho / width * torch.exp(-(u - theta).abs() / width)  # eq. (4)
        return grad * surrogate, None, None, None, None


class SRMNeuron(SpikingLayer):
    """SRM-alpha neurons along axis 0 of ``[L, B, F]``: eq. (2) response to the current, eq. (3) spikes."""

    def __init__(self, cfg: LocSNNConfig) -> None:
        super().__init__()
        self.theta, self.tau_rho, self.scale_rho = cfg.theta, cfg.tau_rho, cfg.scale_rho
        self.register_buffer("kernel", alpha_kernel(cfg.tau_sr))
        self.register_buffer("refractory", alpha_kernel(cfg.tau_ref, -cfg.scale_ref * cfg.theta))

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        u = srm_response(current, self.kernel)
        return SRMSpikeFunction.apply(u, self.refractory, self.theta, self.tau_rho, self.scale_rho)


def srm_mlp(cfg: LocSNNConfig, sizes: list[int]) -> nn.Sequential:
    """Dense (no bias, 10 × default init) then SRM neurons, per layer (official fc1/fc2 and
    locationFc1/locationFc2: ``slayer.spike(slayer.psp(fc(x)))``)."""
    modules: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        linear = nn.Linear(fan_in, fan_out, bias=False)  # the same U(±1/√fan_in) draw as SLAYER's Conv3d
        with torch.no_grad():
            linear.weight.mul_(cfg.weight_scale)
        modules += [TimeDistributed(linear), SRMNeuron(cfg)]
    return nn.Sequential(*modules)


def taxel_order(ordering: str, channels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Index of the location axis in the given order. whorl/arch: the official NeuTouch permutations (each
    taxel keeps its two polarity channels, the same order on both fingers); random: a random taxel order
    kept the same way for 156 channels, a random permutation of the positions otherwise (ours)."""
    if ordering == "natural":
        return torch.arange(channels)
    if ordering == "random" and channels != NEUTOUCH_CHANNELS:
        return torch.randperm(channels, generator=generator)
    if channels != NEUTOUCH_CHANNELS:
        raise SnnbenchError(f"loc-snn: ordering {ordering!r} needs the {NEUTOUCH_CHANNELS} NeuTouch channels")
    taxels = (
        (torch.randperm(39, generator=generator) + 1).tolist()
        if ordering == "random"
        else list(WHORL if ordering == "whorl" else ARCH)
    )
    finger = [c for t in taxels for c in (2 * t - 2, 2 * t - 1)]
    return torch.tensor(finger + [c + 78 for c in finger])


class LocSNN(nn.Module):
    """Eqs. (5)–(7): ``[T, B, N]`` spikes → output spikes ``[T + N, B, C]`` (hybrid), ``[N, B, C]`` (location)
    or ``[T, B, C]`` (time)."""

    def __init__(
        self, time: nn.Sequential | None, location: nn.Sequential | None, order: torch.Tensor
    ) -> None:
        super().__init__()
        self.time, self.location = time, location
        self.register_buffer("order", order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2)  # [T, B, N]: the taxels (pixels in raster order)
        outputs = []
        if self.time is not None:
            outputs.append(self.time(x))  # eq. (5)
        if self.location is not None:
            swapped = x.transpose(0, 2)[self.order]  # eq. (6): [N, B, T], the location axis first
            outputs.append(self.location(swapped))
        return torch.cat(outputs, 0)  # eq. (7): time steps, then locations


def num_spikes_loss(
    spikes: torch.Tensor, y: torch.Tensor, kernel: torch.Tensor, n_true: float, n_false: float
) -> torch.Tensor:
    """Eq. (8), SLAYER's ``numSpikes`` with the region the whole output: ``spikes`` ``[L, B, C]``."""
    L = spikes.shape[0]
    label = F.one_hot(y, spikes.shape[-1]).to(spikes.dtype)
    desired = n_false + (n_true - n_false) * label  # [B, C]
    count_error = (spikes.detach().sum(0) - desired) / L  # a constant to autograd
    error = srm_response(spikes - spikes.detach(), kernel) + count_error  # ε ∗ (s − ŝ) is 0 in value
    return 0.5 * (error**2).sum()


@algorithms.register("loc-snn")
class LocSNNMethod(Algorithm):
    """Location spiking neurons: SLAYER SRM MLPs along time and along the taxel axis, outputs concatenated,
    NumSpikes loss, RMSprop (Kang et al. 2022)."""

    paper = Paper(
        authors="Kang, Banerjee, Chopp, Katsaggelos & Cossairt",
        title="Event-Driven Tactile Learning with Location Spiking Neurons",
        venue="IJCNN",
        year=2022,
        url="https://arxiv.org/abs/2209.01080",
        equations="SRM-alpha u = ε ∗ Wx, s = [u ≥ θ] with additive refractory ν; LSRM: the same along the "
        "taxel axis (time and taxels swapped); hybrid: the two output trains concatenated; NumSpikes loss",
    )
    description = "LOC-SNN: SLAYER SRM along time ⊕ location SRM along the taxels, NumSpikes loss, RMSprop"
    Config = LocSNNConfig
    default_encoding = "rate"

    def build(self, T: int) -> nn.Module:
        cfg: LocSNNConfig = self.config  # type: ignore[assignment]
        hidden = []
        for layer in self.arch.layers:
            if not isinstance(layer, Dense) or layer.recurrent:
                raise SnnbenchError(f"loc-snn builds dense SRM layers (e.g. '32'), not {layer}")
            hidden.append(layer.units)
        shape = self.data.input_shape
        if cfg.taxel_pool > 1:
            if len(shape) != 3:
                raise SnnbenchError(f"loc-snn: taxel_pool needs image input, got {shape}")
            shape = (shape[0], shape[1] // cfg.taxel_pool, shape[2] // cfg.taxel_pool)
        channels = math.prod(shape)  # the taxels: every input value of a step, in raster order
        classes = self.data.num_classes
        time = srm_mlp(cfg, [channels, *hidden, classes]) if cfg.branches != "location" else None
        location = srm_mlp(cfg, [T, *hidden, classes]) if cfg.branches != "time" else None
        return LocSNN(time, location, taxel_order(cfg.ordering, channels))

    def targets(self, length: int) -> tuple[float, float]:
        """(n_true, n_false): the configured counts, else the official 150 / 5 × L / L_official."""
        cfg: LocSNNConfig = self.config  # type: ignore[assignment]
        ratio = length / OFFICIAL_REGION[cfg.branches]
        n_true = cfg.target_true if cfg.target_true is not None else 150.0 * ratio
        n_false = cfg.target_false if cfg.target_false is not None else 5.0 * ratio
        return n_true, n_false

    def loss(self, net: LocSNN, spikes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cfg: LocSNNConfig = self.config  # type: ignore[assignment]
        n_true, n_false = self.targets(spikes.shape[0])
        return num_spikes_loss(spikes, y, alpha_kernel(cfg.tau_sr).to(spikes), n_true, n_false)

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: LocSNNConfig = self.config  # type: ignore[assignment]
        return TrainState(torch.optim.RMSprop(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay))

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        assert state.optimizer is not None
        net.train()
        tally = EpochTally()
        for x, y in batches:
            spikes = net(self._encode(x, ctx))
            loss = self.loss(net, spikes, y)  # type: ignore[arg-type]
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            tally.add(loss.item(), spikes.detach().sum(0), y)  # the official loss: a sum over the batch
        return tally.summary()

    def _encode(self, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        """The run's encoding (rate: Bernoulli events, as NeuTouch's) of the image, pooled to fewer taxels."""
        cfg: LocSNNConfig = self.config  # type: ignore[assignment]
        return ctx.encode(F.avg_pool2d(x, cfg.taxel_pool) if cfg.taxel_pool > 1 else x)

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return net(self._encode(x, ctx)).sum(0)  # eq. (9): spike counts over the concatenated train
