"""Spiking CapsNet: convolutional spiking capsules whose coupling coefficients are set, within each
presentation, by an STDP-like routing rule, the weights trained by surrogate-gradient BPTT.

Zhao, Li, Zeng, Wang & Zhang, "Spiking CapsNet: A Spiking Neural Network With A Biologically Plausible
Routing Rule Between Capsules", Information Sciences 610:1-13 (2022), arXiv 2111.07785; official code
BrainCog-X/Brain-Cog @3998fd5 ``examples/Perception_and_Learning/img_cls/spiking_capsnet/spikingcaps.py``
(below ``sc:LINE``) with ``braincog/base/node/node.py`` (``LIFNode``, ``BaseNode``),
``braincog/base/strategy/surrogate.py``
(``QGateGrad``) and ``braincog/datasets/datasets.py`` (``get_mnist_data``). Only the paper's abstract and the
start of its introduction could be read here: every equation and value below is read from the code.

Every neuron (sc:21-27 ``myLIFnode``, node.py:457-472), per step t, ϑ = 0.5, τ = 5:
  (1) u[t] = u[t−1]/τ + I[t]                       (decay 1/τ = 0.2 of the reset membrane, input unscaled)
  (2) s[t] = Θ(u[t] − ϑ);  ∂s/∂u ≈ α max(0, 1 − α|u − ϑ|), α = 2   (QGateGrad's quadratic gate; the
      official Θ(0) = 0, ours Θ(0) = 1, the project's convention: a membrane exactly at ϑ)
  (3) u[t] ← u[t] (1 − s[t])                       (hard reset to 0, the spike detached)
Network (sc:30-75, 122-149), the image x presented at every step (``direct``, MNIST-normalised):
  (4) c[t] = s(ReLU(conv₁ x))                       256 channels, 9×9, stride 1 (sc:30-36)
  (5) p[t] = s(view_{N×8}(conv₂ c[t]))               8 convolutions of 32 channels, 9×9, stride 2, stacked and
      read as N = 1,152 primary capsules of 8 components (sc:39-52; the official ``view`` of the stacked
      [8, 32, 6, 6] outputs: one convolution of 256 channels, reshaped)
  (6) û_{j|i}[t] = s(W_ij p_i[t] + b)                W [N, 10, 16, 8], bias b [16] shared by every (i, j)
      (sc:55-75); these spikes are the lower capsules' votes
  (7) v_j[t] = Σ_i c_ij[t] û_{j|i}[t]               c_ij = b_ij themselves (no softmax; sc:87-90)
  (8) classes = ‖(1/T) Σ_t v_j[t]‖₂                 (sc:135, 147-148, 103); loss MSE to the one-hot label
STDP routing, within each forward, without gradient (sc:84, 125-126, 138-145), y_j[t] = s(v_j[t]) the class
capsules' spikes (a fourth neuron layer, eqs. 1-3), e_ijk the votes' trace:
  (9)  b_ij ← 1/N at the start of every forward, e ← 0
  (10) after step t: b ← clamp(b, −0.05, 1);  e ← e·exp(−1/1.5), e_ijk ← 1 where û_{jk|i}[t] ≠ 0;
       b_ij ← b_ij + 8·10⁻⁴ · mean_batch Σ_k (e_ijk − 0.1) y_jk[t]
       (the clamp before the increment: the coupling used at step t + 1 is unclamped; one b for the whole
       batch, so a sample's output depends on the rest of its batch, in evaluation too: the official
       ``evaluate`` calls ``net(data)`` with its default ``train=True``)
Recipe (sc:178-191): Adam lr 5·10⁻⁴ (PyTorch defaults otherwise), lr ×0.3 at the start of epochs 15, 25, 45 of
50, batch 100, T = 5 (sc:122); W and b ~ N(0, √(3/(8·16))) (sc:66-67), the convolutions PyTorch's default.
MNIST input: RandomCrop(28, padding 4) for training, Normalize(0.1307, 0.3081) (datasets.py:187-205).
Deviations: docs/algorithms/spikecaps.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

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
    rate_mse_loss,
    supervised_epoch,
)
from snnbench.architectures import Conv
from snnbench.errors import SnnbenchError
from snnbench.neurons.functional import LIFParams, lif_multistep
from snnbench.neurons.layers import SpikingLayer, TimeDistributed

OFFICIAL = "BrainCog-X/Brain-Cog @3998fd5 spikingcaps.py"


class SpikeCapsConfig(AlgorithmConfig):
    """Official values (BrainCog-X/Brain-Cog @3998fd5 ``spikingcaps.py``, ``sc:LINE``; braincog modules
    named where they hold the value)."""

    tau: float = Field(5.0, gt=1.0, description="τ: u ← u/τ + I, myLIFnode(tau=5) (sc:27, 117-120)")
    threshold: float = Field(0.5, gt=0.0, description="ϑ, myLIFnode's default threshold=0.5 (sc:22)")
    surrogate_alpha: float = Field(
        2.0,
        gt=0.0,
        description="α of the quadratic gate α max(0, 1 − α|u − ϑ|): LIFNode's QGateGrad(alpha=2.) "
        "(node.py:457, 462; surrogate.py:183-230)",
    )
    routing: bool = Field(
        True, description="STDP routing in every forward (sc:138, the default train=True); False: c = 1/N"
    )
    routing_lr: float = Field(8e-4, ge=0.0, description="η of the coupling update, 0.0008 (sc:143)")
    trace_tau: float = Field(1.5, gt=0.0, description="vote trace decay exp(−1/τ_e), τ_e = 1.5 (sc:141)")
    trace_offset: float = Field(0.1, description="e − 0.1 in the update (sc:144)")
    coupling_min: float = Field(-0.05, description="b clamped to [−0.05, 1] (sc:140)")
    coupling_max: float = Field(1.0, description="b clamped to [−0.05, 1] (sc:140)")
    weight_std_scale: float = Field(
        3.0, gt=0.0, description="W, bias ~ N(0, √(s/(8·16))), s = 3 (sc:66-67; 8, 16 the capsule sizes)"
    )
    lr: float = Field(5e-4, gt=0.0, description="Adam, lr=0.0005 (sc:183)")
    lr_gamma: float = Field(0.3, gt=0.0, le=1.0, description="lr ×0.3 (sc:191)")
    lr_milestones: tuple[int, ...] = Field(
        (15, 25, 45),
        description="at the start of these epochs of 50 (sc:186, 190), scaled to the run's epochs",
    )
    milestone_epochs: int = Field(
        50, gt=0, description="the official epoch count the milestones are of (sc:186)"
    )
    normalize_input: bool = Field(
        True,
        description="(x − mean)/std with the dataset's statistics (get_mnist_data's Normalize, "
        "datasets.py:187-188, 203-205); get_fashion_data has none (datasets.py:234-238)",
    )


def spikecaps_neuron(cfg: SpikeCapsConfig) -> LIFParams:
    """Eqs. (1)-(3) in the fused LIF kernel, the membrane in units of 1/α: u' = αu, threshold αϑ, input
    scale α, decay 1/τ (the kernel's decay 1 − 1/τ_k with τ_k = τ/(τ − 1)), hard reset to 0 with the spike
    detached, and the kernel's triangle max(0, 1 − |u' − αϑ|) of height 1: ∂s/∂u = α max(0, 1 − α|u − ϑ|),
    the official quadratic gate."""
    alpha = cfg.surrogate_alpha
    return LIFParams(
        tau=cfg.tau / (cfg.tau - 1.0),  # eq. (1): decay 1/τ
        v_threshold=alpha * cfg.threshold,
        v_reset=0.0,  # eq. (3)
        surrogate="triangle",
        alpha=1.0,
        detach_reset=True,
        input_scale=alpha,
    )


class CapsLIF(SpikingLayer):
    """Eqs. (1)-(3) on every element of a time-major tensor ``[T, B, ...]``."""

    def __init__(self, cfg: SpikeCapsConfig) -> None:
        super().__init__()
        self.params = spikecaps_neuron(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lif_multistep(x, self.params)


class PrimaryCapsules(nn.Module):
    """Eq. (5) before the neuron: one convolution (the official ``capsule_dim`` convolutions stacked along
    the channels, capsule-major), its output ``[TB, C, H, W]`` read as ``[TB, C·H·W / d, d]``."""

    def __init__(self, in_channels: int, conv: Conv, capsule_dim: int) -> None:
        super().__init__()
        if conv.channels % capsule_dim:
            raise SnnbenchError(
                f"spikecaps: the primary convolution's {conv.channels} channels are not a multiple of the "
                f"capsule size {capsule_dim}"
            )
        self.capsule_dim = capsule_dim
        self.conv = nn.Conv2d(in_channels, conv.channels, conv.kernel, conv.stride, conv.pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out.reshape(out.shape[0], -1, self.capsule_dim)


class CapsulePredictions(nn.Module):
    """Eq. (6) before the neuron: û_{j|i} = W_ij p_i + b for every primary capsule i and class capsule j,
    on ``[T, B, N, d]`` → ``[T, B, N, J, K]``."""

    def __init__(self, routes: int, classes: int, out_dim: int, in_dim: int, std: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(routes, classes, out_dim, in_dim).normal_(0.0, std))
        self.bias = nn.Parameter(torch.empty(out_dim).normal_(0.0, std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, J, K, D = self.weight.shape
        rows = x.reshape(-1, N, D).transpose(0, 1)  # [N, TB, D]
        out = torch.bmm(rows, self.weight.reshape(N, J * K, D).transpose(1, 2))  # [N, TB, J·K]
        return out.transpose(0, 1).reshape(*x.shape[:-2], N, J, K) + self.bias

    def count_operations(self, x: torch.Tensor) -> tuple[int, bool, int]:
        """Each nonzero input component p_id meets the nonzero weights W_i··d (bias excluded)."""
        N, J, K, D = self.weight.shape
        active = (x.reshape(-1, N, D) != 0).sum(0).to(torch.float64)  # [N, D]
        fan_out = (self.weight != 0).sum((1, 2)).to(torch.float64)  # [N, D]
        binary = bool(((x == 0) | (x.abs() == 1)).all())
        return int((active * fan_out).sum()), binary, N * J * K * D


class ClassCapsuleLIF(SpikingLayer):
    """The class capsules' neuron (eqs. 1-3, one step per call, no gradient): its spikes y_j[t] drive the
    routing rule only."""

    def __init__(self, cfg: SpikeCapsConfig) -> None:
        super().__init__()
        self.decay, self.threshold = 1.0 / cfg.tau, cfg.threshold
        self.u: torch.Tensor | None = None

    def reset(self) -> None:
        self.u = None

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        u = current if self.u is None else self.u * self.decay + current
        spikes = (u >= self.threshold).to(current.dtype)
        self.u = u * (1.0 - spikes)
        return spikes


class StdpRouting(nn.Module):
    """Eqs. (7), (9), (10): the class capsules' input v_j[t] = Σ_i c_ij û_{j|i}[t] with c = b set by the
    STDP rule within the forward; ``[T, B, N, J, K]`` votes → ``[T, B, J, K]``. The last forward's
    couplings (after the final update) stay in ``last_coupling``."""

    def __init__(self, cfg: SpikeCapsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.neuron = ClassCapsuleLIF(cfg)
        self.last_coupling: torch.Tensor | None = None

    def forward(self, votes: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            couplings = self.couplings(votes.detach())  # [T, N, J], constants of the graph (sc:139)
        return (votes * couplings[:, None, :, :, None]).sum(2)  # eq. (7) at every step

    def couplings(self, votes: torch.Tensor) -> torch.Tensor:
        """The coupling used at each step ``[T, N, J]``: 1/N at step 0 (eq. 9), then eq. (10) after each
        step (the class capsules' neuron driven by eq. 7 on the detached votes)."""
        cfg = self.cfg
        T, B, N = votes.shape[:3]
        coupling = torch.full(votes.shape[2:4], 1.0 / N, dtype=votes.dtype, device=votes.device)
        trace = torch.zeros_like(votes[0])
        trace_decay = math.exp(-1.0 / cfg.trace_tau)
        self.neuron.reset()
        used = []
        for t in range(T):
            used.append(coupling)
            if not cfg.routing:
                continue
            vote = votes[t]
            post = self.neuron((vote * coupling[None, :, :, None]).sum(1))  # y_j[t], [B, J, K]
            coupling = coupling.clamp(cfg.coupling_min, cfg.coupling_max)
            trace = torch.where(vote != 0, torch.ones_like(trace), trace * trace_decay)
            change = ((trace - cfg.trace_offset) * post[:, None]).sum((0, 3)) / B
            coupling = coupling + cfg.routing_lr * change
        self.last_coupling = coupling
        return torch.stack(used)

    def count_operations(self, votes: torch.Tensor) -> tuple[int, bool, int]:
        """Each vote spike meets its one coupling coefficient (an accumulate)."""
        N, J, K = votes.shape[2:]
        return int((votes != 0).sum()), True, N * J * K


class SpikingCapsNet(nn.Module):
    """Eqs. (4)-(8) on a time-major input ``[T, B, C, H, W]``; returns the class-capsule lengths
    ``[B, J]``."""

    def __init__(
        self,
        cfg: SpikeCapsConfig,
        input_shape: tuple[int, ...],
        first: Conv,
        primary: Conv,
        capsule_dim: int,
        classes: int,
        class_capsule_dim: int,
    ) -> None:
        super().__init__()
        self.conv = TimeDistributed(
            nn.Conv2d(input_shape[0], first.channels, first.kernel, first.stride, first.pad)
        )
        self.conv_lif = CapsLIF(cfg)
        self.primary = TimeDistributed(PrimaryCapsules(first.channels, primary, capsule_dim))
        self.primary_lif = CapsLIF(cfg)
        with torch.no_grad():
            probe = self.primary.module(self.conv.module(torch.zeros(1, *input_shape)))
        routes = probe.shape[1]
        std = math.sqrt(cfg.weight_std_scale / (capsule_dim * class_capsule_dim))
        self.predictions = CapsulePredictions(routes, classes, class_capsule_dim, capsule_dim, std)
        self.votes_lif = CapsLIF(cfg)
        self.routing = StdpRouting(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv_lif(F.relu(self.conv(x)))  # eq. (4)
        p = self.primary_lif(self.primary(c))  # eq. (5)
        votes = self.votes_lif(self.predictions(p))  # eq. (6)
        v = self.routing(votes)  # eqs. (7), (9), (10)
        return torch.linalg.vector_norm(v.mean(0), dim=-1)  # eq. (8)


@algorithms.register("spikecaps")
class SpikeCapsMethod(Algorithm):
    """Spiking CapsNet (Zhao et al. 2022): spiking primary and class capsules, STDP routing of the coupling
    coefficients within each presentation, surrogate-gradient BPTT on the MSE of the capsule lengths."""

    paper = Paper(
        authors="Zhao, Li, Zeng, Wang & Zhang",
        title="Spiking CapsNet: A Spiking Neural Network With A Biologically Plausible Routing Rule Between "
        "Capsules",
        venue="Information Sciences",
        year=2022,
        url="https://arxiv.org/abs/2111.07785",
        equations="u = u/τ + I, s = Θ(u − ϑ), u ← u(1 − s); û_{j|i} = s(W_ij p_i + b); "
        "v_j = Σ_i b_ij û_{j|i}; "
        "b ← clamp(b, −0.05, 1) + η mean_B Σ_k (e_ijk − 0.1) s(v_jk); e ← e·exp(−1/1.5), 1 at a vote spike; "
        "classes = ‖mean_t v_j‖; MSE; quadratic-gate surrogate α max(0, 1 − α|u − ϑ|)",
    )
    description = "Spiking CapsNet: spiking capsules, STDP routing within each presentation, surrogate BPTT"
    Config = SpikeCapsConfig
    default_encoding = "direct"

    def build(self, T: int) -> nn.Module:
        cfg: SpikeCapsConfig = self.config  # type: ignore[assignment]
        layers = self.arch.layers
        if len(layers) != 2 or not all(isinstance(layer, Conv) for layer in layers):
            raise SnnbenchError(
                f"spikecaps needs an architecture of two convolutions (the first layer and the primary "
                f"capsules, e.g. spikecaps-mnist = 256C9p0-256C9p0s2), not {self.arch.notation!r}"
            )
        options = self.arch.options
        first, primary = layers
        return SpikingCapsNet(
            cfg,
            tuple(self.data.input_shape),
            first,  # type: ignore[arg-type]
            primary,  # type: ignore[arg-type]
            int(options.get("capsule_dim", 8)),  # type: ignore[call-overload]
            self.data.num_classes,
            int(options.get("class_capsule_dim", 16)),  # type: ignore[call-overload]
        )

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: SpikeCapsConfig = self.config  # type: ignore[assignment]
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        milestones = lr_drop_epochs(cfg, ctx.epochs)
        return TrainState(
            optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, list(milestones), gamma=cfg.lr_gamma)
        )

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        net.train()
        return supervised_epoch(state, batches, lambda x: net(self._encode(x, ctx)), rate_mse_loss)

    def _encode(self, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        cfg: SpikeCapsConfig = self.config  # type: ignore[assignment]
        return ctx.encode(self.data.normalize(x) if cfg.normalize_input else x)

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return net(self._encode(x, ctx))


def lr_drop_epochs(cfg: SpikeCapsConfig, epochs: int) -> tuple[int, ...]:
    """The epochs (0-based) at whose start the lr is multiplied by γ: the official 15, 25, 45 of 50 scaled to
    ``epochs`` (m·epochs/50 rounded half up; equal for 50 epochs), those inside the run."""
    scaled = (
        (2 * m * epochs + cfg.milestone_epochs) // (2 * cfg.milestone_epochs) for m in cfg.lr_milestones
    )
    return tuple(e for e in scaled if 0 < e < epochs)
