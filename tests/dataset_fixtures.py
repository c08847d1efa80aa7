"""Small dataset files in the exact real formats, and a loopback HTTP server with Range support.

Formats: IDX (gzip) for MNIST/Fashion-MNIST; the CIFAR python-pickle tarballs; N-MNIST's 40-bit event
``.bin`` files in ``Train/<label>/`` zips; tonic's DVS Gesture repackaging (``ibmGesture*/userNN_<light>/
<label>.npy`` with x, y, p, t[ms] columns in a .tar.gz); SHD's HDF5 (``spikes/times``, ``spikes/units``,
``labels``, ``extra/*``) in a .zip.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from snnbench.data import datasets
from snnbench.data.download import RemoteFile


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: 0x00 0x00, type 0x08 (ubyte), ndim, big-endian int32 dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def mnist_files(n_train: int = 40, n_test: int = 20, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    files = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        files[f"{prefix}-images-idx3-ubyte.gz"] = _gz(idx_bytes(rng.integers(0, 256, (n, 28, 28))))
        files[f"{prefix}-labels-idx1-ubyte.gz"] = _gz(idx_bytes(np.arange(n) % 10))
    return files


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def cifar_files(hundred: bool, per_batch: int = 10, seed: int = 0) -> dict[str, bytes]:
    """The real layout: a dict with bytes keys per pickle (Python 2 pickles read with encoding='bytes')."""
    rng = np.random.default_rng(seed)
    classes = 100 if hundred else 10

    def batch(n: int, offset: int) -> bytes:
        labels = [(offset + i) % classes for i in range(n)]
        entry = {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), b"filenames": [b"x.png"] * n}
        if hundred:
            entry.update({b"fine_labels": labels, b"coarse_labels": [label // 5 for label in labels]})
        else:
            entry.update({b"labels": labels, b"batch_label": b"batch"})
        return pickle.dumps(entry, protocol=2)

    if hundred:
        members = {
            "cifar-100-python/train": batch(5 * per_batch, 0),
            "cifar-100-python/test": batch(per_batch, 3),
        }
        members["cifar-100-python/meta"] = pickle.dumps({b"fine_label_names": [b"c"] * 100}, protocol=2)
        return {"cifar-100-python.tar.gz": _tar_gz(members)}
    members = {f"cifar-10-batches-py/data_batch_{i}": batch(per_batch, i) for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = batch(per_batch, 7)
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": [b"c"] * 10}, protocol=2)
    return {"cifar-10-python.tar.gz": _tar_gz(members)}


def nmnist_bin(rng: np.random.Generator, n: int = 60) -> bytes:
    """N-MNIST event: x, y, (p << 7 | ts[22:16]), ts[15:8], ts[7:0] (µs)."""
    x, y = rng.integers(0, 34, n), rng.integers(0, 34, n)
    p, ts = rng.integers(0, 2, n), np.sort(rng.integers(0, 300_000, n))
    out = np.stack([x, y, (p << 7) | (ts >> 16) & 127, (ts >> 8) & 255, ts & 255], 1).astype(np.uint8)
    return out.tobytes()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def nmnist_files(per_class: int = 2, seed: int = 0, events: int = 60) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    files = {}
    for archive, folder in (("train.zip", "Train"), ("test.zip", "Test")):
        members = {
            f"{folder}/{c}/{i:05d}.bin": nmnist_bin(rng, events) for c in range(10) for i in range(per_class)
        }
        files[archive] = _zip(members)
    return files


def dvsgesture_files(users: int = 2, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)

    def recording() -> bytes:
        n = 200
        events = np.stack(
            [
                rng.integers(0, 128, n),
                rng.integers(0, 128, n),
                rng.integers(0, 2, n),
                np.sort(rng.integers(0, 6000, n)),
            ],
            1,
        ).astype(np.float64)
        buffer = io.BytesIO()
        np.save(buffer, events)
        return buffer.getvalue()

    files = {}
    for archive, folder, first in (
        ("ibmGestureTrain.tar.gz", "ibmGestureTrain", 1),
        ("ibmGestureTest.tar.gz", "ibmGestureTest", 24),
    ):
        members = {
            f"{folder}/user{first + u:02d}_{light}/{label}.npy": recording()
            for u, light in zip(range(users), ("fluorescent", "led"), strict=False)
            for label in range(11)
        }
        files[archive] = _tar_gz(members)
    return files


def shd_files(per_split: int = 24, seed: int = 0) -> dict[str, bytes]:
    import h5py

    rng = np.random.default_rng(seed)
    files = {}
    for split in ("train", "test"):
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as h5:
            times = h5.create_dataset("spikes/times", (per_split,), dtype=h5py.vlen_dtype(np.float32))
            units = h5.create_dataset("spikes/units", (per_split,), dtype=h5py.vlen_dtype(np.uint16))
            for i in range(per_split):
                n = int(rng.integers(50, 150))
                times[i] = np.sort(rng.uniform(0, 1.0, n)).astype(np.float32)  # seconds
                units[i] = rng.integers(0, 700, n).astype(np.uint16)
            h5.create_dataset("labels", data=(np.arange(per_split) % 20).astype(np.uint16))
            h5.create_dataset("extra/keys", data=np.array([f"digit-{k}".encode() for k in range(20)]))
            h5.create_dataset("extra/speaker", data=np.zeros(per_split, np.uint16))
        files[f"shd_{split}.h5.zip"] = _zip({f"shd_{split}.h5": buffer.getvalue()})
    return files


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def aedat4_bytes(t: np.ndarray, x: np.ndarray, y: np.ndarray, on: np.ndarray, width: int = 128) -> bytes:
    """An uncompressed AEDAT 4 file: magic, size-prefixed IOHeader flatbuffer (XML description of one
    EVTS stream), then one packet (stream id, size, size-prefixed EventPacket of 16-byte Event structs)."""
    import flatbuffers

    description = (
        '<dv version="2.0"><node name="outInfo" path="/mainloop/output/outInfo/">'
        '<node name="0" path="/mainloop/output/outInfo/0/">'
        '<attr key="compression" type="string">NONE</attr>'
        '<attr key="typeIdentifier" type="string">EVTS</attr>'
        '<node name="info" path="/mainloop/output/outInfo/0/info/">'
        f'<attr key="sizeX" type="int">{width}</attr>'
        f'<attr key="sizeY" type="int">{width}</attr></node></node></node></dv>'
    )
    builder = flatbuffers.Builder(256)
    text = builder.CreateString(description)
    builder.StartObject(3)  # compression (default None), file_data_position (default −1), description
    builder.PrependUOffsetTRelativeSlot(2, text, 0)
    builder.FinishSizePrefixed(builder.EndObject(), b"IOHE")
    header = bytes(builder.Output())
    builder = flatbuffers.Builder(1024)
    builder.StartVector(16, len(t), 8)
    for i in reversed(range(len(t))):  # struct Event {t: int64; x: int16; y: int16; on: bool} (16 bytes)
        builder.Prep(8, 16)
        builder.Pad(3)
        builder.PrependBool(bool(on[i]))
        builder.PrependInt16(int(y[i]))
        builder.PrependInt16(int(x[i]))
        builder.PrependInt64(int(t[i]))
    elements = builder.EndVector()
    builder.StartObject(1)
    builder.PrependUOffsetTRelativeSlot(0, elements, 0)
    builder.FinishSizePrefixed(builder.EndObject(), b"EVTS")
    packet = bytes(builder.Output())
    return b"#!AER-DAT4.0\r\n" + header + struct.pack("<ii", 0, len(packet)) + packet


def cifar10dvs_files(per_class: int = 10, seed: int = 0) -> dict[str, bytes]:
    """tonic's layout: CIFAR10DVS.zip holding <class>.zip files, each holding <class>/*.aedat4."""
    rng = np.random.default_rng(seed)
    outer = {}
    for name in CIFAR10_CLASSES:
        members = {}
        for i in range(per_class):
            n = 300
            members[f"{name}/cifar10_{name}_{i}.aedat4"] = aedat4_bytes(
                np.sort(rng.integers(0, 1_000_000, n)),
                rng.integers(0, 128, n),
                rng.integers(0, 128, n),
                rng.integers(0, 2, n),
            )
        outer[f"{name}.zip"] = _zip(members)
    return {"CIFAR10DVS.zip": _zip(outer)}


FIXTURES = {
    "mnist": mnist_files,
    "fashion-mnist": partial(mnist_files, seed=1),
    "cifar10": partial(cifar_files, False),
    "cifar100": partial(cifar_files, True),
    "nmnist": nmnist_files,
    "dvsgesture": dvsgesture_files,
    "shd": shd_files,
    "cifar10dvs": cifar10dvs_files,
}


def fixture_options(name: str, folder: Path) -> dict[str, object]:
    """Dataset options a fixture needs: CIFAR10-DVS's split index for 10 (not 1,000) recordings per class."""
    if name != "cifar10dvs":
        return {}
    import json

    from snnbench.data.neuromorphic import make_split_index

    path = folder / "cifar10dvs-fixture-split.json"
    path.write_text(json.dumps(make_split_index(dict.fromkeys(CIFAR10_CLASSES, 10))))
    return {"split_index": str(path)}


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def publish(monkeypatch, served: Path, name: str) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """Write ``name``'s fixture files under ``served/<name>/`` (the mirror layout) and make them the
    dataset's published files: their MD5s, and canonical URLs that cannot be reached."""
    files = FIXTURES[name]()
    (served / name).mkdir(parents=True, exist_ok=True)
    for file_name, data in files.items():
        (served / name / file_name).write_bytes(data)
    cls = datasets.get(name)
    real = cls.remote_files
    digests = {file_name: md5(data) for file_name, data in files.items()}

    def fixture_files(self):  # type: ignore[no-untyped-def]
        published = real(self)
        assert {f.name for f in published} == set(files), "fixture names must be the real file names"
        return [RemoteFile(f.name, (f"http://127.0.0.1:9/{f.name}",), digests[f.name]) for f in published]

    monkeypatch.setattr(cls, "remote_files", fixture_files)
    if hasattr(
        cls, "content_sha256"
    ):  # IDX sets verify the decompressed content: the fixture's is "original"
        content = {
            n.removesuffix(".gz"): hashlib.sha256(gzip.decompress(d)).hexdigest() for n, d in files.items()
        }
        monkeypatch.setattr(cls, "content_sha256", content)
    return files


class RangeHandler(SimpleHTTPRequestHandler):
    """Serves a folder with ``Range: bytes=N-`` support; can cut a file's first response short."""

    drop_after: dict[str, int] = {}
    log: list[tuple[str, str | None]] = []

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.log.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if (spec := self.headers.get("Range")) and spec.startswith("bytes="):
            start = int(spec[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.drop_after.pop(self.path, None)
        self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.close_connection = True


@contextmanager
def file_server(folder: Path) -> Iterator[tuple[str, type[RangeHandler]]]:
    """Serve ``folder`` on 127.0.0.1 (random port); yields the base URL and the handler class (log,
    drop_after)."""
    handler = type("Handler", (RangeHandler,), {"drop_after": {}, "log": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
