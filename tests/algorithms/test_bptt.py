"""BPTT's neurons: SpikingJelly ``LIFNode`` defaults (τ = 2, ϑ = 1, hard reset to 0), checked by a trajectory
worked out by hand (its gradients are the fused LIF's, checked in tests/test_neurons.py)."""

from __future__ import annotations

import torch

from snnbench.algorithms.bptt import BPTT
from snnbench.architectures import resolve_architecture
from snnbench.data import datasets
from snnbench.neurons.layers import LIF


def test_lif_layers_charge_leak_and_reset_to_zero():
    digits = datasets.get("digits")()
    method = BPTT(BPTT.Config(), resolve_architecture("mlp"), digits.info(digits.Options()))
    lif = next(m for m in method.build(4).modules() if isinstance(m, LIF))
    x = torch.full((4, 1, 1), 1.9)
    # h = v + (x − v)/2: 0.95, then 0.95 + 0.475 = 1.425 ≥ 1 (spike, v = 0), 0.95, 1.425 (spike);
    # a soft reset would keep 0.425 and fire again at step 3 (0.425 + 0.7375 = 1.1625)
    assert lif(x).flatten().tolist() == [0.0, 1.0, 0.0, 1.0]
