"""Plain-text views of suite entries (``snnbench show SUITE/ENTRY``)."""

from __future__ import annotations

from typing import Any

from snnbench.suite import TRACKS, Suite


def render_entry(suite: Suite, key: str, fields: dict[str, Any]) -> str:
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
    return "\n".join(lines)
