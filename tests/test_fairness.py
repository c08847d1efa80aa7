"""The fair protocol: fidelity cards that cannot lie, controlled tracks that share their set-up, per-entry
preprocessing."""

from __future__ import annotations

import json
from pathlib import Path

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


# every field the controlled track promises to share (suite.TRACKS["controlled"]: architecture, epochs, batch,
# preprocessing and data), each set differently on one of two controlled entries
CONTROLLED_DIFFERENCES = {
    "arch": {"arch": "128"},
    "epochs": {"budgets": {"smoke": {"epochs": 9}}},
    "batch_size": {"budgets": {"smoke": {"batch_size": 16}}},
    "train_subset": {"budgets": {"smoke": {"train_subset": 128}}},
    "test_subset": {"budgets": {"smoke": {"test_subset": 48}}},
    "preprocess": {"preprocess": {"mean": [0.5], "std": [0.25]}},
}


@pytest.mark.parametrize("field", list(CONTROLLED_DIFFERENCES))
def test_a_controlled_entry_differing_in_a_shared_field_fails_naming_it(write_suite, field):
    shared = {
        "bptt": {"arch": "mlp", "track": "controlled"},
        "tssl-bp": {"arch": "mlp", "track": "controlled"},
    }
    assert len(expand(load_suite(write_suite({"algorithms": shared})))) == 2
    own = {**shared["tssl-bp"], **CONTROLLED_DIFFERENCES[field]}
    message = error_of(write_suite, {"algorithms": {**shared, "tssl-bp": own}})
    assert message.startswith(f"tiny.yaml: algorithms.tssl-bp: controlled track: {field} (budget smoke) is ")
    assert "but 'bptt' has" in message
    # the same difference is fine in another track
    assert (
        len(expand(load_suite(write_suite({"algorithms": {**shared, "tssl-bp": {**own, "track": "extra"}}}))))
        == 2
    )


# a value of every field the controlled track shares (suite.CONTROLLED_SHARED), other than the tiny suite's:
# a field added to the promise without a case here fails the test below with a KeyError
SHARED_OTHER_VALUES = {
    "arch": "128",
    "epochs": 9,
    "batch_size": 16,
    "eval_batch_size": 512,
    "train_subset": 128,
    "test_subset": 48,
    "preprocess": {"mean": [0.5], "std": [0.25]},
    "dataset": "mnist",
    "dataset_options": {"variant": "other"},
    "validation": {"fraction": 0.2, "seed": 1, "select": False},
}


def test_the_track_text_names_every_shared_field_and_only_those():
    from snnbench.suite import CONTROLLED_SHARED, TRACKS

    assert set(SHARED_OTHER_VALUES) == set(CONTROLLED_SHARED)
    promise = TRACKS["controlled"].split(";")[0]
    assert all(words in promise for words in CONTROLLED_SHARED.values())


@pytest.mark.parametrize("field", list(SHARED_OTHER_VALUES))
def test_the_controlled_check_covers_every_field_it_promises(write_suite, monkeypatch, field):
    """Whatever the suite format lets an entry set (the data is the suite's), the check itself compares
    every field of CONTROLLED_SHARED: a spec of one controlled entry differing in it is reported."""
    import snnbench.suite as suite_module
    from snnbench.suite import CONTROLLED_SHARED, controlled_track_problems

    shared = {
        "bptt": {"arch": "mlp", "track": "controlled"},
        "tssl-bp": {"arch": "mlp", "track": "controlled"},
    }
    loaded = load_suite(write_suite({"algorithms": shared}))
    assert controlled_track_problems(loaded) == [] and field in CONTROLLED_SHARED
    real = suite_module.expand

    def expand_other(suite, overrides=None):
        specs = real(suite, overrides)
        return [s.model_copy(update={field: SHARED_OTHER_VALUES[field]}) if s.entry == "tssl-bp" else s
                for s in specs]  # fmt: skip

    monkeypatch.setattr(suite_module, "expand", expand_other)
    problems = controlled_track_problems(loaded)
    assert [where for where, _ in problems] == ["algorithms.tssl-bp"]
    assert f"controlled track: {field} (budget smoke) is " in problems[0][1]


@pytest.mark.parametrize(("key", "value"), [("dataset", "mnist"), ("dataset_options", {"variant": "other"})])
def test_the_data_cannot_be_set_per_entry(write_suite, key, value):
    """The dataset and its options are the suite's: an entry cannot give its own (so the controlled track's
    data is shared by construction)."""
    entry = {"arch": "mlp", "track": "controlled", key: value}
    message = error_of(
        write_suite, {"algorithms": {"bptt": {"arch": "mlp", "track": "controlled"}, "tssl-bp": entry}}
    )
    assert message.startswith(f"tiny.yaml: algorithms.tssl-bp.{key}: unknown key")


def test_preprocess_reaches_the_method_and_needs_one_value_per_channel(write_suite):
    from snnbench.runner import data_info, load_data

    entry = {"arch": "mlp", "preprocess": {"mean": [0.5], "std": [0.25]}}
    spec = expand(load_suite(write_suite({"algorithms": {"bntt": entry}})))[0]
    info = data_info(spec, load_data(spec, Path(".")))
    assert info.mean == (0.5,) and info.std == (0.25,)
    bad = {"arch": "mlp", "preprocess": {"mean": [0.5, 0.5], "std": [0.25, 0.25]}}
    assert "algorithms.bntt.preprocess: expected one mean and one std" in error_of(
        write_suite, {"algorithms": {"bntt": bad}}
    )


@pytest.mark.parametrize("name", suite_names())
def test_every_shipped_suite_card_is_consistent(name):
    assert card_problems(load_suite(name)) == []


# What the fidelity audit of issue 43 (items 4-7) found, as deviation fields the cards must keep declaring:
# card_problems checks what a card claims, never what it leaves out. Per method (every entry of the method
# that has a card, in any suite and track), per suite (every official-track card there) and per entry.
AUDIT_BY_METHOD = {
    "ide": ("spectral-norm power iteration", "BN running statistics"),  # item 5
    "temporal-surrogate-bp": ("method identity",),  # item 6: STBP's official code / STBP's paper
}
AUDIT_BY_SUITE = {  # item 7: the 45k/5k hold-out; DVS Gesture's frames and 288-sample test set
    "cifar10-lowT": ("training data",),
    "cifar100-lowT": ("training data",),
    "dvsgesture": ("frames", "test set"),
}
AUDIT_BY_ENTRY = {
    **{f"{s}/st-rsbp": ("reservoir backward",) for s in ("fmnist-lowT", "nmnist", "shd")},  # item 4
    **{f"{s}/bntt": ("training batches",) for s in ("cifar10-lowT", "cifar100-lowT")},  # drop_last
    **{f"{s}/ms-resnet": ("batch_size", "augmentation", "amp") for s in ("cifar10-lowT", "cifar100-lowT")},
    **{f"{s}/sew-resnet": ("augmentation", "amp") for s in ("cifar10-lowT", "cifar100-lowT")},
    **{
        f"{s}/s-resnet": ("training batches", "test batches", "model selection")
        for s in ("cifar10-lowT", "cifar100-lowT")
    },
    "cifar10dvs/sew-resnet": ("arch", "frames"),
    "mnist-lowT/stl-snn": ("network version",),
    "mnist-lowT/soft-lif": ("synapse placement",),
    "digits-lowT/soft-lif": ("arch", "synapse", "timesteps"),
    "digits-lowT/desire-bp": ("arch",),
    "digits-lowT/biolcnet": (
        "reward-prediction error",
        "input spikes",
        "traces",
        "a_minus",
        "theta_plus_decoder",
    ),
}
# once chosen on the test split, now searched on validation (the entries' own `search`)
RECHOSEN = {
    "digits-lowT/biolcnet": ("a_minus", "theta_plus_decoder"),
    "digits-lowT/st-rsbp-reservoir": ("lr", "threshold_recurrent"),
}


def audited_cards() -> list[tuple[str, str, tuple[str, ...]]]:
    """(suite, entry, deviation fields its card must declare) for every card the audit reaches."""
    found = []
    for name in suite_names():
        for key, entry in load_suite(name).algorithms.items():
            method = entry.algorithm or key
            required = AUDIT_BY_ENTRY.get(f"{name}/{key}", ())
            if entry.fidelity is not None:  # a controlled entry without a card (fmnist-cpu's) makes no claim
                required += AUDIT_BY_METHOD.get(method, ())
            if entry.track == "official":
                required += AUDIT_BY_SUITE.get(name, ())
            if required:
                found.append((name, key, required))
    return found


def test_the_audits_findings_stay_declared_on_their_cards():
    audited = audited_cards()
    reached = {f"{name}/{key}" for name, key, _ in audited}
    assert set(AUDIT_BY_ENTRY) <= reached, set(AUDIT_BY_ENTRY) - reached  # no entry renamed away
    assert {"digits-lowT/ide", "digits-lowT/temporal-surrogate-bp", "cifar10-lowT/proxy"} <= reached
    missing = []
    for name, key, required in audited:
        card = load_suite(name).algorithms[key].fidelity
        declared = {d.field for d in card.deviations} if card is not None else set()
        missing += [f"{name}/{key}: {field}" for field in required if field not in declared]
    assert not missing, "deviations the issue 43 audit found, no longer declared: " + "; ".join(missing)


@pytest.mark.parametrize("where", list(RECHOSEN))
def test_values_once_chosen_on_the_test_split_are_chosen_on_validation_now(where):
    """Hand-picked values made on the test split (before the validation split existed) are searched on
    validation by the entry's own ``search``; its tuned block sets them at every T; its card says so."""
    name, key = where.split("/")
    entry = load_suite(name).algorithms[key]
    fields = RECHOSEN[where]
    assert entry.search is not None and set(fields) <= set(entry.search), (where, entry.search)
    grid = entry.timesteps or load_suite(name).timesteps
    assert entry.tuned is not None and entry.tuned.by_T is not None and set(entry.tuned.by_T) == set(grid)
    for block in entry.tuned.by_T.values():
        assert set(fields) <= set(block.values) and json.loads(Path(block.record).read_text())["chosen"]
    ours = {d.field: d.ours for d in entry.fidelity.deviations}
    assert all(ours[field] == "tuned per T" for field in fields if field in ours), ours
    assert not any(str(d.reason).startswith("test-selected") for d in entry.fidelity.deviations)


class CountingSplit:
    """Wraps the test split and counts the passes over it (the model's evaluations; the runner's one check
    that the inputs are finite reads ``x`` directly, before training, and is not a pass)."""

    def __init__(self, split) -> None:
        self.split, self.passes = split, 0
        self.x = split.x

    def __len__(self) -> int:
        return len(self.split)

    def take(self, n, seed=0):
        assert n is None
        return self

    def batches(self, *args, **kwargs):
        self.passes += 1
        return self.split.batches(*args, **kwargs)


@pytest.fixture
def counted_passes(monkeypatch):
    """Wraps the test split of every dataset the runner loads in a :class:`CountingSplit`; returns them."""
    import dataclasses

    from snnbench import runner

    counters: list[CountingSplit] = []
    original = runner.load_data

    def counted(spec, root):
        data = original(spec, root)
        counters.append(CountingSplit(data.test))
        return dataclasses.replace(data, test=counters[-1])

    monkeypatch.setattr(runner, "load_data", counted)
    return counters


@pytest.mark.parametrize("select", [False, True])
def test_the_test_split_is_touched_only_by_the_final_evaluation(
    write_suite, tmp_path, counted_passes, select
):
    from snnbench.grid import run_suite

    budgets = {"smoke": {"epochs": 3, "batch_size": 32, "train_subset": 256}}
    path = write_suite({"budgets": budgets, "validation": {"fraction": 0.2, "seed": 3, "select": select}})
    record = run_suite(path, out_dir=tmp_path / "out", device="cpu").records[0]
    assert record.status == "ok" and len(counted_passes) == 1
    assert counted_passes[0].passes == (2 if select else 1)  # final model (+ the validation-selected epoch)
    assert all("val_top1" in row and "test_top1" not in row for row in record.history)
    validation = record.dataset_provenance["validation"]
    assert validation["validation_size"] + validation["train_size"] == 256
    assert (
        validation["validation_size"] == record.metrics["val_size"] and len(validation["index_sha256"]) == 64
    )
    assert record.metrics["val_top1"] == record.history[-1]["val_top1"]  # direct encoding: deterministic
    assert ("top1_val_selected" in record.metrics) is select
    if select:
        best = max(range(3), key=lambda i: (record.history[i]["val_top1"], -i))
        assert record.metrics["val_selected_epoch"] == best + 1


def test_the_validation_split_is_stratified_seeded_and_disjoint():
    import torch

    from snnbench.data import Split

    y = torch.arange(10).repeat_interleave(torch.tensor([30, 10, 20, 10, 10, 10, 10, 10, 10, 20]))
    split = Split(torch.arange(len(y)).float()[:, None], y)
    train, val, provenance = split.carve_validation(0.1, seed=5)
    assert torch.bincount(val.y).tolist() == [3, 1, 2, 1, 1, 1, 1, 1, 1, 2]
    assert set(train.x.flatten().tolist()).isdisjoint(val.x.flatten().tolist())
    assert len(train) + len(val) == len(split)
    again = split.carve_validation(0.1, seed=5)[2]
    other = split.carve_validation(0.1, seed=6)[2]
    assert again["index_sha256"] == provenance["index_sha256"] != other["index_sha256"]
    # a tiny subset with many classes keeps training samples and still validates
    few = Split(torch.arange(48).float()[:, None], torch.arange(48) % 100)
    train, val, _ = few.carve_validation(0.1, seed=0)
    assert len(train) == 43 and len(val) == 5


def test_tune_searches_on_validation_only_with_the_same_trials_and_run_applies_it(
    write_suite, tmp_path, counted_passes
):
    import json

    from typer.testing import CliRunner

    from snnbench.cli import app

    budgets = {"smoke": {"epochs": 2, "batch_size": 32, "train_subset": 200}}
    algorithms = {
        "bptt": {"arch": "mlp", "track": "controlled", "lr": 0.01},
        "proxy": {"arch": "mlp", "track": "controlled"},
        "bptt-conv": {"algorithm": "bptt", "arch": "convnet", "track": "extra"},
    }
    tuning = {"trials": 3, "T": 2, "seed": 1}
    path = write_suite({"budgets": budgets, "algorithms": algorithms, "tuning": tuning})
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["tune", "--suite", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert counted_passes and sum(c.passes for c in counted_passes) == 0  # nothing tunes on test
    records = {p.stem: json.loads(p.read_text()) for p in (out / "tiny" / "tuning").glob("*.json")}
    assert set(records) == {"bptt", "proxy"}  # only the tuned (controlled) track
    from snnbench.algorithms import algorithms as registry
    from snnbench.leaderboard import chance_bound
    from snnbench.provenance import source_sha256
    from snnbench.suite import load_suite
    from snnbench.tuning import _num_classes, tuning_specs

    specs = {s.entry: s for s in tuning_specs(load_suite(path))}
    for entry, record in records.items():
        rounds = {t["round"] for t in record["trials"]}
        assert [sum(t["round"] == r for t in record["trials"]) for r in sorted(rounds)] == [3] * len(rounds)
        assert len(record["rounds"]) == len(rounds) and (len(rounds) == 2) == bool(record["widened"])
        assert record["budget"] == {"trials": 3, "T": 2, "seed": 1, "budget": "smoke"}
        assert all(t["status"] == "ok" and t["val_top1"] is not None for t in record["trials"])
        best = max(record["trials"], key=lambda t: (t["val_top1"], -t["number"]))
        assert record["chosen"]["values"] == best["values"]
        # the code hash of run records, the method version and the untuned spec: what `--check` compares
        method = registry.get(record["algorithm"])
        assert record["algorithm_source_sha256"] == source_sha256(method) != ""
        assert record["algorithm_version"] == method.version and record["suite_version"] == 1
        assert record["spec_hash"] == specs[entry].spec_hash
        bound = chance_bound(_num_classes(specs[entry].dataset, {}), record["trials"][0]["val_size"])
        assert record["all_trials_at_chance"] is (max(t["val_top1"] for t in record["trials"]) <= bound)
    assert records["bptt"]["trials"][0]["values"] == {"lr": 0.01}  # trial 0: the entry's own value
    first = {"low": 0.001, "high": 0.1, "log": True, "integer": False}  # ±10× around the entry's value
    assert records["bptt"]["rounds"][0]["space"]["lr"] == first
    assert records["proxy"]["trials"][0]["values"] == {"lr": 1e-4}  # the paper's default
    assert "tuned:" in result.output and "values:" in result.output

    run = CliRunner().invoke(
        app, ["run", "--suite", str(path), "--out", str(out), "--tuned", "--algorithms", "bptt", "--quiet"]
    )
    assert run.exit_code == 0, run.output
    record = json.loads(next((out / "tiny" / "runs").glob("bptt_*.json")).read_text())
    assert record["spec"]["hparams"]["lr"] == records["bptt"]["chosen"]["values"]["lr"]
    assert record["spec"]["tuned_fields"] == ["lr"]
    assert record["spec"]["tuning_trials"] == records["bptt"]["budget"]["trials"] == 3  # the budget per round
    from snnbench.suite import Tuned

    suite = load_suite(path)
    block = Tuned(values={"lr": 0.5}, trials=3)
    tuned = suite.model_copy(
        update={
            "algorithms": {
                **suite.algorithms,
                "bptt": suite.algorithms["bptt"].model_copy(update={"tuned": block}),
            }
        }
    )
    (again,) = [s for s in tuning_specs(tuned) if s.entry == "bptt"]
    assert again.hparams["lr"] == 0.01 and again.tuned_fields == []  # a new search starts untuned
    missing = CliRunner().invoke(
        app, ["run", "--suite", str(path), "--out", str(tmp_path / "new"), "--tuned"]
    )
    assert (
        missing.exit_code == 1 and "no tuning record" in missing.output and "snnbench tune" in missing.output
    )


def test_trials_train_at_the_tuning_T_else_at_the_entrys_first_T(write_suite):
    """Issue 48: the trials trained at the entry's first T (T = 1 for most digits entries) instead of
    ``tuning.T``; an entry whose grid lacks ``tuning.T`` uses its first T (suite.Tuning)."""
    from snnbench.suite import load_suite
    from snnbench.tuning import tuning_specs

    algorithms = {
        "bptt": {"arch": "mlp", "track": "controlled", "timesteps": [1, 2, 4]},
        "proxy": {"arch": "mlp", "track": "controlled", "timesteps": [2, 8]},
        "tssl-bp": {"arch": "mlp", "track": "extra", "timesteps": [4]},
    }
    tuning = {"trials": 3, "T": 4, "seed": 7}
    specs = tuning_specs(load_suite(write_suite({"algorithms": algorithms, "tuning": tuning})))
    assert {s.entry: (s.T, s.seed, s.budget) for s in specs} == {
        "bptt": (4, 7, "smoke"),
        "proxy": (2, 7, "smoke"),
    }


def test_show_prints_the_card_and_the_resolved_config(write_suite, monkeypatch):
    from typer.testing import CliRunner

    from snnbench.cli import app

    deviation = {"field": "lr", "ours": 0.01, "official": 0.1, "reason": "digits is smaller"}
    card = {"source": "official/main.py", "mirrors": {"lr": 0.1, "batch_size": 32}, "deviations": [deviation]}
    path = write_suite({"algorithms": {"bptt": {"arch": "mlp", "lr": 0.01, "fidelity": card}}})
    monkeypatch.setenv("SNNBENCH_SUITES", str(path.parent.resolve()))
    result = CliRunner().invoke(app, ["show", "tiny/bptt"])
    assert result.exit_code == 0, result.output
    assert "official values from official/main.py" in result.output
    assert "lr: 0.01  official 0.1  [deviates (declared)]" in result.output
    assert "batch_size: 32  official 32  [mirrored]" in result.output
    assert "- lr: ours 0.01, official 0.1: digits is smaller" in result.output
    assert "lr = 0.01  (suite)" in result.output and "epochs = 3  (budget)" in result.output


def test_a_card_may_say_tuned_per_T_only_for_a_field_its_entry_tunes_per_T():
    from snnbench.suite import card_problems

    suite = load_suite("digits-lowT")  # ide: lr tuned per T, declared `ours: tuned per T` on its card
    assert suite.algorithms["ide"].tuned.by_T is not None and card_problems(suite) == []
    untuned = {**suite.algorithms, "ide": suite.algorithms["ide"].model_copy(update={"tuned": None})}
    problems = card_problems(suite.model_copy(update={"algorithms": untuned}))
    assert [p for p in problems if p[0].startswith("algorithms.ide.fidelity.deviations")] == [
        ("algorithms.ide.fidelity.deviations.0.ours", "lr is not tuned per T in this entry")
    ]
