"""What every ``mmpo eval`` command writes: one :class:`EvalResult` as ``R.json`` (figures,
groups, per-example details, notes) and ``R.md`` (a Markdown summary) beside it.

Benchmark adapters build an :class:`EvalResult` from pure metric functions; nothing here
knows about models or benchmarks.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from mmpo.io import write_text_atomic

@dataclass
class EvalResult:
    """One benchmark scored on one set of answers.

    ``metrics``: the headline figures, flat ``{name: number}`` (rates as fractions in [0, 1]
    unless the benchmark's reference prints percentages, which its adapter says in ``notes``).
    ``groups``: the same figures per split / dimension / question type, ``{group: {name: number}}``.
    ``details``: one JSON-able dict per scored example (its id first), in input order.
    ``notes``: plain sentences on how this differs from the reference script, if at all.
    ``inputs``: the files and options the figures came from.
    """

    benchmark: str
    metrics: dict[str, float | int]
    groups: dict[str, dict[str, float | int]] = field(default_factory=dict)
    details: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # the model or run these answers came from, shown in reports

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> EvalResult:
        known = {k: obj[k] for k in ("benchmark", "metrics", "groups", "details", "notes", "inputs", "label") if k in obj}
        return cls(**known)


def load_result(path: str) -> EvalResult:
    """An :class:`EvalResult` written by :func:`write_result` (clear error otherwise)."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable mmpo eval result: {err}") from None
    if not isinstance(obj, dict) or "benchmark" not in obj or "metrics" not in obj:
        raise ValueError(f"{path}: not an mmpo eval result (no 'benchmark' / 'metrics' keys)")
    return EvalResult.from_json(obj)


def format_value(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"


def render_summary(result: EvalResult) -> str:
    """Markdown: the headline figures, then one table of the groups, then the notes."""
    title = f"# {result.benchmark}" + (f" — {result.label}" if result.label else "")
    lines = [title, "", "| metric | value |", "|---|---:|"]
    lines += [f"| {k} | {format_value(k, v)} |" for k, v in result.metrics.items()]
    if result.groups:
        names = list(dict.fromkeys(k for g in result.groups.values() for k in g))
        lines += ["", "| group | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for group, figures in result.groups.items():
            lines.append(f"| {group} | " + " | ".join(format_value(n, figures[n]) if n in figures else "–" for n in names) + " |")
    if result.notes:
        lines += ["", *[f"- {note}" for note in result.notes]]
    lines += ["", f"{len(result.details)} examples scored."]
    return "\n".join(lines) + "\n"


def write_result(result: EvalResult, out_path: str) -> dict[str, str]:
    """Write ``out_path`` (JSON) and the Markdown summary beside it (``.md``), atomically."""
    md_path = os.path.splitext(out_path)[0] + ".md"
    # keys keep the adapter's order (metrics in the reference's order, splits as listed)
    write_text_atomic(out_path, json.dumps(result.to_json(), indent=2, ensure_ascii=False, default=str) + "\n")
    write_text_atomic(md_path, render_summary(result))
    return {"json": out_path, "markdown": md_path}
