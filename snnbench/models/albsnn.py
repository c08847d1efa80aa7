"""Networks for the ALBSNN-style method (``albsnn``; Pei et al., Front. Neurosci. 2023, abstract only).

The paper's networks could not be read (docs/algorithms/albsnn.md): these are ours. Each lists the
convolutions and pooling of the body; ``albsnn`` appends the class convolution and the global average pooling
that replace fully connected layers (the abstract's GAP), so no dense token appears here.
"""

from snnbench.architectures import register_architecture

SOURCE = "ours: the ALBSNN paper's networks could not be read (abstract only)"
register_architecture(
    "albsnn-digits",
    "16C3-32C3-AP2-64C3",
    f"{SOURCE}; sized for 8×8 digits",
    "3 conv-BN-LIF layers (16, 32, 64 channels, average pool 2 after the second), then albsnn's 10-class "
    "3×3 convolution and GAP (albsnn only)",
)
register_architecture(
    "albsnn-fmnist",
    "32C3-AP2-64C3-AP2-128C3",
    f"{SOURCE}; sized for 28×28 Fashion-MNIST on one CPU core",
    "3 conv-BN-LIF layers (32, 64, 128 channels, average pool 2 after the first two), then albsnn's 10-class "
    "3×3 convolution and GAP (albsnn only)",
)
