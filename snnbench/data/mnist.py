"""MNIST and Fashion-MNIST: the IDX files (gzip), parsed here.

IDX: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions, then each dimension as a
big-endian int32, then the data. Images are stored in [0, 1]; with ``normalize: true`` (default) they are
standardised with the dataset's published mean/std, as in the papers' pipelines (``Normalize((0.1307,),
(0.3081,))`` for MNIST). Rate/latency encodings need intensities: set ``normalize: false`` for them.
The official 60,000/10,000 split; no augmentation.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from snnbench.data import datasets
from snnbench.data._base import Dataset, DatasetInfo, DatasetOptions, LoadedDataset, Split
from snnbench.data.download import DatasetMissingError, RemoteFile
from snnbench.data.preprocess import normalize
from snnbench.errors import SnnbenchError
from snnbench.records import atomic_write_bytes

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (``.gz`` or raw) as a NumPy array of its declared type and shape."""
    return parse_idx(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes(), path)


def parse_idx(raw: bytes, path: Path) -> np.ndarray:
    """The decompressed bytes of an IDX file as an array (``path`` names the file in errors)."""
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


@dataclass(frozen=True)
class IdxSource:
    """Where the four IDX files were found: the folder, a label for records and ``datasets list``, and each
    file's path (``.gz`` or raw)."""

    folder: Path
    label: str
    paths: dict[str, Path]


def debian_package_version(package: str, status: Path = Path("/var/lib/dpkg/status")) -> str | None:
    """The installed version of a Debian package, read from dpkg's status file (None when not installed)."""
    try:
        text = status.read_text(errors="replace")
    except OSError:
        return None
    for stanza in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " ")
        if fields.get("Package") == package and "installed" in fields.get("Status", ""):
            return fields.get("Version")
    return None


class IdxDataset(Dataset):
    """A dataset of four IDX files; subclasses give URLs, checksums, system folders and statistics.

    Verification is of the content, not the container: the SHA-256 of each decompressed IDX file must equal
    the original's (``content_sha256``), so that a recompressed copy (Debian's ``.gz`` files differ from the
    upstream archives byte for byte) or a folder of raw IDX files is accepted, and a file whose content
    differs is refused with its path named (nothing is renamed or written). Downloads keep the published
    MD5 of the upstream ``.gz`` (``download.py``). Files are looked for in the data root's folder first, then
    in ``system_folders`` (where an operating-system package installs them); ``snnbench datasets import``
    copies any other folder's verified files into the data root."""

    Options = IdxOptions
    base_urls: tuple[str, ...]
    md5: dict[str, str]
    content_sha256: dict[str, str]
    system_folders: tuple[tuple[str, Path], ...] = ()  # (Debian package, folder)
    mean: float
    std: float

    def remote_files(self) -> list[RemoteFile]:
        return [
            RemoteFile(f"{n}.gz", tuple(u + f"{n}.gz" for u in self.base_urls), self.md5[n]) for n in FILES
        ]

    def extracted(self, root: Path) -> list[Path]:
        paths = [self.folder(root) / n for n in FILES]
        return paths if all(p.exists() for p in paths) else []

    @staticmethod
    def _files_in(folder: Path) -> dict[str, Path]:
        """Each IDX file of ``folder``, gzipped or raw (the ``.gz`` preferred); only files that exist."""
        found = {}
        for name in FILES:
            for candidate in (folder / f"{name}.gz", folder / name):
                if candidate.is_file():
                    found[name] = candidate
                    break
        return found

    def locate(self, root: Path) -> IdxSource:
        """The first place holding all four files: the data root's folder, then each system folder.

        A data-root folder with some files missing is an error naming them (never silently skipped)."""
        folder = self.folder(root)
        found = self._files_in(folder)
        if len(found) == len(FILES):
            return IdxSource(folder, f"data root ({folder})", found)
        for package, system in self.system_folders:
            in_system = self._files_in(system)
            if len(in_system) == len(FILES) and not found:
                version = debian_package_version(package)
                owner = f"system package {package} {version}" if version else f"system folder of {package}"
                return IdxSource(system, f"{owner} ({system})", in_system)
        missing = [f for f in self.remote_files() if f.name.removesuffix(".gz") not in found]
        raise DatasetMissingError(self.registry_name, folder, missing, hint=self.install_hint())

    def install_hint(self) -> str:
        packages = " ".join(package for package, _ in self.system_folders)
        offline = (
            f"On Debian/Ubuntu: `apt-get install {packages}` (found automatically). " if packages else ""
        )
        return (
            f"{offline}A folder holding the four IDX files (gzipped or not): "
            f"`snnbench datasets import {self.registry_name} FOLDER`."
        )

    def read_verified(self, source: IdxSource) -> dict[str, tuple[bytes, str, str | None]]:
        """``{file: (decompressed bytes, sha256, md5 of the .gz if it is the published one)}``; a file whose
        content is not the original's raises :class:`ContentMismatchError` naming it (nothing is written)."""
        out: dict[str, tuple[bytes, str, str | None]] = {}
        upstream_md5 = {f.name.removesuffix(".gz"): f.md5 for f in self.remote_files()}
        for name in FILES:
            path = source.paths[name]
            container = path.read_bytes()
            if path.suffix == ".gz":
                try:
                    raw = gzip.decompress(container)
                except (OSError, EOFError, zlib.error) as exc:
                    raise ContentMismatchError(path, f"not a readable gzip file ({exc})") from None
                gz_md5 = hashlib.md5(container, usedforsecurity=False).hexdigest()
                published = gz_md5 if gz_md5 == upstream_md5[name] else None
            else:
                raw, published = container, None
            digest = hashlib.sha256(raw).hexdigest()
            if digest != self.content_sha256[name]:
                raise ContentMismatchError(
                    path, f"content sha256 {digest} is not the original's {self.content_sha256[name]}"
                )
            out[name] = (raw, digest, published)
        return out

    def source(self, root: Path) -> tuple[str, Path]:
        """Where the files are read from, for ``datasets list``: a label and the folder."""
        try:
            found = self.locate(root)
        except DatasetMissingError:
            return "data root", self.folder(root)
        return found.label.removesuffix(f" ({found.folder})"), found.folder

    def status(self, root: Path) -> str:
        """``verified`` when all four files are found and their content is the original's."""
        try:
            source = self.locate(root)
        except DatasetMissingError:
            present = len(self._files_in(self.folder(root)))
            return f"partial ({present}/{len(FILES)})" if present else "missing"
        try:
            self.read_verified(source)
        except ContentMismatchError as exc:
            return f"refused: {exc}"
        return "verified"

    def verify(self, root: Path) -> dict[str, str]:
        """``{file: "sha256 <hex> of the content, from <source>"}`` per file (see :meth:`read_verified`)."""
        source = self.locate(root)
        return {
            source.paths[name].name: f"sha256 {digest} of the content, from {source.label}"
            for name, (_, digest, _) in self.read_verified(source).items()
        }

    def info(self, options: DatasetOptions) -> DatasetInfo:
        assert isinstance(options, IdxOptions)
        stats = {} if options.normalize else {"mean": (self.mean,), "std": (self.std,)}
        return DatasetInfo(self.registry_name, (1, 28, 28), 10, sizes=(60_000, 10_000), **stats)  # type: ignore[arg-type]

    def load(self, options: DatasetOptions, root: Path, T: int) -> LoadedDataset:
        assert isinstance(options, IdxOptions)
        source = self.locate(root)
        verified = self.read_verified(source)
        splits = []
        for prefix in ("train", "t10k"):
            images = parse_idx(
                verified[f"{prefix}-images-idx3-ubyte"][0], source.paths[f"{prefix}-images-idx3-ubyte"]
            )
            labels = parse_idx(
                verified[f"{prefix}-labels-idx1-ubyte"][0], source.paths[f"{prefix}-labels-idx1-ubyte"]
            )
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise SnnbenchError(
                    f"{source.folder}: {prefix} images {images.shape} do not match labels {labels.shape}"
                )
            x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
            if options.normalize:
                x = normalize(x, (self.mean,), (self.std,))
            splits.append(Split(x, torch.from_numpy(labels.astype(np.int64))))
        provenance: dict[str, object] = {
            "source": source.label,
            "files_sha256": {name: digest for name, (_, digest, _) in verified.items()},
            "normalized": options.normalize,
        }
        published = {f"{name}.gz": md5 for name, (_, _, md5) in verified.items() if md5 is not None}
        if len(published) == len(FILES):  # the upstream archives themselves (a download)
            provenance["files_md5"] = published
        return LoadedDataset(self.info(options), splits[0], splits[1], provenance=provenance)

    def import_folder(self, folder: Path, root: Path) -> list[Path]:
        """Verify the four IDX files of ``folder`` (gzipped or not) and write their decompressed content
        into the data root's folder; nothing is written unless all four are the originals."""
        found = self._files_in(folder)
        missing = [name for name in FILES if name not in found]
        if missing:
            raise SnnbenchError(f"{folder}: missing {', '.join(missing)} (gzipped or not)")
        verified = self.read_verified(IdxSource(folder, str(folder), found))
        target = self.folder(root)
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for name, (raw, _, _) in verified.items():
            atomic_write_bytes(target / name, raw)
            written.append(target / name)
        return written


class ContentMismatchError(SnnbenchError):
    """A dataset file whose decompressed content is not the original's (refused, never renamed)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: refused: {reason}; the file was not used (nothing written)")


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
    content_sha256 = {  # the decompressed upstream files (published by several independent projects)
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
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
    content_sha256 = {  # the decompressed upstream files; Debian's recompressed package holds the same
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    }
    system_folders = (("dataset-fashion-mnist", Path("/usr/share/datasets/fashion-mnist")),)
    mean, std = 0.2860, 0.3530
