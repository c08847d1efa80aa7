"""Suite validation (every error message checked) and grid expansion."""

from __future__ import annotations

import re

import pytest
import yaml

from snnbench.errors import SuiteError, UnknownNameError
from snnbench.suite import Overrides, expand, load_suite


def error_of(write_suite, changes=None, text: str | None = None) -> str:
    path = write_suite(changes)
    if text is not None:
        path.write_text(text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert info.value.exit_code == 2
    return str(info.value)


def bptt(**fields):
    return {"algorithms": {"bptt": {"arch": "mlp", **fields}}}


def test_wrong_type_names_file_field_expected_and_got(write_suite):
    assert (
        error_of(write_suite, bptt(lr="fast"))
        == "tiny.yaml: algorithms.bptt.lr: expected a number, got 'fast'"
    )


def test_unknown_top_level_key_suggests_the_near_one(write_suite):
    message = error_of(write_suite, {"timestep": [1]})
    assert message.startswith(
        "tiny.yaml: timestep: unknown key (did you mean 'timesteps'?); allowed: algorithms,"
    )


def test_unknown_hyperparameter_lists_the_methods_config(write_suite):
    message = error_of(write_suite, bptt(lrr=0.1))
    assert message.startswith(
        "tiny.yaml: algorithms.bptt.lrr: unknown key (did you mean 'lr'?); allowed: alpha,"
    )
    assert "surrogate" in message and "v_threshold" in message


def test_unknown_algorithm_did_you_mean(write_suite):
    message = error_of(write_suite, {"algorithms": {"bpt": {"arch": "mlp"}}})
    assert message.startswith(
        "tiny.yaml: algorithms.bpt: unknown algorithm 'bpt'; did you mean 'bptt'? Available:"
    )


def test_unknown_dataset_did_you_mean(write_suite):
    message = error_of(write_suite, {"dataset": "digit"})
    assert message.startswith(
        "tiny.yaml: dataset: unknown dataset 'digit'; did you mean 'digits'? Available:"
    )


def test_unknown_architecture_did_you_mean(write_suite):
    message = error_of(write_suite, bptt(arch="mpl"))
    assert message.startswith(
        "tiny.yaml: algorithms.bptt.arch: unknown architecture 'mpl'; did you mean 'mlp'? Available:"
    )
    assert message.endswith("or a layer notation like 400-400 or 16C3-AP2-128 (cannot read 'mpl')")


def test_literal_lists_allowed_values(write_suite):
    message = error_of(write_suite, bptt(surrogate="sigmoidd"))
    assert message == (
        "tiny.yaml: algorithms.bptt.surrogate: expected 'sigmoid', 'arctan' or 'fast-sigmoid', got 'sigmoidd'"
    )


def test_missing_field(write_suite, tmp_path):
    data = yaml.safe_load(write_suite().read_text())
    del data["seeds"]
    assert error_of(write_suite, text=yaml.safe_dump(data)) == "tiny.yaml: seeds: required field is missing"


def test_bounds_and_empty_lists(write_suite):
    budgets = {"smoke": {"epochs": 0, "batch_size": 8}}
    assert error_of(write_suite, {"budgets": budgets}) == (
        "tiny.yaml: budgets.smoke.epochs: expected greater than 0, got 0"
    )
    assert error_of(write_suite, {"timesteps": []}) == (
        "tiny.yaml: timesteps: expected a non-empty list, got []"
    )


@pytest.mark.parametrize(
    ("changes", "field", "got"),
    [
        ({"timesteps": [0, -2]}, "timesteps.0", 0),
        (bptt(timesteps=[4, 0]), "algorithms.bptt.timesteps.1", 0),
        (bptt(timesteps=[-1]), "algorithms.bptt.timesteps.0", -1),
    ],
)
def test_time_steps_must_be_positive_everywhere(write_suite, changes, field, got):
    assert error_of(write_suite, changes) == f"tiny.yaml: {field}: expected greater than 0, got {got}"
    with pytest.raises(ValueError, match="greater than 0"):
        Overrides(timesteps=[0])


def test_budget_override_must_name_a_suite_budget(write_suite):
    message = error_of(write_suite, bptt(budgets={"full": {"epochs": 3}}))
    assert message == "tiny.yaml: algorithms.bptt.budgets.full: expected one of ['smoke']"


def test_invalid_yaml_gives_line_and_column(write_suite):
    message = error_of(write_suite, text="name: x\nversion: [1\ndataset: digits\n")
    assert re.fullmatch(r"tiny\.yaml: \(file\): not valid YAML at line \d+, column \d+: .+", message)


def test_unknown_suite_name_suggests():
    with pytest.raises(UnknownNameError) as info:
        load_suite("digits-lowt")
    assert "did you mean 'digits-lowT' or " in str(info.value)  # the closest first


def test_shipped_suites_validate():
    suite = load_suite("digits-lowT")
    assert suite.timesteps == [1, 2, 4, 8] and suite.seeds == [0, 1, 2]
    assert {"full", "smoke"} <= set(suite.budgets)


# grid expansion --------------------------------------------------------------------------------------------
def test_grid_is_entries_by_T_by_seeds_with_resolved_config(write_suite):
    suite = load_suite(
        write_suite(
            {
                "timesteps": [1, 4],
                "seeds": [0, 1, 2],
                "algorithms": {
                    "bptt": {"arch": "mlp", "lr": 0.01},
                    "bptt-long": {
                        "algorithm": "bptt",
                        "arch": "convnet",
                        "timesteps": [16],
                        "surrogate": "arctan",
                    },
                },
            }
        )
    )
    specs = expand(suite)
    assert [(s.entry, s.T, s.seed) for s in specs] == [
        ("bptt", 1, 0), ("bptt", 1, 1), ("bptt", 1, 2), ("bptt", 4, 0), ("bptt", 4, 1), ("bptt", 4, 2),
        ("bptt-long", 16, 0), ("bptt-long", 16, 1), ("bptt-long", 16, 2),
    ]  # fmt: skip
    first, long = specs[0], specs[-1]
    # suite block > paper defaults: lr from the suite, everything else from BPTT.Config
    assert (
        first.hparams["lr"] == 0.01
        and first.hparams["tau"] == 2.0
        and first.hparams["surrogate"] == "sigmoid"
    )
    assert long.algorithm == "bptt" and long.hparams["surrogate"] == "arctan" and long.arch == "convnet"
    assert len({s.run_id for s in specs}) == len(specs)
    assert first.run_id == f"bptt_T1_s0_smoke_{first.spec_hash[:8]}"


def test_cli_overrides_take_precedence(write_suite):
    suite = load_suite(write_suite({"timesteps": [1, 2], "seeds": [0, 1]}))
    specs = expand(suite, Overrides(timesteps=[8], seeds=[5], algorithms=["bptt"]))
    assert [(s.T, s.seed) for s in specs] == [(8, 5)]
    # an entry's own time steps replace the suite's, and the command line's replace both
    own = load_suite(write_suite({"timesteps": [1, 2], **bptt(timesteps=[16])}))
    assert [s.T for s in expand(own)] == [16]
    assert [s.T for s in expand(own, Overrides(timesteps=[8]))] == [8]
    with pytest.raises(UnknownNameError, match="did you mean 'bptt'"):
        expand(suite, Overrides(algorithms=["bpt"]))
    with pytest.raises(SuiteError, match="tiny.yaml: budgets: unknown budget .ful."):
        expand(suite, Overrides(budget="ful"))


def test_budget_override_per_algorithm(write_suite):
    suite = load_suite(write_suite(bptt(budgets={"smoke": {"epochs": 7}})))
    (spec,) = expand(suite)
    assert spec.epochs == 7 and spec.batch_size == 32 and spec.train_subset == 256


def test_hash_changes_with_semantics_only(write_suite):
    a = expand(load_suite(write_suite(bptt(lr=0.01))))[0]
    b = expand(load_suite(write_suite(bptt(lr=0.02))))[0]
    c = expand(load_suite(write_suite(bptt(lr=0.01))))[0]
    assert a.spec_hash != b.spec_hash and a.spec_hash == c.spec_hash
    assert a.training_key == a.model_copy(update={"T": 99}).training_key


# hostile or broken input: exit 2, file and field named ------------------------------------------------------
SLUG_ERROR = (
    "expected a name of at most 100 letters, digits, '.', '_' or '-', starting with a letter or digit "
    "(it names files under --out)"
)


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs", "", "a/b", ".hidden"])
def test_suite_name_must_be_a_slug(write_suite, name):
    assert error_of(write_suite, {"name": name}) == f"tiny.yaml: name: {SLUG_ERROR}, got {name!r}"


def test_entry_and_budget_names_must_be_slugs(write_suite):
    entry = {"algorithms": {"../x": {"algorithm": "bptt", "arch": "mlp"}}}
    assert error_of(write_suite, entry) == f"tiny.yaml: algorithms: {SLUG_ERROR}, got '../x'"
    budgets = {"budgets": {"/b": {"epochs": 1, "batch_size": 8}}, "default_budget": "/b"}
    assert error_of(write_suite, budgets) == f"tiny.yaml: budgets: {SLUG_ERROR}, got '/b'"


def test_timesteps_positive_and_bounded_at_suite_and_entry_level(write_suite):
    assert (
        error_of(write_suite, {"timesteps": [0]}) == "tiny.yaml: timesteps.0: expected greater than 0, got 0"
    )
    assert error_of(write_suite, {"timesteps": [2, 10**9]}) == (
        "tiny.yaml: timesteps.1: expected less than or equal to 100000, got 1000000000"
    )
    assert error_of(write_suite, bptt(timesteps=[-1])) == (
        "tiny.yaml: algorithms.bptt.timesteps.0: expected greater than 0, got -1"
    )
    assert error_of(write_suite, bptt(timesteps=[])) == (
        "tiny.yaml: algorithms.bptt.timesteps: expected at least one item, got []"
    )


def test_no_algorithms_is_an_error(write_suite):
    assert (
        error_of(write_suite, {"algorithms": {}})
        == "tiny.yaml: algorithms: expected at least one item, got {}"
    )


def test_duplicate_keys_are_refused(write_suite):
    text = write_suite().read_text().replace("    lr: 0.01\n", "    lr: 0.01\n    lr: 0.5\n")
    assert error_of(write_suite, text=text) == (
        "tiny.yaml: (file): not valid YAML at line 20, column 5: duplicate key 'lr'"
    )


def test_non_utf8_and_unreadable_files(write_suite, monkeypatch):
    path = write_suite()
    path.write_bytes(path.read_bytes() + b"# 8\xd78 digits\n")  # latin-1 '×'
    with pytest.raises(SuiteError, match=r"^tiny\.yaml: \(file\): expected UTF-8 text, found byte 0xd7 at"):
        load_suite(path)

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(path), "read_bytes", denied)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert str(info.value) == "tiny.yaml: (file): cannot be read (Permission denied)"


def test_unknown_budget_names_the_suite_file(write_suite):
    with pytest.raises(SuiteError) as info:
        expand(load_suite(write_suite()), Overrides(budget="ful"))
    assert str(info.value) == "tiny.yaml: budgets: unknown budget 'ful'. Available: smoke"
    assert info.value.exit_code == 2


@pytest.mark.parametrize("arch", ["0", "400-0", "0C3", "16C3s0", "P0", "R0"])
def test_layers_of_size_zero_are_refused(write_suite, arch):
    message = error_of(write_suite, bptt(arch=arch))
    assert message.startswith("tiny.yaml: algorithms.bptt.arch: unknown architecture")
    assert message.endswith(f"(cannot read {arch.split('-')[-1]!r})")
