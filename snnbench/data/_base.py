"""The dataset contract: a dataset loads into in-memory tensors plus a :class:`DatasetInfo`.

Static image sets hold ``x`` as ``[N, C, H, W]`` float32 intensities in [0, 1] (an encoding turns them
into ``T`` steps); event sets hold frames already binned to ``T`` steps, ``[N, T, C, H, W]``, as int16
counts that :meth:`Split.batches` hands out as float32.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from snnbench.data.download import RemoteFile


@dataclass(frozen=True)
class DatasetInfo:
    """What an algorithm needs to know to build a network for the data."""

    name: str
    input_shape: tuple[int, ...]  # one sample at one time step, e.g. (1, 8, 8)
    num_classes: int
    kind: Literal["static", "events"] = "static"
    mean: tuple[float, ...] | None = None  # published per-channel statistics, for normalisation
    std: tuple[float, ...] | None = None
    sizes: tuple[int, int] | None = None  # (train, test) samples, where known without loading

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x − mean) / std`` per channel (axis 1 of ``[B, C, ...]``) with the published statistics, or
        ``x`` unchanged when the dataset has none."""
        if self.mean is None or self.std is None:
            return x
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        return (x - mean) / torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)


@dataclass
class Split:
    """One split held in memory: ``x`` (see module docstring) and integer labels ``y``."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def take(self, n: int | None, seed: int = 0) -> Split:
        """A fixed, class-stratified subset of ``n`` samples (same for every run and seed)."""
        if n is None or n >= len(self):
            return self
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self), generator=generator)
        # round-robin over classes in the permuted order keeps the class balance of the split
        labels = self.y[order]
        rank = torch.empty_like(order)
        for cls in labels.unique():
            members = (labels == cls).nonzero().flatten()
            rank[members] = torch.arange(len(members))
        chosen = order[torch.argsort(rank * (int(labels.max()) + 1) + labels, stable=True)[:n]]
        chosen, _ = chosen.sort()
        return Split(self.x[chosen], self.y[chosen])

    def carve_validation(self, fraction: float, seed: int) -> tuple[Split, Split, dict[str, object]]:
        """``(train, validation, provenance)``: ``round(fraction · n_c)`` samples of every class ``c``, drawn
        with a generator seeded by ``seed``, form the validation split (at least one per class of two or
        more samples, never a whole class; unstratified when no class has two, as in tiny subsets); the
        provenance holds the sizes and the sha256 of the validation indices (positions in this split)."""
        generator = torch.Generator().manual_seed(seed)
        chosen = []
        for cls in self.y.unique(sorted=True):
            members = (self.y == cls).nonzero().flatten()
            # at least one per class, never a whole class (a class of one sample stays in training)
            take = min(max(1, round(fraction * len(members))), len(members) - 1)
            chosen.append(members[torch.randperm(len(members), generator=generator)[:take]])
        val_index = torch.cat(chosen)
        if len(val_index) == 0:  # a tiny subset (smoke budgets): no class has two samples; draw unstratified
            take = min(max(1, round(fraction * len(self))), len(self) - 1)
            val_index = torch.randperm(len(self), generator=generator)[:take]
        val_index = val_index.sort().values
        keep = torch.ones(len(self), dtype=torch.bool)
        keep[val_index] = False
        provenance = {
            "fraction": fraction,
            "seed": seed,
            "train_size": int(keep.sum()),
            "validation_size": len(val_index),
            "index_sha256": hashlib.sha256(val_index.numpy().astype("<i8").tobytes()).hexdigest(),
        }
        return Split(self.x[keep], self.y[keep]), Split(self.x[val_index], self.y[val_index]), provenance

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        transform: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Mini-batches, the last one partial (never dropped); no per-sample Python work."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            x = self.x[index]
            if (
                not x.is_floating_point()
            ):  # event counts are held as int16 (half the memory, fast cache reads)
                x = x.float()
            if transform is not None:
                x = transform(x, generator)
            yield x.to(device, non_blocking=True), self.y[index].to(device, non_blocking=True)

    def fingerprint(self) -> str:
        """sha256 of labels and data, to record exactly which samples a run saw."""
        digest = hashlib.sha256()
        digest.update(self.y.numpy().tobytes())
        digest.update(self.x.contiguous().numpy().tobytes())
        return digest.hexdigest()


@dataclass
class LoadedDataset:
    """Both splits, the info, an optional training augmentation, and provenance for the record."""

    info: DatasetInfo
    train: Split
    test: Split
    augment: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = None
    provenance: dict[str, object] = field(default_factory=dict)


class DatasetOptions(BaseModel):
    """Per-dataset options a suite may set under ``dataset_options`` (none by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Dataset(ABC):
    """A dataset family member. Subclasses set ``description``, ``Options`` and implement ``load``."""

    registry_name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[DatasetOptions]] = DatasetOptions

    @abstractmethod
    def info(self, options: DatasetOptions) -> DatasetInfo:
        """Static facts about the data (shapes, classes) without loading it."""

    @abstractmethod
    def load(self, options: DatasetOptions, root: Path, T: int) -> LoadedDataset:
        """Load both splits into memory (event sets: binned to ``T`` frames)."""

    def remote_files(self) -> list[RemoteFile]:
        """The published files this dataset is read from (none for embedded datasets)."""
        return []

    def folder(self, root: Path) -> Path:
        """Where the files live under the data root."""
        return root / self.registry_name

    def extracted(self, root: Path) -> list[Path]:
        """Already-extracted data accepted when the archives are gone (empty: none found or not supported)."""
        return []

    def status(self, root: Path) -> str:
        """A word for ``snnbench datasets list``: embedded, present, extracted, partial (k/n), missing."""
        files = self.remote_files()
        if not files:
            return "embedded"
        present = sum((self.folder(root) / f.name).exists() for f in files)
        if present == len(files):
            return "present"
        if self.extracted(root):
            return "extracted"
        return f"partial ({present}/{len(files)})" if present else "missing"

    def download(self, root: Path, progress: object | None = None) -> list[Path]:
        """Fetch every missing file (resuming, verified); intact files are kept."""
        from snnbench.data.download import download

        return [download(self.registry_name, f, self.folder(root), progress) for f in self.remote_files()]

    def verify(self, root: Path) -> dict[str, str]:
        """``{file: md5}`` of the dataset's files, each checked against the published MD5 (a bad file is set
        aside and :class:`~snnbench.data.download.ChecksumError` raised); extracted data without its archives
        is listed as ``{path: "extracted, sha256 of names and sizes <hex>"}``. Missing files raise
        :class:`~snnbench.data.download.DatasetMissingError` naming files, URLs and the download command."""
        from snnbench.data.download import DatasetMissingError, verify

        folder = self.folder(root)
        missing = [f for f in self.remote_files() if not (folder / f.name).exists()]
        if missing:
            extracted = self.extracted(root)
            if not extracted:
                raise DatasetMissingError(self.registry_name, folder, missing)
            listing = hashlib.sha256()
            for path in sorted(extracted):
                listing.update(f"{path.relative_to(folder)}:{path.stat().st_size}\n".encode())
            return {"extracted": f"{len(extracted)} files, sha256 of names and sizes {listing.hexdigest()}"}
        return {f.name: verify(folder / f.name, f.md5) for f in self.remote_files()}
