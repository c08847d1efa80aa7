"""TCJA-SNN: the TCJA block (values and gradients) against explicit float64 loops over T and C written from
the equations (no conv1d), with planted bugs (T/C convolutions swapped, fusion by addition, no sigmoid)
shown to fail that check; the neurons against SpikingJelly; the official networks' parameter counts; the
vote readout and MSE loss; a learning test on digits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snnbench.algorithms.tcja_snn import TCJA, TCJASNN, TCJAConfig
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo


def reference_tcja(x: torch.Tensor, w_t: torch.Tensor, w_c: torch.Tensor) -> torch.Tensor:
    """Eqs. (1)–(5) as loops. ``x`` [T, B, C, H, W]; ``w_t`` [C, C, k_T] (TLA: slides along T, reads all
    channels); ``w_c`` [T, T, k_C] (CLA: slides along C, reads all steps). Zero padding, ⌊(k−1)/2⌋ before
    (the official ``padding='same'``)."""
    T, B, C, H, W = x.shape
    k_t, k_c = w_t.shape[2], w_c.shape[2]
    l_t, l_c = (k_t - 1) // 2, (k_c - 1) // 2
    y = torch.empty_like(x)
    for b in range(B):
        z = [[x[t, b, c].sum() / (H * W) for c in range(C)] for t in range(T)]  # eq. (1)
        for t in range(T):
            for c in range(C):
                a_t = sum(  # eq. (2)
                    w_t[c, c2, m] * z[t + m - l_t][c2]
                    for c2 in range(C)
                    for m in range(k_t)
                    if 0 <= t + m - l_t < T
                )
                a_c = sum(  # eq. (3)
                    w_c[t, t2, m] * z[t2][c + m - l_c]
                    for t2 in range(T)
                    for m in range(k_c)
                    if 0 <= c + m - l_c < C
                )
                y[t, b, c] = x[t, b, c] / (1.0 + torch.exp(-(a_t * a_c)))  # eqs. (4)–(5)
    return y


def tcja_errors(T: int, C: int, k_t: int, k_c: int) -> tuple[float, float]:
    """Largest |ours − reference| of the outputs and of the gradients (input and both kernels)."""
    torch.manual_seed(T * 100 + C * 10 + k_t + k_c)
    block = TCJA(T, C, k_t, k_c).double()
    with torch.no_grad():  # larger than PyTorch's default init, so that products and the sigmoid matter
        block.temporal.weight.mul_(4.0)
        block.channel.weight.mul_(4.0)
    x = (torch.rand(T, 2, C, 3, 2, dtype=torch.float64) < 0.4).double().requires_grad_()
    weights = torch.randn(T, 2, C, 3, 2, dtype=torch.float64)
    ours = block(x)
    grads = torch.autograd.grad((ours * weights).sum(), [x, block.temporal.weight, block.channel.weight])
    w_t = block.temporal.weight.detach().clone().requires_grad_()
    w_c = block.channel.weight.detach().clone().requires_grad_()
    expected = reference_tcja(x, w_t, w_c)
    expected_grads = torch.autograd.grad((expected * weights).sum(), [x, w_t, w_c])
    out_err = float((ours - expected).detach().abs().max())
    grad_err = max(float((g - e).abs().max()) for g, e in zip(grads, expected_grads, strict=True))
    return out_err, grad_err


@pytest.mark.parametrize(("T", "C", "k_t", "k_c"), [(5, 7, 3, 2), (6, 6, 4, 4), (4, 3, 1, 5)])
def test_tcja_block_equals_the_loop_equations(T, C, k_t, k_c):
    out_err, grad_err = tcja_errors(T, C, k_t, k_c)
    assert out_err < 1e-12 and grad_err < 1e-12


def _swapped(self, x):  # TLA's kernel slides along C and CLA's along T (shapes agree when T = C)
    z = x.mean(dim=(3, 4)).transpose(0, 1)
    a_t = F.conv1d(self._same(z, self.temporal.kernel_size[0]), self.temporal.weight)
    a_c = F.conv1d(self._same(z.transpose(1, 2), self.channel.kernel_size[0]), self.channel.weight)
    return x * torch.sigmoid(a_t * a_c.transpose(1, 2)).transpose(0, 1)[..., None, None]


def _planted(fuse):
    def forward(self, x):
        z = x.mean(dim=(3, 4)).transpose(0, 1)
        a_t = self.temporal(self._same(z.transpose(1, 2), self.temporal.kernel_size[0])).transpose(1, 2)
        a_c = self.channel(self._same(z, self.channel.kernel_size[0]))
        return x * fuse(a_t, a_c).transpose(0, 1)[..., None, None]

    return forward


@pytest.mark.parametrize(
    "planted",
    [
        _swapped,
        _planted(lambda a_t, a_c: torch.sigmoid(a_t + a_c)),  # fusion by addition
        _planted(lambda a_t, a_c: a_t * a_c),  # no sigmoid
    ],
    ids=["swapped-T-C", "additive-fusion", "no-sigmoid"],
)
def test_the_loop_check_catches_planted_bugs(planted, monkeypatch):
    monkeypatch.setattr(TCJA, "forward", planted)
    out_err, _ = tcja_errors(6, 6, 4, 4)  # T = C with the official kernels: the swap keeps every shape
    assert out_err > 1e-3


def test_neurons_equal_spikingjelly_lif():
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
    data = DatasetInfo("x", (2, 8, 8), 3)
    for name, theirs_surrogate in [
        ("arctan", sj_surrogate.ATan()),
        ("piecewise-quadratic", sj_surrogate.PiecewiseQuadratic()),
    ]:
        net = TCJASNN(TCJAConfig(surrogate=name), resolve_architecture("tcja-digits"), data).build(4).double()
        ours = net.body[2]
        theirs = sj_neuron.LIFNode(
            tau=2.0, surrogate_function=theirs_surrogate, detach_reset=True, step_mode="m"
        )
        x = (torch.randn(8, 4, 16, dtype=torch.float64) * 1.5 + 1.0).requires_grad_()
        weights = torch.randn(8, 4, 16, dtype=torch.float64)
        expected = theirs(x)
        (expected * weights).sum().backward()
        expected_grad, x.grad = x.grad.clone(), None
        got = ours(x)
        (got * weights).sum().backward()
        assert torch.equal(got, expected) and 0 < expected.mean() < 1, name
        assert expected_grad.abs().sum() > 0
        torch.testing.assert_close(x.grad, expected_grad, rtol=1e-10, atol=1e-12)


def count(net: torch.nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in net.modules())


def test_official_networks_have_the_official_parameter_counts():
    cfg = TCJAConfig()  # DVS128 Gesture: no biases, 11 × 10 voters, TCJA(4, 4, 20, 128) twice
    net = TCJASNN(
        cfg, resolve_architecture("tcja-dvsgesture-net"), DatasetInfo("x", (2, 128, 128), 11)
    ).build(20)
    c = 128
    official = 2 * c * 9 + 4 * c * c * 9 + 5 * 2 * c + 2 * (20 * 20 * 4 + c * c * 4) + 2048 * 512 + 512 * 110
    assert sum(p.numel() for p in net.parameters()) == official and count(net, TCJA) == 2
    # the TCJA blocks sit before the last two of the five max-pools
    kinds = [type(m).__name__ if not hasattr(m, "module") else type(m.module).__name__ for m in net.body]
    pools = [i for i, k in enumerate(kinds) if k == "MaxPool2d"]
    assert [kinds[i - 1] for i in pools] == ["LIF", "LIF", "LIF", "TCJA", "TCJA"]
    assert net(torch.rand(20, 1, 2, 128, 128)).shape == (1, 11)

    cfg = TCJAConfig(bias=True, readout="linear", surrogate="piecewise-quadratic")  # CIFAR10-DVS VGG
    net = TCJASNN(cfg, resolve_architecture("tcja-cifar10dvs-vgg"), DatasetInfo("x", (2, 48, 48), 10)).build(
        10
    )
    convs = [(2, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
    official = (
        sum(i * o * 9 + o + 2 * o for i, o in convs) + 2 * (10 * 10 * 4 + 512 * 512 * 4) + 512 * 9 * 10 + 10
    )
    assert sum(p.numel() for p in net.parameters()) == official and count(net, TCJA) == 2


def test_vote_readout_and_mse_loss():
    cfg = TCJAConfig(voters=3)
    net = TCJASNN(cfg, resolve_architecture("tcja-digits"), DatasetInfo("x", (1, 8, 8), 4)).build(5)
    torch.manual_seed(0)
    x = torch.rand(5, 6, 1, 8, 8) * 3
    rates = net.head(net.body(x)).mean(0)  # [6, 4 · 3] firing rates of the voters
    out = net(x)
    torch.testing.assert_close(out, torch.stack([rates[:, 3 * k : 3 * k + 3].mean(1) for k in range(4)], 1))
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    target = torch.zeros(6, 4)
    target[range(6), y] = 1.0
    torch.testing.assert_close(TCJASNN.loss(out, y, cfg), ((out - target) ** 2).sum() / 24)


def test_learns_digits(write_suite, tmp_path):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [4],
            "budgets": {"smoke": {"epochs": 6, "batch_size": 32, "train_subset": 600, "test_subset": 200}},
            "algorithms": {"tcja-snn": {"arch": "tcja-digits", "lr": 0.003}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok" and record.metrics["top1"] > 55.0  # chance 10 %; 87 % measured


def test_build_gives_each_block_k_T_along_time_and_k_C_along_channels():
    """``build()`` hands ``kernel_t`` to TLA (eq. 2, sliding along T) and ``kernel_c`` to CLA (eq. 3, sliding
    along C): with k_T = 3 ≠ k_C = 5 every block of the built network equals the loop equations with those
    kernels (crossed kernels would not even have the reference's shapes)."""
    cfg = TCJAConfig(kernel_t=3, kernel_c=5)
    T = 6
    net = TCJASNN(cfg, resolve_architecture("tcja-digits"), DatasetInfo("x", (1, 8, 8), 4)).build(T)
    blocks = [m for m in net.modules() if isinstance(m, TCJA)]
    assert blocks
    torch.manual_seed(0)
    for block in blocks:
        block = block.double()
        C = block.temporal.in_channels
        assert block.temporal.weight.shape == (C, C, 3) and block.channel.weight.shape == (T, T, 5)
        x = (torch.rand(T, 2, C, 3, 2, dtype=torch.float64) < 0.4).double()
        with torch.no_grad():
            block.temporal.weight.mul_(4.0)
            block.channel.weight.mul_(4.0)
            expected = reference_tcja(x, block.temporal.weight, block.channel.weight)
            assert float((block(x) - expected).abs().max()) < 1e-12
