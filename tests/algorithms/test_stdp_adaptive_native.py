"""stdp-adaptive's native simulation (snnbench/wta/wta_cpu.cpp) against the torch-ops loop it replaces
(``simulate_torch``, main's ``simulate`` unchanged): the same spike counts and the same generator state
afterwards, in both of its orders; the in-place fc update against the out-of-place formula; and a frozen copy
of main's outputs (main @a10b0fc, float32) for a small network, so that the old behaviour is kept even if both
paths changed together."""

from __future__ import annotations

import math

import pytest
import torch

from snnbench.algorithms import RunContext
from snnbench.algorithms.stdp_adaptive import (
    StdpAdaptive,
    StdpAdaptiveConfig,
    bound_rows,
    conv_threshold,
    conv_update,
    fc_update,
    simulate,
    simulate_torch,
    standardise,
    synaptic_filter,
)
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo
from snnbench.data.encoding import direct
from snnbench.wta import _build, simulate_native

CFG = StdpAdaptiveConfig()
native = pytest.mark.skipif(_build() is None, reason="no C++ toolchain: the torch loop runs")


def conv_case(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """A conv layer's current [B, C, H, W]: filtered, one threshold and inhibition per channel."""
    torch.manual_seed(0)
    weight = standardise(torch.randn(12, 1, 3, 3, dtype=dtype))
    x = torch.rand(5, 1, 9, 9, dtype=dtype) ** 2
    raw = torch.nn.functional.conv2d(x, weight, padding=1)
    theta = conv_threshold(raw, CFG.threshold_epsilon)
    current = synaptic_filter(raw, theta, CFG.filter_centre, CFG.filter_slope)
    return current, theta, math.exp(-1.0 / CFG.conv_tau), CFG.conv_inhibition * theta


def fc_case(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """An fc layer's current [B, N]: per-neuron thresholds, per-sample inhibition."""
    torch.manual_seed(1)
    current = torch.rand(7, 300, dtype=dtype) * 0.05
    theta = 0.5 * current.amax(0)
    return current, theta, CFG.fc_decay, CFG.fc_inhibition * current.amax(1, keepdim=True)


def full_case(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """Thresholds and inhibition given element by element [B, N, S]."""
    torch.manual_seed(2)
    current = torch.rand(3, 4, 6, dtype=dtype) * 1.5
    return current, 1.0 + torch.rand(3, 4, 6, dtype=dtype), 0.9, 2.0 * torch.rand(3, 4, 6, dtype=dtype)


@native
@pytest.mark.parametrize("case", [conv_case, fc_case, full_case])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sample_major", [True, False])
def test_native_simulation_gives_the_torch_loop_s_counts_and_random_stream(case, dtype, sample_major):
    current, theta, decay, inhibition = case(dtype)
    g_torch, g_native = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.rand(17, generator=g_torch), torch.rand(17, generator=g_native)  # start inside an engine block
    want = simulate_torch(current, theta, decay, inhibition, 25, g_torch)
    got = simulate_native(current, theta, decay, inhibition, 25, g_native, sample_major=sample_major)
    assert got is not None and got.dtype == dtype and got.shape == current.shape
    assert torch.equal(got, want)
    assert float(want.sum()) > 20
    assert torch.equal(torch.rand(1000, generator=g_torch), torch.rand(1000, generator=g_native))


@native
def test_contested_positions_are_decided_by_the_draw():
    """Every neuron of every position fires at step 1: the winners are the draws' arg-max, as torch's."""
    current = torch.full((64, 5, 3), 2.0)
    theta = torch.ones(1, 5, 1)
    for seed in range(3):
        g_torch, g_native = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        want = simulate_torch(current, theta, 0.5, 10.0 * theta, 1, g_torch)
        got = simulate_native(current, theta, 0.5, 10.0 * theta, 1, g_native)
        assert torch.equal(got, want)
        assert torch.equal(got.sum(1), torch.ones(64, 3))  # one winner per position
        assert bool((got.sum((0, 2)) > 20).all())  # each neuron wins about 192 / 5 times


@native
def test_a_silent_step_after_the_first_spike_falls_back_to_the_step_by_step_order():
    """Neuron 0 fires every second step and nothing else fires: the steps between draw nothing, so the
    sample-major guess (every step from the first spike on draws) is wrong and must be caught."""
    current = torch.tensor([[[0.6], [0.2]], [[0.0], [0.1]]])
    theta = torch.ones_like(current)
    module = _build()
    g_torch, g_native = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    want = simulate_torch(current, theta, 1.0, 5.0 * theta, 12, g_torch)
    flat = current.view(2, 2, 1)
    got, ran = module.simulate(flat, theta, 1.0, 5.0 * theta, 12, g_native, True)
    assert not ran and torch.equal(got, want) and float(want[0, 0, 0]) == 6.0
    assert torch.equal(torch.rand(100, generator=g_torch), torch.rand(100, generator=g_native))
    current, theta, decay, inhibition = conv_case(torch.float32)
    _, ran = module.simulate(
        current.flatten(2), theta.expand_as(current).flatten(2), decay,
        inhibition.expand_as(current).flatten(2), 10, torch.Generator(), True,
    )  # fmt: skip
    assert ran  # a batch with spikes at every step: the fast order


@native
def test_the_default_generator_is_used_when_none_is_given():
    current, theta, decay, inhibition = conv_case(torch.float32)
    torch.manual_seed(11)
    want = simulate_torch(current, theta, decay, inhibition, 8, None)
    after = torch.rand(5)
    torch.manual_seed(11)
    got = simulate(current, theta, decay, inhibition, 8, None)
    assert torch.equal(got, want) and torch.equal(torch.rand(5), after)


def test_in_place_row_bound_and_fc_update_are_the_formula():
    torch.manual_seed(4)
    w = torch.rand(9, 14) * 0.1
    w[3] = -0.5  # a row without a positive weight stays zero
    update = fc_update(torch.rand(6, 14), torch.randint(0, 4, (6, 9)).float())
    want = bound_rows(w + 1e-2 * update, 0.1)
    got = bound_rows(update.clone().mul_(1e-2).add_(w), 0.1, inplace=True)
    assert torch.equal(got, want) and torch.equal(got[3], torch.zeros(14))
    top = (w + 1e-2 * update).clamp(0, 1).amax(1, keepdim=True)
    formula = torch.where(top > 0, (w + 1e-2 * update).clamp(0, 1) * (0.1 / top.clamp(min=1e-30)), 0.0)
    assert torch.equal(want, formula)


# ---- main's outputs, frozen (main @a10b0fc, float32, this machine's torch 2.13.0+cpu) ---------------------
MAIN_CONV_COUNTS = [
    [70, 48, 86, 89],
    [46, 25, 75, 102],
    [41, 60, 76, 125],
    [65, 32, 81, 94],
    [82, 34, 48, 122],
    [68, 53, 68, 120],
]
MAIN_CONV_WEIGHT = [
    0.08369114249944687, 1.1588799953460693, -1.5169950723648071, -1.3342012166976929, -0.6412915587425232,
    0.6148692965507507, 0.05982872098684311, 1.6637004613876343, -0.08848221600055695, 0.8260113000869751,
    -0.34882232546806335, -0.11771845072507858, -1.70820951461792, -1.091810941696167, -0.5735626816749573,
    0.3613929748535156, 1.1094510555267334, 1.5432686805725098, -1.5444316864013672, -1.095619797706604,
    0.3523702621459961, 1.2108103036880493, -0.6684170365333557, 1.0792099237442017, -0.5936716198921204,
    -0.10043834149837494, 1.3601882457733154, -0.9163840413093567, -0.32732370495796204, 0.37048617005348206,
    0.13246257603168488, 2.5718674659729004, -0.37627577781677246, -0.020407726988196373,
    -0.47951218485832214, -0.9549129009246826,
]  # fmt: skip
MAIN_FC_COUNTS = [
    [0, 0, 0, 0, 0, 10],
    [6, 0, 0, 0, 0, 0],
    [0, 0, 7, 0, 0, 0],
    [0, 10, 0, 0, 0, 0],
    [0, 0, 0, 10, 0, 0],
    [0, 0, 0, 7, 0, 0],
]
MAIN_FC_THETA = [3.769953966140747, 2.4868195056915283, 2.885939359664917, 3.3765180110931396,
                 4.085418224334717, 3.91953182220459]  # fmt: skip
MAIN_FC_ROW_SUMS = [1.8424351215362549, 1.3091189861297607, 1.441903829574585, 1.6542421579360962,
                    1.8934566974639893, 2.2082343101501465]  # fmt: skip
MAIN_NEXT_DRAWS = [0.16367334127426147, 0.24024635553359985]


def test_a_conv_step_and_two_fc_steps_give_main_s_outputs():
    """A 4C3-MP2-6 network on 8×8 images: conv counts (T = 12) and update, then two fc steps (T = 30)."""
    cfg = StdpAdaptiveConfig(conv_timesteps=12)
    algorithm = StdpAdaptive(cfg, resolve_architecture("4C3-MP2-6"), DatasetInfo("x", (1, 8, 8), 3))
    torch.manual_seed(0)
    net = algorithm.build(10)
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        counts = net.conv_counts(x, 12, torch.Generator().manual_seed(1))
    assert counts.sum((2, 3)).int().tolist() == MAIN_CONV_COUNTS
    step = conv_update(x, net.conv.weight, counts, 1, cfg)
    with torch.no_grad():
        net.conv.weight.copy_(standardise(net.conv.weight + cfg.conv_lr * step))
    assert torch.allclose(net.conv.weight.flatten(), torch.tensor(MAIN_CONV_WEIGHT), rtol=0, atol=1e-6)
    ctx = RunContext(30, torch.device("cpu"), 5, 8, 8, "direct", torch.Generator().manual_seed(2), direct)
    with torch.no_grad():
        for _ in range(2):
            _, _, fc_counts = algorithm.fc_step(net, x, ctx)
    assert fc_counts.int().tolist() == MAIN_FC_COUNTS
    assert torch.allclose(net.fc_neurons.theta, torch.tensor(MAIN_FC_THETA), rtol=0, atol=1e-5)
    assert torch.allclose(net.fc.weight.sum(1), torch.tensor(MAIN_FC_ROW_SUMS), rtol=0, atol=1e-6)
    assert torch.rand(2, generator=ctx.generator).tolist() == MAIN_NEXT_DRAWS
