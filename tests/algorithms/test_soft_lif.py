"""Soft-LIF: the rate curves against the closed-form LIF rate, the official gradient and training noise,
the LIF step against an event-driven float64 simulation, rates at long T against r(j), and the converted
network's output at long T against the ANN (an independent float64 network simulation), and learning
on digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnbench.algorithms.soft_lif import (
    SoftLIF,
    SoftLIFConfig,
    SoftLIFNet,
    SoftLIFNeuron,
    convert,
    lif_rate,
    lif_steps,
    soft_lif_rate,
)
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo
from snnbench.errors import SnnbenchError

TAU_REF, TAU_RC, DT = 0.002, 0.022, 0.001


def np_lif_rate(J: np.ndarray, tau_ref: float, tau_rc: float) -> np.ndarray:
    """The closed form in the input current J (threshold 1): 1/(τ_ref + τ_RC log(1 + 1/(J − 1))), J > 1."""
    out = np.zeros_like(J)
    above = J > 1
    out[above] = 1.0 / (tau_ref + tau_rc * np.log(1.0 + 1.0 / (J[above] - 1.0)))
    return out


def test_lif_rate_is_the_closed_form():
    J = np.concatenate([np.linspace(-1.0, 1.0, 11), 1.0 + np.logspace(-6, 2, 200)])
    ours = lif_rate(torch.from_numpy(J - 1.0), TAU_REF, TAU_RC).numpy()
    np.testing.assert_allclose(ours, np_lif_rate(J, TAU_REF, TAU_RC), rtol=1e-12)
    assert np.all(ours[J <= 1] == 0) and ours[-1] < 1.0 / TAU_REF  # saturates below 1/τ_ref


def test_soft_lif_is_lif_of_the_smoothed_current_and_tends_to_lif_as_gamma_vanishes():
    y = np.linspace(-0.5, 3.0, 351)
    for gamma in (0.02, 0.1):  # r(ρ(y)), ρ(y) = γ log(1 + e^{y/γ}), written out in NumPy
        rho = gamma * np.log1p(np.exp(y / gamma))  # j = ρ > 0: r = 1/(τ_ref + τ_RC log(1 + 1/j))
        expected = 1.0 / (TAU_REF + TAU_RC * np.log(1.0 + 1.0 / rho))
        ours = soft_lif_rate(torch.from_numpy(y), TAU_REF, TAU_RC, gamma).numpy()
        np.testing.assert_allclose(ours, expected, rtol=1e-10)
    hard = np_lif_rate(y + 1.0, TAU_REF, TAU_RC)
    gaps = [
        np.abs(soft_lif_rate(torch.from_numpy(y), TAU_REF, TAU_RC, g).numpy() - hard).max()
        for g in (0.1, 0.01, 1e-3, 1e-4)
    ]
    assert all(a > b for a, b in zip(gaps, gaps[1:], strict=False)), gaps  # → LIF as γ → 0
    away = np.abs(y) > 0.05  # away from the threshold, γ = 1e−4 is the LIF curve itself
    soft = soft_lif_rate(torch.from_numpy(y), TAU_REF, TAU_RC, 1e-4).numpy()
    np.testing.assert_allclose(soft[away], hard[away], rtol=1e-6, atol=1e-6)
    assert soft[y == 0.0] > 0 and hard[y == 0.0] == 0  # the smoothing: non-zero rate at the threshold


def neuron(**changes) -> SoftLIFNeuron:
    cfg = SoftLIFConfig(
        **{"tau_ref": TAU_REF, "tau_rc": TAU_RC, "gain": 0.825, "amplitude": 0.063, **changes}
    )
    return SoftLIFNeuron(cfg).double()


def test_ann_unit_applies_gain_and_amplitude():
    """Official softlif[m,t,r,a,g,n]: m/(t + r log1p(1/j)), j = g softplus(a x/g)."""
    x = torch.linspace(-1.0, 4.0, 101, dtype=torch.float64)
    unit = neuron(gamma=0.02).eval()
    j = 0.02 * np.log1p(np.exp(0.825 * x.numpy() / 0.02))
    expected = 0.063 / (TAU_REF + TAU_RC * np.log1p(1.0 / j))
    np.testing.assert_allclose(unit(x).detach().numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("training", [False, True])
def test_gradient_is_the_official_soft_lif_gradient_operator(training):
    """cuda-convnet2 SoftLifGradientOperator: ∂a/∂x = m α τ_RC r²/(j (j + 1)(1 + e^{−αx/γ})), r in Hz —
    also in training mode, where the noise is added but not differentiated (and its rectification not
    either)."""
    m, alpha, gamma = 0.063, 0.825, 0.02
    unit = neuron(gamma=gamma, noise=10.0).train(training)
    x_np = np.linspace(-0.3, 2.0, 47)
    x = torch.tensor(x_np, requires_grad=True)
    upstream = np.random.default_rng(0).normal(size=x_np.shape)
    torch.manual_seed(0)
    (unit(x) * torch.from_numpy(upstream)).sum().backward()
    y = alpha * x_np / gamma
    j = gamma * np.log1p(np.exp(y))
    r = 1.0 / (TAU_REF + TAU_RC * np.log1p(1.0 / j))
    expected = m * alpha * TAU_RC * r**2 / (j * (j + 1.0) * (1.0 + np.exp(-y)))
    np.testing.assert_allclose(x.grad.numpy(), upstream * expected, rtol=1e-9)


def test_training_noise_is_gaussian_times_amplitude_above_threshold_only():
    """a = max(m r + m σ ξ [x > 0], 0): std m σ where the rate is high, none below the threshold."""
    unit = neuron(noise=10.0, gamma=0.02).train()
    torch.manual_seed(1)
    high = torch.full((20000,), 3.0, dtype=torch.float64)
    low = torch.full((1000,), -0.5, dtype=torch.float64)
    clean_high, clean_low = unit.eval()(high[:1]), unit(low[:1])
    unit.train()
    noisy_high, noisy_low = unit(high).detach(), unit(low).detach()
    assert abs(float((noisy_high - clean_high).std()) - 0.063 * 10.0) < 0.02
    assert abs(float((noisy_high - clean_high).mean())) < 0.02
    torch.testing.assert_close(noisy_low, clean_low.expand(1000))
    assert float(unit(torch.full((5000,), 0.01, dtype=torch.float64)).min()) == 0.0  # rectified


def event_driven_lif(J: np.ndarray, tau_ref: float, tau_rc: float, dt: float) -> np.ndarray:
    """Exact continuous-time LIF for a current held constant over each step ``J[t]`` (float64, one neuron):
    v' = (J − v)/τ_RC from v = 0; at v = 1 a spike, v held at 0 for τ_ref; a spike counts in the step in
    which it happens. Assumes τ_ref ≥ dt (at most one spike a step)."""
    spikes = np.zeros(len(J))
    v, free_at, now = 0.0, 0.0, 0.0  # free_at: when the refractory period ends
    for t, current in enumerate(J):
        end = now + dt
        start = max(now, free_at)
        if start < end:
            if current > 1.0 and v < 1.0:
                crossing = start + tau_rc * np.log((current - v) / (current - 1.0))
            else:
                crossing = np.inf
            if crossing <= end:
                spikes[t] = 1.0
                v, free_at = 0.0, crossing + tau_ref
            else:
                v = max(current + (v - current) * np.exp(-(end - start) / tau_rc), 0.0)
        now = end
    return spikes


def test_lif_step_matches_an_event_driven_float64_simulation():
    """Piecewise-constant currents, refractory period 2 steps: spike for spike (dropping the refractory
    period, resetting to J or detecting spikes at the step start all change the trains)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 6.0, size=(400, 1, 9)).repeat(5, axis=0)  # held for 5 steps each
    ours = lif_steps(torch.from_numpy(x), TAU_REF, TAU_RC, DT).numpy()[:, 0]
    for k in range(9):
        np.testing.assert_array_equal(ours[:, k], event_driven_lif(x[:, 0, k] + 1.0, TAU_REF, TAU_RC, DT))
    assert ours.sum() > 500


def test_constant_current_fires_at_the_closed_form_rate_at_long_T():
    """r(J − 1) within one spike over T·dt; without the refractory period the rate is far off."""
    j = np.array([0.05, 0.3, 1.0, 3.0, 20.0])
    T = 5000
    x = torch.from_numpy(j).expand(T, -1)
    counts = lif_steps(x, TAU_REF, TAU_RC, DT).sum(0).numpy()
    expected = np_lif_rate(j + 1.0, TAU_REF, TAU_RC) * T * DT
    np.testing.assert_allclose(counts, expected, atol=1.0)
    no_refractory = lif_steps(x, 0.0, TAU_RC, DT).sum(0).numpy()
    assert np.abs(no_refractory - expected).max() > 100


def make_net(notation: str, inputs: int, classes: int = 3, **config) -> tuple[SoftLIF, SoftLIFNet]:
    torch.manual_seed(0)
    cfg = SoftLIFConfig(**{"tau_ref": TAU_REF, "tau_rc": TAU_RC, "init_std": 0.5, **config})
    algorithm = SoftLIF(cfg, resolve_architecture(notation), DatasetInfo("x", (inputs,), classes))
    net = algorithm.build(4)
    assert isinstance(net, SoftLIFNet)
    return algorithm, net.double()


def reference_network(
    weights: list[np.ndarray], biases: list[np.ndarray], x: np.ndarray, T: int, cfg: SoftLIFConfig
) -> np.ndarray:
    """The paper's spiking network in float64, from the *unconverted* ANN parameters: every hidden layer
    a LIF population (event-driven, J = α filtered(W a + b) + 1) whose spikes are impulses of area m (m/dt for
    one step); the output layer linear; the output averaged over T steps. One sample ``x``."""
    signal = np.repeat(x[None], T, axis=0)  # the analog input at every step
    decay = np.exp(-cfg.dt / cfg.tau_s)
    for W, b in zip(weights[:-1], biases[:-1], strict=True):
        filtered = signal @ W.T + b
        for _ in range({"none": 0, "lowpass": 1, "alpha": 2}[cfg.synapse]):
            current, y = filtered, np.zeros(filtered.shape[1])
            filtered = np.zeros_like(current)
            for t in range(T):  # lowpass τ_s: y_t = a y_{t−1} + (1 − a) x_t (alpha: twice)
                y = decay * y + (1.0 - decay) * current[t]
                filtered[t] = y
        J = cfg.gain * filtered + 1.0
        spikes = np.stack(
            [event_driven_lif(J[:, k], cfg.tau_ref, cfg.tau_rc, cfg.dt) for k in range(J.shape[1])], 1
        )
        signal = spikes * cfg.amplitude / cfg.dt
    return (signal @ weights[-1].T + biases[-1]).mean(0)


def hidden_and_output_layers(net: SoftLIFNet) -> list[torch.nn.Linear]:
    body = [m.module for m in net.body if isinstance(getattr(m, "module", None), torch.nn.Linear)]
    return [*body, net.head.module]


@pytest.mark.parametrize("synapse", ["none", "lowpass", "alpha"])
def test_converted_network_spikes_like_an_independent_float64_simulation(synapse):
    """Two hidden LIF layers, the second driven by spikes: our converted SNN's output equals the float64
    network simulated from the unconverted ANN's parameters (event-driven LIF, spikes of area m)."""
    algorithm, net = make_net("10-8", 6, gamma=0.02, gain=0.825, synapse=synapse, tau_s=0.004)
    x = torch.rand(3, 6, dtype=torch.float64) * 2.0
    layers = hidden_and_output_layers(net)
    weights = [layer.weight.detach().numpy().copy() for layer in layers]
    biases = [layer.bias.detach().numpy().copy() for layer in layers]
    net.eval()
    T = 300
    with torch.no_grad():
        ann = net.ann(x)
        convert(net)
        torch.testing.assert_close(net.ann(x), ann)  # conversion leaves the ANN function unchanged
        snn = net.snn(x.expand(T, -1, -1))
    reference = np.stack([reference_network(weights, biases, xi, T, algorithm.config) for xi in x.numpy()])
    np.testing.assert_allclose(snn.numpy(), reference, rtol=1e-9, atol=1e-9)


def test_converted_network_reproduces_the_ann_at_long_T():
    """At long T the spiking network's mean output approaches the ANN's (γ small: the ANN is then the LIF
    rate network; a 5 ms synapse smooths the spike input of the second layer). Dropping the m/dt scaling
    of the converted weights or the refractory period breaks the agreement."""
    algorithm, net = make_net(
        "10-8", 6, gamma=1e-3, gain=0.825, synapse="lowpass", tau_s=0.005, init_std=[0.5, 0.05, 0.1]
    )
    cfg = algorithm.config
    x = torch.rand(4, 6, dtype=torch.float64) * 2.0
    layers = hidden_and_output_layers(net)
    weights = [layer.weight.detach().numpy().copy() for layer in layers]
    biases = [layer.bias.detach().numpy().copy() for layer in layers]
    net.eval()
    T = 8000
    with torch.no_grad():
        ann = net.ann(x)
        hidden = [net.body[:2](x.unsqueeze(0))[0], net.body[:4](x.unsqueeze(0))[0]]
        for h in hidden:  # both hidden layers active: m r well above 0 for many units
            assert float((h > 1.0).double().mean()) > 0.3, h
        convert(net)
        snn = net.snn(x.expand(T, -1, -1)).numpy()
    spread = float(ann.max() - ann.min())
    error = np.abs(snn - ann.numpy()).max()
    tolerance = 0.04 * spread
    assert error < tolerance, (snn, ann)

    with torch.no_grad():  # no amplitude scaling: the converted weights stay the ANN's
        for layer, w in zip(layers[1:], weights[1:], strict=True):
            layer.weight.copy_(torch.from_numpy(w))
        assert np.abs(net.snn(x.expand(T, -1, -1)).numpy() - ann.numpy()).max() > 2 * tolerance
    no_refractory = SoftLIFConfig(**{**cfg.model_dump(), "tau_ref": 0.0})
    off = np.stack([reference_network(weights, biases, xi, 4000, no_refractory) for xi in x.numpy()])
    assert np.abs(off - ann.numpy()).max() > 2 * tolerance


def test_max_pooling_is_refused():
    with pytest.raises(SnnbenchError, match="average pooling"):
        SoftLIF(SoftLIFConfig(), resolve_architecture("4C3-MP2-6"), DatasetInfo("x", (1, 6, 6), 3)).build(4)


def test_initialisation_and_per_layer_optimiser_groups():
    """Official initW: N(0, s²) per layer, biases 0; epsB = 2 epsW; wc per layer, none on biases."""
    from snnbench.algorithms import RunContext
    from snnbench.data.encoding import direct

    _, net = make_net("40-30", 20, classes=10, init_std=[0.1, 0.05, 0.01])
    stds = [float(m.module.weight.detach().std()) for m in net.body if hasattr(m, "module")]
    assert abs(stds[0] - 0.1) < 0.02 and abs(stds[1] - 0.05) < 0.01
    assert abs(float(net.head.module.weight.detach().std()) - 0.01) < 0.003
    net_info = DatasetInfo("x", (20,), 10)
    algorithm = SoftLIF(SoftLIFConfig(lr=0.002), resolve_architecture("40-30"), net_info)
    ctx = RunContext(4, torch.device("cpu"), 10, 8, 8, "direct", torch.Generator(), direct)
    state = algorithm.configure(net, ctx)
    groups = [(g["lr"], g["weight_decay"], tuple(g["params"][0].shape)) for g in state.optimizer.param_groups]
    assert groups == [
        (0.002, 0.004, (40, 20)),
        (0.004, 0.0, (40,)),
        (0.002, 0.004, (30, 40)),
        (0.004, 0.0, (30,)),
        (0.002, 0.001, (10, 30)),
        (0.004, 0.0, (10,)),
    ]
    for _ in range(9):
        state.optimizer.step()  # no gradients: a no-op that keeps the scheduler's order check quiet
        state.scheduler.step()
    assert state.optimizer.param_groups[0]["lr"] == pytest.approx(0.002 / 100)  # last epoch: lr/100
    stepped = SoftLIF(SoftLIFConfig(lr=0.001, lr_steps=[3, 5]), resolve_architecture("40-30"), net_info)
    state = stepped.configure(net, ctx)
    lrs = []
    for _ in range(6):
        lrs.append(state.optimizer.param_groups[0]["lr"])
        state.optimizer.step()
        state.scheduler.step()
    assert lrs == pytest.approx([0.001, 0.001, 0.001, 0.0001, 0.0001, 0.00001])
    with pytest.raises(SnnbenchError, match="init_std"):
        make_net("40-30", 20, init_std=[0.1, 0.1])


def test_learns_digits_and_reports_the_ann(write_suite, tmp_path):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [64],
            "budgets": {"smoke": {"epochs": 8, "batch_size": 32, "train_subset": 500, "test_subset": 200}},
            "algorithms": {"soft-lif": {"arch": "mlp", "lr": 0.02}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok", record.error
    assert record.metrics["ann_top1"] > 70.0 and record.metrics["top1"] > 60.0, record.metrics
    assert 0 < record.metrics["spike_rate"] < 1
    assert record.metrics["acs_per_sample"] > 0  # binary spikes into the output layer


def test_default_network_trains_with_the_official_noise_sigma_10():
    """The official MNIST softlif n = 10 (Hz, times m = 0.063): the neurons ``build()`` makes from the
    default config add N(0, (m σ)²) above threshold in training, std 0.63 (σ = 1 would give 0.063)."""
    algorithm = SoftLIF(SoftLIFConfig(), resolve_architecture("40-30"), DatasetInfo("x", (20,), 10))
    net = algorithm.build(4).double()
    neurons = net.neurons()
    assert len(neurons) == 2
    high = torch.full((20000,), 3.0, dtype=torch.float64)
    for unit in neurons:
        clean = unit.eval()(high[:1])
        torch.manual_seed(2)
        noisy = unit.train()(high).detach()
        assert abs(float((noisy - clean).std()) - 0.063 * 10.0) < 0.02
