"""Small architectures sized for the embedded 8×8 digits dataset (and quick tests on any dataset)."""

from snnbench.architectures import register_architecture

register_architecture("mlp", "256", description="one hidden layer of 256 units")
register_architecture("mlp2", "256-256", description="two hidden layers of 256 units")
register_architecture(
    "convnet",
    "16C3-AP2-32C3-AP2-128",
    description="small conv net for 8×8 inputs: 16C3-AP2-32C3-AP2-128",
)
register_architecture(
    "resnet-digits",
    "16C3-B16-B32s2-GAP",
    description="small residual net for 8×8 inputs: 3×3 stem to 16 channels, a basic block at 16, a stride-2 "
    "block at 32, GAP (methods with residual blocks: sew-resnet, ms-resnet)",
)
