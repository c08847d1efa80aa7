"""BioLCNet's networks (Ghaemi et al. 2021, arXiv 2109.05539; official code Singular-Brain/BioLCNet).

The one token is a *locally connected* layer written as a convolution (``100C15p0s4``: 100 channels, 15×15
receptive fields, stride 4, no padding) but without weight sharing: every position has its own filters
(BindsNET ``LocalConnection``). The decoding layer (``neurons_per_class`` × classes LIF neurons) is appended
by the algorithm.
"""

from snnbench.architectures import register_architecture

register_architecture(
    "biolcnet-mnist",
    "100C15p0s4",
    "Ghaemi et al. 2021, official main.ipynb / feature_extraction_pretraining.py (crop_size 22, "
    "filter_size 15, stride 4, n_channels_lc 100)",
    "22×22 centre crop → locally connected 100 × 2 × 2 (15×15 fields, stride 4) → 100 LIF neurons per class",
)
register_architecture(
    "biolcnet-digits",
    "100C5p0s3",
    "the official layer scaled to 8×8 digits (ours): 5×5 fields, stride 3, the official 100 channels",
    "8×8 image → locally connected 100 × 2 × 2 (the official 2 × 2 grid of positions) → decoding layer",
)
