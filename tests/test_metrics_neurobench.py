"""Cross-check against NeuroBench on the same small snnTorch network and the same input spikes:
synaptic operations (effective ACs/MACs, dense) and activation sparsity agree exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snnbench.metrics import OperationCounter
from snnbench.neurons.layers import SpikingLayer

neurobench = pytest.importorskip("neurobench")
snn = pytest.importorskip("snntorch")


class Tap(SpikingLayer):
    """Exposes an snnTorch neuron's spikes to snnbench's counter without changing the network."""

    output_is_spikes = False

    def __init__(self, neuron: nn.Module) -> None:
        super().__init__()
        self.neuron = neuron

    def forward(self, x: torch.Tensor):  # type: ignore[no-untyped-def]
        out = self.neuron(x)
        self.last_spikes = out[0] if isinstance(out, tuple) else out
        return out


class TappedNet(nn.Sequential):
    """NeuroBench calls ``net.reset()`` before every batch; snnTorch's ``utils.reset`` would not see neurons
    inside :class:`Tap`, so reset every Leaky instance directly."""

    def reset(self) -> None:
        snn.Leaky.reset_hidden()


@pytest.mark.parametrize("coding", ["spikes", "analog"])
def test_synops_and_sparsity_agree_with_neurobench(coding: str):
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import SNNTorchModel

    torch.manual_seed(0)
    net = TappedNet(
        nn.Linear(12, 10),
        Tap(snn.Leaky(beta=0.5, threshold=0.5, init_hidden=True)),
        nn.Linear(10, 4),
        Tap(snn.Leaky(beta=0.5, threshold=0.5, init_hidden=True, output=True)),
    )
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[0].weight[0, :5] = 0.0  # some missing synapses
    spikes = (torch.rand(6, 5, 12) < 0.3).float()  # [B, T, inputs], binary
    if coding == "analog":  # direct coding: the first layer's operations are MACs
        spikes = spikes * torch.rand_like(spikes)
    labels = torch.zeros(6, dtype=torch.long)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(spikes, labels), batch_size=3)

    workload = [SynapticOperations, ActivationSparsity]
    benchmark = Benchmark(SNNTorchModel(net), loader, [], [lambda out: out], [[], workload])
    theirs = benchmark.run(quiet=True)

    with OperationCounter(net) as counter, torch.no_grad():
        for batch in spikes.split(3):
            net.reset()
            for t in range(batch.shape[1]):
                net(batch[:, t])
    ours = counter.summary(samples=len(spikes))
    ops = theirs["SynapticOperations"]
    assert ours["acs_per_sample"] == pytest.approx(ops["Effective_ACs"])
    assert ours["macs_per_sample"] == pytest.approx(ops["Effective_MACs"])
    assert sum(counter.dense_per_row.values()) * spikes.shape[1] == pytest.approx(ops["Dense"])
    assert ours["acs_per_sample"] > 0 and (ours["macs_per_sample"] > 0) == (coding == "analog")
    assert ours["activation_sparsity"] == pytest.approx(theirs["ActivationSparsity"])
