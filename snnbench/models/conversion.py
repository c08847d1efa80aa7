"""The conversion papers' VGG-16 for CIFAR (QCFS official code ``Models/VGG.py``: average pooling instead of
max pooling, BN after every convolution, classifier 4096-4096 with dropout)."""

from snnbench.architectures import register_architecture

register_architecture(
    "qcfs-vgg16",
    "64C3-64C3-AP2-128C3-128C3-AP2-256C3-256C3-256C3-AP2-512C3-512C3-512C3-AP2-512C3-512C3-512C3-AP2-4096-D0.5-4096-D0.5",
    "Bu et al. 2022 (QCFS), official code Models/VGG.py",
    "VGG-16 for CIFAR-10/100 (BN via batch_norm: true)",
)
