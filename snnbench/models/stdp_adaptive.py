"""Networks of the unsupervised STDP SNN with adaptive mechanisms (Dong, Zhao, Li & Zeng 2023, Neural
Networks 165, arXiv 2207.02727; official code BrainCog-X/Brain-Cog 3998fd5
``examples/Perception_and_Learning/UnsupervisedSTDP/codef.py``).

``12C3-MP2-6400``: a convolution 1 → 12, 3×3, padding 1 (codef.py:337), max pooling 2×2 (codef.py:338), then
the spiking fully connected layer of 6,400 neurons (codef.py:332, 345). The label-voting read-out has no
weights (the neurons are assigned to classes), so no output layer is appended.
"""

from snnbench.architectures import register_architecture

register_architecture(
    "stdp-adaptive-mnist",
    "12C3-MP2-6400",
    "Dong et al. 2023, official codef.py @3998fd5 (Conv_Net: STDPConv(1, 12, 3, 1, 1), STDPMaxPool(2, 2), "
    "STDPLinear(196·12, 6400))",
    "28×28 image → conv 12×3×3 (WTA, adaptive inhibition) → max-pool 2 → normalise → 6,400 neurons → voting",
)
register_architecture(
    "stdp-adaptive-digits",
    "12C3-MP2-150",
    "the official network on 8×8 digits (ours): the official conv and pooling, 150 fully connected neurons "
    "(about the official 9 training images per neuron: 60,000 / 6,400)",
    "8×8 image → conv 12×3×3 → max-pool 2 → normalise → 150 neurons → label voting",
)
