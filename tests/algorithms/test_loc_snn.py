"""LOC-SNN (Kang et al., IJCNN 2022): SLAYER's SRM-alpha neuron, the location axis, the hybrid and the
NumSpikes loss against an independent float64 transcription of SLAYER's definitions
(``_calculateAlphaKernel``, the CUDA ``convKernel``/``corrKernel``/``getSpikesKernel``,
``_spikeFunction.backward``, ``spikeLoss.numSpikes``) and of the official ``LocationSlayer.forward``
(pkang2017/TactileLocNeurons @d75039b), written out here from those files, not from our module; the recipe
and build() against the official values.

The official Python (snn.py, slayer.py, spikeLoss.py) was also run beside this implementation with the CUDA
kernels replaced by loops (docs/algorithms/loc-snn.md, "Verification")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from snnbench.algorithms import RunContext
from snnbench.algorithms.loc_snn import (
    ARCH,
    WHORL,
    LocSNNConfig,
    LocSNNMethod,
    SRMNeuron,
    SRMSpikeFunction,
    alpha_kernel,
    num_spikes_loss,
    srm_response,
    taxel_order,
)
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo
from snnbench.data.encoding import rate

# ---- the official values, written out here (TactileLocNeurons @d75039b)
OFFICIAL = {
    "theta": 10.0,  # network_config/container_weight_location.yml neuron.theta
    "tau_sr": 10.0,  # neuron.tauSr
    "tau_ref": 1.0,  # neuron.tauRef
    "scale_ref": 2.0,  # neuron.scaleRef
    "tau_rho": 1.0,  # neuron.tauRho
    "scale_rho": 1.0,  # neuron.scaleRho
    "weight_scale": 10.0,  # slayer.py spikeLayer.dense(weightScale=10)
    "lr": 0.001,  # README.md commands --lr 0.001
    "weight_decay": 0.5,  # train_location_snn.py RMSprop(weight_decay=0.5)
    "branches": "hybrid",  # README.md training command --mode location (LocationSlayer)
    "ordering": "natural",
}


def slayer_alpha_kernel(tau: float, mult: float = 1.0, t_sample: int = 325) -> np.ndarray:
    """slayer.py ``_calculateAlphaKernel`` (Ts = 1, EPSILON 0.01), then float32 as ``torch.tensor(list)``."""
    eps = []
    for t in np.arange(0, t_sample, 1.0):
        value = mult * t / tau * math.exp(1 - t / tau)
        if abs(value) < 0.01 and t > tau:
            break
        eps.append(value)
    return np.array(eps, dtype=np.float32).astype(np.float64)


def conv_loop(signal: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """convKernel: out[t] = Ts Σ_i in[t − i] f[i] (id ≥ 0), per neuron along the last axis."""
    out = np.zeros_like(signal)
    for t in range(signal.shape[-1]):
        for i in range(len(kernel)):
            if t - i >= 0:
                out[..., t] += signal[..., t - i] * kernel[i]
    return out


def corr_loop(signal: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """corrKernel: out[t] = Ts Σ_i in[t + i] f[i] (id < signalSize): the backward of conv."""
    out = np.zeros_like(signal)
    n = signal.shape[-1]
    for t in range(n):
        for i in range(len(kernel)):
            if t + i < n:
                out[..., t] += signal[..., t + i] * kernel[i]
    return out


def get_spikes_loop(u: np.ndarray, nu: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """getSpikesKernel: per neuron, i ascending: u[i] ≥ θ → s = 1/Ts, u[i + j] += ν[j]; u changed in place."""
    u = u.copy()
    s = np.zeros_like(u)
    flat_u, flat_s = u.reshape(-1, u.shape[-1]), s.reshape(-1, u.shape[-1])
    ns = u.shape[-1]
    for n in range(flat_u.shape[0]):
        for i in range(ns):
            if flat_u[n, i] >= theta:
                flat_s[n, i] = 1.0
                for j in range(len(nu)):
                    if i + j < ns:
                        flat_u[n, i + j] += nu[j]
    return s, u


def rho(u: np.ndarray, theta: float = 10.0, tau_rho: float = 1.0, scale_rho: float = 1.0) -> np.ndarray:
    """_spikeFunction.backward: scaleRho/(tauRho θ) exp(−|u − θ|/(tauRho θ))."""
    return scale_rho / (tau_rho * theta) * np.exp(-np.abs(u - theta) / (tau_rho * theta))


EPS = slayer_alpha_kernel(10.0)
NU = slayer_alpha_kernel(1.0, -2.0 * 10.0)


class RefSpike(torch.autograd.Function):
    """The official spike function on the last axis (SLAYER's NCHWT), float64, from the loops above."""

    @staticmethod
    def forward(ctx, u):
        s, u_after = get_spikes_loop(u.detach().numpy(), NU, 10.0)
        ctx.save_for_backward(torch.from_numpy(u_after))
        return torch.from_numpy(s)

    @staticmethod
    def backward(ctx, grad):
        (u_after,) = ctx.saved_tensors
        return grad * torch.from_numpy(rho(u_after.numpy()))


class RefPsp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.from_numpy(conv_loop(x.detach().numpy(), EPS))

    @staticmethod
    def backward(ctx, grad):
        return torch.from_numpy(corr_loop(grad.numpy(), EPS))


def ref_layer(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``slayer.spike(slayer.psp(fc(x)))`` on ``[B, C_in, L]`` (the dense layer: a 1×1×1 Conv3d, no bias)."""
    return RefSpike.apply(RefPsp.apply(torch.einsum("oi,bil->bol", weight, x)))


def ref_location_slayer(weights: list[torch.Tensor], x_nct: torch.Tensor) -> torch.Tensor:
    """LocationSlayer.forward on ``[B, N, T]`` (NCHWT with H = W = 1): the time branch, the location branch on
    ``torch.transpose(x, 1, 4)`` (here: the N and T axes), ``torch.cat(..., dim=4)`` → ``[B, C, T + N]``."""
    w1, w2, lw1, lw2 = weights
    spike_output = ref_layer(w2, ref_layer(w1, x_nct))
    trans = x_nct.transpose(1, 2)  # [B, T, N]: channels = time steps, the sequence = taxels
    location_output = ref_layer(lw2, ref_layer(lw1, trans))
    return torch.cat([spike_output, location_output], dim=2)


def ref_num_spikes(
    spike_out: torch.Tensor, label: torch.Tensor, n_true: float, n_false: float
) -> torch.Tensor:
    """spikeLoss.numSpikes on ``[B, C, L]`` with tgtSpikeRegion = the whole output (start 0, stop L)."""
    L = spike_out.shape[-1]
    actual = spike_out.detach().sum(-1, keepdim=True).numpy()
    desired = np.where(label.numpy()[..., None] == 1, n_true, n_false)
    error_count = (actual - desired) / L
    region = np.ones(spike_out.shape)
    spike_desired = torch.from_numpy(region * spike_out.detach().numpy())
    error = RefPsp.apply(spike_out - spike_desired) + torch.from_numpy(error_count * region)
    return 0.5 * torch.sum(error**2)


def method(shape=(1, 3, 4), classes=3, hidden="5", **config) -> LocSNNMethod:
    return LocSNNMethod(
        LocSNNConfig(**config), resolve_architecture(hidden), DatasetInfo("x", shape, classes)
    )


def context(T: int, seed: int = 0) -> RunContext:
    generator = torch.Generator().manual_seed(seed)
    return RunContext(T, torch.device("cpu"), 1, 8, 8, "rate", generator, rate)


# ---- the kernels


def test_defaults_are_the_official_values():
    cfg = LocSNNConfig()
    for name, value in OFFICIAL.items():
        assert getattr(cfg, name) == value, name
    assert LocSNNMethod.default_encoding == "rate"  # events in; the image proxy's events are Bernoulli spikes


def test_srm_and_refractory_kernels_equal_slayers_alpha_kernel():
    srm, ref = alpha_kernel(10.0), alpha_kernel(1.0, -20.0)
    assert srm.dtype == torch.float32 and srm.numel() == len(EPS) == 77  # cut at k = 77: 7.7 e^{−6.7} < 0.01
    assert ref.numel() == len(NU) == 11  # −20 · 11 e^{−10} = −0.00999
    np.testing.assert_array_equal(srm.double().numpy(), EPS)
    np.testing.assert_array_equal(ref.double().numpy(), NU)
    assert srm[0] == 0 and srm[10] == pytest.approx(1.0) and ref[1] == pytest.approx(-20.0)
    # another τ and scale: the rule, not two memorised lengths
    np.testing.assert_array_equal(alpha_kernel(3.0, 2.5).double().numpy(), slayer_alpha_kernel(3.0, 2.5))


def test_srm_response_is_slayers_causal_convolution_and_its_gradient_the_correlation():
    torch.manual_seed(0)
    x = torch.randn(90, 2, 3, dtype=torch.float64, requires_grad=True)  # L = 90 > the 77-long kernel
    u = srm_response(x, torch.from_numpy(EPS))
    expected = conv_loop(x.detach().permute(1, 2, 0).numpy(), EPS)
    np.testing.assert_allclose(u.detach().permute(1, 2, 0).numpy(), expected, rtol=0, atol=1e-12)
    grad = torch.randn_like(u)
    u.backward(grad)
    np.testing.assert_allclose(
        x.grad.permute(1, 2, 0).numpy(), corr_loop(grad.permute(1, 2, 0).numpy(), EPS), rtol=0, atol=1e-12
    )
    short = torch.randn(5, 4, dtype=torch.float64)  # L shorter than the kernel
    np.testing.assert_allclose(
        srm_response(short, torch.from_numpy(EPS)).t().numpy(), conv_loop(short.t().numpy(), EPS), atol=1e-13
    )


def test_spike_trajectory_and_refractory_response_by_hand():
    # u = 12 from k = 1 on: spike at 1; then (lags 1–5) 12 − 20 = −8, 12 − 14.715, 12 − 8.12 = 3.88,
    # 12 − 3.98 = 8.02, 12 − 1.83 = 10.17 ≥ 10: the second spike at k = 6
    u = torch.tensor([0.0, 12, 12, 12, 12, 12, 12], dtype=torch.float64).view(7, 1)
    s = SRMSpikeFunction.apply(u, torch.from_numpy(NU), 10.0, 1.0, 1.0)
    assert s.view(-1).tolist() == [0, 1, 0, 0, 0, 0, 1]
    exactly = torch.tensor([[10.0]], dtype=torch.float64)  # u = θ fires (getSpikesKernel: d_u ≥ theta)
    assert SRMSpikeFunction.apply(exactly, torch.from_numpy(NU), 10.0, 1.0, 1.0).item() == 1.0


def test_spikes_and_surrogate_equal_slayers_kernel_and_backward():
    torch.manual_seed(1)
    u = (torch.randn(40, 3, 4, dtype=torch.float64) * 8 + 8).requires_grad_()
    s = SRMSpikeFunction.apply(u, torch.from_numpy(NU), 10.0, 1.0, 1.0)
    s_ref, u_after = get_spikes_loop(u.detach().permute(1, 2, 0).numpy(), NU, 10.0)
    assert s.sum() > 10 and (s != 0).sum() < s.numel() / 2  # spikes, and refractory silence after them
    np.testing.assert_array_equal(s.detach().permute(1, 2, 0).numpy(), s_ref)
    grad = torch.randn_like(s)
    s.backward(grad)
    # the surrogate at the membrane *after* the refractory additions (SLAYER saves the modified tensor)
    expected = grad.permute(1, 2, 0).numpy() * rho(u_after)
    np.testing.assert_allclose(u.grad.permute(1, 2, 0).numpy(), expected, rtol=1e-13, atol=0)
    pre = grad.permute(1, 2, 0).numpy() * rho(u.detach().permute(1, 2, 0).numpy())
    assert np.abs(expected - pre).max() > 1e-3  # the distinction is visible here


def test_surrogate_against_autograd_of_the_laplace_density_it_stands_for():
    # with no spike (no refractory change), ∂s/∂u is d/du of scale_rho × twice the Laplace CDF about θ with
    # scale τ_rho θ
    u = torch.linspace(-5.0, 9.9, 31, dtype=torch.float64).view(31, 1).requires_grad_()
    SRMSpikeFunction.apply(u, torch.from_numpy(NU), 10.0, 2.0, 3.0).sum().backward()
    v = u.detach().clone().requires_grad_()
    width = 2.0 * 10.0
    cdf = 3.0 * torch.where(v < 10.0, torch.exp((v - 10.0) / width), 2 - torch.exp(-(v - 10) / width))
    (grad,) = torch.autograd.grad(cdf.sum(), v)
    np.testing.assert_allclose(u.grad.numpy(), grad.numpy(), rtol=1e-12)


# ---- the network


def set_weights(net, weights):
    linears = [m.module for m in net.modules() if isinstance(m, torch.nn.Module) and hasattr(m, "module")]
    with torch.no_grad():
        for linear, w in zip(linears, weights, strict=True):
            linear.weight.copy_(w)
    return [linear.weight for linear in linears]


def official_weights(N: int, T: int, hidden: int, classes: int, gain: float) -> list[torch.Tensor]:
    """SLAYER's U(±10/√fan_in) × ``gain`` (so that both branches of a small test network spike)."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(hidden, N), (classes, hidden), (hidden, T), (classes, hidden)]
    return [
        (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1)
        * 10
        / math.sqrt(shape[1])
        * gain
        for shape in shapes
    ]


@pytest.mark.parametrize(("T", "gain"), [(6, 6.0), (20, 2.5)])
def test_hybrid_outputs_and_gradients_equal_the_official_location_slayer(T, gain):
    B, N, hidden, classes = 3, 12, 5, 3
    m = method(shape=(1, 3, 4), classes=classes)
    net = m.build(T).double()
    weights = official_weights(N, T, hidden, classes, gain)
    ours_w = set_weights(net, weights)
    generator = torch.Generator().manual_seed(2)
    x = (torch.rand(T, B, 1, 3, 4, generator=generator, dtype=torch.float64) < 0.6).double()
    y = torch.tensor([0, 2, 1])
    out = net(x)  # [T + N, B, C]
    loss = m.loss(net, out, y)
    loss.backward()

    ref_w = [w.clone().requires_grad_() for w in weights]
    x_nct = x.flatten(2).permute(1, 2, 0)  # NeuTouch's [B, 156, 1, 1, T] with H = W = 1: [B, N, T]
    ref_out = ref_location_slayer(ref_w, x_nct)  # [B, C, T + N]
    n_true, n_false = 150 * (T + N) / 481, 5 * (T + N) / 481
    ref_loss = ref_num_spikes(ref_out, torch.nn.functional.one_hot(y, classes), n_true, n_false)
    ref_loss.backward()

    assert 0 < ref_out[..., :T].sum() and 0 < ref_out[..., T:].sum()  # both branches spike
    np.testing.assert_array_equal(out.detach().permute(1, 2, 0).numpy(), ref_out.detach().numpy())
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-12)
    for ours, ref in zip(ours_w, ref_w, strict=True):
        assert ref.grad.abs().max() > 0
        np.testing.assert_allclose(ours.grad.numpy(), ref.grad.numpy(), rtol=1e-10, atol=1e-12)


@torch.no_grad()
def test_location_branch_runs_along_the_taxels_with_time_steps_as_inputs():
    T, B, N = 7, 2, 12
    m = method(branches="location")
    torch.manual_seed(0)
    net = m.build(T).double()
    for p in net.parameters():
        p.mul_(4.0)  # spikes along the taxels
    assert net.time is None and net.location[0].module.in_features == T  # dense T → hidden
    x = (torch.rand(T, B, 1, 3, 4, dtype=torch.float64) < 0.5).double()
    out = net(x)
    assert out.shape == (N, B, 3) and 0 < out.sum() < out.numel() / 2
    # the swap: the location MLP applied to [N, B, T] (taxels first, time steps as features)
    np.testing.assert_array_equal(out.numpy(), net.location(x.flatten(2).permute(2, 1, 0)).numpy())
    # permuting the time steps and the input columns of the first location layer together changes nothing
    perm = torch.randperm(T)
    with torch.no_grad():
        net.location[0].module.weight.copy_(net.location[0].module.weight[:, perm])
    np.testing.assert_array_equal(net(x[perm]).numpy(), out.numpy())


@torch.no_grad()
def test_time_branch_runs_along_time_with_taxels_as_inputs():
    T, B = 9, 2
    m = method(branches="time")
    net = m.build(T).double()
    assert net.location is None and net.time[0].module.in_features == 12
    x = (torch.rand(T, B, 1, 3, 4, dtype=torch.float64) < 0.5).double()
    out = net(x)
    assert out.shape == (T, B, 3)
    np.testing.assert_array_equal(out.numpy(), net.time(x.flatten(2)).numpy())


@torch.no_grad()
def test_hybrid_concatenates_time_then_location_and_predicts_by_total_count():
    T, B = 12, 4
    m = method()
    torch.manual_seed(0)
    net = m.build(T).double()
    for p in net.parameters():
        p.mul_(5.0)  # make both branches spike
    x = (torch.rand(T, B, 1, 3, 4, dtype=torch.float64) < 0.7).double()
    out = net(x)
    time_part, location_part = net.time(x.flatten(2)), net.location(x.flatten(2).permute(2, 1, 0))
    assert out.shape == (T + 12, B, 3) and time_part.sum() > 0 and location_part.sum() > 0
    np.testing.assert_array_equal(out[:T].numpy(), time_part.numpy())
    np.testing.assert_array_equal(out[T:].numpy(), location_part.numpy())
    ctx = context(T)
    ctx.encode_fn = lambda raw, steps, generator: x  # the encoded batch above
    scores = m.predict(net, torch.zeros(B, 1, 3, 4), ctx)
    np.testing.assert_array_equal(scores.numpy(), (time_part.sum(0) + location_part.sum(0)).numpy())


def test_taxel_orders_are_the_official_neutouch_permutations():
    assert sorted(WHORL) == list(range(1, 40)) and sorted(ARCH) == list(range(1, 40))
    for name, taxels in (("whorl", WHORL), ("arch", ARCH)):
        order = taxel_order(name, 156).tolist()
        official = [2 * t - 2 for t in taxels]  # snn.py: perm.append(2·t − 2), perm.append(2·t − 1) ...
        left = [c for t in taxels for c in (2 * t - 2, 2 * t - 1)]
        assert order == left + [c + 78 for c in left] and order[0:4:2] == official[:2]
    assert taxel_order("whorl", 156)[:4].tolist() == [40, 41, 28, 29]  # taxels 21, 15
    random_order = taxel_order("random", 156, torch.Generator().manual_seed(0))
    assert sorted(random_order.tolist()) == list(range(156))
    pairs = random_order.view(-1, 2)
    assert (pairs[:, 1] == pairs[:, 0] + 1).all() and (pairs[:, 0] % 2 == 0).all()  # polarities kept together
    assert (random_order[78:] == random_order[:78] + 78).all()  # the same order on both fingers
    with pytest.raises(Exception, match="156"):
        taxel_order("whorl", 64)
    assert sorted(taxel_order("random", 64).tolist()) == list(range(64))


@torch.no_grad()
def test_ordering_permutes_the_location_axis_only():
    T, B = 5, 2
    natural, shuffled = method(shape=(156,), hidden="4"), method(shape=(156,), hidden="4", ordering="whorl")
    torch.manual_seed(0)
    a = natural.build(T).double()
    torch.manual_seed(0)
    b = shuffled.build(T).double()
    for p in [*a.parameters(), *b.parameters()]:
        p.mul_(4.0)  # spikes in both branches
    x = (torch.rand(T, B, 156, dtype=torch.float64) < 0.5).double()
    out_a, out_b = a(x), b(x)
    assert out_b[:T].sum() > 0 and out_b[T:].sum() > 0 and not torch.equal(out_a[T:], out_b[T:])
    np.testing.assert_array_equal(out_a[:T].numpy(), out_b[:T].numpy())  # the time branch is unchanged
    order = taxel_order("whorl", 156)
    np.testing.assert_array_equal(out_b[T:].numpy(), a.location(x.permute(2, 1, 0)[order]).numpy())


# ---- the loss


def test_num_spikes_loss_equals_slayers_and_its_gradient_is_the_count_error_through_the_kernel():
    torch.manual_seed(3)
    L, B, C = 30, 2, 3
    spikes = (torch.rand(L, B, C, dtype=torch.float64) < 0.3).double().requires_grad_()
    y = torch.tensor([1, 2])
    kernel = torch.from_numpy(EPS)
    loss = num_spikes_loss(spikes, y, kernel, 12.0, 2.0)
    ref_in = spikes.detach().permute(1, 2, 0).clone().requires_grad_()
    ref = ref_num_spikes(ref_in, torch.nn.functional.one_hot(y, C), 12.0, 2.0)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-13)
    # value: ½ Σ_{b,c} L e² with e = (count − n)/L (the ε-term is zero in value)
    counts = spikes.detach().sum(0)
    desired = torch.where(torch.nn.functional.one_hot(y, C) == 1, 12.0, 2.0)
    assert loss.item() == pytest.approx(0.5 * (L * ((counts - desired) / L) ** 2).sum().item(), rel=1e-13)
    loss.backward()
    ref.backward()
    np.testing.assert_allclose(spikes.grad.permute(1, 2, 0).numpy(), ref_in.grad.numpy(), rtol=1e-12)
    # ∂E/∂s(k) = e Σ_{j ≥ 0, k + j < L} ε(j): the count error spread back through the (cut) kernel
    e = ((counts - desired) / L).numpy()
    tail = np.array([EPS[: L - k].sum() for k in range(L)])
    np.testing.assert_allclose(spikes.grad.numpy(), tail[:, None, None] * e[None], rtol=1e-12)


def test_targets_are_the_official_counts_scaled_to_the_output_length():
    assert method().targets(481) == (150.0, 5.0)  # the official hybrid region: 325 + 156
    assert method(branches="location").targets(156) == (150.0, 5.0)  # container_weight_location_only.yml
    n_true, n_false = method().targets(96)
    assert n_true == pytest.approx(150 * 96 / 481) and n_false == pytest.approx(5 * 96 / 481)
    assert method(target_true=40.0, target_false=1.0).targets(96) == (40.0, 1.0)


# ---- build and recipe


def test_build_matches_the_official_layout_and_initialisation():
    torch.manual_seed(0)
    m = LocSNNMethod(LocSNNConfig(), resolve_architecture("32"), DatasetInfo("neutouch", (156,), 20))
    net = m.build(325)
    linears = [mod.module for mod in net.modules() if hasattr(mod, "module")]
    # fc1 156→32, fc2 32→20, locationFc1 tSample(325)→32, locationFc2 32→20; no bias
    assert [tuple(lin.weight.shape) for lin in linears] == [(32, 156), (20, 32), (32, 325), (20, 32)]
    assert all(lin.bias is None for lin in linears)
    for lin in linears:  # 10 × PyTorch's default U(±1/√fan_in)
        bound = 10.0 / math.sqrt(lin.in_features)
        assert lin.weight.abs().max() <= bound and lin.weight.abs().max() > 0.9 * bound
    neurons = [mod for mod in net.modules() if isinstance(mod, SRMNeuron)]
    assert len(neurons) == 4 and all(n.kernel.numel() == 77 and n.refractory.numel() == 11 for n in neurons)
    assert sum(p.numel() for p in net.parameters()) == 156 * 32 + 32 * 20 + 325 * 32 + 32 * 20
    # the same draw as SLAYER's Conv3d(in, out, (1, 1, 1)) weights after the same seed
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(156, 32, (1, 1, 1), bias=False)
    np.testing.assert_allclose(
        linears[0].weight.detach().numpy(), 10 * conv.weight.detach().view(32, 156).numpy()
    )


def test_taxel_pool_averages_the_image_before_the_rate_code():
    m = method(shape=(1, 4, 4), taxel_pool=2)
    net = m.build(3)
    assert net.time[0].module.in_features == 4 and net.order.numel() == 4
    seen = []
    ctx = context(3)
    ctx.encode_fn = lambda raw, steps, generator: (
        seen.append(raw) or raw.unsqueeze(0).expand(steps, *raw.shape)
    )
    x = torch.arange(16.0).view(1, 1, 4, 4) / 16
    m.predict(net, x, ctx)
    np.testing.assert_allclose(seen[0].view(-1).numpy(), np.array([2.5, 4.5, 10.5, 12.5]) / 16)


def test_optimiser_is_rmsprop_with_the_official_weight_decay():
    m = method()
    net = m.build(4)
    state = m.configure(net, context(4))
    opt = state.optimizer
    assert type(opt) is torch.optim.RMSprop and state.scheduler is None
    group = opt.param_groups[0]
    assert group["lr"] == 0.001 and group["weight_decay"] == 0.5
    assert (
        group["alpha"] == 0.99 and group["eps"] == 1e-8 and group["momentum"] == 0 and not group["centered"]
    )
    assert len(group["params"]) == 4


def test_one_epoch_is_the_official_update_on_the_summed_loss():
    T = 5
    m = method(shape=(1, 3, 4))
    torch.manual_seed(0)
    net = m.build(T)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(2.0)
    twin = m.build(T)
    twin.load_state_dict(net.state_dict())
    x, y = torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 1])
    m.train_epoch(net, m.configure(net, context(T)), [(x, y)], context(T, seed=5))
    # by hand: the same encoded batch, loss, RMSprop(lr 1e-3, weight decay 0.5) step
    encoded = rate(x, T, torch.Generator().manual_seed(5))
    opt = torch.optim.RMSprop(twin.parameters(), lr=1e-3, weight_decay=0.5)
    out = twin(encoded)
    assert out.sum() > 0
    m.loss(twin, out, y).backward()
    opt.step()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=0, atol=0)


EPOCHS = 5


def test_learns_digits_above_chance():
    from snnbench.data import datasets

    digits = datasets.get("digits")()
    data = digits.load(digits.Options(), None, 32)
    train, held_out = data.train.carve_validation(0.2, 0)[:2]  # the training split only
    torch.manual_seed(0)
    m = LocSNNMethod(LocSNNConfig(), resolve_architecture("32"), data.info)
    T = 32
    net = m.build(T)
    ctx = context(T)
    state = m.configure(net, ctx)
    for _ in range(EPOCHS):
        m.train_epoch(net, state, train.batches(64, shuffle=True, generator=ctx.generator), ctx)
    with torch.no_grad():
        scores = m.predict(net, held_out.x, ctx)
    # 35.5 % here after 5 epochs (chance 10 %; the full run reaches ≈ 89 % validation by epoch 33)
    assert (scores.argmax(1) == held_out.y).double().mean() > 0.25
