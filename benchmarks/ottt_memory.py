"""Training memory of OTTT against BPTT on the same network as T grows.

    .venv/bin/python benchmarks/ottt_memory.py [--batch 32] [--device cpu|cuda]

Measures, for one training batch at T = 4, 8, 16, 32, the peak bytes held by autograd's saved tensors
(counted exactly through ``torch.autograd.graph.saved_tensors_hooks``; on CUDA also the allocator's peak):
OTTT runs a backward pass per step, so nothing from earlier steps is kept; BPTT keeps every step's graph.
Network: OTTT's scaled-WS conv net on 3×32×32 input (64C3-AP2-128C3-AP2-256, CIFAR-sized).
"""

from __future__ import annotations

import argparse

import torch

from snnbench.algorithms.ottt import OTTT, ottt_loss
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo


class SavedTensorMeter:
    """Current and peak bytes of tensors saved for backward."""

    def __init__(self) -> None:
        self.current = self.peak = 0

    def pack(self, tensor: torch.Tensor) -> tuple[torch.Tensor, _Release]:
        size = tensor.numel() * tensor.element_size()
        self.current += size
        self.peak = max(self.peak, self.current)
        return tensor, _Release(self, size)

    @staticmethod
    def unpack(packed: tuple[torch.Tensor, _Release]) -> torch.Tensor:
        return packed[0]


class _Release:
    def __init__(self, meter: SavedTensorMeter, size: int) -> None:
        self.meter, self.size = meter, size

    def __del__(self) -> None:
        self.meter.current -= self.size


def peak_training_bytes(T: int, online: bool, batch: int, device: torch.device) -> tuple[int, int]:
    torch.manual_seed(0)
    algorithm = OTTT(
        OTTT.Config(), resolve_architecture("64C3-AP2-128C3-AP2-256"), DatasetInfo("x", (3, 32, 32), 10)
    )
    net = algorithm.build(T).to(device)
    net.train()
    net.reset()
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    meter = SavedTensorMeter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack):
        losses = []
        for _ in range(T):
            loss = ottt_loss(net.step(x, online=online), y, 0.05, T)
            if online:
                loss.backward()
            else:
                losses.append(loss)
        if not online:
            torch.stack(losses).sum().backward()
    cuda_peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return meter.peak, cuda_peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"saved-tensor peak per training batch (batch {args.batch}, device {device}); ratio to T = 4")
    print(
        f"{'T':>4} {'OTTT MiB':>10} {'ratio':>6} {'BPTT MiB':>10} {'ratio':>6}"
        + ("  CUDA peak OTTT/BPTT MiB" if device.type == "cuda" else "")
    )
    base: dict[bool, int] = {}
    for T in (4, 8, 16, 32):
        row = []
        cuda = []
        for online in (True, False):
            peak, cuda_peak = peak_training_bytes(T, online, args.batch, device)
            base.setdefault(online, peak)
            row += [peak / 2**20, peak / base[online]]
            cuda.append(cuda_peak / 2**20)
        extra = f"  {cuda[0]:.1f} / {cuda[1]:.1f}" if device.type == "cuda" else ""
        print(f"{T:>4} {row[0]:>10.1f} {row[1]:>6.2f} {row[2]:>10.1f} {row[3]:>6.2f}{extra}")


if __name__ == "__main__":
    main()
