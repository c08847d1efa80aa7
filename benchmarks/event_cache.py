"""First pass (tonic reads and bins every recording) vs second pass (binned frames from the disk cache).

    .venv/bin/python benchmarks/event_cache.py [--per-class 50] [--T 10]

Runs on an N-MNIST fixture in the real file format (tests/dataset_fixtures.py) served over loopback HTTP,
so it needs no download; prints both times and their ratio (the goal is ≥ 10×).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import dataset_fixtures  # noqa: E402

from snnbench.data import datasets  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=50, help="recordings per class and split")
    parser.add_argument(
        "--events", type=int, default=4000, help="events per recording (real N-MNIST: ~4,000)"
    )
    parser.add_argument("--T", type=int, default=10)
    args = parser.parse_args()
    dataset_fixtures.FIXTURES["nmnist"] = partial(
        dataset_fixtures.nmnist_files, per_class=args.per_class, events=args.events
    )
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        served, root = Path(tmp) / "served", Path(tmp) / "data"
        dataset_fixtures.publish(patch, served, "nmnist")
        with dataset_fixtures.file_server(served) as (url, _):
            patch.setenv("SNNBENCH_MIRROR", url)
            dataset = datasets.get("nmnist")()
            dataset.download(root)
        times = []
        for _ in range(2):
            start = time.perf_counter()
            loaded = dataset.load(dataset.Options(), root, args.T)
            times.append(time.perf_counter() - start)
    n = len(loaded.train) + len(loaded.test)
    print(
        f"N-MNIST fixture: {n} recordings of {args.events} events, T={args.T}, frames {tuple(loaded.train.x.shape)}"
    )
    print(f"first pass (tonic read + ToFrame + cache write): {times[0]:.3f} s")
    print(f"second pass (disk cache):                        {times[1]:.3f} s")
    print(f"speed-up: {times[0] / times[1]:.1f}x")


if __name__ == "__main__":
    main()
