"""IDE: implicit differentiation on the equilibrium state of a feedback SNN.

Xiao, Meng, Zhang, Wang & Lin, "Training Feedback Spiking Neural Networks by Implicit Differentiation on the
Equilibrium State", NeurIPS 2021, https://arxiv.org/abs/2109.14247; official code pkuxmq/IDE-FSNN (commit
7da5907: ``modules/snn_modules.py`` SNNIFFunc/SNNLIFFunc/SNNFC/SNNConv, ``modules/snnide_module.py``,
``modules/broyden.py``, ``modules/optimizations.py``, ``mnist_conv.py``, ``fashionmnist_fc.py``), read for the
settings below.

One hidden layer of N neurons with input connection F (linear or conv, + BatchNorm) and a feedback connection
W onto itself (bias-free, spectrally normalised); the classifier reads the average firing rates.

  (1) neurons  u[t] = λ (u[t−1] − ϑ s[t−1]) + m_s ⊙ W s[t−1] + m_x ⊙ BN(F x[t]),  s[t] = H(u[t] − ϑ)
               (IF: λ = 1; LIF: λ < 1; reset by subtraction; ϑ = 2; s[−1] = u[−1] = 0; H(0) = 1)
  (2) rate     a[T] = Σ_t λ^{T−1−t} s[t] / Σ_k λ^k  (IF: the plain average firing rate)
  (3) map      f_θ(a) = clamp((m_s ⊙ W a + m_x ⊙ BN(F x̄)) / ϑ, 0, 1), x̄ the (λ-weighted) average input;
               a[T] → a* = f_θ(a*) as T → ∞ when ‖W‖ / ϑ < 1 (IF exactly; LIF approximately)
  (4) forward  a* ≈ a[T] from the T-step simulation (no graph); output o = C a* + b_C
  (5) backward ∂L/∂θ = (∂f_θ(a*)/∂θ)ᵀ w,  w = (I − J_fᵀ)⁻¹ ∂L/∂a*,  J_f = ∂f_θ/∂a at a*, solved by
               Broyden's method (30 iterations, the official default) or the fixed-point iteration
               w ← J_fᵀ w + ∂L/∂a*; no backpropagation through time: memory independent of T
  (6) W        = clamp(g, −1, 1) · V / σ(V), σ(V) = uᵀ V v by one power iteration per batch (V reshaped
               to [N_out, −1]); g initialised to σ(V) (10 power iterations); F, V rows ~ U(−1, 1) scaled
               to unit norm, zero biases, BN γ = 1, β = 0
  (7) dropout  variational: m_x, m_s Bernoulli(1 − p)/(1 − p) masks of the layer's shape, one per batch,
               the same at every step and in the map (p = 0.2); none in evaluation
  (8) BN       in training, the statistics of F x̄ (the average input's current) normalise every step and
               the map; running statistics are updated once per batch
  (9) stages   multi-layer (AlexNet-F, CIFARNet-F; ``snnide_multilayer_module.py``): layer 0 as above, then
               within each step layer i ≥ 1 integrates m_i ⊙ BN_i(S_i s_{i−1}[t]); W feeds the last layer's
               spikes back to layer 0 (a stride-2 transposed conv where the resolution halves); a and the
               classifier are the last layer's; f = f_L ∘ … ∘ f_1 ∘ (eq. 3),
               f_i(b) = clamp(m_i ⊙ BN_i(S_i b)/ϑ, 0, 1); BN_i uses running statistics in the simulation
               and in J, batch statistics in ∂f/∂θ
Loss: cross-entropy on o; SGD 0.05, momentum 0.9, weight decay 5e-4, ×0.1 at epochs 30, 60, 90 of 100
(MNIST/F-MNIST); CIFAR: ×0.1 at 50, 75 of 100 after a linear warm-up over 400 iterations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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
from snnbench.architectures import Conv, Dense, Dropout
from snnbench.errors import SnnbenchError
from snnbench.neurons.layers import SpikingLayer


class IDEConfig(AlgorithmConfig):
    """Defaults of the official ``mnist_conv.py`` / ``fashionmnist_fc.py`` (the README: 'the default
    hyperparameters in the code are the same as in the paper')."""

    neuron: Literal["if", "lif"] = Field(
        "lif", description="official --leaky 0.95 (LIF); 'if' = --leaky 1 (README tables give both)"
    )
    leak: float = Field(0.95, gt=0.0, lt=1.0, description="λ of the LIF neuron (--leaky; CIFAR scripts 0.99)")
    v_threshold: float = Field(2.0, gt=0.0, description="ϑ (--vth 2)")
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="variational dropout on both currents (--drop)")
    feedback_kernel: int = Field(5, ge=1, description="feedback conv kernel (kernel_size_s 5, MNIST)")
    solver: Literal["broyden", "fixed-point"] = Field(
        "broyden", description="backward linear solver (config['OPTIM']['solver'] = 'broy')"
    )
    solver_iterations: int = Field(30, ge=1, description="backward iterations (config threshold 30)")
    spectral_norm_range: float = Field(1.0, gt=0.0, description="|g| bound of the feedback weight (_wnorm 1)")
    lr: float = Field(0.05, gt=0.0, description="SGD learning rate (--lr 0.05)")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="--momentum 0.9")
    weight_decay: float = Field(5e-4, ge=0.0, description="--wd 5e-4 (every parameter)")
    milestones: tuple[float, ...] = Field(
        (0.3, 0.6, 0.9),
        description="lr × gamma at these fractions of the epochs (--schedule 30 60 90, of 100)",
    )
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="--gamma 0.1")
    warmup_iterations: int = Field(
        0, ge=0, description="linear lr warm-up over the first iterations (none for MNIST/F-MNIST; CIFAR 400)"
    )


class ThresholdNeuron(SpikingLayer):
    """Eq. (1)'s firing rule H(u − ϑ) for one step (membrane update and reset are in :class:`FeedbackSNN`,
    which holds u); a module so that spikes are counted."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return (u >= self.threshold).to(u.dtype)


class SpectralNormSynapse(nn.Module):
    """Eq. (6): a bias-free linear or conv synapse with weight clamp(g, −r, r) · V / σ(V).

    :meth:`refresh` runs the power iteration (training only) and caches the weight for the batch, as the
    official ``_reset`` does before every forward; ``power_iterations = 0`` freezes u, v (tests)."""

    def __init__(self, layer: nn.Linear | nn.Conv2d | nn.ConvTranspose2d, norm_range: float) -> None:
        super().__init__()
        self.kind = {nn.Linear: "linear", nn.Conv2d: "conv", nn.ConvTranspose2d: "conv_transpose"}[
            type(layer)
        ]
        self.stride = getattr(layer, "stride", 1)
        self.padding = getattr(layer, "padding", 0)
        self.output_padding = getattr(layer, "output_padding", 0)
        self.norm_range = norm_range
        self.power_iterations = 1
        self.weight_v = nn.Parameter(layer.weight.detach().clone())
        matrix = self.weight_v.detach().reshape(self.weight_v.shape[0], -1)
        u = F.normalize(torch.randn(matrix.shape[0]), dim=0, eps=1e-12)
        v = F.normalize(torch.randn(matrix.shape[1]), dim=0, eps=1e-12)
        for _ in range(10):  # the official initial estimate of σ
            v = F.normalize(matrix.t() @ u, dim=0, eps=1e-12)
            u = F.normalize(matrix @ v, dim=0, eps=1e-12)
        self.weight_g = nn.Parameter(torch.dot(u, matrix @ v).reshape(()))
        self.register_buffer("u", F.normalize(torch.randn(matrix.shape[0]), dim=0, eps=1e-12))
        self.register_buffer("v", F.normalize(torch.randn(matrix.shape[1]), dim=0, eps=1e-12))
        self._weight: torch.Tensor | None = None

    def compute_weight(self) -> torch.Tensor:
        matrix = self.weight_v.reshape(self.weight_v.shape[0], -1)
        if self.training and self.power_iterations:
            with torch.no_grad():
                u, v = self.u, self.v
                for _ in range(self.power_iterations):
                    v = F.normalize(matrix.t() @ u, dim=0, eps=1e-12)
                    u = F.normalize(matrix @ v, dim=0, eps=1e-12)
                self.u.copy_(u)
                self.v.copy_(v)
        sigma = torch.dot(self.u, matrix @ self.v)
        return self.weight_g.clamp(-self.norm_range, self.norm_range) * self.weight_v / sigma

    def refresh(self) -> torch.Tensor:
        self._weight = self.compute_weight()
        return self._weight

    def apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            return F.linear(x, weight)
        if self.kind == "conv_transpose":
            return F.conv_transpose2d(x, weight, None, self.stride, self.padding, self.output_padding)
        return F.conv2d(x, weight, None, self.stride, self.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self._weight if self._weight is not None else self.compute_weight()
        return self.apply_weight(x, weight)

    def count_operations(self, x: torch.Tensor) -> tuple[int, bool, int]:
        from snnbench.metrics import effective_operations

        w = self.weight_v.detach()
        binary = bool(((x == 0) | (x == 1)).all())
        if self.kind == "conv_transpose":  # every (nonzero input, nonzero weight) pair that lands inside
            nonzero = (w != 0).to(x.dtype)
            geometry_t = {
                "stride": self.stride,
                "padding": self.padding,
                "output_padding": self.output_padding,
            }
            ops = int(F.conv_transpose2d((x != 0).to(x.dtype), nonzero, None, **geometry_t).sum())
            dense = int(
                F.conv_transpose2d(torch.ones_like(x[:1]), torch.ones_like(w), None, **geometry_t).sum()
            )
            return ops, binary, dense
        geometry = {} if self.kind == "linear" else {"stride": self.stride, "padding": self.padding}
        ops = effective_operations((x != 0).to(x.dtype), w, **geometry)
        dense = effective_operations(torch.ones_like(x[:1]), torch.ones_like(w), **geometry)
        return ops, binary, dense


def _unit_rows(layer: nn.Linear | nn.Conv2d | nn.ConvTranspose2d) -> None:
    """Official ``_initialize_weights``: U(−1, 1), each output unit's weights to unit norm, zero bias."""
    with torch.no_grad():
        layer.weight.uniform_(-1.0, 1.0)
        if isinstance(layer, nn.ConvTranspose2d):  # output channels on axis 1
            norms = layer.weight.transpose(0, 1).reshape(layer.weight.shape[1], -1).norm(dim=1)
            layer.weight.div_(norms.view(1, -1, 1, 1))
        else:
            norms = layer.weight.reshape(layer.weight.shape[0], -1).norm(dim=1)
            layer.weight.div_(norms.view(-1, *([1] * (layer.weight.dim() - 1))))
        if layer.bias is not None:
            layer.bias.zero_()


def broyden_solve(
    residual: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, iterations: int, eps: float
) -> torch.Tensor:
    """Root of ``residual`` (per-sample systems ``[B, n]``) by Broyden's ("good") method with the inverse
    Jacobian estimate H = −I + U Vᵀ (one column of U and row of Vᵀ per update, Sherman–Morrison), unit
    steps, no line search; stops when the residual norm over the batch is below ``eps``; returns the
    lowest-residual iterate. U and V are preallocated, so each step costs a few batched products."""
    batch, n = x0.shape
    us = x0.new_zeros(batch, n, iterations)
    vs = x0.new_zeros(batch, iterations, n)

    def h_times(z: torch.Tensor, k: int) -> torch.Tensor:  # H z
        if k == 0:
            return -z
        return torch.baddbmm(-z.unsqueeze(2), us[:, :, :k], torch.bmm(vs[:, :k], z.unsqueeze(2))).squeeze(2)

    def times_h(z: torch.Tensor, k: int) -> torch.Tensor:  # zᵀ H
        if k == 0:
            return -z
        return torch.baddbmm(-z.unsqueeze(1), torch.bmm(z.unsqueeze(1), us[:, :, :k]), vs[:, :k]).squeeze(1)

    x, gx = x0, residual(x0)
    best, best_norm = x, float(gx.norm())
    step = gx  # −H gx with H = −I
    for k in range(iterations):
        if best_norm < eps:
            break
        x_new = x + step
        g_new = residual(x_new)
        dx, dg = x_new - x, g_new - gx
        x, gx = x_new, g_new
        norm = float(gx.norm())
        if norm < best_norm:
            best, best_norm = x, norm
        v = times_h(dx, k)
        u = (dx - h_times(dg, k)) / (v * dg).sum(1, keepdim=True)
        us[:, :, k] = torch.nan_to_num(u, 0.0, 0.0, 0.0)
        vs[:, k] = torch.nan_to_num(v, 0.0, 0.0, 0.0)
        step = -h_times(gx, k + 1)
    return best


@dataclass
class Masks:
    """Eq. (7)'s variational dropout masks of one batch (None: no dropout): the input current's, the
    feedback current's and each later stage's."""

    x: torch.Tensor | None = None
    feedback: torch.Tensor | None = None
    stages: list[torch.Tensor | None] = field(default_factory=list)

    def stage(self, i: int) -> torch.Tensor | None:
        return self.stages[i] if self.stages else None


def _masked(mask: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    return x if mask is None else mask * x


class FeedbackSNN(nn.Module):
    """Eqs. (1)–(8): a feedback layer of IF/LIF neurons (stage 0) and a linear classifier on its rates; with
    ``stages`` (the official multi-layer AlexNet-F/CIFARNet-F), stage 0 feeds a chain of conv + BN stages
    within each step, and the feedback runs from the last stage to stage 0 (eq. 3 then composes the stages:
    f(a) = f_L ∘ … ∘ f_1 (clamp((m ⊙ W a + m_x ⊙ BN(F x̄))/ϑ, 0, 1)), f_i(b) = clamp(m_i ⊙ BN_i(S_i b)/ϑ,
    0, 1), a the last stage's rates). The later stages' BN use running statistics in the simulation and in
    the Jacobian, batch statistics in the map's parameter gradient (official ``set_bn_mode_s``)."""

    def __init__(
        self,
        input_synapse: nn.Linear | nn.Conv2d,
        feedback: SpectralNormSynapse,
        hidden_shape: tuple[int, ...],
        num_classes: int,
        cfg: IDEConfig,
        stages: list[tuple[nn.Linear | nn.Conv2d, tuple[int, ...]]] | None = None,
    ) -> None:
        super().__init__()
        self.input_synapse, self.feedback = input_synapse, feedback
        self.bn = _batch_norm(hidden_shape)
        self.stages = nn.ModuleList(
            nn.ModuleDict({"synapse": synapse, "bn": _batch_norm(shape)}) for synapse, shape in stages or []
        )
        self.shapes = [hidden_shape] + [shape for _, shape in stages or []]
        self.neuron = ThresholdNeuron(cfg.v_threshold)
        self.classifier = nn.Linear(math.prod(self.shapes[-1]), num_classes)
        self.hidden_shape = hidden_shape
        self.leak = 1.0 if cfg.neuron == "if" else cfg.leak
        self.threshold, self.dropout = cfg.v_threshold, cfg.dropout
        self.solver, self.solver_iterations = cfg.solver, cfg.solver_iterations
        self.last_solve_residual: float | None = None

    # -- pieces of eq. (1)/(3) -------------------------------------------------------------------------
    def _weights(self, T: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """λ^{T−1−t} / Σ_k λ^k for t = 0..T−1: the weights of eq. (2) (uniform for IF)."""
        powers = torch.arange(T - 1, -1, -1, dtype=dtype, device=device)
        w = torch.as_tensor(self.leak, dtype=dtype, device=device) ** powers
        return w / w.sum()

    def _input_currents(self, x_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(per-step currents BN(F x[t]) ``[T, B, ...]`` without gradient; in training also the map's
        BN(F x̄) with gradient, else None). F is affine, so F x̄ = Σ_t w_t F x[t]: in training the BN
        statistics of F x̄ normalise every step (eq. 8) and the running statistics move once per batch."""
        T, B = x_seq.shape[:2]
        flat = x_seq.reshape(T * B, *x_seq.shape[2:])
        if isinstance(self.input_synapse, nn.Linear):
            flat = flat.reshape(T * B, -1)
        with torch.no_grad():
            linear = self.input_synapse(flat).reshape(T, B, *self.hidden_shape)
        normalised_mean = None
        if self.training:
            weights = self._weights(T, x_seq.dtype, x_seq.device).view(T, *([1] * (x_seq.dim() - 1)))
            x_bar = (weights * x_seq).sum(0)
            if isinstance(self.input_synapse, nn.Linear):
                x_bar = x_bar.reshape(B, -1)
            normalised_mean = self.bn(self.input_synapse(x_bar))  # batch statistics; running stats move
        with torch.no_grad():
            if self.training:
                weights = self._weights(T, linear.dtype, linear.device).view(T, *([1] * (linear.dim() - 1)))
                mean_current = (weights * linear).sum(0)
                dims = [0] + list(range(2, mean_current.dim()))
                mu = mean_current.mean(dims, keepdim=True)
                var = mean_current.var(dims, unbiased=False, keepdim=True)
            else:
                assert self.bn.running_mean is not None and self.bn.running_var is not None
                shape = [1, -1] + [1] * (linear.dim() - 3)
                mu, var = self.bn.running_mean.view(shape), self.bn.running_var.view(shape)
            shape = [1, 1, -1] + [1] * (linear.dim() - 3)
            gamma, beta = self.bn.weight.view(shape), self.bn.bias.view(shape)
            steps = (linear - mu.unsqueeze(0)) / torch.sqrt(var.unsqueeze(0) + self.bn.eps) * gamma + beta
        return steps, normalised_mean

    def _masks(self, batch: int, like: torch.Tensor) -> Masks:
        if not self.training or self.dropout == 0.0:
            return Masks()
        keep = 1.0 - self.dropout

        def draw(shape: tuple[int, ...]) -> torch.Tensor:
            return torch.empty(batch, *shape, dtype=like.dtype, device=like.device).bernoulli_(keep) / keep

        return Masks(draw(self.shapes[0]), draw(self.shapes[0]), [draw(shape) for shape in self.shapes[1:]])

    def _stage_current(
        self, i: int, b: torch.Tensor, batch_statistics: bool, detached: bool = False
    ) -> torch.Tensor:
        """BN_i(S_i b) of stage i ≥ 1 (batch or running statistics; ``detached``: parameters as constants)."""
        stage = self.stages[i - 1]
        synapse, bn = stage["synapse"], stage["bn"]
        if detached:
            conv = isinstance(synapse, nn.Conv2d)
            weight, bias = synapse.weight.detach(), synapse.bias.detach()
            z = (
                F.conv2d(b, weight, bias, synapse.stride, synapse.padding)
                if conv
                else F.linear(b, weight, bias)
            )
            gamma, beta = bn.weight.detach(), bn.bias.detach()
        else:
            z, gamma, beta = synapse(b), bn.weight, bn.bias
        training = batch_statistics and self.training
        return F.batch_norm(
            z, bn.running_mean, bn.running_var, gamma, beta, training, bn.momentum or 0.0, bn.eps
        )

    def simulate(self, steps: torch.Tensor, masks: Masks) -> torch.Tensor:
        """Eqs. (1)–(2) without gradient: the T-step rates a[T] ``[B, ...]`` of the last stage."""
        with torch.no_grad():
            n = len(self.shapes)
            u = [
                torch.zeros(len(steps[0]), *shape, dtype=steps.dtype, device=steps.device)
                for shape in self.shapes
            ]
            s = [torch.zeros_like(v) for v in u]
            total = torch.zeros_like(u[-1])
            for t, current in enumerate(steps):
                if t > 0:
                    u[0] = u[0] + _masked(masks.feedback, self.feedback(s[-1]))
                u[0] = u[0] + _masked(masks.x, current)
                for i in range(n):
                    if i > 0:
                        u[i] = u[i] + _masked(masks.stage(i - 1), self._stage_current(i, s[i - 1], False))
                    s[i] = self.neuron(u[i])
                    u[i] = u[i] - self.threshold * s[i]
                    if self.leak != 1.0:
                        u[i] = u[i] * self.leak
                total = total * self.leak + s[-1]
            norm = sum(self.leak**k for k in range(len(steps)))
            return total / norm

    def equilibrium_map(
        self,
        a: torch.Tensor,
        input_current: torch.Tensor,
        masks: Masks,
        weight: torch.Tensor | None = None,
        jacobian: bool = False,
    ) -> torch.Tensor:
        """Eq. (3): f(a) = clamp((m_s ⊙ W a + m_x ⊙ BN(F x̄)) / ϑ, 0, 1), then the later stages (if any);
        ``jacobian``: parameters as constants and running BN statistics (the map whose Jᵀ is solved)."""
        fed_back = self.feedback.apply_weight(a, self.feedback._weight if weight is None else weight)
        b = torch.clamp(
            (_masked(masks.feedback, fed_back) + _masked(masks.x, input_current)) / self.threshold, 0.0, 1.0
        )
        for i in range(1, len(self.shapes)):
            current = self._stage_current(i, b, batch_statistics=not jacobian, detached=jacobian)
            b = torch.clamp(_masked(masks.stage(i - 1), current) / self.threshold, 0.0, 1.0)
        return b

    def implicit_rates(self, a_star: torch.Tensor, input_current: torch.Tensor, masks: Masks) -> torch.Tensor:
        """Eq. (5): a tensor with the value ``a_star`` whose gradient reaches θ as (∂f/∂θ)ᵀ (I − Jᵀ)⁻¹ g."""
        assert self.feedback._weight is not None
        mapped = self.equilibrium_map(a_star, input_current, masks)  # BN running statistics move here
        out = mapped + (a_star - mapped).detach()
        vjp = self.map_vjp(a_star.detach(), input_current.detach(), masks)

        def adjoint(g: torch.Tensor) -> torch.Tensor:
            flat = g.reshape(len(g), -1)
            w = self.solve_adjoint(vjp, flat)
            self.last_solve_residual = float((vjp(w) - w + flat).norm())
            return w.view_as(g)

        out.register_hook(adjoint)
        return out

    def map_vjp(
        self, a_star: torch.Tensor, input_current: torch.Tensor, masks: Masks
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """v ↦ Jᵀ v of the map's Jacobian at ``a_star`` (v and Jᵀ v flattened per sample). For one dense
        feedback layer it is written out, Jᵀ v = (m_s ⊙ 1[0 ≤ p ≤ 1] ⊙ v / ϑ) W with p the map's pre-clamp
        value: the operations autograd's backward of the map runs, in its order (bit-identical, tested),
        without a pass of the autograd engine per Broyden iteration. Other maps go through autograd."""
        assert self.feedback._weight is not None
        weight = self.feedback._weight.detach()
        if not self.stages and self.feedback.kind == "linear":
            with torch.no_grad():
                fed_back = _masked(masks.feedback, self.feedback.apply_weight(a_star, weight))
                pre = (fed_back + _masked(masks.x, input_current)) / self.threshold
                inside = (pre >= 0.0) & (pre <= 1.0)

            def dense_vjp(v: torch.Tensor) -> torch.Tensor:
                through_clamp = torch.where(inside, v.view_as(pre), 0.0) / self.threshold
                return torch.mm(_masked(masks.feedback, through_clamp), weight)

            return dense_vjp
        with torch.enable_grad():
            z = a_star.requires_grad_(True)
            y = self.equilibrium_map(z, input_current, masks, weight=weight, jacobian=True)

        def vjp(v: torch.Tensor) -> torch.Tensor:
            (grad,) = torch.autograd.grad(y, z, v.view_as(z), retain_graph=True)
            return grad.reshape(len(v), -1)

        return vjp

    def solve_adjoint(self, vjp: Callable[[torch.Tensor], torch.Tensor], g: torch.Tensor) -> torch.Tensor:
        """w = Jᵀ w + g (eq. 5) by Broyden's method on r(w) = Jᵀ w − w + g, or by fixed-point iteration."""
        if self.solver == "fixed-point":
            w = g
            for _ in range(self.solver_iterations):
                w = vjp(w) + g
            return w
        eps = 2e-10 * math.sqrt(g.numel())  # official tolerance
        return broyden_solve(lambda w: vjp(w) - w + g, torch.zeros_like(g), self.solver_iterations, eps)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Class scores for an input sequence ``[T, B, ...]`` (eq. 4); in training the rates carry the
        implicit gradient (eq. 5)."""
        self.feedback.refresh()
        steps, input_current = self._input_currents(x_seq)
        masks = self._masks(steps.shape[1], steps)
        a_star = self.simulate(steps, masks)
        if self.training:
            assert input_current is not None
            rates = self.implicit_rates(a_star, input_current, masks)
        else:
            rates = a_star
        return self.classifier(rates.flatten(1))


def _batch_norm(shape: tuple[int, ...]) -> nn.BatchNorm1d | nn.BatchNorm2d:
    return nn.BatchNorm1d(shape[0]) if len(shape) == 1 else nn.BatchNorm2d(shape[0])


@algorithms.register("ide")
class IDE(Algorithm):
    """Feedback SNN trained by implicit differentiation on the equilibrium of its firing rates."""

    paper = Paper(
        authors="Xiao, Meng, Zhang, Wang & Lin",
        title="Training Feedback Spiking Neural Networks by Implicit Differentiation "
        "on the Equilibrium State",
        venue="NeurIPS",
        year=2021,
        url="https://arxiv.org/abs/2109.14247",
        equations="IF/LIF feedback layer, rates a[T] → a* = clamp((W a* + F x̄)/ϑ, 0, 1); "
        "∂L/∂θ = (∂f/∂θ)ᵀ (I − J_fᵀ)⁻¹ ∂L/∂a* by Broyden's method; spectral-normalised W",
    )
    description = (
        "IDE: feedback SNN, forward = T-step simulation to the rate equilibrium, backward = implicit "
        "differentiation of the fixed-point map (no BPTT, memory independent of T)"
    )
    Config = IDEConfig
    default_encoding = "direct"
    version = 1
    changelog = ("1: first version (single-layer and multi-layer feedback networks)",)

    def build(self, T: int) -> nn.Module:
        cfg: IDEConfig = self.config  # type: ignore[assignment]
        layers = [layer for layer in self.arch.layers if not isinstance(layer, Dropout)]
        if not layers or not all(isinstance(layer, Dense | Conv) for layer in layers):
            raise SnnbenchError(
                f"ide builds a feedback network from dense or conv tokens (e.g. 256, 64C5p2s2, or the "
                f"multi-layer 96C3p1s2-256C3-384C3s2-384C3-256C3), got {self.arch.notation!r}"
            )
        shape = tuple(self.data.input_shape)
        synapses: list[nn.Linear | nn.Conv2d] = []
        shapes: list[tuple[int, ...]] = []
        for layer in layers:
            if isinstance(layer, Dense):
                synapses.append(nn.Linear(math.prod(shape), layer.units))
                shape = (layer.units,)
            else:
                if len(shape) != 3:
                    raise SnnbenchError(f"ide: a convolution needs image input, got {shape}")
                synapses.append(nn.Conv2d(shape[0], layer.channels, layer.kernel, layer.stride, layer.pad))
                h, w = ((n + 2 * layer.pad - layer.kernel) // layer.stride + 1 for n in shape[1:])
                shape = (layer.channels, h, w)
            shapes.append(shape)
        for synapse in synapses:
            _unit_rows(synapse)
        feedback = SpectralNormSynapse(self._feedback_layer(shapes[-1], shapes[0]), cfg.spectral_norm_range)
        stages = list(zip(synapses[1:], shapes[1:], strict=True))
        return FeedbackSNN(synapses[0], feedback, shapes[0], self.data.num_classes, cfg, stages)

    def _feedback_layer(
        self, source: tuple[int, ...], target: tuple[int, ...]
    ) -> nn.Linear | nn.Conv2d | nn.ConvTranspose2d:
        """W: last stage → first, bias-free: linear; a same-padding conv (``feedback_kernel``); or, where the
        first stage has twice the resolution, the official stride-2 transposed conv (padding k//2, output
        padding 1)."""
        cfg: IDEConfig = self.config  # type: ignore[assignment]
        k = cfg.feedback_kernel
        layer: nn.Linear | nn.Conv2d | nn.ConvTranspose2d
        if len(source) == 1 and len(target) == 1:
            layer = nn.Linear(source[0], target[0], bias=False)
        elif len(source) == 3 and len(target) == 3 and source[1:] == target[1:]:
            layer = nn.Conv2d(source[0], target[0], k, 1, k // 2, bias=False)
        elif len(source) == 3 and len(target) == 3 and target[1:] == (2 * source[1], 2 * source[2]):
            layer = nn.ConvTranspose2d(source[0], target[0], k, 2, k // 2, output_padding=1, bias=False)
        else:
            raise SnnbenchError(
                f"ide: no feedback connection from the last layer {source} to the first {target} (dense to "
                "dense, or conv to conv at the same or half the first layer's resolution)"
            )
        _unit_rows(layer)
        return layer

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: IDEConfig = self.config  # type: ignore[assignment]
        optimizer = torch.optim.SGD(
            net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, self._milestones(ctx.epochs), cfg.gamma)
        return TrainState(optimizer, scheduler)

    def _milestones(self, epochs: int) -> list[int]:
        cfg: IDEConfig = self.config  # type: ignore[assignment]
        return sorted({round(f * epochs) for f in cfg.milestones})

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        cfg: IDEConfig = self.config  # type: ignore[assignment]
        assert state.optimizer is not None
        net.train()
        tally = EpochTally()
        for x, y in batches:
            iteration = state.extra.get("iteration", 0)
            if iteration < cfg.warmup_iterations:  # official adjust_warmup_lr: scheduled lr · (i + 1)/warmup
                passed = sum(m <= ctx.epoch for m in self._milestones(ctx.epochs))
                for group in state.optimizer.param_groups:
                    scheduled = group["initial_lr"] * cfg.gamma**passed
                    group["lr"] = scheduled * (iteration + 1) / cfg.warmup_iterations
            state.extra["iteration"] = iteration + 1
            logits = net(ctx.encode(self.data.normalize(x)))
            loss = F.cross_entropy(logits, y)
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            tally.add(loss.item() * len(y), logits.detach(), y)
        if state.scheduler is not None:
            state.scheduler.step()
        return tally.summary()

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return net(ctx.encode(self.data.normalize(x)))
