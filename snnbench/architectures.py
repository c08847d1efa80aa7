"""Architectures as layer lists in the papers' own notation, shared by every algorithm.

``"15C5-P2-40C5-P2-300"`` reads as: conv with 15 channels and a 5×5 kernel, pool 2, conv 40×5×5, pool 2,
fully connected 300. The output layer (``num_classes`` units) is always appended by the algorithm's
builder. An algorithm turns the layer list into its own modules with its own neuron model, so the same
name means the same topology for every method (Zenke/TSSL-BP/ST-RSBP papers use this notation).

Tokens (separated by ``-``):

===============  ==============================================================================
``400``          fully connected, 400 units
``R400``         fully connected with recurrent weights inside the layer (ST-RSBP's "R" layers)
``64C3``         convolution, 64 output channels, 3×3 kernel, stride 1, "same" padding (k // 2)
``64C3p0s2``     the same with explicit padding ``p`` and stride ``s``
``P2``           pooling 2×2, stride 2, of the algorithm's own kind (TSSL-BP: scaled sum-pool)
``AP2``/``MP2``  average / max pooling 2×2, stride 2
``GAP``          global average pooling to 1×1
``D0.2``         dropout with probability 0.2 (mask shared over time steps)
``B64``          residual basic block, 64 channels: two 3×3 convolutions; the shortcut is the identity,
                 or a 1×1 convolution where channels or stride change
``B128s2``       the same with stride 2 in its first convolution and its shortcut
===============  ==============================================================================

How a block's branch and shortcut meet (spikes added or ANDed, membranes added) is the method's: a
method that cannot build residual blocks refuses architectures that contain them.

Named architectures live in ``snnbench/models/*.py``, one file per family, registered in
:data:`architectures`. A suite may name one or give a notation string inline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from snnbench.errors import SnnbenchError, UnknownNameError
from snnbench.registry import Registry


@dataclass(frozen=True)
class Dense:
    """Fully connected layer (``recurrent``: plus weights within the layer)."""

    units: int
    recurrent: bool = False


@dataclass(frozen=True)
class Conv:
    """2-D convolution."""

    channels: int
    kernel: int
    stride: int = 1
    padding: int | None = None  # None: "same" (kernel // 2)

    @property
    def pad(self) -> int:
        """The padding actually used."""
        return self.kernel // 2 if self.padding is None else self.padding


@dataclass(frozen=True)
class Pool:
    """Pooling with a square window and stride equal to the window (``kind="default"``: algorithm's)."""

    size: int
    kind: Literal["default", "avg", "max", "global_avg"] = "default"


@dataclass(frozen=True)
class Dropout:
    """Dropout with probability ``p``."""

    p: float


@dataclass(frozen=True)
class Block:
    """Residual basic block (He et al. 2016): two 3×3 convolutions, ``stride`` in the first."""

    channels: int
    stride: int = 1


Layer = Dense | Conv | Pool | Dropout | Block


@dataclass(frozen=True)
class Architecture:
    """A named topology: the layer list (without the output layer) and where it comes from."""

    name: str
    notation: str
    layers: tuple[Layer, ...]
    source: str = ""
    description: str = ""
    options: dict[str, object] = field(default_factory=dict, hash=False, compare=False)


_TOKEN_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(\d+)$"), "dense"),
    (re.compile(r"^R(\d+)$"), "recurrent"),
    (re.compile(r"^(\d+)C(\d+)(?:p(\d+))?(?:s(\d+))?$"), "conv"),
    (re.compile(r"^(A|M)?P(\d+)$"), "pool"),
    (re.compile(r"^GAP$"), "gap"),
    (re.compile(r"^D(0?\.\d+)$"), "dropout"),
    (re.compile(r"^B(\d+)(?:s(\d+))?$"), "block"),
]


def parse_notation(notation: str) -> tuple[Layer, ...]:
    """Parse ``"15C5-P2-300"`` into layers; raises :class:`SnnbenchError` naming the bad token."""
    if not notation.strip():
        return ()
    layers: list[Layer] = []
    for token in notation.strip().split("-"):
        layers.append(_parse_token(token.strip(), notation))
    return tuple(layers)


def _parse_token(token: str, notation: str) -> Layer:
    for pattern, kind in _TOKEN_PATTERNS:
        match = pattern.match(token)
        if not match:
            continue
        groups = match.groups()
        sizes = (groups[0], groups[1], groups[3]) if kind == "conv" else groups[-1:]  # padding may be 0
        if kind != "dropout" and any(size is not None and int(size) == 0 for size in sizes):
            break  # a layer of size 0
        if kind == "dense":
            return Dense(int(groups[0]))
        if kind == "recurrent":
            return Dense(int(groups[0]), recurrent=True)
        if kind == "conv":
            channels, kernel, pad, stride = groups
            return Conv(int(channels), int(kernel), int(stride or 1), None if pad is None else int(pad))
        if kind == "pool":
            pool_kind = {"A": "avg", "M": "max", None: "default"}[groups[0]]
            return Pool(int(groups[1]), pool_kind)  # type: ignore[arg-type]
        if kind == "gap":
            return Pool(0, "global_avg")
        if kind == "block":
            return Block(int(groups[0]), int(groups[1] or 1))
        return Dropout(float(groups[0]))
    raise NotationError(notation, token)


class NotationError(SnnbenchError):
    """A token of a layer notation string cannot be read."""

    def __init__(self, notation: str, token: str) -> None:
        self.token = token
        super().__init__(
            f"architecture {notation!r}: cannot read token {token!r} "
            "(expected e.g. 400, R400, 64C3, 64C3p0s2, P2, AP2, MP2, GAP, D0.2, B64, B128s2; "
            "sizes at least 1)"
        )


architectures: Registry[Architecture] = Registry("architecture", package="snnbench.models")


def register_architecture(
    name: str, notation: str, source: str = "", description: str = "", **options: object
) -> Architecture:
    """Register a named architecture given in the notation above."""
    arch = Architecture(name, notation, parse_notation(notation), source, description, dict(options))
    architectures.register(name, arch)
    return arch


def resolve_architecture(name_or_notation: str) -> Architecture:
    """A registered name, or an inline notation string (e.g. ``"400-400"``)."""
    if name_or_notation in architectures:
        return architectures.get(name_or_notation)
    try:
        return Architecture(name_or_notation, name_or_notation, parse_notation(name_or_notation))
    except NotationError as exc:
        unknown = UnknownNameError("architecture", name_or_notation, architectures.names())
        raise SnnbenchError(
            f"{unknown}; or a layer notation like 400-400 or 16C3-AP2-128 (cannot read {exc.token!r})"
        ) from None


def conv_output_shape(shape: tuple[int, ...], layer: Conv | Block) -> tuple[int, int, int]:
    """``(C, H, W)`` after a convolution or a residual block (3×3, padding 1) on ``shape``."""
    kernel, pad = (layer.kernel, layer.pad) if isinstance(layer, Conv) else (3, 1)
    h = (shape[1] + 2 * pad - kernel) // layer.stride + 1
    w = (shape[2] + 2 * pad - kernel) // layer.stride + 1
    return (layer.channels, h, w)


def has_blocks(arch: Architecture) -> bool:
    """Whether ``arch`` contains residual blocks."""
    return any(isinstance(layer, Block) for layer in arch.layers)


def output_shape(layers: tuple[Layer, ...], input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape after ``layers`` for one sample (no batch/time axis); flattening happens at the first Dense."""
    shape = tuple(input_shape)
    for layer in layers:
        if isinstance(layer, Dense):
            shape = (layer.units,)
        elif isinstance(layer, (Conv, Block)):
            if len(shape) != 3:
                raise SnnbenchError(f"convolution needs (C, H, W) input, got shape {shape}")
            shape = conv_output_shape(shape, layer)
        elif isinstance(layer, Pool):
            if len(shape) != 3:
                raise SnnbenchError(f"pooling needs (C, H, W) input, got shape {shape}")
            c, h, w = shape
            shape = (c, 1, 1) if layer.kind == "global_avg" else (c, h // layer.size, w // layer.size)
        if any(d <= 0 for d in shape):
            raise SnnbenchError(f"architecture shrinks the input {input_shape} to {shape}")
    return shape
