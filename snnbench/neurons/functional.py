"""Pure neuron dynamics and surrogate spike functions.

Spikes are ``Θ(v − ϑ)`` with ``Θ(0) = 1`` (SpikingJelly's convention). A surrogate keeps that forward and
replaces the derivative in the backward pass by the derivative of a smooth stand-in ``g``:

* ``sigmoid``       g(x) = σ(αx),                      g'(x) = α σ(αx)(1 − σ(αx)),   α = 4 (SpikingJelly)
* ``arctan``        g(x) = arctan(π α x / 2)/π + 1/2,  g'(x) = (α/2) / (1 + (π α x / 2)²), α = 2 (snnTorch)
* ``fast-sigmoid``  g(x) = x / (1 + α|x|) (SuperSpike), g'(x) = 1 / (1 + α|x|)²,     α = 25 (snnTorch slope)
* ``triangle``      g'(x) = α max(0, 1 − |x|), g its piecewise-quadratic primitive,   α = 0.3 (BNTT)

Each surrogate's ``backward`` is tested against autograd of its ``smooth`` function.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import torch


@dataclass(frozen=True)
class Surrogate:
    """A smooth stand-in ``smooth`` for the Heaviside step and its analytic ``derivative``."""

    name: str
    default_alpha: float
    smooth: Callable[[torch.Tensor, float], torch.Tensor]
    derivative: Callable[[torch.Tensor, float], torch.Tensor]


def _sigmoid_derivative(x: torch.Tensor, alpha: float) -> torch.Tensor:
    s = torch.sigmoid(alpha * x)
    return alpha * s * (1.0 - s)


def _arctan_derivative(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return (alpha / 2.0) / (1.0 + (math.pi / 2.0 * alpha * x) ** 2)


def _triangle_smooth(x: torch.Tensor, alpha: float) -> torch.Tensor:
    inside = torch.where(x < 0, (x + 1) ** 2 / 2, 1 - (1 - x) ** 2 / 2)
    return alpha * torch.where(x <= -1, torch.zeros_like(x), torch.where(x >= 1, torch.ones_like(x), inside))


def _fast_sigmoid_derivative(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return 1.0 / (1.0 + alpha * x.abs()) ** 2


SURROGATES: dict[str, Surrogate] = {
    "sigmoid": Surrogate("sigmoid", 4.0, lambda x, a: torch.sigmoid(a * x), _sigmoid_derivative),
    "arctan": Surrogate(
        "arctan", 2.0, lambda x, a: torch.atan(math.pi / 2.0 * a * x) / math.pi + 0.5, _arctan_derivative
    ),
    "fast-sigmoid": Surrogate(
        "fast-sigmoid", 25.0, lambda x, a: x / (1.0 + a * x.abs()), _fast_sigmoid_derivative
    ),
    # BNTT (Kim & Panda 2021): ∂s/∂x = 0.3·max(0, 1 − |x|)
    "triangle": Surrogate("triangle", 0.3, _triangle_smooth, lambda x, a: a * (1.0 - x.abs()).clamp(min=0.0)),
}


class _SurrogateSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float, derivative: Callable) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.alpha, ctx.derivative = alpha, derivative
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output * ctx.derivative(x, ctx.alpha), None, None


def spike(
    x: torch.Tensor, surrogate: str | Surrogate = "sigmoid", alpha: float | None = None
) -> torch.Tensor:
    """Heaviside ``Θ(x)`` forward, surrogate derivative backward (a name of :data:`SURROGATES`, or a
    method's own :class:`Surrogate`)."""
    s = SURROGATES[surrogate] if isinstance(surrogate, str) else surrogate
    return _SurrogateSpike.apply(x, s.default_alpha if alpha is None else alpha, s.derivative)


class LIFParams(NamedTuple):
    """Decay-input LIF (SpikingJelly ``LIFNode`` defaults): τ = 2, ϑ = 1, hard reset to 0.

    ``input_scale`` replaces the input's 1/τ: ``input_scale=1`` gives u = λu + x with λ = 1 − 1/τ (BNTT's
    neuron), and with ``tau=math.inf`` the integrate-and-fire neuron u = u + x.
    """

    tau: float = 2.0
    v_threshold: float = 1.0
    v_reset: float | None = 0.0  # None: soft reset (subtract ϑ)
    surrogate: str = "sigmoid"
    alpha: float | None = None
    detach_reset: bool = False
    input_scale: float | None = None  # None: 1/τ


def lif_step(x: torch.Tensor, v: torch.Tensor, p: LIFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the decay-input LIF neuron; returns ``(spike, v_next)``.

    Charge:  h = v + (x − (v − v_reset)) / τ      (v_reset = 0 for soft reset)
             h = v − (v − v_reset) / τ + input_scale · x   (with ``input_scale``)
    Fire:    s = Θ(h − ϑ)
    Reset:   v' = h (1 − s) + v_reset s   (hard)   or   v' = h − ϑ s   (soft)
    """
    v_rest = 0.0 if p.v_reset is None else p.v_reset
    if p.input_scale is None:
        h = v + (x - (v - v_rest)) / p.tau
    else:
        h = v - (v - v_rest) / p.tau + p.input_scale * x
    s = spike(h - p.v_threshold, p.surrogate, p.alpha)
    s_reset = s.detach() if p.detach_reset else s
    if p.v_reset is None:
        v_next = h - p.v_threshold * s_reset
    else:
        v_next = h * (1.0 - s_reset) + p.v_reset * s_reset
    return s, v_next


def leaky_integrate_step(x: torch.Tensor, v: torch.Tensor, tau: float) -> torch.Tensor:
    """Non-firing decay-input leaky integrator (a readout layer): v' = v + (x − v)/τ."""
    return v + (x - v) / tau


def _decay_and_gain(p: LIFParams) -> tuple[float, float]:
    """h = decay·(v − v_reset) + v_reset + gain·x."""
    return 1.0 - 1.0 / p.tau, 1.0 / p.tau if p.input_scale is None else p.input_scale


def _alpha(p: LIFParams) -> float:
    """The surrogate's α: ``p.alpha`` or the surrogate's default."""
    return SURROGATES[p.surrogate].default_alpha if p.alpha is None else p.alpha


def _surrogate_derivative_(x: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """``surrogate'(x)``, overwriting ``x`` where it can (fewer passes over large activations).

    Same values as ``SURROGATES[name].derivative`` (tested)."""
    alpha = _alpha(p)
    if p.surrogate == "sigmoid":
        s = x.mul_(alpha).sigmoid_()
        return torch.addcmul(s, s, s, value=-1.0).mul_(alpha)  # α s (1 − s)
    if p.surrogate == "arctan":
        return x.mul_(math.pi / 2.0 * alpha).square_().add_(1.0).reciprocal_().mul_(alpha / 2.0)
    if p.surrogate == "triangle":
        return x.abs_().neg_().add_(1.0).clamp_(min=0.0).mul_(alpha)
    return x.abs_().mul_(alpha).add_(1.0).square_().reciprocal_()  # fast-sigmoid


def _lif_forward(x: torch.Tensor, p: LIFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes of all steps and the pre-reset membranes ``h``; in place where the tensors are fresh."""
    decay, gain = _decay_and_gain(p)
    h_seq = torch.empty_like(x)
    v = torch.zeros_like(x[0])
    rest = p.v_reset or 0.0
    for t in range(x.shape[0]):
        # h = v + (x − (v − v_reset))/τ = decay·(v − v_reset) + v_reset + gain·x  (v is a fresh tensor)
        v = v.mul_(decay) if not rest else v.sub_(rest).mul_(decay).add_(rest)
        # gain·x rounded, then added, as the native kernel does (add's alpha is one fused multiply-add)
        h = torch.add(v, x[t], out=h_seq[t]) if gain == 1 else torch.mul(x[t], gain, out=h_seq[t]).add_(v)
        if p.v_reset is None:
            v = h - p.v_threshold * (h >= p.v_threshold)
        else:
            v = h.masked_fill(h >= p.v_threshold, p.v_reset)
    return (h_seq >= p.v_threshold).to(x.dtype), h_seq


class _LIFMultiStep(torch.autograd.Function):
    """All T steps of :func:`lif_step` in one autograd node (forward without a graph, analytic backward).

    Saves only the pre-reset membrane ``h`` (spikes are ``h ≥ ϑ``). Backward, with
    ``g = surrogate'(h − ϑ)`` and ``δv`` the gradient carried from step t+1:
      ∂L/∂h_t = ∂L/∂s_t · g + δv · ∂v_t/∂h_t,   ∂v_t/∂h_t = (1 − s) + (v_reset − h) g   (hard reset)
                                                            = 1 − ϑ g                      (soft reset)
      (the g-terms vanish with ``detach_reset``);  ∂L/∂x_t = ∂L/∂h_t · gain (1/τ or ``input_scale``);
      δv_{t−1} = ∂L/∂h_t (1 − 1/τ).
    Everything but the two-op recursion over δv is computed for all steps at once.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: LIFParams) -> torch.Tensor:  # type: ignore[override]
        native = _native_for(x)
        spikes, h_seq = _native_forward(native, x, p) if native else _lif_forward(x, p)
        ctx.save_for_backward(h_seq)
        ctx.p, ctx.native = p, native
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (h_seq,) = ctx.saved_tensors
        p: LIFParams = ctx.p
        if ctx.native:
            # ∂L/∂x overwrites h_seq, which is not needed again (a second backward raises)
            grad_x = ctx.native.lif_backward(
                grad_spikes, h_seq, *_decay_and_gain(p), p.v_threshold, p.v_reset or 0.0, p.v_reset is None,
                p.detach_reset, _SURROGATE_IDS[p.surrogate], _alpha(p), True,
            )  # fmt: skip
            return grad_x, None
        g = _surrogate_derivative_(h_seq - p.v_threshold, p)
        if p.v_reset is None:
            dv_dh = torch.ones_like(h_seq) if p.detach_reset else (g * -p.v_threshold).add_(1.0)
        elif p.detach_reset:
            dv_dh = (h_seq < p.v_threshold).to(h_seq.dtype)
        else:  # (1 − s) + (v_reset − h) g, with two allocations
            dv_dh = (h_seq - p.v_reset).mul_(g).neg_().add_(h_seq < p.v_threshold)
        grad_h = grad_spikes * g  # the direct term of every step; the carried term is added below
        decay, gain = _decay_and_gain(p)
        for t in range(h_seq.shape[0] - 2, -1, -1):
            grad_h[t].addcmul_(grad_h[t + 1], dv_dh[t], value=decay)
        return grad_h.mul_(gain), None


_SURROGATE_IDS = {"sigmoid": 0, "arctan": 1, "fast-sigmoid": 2, "triangle": 3}  # lif_cpu.cpp's order


@functools.cache
def _kernels() -> tuple[ModuleType | None, str]:
    """The fused CPU kernels of ``lif_cpu.cpp`` and which path they are: ``native``, ``native-serial``
    (a compiler without OpenMP) or ``torch-ops`` (``SNNBENCH_NATIVE=0``, no C++ toolchain, or another
    process's build outlasted the wait; with a warning). Built once per machine and toolchain
    (:mod:`snnbench.neurons.build`)."""
    from snnbench.neurons.build import native_extension

    return native_extension(
        "snnbench_lif_cpu", Path(__file__).with_name("lif_cpu.cpp"), "fused CPU LIF kernels"
    )


def native_kernels() -> ModuleType | None:
    """The fused CPU kernels, or None where the torch-ops path runs (see :func:`_kernels`)."""
    return _kernels()[0]


def kernel_path(device: torch.device) -> str:
    """Which LIF path runs on ``device``: ``native``, ``native-serial`` or ``torch-ops``; builds the
    kernels if needed (the runner calls it before any timed region)."""
    return _kernels()[1] if device.type == "cpu" else "torch-ops"


def _native_for(x: torch.Tensor) -> ModuleType | None:
    """The native kernels if they apply to ``x`` (a float32/float64 CPU tensor)."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    return native_kernels()


def _native_forward(
    native: ModuleType, x: torch.Tensor, p: LIFParams, keep_membrane: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Spikes and, with ``keep_membrane``, the pre-reset membranes (None without: not written at all)."""
    decay, gain = _decay_and_gain(p)
    rest, soft = p.v_reset or 0.0, p.v_reset is None
    return native.lif_forward(x, decay, gain, p.v_threshold, rest, soft, keep_membrane)


def lif_multistep(x: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """Spikes ``[T, ...]`` of a LIF layer driven by ``x [T, ...]``; equal to looping :func:`lif_step`.

    On CPU the fused C++ kernels run (one pass over memory per direction); elsewhere, or without a
    compiler, the same arithmetic in torch ops (tested equal)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _LIFMultiStep.apply(x, p)
    native = _native_for(x)
    return _native_forward(native, x, p, keep_membrane=False)[0] if native else _lif_forward(x, p)[0]
