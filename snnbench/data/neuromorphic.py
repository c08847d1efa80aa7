"""Event-camera and spiking-audio datasets through tonic: N-MNIST, DVS128 Gesture, SHD.

Files, URLs and MD5s are tonic's own (its dataset classes), read by tonic's dataset classes and readers.
snnbench downloads (resumable, verified, ``SNNBENCH_MIRROR`` first) and extracts the archives into
``<data root>/<tonic class name>/``, where tonic looks; extracted data whose archives are gone is accepted
(tonic itself would download again). Every sample is binned by ``tonic.transforms.ToFrame`` into exactly
T frames (``n_time_bins=T``), or into frames of ``time_window_us`` cropped/zero-padded to T, after an
optional ``Denoise`` and spatial ``Downsample``. The binned frames of a split are cached on disk under a key
of every parameter that shapes them (dataset, split, T, windowing, denoise, downsample, files' MD5), so the
second epoch and the second run read frames, not events. Official train/test splits.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field

from snnbench.data import datasets
from snnbench.data._base import Dataset, DatasetInfo, DatasetOptions, LoadedDataset, Split
from snnbench.data.download import RemoteFile
from snnbench.records import atomic_torch_save

CACHE_VERSION = 1


class EventOptions(DatasetOptions):
    time_window_us: float | None = Field(None, gt=0, description="fixed frame length instead of T equal bins")
    denoise_us: float | None = Field(None, gt=0, description="tonic Denoise filter_time (None: off)")
    spatial_factor: float = Field(1.0, gt=0, le=1, description="tonic Downsample spatial factor")
    binary: bool = Field(False, description="clamp frame counts to {0, 1}")


class EventDataset(Dataset):
    """A tonic dataset with an official train/test split selected by ``train=``."""

    Options = EventOptions
    tonic_name: ClassVar[str]
    archives: ClassVar[tuple[str, str]]  # (train, test) attribute prefixes on the tonic class
    data_suffix: ClassVar[str]
    num_classes: ClassVar[int]

    def tonic_class(self) -> type:
        import tonic.datasets

        return getattr(tonic.datasets, self.tonic_name)

    def folder(self, root: Path) -> Path:
        return root / self.tonic_name

    def extracted(self, root: Path) -> list[Path]:
        folder = self.folder(root)
        return sorted(folder.rglob(f"*{self.data_suffix}")) if folder.exists() else []

    def sensor_size(self, options: EventOptions) -> tuple[int, int, int]:
        w, h, p = self.tonic_class().sensor_size
        if options.spatial_factor == 1.0:
            return (w, h, p)
        scale = options.spatial_factor
        return (max(1, int(w * scale)), max(1, int(h * scale)) if h > 1 else h, p)

    def info(self, options: DatasetOptions) -> DatasetInfo:
        assert isinstance(options, EventOptions)
        w, h, p = self.sensor_size(options)
        shape = (p, h, w) if h > 1 else (p, w)  # ToFrame: [T, p, h, w] for cameras, [T, p, w] for audio
        return DatasetInfo(self.registry_name, shape, self.num_classes, kind="events")

    def download(self, root: Path, progress: object | None = None) -> list[Path]:
        paths = super().download(root, progress)
        for path in paths:
            self._extract(path)
        return paths

    def _extract(self, archive: Path) -> None:
        """Unpack next to the archive (skipped when a marker says this archive's MD5 was unpacked)."""
        from snnbench.data.download import cached_md5

        marker = archive.with_name(archive.name + ".extracted")
        digest = cached_md5(archive)
        if marker.exists() and marker.read_text() == digest:
            return
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(archive.parent)
        else:
            with tarfile.open(archive) as t:
                t.extractall(archive.parent, filter="data")
        marker.write_text(digest)

    def _tonic_split(self, root: Path, train: bool, transform: Any) -> Any:
        """tonic's dataset object over our verified files (its own existence check, which would download
        again when archives are gone, is replaced: we verified the files)."""
        cls = self.tonic_class()
        trusted = type(cls.__name__, (cls,), {"_check_exists": lambda self: True})
        return trusted(str(root), train=train, transform=transform)

    def _transform(self, options: EventOptions, T: int) -> Any:
        import tonic.transforms as tt

        steps: list[Any] = []
        if options.denoise_us:
            steps.append(tt.Denoise(filter_time=options.denoise_us))
        if options.spatial_factor != 1.0:
            steps.append(tt.Downsample(spatial_factor=options.spatial_factor))
        size = self.sensor_size(options)
        if options.time_window_us:
            steps.append(tt.ToFrame(sensor_size=size, time_window=options.time_window_us))
        else:
            steps.append(tt.ToFrame(sensor_size=size, n_time_bins=T))
        return tt.Compose(steps)

    def _frames(self, root: Path, options: EventOptions, T: int, train: bool, checksums: dict[str, str]) -> Split:
        key = json.dumps(
            {"v": CACHE_VERSION, "dataset": self.registry_name, "train": train, "T": T, "files": checksums,
             **options.model_dump()},
            sort_keys=True,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        cache = root / "cache" / self.registry_name / f"{'train' if train else 'test'}-T{T}-{digest}.pt"
        if cache.exists():
            saved = torch.load(cache, weights_only=True)
            return Split(saved["x"], saved["y"])
        data = self._tonic_split(root, train, self._transform(options, T))
        frames, labels = [], []
        for index in range(len(data)):
            frame, label = data[index]
            frame = np.asarray(frame)[:T]
            if len(frame) < T:  # time windows: zero-pad short recordings to T frames
                frame = np.concatenate([frame, np.zeros((T - len(frame), *frame.shape[1:]), frame.dtype)])
            frames.append(torch.from_numpy(frame.astype(np.int16)))
            labels.append(int(label))
        x = torch.stack(frames)
        if options.binary:
            x = x.clamp(max=1)
        y = torch.tensor(labels, dtype=torch.int64)
        atomic_torch_save(cache, {"x": x, "y": y, "key": key})
        return Split(x, y)

    def load(self, options: DatasetOptions, root: Path, T: int) -> LoadedDataset:
        assert isinstance(options, EventOptions)
        checksums = self.verify(root)
        for f in self.remote_files():
            if (self.folder(root) / f.name).exists():
                self._extract(self.folder(root) / f.name)
        train = self._frames(root, options, T, True, checksums)
        test = self._frames(root, options, T, False, checksums)
        provenance = {"files_md5": checksums, "options": options.model_dump(), "tonic_class": self.tonic_name}
        return LoadedDataset(self.info(options), train, test, provenance=provenance)

    def remote_files(self) -> list[RemoteFile]:
        cls = self.tonic_class()
        return [self._remote(cls, prefix) for prefix in self.archives]

    @staticmethod
    def _remote(cls: type, prefix: str) -> RemoteFile:
        return RemoteFile(getattr(cls, f"{prefix}_filename"), (getattr(cls, f"{prefix}_url"),), getattr(cls, f"{prefix}_md5"))


@datasets.register("nmnist")
class NMNIST(EventDataset):
    description = "N-MNIST: MNIST on a saccading ATIS camera, 34×34×2, 60,000 / 10,000 (tonic)"
    tonic_name, archives, data_suffix, num_classes = "NMNIST", ("train", "test"), ".bin", 10


@datasets.register("dvsgesture")
class DVSGesture(EventDataset):
    description = "DVS128 Gesture: 11 hand gestures, 128×128×2, 1,077 / 264 recordings (tonic)"
    tonic_name, archives, data_suffix, num_classes = "DVSGesture", ("train", "test"), ".npy", 11


@datasets.register("shd")
class SHD(EventDataset):
    description = "Spiking Heidelberg Digits: spoken digits on 700 cochlea channels, 8,156 / 2,264 (tonic)"
    tonic_name, archives, data_suffix, num_classes = "SHD", ("train", "test"), ".h5", 20

    @staticmethod
    def _remote(cls: type, prefix: str) -> RemoteFile:
        name = getattr(cls, f"{prefix}_zip")
        return RemoteFile(name, (cls.base_url + name,), getattr(cls, f"{prefix}_md5"))
