"""COCO files → CHAIR records: ``mmpo eval chair`` and ``mmpo eval object-halbench``.

Ground truth per image, as the reference script builds it: the categories of its instance
annotations (``instances_{train,val}2014.json``) ∪ the objects parsed, by the same rules as
the answers, from its reference captions (``captions_{train,val}2014.json``). Only the
captions of the images being scored are parsed (the reference parses all 600k; the figures
are the same).

Answers: a JSON list or JSONL of ``{"image_id", "caption"}`` (the OPERA script's keys, which
``caption_key`` / ``image_id_key`` change). ``image_id`` may be the COCO id as a number or
string, or a COCO file name (``COCO_val2014_000000397133.jpg``). Object HalBench answer files
from RLHF-V / RLAIF-V (``image_id``, ``question``/``prompt``, ``text``/``answer``, an
"Assistant:" prefix stripped) are read as they are.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable

from mmpo.data.loaders import read_json_lines
from mmpo.data.schema import DataError
from mmpo.eval import nlp
from mmpo.eval.metrics.chair import chair_scores, node_words, objects_from_list, score_caption, score_objects, vocabulary
from mmpo.eval.result import EvalResult

SPLITS = ("train", "val")
_COCO_NAME = re.compile(r"(?:^|[^0-9])0*([0-9]+)\.(?:jpg|jpeg|png)$", re.IGNORECASE)
VARIANT_NOTE = (
    "CHAIR as in OPERA's chair.py (tokenize, POS-tag, WordNet-lemmatize; synonym list and special "
    "cases as the reference, typos included); rates are fractions, the reference prints them x100."
)


def _read_json(path: str, what: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: {what} is not valid JSON ({err})") from None


def coco_image_id(value, location: str, field: str) -> int:
    """A COCO image id from an int, a digit string or a COCO file name."""
    if isinstance(value, bool) or value is None:
        raise DataError(location, field, f"must be a COCO image id, got {value!r}", "bad_image_id")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        match = _COCO_NAME.search(os.path.basename(text))
        if match:
            return int(match.group(1))
    raise DataError(location, field, f"must be a COCO image id (a number or a COCO file name), got {value!r}",
                    "bad_image_id")


def annotation_files(coco_annotations: str, coco_captions: Iterable[str] | None) -> tuple[list[str], list[str]]:
    """(instance files, caption files) to read. A folder gives every ``instances_{train,val}2014.json``
    and (unless caption files are named) ``captions_{train,val}2014.json`` in it; a file is
    an instances file."""
    if os.path.isdir(coco_annotations):
        instances = [os.path.join(coco_annotations, f"instances_{s}2014.json") for s in SPLITS]
        instances = [p for p in instances if os.path.isfile(p)]
        if not instances:
            raise FileNotFoundError(f"{coco_annotations}: no instances_train2014.json or instances_val2014.json "
                                    "(COCO 2014 'annotations' folder expected)")
        captions = list(coco_captions) if coco_captions else [
            p for p in (os.path.join(coco_annotations, f"captions_{s}2014.json") for s in SPLITS) if os.path.isfile(p)]
    elif os.path.isfile(coco_annotations):
        instances, captions = [coco_annotations], list(coco_captions or [])
    else:
        raise FileNotFoundError(f"COCO annotations not found: {coco_annotations}")
    return instances, captions


def _annotations(path: str, what: str) -> tuple[list, list, dict]:
    data = _read_json(path, what)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise ValueError(f"{path}: not a COCO {what} file (no 'annotations' list)")
    return data["annotations"], data.get("images") or [], data


def load_coco_truth(
    coco_annotations: str, coco_captions: Iterable[str] | None = None, image_ids: set[int] | None = None,
) -> tuple[dict[int, set[str]], set[int], list[str]]:
    """Ground-truth categories per image id (restricted to ``image_ids`` when given), every
    image id the files know, and the files read."""
    instance_files, caption_files = annotation_files(coco_annotations, coco_captions)
    node_of = vocabulary().node_of
    truth: dict[int, set[str]] = {}
    known: set[int] = set()
    wanted = (lambda i: True) if image_ids is None else image_ids.__contains__
    for path in instance_files:
        annotations, images, data = _annotations(path, "instances")
        if not isinstance(data.get("categories"), list):
            raise ValueError(f"{path}: not a COCO instances file (no 'categories' list)")
        names = {c["id"]: c["name"] for c in data["categories"]}
        known.update(img["id"] for img in images)
        for k, ann in enumerate(annotations):
            imid = ann.get("image_id")
            known.add(imid)
            if wanted(imid):
                name = names.get(ann.get("category_id"))
                if name not in node_of:
                    raise ValueError(f"{path}: annotations[{k}]: category_id {ann.get('category_id')!r} is not a "
                                     "COCO category of this file")
                truth.setdefault(imid, set()).add(node_of[name])
    for path in caption_files:
        annotations, images, _ = _annotations(path, "captions")
        known.update(img["id"] for img in images)
        for k, ann in enumerate(annotations):
            imid = ann.get("image_id")
            known.add(imid)
            if wanted(imid):
                if not isinstance(ann.get("caption"), str):
                    raise ValueError(f"{path}: annotations[{k}]: 'caption' must be a string")
                truth.setdefault(imid, set()).update(node_words(ann["caption"]))
    return truth, known, instance_files + caption_files


def load_answers(path: str, image_id_key: str = "image_id", caption_key: str = "caption") -> list[dict]:
    """``[{"location", "image_id", "caption", "question"?}]`` from a JSON list or JSONL file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"captions file not found: {path}")
    if path.endswith(".json"):
        data = _read_json(path, "captions file")
        if not isinstance(data, list):
            raise ValueError(f"{path}: a JSON list of {{{image_id_key!r}, {caption_key!r}}} objects is expected")
        rows = [(f"{path}: item {k}", obj) for k, obj in enumerate(data)]
    else:
        rows = list(read_json_lines(path))
    out = []
    for location, obj in rows:
        if isinstance(obj, DataError):
            raise obj
        if not isinstance(obj, dict):
            raise DataError(location, None, f"must be a JSON object, got {type(obj).__name__}", "wrong_type")
        text_key = next((k for k in (caption_key, "text", "answer") if k in obj), None)
        if text_key is None:
            raise DataError(location, caption_key, "is missing (the answer text; 'text' and 'answer' are read too)",
                            "missing_field")
        if not isinstance(obj[text_key], str):
            raise DataError(location, text_key, f"must be a string, got {type(obj[text_key]).__name__}", "wrong_type")
        if image_id_key not in obj:
            raise DataError(location, image_id_key, "is missing", "missing_field")
        caption = obj[text_key] if text_key == caption_key else obj[text_key].replace("Assistant:", "").strip()
        row = {"location": location, "image_id": coco_image_id(obj[image_id_key], location, image_id_key),
               "caption": caption}
        for key in ("question", "prompt", "image"):
            if isinstance(obj.get(key), str) and not obj[key].startswith("data:"):
                row[key] = obj[key]
        row["id"] = str(obj.get("id", obj.get("question_id", row["image_id"])))
        out.append(row)
    if not out:
        raise ValueError(f"{path}: holds no captions")
    return out


def evaluate_chair(
    captions: str, coco_annotations: str, coco_captions: Iterable[str] | None = None, *,
    image_id_key: str = "image_id", caption_key: str = "caption", benchmark: str = "chair", label: str = "",
    extractor: Callable[[str, str], tuple[list[str], str | None]] | None = None,
) -> EvalResult:
    """CHAIR_s / CHAIR_i / recall of the answers in ``captions`` against COCO's annotations.

    ``extractor(question, answer) → (object names, judge reply)`` replaces the parse of the
    answer's words by an extracted object list (Object HalBench's LLM extraction)."""
    answers = load_answers(captions, image_id_key, caption_key)
    ids = {a["image_id"] for a in answers}
    truth, known, files = load_coco_truth(coco_annotations, coco_captions, ids)
    for a in answers:
        if a["image_id"] not in known:
            raise DataError(a["location"], image_id_key, f"image {a['image_id']} is not in the COCO annotations "
                            f"({', '.join(files)})", "unknown_image")
    reports, truths, details = [], [], []
    for a in answers:
        gt = truth.get(a["image_id"], set())
        if extractor is None:
            report, extra = score_caption(a["caption"], gt), {}
        else:
            names, reply = extractor(a.get("question") or a.get("prompt") or "", a["caption"])
            report, extra = score_objects(objects_from_list(names), gt), {"extracted_objects": names, "judge_reply": reply}
        reports.append(report)
        truths.append(gt)
        details.append({
            "id": a["id"], "image_id": a["image_id"], **({"image": a["image"]} if "image" in a else {}),
            **({"prompt": a.get("question") or a.get("prompt")} if a.get("question") or a.get("prompt") else {}),
            "answer": a["caption"],
            "hallucinated": report.hallucinated_surface,
            "mscoco_hallucinated_words": [list(pair) for pair in report.hallucinated],
            "mscoco_generated_words": report.generated,
            "mscoco_gt_words": sorted(gt),
            "hallucination_idxs": report.hallucination_idxs,
            "metrics": {"CHAIRs": report.chair_s, "CHAIRi": report.chair_i,
                        "Recall": len(report.recalled) / len(gt) if gt else 0.0},
            **extra,
        })
    notes = [VARIANT_NOTE]
    if extractor is not None:
        notes.append("objects extracted by an LLM judge as in RLAIF-V's Object HalBench, then mapped with OPERA's "
                     "synonym list and mmpo's offline lemmatizer (RLAIF-V: its refined list and spaCy); an "
                     "unparseable judge reply counts as no objects (RLAIF-V retries it).")
        failed = sum(1 for d in details if d.get("judge_reply") is not None and not d["extracted_objects"])
        if failed:
            notes.append(f"{failed} judge replies listed no objects or could not be read.")
    backend = nlp.backend()
    if "textblob" in backend["pos_tags"]:
        notes.append("POS tags from textblob-aptagger's weights (nltk's tagger data is not installed): a rare "
                     "plural tagged differently can change a lemma; install nltk's averaged_perceptron_tagger_eng "
                     "for the reference's exact tagger.")
    return EvalResult(
        benchmark=benchmark, label=label, metrics=chair_scores(reports, truths), details=details, notes=notes,
        inputs={"captions": captions, "annotation_files": files, "nlp": backend},
    )
