"""Operation counts on tiny networks worked out by hand, spike rates, energy, footprint."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snnbench.metrics import (
    E_AC_PJ,
    E_MAC_PJ,
    OperationCounter,
    connection_sparsity,
    footprint_bytes,
    parameter_count,
)
from snnbench.neurons.layers import SpikingLayer


def test_two_layer_mlp_counts_by_hand():
    net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    with torch.no_grad():
        net[0].weight.fill_(0.5)
        net[0].weight[0, 2] = 0.0  # one missing synapse
        net[0].bias.zero_()
        net[1].weight.fill_(1.0)
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]])  # binary: layer 1 does ACs
    with OperationCounter(net) as counter:
        net(x)
    # layer 1, row 1: 3 active inputs × 3 outputs − the zero weight (0, 2) = 8; row 2: input 2 × 3 − 1 = 2
    assert counter.acs["0"] == 10 and counter.macs["0"] == 0
    # layer 2 sees analog values: row 1 outputs (1.0, 1.5, 1.5) all nonzero → 3 × 2 = 6;
    # row 2 outputs (0, 0.5, 0.5) → 2 × 2 = 4 → 10 MACs
    assert counter.macs["1"] == 10 and counter.acs["1"] == 0
    # dense ops of one row: 4·3 + 3·2 = 18
    assert counter.dense_per_row == {"0": 12, "1": 6}
    summary = counter.summary(samples=2, e_ac_pj=1.0, e_mac_pj=2.0)
    assert summary["acs_per_sample"] == 5 and summary["macs_per_sample"] == 5
    assert summary["energy_nj"] == pytest.approx((5 * 1.0 + 5 * 2.0) / 1000)
    assert summary["ann_energy_nj"] == pytest.approx(18 * 2.0 / 1000)


def test_ternary_inputs_count_as_accumulates():
    """BNTT's signed-rate input lies in {−1, 0, 1}: adding or subtracting a weight is an AC, not a MAC."""
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.fill_(0.5)
    with OperationCounter(layer) as counter:
        layer(torch.tensor([[1.0, -1.0, 0.0]]))
    assert (counter.acs[""], counter.macs[""]) == (4, 0)  # 2 nonzero inputs × 2 outputs


def test_energy_weighs_acs_and_macs_by_their_own_constants():
    """Unequal AC and MAC counts, so that swapped constants show; the defaults are Horowitz's 45 nm figures,
    the same in the metrics module and in a suite without an ``energy`` block."""
    from snnbench.suite import Energy

    net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    with torch.no_grad():
        net[0].weight.fill_(0.5)
        net[0].weight[0, 2] = 0.0
        net[0].bias.zero_()
    with OperationCounter(net) as counter:
        net(torch.tensor([[1.0, 0.0, 1.0, 1.0]]))
    # layer 1: 3 active inputs × 3 outputs − the zero weight = 8 ACs; layer 2: 3 analog inputs × 2 = 6 MACs
    assert (counter.acs["0"], counter.macs["1"]) == (8, 6)
    assert counter.summary(samples=1, e_ac_pj=1.0, e_mac_pj=2.0)["energy_nj"] == pytest.approx(
        (8 + 12) / 1000
    )
    defaults = counter.summary(samples=1)
    assert defaults["energy_constants_pj"] == {"ac": 0.9, "mac": 4.6} == {"ac": E_AC_PJ, "mac": E_MAC_PJ}
    assert defaults["energy_nj"] == pytest.approx((8 * 0.9 + 6 * 4.6) / 1000)
    assert Energy().model_dump() == {"e_ac_pj": 0.9, "e_mac_pj": 4.6}


def test_conv_with_padding_and_stride_by_hand():
    conv = nn.Conv2d(1, 2, kernel_size=3, stride=2, padding=1)
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = x[0, 0, 3, 3] = 1.0
    with OperationCounter(conv) as counter:
        conv(x)
    # windows (stride 2, padding 1) over rows/cols −1..1 and 1..3:
    #   out (0,0) sees (0,0),(1,1) → 2;  (0,1) sees (1,1) → 1;  (1,0) sees (1,1) → 1;
    #   (1,1) sees (1,1),(3,3) → 2
    # 6 per output channel × 2 channels = 12 ACs
    assert counter.acs[""] == 12
    # dense: valid (unpadded) window sizes 4 + 6 + 6 + 9 = 25 per channel × 2 = 50
    assert counter.dense_per_row[""] == 50


class FixedSpikes(SpikingLayer):
    def __init__(self, spikes: torch.Tensor) -> None:
        super().__init__()
        self.spikes = spikes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spikes


class PSPLayer(SpikingLayer):
    output_is_spikes = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last_spikes = (x > 0.5).float()
        return x * 0.3


def test_spike_rates_per_layer_and_overall():
    spikes = torch.tensor([[[1.0, 0.0, 0.0, 1.0]], [[0.0, 0.0, 0.0, 1.0]]])  # T=2, B=1, 4 neurons: 3 spikes
    net = nn.Sequential(FixedSpikes(spikes), PSPLayer())
    with OperationCounter(net) as counter:
        net(torch.zeros(2, 1, 4))
    summary = counter.summary(samples=1)
    assert summary == {}  # no conv/linear layer: no operation metrics claimed
    assert counter.spikes == {"0": 3, "1": 3} and counter.neuron_steps == {"0": 8, "1": 8}


def test_static_metrics():
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight[0].zero_()
    assert parameter_count(net) == 3 * 2 + 2 + 2
    assert footprint_bytes(net) == 4 * (3 * 2 + 2 + 2)
    assert connection_sparsity(net) == pytest.approx(3 / 8)


def test_a_run_records_workload_metrics(write_suite, tmp_path):
    from snnbench.grid import run_suite

    record = run_suite(write_suite({"timesteps": [4]}), out_dir=tmp_path, device="cpu").records[0]
    m = record.metrics
    assert 0.0 < m["spike_rate"] < 1.0 and m["activation_sparsity"] == pytest.approx(1 - m["spike_rate"])
    # digits mlp 64-256-10: the dense ANN does 64·256 + 256·10 MACs per sample
    assert m["ann_energy_nj"] == pytest.approx((64 * 256 + 256 * 10) * 4.6 / 1000)
    # the first layer sees analog pixels (direct coding): MACs; the head sees spikes: ACs
    assert m["macs_per_sample"] > 0 and m["acs_per_sample"] > 0
    assert m["energy_nj"] == pytest.approx((m["acs_per_sample"] * 0.9 + m["macs_per_sample"] * 4.6) / 1000)


def test_a_layer_that_counts_itself_owns_the_torch_layer_inside():
    """A wrapper with ``count_operations`` is counted once; the nn.Linear it calls functionally is not
    listed."""
    from snnbench.metrics import standard_operations

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.linear(x, 2 * self.layer.weight)

        def count_operations(self, x: torch.Tensor) -> tuple[int, bool, int]:
            return standard_operations(self.layer, x)

    net = nn.Sequential(Wrapped(), nn.Linear(3, 2))
    with OperationCounter(net) as counter:
        net(torch.tensor([[1.0, 0.0, 1.0, 1.0]]))
    assert set(counter.synaptic) == {"0", "1"} and counter.acs["0"] == 9


def test_dense_count_is_one_sample_for_a_time_major_input():
    """desire-bp and st-rsbp feed ``[T, B, N]``: ``x[:1]`` would be one step of the whole batch, so the
    ANN energy grew with the batch (review: desire-bp's energy_ratio 0.0014 instead of ~0.2)."""
    linear, conv = nn.Linear(5, 3), nn.Conv2d(2, 4, 3, padding=1)
    with OperationCounter(nn.ModuleList([linear, conv])) as counter:
        linear((torch.rand(4, 7, 5) > 0.5).float())  # T = 4, B = 7
        conv((torch.rand(4 * 7, 2, 6, 6) > 0.5).float())
    # padded 3 × 3 on 6 × 6: (2 + 3 + 3 + 3 + 3 + 2)² valid taps per (out, in) channel pair
    assert counter.dense_per_row == {"0": 15, "1": 4 * 2 * 16 * 16}
    summary = counter.summary(samples=7, e_ac_pj=1.0, e_mac_pj=2.0)
    assert summary["ann_energy_nj"] == pytest.approx(sum(counter.dense_per_row.values()) * 2.0 / 1000)


def test_input_energy_is_the_first_layer_that_runs():
    """The input-coding layer's share of the energy: the layer the data enters first (here registered
    last), MACs on analog input, per sample."""

    class Backwards(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head, self.stem = nn.Linear(3, 2), nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head((self.stem(x) > 0).float())

    net = Backwards()
    with torch.no_grad():
        net.stem.weight.fill_(1.0)
        net.stem.bias.zero_()
    x = torch.tensor([[0.5, 0.0, 0.25, 1.0], [0.0, 0.0, 0.0, 0.5]])  # analog: MACs, 9 + 3 = 12
    with OperationCounter(net) as counter:
        net(x)
    summary = counter.summary(samples=2, e_ac_pj=1.0, e_mac_pj=2.0)
    assert summary["input_energy_nj"] == pytest.approx(12 * 2.0 / 1000 / 2)
    assert summary["input_energy_nj"] < summary["energy_nj"]
