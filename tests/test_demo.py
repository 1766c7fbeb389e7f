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


def test_over_optimisation_curves(demo_out):
    """Each method's history carries the drift checks at step 0 and at every saved adapter
    (steps=3 → one every step); step 0 is the reference itself, so its KL is exactly 0; the
    checkpoints are removed once measured."""
    out, _ = demo_out
    histories = json.load(open(out / "histories.json"))
    for method in ("dpo", "mdpo", "mpo"):
        drift = [e for e in histories[method] if "kl" in e]
        assert [e["step"] for e in drift] == [0, 1, 2, 3], method
        assert drift[0]["kl"] == 0.0 and all(e["words"] > 0 and e["truth_logp"] < 0 for e in drift)
        assert not [d for d in os.listdir(out / "runs" / "seed0" / method) if d.startswith("checkpoint-")]


def test_drift_kl_is_zero_for_the_reference_and_positive_after_a_change():
    """The KL on a tiny model: 0 against itself, > 0 once the policy's weights move, and the
    exact sum over the vocabulary at each response position (recomputed here by hand)."""
    import copy
    import tempfile

    import torch

    from mmpo.data.collate import PreferenceCollator
    from mmpo.data.schema import PreferenceExample
    from mmpo.model.load import load_model, load_processor
    from mmpo.model.tiny import build_tiny_model
    from mmpo.shapes.drift import drift_point, token_kl
    from mmpo.shapes.world import make_scene, render

    with tempfile.TemporaryDirectory() as d:
        build_tiny_model("llava", d, seed=0)
        processor, reference = load_processor(d), load_model(d, dtype=torch.float32).eval()
        scenes = [make_scene(i) for i in range(4)]
        assert drift_point(reference, reference, processor, scenes)["kl"] == 0.0
        policy = copy.deepcopy(reference)
        with torch.no_grad():
            policy.lm_head.weight.mul_(3.0)  # a much sharper next-token distribution
        assert drift_point(policy, reference, processor, scenes)["kl"] > 0.05
        rows = [PreferenceExample("a", [render(scenes[0])], "Describe the image.", "-", "-")]
        batch = PreferenceCollator(processor).responses(rows, ["a red circle"])
        n_prompt = int(batch["response_mask"][0].nonzero()[0])  # first response token
        with torch.no_grad():
            p = torch.softmax(policy(**{k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}).logits[0], -1)
            q = torch.softmax(reference(**{k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}).logits[0], -1)
            positions = range(n_prompt - 1, int(batch["response_mask"][0].nonzero()[-1]))
            by_hand = sum(float((p[t] * (p[t].log() - q[t].log())).sum()) for t in positions) / len(positions)
            assert token_kl(policy, reference, batch) == pytest.approx(by_hand, rel=1e-4)
