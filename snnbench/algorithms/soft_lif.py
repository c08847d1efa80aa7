"""Soft-LIF training and conversion to LIF spiking networks (Hunsberger & Eliasmith).

Hunsberger & Eliasmith, "Spiking Deep Networks with LIF Neurons", arXiv 1510.08829, 2015, and "Training
Spiking Deep Networks for Neuromorphic Hardware", arXiv 1611.05141, 2016. Official code: the authors'
cuda-convnet2 fork ``hunse/cuda-convnet2`` (neuron ``softlif[m,t,r,a,g,n]`` in
``cudaconvnet/include/neuron.cuh``, layer files ``layers/layers-mnist-lif.cfg`` and
``layers/layers-cifar10-lif-noise10.cfg``, spiking run ``run_nengo.py``) and Nengo's ``SoftLIFRate``
(``nengo_extras/neurons.py``, ``nengo_dl/neurons.py``).

The ANN is trained once for all T (``training_depends_on_T = False``); the spiking network is the same
network with every soft-LIF unit replaced by a LIF neuron with the same τ_RC, τ_ref and gain:
  (1) current      y = α x, x = W a_{l−1} + b (α the gain, official ``a``; the LIF sees J = α x + 1, the
                   bias 1 putting the firing threshold at x = 0, as ``run_nengo.py``)
  (2) LIF rate     r(j) = 1 / (τ_ref + τ_RC log(1 + 1/j)) for j > 0, else 0, with j = J − 1
  (3) soft-LIF     r_γ(y) = r(ρ_γ(y)), ρ_γ(y) = γ log(1 + e^{y/γ}) (smoothed rectifier; ρ_γ → max(y, 0)
                   and r_γ → r as γ → 0); the unit outputs a = m · r_γ(α x) (amplitude m, official ``m``)
  (4) training     a = max(m r_γ(α x) + m σ_n ξ · [x > 0], 0), ξ ~ N(0, 1) (official ``softlif`` noise ``n``,
                   added only above threshold); the gradient is the noise-free ∂(m r_γ)/∂x =
                   m α τ_RC r² / (ρ (ρ + 1) (1 + e^{−α x/γ})), the official ``SoftLifGradientOperator``
  (5) LIF          Nengo's ``LIF.step_math`` with step dt: the refractory time counts down by dt, the
                   membrane integrates exactly over the non-refractory part δ = clip(dt − ref, 0, dt) of the
                   step, v ← v + (J − v)(1 − e^{−δ/τ_RC}); v > 1 spikes, v ← 0 (v clipped at 0), and the
                   refractory time is set to τ_ref + dt + τ_RC log(1 − (v − 1)/(J − 1)) (the spike's exact
                   time inside the step), so a constant J fires at exactly r(J − 1)
  (6) conversion   each spike stands for an impulse of area m (Nengo's amplitude m, output m/dt per spike):
                   the weights after a neuron layer are multiplied by m/dt and the ANN unit is rescaled to
                   output r dt (the expected spikes per step), so that the ANN function is unchanged and
                   the SNN sends binary spikes; logits = mean over T of the linear output layer
                   (``run_nengo.py`` averages the output over the presentation, ``method='mean'``)
  (7) synapse      optional: Nengo's ``Lowpass(τ_s)`` y_t = a y_{t−1} + (1 − a) x_t, a = e^{−dt/τ_s}, or an
                   alpha synapse as two such steps in cascade, on every layer's input current (W s + b),
                   as ``run_nengo.py`` sets one synapse on every connection; default none (its
                   ``synapse_type=None``)
Pooling is average pooling (``run_nengo.py`` asserts ``pool == 'avg'``). Each sample starts from rest
(v = 0, no refractory time, filters at 0).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from snnbench.algorithms import AlgorithmConfig, Paper, RunContext, TrainState, algorithms
from snnbench.algorithms.conversion import Conversion, ConversionNet, _inner
from snnbench.architectures import Pool
from snnbench.data import Split
from snnbench.errors import SnnbenchError
from snnbench.networks import build_feedforward
from snnbench.neurons.layers import SpikingLayer


class SoftLIFConfig(AlgorithmConfig):
    """Defaults: the official MNIST network's neuron and schedule (``layers/layers-mnist-lif.cfg``,
    ``layers/layer-params-mnist-lif.cfg`` in ``hunse/cuda-convnet2``), Nengo's default step."""

    amplitude: float = Field(0.063, gt=0.0, description="output amplitude m (official softlif m: 0.063)")
    tau_ref: float = Field(
        0.002, ge=0.0, description="refractory period τ_ref in s (official: 0.002 MNIST, 0.001 CIFAR-10)"
    )
    tau_rc: float = Field(
        0.022, gt=0.0, description="membrane time constant τ_RC in s (official: 0.022 MNIST, 0.05 CIFAR-10)"
    )
    gain: float = Field(1.0, gt=0.0, description="input gain α (softlif a: 1.0 MNIST, 0.825 CIFAR-10)")
    gamma: float = Field(0.02, gt=0.0, description="smoothing γ of ρ_γ (official softlif g: 0.02)")
    noise: float = Field(
        10.0, ge=0.0, description="training noise σ in Hz, times m, above threshold (official softlif n: 10)"
    )
    dt: float = Field(0.001, gt=0.0, description="simulation step in s (Nengo's default dt)")
    synapse: Literal["none", "lowpass", "alpha"] = Field(
        "none",
        description="SNN synapse on every layer's input current (run_nengo.py: synapse_type None (default), "
        "'lowpass' or 'alpha'; alpha here = two cascaded lowpass steps)",
    )
    tau_s: float = Field(
        0.005, gt=0.0, description="synapse time constant τ_s in s (official runs: alpha 0–5 ms)"
    )
    lr: float = Field(
        0.002, gt=0.0, description="SGD learning rate for weights (official epsW 0.002; biases get 2×, epsB)"
    )
    bias_lr_factor: float = Field(2.0, gt=0.0, description="bias lr / weight lr (official epsB/epsW = 2)")
    lr_decay: float = Field(
        100.0, ge=1.0, description="exponential lr decay to lr/lr_decay at the end (official tgtFactor 100)"
    )
    lr_steps: list[int] = Field(
        [],
        description="epochs after which lr ÷ 10 (replaces lr_decay when given; CIFAR-10 11pct methodology: "
        "500, 510 of 520)",
    )
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum (official momW, momB: 0.9)")
    weight_decay_conv: float = Field(0.0, ge=0.0, description="L2 on convolution weights (official wc 0)")
    weight_decay_dense: float = Field(
        0.004, ge=0.0, description="L2 on hidden dense weights (official wc fc1 0.004)"
    )
    weight_decay_output: float = Field(
        0.001, ge=0.0, description="L2 on output-layer weights (official wc fc10 0.001 MNIST, 0.01 CIFAR-10)"
    )
    init_std: float | list[float] = Field(
        0.01,
        description="N(0, s²) weight initialisation, biases 0 (official initW); one value, or one per "
        "synaptic layer in order, output layer last (MNIST: 0.1, 0.1, 0.01, 0.01)",
    )


def lif_rate(j: torch.Tensor, tau_ref: float, tau_rc: float) -> torch.Tensor:
    """Eq. (2): 1/(τ_ref + τ_RC log(1 + 1/j)) where j > 0, else 0. Below j = √tiny (1e−19 in float32,
    where r ≈ 1 Hz) the rate is 0 too, so that j² in the gradient stays a normal number."""
    positive = j > torch.finfo(j.dtype).tiny ** 0.5
    safe = torch.where(positive, j, torch.ones_like(j))
    return torch.where(positive, 1.0 / (tau_ref + tau_rc * torch.log1p(1.0 / safe)), torch.zeros_like(j))


def soft_lif_rate(y: torch.Tensor, tau_ref: float, tau_rc: float, gamma: float) -> torch.Tensor:
    """Eq. (3): r(ρ_γ(y)), ρ_γ(y) = γ log(1 + e^{y/γ}) computed as γ (u + log(1 + e^{−u})) for
    u = y/γ > 0 and γ log(1 + e^{u}) otherwise: exact in both tails, gradient σ(u) everywhere (½ at 0)."""
    u = y / gamma
    above, below = u.clamp(min=0.0), u.clamp(max=0.0)
    rho = torch.where(u > 0, above + torch.log1p(torch.exp(-above)), torch.log1p(torch.exp(below)))
    return lif_rate(gamma * rho, tau_ref, tau_rc)


def lowpass(current: torch.Tensor, tau_s: float, dt: float) -> torch.Tensor:
    """Nengo's ``Lowpass(τ_s)`` on ``[T, ...]`` from rest: y_t = a y_{t−1} + (1 − a) x_t, a = e^{−dt/τ_s}."""
    a = torch.exp(torch.tensor(-dt / tau_s, dtype=torch.float64)).item()
    y = torch.zeros_like(current[0])
    out = []
    for x in current:
        y = a * y + (1.0 - a) * x
        out.append(y)
    return torch.stack(out)


def lif_steps(
    current: torch.Tensor, tau_ref: float, tau_rc: float, dt: float, gain: float = 1.0
) -> torch.Tensor:
    """Eq. (5) on ``[T, B, ...]`` synaptic input x: J = gain·x + 1; binary spikes ``[T, B, ...]``."""
    v = torch.zeros_like(current[0])
    refractory = torch.zeros_like(current[0])
    spikes = []
    for x in current:
        J = gain * x + 1.0
        refractory = refractory - dt
        delta = torch.clamp(dt - refractory, 0.0, dt)
        v = v - (J - v) * torch.expm1(-delta / tau_rc)
        spiked = v > 1.0
        over = torch.where(spiked, (v - 1.0) / torch.where(spiked, J - 1.0, torch.ones_like(J)), 0.0)
        t_spike = dt + tau_rc * torch.log1p(-over)
        v = torch.where(spiked, torch.zeros_like(v), torch.clamp(v, min=0.0))
        refractory = torch.where(spiked, tau_ref + t_spike, refractory)
        spikes.append(spiked.to(current.dtype))
    return torch.stack(spikes)


class SoftLIFNeuron(SpikingLayer):
    """Soft-LIF rate unit (ANN mode, eqs. 3–4) or LIF neuron (``spiking``, eq. 5).

    The ANN output is ``out_scale`` · r: m before conversion, dt after it (eq. 6)."""

    def __init__(self, cfg: SoftLIFConfig) -> None:
        super().__init__()
        self.tau_ref, self.tau_rc, self.gain, self.gamma = cfg.tau_ref, cfg.tau_rc, cfg.gain, cfg.gamma
        self.amplitude, self.noise, self.dt = cfg.amplitude, cfg.noise, cfg.dt
        self.synapse, self.tau_s = cfg.synapse, cfg.tau_s
        self.register_buffer("converted", torch.tensor(False))
        self.spiking = False

    @property
    def out_scale(self) -> float:
        """m before conversion, dt after it (eq. 6)."""
        return self.dt if bool(self.converted) else self.amplitude

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spiking:
            current = x
            for _ in range({"none": 0, "lowpass": 1, "alpha": 2}[self.synapse]):
                current = lowpass(current, self.tau_s, self.dt)
            return lif_steps(current, self.tau_ref, self.tau_rc, self.dt, self.gain)
        rate = self.out_scale * soft_lif_rate(self.gain * x, self.tau_ref, self.tau_rc, self.gamma)
        if self.training and self.noise > 0:  # eq. (4): noise above threshold, rectified, not differentiated
            noisy = rate + self.out_scale * self.noise * torch.randn_like(rate) * (x > 0).to(rate.dtype)
            rate = rate + (torch.clamp(noisy, min=0.0) - rate).detach()
        return rate

    def spike_statistics(self, output: torch.Tensor) -> tuple[int, int] | None:
        return super().spike_statistics(output) if self.spiking else None

    def extra_repr(self) -> str:
        return (
            f"m={self.amplitude}, tau_ref={self.tau_ref}, tau_rc={self.tau_rc}, gain={self.gain}, "
            f"gamma={self.gamma}, noise={self.noise}, dt={self.dt}, synapse={self.synapse}, "
            f"tau_s={self.tau_s}"
        )


class SoftLIFNet(ConversionNet):
    """:class:`ConversionNet` (``ann``/``snn``) whose neurons are soft-LIF/LIF units."""

    def neurons(self) -> list[SoftLIFNeuron]:  # type: ignore[override]
        return [m for m in self.body if isinstance(m, SoftLIFNeuron)]


def synapses(net: ConversionNet) -> list[nn.Module]:
    """The synaptic layers in order, the output layer last."""
    body = [m for m in map(_inner, net.body) if isinstance(m, nn.Linear | nn.Conv2d)]
    return [*body, _inner(net.head)]


@torch.no_grad()
def convert(net: SoftLIFNet) -> None:
    """Eq. (6): every synapse fed by neurons gets W ← W m/dt; the units output r dt. The ANN is unchanged."""
    neurons = net.neurons()
    if not neurons:
        raise SnnbenchError("soft-lif needs at least one hidden layer")
    amplitude, dt = neurons[0].amplitude, neurons[0].dt
    for synapse in synapses(net)[1:]:
        synapse.weight.mul_(amplitude / dt)
    for neuron in neurons:
        neuron.converted.fill_(True)
    net.converted.fill_(True)


@algorithms.register("soft-lif")
class SoftLIF(Conversion):
    """Train a soft-LIF ANN with noise, then run it with LIF neurons at every T (evaluation: conversion's)."""

    paper = Paper(
        authors="Hunsberger & Eliasmith",
        title="Spiking Deep Networks with LIF Neurons; Training Spiking Deep Networks for Neuromorphic "
        "Hardware",
        venue="arXiv 1510.08829, 2015; arXiv 1611.05141",
        year=2016,
        url="https://arxiv.org/abs/1611.05141",
        equations="soft-LIF r(γ log(1 + e^{αx/γ})) with amplitude m and Gaussian training noise; LIF with "
        "refractory period (Nengo's exact step), spikes of area m, mean output over T",
    )
    version = 1
    changelog = ("1: first version",)
    description = "soft-LIF ANN trained with noise, run as a LIF SNN (Hunsberger & Eliasmith)"
    Config = SoftLIFConfig
    default_encoding = "direct"
    training_depends_on_T = False

    def build(self, T: int) -> nn.Module:
        cfg: SoftLIFConfig = self.config  # type: ignore[assignment]
        if any(isinstance(layer, Pool) and layer.kind == "max" for layer in self.arch.layers):
            raise SnnbenchError(
                f"soft-lif uses average pooling (run_nengo.py accepts no other): use AP/P in "
                f"{self.arch.notation}"
            )
        body, features = build_feedforward(
            self.arch, self.data.input_shape, lambda shape: SoftLIFNeuron(cfg), default_pool="avg"
        )
        net = SoftLIFNet(body, nn.Linear(features, self.data.num_classes))
        layers = synapses(net)
        stds = cfg.init_std if isinstance(cfg.init_std, list) else [cfg.init_std] * len(layers)
        if len(stds) != len(layers):
            raise SnnbenchError(
                f"soft-lif init_std has {len(stds)} values; {self.arch.notation} has {len(layers)} synaptic "
                "layers (output layer included)"
            )
        with torch.no_grad():
            for layer, std in zip(layers, stds, strict=True):
                assert isinstance(layer, nn.Linear | nn.Conv2d)
                nn.init.normal_(layer.weight, 0.0, std)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
        return net

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: SoftLIFConfig = self.config  # type: ignore[assignment]
        assert isinstance(net, SoftLIFNet)
        layers = synapses(net)
        groups: list[dict[str, Any]] = []
        for i, layer in enumerate(layers):
            assert isinstance(layer, nn.Linear | nn.Conv2d)
            decay = (
                cfg.weight_decay_output
                if i == len(layers) - 1
                else cfg.weight_decay_conv
                if isinstance(layer, nn.Conv2d)
                else cfg.weight_decay_dense
            )
            groups.append({"params": [layer.weight], "lr": cfg.lr, "weight_decay": decay})
            if layer.bias is not None:
                bias_lr = cfg.lr * cfg.bias_lr_factor
                groups.append({"params": [layer.bias], "lr": bias_lr, "weight_decay": 0.0})
        optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
        if cfg.lr_steps:
            scheduler: Any = torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg.lr_steps, gamma=0.1)
        else:
            decay_per_epoch = cfg.lr_decay ** (-1.0 / max(ctx.epochs - 1, 1))
            scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=decay_per_epoch)
        return TrainState(optimizer, scheduler)

    def finalize(self, net: nn.Module, train: Split, ctx: RunContext) -> None:
        assert isinstance(net, SoftLIFNet)
        net.eval()
        convert(net)
