"""Multi-spike timing-based backpropagation: exact spike times and exact spike-time gradients of
current-based LIF neurons that may fire several times.

Yamamoto, Sakemi & Aihara, "Timing-Based Backpropagation in Spiking Neural Networks Without Single-Spike
Restrictions", arXiv 2211.16113, 2022, https://arxiv.org/abs/2211.16113. No official code was found; only
the abstract and the first paragraph of the introduction could be read (docs/algorithms/multispike-tbp.md
lists what was read and every choice made here). What the abstract determines: a current-based LIF neuron
with a postsynaptic-current (PSC) time constant τ_s and a membrane time constant τ_m, gradients computed
exactly with respect to spike times, several spikes per neuron. Everything else below is ours.

Neuron (current-based LIF, reset to zero at each threshold crossing; the equations are ours in form):
  (1) PSC          τ_s dI_i/dt = −I_i, and I_i jumps by w_ij/c at each spike of input j, c = τ_s/(τ_m − τ_s)
  (2) membrane     τ_m dV_i/dt = −V_i + I_i, V_i → 0 when it reaches ϑ. Integrated exactly:
                   V_i(t) = Σ_j w_ij Σ_k κ(t − t_j^k) − ϑ Σ_{m: t_i^m < t} e^{−(t − t_i^m)/τ_m},
                   κ(s) = e^{−s/τ_m} − e^{−s/τ_s} (s > 0): in exact time V(t_i^m⁻) = ϑ, so the reset to
                   zero subtracts ϑ, whose trace then decays with τ_m (the second sum)
  (3) spike times  t_i^m = the first t > t_i^{m−1} with V_i(t) = ϑ. With x = e^{−t/τ_m} and τ_m = 2 τ_s
                   (ours), V = a x − b x² between two input events, a = Σ w e^{t_e/τ_m} − ϑ Σ_{m'<m}
                   e^{t^{m'}/τ_m} and b = Σ w e^{t_e/τ_s} over the events e before t: the crossing is the
                   larger root x = (a + √(a² − 4ϑb)) / (2b) (b > 0), found exactly per interval, vectorised
                   over the batch and the neurons (one pass per spike index m).
  (4) exact gradient   the implicit function theorem at each crossing, V_i(t_i^m; w, t_in, t_i^{<m}) = ϑ:
                   ∂t_i^m/∂θ = −(∂V_i/∂θ) / V̇_i(t_i^m), chained through the reset terms to the earlier
                   spikes t_i^{m'} of the same neuron and through the input times to the layer below.
                   Recomputing the root (3) with the discrete choices (interval, spike order) held fixed makes
                   autograd return exactly (4); tests check it against (4) written out and against finite
                   differences of an independent event-driven simulation of (1)–(2).

The T-step window (ours, as stdbp's deadline entries): each T row is a network whose inputs arrive on a
T-step grid, dt = t_max / T: the run's encoding gives a ``[T, B, N]`` raster (``latency`` by default: one
spike per pixel at step ⌊(1 − x) T⌋) and the input of step k arrives at time k dt; the network runs in
exact continuous time (no step grid inside), and the decision is the first output spike before the
deadline t_max = T dt. The class score is minus the output's first spike time (outputs silent within the
window tie below every spiking one: a sample with no output spike is a uniform guess by the runner's tie
rule). Training sees the same window plus a margin: outputs spiking after the deadline (up to
t_max (1 + margin)) keep their gradient, a deadline competitor spiking at t_max joins the softmax (the
label's output must spike before it), and silent outputs take t_max (1 + margin) + τ_s (ϑ − V_peak)/ϑ.

Loss (ours): cross-entropy of softmax(−scale · t_out / τ_s) over the first output spike times and the
deadline competitor. Initialisation, optimiser (Adam, cosine), learning rate, t_max, τ_s, τ_m/τ_s, ϑ, the
spike cap per neuron, the silent-output term and the read-out: ours (docs/algorithms/multispike-tbp.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
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
from snnbench.architectures import Dense
from snnbench.errors import SnnbenchError
from snnbench.neurons.layers import SpikingLayer

INF = float("inf")


class MultiSpikeTBPConfig(AlgorithmConfig):
    """Hyperparameters. The paper's values could not be read (abstract only): every default is ours."""

    threshold: float = Field(1.0, gt=0.0, description="firing threshold ϑ (ours)")
    tau_s: float = Field(
        1.0, gt=0.0, description="PSC (synaptic current) time constant τ_s, the time unit (ours)"
    )
    tau_m: float = Field(
        2.0, gt=0.0, description="membrane time constant τ_m; must be 2 τ_s (closed-form roots, ours)"
    )
    t_max: float = Field(
        4.0, gt=0.0, description="the T-step window (deadline) in time units: dt = t_max / T (ours)"
    )
    margin: float = Field(
        0.5,
        gt=0.0,
        description="training simulates up to t_max (1 + margin): late outputs keep a gradient (ours)",
    )
    max_spikes: int = Field(8, ge=1, le=64, description="at most this many spikes per hidden neuron (ours)")
    score_scale: float = Field(1.0, gt=0.0, description="softmax(−scale · t / τ_s) in the loss (ours)")
    min_slope: float = Field(
        0.01,
        ge=0.0,
        description="the gradient of a spike time divides by the crossing's slope |dV/dx| = √disc, bounded "
        "below by min_slope · ϑ in the backward only (ours: an exact gradient is unbounded at a grazing "
        "crossing and made every lr diverge on digits; the forward times stay exact)",
    )
    init_mean: float = Field(4.0, description="initial weight mean × ϑ / (κ_max fan_in) (ours)")
    init_std: float = Field(1.0, ge=0.0, description="initial weight std × ϑ / (κ_max √fan_in) (ours)")
    lr: float = Field(3e-3, gt=0.0, description="Adam learning rate (ours; the suite tunes it)")
    schedule: str = Field("cosine", pattern="^(cosine|none)$", description="learning-rate schedule (ours)")

    @model_validator(mode="after")
    def _closed_form(self) -> MultiSpikeTBPConfig:
        if not math.isclose(self.tau_m, 2.0 * self.tau_s, rel_tol=1e-9):
            raise ValueError("tau_m must be 2 tau_s (the closed-form crossing of eq. (3))")
        return self


def kernel_peak(tau_s: float, tau_m: float) -> float:
    """max_s κ(s) of κ(s) = e^{−s/τ_m} − e^{−s/τ_s} (at s* = τ_m τ_s ln(τ_m/τ_s) / (τ_m − τ_s))."""
    s = tau_m * tau_s * math.log(tau_m / tau_s) / (tau_m - tau_s)
    return math.exp(-s / tau_m) - math.exp(-s / tau_s)


def prefix_sums(
    t_ev: torch.Tensor, w_ev: torch.Tensor, tau_s: float, tau_m: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which events are real ``[B, E]``, and the coefficients of V = a x − b x² after each event ``[B, N, E]``
    (no resets): a = Σ w e^{t_e/τ_m}, b = Σ w e^{t_e/τ_s} over the events up to e."""
    finite = torch.isfinite(t_ev)
    t_safe = torch.where(finite, t_ev, torch.zeros_like(t_ev))
    grow = torch.where(finite, torch.exp(t_safe / tau_m), torch.zeros_like(t_ev))  # e^{t_e/τ_m}
    grow_s = torch.where(finite, torch.exp(t_safe / tau_s), torch.zeros_like(t_ev))  # e^{t_e/τ_s}
    return finite, (w_ev * grow.unsqueeze(1)).cumsum(2), (w_ev * grow_s.unsqueeze(1)).cumsum(2)


def lif_spike_times(
    t_ev: torch.Tensor,
    w_ev: torch.Tensor,
    threshold: float,
    tau_s: float,
    tau_m: float,
    t_end: float,
    max_spikes: int,
    sums: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    min_slope: float = 0.0,
) -> torch.Tensor:
    """Exact spike times ``[B, N, M]`` (ascending per neuron, ``inf`` = no further spike) of N current-based
    LIF neurons, eq. (2)–(3), on ``[0, t_end]``.

    ``t_ev`` ``[B, E]``: input event times, ascending along E (``inf`` = padding); ``w_ev`` ``[B, N, E]``: the
    weight each event adds to each neuron's PSC (simultaneous input spikes may be merged into one event).
    Differentiable with respect to both: the gradient is eq. (4) (the roots recomputed with autograd for the
    intervals and spike order found without it). ``sums``: :func:`prefix_sums` of these events, if at hand;
    ``min_slope``: the backward's bound on a grazing crossing's slope (:func:`_crossing`).
    """
    if not math.isclose(tau_m, 2.0 * tau_s, rel_tol=1e-9):
        raise SnnbenchError("lif_spike_times solves eq. (3) in closed form only for tau_m = 2 tau_s")
    batch, neurons = w_ev.shape[:2]
    finite, a_all, b_all = prefix_sums(t_ev, w_ev, tau_s, tau_m) if sums is None else sums

    # the search, without autograd: which inter-event interval holds each crossing
    found: list[tuple[torch.Tensor, torch.Tensor]] = []
    with torch.no_grad():
        a0, b0 = a_all.detach(), b_all.detach()
        lo = torch.where(finite, t_ev, torch.full_like(t_ev, INF)).detach().unsqueeze(1)  # [B, 1, E]
        following = torch.cat([t_ev[:, 1:], torch.full_like(t_ev[:, :1], INF)], dim=1)
        hi = following.detach().clamp(max=t_end).unsqueeze(1)  # the interval [t_e, t_{e+1}) ∩ [0, t_end)
        reset = torch.zeros(batch, neurons, 1, dtype=a0.dtype, device=a0.device)  # Σ_{m'<m} e^{t^{m'}/τ_m}
        previous = torch.full((batch, neurons, 1), -INF, dtype=a0.dtype, device=a0.device)
        for _ in range(max_spikes):
            t_c = _crossing(a0 - threshold * reset, b0, threshold, tau_m)
            valid = (t_c >= lo) & (t_c > previous) & (t_c < hi)
            index = valid.to(torch.uint8).argmax(2, keepdim=True)  # the earliest interval with a crossing
            fired = valid.gather(2, index)  # [B, N, 1]
            if not bool(fired.any()):
                break
            t_m = torch.where(fired, t_c.gather(2, index), torch.full_like(previous, INF))
            found.append((index, fired.squeeze(2)))
            reset = reset + torch.where(fired, torch.exp(t_m.clamp(max=t_end) / tau_m), 0.0)
            previous = t_m

    # the same roots with autograd: eq. (4)
    times: list[torch.Tensor] = []
    reset_g = torch.zeros(batch, neurons, dtype=a_all.dtype, device=a_all.device)
    for index, fired in found:
        a = a_all.gather(2, index).squeeze(2) - threshold * reset_g
        b = b_all.gather(2, index).squeeze(2)
        safe_a = torch.where(fired, a, torch.full_like(a, 3.0 * threshold))  # NaN-free gradients elsewhere
        safe_b = torch.where(fired, b, torch.full_like(b, threshold))
        t_m = _crossing(safe_a, safe_b, threshold, tau_m, min_slope)
        reset_g = reset_g + torch.where(fired, torch.exp(t_m / tau_m), torch.zeros_like(t_m))
        times.append(torch.where(fired, t_m, torch.full_like(t_m, INF)))
    while len(times) < max_spikes:
        times.append(torch.full((batch, neurons), INF, dtype=t_ev.dtype, device=t_ev.device))
    return torch.stack(times, dim=-1)


def peak_potential(
    t_ev: torch.Tensor,
    w_ev: torch.Tensor,
    tau_s: float,
    tau_m: float,
    t_end: float,
    sums: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """max over [0, t_end] of V_i(t) = Σ_e w_ie κ(t − t_e) without resets ``[B, N]`` (the loss's measure of
    how far a silent output is from firing; ours; 0 without events). Per inter-event interval
    V = a x − b x², x = e^{−t/τ_m}, peaks at x = a/(2b) clipped to the interval where b > 0, else at its
    start (its end is the next interval's start, or t_end, a candidate of its own); the largest is found
    without autograd and V recomputed there with it (the gradient of the maximum by the envelope theorem)."""
    finite, a_all, b_all = prefix_sums(t_ev, w_ev, tau_s, tau_m) if sums is None else sums
    with torch.no_grad():
        inside = finite & (t_ev < t_end)  # a prefix of the sorted events
        t_lo = torch.where(inside, t_ev, torch.full_like(t_ev, t_end))
        following = torch.cat([t_lo[:, 1:], torch.full_like(t_lo[:, :1], t_end)], dim=1).clamp(max=t_end)
        x_lo = torch.exp(-t_lo / tau_m).unsqueeze(1)  # [B, 1, E]
        x_hi = torch.exp(-following / tau_m).unsqueeze(1)
        a0, b0 = a_all.detach(), b_all.detach()
        x = torch.where(b0 > 0, torch.minimum(torch.maximum(a0 / (2.0 * b0), x_hi), x_lo), x_lo)
        values = (x * (a0 - b0 * x)).masked_fill(~inside.unsqueeze(1), -INF)
        best = values.argmax(2, keepdim=True)  # [B, N, 1]
        x_best, v_best = x.gather(2, best), values.gather(2, best)
        last = (
            (inside.sum(1) - 1).clamp(min=0).view(-1, 1, 1).expand_as(best)
        )  # the last interval ends at t_end
        x_end = math.exp(-t_end / tau_m)
        v_end = x_end * (a0.gather(2, last) - b0.gather(2, last) * x_end)
        at_end = v_end > v_best
        interval = torch.where(at_end, last, best)
        x_best = torch.where(at_end, torch.full_like(x_best, x_end), x_best)
    peak = (a_all.gather(2, interval) * x_best - b_all.gather(2, interval) * x_best**2).squeeze(2)
    return torch.where(inside.any(1, keepdim=True), peak, torch.zeros_like(peak))


def _crossing(
    a: torch.Tensor, b: torch.Tensor, threshold: float, tau_m: float, min_slope: float = 0.0
) -> torch.Tensor:
    """Time of the upward crossing of ϑ by V = a x − b x², x = e^{−t/τ_m}: the larger root in x of
    b x² − a x + ϑ = 0, for b > 0 and a real root; NaN or ``−inf`` where there is none (never a valid
    crossing: every comparison with NaN is false). ``min_slope`` > 0 (with autograd): |dV/dx| at the root is
    √disc, whose derivative 1/(2√disc) grows without bound as the crossing grazes ϑ; the backward uses
    max(√disc, min_slope ϑ) there, the forward value is unchanged (ours)."""
    disc = a * a - 4.0 * threshold * b
    slope = disc.clamp(min=0.0).sqrt()
    if min_slope > 0.0 and torch.is_grad_enabled():
        bounded = slope.detach().clamp(min=min_slope * threshold)
        slope = slope.detach() + (disc - disc.detach()) / (2.0 * bounded)
    root = (a + slope) / (2.0 * b)
    t = root.log().mul_(-tau_m) if not torch.is_grad_enabled() else -tau_m * root.log()
    bad = (disc < 0) | (b <= 0)
    return t.masked_fill(bad, -INF)


def spike_events(times: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The events a layer of weights ``[N, N_in]`` receives from spike times ``[B, N_in, M]`` of the layer
    below: every spike in time order ``[B, E]`` (``inf`` padding trimmed to the longest row) and the weight
    column of its source ``[B, N, E]``. Differentiable with respect to the times and the weights."""
    batch, fan_in, per = times.shape
    t_flat, order = times.reshape(batch, fan_in * per).sort(dim=1)
    count = max(int(torch.isfinite(t_flat).sum(1).max()), 1)
    t_ev, order = t_flat[:, :count], order[:, :count]
    # the layer's linear map of each input neuron's unit spike (exactly W's columns, W.t()), then the
    # column of each event's source
    columns = F.linear(torch.eye(fan_in, dtype=weight.dtype, device=weight.device), weight)
    return t_ev, columns[order // per].transpose(1, 2)


class EventLIFLayer(SpikingLayer):
    """A dense layer of current-based LIF neurons simulated event by event in continuous time.

    ``grid_input``: the input is a ``[T, B, N_in]`` raster whose step k arrives at time k dt (the first
    layer); otherwise spike times ``[B, N_in, M]`` of the layer below. Returns spike times ``[B, N, M]``.
    """

    output_is_spikes = False

    def __init__(self, fan_in: int, units: int, cfg: MultiSpikeTBPConfig, grid_input: bool, max_spikes: int):
        super().__init__()
        self.threshold, self.tau_s, self.tau_m = cfg.threshold, cfg.tau_s, cfg.tau_m
        self.grid_input, self.max_spikes, self.min_slope = grid_input, max_spikes, cfg.min_slope
        peak = kernel_peak(cfg.tau_s, cfg.tau_m)
        weight = torch.randn(units, fan_in) * cfg.init_std / math.sqrt(fan_in) + cfg.init_mean / fan_in
        self.weight = nn.Parameter(weight * cfg.threshold / peak)
        self.dt = 1.0  # set by the network before each pass
        self.t_end = 1.0
        self.steps = 1
        self.deadline = 1.0

    def events(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Input events: times ``[B, E]`` ascending (``inf`` padding) and weights ``[B, N, E]``."""
        if self.grid_input:
            steps, batch = x.shape[:2]
            t_ev = (torch.arange(steps, dtype=x.dtype, device=x.device) * self.dt).expand(batch, steps)
            w_ev = F.linear(x.transpose(0, 1), self.weight)  # a step's simultaneous spikes merged: [B, T, N]
            return t_ev, w_ev.transpose(1, 2)
        return spike_events(x, self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t_ev, w_ev = self.events(x)
        return lif_spike_times(
            t_ev, w_ev, self.threshold, self.tau_s, self.tau_m, self.t_end, self.max_spikes,
            min_slope=self.min_slope,
        )  # fmt: skip

    def forward_with_peak(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` and the potentials' peak without resets (:func:`peak_potential`), from one set
        of events and prefix sums."""
        t_ev, w_ev = self.events(x)
        sums = prefix_sums(t_ev, w_ev, self.tau_s, self.tau_m)
        times = lif_spike_times(
            t_ev, w_ev, self.threshold, self.tau_s, self.tau_m, self.t_end, self.max_spikes, sums,
            self.min_slope,
        )  # fmt: skip
        return times, peak_potential(t_ev, w_ev, self.tau_s, self.tau_m, self.t_end, sums)

    def count_operations(self, x: torch.Tensor) -> tuple[int, bool, int]:
        """Event-driven: each input spike (before the deadline) adds its weight to every neuron it reaches
        with a nonzero weight (one AC; a MAC for analog input amplitudes)."""
        nonzero = (self.weight != 0).sum(0).to(torch.float64)  # [N_in]
        if self.grid_input:
            active, binary = (x != 0).to(torch.float64).sum((0, 1)), bool(((x == 0) | (x == 1)).all())
        else:
            active, binary = (x <= self.deadline).to(torch.float64).sum((0, 2)), True
        return int((active * nonzero).sum()), binary, int(self.weight.numel())

    def spike_statistics(self, output: torch.Tensor) -> tuple[int, int] | None:
        """Neuron-steps holding a spike before the deadline (step k = [k dt, (k + 1) dt); a neuron firing
        several times in one step counts once, so the rate is the fraction of nonzero outputs of a T-step
        network) over neurons × the T steps of the window. The synaptic operations count every spike."""
        within = output <= self.deadline
        step = (
            torch.where(within, output / self.dt, torch.zeros_like(output)).floor().clamp(0, self.steps - 1)
        )
        occupied = torch.zeros(*output.shape[:2], self.steps, device=output.device)
        occupied.scatter_add_(2, step.long(), within.to(occupied.dtype))
        return int((occupied > 0).sum()), output.shape[0] * output.shape[1] * self.steps


class MultiSpikeNet(nn.Module):
    """Event-driven LIF layers; ``forward(raster, steps, t_end)`` returns the first output spike times."""

    def __init__(self, layers: list[EventLIFLayer], t_max: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.t_max = t_max

    def forward(self, raster: torch.Tensor, t_end: float) -> torch.Tensor:
        """Output spike times ``[B, C]`` (first spike, ``inf`` = none by ``t_end``) for the ``[T, B, N]``
        input raster on the T-step grid of the window ``t_max``."""
        return self.run(raster, t_end)[0]

    def run(
        self, raster: torch.Tensor, t_end: float, with_peak: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`forward`, and with ``with_peak`` the output potentials' peak (:func:`peak_potential`)."""
        steps = raster.shape[0]
        h, peak = raster.flatten(2), None
        for i, layer in enumerate(self.layers):
            assert isinstance(layer, EventLIFLayer)
            layer.dt, layer.t_end, layer.steps, layer.deadline = self.t_max / steps, t_end, steps, self.t_max
            if with_peak and i == len(self.layers) - 1:
                h, peak = layer.forward_with_peak(h)
            else:
                h = layer(h)
        return h[..., 0], peak


@algorithms.register("multispike-tbp")
class MultiSpikeTBP(Algorithm):
    """Exact multi-spike timing-based BP of current-based LIF neurons (event-driven, continuous time)."""

    paper = Paper(
        authors="Yamamoto, Sakemi & Aihara",
        title="Timing-Based Backpropagation in Spiking Neural Networks Without Single-Spike Restrictions",
        venue="arXiv 2211.16113",
        year=2022,
        url="https://arxiv.org/abs/2211.16113",
        equations="current-based LIF (PSC τ_s, membrane τ_m), reset at each crossing, several spikes per "
        "neuron; exact spike times and ∂t/∂θ = −(∂V/∂θ)/V̇ at each crossing, chained through resets",
    )
    description = (
        "current-based LIF, several spikes per neuron, exact event-driven spike times and spike-time "
        "gradients; inputs on the T-step grid, top-1 = first output spike before the deadline T dt"
    )
    Config = MultiSpikeTBPConfig
    default_encoding = "latency"
    training_depends_on_T = True  # the input grid and the deadline are T's
    version = 1

    def build(self, T: int) -> nn.Module:
        cfg: MultiSpikeTBPConfig = self.config  # type: ignore[assignment]
        if len(self.data.input_shape) == 0:
            raise SnnbenchError("multispike-tbp needs an input shape")
        fan_in = math.prod(self.data.input_shape)
        layers: list[EventLIFLayer] = []
        dense = [*self.arch.layers, Dense(self.data.num_classes)]
        for i, layer in enumerate(dense):
            if not isinstance(layer, Dense) or layer.recurrent:
                raise SnnbenchError(f"multispike-tbp supports dense (non-recurrent) layers only, not {layer}")
            last = i == len(dense) - 1
            spikes = 1 if last else cfg.max_spikes  # the read-out needs the output's first spike only
            layers.append(EventLIFLayer(fan_in, layer.units, cfg, grid_input=i == 0, max_spikes=spikes))
            fan_in = layer.units
        return MultiSpikeNet(layers, cfg.t_max)

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: MultiSpikeTBPConfig = self.config  # type: ignore[assignment]
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=ctx.epochs)
            if cfg.schedule == "cosine"
            else None
        )
        return TrainState(optimizer, scheduler)

    def loss_scores(self, t_out: torch.Tensor, peak: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of the loss: −scale t/τ_s, and the deadline competitor (a reference output spiking at
        t_max) appended. A silent output takes the end of the training window t_max (1 + margin) plus
        τ_s (ϑ − V_peak)/ϑ, V_peak its potential's peak (:func:`peak_potential`): the closer to firing, the
        earlier, so that the loss can wake a silent label output (without ``peak``: the end of the window)."""
        cfg: MultiSpikeTBPConfig = self.config  # type: ignore[assignment]
        t_end = cfg.t_max * (1.0 + cfg.margin)
        silent = torch.full_like(t_out, t_end)
        if peak is not None:
            silent = silent + cfg.tau_s * (cfg.threshold - peak) / cfg.threshold
        times = torch.where(torch.isfinite(t_out), t_out, silent)
        deadline = torch.full_like(times[:, :1], cfg.t_max)
        return -torch.cat([times, deadline], dim=1) * (cfg.score_scale / cfg.tau_s)

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        cfg: MultiSpikeTBPConfig = self.config  # type: ignore[assignment]
        assert state.optimizer is not None
        net.train()
        tally = EpochTally()
        for x, y in batches:
            t_out, peak = net.run(ctx.encode(x), cfg.t_max * (1.0 + cfg.margin), with_peak=True)
            scores = self.loss_scores(t_out, peak)
            loss = F.cross_entropy(scores, y)
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            tally.add(loss.item() * len(y), scores[:, :-1], y)
        if state.scheduler is not None:
            state.scheduler.step()
        return tally.summary()

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        """Minus the first output spike time before the deadline t_max; an output silent within the window
        scores below all spiking ones (all silent: a tie of every class, a uniform guess)."""
        cfg: MultiSpikeTBPConfig = self.config  # type: ignore[assignment]
        t_out = net(ctx.encode(x), cfg.t_max)
        silent = torch.full_like(t_out, -(cfg.t_max + cfg.tau_s) / cfg.tau_s)
        return torch.where(torch.isfinite(t_out), -t_out / cfg.tau_s, silent)
