"""MMHal-Bench: read its files, ask a judge LLM to rate every answer, build the result.

The benchmark (Hugging Face dataset ``Shengcao1006/MMHal-Bench``) is 96 questions on
OpenImages photos in ``response_template.json``, a JSON list of records
``{"question_type", "question_topic", "image_id", "image_src", "image_content",
"question", "gt_answer", "model_answer"}``, with the photos in its ``images/`` folder
(file name = the last part of ``image_src``). A model's responses are that list with
``model_answer`` filled in, as its ``get_response.py`` writes it; scoring follows
``eval_gpt4.py`` (see :mod:`mmpo.eval.metrics.mmhal`).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from mmpo.eval.judge import JudgeCache, JudgeClient, JudgeError
from mmpo.eval.metrics.mmhal import QUESTION_TYPES, build_judge_prompt, mmhal_scores, parse_rating, question_type, ratings_found
from mmpo.eval.result import EvalResult

REFERENCE_RECORDS = 96
REFERENCE_JUDGE = "gpt-4-0314"  # eval_gpt4.py's default --gpt-model
_TEXT_KEYS = ("question", "gt_answer")


def _read_records(path: str) -> list[tuple[str, Any]]:
    """``(where, record)`` pairs from a JSON list or a JSONL file; ``where`` names the
    record for error messages ("record 3" / "line 4")."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise ValueError(f"{path}: cannot read: {err}") from None
    if path.endswith(".jsonl"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"line {n}", json.loads(line)))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}: line {n}: not JSON: {err}") from None
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err}); expected a JSON list of records like response_template.json") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records like response_template.json, got {type(data).__name__}")
    return [(f"record {i}", row) for i, row in enumerate(data)]


def _check_record(path: str, where: str, row: Any, keys: tuple[str, ...]) -> None:
    if not isinstance(row, dict):
        raise ValueError(f"{path}: {where}: expected an object, got {type(row).__name__}")
    for key in keys:
        if key not in row:
            raise ValueError(f"{path}: {where}: missing key {key!r} (has {sorted(row)})")
        value = row[key]
        if key == "image_content":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{path}: {where}: 'image_content' must be a list of strings, got {value!r}")
        elif not isinstance(value, str):
            raise ValueError(f"{path}: {where}: {key!r} must be a string, got {type(value).__name__}")


def load_mmhal_responses(path: str) -> list[dict[str, Any]]:
    """Model responses in MMHal's layout, checked: a JSON list (or JSONL, one record a line)
    of records with ``image_content`` (list of str), ``question``, ``gt_answer`` and
    ``model_answer`` (str; a record without it may carry the answer as ``answer``, as the
    rows of :func:`mmhal_questions` do once answered). Returned with the answer under
    ``model_answer``, in file order, which gives each record its type; records whose ids
    are exactly 0..n-1 (rows of :func:`mmhal_questions`) are put in id order first."""
    rows = _read_records(path)
    records = []
    for where, row in rows:
        _check_record(path, where, row, ("image_content", *_TEXT_KEYS))
        answer_key = "model_answer" if "model_answer" in row else "answer"
        if answer_key not in row:
            raise ValueError(f"{path}: {where}: no 'model_answer' (or 'answer') key: the model's response is missing")
        _check_record(path, where, row, (answer_key,))
        records.append({**row, "model_answer": row[answer_key]})
    if not records:
        raise ValueError(f"{path}: no records")
    ids = [r.get("id") for r in records]
    if all(type(i) is int for i in ids) and sorted(ids) == list(range(len(ids))):
        records.sort(key=lambda r: r["id"])  # answered rows of mmhal_questions, back in benchmark order
    if not any(r["model_answer"].strip() for r in records):
        raise ValueError(f"{path}: every model answer is empty: is this response_template.json rather than a model's responses?")
    return records


def mmhal_questions(template_json: str, image_dir: str) -> list[dict[str, Any]]:
    """Generation rows ``{"id", "image", "prompt", ...}`` for MMHal's ``response_template.json``:
    ``id`` is the record's index, ``image`` the photo under ``image_dir`` (the last part of
    ``image_src``), ``prompt`` the bare question (as get_response.py and LLaVA-RLHF's
    eval_mmhal.sh ask it); the template's other fields follow, ``model_answer`` left out.
    Write each answer back as ``answer`` on its row and the rows load with
    :func:`load_mmhal_responses`."""
    rows = []
    for i, (where, record) in enumerate(_read_records(template_json)):
        _check_record(template_json, where, record, ("image_src", "image_content", *_TEXT_KEYS))
        image = os.path.join(image_dir, record["image_src"].rsplit("/", 1)[-1])
        extra = {k: v for k, v in record.items() if k not in ("id", "image", "prompt", "model_answer", "answer")}
        rows.append({"id": i, "image": image, "prompt": record["question"], **extra})
    missing = [row["image"] for row in rows if not os.path.isfile(row["image"])]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(rows)} MMHal images not found, e.g. {missing[0]}; "
            f"image_dir should be the images/ folder of the Hugging Face dataset Shengcao1006/MMHal-Bench"
        )
    return rows


def evaluate_mmhal(
    path: str,
    client: JudgeClient,
    cache_path: str | None = None,
    *,
    max_tokens: int | None = None,
    label: str = "",
) -> EvalResult:
    """Judge every response in ``path`` with eval_gpt4.py's prompt (temperature 0) and score
    them. Judgements are appended to ``cache_path`` as they arrive, so a rerun after a kill
    or an error asks the judge only about records it has not answered yet."""
    records = load_mmhal_responses(path)
    cache = JudgeCache(cache_path) if cache_path else None
    details, scores, ambiguous, mistyped, cached = [], [], [], [], 0
    for i, record in enumerate(records):
        sent_before = client.requests_sent
        try:
            reply = client.complete(build_judge_prompt(record), temperature=0.0, max_tokens=max_tokens, cache=cache)
        except JudgeError as err:
            saved = f"the {i} records before it are judged and saved in {cache_path}; rerun to resume" if cache else "no cache was kept"
            raise JudgeError(f"{err} (record {i} of {len(records)} in {path}; {saved})") from None
        from_cache = client.requests_sent == sent_before
        cached += from_cache
        found = ratings_found(reply)
        score = parse_rating(reply)
        record_id = record.get("id", i)
        kind = question_type(i)
        if len(found) != 1:
            ambiguous.append(record_id)
            print(f"mmhal: warning: record {i}: ratings {found} in the judge's reply, scored 0: {reply!r}", file=sys.stderr)
        if record.get("question_type", kind) != kind:
            mistyped.append(record_id)
        scores.append(score)
        detail = {"id": record_id, "question": record["question"], "question_type": kind}
        if image := record.get("image") or record.get("image_src"):
            detail["image"] = image
        detail.update(answer=record["model_answer"], gt_answer=record["gt_answer"], judge_reply=reply, score=score, ambiguous=len(found) != 1)
        details.append(detail)
        print(f"mmhal: {i + 1}/{len(records)} score {score}{' (cached)' if from_cache else ''}", file=sys.stderr)
    figures = mmhal_scores(scores)
    print(f"mmhal: {len(records)} judged, {cached} from the cache", file=sys.stderr)
    return EvalResult(
        benchmark="mmhal",
        metrics={
            "average_score": figures["average_score"],
            "hallucination_rate": figures["hallucination_rate"],
            "n": figures["n"],
            "ambiguous_ratings": len(ambiguous),
        },
        groups=figures["per_type"],
        details=details,
        notes=_notes(client, len(records), ambiguous, mistyped),
        inputs={
            "responses": path,
            "judge_url": client.url,
            "judge_model": client.model,
            "temperature": 0.0,
            "max_tokens": max_tokens,
            "judge_cache": cache_path,
        },
        label=label,
    )


def _notes(client: JudgeClient, n: int, ambiguous: list, mistyped: list) -> list[str]:
    notes = []
    if client.model == REFERENCE_JUDGE:
        notes.append(f"Judged by {client.model}, eval_gpt4.py's default judge.")
    else:
        notes.append(
            f"Judged by {client.model}; eval_gpt4.py's default judge is {REFERENCE_JUDGE}, "
            "and scores from different judges are not comparable."
        )
    if ambiguous:
        notes.append(
            f"{len(ambiguous)} of {n} judge replies held zero or several distinct 'rating: s' and were scored 0, "
            f"as eval_gpt4.py does (ids {ambiguous})."
        )
    if n != REFERENCE_RECORDS:
        notes.append(f"{n} records, not the benchmark's {REFERENCE_RECORDS} (eval_gpt4.py refuses any other count); types still follow index mod 8.")
    if mistyped:
        notes.append(
            f"Records {mistyped} have a question_type field unlike their type by position (index mod 8, "
            f"which eval_gpt4.py uses, order {', '.join(QUESTION_TYPES)}): the records may be out of order."
        )
    notes.append("Figures are unrounded; eval_gpt4.py prints the average score and hallucination rate with 2 decimals.")
    return notes
