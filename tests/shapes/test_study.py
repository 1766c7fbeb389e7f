"""`mmpo demo --study`: intervals and verdicts on hand-made runs, and a tiny run end to end."""

import json
import math

import pytest

from mmpo.shapes import study
from mmpo.shapes.study import ci95, paired, render_study, verdict


def test_ci95_is_the_t_interval():
    mean, low, high = ci95([0.1, 0.2, 0.3])
    # sd 0.1, n 3: half-width t(0.975, 2) · 0.1 / √3 = 4.303 · 0.0577 = 0.2484
    assert mean == pytest.approx(0.2) and high - mean == pytest.approx(4.303 * 0.1 / math.sqrt(3))
    assert math.isnan(ci95([0.5])[1])


def test_verdicts():
    assert verdict(-0.3, -0.1) == "agrees" and verdict(0.1, 0.2) == "disagrees" and verdict(-0.1, 0.2) == "inconclusive"


def test_render_pairs_within_runs():
    runs = [{"base": {"chair_s": .5, "chair_i": .4, "cover": .5, "pope_accuracy": .6},
             "dpo": {"chair_s": .5, "chair_i": .30 + d, "cover": .5, "pope_accuracy": .6},
             "mdpo": {"chair_s": .4, "chair_i": .25 + d, "cover": .5, "pope_accuracy": .6}} for d in (0.0, 0.1, 0.2)]
    assert paired(runs, "mdpo", "dpo") == pytest.approx([-0.05] * 3)  # the spread between runs cancels
    text = render_study(runs, {"base_seeds": 3, "pair_seeds": 1})
    assert "| mDPO hallucinates less than DPO | mdpo − dpo: -5.0 [-5.0, -5.0] | agrees |" in text
    assert "| mdpo | 3 | 40.0 [" in text


def test_reasoning_claims_are_judged_on_accuracy_higher_better():
    runs = [{"reasoner": {"reasoning_accuracy": .5}, "reasoning_dpo": {"reasoning_accuracy": .55},
             "reasoning_dpo_sft": {"reasoning_accuracy": .6 + d}, "reasoning_mpo": {"reasoning_accuracy": .7 + d}}
            for d in (0.0, 0.05, 0.1)]
    text = render_study(runs, {"base_seeds": 3, "pair_seeds": 1})
    assert "## Reasoning QA" in text
    assert "| MPO answers more reasoning questions than DPO + SFT | reasoning_mpo − reasoning_dpo_sft: 10.0 [10.0, 10.0] | agrees |" in text
    worse = [{k: {"reasoning_accuracy": 1 - v["reasoning_accuracy"]} for k, v in run.items()} for run in runs]
    assert "reasoning_dpo_sft: -10.0 [-10.0, -10.0] | disagrees |" in render_study(worse, {"base_seeds": 3, "pair_seeds": 1})


def test_worked_answers_are_what_the_pipeline_scores():
    """The reasoner's target format: the correctness pipeline extracts its answer, and the
    QA metric counts it right; a wrong count in the description gives a wrong answer."""
    import random

    from mmpo.eval.metrics.qa import score_response
    from mmpo.shapes.reasoning import reasoning_question, worked_answer
    from mmpo.shapes.world import Scene, ShapeObject

    scene = Scene("s", (ShapeObject("circle", "red", 0), ShapeObject("star", "orange", 4), ShapeObject("square", "red", 8)), 0)
    assert worked_answer(scene, "red") == ("There is a red circle at the top left, an orange star in the middle and a red "
                                           "square at the bottom right.\n2 of them are red.\nFinal answer: 2")
    assert worked_answer(scene, "blue").endswith(".\nNone of them is blue.\nFinal answer: 0")
    prompt, answer, truth = reasoning_question(scene, random.Random(0))
    assert prompt.startswith("How many ") and prompt.endswith("Think step by step.")
    assert score_response(answer, truth) == (truth, True)
    from mmpo.pairs.cot_format import parse_response
    assert parse_response(answer, "final").answer == truth  # passes InternVL's format check: never a format negative
    assert score_response(answer.replace(f"answer: {truth}", "answer: 7"), truth)[1] is False


def test_study_end_to_end_tiny(tmp_path, monkeypatch):
    from mmpo.demo import DemoConfig

    monkeypatch.setenv("MMPO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(study, "CONDITIONS", {k: study.CONDITIONS[k] for k in ("dpo", "mdpo_blank")})
    monkeypatch.setattr(study, "REASONING_CONDITIONS", {"reasoning_mpo": "mpo"})
    config = DemoConfig(out=str(tmp_path / "study"), quick=True, train_scenes=4, eval_scenes=2, steps=1,
                        pretrain_steps=10, base_seeds=1, pair_seeds=2, study=True, workers=1)
    summary = study.run_study(config)
    assert len(summary["runs"]) == 2
    assert "mdpo_blank" in summary["runs"][0] and "mdpo_blank" not in summary["runs"][1]  # side table: first seed only
    for run in summary["runs"]:  # the reasoner is evaluated; its adapters exist only where the pipeline found pairs
        assert 0.0 <= run["reasoner"]["reasoning_accuracy"] <= 1.0
        assert ("reasoning_mpo" in run) == (run["reasoning_pairs"] > 0)
    saved = json.loads((tmp_path / "study" / "study.json").read_text())
    assert saved["runs"][1]["dpo"] == summary["runs"][1]["dpo"]
    again = study.run_study(config)  # every cell is done: nothing is trained again
    assert again["runs"] == summary["runs"]
    assert "## Table 1: methods" in (tmp_path / "study" / "study.md").read_text()
    assert (tmp_path / "study" / "study.png").stat().st_size > 0
