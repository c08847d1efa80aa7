"""S-ResNet: a residual spiking network whose skips add spikes and shortcut every two layers, with per-step
batch norm and a leaky soft-reset neuron, trained by surrogate-gradient BPTT.

Vicente-Sola, Manna, Kirkland, Di Caterina & Bihl, "Keys to accurate feature extraction using residual
spiking neural networks", Neuromorphic Computing and Engineering 2:044001 (2022), arXiv 2111.05955; official
code VicenteAlex/Spiking_ResNet @c120f8e (``model.py`` ``SResnet``, ``train.py``, ``utils.py``). Only the
paper's abstract could be read here: every equation and value below is read from the code (the line of each
in docs/algorithms/s-resnet.md).

Per convolution l and time step t (time-major; convolutions without bias):
  (1) u_l[t] = λ u_l[t−1] + BN_{l,t}(W_l ∗ x_l[t])     one BatchNorm per layer and step: its own γ_t, β_t
                                                      and running statistics (eps 1e-4, momentum 0.1)
  (2) s_l[t] = Θ(u_l[t]/ϑ − 1);   ∂s/∂(u/ϑ) ≈ 0.3 max(0, 1 − |u/ϑ − 1|)   (SurrogateBPFunction; the
      official Θ(0) = 0, ours Θ(0) = 1, the project's convention: a membrane exactly at ϑ)
  (3) u_l[t] ← u_l[t] − ϑ s_l[t]                       reset by subtraction, not differentiated
  (4) the skip joins every second convolution: a block of input x gives
        y = s(conv₂(s(conv₁(x)))) + sc(x),   sc(x) = x, or BN_t(conv1×1_s2(x)) where the stage changes,
      no neuron on the skip: the next layer reads spikes plus shortcut (integers, or reals after a 1×1 skip)
  (5) read-out: logits = (1/T) Σ_t W_fc GAP(y_L[t])    (the FC membrane summed without leak, divided by T);
      boosting: the FC has 10·C outputs, averaged in consecutive groups of 10 (``AvgPool1d(10, 10)``)
Input: the normalised image at every step (analog; the official ``--poisson_gen`` is the signed-rate
encoding). Loss: cross-entropy of the logits. SGD lr 0.026844, momentum 0.9, weight decay 1e-4, the lr ÷10
after epoch e (0-based) when e = 0.7 N, 0.8 N or 0.9 N; Xavier-uniform initialisation with gain 2 of every
convolution and of the FC; T = 50, 70 epochs, batch 21. Deviations: docs/algorithms/s-resnet.md.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from snnbench.algorithms import (
    Algorithm,
    AlgorithmConfig,
    Paper,
    algorithms,
)
from snnbench.algorithms._residual import build_body, pool_module
from snnbench.algorithms.bntt import BNTT
from snnbench.architectures import Block, Conv
from snnbench.neurons.functional import LIFParams, lif_multistep
from snnbench.neurons.layers import SpikingLayer, TimeDistributed

BOOST = 10  # official boosting: FC outputs per class, averaged (model.py:42, 86)


class SResNetConfig(AlgorithmConfig):
    """Official defaults: the README's CIFAR-10/100 commands, else train.py's (VicenteAlex/Spiking_ResNet
    @c120f8e)."""

    leak: float = Field(
        0.8744,
        gt=0.0,
        le=1.0,
        description="λ, --leak_mem 0.8744 (README commands; train.py:30 default 0.874)",
    )
    threshold: float = Field(1.0, gt=0.0, description="ϑ, m.threshold = 1.0 (model.py:101, 104)")
    surrogate_alpha: float = Field(0.3, gt=0.0, description="triangle surrogate height (model.py:20)")
    bn_eps: float = Field(1e-4, gt=0.0, description="model.py:54")
    bn_momentum: float = Field(0.1, gt=0.0, lt=1.0, description="model.py:54")
    init_gain: float = Field(2.0, gt=0.0, description="Xavier-uniform gain (model.py:102, 105)")
    boosting: bool = Field(
        False, description="FC to 10 outputs per class, averaged (--boosting, train.py:34)"
    )
    lr: float = Field(
        0.026844, gt=0.0, description="SGD, --lr 0.026844 (README commands; train.py:29 0.0268)"
    )
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="train.py:214")
    weight_decay: float = Field(1e-4, ge=0.0, description="train.py:214")
    lr_milestones: tuple[float, ...] = Field(
        (0.7, 0.8, 0.9),
        description="÷10 after epoch e (0-based) when e = f·epochs (train.py:267, utils.py:6)",
    )


class SoftResetLIF(SpikingLayer):
    """Eqs. (1)–(3) after the batch norm: u = λu + I; s = Θ(u/ϑ − 1); u ← u − ϑ s (reset not
    differentiated); ∂s/∂u = (α/ϑ) max(0, 1 − |u/ϑ − 1|). Runs in the fused LIF kernel in units of ϑ
    (u/ϑ: decay λ, input scale 1/ϑ, threshold 1, the triangle of height α and half-width 1): the same
    equations, with the project's Θ(0) = 1 where the official code has Θ(0) = 0."""

    def __init__(self, leak: float, threshold: float, alpha: float) -> None:
        super().__init__()
        self.leak, self.threshold = leak, threshold
        self.params = LIFParams(
            tau=math.inf if leak == 1.0 else 1.0 / (1.0 - leak),  # eq. (1): decay 1 − 1/τ = λ
            v_threshold=1.0,
            v_reset=None,  # eq. (3): subtract ϑ (1 in units of ϑ)
            surrogate="triangle",  # eq. (2): α max(0, 1 − |u/ϑ − 1|)
            alpha=alpha,
            detach_reset=True,
            input_scale=1.0 / threshold,  # in units of ϑ
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lif_multistep(x, self.params)


class StepBatchNorm(nn.Module):
    """One BatchNorm2d per time step (official ``bntt`` lists): γ_t, β_t and running statistics of step t."""

    def __init__(self, channels: int, T: int, eps: float, momentum: float) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(T, channels))
        self.bias = nn.Parameter(torch.zeros(T, channels))
        self.register_buffer("running_mean", torch.zeros(T, channels))
        self.register_buffer("running_var", torch.ones(T, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = []
        for t in range(x.shape[0]):
            step = t  # step t's own statistics and affine parameters
            steps.append(
                F.batch_norm(
                    x[t], self.running_mean[step], self.running_var[step], self.weight[step],
                    self.bias[step], self.training, self.momentum, self.eps,
                )
            )  # fmt: skip
        return torch.stack(steps)


def conv_bn(
    cfg: SResNetConfig, T: int, in_channels: int, out_channels: int, kernel: int, stride: int, padding: int
) -> nn.Sequential:
    """Bias-free convolution on every step, then the per-step batch norm."""
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=False)
    return nn.Sequential(TimeDistributed(conv), StepBatchNorm(out_channels, T, cfg.bn_eps, cfg.bn_momentum))


def neuron(cfg: SResNetConfig) -> SoftResetLIF:
    return SoftResetLIF(cfg.leak, cfg.threshold, cfg.surrogate_alpha)


class SBlock(nn.Module):
    """Eq. (4): two conv-BN-neuron layers; the skip adds the block's input (or its 1×1 projection) to the
    second layer's spikes."""

    def __init__(self, cfg: SResNetConfig, T: int, in_channels: int, block: Block) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            conv_bn(cfg, T, in_channels, block.channels, 3, block.stride, 1),
            neuron(cfg),
            conv_bn(cfg, T, block.channels, block.channels, 3, 1, 1),
            neuron(cfg),
        )
        self.shortcut: nn.Module | None = None
        if block.stride != 1 or in_channels != block.channels:
            self.shortcut = conv_bn(cfg, T, in_channels, block.channels, 1, block.stride, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.branch(x) + skip


class SResNet(nn.Module):
    """Body (stem, blocks, pooling, flattened per step) and the read-out of eq. (5)."""

    def __init__(self, body: nn.Sequential, head: nn.Linear, boosting: bool) -> None:
        super().__init__()
        self.body, self.head, self.boosting = body, head, boosting

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(x))  # [T, B, C] (boosting: [T, B, 10 C])
        if self.boosting:
            out = out.unflatten(-1, (-1, BOOST)).mean(-1)
        return out.sum(0) / out.shape[0]  # the FC membrane accumulated over T, ÷ T


@algorithms.register("s-resnet")
class SResNetMethod(Algorithm):
    """S-ResNet (Vicente-Sola et al. 2022): spike + shortcut skips every two layers, per-step BN, leaky
    soft-reset neurons, FC membrane averaged over T, surrogate BPTT."""

    paper = Paper(
        authors="Vicente-Sola, Manna, Kirkland, Di Caterina & Bihl",
        title="Keys to accurate feature extraction using residual spiking neural networks",
        venue="Neuromorphic Computing and Engineering",
        year=2022,
        url="https://arxiv.org/abs/2111.05955",
        equations="u = λu + BN_t(W∗x), s = Θ(u/ϑ − 1), u ← u − ϑs; y = s(conv(s(conv(x)))) + sc(x); "
        "logits = mean_t FC(GAP(y)); triangle surrogate 0.3 max(0, 1 − |u/ϑ − 1|)",
    )
    description = "S-ResNet: spike+shortcut skips every 2 layers, per-step BN, leaky soft-reset LIF, BPTT"
    Config = SResNetConfig
    default_encoding = "direct"
    residual_blocks = True

    def build(self, T: int) -> nn.Module:
        cfg: SResNetConfig = self.config  # type: ignore[assignment]

        def conv_unit(in_channels: int, conv: Conv, first: bool) -> nn.Module:
            # the stem (and any plain convolution): conv-BN-neuron, no skip
            unit = conv_bn(cfg, T, in_channels, conv.channels, conv.kernel, conv.stride, conv.pad)
            return nn.Sequential(*unit, neuron(cfg))

        body, features = build_body(
            self.arch,
            self.data.input_shape,
            conv_unit,
            lambda in_channels, block: SBlock(cfg, T, in_channels, block),
            pool_module,
        )
        outputs = self.data.num_classes * (BOOST if cfg.boosting else 1)
        net = SResNet(body, nn.Linear(features, outputs, bias=False), cfg.boosting)
        for module in net.modules():  # official initialisation; BN γ = 1, β = 0 (PyTorch's)
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight, gain=cfg.init_gain)
        return net

    # the official loop takes the same steps as BNTT's: SGD with momentum and weight decay, LR ÷10 after epoch
    # e when e = f·N, a float comparison (train.py:214, 267, utils.py:6), the normalised image fed to the net
    configure = BNTT.configure
    train_epoch = BNTT.train_epoch
    _encode = BNTT._encode
    predict = BNTT.predict
