"""CIFAR-10 and CIFAR-100: the python-pickle tarballs (Krizhevsky 2009), read without extracting.

``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``;
``cifar-100-python.tar.gz`` holds ``cifar-100-python/train`` and ``test`` (fine labels used). Each pickle
is a dict with ``data`` (uint8 ``[N, 3072]``, channel-major 32×32) and the labels. An extracted folder
is accepted when the tarball is gone, each file checked against its published MD5 (torchvision's
``CIFAR10.train_list``). The pickles are read by an unpickler that builds only what the format holds
(dicts, lists, bytes, numbers and uint8 arrays): a planted pickle cannot run code. Preprocessing as in
the papers: per-channel normalisation with the published mean/std (``normalize: false`` keeps [0, 1] for
rate/latency coding), and for training a random 32×32 crop of the 4-padded image plus a horizontal flip
(``augment``), batched in torch.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from snnbench.data import datasets
from snnbench.data._base import Dataset, DatasetInfo, DatasetOptions, LoadedDataset, Split
from snnbench.data.download import RemoteFile, verify
from snnbench.data.preprocess import crop_and_flip, normalize
from snnbench.errors import SnnbenchError

# the only globals a CIFAR pickle references: NumPy's array reconstruction (numpy.core before NumPy 2) and
# _codecs.encode, which Python 3 uses for bytes in protocol-2 pickles
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _CifarUnpickler(pickle.Unpickler):
    """Refuses every global but :data:`_PICKLE_GLOBALS`."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of the CIFAR format")
        return super().find_class(module, name)


class CifarOptions(DatasetOptions):
    normalize: bool = Field(True, description="standardise with the published per-channel mean/std")
    augment: bool = Field(True, description="random crop (padding 4) and horizontal flip of training images")


class CifarDataset(Dataset):
    """One CIFAR tarball; subclasses name the members and the label key."""

    Options = CifarOptions
    archive: RemoteFile
    folder_name: str
    train_members: tuple[str, ...]
    test_members: tuple[str, ...]
    members_md5: dict[str, str]  # of the extracted train and test members
    label_key: bytes
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def remote_files(self) -> list[RemoteFile]:
        return [self.archive]

    def extracted(self, root: Path) -> list[Path]:
        paths = [self.folder(root) / self.folder_name / m for m in self.train_members + self.test_members]
        return paths if all(p.exists() for p in paths) else []

    def info(self, options: DatasetOptions) -> DatasetInfo:
        assert isinstance(options, CifarOptions)
        stats = {} if options.normalize else {"mean": self.mean, "std": self.std}
        sizes = (50_000, 10_000)
        return DatasetInfo(self.registry_name, (3, 32, 32), self.num_classes, sizes=sizes, **stats)  # type: ignore[arg-type]

    def verify(self, root: Path) -> dict[str, str]:
        """The tarball's MD5, or each extracted member's against its published MD5 (a bad one is set
        aside)."""
        checksums = super().verify(root)
        if "extracted" not in checksums:
            return checksums
        folder = self.folder(root) / self.folder_name
        return {f"{self.folder_name}/{m}": verify(folder / m, md5) for m, md5 in self.members_md5.items()}

    def _read_members(self, root: Path) -> dict[str, bytes]:
        archive = self.folder(root) / self.archive.name
        names = self.train_members + self.test_members
        if not archive.exists():
            return {m: (self.folder(root) / self.folder_name / m).read_bytes() for m in names}
        with tarfile.open(archive, "r:gz") as tar:
            found = {}
            for m in names:
                member = tar.extractfile(f"{self.folder_name}/{m}")
                if member is None:
                    raise SnnbenchError(f"{archive}: no member {self.folder_name}/{m}")
                found[m] = member.read()
            return found

    def _split(self, blobs: dict[str, bytes], where: str) -> Split:
        images, labels = [], []
        for member, blob in blobs.items():
            try:
                entry = _CifarUnpickler(io.BytesIO(blob), encoding="bytes").load()
            except (pickle.UnpicklingError, EOFError, ValueError) as exc:
                raise SnnbenchError(f"{where}/{member}: not a CIFAR pickle ({exc})") from None
            if not isinstance(entry, dict) or b"data" not in entry or self.label_key not in entry:
                raise SnnbenchError(f"{where}/{member}: pickle lacks b'data' or {self.label_key!r}")
            images.append(np.asarray(entry[b"data"], dtype=np.uint8))
            labels.append(np.asarray(entry[self.label_key], dtype=np.int64))
        x = torch.from_numpy(np.concatenate(images).reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
        return Split(x, torch.from_numpy(np.concatenate(labels)))

    def load(self, options: DatasetOptions, root: Path, T: int) -> LoadedDataset:
        assert isinstance(options, CifarOptions)
        checksums = self.verify(root)
        members = self._read_members(root)
        where = str(self.folder(root) / self.folder_name)
        train = self._split({m: members[m] for m in self.train_members}, where)
        test = self._split({m: members[m] for m in self.test_members}, where)
        fill: tuple[float, ...] = (0.0, 0.0, 0.0)
        if options.normalize:
            train = Split(normalize(train.x, self.mean, self.std), train.y)
            test = Split(normalize(test.x, self.mean, self.std), test.y)
            fill = tuple(-m / s for m, s in zip(self.mean, self.std, strict=True))
        augment = crop_and_flip(4, fill) if options.augment else None
        provenance = {"files_md5": checksums, "normalized": options.normalize, "augment": options.augment}
        return LoadedDataset(self.info(options), train, test, augment=augment, provenance=provenance)


@datasets.register("cifar10")
class CIFAR10(CifarDataset):
    description = "CIFAR-10 natural images, 32×32×3, 10 classes, 50,000 / 10,000 (python pickles)"
    archive = RemoteFile(
        "cifar-10-python.tar.gz",
        ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
        "c58f30108f718f92721af3b95e74349a",
    )
    folder_name = "cifar-10-batches-py"
    train_members = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_members = ("test_batch",)
    members_md5 = {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
    }
    label_key = b"labels"
    num_classes = 10
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@datasets.register("cifar100")
class CIFAR100(CifarDataset):
    description = "CIFAR-100 natural images, 32×32×3, 100 fine classes, 50,000 / 10,000 (python pickles)"
    archive = RemoteFile(
        "cifar-100-python.tar.gz",
        ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
        "eb9058c3a382ffc7106e4002c42a8d85",
    )
    folder_name = "cifar-100-python"
    train_members = ("train",)
    test_members = ("test",)
    members_md5 = {"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"}
    label_key = b"fine_labels"
    num_classes = 100
    mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
