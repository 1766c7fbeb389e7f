"""Human-facing reports of the ``mmpo demo`` experiment.

:func:`write_report` turns the demo's results, Trainer log histories and generations into
``results.md`` (a Markdown table), ``curves.png`` (training curves), ``results.png`` (a
grouped bar chart) and ``index.html`` (a self-contained page showing each evaluation image
with every method's caption, hallucinated objects marked).
"""

from __future__ import annotations

import base64
import html
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from mmpo.eval.benchmarks.shapes_chair import caption_report
from mmpo.io import publish, write_text_atomic

Metric = float | Mapping[str, Any]  # a number, or {"mean", "std", "values"} over seeds

COLUMNS = [  # (metric key, header, shown as a percentage)
    ("chair_s", "CHAIR_s ↓", True),
    ("chair_i", "CHAIR_i ↓", True),
    ("cover", "cover ↑", True),
    ("qa_accuracy", "QA acc ↑", True),
    ("pope_accuracy", "POPE acc ↑", True),
    ("pope_f1", "POPE F1 ↑", True),
    ("image_reliance", "reliance (crop) ↑", False),
    ("reliance_blank", "reliance (blank) ↑", False),
    ("words", "words", False),
    ("truth_logp", "true-caption log-lik", False),
]
LEGEND = (
    "Rates in %, mean ± std over seeds where shown. CHAIR_s: captions with a hallucinated object; "
    "CHAIR_i: hallucinated share of mentioned objects (distinct objects per caption); "
    "cover: ground-truth objects mentioned; QA acc: correct answers to questions about the scene; "
    "POPE acc / F1: yes/no object-existence probing scored by POPE's evaluate.py rules (adversarial negatives: "
    "the absent objects the world's priors suggest; \"yes\" positive); "
    "reliance: mean per-token drop of the log-likelihood of the model's own captions "
    "when the image is replaced by CoPO's training crop, or by a blank image CoPO never trains on (nats); words: mean caption length; true-caption log-lik: mean per-token "
    "log-likelihood of the evaluation scenes' true captions (nats; it falls when training over-optimises)."
)
CURVES = [("loss", "loss"), ("rewards/margins", "reward margin"), ("image/margins", "image-conditional margin"),
          ("kl", "KL(policy ‖ reference), nats/token"), ("words", "caption length (words)"),
          ("truth_logp", "true-caption log-lik (nats/token)")]
BARS = [("chair_s", "CHAIR_s ↓"), ("chair_i", "CHAIR_i ↓"), ("cover", "cover ↑"), ("pope_f1", "POPE F1 ↑")]
MAX_HTML_IMAGES = 40
CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; vertical-align: top; font-size: 14px; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { image-rendering: pixelated; width: 96px; } .truth { color: #555; font-size: 12px; }
mark.hal { background: #f8b4b4; }
"""


def metric_value(value: Metric) -> tuple[float, float | None]:
    """(mean, std) of a metric given as a number (std None) or as {"mean", "std", ...}."""
    if isinstance(value, Mapping):
        std = value.get("std")
        return float(value["mean"]), None if std is None else float(std)
    return float(value), None


def _ordered(methods: Mapping[str, Any]) -> list[str]:
    """Method names with "base" first, the rest in their given order."""
    return sorted(methods, key=lambda m: m != "base")


def _cell(value: Metric, rate: bool) -> str:
    mean, std = metric_value(value)
    scale, digits = (100.0, 1) if rate else (1.0, 3)
    text = f"{mean * scale:.{digits}f}"
    return text if std is None else f"{text} ± {std * scale:.{digits}f}"


def _table_rows(results: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """(method, formatted cells) per method; "–" for a metric the method lacks."""
    methods = results["methods"]
    return [(name, [_cell(methods[name][key], rate) if key in methods[name] else "–" for key, _, rate in COLUMNS])
            for name in _ordered(methods)]


def render_markdown(results: Mapping[str, Any]) -> str:
    """The results table (one row per method, "base" first) followed by its legend."""
    lines = ["| method | " + " | ".join(header for _, header, _ in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in _table_rows(results)]
    return "\n".join(lines) + "\n\n" + LEGEND + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: str) -> None:
    """Save ``fig`` as a PNG atomically (temp file in the same folder, then rename) and close it."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        _pyplot().close(fig)


def plot_curves(histories: Mapping[str, list[dict]], path: str) -> None:
    """Loss, reward margin, image-conditional margin and the over-optimisation checks (KL to
    the reference, caption length, true-caption likelihood: :mod:`mmpo.shapes.drift`) against
    step, one line per method (coloured as in :func:`plot_results` when both list methods
    alike); a method appears in a panel only if it logs that key, a panel only if one does."""
    plt = _pyplot()
    curves = [(k, t) for k, t in CURVES if any(k in e for h in histories.values() for e in h)] or CURVES[:1]
    cols = min(3, len(curves))
    rows = -(-len(curves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.5 * rows), squeeze=False)
    for ax in axes.flat[len(curves):]:
        ax.set_visible(False)
    for ax, (key, title) in zip(axes.flat, curves):
        for i, method in enumerate(_ordered(histories)):
            points = [(entry["step"], entry[key]) for entry in histories[method] if key in entry and "step" in entry]
            if points:
                ax.plot(*zip(*points), label=method, marker=".", color=f"C{i % 10}")
        ax.set(title=title, xlabel="step")
        if ax.has_data():
            ax.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)


def plot_results(results: Mapping[str, Any], path: str) -> None:
    """Grouped bars of CHAIR_s, CHAIR_i, cover and POPE F1 per method, with std error bars."""
    plt = _pyplot()
    methods = _ordered(results["methods"])
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for i, method in enumerate(methods):
        stats = [metric_value(results["methods"][method].get(key, 0.0)) for key, _ in BARS]
        errors = [std or 0.0 for _, std in stats] if any(std is not None for _, std in stats) else None
        ax.bar([k + i * width for k in range(len(BARS))], [mean for mean, _ in stats], width,
               yerr=errors, capsize=2, label=method, color=f"C{i % 10}")
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(BARS))], [label for _, label in BARS])
    ax.set(ylim=(0, 1.05), ylabel="rate")
    ax.legend(fontsize=8, ncol=min(len(methods), 6), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    _save_figure(fig, path)


def mark_hallucinations(text: str, hallucinated: list[str]) -> str:
    """``text`` HTML-escaped, each occurrence of a hallucinated "<colour> <shape>" phrase
    (any case, singular or plural) wrapped in ``<mark class="hal">``."""
    from mmpo.eval.compare import mark_phrases

    return mark_phrases(text, hallucinated)


def _data_uri(path: str) -> str:
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


def _html_results(results: Mapping[str, Any]) -> str:
    header = "<tr><th>method</th>" + "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in COLUMNS) + "</tr>"
    rows = "".join(f"<tr><th>{html.escape(name)}</th>" + "".join(f'<td class="num">{html.escape(c)}</td>' for c in cells)
                   + "</tr>" for name, cells in _table_rows(results))
    return f"<table>{header}{rows}</table>"


def _html_caption(generation: dict | None) -> str:
    if generation is None:
        return "<td>–</td>"
    text = generation["response"] or ""
    return f"<td>{mark_hallucinations(text, caption_report(text, generation['objects'])['hallucinated'])}</td>"


def _html_generations(generations: Mapping[str, list[dict]], images: Mapping[str, str]) -> str:
    methods = _ordered(generations)
    by_method = {m: {g["image_id"]: g for g in generations[m]} for m in methods}
    image_ids = [g["image_id"] for g in generations.get("base", generations[methods[0]])][:MAX_HTML_IMAGES]
    rows = []
    for image_id in image_ids:
        objects = next(by_method[m][image_id]["objects"] for m in methods if image_id in by_method[m])
        truth = ", ".join(f"{o['color']} {o['shape']}" for o in objects) or "nothing"
        image = f'<img src="{_data_uri(images[image_id])}" alt="{html.escape(image_id)}"><br>' if image_id in images else ""
        rows.append(f'<tr><td>{image}<span class="truth">{html.escape(image_id)}<br>truth: {html.escape(truth)}</span></td>'
                    + "".join(_html_caption(by_method[m].get(image_id)) for m in methods) + "</tr>")
    header = "<tr><th>image</th>" + "".join(f"<th>{html.escape(m)}</th>" for m in methods) + "</tr>"
    return f"<table>{header}{''.join(rows)}</table>"


def render_html(results: Mapping[str, Any], generations: Mapping[str, list[dict]], images: Mapping[str, str]) -> str:
    """A self-contained page: the results table, then each image with every method's caption."""
    captions = _html_generations(generations, images) if generations else "<p>No generations.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mmpo demo results</title><style>{CSS}</style></head>
<body>
<h1>mmpo demo: object hallucination in the shapes world</h1>
{_html_results(results)}
<p>{html.escape(LEGEND)}</p>
<h2>Captions</h2>
<p><mark class="hal">Marked</mark> phrases name objects that are not in the image; "truth" lists the objects that are.</p>
{captions}
</body></html>
"""


def write_report(out_dir: str, results: dict, histories: dict[str, list[dict]],
                 generations: dict[str, list[dict]], images: dict[str, str]) -> dict[str, str]:
    """Write results.md, curves.png, results.png and index.html into ``out_dir``; return their paths."""
    files = {"markdown": "results.md", "curves": "curves.png", "chart": "results.png", "html": "index.html"}
    paths = {kind: os.path.join(out_dir, name) for kind, name in files.items()}
    write_text_atomic(paths["markdown"], render_markdown(results))
    plot_curves(histories, paths["curves"])
    plot_results(results, paths["chart"])
    write_text_atomic(paths["html"], render_html(results, generations, images))
    return paths
