"""Plain-text views of suite entries (``snnbench show SUITE/ENTRY``)."""

from __future__ import annotations

from typing import Any

from snnbench.suite import TRACKS, Suite


def render_entry(suite: Suite, key: str, fields: dict[str, Any], budget: str | None = None) -> str:
    """The entry's track, fidelity card (source, mirrored values marked equal or deviating, deviations with
    reasons) and every resolved field, each marked with where its value comes from."""
    entry = suite.algorithms[key]
    card = entry.fidelity
    tuned = entry.tuned.fields if entry.tuned is not None else set()
    lines = [
        f"{suite.name}/{key}: {entry.algorithm or key}, track {entry.track} ({TRACKS[entry.track]})",
        "",
    ]
    if card is None:
        lines += ["Fidelity card: none (no official configuration is claimed for this entry)", ""]
    else:
        lines += [f"Fidelity card (official values from {card.source}):"]
        deviations = {d.field: d for d in card.deviations}
        for name, official in card.mirrors.items():
            mark = "deviates (declared)" if name in deviations else "mirrored"
            lines.append(f"  {name}: {fields.get(name)!r}  official {official!r}  [{mark}]")
        if card.deviations:
            lines.append("Deviations:")
            for d in card.deviations:
                values = [f"ours {d.ours!r}"] if d.ours is not None else []
                values += [f"official {d.official!r}"] if d.official is not None else []
                lines.append(f"  - {d.field}: {', '.join(values) + ': ' if values else ''}{d.reason}")
        if card.notes:
            lines.append(f"Notes: {card.notes}")
        lines.append("")
    lines.append("Resolved configuration:")
    given = set(entry.hparams) | {"arch", "encoding"} | ({"timesteps"} if entry.timesteps else set())
    for name, value in fields.items():
        if name in tuned:
            origin = "tuned"
        elif name in ("epochs", "batch_size"):
            origin = "budget"
        elif name in given or name.startswith(("dataset.", "preprocess.")):
            origin = "suite"
        else:
            origin = "default"
        lines.append(f"  {name} = {value!r}  ({origin})")
    if entry.tuned is not None and entry.tuned.by_T is None:
        lines.append(f"Tuned: {entry.tuned.trials} trials on validation, record {entry.tuned.record}")
    elif entry.tuned is not None:  # a set per T; the resolved configuration above is the first T's
        for T, block in sorted(entry.tuned.by_T.items()):
            lines.append(
                f"Tuned at T={T}: {block.values}, {block.trials} trials on validation, record {block.record}"
            )
    lines += setup_lines(suite, key, budget)
    return "\n".join(lines)


def setup_lines(suite: Suite, key: str, budget: str | None = None) -> list[str]:
    """What the entry's method builds at each T (:func:`snnbench.setups.facts`: the leaderboard's
    optimiser, normalisation, outputs/class and extra weights columns), one line per fact, a value that
    differs by T given per T."""
    from snnbench.setups import FACT_COLUMNS, FACT_LABELS, row_facts
    from snnbench.suite import Overrides, expand

    specs = [s for s in expand(suite, Overrides(budget=budget, algorithms=[key])) if s.seed == suite.seeds[0]]
    found = {spec.T: row_facts(spec) for spec in specs}
    lines = ["What the method builds (snnbench.setups; the leaderboard's columns):"]
    for column in FACT_COLUMNS:
        values = {T: f[column] for T, f in found.items()}
        if len(set(values.values())) == 1:
            lines.append(f"  {FACT_LABELS[column]}: {next(iter(values.values()))}")
        else:
            lines.append(f"  {FACT_LABELS[column]}: " + "; ".join(f"T={T}: {v}" for T, v in values.items()))
    return lines
