"""The QCFS paper's VGG-16 for CIFAR-10/100 (official code ``Models/VGG.py`` of putshua/ANN_SNN_QCFS: average
pooling in place of max pooling, BN after every convolution, classifier 4096-4096, dropout 0).

ResNet-20 (also in the paper) is not registered: the layer notation has no residual blocks.
"""

from snnbench.architectures import register_architecture

register_architecture(
    "qcfs-vgg16",
    "64C3-64C3-AP2-128C3-128C3-AP2-256C3-256C3-256C3-AP2-512C3-512C3-512C3-AP2-512C3-512C3-512C3-AP2-4096-4096",
    "Bu et al. 2022 (QCFS), official code Models/VGG.py",
    "VGG-16 for CIFAR-10/100 (BN after each convolution with conversion's batch_norm: true)",
)
