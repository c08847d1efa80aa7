"""STDBP: spike-timing-dependent backpropagation with the rectified linear PSP (ReL-PSP).

Zhang, Wang, Wu, Belatreche, Amornpaisannon, Zhang, Miriyala, Qu, Chua, Carlson & Li, "Rectified Linear
Postsynaptic Potential Function for Backpropagation in Deep Spiking Neural Networks", IEEE TNNLS 33(5):
1947–1958, 2022, https://arxiv.org/abs/2003.11837. No official code exists; implemented from the equations.

Temporal coding, at most one spike per neuron, no leak:
  (1) PSP kernel          K(t − t_j) = max(0, t − t_j)                          (ReL-PSP)
  (2) membrane            V_i(t) = Σ_j w_ij K(t − t_j)
  (3) firing time         t_i = (ϑ + Σ_{j∈C_i} w_ij t_j) / Σ_{j∈C_i} w_ij,  C_i = {j : t_j < t_i}
                          (first crossing of ϑ; V is piecewise linear with slope Σ_{C} w between input spikes)
  (4) exact gradients     ∂t_i/∂w_ij = (t_j − t_i) / Σ_{C_i} w,   ∂t_i/∂t_j = w_ij / Σ_{C_i} w   (j ∈ C_i)
  (5) loss                cross-entropy of softmax(−t_out) (earliest output = decision)
  (6) regulariser         γ Σ_i max(0, ϑ − Σ_j w_ij) keeps neurons able to fire (dead-neuron remedy)
(3) is solved exactly and vectorised: inputs sorted by time, prefix sums of w and w·t give the candidate
crossing of every prefix, and the first candidate inside its own inter-spike interval is the spike.
Computing (3) with the causal set held fixed makes autograd return exactly (4).

Input: latency coding in continuous time, t = t_max (1 − x) (x = 0 never fires). Training is in continuous
time and does not see T; for each T of a suite the trained network is evaluated as a T-step network over
the input window (dt = t_max / T, :meth:`STDBPNet.clocked`): an input spike falls in step ⌊t/dt⌋ (the
``latency`` encoding's step), a neuron spikes in the first step at whose end V ≥ ϑ and the next layer sees
the spike in that step (as in any discrete-time network), and nothing fires after step T. The earliest
output spike decides; where no output has spiked by step T, the output with the highest potential at the
end of step T decides (``no_decision_fraction`` in the record). The record also carries the continuous-time
accuracy and decision time.

Deviations (the paper's constants could not be checked, see docs/algorithms/stdbp.md): the regulariser
(6) follows Mostafa (2017) in form; initialisation, learning rate (Adam 1e-3, cosine) and the softmax
scale of (5) (−5 t / t_max: measured 95.6 % vs 92.2 % with scale 1 on digits) were chosen on digits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from snnbench import kernels
from snnbench.algorithms import (
    Algorithm,
    AlgorithmConfig,
    EpochTally,
    Evaluation,
    Paper,
    RunContext,
    TrainState,
    algorithms,
)
from snnbench.architectures import Conv, Dense, Pool
from snnbench.data import Split
from snnbench.data.encoding import latency_times
from snnbench.errors import SnnbenchError
from snnbench.metrics import effective_operations
from snnbench.neurons.layers import SpikingLayer

INF = float("inf")


class STDBPConfig(AlgorithmConfig):
    """Hyperparameters (ϑ and coding window as in the ReL-PSP formulation; the rest chosen on digits)."""

    threshold: float = Field(1.0, gt=0.0, description="firing threshold ϑ, eq. (3)")
    t_max: float = Field(1.0, gt=0.0, description="input coding window: t = t_max (1 − x)")
    weight_sum_reg: float = Field(1e-3, ge=0.0, description="γ of the regulariser (6)")
    init_mean: float = Field(4.0, description="initial weight mean × ϑ / fan_in")
    init_std: float = Field(1.0, ge=0.0, description="initial weight std × ϑ / sqrt(fan_in)")
    lr: float = Field(1e-3, gt=0.0, description="Adam")
    no_spike_time: float = Field(
        8.0, gt=0.0, description="time given to a silent output in the loss (× t_max)"
    )
    score_scale: float = Field(5.0, gt=0.0, description="softmax(−t · scale / t_max) in eq. (5)")
    schedule: str = Field("cosine", pattern="^(cosine|none)$")


def spike_times(t_in: torch.Tensor, w: torch.Tensor, threshold: float) -> torch.Tensor:
    """Exact first firing times ``[B, N_out]`` of non-leaky ReL-PSP neurons, eq. (3); ``inf`` = silent.

    ``t_in`` is ``[B, N_in]`` (``inf`` = no input spike), ``w`` is ``[N_out, N_in]``. On CPU the native
    loops compute it (and eq. (4) in the backward pass), bit for bit as :func:`spike_times_by_prefix_sums`.
    """
    native = kernels.native_for("spike_times", t_in)
    if native is None:
        return spike_times_by_prefix_sums(t_in, w, threshold)
    return _NativeSpikeTimes.apply(t_in, w, threshold, native)


class _NativeSpikeTimes(torch.autograd.Function):
    """Eq. (3) forward and eq. (4) backward by ``spike_times_cpu.cpp``: each neuron walks its sorted inputs
    up to its first crossing instead of the fallback's prefix sums over all ``[B, N_in, N_out]`` pairs.
    The backward forms the input-time gradient's per-pair factors for at most ``block_pairs`` at a time."""

    block_pairs = 1 << 24

    @staticmethod
    def forward(ctx, t_in, w, threshold, native):  # type: ignore[override]  # noqa: ANN001, ANN205
        t_sorted, order = t_in.sort(dim=1)  # the fallback's sort: ties keep its order
        t_sorted, order, w = t_sorted.contiguous(), order.contiguous(), w.contiguous()
        t_out, last, slope = native.spike_times_forward(t_sorted, order, w, threshold)
        ctx.native = native
        ctx.save_for_backward(t_sorted, order, w, t_out, last, slope)
        return t_out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]  # noqa: ANN001, ANN205
        input_grad = ctx.needs_input_grad[0]
        grad_w, grad_t = ctx.native.spike_times_backward(
            grad.contiguous(), *ctx.saved_tensors, input_grad, _NativeSpikeTimes.block_pairs
        )
        return grad_t if input_grad else None, grad_w, None, None


def spike_times_by_prefix_sums(t_in: torch.Tensor, w: torch.Tensor, threshold: float) -> torch.Tensor:
    """:func:`spike_times` in torch ops (any device): prefix sums over every sorted input for every neuron."""
    t_sorted, order = t_in.sort(dim=1)
    finite = torch.isfinite(t_sorted)
    t_safe = torch.where(finite, t_sorted, torch.zeros_like(t_sorted))
    w_sorted = w.t()[order] * finite.unsqueeze(-1)  # [B, N_in, N_out], silent inputs contribute nothing
    w_cum = w_sorted.cumsum(1)  # Σ_{C} w for the first k inputs
    wt_cum = (w_sorted * t_safe.unsqueeze(-1)).cumsum(1)  # Σ_{C} w t
    positive = w_cum > 1e-9
    candidate = (threshold + wt_cum) / torch.where(positive, w_cum, torch.ones_like(w_cum))
    following = torch.cat([t_sorted[:, 1:], torch.full_like(t_sorted[:, :1], INF)], dim=1)
    valid = (
        positive
        & finite.unsqueeze(-1)
        & (candidate >= t_sorted.unsqueeze(-1))
        & (candidate < following.unsqueeze(-1))
    )
    first = valid.to(torch.uint8).argmax(dim=1, keepdim=True)  # the earliest valid crossing
    t_out = candidate.gather(1, first).squeeze(1)
    return torch.where(valid.any(dim=1), t_out, torch.full_like(t_out, INF))


class SpikeTimeLayer(SpikingLayer):
    """A dense or convolutional layer of ReL-PSP neurons on spike times ``[B, ...]`` (``inf`` = silent)."""

    output_is_spikes = False
    steps: int | None = None  # time steps of the clocked pass being run (spike rates per step), else None

    def __init__(self, in_shape: tuple[int, ...], layer: Dense | Conv, cfg: STDBPConfig) -> None:
        super().__init__()
        self.layer, self.threshold, self.t_max = layer, cfg.threshold, cfg.t_max
        fan_in = in_shape[0] if isinstance(layer, Dense) else in_shape[0] * layer.kernel**2
        units = layer.units if isinstance(layer, Dense) else layer.channels
        weight = torch.randn(units, fan_in) * cfg.init_std / math.sqrt(fan_in) + cfg.init_mean / fan_in
        self.weight = nn.Parameter(weight * cfg.threshold)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if isinstance(self.layer, Dense):
            return spike_times(t.flatten(1), self.weight, self.threshold)
        conv = self.layer
        batch, _, height, width = t.shape
        padded = F.pad(t, [conv.pad] * 4, value=INF)  # padding never spikes
        patches = F.unfold(padded, conv.kernel, stride=conv.stride)  # [B, C k k, L]
        out_h = (height + 2 * conv.pad - conv.kernel) // conv.stride + 1
        out_w = (width + 2 * conv.pad - conv.kernel) // conv.stride + 1
        flat = patches.transpose(1, 2).reshape(-1, patches.shape[1])
        times = spike_times(flat, self.weight, self.threshold)  # [B L, C_out]
        return times.reshape(batch, out_h * out_w, -1).transpose(1, 2).reshape(batch, -1, out_h, out_w)

    def count_operations(self, t: torch.Tensor) -> tuple[int, bool, int]:
        """Event-driven: each input spike adds its weight to the slope of every neuron it reaches (one AC)."""
        active = torch.isfinite(t).to(self.weight.dtype)
        if isinstance(self.layer, Dense):
            weight, geometry, active = self.weight, {}, active.flatten(1)
        else:
            kernel = self.layer.kernel  # weight columns are unfold's (channel, row, column) order
            weight = self.weight.reshape(len(self.weight), -1, kernel, kernel)
            geometry = {"stride": self.layer.stride, "padding": self.layer.pad}
        ops = effective_operations(active, weight, **geometry)
        return (
            ops,
            True,
            effective_operations(torch.ones_like(active[:1]), torch.ones_like(weight), **geometry),
        )

    def spike_statistics(self, output: torch.Tensor) -> tuple[int, int] | None:
        """Spikes within the clocked pass's steps over neurons × steps; None for continuous-time passes."""
        if self.steps is None:
            return None
        fired = _spike_step(output, self.t_max / self.steps) < self.steps
        return int(fired.sum()), output.numel() * self.steps


class MinPool(nn.Module):
    """Pooling on spike times: the earliest spike of each window wins (max-pooling of spikes)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return -F.max_pool2d(-t, self.size)


class STDBPNet(nn.Module):
    """Spike-time layers: ``forward(t)`` runs in continuous time, ``clocked(t, steps)`` on a step clock."""

    def __init__(self, layers: list[SpikeTimeLayer | MinPool], t_max: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.t_max = t_max

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            if isinstance(layer, SpikeTimeLayer):
                layer.steps = None
            t = layer(t)
        return t

    def clocked(self, t: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Output spike times of a ``steps``-step simulation of the input window, and output potentials.

        Step k covers [k dt, (k + 1) dt), dt = t_max / steps. An input spike falls in step
        ⌊t / dt⌋ (the ``latency`` encoding's step; the last step takes t = t_max). A neuron spikes in the
        first step at whose end V ≥ ϑ, and the layer above sees that spike from the start of the same step,
        as in a discrete-time network; spikes after the last step do not happen. Returns the output
        times (k dt, ``inf`` = silent within the budget) and V at the end of the last step ``[B, C]``.
        """
        dt = self.t_max / steps
        first = torch.floor(t / dt)
        t = _on_grid(torch.where(torch.isfinite(first), first.clamp(max=steps - 1), first), steps, dt)
        for layer in self.layers:
            if isinstance(layer, SpikeTimeLayer):
                layer.steps = steps
                last_input = t
                t = _on_grid(_spike_step(layer(t), dt), steps, dt)
            else:
                t = layer(t)
        out = self.layers[-1]
        assert isinstance(out, SpikeTimeLayer) and isinstance(out.layer, Dense)
        potential = (self.t_max - last_input.flatten(1)).clamp(min=0.0) @ out.weight.t()  # eq. (2)
        return t, potential


def _spike_step(t: torch.Tensor, dt: float) -> torch.Tensor:
    """Step whose end is the first step boundary at or after the crossing time ``t`` (V ≥ ϑ there)."""
    return torch.ceil(t / dt - 1e-6) - 1


def _on_grid(step: torch.Tensor, steps: int, dt: float) -> torch.Tensor:
    """Times ``step · dt`` of step indices; ``inf`` (no spike) past the last step."""
    return torch.where(step < steps, step * dt, torch.full_like(step, INF))


@algorithms.register("stdbp")
class STDBP(Algorithm):
    """Spike-time backpropagation with ReL-PSP neurons: exact spike times and exact gradients."""

    paper = Paper(
        authors="Zhang, Wang, Wu et al.",
        title="Rectified Linear Postsynaptic Potential Function for Backpropagation in Deep Spiking "
        "Neural Networks",
        venue="IEEE TNNLS 33(5)",
        year=2022,
        url="https://arxiv.org/abs/2003.11837",
        equations="ReL-PSP kernel, closed-form spike time over the causal set, exact ∂t/∂w and ∂t/∂t",
    )
    description = (
        "temporal coding, one spike per neuron, ReL-PSP, exact spike-time gradients (continuous time)"
    )
    Config = STDBPConfig
    default_encoding = "latency"
    training_depends_on_T = False
    version = 2
    changelog = (
        "1: first version",
        "2: evaluation is a T-step network: inputs on the step grid, no spike after step T, a no-decision "
        "rule (highest output potential at T), spike rates over the T steps",
    )

    def build(self, T: int) -> nn.Module:
        cfg: STDBPConfig = self.config  # type: ignore[assignment]
        shape = tuple(self.data.input_shape)
        layers: list[SpikeTimeLayer | MinPool] = []
        for layer in [*self.arch.layers, Dense(self.data.num_classes)]:
            if isinstance(layer, Dense):
                if layer.recurrent:
                    raise SnnbenchError("stdbp has no recurrent layers")
                shape = (math.prod(shape),)
                layers.append(SpikeTimeLayer(shape, layer, cfg))
                shape = (layer.units,)
            elif isinstance(layer, Conv):
                layers.append(SpikeTimeLayer(shape, layer, cfg))
                size = (shape[1] + 2 * layer.pad - layer.kernel) // layer.stride + 1
                shape = (layer.channels, size, (shape[2] + 2 * layer.pad - layer.kernel) // layer.stride + 1)
            elif isinstance(layer, Pool) and layer.kind in ("default", "max"):
                layers.append(MinPool(layer.size))
                shape = (shape[0], shape[1] // layer.size, shape[2] // layer.size)
            else:
                raise SnnbenchError(f"stdbp supports dense, conv and (min-)pool layers, not {layer}")
        return STDBPNet(layers, cfg.t_max)

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: STDBPConfig = self.config  # type: ignore[assignment]
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=ctx.epochs)
            if cfg.schedule == "cosine"
            else None
        )
        return TrainState(optimizer, scheduler)

    def _scores(self, t_out: torch.Tensor) -> torch.Tensor:
        cfg: STDBPConfig = self.config  # type: ignore[assignment]
        silent = torch.full_like(t_out, cfg.no_spike_time * cfg.t_max)
        times = torch.where(torch.isfinite(t_out), t_out, silent)
        return -times * (cfg.score_scale / cfg.t_max)  # eq. (5): earliest output = largest score

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        cfg: STDBPConfig = self.config  # type: ignore[assignment]
        net.train()
        assert state.optimizer is not None
        tally = EpochTally()
        for x, y in batches:
            scores = self._scores(net(latency_times(x, cfg.t_max)))
            loss = F.cross_entropy(scores, y)  # eq. (5)
            for layer in net.layers:  # eq. (6)
                if isinstance(layer, SpikeTimeLayer):
                    loss = loss + cfg.weight_sum_reg * F.relu(cfg.threshold - layer.weight.sum(1)).sum()
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            tally.add(loss.item() * len(y), scores, y)
        if state.scheduler is not None:
            state.scheduler.step()
        return tally.summary()

    def _decide(self, net: STDBPNet, x: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Class scores of a ``steps``-step run and its output times: the earliest output spike decides;
        where no output spikes within the budget, the highest output potential at its end decides."""
        cfg: STDBPConfig = self.config  # type: ignore[assignment]
        t_out, potential = net.clocked(latency_times(x, cfg.t_max), steps)
        decided = torch.isfinite(t_out).any(1, keepdim=True)
        return torch.where(decided, self._scores(t_out), potential), t_out

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        assert isinstance(net, STDBPNet)
        return self._decide(net, x, ctx.T)[0]

    def evaluate(self, net: nn.Module, test: Split, ctx: RunContext) -> Evaluation:
        """Accuracy of the T-step run (primary), continuous-time accuracy, and decision times."""
        cfg: STDBPConfig = self.config  # type: ignore[assignment]
        assert isinstance(net, STDBPNet)
        net.eval()
        scores, clocked, continuous, labels = [], [], [], []
        with torch.no_grad():
            for x, y in test.batches(ctx.eval_batch_size, shuffle=False, device=ctx.device):
                score, t_out = self._decide(net, x, ctx.T)
                scores.append(score.cpu())
                clocked.append(t_out.cpu())
                continuous.append(net(latency_times(x, cfg.t_max)).cpu())
                labels.append(y.cpu())
        t_q, t_c, y_all = torch.cat(clocked), torch.cat(continuous), torch.cat(labels)
        first_q, first_c = t_q.min(1).values, t_c.min(1).values
        dt = cfg.t_max / ctx.T
        extra = {
            "top1_continuous": 100.0 * (self._scores(t_c).argmax(1) == y_all).double().mean().item(),
            "decision_time_steps": (first_c[torch.isfinite(first_c)] / dt).mean().item(),
            "decision_steps_clocked": (first_q[torch.isfinite(first_q)] / dt + 1).mean().item(),
            "no_decision_fraction": (~torch.isfinite(first_q)).double().mean().item(),
        }
        return Evaluation(torch.cat(scores), y_all, extra)
