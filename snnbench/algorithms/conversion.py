"""ANN-to-SNN conversion: classic rate conversion and low-latency QCFS.

``rate`` — Diehl, Neil, Binas, Cook, Liu & Pfeiffer, "Fast-Classifying, High-Accuracy Spiking Deep Networks
Through Weight and Threshold Balancing", IJCNN 2015; Rueckauer, Lungu, Hu, Pfeiffer & Liu, "Conversion of
Continuous-Valued Deep Networks to Efficient Event-Driven Networks for Image Classification", Front.
Neurosci. 11:682, 2017 (https://doi.org/10.3389/fnins.2017.00682); reference code SNN Toolbox.
``qcfs`` — Bu, Fang, Ding, Dai, Yu & Huang, "Optimal ANN-SNN Conversion for High-Accuracy and
Ultra-Low-Latency Spiking Neural Networks", ICLR 2022 (https://arxiv.org/abs/2303.04347); official code
putshua/ANN_SNN_QCFS.

Both train an ANN once per seed (T does not enter training) and simulate the converted SNN at every T:
  (1) ANN      a_l = f(BN_l(W_l a_{l−1} + b_l)),  f = ReLU (rate) or QCFS (2); linear output layer
  (2) QCFS     h(z) = λ_l clip(⌊z L / λ_l + 1/2⌋ / L, 0, 1), λ_l a trainable threshold per layer, L levels;
               gradients are autograd's through the official ``MyFloor`` (SNN_conversion_QCFS
               ``modules.py``: z/λ, ⌊·⌋ with an identity gradient, clamp to [0, 1], × λ). With
               s = z L/λ + 1/2 that is: for 0 ≤ s < L + 1 (the clamp's closed range) ∂h/∂z = 1,
               ∂h/∂λ = ⌊s⌋/L − z/λ; below (s < 0) both 0; above (s ≥ L + 1) ∂h/∂z = 0, ∂h/∂λ = 1
  (3) fold BN  W_l ← W_l γ/σ,  b_l ← (b_l − μ) γ/σ + β  (BN becomes the identity)
  (4) scale    λ_l = p-th percentile of layer l's non-zero ANN activations on training data (rate, p = 99.9,
               as SNN Toolbox; p = 100 is Diehl's max), or the trained λ_l (QCFS);
               W_l ← W_l λ_{l−1}/λ_l, b_l ← b_l/λ_l (λ_0 = 1), output layer W_L ← W_L λ_{L−1}
  (5) IF       v_l[t] = v_l[t−1] + W_l s_{l−1}[t] + b_l,  s_l[t] = Θ(v_l[t] − 1) with Θ(0) = 1,
               v_l[t] ← v_l[t] − s_l[t] (reset by subtraction; threshold 1 after scaling); v_l[0] = 0 (rate)
               or 1/2 (QCFS: ϑ/2, the shift φ = 1/2 that makes the expected SNN output equal h; exact at
               T = L for constant input)
  (6) output   logits = (1/T) Σ_t (W_L s_{L−1}[t] + b_L); the input is the analog image at every step,
               normalised with the dataset's (or the suite entry's ``preprocess``) statistics, as the
               official data loaders do (ANN training, calibration and simulation alike).
  (7) max pool (rate) Rueckauer's spiking max-pooling: each window passes the spikes of the unit with the
               highest spike count so far (an online rate estimate); QCFS uses average pooling instead.
After (3)–(4) the same network in ANN mode computes exactly the original ANN (ReLU, max pooling and the
rescaled QCFS are positively homogeneous), so the record reports the ANN's accuracy (``ann_top1``) beside
the SNN's. Deviations: ResNets are not built (the notation has no residual blocks); CIFAR augmentation is
the dataset's own (no AutoAugment/Cutout); percentiles come from a 2^15-bin histogram (bin width
max/32768), not a sort, to bound memory on conv nets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
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
from snnbench.architectures import Pool
from snnbench.data import Split
from snnbench.errors import SnnbenchError
from snnbench.networks import build_feedforward
from snnbench.neurons.layers import SpikingLayer, TimeDistributed

HISTOGRAM_BINS = 2**15


class ConversionConfig(AlgorithmConfig):
    """ANN training from the QCFS paper's appendix (CIFAR-10; shared by both methods for comparability)."""

    method: Literal["rate", "qcfs"] = Field(
        "qcfs", description="rate (Diehl 2015/Rueckauer 2017) or qcfs (Bu 2022)"
    )
    levels: int = Field(
        4, ge=1, description="QCFS quantisation levels L (paper: 4 for CIFAR, 8 for ImageNet)"
    )
    lambda_init: float = Field(
        8.0, gt=0.0, description="initial QCFS threshold λ_l (official code: 8; author: 4 or 8)"
    )
    percentile: float = Field(
        99.9,
        gt=0.0,
        le=100.0,
        description="rate: percentile p of the non-zero activations giving λ_l (100 = max)",
    )
    calibration_samples: int = Field(4096, gt=0, description="rate: training samples (fixed subset) for λ_l")
    batch_norm: bool = Field(
        False, description="BN after every convolution, folded before conversion (official VGG)"
    )
    lr: float = Field(
        0.1, gt=0.0, description="SGD learning rate (QCFS appendix: 0.1 CIFAR-10, 0.02 CIFAR-100)"
    )
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum (QCFS appendix)")
    weight_decay: float = Field(
        5e-4, ge=0.0, description="weight decay on all parameters, λ_l included (appendix)"
    )


def qcfs(z: torch.Tensor, lam: torch.Tensor, levels: int) -> torch.Tensor:
    """Eq. (2) in the official ``MyFloor``'s order, so that autograd gives its gradients (docstring)."""
    s = z / lam * levels + 0.5
    floored = s + (torch.floor(s) - s).detach()  # GradFloor: ⌊s⌋ forward, identity backward
    return lam * torch.clamp(floored / levels, 0.0, 1.0)


def if_step(x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (5), one step of integrate-and-fire with threshold 1 and reset by subtraction: (spikes, v)."""
    v = v + x
    s = (v >= 1.0).to(x.dtype)
    return s, v - s


class ConvertibleNeuron(SpikingLayer):
    """ReLU or QCFS in ANN mode; integrate-and-fire (eq. 5) in SNN mode (``spiking``)."""

    def __init__(self, method: str, levels: int, lambda_init: float) -> None:
        super().__init__()
        self.levels = levels
        self.lam = nn.Parameter(torch.tensor(lambda_init)) if method == "qcfs" else None
        self.v_init = 0.5 if method == "qcfs" else 0.0
        self.spiking = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.spiking:
            return F.relu(x) if self.lam is None else qcfs(x, self.lam, self.levels)
        v = torch.full_like(x[0], self.v_init)
        spikes = []
        for x_t in x:
            s, v = if_step(x_t, v)
            spikes.append(s)
        return torch.stack(spikes)

    def spike_statistics(self, output: torch.Tensor) -> tuple[int, int] | None:
        return super().spike_statistics(output) if self.spiking else None

    def extra_repr(self) -> str:
        return f"{'relu' if self.lam is None else f'qcfs, L={self.levels}'}, v_init={self.v_init}"


class GatedMaxPool(nn.Module):
    """Eq. (7) on ``[T, B, C, H, W]``: per window, the input of the unit with the largest sum so far.

    On one step of analog input (the ANN) this is max pooling; on spikes it is Rueckauer's gate.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        _, index = F.max_pool2d(x.cumsum(0).flatten(0, 1), self.size, return_indices=True)
        gated = x.flatten(0, 1).flatten(2).gather(2, index.flatten(2))
        return gated.view(T, B, *index.shape[1:])


class ConversionNet(nn.Module):
    """Body (synapse → [BN] → neuron, pooling) and a linear head; ``ann``/``snn`` select the rule."""

    def __init__(self, body: nn.Sequential, head: nn.Linear) -> None:
        super().__init__()
        self.body, self.head = body, TimeDistributed(head)
        self.register_buffer("converted", torch.tensor(False))

    def neurons(self) -> list[ConvertibleNeuron]:
        return [m for m in self.body if isinstance(m, ConvertibleNeuron)]

    def _set_spiking(self, spiking: bool) -> None:
        for neuron in self.neurons():
            neuron.spiking = spiking

    def ann(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. (1) on ``[B, ...]``."""
        self._set_spiking(False)
        return self.head(self.body(x.unsqueeze(0)))[0]

    def snn(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Eqs. (5)–(6) on ``[T, B, ...]``: mean output-layer current."""
        self._set_spiking(True)
        return self.head(self.body(x_seq)).mean(0)


def _inner(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, TimeDistributed) else module


@torch.no_grad()
def fold_batch_norm(net: ConversionNet) -> None:
    """Eq. (3): fold every BN into the synaptic layer before it; the BN is left as the identity."""
    layers = list(net.body)
    for i, module in enumerate(layers):
        bn = _inner(module)
        if not isinstance(bn, nn.BatchNorm1d | nn.BatchNorm2d):
            continue
        synapse = _inner(layers[i - 1])
        assert isinstance(synapse, nn.Linear | nn.Conv2d) and synapse.bias is not None, "BN follows a synapse"
        assert bn.running_mean is not None and bn.running_var is not None
        factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        synapse.weight.mul_(factor.view(-1, *([1] * (synapse.weight.dim() - 1))))
        synapse.bias.copy_((synapse.bias - bn.running_mean) * factor + bn.bias)
        bn.weight.fill_(1.0), bn.bias.zero_(), bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)


def _neuron_outputs(net: ConversionNet, batches: Sequence[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    """Per batch, the ANN outputs of every neuron layer, in order."""
    captured: list[torch.Tensor] = []
    hooks = [n.register_forward_hook(lambda m, i, out: captured.append(out)) for n in net.neurons()]
    try:
        for x in batches:
            captured.clear()
            net.ann(x)
            yield list(captured)
    finally:
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def activation_percentiles(
    net: ConversionNet, batches: Sequence[torch.Tensor], percentile: float
) -> list[float]:
    """Eq. (4), rate: per neuron layer, the ``percentile`` of its non-zero ANN activations over ``batches``
    (SNN Toolbox's rule), read from a histogram of ``HISTOGRAM_BINS`` bins over (0, max]: the upper edge of
    the bin holding it. A silent layer gets 1 (any positive scale leaves it silent)."""
    peaks = [0.0] * len(net.neurons())
    for outputs in _neuron_outputs(net, batches):
        peaks = [max(p, float(out.max())) for p, out in zip(peaks, outputs, strict=True)]
    counts = [torch.zeros(HISTOGRAM_BINS, dtype=torch.float64) for _ in peaks]
    for outputs in _neuron_outputs(net, batches):
        for count, out, peak in zip(counts, outputs, peaks, strict=True):
            if peak > 0:
                count += torch.histc(out[out > 0].float(), HISTOGRAM_BINS, 0.0, peak).double().cpu()
    scales = []
    for count, peak in zip(counts, peaks, strict=True):
        cumulative = count.cumsum(0)
        if peak <= 0 or cumulative[-1] == 0:
            scales.append(1.0)
            continue
        target = torch.tensor([percentile / 100.0 * float(cumulative[-1])], dtype=torch.float64)
        k = min(int(torch.searchsorted(cumulative, target)), HISTOGRAM_BINS - 1)
        scales.append(peak * (k + 1) / HISTOGRAM_BINS)
    return scales


@torch.no_grad()
def normalize(net: ConversionNet, scales: list[float]) -> None:
    """Eq. (4): W_l ← W_l λ_{l−1}/λ_l, b_l ← b_l/λ_l; the head's weights × λ_{L−1}; thresholds become 1."""
    synapses = [m for m in map(_inner, net.body) if isinstance(m, nn.Linear | nn.Conv2d)]
    previous = 1.0
    for synapse, scale in zip(synapses, scales, strict=True):
        synapse.weight.mul_(previous / scale)
        if synapse.bias is not None:
            synapse.bias.div_(scale)
        previous = scale
    head = _inner(net.head)
    assert isinstance(head, nn.Linear)
    head.weight.mul_(previous)
    for neuron in net.neurons():
        if neuron.lam is not None:
            neuron.lam.fill_(1.0)  # h(z; λ)/λ = h(z/λ; 1): the rescaled QCFS ANN is the same function
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
    version = 3
    changelog = (
        "1: first version",
        "2: QCFS gradient as the paper's straight-through rule; BN after convolutions only; official VGG "
        "initialisation; histogram percentiles; spiking max-pooling for rate",
        "3: QCFS gradient as autograd through the official MyFloor (∂h/∂z = 1 also in the top bin); input "
        "normalised with the dataset's or the entry's statistics (official data loaders)",
    )
    description = "ANN-SNN conversion: rate (99.9th-percentile normalisation) or QCFS (low latency)"
    Config = ConversionConfig
    default_encoding = "direct"
    training_depends_on_T = False

    def build(self, T: int) -> nn.Module:
        cfg: ConversionConfig = self.config  # type: ignore[assignment]
        pools = [layer for layer in self.arch.layers if isinstance(layer, Pool)]
        if cfg.method == "qcfs" and any(pool.kind == "max" for pool in pools):
            raise SnnbenchError(
                f"qcfs trains with average pooling in place of max pooling (Bu et al. 2022): use AP/P in "
                f"{self.arch.notation}"
            )

        def norm(shape: tuple[int, ...]) -> nn.Module:
            return TimeDistributed(nn.BatchNorm2d(shape[0])) if len(shape) == 3 else nn.Identity()

        body, features = build_feedforward(
            self.arch,
            self.data.input_shape,
            lambda shape: ConvertibleNeuron(cfg.method, cfg.levels, cfg.lambda_init),
            default_pool="avg",
            make_norm=norm if cfg.batch_norm else None,
        )
        for i, module in enumerate(body):
            if isinstance(_inner(module), nn.MaxPool2d):
                body[i] = GatedMaxPool(_inner(module).kernel_size)  # eq. (7)
        net = ConversionNet(body, nn.Linear(features, self.data.num_classes))
        for module in net.modules():  # official Models/VGG.py initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        return net

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: ConversionConfig = self.config  # type: ignore[assignment]
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
        assert isinstance(net, ConversionNet)
        net.train()
        return supervised_epoch(state, batches, lambda x: net.ann(self.data.normalize(x)))

    def finalize(self, net: nn.Module, train: Split, ctx: RunContext) -> None:
        cfg: ConversionConfig = self.config  # type: ignore[assignment]
        assert isinstance(net, ConversionNet)
        net.eval()
        fold_batch_norm(net)
        if cfg.method == "qcfs":
            scales = [float(n.lam.detach()) for n in net.neurons() if n.lam is not None]
            if min(scales, default=1.0) <= 0:
                raise SnnbenchError(
                    f"a QCFS threshold λ_l fell to {min(scales):.3g}: raise lambda_init (4 or 8)"
                )
        else:
            calibration = train.take(cfg.calibration_samples)
            batches = [
                self.data.normalize(x)
                for x, _ in calibration.batches(ctx.eval_batch_size, shuffle=False, device=ctx.device)
            ]
            scales = activation_percentiles(net, batches, cfg.percentile)
        normalize(net, scales)

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        assert isinstance(net, ConversionNet)
        return net.snn(ctx.encode(self.data.normalize(x)))

    def evaluate(self, net: nn.Module, test: Split, ctx: RunContext) -> Evaluation:
        """The SNN at T (primary) and the ANN it came from (``ann_top1``); before conversion only the ANN."""
        assert isinstance(net, ConversionNet)
        net.eval()
        snn_scores, ann_scores, labels = [], [], []
        with torch.no_grad():
            for x, y in test.batches(ctx.eval_batch_size, shuffle=False, device=ctx.device):
                ann_scores.append(net.ann(self.data.normalize(x)).float().cpu())
                if bool(net.converted):
                    snn_scores.append(self.predict(net, x, ctx).float().cpu())
                labels.append(y.cpu())
        y_all, ann = torch.cat(labels), torch.cat(ann_scores)
        if not snn_scores:
            return Evaluation(ann, y_all)
        ann_top1 = 100.0 * (ann.argmax(1) == y_all).double().mean().item()
        return Evaluation(torch.cat(snn_scores), y_all, {"ann_top1": ann_top1})
