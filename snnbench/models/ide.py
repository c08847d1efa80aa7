"""IDE's feedback networks (Xiao et al., NeurIPS 2021; official code pkuxmq/IDE-FSNN).

Each has one hidden layer: the token is the layer's input connection; the IDE builder adds the feedback
connection of the layer onto itself (same width; for a convolution a ``feedback_kernel`` × same-padding
convolution), spectrally normalised, and a linear classifier on the average firing rates.
"""

from snnbench.architectures import register_architecture

register_architecture(
    "ide-mnist-conv",
    "64C5p2s2",
    "Xiao et al. 2021, official mnist_conv.py (c_hidden 64, kernel_size_x 5, stride_x 2, padding_x 2, "
    "kernel_size_s 5, no pooling); README table 'MNIST 64C5s (F64C5)'",
    "feedback conv: input conv 64C5 stride 2 → 64 × 14 × 14 IF/LIF neurons with a 64C5 feedback "
    "convolution onto themselves → linear classifier (229K parameters)",
)
register_architecture(
    "ide-fmnist-fc",
    "400",
    "Xiao et al. 2021, official fashionmnist_fc.py (dim_hidden 400); README table 'Fashion-MNIST 400 (F400)'",
    "784 → 400 IF/LIF neurons with a 400 × 400 feedback connection → linear classifier (478K parameters)",
)
register_architecture(
    "ide-alexnet-f",
    "96C3p1s2-256C3-384C3s2-384C3-256C3",
    "Xiao et al. 2021, official cifar_alexnetf.py and models/snn_ide_conv_multilayer.py (c_hidden 96, "
    "c_s1..c_s4 256/384/384/256, kernel 3, stride 2 in the input and the second stage); README 'AlexNet-F'",
    "multi-layer feedback: input conv 96C3s2 → 256C3 → 384C3s2 → 384C3 → 256C3 (BN each), feedback "
    "ConvTranspose 256 → 96 (3×3, stride 2) from the last stage to the first; classifier on 256 × 8 × 8 "
    "(3.7M parameters for CIFAR-10)",
)
register_architecture(
    "ide-cifarnet-f",
    "128C3p1s2-256C3-512C3s2-1024C3-512C3",
    "Xiao et al. 2021, official cifar_cifarnetf.py (c_hidden 128, c_s1..c_s4 256/512/1024/512); README "
    "'CIFARNet-F'",
    "multi-layer feedback as AlexNet-F with 128-256-512-1024-512 channels (11.8M parameters for CIFAR-10)",
)
