"""Spiking CapsNet networks (Zhao, Li, Zeng, Wang & Zhang, Information Sciences 610, 2022; official code
BrainCog-X/Brain-Cog @3998fd5 ``examples/Perception_and_Learning/img_cls/spiking_capsnet/spikingcaps.py``).

The notation holds the two convolutions; the capsule layers are the method's (``spikecaps``): the second
convolution's channels, taken as ``capsule_dim`` convolutions of ``channels / capsule_dim`` each, are read as
primary capsules of ``capsule_dim`` components (the official ``view``), and one class capsule of
``class_capsule_dim`` components per class follows (options).
"""

from snnbench.architectures import register_architecture

SOURCE = (
    "Zhao et al. 2022 (Spiking CapsNet), official code BrainCog-X/Brain-Cog @3998fd5 "
    "examples/Perception_and_Learning/img_cls/spiking_capsnet/spikingcaps.py"
)
register_architecture(
    "spikecaps-mnist",
    "256C9p0-256C9p0s2",
    f"{SOURCE}: ConvLayer (256C9, stride 1), PrimaryCaps (8 convolutions of 32 channels, 9×9, stride 2), "
    "DigitCaps (1,152 primary capsules of 8 → 10 class capsules of 16) (spikingcaps.py:30-75)",
    "Spiking CapsNet, 28×28: conv 256C9 → 1,152 primary capsules (8-D, 32×6×6) → 10 class capsules (16-D)",
    capsule_dim=8,
    class_capsule_dim=16,
)
register_architecture(
    "spikecaps-digits",
    "64C3p0-64C3p0s2",
    f"{SOURCE}; ours, sized for 8×8 digits: 3×3 kernels (9×9 do not fit 8×8), widths ÷4 (8 convolutions of "
    "8 channels), capsule sizes kept",
    "Spiking CapsNet for 8×8 inputs: conv 64C3 → 32 primary capsules (8-D, 8×2×2) → 10 class capsules (16-D) "
    "(spikecaps only)",
    capsule_dim=8,
    class_capsule_dim=16,
)
