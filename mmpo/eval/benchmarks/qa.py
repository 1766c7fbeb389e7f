"""Reasoning / multiple-choice QA on an answer file: ``mmpo eval qa --answers F.jsonl``.

One JSON object per line; the fields are read by this rule (the first name present wins):

- model output: ``response``, else ``prediction``, else ``answer``;
- ground truth: ``ground_truth``, else ``gt``, else ``gt_answer`` — a string, a number, or a
  list of acceptable answers. ``answer`` is never read as the ground truth: in layouts where
  it is (MathVista's ``answer`` beside ``response``), rename it to ``ground_truth``;
- optional: ``id`` (else ``question_id``, else the row's index), ``question`` (else
  ``prompt``), ``category`` (accuracy is reported per category too).

Final answers are extracted and matched by :mod:`mmpo.eval.metrics.qa`, i.e. by the MPO
correctness pipeline's rules (:mod:`mmpo.pairs.answers`).
"""

from __future__ import annotations

import os
from typing import Any

from mmpo.data.loaders import read_json_lines
from mmpo.data.schema import DataError
from mmpo.eval.metrics.qa import qa_scores, score_response
from mmpo.eval.result import EvalResult
from mmpo.pairs.answers import extract_answer

RESPONSE_FIELDS = ("response", "prediction", "answer")
TRUTH_FIELDS = ("ground_truth", "gt", "gt_answer")
UNCATEGORISED = "uncategorised"

MATCHER_NOTE = (
    "Final answers are the last \\boxed{} or 'Answer:' / 'Final answer:' line, matched as MPO's correctness "
    "pipeline does: option letters, yes/no by the first word, numbers within 1e-3 relative (LaTeX fractions, "
    "thousands separators, %, degree signs and units in the answer allowed), otherwise normalized exact text."
)


def _truth(row: dict[str, Any], location: str) -> str | list[str]:
    name = next((f for f in TRUTH_FIELDS if f in row), None)
    if name is None:
        hint = (" ('answer' is read as the model's output only when there is no 'response' / 'prediction'; "
                "if it is the ground truth here, rename it to 'ground_truth')" if "answer" in row else "")
        names = " / ".join(repr(f) for f in TRUTH_FIELDS)
        problem = f"is missing: no {names} field holds the ground truth{hint}"
        raise DataError(location, TRUTH_FIELDS[0], problem, "missing_field")
    value = row[name]
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
        problem = f"must be a string, a number or a non-empty list of them, got {value!r}"
        raise DataError(location, name, problem, "wrong_type")
    truths = [str(v) for v in values]
    if not all(t.strip() for t in truths):
        raise DataError(location, name, "is empty", "empty_ground_truth")
    return truths if isinstance(value, list) else truths[0]


def _response(row: dict[str, Any], location: str) -> str:
    name = next((f for f in RESPONSE_FIELDS if f in row), None)
    if name is None:
        names = " / ".join(repr(f) for f in RESPONSE_FIELDS)
        problem = f"is missing: no {names} field holds the model's output"
        raise DataError(location, RESPONSE_FIELDS[0], problem, "missing_field")
    if not isinstance(row[name], str):
        raise DataError(location, name, f"must be a string, got {type(row[name]).__name__}", "wrong_type")
    return row[name]


def evaluate_qa(path: str, *, bare_answers: bool = False) -> EvalResult:
    """Accuracy of the answers in ``path``, overall and per ``category``.

    ``bare_answers``: compare the whole response when it states no final answer (see
    :func:`~mmpo.eval.metrics.qa.score_response`); off by default, so a response counts as
    correct exactly when the correctness pipeline would call it correct.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"QA answer file not found: {path}")
    details: list[dict[str, Any]] = []
    stated: list[bool] = []
    for index, (location, row) in enumerate(read_json_lines(path)):
        if isinstance(row, DataError):
            raise row
        response, truth = _response(row, location), _truth(row, location)
        extracted, correct = score_response(response, truth, bare_answers=bare_answers)
        stated.append(extract_answer(response) is not None)
        detail: dict[str, Any] = {"id": str(row.get("id", row.get("question_id", index)))}
        question = row.get("question", row.get("prompt"))
        if question is not None:
            detail["question"] = question
        category = row.get("category")
        detail.update(answer=response, extracted=extracted, ground_truth=truth, correct=correct,
                      category=None if category is None else str(category))
        details.append(detail)
    if not details:
        raise DataError(path, None, "is empty; expected one JSON object per line with a response and a ground_truth",
                        "empty_dataset")

    flags = [d["correct"] for d in details]
    metrics = qa_scores(flags, stated)
    groups: dict[str, dict[str, float | int]] = {}
    if any(d["category"] is not None for d in details):
        names = [d["category"] if d["category"] is not None else UNCATEGORISED for d in details]
        for group in dict.fromkeys(names):
            picked = [i for i, name in enumerate(names) if name == group]
            groups[group] = qa_scores([flags[i] for i in picked], [stated[i] for i in picked])

    notes = [MATCHER_NOTE]
    missing = stated.count(False)
    if missing:
        how = ("were compared whole (bare_answers)" if bare_answers else
               "count as wrong; prompt for 'Answer: …' or \\boxed{}, or score with bare_answers for one-word replies")
        notes.append(f"{missing} of {len(stated)} responses state no final answer "
                     f"(no \\boxed{{}} or 'Answer:' line) and {how}.")
    return EvalResult(benchmark="qa", metrics=metrics, groups=groups, details=details, notes=notes,
                      inputs={"answers": path, "bare_answers": bare_answers})
