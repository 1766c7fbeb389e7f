"""``mmpo eval report``: several runs' :class:`~mmpo.eval.result.EvalResult` files side by side.

:func:`write_comparison` writes ``report.md`` (per benchmark, one table of the headline
figures with a row per run and one of the groups; later runs show their difference to the
first, the baseline) and ``report.html`` (a self-contained page: the same tables, then per
benchmark the examples joined by detail ``id``, each image beside every run's answer with
its hallucinated phrases marked and its correct / score badges).

Detail keys read (where present): ``id``, ``image``, ``prompt`` / ``question``, ``answer``,
``hallucinated``, ``correct``, ``score``, and a reference in ``gt_answer`` / ``ground_truth``
/ ``label``. Everything taken from the files is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from PIL import Image

from mmpo.eval.result import EvalResult, format_value, load_result
from mmpo.io import write_text_atomic

IMAGE_MAX_SIDE = 256  # px; embedded images are downscaled to fit
REFERENCE_KEYS = ("gt_answer", "ground_truth", "label")
Cell = tuple[str, str]  # (formatted value, signed difference to the baseline run or "")
Row = tuple[list[str], list[Cell]]  # (leading key cells, one Cell per figure)
CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; vertical-align: top; font-size: 14px; }
th { background: #f4f4f4; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.delta { color: #666; font-size: 12px; } .id { color: #555; font-size: 12px; }
img { max-width: 256px; max-height: 256px; min-width: 96px; image-rendering: pixelated; }
td.answer { white-space: pre-wrap; max-width: 360px; } td.missing { color: #999; text-align: center; }
mark.hal { background: #f8b4b4; }
.badge { display: inline-block; border-radius: 3px; padding: 0 4px; margin: 2px 4px 0 0; font-size: 12px; white-space: nowrap; }
.ok { background: #c8efc8; } .bad { background: #f8c8c8; } .score { background: #dde4f8; }
"""


# --- runs and figures -------------------------------------------------------------------

def _by_benchmark(results: Iterable[EvalResult]) -> dict[str, list[EvalResult]]:
    """Results grouped by benchmark (first-seen order), each run given a unique, non-empty
    label: an empty one becomes ``run N`` (N: its position in ``results``), a repeated one
    gets `` #2``, `` #3``, ... within its benchmark."""
    groups: dict[str, list[EvalResult]] = {}
    for i, result in enumerate(results, 1):
        runs = groups.setdefault(result.benchmark, [])
        label, seen = result.label or f"run {i}", {r.label for r in runs}
        unique, n = label, 1
        while unique in seen:
            n += 1
            unique = f"{label} #{n}"
        runs.append(replace(result, label=unique))
    return groups


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _delta(base: Any, value: Any) -> str:
    """``value - base`` signed ("+0.0100", "-3"), or "" when either is not a number."""
    if not (_is_number(base) and _is_number(value)):
        return ""
    if isinstance(base, int) and isinstance(value, int):
        return f"{value - base:+d}"
    return f"{value - base:+.4f}"


def _names(tables: Iterable[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(name for table in tables for name in table))


def _figure_rows(runs: list[EvalResult], group: str | None, names: list[str]) -> list[tuple[str, list[Cell]]]:
    """(run label, [(value, delta to the first run)] per name in ``names``) for the headline
    figures (``group`` None) or one group; ("–", "") where a run lacks a figure."""
    def table(run: EvalResult) -> dict[str, Any]:
        return run.metrics if group is None else run.groups.get(group, {})

    base = table(runs[0])
    rows = []
    for i, run in enumerate(runs):
        figures = table(run)
        rows.append((run.label, [(format_value(n, figures[n]), _delta(base.get(n), figures[n]) if i else "")
                                 if n in figures else ("–", "") for n in names]))
    return rows


def _metric_rows(runs: list[EvalResult]) -> tuple[list[str], list[Row]]:
    """Column names and rows (keys: [run]) of the headline-figures table."""
    names = _names(run.metrics for run in runs)
    return names, [([label], cells) for label, cells in _figure_rows(runs, None, names)]


def _group_rows(runs: list[EvalResult]) -> tuple[list[str], list[Row]]:
    """Column names and rows (keys: [group, run], runs together within a group) of the groups table."""
    groups = list(dict.fromkeys(group for run in runs for group in run.groups))
    names = _names(run.groups.get(g, {}) for g in groups for run in runs)
    return names, [([group, label], cells) for group in groups for label, cells in _figure_rows(runs, group, names)]


def _notes(runs: list[EvalResult]) -> list[str]:
    """Each distinct note once; prefixed with the runs it belongs to unless all have it."""
    owners: dict[str, list[str]] = {}
    for run in runs:
        for note in dict.fromkeys(map(str, run.notes)):
            owners.setdefault(note, []).append(run.label)
    return [note if len(labels) == len(runs) else f"{', '.join(labels)}: {note}" for note, labels in owners.items()]


# --- Markdown ---------------------------------------------------------------------------

def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(first: list[str], rows: list[Row], names: list[str]) -> list[str]:
    lines = ["| " + " | ".join(_md(h) for h in first + names) + " |", "|" + "---|" * len(first) + "---:|" * len(names)]
    for keys, cells in rows:
        shown = [value + (f" ({delta})" if delta else "") for value, delta in cells]
        lines.append("| " + " | ".join(_md(c) for c in keys + shown) + " |")
    return lines


def render_comparison_markdown(results: list[EvalResult]) -> str:
    """One section per benchmark: a table of the headline figures (rows: runs in the given
    order; later runs show their difference to the first in brackets), a table of the groups
    (rows: group × run), the notes and the number of examples each run scored."""
    lines = ["# mmpo eval report", ""]
    for benchmark, runs in _by_benchmark(results).items():
        lines += [f"## {_md(benchmark)}", ""]
        names, rows = _metric_rows(runs)
        lines += _md_table(["run"], rows, names)
        if len(runs) > 1:
            lines += ["", f"Differences to the first run, {_md(runs[0].label)}, in brackets."]
        names, rows = _group_rows(runs)
        if rows:
            lines += [""] + _md_table(["group", "run"], rows, names)
        notes = _notes(runs)
        if notes:
            lines += [""] + [f"- {_md(note)}" for note in notes]
        lines += ["", "Examples scored: " + ", ".join(f"{_md(run.label)} {len(run.details)}" for run in runs) + ".", ""]
    return "\n".join(lines)


# --- HTML -------------------------------------------------------------------------------

def mark_phrases(text: str, phrases: Iterable[str] | str | None) -> str:
    """``text`` HTML-escaped, each occurrence of a phrase wrapped in ``<mark class="hal">``:
    any case, whole words only ("dog" not inside "hotdog"), plural "-s"/"-es" included,
    any whitespace between a phrase's words; longer phrases win over their prefixes."""
    if isinstance(phrases, str):
        phrases = [phrases]
    words = sorted({str(p).strip() for p in phrases or () if str(p).strip()}, key=len, reverse=True)
    if not words:
        return html.escape(text)
    alternatives = "|".join(r"\s+".join(map(re.escape, w.split())) for w in words)
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?:e?s)?(?!\w)", re.IGNORECASE)
    out, last = [], 0
    for match in pattern.finditer(text):
        out += [html.escape(text[last:match.start()]), f'<mark class="hal">{html.escape(match.group(0))}</mark>']
        last = match.end()
    return "".join(out) + html.escape(text[last:])


def image_data_uri(path: str, max_side: int = IMAGE_MAX_SIDE) -> str | None:
    """The image at ``path`` as a PNG data URI, downscaled to fit ``max_side`` px; None if
    there is no readable image there."""
    try:
        with Image.open(path) as img:
            alpha = "A" in img.getbands() or "transparency" in img.info
            img = img.convert("RGBA" if alpha else "RGB")
        img.thumbnail((max_side, max_side))
        buffer = io.BytesIO()
        img.save(buffer, format="PNG")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _html_table(first: list[str], rows: list[Row], names: list[str]) -> str:
    header = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in first + names) + "</tr>"
    body = "".join(
        "<tr>" + "".join(f"<th>{html.escape(k)}</th>" for k in keys)
        + "".join(f'<td class="num">{html.escape(v)}' + (f' <span class="delta">{html.escape(d)}</span>' if d else "")
                  + "</td>" for v, d in cells) + "</tr>"
        for keys, cells in rows)
    return f"<table>{header}{body}</table>"


def _first(details: list[dict | None], keys: tuple[str, ...]) -> Any:
    """The first value under any of ``keys`` in the first detail that has one."""
    return next((d[k] for d in details if d for k in keys if d.get(k) not in (None, "")), None)


def _text(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _answer_cell(detail: dict | None) -> str:
    if detail is None:
        return '<td class="missing">–</td>'
    badges = []
    if detail.get("correct") is True:
        badges.append('<span class="badge ok">✓ correct</span>')
    elif detail.get("correct") is False:
        badges.append('<span class="badge bad">✗ incorrect</span>')
    if _is_number(detail.get("score")):
        badges.append(f'<span class="badge score">score {html.escape(format_value("score", detail["score"]))}</span>')
    answer = mark_phrases(_text(detail.get("answer", "")), detail.get("hallucinated"))
    return f'<td class="answer">{answer}' + (f"<br>{''.join(badges)}" if badges else "") + "</td>"


def _html_examples(runs: list[EvalResult], max_examples: int, images: dict[str, str | None]) -> str:
    """One row per example id (the first run's order, then ids only later runs have), at
    most ``max_examples``: image and id, prompt, reference if any, then each run's answer."""
    by_run = [{str(d["id"]): d for d in run.details if isinstance(d, dict) and "id" in d} for run in runs]
    ids = list(dict.fromkeys(i for table in by_run for i in table))
    shown = ids[:max_examples]
    rows = [[table.get(i) for table in by_run] for i in shown]
    has_prompt = any(_first(r, ("prompt", "question")) is not None for r in rows)
    has_reference = any(_first(r, REFERENCE_KEYS) is not None for r in rows)
    header = ("<tr><th>example</th>" + "<th>prompt</th>" * has_prompt + "<th>reference</th>" * has_reference
              + "".join(f"<th>{html.escape(run.label)}</th>" for run in runs) + "</tr>")
    body = []
    for example_id, details in zip(shown, rows):
        path = _first(details, ("image",))
        if isinstance(path, str) and path not in images:
            images[path] = image_data_uri(path)
        uri = images.get(path) if isinstance(path, str) else None
        image = f'<img src="{uri}" alt="{html.escape(example_id)}"><br>' if uri else ""
        cells = [f'<td>{image}<span class="id">{html.escape(example_id)}</span></td>']
        if has_prompt:
            cells.append(f'<td class="answer">{html.escape(_text(_first(details, ("prompt", "question")) or ""))}</td>')
        if has_reference:
            cells.append(f'<td class="answer">{html.escape(_text(_first(details, REFERENCE_KEYS) or ""))}</td>')
        body.append("<tr>" + "".join(cells) + "".join(_answer_cell(d) for d in details) + "</tr>")
    count = f"{len(shown)} of {len(ids)} examples" if len(shown) < len(ids) else f"{len(ids)} examples"
    return (f"<p>{count}, joined by id; – where a run has no such example; "
            f'<mark class="hal">marked</mark> phrases are the ones the benchmark counts as hallucinated.</p>'
            f"<table>{header}{''.join(body)}</table>")


def render_comparison_html(results: list[EvalResult], max_examples: int = 50) -> str:
    """A self-contained page: per benchmark the tables of :func:`render_comparison_markdown`,
    then up to ``max_examples`` examples joined by detail ``id`` (0: no examples)."""
    if max_examples < 0:
        raise ValueError(f"max_examples must be >= 0, got {max_examples}")
    images: dict[str, str | None] = {}  # path -> data URI, so an image shared by benchmarks is encoded once
    sections, contents = [], []
    for n, (benchmark, runs) in enumerate(_by_benchmark(results).items()):
        anchor, name = f"benchmark-{n}", html.escape(benchmark)
        contents.append(f'<a href="#{anchor}">{name}</a>')
        names, rows = _metric_rows(runs)
        parts = [f'<h2 id="{anchor}">{name}</h2>', _html_table(["run"], rows, names)]
        if len(runs) > 1:
            parts.append(f'<p class="delta">Differences to the first run, {html.escape(runs[0].label)}, in grey.</p>')
        names, rows = _group_rows(runs)
        if rows:
            parts.append(_html_table(["group", "run"], rows, names))
        notes = _notes(runs)
        if notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(note)}</li>" for note in notes) + "</ul>")
        if max_examples and any(run.details for run in runs):
            parts += ["<h3>Examples</h3>", _html_examples(runs, max_examples, images)]
        sections.append("\n".join(parts))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mmpo eval report</title><style>{CSS}</style></head>
<body>
<h1>mmpo eval report</h1>
<p>{" · ".join(contents)}</p>
{chr(10).join(sections)}
</body></html>
"""


# --- files ------------------------------------------------------------------------------

def _checked(result: EvalResult, path: str) -> EvalResult:
    """``result`` checked for the shapes rendering relies on (ValueError naming ``path``),
    its label defaulted to the file's stem, and relative image paths that exist beside the
    JSON file (but not from the working directory) made absolute."""
    shapes = (("metrics", dict, "an object"), ("groups", dict, "an object"),
              ("details", list, "a list"), ("notes", list, "a list"))
    problems = [f"'{name}' is not {kind}" for name, type_, kind in shapes if not isinstance(getattr(result, name), type_)]
    if not problems:
        problems += [f"groups['{g}'] is not an object" for g, v in result.groups.items() if not isinstance(v, dict)]
        problems += [f"details[{i}] is not an object with an 'id'" for i, d in enumerate(result.details)
                     if not isinstance(d, dict) or "id" not in d][:1]
    if problems:
        raise ValueError(f"{path}: not a valid mmpo eval result: {'; '.join(problems)}")
    folder = os.path.dirname(os.path.abspath(path))
    details = []
    for detail in result.details:
        image = detail.get("image")
        if isinstance(image, str) and image and not os.path.isabs(image) and not os.path.exists(image):
            beside = os.path.join(folder, image)
            if os.path.exists(beside):
                detail = {**detail, "image": beside}
        details.append(detail)
    stem = os.path.splitext(os.path.basename(path))[0]
    return replace(result, label=result.label or stem, details=details)


def write_comparison(result_paths: list[str], out_dir: str, max_examples: int = 50) -> dict[str, str]:
    """Load the result files (in order; per benchmark the first is the baseline), write
    ``report.md`` and ``report.html`` into ``out_dir`` atomically and return their paths.

    A run's label is its result's ``label``, else the file's stem; two runs of one benchmark
    with the same label are told apart by `` #2``, `` #3``... in the order given. Raises
    ValueError naming the file for an unreadable or malformed result."""
    if not result_paths:
        raise ValueError("no result files given: pass one or more R.json files written by `mmpo eval`")
    results = [_checked(load_result(path), path) for path in result_paths]
    paths = {"markdown": os.path.join(out_dir, "report.md"), "html": os.path.join(out_dir, "report.html")}
    markdown = render_comparison_markdown(results)
    page = render_comparison_html(results, max_examples)
    write_text_atomic(paths["markdown"], markdown)
    write_text_atomic(paths["html"], page)
    return paths
