"""Desire backpropagation's networks (Gerlinghoff et al. 2023, official ``desire_pytorch.py`` at ``b93267d``,
``hyper_pars.config``): fully connected, the 10-unit output appended by the method."""

from snnbench.architectures import register_architecture

SOURCE = "Gerlinghoff et al. 2023 (desire backpropagation), official desire_pytorch.py hyper_pars.config"
register_architecture("desire-mnist-mlp", "1600-800", SOURCE + " (mnist)", "MNIST MLP 784-1600-800-10")
register_architecture(
    "desire-fmnist-mlp", "1000-100", SOURCE + " (fashion-mnist)", "Fashion-MNIST MLP 784-1000-100-10"
)
