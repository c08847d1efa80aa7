"""NIR export: the graph read back by snnTorch's NIR import (via nirtorch) gives our outputs, step by step."""

from __future__ import annotations

import contextlib
import io
import json
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.errors import SnnbenchError
from snnbench.suite import Overrides, expand, load_suite

nir = pytest.importorskip("nir", reason="NIR export needs the nir package (pip install 'snnbench[export]')")
nirtorch = pytest.importorskip("nirtorch", reason="the round trip needs nirtorch")
snntorch_import = pytest.importorskip("snntorch.import_nir", reason="the round trip needs snnTorch")
import snntorch.utils  # noqa: E402

from snnbench.export import DT, build_network, to_nir  # noqa: E402


class NirLI(torch.nn.Module):
    """NIR's LI, τ v̇ = v_leak − v + R x, by Euler with step DT (snnTorch's import has no LI)."""

    def __init__(self, node: nir.LI) -> None:
        super().__init__()
        self.tau, self.r, self.v_leak = (torch.tensor(getattr(node, k)) for k in ("tau", "r", "v_leak"))

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        v = torch.zeros_like(x) if state is None else state
        v = v + DT / self.tau * (self.v_leak - v + self.r * x)
        return v, v


class NirIF(torch.nn.Module):
    """NIR's IF, v̇ = R x, fire at v > ϑ, v ← v_reset (snnTorch's import makes IF a leaky neuron, β = 0.9)."""

    def __init__(self, node: nir.IF) -> None:
        super().__init__()
        self.r, self.threshold, self.reset = (
            torch.tensor(getattr(node, k)) for k in ("r", "v_threshold", "v_reset")
        )

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        v = (torch.zeros_like(x) if state is None else state) + DT * self.r * x
        s = (v > self.threshold).to(x.dtype)
        return s, torch.where(s > 0, self.reset, v)


class NirLIF(torch.nn.Module):
    """NIR's LIF, τ v̇ = v_leak − v + R x, fire at v > ϑ, v ← v_reset, by Euler with step DT: for
    per-neuron thresholds, which snnTorch's import refuses ("v_threshold must be same for all neurons")."""

    def __init__(self, node: nir.LIF) -> None:
        super().__init__()
        names = ("tau", "r", "v_leak", "v_threshold", "v_reset")
        self.tau, self.r, self.v_leak, self.threshold, self.reset = (
            torch.tensor(getattr(node, k)) for k in names
        )

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        v = torch.zeros_like(x) if state is None else state
        v = v + DT / self.tau * (self.v_leak - v + self.r * x)
        s = (v > self.threshold).to(x.dtype)
        return s, torch.where(s > 0, self.reset, v)


def lif_module(node: nir.LIF) -> torch.nn.Module:
    """snnTorch's import where it can (one threshold for the layer), else NIR's equations."""
    if np.unique(node.v_threshold).size == 1:
        return snntorch_import._nir_to_snntorch_module(node, init_hidden=True)
    return NirLIF(node)


def snntorch_map() -> dict:
    """snnTorch's own mapping for what it imports (``import_from_nir``), our Euler reading of LI and IF."""
    kinds = (nir.Affine, nir.Linear, nir.Conv2d, nir.Flatten, nir.AvgPool2d)
    mapping = {k: lambda n: snntorch_import._nir_to_snntorch_module(n, init_hidden=True) for k in kinds}
    return {**mapping, nir.LIF: lif_module, nir.LI: NirLI, nir.IF: NirIF}


def spec(entry: str, **hparams) -> dict:
    run = expand(load_suite("digits-lowT"), Overrides(algorithms=[entry], timesteps=[4], seeds=[0]))[0]
    data = run.model_dump(mode="json")
    data["hparams"].update(hparams)
    return data


def spiking_network(data: dict) -> torch.nn.Module:
    """The entry's network with weights that make every layer fire and non-trivial batch-norm statistics."""
    torch.manual_seed(0)
    net = build_network(data)
    with torch.no_grad():
        for name, tensor in net.named_parameters():
            tensor.copy_(torch.randn_like(tensor) * (0.5 if "weight" in name and tensor.dim() > 1 else 0.2))
            if ("weight" in name and tensor.dim() == 1) or "threshold" in name:  # batch-norm γ, STL's ϑ
                tensor.uniform_(0.5, 1.5)
        for name, buffer in net.named_buffers():
            if "mean" in name:
                buffer.normal_(0.0, 0.3)
            elif "var" in name:
                buffer.uniform_(0.5, 2.0)
    return net.eval()


def ours(net: torch.nn.Module, algorithm: str, x: torch.Tensor) -> torch.Tensor:
    """Per-step output ``[T, B, C]`` of the network's last layer."""
    with torch.no_grad():
        if algorithm == "bptt":
            return net.readout(net.head(net.body(x)))
        if algorithm == "proxy":
            net._mode(True)
            return net.output(net.head(net.body(x)))
        if algorithm in ("temporal-surrogate-bp", "stl-snn"):
            return net.output(net.head(net.body(x)))
        if algorithm in ("sew-resnet", "ms-resnet"):  # per-step head outputs; their mean is the logits
            steps = net.head(net.body(x))
            torch.testing.assert_close(steps.mean(0), net(x))
            return steps
        return net(x)  # tssl-bp: output PSPs


def imported(graph, x: torch.Tensor, mapping: dict | None) -> torch.Tensor:
    """Run the imported graph one sample at a time (NIR's Flatten indexes one sample's dims), step by step."""
    with contextlib.redirect_stdout(io.StringIO()):  # snnTorch prints its threshold rescaling
        module = (
            snntorch_import.import_from_nir(graph)
            if mapping is None
            else nirtorch.nir_to_torch(graph, mapping)
        )
    samples = []
    for b in range(x.shape[1]):
        snntorch.utils.reset(module)
        state, steps = None, []
        for t in range(x.shape[0]):
            with torch.no_grad():
                out, state = module(x[t, b], state)
            steps.append(out)
        samples.append(torch.stack(steps))
    return torch.stack(samples, 1)


CASES = {
    "bptt-mlp": ("bptt", {}),
    "bptt-convnet": ("bptt-convnet", {}),  # batch norm folded into the convolutions
    "bptt-spike-count": ("bptt", {"readout": "spike_count"}),  # LIF output: snnTorch's import alone
    "tssl-bp": ("tssl-bp", {}),
    "proxy": ("proxy", {}),  # integrate-and-fire, batch norm with the SNN's statistics
    # residual nets: branch and shortcut as two paths summed by the next node (IF / PLIF / MS neurons)
    "sew-resnet": ("sew-resnet", {}),
    "sew-resnet-plif": ("sew-resnet", {"neuron": "plif"}),
    "ms-resnet": ("ms-resnet", {}),
    "temporal-surrogate-bp": ("temporal-surrogate-bp", {}),  # multiplicative-reset LIF
    "stl-snn": ("stl-snn", {}),  # a trained threshold per neuron
}
SPIKE_OUTPUTS = {"proxy", "temporal-surrogate-bp", "stl-snn"}


@pytest.mark.parametrize("case", CASES)
def test_round_trip_gives_our_outputs(case: str, tmp_path) -> None:
    entry, hparams = CASES[case]
    data = spec(entry, **hparams)
    net = spiking_network(data)
    T, B = 6, 3
    x = torch.rand(T, B, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    expected = ours(net, data["algorithm"], x)
    graph = to_nir(net, data["algorithm"], (1, 8, 8))
    nir.write(tmp_path / "net.nir", graph)  # through the file format, as a user would
    got = imported(nir.read(tmp_path / "net.nir"), x, None if case == "bptt-spike-count" else snntorch_map())
    assert got.shape == expected.shape
    if data["algorithm"] not in SPIKE_OUTPUTS and hparams.get("readout", "membrane") == "membrane":
        assert expected.abs().sum() > 0
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    else:  # spikes: identical, and neither silent nor saturated
        assert 0 < expected.mean() < 1
        assert torch.equal(got, expected)


def test_snntorch_cannot_import_the_li_readout_as_the_readme_says() -> None:
    """The README states the limit (snnTorch's import has no LI): if a snnTorch release maps LI, this fails
    and the README's paragraph must change."""
    from pathlib import Path

    graph = to_nir(spiking_network(spec("bptt")), "bptt", (1, 8, 8))  # membrane read-out: an LI node
    message = "Unknown node type <class 'nir.ir.neuron.LI'>, mapping does not exist in node_map"
    with contextlib.redirect_stdout(io.StringIO()), pytest.raises(ValueError, match=re.escape(message)):
        snntorch_import.import_from_nir(graph)
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert message in readme and "`readout: spike_count`" in readme


def test_hidden_layers_fire_in_the_round_trip_networks() -> None:
    """Otherwise the comparison above could not see a wrong threshold or reset."""
    neurons = ("LIF", "ProxyNeuron", "TSSLNeuron", "PLIF", "MSNeuron", "ResetLIF", "ThresholdLIF")
    for entry, hparams in CASES.values():
        data = spec(entry, **hparams)
        net = spiking_network(data)
        rates: list[float] = []

        def record(module: torch.nn.Module, inputs: object, output: torch.Tensor, rates=rates) -> None:
            spikes = module.last_spikes if type(module).__name__ == "TSSLNeuron" else output
            rates.append(float(spikes.float().mean()))

        hooks = [m.register_forward_hook(record) for m in net.modules() if type(m).__name__ in neurons]
        ours(net, data["algorithm"], torch.rand(6, 3, 1, 8, 8, generator=torch.Generator().manual_seed(1)))
        for hook in hooks:
            hook.remove()
        assert rates and all(0 < r < 1 for r in rates), (entry, rates)


def test_residual_blocks_are_two_paths_into_one_node() -> None:
    """The shortcut must skip the branch: a chain through both would pass the test above only by luck."""
    data = spec("sew-resnet")
    graph = to_nir(spiking_network(data), "sew-resnet", (1, 8, 8))
    fan_in: dict[str, int] = {}
    for _, target in graph.edges:
        fan_in[target] = fan_in.get(target, 0) + 1
    # resnet-digits 16C3-B16-B32s2-GAP: each block's sum feeds its successors (2 blocks, each feeding 2
    # paths or the pooling) from two ends
    assert sorted(n for n in fan_in.values() if n > 1) == [2, 2, 2]


def test_multiplicative_sew_blocks_are_refused() -> None:
    data = spec("sew-resnet", connect_f="AND")
    with pytest.raises(SnnbenchError, match="NIR has no product node"):
        to_nir(build_network(data), "sew-resnet", (1, 8, 8))


@pytest.mark.parametrize(
    "algorithm",
    [
        "ottt",
        "bntt",
        "conversion-rate",
        "stdbp",
        "multispike-tbp",
        "st-rsbp",
        "ide",
        "soft-lif",
        "tcja-snn",
        "biolcnet",
        "desire-bp",
        "s-resnet",
        "stdp-adaptive",
        "spikecaps",
        "sctfa",
    ],
)
def test_unexportable_methods_say_why(algorithm: str) -> None:
    data = spec(algorithm)
    with pytest.raises(SnnbenchError, match="cannot be exported to NIR: "):
        to_nir(build_network(data), data["algorithm"], (1, 8, 8))


def test_every_registered_method_is_exported_or_says_why() -> None:
    """A new method must either map to NIR or name what NIR lacks (else export says "not mapped")."""
    from snnbench.algorithms import algorithms
    from snnbench.export import NOT_EXPORTABLE

    exported = {"bptt", "proxy", "tssl-bp", "sew-resnet", "ms-resnet", "temporal-surrogate-bp", "stl-snn"}
    builtin = {n for n in algorithms.names() if algorithms.get(n).__module__.startswith("snnbench.")}
    assert builtin == exported | set(NOT_EXPORTABLE)


def test_save_models_then_export(tmp_path) -> None:
    runner = CliRunner()
    args = ["run", "--suite", "digits-lowT", "--budget", "smoke", "--algorithms", "bptt", "--timesteps", "2"]
    result = runner.invoke(app, [*args, "--seeds", "0", "--out", str(tmp_path), "--save-models", "--quiet"])
    assert result.exit_code == 0, result.output
    (record_path,) = (tmp_path / "digits-lowT" / "runs").glob("*.json")
    record = json.loads(record_path.read_text())
    model = tmp_path / "digits-lowT" / "models" / f"{record['run_id']}.pt"
    import hashlib

    assert record["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    state = torch.load(model, weights_only=True)
    assert set(state) == set(build_network(record["spec"]).state_dict())
    result = runner.invoke(
        app, ["export", record["run_id"], "--out", str(tmp_path), "--to", str(tmp_path / "n.nir")]
    )
    assert result.exit_code == 0, result.output
    graph = nir.read(tmp_path / "n.nir")
    assert [type(n).__name__ for n in graph.nodes.values()].count("LIF") == 1  # one hidden layer
    model.write_bytes(model.read_bytes() + b"x")
    result = runner.invoke(app, ["export", record["run_id"], "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "sha256 differs from the record's model_sha256" in result.output


def test_export_without_saved_model_is_a_clean_error(tmp_path) -> None:
    result = CliRunner().invoke(app, ["export", "bptt_T2_s0_smoke_00000000", "--out", str(tmp_path)])
    assert result.exit_code == 2  # bad input, as for `show` and `evaluate`
    assert "no record 'bptt_T2_s0_smoke_00000000' under" in result.output
