"""POPE on real answer files: ``mmpo eval pope``.

POPE (Li et al. 2023, arXiv 2305.10355) asks "Is there a <object> in the image?" about COCO
val2014 images, in three splits of 3,000 questions that differ in how absent objects are
drawn: ``random``, ``popular``, ``adversarial`` (RUCAIBox/POPE ships one file per split,
``coco_pope_{split}.json``).

- :func:`pope_questions` turns POPE's question files (JSON lines ``{"question_id", "image",
  "text", "label"}``) into generation rows ``{"id", "image", "prompt", "label", "category",
  "question"}``; the category is the split, read from the file name.
- :func:`evaluate_pope` scores answers, in one of two layouts:

  * one JSON-lines file of rows ``{"label": "yes"|"no", "prediction" (or "answer"): text,
    "category", "question", "id", "image"}`` (what running a model on
    :func:`pope_questions` rows gives);
  * POPE's own: an answer file (``{"question", "answer"}`` per line, or LLaVA's
    ``{"question_id", "prompt", "text"}``) plus ``label_file``, the question file it answers,
    paired line by line as the reference does.

Answers are parsed and scored by :mod:`mmpo.eval.metrics.pope` exactly as RUCAIBox/POPE
``evaluate.py``; every figure is reported overall and per split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from mmpo.data.loaders import read_json_lines
from mmpo.data.schema import DataError
from mmpo.eval.metrics.pope import ANSWERS, parse_pope_answer, pope_scores, undefined_scores
from mmpo.eval.result import EvalResult

SPLITS = ("random", "popular", "adversarial")
ANSWER_FIELDS = ("prediction", "answer")  # the first one present holds the model's answer
POPE_ANSWER_FIELDS = (*ANSWER_FIELDS, "text")  # with label_file: LLaVA's answer files use "text"
UNCATEGORISED = "uncategorised"

PARSING_NOTE = (
    "Answers are parsed as RUCAIBox/POPE evaluate.py does: the text before the first '.', commas "
    "deleted, split on spaces; any word 'No', 'not' or 'no' makes it 'no', anything else is 'yes' "
    "(so empty answers, 'NO', 'Not', 'Nope' and \"don't\" count as yes). 'yes' is the positive class; "
    "yes_ratio is the share of predictions that are 'yes' (lmms-eval takes it from the labels instead)."
)


def split_of(path: str) -> str:
    """The POPE split a question file holds, from its name: ``coco_pope_random.json`` →
    ``random``; other names (``aokvqa_pope_seem_adversarial.json``) are kept whole, less the
    extension."""
    stem = os.path.basename(path)
    for ext in (".jsonl", ".json"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    return stem.removeprefix("coco_pope_")


def _read_rows(path: str, what: str) -> list[tuple[str, dict[str, Any]]]:
    """``(file:line, object)`` for every row of a JSON-lines file, or a DataError."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"POPE {what} not found: {path}")
    with open(path, encoding="utf-8") as f:
        head = f.read(1024).lstrip()
    if head.startswith("["):
        raise DataError(path, None, f"is a JSON array; POPE {what}s are JSON lines (one object per line)", "unknown_format")
    rows = []
    for location, obj in read_json_lines(path):
        if isinstance(obj, DataError):
            raise obj
        rows.append((location, obj))
    if not rows:
        raise DataError(path, None, f"is empty; expected one JSON object per line ({what})", "empty_dataset")
    return rows


def _label(row: dict[str, Any], location: str) -> str:
    if "label" not in row:
        raise DataError(location, "label", "is missing; every row needs the ground truth 'yes' or 'no'", "missing_field")
    label = row["label"]
    if label not in ANSWERS:
        # The reference reads every label other than exactly 'no' as 'yes'; refuse instead.
        problem = f"must be 'yes' or 'no' (lower case, as in POPE's files), got {label!r}"
        raise DataError(location, "label", problem, "bad_label")
    return label


def _answer(row: dict[str, Any], location: str, fields: Sequence[str]) -> str:
    name = next((f for f in fields if f in row), None)
    if name is None:
        looks_like_questions = "text" in row and "label" in row and "text" not in fields
        hint = (
            "; this looks like a POPE question file ('text' is the question): run a model on "
            "pope_questions(...) rows and score its answers, or pass it as label_file"
            if looks_like_questions
            else ""
        )
        names = " / ".join(repr(f) for f in fields)
        raise DataError(location, fields[0], f"is missing: no {names} field holds the model's answer{hint}", "missing_field")
    if not isinstance(row[name], str):
        raise DataError(location, name, f"must be a string, got {type(row[name]).__name__}", "wrong_type")
    return row[name]


def _row_id(row: dict[str, Any], index: int) -> str:
    return str(row.get("id", row.get("question_id", index)))


def _single_file(path: str) -> list[dict[str, Any]]:
    """Scored-row records of the one-file layout, in file order."""
    records = []
    for index, (location, row) in enumerate(_read_rows(path, "answer file")):
        records.append({
            "id": _row_id(row, index),
            "question": row.get("question", row.get("prompt")),
            "image": row.get("image"),
            "answer": _answer(row, location, ANSWER_FIELDS),
            "label": _label(row, location),
            "category": row.get("category"),
        })
    return records


def _paired_files(path: str, label_file: str) -> list[dict[str, Any]]:
    """Scored-row records of POPE's layout: answer file line i answers question file line i."""
    answers, questions = _read_rows(path, "answer file"), _read_rows(label_file, "question file")
    if len(answers) != len(questions):
        # The reference zips the two lists and silently drops the longer one's tail.
        raise DataError(path, None, f"has {len(answers)} answers but {label_file} has {len(questions)} questions; "
                        "they pair up line by line, so the counts must match", "count_mismatch")
    split = split_of(label_file)
    records = []
    for index, ((a_loc, a_row), (q_loc, q_row)) in enumerate(zip(answers, questions)):
        label = _label(q_row, q_loc)
        if "question_id" in a_row and "question_id" in q_row and a_row["question_id"] != q_row["question_id"]:
            raise DataError(a_loc, "question_id", f"is {a_row['question_id']!r} but the question on the same line, "
                            f"{q_loc}, is {q_row['question_id']!r}; keep both files in the same order", "order_mismatch")
        if "label" in a_row and a_row["label"] != label:
            raise DataError(a_loc, "label", f"is {a_row['label']!r} but {q_loc} says {label!r}", "label_mismatch")
        records.append({
            "id": _row_id(q_row, index),
            "question": q_row.get("text", a_row.get("question", a_row.get("prompt"))),
            "image": q_row.get("image"),
            "answer": _answer(a_row, a_loc, POPE_ANSWER_FIELDS),
            "label": label,
            "category": q_row.get("category", split),
        })
    return records


def _group_order(categories: list[str]) -> list[str]:
    seen = list(dict.fromkeys(categories))
    return [s for s in SPLITS if s in seen] + [c for c in seen if c not in SPLITS]


def evaluate_pope(path: str, label_file: str | None = None) -> EvalResult:
    """Score a POPE answer file: accuracy, precision, recall, F1, yes-ratio (fractions) and the
    confusion counts, over all rows (``metrics``) and per split (``groups``).

    Without ``label_file`` each row carries its ``label``, its answer in ``prediction`` (or,
    if absent, ``answer``) and its split in ``category``. With ``label_file`` (a POPE question
    file) the answers come from ``prediction`` / ``answer`` / ``text`` and are paired with the
    questions line by line; the split is the question file's name. When there are several
    splits, ``mean_accuracy`` and ``mean_f1`` average the splits' figures, the way papers
    summarise POPE in one number.
    """
    records = _single_file(path) if label_file is None else _paired_files(path, label_file)
    for record in records:
        record["parsed"] = parse_pope_answer(record["answer"])

    metrics = pope_scores([r["parsed"] for r in records], [r["label"] for r in records])
    notes = [PARSING_NOTE]
    groups: dict[str, dict[str, float | int]] = {}
    if any(r["category"] is not None for r in records):
        categories = [str(r["category"]) if r["category"] is not None else UNCATEGORISED for r in records]
        for group in _group_order(categories):
            part = [r for r, c in zip(records, categories) if c == group]
            groups[group] = pope_scores([r["parsed"] for r in part], [r["label"] for r in part])
        if len(groups) > 1:
            notes.append("Overall figures pool every row; the reference scores one split file at a time (see the groups); "
                         "mean_accuracy and mean_f1 are the unweighted means over the groups.")
            metrics["mean_accuracy"] = sum(g["accuracy"] for g in groups.values()) / len(groups)
            metrics["mean_f1"] = sum(g["f1"] for g in groups.values()) / len(groups)

    undefined = [f"{name} ({where})" for where, scores in [("overall", metrics), *groups.items()]
                 for name in undefined_scores(scores)]
    if undefined:
        notes.append("Reported as 0.0 where the reference script would divide by zero (no 'yes' prediction, "
                     f"no 'yes' label, or no true positive): {', '.join(undefined)}.")

    details = []
    for record in records:
        detail = {"id": record["id"], "question": record["question"]}
        if record["image"] is not None:
            detail["image"] = record["image"]
        detail.update(answer=record["answer"], parsed=record["parsed"], label=record["label"],
                      correct=record["parsed"] == record["label"])
        if record["category"] is not None:
            detail["category"] = record["category"]
        details.append(detail)
    return EvalResult(benchmark="pope", metrics=metrics, groups=groups, details=details, notes=notes,
                      inputs={"answers": path, "label_file": label_file})


def pope_questions(question_files: Sequence[str], image_dir: str, *, check_images: bool = True) -> list[dict[str, Any]]:
    """Generation rows ``{"id", "image", "prompt", "label", "category", "question"}`` from POPE
    question files, in file order.

    ``category`` is the split from each file's name (:func:`split_of`) unless a row has its
    own; ``id`` is ``"{category}-{question_id}"`` (question ids restart at 1 in every split);
    ``image`` is ``image_dir`` joined with the row's ``image``; ``prompt`` and ``question``
    are the row's ``text``. With ``check_images`` every image must exist, so a wrong
    ``image_dir`` fails before a model is loaded.
    """
    if not question_files:
        raise ValueError("no POPE question files given (coco_pope_{random,popular,adversarial}.json)")
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for path in question_files:
        split = split_of(path)
        for index, (location, row) in enumerate(_read_rows(path, "question file")):
            for name in ("text", "image"):
                value = row.get(name)
                if not isinstance(value, str) or not value.strip():
                    problem = "is missing" if value is None else f"must be a non-empty string, got {value!r}"
                    layout = "POPE question rows have 'question_id', 'image', 'text', 'label'"
                    raise DataError(location, name, f"{problem}; {layout}", "missing_field")
            label = _label(row, location)
            category = str(row.get("category", split))
            row_id = f"{category}-{row.get('question_id', index)}"
            if row_id in seen:
                raise DataError(location, "question_id", f"id {row_id!r} is already used at {seen[row_id]} "
                                "(the same split given twice?)", "duplicate_id")
            seen[row_id] = location
            image = os.path.join(image_dir, row["image"])
            if check_images and not os.path.isfile(image):
                problem = f"{image} does not exist; is image_dir the COCO val2014 folder?"
                raise DataError(location, "image", problem, "missing_image")
            rows.append({"id": row_id, "image": image, "prompt": row["text"], "label": label,
                         "category": category, "question": row["text"]})
    return rows
