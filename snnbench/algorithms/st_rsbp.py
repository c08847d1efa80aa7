"""ST-RSBP: spike-train level backpropagation for deep recurrent spiking networks.

Zhang & Li, "Spike-Train Level Backpropagation for Training Deep Recurrent Spiking Neural Networks",
NeurIPS 2019, https://arxiv.org/abs/1908.06378; official CUDA code stonezwr/ST-RSBP (``layers/Spiking.cu``,
``layers/Reservoir.cu``, ``common/cuBase.cu``), read for the neuron model, the effect computation and the
defaults below (facts in shared/reference/algorithms.md §3; no code copied).

Neuron (official code; per step t = 0 … T−1, t = 0 never fires; a = 1 − 1/τ_s, m = 1 − 1/τ_m):
  (1) ε_i(t) = a ε_i(t−1) + Σ_j w_ij s_j(t−1) + Σ_k w^r_ik s_k(t−1)      (one-step synaptic delay)
      v_i(t) = m v_i(t−1) + ε_i(t)/τ_s;  v_i = 0 for T_ref = 2 steps after a spike;
      s_i(t) = [v_i(t) > ϑ], then v_i = 0 (hard reset)        → second-order (τ_s, τ_m) PSP
Spike-train level post-synaptic potential (S-PSP) of presynaptic train j on neuron i, computed from the
actual trains, with i's own reset/refractory pattern (``d_Spiking_accumulate_effect_step``):
  (2) e_{i|j} = Σ_{t: s_i(t)=1} q_ij(t),  q_ij(t) = m q_ij(t−1) + p_j(t)/τ_s (zeroed at i's spikes and
      refractory steps), p_j(t) = a p_j(t−1) + s_j(t−1);   rate model: ϑ o_i ≈ Σ_j w_ij e_{i|j}
      Vectorised: e_{i|j} = Σ_t K_i(t) P_j(t) with P_j = p_j/τ_s and the post kernel
      K_i(t) = m^{t_next − t} for t inside the integration window of i's next spike t_next (0 elsewhere):
      one batched matmul [B, N_out, T] × [B, T, N_in] per layer.
Loss and gradients (counts o_i over the window; δ is ∂L/∂(ϑ o), i.e. divided by each layer's ϑ):
  (3) L = Σ_k [|o_k − y_k| > margin] (o_k − y_k)²/2,  y = desired (label) / undesired (others) counts;
      δ_k = (o_k − y_k)/ϑ_out inside the same mask; a silent label neuron gets evenly spaced spikes
      inserted (⌊T/y_desired⌋ apart) before the effects are computed
  (4) ∂L/∂w_ij = δ_i e_{i|j} / S_i  (feed-forward and recurrent weights alike; × the lateral factor
      1/(1 − w_0² Σ_{l≠i} r_il r_li/ϑ²) at the output, r_il = e_{l|i}/o_i, from the trains before (3)'s
      label spikes are inserted, as the official code orders it)
  (5) feed-forward: δ_j = (1/ϑ_prev) Σ_i δ_i w_ij r_ij / S_i,  r_ij = e_{i|j}/o_j (0.5 if o_i o_j = 0)
  (6) recurrent layer: δ_prev = (1/ϑ_prev) δ (diag(S) − W^r ⊙ R^r/ϑ off the diagonal)^{-1} (W ⊙ R)
      (batched solve; the official LHS has S_i alone on its diagonal, self-loops included in S_i only)
  (7) S_i = 1 − (1/ϑ) Σ_j w_ij p′_{o_j}(o_i) (recurrent inputs included; a silent neuron has S_i = 1, a
      silent reservoir neuron is evaluated at o_i = 1 as the official reservoir clips), the correction:
      p_c(o) is a degree-4 polynomial fit of E[e_{i|j}] over random spike trains with c input and o output
      spikes: the official table (``Effect_Ratio_file/p_Tau_64_400-100.txt``) where it applies (T = 400,
      τ_m 64), else :func:`effect_polynomials` regenerates one the same way (Monte-Carlo, uniform spike
      times at least T_ref + 1 apart; it disagrees with the official one, docs/algorithms/st-rsbp.md).
Spiking CNN (``layers/ConvSpiking.cu``, ``layers/PoolingSpiking.cu``): conv layers are these neurons with a
weight-shared convolution as synapse, e_{i|j} only inside each receptive field (unfold + one product over t),
∂L/∂W summed over positions, the error a fold of δ_i w_ij r_ij/S_i; pooling layers: these neurons with fixed
unit weights over the window and their own ϑ, routing δ_j = (δ_i/size²) r_ij (0 if silent), no S, no weights.
Other deviations (batching, no boosting, conv S_i): docs/algorithms/st-rsbp.md.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from snnbench import kernels
from snnbench.algorithms import (
    Algorithm,
    AlgorithmConfig,
    EpochTally,
    Paper,
    RunContext,
    TrainState,
    algorithms,
)
from snnbench.architectures import Conv, Dense, Pool
from snnbench.errors import SnnbenchError
from snnbench.neurons.layers import SpikingLayer
from snnbench.pooling import avg_pool2d


class STRSBPConfig(AlgorithmConfig):
    """Defaults from the official Fashion-MNIST config (``Config/FashionMNIST.txt``) unless stated."""

    tau_m: float = Field(64.0, gt=1.0, description="membrane time constant τ_m in steps (official cfg: 64)")
    tau_s: float = Field(8.0, gt=1.0, description="synaptic time constant τ_s in steps (official cfg: 8)")
    refractory: int = Field(2, ge=0, description="refractory steps after a spike (official cfg T_REFRAC: 2)")
    threshold_hidden: float = Field(
        20.0, gt=0.0, description="ϑ of feed-forward hidden layers (F-MNIST cfg: 20)"
    )
    threshold_recurrent: float = Field(20.0, gt=0.0, description="ϑ of recurrent layers (F-MNIST cfg: 20)")
    threshold_output: float = Field(15.0, gt=0.0, description="ϑ of the output layer (F-MNIST cfg: 15)")
    threshold_conv: tuple[float, ...] = Field(
        (5.0, 10.0),
        min_length=1,
        description="ϑ of the 1st, 2nd, … convolutional layer, the last repeated (official "
        "Config/SpikingCNNMnistConfig.txt: conv1 5, conv2 10)",
    )
    threshold_pool: tuple[float, ...] = Field(
        (2.0, 4.0),
        min_length=1,
        description="ϑ of the 1st, 2nd, … spiking pooling layer, the last repeated (official "
        "Config/SpikingCNNMnistConfig.txt: pooling1 2, pooling2 4)",
    )
    desired_count: float = Field(
        35.0, gt=0.0, description="target count of the label neuron per 400 steps (cfg)"
    )
    undesired_count: float = Field(
        5.0, ge=0.0, description="target count of other outputs per 400 steps (cfg)"
    )
    margin: float = Field(5.0, ge=0.0, description="dead zone |o − y| ≤ margin per 400 steps (cfg MARGIN: 5)")
    count_window: int = Field(
        400,
        gt=0,
        description="window the three counts above are given for; they scale with T/count_window "
        "(ours: the official code uses T = 400 and never scales)",
    )
    inject_label_spikes: bool = Field(
        True, description="spikes inserted into a silent label neuron (g_modifySpikes)"
    )
    lateral_inhibition: float = Field(
        1.0, ge=0.0, description="w_0 between output neurons (cfg localInbStrength: 1)"
    )
    self_consistency: bool = Field(True, description="S_i of eq. (7) (official code); False: S_i = 1")
    effect_table_samples: int = Field(
        1000,
        gt=0,
        description="Monte-Carlo trains per (input, output) count for p_c(o) (eij_function.m: 1000)",
    )
    silent_ratio: float = Field(0.5, description="r_ij used when o_i or o_j is 0 (official code: 0.5)")
    init_w: float = Field(1.0, gt=0.0, description="weights U(−init_w, init_w) (cfg initW = 1, 'Bernoulli')")
    reservoir_connectivity: bool = Field(
        True,
        description="recurrent weights only between neurons connected on a 3-D grid with probability "
        "c·exp(−d²/4), 80 % excitatory, self-loops included (official reservoir); False: all-to-all, none",
    )
    lr: float = Field(
        1e-3, gt=0.0, description="Adam (0.9, 0.999, 1e-8), lr/√(epoch+1) (official code: 1e-3)"
    )
    reg_lambda: float = Field(10.0, ge=0.0, description="λ of the weight regulariser (cfg LAMBDA_REG: 10)")
    reg_beta: float = Field(
        0.04, ge=0.0, description="β of the weight regulariser (cfg BETA_REG: 0.04 images)"
    )
    weight_limit: float = Field(
        8.0, gt=0.0, description="w_lim of the weight regulariser (cfg WEIGHT_LIMIT: 8)"
    )


# ---- spike-train level quantities (pure functions, time-major [T, B, N]) ------------------------------
def presynaptic_traces(pre: torch.Tensor, tau_s: float) -> torch.Tensor:
    """P_j(t) = p_j(t)/τ_s with p_j(t) = (1 − 1/τ_s) p_j(t−1) + s_j(t−1): the synaptic current of eq. (2)."""
    native = kernels.native_for("spike_trains", pre)
    if native is not None:
        return native.presynaptic_traces(pre, tau_s)
    decay = 1.0 - 1.0 / tau_s
    p = torch.zeros_like(pre[0])
    out = torch.empty_like(pre)
    out[0] = p
    for t in range(1, len(pre)):
        p = decay * p + pre[t - 1]
        out[t] = p
    return out / tau_s


def refractory_mask(post: torch.Tensor, refractory: int) -> torch.Tensor:
    """1 at the ``refractory`` steps after each spike of ``post`` (membrane held at 0), else 0."""
    mask = torch.zeros_like(post)
    for lag in range(1, refractory + 1):
        mask[lag:] = torch.maximum(mask[lag:], post[:-lag])
    return mask


def postsynaptic_kernel(post: torch.Tensor, tau_m: float, refractory: int) -> torch.Tensor:
    """K_i(t) = m^{t_next − t} inside the integration window of neuron i's next spike t_next (its refractory
    steps excluded, the window restarts after each spike), 0 after its last spike: e = Σ_t K P (eq. 2)."""
    native = kernels.native_for("spike_trains", post)
    if native is not None:
        return native.postsynaptic_kernel(post, tau_m, refractory)
    decay = 1.0 - 1.0 / tau_m
    g = torch.zeros_like(post[0])
    out = torch.empty_like(post)
    for t in range(len(post) - 1, -1, -1):
        g = post[t] + (1.0 - post[t]) * decay * g
        out[t] = g
    return out * (1.0 - refractory_mask(post, refractory))


def spike_train_effects(
    pre: torch.Tensor, post: torch.Tensor, tau_m: float, tau_s: float, refractory: int
) -> torch.Tensor:
    """S-PSP e_{i|j} ``[B, N_post, N_pre]`` of every pre/post pair, eq. (2), from ``[T, B, N]`` trains."""
    return effects_of(postsynaptic_kernel(post, tau_m, refractory), presynaptic_traces(pre, tau_s))


def effects_of(kernel: torch.Tensor, traces: torch.Tensor) -> torch.Tensor:
    """e = Σ_t K_i(t) P_j(t) ``[B, N_post, N_pre]`` from the kernel and traces ``[T, B, N]`` (eq. 2)."""
    return torch.bmm(kernel.permute(1, 2, 0), traces.permute(1, 0, 2))


def effect_ratios(
    effects: torch.Tensor, o_post: torch.Tensor, o_pre: torch.Tensor, silent: float
) -> torch.Tensor:
    """r_ij = e_{i|j}/o_j, and ``silent`` where o_i or o_j is 0 (official), ``[B, N_post, N_pre]``."""
    active = (o_post > 0).unsqueeze(2) & (o_pre > 0).unsqueeze(1)
    ratio = effects / o_pre.clamp(min=1.0).unsqueeze(1)
    return torch.where(active, ratio, silent)


def random_spike_trains(
    count: int, T: int, refractory: int, samples: int, generator: torch.Generator
) -> torch.Tensor:
    """``[T, samples, count]``: column c has c + 1 spikes at uniform random times at least ``refractory`` + 1
    steps apart (``random_time.m``'s distribution, drawn exactly: sorted distinct u_k + k·refractory)."""
    trains = torch.zeros(T, samples, count, dtype=torch.float64)
    for c in range(1, count + 1):
        slots = T - (c - 1) * refractory
        u = smallest_positions(torch.rand(samples, slots, generator=generator), c)
        times = u + torch.arange(c) * refractory
        trains[:, :, c - 1].scatter_(0, times.t(), 1.0)
    return trains


def smallest_positions(values: torch.Tensor, c: int) -> torch.Tensor:
    """``values.argsort(1)[:, :c].sort(1).values``: the positions of each row's c smallest values, in
    order. That set is unique unless the c-th and (c + 1)-th smallest values tie, so topk finds it (several
    times quicker than sorting every row); where a row has such a tie, argsort decides as it always did."""
    if c < values.shape[1]:
        smallest, positions = values.topk(c + 1, dim=1, largest=False, sorted=True)
        if not bool((smallest[:, c - 1] == smallest[:, c]).any()):
            return positions[:, :c].sort(1).values
    return values.argsort(1)[:, :c].sort(1).values


@functools.lru_cache(maxsize=8)
def effect_polynomials(T: int, tau_m: float, tau_s: float, refractory: int, samples: int) -> torch.Tensor:
    """Coefficients ``[C, 4]`` of p′_c(o) = Σ_k a_ck o^k: the o-derivative of the degree-4 least-squares fit
    of the mean S-PSP e over random trains with c = 1…C input and o = 1…C output spikes (C = min(100, the
    most spikes T allows)), as the official ``eij_function.m`` computes offline; fixed seed (a table)."""
    most = min(100, (T + refractory) // (refractory + 1))
    if most < 2:
        return torch.zeros(max(most, 1), 4, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    pre = random_spike_trains(most, T, refractory, samples, generator)
    post = random_spike_trains(most, T, refractory, samples, generator)
    mean = spike_train_effects(pre, post, tau_m, tau_s, refractory).mean(0)  # [o, c]
    o = torch.arange(1, most + 1, dtype=torch.float64)
    scale = float(most)  # fit in o / most for conditioning
    vander = torch.stack([(o / scale) ** k for k in range(5)], 1)  # [o, 5]
    coef = torch.linalg.lstsq(vander, mean).solution  # [5, c]: e ≈ Σ_k b_k (o/scale)^k
    derivative = torch.stack([(k + 1) * coef[k + 1] / scale ** (k + 1) for k in range(4)], 1)  # [c, 4]
    return derivative


# The official tables (stonezwr/ST-RSBP ``Effect_Ratio_file``, GPL-3.0: not shipped here) by the (T, τ_m, τ_s,
# T_ref) they were generated for; a folder holding them, named in $SNNBENCH_STRSBP_TABLES, is used where one
# applies (the official layers load p_Tau_{τ_m}_{T}-100.txt); otherwise the table is regenerated.
OFFICIAL_TABLES = {(400, 64.0, 8.0, 2): "p_Tau_64_400-100.txt"}
TABLES_ENV = "SNNBENCH_STRSBP_TABLES"


def effect_table(T: int, tau_m: float, tau_s: float, refractory: int, samples: int) -> torch.Tensor:
    """p′ coefficients ``[C, 4]`` as :func:`effect_polynomials`: the official table where one is at hand
    for (T, τ_m, τ_s, T_ref) (see ``TABLES_ENV``), else regenerated."""
    name = OFFICIAL_TABLES.get((T, float(tau_m), float(tau_s), refractory))
    folder = os.environ.get(TABLES_ENV)
    if name is None or not folder or not (Path(folder) / name).is_file():
        return effect_polynomials(T, tau_m, tau_s, refractory, samples)
    return official_effect_polynomials(str(Path(folder) / name))


@functools.lru_cache(maxsize=2)
def official_effect_polynomials(path: str) -> torch.Tensor:
    """The o-derivative ``[C, 4]`` (a_k of o^k) of an official table, whose row c holds MATLAB ``polyfit``'s
    degree-4 coefficients, highest power first."""
    text = Path(path).read_text()
    rows = [[float(v) for v in line.split()] for line in text.splitlines() if line.strip()]
    fit = torch.tensor(rows, dtype=torch.float64)
    return torch.stack([(k + 1) * fit[:, 3 - k] for k in range(4)], 1)  # a_k = (k + 1) p_{k+1}


def self_consistency(
    weights: list[torch.Tensor],
    pre_counts: list[torch.Tensor],
    o_post: torch.Tensor,
    threshold: float,
    poly: torch.Tensor,
    reservoir: bool = False,
) -> torch.Tensor:
    """S_i = 1 − (1/ϑ) Σ_j w_ij p′_{c_j}(o_i), eq. (7), ``[B, N_out]``, kept ≥ 1e-4 in magnitude like the
    official solve; c is clipped to the table's 1…C as the official code clips to 100. Silent neurons
    (o_i = 0): p′ = 0 (``layers/Spiking.cu``), or, in a recurrent layer (``reservoir``), o_i is clipped to
    1…C like c (``layers/Reservoir.cu``)."""
    if reservoir:
        o_post = o_post.clamp(1, len(poly))
    powers = torch.stack([o_post**k for k in range(4)], -1)  # [B, N_out, 4]
    total = torch.zeros_like(o_post)
    for weight, counts in zip(weights, pre_counts, strict=True):
        rows = counts.long().clamp(1, len(poly)) - 1  # [B, N_in]
        per_power = torch.einsum("ij,bjk->bik", weight, poly.to(weight)[rows])  # Σ_j w_ij a_{c_j k}
        total = total + (per_power * powers).sum(-1)
    return bounded_consistency(total, o_post, threshold)


def reservoir_mask(n: int, generator: torch.Generator) -> torch.Tensor:
    """Official reservoir topology: neurons on a 5 × 5 × ⌈n/25⌉ grid (the first n cells), 80 % excitatory;
    k → i connected with probability c·exp(−d²/4), c = 0.45 (E→E), 0.3 (E→I), 0.6 (I→E), 0.15 (I→I);
    self-loops included (d = 0) as in the official code. ``[n, n]``, rows = post."""
    depth = math.ceil(n / 25)
    grid = torch.stack(
        torch.meshgrid(torch.arange(5), torch.arange(5), torch.arange(depth), indexing="ij"), -1
    )
    position = grid.reshape(-1, 3)[:n].double()
    excitatory = torch.rand(n, generator=generator) < 0.8
    c = torch.tensor([[0.15, 0.3], [0.6, 0.45]], dtype=torch.float64)  # [post E?][pre E?]
    probability = c[excitatory.long().unsqueeze(1), excitatory.long().unsqueeze(0)]
    probability = probability * torch.exp(-(torch.cdist(position, position) ** 2) / 4.0)
    return (torch.rand(n, n, generator=generator, dtype=torch.float64) < probability).float()


def integrate(
    feedforward: torch.Tensor,
    threshold: float,
    tau_m: float,
    tau_s: float,
    refractory: int,
    lateral: nn.Module | None = None,
) -> torch.Tensor:
    """Spike trains ``[T, B, N]`` of eq.-(1) neurons driven by ``feedforward`` = Σ_j w_ij s_j(t) (applied one
    step later) plus ``lateral`` (recurrent/inhibitory weights on the layer's own previous spikes).

    The native loop applies a bias-free ``nn.Linear`` lateral by its weight; a lateral with hooks attached
    (the operation counter's) is called as a module at every step, so that its hooks see every input."""
    native = kernels.native_for("spike_trains", feedforward)
    plain = lateral is None or (
        isinstance(lateral, nn.Linear)
        and lateral.bias is None
        and not lateral._forward_pre_hooks
        and not lateral._forward_hooks
    )
    if native is not None and plain:
        weight = None if lateral is None else lateral.weight
        return native.integrate(feedforward, weight, threshold, tau_m, tau_s, refractory)
    syn_decay, mem_decay = 1.0 - 1.0 / tau_s, 1.0 - 1.0 / tau_m
    eps = torch.zeros_like(feedforward[0])
    v = torch.zeros_like(eps)
    hold = torch.zeros_like(eps)  # refractory steps left
    spikes = torch.zeros_like(feedforward)
    for t in range(1, len(feedforward)):
        eps = syn_decay * eps + feedforward[t - 1]
        if lateral is not None:
            eps = eps + lateral(spikes[t - 1])
        v = mem_decay * v + eps / tau_s
        in_refractory = hold > 0
        v = torch.where(in_refractory, torch.zeros_like(v), v)
        hold = hold - in_refractory.to(hold.dtype)
        fired = v > threshold
        spikes[t] = fired.to(v.dtype)
        v = torch.where(fired, torch.zeros_like(v), v)
        hold = torch.where(fired, torch.full_like(hold, float(refractory)), hold)
    return spikes


# ---- network ----------------------------------------------------------------------------------------
class STRSBPNeurons(SpikingLayer):
    """What every ST-RSBP layer shares: eq.-(1) neurons with threshold ϑ and the run's τ_m, τ_s and
    refractory period."""

    def __init__(self, threshold: float, cfg: STRSBPConfig) -> None:
        super().__init__()
        self.threshold, self.tau_m, self.tau_s, self.refractory = (
            threshold,
            cfg.tau_m,
            cfg.tau_s,
            cfg.refractory,
        )

    def fire(self, current: torch.Tensor, lateral: nn.Module | None = None) -> torch.Tensor:
        """Spike trains of the layer for its summed input ``current`` ``[T, B, N]`` (:func:`integrate`)."""
        return integrate(current, self.threshold, self.tau_m, self.tau_s, self.refractory, lateral)

    @property
    def error_divisor(self) -> float:
        """What the error arriving at this layer is divided by: ϑ (δ = ∂L/∂(ϑ o), eq. 5)."""
        return self.threshold


class STRSBPLayer(STRSBPNeurons):
    """A dense layer of eq.-(1) neurons on spike trains ``[T, B, N_in]`` → ``[T, B, N_out]``, with trained
    recurrent weights (``R`` layers) or fixed lateral inhibition −w_0 between all neurons (output layer)."""

    def __init__(
        self,
        n_in: int,
        n_out: int,
        threshold: float,
        cfg: STRSBPConfig,
        generator: torch.Generator,
        recurrent: bool = False,
        lateral_inhibition: float = 0.0,
    ) -> None:
        super().__init__(threshold, cfg)
        self.synapse = nn.Linear(n_in, n_out, bias=False)
        with torch.no_grad():
            self.synapse.weight.copy_((torch.rand(n_out, n_in, generator=generator) * 2 - 1) * cfg.init_w)
        self.recurrent: nn.Linear | None = None
        self.lateral: nn.Linear | None = None
        if recurrent:
            self.recurrent = nn.Linear(n_out, n_out, bias=False)
            mask = reservoir_mask(n_out, generator) if cfg.reservoir_connectivity else 1.0 - torch.eye(n_out)
            self.register_buffer("recurrent_mask", mask)
            with torch.no_grad():
                self.recurrent.weight.copy_(
                    (torch.rand(n_out, n_out, generator=generator) * 2 - 1) * cfg.init_w * mask
                )
        elif lateral_inhibition > 0:
            self.lateral = nn.Linear(n_out, n_out, bias=False)
            self.lateral.weight.requires_grad_(False)
            with torch.no_grad():
                self.lateral.weight.copy_(-lateral_inhibition * (1.0 - torch.eye(n_out)))

    def forward(self, pre: torch.Tensor) -> torch.Tensor:
        feedforward = self.synapse(pre)  # [T, B, N_out]: Σ_j w_ij s_j(t), applied one step later
        lateral = self.recurrent if self.recurrent is not None else self.lateral
        return self.fire(feedforward, lateral)

    def effects(self, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
        """e_{i|j} of this layer's neurons (``post``) for presynaptic trains ``pre``, eq. (2)."""
        return spike_train_effects(pre, post, self.tau_m, self.tau_s, self.refractory)


def bounded_consistency(total: torch.Tensor, o_post: torch.Tensor, threshold: float) -> torch.Tensor:
    """S = 1 − total/ϑ (0 where o_i = 0), kept ≥ 1e-4 in magnitude like the official solve."""
    s = 1.0 - torch.where(o_post > 0, total, torch.zeros_like(total)) / threshold
    return torch.where(s >= 0, s.clamp(min=1e-4), s.clamp(max=-1e-4))


# Elements of a conv layer's per-sample tensors (S-PSP pairs [L, O, J] plus unfolded traces [T, J, L]) that
# one chunk of its backward may hold: 2^27 (512 MB in float32). A VGG-11 layer's pairs alone are 151 M per
# sample, so a batch of 16 at once would need tens of GB.
CONV_CHUNK_ELEMENTS = 2**27


class STRSBPConvLayer(STRSBPNeurons):
    """Eq.-(1) neurons on a ``[C_out, H_out, W_out]`` map with a weight-shared convolution (no bias) as the
    synapse (official ``layers/ConvSpiking.cu``); trains are kept flat, ``[T, B, C·H·W]``. e_{i|j} exists only
    for the pairs inside each output neuron's receptive field: ``[B, C_out, C_in·k·k, L]`` (L positions)."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        channels: int,
        kernel: int,
        padding: int,
        threshold: float,
        cfg: STRSBPConfig,
        generator: torch.Generator,
    ) -> None:
        super().__init__(threshold, cfg)
        c_in, height, width = in_shape
        self.in_shape, self.kernel, self.padding = in_shape, kernel, padding
        self.out_shape = (channels, height + 2 * padding - kernel + 1, width + 2 * padding - kernel + 1)
        if min(self.out_shape[1:]) < 1:
            raise SnnbenchError(f"st-rsbp: a {kernel}×{kernel} kernel does not fit a {height}×{width} map")
        self.synapse = nn.Conv2d(c_in, channels, kernel, padding=padding, bias=False)
        with torch.no_grad():
            shape = self.synapse.weight.shape
            self.synapse.weight.copy_((torch.rand(shape, generator=generator) * 2 - 1) * cfg.init_w)

    def forward(self, pre: torch.Tensor) -> torch.Tensor:
        T, B = pre.shape[:2]
        feedforward = self.synapse(pre.reshape(T * B, *self.in_shape)).reshape(T, B, -1)
        return self.fire(feedforward)

    def unfold(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., C_in·H·W]`` → ``[..., C_in·k·k, L]``: each position's receptive field (0 = padding)."""
        lead = x.shape[:-1]
        cols = F.unfold(x.reshape(-1, *self.in_shape), self.kernel, padding=self.padding)
        return cols.reshape(*lead, cols.shape[-2], cols.shape[-1])

    def effects(self, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
        """e_{i|j} ``[B, L, C_out, C_in·k·k]`` = Σ_t K_i(t) P_j(t) for j in i's receptive field, eq. (2):
        position-major, as one batched product per (sample, position) writes it; every later pass over the
        pairs reads it in this order (mixing orders made the VGG-sized backward several times slower)."""
        T, B = pre.shape[:2]
        traces = self.unfold(presynaptic_traces(pre, self.tau_s))  # [T, B, J, L]
        kernel = postsynaptic_kernel(post, self.tau_m, self.refractory).reshape(T, B, self.out_shape[0], -1)
        left = kernel.permute(1, 3, 2, 0).reshape(-1, self.out_shape[0], T)  # [B·L, O, T]
        right = traces.permute(1, 3, 0, 2).reshape(-1, T, traces.shape[2])  # [B·L, T, J]
        return torch.bmm(left, right).reshape(B, -1, self.out_shape[0], traces.shape[2])

    def backward(
        self,
        pre: torch.Tensor,
        post: torch.Tensor,
        o_pre: torch.Tensor,
        o_post: torch.Tensor,
        delta: torch.Tensor,
        cfg: STRSBPConfig,
        poly: torch.Tensor | None,
    ) -> tuple[dict[nn.Parameter, torch.Tensor], torch.Tensor]:
        """Eqs. (4), (5), (7) with shared weights: ∂L/∂W = batch mean of Σ_L δ_i e_{i|j}/S_i, and the error
        Σ_{i: j ∈ RF(i)} δ_i w_ij r_ij/S_i ``[B, C_in·H·W]`` (a fold), not yet divided by ϑ_prev. Samples go
        through in chunks whose unfolded traces and pair tensors stay near :data:`CONV_CHUNK_ELEMENTS`
        elements (the official code takes one sample at a time); one chunk wherever the batch fits."""
        batch = len(delta)
        fan_in, positions = self.in_shape[0] * self.kernel**2, math.prod(self.out_shape[1:])
        per_sample = fan_in * positions * (self.out_shape[0] + len(pre))  # [O, J, L] pairs + [T, J, L] traces
        chunk = max(1, CONV_CHUNK_ELEMENTS // per_sample)
        parts = [slice(start, start + chunk) for start in range(0, batch, chunk)]
        terms = [
            self._sample_terms(pre[:, p], post[:, p], o_pre[p], o_post[p], delta[p], cfg, poly) for p in parts
        ]
        grads, backs = zip(*terms, strict=True)
        grad = sum(grads) / batch
        return {self.synapse.weight: grad.reshape(self.synapse.weight.shape)}, torch.cat(backs)

    def _sample_terms(
        self,
        pre: torch.Tensor,
        post: torch.Tensor,
        o_pre: torch.Tensor,
        o_post: torch.Tensor,
        delta: torch.Tensor,
        cfg: STRSBPConfig,
        poly: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For these samples: Σ_{b, L} δ_i e_{i|j}/S_i ``[O, J]`` and the folded error ``[b, C_in·H·W]``."""
        batch = len(delta)
        effects = self.effects(pre, post)  # [B, L, O, J]
        o_i = o_post.reshape(batch, self.out_shape[0], -1)  # [B, O, L]
        o_j = self.unfold(o_pre)  # [B, J, L]
        weight = self.synapse.weight.reshape(self.out_shape[0], -1)  # [O, J]
        if poly is not None:  # eq. (7) over the receptive field (padding excluded)
            valid = self.unfold(torch.ones_like(o_pre[:1]))  # [1, J, L]
            table = poly.to(weight)[o_j.long().clamp(1, len(poly)) - 1] * valid.unsqueeze(-1)  # [B, J, L, 4]
            per_power = torch.einsum("oj,bjlk->bolk", weight, table)
            powers = torch.stack([o_i**k for k in range(4)], -1)  # [B, O, L, 4]
            s = bounded_consistency((per_power * powers).sum(-1), o_i, self.threshold)
        else:
            s = torch.ones_like(o_i)
        # position-major from here: [B, L, O] per output neuron, [B, L, J] per input, effects [B, L, O, J]
        scaled = (delta.reshape(o_i.shape) / s).transpose(1, 2)  # δ_i/S_i
        fires_i, fires_j = o_i.transpose(1, 2) > 0, o_j.transpose(1, 2) > 0
        positions = effects.flatten(0, 1)  # [B·L, O, J]
        # ∂L/∂W_oj = Σ_{b, L} δ_i e_{i|j}/S_i: one product per o over the (sample, position) rows, no copy
        grad = torch.bmm(scaled.flatten(0, 1).t().unsqueeze(1), positions.transpose(0, 1)).squeeze(1)
        # error Σ_o δ_i/S_i w_ij r_ij, r_ij = e_{i|j}/o_j where both fire, else the silent ratio; e_{i|j} = 0
        # where either is silent (no kernel or no trace), so = (1/o_j) Σ_o δ_i/S_i w_ij e_{i|j}
        # + silent · Σ_{o: pair silent} δ_i/S_i w_ij: one product per (sample, position) plus two small ones
        drive = torch.bmm(scaled.flatten(0, 1).unsqueeze(1), positions.mul_(weight))  # in place: e ⊙ W
        silent = torch.where(fires_j, (scaled * ~fires_i) @ weight, scaled @ weight)
        back = drive.reshape(fires_j.shape) / o_j.transpose(1, 2).clamp(min=1.0) + cfg.silent_ratio * silent
        back = back.transpose(1, 2)  # [B, J, L]
        return grad, F.fold(back, self.in_shape[1:], self.kernel, padding=self.padding).reshape(batch, -1)


class STRSBPPoolLayer(STRSBPNeurons):
    """Spiking pooling (official ``layers/PoolingSpiking.cu``): eq.-(1) neurons with their own threshold,
    each driven by the summed spikes of its size × size window (fixed weights 1, stride = size), not
    trained. Error routing as in the official code: δ_j = (δ_i/size²) e_{i|j}/o_j (0 for silent pairs), no
    S_i and no division by the pooling layer's ϑ (``error_divisor`` = size²)."""

    def __init__(
        self, in_shape: tuple[int, int, int], size: int, threshold: float, cfg: STRSBPConfig
    ) -> None:
        super().__init__(threshold, cfg)
        channels, height, width = in_shape
        if height % size or width % size:
            raise SnnbenchError(
                f"st-rsbp: pooling {size}×{size} needs a map divisible by it, not {height}×{width}"
            )
        self.in_shape, self.size = in_shape, size
        self.out_shape = (channels, height // size, width // size)

    @property
    def error_divisor(self) -> float:
        return float(self.size * self.size)

    def forward(self, pre: torch.Tensor) -> torch.Tensor:
        T, B = pre.shape[:2]
        summed = avg_pool2d(pre.reshape(T * B, *self.in_shape), self.size) * self.size**2
        return self.fire(summed.reshape(T, B, -1))

    def unfold(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., C·H·W]`` → ``[..., C, size², L]``: each pooling neuron's window."""
        lead = x.shape[:-1]
        cols = F.unfold(x.reshape(-1, *self.in_shape), self.size, stride=self.size)
        return cols.reshape(*lead, self.in_shape[0], self.size**2, cols.shape[-1])

    def effects(self, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
        """e_{i|j} ``[B, C, size², L]`` for the inputs j in each pooling neuron's window, eq. (2)."""
        T, B = pre.shape[:2]
        traces = self.unfold(presynaptic_traces(pre, self.tau_s))  # [T, B, C, k, L]
        kernel = postsynaptic_kernel(post, self.tau_m, self.refractory).reshape(T, B, self.in_shape[0], -1)
        return torch.einsum("tbcl,tbckl->bckl", kernel, traces)

    def backward(
        self,
        pre: torch.Tensor,
        post: torch.Tensor,
        o_pre: torch.Tensor,
        o_post: torch.Tensor,
        delta: torch.Tensor,
        cfg: STRSBPConfig,
        poly: torch.Tensor | None,
    ) -> tuple[dict[nn.Parameter, torch.Tensor], torch.Tensor]:
        """No weights; the error δ_i r_ij to the window's inputs ``[B, C·H·W]`` (a fold)."""
        batch = len(delta)
        effects = self.effects(pre, post)  # [B, C, k, L]
        o_i = o_post.reshape(batch, self.in_shape[0], 1, -1)
        o_j = self.unfold(o_pre)  # [B, C, k, L]
        ratios = torch.where((o_i > 0) & (o_j > 0), effects / o_j.clamp(min=1.0), torch.zeros_like(effects))
        back = (delta.reshape(o_i.shape) * ratios).reshape(batch, -1, ratios.shape[-1])
        back = F.fold(back, self.in_shape[1:], self.size, stride=self.size).reshape(batch, -1)
        return {}, back


class STRSBPNet(nn.Module):
    """Stack of :class:`STRSBPConvLayer`, :class:`STRSBPPoolLayer` and :class:`STRSBPLayer` (trains flat,
    ``[T, B, N]``); ``forward`` returns the output trains, ``trains`` every layer's."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def trains(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Input spikes followed by each layer's output spikes, all ``[T, B, N]``."""
        out = [x.flatten(2)]
        for layer in self.layers:
            out.append(layer(out[-1]))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trains(x)[-1]


# ---- the spike-train level backward pass ------------------------------------------------------------
def output_error(
    counts: torch.Tensor, labels: torch.Tensor, desired: float, undesired: float, margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (3): per-sample loss ``[B]`` and ∂L/∂o ``[B, C]`` (zero inside the margin dead zone)."""
    target = torch.full_like(counts, undesired)
    target.scatter_(1, labels.unsqueeze(1), desired)
    error = counts - target
    error = torch.where(error.abs() > margin, error, torch.zeros_like(error))
    return 0.5 * (error**2).sum(1), error


def inject_label_spikes(spikes: torch.Tensor, labels: torch.Tensor, desired: float) -> torch.Tensor:
    """The output trains with a silent label neuron firing every ⌊T/desired⌋ steps (from that step)."""
    T = len(spikes)
    interval = max(1, int(T // max(desired, 1.0)))
    label_train = spikes.gather(2, labels.view(1, -1, 1).expand(T, -1, 1))  # [T, B, 1]
    silent = label_train.sum(0, keepdim=True) == 0
    regular = torch.zeros(T, 1, 1, dtype=spikes.dtype, device=spikes.device)
    regular[interval::interval] = 1.0
    return spikes.scatter(
        2, labels.view(1, -1, 1).expand(T, -1, 1), torch.where(silent, regular, label_train)
    )


def lateral_factor(layer: STRSBPLayer, post: torch.Tensor, silent: float) -> torch.Tensor:
    """1 − w_0² Σ_{l≠i} r_il r_li / ϑ² of eq. (4) for the output trains ``post`` ``[T, B, N]`` → ``[B, N]``,
    r_il = e_{i|l}/o_l (``silent`` where o_i o_l = 0); terms of silent neurons are 0."""
    assert layer.lateral is not None
    o_post = post.sum(0)
    ratios = effect_ratios(layer.effects(post, post), o_post, o_post, silent)  # [B, i, l]
    ratios = ratios * (1.0 - torch.eye(len(o_post[0]), device=ratios.device))
    d = (o_post > 0).to(ratios.dtype) / layer.threshold
    loop = (ratios * ratios.transpose(1, 2) * d.unsqueeze(1)).sum(2) * d  # Σ_l r_il r_li d_l d_i
    return 1.0 - layer.lateral.weight[0, 1] ** 2 * loop


def st_rsbp_backward(
    net: STRSBPNet, trains: list[torch.Tensor], labels: torch.Tensor, cfg: STRSBPConfig
) -> tuple[torch.Tensor, dict[nn.Parameter, torch.Tensor]]:
    """Per-sample loss ``[B]`` and batch-mean spike-train level weight gradients, eqs. (3)–(7)."""
    T = len(trains[0])
    scale = T / cfg.count_window
    counts = [train.sum(0) for train in trains]
    loss, d_counts = output_error(
        counts[-1], labels, cfg.desired_count * scale, cfg.undesired_count * scale, cfg.margin * scale
    )
    out_layer = net.layers[-1]
    delta = d_counts / out_layer.threshold  # δ = ∂L/∂(ϑ o)
    post = trains[-1]
    if cfg.inject_label_spikes:
        post = inject_label_spikes(post, labels, cfg.desired_count * scale)
    grads: dict[nn.Parameter, torch.Tensor] = {}
    batch = len(labels)
    poly = (
        effect_table(T, cfg.tau_m, cfg.tau_s, cfg.refractory, cfg.effect_table_samples)
        if cfg.self_consistency
        else None
    )
    for index in range(len(net.layers) - 1, -1, -1):
        layer = net.layers[index]
        pre, o_post, o_pre = trains[index], post.sum(0), counts[index]
        if not isinstance(layer, STRSBPLayer):  # convolution or pooling
            layer_grads, back = layer.backward(pre, post, o_pre, o_post, delta, cfg, poly)
            grads.update(layer_grads)
            if index == 0:
                break
            delta = back / net.layers[index - 1].error_divisor
            post = pre
            continue
        kernel = postsynaptic_kernel(post, layer.tau_m, layer.refractory)
        traces = presynaptic_traces(pre, layer.tau_s)
        effects = effects_of(kernel, traces)  # [B, N_out, N_in]
        weights, pre_counts = [layer.synapse.weight], [o_pre]
        if layer.recurrent is not None:
            weights, pre_counts = [*weights, layer.recurrent.weight], [o_pre, o_post]
        s = (
            self_consistency(
                weights, pre_counts, o_post, layer.threshold, poly, reservoir=layer.recurrent is not None
            )
            if poly is not None
            else torch.ones_like(o_post)
        )
        scaled = delta / s  # δ_i / S_i: weight gradients (4) and the feed-forward error (5)
        row_delta = scaled
        if layer.lateral is not None:  # eq. (4): the output's lateral factor, from the trains before
            row_delta = scaled / lateral_factor(layer, trains[index + 1], cfg.silent_ratio)  # injection
        grads[layer.synapse.weight] = torch.einsum("bi,bij->ij", row_delta, effects) / batch
        ratios = effect_ratios(effects, o_post, o_pre, cfg.silent_ratio)
        transfer = layer.synapse.weight.unsqueeze(0) * ratios  # W ⊙ R, [B, N_out, N_in]
        carried = scaled
        if layer.recurrent is not None:
            rec_effects = effects_of(kernel, presynaptic_traces(post, layer.tau_s))  # the layer's own kernel
            grads[layer.recurrent.weight] = (
                torch.einsum("bi,bij->ij", scaled, rec_effects) / batch * layer.recurrent_mask
            )
            rec_ratios = effect_ratios(rec_effects, o_post, o_post, cfg.silent_ratio)
            coupling = layer.recurrent.weight * (1.0 - torch.eye(len(s[0]), device=s.device))
            lhs = torch.diag_embed(s) - coupling.unsqueeze(0) * rec_ratios / layer.threshold
            # eq. (6), S_i alone on the diagonal (official LHS); one solve per sample: torch 2.13's batched
            # LU (MKL getrf) fails with "SLASWP parameter 6" and stalls once torch.set_num_threads(n ≥ 2)
            # was called, as a process-pool worker does (tests/test_st_rsbp.py)
            transfer = torch.stack([torch.linalg.solve(a, b) for a, b in zip(lhs, transfer, strict=True)])
            carried = delta
        if index == 0:
            break
        previous = net.layers[index - 1]
        delta = torch.einsum("bi,bij->bj", carried, transfer) / previous.error_divisor  # eqs. (5)/(6)
        post = pre
    for weight, grad in grads.items():  # official regulariser: λβ (w/w_lim) exp(β (mean_j (w/w_lim)² − 1))
        if cfg.reg_lambda > 0 and cfg.reg_beta > 0:
            ratio = weight.detach() / cfg.weight_limit
            grad += (
                cfg.reg_lambda
                * cfg.reg_beta
                * ratio
                * torch.exp(cfg.reg_beta * ((ratio**2).flatten(1).mean(1) - 1.0)).view(
                    -1, *[1] * (ratio.dim() - 1)
                )
            )
    return loss, grads


@algorithms.register("st-rsbp")
class STRSBP(Algorithm):
    """Spike-train level (rate-coded) backpropagation through feed-forward and recurrent LIF layers."""

    paper = Paper(
        authors="Zhang & Li",
        title="Spike-Train Level Backpropagation for Training Deep Recurrent Spiking Neural Networks",
        venue="NeurIPS",
        year=2019,
        url="https://arxiv.org/abs/1908.06378",
        equations="S-PSP e_{i|j} from actual spike trains, count loss with margin, δ e/S weight gradients, "
        "(I − W_rec E/ϑ)^{-1} through recurrent layers",
    )
    description = "spike-train level backpropagation (S-PSP, firing counts) for recurrent SNNs; no BPTT"
    Config = STRSBPConfig
    default_encoding = "sparse-rate"
    version = 2
    changelog = (
        "1: first version",
        "2: official recurrent LHS (S_i alone on the diagonal), silent reservoir neurons' S_i at o = 1, "
        "lateral factor from the output trains before label-spike injection",
    )

    def build(self, T: int) -> nn.Module:
        cfg: STRSBPConfig = self.config  # type: ignore[assignment]
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,)).item()))
        shape = tuple(self.data.input_shape)
        layers: list[nn.Module] = []
        convs = pools = 0
        for layer in self.arch.layers:
            if isinstance(layer, (Conv, Pool)):
                if len(shape) != 3 or (isinstance(layer, Conv) and layer.stride != 1):
                    raise SnnbenchError(f"st-rsbp: {layer} needs a [C, H, W] input and stride 1")
                if isinstance(layer, Conv):
                    threshold = cfg.threshold_conv[min(convs, len(cfg.threshold_conv) - 1)]
                    module: nn.Module = STRSBPConvLayer(
                        shape, layer.channels, layer.kernel, layer.pad, threshold, cfg, generator
                    )
                    convs += 1
                else:
                    if layer.kind != "default":
                        raise SnnbenchError(f"st-rsbp pools with its own spiking pooling only, not {layer}")
                    threshold = cfg.threshold_pool[min(pools, len(cfg.threshold_pool) - 1)]
                    module = STRSBPPoolLayer(shape, layer.size, threshold, cfg)
                    pools += 1
                layers.append(module)
                shape = module.out_shape
                continue
            if not isinstance(layer, Dense):
                raise SnnbenchError(
                    f"st-rsbp implements convolutional, spiking pooling, dense and recurrent (R) layers, "
                    f"not {layer}"
                )
            threshold = cfg.threshold_recurrent if layer.recurrent else cfg.threshold_hidden
            layers.append(
                STRSBPLayer(
                    math.prod(shape), layer.units, threshold, cfg, generator, recurrent=layer.recurrent
                )
            )
            shape = (layer.units,)
        n_in = math.prod(shape)
        layers.append(
            STRSBPLayer(
                n_in,
                self.data.num_classes,
                cfg.threshold_output,
                cfg,
                generator,
                lateral_inhibition=cfg.lateral_inhibition,
            )
        )
        return STRSBPNet(layers)

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: STRSBPConfig = self.config  # type: ignore[assignment]
        params = [p for p in net.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0 / math.sqrt(epoch + 1))
        return TrainState(optimizer, scheduler)

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        cfg: STRSBPConfig = self.config  # type: ignore[assignment]
        assert isinstance(net, STRSBPNet) and state.optimizer is not None
        net.train()
        tally = EpochTally()
        for x, y in batches:
            with torch.no_grad():
                trains = net.trains(ctx.encode(x))
                loss, grads = st_rsbp_backward(net, trains, y, cfg)
            state.optimizer.zero_grad(set_to_none=True)
            for weight, grad in grads.items():
                weight.grad = grad
            state.optimizer.step()
            tally.add(loss.sum().item(), trains[-1].sum(0), y)
        if state.scheduler is not None:
            state.scheduler.step()
        return tally.summary()

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return net(ctx.encode(x)).sum(0)  # output spike counts
