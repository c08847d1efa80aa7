"""Every method's defaults and recipe against its official-track fidelity cards (issue 43, item 5).

Which ``Config`` fields have an official value, precisely: the official values the project records and checks
are the ``mirrors`` (and declared ``deviations``) of the fidelity cards of official-track entries in
``suites/*.yaml`` (``snnbench.suite.card_problems`` fails a suite whose resolved config contradicts its card).
A default is guarded by a card only where an official-track entry leaves the field at its default (neither
the suite nor a tuned value sets it) and its card mirrors the field (or declares it a deviation with ``ours``
the default). So, for each method with at least one official-track card, every ``Config`` field is exactly
one of:

* **carded**: mirrored (or declared) on an official-track card of the method whose entry leaves it at the
  default; its default must then equal the mirrored value (or the deviation's ``ours``), so a changed default
  fails here, in the method's own tests, not only in the suite-wide card check;
* **listed** in :data:`NOT_ON_A_CARD` under one of the reasons below. A field that is neither, or both, fails.

The reasons: ``GAP`` the Config's own description cites an official value, but no official-track card
mirrors it at the default (card gaps, issue 43 item 7: the default is unguarded until a card states it);
``SET_BY_EVERY_CARD`` every official card that mirrors it sets it in the entry, so the default itself is not
what the card checks; ``VARIANT`` a switch between the method's variants or the paper's ablation (each card
picks one); ``UNUSED`` inactive in every official recipe (a step schedule's parameters under a cosine
schedule, SGD momentum under Adam); ``OURS`` our own addition with no official counterpart; ``NOT_OFFICIAL``
the method's defaults were chosen here, not read from official code (its Config says so).

Then the recipe: for every official-track card, the method's ``configure`` (on a small network of the
method's digits architecture) builds the official optimiser class, with the card's learning rate, momentum,
betas and weight decay in every parameter group, and its schedule steps the learning rate over the entry's
epochs as the official recipe does (cosine, milestones, steps, exponential, 1/√epoch), with the card's values.
desire-bp (η₀ exp(−0.04 epoch) inside ``train_epoch``) is checked in test_desire_bp.py; BioLCNet has no
optimiser (a local rule).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import pytest
import torch
import yaml

from snnbench.algorithms import RunContext, algorithms
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo
from snnbench.data.encoding import direct
from snnbench.suite import AlgorithmEntry, Overrides, expand, find_suite, load_suite, suite_names

GAP, SET_BY_EVERY_CARD, VARIANT, UNUSED, OURS, NOT_OFFICIAL = (
    "official value not on a card at the default (card gap)",
    "set by every official entry that mirrors it",
    "variant switch",
    "inactive in every official recipe",
    "ours, no official counterpart",
    "defaults chosen here, not official",
)

NOT_ON_A_CARD: dict[str, dict[str, list[str]]] = {
    "biolcnet": {
        GAP: [
            "observation_fraction",
            "tc_eligibility",
            "wmin",
            "wmax",
            "theta_plus_decoder",
            "v_rest",
            "v_reset",
            "v_thresh",
            "refractory",
            "tc_decay",
            "reward",
            "punishment",
        ]
    },
    "conversion": {
        VARIANT: ["method"],
        OURS: ["calibration_samples"],
        SET_BY_EVERY_CARD: ["batch_norm", "lr"],
    },
    "desire-bp": {GAP: ["margin_scaling"]},
    "ide": {GAP: ["spectral_norm_range", "warmup_iterations"]},
    "ms-resnet": {UNUSED: ["lr_step_size", "lr_gamma"]},
    "sew-resnet": {SET_BY_EVERY_CARD: ["lr_step_size", "lr_gamma"], GAP: ["label_smoothing", "alpha"]},
    "soft-lif": {SET_BY_EVERY_CARD: ["tau_s", "lr_steps", "init_std"]},
    "st-rsbp": {
        SET_BY_EVERY_CARD: [
            "threshold_hidden",
            "threshold_recurrent",
            "threshold_output",
            "threshold_conv",
            "threshold_pool",
            "reg_beta",
        ],
        OURS: ["count_window"],
        GAP: [
            "refractory",
            "desired_count",
            "undesired_count",
            "margin",
            "inject_label_spikes",
            "lateral_inhibition",
            "self_consistency",
            "effect_table_samples",
            "silent_ratio",
            "init_w",
            "reservoir_connectivity",
            "lr",
            "reg_lambda",
            "weight_limit",
        ],
    },
    "stdbp": {
        NOT_OFFICIAL: [
            "threshold",
            "t_max",
            "weight_sum_reg",
            "init_mean",
            "init_std",
            "lr",
            "no_spike_time",
            "score_scale",
            "schedule",
        ],
        OURS: ["deadline", "deadline_margin"],  # the deadline-aware training of the T-step network
    },
    "stl-snn": {VARIANT: ["learn"], GAP: ["batch_norm"]},
    "tcja-snn": {UNUSED: ["momentum", "lr_step_size", "lr_gamma"], GAP: ["label_smoothing", "alpha"]},
    "temporal-surrogate-bp": {
        VARIANT: ["reset_term"],
        GAP: ["optimizer", "normalize_input", "weight_decay", "lr_decay_factor"],
    },
    "tssl-bp": {
        GAP: [
            "threshold",
            "loss",
            "desired_count",
            "undesired_count",
            "warmup",
            "warmup_psp",
            "warmup_rate",
            "surrogate_width",
            "max_inverse_du",
            "pool_scale",
            "conv_weight_scale",
            "linear_weight_scale",
            "weight_decay",
            "grad_clip",
            "weight_clip",
        ]
    },
}


suite = functools.cache(load_suite)


@functools.cache
def official_cards() -> tuple[tuple[str, str, AlgorithmEntry], ...]:
    """(suite, entry key, entry) of every official-track entry with a fidelity card, read from the files
    without ``load_suite``'s card check, so that a default contradicting a card fails a test here, not the
    collection of this module."""
    found = []
    for name in suite_names():
        raw = yaml.safe_load(find_suite(name).read_text())
        for key, fields in raw["algorithms"].items():
            entry = AlgorithmEntry.model_validate(fields)
            if entry.track == "official" and entry.fidelity is not None:
                found.append((name, key, entry))
    return tuple(found)


def method_of(key: str, entry: AlgorithmEntry) -> str:
    return entry.algorithm or key


def same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-12)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def carded_defaults(method: str) -> dict[str, list[tuple[str, Any]]]:
    """field → [(where, official value)] for every official card of ``method`` that mirrors (or declares)
    the field while its entry leaves it at the default."""
    fields = algorithms.get(method).Config.model_fields
    carded: dict[str, list[tuple[str, Any]]] = {}
    for name, key, entry in official_cards():
        if method_of(key, entry) != method:
            continue
        tuned = entry.tuned.fields if entry.tuned is not None else set()
        unset = set(fields) - set(entry.hparams) - tuned
        card = entry.fidelity
        assert card is not None
        for field, official in card.mirrors.items():
            if field in unset:
                carded.setdefault(field, []).append((f"{name}/{key} mirrors", official))
        for deviation in card.deviations:
            if deviation.field in unset:
                carded.setdefault(deviation.field, []).append(
                    (f"{name}/{key} deviation ours", deviation.ours)
                )
    return carded


CARDED_METHODS = sorted({method_of(key, entry) for _, key, entry in official_cards()})


def test_every_method_with_an_official_card_is_classified():
    assert set(NOT_ON_A_CARD) <= set(CARDED_METHODS), set(NOT_ON_A_CARD) - set(CARDED_METHODS)
    assert len(CARDED_METHODS) >= 15  # the shipped suites' official tracks (a vacuous list would pass)


@pytest.mark.parametrize("method", CARDED_METHODS)
def test_every_config_field_is_carded_at_its_default_or_listed_with_a_reason(method):
    fields = algorithms.get(method).Config.model_fields
    listed = {f: reason for reason, names in NOT_ON_A_CARD.get(method, {}).items() for f in names}
    carded = carded_defaults(method)
    unknown = set(listed) - set(fields)
    assert not unknown, f"{method}: NOT_ON_A_CARD names fields the Config lacks: {sorted(unknown)}"
    both = sorted(set(listed) & set(carded))
    assert not both, f"{method}: now on a card at the default, remove from NOT_ON_A_CARD: {both}"
    neither = sorted(set(fields) - set(listed) - set(carded))
    assert not neither, (
        f"{method}: Config fields with no official card mirroring them at the default: {neither}; mirror "
        "them on the method's official-track card, or list them in NOT_ON_A_CARD with the reason"
    )


@pytest.mark.parametrize("method", CARDED_METHODS)
def test_carded_defaults_equal_the_official_values(method):
    """A changed default of a carded field fails here (the card records the official value)."""
    fields = algorithms.get(method).Config.model_fields
    wrong = [
        f"{name} = {fields[name].default!r}, {where} {official!r}"
        for name, claims in carded_defaults(method).items()
        for where, official in claims
        if not same(fields[name].default, official)
    ]
    assert not wrong, f"{method}: " + "; ".join(wrong)


# ---- optimiser and schedule against the official recipe on every official card ---------------------------
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
# the official optimiser of methods whose Config has no ``optimizer`` field (each method's docstring/Config)
FIXED_OPTIMIZER = {
    "bntt": "sgd",
    "conversion": "sgd",
    "ide": "sgd",
    "proxy": "adam",
    "s-resnet": "sgd",
    "soft-lif": "sgd",
    "st-rsbp": "adam",
    "stdbp": "adam",
    "stl-snn": "adam",
    "tssl-bp": "adamw",
}
NO_OPTIMIZER = {"biolcnet", "desire-bp", "stdp-adaptive"}  # local rules: the update is the rule itself
SMALL_ARCH = {
    "sew-resnet": "resnet-digits",
    "ms-resnet": "resnet-digits",
    "tcja-snn": "tcja-digits",
    "s-resnet": "s-resnet-digits",
}
RECIPE_CARDS = [
    (name, key) for name, key, entry in official_cards() if method_of(key, entry) not in NO_OPTIMIZER
]


def expected_lrs(method: str, mirrors: dict[str, Any], cfg: Any, lr: float, epochs: int) -> list[float]:
    """The learning rate of each epoch under the official schedule, with the card's values where it has
    them (``cfg`` only for values the card leaves out, named in :data:`NOT_ON_A_CARD`)."""
    get = lambda name: mirrors.get(name, getattr(cfg, name))  # noqa: E731
    e = range(epochs)
    if method in ("bntt", "s-resnet"):  # utills.py / utils.py adjust_learning_rate: ÷10 after epoch k == f·N
        steps = [f * epochs for f in get("lr_milestones")]
        return [lr * 0.1 ** sum(k < epoch for k in steps) for epoch in e]
    if method == "ide":  # MultiStepLR at round(f · epochs)
        milestones = sorted({round(f * epochs) for f in get("milestones")})
        return [lr * get("gamma") ** sum(m <= epoch for m in milestones) for epoch in e]
    if method == "soft-lif":
        if get("lr_steps"):
            return [lr * 0.1 ** sum(s <= epoch for s in get("lr_steps")) for epoch in e]
        return [
            lr * get("lr_decay") ** (-epoch / max(epochs - 1, 1)) for epoch in e
        ]  # lr/lr_decay at the end
    if method == "stl-snn":
        return [lr * get("gamma") ** epoch for epoch in e]
    if method == "st-rsbp":
        return [lr / math.sqrt(epoch + 1) for epoch in e]
    if method == "temporal-surrogate-bp":  # STBP main.py: × 0.1 every lr_decay_epochs
        return [lr * 0.1 ** (epoch // get("lr_decay_epochs")) for epoch in e]
    if method in ("conversion", "ottt"):
        schedule = "cosine"
    elif method == "tssl-bp":
        schedule = "none"
    else:
        schedule = get("schedule")
    if schedule == "cosine":
        return [lr * (1 + math.cos(math.pi * epoch / epochs)) / 2 for epoch in e]
    if schedule == "step":
        return [lr * get("lr_gamma") ** (epoch // get("lr_step_size")) for epoch in e]
    assert schedule == "none", schedule
    return [lr] * epochs


@pytest.mark.parametrize(("name", "key"), RECIPE_CARDS, ids=[f"{s}/{k}" for s, k in RECIPE_CARDS])
def test_configure_builds_the_official_optimiser_and_schedule_of_the_card(name, key):
    entry = suite(name).algorithms[key]
    method = method_of(key, entry)
    spec = expand(suite(name), Overrides(algorithms=[key]))[0]
    assert spec.algorithm == method
    mirrors = entry.fidelity.mirrors
    cls = algorithms.get(method)
    cfg = cls.Config(**spec.hparams)
    digits = suite("digits-lowT")
    arch = SMALL_ARCH.get(method) or next(
        e.arch for k, e in digits.algorithms.items() if method_of(k, e) == method
    )
    if method == "ottt" and cfg.feedback:
        arch = "8C3-8C3"  # VGG-F: conv first and last layers
    small = cfg.model_copy(update={"init_std": 0.01}) if method == "soft-lif" else cfg  # one per layer
    algorithm = cls(small, resolve_architecture(arch), DatasetInfo("x", (1, 8, 8), 10))
    torch.manual_seed(0)
    T = 4
    net = algorithm.build(T)
    epochs = mirrors.get("epochs", spec.epochs)
    ctx = RunContext(T, torch.device("cpu"), epochs, 8, 8, "direct", torch.Generator(), direct)
    state = algorithm.configure(net, ctx)
    optimizer = state.optimizer
    official = mirrors.get("optimizer") or FIXED_OPTIMIZER.get(method) or cfg.optimizer
    got = type(optimizer).__name__
    assert type(optimizer) is OPTIMIZERS[official], f"{name}/{key}: {got}, not {official}"
    lr = mirrors.get("lr", cfg.lr)
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    in_groups = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_groups == trainable, (
        f"{name}/{key}: the optimiser does not hold exactly the trainable parameters"
    )
    for group in optimizer.param_groups:
        bias_group = method == "soft-lif" and group["params"][0].dim() == 1
        want_lr = lr * mirrors.get("bias_lr_factor", cfg.bias_lr_factor) if bias_group else lr
        assert group["lr"] == pytest.approx(want_lr, rel=1e-12), (name, key, "lr")
        if official == "sgd":
            assert group["momentum"] == pytest.approx(mirrors.get("momentum", cfg.momentum)), (name, key)
        if "beta1" in mirrors:
            assert group["betas"] == pytest.approx((mirrors["beta1"], mirrors["beta2"])), (name, key)
        if method == "soft-lif":
            continue  # per-layer decay: test_soft_lif.py's optimiser-groups test
        if "weight_decay" in mirrors:
            assert group["weight_decay"] == pytest.approx(mirrors["weight_decay"]), (name, key, "wd")
    used = []
    for _ in range(epochs):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # no gradients: a no-op that keeps the scheduler's order check quiet
        if state.scheduler is not None:
            state.scheduler.step()
    want = expected_lrs(method, mirrors, cfg, lr, epochs)
    assert used == pytest.approx(want, rel=1e-9, abs=1e-15), f"{name}/{key}: lr per epoch"
    assert len(set(used)) > 1 or want == [lr] * epochs  # a schedule that moves is checked moving
