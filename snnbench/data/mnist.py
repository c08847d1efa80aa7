"""MNIST and Fashion-MNIST: the IDX files (gzip), parsed here.

IDX: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions, then each dimension as a
big-endian int32, then the data. Images are stored in [0, 1]; with ``normalize: true`` (default) they are
standardised with the dataset's published mean/std, as in the papers' pipelines (``Normalize((0.1307,),
(0.3081,))`` for MNIST). Rate/latency encodings need intensities: set ``normalize: false`` for them.
The official 60,000/10,000 split; no augmentation.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from snnbench.data import datasets
from snnbench.data._base import Dataset, DatasetInfo, DatasetOptions, LoadedDataset, Split
from snnbench.data.download import RemoteFile
from snnbench.data.preprocess import normalize
from snnbench.errors import SnnbenchError

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (``.gz`` or raw) as a NumPy array of its declared type and shape."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise SnnbenchError(f"{path}: not an IDX file (magic bytes {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected = 4 + 4 * ndim + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise SnnbenchError(f"{path}: IDX header says {shape} ({expected} bytes), file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(shape)


class IdxOptions(DatasetOptions):
    normalize: bool = Field(True, description="standardise with the published mean/std")


class IdxDataset(Dataset):
    """A dataset of four IDX files; subclasses give URLs, checksums and statistics."""

    Options = IdxOptions
    base_urls: tuple[str, ...]
    md5: dict[str, str]
    mean: float
    std: float

    def remote_files(self) -> list[RemoteFile]:
        return [
            RemoteFile(f"{n}.gz", tuple(u + f"{n}.gz" for u in self.base_urls), self.md5[n]) for n in FILES
        ]

    def extracted(self, root: Path) -> list[Path]:
        paths = [self.folder(root) / n for n in FILES]
        return paths if all(p.exists() for p in paths) else []

    def info(self, options: DatasetOptions) -> DatasetInfo:
        assert isinstance(options, IdxOptions)
        stats = {} if options.normalize else {"mean": (self.mean,), "std": (self.std,)}
        return DatasetInfo(self.registry_name, (1, 28, 28), 10, sizes=(60_000, 10_000), **stats)  # type: ignore[arg-type]

    def load(self, options: DatasetOptions, root: Path, T: int) -> LoadedDataset:
        assert isinstance(options, IdxOptions)
        checksums = self.verify(root)
        folder = self.folder(root)

        def read(name: str) -> np.ndarray:
            gz = folder / f"{name}.gz"
            return read_idx(gz if gz.exists() else folder / name)

        splits = []
        for prefix in ("train", "t10k"):
            images, labels = read(f"{prefix}-images-idx3-ubyte"), read(f"{prefix}-labels-idx1-ubyte")
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise SnnbenchError(
                    f"{folder}: {prefix} images {images.shape} do not match labels {labels.shape}"
                )
            x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
            if options.normalize:
                x = normalize(x, (self.mean,), (self.std,))
            splits.append(Split(x, torch.from_numpy(labels.astype(np.int64))))
        provenance = {"files_md5": checksums, "normalized": options.normalize}
        return LoadedDataset(self.info(options), splits[0], splits[1], provenance=provenance)


@datasets.register("mnist")
class MNIST(IdxDataset):
    description = "MNIST handwritten digits, 28×28, 60,000 / 10,000 (IDX, LeCun et al. 1998)"
    base_urls = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
    md5 = {
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    mean, std = 0.1307, 0.3081


@datasets.register("fashion-mnist")
class FashionMNIST(IdxDataset):
    description = "Fashion-MNIST clothing images, 28×28, 60,000 / 10,000 (IDX, Xiao et al. 2017)"
    base_urls = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    md5 = {
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    mean, std = 0.2860, 0.3530
