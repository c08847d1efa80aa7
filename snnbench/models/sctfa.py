"""SCTFA-SNN networks (Cai et al., TNNLS 2023, official code GuoLab-UESTC/SCTFA-SNN @be887ca
``example/parameters.py`` ``conv_kernal``/``fc_feature_size``, ``example/net_pop.py`` ``snn``).

Each convolution is followed by BN, the SCTFA-gated neuron and 2×2 average pooling of its spikes; the dense
layers are plain spiking layers; the output layer (5 neurons per class) is the method's (``sctfa``).
"""

from snnbench.architectures import register_architecture

SOURCE = "Cai et al. 2023 (SCTFA), official code GuoLab-UESTC/SCTFA-SNN @be887ca"
register_architecture(
    "sctfa-mnistdvs-net",
    "32C7p3s2-AP2-64C3p1-AP2-128C3p1-AP2-512",
    f"{SOURCE} example/parameters.py:22-32 (conv_kernal, fc_feature_size), example/net_pop.py",
    "MNIST-DVS network at 2×128×128: conv 32 7×7 stride 2 pad 3, AP2, conv 64 3×3, AP2, conv 128 3×3, AP2, "
    "FC 512 (each conv with BN and SCTFA); 10 × 5 output neurons",
)
register_architecture(
    "sctfa-digits",
    "16C3-AP2-32C3-AP2-64C3-AP2-128",
    "ours: the official layer pattern (3 × conv-BN-SCTFA-AP2, one FC) sized for 8×8 digits",
    "small SCTFA net for 8×8: three 3×3 stride-1 conv stages (16, 32, 64 channels; 8→4→2→1) each with BN, "
    "SCTFA and AP2, FC 128; 10 × 5 output neurons",
)
