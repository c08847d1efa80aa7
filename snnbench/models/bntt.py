"""BNTT's VGG networks (Kim & Panda 2021, official repository ``model.py``)."""

from snnbench.architectures import register_architecture

SOURCE = "Kim & Panda 2021, BNTT official code model.py"
register_architecture(
    "bntt-vgg9", "64C3-64C3-AP2-128C3-128C3-AP2-256C3-256C3-256C3-AP2-1024", SOURCE, "VGG9 for CIFAR-10"
)
register_architecture(
    "bntt-vgg11",
    "64C3-AP2-128C3-AP2-256C3-256C3-AP2-512C3-512C3-AP2-512C3-512C3-GAP-4096",
    SOURCE,
    "VGG11 for CIFAR-100",
)
