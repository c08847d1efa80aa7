"""MS-ResNet networks (Hu et al., TNNLS 2024, official code Ariande1/MS-ResNet ``models/MS_ResNet.py``).

The stem is a 7×7/2 convolution with BN and no neuron; every stage, the first included, starts with a
stride-2 block (the official ``self.pool`` is defined but not applied). Readout: neuron, GAP, FC.
"""

from snnbench.architectures import register_architecture

SOURCE = "Hu et al. 2024 (MS-ResNet), official code models/MS_ResNet.py"
register_architecture(
    "ms-resnet18",
    "64C7p3s2-B64s2-B64-B128s2-B128-B256s2-B256-B512s2-B512-GAP",
    f"{SOURCE} resnet18",
    "MS-ResNet-18 ([2, 2, 2, 2] basic blocks, ImageNet layout)",
)
register_architecture(
    "ms-resnet34",
    "64C7p3s2-B64s2-B64-B64-B128s2-B128-B128-B128-B256s2-B256-B256-B256-B256-B256-B512s2-B512-B512-GAP",
    f"{SOURCE} resnet34",
    "MS-ResNet-34 ([3, 4, 6, 3] basic blocks, ImageNet layout)",
)
