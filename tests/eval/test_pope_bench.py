"""POPE on real answer files: RUCAIBox/POPE evaluate.py's parsing (quirks included), its
figures per split, and errors that name file, line and field.

The expected figures below were worked by hand and also printed by the reference script
(CircleRadon/Osprey's copy of RUCAIBox/POPE evaluate.py, run unmodified on each split of
fixtures/pope/answers.jsonl and on fixtures/pope/coco_pope_random*.json).
"""

import json
import os

import pytest

from mmpo.data.schema import DataError
from mmpo.eval.benchmarks.pope import evaluate_pope, pope_questions, split_of
from mmpo.eval.metrics.pope import parse_pope_answer, pope_scores, undefined_scores

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "pope")
ANSWERS = os.path.join(FIXTURES, "answers.jsonl")
QUESTIONS = os.path.join(FIXTURES, "coco_pope_random.json")


# --------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    "text, expected",
    [
        ("Yes, there is a dog.", "yes"),
        ("There is no dog.", "no"),
        ("No.", "no"),
        ("no", "no"),
        ("not sure", "no"),
        ("No, there is not.", "no"),
        ("There is a cat, no dog.", "no"),  # "no," loses its comma, then matches
        (" no", "no"),  # split(" ") gives ["", "no"]
        ("I don't think so", "yes"),  # "don't" is not "not"
        ("", "yes"),  # nothing negative: yes
        ("Yes. No.", "yes"),  # only the first sentence counts
        (". No", "yes"),  # the first sentence is empty
        ("Yes, it is. There is no cat.", "yes"),
        ("NO", "yes"),  # case-sensitive: only "No", "not", "no"
        ("Not", "yes"),
        ("Nope", "yes"),
        ("No!", "yes"),  # "!" is not stripped
        ("No\nThere is a dog", "yes"),  # split on spaces only: the word is "No\nThere"
        ("No\tthere", "yes"),
    ],
)
def test_parse_pope_answer_matches_the_reference(text, expected):
    assert parse_pope_answer(text) == expected


# --------------------------------------------------------------------------- metrics
def test_pope_scores_by_hand():
    """pred yes yes no no yes / label yes no no yes yes: TP 2 (rows 1, 5), FP 1 (row 2),
    TN 1 (row 3), FN 1 (row 4). Accuracy 3/5; precision 2/3; recall 2/3; F1 2/3;
    yes-ratio 3/5 from the predictions (the labels' share would be 3/5 too, so also try
    a case where they differ below)."""
    scores = pope_scores(["yes", "yes", "no", "no", "yes"], ["yes", "no", "no", "yes", "yes"])
    assert (scores["tp"], scores["fp"], scores["tn"], scores["fn"], scores["n"]) == (2, 1, 1, 1, 5)
    assert scores["accuracy"] == pytest.approx(3 / 5)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["yes_ratio"] == pytest.approx(3 / 5)
    assert undefined_scores(scores) == []


def test_yes_ratio_comes_from_the_predictions_not_the_labels():
    """All answers yes on a half-yes set: yes-ratio 1.0 (lmms-eval would say 0.5)."""
    assert pope_scores(["yes"] * 4, ["yes", "yes", "no", "no"])["yes_ratio"] == 1.0


def test_zero_denominators_are_zero_and_named():
    """All "no" predictions on all "no" labels: TP = FP = FN = 0, so the reference raises
    ZeroDivisionError on precision; we report 0.0 for precision, recall and F1 and name them."""
    scores = pope_scores(["no", "no"], ["no", "no"])
    assert (scores["accuracy"], scores["precision"], scores["recall"], scores["f1"]) == (1.0, 0.0, 0.0, 0.0)
    assert undefined_scores(scores) == ["precision", "recall", "f1"]


@pytest.mark.parametrize(
    "predictions, labels, message",
    [
        (["yes"], ["yes", "no"], "1 predictions but 2 labels"),
        ([], [], "no predictions"),
        (["Yes, there is."], ["yes"], "parse_pope_answer"),
        (["yes"], ["Yes"], "labels must be 'yes' or 'no'"),
    ],
)
def test_pope_scores_rejects_bad_input(predictions, labels, message):
    with pytest.raises(ValueError, match=message):
        pope_scores(predictions, labels)


# --------------------------------------------------------------------------- one-file layout
def test_evaluate_pope_per_split():
    """fixtures/pope/answers.jsonl, parsed row by row (label → parsed):

    random:      yes→yes TP, no→no TN ("There is no dog."), no→yes FP ("I don't think so"),
                 no→yes FP (""), yes→no FN ("No."), no→no TN ("not sure")
                 TP 1 FP 2 TN 2 FN 1: acc 3/6, P 1/3, R 1/2, F1 = 2·(1/3)(1/2)/(5/6) = 0.4, yes 3/6
    popular:     yes→yes TP ("Yes. No."), no→yes FP ("NO"), no→yes FP ("Not"), no→no TN
                 TP 1 FP 2 TN 1 FN 0: acc 2/4, P 1/3, R 1, F1 = 2·(1/3)/(4/3) = 0.5, yes 3/4
    adversarial: no→yes FP ("No\\nThere…"), no→no TN, no→yes FP ("Nope"), no→yes FP ("yes")
                 TP 0 FP 3 TN 1 FN 0: acc 1/4, P 0, R 0/0, F1 0/0, yes 3/4 — the reference
                 script stops with ZeroDivisionError on this split's recall
    overall:     TP 2 FP 7 TN 4 FN 1: acc 6/14, P 2/9, R 2/3, F1 = (8/27)/(8/9) = 1/3, yes 9/14
    means:       accuracy (1/2 + 1/2 + 1/4)/3 = 5/12, F1 (0.4 + 0.5 + 0)/3 = 0.3
    """
    result = evaluate_pope(ANSWERS)
    assert result.benchmark == "pope"
    assert list(result.groups) == ["random", "popular", "adversarial"]
    expected = {
        "random": dict(tp=1, fp=2, tn=2, fn=1, n=6, accuracy=0.5, precision=1 / 3, recall=0.5, f1=0.4, yes_ratio=0.5),
        "popular": dict(tp=1, fp=2, tn=1, fn=0, n=4, accuracy=0.5, precision=1 / 3, recall=1.0, f1=0.5, yes_ratio=0.75),
        "adversarial": dict(tp=0, fp=3, tn=1, fn=0, n=4, accuracy=0.25, precision=0.0, recall=0.0, f1=0.0, yes_ratio=0.75),
    }
    for split, figures in expected.items():
        assert result.groups[split] == pytest.approx(figures), split
    overall = dict(tp=2, fp=7, tn=4, fn=1, n=14, accuracy=6 / 14, precision=2 / 9, recall=2 / 3, f1=1 / 3, yes_ratio=9 / 14)
    assert {k: result.metrics[k] for k in overall} == pytest.approx(overall)
    assert result.metrics["mean_accuracy"] == pytest.approx(5 / 12)
    assert result.metrics["mean_f1"] == pytest.approx(0.3)
    assert any("recall (adversarial), f1 (adversarial)" in note for note in result.notes)


def test_evaluate_pope_details():
    details = evaluate_pope(ANSWERS).details
    assert len(details) == 14
    assert details[0] == {
        "id": "random-1",
        "question": "Is there a dog in the image?",
        "image": "COCO_val2014_000000000001.jpg",
        "answer": "Yes, there is a dog.",
        "parsed": "yes",
        "label": "yes",
        "correct": True,
        "category": "random",
    }
    assert [d["parsed"] for d in details[6:9]] == ["yes", "yes", "yes"]  # "Yes. No.", "NO", "Not"
    assert details[13]["answer"] == "yes"  # read from "answer" when there is no "prediction"
    assert list(details[0])[0] == "id"


def test_prediction_wins_over_answer(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"label": "no", "prediction": "No.", "answer": "Yes."}) + "\n")
    result = evaluate_pope(str(path))
    assert result.details[0]["parsed"] == "no" and result.groups == {}


def test_rows_without_a_category_are_grouped_as_uncategorised(tmp_path):
    path = tmp_path / "a.jsonl"
    rows = [{"label": "yes", "prediction": "Yes", "category": "random"}, {"label": "no", "prediction": "No"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert list(evaluate_pope(str(path)).groups) == ["random", "uncategorised"]


# --------------------------------------------------------------------------- POPE's own layouts
@pytest.mark.parametrize("answer_file", ["coco_pope_random_answers.json", "llava_answers.jsonl"])
def test_pope_answer_file_with_label_file(answer_file):
    """coco_pope_random.json labels yes no yes no; answers "Yes, there is a snowboard…" (yes),
    "No, there is no dining table…" (no), "There is a person skiing." (yes), "Yes" (yes):
    TP 2 FP 1 TN 1 FN 0: acc 3/4, P 2/3, R 1, F1 = 2·(2/3)/(5/3) = 0.8, yes 3/4 (the
    reference prints the same). RUCAIBox's answer rows use "answer", LLaVA's "text"."""
    result = evaluate_pope(os.path.join(FIXTURES, answer_file), label_file=QUESTIONS)
    expected = dict(tp=2, fp=1, tn=1, fn=0, n=4, accuracy=0.75, precision=2 / 3, recall=1.0, f1=0.8, yes_ratio=0.75)
    assert {k: result.metrics[k] for k in expected} == pytest.approx(expected)
    assert list(result.groups) == ["random"]
    assert result.details[1]["question"] == "Is there a dining table in the image?"
    assert result.details[1]["image"] == "COCO_val2014_000000310196.jpg"
    assert result.details[1]["id"] == "2"


def test_label_file_count_mismatch(tmp_path):
    """The reference zips the lists and drops the tail silently; we refuse."""
    answers = tmp_path / "coco_pope_random_answers.json"
    answers.write_text(json.dumps({"question": "q", "answer": "Yes"}) + "\n")
    with pytest.raises(DataError, match="has 1 answers but .* has 4 questions"):
        evaluate_pope(str(answers), label_file=QUESTIONS)


def test_label_file_order_mismatch(tmp_path):
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"question_id": q, "text": "Yes"}) + "\n" for q in (1, 3, 2, 4)))
    with pytest.raises(DataError, match=r"answers.jsonl:2: field 'question_id': is 3 but the question on the same line"):
        evaluate_pope(str(answers), label_file=QUESTIONS)


# --------------------------------------------------------------------------- questions
def test_pope_questions(tmp_path):
    for name in ("COCO_val2014_000000310196.jpg", "COCO_val2014_000000210789.jpg"):
        (tmp_path / name).write_bytes(b"")
    rows = pope_questions([QUESTIONS], str(tmp_path))
    assert len(rows) == 4
    assert rows[0] == {
        "id": "random-1",
        "image": os.path.join(str(tmp_path), "COCO_val2014_000000310196.jpg"),
        "prompt": "Is there a snowboard in the image?",
        "label": "yes",
        "category": "random",
        "question": "Is there a snowboard in the image?",
    }
    assert [r["label"] for r in rows] == ["yes", "no", "yes", "no"]


def test_pope_questions_checks_images(tmp_path):
    with pytest.raises(DataError, match=r"coco_pope_random.json:1: field 'image': .* does not exist"):
        pope_questions([QUESTIONS], str(tmp_path))
    assert len(pope_questions([QUESTIONS], str(tmp_path), check_images=False)) == 4


def test_pope_questions_rejects_the_same_split_twice():
    with pytest.raises(DataError, match="'random-1' is already used"):
        pope_questions([QUESTIONS, QUESTIONS], "", check_images=False)


def test_pope_questions_then_answers_round_trip(tmp_path):
    """Generation rows plus a "prediction" are a valid one-file answer set."""
    rows = pope_questions([QUESTIONS], "", check_images=False)
    path = tmp_path / "preds.jsonl"
    path.write_text("".join(json.dumps({**r, "prediction": "Yes"}) + "\n" for r in rows))
    result = evaluate_pope(str(path))
    assert result.metrics["yes_ratio"] == 1.0 and list(result.groups) == ["random"]


@pytest.mark.parametrize(
    "name, split",
    [
        ("coco_pope_random.json", "random"),
        ("/data/pope/coco_pope_adversarial.jsonl", "adversarial"),
        ("aokvqa_pope_seem_popular.json", "aokvqa_pope_seem_popular"),
    ],
)
def test_split_of(name, split):
    assert split_of(name) == split


# --------------------------------------------------------------------------- bad input
def _write(tmp_path, lines, name="answers.jsonl"):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"label": "yes", "prediction": "Yes"}', '{"prediction": "No"}'], r"answers.jsonl:2: field 'label': is missing"),
        (['{"label": "Yes", "prediction": "Yes"}'], r"answers.jsonl:1: field 'label': must be 'yes' or 'no'.*got 'Yes'"),
        (['{"label": "maybe", "prediction": "Yes"}'], r"answers.jsonl:1: field 'label'"),
        (['{"label": "yes", "response": "Yes"}'], r"answers.jsonl:1: field 'prediction': is missing: no 'prediction' / 'answer'"),
        (['{"label": "yes", "prediction": null}'], r"answers.jsonl:1: field 'prediction': must be a string"),
        (['{"label": "yes", "prediction": "Yes"}', "", '{"label": "yes", "prediction": "Yes"'], r"answers.jsonl:3: is not valid JSON"),
        (['["yes", "no"]'], r"answers.jsonl: is a JSON array"),
        ([], r"answers.jsonl: is empty"),
        (["", "  "], r"answers.jsonl: is empty"),
    ],
)
def test_bad_answer_files_name_file_line_and_field(tmp_path, lines, message):
    with pytest.raises(DataError, match=message):
        evaluate_pope(_write(tmp_path, lines))


def test_a_question_file_given_as_answers_says_so():
    with pytest.raises(DataError, match=r"coco_pope_random.json:1: .*looks like a POPE question file"):
        evaluate_pope(QUESTIONS)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="POPE answer file not found"):
        evaluate_pope(os.path.join(FIXTURES, "nope.jsonl"))


def test_bad_question_files(tmp_path):
    path = _write(tmp_path, ['{"question_id": 1, "image": "a.jpg", "label": "yes"}'], "coco_pope_popular.json")
    with pytest.raises(DataError, match=r"coco_pope_popular.json:1: field 'text': is missing"):
        pope_questions([path], str(tmp_path), check_images=False)
    path = _write(tmp_path, ['{"question_id": 1, "image": "a.jpg", "text": "Is there a cat?"}'], "coco_pope_popular.json")
    with pytest.raises(DataError, match=r"coco_pope_popular.json:1: field 'label': is missing"):
        pope_questions([path], str(tmp_path), check_images=False)
    with pytest.raises(ValueError, match="no POPE question files"):
        pope_questions([], str(tmp_path))
