"""S-ResNet networks (Vicente-Sola et al. 2022, official code VicenteAlex/Spiking_ResNet @c120f8e
``model.py`` ``SResnet``).

S-ResNet(n, w): a 3×3 stem convolution to w channels, then three stages of n basic blocks (two 3×3
convolutions; the skip joins every second convolution) at w, 2w and 4w channels, the first block of the
second and third stages strided 2 (its skip a 1×1 stride-2 convolution), global average pooling and the
classifier: 6n + 1 convolutions and one linear layer. How the skip joins (spikes plus shortcut) is the
method's (``s-resnet``).
"""

from snnbench.architectures import register_architecture


def s_resnet_notation(n: int, width: int) -> str:
    """The layer notation of S-ResNet(n, width) (official ``SResnet(n, nFilters)``)."""
    stages = [
        [f"B{width * 2**stage}{'s2' if stage and block == 0 else ''}" for block in range(n)]
        for stage in range(3)
    ]
    return "-".join([f"{width}C3", *(b for stage in stages for b in stage), "GAP"])


SOURCE = (
    "Vicente-Sola et al. 2022 (S-ResNet), official code VicenteAlex/Spiking_ResNet @c120f8e model.py SResnet"
)
register_architecture(
    "s-resnet-n6w32",
    s_resnet_notation(6, 32),
    f"{SOURCE}; n = 6, nFilters = 32 (train.py:32-33 defaults, README commands)",
    "S-ResNet, n = 6, width 32: stem + 3 stages × 6 blocks (32, 64, 128 channels), GAP; 37 convolutions + FC "
    "(CIFAR, 32×32)",
)
register_architecture(
    "s-resnet-digits",
    s_resnet_notation(1, 8),
    f"{SOURCE}; n = 1, nFilters = 8: ours, sized for 8×8 digits",
    "S-ResNet, n = 1, width 8 for 8×8 inputs: stem + 3 stages × 1 block (8, 16, 32 channels), GAP "
    "(s-resnet only: the official three-stage layout, shallower and narrower)",
)
