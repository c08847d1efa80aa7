"""Shared architectures of the controlled tracks: one layer list that every registered method can build,
each with its own neurons and its own pooling (``P2``: the method's pooling kind)."""

from snnbench.architectures import register_architecture

register_architecture(
    "vgg9",
    "64C3-64C3-P2-128C3-128C3-P2-256C3-256C3-256C3-P2-1024",
    "BNTT's VGG9 (Kim & Panda 2021, model.py) with each method's own pooling",
    "controlled track of the CIFAR suites",
)
register_architecture(
    "mnist-cnn",
    "15C5-P2-40C5-P2-300",
    "the TSSL-BP / ST-RSBP MNIST network (TSSL-BP Networks/MNIST_CNN.yaml without dropout)",
    "controlled track of the MNIST and Fashion-MNIST suites",
)
