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

Input: latency coding, t = t_max (1 − x) (x = 0 never fires).

Read-out (ours): each T row is a T-step network over the input window (dt = t_max / T,
:meth:`STDBPNet.clocked`): an input spike falls in step ⌊t/dt⌋ (the ``latency`` encoding's step), a neuron
spikes in the first step at whose end V ≥ ϑ and the next layer sees the spike in that step (as in any
discrete-time network), and nothing fires after step T. ``top1`` is the first-spike decision within T:
the class score is minus the step of the output's first spike (−T for an output silent within T), so the
runner's common tie rule (:mod:`snnbench.ties`) splits outputs that spike in the same step and counts a sample
where no output spiked as a uniform guess over the C classes (undecided = a uniform guess, the same tie
rule as every spike-count read-out). Secondary, labelled: ``top1_potential`` (undecided samples decided by
the highest output potential at the end of step T), ``no_decision_fraction``, ``top1_continuous`` and
decision times (:data:`snnbench.latency.LATENCY_METRICS`).

Training (``deadline``, ours, default): the network trained is the T-step network that is evaluated, so
training depends on T. Inputs sit on the step grid as ``clocked`` places them; each layer's exact crossing
time (3) of its clocked inputs is snapped to its step by a straight-through estimator (:class:`_SnapToStep`:
forward the step's time k dt, exactly ``clocked``'s; backward the exact gradient (4) at the continuous
crossing); hidden spikes after step T are silent. The loss (5) takes the output times in units of the window
(scale / t_max, as the continuous-time loss): an output spiking within T at its step's time, a late output at
the step it would reach if the clock ran on (its extrapolated crossing on the grid; gradient (4)), capped,
and a silent one, at the deadline plus a margin, t_max (1 + ``deadline_margin``). ``deadline: false`` is the
paper's continuous-time training (inputs at their continuous times, no clock, silent outputs at
``no_spike_time``): one network per seed evaluated at every T (``training_depends_on_T`` per config:
:meth:`STDBP.depends_on_T`).

Deviations (the paper's constants could not be checked, see docs/algorithms/stdbp.md): the regulariser
(6) follows Mostafa (2017) in form; initialisation, learning rate (Adam 1e-3, cosine) and the softmax
scale of (5) (−5 t / t_max: measured 95.6 % vs 92.2 % with scale 1 on digits) were chosen on digits; the
T-step read-out and the deadline training are ours.
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
from snnbench.latency import LATENCY_METRICS  # noqa: F401  (declares top1_potential & co. in METRICS)
from snnbench.metrics import effective_operations
from snnbench.neurons.layers import SpikingLayer
from snnbench.ties import tie_aware_top1

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
    deadline: bool = Field(
        True,
        description="ours: train the T-step network of each row (deadline-aware, one training per T); "
        "false: the paper's continuous-time training, one network per seed for every T",
    )
    deadline_margin: float = Field(
        1.0,
        gt=0.0,
        description="deadline training: silent outputs (and late ones beyond it) take t_max (1 + margin) "
        "in the loss (5), the deadline plus a margin",
    )


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
        crossing, last_input = self.clocked_crossings(t, steps)
        out = self.layers[-1]
        assert isinstance(out, SpikeTimeLayer)
        potential = (self.t_max - last_input.flatten(1)).clamp(min=0.0) @ out.weight.t()  # eq. (2)
        return snap_to_step(crossing, steps, self.t_max / steps), potential

    def clocked_crossings(self, t: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``steps``-step pass of :meth:`clocked` up to the output layer: the output neurons' exact
        crossing times (3) of their clocked inputs (not yet snapped to a step, late ones kept) and those
        inputs. Hidden layers' spikes are snapped to their steps (:func:`snap_to_step`: straight-through, so
        the deadline training differentiates this same pass) and silent after the last step."""
        dt = self.t_max / steps
        first = torch.floor(t / dt)
        t = _on_grid(torch.where(torch.isfinite(first), first.clamp(max=steps - 1), first), steps, dt)
        *hidden, out = self.layers
        assert isinstance(out, SpikeTimeLayer) and isinstance(out.layer, Dense)
        for layer in hidden:
            if isinstance(layer, SpikeTimeLayer):
                layer.steps = steps
                t = snap_to_step(layer(t), steps, dt)
            else:
                t = layer(t)
        out.steps = steps
        return out(t), t


class _SnapToStep(torch.autograd.Function):
    """Straight-through snap of crossing times to their step: forward ``k dt`` for the step k whose end is
    the first boundary at or after the crossing (``inf`` from step ``steps`` on), exactly :meth:`clocked`'s
    values; backward the incoming gradient unchanged where a spike is kept (so a layer's weights get the
    exact gradient (4) at its continuous crossing time), zero where it is silent."""

    @staticmethod
    def forward(ctx, t, steps, dt):  # type: ignore[override]  # noqa: ANN001, ANN205
        snapped = _on_grid(_spike_step(t, dt), steps, dt)
        ctx.save_for_backward(torch.isfinite(snapped))
        return snapped

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]  # noqa: ANN001, ANN205
        (kept,) = ctx.saved_tensors
        return torch.where(kept, grad, torch.zeros_like(grad)), None, None


def snap_to_step(t: torch.Tensor, steps: float, dt: float) -> torch.Tensor:
    """Crossing times ``t`` on the step clock (:class:`_SnapToStep`); ``steps`` inf keeps late spikes."""
    return _SnapToStep.apply(t, steps, dt)


def _spike_step(t: torch.Tensor, dt: float) -> torch.Tensor:
    """Step whose end is the first step boundary at or after the crossing time ``t`` (V ≥ ϑ there)."""
    return torch.ceil(t / dt - 1e-6) - 1


def _on_grid(step: torch.Tensor, steps: float, dt: float) -> torch.Tensor:
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
        "temporal coding, one spike per neuron, ReL-PSP, exact spike-time gradients; top-1 = first spike "
        "within T, trained for the T-step deadline (deadline: false = the paper's continuous time)"
    )
    Config = STDBPConfig
    default_encoding = "latency"
    training_depends_on_T = True  # the default config (deadline training); per config: depends_on_T
    version = 3
    changelog = (
        "1: first version",
        "2: evaluation is a T-step network: inputs on the step grid, no spike after step T, a no-decision "
        "rule (highest output potential at T), spike rates over the T steps",
        "3: top-1 is the first-spike decision within T (undecided = a uniform guess by the common tie "
        "rule; the potential read-out kept as top1_potential); deadline-aware training of the T-step "
        "network by default (deadline: false = continuous-time training, shared across T)",
    )

    @classmethod
    def depends_on_T(cls, config: STDBPConfig) -> bool:
        """Whether training sees T under ``config``: deadline training does, continuous-time training not."""
        return bool(config.deadline)

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

    def _scores(self, t_out: torch.Tensor, silent_time: float | None = None) -> torch.Tensor:
        """Loss scores (5): −t · scale / t_max (units of the window), silent outputs at ``silent_time``
        (later outputs capped there too) or, by default, at ``no_spike_time`` · t_max (the paper's set-up)."""
        cfg: STDBPConfig = self.config  # type: ignore[assignment]
        cap = cfg.no_spike_time * cfg.t_max if silent_time is None else silent_time
        late_capped = t_out if silent_time is None else t_out.clamp(max=cap)
        times = torch.where(torch.isfinite(t_out), late_capped, torch.full_like(t_out, cap))
        return -times * (cfg.score_scale / cfg.t_max)  # eq. (5): earliest output = largest score

    def _loss_scores(self, net: STDBPNet, x: torch.Tensor, T: int) -> torch.Tensor:
        """Scores of the loss (5). Deadline training: the T-step pass of :meth:`STDBPNet.clocked` with
        straight-through steps; outputs within T at their step's time, late outputs at the step they would
        reach if the clock ran on, silent ones (and late ones beyond it) at t_max (1 + deadline_margin).
        Continuous-time training: the paper's exact times, silent outputs at no_spike_time · t_max."""
        cfg: STDBPConfig = self.config  # type: ignore[assignment]
        t_in = latency_times(x, cfg.t_max)
        if not cfg.deadline:
            return self._scores(net(t_in))
        crossing, _ = net.clocked_crossings(t_in, T)
        t_out = snap_to_step(crossing, math.inf, cfg.t_max / T)  # late outputs kept for the loss
        return self._scores(t_out, cfg.t_max * (1.0 + cfg.deadline_margin))

    def _with_deadline(self, scores: torch.Tensor) -> torch.Tensor:
        """Deadline training: the loss's softmax gets one more competitor, the deadline itself, a reference
        output that spikes at t_max = T dt (the first step after the window, score −scale): the label's
        output must spike before it for the loss to fall, which no relative ordering of late outputs
        achieves (softmax ignores a common shift of all times). Continuous-time training: unchanged."""
        cfg: STDBPConfig = self.config  # type: ignore[assignment]
        if not cfg.deadline:
            return scores
        return torch.cat([scores, torch.full_like(scores[:, :1], -cfg.score_scale)], dim=1)

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
            scores = self._loss_scores(net, x, ctx.T)
            loss = F.cross_entropy(self._with_deadline(scores), y)  # eq. (5)
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

    def _decide(
        self, net: STDBPNet, x: torch.Tensor, steps: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A ``steps``-step run: first-spike class scores, potential read-out scores, output times.

        First spike: minus the step of each output's spike, −``steps`` for an output silent within the
        budget (the lowest score), so outputs spiking in the same step tie and a sample with no output spike
        is a tie of all classes: the runner's tie rule scores it as a uniform guess. Potential read-out
        (secondary): the same where an output spiked, the output potentials at the last step's end where
        none did."""
        cfg: STDBPConfig = self.config  # type: ignore[assignment]
        t_out, potential = net.clocked(latency_times(x, cfg.t_max), steps)
        step = torch.round(t_out / (cfg.t_max / steps))
        first_spike = -torch.where(torch.isfinite(t_out), step, torch.full_like(step, float(steps)))
        decided = torch.isfinite(t_out).any(1, keepdim=True)
        return first_spike, torch.where(decided, self._scores(t_out), potential), t_out

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        assert isinstance(net, STDBPNet)
        return self._decide(net, x, ctx.T)[0]

    def evaluate(self, net: nn.Module, test: Split, ctx: RunContext) -> Evaluation:
        """First-spike scores of the T-step run (primary, scored by the runner's tie rule); the potential
        read-out, the continuous-time accuracy and decision times as labelled extras (all by the same tie
        rule)."""
        cfg: STDBPConfig = self.config  # type: ignore[assignment]
        assert isinstance(net, STDBPNet)
        net.eval()
        scores, by_potential, clocked, continuous, labels = [], [], [], [], []
        with torch.no_grad():
            for x, y in test.batches(ctx.eval_batch_size, shuffle=False, device=ctx.device):
                score, potential, t_out = self._decide(net, x, ctx.T)
                scores.append(score.cpu())
                by_potential.append(potential.cpu())
                clocked.append(t_out.cpu())
                continuous.append(net(latency_times(x, cfg.t_max)).cpu())
                labels.append(y.cpu())
        t_q, t_c, y_all = torch.cat(clocked), torch.cat(continuous), torch.cat(labels)
        first_q, first_c = t_q.min(1).values, t_c.min(1).values
        dt = cfg.t_max / ctx.T
        extra = {
            "top1_potential": tie_aware_top1(torch.cat(by_potential), y_all).expected_top1,
            "top1_continuous": tie_aware_top1(self._scores(t_c), y_all).expected_top1,
            "decision_time_steps": (first_c[torch.isfinite(first_c)] / dt).mean().item(),
            "decision_steps_clocked": (first_q[torch.isfinite(first_q)] / dt + 1).mean().item(),
            "no_decision_fraction": (~torch.isfinite(first_q)).double().mean().item(),
        }
        return Evaluation(torch.cat(scores), y_all, extra)
