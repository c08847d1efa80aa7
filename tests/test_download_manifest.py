"""The verification manifest (``.snnbench-verified.json``) saves rehashing but can never pass a wrong file:
a poisoned manifest, an entry written under another key, or a file swapped under a genuine entry is
rehashed and fails its MD5 (issue 47: a manifest trusting size + mtime let fake CIFAR train)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from snnbench.data import download
from snnbench.data.download import MANIFEST, ChecksumError, md5sum, verify

GENUINE = b"the published file" * 1000
FAKE = b"a planted fake file" * 1000  # other content, another length: a size-keyed entry would differ
FAKE_SAME_SIZE = bytes(reversed(GENUINE))


@pytest.fixture
def key(tmp_path, monkeypatch):
    """This test's user key, outside the data folder."""
    path = tmp_path / "config" / "manifest.key"
    monkeypatch.setenv(download.KEY_ENV, str(path))
    return path


def _same_mtime(path, stat) -> None:  # noqa: ANN001
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_genuine_entry_saves_the_rehash(key, tmp_path, monkeypatch):
    """The point of the manifest: a verified, untouched file is not read again."""
    file = tmp_path / "data" / "cifar.tar.gz"
    file.parent.mkdir()
    file.write_bytes(GENUINE)
    published = hashlib.md5(GENUINE).hexdigest()
    assert verify(file, published) == published
    assert oct(key.stat().st_mode & 0o777) == "0o600"  # the key is created readable by its owner only
    monkeypatch.setattr(download, "md5sum", lambda path: pytest.fail(f"{path} was rehashed"))
    assert verify(file, published) == published


@pytest.mark.parametrize("poison", ["unkeyed-size-mtime", "forged-mac", "copied-from-another-user"])
def test_a_poisoned_manifest_does_not_pass_a_wrong_file(key, tmp_path, poison):
    """A fake file with a manifest entry claiming the published MD5 for its exact size, mtime, ctime and
    inode: the old unkeyed layout, the new layout with a MAC not made with this user's key, and another
    user's genuine section copied in (its key id is not this user's) are all rehashed and the file fails."""
    file = tmp_path / "data" / "cifar.tar.gz"
    file.parent.mkdir()
    file.write_bytes(FAKE)
    stat = file.stat()
    published = hashlib.md5(GENUINE).hexdigest()
    identity = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns}
    identity["ino"] = stat.st_ino
    download.manifest_key()  # this user has a key
    if poison == "unkeyed-size-mtime":
        manifest = {file.name: {**identity, "md5": published}}
    elif poison == "forged-mac":
        guessed = b"\0" * 32
        entry = {**identity, "md5": published}
        entry["mac"] = download._entry_mac(guessed, file.name, entry)
        own_id = hashlib.sha256(key.read_bytes()).hexdigest()[:16]
        manifest = {own_id: {file.name: entry}}
    else:
        other = os.urandom(32)
        entry = {**identity, "md5": published}
        entry["mac"] = download._entry_mac(other, file.name, entry)
        manifest = {hashlib.sha256(other).hexdigest()[:16]: {file.name: entry}}
    (file.parent / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ChecksumError, match=f"cifar.tar.gz: checksum mismatch: expected md5 {published}"):
        verify(file, published)
    assert not file.exists() and file.with_name(file.name + ".corrupt").read_bytes() == FAKE


def test_a_file_swapped_under_a_genuine_entry_is_rehashed(key, tmp_path):
    """Same size, mtime restored with ``touch``: the kernel still moves the ctime, so the entry no longer
    names the file and the swap fails its MD5."""
    file = tmp_path / "cifar.tar.gz"
    file.write_bytes(GENUINE)
    published = md5sum(file)
    assert verify(file, published) == published
    stat = file.stat()
    file.write_bytes(FAKE_SAME_SIZE)
    _same_mtime(file, stat)
    assert file.stat().st_size == stat.st_size and file.stat().st_mtime_ns == stat.st_mtime_ns
    with pytest.raises(ChecksumError):
        verify(file, published)


def test_without_a_usable_key_nothing_is_cached(tmp_path, monkeypatch):
    """A key that cannot be read or created (a read-only home): every check hashes the file."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv(download.KEY_ENV, str(blocker / "manifest.key"))
    file = tmp_path / "cifar.tar.gz"
    file.write_bytes(GENUINE)
    published = md5sum(file)
    assert download.manifest_key() is None
    assert verify(file, published) == published and not (tmp_path / MANIFEST).exists()
