"""Neuron dynamics against hand-worked trajectories; surrogates against autograd of their smooth functions."""

from __future__ import annotations

import math

import pytest
import torch

from snnbench.neurons.functional import SURROGATES, LIFParams, lif_multistep, lif_step, spike
from snnbench.neurons.layers import LIF, LeakyReadout


def test_lif_hard_reset_trajectory_by_hand():
    # τ = 2, ϑ = 1, input 1.5 every step:
    # t0: h = 0 + (1.5 − 0)/2 = 0.75 → no spike, v = 0.75
    # t1: h = 0.75 + (1.5 − 0.75)/2 = 1.125 → spike, v = 0
    # t2: h = 0.75 → no spike;  t3: h = 1.125 → spike
    x = torch.full((4, 1), 1.5)
    spikes = LIF(LIFParams())(x)
    assert spikes.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]


def test_lif_soft_reset_keeps_the_excess():
    # soft reset: t1 h = 1.125 → spike, v = 0.125; t2: h = 0.125 + (1.5 − 0.125)/2 = 0.8125 → no spike
    p = LIFParams(v_reset=None)
    v = torch.zeros(1)
    trace = []
    for _ in range(3):
        s, v = lif_step(torch.tensor([1.5]), v, p)
        trace.append((float(s), round(float(v), 6)))
    assert trace == [(0.0, 0.75), (1.0, 0.125), (0.0, 0.8125)]


@pytest.mark.parametrize("path", ["native", "torch ops"])
def test_threshold_is_inclusive(path, monkeypatch):
    from snnbench.neurons import functional

    assert spike(torch.tensor([0.0, -1e-7])).tolist() == [1.0, 0.0]
    if path == "torch ops":
        monkeypatch.setattr(functional, "_native_for", lambda x: None)
    elif functional.native_kernels() is None:
        pytest.skip("no C++ toolchain: the torch-ops path is the only one")
    # τ = 2: h = x/2 reaches ϑ = 1 exactly at x = 2 (and stays below it for the float just under 2)
    x = torch.tensor([[2.0, 1.9999999]])
    assert lif_multistep(x, LIFParams()).tolist() == [[1.0, 0.0]]


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_surrogate_backward_is_the_derivative_of_its_smooth_function(name):
    x = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    spike(x, name).sum().backward()
    ours = x.grad.clone()
    y = x.detach().clone().requires_grad_(True)
    SURROGATES[name].smooth(y, SURROGATES[name].default_alpha).sum().backward()
    torch.testing.assert_close(ours, y.grad)


@pytest.mark.parametrize("v_reset", [0.0, None])
def test_lif_step_membrane_with_a_detached_reset_passes_gradcheck(v_reset):
    """With ``detach_reset`` the membrane trace of :func:`lif_step` is differentiable away from the threshold
    (the spikes are locally constant), so autograd must equal finite differences; a reset that kept the
    surrogate term would not. Inputs stay ≥ 0.01 away from every threshold crossing."""
    p = LIFParams(v_reset=v_reset, detach_reset=True)

    def membrane(x):
        v = torch.zeros_like(x[0])
        trace = []
        for x_t in x:
            s, v = lif_step(x_t, v, p)
            trace.append(v)
        return torch.stack(trace)

    x = torch.tensor(
        [[1.5, 0.4, 2.6], [1.5, 2.9, 0.3], [0.2, 1.7, 2.2], [3.0, 0.9, 1.1]], dtype=torch.float64
    )
    with torch.no_grad():  # the pre-reset membranes h = v + (x − v)/2 stay away from ϑ = 1
        v, margins = torch.zeros(3, dtype=torch.float64), []
        for x_t in x:
            h = v + (x_t - v) / 2
            margins.append((h - 1).abs().min())
            v = h * (h < 1) if v_reset == 0.0 else h - (h >= 1).double()
    assert min(margins) > 0.01
    assert torch.autograd.gradcheck(membrane, (x.requires_grad_(),))


def test_leaky_readout_integrates():
    trace = LeakyReadout(tau=2.0)(torch.ones(3, 1))
    assert trace.flatten().tolist() == [0.5, 0.75, 0.875]


def reference_lif(x: torch.Tensor, p: LIFParams) -> torch.Tensor:
    v = torch.zeros_like(x[0])
    out = []
    for x_t in x:
        s, v = lif_step(x_t, v, p)  # autograd through the step function
        out.append(s)
    return torch.stack(out)


@pytest.mark.parametrize(
    "params",
    [LIFParams(), LIFParams(v_reset=None), LIFParams(detach_reset=True),
     LIFParams(v_reset=None, detach_reset=True, surrogate="arctan"),
     LIFParams(tau=1.5, v_reset=0.2, surrogate="fast-sigmoid", alpha=10.0),
     LIFParams(v_reset=None, surrogate="triangle"),
     LIFParams(tau=20.0, v_reset=None, surrogate="triangle", alpha=0.3, detach_reset=True, input_scale=1.0),
     LIFParams(tau=math.inf, v_threshold=2.0, input_scale=1.0)],
)  # fmt: skip
@pytest.mark.parametrize("path", ["native", "torch ops"])
def test_fused_lif_equals_the_step_by_step_reference(params, path, monkeypatch):
    """Both multi-step paths (the C++ kernels on CPU; torch ops on CUDA or without a compiler)."""
    from snnbench.neurons import functional

    if path == "torch ops":
        monkeypatch.setattr(functional, "_native_for", lambda x: None)
    elif functional.native_kernels() is None:
        pytest.skip("no C++ toolchain: the torch-ops path is the only one")
    torch.manual_seed(0)
    x = (torch.randn(7, 3, 5, dtype=torch.float64) * 1.5 + 0.8).requires_grad_()
    weights = torch.randn(7, 3, 5, dtype=torch.float64)
    expected = reference_lif(x, params)
    (expected * weights).sum().backward()
    expected_grad, x.grad = x.grad.clone(), None
    fused = lif_multistep(x, params)
    (fused * weights).sum().backward()
    assert torch.equal(fused, expected) and expected.sum() > 0  # same spikes, and there are some
    torch.testing.assert_close(x.grad, expected_grad, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        assert torch.equal(lif_multistep(x, params), expected)


@pytest.mark.parametrize(
    "params",
    [LIFParams(), LIFParams(v_reset=None), LIFParams(detach_reset=True), LIFParams(surrogate="arctan"),
     LIFParams(tau=1.5, v_reset=0.2, surrogate="fast-sigmoid", alpha=10.0),
     LIFParams(v_reset=None, surrogate="triangle", detach_reset=True),
     LIFParams(tau=20.0, v_reset=None, surrogate="triangle", alpha=0.3, detach_reset=True, input_scale=1.0),
     LIFParams(tau=math.inf, v_threshold=2.0, input_scale=1.0)],
)  # fmt: skip
@pytest.mark.parametrize("neurons", [50_000, 60_001], ids=["cached stores", "streamed odd rows"])
def test_native_cpu_kernels_equal_the_torch_ops_path(params, neurons, monkeypatch):
    from snnbench.neurons import functional

    if functional.native_kernels() is None:
        pytest.skip("no C++ toolchain: the torch-ops path is the only one")
    torch.manual_seed(1)
    # 150,000 or 180,003 neurons: more than one parallel block, and more than one 65,536-neuron chunk per
    # block; 6 × 180,003 float32 (4.3 MB) are past the kernel's 4 MiB streaming-store size (rows start
    # unaligned: the streamed path's scalar head and tail run too), 6 × 150,000 are not
    x = torch.randn(6, 3, neurons, dtype=torch.float32) * 1.5 + 0.8
    weights = torch.randn_like(x)
    # ∂L/∂s: dense; the same at every step (stride 0 over T); one scalar everywhere (all strides 0)
    losses = {
        "weighted": lambda s: (s * weights).sum(),
        "on counts": lambda s: (s.sum(0) * weights[0]).sum(),
        "sum": lambda s: s.sum(),
    }
    for loss in losses.values():
        results = []
        for native in (True, False):
            if not native:
                monkeypatch.setattr(functional, "_native_for", lambda x: None)
            x_in = x.clone().requires_grad_()
            spikes = lif_multistep(x_in, params)
            loss(spikes).backward()
            results.append((spikes, x_in.grad))
        monkeypatch.undo()
        (native_spikes, native_grad), (torch_spikes, torch_grad) = results
        assert torch.equal(native_spikes, torch_spikes) and native_spikes.sum() > 0
        with torch.no_grad():  # the forward that writes no membranes
            assert torch.equal(lif_multistep(x, params), torch_spikes)
        # float rounding relative to the gradient's scale: where (1 − s) − h·g cancels (hard reset, no leak),
        # the surrogates' last-bit differences are amplified in single elements
        scale = torch_grad.abs().max()
        torch.testing.assert_close(native_grad / scale, torch_grad / scale, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "params",
    [LIFParams(), LIFParams(v_reset=None), LIFParams(tau=1.5, v_reset=0.2),
     LIFParams(tau=math.inf, v_threshold=2.0, input_scale=1.0)],
)  # fmt: skip
def test_native_forwards_equal_the_torch_ops_forward_bit_for_bit(params):
    """Spikes and membranes of both native forwards, bit for bit against the torch-ops loop: the
    compiler-vectorised one (tensors below 4 MiB, here neuron slices of the input) and the hand-vectorised
    one with streaming stores (the whole 4.3 MB input; its odd rows start unaligned, so its scalar head and
    tail run too); with and without the membranes kept. Half the inputs are quarters, which put h exactly on ϑ
    under dyadic leaks, where only h ≥ ϑ fires."""
    from snnbench.neurons import functional

    native = functional.native_kernels()
    if native is None:
        pytest.skip("no C++ toolchain: the torch-ops path is the only one")
    torch.manual_seed(2)
    x = torch.randn(6, 3, 60_001) * 1.5 + 0.8
    x[..., ::2] = (x[..., ::2] * 4).round() / 4
    expected, expected_h = functional._lif_forward(x, params)
    streamed, streamed_h = functional._native_forward(native, x, params)
    assert torch.equal(streamed, expected) and torch.equal(streamed_h, expected_h)
    assert torch.equal(functional._native_forward(native, x, params, keep_membrane=False)[0], expected)
    for part in torch.arange(x.shape[-1]).tensor_split(3):  # 1.4 MB each
        cached, cached_h = functional._native_forward(native, x[..., part].contiguous(), params)
        assert torch.equal(cached, expected[..., part]) and torch.equal(cached_h, expected_h[..., part])
    assert expected.sum() > 0 and (expected_h == params.v_threshold).sum() > 0


def test_native_backward_reuses_the_membrane_and_refuses_a_second_backward():
    """The native backward writes ∂L/∂x over the saved membranes: a retained graph must fail loudly."""
    from snnbench.neurons import functional

    if functional.native_kernels() is None:
        pytest.skip("no C++ toolchain: the torch-ops path is the only one")
    x = (torch.randn(5, 3, 8) + 0.8).requires_grad_()
    spikes = lif_multistep(x, LIFParams())
    spikes.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        spikes.sum().backward()


# every neuron setting the algorithms run in the fused kernel: bptt (default and the other surrogate and
# reset choices), bntt (leak 0.95 and 0.99: τ = 20 and 100, units of ϑ), proxy (IF, ϑ = 2, hard reset)
IN_USE = [
    LIFParams(), LIFParams(surrogate="arctan"), LIFParams(surrogate="fast-sigmoid"),
    LIFParams(detach_reset=True),
    LIFParams(tau=20.0, v_reset=None, surrogate="triangle", detach_reset=True, input_scale=1.0),
    LIFParams(tau=100.0, v_reset=None, surrogate="triangle", detach_reset=True, input_scale=1.0),
    LIFParams(tau=math.inf, v_threshold=2.0, v_reset=0.0, input_scale=1.0),
]  # fmt: skip


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("params", IN_USE)
def test_float32_kernels_match_float64_autograd_of_lif_step(params, native, monkeypatch):
    """The float32 path the runs take (native kernel, or torch ops) against float64 autograd through
    :func:`lif_step`: the same spikes, and gradients within float32 rounding of the reference."""
    from snnbench.neurons import functional

    if native and functional.native_kernels() is None:
        pytest.skip("no C++ toolchain: the torch-ops path is the only one")
    if not native:
        monkeypatch.setattr(functional, "_native_for", lambda x: None)
    torch.manual_seed(2)
    x = torch.randn(8, 4, 500) * 1.5 + 0.8 * params.v_threshold
    weights = torch.randn_like(x)
    reference_x = x.double().requires_grad_()
    expected = reference_lif(reference_x, params)
    (expected * weights.double()).sum().backward()
    x.requires_grad_()
    spikes = lif_multistep(x, params)
    (spikes * weights).sum().backward()
    assert spikes.dtype == torch.float32 and torch.equal(spikes.double(), expected) and expected.sum() > 0
    error = (x.grad.double() - reference_x.grad).norm() / reference_x.grad.norm()
    assert error < 1e-5, error


def test_native_sigmoid_surrogate_of_a_far_silent_neuron_is_zero():
    """Far below threshold (α|h − ϑ| > 87) σ'(α(h − ϑ)) is below float32's normal range, and the kernel's
    exp returns 0 there, as torch's sigmoid does. It used to return exp(−87): a gradient of ~7e-38 at every
    such neuron, whose products with activations are subnormal inside the weight-gradient GEMM (very slow
    on Intel CPUs). Gradients of neurons in range stay bit-identical (the other tests here)."""
    from snnbench.neurons import functional

    if functional.native_kernels() is None:
        pytest.skip("no C++ toolchain: the torch-ops path is the only one")
    # h = x/2 at every step (v stays below ϑ): α|h − 1| = 4·51 = 204 > 87, and 4·(1 − (-10)) = 44 < 87
    x = torch.tensor([-100.0, -20.0]).repeat(6, 3, 1).requires_grad_()
    lif_multistep(x, LIFParams()).sum().backward()
    assert torch.equal(x.grad[..., 0], torch.zeros(6, 3))
    expected = functional._sigmoid_derivative(torch.tensor(-11.0, dtype=torch.float64), 4.0).item()
    assert x.grad[-1, :, 1].tolist() == pytest.approx([expected / 2] * 3, rel=1e-5)  # last step: no carry
