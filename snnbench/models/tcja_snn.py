"""TCJA-SNN networks (Zhu et al., TNNLS 2024, official code ridgerchu/TCJA).

The method places a TCJA block after the neurons before each of the last two pooling layers (the
``attention_layers`` option of ``tcja-snn``); the notation lists the plain layers. Output layers are the
method's: 11 × 10 LIF voters for DVS128 Gesture, a linear layer for CIFAR10-DVS.
"""

from snnbench.architectures import register_architecture

SOURCE = "Zhu et al. 2024 (TCJA-SNN), official code"
register_architecture(
    "tcja-dvsgesture-net",
    "128C3-MP2-128C3-MP2-128C3-MP2-128C3-MP2-128C3-MP2-D0.5-512-D0.5",
    f"{SOURCE} src/dvs128.py CextNet(channels=128)",
    "DVS128 Gesture network at 128×128: 5 × (conv 128 3×3, BN, LIF, max-pool 2), TCJA before the last two "
    "pools, dropout 0.5, 512 LIF, dropout 0.5; 110 LIF voters",
)
register_architecture(
    "tcja-cifar10dvs-vgg",
    "64C3-128C3-AP2-256C3-256C3-AP2-512C3-512C3-AP2-512C3-512C3-AP2",
    f"{SOURCE} src/cifar10dvs.py VGGNet",
    "CIFAR10-DVS VGG at 48×48 (the script's AdaptiveAvgPool2d(48) input): 8 conv-BN-LIF layers, average "
    "pools, TCJA before the last two pools; a linear readout averaged over T",
)
register_architecture(
    "tcja-digits",
    "16C3-MP2-32C3-MP2",
    "ours: the DVS128 Gesture network's pattern at 8×8",
    "small TCJA-SNN for 8×8 digits: two conv-BN-LIF + max-pool stages, TCJA before both pools",
)
