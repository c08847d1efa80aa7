"""IDE: the implicit gradient equals finite differences of the loss at the exact equilibrium (float64), the
simulated rates reach the fixed point of the rate map, a backward without the feedback term of the Jacobian
(or with it untransposed) is caught, the graph does not grow with T, and digits are learnt.

The references here are written from the paper's equations, independently of snnbench.algorithms.ide:
  f(a) = clamp((W a + BN(F x̄)) / ϑ, 0, 1),  W = clamp(g, −1, 1) V / (uᵀ V v)  (official spectral norm)
  IF/LIF: u ← λ(u − ϑ s) after each step, u += W s[t−1] + I[t], s = [u ≥ ϑ]; a = Σ λ^{T−1−t} s[t] / Σ λ^k.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snnbench.algorithms.ide import IDE, FeedbackSNN, IDEConfig, Masks, broyden_solve
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo


def tiny(
    n_in: int = 5, hidden: int = 7, classes: int = 3, seed: int = 0, **config: object
) -> tuple[FeedbackSNN, IDEConfig]:
    torch.manual_seed(seed)
    cfg = IDEConfig(dropout=0.0, **config)  # type: ignore[arg-type]
    net = IDE(cfg, resolve_architecture(str(hidden)), DatasetInfo("x", (n_in,), classes)).build(4)
    assert isinstance(net, FeedbackSNN)
    return net.double(), cfg


def feedback_weight(net: FeedbackSNN) -> torch.Tensor:
    """W = clamp(g, −1, 1) V / (uᵀ V v), from the parameters (independent of the module's code)."""
    fb = net.feedback
    v_mat = fb.weight_v
    sigma = fb.u @ v_mat @ fb.v
    return fb.weight_g.clamp(-1.0, 1.0) * v_mat / sigma


def input_current(net: FeedbackSNN, x: torch.Tensor) -> torch.Tensor:
    """BN(F x) with batch statistics (training mode), written out."""
    z = x @ net.input_synapse.weight.t() + net.input_synapse.bias
    mu, var = z.mean(0), z.var(0, unbiased=False)
    return (z - mu) / torch.sqrt(var + net.bn.eps) * net.bn.weight + net.bn.bias


def fixed_point(w: torch.Tensor, current: torch.Tensor, threshold: float, iters: int = 400) -> torch.Tensor:
    a = torch.zeros_like(current)
    for _ in range(iters):
        a = torch.clamp((a @ w.t() + current) / threshold, 0.0, 1.0)
    return a


def reference_loss(net: FeedbackSNN, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L(θ) = CE(C a*(θ) + b, y) with a* the exact equilibrium (no gradient path through the solve)."""
    w, current = feedback_weight(net), input_current(net, x)
    with torch.no_grad():
        a = fixed_point(w, current, net.threshold)
    return F.cross_entropy(net.classifier(a), y)


def simulate_reference(
    w: torch.Tensor, current: torch.Tensor, threshold: float, T: int, leak: float = 1.0
) -> torch.Tensor:
    u = torch.zeros_like(current)
    s = torch.zeros_like(current)
    total = torch.zeros_like(current)
    for t in range(T):
        u = u + (s @ w.t() if t else 0.0) + current
        s = (u >= threshold).double()
        u = leak * (u - threshold * s)
        total = leak * total + s
    return total / sum(leak**k for k in range(T))


def exact_equilibrium(net: FeedbackSNN, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace the T-step simulation by the exact fixed point, so that the gradient is tested alone."""

    def exact(steps, masks):  # noqa: ANN001, ANN202
        with torch.no_grad():
            return fixed_point(feedback_weight(net), steps.mean(0), net.threshold)

    monkeypatch.setattr(net, "simulate", exact)


def data(n: int = 16, n_in: int = 5, classes: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(n, n_in, generator=g, dtype=torch.float64), torch.randint(
        classes, (n,), generator=g
    )


def prepared(
    monkeypatch: pytest.MonkeyPatch, **config: object
) -> tuple[FeedbackSNN, torch.Tensor, torch.Tensor]:
    net, _ = tiny(**config)
    net.train()
    for _ in range(30):  # converge u, v, then freeze them (finite differences need a fixed σ estimate)
        net.feedback.refresh()
    net.feedback.power_iterations = 0
    with torch.no_grad():  # a strong, non-symmetric feedback: the Jacobian term matters
        net.feedback.weight_g.fill_(0.95)
        net.input_synapse.weight.mul_(3.0)
    exact_equilibrium(net, monkeypatch)
    x, y = data()
    return net, x, y


def ide_gradient(net: FeedbackSNN, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    net.zero_grad()
    F.cross_entropy(net(x.unsqueeze(0).expand(3, -1, -1)), y).backward()
    return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def finite_differences(
    net: FeedbackSNN, x: torch.Tensor, y: torch.Tensor, h: float = 1e-6
) -> dict[str, torch.Tensor]:
    grads = {}
    for name, p in net.named_parameters():
        g = torch.zeros_like(p)
        flat, gflat = p.data.view(-1), g.view(-1)
        for i in range(flat.numel()):
            old = float(flat[i])
            flat[i] = old + h
            up = float(reference_loss(net, x, y))
            flat[i] = old - h
            down = float(reference_loss(net, x, y))
            flat[i] = old
            gflat[i] = (up - down) / (2 * h)
        grads[name] = g
    return grads


@pytest.mark.parametrize("solver", ["broyden", "fixed-point"])
def test_implicit_gradient_matches_finite_differences_of_the_equilibrium(monkeypatch, solver):
    net, x, y = prepared(monkeypatch, solver=solver, solver_iterations=60)
    # the equilibrium is interior enough that the clamp's kinks are not hit by ±h
    a = fixed_point(feedback_weight(net), input_current(net, x), 2.0)
    assert 0.1 < float(((a > 0) & (a < 1)).double().mean()) < 0.9
    ours = ide_gradient(net, x, y)
    reference = finite_differences(net, x, y)
    assert set(ours) == set(reference)
    for name in reference:
        torch.testing.assert_close(ours[name], reference[name], rtol=1e-4, atol=1e-7, msg=name)
    # the feedback weight and its scale get gradients that only the implicit term explains
    assert float(reference["feedback.weight_v"].abs().sum()) > 1e-3


def test_wrong_jacobians_are_caught(monkeypatch):
    """Without the feedback term (w = ∂L/∂a*, one-step gradient) or with J instead of Jᵀ, the gradient of
    the input weights departs from finite differences by far more than the test's tolerance."""
    net, x, y = prepared(monkeypatch)
    reference = finite_differences(net, x, y)["input_synapse.weight"]
    good = ide_gradient(net, x, y)["input_synapse.weight"]
    torch.testing.assert_close(good, reference, rtol=1e-4, atol=1e-7)

    monkeypatch.setattr(net, "solve_adjoint", lambda vjp, g: g)  # the feedback term omitted
    no_feedback = ide_gradient(net, x, y)["input_synapse.weight"]
    assert float((no_feedback - reference).norm()) > 0.05 * float(reference.norm())

    def untransposed(vjp, g):  # noqa: ANN001, ANN202  (w = J w + g: J from the transposed VJP's matrix)
        n = g.shape[1]
        eye = torch.eye(n, dtype=g.dtype).expand(len(g), n, n)
        jt = torch.stack([vjp(eye[:, :, i]) for i in range(n)], dim=2)  # Jᵀ per sample
        return torch.linalg.solve(torch.eye(n, dtype=g.dtype) - jt.transpose(1, 2), g)

    monkeypatch.setattr(net, "solve_adjoint", untransposed)
    wrong = ide_gradient(net, x, y)["input_synapse.weight"]
    assert float((wrong - reference).norm()) > 0.05 * float(reference.norm())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_written_out_dense_vjp_is_autograds_bit_for_bit(dtype):
    """One dense feedback layer's Jᵀ v is written out (no autograd pass per Broyden iteration): it equals
    autograd's VJP of the map bit for bit, with dropout masks and pre-clamp values on both sides of [0, 1]."""
    torch.manual_seed(0)
    cfg = IDEConfig(dropout=0.2)
    net = IDE(cfg, resolve_architecture("64"), DatasetInfo("x", (20,), 3)).build(4).to(dtype)
    net.train()
    net.feedback.refresh()
    steps, current = net._input_currents(torch.randn(4, 16, 20, dtype=dtype) * 2.0)
    masks = net._masks(16, steps)
    a = net.simulate(steps, masks)
    weight = net.feedback._weight.detach()
    pre = (masks.feedback * (a @ weight.t()) + masks.x * current.detach()) / cfg.v_threshold
    assert (pre < 0).any() and ((pre > 0) & (pre < 1)).any() and (pre > 1).any()

    written_out = net.map_vjp(a, current.detach(), masks)
    assert written_out.__name__ == "dense_vjp"  # not the autograd path compared with itself
    z = a.clone().requires_grad_(True)
    y = net.equilibrium_map(z, current.detach(), masks, weight=weight, jacobian=True)
    for seed in range(5):
        v = torch.randn(16, 64, generator=torch.Generator().manual_seed(seed), dtype=dtype)
        (reference,) = torch.autograd.grad(y, z, v, retain_graph=True)
        assert torch.equal(written_out(v), reference)


def test_broyden_solves_the_adjoint_system_like_a_dense_solve():
    torch.manual_seed(0)
    n, batch = 12, 4
    jt = 0.6 * torch.randn(batch, n, n, dtype=torch.float64) / n**0.5
    g = torch.randn(batch, n, dtype=torch.float64)
    w = broyden_solve(lambda v: torch.einsum("bij,bj->bi", jt, v) - v + g, torch.zeros_like(g), 40, 1e-12)
    exact = torch.linalg.solve(torch.eye(n, dtype=torch.float64) - jt, g)
    torch.testing.assert_close(w, exact, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize(("neuron", "leak", "tolerance"), [("if", 1.0, 0.01), ("lif", 0.99, 0.05)])
def test_simulated_rates_reach_the_fixed_point_of_the_rate_map(neuron, leak, tolerance):
    """The module's T-step simulation equals an independent float64 IF/LIF loop exactly, and for long T its
    rates reach a* = f(a*) (IF: error O(1/T); LIF: within the leak's bias ~ (1 − λ))."""
    net, _ = tiny(hidden=9, neuron=neuron, leak=0.5 if neuron == "if" else leak)
    net.train()
    net.feedback.refresh()
    with torch.no_grad():
        net.feedback.weight_g.fill_(0.9)
    w = net.feedback.refresh().detach()
    x, _ = data(n=8)
    with torch.no_grad():
        current = input_current(net, x)
        a_star = fixed_point(w, current, 2.0)
        errors = []
        for T in (50, 2000):
            steps = current.unsqueeze(0).expand(T, -1, -1)
            ours = net.simulate(steps, Masks())
            torch.testing.assert_close(ours, simulate_reference(w, current, 2.0, T, leak), rtol=0, atol=1e-12)
            errors.append(float((ours - a_star).abs().max()))
    assert errors[1] < tolerance
    if neuron == "if":
        assert errors[1] < errors[0] / 5  # converges as T grows
    assert float(((a_star > 0.05) & (a_star < 0.95)).double().mean()) > 0.2  # not a trivially saturated case


def test_forward_matches_the_reference_simulation_and_bn_statistics():
    """In training the network's forward value is the classifier on the simulated rates of BN(F x) with
    batch statistics; in evaluation the running statistics (moved once per batch) are used.

    Once per batch is ours (what the official code's comment intends), not the official behaviour: its
    save_bn_statistics keeps a reference to running_mean/running_var rather than a copy, so
    restore_bn_statistics_x restores nothing and the official statistics move twice per batch (in
    snn_forward and in equivalent_func); a deviation declared on the official cards (docs/algorithms/
    ide.md)."""
    net, _ = tiny(hidden=6)
    net.train()
    x, _ = data(n=10)
    x_seq = x.unsqueeze(0).expand(4, -1, -1)
    before = net.bn.running_mean.clone()
    out = net(x_seq)
    w = net.feedback._weight.detach()
    with torch.no_grad():
        expected = net.classifier(simulate_reference(w, input_current(net, x), 2.0, 4, 0.95))
    torch.testing.assert_close(out, expected)
    z = (x @ net.input_synapse.weight.t() + net.input_synapse.bias).detach()
    # one update per batch (ours; the official code makes two, see the docstring)
    torch.testing.assert_close(net.bn.running_mean, 0.9 * before + 0.1 * z.mean(0))


def test_graph_does_not_grow_with_T():
    """No backpropagation through time: the autograd graph of the loss is the same size for T = 3 and 60."""

    def graph_size(T: int) -> int:
        net, _ = tiny(hidden=6)
        net.train()
        x, y = data(n=4)
        loss = F.cross_entropy(net(x.unsqueeze(0).expand(T, -1, -1)), y)
        seen, stack = set(), [loss.grad_fn]
        while stack:
            fn = stack.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            stack.extend(f for f, _ in fn.next_functions)
        return len(seen)

    assert graph_size(3) == graph_size(60)


def test_conv_network_builds_with_the_official_shapes():
    """mnist_conv.py: 64C5 stride 2 pad 2 → 64 × 14 × 14, feedback 64C5 same padding; 229K parameters as in
    the README table (classifier 12,544 × 10 included)."""
    net = IDE(
        IDEConfig(), resolve_architecture("ide-mnist-conv"), DatasetInfo("mnist", (1, 28, 28), 10)
    ).build(4)
    n = sum(p.numel() for p in net.parameters())
    assert net.hidden_shape == (64, 14, 14) and 225_000 < n < 232_000
    net.train()
    x = torch.rand(3, 2, 1, 28, 28)
    out = net(x)
    out.sum().backward()
    assert out.shape == (2, 10) and net.feedback.weight_v.grad is not None


def test_learns_digits(write_suite, tmp_path):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [8],
            "budgets": {"smoke": {"epochs": 4, "batch_size": 32, "train_subset": 500, "test_subset": 200}},
            "algorithms": {"ide": {"arch": "mlp"}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok" and record.metrics["top1"] > 80.0  # chance 10 %
    assert record.metrics["acs_per_sample"] > 0 and 0 < record.metrics["spike_rate"] < 1


# ---- multi-layer feedback networks (official AlexNet-F / CIFARNet-F structure) ---------------------------


def chain(neuron: str = "if", seed: int = 0, **config: object) -> FeedbackSNN:
    """5 → 6 → 4 with feedback 4 → 6: stage 0 gets the input and the feedback, stage 1 reads stage 0."""
    torch.manual_seed(seed)
    cfg = IDEConfig(dropout=0.0, neuron=neuron, **config)  # type: ignore[arg-type]
    net = IDE(cfg, resolve_architecture("6-4"), DatasetInfo("x", (5,), 3)).build(4)
    assert isinstance(net, FeedbackSNN) and len(net.stages) == 1
    with torch.no_grad():  # running statistics unlike the batch's, so that the two BN modes differ
        net.stages[0]["bn"].running_mean.uniform_(-0.5, 0.5)
        net.stages[0]["bn"].running_var.uniform_(0.5, 2.0)
        net.stages[0]["bn"].weight.uniform_(0.5, 1.5)
        net.stages[0]["bn"].bias.uniform_(-0.2, 0.2)
    return net.double()


def chain_map(net: FeedbackSNN, a: torch.Tensor, current: torch.Tensor, running: bool) -> torch.Tensor:
    """Reference composite map: b = clamp((W a + c)/ϑ), then clamp(BN(S b)/ϑ) with running or batch BN."""
    b = torch.clamp((a @ feedback_weight(net).t() + current) / 2.0, 0.0, 1.0)
    synapse, bn = net.stages[0]["synapse"], net.stages[0]["bn"]
    z = b @ synapse.weight.t() + synapse.bias
    if running:
        mu, var = bn.running_mean, bn.running_var
    else:
        mu, var = z.mean(0), z.var(0, unbiased=False)
    return torch.clamp(((z - mu) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias) / 2.0, 0.0, 1.0)


def test_multilayer_simulation_matches_an_independent_loop_and_reaches_the_fixed_point():
    net = chain()
    net.train()
    w = net.feedback.refresh().detach()
    x, _ = data(n=8)
    synapse, bn = net.stages[0]["synapse"], net.stages[0]["bn"]
    with torch.no_grad():
        current = input_current(net, x)
        a = torch.zeros(8, 4, dtype=torch.float64)
        for _ in range(400):
            a = chain_map(net, a, current, running=True)
        for T, tolerance in ((2000, 0.02),):
            u0, u1 = torch.zeros(8, 6, dtype=torch.float64), torch.zeros(8, 4, dtype=torch.float64)
            s0, s1 = torch.zeros_like(u0), torch.zeros_like(u1)
            total = torch.zeros_like(u1)
            for t in range(T):  # stage 1 reads stage 0's spikes of the same step; feedback from t − 1
                u0 = u0 + (s1 @ w.t() if t else 0.0) + current
                s0 = (u0 >= 2.0).double()
                u0 = u0 - 2.0 * s0
                z = s0 @ synapse.weight.t() + synapse.bias
                u1 = u1 + (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
                s1 = (u1 >= 2.0).double()
                u1 = u1 - 2.0 * s1
                total = total + s1
            ours = net.simulate(current.unsqueeze(0).expand(T, -1, -1), Masks())
            torch.testing.assert_close(ours, total / T, rtol=0, atol=1e-12)
            assert float((ours - a).abs().max()) < tolerance
    assert float(((a > 0.05) & (a < 0.95)).double().mean()) > 0.2


def test_multilayer_gradient_is_the_official_implicit_gradient(monkeypatch):
    """∂L/∂θ = (∂f_batch/∂θ)ᵀ (I − J_runningᵀ)⁻¹ ∂L/∂a*: the parameter path through the map with batch BN
    statistics, the Jacobian with running ones (official set_bn_mode_s), recomputed here with dense
    per-sample Jacobians of the reference map; the feedback-free gradient is far from it."""
    net = chain()
    net.train()
    for _ in range(30):
        net.feedback.refresh()
    net.feedback.power_iterations = 0
    with torch.no_grad():
        net.feedback.weight_g.fill_(0.95)
        net.input_synapse.weight.mul_(3.0)
    x, y = data(n=12)
    current0 = input_current(net, x).detach()
    with torch.no_grad():
        a = torch.zeros(12, 4, dtype=torch.float64)
        for _ in range(400):
            a = chain_map(net, a, current0, running=True)
    monkeypatch.setattr(net, "simulate", lambda steps, masks: a.clone())
    bn_state = {k: v.clone() for k, v in net.stages[0]["bn"].state_dict().items()}

    net.zero_grad()
    F.cross_entropy(net(x.unsqueeze(0).expand(3, -1, -1)), y).backward()
    ours = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    running_after = {k: v.clone() for k, v in net.stages[0]["bn"].state_dict().items()}

    net.stages[0]["bn"].load_state_dict(running_after)  # the Jacobian sees the statistics after the update
    a_req = a.clone().requires_grad_(True)
    g = torch.autograd.grad(F.cross_entropy(net.classifier(a_req), y), a_req)[0]
    ws = []
    for i in range(len(a)):
        jac = torch.autograd.functional.jacobian(
            lambda v, i=i: chain_map(net, v.unsqueeze(0), current0[i : i + 1], running=True)[0], a[i]
        ).detach()
        ws.append(torch.linalg.solve(torch.eye(4, dtype=torch.float64) - jac.t(), g[i]))
    w = torch.stack(ws)
    net.stages[0]["bn"].load_state_dict(bn_state)
    net.zero_grad()
    ((chain_map(net, a, input_current(net, x), running=False) * w).sum()).backward()
    reference = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    reference["classifier.weight"], reference["classifier.bias"] = torch.autograd.grad(
        F.cross_entropy(net.classifier(a), y), [net.classifier.weight, net.classifier.bias]
    )
    assert set(ours) == set(reference)
    for name in reference:
        torch.testing.assert_close(ours[name], reference[name], rtol=1e-6, atol=1e-9, msg=name)
    monkeypatch.setattr(net, "solve_adjoint", lambda vjp, g: g)
    net.stages[0]["bn"].load_state_dict(bn_state)
    net.zero_grad()
    F.cross_entropy(net(x.unsqueeze(0).expand(3, -1, -1)), y).backward()
    naive = net.input_synapse.weight.grad
    target = reference["input_synapse.weight"]
    assert float((naive - target).norm()) > 0.05 * float(target.norm())


def test_alexnet_f_builds_with_the_official_shapes():
    """cifar_alexnetf.py: 96C3s2 → 256C3 → 384C3s2 → 384C3 → 256C3, feedback ConvTranspose 256 → 96 (k 3,
    stride 2, output padding 1), classifier on 256 × 8 × 8: 3.7M parameters as in the README."""
    from torch import nn

    arch = resolve_architecture("ide-alexnet-f")
    algorithm = IDE(IDEConfig(feedback_kernel=3), arch, DatasetInfo("cifar10", (3, 32, 32), 10))
    net = algorithm.build(2)
    n = sum(p.numel() for p in net.parameters())
    assert net.shapes == [(96, 16, 16), (256, 16, 16), (384, 8, 8), (384, 8, 8), (256, 8, 8)]
    assert net.feedback.kind == "conv_transpose" and 3.65e6 < n < 3.75e6
    assert isinstance(net.stages[0]["synapse"], nn.Conv2d)
    net.train()
    out = net(torch.rand(2, 2, 3, 32, 32))
    out.sum().backward()
    assert out.shape == (2, 10) and net.feedback.weight_v.grad is not None
    ops, binary, dense = net.feedback.count_operations(torch.ones(1, 256, 8, 8))
    assert binary and ops == dense  # all-ones input: every (input, weight) pair that lands


def test_warmup_scales_the_learning_rate_over_the_first_iterations():
    """cifar_*.py adjust_warmup_lr: the scheduled lr · (i + 1)/warmup for the first ``warmup`` iterations
    (here one per epoch, 10 epochs: ×0.1 at epochs 3, 6, 9), then the schedule alone."""
    from snnbench.algorithms import RunContext
    from snnbench.data.encoding import direct

    algorithm = IDE(IDEConfig(warmup_iterations=5), resolve_architecture("6"), DatasetInfo("x", (5,), 3))
    net = algorithm.build(2)
    ctx = RunContext(2, torch.device("cpu"), 10, 4, 4, "direct", torch.Generator(), direct)
    state = algorithm.configure(net, ctx)
    x, y = torch.randn(4, 5), torch.tensor([0, 1, 2, 0])
    used: list[float] = []
    step = state.optimizer.step

    def recording_step(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        used.append(state.optimizer.param_groups[0]["lr"])
        return step(*args, **kwargs)

    state.optimizer.step = recording_step  # type: ignore[method-assign]
    for epoch in range(8):
        ctx.epoch = epoch
        algorithm.train_epoch(net, state, [(x, y)], ctx)
    expected = [0.01, 0.02, 0.03, 0.005 * 4 / 5, 0.005, 0.005, 0.0005, 0.0005]
    assert used == pytest.approx(expected)


# ---- guards of issue 43 item 8 / issue 48: dropout scaling and the λ-weighted mean input ------------------
def test_dropout_masks_are_bernoulli_keep_rescaled_by_one_over_keep():
    """Eq. (7): m = Bernoulli(1 − p)/(1 − p) (the official variational dropout), so a mask keeps the expected
    current: its entries are 0 or 1/(1 − p) and average 1; a training forward with dropout p = 0.2 then
    equals the simulation of the masked currents."""
    torch.manual_seed(0)
    algorithm = IDE(IDEConfig(dropout=0.2), resolve_architecture("6"), DatasetInfo("x", (5,), 3))
    net = algorithm.build(4).double()
    net.train()
    torch.manual_seed(5)
    masks = net._masks(4000, torch.zeros(1, dtype=torch.float64))
    for mask in (masks.x, masks.feedback):
        assert mask is not None and mask.shape == (4000, 6)
        assert set(mask.unique().tolist()) == {0.0, 1.0 / 0.8}
        assert abs(float(mask.mean()) - 1.0) < 0.02 and abs(float((mask == 0).double().mean()) - 0.2) < 0.02
    x, _ = data(n=10, n_in=5)
    x_seq = x.unsqueeze(0).expand(4, -1, -1)
    torch.manual_seed(9)
    drawn = net._masks(10, x_seq)
    torch.manual_seed(9)
    out = net(x_seq)  # draws the same masks first
    w = net.feedback._weight.detach()
    current = drawn.x * input_current(net, x)
    u = torch.zeros_like(current)
    s = torch.zeros_like(current)
    total = torch.zeros_like(current)
    for t in range(4):  # m_s ⊙ W s[t−1] + m_x ⊙ I[t]
        u = u + (drawn.feedback * (s @ w.t()) if t else 0.0) + current
        s = (u >= 2.0).double()
        u = 0.95 * (u - 2.0 * s)
        total = 0.95 * total + s
    expected = net.classifier(total / sum(0.95**k for k in range(4)))
    torch.testing.assert_close(out.detach(), expected.detach())


def test_time_varying_input_uses_the_lambda_weights_of_eq_2_in_time_order():
    """x̄ = Σ_t λ^{T−1−t} x[t] / Σ_k λ^k (the latest step weighs most): with an input that changes over time,
    the BN statistics (running mean, one update per batch: ours, the official code makes two) are those of
    F x̄, every step's current is normalised by them, and the forward equals the independent LIF loop on
    those currents."""
    leak, T = 0.5, 4
    net, _ = tiny(hidden=6, leak=leak)
    net.train()
    g = torch.Generator().manual_seed(4)
    x_seq = 2.0 * torch.randn(T, 10, 5, generator=g, dtype=torch.float64)
    x_seq[-1] += 3.0  # the last step differs most from the others: a reversed weighting moves the mean
    before = net.bn.running_mean.clone()
    out = net(x_seq)
    weights = torch.tensor([leak ** (T - 1 - t) for t in range(T)], dtype=torch.float64)
    weights /= weights.sum()
    x_bar = (weights.view(T, 1, 1) * x_seq).sum(0)
    z_bar = (x_bar @ net.input_synapse.weight.t() + net.input_synapse.bias).detach()
    torch.testing.assert_close(net.bn.running_mean, 0.9 * before + 0.1 * z_bar.mean(0))
    mu, var = z_bar.mean(0), z_bar.var(0, unbiased=False)
    w = net.feedback._weight.detach()
    u = torch.zeros(10, 6, dtype=torch.float64)
    s = torch.zeros_like(u)
    total = torch.zeros_like(u)
    with torch.no_grad():
        for t in range(T):
            z_t = x_seq[t] @ net.input_synapse.weight.t() + net.input_synapse.bias
            current = (z_t - mu) / torch.sqrt(var + net.bn.eps) * net.bn.weight + net.bn.bias
            u = u + (s @ w.t() if t else 0.0) + current
            s = (u >= 2.0).double()
            u = leak * (u - 2.0 * s)
            total = leak * total + s
        expected = net.classifier(total / weights.new_tensor([leak**k for k in range(T)]).sum())
    torch.testing.assert_close(out.detach(), expected)
    reversed_bar = (weights.flip(0).view(T, 1, 1) * x_seq).sum(0)  # the check can tell the two orders apart
    z_rev = (reversed_bar @ net.input_synapse.weight.t() + net.input_synapse.bias).detach()
    assert float((z_rev.mean(0) - z_bar.mean(0)).abs().max()) > 0.1
