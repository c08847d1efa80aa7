"""Dataset files: published checksums, resumable downloads from a mirror or the canonical sources.

A file is usable only once its MD5 equals the published one; a downloaded file that does not match is
renamed ``*.corrupt`` (never read) and reported with both hashes. Downloads go to ``name.part`` and resume
with an HTTP ``Range`` request after an interruption. ``SNNBENCH_MIRROR`` (a base URL) is tried before the
canonical URLs: ``$SNNBENCH_MIRROR/<dataset>/<file name>``, so that an offline lab can serve the files.
Verified hashes are remembered in ``.snnbench-verified.json`` next to the files, so that runs do not rehash
gigabytes: see :func:`cached_md5` for why a planted or stale entry cannot pass a wrong file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from snnbench.errors import SnnbenchError
from snnbench.records import atomic_write_bytes

CHUNK = 1 << 20
ATTEMPTS_PER_URL = 3
MANIFEST = ".snnbench-verified.json"
KEY_ENV = "SNNBENCH_MANIFEST_KEY"


@dataclass(frozen=True)
class RemoteFile:
    """One published file: its name on disk, where to get it (canonical first), and its MD5."""

    name: str
    urls: tuple[str, ...]
    md5: str


class DatasetMissingError(SnnbenchError):
    """Files of a dataset are absent: names each file, its URLs, the folder, and the command to fetch them."""

    def __init__(self, dataset: str, folder: Path, missing: Sequence[RemoteFile], hint: str = "") -> None:
        lines = [f"dataset {dataset!r} is not in {folder}; missing:"]
        lines += [f"  {f.name} (md5 {f.md5}) from {' or '.join(f.urls)}" for f in missing]
        lines.append(
            f"Run `snnbench datasets download {dataset}` (set SNNBENCH_MIRROR=<base URL> to use a mirror), "
            f"or put the files there yourself (or choose another data root with --data-dir)."
        )
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


class ChecksumError(SnnbenchError):
    """A file's MD5 differs from the published one; the file has been set aside and is not used."""

    def __init__(self, path: Path, expected: str, got: str, moved_to: Path) -> None:
        super().__init__(
            f"{path}: checksum mismatch: expected md5 {expected}, got {got}; moved to {moved_to}"
        )


class DownloadError(SnnbenchError):
    """No URL delivered the file: names each URL tried and what it answered."""


def md5sum(path: Path) -> str:
    """MD5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_key() -> bytes | None:
    """This user's secret for the manifests' MACs: 32 random bytes in ``$SNNBENCH_MANIFEST_KEY`` (a file
    path), else ``manifest.key`` in the user's config directory (outside any data folder), created on first
    use readable by its owner only. None when it can be neither read nor created: nothing is cached then."""
    from platformdirs import user_config_dir

    path = Path(os.environ.get(KEY_ENV) or Path(user_config_dir("snnbench")) / "manifest.key").expanduser()
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(os.urandom(32))
            try:
                os.link(fresh, path)  # atomic and exclusive: a key made meanwhile by another process wins
            except FileExistsError:
                pass
            finally:
                fresh.unlink()
            key = path.read_bytes()
        except OSError:
            return None
    except OSError:
        return None
    return key if len(key) >= 32 else None


def _entry_mac(key: bytes, name: str, entry: dict[str, object]) -> str:
    fields = {k: entry.get(k) for k in ("size", "mtime_ns", "ctime_ns", "ino", "md5")}
    message = json.dumps({"name": name, **fields}, sort_keys=True).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _manifest(folder: Path) -> dict[str, dict[str, object]]:
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_md5(path: Path) -> str:
    """MD5 of ``path``, reused from the folder's manifest only while the entry is this user's and the file
    is the one that was hashed.

    The manifest exists so that runs do not rehash gigabytes, so it cannot key entries by a hash of the
    content (that reads the file: the cost it saves). Instead an entry names the file's identity as the
    kernel keeps it: size, mtime, inode and ctime. ctime cannot be set by a user (any write, ``touch -d``,
    rename or replacement of the file sets it to now), so a file swapped under a genuine entry is rehashed.
    The entry carries an HMAC-SHA256 of the file name, that identity and the MD5 under this user's secret
    (:func:`manifest_key`, kept outside the data folder): an entry written by anyone without the key (a
    poisoned manifest, one shipped in a copied data folder) does not verify and the file is rehashed.
    Entries live under the key's id, so users sharing a data folder keep their own. The cost: a copied
    or moved folder, or another user, rehashes once. Not covered: whoever can read this user's key (or edit
    snnbench itself)."""
    stat = path.stat()
    identity = {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,
        "ino": stat.st_ino,
    }
    key = manifest_key()
    if key is None:
        return md5sum(path)
    key_id = hashlib.sha256(key).hexdigest()[:16]
    manifest = _manifest(path.parent)
    mine = manifest.get(key_id)
    entries: dict[str, object] = mine if isinstance(mine, dict) else {}
    entry = entries.get(path.name)
    if (
        isinstance(entry, dict)
        and all(entry.get(k) == v for k, v in identity.items())
        and isinstance(entry.get("mac"), str)
        and hmac.compare_digest(str(entry["mac"]), _entry_mac(key, path.name, entry))
    ):
        return str(entry["md5"])
    digest = md5sum(path)
    fresh: dict[str, object] = {**identity, "md5": digest}
    fresh["mac"] = _entry_mac(key, path.name, fresh)
    entries[path.name] = fresh
    # other users' sections stay; entries of the old unkeyed layout (file name → entry) go
    manifest = {k: v for k, v in manifest.items() if isinstance(v, dict) and k != key_id and "md5" not in v}
    manifest[key_id] = entries
    try:
        atomic_write_bytes(path.parent / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
    except (OSError, SnnbenchError):  # a read-only data folder: verified, just not remembered
        pass
    return digest


def set_aside(path: Path, expected: str, got: str) -> ChecksumError:
    """Rename a bad file to ``*.corrupt`` (so it is never read) and return the error describing it."""
    moved = path.with_name(path.name + ".corrupt")
    path.replace(moved)
    return ChecksumError(path, expected, got, moved)


def verify(path: Path, md5: str) -> str:
    """The file's MD5 if it equals ``md5``; otherwise the file is set aside and :class:`ChecksumError`
    raised."""
    digest = cached_md5(path)
    if digest != md5:
        raise set_aside(path, md5, digest)
    return digest


def candidate_urls(dataset: str, file: RemoteFile) -> list[str]:
    """``$SNNBENCH_MIRROR/<dataset>/<name>`` first when set, then the published URLs."""
    mirror = os.environ.get("SNNBENCH_MIRROR", "").rstrip("/")
    return ([f"{mirror}/{dataset}/{file.name}"] if mirror else []) + list(file.urls)


def _fetch(url: str, part: Path, label: str, progress: object | None) -> None:
    """Append the rest of ``url`` to ``part`` (``Range`` from its size); raises OSError on interruption."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "snnbench"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:  # already complete
            return
        raise
    with response:
        if offset and response.status != 206:  # the server ignored Range: start over
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        task = progress.add_task(label, total=total, completed=offset) if progress is not None else None  # type: ignore[attr-defined]
        with part.open("ab" if offset else "wb") as handle:
            while chunk := response.read(CHUNK):
                handle.write(chunk)
                if task is not None:
                    progress.advance(task, len(chunk))  # type: ignore[attr-defined]
        if total is not None and part.stat().st_size < total:
            raise OSError(f"connection closed after {part.stat().st_size} of {total} bytes")


def download(dataset: str, file: RemoteFile, folder: Path, progress: object | None = None) -> Path:
    """Fetch ``file`` into ``folder`` (resuming a ``.part``), verify it, and return its path.

    An intact file already there is kept; each URL is tried up to three times, resuming each time."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file.name
    if target.exists():
        try:
            verify(target, file.md5)
            return target
        except ChecksumError:
            pass  # set aside: download a fresh copy
    part = folder / (file.name + ".part")
    failures: dict[str, list[str]] = {}
    for url in candidate_urls(dataset, file):
        for attempt in range(ATTEMPTS_PER_URL):
            try:
                _fetch(url, part, file.name, progress)
                break
            except (OSError, urllib.error.URLError) as exc:
                failures.setdefault(url, []).append(str(exc))
                time.sleep(0.2 * attempt)
        else:
            continue
        digest = md5sum(part)
        if digest != file.md5:
            raise set_aside(part, file.md5, digest)
        part.replace(target)
        cached_md5(target)
        return target
    answers = [
        f"  {url}: {'; '.join(dict.fromkeys(errors))} ({len(errors)} attempts)"
        for url, errors in failures.items()
    ]
    raise DownloadError(
        f"could not download {file.name}; what each source answered:\n"
        + "\n".join(answers + download_alternatives(dataset, file, folder))
    )


def download_alternatives(dataset: str, file: RemoteFile, folder: Path) -> list[str]:
    """What to do when no source delivered ``file``: a mirror, copying it in, another data root."""
    mirror = os.environ.get("SNNBENCH_MIRROR", "").rstrip("/")
    at = f"{dataset}/{file.name}"
    if mirror:
        serve = f"the mirror SNNBENCH_MIRROR={mirror} was tried first: serve the file at {mirror}/{at}"
    else:
        serve = f"set SNNBENCH_MIRROR=<base URL> to fetch it from a mirror serving <base URL>/{at}"
    copy = f"  or copy {file.name} (md5 {file.md5}) into {folder} yourself"
    if _importable(dataset):
        copy += f" (`snnbench datasets import {dataset} FOLDER` verifies a folder's files and copies them)"
    return [
        "Other ways to get it:",
        f"  {serve};",
        copy + ";",
        "  or point --data-dir (or SNNBENCH_DATA) at a data root that already has it.",
    ]


def _importable(dataset: str) -> bool:
    """Whether ``snnbench datasets import`` takes the dataset's files from a folder."""
    from snnbench.data import datasets
    from snnbench.errors import UnknownNameError

    try:
        return hasattr(datasets.get(dataset), "import_folder")
    except UnknownNameError:
        return False
