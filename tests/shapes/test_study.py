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


def test_study_end_to_end_tiny(tmp_path, monkeypatch):
    from mmpo.demo import DemoConfig

    monkeypatch.setenv("MMPO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(study, "CONDITIONS", {k: study.CONDITIONS[k] for k in ("dpo", "mdpo_blank")})
    config = DemoConfig(out=str(tmp_path / "study"), quick=True, train_scenes=4, eval_scenes=2, steps=1,
                        pretrain_steps=10, base_seeds=1, pair_seeds=2, study=True, workers=1)
    summary = study.run_study(config)
    assert len(summary["runs"]) == 2
    assert "mdpo_blank" in summary["runs"][0] and "mdpo_blank" not in summary["runs"][1]  # side table: first seed only
    saved = json.loads((tmp_path / "study" / "study.json").read_text())
    assert saved["runs"][1]["dpo"] == summary["runs"][1]["dpo"]
    again = study.run_study(config)  # every cell is done: nothing is trained again
    assert again["runs"] == summary["runs"]
    assert "## Table 1: methods" in (tmp_path / "study" / "study.md").read_text()
    assert (tmp_path / "study" / "study.png").stat().st_size > 0
