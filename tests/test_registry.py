"""The registry: explicit registration, collisions, base classes, did-you-mean, plugin files."""

from __future__ import annotations

import pytest

from snnbench.algorithms import Algorithm, algorithms
from snnbench.architectures import Conv, Dense, Dropout, Pool, parse_notation, resolve_architecture
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
