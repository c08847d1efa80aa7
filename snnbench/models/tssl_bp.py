"""TSSL-BP's networks (Zhang & Li 2020, official repository ``Networks/*.yaml`` at head ``ffaac71``).

``P2`` is each method's own pooling (TSSL-BP: ×1.1 sum-pool of PSPs; others: average); padding as in
the configs.
"""

from snnbench.architectures import register_architecture

SOURCE = "Zhang & Li 2020 (TSSL-BP), official code Networks/"
register_architecture(
    "tsslbp-mnist-cnn", "15C5p0-P2-40C5p0-P2-300", SOURCE + "MNIST_CNN.yaml", "MNIST conv net (28 → 12 → 4)"
)
register_architecture(
    "tsslbp-fmnist-mlp", "400-400", SOURCE + "FashionMNIST_400_400.yaml", "Fashion-MNIST MLP"
)
register_architecture(
    "tsslbp-fmnist-cnn", "32C5-P2-64C5-P2-1024", SOURCE + "FashionMNIST_CNN.yaml", "Fashion-MNIST conv net"
)
register_architecture(
    "tsslbp-nmnist-cnn",
    "12C5p1-P2-64C5p0-P2",
    SOURCE + "NMNIST_CNN.yaml",
    "N-MNIST conv net (34 → 32 → 16 → 12 → 6)",
)
register_architecture(
    "tsslbp-cifar10-cnn1",
    "96C3-D0.2-256C3-P2-D0.2-384C3-P2-D0.2-384C3-D0.2-256C3-D0.2-1024-D0.2-1024-D0.2",
    SOURCE + "CIFAR10.yaml",
    "CIFAR-10 CNN1 with dropout 0.2 after every hidden block (conv weight scale 5 in the method's config)",
)
