"""NeuTouch tactile events (Taunyazov et al., RSS 2020), read from the official preprocessed files.

The files are the ones ``clear-nus/VT_SNN`` ``vtsnn/preprocess.py`` writes (@9215087) and
``pkang2017/TactileLocNeurons`` reads (``locsnn/dataset.py`` @d75039b), one folder per task under
``<data root>/neutouch/<task>/``:

- ``tact.pt``: a float tensor ``[N, 78, 2, bins]`` (``torch.save`` of the stacked ``{i}_tact.npy``): 78 taxels
  (80 cells of the two NeuTouch fingers less cells 17 and 49, left finger first, 39 each), 2 polarities
  (0 positive, 1 negative), 0/1 per time bin (a cell fires in a bin when it has more than ``tact_threshold``
  events of that polarity; Containers 325 bins of 0.02 s);
- ``train_80_20_<k>.txt`` / ``test_80_20_<k>.txt``: rows ``index<TAB>label`` (a stratified 5-fold split,
  ``StratifiedKFold(random_state=100)``), k = 1 … 5.

A sample becomes ``[bins, channels]`` with channel = 2·taxel + polarity, the order of the official
``tact.reshape(N, -1, 1, 1, bins)`` (156 channels for both fingers; ``fingers: left|right`` keeps 78). A run
at T < bins ORs each group of bins/T consecutive bins (ours; T must divide the number of bins). The data are
hosted on Google Drive without published checksums: ``snnbench datasets download`` cannot fetch them;
``verify`` reports the files' sha256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from snnbench.data import datasets
from snnbench.data._base import Dataset, DatasetInfo, DatasetOptions, LoadedDataset, Split
from snnbench.errors import SnnbenchError

CLASSES = {"cw": 20, "ycb": 36, "slip": 2}  # train_location_snn.py output_size per --task
SOURCE = (
    "the preprocessed NeuTouch data of clear-nus/VT_SNN (README: https://clear-nus.github.io/visuotactile/"
    "download.html, Google Drive), or vtsnn/preprocess.py run on the raw recordings"
)


class NeuTouchOptions(DatasetOptions):
    """Which task folder, split file and fingers."""

    task: Literal["cw", "ycb", "slip"] = "cw"  # Containers (20 classes), Objects (36), slip detection (2)
    split: int = 1  # train_80_20_<split>.txt / test_80_20_<split>.txt (README: --sample_file 1)
    fingers: Literal["both", "left", "right"] = "both"


@datasets.register("neutouch")
class NeuTouch(Dataset):
    """NeuTouch tactile events from the official preprocessed ``tact.pt`` and split files."""

    description = "NeuTouch tactile events (VT-SNN preprocessed tact.pt; 156 taxel channels × time bins)"
    Options = NeuTouchOptions

    def info(self, options: DatasetOptions) -> DatasetInfo:
        assert isinstance(options, NeuTouchOptions)
        channels = 156 if options.fingers == "both" else 78
        return DatasetInfo("neutouch", (channels,), CLASSES[options.task], kind="events")

    def folder(self, root: Path) -> Path:
        return root / self.registry_name

    def files(self, root: Path, options: NeuTouchOptions) -> list[Path]:
        task = self.folder(root) / options.task
        return [
            task / "tact.pt",
            task / f"train_80_20_{options.split}.txt",
            task / f"test_80_20_{options.split}.txt",
        ]

    def status(self, root: Path) -> str:
        return "present" if all(p.exists() for p in self.files(root, NeuTouchOptions())) else "missing"

    def download(self, root: Path, progress: object | None = None) -> list[Path]:
        raise SnnbenchError(
            f"dataset 'neutouch' cannot be downloaded (no published URL with a checksum): put {SOURCE} under "
            f"{self.folder(root)}/<task>/ (tact.pt, train_80_20_<k>.txt, test_80_20_<k>.txt)"
        )

    def verify(self, root: Path) -> dict[str, str]:
        paths = self.files(root, NeuTouchOptions())
        self._require(paths)
        return {
            p.name: f"sha256 {hashlib.sha256(p.read_bytes()).hexdigest()} (no published checksum)"
            for p in paths
        }

    def _require(self, paths: list[Path]) -> None:
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise SnnbenchError(f"dataset 'neutouch': missing {', '.join(missing)}; put {SOURCE} there")

    def load(self, options: DatasetOptions, root: Path, T: int) -> LoadedDataset:
        assert isinstance(options, NeuTouchOptions)
        paths = self.files(root, options)
        self._require(paths)
        tact = torch.load(paths[0], map_location="cpu")
        if tact.dim() != 4 or tact.shape[1:3] != (78, 2):
            raise SnnbenchError(f"{paths[0]}: expected a [N, 78, 2, bins] tensor, got {tuple(tact.shape)}")
        if options.fingers != "both":
            tact = tact[:, :39] if options.fingers == "left" else tact[:, 39:]
        events = tact.reshape(tact.shape[0], -1, tact.shape[-1])  # [N, channels]: 2·taxel + polarity
        bins = events.shape[-1]
        if bins % T:
            divisors = [d for d in range(1, bins + 1) if bins % d == 0]
            raise SnnbenchError(
                f"neutouch: {bins} time bins, T must divide it (one of {divisors}), got T={T}"
            )
        events = events.unflatten(-1, (T, bins // T)).amax(-1)  # OR over each group of bins/T bins
        frames = events.transpose(1, 2).to(torch.int16)  # [N, T, channels]
        splits = []
        for path in paths[1:]:
            rows = np.loadtxt(path, dtype=np.int64, ndmin=2)
            index, label = torch.from_numpy(rows[:, 0]), torch.from_numpy(rows[:, 1])
            splits.append(Split(frames[index], label))
        provenance = {
            "files_sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths},
            "options": options.model_dump(),
            "bins": bins,
        }
        return LoadedDataset(self.info(options), splits[0], splits[1], provenance=provenance)
