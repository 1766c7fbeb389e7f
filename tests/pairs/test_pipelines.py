"""DropoutNTP and the correctness pipeline end to end on a tiny model: outputs `mmpo train`
reads unchanged, and a run killed halfway resumes to the very same file."""

import importlib
import json
import random

import pytest

from mmpo.cli import main
from mmpo.data import load_preferences
from mmpo.pairs import CorrectnessConfig, DropoutNTPConfig, correctness, dropout_ntp, load_prompt_rows
from mmpo.pairs.correctness import make_pairs
from mmpo.pairs.dropout_ntp import word_prefix
from mmpo.pairs.store import PairStore
from mmpo.shapes.world import caption, make_scene, render


@pytest.fixture
def prompts(tmp_path):
    (tmp_path / "images").mkdir()
    with open(tmp_path / "prompts.jsonl", "w") as f:
        for i in range(5):
            scene = make_scene(i)
            render(scene, 32).save(tmp_path / "images" / f"{i}.png")
            row = {"id": f"p{i}", "image": f"images/{i}.png", "prompt": "Describe the image.",
                   "answer": str(len(scene.objects))}
            if i != 2:  # row 2 has no chosen: DropoutNTP samples one with the image
                row["chosen"] = caption(scene.objects)
            f.write(json.dumps(row) + "\n")
    return tmp_path


def test_word_prefix():
    assert word_prefix("There is a red circle at the top.", 0.5) == "There is a red"
    assert word_prefix("one", 0.5) == "one"


def test_dropout_ntp_pairs_keep_the_prefix_and_train(llava, prompts, tiny_models, tmp_path):
    model, processor = llava
    rows = load_prompt_rows(str(prompts / "prompts.jsonl"))
    out = str(prompts / "pairs.jsonl")
    store = dropout_ntp(model, processor, rows, out, DropoutNTPConfig(max_new_tokens=8, batch_size=2))
    pairs = [json.loads(line) for line in open(out)]
    assert len(pairs) + sum(store.drops.values()) == 5
    by_source = {p["source_id"]: p for p in pairs}
    first = by_source["p0"]
    assert first["chosen"] == caption(make_scene(0).objects)
    assert first["rejected"].startswith(word_prefix(first["chosen"], 0.5))
    assert first["rejected"] != first["chosen"]
    assert load_preferences(out).report.rows_kept == len(pairs)  # `mmpo train` reads it as it is
    rc = main(["train", "--model", tiny_models["llava"], "--data", out, "--output_dir", str(tmp_path / "run"),
               "--max_steps", "1", "--per_device_train_batch_size", "2", "--report_to", "none",
               "--save_strategy", "no", "--disable_tqdm", "true", "--lora_r", "4"])
    assert rc == 0


class Killed(Exception):
    pass


def test_resume_after_a_kill_gives_the_same_file(llava, prompts, monkeypatch):
    model, processor = llava
    rows = load_prompt_rows(str(prompts / "prompts.jsonl"))
    config = DropoutNTPConfig(max_new_tokens=6, batch_size=2, seed=3)
    whole = str(prompts / "whole.jsonl")
    dropout_ntp(model, processor, rows, whole, config)

    halfway = str(prompts / "half.jsonl")
    original_add = PairStore.add
    calls = {"n": 0}

    def add_then_die(self, key, pairs, drops):
        calls["n"] += 1
        if calls["n"] == 3:  # die mid-write: rows of the third input written, a torn line, no done mark
            with open(self.out_path, "a") as f:
                f.write(json.dumps(dict(pairs[0], source_id=key)) + "\n" if pairs else "")
                f.write('{"id": "torn')
            raise Killed()
        return original_add(self, key, pairs, drops)

    monkeypatch.setattr(PairStore, "add", add_then_die)
    with pytest.raises(Killed):
        dropout_ntp(model, processor, rows, halfway, config)
    monkeypatch.setattr(PairStore, "add", original_add)
    store = dropout_ntp(model, processor, rows, halfway, config)
    assert store.resumed == 2
    assert open(halfway).read() == open(whole).read()
    ids = [json.loads(line)["id"] for line in open(halfway)]
    assert len(ids) == len(set(ids))


def test_make_pairs_rules():
    responses = ["so 3. Final answer: 3", "Final answer: 4", "it is 3 or 4. Final answer: 4", "no idea", "Final answer: 3"]
    pairs, correct, unparsed, drops = make_pairs(responses, "3", max_pairs=15, rng=random.Random(0))
    assert unparsed == ["no idea"] and len(correct) == 2
    # "it is 3 or 4" contains the right answer: not a safe rejected response
    assert all(w == "Final answer: 4" for _, w in pairs) and len(pairs) == 2
    assert drops == {"unparseable_response": 1, "answer_in_rejected": 2}
    capped, *_ = make_pairs([f"Final answer: {i % 2}" for i in range(10)], "1", max_pairs=1, rng=random.Random(0))
    assert len(capped) == 1


def test_correctness_pipeline_end_to_end(llava, prompts, monkeypatch):
    model, processor = llava
    rows = load_prompt_rows(str(prompts / "prompts.jsonl"), need="answer")

    def fake_generate(model, processor, requests, config):  # the tiny model can't count yet
        rng = random.Random(config.seed)
        return [rng.choice(["Final answer: 1", "Final answer: 2", "Final answer: 3", "\\boxed{2}", "hmm"])
                for _ in requests]

    monkeypatch.setattr(importlib.import_module("mmpo.pairs.correctness"), "generate", fake_generate)
    out = str(prompts / "cor.jsonl")
    store = correctness(model, processor, rows, out, CorrectnessConfig(samples=8, max_pairs=3))
    pairs = [json.loads(line) for line in open(out)]
    assert pairs and all(len([p for p in pairs if p["source_id"] == r.id]) <= 3 for r in rows)
    truth = {r.id: r.answer for r in rows}
    from mmpo.pairs import is_correct

    assert all(is_correct(p["chosen"], truth[p["source_id"]]) and not is_correct(p["rejected"], truth[p["source_id"]])
               for p in pairs)
    assert load_preferences(out).report.rows_kept == len(pairs)
    fmt = [json.loads(line) for line in open(prompts / "cor.format.jsonl")]
    assert fmt and all(p["rejected"] == "hmm" for p in fmt)
    assert "unparseable_response" in store.summary(len(rows))


def test_missing_answer_is_a_clear_error(prompts):
    from mmpo.data import DataError

    (prompts / "noanswer.jsonl").write_text('{"image": "images/0.png", "question": "How many?"}\n')
    with pytest.raises(DataError, match=r"noanswer.jsonl:1: field 'answer': is missing"):
        load_prompt_rows(str(prompts / "noanswer.jsonl"), need="answer")


def test_pairs_cli_dropout_ntp(prompts, tiny_models, capsys):
    out = prompts / "cli_pairs.jsonl"
    rc = main(["pairs", "dropout-ntp", "--model", tiny_models["llava"], "--data", str(prompts / "prompts.jsonl"),
               "--out", str(out), "--max_new_tokens", "6", "--batch_size", "4", "--device", "cpu"])
    assert rc == 0
    assert "5 inputs, 5 done" in capsys.readouterr().out
    assert load_preferences(str(out)).report.rows_kept >= 1
    assert main(["pairs", "nope"]) == 2
