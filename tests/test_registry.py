"""The registry: explicit registration, collisions, base classes, did-you-mean, plugin files."""

from __future__ import annotations

import pytest

from snnbench.algorithms import Algorithm, algorithms
from snnbench.architectures import (
    Block,
    Conv,
    Dense,
    Dropout,
    Pool,
    output_shape,
    parse_notation,
    resolve_architecture,
)
from snnbench.errors import SnnbenchError, UnknownNameError
from snnbench.registry import Registry


def test_register_get_and_suggest():
    registry: Registry[int] = Registry("thing")
    registry.register("alpha", 1)
    registry.register("beta", 2)
    assert registry.get("alpha") == 1 and registry.names() == ["alpha", "beta"]
    with pytest.raises(UnknownNameError) as info:
        registry.get("alpah")
    assert str(info.value) == "unknown thing 'alpah'; did you mean 'alpha'? Available: alpha, beta"


def test_duplicate_names_name_both_origins():
    registry: Registry[object] = Registry("thing")
    registry.register("x", object(), origin="a.py:1")
    with pytest.raises(ValueError, match="registered twice: a.py:1 and b.py:2"):
        registry.register("x", object(), origin="b.py:2")


def test_wrong_base_class_fails_at_registration():
    registry: Registry[type] = Registry("algorithm", base=Algorithm)
    with pytest.raises(TypeError, match="must subclass Algorithm"):
        registry.register("bad")(dict)


def test_frozen_registry_refuses_registration():
    registry: Registry[int] = Registry("thing")
    with registry.frozen(), pytest.raises(SnnbenchError, match="frozen"):
        registry.register("late", 3)
    registry.register("late", 3)


def test_plugin_file_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(SnnbenchError, match=r"empty\.py registers no algorithm"):
        algorithms.add_plugin_file(empty)
    broken = tmp_path / "broken.py"
    broken.write_text("def (:\n")
    with pytest.raises(SnnbenchError, match=r"broken\.py failed to import: SyntaxError"):
        algorithms.add_plugin_file(broken)


def test_registry_names_are_file_stems():
    import inspect
    from pathlib import Path

    for name in algorithms.names():
        cls = algorithms.get(name)
        if cls.__module__.startswith("snnbench.algorithms."):
            assert Path(inspect.getfile(cls)).stem.replace("_", "-") == name


def test_notation():
    assert parse_notation("15C5p0-P2-40C5-AP2-300-R100-D0.2-GAP") == (
        Conv(15, 5, 1, 0), Pool(2), Conv(40, 5), Pool(2, "avg"), Dense(300), Dense(100, recurrent=True),
        Dropout(0.2), Pool(0, "global_avg"),
    )  # fmt: skip
    assert resolve_architecture("400-400").layers == (Dense(400), Dense(400))
    assert resolve_architecture("mlp").notation == "256"
    assert parse_notation("64C7p3s2-B64-B128s2") == (Conv(64, 7, 2, 3), Block(64), Block(128, 2))


IMAGENET_STAGES = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}


@pytest.mark.parametrize("name", ["ms-resnet18", "ms-resnet34", "sew-resnet18", "sew-resnet34"])
def test_imagenet_resnets_have_the_official_stages_and_downsampling(name):
    """He et al.'s ImageNet layout, as both official codes build it: blocks of 64, 128, 256, 512 channels in
    [2, 2, 2, 2] (ResNet-18) or [3, 4, 6, 3] (ResNet-34) stages, and 224 × 224 reduced 32× to 7 × 7 before
    the global pooling (stride-2 stem, then SEW's stem max pooling or MS-ResNet's stride-2 first stage, then
    a stride-2 first block in each later stage)."""
    layers = resolve_architecture(name).layers
    blocks = [layer.channels for layer in layers if isinstance(layer, Block)]
    assert [blocks.count(c) for c in (64, 128, 256, 512)] == IMAGENET_STAGES[int(name[-2:])]
    assert layers[-1] == Pool(0, "global_avg")
    assert output_shape(layers[:-1], (3, 224, 224)) == (512, 7, 7)
