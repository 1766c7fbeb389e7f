"""Object HalBench's optional LLM object extraction (RLAIF-V ``eval_gpt_obj_halbench.py``):
a judge model lists the objects an answer mentions, and those names, not the answer's
words, are mapped to COCO categories for CHAIR.

As in the reference: one system message holding its extraction prompt (question and
answer filled in); answers of at most three words get an empty list without a request;
the reply's list is read from a fenced ``json`` block, else from its last line when it
holds ``["``; each name is lemmatized (prefixed with "a ", as the reference does before
parsing), two-word COCO objects are taken when the name has any, else its runs of nouns;
duplicates are dropped. Where mmpo differs, and says so in the result: the reference
lemmatizes with spaCy's ``en_core_web_trf`` (a download) where mmpo uses its offline
tokenize → tag → WordNet pipeline, maps with RLAIF-V's refined synonym list where mmpo
uses OPERA's, and retries an unparseable reply up to 100 times where mmpo records it
as an extraction failure (a temperature-0 judge would repeat itself).
"""

from __future__ import annotations

import json
import re

from mmpo.eval import nlp
from mmpo.eval.judge import JudgeCache, JudgeClient
from mmpo.eval.metrics.chair import vocabulary

EXTRACTION_TEMPLATE = """You are an expert in image objects extraction according to a question answer pair. We asked an examiner to answer a question about a picture.

[Start of Question]

<image> {question}

[End of Question]

[Start of Examiner's Answer]

{answer}

[End of Examiner's Answer]


Assume that the answer is correct, please identify all visible objects that are directly shown in the image. Please following the instructions in below:

1. You should only mention objects that are explicitly mentioned in the examiner's answer.
2. You should only extract the object names without the attributes of the objects.
3. You should not include the properties of the object, like the color, material, etc. as part of the object name in your result.
4. Make your answer precise. Present the results in a JSON list format: ["object_1", ..., "object_n"].
5. You should return an empty JSON list () if no visible objects can be found.
"""
_FENCED = re.compile(r"```json\n(.*?)\n```", re.DOTALL)
NOUN_TAGS = ("NN", "NNS", "NNP", "NNPS")


def extraction_messages(question: str, answer: str) -> list[dict]:
    prompt = EXTRACTION_TEMPLATE.replace("{question}", question).replace("{answer}", answer)
    return [{"role": "system", "content": prompt}]


def parse_object_list(reply: str) -> list[str] | None:
    """The object names in a judge reply, or None when it holds no readable JSON list."""
    match = _FENCED.search(reply)
    candidates = [match.group(1)] if match else []
    if '["' in reply:
        candidates.append(reply.strip().split("\n")[-1])
    for text in candidates:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(value, list):
            return [str(v) for v in value]
    return None


def coco_names(objects: list[str]) -> list[str]:
    """Lemmatized names of extracted objects: the two-word COCO objects in a name when it has
    any, else its runs of nouns; each name once, in order."""
    double = vocabulary().double_words
    names: list[str] = []
    for text in objects:
        tagged = nlp.pos_tag(nlp.word_tokenize(f"a {text}".lower()))
        lemmas = [nlp.lemmatize(w, "n" if t.startswith("N") else {"J": "a", "V": "v", "R": "r"}.get(t[:1], "n"))
                  for w, t in tagged]
        found, i = [], 0
        while i < len(lemmas):
            pair = " ".join(lemmas[i : i + 2])
            if pair in double:
                found.append(double[pair])
                i += 2
            else:
                i += 1
        if not found:
            run: list[str] = []
            for lemma, (_, tag) in zip(lemmas, tagged):
                if tag in NOUN_TAGS:
                    run.append(lemma)
                elif run:
                    found.append(" ".join(run))
                    run = []
            if run:
                found.append(" ".join(run))
        names += [n for n in found if n not in names]
    return names


def extract_objects(question: str, answer: str, client: JudgeClient, cache: JudgeCache | None) -> tuple[list[str], str | None]:
    """(COCO-mappable names, the judge's reply) for one answer; the reply is None when no
    request was needed (≤ 3 words) and the names are [] when the reply held no list."""
    if len(answer.strip().split()) <= 3:
        return [], None
    reply = client.complete(extraction_messages(question, answer), cache=cache)
    objects = parse_object_list(reply)
    return (coco_names(objects) if objects is not None else []), reply
