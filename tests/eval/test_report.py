"""Reports of the demo: every file is written, the table is formatted, the HTML marks
exactly the hallucinated phrases, escapes responses and embeds the images."""

import re

import pytest
from PIL import Image

from mmpo.eval.report import mark_hallucinations, metric_value, render_markdown, write_report

METRICS = ("chair_s", "chair_i", "cover", "qa_accuracy", "pope_accuracy", "pope_f1", "image_reliance")


def _metrics(*values):
    return dict(zip(METRICS, values))


RESULTS = {
    "methods": {
        "dpo": _metrics(0.25, 0.1, 0.8, 0.7, 0.9, 0.88, 0.5),
        "base": _metrics(0.5, 0.123, 0.75, 0.6, 0.8, 0.79, 0.04567),
        "mdpo": _metrics(0.0, 0.0, 0.9, 0.75, 0.95, 0.94, 0.812),
    },
    "config": {"seeds": 1},
}
SCENES = {
    "s0": [{"shape": "circle", "color": "red", "cell": 0}],
    "s1": [{"shape": "star", "color": "blue", "cell": 4}, {"shape": "square", "color": "green", "cell": 8}],
    "s2": [{"shape": "triangle", "color": "yellow", "cell": 2}],
}
RESPONSES = {
    "base": {"s0": "There is a red circle and a Purple Stars.", "s1": "A blue star and a green square.",
             "s2": "<script>alert(1)</script> a yellow triangle"},
    "dpo": {"s0": "There is a red circle.", "s1": "A blue star and an orange circle.", "s2": "a yellow triangle"},
    "mdpo": {"s0": "There is a red circle.", "s1": "A blue star and a green square.", "s2": "a yellow triangle"},
}
HISTORIES = {
    "base": [],
    "dpo": [{"step": s, "loss": 0.7 - 0.1 * s, "rewards/margins": 0.1 * s} for s in (1, 2, 3)] + [{"train_runtime": 1.0}],
    "mdpo": [{"step": s, "loss": 0.8 - 0.1 * s, "rewards/margins": 0.2 * s, "image/margins": 0.05 * s} for s in (1, 2, 3)],
}


@pytest.fixture()
def images(tmp_path):
    paths = {}
    for i, image_id in enumerate(SCENES):
        paths[image_id] = str(tmp_path / f"{image_id}.png")
        Image.new("RGB", (8, 8), (40 * i, 100, 200)).save(paths[image_id])
    return paths


def _generations():
    return {method: [{"image_id": i, "prompt": "Describe the image.", "response": text, "objects": SCENES[i]}
                     for i, text in rows.items()] for method, rows in RESPONSES.items()}


def _table_rows(markdown):
    return [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| method")]


def test_write_report_writes_all_files(tmp_path, images):
    out = tmp_path / "report"
    paths = write_report(str(out), RESULTS, HISTORIES, _generations(), images)
    assert set(paths) == {"markdown", "curves", "chart", "html"}
    for path in paths.values():
        assert path.startswith(str(out))
        assert open(path, "rb").read()
    for kind in ("curves", "chart"):
        with Image.open(paths[kind]) as png:
            assert png.format == "PNG" and png.width > 0 and png.height > 0
    assert sorted(p.name for p in out.iterdir()) == ["curves.png", "index.html", "results.md", "results.png"]


def test_markdown_one_row_per_method_base_first():
    rows = _table_rows(render_markdown(RESULTS))
    assert [row.split("|")[1].strip() for row in rows] == ["base", "dpo", "mdpo"]
    # the last three columns (reliance under a blank m′, words, true-caption log-lik) are absent here: "–"
    assert [c.strip() for c in rows[0].split("|")[2:-1]] == ["50.0", "12.3", "75.0", "60.0", "80.0", "79.0", "0.046",
                                                             "–", "–", "–"]
    assert "| 0.0 | 0.0 | 90.0 |" in rows[2]
    assert "reliance" in render_markdown(RESULTS).split("\n\n")[1]


def test_markdown_seed_dicts_show_mean_and_std():
    seeded = {name: {k: {"mean": v, "std": v / 10, "values": [v, v]} for k, v in row.items()}
              for name, row in RESULTS["methods"].items()}
    rows = _table_rows(render_markdown({"methods": seeded}))
    assert [c.strip() for c in rows[0].split("|")[2:5]] == ["50.0 ± 5.0", "12.3 ± 1.2", "75.0 ± 7.5"]
    assert rows[0].split("|")[8].strip() == "0.046 ± 0.005"


def test_metric_value():
    assert metric_value(0.5) == (0.5, None)
    assert metric_value({"mean": 0.5, "std": 0.1, "values": [0.4, 0.6]}) == (0.5, 0.1)


def test_seeded_results_chart_has_error_bars(tmp_path, images):
    seeded = {"methods": {name: {k: {"mean": v, "std": 0.05, "values": [v]} for k, v in row.items()}
                          for name, row in RESULTS["methods"].items()}}
    paths = write_report(str(tmp_path), seeded, HISTORIES, _generations(), images)
    with Image.open(paths["chart"]) as png:
        assert png.width > 0


def test_html_marks_hallucinations_escapes_and_embeds(tmp_path, images):
    page = open(write_report(str(tmp_path), RESULTS, HISTORIES, _generations(), images)["html"], encoding="utf-8").read()
    assert re.findall(r'<mark class="hal">(.*?)</mark>', page) == ["Marked", "Purple Stars", "orange circle"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert page.count("data:image/png;base64,") == 3
    assert "truth: blue star, green square" in page
    assert "http://" not in page and "https://" not in page


def test_mark_hallucinations_only_marks_the_hallucinated_phrase():
    text = "A red circle, two RED CIRCLES & a blue star; reddish circle."
    assert mark_hallucinations(text, ["red circle"]) == (
        'A <mark class="hal">red circle</mark>, two <mark class="hal">RED CIRCLES</mark> &amp; a blue star; reddish circle.'
    )
    assert mark_hallucinations("a <b>", []) == "a &lt;b&gt;"
