"""Object HalBench: its question file (base64 images) answered by a tiny model, then CHAIR,
by the answers' words or by an LLM judge's object lists (RLAIF-V's extraction)."""

import base64
import io
import json
import os

import pytest

from mmpo.cli import main
from mmpo.eval import nlp
from mmpo.eval.benchmarks.object_extraction import coco_names, extraction_messages, parse_object_list
from mmpo.shapes.world import make_scene, render

COCO = os.path.join(os.path.dirname(__file__), "fixtures", "coco", "annotations")

try:
    nlp.backend()
except nlp.NLPDataMissing as err:
    pytest.skip(str(err), allow_module_level=True)


def test_parse_object_list_as_the_reference():
    assert parse_object_list('Here:\n```json\n["dog", "red frisbee"]\n```') == ["dog", "red frisbee"]
    assert parse_object_list('The objects are\n["cat", "sofa"]') == ["cat", "sofa"]
    assert parse_object_list("[]") is None  # no '["' and no fenced block: the reference fails to parse it too
    assert parse_object_list("a dog and a cat") is None


def test_coco_names_take_two_word_objects_first_then_noun_runs():
    assert coco_names(["teddy bears", "dogs", "dining table", "wooden chairs"]) == ["teddy bear", "dog", "dining table", "chair"]
    assert coco_names(["dog", "dogs"]) == ["dog"]  # each name once


def test_prompt_holds_question_and_answer():
    (message,) = extraction_messages("Describe it.", "A dog.")
    assert message["role"] == "system" and "<image> Describe it." in message["content"]
    assert '["object_1", ..., "object_n"]' in message["content"]


def test_object_halbench_with_a_model_and_a_judge(tiny_models, judge, tmp_path):
    rows = []
    for k, image_id in enumerate((101, 102)):
        buf = io.BytesIO()
        render(make_scene(k), 32).save(buf, format="PNG")
        rows.append({"image_id": image_id, "question": "Describe the image in detail.",
                     "image": base64.b64encode(buf.getvalue()).decode()})
    questions = tmp_path / "obj_halbench_300_with_image.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "objhal.json"
    base = ["eval", "object-halbench", "--model", tiny_models["llava"], "--questions", str(questions),
            "--coco_annotations", COCO, "--max_new_tokens", "8", "--device", "cpu"]
    assert main(base + ["--out", str(out)]) == 0
    words = json.loads(out.read_text())
    assert words["benchmark"] == "object_halbench" and words["metrics"]["n_captions"] == 2

    judge.reply = lambda body: '```json\n["dog", "couch", "bicycle"]\n```'
    answers = tmp_path / "objhal.answers.jsonl"
    long_answers = [dict(json.loads(line), answer=f"A dog sits on a couch beside bicycle number {k}.")
                    for k, line in enumerate(answers.read_text().splitlines())]
    answers.write_text("".join(json.dumps(r) + "\n" for r in long_answers))
    judged = tmp_path / "judged.json"
    assert main(["eval", "object-halbench", "--answers", str(answers), "--coco_annotations", COCO,
                 "--judge_url", judge.base_url, "--judge_model", "extractor", "--out", str(judged)]) == 0
    result = json.loads(judged.read_text())
    # image 101 holds person, dog, couch: the bicycle is hallucinated; 102 (table, pizza, person, hot dog): all three
    assert result["metrics"]["n_hallucinated"] == 4 and result["metrics"]["n_mentions"] == 6
    assert result["details"][0]["extracted_objects"] == ["dog", "couch", "bicycle"]
    assert len(judge.requests) == 2
    assert main(["eval", "object-halbench", "--answers", str(answers), "--coco_annotations", COCO,
                 "--judge_url", judge.base_url, "--judge_model", "extractor", "--out", str(judged)]) == 0
    assert len(judge.requests) == 2  # the rerun is answered from the judgement cache
