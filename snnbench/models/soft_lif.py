"""Hunsberger & Eliasmith's cuda-convnet2 networks (official ``hunse/cuda-convnet2`` ``layers/``).

The CIFAR-10 network has two locally connected layers and overlapping 3×3/stride-2 average pooling on
24×24 crops; the layer notation has neither, so ``softlif-cifar10-cnn`` uses convolutions of the same
shape (3×3, padding 1) and 2×2 average pooling on 32×32 images (the entry's fidelity card lists it).
"""

from snnbench.architectures import register_architecture

SOURCE = "Hunsberger & Eliasmith 2015/2016, official hunse/cuda-convnet2 layers/"
register_architecture(
    "softlif-mnist-cnn",
    "16C5p2-AP2-64C5p2-AP2-2000-D0.5",
    SOURCE + "layers-mnist-lif.cfg (+ layer-params-mnist-lif.cfg: dropout keep 0.5)",
    "MNIST conv net: 16C5-AP2-64C5-AP2-2000 with dropout, soft-LIF units",
)
register_architecture(
    "softlif-cifar10-cnn",
    "64C5p2-AP2-64C5p2-AP2-64C3p1-32C3p1",
    SOURCE + "layers-cifar10-lif-noise10.cfg, local3/local4 as convolutions, AP3 stride 2 as AP2",
    "CIFAR-10 net: conv 64, conv 64, 'local' 64 and 32 (as convolutions), soft-LIF units",
)
