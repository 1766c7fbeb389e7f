"""Every `mmpo eval` command wired from the CLI to its benchmark on the fixtures; every
`--help` works."""

import json
import os

import pytest

from mmpo.cli import main
from mmpo.eval.commands import EVAL_COMMANDS

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.mark.parametrize("command", sorted(EVAL_COMMANDS))
def test_every_help_works(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["eval", command, "--help"])
    assert exit_.value.code == 0
    assert "usage: mmpo eval" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["generate"], ["demo"], ["tiny-model"]])
def test_the_other_commands_help_works(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0 and "usage: mmpo" in capsys.readouterr().out


def test_generate_and_eval_help(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    assert main(["eval", "--help"]) == 0
    assert "object-halbench" in capsys.readouterr().out


def test_pope_qa_and_report_from_the_cli(tmp_path, capsys):
    pope, qa = tmp_path / "pope.json", tmp_path / "qa.json"
    assert main(["eval", "pope", "--predictions", os.path.join(FIXTURES, "pope", "answers.jsonl"),
                 "--out", str(pope), "--label", "base"]) == 0
    assert main(["eval", "pope", "--predictions", os.path.join(FIXTURES, "pope", "coco_pope_random_answers.json"),
                 "--label_file", os.path.join(FIXTURES, "pope", "coco_pope_random.json"), "--out", str(tmp_path / "p2.json")]) == 0
    assert main(["eval", "qa", "--answers", os.path.join(FIXTURES, "qa", "answers.jsonl"), "--out", str(qa)]) == 0
    for path in (pope, qa):
        result = json.loads(path.read_text())
        assert result["metrics"] and result["details"]
        assert path.with_suffix(".md").exists()
    assert json.loads(pope.read_text())["groups"].keys() >= {"random"}
    assert main(["eval", "report", str(pope), str(tmp_path / "p2.json"), str(qa), "--out", str(tmp_path / "report")]) == 0
    html = (tmp_path / "report" / "report.html").read_text()
    assert "base" in html and "pope" in html and "qa" in html
    assert main(["eval", "pope", "--out", str(pope)]) == 1
    assert "give --predictions" in capsys.readouterr().err


def test_amber_from_the_cli(tmp_path):
    out = tmp_path / "amber.json"
    assert main(["eval", "amber", "--responses", os.path.join(FIXTURES, "amber", "responses.json"),
                 "--amber-dir", os.path.join(FIXTURES, "amber", "data"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {"chair_exact", "accuracy", "f1"} <= set(result["metrics"])  # no en_core_web_lg here: *_exact keys
    assert any("en_core_web_lg" in note for note in result["notes"])


def test_amber_with_a_model_generates_then_scores(tiny_models, tmp_path):
    from mmpo.shapes.world import make_scene, render

    images = tmp_path / "images"
    images.mkdir()
    for k in range(1, 5):
        render(make_scene(k), 32).convert("RGB").save(images / f"AMBER_{k}.jpg")
    out = tmp_path / "amber.json"
    assert main(["eval", "amber", "--model", tiny_models["llava"], "--amber-dir", os.path.join(FIXTURES, "amber", "data"),
                 "--images", str(images), "--out", str(out), "--max_new_tokens", "4", "--device", "cpu"]) == 0
    responses = json.loads((tmp_path / "amber.responses.json").read_text())
    assert [r["id"] for r in responses] == sorted(r["id"] for r in responses) and len(responses) == 21
    assert json.loads(out.read_text())["metrics"]


def _images_for(names, folder):
    from mmpo.shapes.world import make_scene, render

    folder.mkdir(exist_ok=True)
    for k, name in enumerate(sorted(set(names))):
        render(make_scene(k), 32).convert("RGB").save(folder / name)
    return folder


def test_pope_mmhal_and_qa_with_a_model(tiny_models, judge, tmp_path):
    """--model on each benchmark's own question files: generate (labels and fields carried), then score."""
    gen = ["--model", tiny_models["llava"], "--max_new_tokens", "3", "--device", "cpu"]
    questions = os.path.join(FIXTURES, "pope", "coco_pope_random.json")
    images = _images_for([json.loads(line)["image"] for line in open(questions)], tmp_path / "val2014")
    pope = tmp_path / "pope.json"
    assert main(["eval", "pope", "--questions", questions, "--images", str(images), "--out", str(pope), *gen]) == 0
    result = json.loads(pope.read_text())
    assert result["metrics"]["n"] == 4 and set(result["groups"]) == {"random"}

    template = os.path.join(FIXTURES, "mmhal", "response_template.json")
    names = [r["image_src"].rsplit("/", 1)[-1] for r in json.load(open(template))]
    mmhal = tmp_path / "mmhal.json"
    judge.reply = lambda body: "Rating: 4"
    assert main(["eval", "mmhal", "--template", template, "--images", str(_images_for(names, tmp_path / "mmhal_images")),
                 "--judge-url", judge.base_url, "--judge-model", "j", "--out", str(mmhal), *gen]) == 0
    assert json.loads(mmhal.read_text())["metrics"]["average_score"] == 4.0

    qa_rows = [{"id": f"r{k}", "image": f"images/{k}.png", "question": "How many shapes are there?",
                "ground_truth": "2", "category": "count"} for k in range(3)]
    (tmp_path / "images").mkdir()
    _images_for([f"{k}.png" for k in range(3)], tmp_path / "images")
    qa_questions = tmp_path / "qa.jsonl"
    qa_questions.write_text("".join(json.dumps(r) + "\n" for r in qa_rows))
    qa = tmp_path / "qa.json"
    assert main(["eval", "qa", "--questions", str(qa_questions), "--out", str(qa), "--bare_answers", *gen]) == 0
    assert json.loads(qa.read_text())["metrics"]["n"] == 3
