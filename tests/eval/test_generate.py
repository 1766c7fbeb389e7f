"""`mmpo generate` and the generate → score harness on a tiny model: fields carried, greedy
is deterministic, a killed run resumes to the very same file, and `mmpo eval chair --model`
runs end to end on files in COCO's layout."""

import json
import os

import pytest

from mmpo.cli import main
from mmpo.eval.generate import GenerateFiles, GenerationOptions, answer_rows, generate_answers
from mmpo.pairs.inputs import load_prompt_rows
from mmpo.pairs.store import PairStore
from mmpo.shapes.world import make_scene, render

COCO = os.path.join(os.path.dirname(__file__), "fixtures", "coco", "annotations")


@pytest.fixture
def questions(tmp_path):
    (tmp_path / "images").mkdir()
    with open(tmp_path / "q.jsonl", "w") as f:
        for i in range(5):
            render(make_scene(i), 32).save(tmp_path / "images" / f"{i}.png")
            f.write(json.dumps({"id": i, "image": f"images/{i}.png", "prompt": "Describe the image.",
                                "label": "yes" if i % 2 else "no", "category": "random"}) + "\n")
    return tmp_path / "q.jsonl"


def test_answers_carry_the_input_fields(llava, questions, tmp_path):
    model, processor = llava
    out = tmp_path / "a.jsonl"
    options = GenerationOptions(model="unused", max_new_tokens=5, batch_size=2)
    generate_answers(GenerateFiles(str(questions), str(out)), options, model, processor)
    rows = [json.loads(line) for line in open(out)]
    assert [r["id"] for r in rows] == [0, 1, 2, 3, 4]  # ids keep their JSON type
    assert all({"image", "prompt", "label", "category", "answer"} <= set(r) for r in rows)
    assert rows[1]["label"] == "yes" and isinstance(rows[0]["answer"], str)
    again = tmp_path / "b.jsonl"
    generate_answers(GenerateFiles(str(questions), str(again)), options, model, processor)
    assert again.read_text() == out.read_text()  # greedy: the same answers


class Killed(Exception):
    pass


def test_a_killed_run_resumes_to_the_same_file(llava, questions, tmp_path, monkeypatch):
    model, processor = llava
    rows = load_prompt_rows(str(questions))
    options = GenerationOptions(max_new_tokens=4, batch_size=2, temperature=1.0, seed=5)  # sampled: seeds must line up
    whole = tmp_path / "whole.jsonl"
    answer_rows(model, processor, rows, str(whole), options)
    half = tmp_path / "half.jsonl"
    original = PairStore.add
    calls = {"n": 0}

    def add_then_die(self, key, new_rows, drops):
        calls["n"] += 1
        if calls["n"] == 4:  # the 4th answer: written with a torn line after it, never marked done
            with open(self.out_path, "a") as f:
                f.write(json.dumps(new_rows[0]) + "\n" + '{"id": 3, "ans')
            raise Killed()
        return original(self, key, new_rows, drops)

    monkeypatch.setattr(PairStore, "add", add_then_die)
    with pytest.raises(Killed):
        answer_rows(model, processor, rows, str(half), options)
    monkeypatch.setattr(PairStore, "add", original)
    store = answer_rows(model, processor, rows, str(half), options)
    assert store.resumed == 3
    assert half.read_text() == whole.read_text()


def test_generate_cli(tiny_models, questions, tmp_path, capsys):
    out = tmp_path / "cli.jsonl"
    args = ["generate", "--model", tiny_models["llava"], "--data", str(questions), "--out", str(out),
            "--max_new_tokens", "3", "--batch_size", "4", "--device", "cpu"]
    assert main(args) == 0
    assert len(out.read_text().splitlines()) == 5
    assert main(args) == 0  # a rerun finds everything done and adds nothing
    assert len(out.read_text().splitlines()) == 5
    assert "5 done (5 from an earlier run)" in capsys.readouterr().out
    assert main(["generate", "--model", tiny_models["llava"], "--data", str(questions), "--out", str(out),
                 "--batch_size", "0"]) == 1
    assert "--batch_size must be ≥ 1" in capsys.readouterr().err


def test_eval_chair_with_a_model_generates_then_scores(tiny_models, tmp_path, capsys):
    images = tmp_path / "val2014"
    images.mkdir()
    for i in (101, 102, 103):
        render(make_scene(i), 32).convert("RGB").save(images / f"COCO_val2014_{i:012d}.jpg")
    out = tmp_path / "run" / "chair.json"
    args = ["eval", "chair", "--model", tiny_models["llava"], "--coco_images", str(images), "--num_images", "2",
            "--coco_annotations", COCO, "--out", str(out), "--max_new_tokens", "6", "--device", "cpu",
            "--label", "tiny"]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["label"] == "tiny" and result["metrics"]["n_captions"] == 2
    answers = out.parent / "chair.answers.jsonl"
    assert len(answers.read_text().splitlines()) == 2
    assert {d["image_id"] for d in result["details"]} <= {101, 102, 103}
    assert main(args) == 0  # rerun: answers reused, the same result
    assert json.loads(out.read_text())["metrics"] == result["metrics"]
