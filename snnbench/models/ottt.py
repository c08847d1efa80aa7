"""OTTT's VGG (official code ``models/spiking_vgg.py``, cfg "A" with scaled weight standardisation)."""

from snnbench.architectures import register_architecture

register_architecture(
    "ottt-vgg11",
    "64C3-128C3-AP2-256C3-256C3-AP2-512C3-512C3-AP2-512C3-512C3-GAP",
    "Xiao et al. 2022 (OTTT), official code models/spiking_vgg.py, cfg A "
    "(VGG-F's feedback conv not included)",
    "VGG-11 with sWS for CIFAR-10/100 and CIFAR10-DVS (head Linear(512, classes))",
)
