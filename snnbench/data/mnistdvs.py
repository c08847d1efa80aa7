"""MNIST-DVS (Serrano-Gotarredona & Linares-Barranco, Front. Neurosci. 9:481, 2015): 10,000 MNIST digits
moved on an LCD in front of a 128×128 DVS, recorded at three scales (4, 8, 16), 1,000 recordings per class.

The dataset is published as ``grabbed_data{0..9}.zip`` of jAER ``.aedat`` recordings
(http://www2.imse-cnm.csic.es/caviar/MNISTDVS.html) with Matlab scripts that turn each recording into an
event matrix; the SCTFA code (GuoLab-UESTC/SCTFA-SNN @be887ca ``timeslice.py``) reads those matrices as
``.mat`` files, and this loader reads the same files in the same layout::

    <data root>/mnist-dvs/matdata<d>/scale<s>/mnist_<d>_scale<ss>_<jjjj>.mat     (d = 0..9, j = 1..1000)

each holding a variable ``data``: one event per row, column 0 the timestamp in µs, columns 3, 4, 5 the x and
y address (0–127) and the polarity (+1 on, −1 off) (``timeslice.py``: ``data[:, 0]``, ``data[:, 3:]`` read
as x, y, pol, −1 → 0). No file of this layout is published with checksums, so nothing is downloaded:
``status`` says ``present (n files)`` or ``missing``, and ``verify`` records the sha256 of the file names
and sizes.

Frames (``timeslice.my_chunk_evs_pol_dvs``): T windows of ``window_us`` (25 ms) from the first event's
timestamp; frame ``[t, p, x, y]`` counts the events of window t with polarity p (off 0, on 1) at (x, y) —
the official layout, x on the row axis. The official chunking skips the last event of every window (its
index bookkeeping: ``idx_end -= 1`` then ``idx_start = idx_end + 1``); ``official_chunking`` (default)
keeps that, ``False`` counts every event. Split: the official one, the first 1,000 lines of the shuffled
``example/path_4.txt`` test and the other 9,000 train (``main_pop.py``), shipped as ``splits/mnistdvs.json``
(the recordings' class and number; its sha256 goes into every record). Frames are cached on disk under a
key of every parameter that shapes them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from snnbench.data import datasets
from snnbench.data._base import Dataset, DatasetInfo, DatasetOptions, LoadedDataset, Split
from snnbench.errors import SnnbenchError
from snnbench.records import atomic_torch_save

CACHE_VERSION = 1
SPLIT_INDEX = Path(__file__).parent / "splits" / "mnistdvs.json"
PER_CLASS = 1000
SENSOR = 128


class MNISTDVSOptions(DatasetOptions):
    scale: Literal[4, 8, 16] = Field(4, description="digit scale of the recordings (SCTFA: 4)")
    window_us: float = Field(25_000.0, gt=0, description="frame length (timeslice.py: dt = 1000 * 25)")
    official_chunking: bool = Field(True, description="skip each window's last event, as timeslice.py")


def recording_name(digit: int, scale: int, number: int) -> str:
    """``matdata<d>/scale<s>/mnist_<d>_scale<ss>_<jjjj>.mat`` (timeslice.py's path)."""
    return f"matdata{digit}/scale{scale}/mnist_{digit}_scale{scale:02d}_{number:04d}.mat"


def frames_from_events(
    events: np.ndarray, T: int, window_us: float, official_chunking: bool = True
) -> np.ndarray:
    """``[T, 2, 128, 128]`` int16 counts of an event matrix (rows: t µs, ·, ·, x, y, pol ±1), windows of
    ``window_us`` from the first event; ``official_chunking`` skips the last event of every window."""
    frames = np.zeros((T, 2, SENSOR, SENSOR), dtype=np.int16)
    if len(events) == 0:
        return frames
    t = events[:, 0].astype(np.float64)
    window = np.floor((t - t[0]) / window_us).astype(np.int64)
    keep = window < T
    if official_chunking:
        last = np.ones(len(window), dtype=bool)  # the last event (in file order) of each window
        last[:-1] = window[1:] != window[:-1]
        keep &= ~last
    x, y = events[keep, 3].astype(np.int64), events[keep, 4].astype(np.int64)
    polarity = (events[keep, 5] > 0).astype(np.int64)  # −1 → 0 (off), +1 → 1 (on)
    np.add.at(frames, (window[keep], polarity, x, y), 1)
    return frames


@datasets.register("mnist-dvs")
class MNISTDVS(Dataset):
    description = (
        "MNIST-DVS: 10,000 MNIST digits moved before a 128×128 DVS (scale 4/8/16), the SCTFA code's .mat "
        "event matrices, official 9,000 / 1,000 split (prepared locally, no download)"
    )
    Options = MNISTDVSOptions

    def info(self, options: DatasetOptions) -> DatasetInfo:
        return DatasetInfo("mnist-dvs", (2, SENSOR, SENSOR), 10, kind="events", sizes=(9_000, 1_000))

    def _files(self, root: Path, scale: int) -> list[tuple[Path, int, int]]:
        folder = self.folder(root)
        return [
            (folder / recording_name(d, scale, j), d, j) for d in range(10) for j in range(1, PER_CLASS + 1)
        ]

    def status(self, root: Path) -> str:
        found = sum(path.exists() for path, _, _ in self._files(root, 4))
        return (
            f"present ({found} scale-4 files)"
            if found == 10 * PER_CLASS
            else (f"partial ({found}/{10 * PER_CLASS})" if found else "missing")
        )

    def download(self, root: Path, progress: object | None = None) -> list[Path]:
        raise SnnbenchError(self._how_to(root))

    def _how_to(self, root: Path) -> str:
        return (
            f"mnist-dvs is not downloaded by snnbench: convert the published grabbed_data<d>.zip recordings "
            f"(http://www2.imse-cnm.csic.es/caviar/MNISTDVS.html) with the dataset's Matlab scripts into "
            f"{self.folder(root)}/{recording_name(0, 4, 1)} ... (variable 'data': t µs, ·, ·, x, y, pol ±1)"
        )

    def verify(self, root: Path, scale: int = 4) -> dict[str, str]:
        files = self._files(root, scale)
        missing = [path for path, _, _ in files if not path.exists()]
        if missing:
            raise SnnbenchError(f"{len(missing)} of {len(files)} recordings missing, e.g. {missing[0]}; "
                                + self._how_to(root))  # fmt: skip
        listing = hashlib.sha256()
        for path, _, _ in files:
            listing.update(f"{path.relative_to(self.folder(root))}:{path.stat().st_size}\n".encode())
        return {"mat files": f"{len(files)} files, sha256 of names and sizes {listing.hexdigest()}"}

    @staticmethod
    def split_index() -> dict[str, list[int]]:
        return {str(d): list(v) for d, v in json.loads(SPLIT_INDEX.read_text())["test"].items()}

    def load(self, options: DatasetOptions, root: Path, T: int) -> LoadedDataset:
        assert isinstance(options, MNISTDVSOptions)
        checksums = self.verify(root, options.scale)
        test = {(int(d), j) for d, numbers in self.split_index().items() for j in numbers}
        files = self._files(root, options.scale)
        train_files = [f for f in files if (f[1], f[2]) not in test]
        test_files = [f for f in files if (f[1], f[2]) in test]
        provenance: dict[str, object] = {
            "files": checksums,
            "options": options.model_dump(),
            "split_index": SPLIT_INDEX.name,
            "split_sha256": hashlib.sha256(SPLIT_INDEX.read_bytes()).hexdigest(),
        }
        return LoadedDataset(
            self.info(options),
            self._frames(root, options, T, train_files, "train", checksums),
            self._frames(root, options, T, test_files, "test", checksums),
            provenance=provenance,
        )

    def _frames(
        self,
        root: Path,
        options: MNISTDVSOptions,
        T: int,
        files: list[tuple[Path, int, int]],
        split: str,
        checksums: dict[str, str],
    ) -> Split:
        from scipy.io import loadmat

        key = json.dumps(
            {"v": CACHE_VERSION, "split": split, "T": T, "files": checksums, **options.model_dump()},
            sort_keys=True,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        cache = root / "cache" / self.registry_name / f"{split}-T{T}-{digest}.pt"
        if cache.exists():
            saved = torch.load(cache, weights_only=True)
            return Split(saved["x"], saved["y"])
        frames = [
            torch.from_numpy(
                frames_from_events(
                    np.asarray(loadmat(path)["data"]), T, options.window_us, options.official_chunking
                )
            )  # fmt: skip
            for path, _, _ in files
        ]
        x = torch.stack(frames)
        y = torch.tensor([d for _, d, _ in files], dtype=torch.int64)
        atomic_torch_save(cache, {"x": x, "y": y, "key": key})
        return Split(x, y)
