"""`mmpo eval report`: runs of one benchmark side by side (differences to the first run),
other benchmarks in their own sections, examples joined by id with hallucinations marked
and every piece of user text escaped; the page renders in headless Chromium."""

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from PIL import Image

from mmpo.eval.compare import (
    image_data_uri, mark_phrases, render_comparison_html, render_comparison_markdown, write_comparison,
)
from mmpo.eval.result import EvalResult


def _runs(image_path="missing.png"):
    base = EvalResult(
        benchmark="chair", label="base",
        metrics={"chair_s": 0.5, "chair_i": 0.2, "n_captions": 3},
        details=[
            {"id": "a", "image": image_path, "prompt": "Describe the image.", "answer": "A dog and a Dog.",
             "hallucinated": ["dog"]},
            {"id": "b", "prompt": "Describe <b>this</b>.", "answer": "<script>alert(1)</script> a hotdog",
             "hallucinated": ["dog"]},
            {"id": "c", "answer": "A cat.", "hallucinated": []},
        ],
        notes=["CHAIR on 3 captions."],
    )
    dpo = EvalResult(
        benchmark="chair", label="dpo",
        metrics={"chair_s": 0.25, "chair_i": 0.1, "n_captions": 3},
        details=[{"id": "c", "answer": "A cat on a mat."}, {"id": "a", "answer": "A cat."},
                 {"id": "d", "answer": "Two dogs.", "hallucinated": ["dog"]}],
        notes=["CHAIR on 3 captions."],
    )
    pope = EvalResult(
        benchmark="pope", label="base",
        metrics={"accuracy": 0.8, "f1": 0.75},
        groups={"adversarial": {"accuracy": 0.7, "f1": 0.6}, "random": {"accuracy": 0.9}},
        details=[{"id": 1, "question": "Is there a dog?", "answer": "yes", "label": "no", "correct": False, "score": 0},
                 {"id": 2, "question": "Is there a cat?", "answer": "yes", "label": "yes", "correct": True, "score": 1}],
    )
    return [base, dpo, pope]


class _Tables(HTMLParser):
    """The text of every table cell: tables -> rows -> cells."""

    def __init__(self, page):
        super().__init__()
        self.tables, self._cell = [], None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _md_rows(markdown, section):
    body = markdown.split(f"## {section}\n")[1].split("\n## ")[0]
    return [[c.strip() for c in line.split("|")[1:-1]] for line in body.splitlines() if line.startswith("| ")]


def test_markdown_one_table_per_benchmark_with_differences_to_the_first_run():
    markdown = render_comparison_markdown(_runs())
    assert re.findall(r"^## (.*)$", markdown, re.M) == ["chair", "pope"]
    assert _md_rows(markdown, "chair") == [
        ["run", "chair_s", "chair_i", "n_captions"],
        ["base", "0.5000", "0.2000", "3"],
        ["dpo", "0.2500 (-0.2500)", "0.1000 (-0.1000)", "3 (+0)"],
    ]
    assert "- CHAIR on 3 captions." in markdown and "Examples scored: base 3, dpo 3." in markdown
    pope = _md_rows(markdown, "pope")
    assert pope[:2] == [["run", "accuracy", "f1"], ["base", "0.8000", "0.7500"]]
    assert pope[2:] == [["group", "run", "accuracy", "f1"], ["adversarial", "base", "0.7000", "0.6000"],
                        ["random", "base", "0.9000", "–"]]


def test_labels_default_and_repeats_are_told_apart():
    base, dpo, _ = _runs()
    dpo.label = "base"
    unnamed = EvalResult(benchmark="chair", metrics={"chair_s": 0.0})
    rows = _md_rows(render_comparison_markdown([base, dpo, unnamed]), "chair")
    assert [row[0] for row in rows] == ["run", "base", "base #2", "run 3"]


def test_mark_phrases_whole_words_any_case():
    assert mark_phrases("A dog and a Dog.", ["dog"]) == 'A <mark class="hal">dog</mark> and a <mark class="hal">Dog</mark>.'
    assert mark_phrases("a hotdog, dogma, two dogs", ["dog"]) == 'a hotdog, dogma, two <mark class="hal">dogs</mark>'
    assert mark_phrases("a red  car, a car", ["car", "red car"]) == (
        'a <mark class="hal">red  car</mark>, a <mark class="hal">car</mark>')
    assert mark_phrases("<b>dog</b>", ["", "dog"]) == '&lt;b&gt;<mark class="hal">dog</mark>&lt;/b&gt;'
    assert mark_phrases("a & b", None) == "a &amp; b"


def test_html_escapes_user_text():
    page = render_comparison_html(_runs())
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page
    assert "Describe &lt;b&gt;this&lt;/b&gt;." in page


def test_html_examples_joined_by_id():
    tables = _Tables(render_comparison_html(_runs())).tables
    examples = tables[1]  # chair: figures, examples; pope: figures, groups, examples
    assert examples[0] == ["example", "prompt", "base", "dpo"]
    assert examples[1:] == [
        ["a", "Describe the image.", "A dog and a Dog.", "A cat."],
        ["b", "Describe <b>this</b>.", "<script>alert(1)</script> a hotdog", "–"],
        ["c", "", "A cat.", "A cat on a mat."],
        ["d", "", "–", "Two dogs."],
    ]
    pope = tables[4]
    assert pope[0] == ["example", "prompt", "reference", "base"]
    assert pope[1] == ["1", "Is there a dog?", "no", "yes✗ incorrectscore 0"]
    assert pope[2][-1] == "yes✓ correctscore 1"
    assert len(_Tables(render_comparison_html(_runs(), max_examples=2)).tables[1]) == 3
    assert len(_Tables(render_comparison_html(_runs(), max_examples=0)).tables) == 3


def test_images_are_downscaled_data_uris(tmp_path):
    Image.new("RGB", (600, 300), (200, 40, 40)).save(tmp_path / "big.png")
    uri = image_data_uri(str(tmp_path / "big.png"))
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as img:
        assert img.size == (256, 128)
    (tmp_path / "not.png").write_text("not an image")
    assert image_data_uri(str(tmp_path / "not.png")) is None and image_data_uri(str(tmp_path / "none.png")) is None
    assert "<img" not in render_comparison_html(_runs(str(tmp_path / "none.png")))


def _write_runs(folder, image_path):
    paths = []
    for name, result in zip(("chair_base", "chair_dpo", "pope_base"), _runs(image_path)):
        paths.append(str(folder / f"{name}.json"))
        (folder / f"{name}.json").write_text(json.dumps(result.to_json()))
    return paths


def test_write_comparison_files_labels_and_errors(tmp_path):
    Image.new("RGB", (40, 40), (0, 90, 200)).save(tmp_path / "a.png")
    paths = _write_runs(tmp_path, "a.png")  # relative to the result file, not the working directory
    data = json.loads(open(paths[1]).read())
    (tmp_path / "chair_dpo.json").write_text(json.dumps({**data, "label": ""}))
    out = write_comparison(paths, str(tmp_path / "out"))
    assert out == {"markdown": str(tmp_path / "out" / "report.md"), "html": str(tmp_path / "out" / "report.html")}
    assert [row[0] for row in _md_rows(open(out["markdown"]).read(), "chair")] == ["run", "base", "chair_dpo"]
    assert open(out["html"]).read().count("data:image/png;base64,") == 1

    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    (tmp_path / "noid.json").write_text(json.dumps({"benchmark": "chair", "metrics": {}, "details": [{"answer": "x"}]}))
    for name, message in (("broken.json", "not a readable"), ("other.json", "no 'benchmark'"), ("noid.json", "details[0]")):
        with pytest.raises(ValueError, match=re.escape(str(tmp_path / name)) + ".*" + re.escape(message)):
            write_comparison([paths[0], str(tmp_path / name)], str(tmp_path / "out"))
    with pytest.raises(ValueError, match="no result files"):
        write_comparison([], str(tmp_path / "out"))


CHROMIUM = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium / chromium-browser / google-chrome on PATH")
def test_report_renders_in_headless_chromium(tmp_path):
    Image.new("RGB", (64, 48), (0, 150, 80)).save(tmp_path / "a.png")
    page = write_comparison(_write_runs(tmp_path, str(tmp_path / "a.png")), str(tmp_path / "out"))["html"]
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", f"file://{page}"]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    tables = _Tables(dom).tables
    assert [row[0] for row in tables[0]] == ["run", "base", "dpo"] and tables[0][2][1] == "0.2500 -0.2500"
    assert tables[3][1] == ["adversarial", "base", "0.7000", "0.6000"]
    assert dom.count('<mark class="hal">') == 5  # two legends, "dog", "Dog", "dogs"; not "hotdog"
    assert '<mark class="hal">Dog</mark>' in dom
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="a">', dom)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom and "<script" not in dom
