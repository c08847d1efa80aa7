"""ALBSNN-style partly binary spiking network: binary weights in the layers a binarisation-error estimate
selects, a convolution-plus-global-average-pooling classifier instead of fully connected layers, T = 1.

Pei, Xu, Wu, Liu & Yang, "ALBSNN: ultra-low latency adaptive local binary spiking neural network with
accuracy loss estimator", Frontiers in Neuroscience 17:1225871 (2023), doi 10.3389/fnins.2023.1225871;
arXiv 2208.00398 (2022, "Ultra-low Latency Adaptive Local Binary Spiking Neural Network with Accuracy Loss
Estimator"). No official code. **Only the abstract could be read here** (the journal's and arXiv's; where we
looked: docs/algorithms/albsnn.md). What the abstract determines, and we implement:

* some layers of the network are binarised, chosen *during learning* from "the error caused by the
  binarized weights" (the accuracy loss estimator);
* the fully connected layers are replaced by convolution and global average pooling (GAP);
* T = 1 time step is the headline setting.

The paper's estimator equation, its binarisation function, its network, neuron and recipe, and its binary
weight optimisation (BWO, journal version only) could **not** be read. Everything below that is not in the
list above is ours (declared on the suite entries' fidelity cards); in particular eq. (3) is **our**
estimator, not the paper's, and BWO is not implemented.

Equations (time-major; per convolution l, step t):
  (1) binarisation of a selected layer (XNOR-Net's binary-weight form, ours):
        W^b_l = α_l ⊙ sign(W_l),   α_{l,o} = mean_{i,k} |W_{l,o,i,k}|  (one α per output channel),
        sign(0) = +1; α is not differentiated; backward by the clipped straight-through estimator
        (BinaryConnect): ∂L/∂W_l = α_l ⊙ ∂L/∂W^b_l ⊙ 1{|W_l| ≤ 1}
  (2) layer:  s_l[t] = LIF(BN_l(W_l ∗ s_{l−1}[t]))  with W^b_l in place of W_l where selected; decay-input
      LIF (τ 2, ϑ 1, hard reset to 0), the sigmoid surrogate; BN over T·B
  (3) estimator (ours): e_l = ‖W_l − W^b_l‖² / ‖W_l‖², the relative squared binarisation error of the latent
      weights; at the start of every epoch each candidate layer (every convolution but the first and the
      class convolution) is binarised iff e_l ≤ ε, ε = 1 − 2/π by default (the value of e_l for Gaussian
      weights: a layer whose weights carry more information in their magnitudes stays full precision)
  (4) classifier: a 3×3 convolution to the C classes (no BN, no neuron), GAP over space, mean over T:
      logits = (1/T) Σ_t GAP(W_c ∗ s_L[t] + b_c); cross-entropy, Adam with a cosine schedule
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
    Evaluation,
    Paper,
    RunContext,
    TrainState,
    algorithms,
    supervised_epoch,
)
from snnbench.architectures import Conv, Pool
from snnbench.data import Split
from snnbench.errors import SnnbenchError
from snnbench.neurons.functional import LIFParams
from snnbench.neurons.layers import LIF, TimeDistributed

GAUSSIAN_ERROR = 1.0 - 2.0 / math.pi  # e of eq. (3) for Gaussian weights: 1 − (E|w|)² / E w²


class ALBSNNConfig(AlgorithmConfig):
    """Every default is ours: the paper's values could not be read (docs/algorithms/albsnn.md)."""

    tau: float = Field(2.0, gt=1.0, description="LIF time constant (ours; no effect on the charge at T = 1)")
    v_threshold: float = Field(1.0, gt=0.0, description="firing threshold ϑ (ours)")
    surrogate: Literal["sigmoid", "arctan", "fast-sigmoid"] = Field(
        "sigmoid", description="surrogate of Θ' (ours: the project's default)"
    )
    error_threshold: float = Field(
        GAUSSIAN_ERROR,
        ge=0.0,
        le=1.0,
        description="ε of eq. (3): a candidate layer is binarised iff its relative binarisation error ≤ ε "
        "(ours: 1 − 2/π, the error of Gaussian weights)",
    )
    class_kernel: int = Field(3, ge=1, description="kernel of the class convolution before GAP (ours)")
    lr: float = Field(1e-3, gt=0.0, description="Adam learning rate (ours)")
    weight_decay: float = Field(0.0, ge=0.0, description="Adam weight decay (ours)")


class _SignSTE(torch.autograd.Function):
    """sign with sign(0) = +1; backward: the clipped straight-through estimator 1{|w| ≤ 1}."""

    @staticmethod
    def forward(ctx, w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(w)
        return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1).to(grad.dtype)


def channel_scale(w: torch.Tensor) -> torch.Tensor:
    """α of eq. (1): the mean |w| of each output channel, shaped to broadcast over ``w``; not
    differentiated."""
    return w.detach().abs().flatten(1).mean(1).view(-1, *([1] * (w.dim() - 1)))


def binarize(w: torch.Tensor) -> torch.Tensor:
    """Eq. (1): α ⊙ sign(w), gradient α ⊙ g ⊙ 1{|w| ≤ 1}."""
    return channel_scale(w) * _SignSTE.apply(w)


def binarization_error(w: torch.Tensor) -> float:
    """Eq. (3), our estimator: ‖w − α sign w‖² / ‖w‖² (0 for an all-zero tensor)."""
    w = w.detach().double()
    norm = float((w * w).sum())
    if norm == 0.0:
        return 0.0
    binary = channel_scale(w) * torch.where(w >= 0, 1.0, -1.0).double()
    return float(((w - binary) ** 2).sum()) / norm


class BinaryConv2d(nn.Conv2d):
    """A convolution whose weights are binarised by eq. (1) while ``binarized`` (a buffer: it survives a
    checkpoint and the saved model). ``candidate``: whether the estimator may select it."""

    def __init__(self, *args, candidate: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.candidate = candidate
        self.register_buffer("binarized", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = binarize(self.weight) if bool(self.binarized) else self.weight
        return self._conv_forward(x, weight, self.bias)


class ALBSNNNet(nn.Module):
    """Body (conv-BN-LIF and pooling layers) and the classifier of eq. (4)."""

    def __init__(self, body: nn.Sequential, classifier: BinaryConv2d) -> None:
        super().__init__()
        self.body, self.classifier = body, TimeDistributed(classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.classifier(self.body(x))  # [T, B, C, H, W]
        return maps.mean(dim=(3, 4)).mean(0)  # GAP, then the mean over T


def candidates(net: nn.Module) -> list[BinaryConv2d]:
    """The layers eq. (3) decides on, in network order."""
    return [m for m in net.modules() if isinstance(m, BinaryConv2d) and m.candidate]


def select_layers(net: nn.Module, threshold: float) -> list[float]:
    """Eq. (3): binarise every candidate layer whose error is ≤ ``threshold``, restore the others; returns
    the errors in network order."""
    errors = []
    for layer in candidates(net):
        error = binarization_error(layer.weight)
        layer.binarized.fill_(error <= threshold)
        errors.append(error)
    return errors


def storage(net: nn.Module) -> dict[str, float]:
    """Binarised layers and the share of the synaptic weights they hold (1 bit each, plus one α per output
    channel, instead of 32)."""
    convs = [m for m in net.modules() if isinstance(m, BinaryConv2d)]
    total = sum(m.weight.numel() for m in convs)
    binary = [m for m in convs if bool(m.binarized)]
    binary_weights = sum(m.weight.numel() for m in binary)
    bits = 32 * (total - binary_weights) + sum(m.weight.numel() + 32 * m.out_channels for m in binary)
    return {
        "binarized_layers": float(len(binary)),
        "binary_weight_fraction": binary_weights / total if total else 0.0,
        "weight_storage_saving": 1.0 - bits / (32 * total) if total else 0.0,
    }


@algorithms.register("albsnn")
class ALBSNN(Algorithm):
    """ALBSNN-style network (Pei et al. 2023, abstract only): binary weights (α·sign, clipped STE) in the
    layers our binarisation-error estimate selects each epoch, conv + GAP classifier, surrogate BPTT."""

    paper = Paper(
        authors="Pei, Xu, Wu, Liu & Yang",
        title="ALBSNN: ultra-low latency adaptive local binary spiking neural network with accuracy loss "
        "estimator",
        venue="Frontiers in Neuroscience",
        year=2023,
        url="https://doi.org/10.3389/fnins.2023.1225871",
        equations="abstract only: layers binarised by an error estimate during learning, GAP instead of FC, "
        "T = 1. Ours: W^b = α sign(W) (α = mean |W| per output channel), clipped STE; estimator "
        "e = ‖W − W^b‖²/‖W‖² ≤ 1 − 2/π at every epoch start; logits = mean_t GAP(conv_C(s))",
    )
    description = (
        "ALBSNN-style (abstract only): α·sign binary weights + STE in layers picked by a binarisation-error "
        "estimate (ours), conv+GAP classifier, LIF BPTT, T = 1"
    )
    version = 1
    changelog = ("1: first version",)
    Config = ALBSNNConfig
    default_encoding = "direct"

    def build(self, T: int) -> nn.Module:
        cfg: ALBSNNConfig = self.config  # type: ignore[assignment]
        shape = self.data.input_shape
        if len(shape) != 3:
            raise SnnbenchError(f"albsnn builds convolutional networks: input shape {shape} is not [C, H, W]")
        params = LIFParams(cfg.tau, cfg.v_threshold, 0.0, cfg.surrogate)
        layers: list[nn.Module] = []
        channels, first = shape[0], True
        for layer in self.arch.layers:
            if isinstance(layer, Conv):
                conv = BinaryConv2d(
                    channels, layer.channels, layer.kernel, layer.stride, layer.pad, bias=False,
                    candidate=not first,
                )  # fmt: skip
                layers += [
                    TimeDistributed(conv),
                    TimeDistributed(nn.BatchNorm2d(layer.channels)),
                    LIF(params),
                ]
                channels, first = layer.channels, False
            elif isinstance(layer, Pool) and layer.kind in ("default", "avg", "max"):
                pool = nn.MaxPool2d(layer.size) if layer.kind == "max" else nn.AvgPool2d(layer.size)
                layers.append(TimeDistributed(pool))
            else:
                raise SnnbenchError(
                    f"albsnn: architecture {self.arch.name!r} has {layer}; it takes convolutions and "
                    "pooling only (the class convolution and GAP are appended: GAP replaces FC layers)"
                )
        if first:
            raise SnnbenchError(f"albsnn: architecture {self.arch.name!r} has no convolution")
        classifier = BinaryConv2d(
            channels, self.data.num_classes, cfg.class_kernel, 1, cfg.class_kernel // 2, candidate=False
        )
        return ALBSNNNet(nn.Sequential(*layers), classifier)

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: ALBSNNConfig = self.config  # type: ignore[assignment]
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        return TrainState(optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=ctx.epochs))

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        cfg: ALBSNNConfig = self.config  # type: ignore[assignment]
        select_layers(net, cfg.error_threshold)  # eq. (3) at the start of the epoch
        net.train()
        return supervised_epoch(state, batches, lambda x: net(ctx.encode(x)), F.cross_entropy)

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return net(ctx.encode(x))

    def evaluate(self, net: nn.Module, test: Split, ctx: RunContext) -> Evaluation:
        evaluation = super().evaluate(net, test, ctx)
        evaluation.extra.update(storage(net))
        return evaluation
