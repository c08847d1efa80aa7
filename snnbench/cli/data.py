"""The ``datasets`` group: ``list``, ``download``, ``verify``, ``path``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from snnbench.cli import Group, _fail, app, console, err_console, rows_view, say

datasets_app = typer.Typer(
    help="Dataset files: list, download, import, verify, path.", no_args_is_help=True, cls=Group
)
app.add_typer(datasets_app, name="datasets")
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="data root (default: $SNNBENCH_DATA or the user cache dir)")
]


def _dataset(name: str) -> Any:
    from snnbench.data import datasets

    return datasets.get(name)()


@datasets_app.command("list", epilog="Example: snnbench datasets list --data-dir /data")
def datasets_list(data_dir: DataDir = None) -> None:
    """Every dataset with its description, status (embedded, present, extracted, missing; MNIST and
    Fashion-MNIST: verified by content, with the source: data root or system package), size on disk and
    folder (`snnbench list datasets` is an alias: the same table for the default data root)."""
    console.print(rows_view(*dataset_rows(data_dir)))


def dataset_rows(data_dir: Path | None) -> tuple[list[str], list[list[str]]]:
    """The headers and rows of `datasets list` (and its alias `list datasets`)."""
    from snnbench.data import data_root, datasets

    root = data_root(data_dir)
    rows = []
    for name in datasets.names():
        dataset = datasets.get(name)()
        folder = dataset.folder(root)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
        # IDX sets say where they were found (data root or system package); others read the data root
        source, where = dataset.source(root) if hasattr(dataset, "source") else ("data root", folder)
        if where != folder and where.exists():
            size = sum(p.stat().st_size for p in where.rglob("*") if p.is_file())
        embedded = not dataset.remote_files()
        shown = ["—", "—"] if embedded else [source, str(where)]
        rows.append([name, dataset.description, dataset.status(root), f"{size / 2**20:.1f} MiB", *shown])
    return ["dataset", "description", "status", "size", "source", "folder"], rows


@datasets_app.command(
    "download",
    epilog="Example: snnbench datasets download mnist  "
    "(SNNBENCH_MIRROR=http://lab-server/data: use a mirror)",
)
def datasets_download(
    name: Annotated[str, typer.Argument(help="dataset name")], data_dir: DataDir = None
) -> None:
    """Download (resuming interrupted files), verify the published checksums, and unpack if needed."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from snnbench.data import data_root
    from snnbench.errors import SnnbenchError

    try:
        dataset = _dataset(name)
        columns = ("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, console=err_console, transient=True) as progress:
            paths = dataset.download(data_root(data_dir), progress)
        for path in paths:
            say(f"{path} ok")
    except SnnbenchError as exc:
        raise _fail(exc) from None


@datasets_app.command(
    "import",
    epilog="Example: snnbench datasets import fashion-mnist /media/usb/fashion  "
    "(Debian/Ubuntu: apt-get install dataset-fashion-mnist is found without import)",
)
def datasets_import(
    name: Annotated[str, typer.Argument(help="dataset name (mnist, fashion-mnist)")],
    folder: Annotated[Path, typer.Argument(help="folder holding the four IDX files, gzipped or not")],
    data_dir: DataDir = None,
) -> None:
    """Verify a folder's IDX files by the SHA-256 of their content and copy them into the data root
    (decompressed); nothing is written unless every file is the original."""
    from snnbench.data import data_root
    from snnbench.errors import SnnbenchError

    try:
        dataset = _dataset(name)
        if not hasattr(dataset, "import_folder"):
            raise SnnbenchError(
                f"{name}: import takes IDX datasets (mnist, fashion-mnist); put {name}'s files in "
                f"{dataset.folder(data_root(data_dir))} instead"
            )
        for path in dataset.import_folder(folder, data_root(data_dir)):
            say(f"{path} ok (content verified)")
    except SnnbenchError as exc:
        raise _fail(exc) from None


@datasets_app.command("verify", epilog="Example: snnbench datasets verify cifar10")
def datasets_verify(
    name: Annotated[str, typer.Argument(help="dataset name")], data_dir: DataDir = None
) -> None:
    """Check every file against its published checksum (MNIST/Fashion-MNIST: the SHA-256 of the decompressed
    content; others: the MD5, a bad file set aside); a bad file is named, exit 1."""
    from snnbench.data import data_root
    from snnbench.errors import SnnbenchError

    try:
        for file, digest in _dataset(name).verify(data_root(data_dir)).items():
            say(f"{file} {digest if digest.startswith('sha256') else 'md5 ' + digest} ok")
    except SnnbenchError as exc:
        raise _fail(exc) from None


@datasets_app.command("path", epilog="Example: snnbench datasets path nmnist")
def datasets_path(
    name: Annotated[str, typer.Argument(help="dataset name")], data_dir: DataDir = None
) -> None:
    """Print the folder where the dataset's files are expected."""
    from snnbench.data import data_root
    from snnbench.errors import SnnbenchError

    try:
        say(str(_dataset(name).folder(data_root(data_dir))))
    except SnnbenchError as exc:
        raise _fail(exc) from None
