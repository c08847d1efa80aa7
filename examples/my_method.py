"""A worked snnbench plugin: surrogate-gradient BPTT with the arctan surrogate (and nothing else changed).

Fang, Yu, Chen, Huang, Masquelier & Tian, "Incorporating Learnable Membrane Time Constant to Enhance
Learning of Spiking Neural Networks", ICCV 2021 (arctan surrogate g'(x) = α / (2 (1 + (π α x / 2)²)), α = 2,
SpikingJelly's ATan default); the paper's learnable time constant is left out. Everything else is the
built-in BPTT baseline (snnbench/algorithms/bptt.py).

Its entry is in digits-lowT's controlled track, beside the bptt baseline: the same network, budget and
tuning budget, so it is tuned first, as every controlled entry was (see docs/adding-a-method.md):

    cp -r results/digits-lowT out/
    snnbench tune --suite digits-lowT --plugin examples/my_method.py --algorithms bptt-arctan --out out
    snnbench run --suite digits-lowT --plugin examples/my_method.py --algorithms bptt-arctan --tuned --out out
    snnbench compare --suite digits-lowT --plugin examples/my_method.py --method bptt-arctan \
        --baselines bptt --out out
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from snnbench.algorithms import Paper, algorithms
from snnbench.algorithms.bptt import BPTT, BPTTConfig


class ArcTanConfig(BPTTConfig):
    """BPTT's hyperparameters with the arctan surrogate as the default."""

    surrogate: Literal["sigmoid", "arctan", "fast-sigmoid"] = Field("arctan", description="Fang et al. 2021")


@algorithms.register("bptt-arctan")
class BPTTArcTan(BPTT):
    """BPTT with the arctan surrogate (α = 2)."""

    paper = Paper(
        authors="Fang, Yu, Chen, Huang, Masquelier & Tian",
        title="Incorporating Learnable Membrane Time Constant to Enhance Learning of Spiking Neural Networks",
        venue="ICCV",
        year=2021,
        url="https://arxiv.org/abs/2007.05785",
        equations="arctan surrogate g'(x) = α / (2 (1 + (π α x / 2)²)) in place of Θ'",
    )
    description = "example plugin: BPTT with the arctan surrogate"
    Config = ArcTanConfig
    version = 1
    changelog = ("1: first version",)
    # the entry this method gets in a suite when the plugin is loaded: the bptt baseline's settings and track
    # (a track must be declared: without one an entry is in the official track, which compares nothing
    # with the controlled baselines); its lr starts from the paper default and is tuned like theirs
    suite_entries = {
        "digits-lowT": {"bptt-arctan": {"track": "controlled", "arch": "mlp", "encoding": "direct"}}
    }
