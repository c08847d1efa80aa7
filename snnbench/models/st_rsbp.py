"""ST-RSBP's networks (Zhang & Li, NeurIPS 2019; official ``Config/*.txt`` and result logs ``Result/*.txt``).

``R`` = a layer with trained recurrent weights inside it (the official "reservoir" layer); the output layer
(with fixed lateral inhibition) is appended by the algorithm.
"""

from snnbench.architectures import register_architecture

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
