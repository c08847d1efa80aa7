"""Event-camera and spiking-audio datasets through tonic: N-MNIST, DVS128 Gesture, CIFAR10-DVS, SHD.

Files, URLs and MD5s are tonic's own (its dataset classes), read by tonic's dataset classes and readers.
snnbench downloads (resumable, verified, ``SNNBENCH_MIRROR`` first) and extracts the archives into
``<data root>/<tonic class name>/``, where tonic looks; extracted data whose archives are gone is accepted
(tonic itself would download again). Every sample is binned by ``tonic.transforms.ToFrame`` into exactly
T frames (``n_time_bins=T``), or into frames of ``time_window_us`` cropped/zero-padded to T, after an
optional ``Denoise`` and spatial ``Downsample``. The binned frames of a split are cached on disk under a key
of every parameter that shapes them (dataset, split, T, windowing, denoise, downsample, files' MD5), so the
second epoch and the second run read frames, not events. Official train/test splits, except CIFAR10-DVS,
which has none: a fixed, seeded per-class 9:1 split shipped as ``splits/cifar10dvs.json`` (positions in
each class's sorted file list; its sha256 goes into every record).
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
from snnbench.data.stcf import STCFOptions, spatiotemporal_crop_and_flip
from snnbench.errors import SnnbenchError
from snnbench.records import atomic_torch_save

CACHE_VERSION = 1


class EventOptions(DatasetOptions):
    time_window_us: float | None = Field(None, gt=0, description="fixed frame length instead of T equal bins")
    denoise_us: float | None = Field(None, gt=0, description="tonic Denoise filter_time (None: off)")
    spatial_factor: float = Field(1.0, gt=0, le=1, description="tonic Downsample spatial factor")
    binary: bool = Field(False, description="clamp frame counts to {0, 1}")
    stcf: STCFOptions | None = Field(
        None, description="spatio-temporal crop and flip of training frames (snnbench.data.stcf; None: off)"
    )


class EventDataset(Dataset):
    """A tonic dataset with an official train/test split selected by ``train=``."""

    Options = EventOptions
    tonic_name: ClassVar[str]
    archives: ClassVar[tuple[str, str]]  # (train, test) attribute prefixes on the tonic class
    data_suffix: ClassVar[str]
    num_classes: ClassVar[int]
    sizes: ClassVar[tuple[int, int]]  # published (train, test) sample counts

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
        if options.stcf is not None and h == 1:
            raise SnnbenchError(
                f"{self.registry_name}: stcf crops and flips camera frames; this dataset has none"
            )
        return DatasetInfo(self.registry_name, shape, self.num_classes, kind="events", sizes=self.sizes)

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

    def _tonic(self, root: Path, transform: Any, **kwargs: Any) -> Any:
        """tonic's dataset object over our verified files (its own existence check, which would download
        again when archives are gone, is replaced: we verified the files)."""
        cls = self.tonic_class()
        trusted = type(cls.__name__, (cls,), {"_check_exists": lambda self: True})
        return trusted(str(root), transform=transform, **kwargs)

    def _samples(
        self, root: Path, options: EventOptions, train: bool, transform: Any
    ) -> tuple[Any, list[int]]:
        """The tonic dataset holding the split and the indices of its samples (official splits: all)."""
        data = self._tonic(root, transform, train=train)
        return data, list(range(len(data)))

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

    def _frames(
        self, root: Path, options: EventOptions, T: int, train: bool, checksums: dict[str, str]
    ) -> Split:
        key = json.dumps(
            {
                "v": CACHE_VERSION,
                "dataset": self.registry_name,
                "train": train,
                "T": T,
                "files": checksums,
                **options.model_dump(exclude={"stcf"}),  # an augmentation does not shape the frames
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        cache = root / "cache" / self.registry_name / f"{'train' if train else 'test'}-T{T}-{digest}.pt"
        if cache.exists():
            saved = torch.load(cache, weights_only=True)
            return Split(saved["x"], saved["y"])
        data, indices = self._samples(root, options, train, self._transform(options, T))
        frames, labels = [], []
        for index in indices:
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
        provenance.update(self.split_provenance(options))
        augment = None if options.stcf is None else spatiotemporal_crop_and_flip(options.stcf)
        return LoadedDataset(self.info(options), train, test, augment=augment, provenance=provenance)

    def split_provenance(self, options: EventOptions) -> dict[str, object]:
        """What identifies the train/test split (official splits: nothing beyond the files)."""
        return {}

    def remote_files(self) -> list[RemoteFile]:
        cls = self.tonic_class()
        return [self._remote(cls, prefix) for prefix in self.archives]

    @staticmethod
    def _remote(cls: type, prefix: str) -> RemoteFile:
        return RemoteFile(
            getattr(cls, f"{prefix}_filename"),
            (getattr(cls, f"{prefix}_url"),),
            getattr(cls, f"{prefix}_md5"),
        )


@datasets.register("nmnist")
class NMNIST(EventDataset):
    description = "N-MNIST: MNIST on a saccading ATIS camera, 34×34×2, 60,000 / 10,000 (tonic)"
    tonic_name, archives, data_suffix, num_classes = "NMNIST", ("train", "test"), ".bin", 10
    sizes = (60_000, 10_000)


@datasets.register("dvsgesture")
class DVSGesture(EventDataset):
    description = "DVS128 Gesture: 11 hand gestures, 128×128×2, 1,077 / 264 recordings (tonic)"
    tonic_name, archives, data_suffix, num_classes = "DVSGesture", ("train", "test"), ".npy", 11
    sizes = (1_077, 264)


@datasets.register("shd")
class SHD(EventDataset):
    description = "Spiking Heidelberg Digits: spoken digits on 700 cochlea channels, 8,156 / 2,264 (tonic)"
    tonic_name, archives, data_suffix, num_classes = "SHD", ("train", "test"), ".h5", 20
    sizes = (8_156, 2_264)

    @staticmethod
    def _remote(cls: type, prefix: str) -> RemoteFile:
        name = getattr(cls, f"{prefix}_zip")
        return RemoteFile(name, (cls.base_url + name,), getattr(cls, f"{prefix}_md5"))


SPLITS = Path(__file__).parent / "splits"


def make_split_index(per_class: dict[str, int], seed: int = 0, test_fraction: float = 0.1) -> dict[str, Any]:
    """A per-class split: for each class (sorted), a seeded random choice of ``round(n × test_fraction)``
    test positions among its ``n`` recordings in sorted file order."""
    generator = torch.Generator().manual_seed(seed)
    test = {}
    for name in sorted(per_class):
        n = per_class[name]
        chosen = torch.randperm(n, generator=generator)[: round(n * test_fraction)]
        test[name] = sorted(chosen.tolist())
    return {
        "seed": seed,
        "test_fraction": test_fraction,
        "per_class": dict(sorted(per_class.items())),
        "test": test,
    }


class CIFAR10DVSOptions(EventOptions):
    split_index: str | None = Field(None, description="JSON split index (default: the shipped 9:1 split)")


@datasets.register("cifar10dvs")
class CIFAR10DVS(EventDataset):
    description = (
        "CIFAR10-DVS: CIFAR-10 images on a DVS, 128×128×2, 10,000 recordings, fixed 9:1 split (tonic)"
    )
    tonic_name, data_suffix, num_classes = "CIFAR10DVS", ".aedat4", 10
    sizes = (9_000, 1_000)  # the shipped 9:1 split
    Options = CIFAR10DVSOptions

    def remote_files(self) -> list[RemoteFile]:
        cls = self.tonic_class()
        return [RemoteFile(cls.filename, (cls.url,), cls.file_md5)]

    def _extract(self, archive: Path) -> None:
        """The archive holds one zip per class (tonic unpacks those too)."""
        super()._extract(archive)
        for name in self.tonic_class().data_filename:
            inner = archive.parent / name
            if inner.exists():
                super()._extract(inner)

    def _index_path(self, options: EventOptions) -> Path:
        assert isinstance(options, CIFAR10DVSOptions)
        return Path(options.split_index) if options.split_index else SPLITS / "cifar10dvs.json"

    def split_provenance(self, options: EventOptions) -> dict[str, object]:
        path = self._index_path(options)
        return {"split_index": str(path.name), "split_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}

    def _samples(
        self, root: Path, options: EventOptions, train: bool, transform: Any
    ) -> tuple[Any, list[int]]:
        from snnbench.errors import SnnbenchError

        data = self._tonic(root, transform)
        index = json.loads(self._index_path(options).read_text())
        by_class: dict[str, list[int]] = {}
        for i, path in sorted(enumerate(data.data), key=lambda item: item[1]):
            by_class.setdefault(Path(path).parent.name, []).append(i)
        counts = {name: len(members) for name, members in by_class.items()}
        if counts != index["per_class"]:
            raise SnnbenchError(
                f"{self._index_path(options)}: split index is for {index['per_class']} recordings per class, "
                f"found {counts} under {self.folder(root)}"
            )
        chosen = []
        for name, members in sorted(by_class.items()):
            test = set(index["test"][name])
            chosen += [m for k, m in enumerate(members) if (k in test) != train]
        return data, sorted(chosen)
