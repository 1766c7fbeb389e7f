"""`mmpo demo` end to end at the smallest size: every output is written, and CHAIR
recomputed from generations/ by a parser written here independently matches results.json."""

import json
import os
import re

import pytest
from PIL import Image

from mmpo.demo import DemoConfig, run_demo

COLOR_WORDS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPE_WORDS = ["circle", "square", "triangle", "star"]


def independent_chair(rows):
    """CHAIR_s / CHAIR_i / cover from generation rows, by plain token scanning."""
    hallucinated_captions = mentions = hallucinated = recalled = truth_total = 0
    for row in rows:
        tokens = re.findall(r"[a-z]+", row["response"].lower())
        said = set()
        for a, b in zip(tokens, tokens[1:]):
            shape = b[:-1] if b.endswith("s") and b[:-1] in SHAPE_WORDS else b
            if a in COLOR_WORDS and shape in SHAPE_WORDS:
                said.add((a, shape))
        truth = {(o["color"], o["shape"]) for o in row["objects"]}
        bad = said - truth
        hallucinated_captions += bool(bad)
        mentions += len(said)
        hallucinated += len(bad)
        recalled += len(said & truth)
        truth_total += len(truth)
    return {"chair_s": hallucinated_captions / len(rows), "chair_i": hallucinated / mentions if mentions else 0.0,
            "cover": recalled / truth_total}


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    os.environ["MMPO_CACHE"] = str(out / "cache")
    config = DemoConfig(out=str(out), quick=True, train_scenes=12, eval_scenes=6, steps=3, pretrain_steps=30)
    return out, run_demo(config)


def test_demo_writes_every_output(demo_out):
    out, summary = demo_out
    results = json.load(open(out / "results.json"))
    assert set(results["methods"]) == {"base", "dpo", "dpo_no_image", "mdpo", "mpo"}
    for metrics in results["methods"].values():
        for key in ("chair_s", "chair_i", "cover", "qa_accuracy", "pope_accuracy", "pope_f1"):
            assert 0.0 <= metrics[key] <= 1.0
        assert "image_reliance" in metrics
    for name in ("results.md", "curves.png", "results.png", "index.html"):
        assert (out / name).stat().st_size > 0, name
    Image.open(out / "curves.png").verify()
    rows = [json.loads(line) for line in open(out / "generations" / "mdpo.jsonl")]
    assert len(rows) == 6 and {"image_id", "prompt", "response", "objects"} <= set(rows[0])
    assert {"shape", "color"} <= set(rows[0]["objects"][0])


def test_chair_recomputed_from_generations_matches(demo_out):
    out, _ = demo_out
    results = json.load(open(out / "results.json"))["methods"]
    for method in results:
        rows = [json.loads(line) for line in open(out / "generations" / f"{method}.jsonl")]
        mine = independent_chair(rows)
        for key, value in mine.items():
            assert results[method][key] == pytest.approx(value, abs=1e-9), (method, key)
