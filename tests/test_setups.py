"""The controlled track's set-up facts (snnbench.setups), read from what a method builds (issue 42 item 4):
optimiser, input normalisation, outputs per class and extra weights, in the leaderboard, ``show`` and the
README's generated paragraph."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pandas as pd

from snnbench.leaderboard import write_reports
from snnbench.records import RecordStore, RunRecord
from snnbench.setups import controlled_text, facts, row_facts
from snnbench.suite import Overrides, expand, load_suite

ROOT = Path(__file__).resolve().parents[1]


def spec_of(entry: str, T: int = 4, suite: str = "digits-lowT", **hparams):
    spec = expand(load_suite(suite), Overrides(algorithms=[entry], timesteps=[T], seeds=[0]))[0]
    return spec.model_copy(update={"hparams": {**spec.hparams, **hparams}}) if hparams else spec


def test_the_optimiser_is_read_from_what_configure_builds():
    """Three recipes, each checked against the entry's resolved hyperparameters (not the facts' own code)."""
    bptt = spec_of("bptt")
    assert facts(bptt)["optimiser"] == f"Adam {bptt.hparams['lr']:.3g}, cosine"
    bntt = spec_of("bntt")
    h = bntt.hparams
    milestones = ",".join(str(round(bntt.epochs * f) + 1) for f in h["lr_milestones"])
    assert facts(bntt)["optimiser"] == (
        f"SGD {h['lr']:.3g} m{h['momentum']:.3g} wd{h['weight_decay']:.3g}, step ×0.1 at epochs {milestones}"
    )
    tssl = spec_of("tssl-bp")
    assert (
        facts(tssl)["optimiser"]
        == f"AdamW {tssl.hparams['lr']:.3g} wd{tssl.hparams['weight_decay']:.3g}, constant"
    )
    assert facts(spec_of("desire-bp"))["optimiser"].startswith("own rule")
    # the learning rate is the spec's: another value, another column
    assert facts(spec_of("bptt", lr=0.25))["optimiser"] == "Adam 0.25, cosine"


def test_outputs_per_class_count_a_population():
    assert facts(spec_of("bptt"))["outputs_per_class"] == "1"
    stl = spec_of("stl-snn")
    assert facts(stl)["outputs_per_class"] == str(stl.hparams["population"])
    assert facts(spec_of("stl-snn", population=3))["outputs_per_class"] == "3"


def test_extra_weights_are_the_difference_from_the_plain_network_with_the_modules_holding_them():
    hidden, inputs, classes = 256, 64, 10
    plain = inputs * hidden + hidden + hidden * classes + classes
    assert facts(spec_of("bptt"))["extra_count"] == 0  # the plain network itself
    ide = facts(spec_of("ide"))
    # IDE's spectrally normalised hidden × hidden feedback (weight and its norm) and its BN scale and shift
    assert ide["extra_count"] == hidden * hidden + 1 + 2 * hidden
    assert "feedback 65,537" in ide["extra_weights"] and "bn 512" in ide["extra_weights"]
    bntt = [facts(spec_of("bntt", T=T)) for T in (2, 4)]  # BNTT's BN: one scale per neuron and step
    assert bntt[1]["extra_count"] - bntt[0]["extra_count"] == 2 * hidden
    ottt = facts(spec_of("ottt"))
    assert ottt["extra_count"] == hidden and "blocks.0.synapse 256" in ottt["extra_weights"]
    stl = facts(spec_of("stl-snn"))
    population = spec_of("stl-snn").hparams["population"]
    assert (
        stl["extra_count"] + plain
        == inputs * hidden + hidden * classes * population + hidden + classes * population
    )
    assert "no biases" in facts(spec_of("tssl-bp"))["extra_weights"]


def test_normalisation_is_what_the_prediction_calls_and_names_the_entry_statistics():
    assert facts(spec_of("bptt"))["normalisation"] == "none"
    assert facts(spec_of("bntt"))["normalisation"] == "dataset (mean 0.305, std 0.376)"
    own = spec_of("tssl-bp").model_copy(update={"preprocess": {"mean": [0.5], "std": [0.25]}})
    assert facts(own)["normalisation"] == "entry preprocess (mean 0.5, std 0.25)"


def test_the_preprocess_readers_are_the_methods_observed_to_normalise():
    """PREPROCESS_READERS (which methods may take an entry's ``preprocess``) agrees with what each shipped
    method's prediction does, in every entry of the committed suites."""
    from snnbench.algorithms import algorithms
    from snnbench.suite import reads_preprocess

    seen = set()
    for name in ("digits-lowT", "fmnist-cpu"):
        for spec in expand(load_suite(name), Overrides(seeds=[0])):
            cls = algorithms.get(spec.algorithm)
            declared = reads_preprocess(cls, cls.Config.model_validate(spec.hparams))
            if (spec.algorithm, declared) in seen:  # each method once per declared answer
                continue
            seen.add((spec.algorithm, declared))
            assert (facts(spec)["normalisation"] != "none") == declared, spec.entry
    assert len({a for a, _ in seen}) >= 15 and ("temporal-surrogate-bp", False) in seen


def test_row_facts_of_a_partial_spec_are_blank():
    assert row_facts(None) == dict.fromkeys(row_facts(None), "–")
    assert set(row_facts({"arch": "mlp"}).values()) == {"–"}


def test_the_leaderboard_shows_the_facts_of_each_row(write_suite, tmp_path):
    suite = load_suite(
        write_suite({"algorithms": {"bptt": {"arch": "mlp", "lr": 0.01}, "stl-snn": {"arch": "mlp"}}})
    )
    store = RecordStore(tmp_path / "results", "tiny")
    for spec in expand(suite, Overrides(seeds=[0, 1])):
        from snnbench.algorithms import algorithms
        from snnbench.provenance import source_sha256

        cls = algorithms.get(spec.algorithm)
        store.save(
            RunRecord(
                run_id=spec.run_id, suite="tiny", suite_version=1, entry=spec.entry, algorithm=spec.algorithm,
                algorithm_version=cls.version, algorithm_source_sha256=source_sha256(cls), dataset="digits",
                T=spec.T, seed=spec.seed, budget=spec.budget, spec=spec.model_dump(mode="json"),
                spec_hash=spec.spec_hash, status="ok", metrics={"top1": 80.0 + spec.seed, "test_size": 96},
                environment={"git": {"revision": "abcdef1234567"}, "device": "cpu"},
                started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:00:01+00:00",
            )
        )  # fmt: skip
    write_reports(suite, store.root)
    table = pd.read_csv(store.root / "leaderboard.csv").set_index("algorithm")
    assert table.loc["stl-snn", "outputs_per_class"] == 10 and table.loc["bptt", "outputs_per_class"] == 1
    assert table.loc["bptt", "optimiser"] == "Adam 0.01, cosine"  # the tiny suite's lr
    markdown = (store.root / "leaderboard.md").read_text()
    assert "| optimiser | normalisation | outputs/class | extra weights |" in markdown
    assert re.search(r"\| stl-snn \|.*\| Adam [^|]*exponential[^|]* \| none \| 10 \| \+[\d,]+ \(", markdown)
    assert "**outputs/class**: output neurons per class" in markdown


def test_show_prints_the_facts(capsys):
    from snnbench.show import setup_lines

    lines = setup_lines(load_suite("digits-lowT"), "stl-snn")
    assert "  outputs/class: 10" in lines and any(line.startswith("  optimiser: T=1: Adam") for line in lines)


def test_the_readme_paragraph_on_what_differs_is_generated_from_the_facts():
    """The README's controlled-track blocks are what tools/readme_leaderboard.py writes today: regenerate
    with ``python tools/readme_leaderboard.py`` after changing a method or a suite."""
    readme = (ROOT / "README.md").read_text()
    tool = runpy.run_path(str(ROOT / "tools" / "readme_leaderboard.py"))
    marked = re.findall(r"<!-- controlled:(\S+) -->", readme)
    assert marked == ["fmnist-cpu", "digits-lowT"]
    assert tool["with_controlled_blocks"](readme) == readme, (
        "README out of date: python tools/readme_leaderboard.py"
    )
    block = readme.split("<!-- controlled:digits-lowT -->")[1].split("<!-- /controlled -->")[0]
    assert block.strip() == controlled_text(load_suite("digits-lowT")).strip()
    assert "ide: +66,049 (feedback 65,537; bn 512)" in block and "10: stl-snn" in block
    # a stale block is noticed
    stale = readme.replace("10: stl-snn", "1: stl-snn", 1)
    assert tool["with_controlled_blocks"](stale) != stale


def test_a_plugin_entry_loaded_in_the_process_is_not_part_of_the_suites_paragraph():
    """A plugin's controlled entry (another test may have loaded one into this process) is not the suite's:
    the README paragraph names the suite's own entries only."""
    suite = load_suite("digits-lowT")
    text = controlled_text(suite)
    extra = {**suite.algorithms, "bptt-plugin": suite.algorithms["bptt"]}
    plugins = (*suite.plugin_entries, "bptt-plugin")  # keep any a test before this one loaded
    with_plugin = suite.model_copy(update={"algorithms": extra, "plugin_entries": plugins})
    assert "bptt-plugin" not in controlled_text(with_plugin) and controlled_text(with_plugin) == text
