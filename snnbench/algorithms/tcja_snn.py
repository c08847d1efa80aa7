"""TCJA-SNN: temporal-channel joint attention on spike maps, trained by surrogate-gradient BPTT.

Zhu, Zhang, Zhao, Deng, Duan & Deng, "TCJA-SNN: Temporal-Channel Joint Attention for Spiking Neural
Networks", IEEE TNNLS 2024, https://arxiv.org/abs/2206.10177; official code ridgerchu/TCJA
(``src/layers.py`` TCJA/TLA/CLA, ``src/dvs128.py``, ``src/cifar10dvs.py``, README commands).

Equations (time-major, spike maps X ∈ R^{T×B×C×H×W} of a conv-BN-LIF layer; b is dropped below):
  (1) squeeze   Z[t, c] = (1/HW) Σ_{h,w} X[t, c, h, w]                                   (a T×C matrix)
  (2) TLA       A_T[t, c] = Σ_{c'} Σ_{m<k_T} W_T[c, c', m] · Z[t + m − ⌊(k_T−1)/2⌋, c']
                (1-D convolution along T, every channel reading every channel; Z = 0 outside [0, T))
  (3) CLA       A_C[t, c] = Σ_{t'} Σ_{m<k_C} W_C[t, t', m] · Z[t', c + m − ⌊(k_C−1)/2⌋]
                (1-D convolution along C, every step reading every step; Z = 0 outside [0, C))
  (4) CCF       M = σ(A_T ⊙ A_C)   (cross-convolutional fusion: element-wise product, then sigmoid)
  (5) output    Y[t, c, h, w] = X[t, c, h, w] · M[t, c]
  (6) neuron    decay-input LIF (SpikingJelly ``LIFNode``): H = V + (I − V)/τ, S = Θ(H − ϑ), V = H (1 − S),
                τ = 2, ϑ = 1, v_reset = 0, reset detached; ATan (α = 2) or piecewise-quadratic surrogate
  (7) readout   ``vote``: a LIF layer of voters × classes neurons, its firing rate over T averaged per class;
                ``linear``: a non-spiking linear layer averaged over T
  (8) loss      MSE between the readout and the one-hot label (or cross-entropy); BPTT through (1)–(7)
The official ``TCJA(kernel_size_t, kernel_size_c, T, C)`` builds (2) from ``conv_c`` (C → C channels,
kernel ``kernel_size_c``, sliding along T) and (3) from ``conv`` (T → T channels, kernel ``kernel_size_t``,
sliding along C), both ``padding='same'`` without bias; both scripts use 4 and 4. Defaults are the DVS128
Gesture script and README command (Adam 1e-3, cosine over all epochs, MSE on the vote, T = 20, batch 16);
CIFAR10-DVS settings are set per suite entry. Deviations: docs/algorithms/tcja-snn.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from snnbench.algorithms import EpochTally, Paper, RunContext, TrainState, algorithms
from snnbench.algorithms._residual import ResidualConfig, ResidualMethod
from snnbench.architectures import Pool, output_shape
from snnbench.errors import SnnbenchError
from snnbench.networks import build_feedforward
from snnbench.neurons.functional import SURROGATES, LIFParams, Surrogate, spike
from snnbench.neurons.layers import LIF, SpikingLayer, TimeDistributed


def _pq_smooth(x: torch.Tensor, a: float) -> torch.Tensor:
    inside = -0.5 * a * a * x.abs() * x + a * x + 0.5
    return torch.where(x.abs() <= 1.0 / a, inside, (x > 0).to(x.dtype))


# SpikingJelly ``surrogate.PiecewiseQuadratic`` (the CIFAR10-DVS script's): g'(x) = max(0, α − α²|x|), α = 1
PIECEWISE_QUADRATIC = Surrogate(
    "piecewise-quadratic",
    1.0,
    _pq_smooth,
    lambda x, a: torch.where(x.abs() <= 1.0 / a, a - a * a * x.abs(), torch.zeros_like(x)),
)


class TCJAConfig(ResidualConfig):
    """Official DVS128 Gesture defaults (``src/dvs128.py`` and the README's command line)."""

    tau: float = Field(2.0, gt=1.0, description="LIF τ (MultiStepLIFNode(tau=2.0), both scripts)")
    v_threshold: float = Field(1.0, gt=0.0, description="ϑ (SpikingJelly default)")
    surrogate: Literal["arctan", "piecewise-quadratic"] = Field(
        "arctan", description="ATan α = 2 (DVS128); PiecewiseQuadratic α = 1 (CIFAR10-DVS)"
    )
    alpha: float | None = Field(None, gt=0.0, description="surrogate α (None: the surrogate's default)")
    detach_reset: bool = Field(True, description="reset detached from the graph (both scripts)")
    kernel_t: int = Field(4, ge=1, description="k_T of TLA, eq. (2): the official kernel_size_c = 4")
    kernel_c: int = Field(4, ge=1, description="k_C of CLA, eq. (3): the official kernel_size_t = 4")
    attention_layers: int = Field(
        2, ge=0, description="TCJA after the neurons before each of the last n pooling layers (both scripts)"
    )
    bias: bool = Field(False, description="conv/linear bias (DVS128: False; CIFAR10-DVS convs: True)")
    readout: Literal["vote", "linear"] = Field(
        "vote", description="vote: LIF voters averaged per class (DVS128); linear: mean of a linear layer"
    )
    voters: int = Field(10, ge=1, description="voting neurons per class (VotingLayer(10), DVS128)")
    loss: Literal["mse", "ce"] = Field("mse", description="MSE to the one-hot label (both scripts' default)")
    optimizer: Literal["sgd", "adam"] = Field("adam", description="README: -opt Adam")
    lr: float = Field(1e-3, gt=0.0, description="README: -lr 0.001")
    weight_decay: float = Field(0.0, ge=0.0, description="none in the official scripts")
    schedule: Literal["cosine", "step", "none"] = Field(
        "cosine", description="CosALR with T_max = epochs (README: -T_max 1024 -epochs 1024)"
    )


class TCJA(nn.Module):
    """Eqs. (1)–(5) on ``[T, B, C, H, W]``: attention weights M[t, c] ∈ (0, 1) multiply the spike maps."""

    def __init__(self, T: int, channels: int, kernel_t: int, kernel_c: int) -> None:
        super().__init__()
        # eq. (2): along T, C in/out channels;  eq. (3): along C, T in/out channels (PyTorch default init)
        # (padding="same" of the official code: ⌊(k−1)/2⌋ zeros before, the rest after, written out)
        self.temporal = nn.Conv1d(channels, channels, kernel_t, bias=False)
        self.channel = nn.Conv1d(T, T, kernel_c, bias=False)

    @staticmethod
    def _same(z: torch.Tensor, kernel: int) -> torch.Tensor:
        return F.pad(z, ((kernel - 1) // 2, kernel // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.mean(dim=(3, 4)).transpose(0, 1)  # eq. (1): [B, T, C]
        z_ct = self._same(z.transpose(1, 2), self.temporal.kernel_size[0])  # [B, C, T + k_T − 1]
        a_t = self.temporal(z_ct).transpose(1, 2)  # eq. (2): [B, T, C]
        a_c = self.channel(self._same(z, self.channel.kernel_size[0]))  # eq. (3): [B, T, C]
        m = torch.sigmoid(a_t * a_c)  # eq. (4)
        return x * m.transpose(0, 1)[..., None, None]  # eq. (5)


class LoopLIF(SpikingLayer):
    """Eq. (6) step by step, for a surrogate the shared fused LIF kernel does not know."""

    def __init__(self, params: LIFParams, surrogate: Surrogate) -> None:
        super().__init__()
        self.params, self.surrogate = params, surrogate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, v, out = self.params, torch.zeros_like(x[0]), []
        for x_t in x:
            h = v + (x_t - v) / p.tau
            s = spike(h - p.v_threshold, self.surrogate, p.alpha)
            v = h * (1.0 - (s.detach() if p.detach_reset else s))
            out.append(s)
        return torch.stack(out)


class TCJANet(nn.Module):
    """Body (conv-BN-LIF layers with TCJA, dense-LIF layers) and the readout of eq. (7)."""

    def __init__(self, body: nn.Sequential, head: nn.Module, voters: int) -> None:
        super().__init__()
        self.body, self.head, self.voters = body, head, voters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(x)).mean(0)  # [B, classes · voters] rates, or mean linear output
        if self.voters == 1:
            return out
        return out.reshape(out.shape[0], -1, self.voters).mean(2)  # VotingLayer: average each group


@algorithms.register("tcja-snn")
class TCJASNN(ResidualMethod):
    """Conv SNN with temporal-channel joint attention (TCJA) blocks, LIF neurons, surrogate BPTT."""

    paper = Paper(
        authors="Zhu, Zhang, Zhao, Deng, Duan & Deng",
        title="TCJA-SNN: Temporal-Channel Joint Attention for Spiking Neural Networks",
        venue="IEEE TNNLS",
        year=2024,
        url="https://arxiv.org/abs/2206.10177",
        equations="M = σ(Conv1d_T(Z) ⊙ Conv1d_C(Z)), Z = spatial mean of the spikes, Y = X ⊙ M; LIF τ 2, MSE",
    )
    description = "TCJA-SNN: temporal-channel joint attention (1-D convs along T and C, fused by product)"
    Config = TCJAConfig
    residual_blocks = False

    def build(self, T: int) -> nn.Module:
        cfg: TCJAConfig = self.config  # type: ignore[assignment]
        surrogate = PIECEWISE_QUADRATIC if cfg.surrogate == "piecewise-quadratic" else SURROGATES["arctan"]
        params = LIFParams(cfg.tau, cfg.v_threshold, 0.0, surrogate.name, cfg.alpha, cfg.detach_reset)

        def neuron(shape: tuple[int, ...] = ()) -> nn.Module:
            return LIF(params) if surrogate.name in SURROGATES else LoopLIF(params, surrogate)

        def norm(shape: tuple[int, ...]) -> nn.Module:  # BN after convolutions only (both scripts)
            return TimeDistributed(nn.BatchNorm2d(shape[0])) if len(shape) == 3 else nn.Identity()

        body, features = build_feedforward(
            self.arch, self.data.input_shape, neuron, default_pool="max", bias=cfg.bias, make_norm=norm
        )
        body = self._with_attention(body, T, cfg)
        classes = self.data.num_classes
        if cfg.readout == "vote":
            head: nn.Module = nn.Sequential(
                TimeDistributed(nn.Linear(features, classes * cfg.voters, bias=cfg.bias)), neuron()
            )
            return TCJANet(body, head, cfg.voters)
        return TCJANet(body, TimeDistributed(nn.Linear(features, classes)), 1)

    def _with_attention(self, body: nn.Sequential, T: int, cfg: TCJAConfig) -> nn.Sequential:
        """Insert a TCJA block before each of the last ``attention_layers`` pooling layers."""
        layers = self.arch.layers
        pools = [i for i, layer in enumerate(layers) if isinstance(layer, Pool)]
        if len(pools) < cfg.attention_layers:
            raise SnnbenchError(
                f"architecture {self.arch.name!r}: tcja-snn places {cfg.attention_layers} TCJA blocks before "
                f"the last pooling layers, but it has {len(pools)}"
            )
        chosen = pools[len(pools) - cfg.attention_layers :]
        channels = [output_shape(layers[:i], self.data.input_shape)[0] for i in chosen]
        pooling = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
        positions = [
            i for i, m in enumerate(body) if isinstance(m, TimeDistributed) and isinstance(m.module, pooling)
        ]
        insert = dict(zip(positions[len(positions) - cfg.attention_layers :], channels, strict=True))
        modules: list[nn.Module] = []
        for i, module in enumerate(body):
            if i in insert:
                modules.append(TCJA(T, insert[i], cfg.kernel_t, cfg.kernel_c))
            modules.append(module)
        return nn.Sequential(*modules)

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        cfg: TCJAConfig = self.config  # type: ignore[assignment]
        assert state.optimizer is not None
        net.train()
        tally = EpochTally()
        for x, y in batches:
            out = net(ctx.encode(x))
            loss = self.loss(out, y, cfg)
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            tally.add(loss.item() * len(y), out, y)
        if state.scheduler is not None:
            state.scheduler.step()
        return tally.summary()

    @staticmethod
    def loss(out: torch.Tensor, y: torch.Tensor, cfg: TCJAConfig) -> torch.Tensor:
        """Eq. (8): MSE to the one-hot label (mean over classes and samples, as ``F.mse_loss``) or CE."""
        if cfg.loss == "ce":
            return F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
        return F.mse_loss(out, F.one_hot(y, out.shape[1]).to(out.dtype))
