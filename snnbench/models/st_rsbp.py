"""ST-RSBP's networks (Zhang & Li, NeurIPS 2019; official ``Config/*.txt`` and result logs ``Result/*.txt``).

``R`` = a layer with trained recurrent weights inside it (the official "reservoir" layer); the output layer
(with fixed lateral inhibition) is appended by the algorithm. ``P`` (default pooling kind) is ST-RSBP's
spiking pooling layer (official ``layers/PoolingSpiking.cu``).
"""

from snnbench.architectures import register_architecture

register_architecture(
    "strsbp-mnist-cnn",
    "15C5p0-P2-40C5p0-P2-300",
    "Zhang & Li 2019, official Config/SpikingCNNMnistConfig.txt (KERNEL_SIZE 5, PADDING 0; pooling SIZE = "
    "SKIP = 2), Result/Spiking_CNN_MNIST.txt (28×28-15C5-P2-40C5-P2-300-10, 99.62 % best over epochs)",
    "spiking CNN: 15 × 24 × 24 → pool 15 × 12 × 12 → 40 × 8 × 8 → pool 40 × 4 × 4 → 300 → 10; thresholds "
    "conv 5/10, pool 2/4, fc 10, output 5 in the official config",
)
register_architecture(
    "strsbp-fmnist",
    "400-R400",
    "Zhang & Li 2019, official Config/FashionMNIST.txt, Result/FashionMNIST_R400_400.txt (784-400-R400-10)",
    "feed-forward 400, recurrent 400 (reservoir connectivity on a 5 × 5 × 16 grid)",
)
register_architecture(
    "strsbp-nmnist",
    "500-R500",
    "Zhang & Li 2019, official Config/NMNIST.txt (2312-500-R500-10)",
    "feed-forward 500, recurrent 500",
)
register_architecture(
    "strsbp-tidigits",
    "250-R250",
    "Zhang & Li 2019, official Result/N_Tidigits_250_R250.txt (64-250-R250-11)",
    "the speech network shape (used here on SHD's 700 channels)",
)
