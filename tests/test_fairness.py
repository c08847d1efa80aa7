"""The fair protocol: fidelity cards that cannot lie, controlled tracks that share their set-up, per-entry
preprocessing."""

from __future__ import annotations

import pytest

from snnbench.errors import SuiteError
from snnbench.suite import card_problems, expand, load_suite, resolved_fields, suite_names


def error_of(write_suite, changes) -> str:
    with pytest.raises(SuiteError) as info:
        load_suite(write_suite(changes))
    assert info.value.exit_code == 2
    return str(info.value)


CARD = {"source": "official/main.py", "mirrors": {"lr": 0.01, "batch_size": 32}}


def test_a_card_mirroring_the_resolved_values_loads(write_suite):
    suite = load_suite(write_suite({"algorithms": {"bptt": {"arch": "mlp", "lr": 0.01, "fidelity": CARD}}}))
    assert card_problems(suite) == []
    assert resolved_fields(suite, "bptt")["lr"] == 0.01


def test_a_planted_card_mismatch_fails_naming_the_field(write_suite):
    card = {**CARD, "mirrors": {"lr": 0.1}}
    message = error_of(write_suite, {"algorithms": {"bptt": {"arch": "mlp", "lr": 0.01, "fidelity": card}}})
    assert message.startswith("tiny.yaml: algorithms.bptt.fidelity.mirrors.lr: the entry resolves to 0.01")


def test_a_declared_deviation_allows_the_difference_but_must_state_our_value(write_suite):
    deviation = {"field": "lr", "ours": 0.01, "official": 0.1, "reason": "digits is smaller"}
    card = {**CARD, "mirrors": {"lr": 0.1}, "deviations": [deviation]}
    entry = {"arch": "mlp", "lr": 0.01, "fidelity": card}
    assert card_problems(load_suite(write_suite({"algorithms": {"bptt": entry}}))) == []
    wrong = {**card, "deviations": [{**deviation, "ours": 0.02}]}
    message = error_of(write_suite, {"algorithms": {"bptt": {**entry, "fidelity": wrong}}})
    assert "algorithms.bptt.fidelity.deviations.0.ours: the entry resolves lr to 0.01, not 0.02" in message


def test_a_card_naming_an_unknown_field_fails(write_suite):
    card = {**CARD, "mirrors": {"learning_rate": 0.01}}
    message = error_of(write_suite, {"algorithms": {"bptt": {"arch": "mlp", "fidelity": card}}})
    assert "fidelity.mirrors.learning_rate: not a resolved field" in message


def test_controlled_entries_must_share_architecture_and_budget(write_suite):
    algorithms = {
        "bptt": {"arch": "mlp", "track": "controlled"},
        "tssl-bp": {"arch": "mlp", "track": "controlled"},
    }
    assert expand(load_suite(write_suite({"algorithms": algorithms})))[0].track == "controlled"
    other_arch = {**algorithms, "tssl-bp": {"arch": "128", "track": "controlled"}}
    assert "controlled track: arch" in error_of(write_suite, {"algorithms": other_arch})
    other_epochs = {
        **algorithms,
        "tssl-bp": {"arch": "mlp", "track": "controlled", "budgets": {"smoke": {"epochs": 9}}},
    }
    assert "controlled track: epochs (budget smoke)" in error_of(write_suite, {"algorithms": other_epochs})
    # the same difference is fine across tracks
    mixed = {**other_arch, "tssl-bp": {"arch": "128", "track": "official"}}
    assert len(expand(load_suite(write_suite({"algorithms": mixed})))) == 2


def test_preprocess_reaches_the_method_and_needs_one_value_per_channel(write_suite):
    from snnbench.runner import data_info, load_data

    entry = {"arch": "mlp", "preprocess": {"mean": [0.5], "std": [0.25]}}
    spec = expand(load_suite(write_suite({"algorithms": {"bptt": entry}})))[0]
    info = data_info(spec, load_data(spec, __import__("pathlib").Path(".")))
    assert info.mean == (0.5,) and info.std == (0.25,)
    bad = {"arch": "mlp", "preprocess": {"mean": [0.5, 0.5], "std": [0.25, 0.25]}}
    assert "algorithms.bptt.preprocess: expected one mean and one std" in error_of(
        write_suite, {"algorithms": {"bptt": bad}}
    )


@pytest.mark.parametrize("name", suite_names())
def test_every_shipped_suite_card_is_consistent(name):
    assert card_problems(load_suite(name)) == []
