"""ANN-to-SNN conversion: classic rate conversion and low-latency QCFS.

``rate`` — Diehl, Neil, Binas, Cook, Liu & Pfeiffer, "Fast-Classifying, High-Accuracy Spiking Deep Networks
Through Weight and Threshold Balancing", IJCNN 2015; Rueckauer, Lungu, Hu, Pfeiffer & Liu, "Conversion of
Continuous-Valued Deep Networks to Efficient Event-Driven Networks for Image Classification", Front.
Neurosci. 11:682, 2017 (https://doi.org/10.3389/fnins.2017.00682).
``qcfs`` — Bu, Fang, Ding, Dai, Yu & Huang, "Optimal ANN-SNN Conversion for High-Accuracy and Ultra-Low-Latency
Spiking Neural Networks", ICLR 2022 (https://arxiv.org/abs/2303.04347); official code putshua/ANN_SNN_QCFS.

Both train an ANN once per seed (T does not enter training) and simulate the converted SNN at every T:
  (1) ANN      a_l = f(BN_l(W_l a_{l−1} + b_l)),  f = ReLU (rate) or QCFS (below); linear output layer
  (2) QCFS     h(z) = λ_l · clip(⌊z L / λ_l + 1/2⌋ / L, 0, 1), ⌊·⌋ with a straight-through gradient, λ_l a
               trainable per-layer threshold (init 8), L quantisation levels
  (3) fold BN  W_l ← W_l γ/σ,  b_l ← (b_l − μ) γ/σ + β  (BN becomes the identity)
  (4) scale    λ_l = p-th percentile of layer l's non-zero ANN activations on training data (rate, p = 99.9,
               as SNN Toolbox), or the trained λ_l (QCFS); W_l ← W_l λ_{l−1}/λ_l, b_l ← b_l/λ_l (λ_0 = 1);
               the output layer W_L ← W_L λ_{L−1}
  (5) IF       v_l[t] = v_l[t−1] + W_l s_{l−1}[t] + b_l,  s_l[t] = Θ(v_l[t] − 1),  v_l[t] ← v_l[t] − s_l[t]
               (reset by subtraction, threshold 1 after scaling), v_l[0] = 0 (rate) or 1/2 (QCFS: ϑ/2)
  (6) output   logits = (1/T) Σ_t (W_L s_{L−1}[t] + b_L); the input is the analog image at every step.
After (3)–(4) the same network in ANN mode computes exactly the original ANN (ReLU and the rescaled QCFS
are positively homogeneous), so the record reports the ANN's accuracy (``ann_top1``) beside the SNN's.
Max pooling is replaced by average pooling (as both papers do); conversion needs ``AP``/``P`` layers.
"""

from __future__ import annotations

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
)
from snnbench.architectures import Pool
from snnbench.data import Split
from snnbench.errors import SnnbenchError
from snnbench.networks import build_feedforward
from snnbench.neurons.layers import SpikingLayer, TimeDistributed


class ConversionConfig(AlgorithmConfig):
    """Training settings from the QCFS paper's appendix (CIFAR-10); conversion settings per method."""

    method: Literal["rate", "qcfs"] = Field("qcfs", description="rate (Rueckauer 2017) or qcfs (Bu 2022)")
    levels: int = Field(4, ge=1, description="QCFS quantisation levels L (paper: 4 for CIFAR-10)")
    lambda_init: float = Field(8.0, gt=0.0, description="initial QCFS threshold λ (official code: 8)")
    percentile: float = Field(99.9, gt=0.0, le=100.0, description="rate: activation percentile for λ_l")
    calibration_samples: int = Field(4096, gt=0, description="rate: training samples used to measure λ_l")
    batch_norm: bool = Field(False, description="BN after each synaptic layer (folded before conversion)")
    lr: float = Field(0.1, gt=0.0, description="SGD (QCFS appendix: 0.1 CIFAR-10, 0.02 CIFAR-100)")
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(5e-4, ge=0.0, description="QCFS appendix")


def qcfs(z: torch.Tensor, lam: torch.Tensor, levels: int) -> torch.Tensor:
    """Eq. (2) with a straight-through floor: ∂/∂z = 1 on (0, λ), λ gets autograd's gradient."""
    scaled = z * levels / lam + 0.5
    floored = scaled + (torch.floor(scaled) - scaled).detach()
    return lam * torch.clamp(floored / levels, 0.0, 1.0)


class ConvertibleNeuron(SpikingLayer):
    """ReLU or QCFS in ANN mode; integrate-and-fire with reset by subtraction (threshold 1) in SNN mode."""

    def __init__(self, method: str, levels: int, lambda_init: float) -> None:
        super().__init__()
        self.method, self.levels = method, levels
        self.lam = nn.Parameter(torch.tensor(lambda_init)) if method == "qcfs" else None
        self.register_buffer("scale", torch.tensor(1.0))  # λ_l folded into the weights at conversion
        self.spiking = False
        self.v_init = 0.5 if method == "qcfs" else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.spiking:
            return F.relu(x) if self.lam is None else qcfs(x, self.lam, self.levels)
        v = torch.full_like(x[0], self.v_init)
        spikes = []
        for x_t in x:  # eq. (5)
            v = v + x_t
            s = (v >= 1.0).to(x.dtype)
            v = v - s
            spikes.append(s)
        return torch.stack(spikes)

    def spike_statistics(self, output: torch.Tensor) -> tuple[int, int] | None:
        return super().spike_statistics(output) if self.spiking else None


class ConversionNet(nn.Module):
    """Body (synapse → [BN] → neuron) and a linear head; ``spiking`` selects the forward rule."""

    def __init__(self, body: nn.Sequential, head: nn.Linear) -> None:
        super().__init__()
        self.body, self.head = body, TimeDistributed(head)
        self.register_buffer("converted", torch.tensor(False))

    def neurons(self) -> list[ConvertibleNeuron]:
        return [m for m in self.body if isinstance(m, ConvertibleNeuron)]

    def set_spiking(self, spiking: bool) -> None:
        for neuron in self.neurons():
            neuron.spiking = spiking

    def ann(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. (1) on ``[B, ...]``."""
        self.set_spiking(False)
        return self.head(self.body(x.unsqueeze(0)))[0]

    def snn(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Eqs. (5)–(6) on ``[T, B, ...]``: mean output-layer current."""
        self.set_spiking(True)
        return self.head(self.body(x_seq)).mean(0)


def _synapse(module: nn.Module) -> nn.Linear | nn.Conv2d | None:
    inner = module.module if isinstance(module, TimeDistributed) else module
    return inner if isinstance(inner, nn.Linear | nn.Conv2d) else None


def _batch_norm(module: nn.Module) -> nn.BatchNorm1d | nn.BatchNorm2d | None:
    inner = module.module if isinstance(module, TimeDistributed) else module
    return inner if isinstance(inner, nn.BatchNorm1d | nn.BatchNorm2d) else None


@torch.no_grad()
def fold_batch_norm(net: ConversionNet) -> None:
    """Eq. (3): fold every BN into the synaptic layer before it; the BN is left as the identity."""
    layers = list(net.body)
    for i, module in enumerate(layers):
        bn = _batch_norm(module)
        if bn is None:
            continue
        synapse = _synapse(layers[i - 1])
        assert synapse is not None and synapse.bias is not None, "BN must follow a synaptic layer with bias"
        assert bn.running_mean is not None and bn.running_var is not None
        factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        synapse.weight.mul_(factor.view(-1, *([1] * (synapse.weight.dim() - 1))))
        synapse.bias.copy_((synapse.bias - bn.running_mean) * factor + bn.bias)
        bn.weight.fill_(1.0), bn.bias.zero_(), bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)


@torch.no_grad()
def activation_percentiles(net: ConversionNet, batches: Iterable[torch.Tensor], percentile: float) -> list[float]:
    """Per neuron layer, the ``percentile`` of its non-zero ANN activations (SNN Toolbox's rule)."""
    captured: list[list[torch.Tensor]] = [[] for _ in net.neurons()]
    hooks = [
        neuron.register_forward_hook(lambda m, i, out, k=k: captured[k].append(out[out > 0].flatten().cpu()))
        for k, neuron in enumerate(net.neurons())
    ]
    try:
        for x in batches:
            net.ann(x)
    finally:
        for hook in hooks:
            hook.remove()
    scales = []
    for values in captured:
        flat = torch.cat(values) if values else torch.empty(0)
        if flat.numel() == 0:
            scales.append(1.0)  # a dead layer: any positive scale leaves it silent
            continue
        k = max(1, min(flat.numel(), round(percentile / 100.0 * flat.numel())))
        scales.append(float(flat.kthvalue(k).values))
    return scales


@torch.no_grad()
def normalize(net: ConversionNet, scales: list[float]) -> None:
    """Eq. (4): W_l ← W_l λ_{l−1}/λ_l, b_l ← b_l/λ_l; the head's weights × λ_{L−1}; thresholds become 1."""
    previous = 1.0
    layer = 0
    for module in net.body:
        synapse = _synapse(module)
        if synapse is None:
            continue
        current = scales[layer]
        synapse.weight.mul_(previous / current)
        if synapse.bias is not None:
            synapse.bias.div_(current)
        previous = current
        layer += 1
    head = net.head.module
    assert isinstance(head, nn.Linear)
    head.weight.mul_(previous)
    for neuron, scale in zip(net.neurons(), scales, strict=True):
        neuron.scale.fill_(scale)
        if neuron.lam is not None:
            neuron.lam.fill_(1.0)  # the rescaled QCFS ANN: h(z λ)/λ with λ = 1 (exact, see module doc)
    net.converted.fill_(True)


@algorithms.register("conversion")
class Conversion(Algorithm):
    """Train a ReLU (rate) or QCFS ANN, fold BN, normalise, and run it as an IF SNN at every T."""

    paper = Paper(
        authors="Rueckauer, Lungu, Hu, Pfeiffer & Liu (rate); Bu, Fang, Ding, Dai, Yu & Huang (QCFS)",
        title="Conversion of Continuous-Valued Deep Networks to Efficient Event-Driven Networks for Image "
        "Classification; Optimal ANN-SNN Conversion for High-Accuracy and Ultra-Low-Latency SNNs",
        venue="Front. Neurosci. 11:682, 2017; ICLR 2022",
        year=2022,
        url="https://arxiv.org/abs/2303.04347",
        equations="IF with reset by subtraction, p-percentile weight normalisation, QCFS h(z), v(0) = ϑ/2",
    )
    description = "ANN-SNN conversion: rate (99.9th-percentile normalisation) or QCFS (low latency)"
    Config = ConversionConfig
    default_encoding = "direct"
    training_depends_on_T = False

    def build(self, T: int) -> nn.Module:
        cfg: ConversionConfig = self.config  # type: ignore[assignment]
        if any(isinstance(layer, Pool) and layer.kind == "max" for layer in self.arch.layers):
            raise SnnbenchError(
                f"conversion needs average pooling (the papers replace max pooling): use AP/P in {self.arch.notation}"
            )

        def norm(shape: tuple[int, ...]) -> nn.Module:
            return TimeDistributed(nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0]))

        body, features = build_feedforward(
            self.arch,
            self.data.input_shape,
            lambda shape: ConvertibleNeuron(cfg.method, cfg.levels, cfg.lambda_init),
            default_pool="avg",
            make_norm=norm if cfg.batch_norm else None,
        )
        return ConversionNet(body, nn.Linear(features, self.data.num_classes))

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: ConversionConfig = self.config  # type: ignore[assignment]
        optimizer = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        return TrainState(optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=ctx.epochs))

    def train_epoch(
        self, net: nn.Module, state: TrainState, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], ctx: RunContext
    ) -> dict[str, float]:
        assert isinstance(net, ConversionNet) and state.optimizer is not None
        net.train()
        total, correct, seen = 0.0, 0, 0
        for x, y in batches:
            logits = net.ann(x)
            loss = F.cross_entropy(logits, y)
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            total += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        assert state.scheduler is not None
        state.scheduler.step()
        return {"loss": total / seen, "train_top1": 100.0 * correct / seen}

    def finalize(self, net: nn.Module, train: Split, ctx: RunContext) -> None:
        cfg: ConversionConfig = self.config  # type: ignore[assignment]
        assert isinstance(net, ConversionNet)
        net.eval()
        fold_batch_norm(net)
        if cfg.method == "qcfs":
            scales = [float(n.lam.detach().abs()) for n in net.neurons() if n.lam is not None]
        else:
            calibration = train.take(cfg.calibration_samples)
            batches = (x for x, _ in calibration.batches(ctx.eval_batch_size, shuffle=False, device=ctx.device))
            scales = activation_percentiles(net, batches, cfg.percentile)
        normalize(net, scales)

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        assert isinstance(net, ConversionNet)
        return net.snn(ctx.encode(x))

    def evaluate(self, net: nn.Module, test: Split, ctx: RunContext) -> Evaluation:
        """The SNN at T (primary) and the ANN it came from (``ann_top1``); during training only the ANN."""
        assert isinstance(net, ConversionNet)
        net.eval()
        snn_scores, ann_scores, labels = [], [], []
        with torch.no_grad():
            for x, y in test.batches(ctx.eval_batch_size, shuffle=False, device=ctx.device):
                ann_scores.append(net.ann(x).cpu())
                if bool(net.converted):
                    snn_scores.append(self.predict(net, x, ctx).cpu())
                labels.append(y.cpu())
        y_all = torch.cat(labels)
        ann = torch.cat(ann_scores)
        ann_top1 = 100.0 * (ann.argmax(1) == y_all).double().mean().item()
        scores = torch.cat(snn_scores) if snn_scores else ann
        return Evaluation(scores, y_all, {"ann_top1": ann_top1} if snn_scores else {})
