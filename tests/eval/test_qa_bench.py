"""Reasoning / multiple-choice QA: accuracy overall and per category with the correctness
pipeline's matcher, the field rules, and errors that name file, line and field."""

import json
import os

import pytest

from mmpo.data.schema import DataError
from mmpo.eval.benchmarks.qa import evaluate_qa
from mmpo.eval.metrics.qa import qa_scores, score_response
from mmpo.pairs.answers import is_correct

ANSWERS = os.path.join(os.path.dirname(__file__), "fixtures", "qa", "answers.jsonl")


# --------------------------------------------------------------------------- metrics
@pytest.mark.parametrize(
    "response, truth, expected",
    [
        (r"so \boxed{30^\circ}.", "30", ("30^\\circ", True)),
        ("Answer: (B) the red one", "B", ("(B) the red one", True)),
        (r"\boxed{\frac{1}{2}}", "2", ("\\frac{1}{2}", False)),
        ("B", "B", (None, False)),  # no final answer: a format negative, as in the pipeline
        ("", "B", (None, False)),
        ("Answer: NYC", ["New York", "NYC"], ("NYC", True)),  # any of several truths
    ],
)
def test_score_response(response, truth, expected):
    assert score_response(response, truth) == expected


def test_score_response_agrees_with_is_correct():
    for response, truth in [(r"\boxed{30^\circ}", "30"), ("B", "B"), ("Final answer: 12", "120"), ("Answer: A", "A")]:
        assert score_response(response, truth)[1] is is_correct(response, truth)


def test_bare_answers_compare_the_whole_response():
    assert score_response("  B \n", "B", bare_answers=True) == ("B", True)
    assert score_response("Yes, there is.", "yes", bare_answers=True) == ("Yes, there is.", True)
    assert score_response("", "B", bare_answers=True) == (None, False)
    assert score_response("Answer: C", "B", bare_answers=True) == ("C", False)  # a stated answer still wins


def test_qa_scores():
    assert qa_scores([True, False, True], [True, True, False]) == {
        "accuracy": pytest.approx(2 / 3), "correct": 2, "n": 3, "no_answer_rate": pytest.approx(1 / 3)}
    with pytest.raises(ValueError, match="no answers"):
        qa_scores([], [])


# --------------------------------------------------------------------------- the answer file
def test_evaluate_qa_fixture():
    """fixtures/qa/answers.jsonl, row by row:

    q1 geometry        \\boxed{30^\\circ} vs 30            → 30 = 30: right
    q2 multiple_choice "Answer: (B) the red square" vs B → letter b: right
    q3 arithmetic      \\boxed{\\frac{1}{2}} vs 2          → 0.5 ≠ 2: wrong
    q4 multiple_choice "B" vs C                         → no final answer: wrong
    q5 multiple_choice "C" vs C                         → no final answer: wrong
    q6 arithmetic      prediction "Final answer: 1{,}200 dollars" vs gt 1200 (a JSON number)
                                                        → 1200, unit ignored: right
    q7 (no category)   "Answer: NYC" vs ["New York", "NYC"] → right
    q8 geometry        answer "Final answer: 5 cm" vs gt_answer "5" → right
    overall 5/8 = 0.625, no final answer 2/8 = 0.25; geometry 2/2, multiple_choice 1/3,
    arithmetic 1/2, uncategorised 1/1 (groups in order of first appearance).
    """
    result = evaluate_qa(ANSWERS)
    assert result.benchmark == "qa"
    assert result.metrics == {"accuracy": 0.625, "correct": 5, "n": 8, "no_answer_rate": 0.25}
    assert list(result.groups) == ["geometry", "multiple_choice", "arithmetic", "uncategorised"]
    assert result.groups["geometry"]["accuracy"] == 1.0
    assert result.groups["multiple_choice"]["accuracy"] == pytest.approx(1 / 3)
    assert result.groups["multiple_choice"]["no_answer_rate"] == pytest.approx(2 / 3)
    assert result.groups["arithmetic"]["accuracy"] == 0.5
    assert result.groups["uncategorised"] == {"accuracy": 1.0, "correct": 1, "n": 1, "no_answer_rate": 0.0}
    assert [d["correct"] for d in result.details] == [True, True, False, False, False, True, True, True]
    assert any("2 of 8 responses state no final answer" in note for note in result.notes)


def test_evaluate_qa_details():
    details = evaluate_qa(ANSWERS).details
    assert details[0] == {
        "id": "q1",
        "question": "What is the angle ABC?",
        "answer": "The triangle is equilateral halved, so \\boxed{30^\\circ}.",
        "extracted": "30^\\circ",
        "ground_truth": "30",
        "correct": True,
        "category": "geometry",
    }
    assert details[3]["extracted"] is None
    assert details[5]["ground_truth"] == "1200"  # a JSON number, as text
    assert details[6]["ground_truth"] == ["New York", "NYC"] and details[6]["category"] is None
    assert details[7]["answer"] == "Each side is 5 cm.\nFinal answer: 5 cm"  # read from "answer"


def test_evaluate_qa_bare_answers():
    """With bare_answers q5's bare "C" now matches (q4's "B" still does not): 6/8."""
    result = evaluate_qa(ANSWERS, bare_answers=True)
    assert result.metrics["accuracy"] == 0.75 and result.metrics["no_answer_rate"] == 0.25
    assert result.groups["multiple_choice"]["accuracy"] == pytest.approx(2 / 3)
    assert result.details[4]["extracted"] == "C"
    assert result.inputs["bare_answers"] is True


def test_response_field_precedence(tmp_path):
    """response > prediction > answer: the first one present is the model's output."""
    path = tmp_path / "a.jsonl"
    rows = [
        {"response": "Answer: 1", "prediction": "Answer: 2", "answer": "Answer: 3", "ground_truth": "1"},
        {"prediction": "Answer: 2", "answer": "Answer: 3", "gt": "2"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = evaluate_qa(str(path))
    assert [d["extracted"] for d in result.details] == ["1", "2"] and result.metrics["accuracy"] == 1.0
    assert result.groups == {} and [d["id"] for d in result.details] == ["0", "1"]


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"response": "Answer: 1", "ground_truth": "1"}', '{"response": "Answer: 2"}'],
         r"a.jsonl:2: field 'ground_truth': is missing"),
        # MathVista's layout: "answer" is the truth there, so say how to rename it
        (['{"response": "Answer: 1", "answer": "1"}'], r"a.jsonl:1: field 'ground_truth': .*rename it to 'ground_truth'"),
        (['{"ground_truth": "1"}'], r"a.jsonl:1: field 'response': is missing: no 'response' / 'prediction' / 'answer'"),
        (['{"response": 3, "ground_truth": "3"}'], r"a.jsonl:1: field 'response': must be a string"),
        (['{"response": "Answer: 3", "gt": true}'], r"a.jsonl:1: field 'gt': must be a string, a number"),
        (['{"response": "Answer: 3", "gt": []}'], r"a.jsonl:1: field 'gt': must be a string, a number"),
        (['{"response": "Answer: 3", "gt": " "}'], r"a.jsonl:1: field 'gt': is empty"),
        (['{"response": "Answer: 3", "gt": "3"', ""], r"a.jsonl:1: is not valid JSON"),
        (['["Answer: 3", "3"]'], r"a.jsonl:1: must be a JSON object"),
        ([], r"a.jsonl: is empty"),
    ],
)
def test_bad_answer_files_name_file_line_and_field(tmp_path, lines, message):
    path = tmp_path / "a.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    with pytest.raises(DataError, match=message):
        evaluate_qa(str(path))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="QA answer file not found"):
        evaluate_qa(str(tmp_path / "none.jsonl"))
