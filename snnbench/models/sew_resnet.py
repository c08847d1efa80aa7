"""SEW-ResNet networks (Fang et al. 2021, official code fangwei123456/Spike-Element-Wise-ResNet).

``B64`` is a basic block; how its shortcut joins is the method's (SEW: spikes ADD/AND/IAND). The ImageNet
stem's 3×3/2 max pooling (padding 1) is written ``MP2``: the same output size on even inputs, a 2×2 window.
The DVS networks' 128×128 input is pooled 7 times to 1×1 (``k_pool`` 2 after every block).
"""

from snnbench.architectures import register_architecture

SOURCE = "Fang et al. 2021 (SEW-ResNet), official code"
register_architecture(
    "sew-resnet18",
    "64C7p3s2-MP2-B64-B64-B128s2-B128-B256s2-B256-B512s2-B512-GAP",
    f"{SOURCE} imagenet/sew_resnet.py sew_resnet18",
    "SEW-ResNet-18 (ImageNet layout: [2, 2, 2, 2] basic blocks)",
)
register_architecture(
    "sew-resnet34",
    "64C7p3s2-MP2-B64-B64-B64-B128s2-B128-B128-B128-B256s2-B256-B256-B256-B256-B256-B512s2-B512-B512-GAP",
    f"{SOURCE} imagenet/sew_resnet.py sew_resnet34",
    "SEW-ResNet-34 (ImageNet layout: [3, 4, 6, 3] basic blocks)",
)
register_architecture(
    "sew-7b-net",
    "32C1-B32-MP2-B32-MP2-B32-MP2-B32-MP2-B32-MP2-B32-MP2-B32-MP2",
    f"{SOURCE} dvsgesture/smodels.py SEWResNet",
    "DVS Gesture network (the paper's 7B-Net): 1×1 conv to 32 channels, 7 × (SEW block, max-pool 2), "
    "128×128 input",
)
register_architecture(
    "sew-wide-7b-net",
    "64C1-B64-MP2-B64-MP2-B64-MP2-B64-MP2-128C1-B128-MP2-B128-MP2-B128-MP2",
    f"{SOURCE} cifar10dvs/smodels.py SEWResNet",
    "CIFAR10-DVS network (the paper's Wide-7B-Net): 4 × (SEW block 64, max-pool 2), 1×1 conv to 128, "
    "3 × (SEW block 128, max-pool 2), 128×128 input",
)
