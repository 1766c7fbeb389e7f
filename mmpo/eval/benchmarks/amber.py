"""AMBER: read the benchmark's ``data/`` folder and a model's responses, build the result.

The benchmark is the ``data/`` folder of junyangwang0410/AMBER (images separately, from the
link in its README):

* ``annotations.json``: a JSON list, one record per id — generative
  ``{"id", "type": "generative", "truth": [objects], "hallu": [objects]}`` (ids 1–1004),
  discriminative ``{"id", "type", "truth": "yes" | "no"}`` with type
  ``discriminative-hallucination`` (existence), ``discriminative-attribute-{state,number,action}``
  or ``discriminative-relation`` / ``relation`` (ids 1005–15220);
* ``relation.json`` (object → associated words), ``safe_words.txt`` (one word a line),
  ``metrics.txt`` (``name=value`` lines: the counters' starting values);
* ``query/query_{all,generative,discriminative,discriminative-existence,
  discriminative-attribute,discriminative-relation}.json``: ``[{"id", "image", "query"}]``,
  the prompts for evaluation types a, g, d, de, da, dr.

Responses are the file ``inference.py --inference_data`` reads: a JSON list of
``{"id", "response"}``. Scoring is :mod:`mmpo.eval.metrics.amber`.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import warnings
from collections import Counter
from typing import Any

from mmpo.eval import nlp
from mmpo.eval.metrics.amber import (
    ATTRIBUTE_PARTS,
    EVALUATIONS,
    METRICS_START,
    Similar,
    answer_correct,
    caption_objects,
    count,
    dimension,
    exact_match,
    match_caption,
    object_vocabulary,
    printed_figures,
    selected_dimensions,
)
from mmpo.eval.result import EvalResult

QUERY_FILES = {
    "a": "query_all.json",
    "g": "query_generative.json",
    "d": "query_discriminative.json",
    "de": "query_discriminative-existence.json",
    "da": "query_discriminative-attribute.json",
    "dr": "query_discriminative-relation.json",
}
SPACY_MODEL = "en_core_web_lg"
SIMILARITY_SCORE = 0.8  # inference.py's --similarity_score default
HEADLINE = {"de": "existence", "da": "attribute", "dr": "relation"}  # what a one-dimension run leads with
PERCENT_NOTE = (
    "Figures are percentages rounded to one decimal, exactly as AMBER's inference.py prints them "
    "(not fractions): every denominator starts at 0.001 as data/metrics.txt sets it, and F1 is "
    "computed from the rounded precision and recall with 0.0001 in its denominator (0.001 for "
    "existence). The groups' counts (responses, objects, questions) are plain integers."
)


def _read_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: {what} not found") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: {what} is not readable JSON ({err})") from None


def _json_list(path: str, what: str) -> list[Any]:
    data = _read_json(path, what)
    if not isinstance(data, list):
        raise ValueError(f"{path}: {what} must be a JSON list, got {type(data).__name__}")
    return data


def data_dir(amber_dir: str) -> str:
    """AMBER's ``data/`` folder: ``amber_dir/data`` (a checkout of the repository) or
    ``amber_dir`` itself when it holds ``annotations.json``."""
    for folder in (os.path.join(amber_dir, "data"), amber_dir):
        if os.path.isfile(os.path.join(folder, "annotations.json")):
            return folder
    raise ValueError(
        f"{amber_dir}: no annotations.json in it or in its data/ folder; pass a checkout of "
        "github.com/junyangwang0410/AMBER (or its data/ folder)"
    )


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def load_annotations(path: str) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """``annotations.json`` as a list (file order) and by id, each record checked."""
    records = _json_list(path, "AMBER annotations")
    by_id: dict[int, dict[str, Any]] = {}
    for i, record in enumerate(records):
        where = f"{path}: record {i}"
        if not isinstance(record, dict) or not _is_id(record.get("id")) or not isinstance(record.get("type"), str):
            raise ValueError(f"{where}: expected {{'id': int, 'type': str, 'truth': ...}}, got {record!r:.200}")
        if record["id"] in by_id:
            raise ValueError(f"{where}: id {record['id']} appears twice")
        if record["type"] == "generative":
            for key in ("truth", "hallu"):
                if not isinstance(record.get(key), list) or not all(isinstance(w, str) for w in record[key]):
                    raise ValueError(f"{where} (id {record['id']}): generative {key!r} must be a list of object names")
        elif record.get("truth") not in ("yes", "no"):
            raise ValueError(f"{where} (id {record['id']}): discriminative 'truth' must be 'yes' or 'no', "
                             f"got {record.get('truth')!r}")
        by_id[record["id"]] = record
    return records, by_id


def load_association(path: str) -> dict[str, list[str]]:
    """``relation.json``: object → its associated words."""
    association = _read_json(path, "AMBER word associations")
    if not isinstance(association, dict) or not all(
        isinstance(v, list) and all(isinstance(w, str) for w in v) for v in association.values()
    ):
        raise ValueError(f"{path}: expected a JSON object mapping each object to a list of words")
    return association


def load_safe_words(path: str) -> list[str]:
    """``safe_words.txt``, read as the reference reads it (each line up to its newline)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [line.split("\n")[0] for line in f]
    except OSError as err:
        raise ValueError(f"{path}: AMBER safe words not readable ({err})") from None


def load_metrics_start(path: str) -> dict[str, float]:
    """``metrics.txt``: the counters' starting values. Lines ``name=value`` (others are skipped,
    as by the reference, which ``eval``s the value; here it must be a number literal)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except OSError as err:
        raise ValueError(f"{path}: AMBER metrics.txt not readable ({err})") from None
    start: dict[str, float] = {}
    for n, line in enumerate(lines, 1):
        parts = line.strip().split("=")
        if len(parts) == 2:
            try:
                value = ast.literal_eval(parts[1].strip())
            except (ValueError, SyntaxError):
                value = None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{path}: line {n}: {parts[1].strip()!r} is not a number")
            start[parts[0].strip()] = value
    missing = sorted(set(METRICS_START) - set(start))
    if missing:
        raise ValueError(f"{path}: no starting value for {', '.join(missing)} (compare AMBER's data/metrics.txt)")
    return start


def load_responses(path: str) -> list[dict[str, Any]]:
    """The responses file: a JSON list of ``{"id": int, "response": str}``, checked."""
    rows = _json_list(path, "AMBER responses")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: row {i}: expected {{'id', 'response'}}, got {type(row).__name__}")
        if not _is_id(row.get("id")):
            raise ValueError(f"{path}: row {i}: 'id' must be an AMBER id (an integer), got {row.get('id')!r}")
        if "response" not in row:
            raise ValueError(f"{path}: row {i} (id {row['id']}): no 'response' key (has {sorted(row)})")
        if not isinstance(row["response"], str):
            raise ValueError(f"{path}: row {i} (id {row['id']}): 'response' must be a string, "
                             f"got {type(row['response']).__name__}")
    return rows


@functools.lru_cache(maxsize=4)
def spacy_similarity(threshold: float = SIMILARITY_SCORE) -> Similar | None:
    """The reference's similarity, ``nlp(a).similarity(nlp(b)) > threshold`` with spaCy's
    ``en_core_web_lg``; None when spaCy or that model is not installed."""
    try:
        import spacy

        model = spacy.load(SPACY_MODEL)
    except (ImportError, OSError):
        return None

    doc = functools.lru_cache(maxsize=None)(model)

    @functools.lru_cache(maxsize=None)
    def similar(word1: str, word2: str) -> bool:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "no word vector" (W008), ignored by the reference too
            return doc(word1).similarity(doc(word2)) > threshold

    return similar


def _vector_free_note(threshold: float) -> str:
    return (
        f"spaCy's {SPACY_MODEL} (the reference's word vectors) is not installed, so its similarity step "
        f"(word-vector similarity > {threshold}) is replaced by exact string equality and the generative "
        "figures are named chair_exact / cover_exact / hal_exact / cog_exact; the rest of the algorithm is the "
        "reference's. What the reference does in addition: an object that matches no truth object or "
        f"association exactly but is similar (> {threshold}) to one counts as a true mention (not "
        "hallucinated, and it covers that truth object), and one similar to a hallucination target marks "
        "it for Cog. So chair_exact >= CHAIR, hal_exact >= Hal, cover_exact <= Cover, cog_exact <= Cog."
    )


def _questions(folder: str) -> dict[int, str]:
    """Question text by id from ``query/query_all.json``, when it is there (for the details)."""
    path = os.path.join(folder, "query", QUERY_FILES["a"])
    if not os.path.isfile(path):
        return {}
    return {q["id"]: q["query"] for q in _json_list(path, "AMBER queries")
            if isinstance(q, dict) and _is_id(q.get("id")) and isinstance(q.get("query"), str)}


def amber_questions(amber_dir: str, image_dir: str, evaluation: str = "a") -> list[dict[str, Any]]:
    """Generation rows ``{"id", "image", "prompt", "task"}`` from AMBER's query file for
    ``evaluation`` (``query_all.json`` for "a", …): ``image`` is the file under ``image_dir``,
    ``prompt`` the query as the file gives it (no suffix added), ``task`` "generative" or the
    question's dimension (existence, state, number, action, relation). Answer each row and
    write ``[{"id", "response"}]``: the file :func:`evaluate_amber` (and inference.py) reads."""
    selected_dimensions(evaluation)
    folder = data_dir(amber_dir)
    path = os.path.join(folder, "query", QUERY_FILES[evaluation])
    _, annotations = load_annotations(os.path.join(folder, "annotations.json"))
    rows = []
    for i, query in enumerate(_json_list(path, "AMBER queries")):
        if not (isinstance(query, dict) and _is_id(query.get("id")) and isinstance(query.get("image"), str)
                and isinstance(query.get("query"), str)):
            raise ValueError(f"{path}: row {i}: expected {{'id': int, 'image': str, 'query': str}}, got {query!r:.200}")
        if query["id"] not in annotations:
            raise ValueError(f"{path}: row {i}: id {query['id']} is not in annotations.json")
        rows.append({"id": query["id"], "image": os.path.join(image_dir, query["image"]), "prompt": query["query"],
                     "task": dimension(annotations[query["id"]]["type"])})
    missing = [row["image"] for row in rows if not os.path.isfile(row["image"])]
    if missing:
        raise ValueError(f"{len(missing)} of {len(rows)} AMBER images not found, e.g. {missing[0]}; image_dir should "
                         "be the folder of AMBER_<n>.jpg files from the download linked in AMBER's README")
    return rows


def _score(scored, annotations, annotations_path, association, safe_words, similar, questions):
    """Details (one per response), caption matches and yes/no answer triples, in order."""
    vocabulary = object_vocabulary(association)
    details, matches, answers = [], [], []
    for row in scored:
        annotation = annotations[row["id"]]
        task = dimension(annotation["type"])
        if task != "generative":
            answers.append((annotation["type"], annotation["truth"], row["response"]))
            question = {"question": questions[row["id"]]} if row["id"] in questions else {}
            details.append({"id": row["id"], "task": task, **question, "answer": row["response"],
                            "label": annotation["truth"], "correct": answer_correct(row["response"], annotation["truth"])})
            continue
        for key in ("truth", "hallu"):
            unknown = [w for w in annotation[key] if w not in association]
            if unknown:
                raise ValueError(f"{annotations_path}: id {row['id']}: {key} object(s) {unknown} "
                                 "are not keys of relation.json")
        objects = caption_objects(row["response"], vocabulary)
        match = match_caption(objects, annotation["truth"], annotation["hallu"], association, safe_words, similar)
        matches.append(match)
        details.append({"id": row["id"], "task": task, "answer": row["response"], "hallucinated": match.hallucinated,
                        "objects": match.objects,
                        "covered": [w for w, hit in zip(annotation["truth"], match.covered) if hit],
                        "cog": [w for w, hit in zip(annotation["hallu"], match.cog) if hit]})
    return details, matches, answers


def _groups(blocks, details, matches, suffix):
    """Each printed block's figures plus plain counts; generative figures renamed with ``suffix``."""
    groups: dict[str, dict[str, float | int]] = {}
    for block, figures in blocks.items():
        if block == "generative":
            groups[block] = {**{f"{k}{suffix}": v for k, v in figures.items()}, "responses": len(matches),
                             "objects": sum(len(m.objects) for m in matches),
                             "hallucinated_objects": sum(len(m.hallucinated) for m in matches)}
            continue
        members = {"discriminative": None, "attribute": ATTRIBUTE_PARTS}.get(block, (block,))
        rows = [d for d in details if d["task"] != "generative" and (members is None or d["task"] in members)]
        groups[block] = {**figures, "questions": len(rows),
                         "not_yes_no": sum(d["answer"] not in ("Yes", "No") for d in rows)}
    return groups


def _coverage_notes(evaluation, dims, ordered, responses, scored, matches, answers) -> list[str]:
    """Notes on what was (not) answered, repeated, or would be looked up differently by the reference."""
    notes = []
    if answers:
        odd = sum(response not in ("Yes", "No") for _, _, response in answers)
        notes.append(
            f"A yes/no answer counts only if it is exactly \"Yes\" or \"No\" (no stripping or lower-casing, as the "
            f"reference); {odd} of {len(answers)} answers here are neither and are scored wrong (and never as a "
            "\"No\" prediction). \"No\" is the positive class of precision / recall / F1."
        )
    wanted = [r["id"] for r in ordered if dimension(r["type"]) in dims]
    answered = {row["id"] for row in scored}
    if len(answered) < len(wanted):
        notes.append(f"{len(wanted) - len(answered)} of the {len(wanted)} AMBER ids that evaluation {evaluation!r} "
                     "covers have no response; like the reference, figures are over the responses given.")
    if "generative" in dims and not matches:
        notes.append("No generative responses: CHAIR, Cover and Cog are 0.0 and Hal is 100.0, as the reference "
                     "prints them.")
    if set(dims) - {"generative"} and not answers:
        notes.append("No yes/no responses: the discriminative figures are 0.0, as the reference prints them.")
    if len(scored) < len(responses):
        notes.append(f"{len(responses) - len(scored)} responses belong to tasks evaluation {evaluation!r} does not "
                     "print and were not scored.")
    repeated = sorted(i for i, n in Counter(row["id"] for row in scored).items() if n > 1)
    if repeated:
        notes.append(f"Ids answered more than once are counted each time, as the reference does: {repeated[:10]}.")
    misplaced = [row["id"] for row in scored
                 if not (0 < row["id"] <= len(ordered) and ordered[row["id"] - 1]["id"] == row["id"])]
    if misplaced:
        notes.append(f"The reference looks annotations up by position (annotations[id - 1]); in this annotations.json "
                     f"that is not the record with that id for {len(misplaced)} responses (e.g. id {misplaced[0]}), "
                     "so the reference would score them against other records; mmpo looks them up by id.")
    return notes


def evaluate_amber(
    responses_path: str,
    amber_dir: str,
    evaluation: str = "a",
    *,
    similarity_score: float = SIMILARITY_SCORE,
    label: str = "",
) -> EvalResult:
    """Score ``responses_path`` as ``inference.py --evaluation_type evaluation`` would.

    The reference tallies every response but prints only the blocks ``evaluation`` selects,
    and each block depends only on responses of its own dimensions; so only those responses
    are scored here (and appear in ``details``), which gives the same figures. The
    generative figures are named ``chair`` / ``cover`` / ``hal`` / ``cog`` when spaCy's
    ``en_core_web_lg`` is installed, ``*_exact`` (vector-free) otherwise."""
    dims = selected_dimensions(evaluation)
    folder = data_dir(amber_dir)
    annotations_path = os.path.join(folder, "annotations.json")
    ordered, annotations = load_annotations(annotations_path)
    association = load_association(os.path.join(folder, "relation.json"))
    safe_words = load_safe_words(os.path.join(folder, "safe_words.txt"))
    start = load_metrics_start(os.path.join(folder, "metrics.txt"))
    responses = load_responses(responses_path)
    for i, row in enumerate(responses):
        if row["id"] not in annotations:
            raise ValueError(f"{responses_path}: row {i}: id {row['id']} is not in {annotations_path}")
    scored = [row for row in responses if dimension(annotations[row["id"]]["type"]) in dims]

    notes = [PERCENT_NOTE]
    inputs: dict[str, Any] = {"responses": responses_path, "amber_data": folder, "evaluation": evaluation,
                              "tasks": list(EVALUATIONS[evaluation])}
    similar = spacy_similarity(similarity_score) if "generative" in dims else None
    faithful = similar is not None
    if "generative" in dims:
        inputs["similarity"] = (f"spaCy {SPACY_MODEL} similarity > {similarity_score}" if faithful
                                else "exact string match (vector-free)")
        if not faithful:
            notes.append(_vector_free_note(similarity_score))
    details, matches, answers = _score(scored, annotations, annotations_path, association, safe_words,
                                       similar or exact_match, _questions(folder))

    blocks = printed_figures(count(matches, answers, start), evaluation)
    suffix = "" if faithful else "_exact"
    metrics: dict[str, float | int] = {}
    if "generative" in blocks:
        metrics.update({f"{k}{suffix}": v for k, v in blocks["generative"].items()})
    if "discriminative" in blocks:
        metrics.update(blocks["discriminative"])
    elif evaluation in HEADLINE:
        metrics.update({f"{HEADLINE[evaluation]}_{k}": v for k, v in blocks[HEADLINE[evaluation]].items()})

    notes += _coverage_notes(evaluation, dims, ordered, responses, scored, matches, answers)
    if matches:
        inputs["nlp"] = nlp.backend()
        if "textblob" in inputs["nlp"]["pos_tags"]:
            notes.append("POS tags from textblob-aptagger's weights (nltk's tagger data is not installed): a rare "
                         "word tagged differently can gain or lose a noun (NN*) tag and so become or stop being an "
                         "object; install nltk's averaged_perceptron_tagger_eng for the reference's exact tagger.")
    return EvalResult(benchmark="amber", metrics=metrics, groups=_groups(blocks, details, matches, suffix),
                      details=details, notes=notes, inputs=inputs, label=label)
