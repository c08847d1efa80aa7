"""OTTT: Online Training Through Time.

Xiao, Meng, Zhang, He & Lin, "Online Training Through Time for Spiking Neural Networks", NeurIPS 2022,
https://arxiv.org/abs/2210.04195; official code pkuxmq/OTTT-SNN (``modules/neuron.py`` OnlineLIFNode,
``models/spiking_vgg.py`` WrapedSNNOp/Replace/ScaledWSConv2d), read for the settings below.

Per layer l and step t (forward in time, no unrolled graph):
  (1) LIF      u_l[t] = λ · sg(u_l[t−1]) + I_l[t],  s_l[t] = Θ(u_l[t] − ϑ),  u_l[t] ← u_l[t] − ϑ sg(s_l[t])
               λ = 1 − 1/τ = 0.5, ϑ = 1, soft reset; sg = stop-gradient (the membrane is detached every step)
  (2) trace    â_l[t] = λ â_l[t−1] + s_l[t]  (no gradient)
  (3) synapse  I_{l+1}[t] = Ŵ_{l+1} s_l[t] (forward value), with the weight gradient taken on the trace:
               ∂ℓ[t]/∂W_{l+1} = δ_{l+1}[t] â_l[t]ᵀ and the error passed to s_l[t] (straight-through),
               δ_l[t] = (Ŵ_{l+1}ᵀ δ_{l+1}[t]) ⊙ σ'(u_l[t] − ϑ), σ' the sigmoid surrogate (α = 4)
  (4) loss     ℓ[t] = [(1 − λ_L) CE(o[t], y) + λ_L MSE(o[t], onehot(y))] / T, λ_L = 0.05; backward at every
               step (the graph of step t is freed before step t+1). OTTT_A: gradients summed over t, one
               optimiser step per batch (default); OTTT_O (``online_update``): a step after every t
  (5) WS       Ŵ = g · (W − mean(W)) / sqrt(var(W) · fan_in + 1e−4) per output unit (scaled weight
               standardisation instead of BN, unbiased variance), spikes scaled by 2.74 (folded into the next
               layer's weight here, so that inputs stay binary: identical arithmetic); the classifier is a
               plain linear layer on the 2.74-scaled spikes (official ``light_classifier``)
  (5b) VGG-F   (``feedback``) I_1[t] += C_fb ∗ up(2.74 s_last[t−1]): a zero-initialised 3×3 convolution of the
               last conv layer's previous spikes, nearest-upsampled to the first layer's resolution
  (6) decode   prediction = argmax Σ_t o[t]; input: the image normalised with the dataset's (or the suite
               entry's ``preprocess``) statistics, as ``train_cifar.py``, at every step (direct coding)
With ``online=False`` the same network runs full BPTT (no detach, no traces): the reference for the
descent-direction check and the memory benchmark.
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
from snnbench.neurons.functional import spike
from snnbench.neurons.layers import SpikingLayer
from snnbench.pooling import AvgPool2d

SPIKE_SCALE = 2.74  # official code: Scale(2.74), the NF-ResNet scaled-WS constant


class OTTTConfig(AlgorithmConfig):
    """Defaults of the official ``train_cifar.py`` (said to be the paper's)."""

    tau: float = Field(2.0, gt=1.0, description="λ = 1 − 1/τ = 0.5 (OnlineLIFNode)")
    v_threshold: float = Field(1.0, gt=0.0, description="ϑ")
    alpha: float = Field(4.0, gt=0.0, description="sigmoid surrogate sharpness (official, since Dec 2022)")
    loss_lambda: float = Field(0.05, ge=0.0, le=1.0, description="MSE share λ_L (CIFAR 0.05, DVS 0.001)")
    online_update: bool = Field(False, description="OTTT_O: optimiser step after every time step")
    feedback: bool = Field(False, description="VGG-F: feedback conv from the last conv layer to the first")
    optimizer: Literal["sgd", "adam"] = Field(
        "sgd", description="SGD (CIFAR, CIFAR10-DVS); Adam 1e-3 (DVS Gesture)"
    )
    lr: float = Field(0.1, gt=0.0, description="SGD 0.1 (official train_cifar.py)")
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)


class ScaledWS(nn.Module):
    """Eq. (5): a Linear or Conv2d whose forward uses g · standardised W · ``input_scale`` (the unbiased
    variance, as the official ``ScaledWSConv2d``); ``standardize=False``: the plain weight · ``input_scale``
    (the classifier and VGG-F's feedback convolution). Initialisation as the official code: Kaiming normal
    (fan-out) for convolutions, N(0, 0.01) for linear layers, zero biases."""

    def __init__(self, layer: nn.Linear | nn.Conv2d, input_scale: float, standardize: bool = True) -> None:
        super().__init__()
        self.layer, self.input_scale, self.standardize = layer, input_scale, standardize
        self.gain = (
            nn.Parameter(torch.ones(layer.weight.shape[0], *([1] * (layer.weight.dim() - 1))))
            if standardize
            else None
        )
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        else:
            nn.init.normal_(layer.weight, 0.0, 0.01)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)

    def weight(self) -> torch.Tensor:
        w = self.layer.weight
        if self.gain is None:
            return w * self.input_scale
        dims = tuple(range(1, w.dim()))
        fan_in = math.prod(w.shape[1:])
        mean, var = w.mean(dims, keepdim=True), w.var(dims, keepdim=True)
        return self.gain * (w - mean) / torch.sqrt(var * fan_in + 1e-4) * self.input_scale

    def apply(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        layer = self.layer
        if isinstance(layer, nn.Linear):
            return F.linear(x, weight, layer.bias)
        return F.conv2d(x, weight, layer.bias, layer.stride, layer.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x, self.weight())

    def count_operations(self, x: torch.Tensor) -> tuple[int, bool, int]:
        from snnbench.metrics import standard_operations

        return standard_operations(self.layer, x)


class OnlineLIF(SpikingLayer):
    """Eqs. (1)–(2) for one step; holds ``u`` and the trace between steps (``reset`` clears them)."""

    def __init__(self, cfg: OTTTConfig) -> None:
        super().__init__()
        self.decay, self.threshold, self.alpha = 1.0 - 1.0 / cfg.tau, cfg.v_threshold, cfg.alpha
        self.u: torch.Tensor | None = None
        self.trace: torch.Tensor | None = None

    def reset(self) -> None:
        self.u = self.trace = None

    def forward(self, current: torch.Tensor, online: bool = True) -> torch.Tensor:
        previous = torch.zeros_like(current) if self.u is None else self.u
        u = self.decay * (previous.detach() if online else previous) + current
        spikes = spike(u - self.threshold, "sigmoid", self.alpha)
        self.u = u - self.threshold * spikes.detach()
        with torch.no_grad():
            trace = spikes.detach() if self.trace is None else self.decay * self.trace + spikes.detach()
        self.trace = trace
        return spikes


def on_trace(layer: ScaledWS, spikes: torch.Tensor, trace: torch.Tensor) -> torch.Tensor:
    """Eq. (3): the value of ``layer(spikes)``; the weight gradient from ``layer(trace)``; the error to the
    spikes (straight through the replacement of their value by the trace)."""
    weight = layer.weight()
    through_trace = layer.apply(spikes + (trace - spikes).detach(), weight)
    with torch.no_grad():
        value = layer.apply(spikes, weight)
    return through_trace + (value - through_trace).detach()


def _as_input(synapse: ScaledWS, x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1) if isinstance(synapse.layer, nn.Linear) else x


class OTTTNet(nn.Module):
    """A stack of (WS synapse → [pool] → OnlineLIF) blocks and a linear head, run one step at a time.

    VGG-F (``feedback``): the first layer's input current also receives a zero-initialised 3×3 convolution
    of the last convolutional layer's spikes of the previous step, upsampled (nearest) to the first layer's
    resolution; its weight gradient also uses the (upsampled) trace. Nothing is fed back at t = 0."""

    def __init__(
        self, blocks: nn.ModuleList, head: ScaledWS, feedback: ScaledWS | None = None, up: int = 1
    ) -> None:
        super().__init__()
        self.blocks, self.head, self.feedback, self.up = blocks, head, feedback, up
        self._previous: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset(self) -> None:
        self._previous = None
        for module in self.modules():
            if isinstance(module, OnlineLIF):
                module.reset()

    def _feedback_current(self, traced: bool) -> torch.Tensor | None:
        if self.feedback is None or self._previous is None:
            return None
        spikes, trace = (F.interpolate(t, scale_factor=self.up, mode="nearest") for t in self._previous)
        return on_trace(self.feedback, spikes, trace) if traced else self.feedback(spikes)

    def step(self, x: torch.Tensor, online: bool) -> torch.Tensor:
        """One time step ``x [B, ...]`` → output ``o[t] [B, classes]``; ``online``: OTTT's gradient path
        (eq. 3) in training, else ordinary autograd (BPTT when the membrane is not detached either)."""
        traced = online and self.training
        spikes: torch.Tensor | None = None
        trace: torch.Tensor | None = None
        for block in self.blocks:
            synapse, neuron = block["synapse"], block["neuron"]
            if spikes is None or trace is None:  # the input layer sees the image: not wrapped (official code)
                current = synapse(_as_input(synapse, x))
                fed_back = self._feedback_current(traced)
                if fed_back is not None:
                    current = current + fed_back
            elif traced:
                current = on_trace(synapse, _as_input(synapse, spikes), _as_input(synapse, trace))
            else:
                current = synapse(_as_input(synapse, spikes))
            fired = neuron(current, online)
            assert neuron.trace is not None
            if self.feedback is not None and block is self.blocks[-1]:
                self._previous = (fired.detach(), neuron.trace)
            spikes, trace = block["pool"](fired), block["pool"](neuron.trace)
        assert spikes is not None and trace is not None
        flat, flat_trace = spikes.flatten(1), trace.flatten(1)
        return on_trace(self.head, flat, flat_trace) if traced else self.head(flat)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Inference: Σ_t o[t] over ``[T, B, ...]``."""
        self.reset()
        return torch.stack([self.step(x_t, online=False) for x_t in x_seq]).sum(0)


def ottt_loss(o: torch.Tensor, y: torch.Tensor, loss_lambda: float, T: int) -> torch.Tensor:
    """Eq. (4) for one step."""
    mse = F.mse_loss(o, F.one_hot(y, o.shape[1]).to(o.dtype))
    return ((1.0 - loss_lambda) * F.cross_entropy(o, y) + loss_lambda * mse) / T


@algorithms.register("ottt")
class OTTT(Algorithm):
    """Online training through time: per-step backward with presynaptic eligibility traces."""

    paper = Paper(
        authors="Xiao, Meng, Zhang, He & Lin",
        title="Online Training Through Time for Spiking Neural Networks",
        venue="NeurIPS",
        year=2022,
        url="https://arxiv.org/abs/2210.04195",
        equations="LIF with detached membrane, presynaptic traces â, ∇W = Σ_t δ[t] â[t]ᵀ, "
        "per-step CE+MSE loss",
    )
    description = "OTTT: online per-step gradients from eligibility traces, memory constant in T (sWS VGG)"
    Config = OTTTConfig
    default_encoding = "direct"
    version = 3
    changelog = (
        "1: first version",
        "2: official initialisation, unbiased WS variance, plain linear classifier, VGG-F feedback option",
        "3: input normalised with the dataset's or the entry's statistics (official train_cifar.py)",
    )

    def build(self, T: int) -> nn.Module:
        cfg: OTTTConfig = self.config  # type: ignore[assignment]
        shape = tuple(self.data.input_shape)
        blocks: list[nn.ModuleDict] = []
        scale = 1.0  # the image is not a spike train
        for layer in self.arch.layers:
            if isinstance(layer, Conv):
                if len(shape) != 3:
                    raise SnnbenchError(f"ottt: a convolution needs image input, got {shape}")
                synapse = ScaledWS(
                    nn.Conv2d(shape[0], layer.channels, layer.kernel, layer.stride, layer.pad), scale
                )
                h, w = ((n + 2 * layer.pad - layer.kernel) // layer.stride + 1 for n in shape[1:])
                shape = (layer.channels, h, w)
            elif isinstance(layer, Dense):
                synapse = ScaledWS(nn.Linear(math.prod(shape), layer.units), scale)
                shape = (layer.units,)
            elif isinstance(layer, Pool) and layer.kind in ("default", "avg", "global_avg") and blocks:
                pool = nn.AdaptiveAvgPool2d(1) if layer.kind == "global_avg" else AvgPool2d(layer.size)
                blocks[-1]["pool"] = pool
                size = 1 if layer.kind == "global_avg" else None
                shape = (shape[0], size or shape[1] // layer.size, size or shape[2] // layer.size)
                continue
            elif isinstance(layer, Dropout):
                continue  # OTTT's neuron dropout is not implemented (0 in the CIFAR defaults)
            else:
                raise SnnbenchError(
                    f"ottt supports conv, dense and average pooling (after a layer), not {layer}"
                )
            blocks.append(
                nn.ModuleDict({"synapse": synapse, "pool": nn.Identity(), "neuron": OnlineLIF(cfg)})
            )
            scale = SPIKE_SCALE
        if not blocks:
            raise SnnbenchError("ottt needs at least one hidden layer")
        head = ScaledWS(nn.Linear(math.prod(shape), self.data.num_classes), SPIKE_SCALE, standardize=False)
        if not cfg.feedback:
            return OTTTNet(nn.ModuleList(blocks), head)
        first, last = blocks[0]["synapse"].layer, blocks[-1]["synapse"].layer
        if not isinstance(first, nn.Conv2d) or not isinstance(last, nn.Conv2d):
            raise SnnbenchError("ottt feedback (VGG-F) needs convolutional first and last layers")
        feedback_conv = nn.Conv2d(last.out_channels, first.out_channels, 3, padding=1)
        fb = ScaledWS(feedback_conv, SPIKE_SCALE, standardize=False)
        nn.init.zeros_(feedback_conv.weight)  # zero initialisation (official code)
        return OTTTNet(nn.ModuleList(blocks), head, fb, up=self._upsampling(blocks))

    def _upsampling(self, blocks: list[nn.ModuleDict]) -> int:
        """Resolution of the first layer's output over that of the last conv layer's (pools in between)."""
        factor = 1
        for block in blocks[:-1]:
            if isinstance(block["pool"], nn.AvgPool2d):
                factor *= int(block["pool"].kernel_size)  # type: ignore[arg-type]
        return factor

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: OTTTConfig = self.config  # type: ignore[assignment]
        optimizer: torch.optim.Optimizer
        if cfg.optimizer == "adam":
            optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            optimizer = torch.optim.SGD(
                net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        return TrainState(optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=ctx.epochs))

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        cfg: OTTTConfig = self.config  # type: ignore[assignment]
        assert isinstance(net, OTTTNet) and state.optimizer is not None
        net.train()
        tally = EpochTally()
        for x, y in batches:
            x_seq = ctx.encode(self.data.normalize(x))
            net.reset()
            state.optimizer.zero_grad(set_to_none=True)
            summed = torch.zeros(len(y), net.head.layer.out_features, device=x.device)
            loss_sum = 0.0
            for x_t in x_seq:
                o = net.step(x_t, online=True)
                loss = ottt_loss(o, y, cfg.loss_lambda, ctx.T)
                loss.backward()  # frees the graph of this step
                if cfg.online_update:
                    state.optimizer.step()
                    state.optimizer.zero_grad(set_to_none=True)
                summed += o.detach()
                loss_sum += loss.item()
            if not cfg.online_update:
                state.optimizer.step()
            tally.add(loss_sum * len(y), summed, y)
        assert state.scheduler is not None
        state.scheduler.step()
        return tally.summary()

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return net(ctx.encode(self.data.normalize(x)))
