"""AMBER hallucination scores, computed as the benchmark's own ``inference.py`` computes them.

AMBER (Wang et al. 2023, "An LLM-free Multi-dimensional Benchmark for MLLMs Hallucination
Evaluation", arXiv:2311.07397; junyangwang0410/AMBER) has a generative task (describe the
image) and yes/no questions on existence, attribute (state / number / action) and relation.

Generative, per caption: the nouns (``word_tokenize`` → ``pos_tag`` → tags ``NN*`` →
WordNet noun lemma, the word *not* lower-cased) that occur in the object vocabulary of
``relation.json`` (its keys and their association lists) are the caption's objects. Each is

* skipped if it is one of ``safe_words.txt`` (still counted as an object);
* a true mention if it is one of the annotation's ``truth`` objects or their associations
  ("ground" for grass): it covers the first truth object whose entry matches;
* otherwise it marks the hallucination targets (``hallu`` and their associations) it
  matches, exactly or by similarity, for Cog; and it is *hallucinated* unless it is similar
  to a truth object or association (which it then covers).

The reference's similarity is spaCy ``en_core_web_lg`` ``Doc.similarity > 0.8``; here it is
the ``similar`` argument (:func:`exact_match` by default). Over all captions::

    CHAIR = hallucinated objects / objects                      (each occurrence counts)
    Cover = truth objects covered / truth objects
    Hal   = 100 - captions without a hallucinated object / captions
    Cog   = hallucination targets mentioned / hallucination targets

Discriminative: an answer is correct only if it is exactly ``"Yes"`` (truth "yes") or
exactly ``"No"`` (truth "no") — no stripping, no lower-casing. "No" is the positive class:
precision = correct "No" answers / "No" answers, recall = correct "No" answers / questions
whose truth is "no".

Every figure is the reference's: its counters (named as in its ``metrics.txt``) start where
that file sets them (denominators at 0.001, so nothing divides by zero), figures are
percentages rounded to one decimal, and F1 is computed from the *rounded* precision and
recall with 0.0001 (0.001 for existence) added to the denominator.
:mod:`mmpo.eval.benchmarks.amber` reads AMBER's files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from mmpo.eval import nlp

Similar = Callable[[str, str], bool]

# data/metrics.txt of the reference: the starting value of every counter it keeps.
METRICS_START: dict[str, float] = {
    name + suffix: (0.001 if suffix == "_num" else 0)
    for name in ("chair", "safe_cover", "hallu_cover", "non_hallu",
                 *(f"{p}qa_{what}" for p in ("", "as_", "an_", "aa_", "asso_", "ha_")
                   for what in ("correct", "no", "ans_no")))
    for suffix in ("_score", "_num")
}

# annotation "type" → (dimension, counter prefix); any other non-generative type is relation
# (the reference's `else` branch: the file uses both "relation" and "discriminative-relation").
DIMENSIONS = {
    "discriminative-hallucination": ("existence", "ha_"),
    "discriminative-attribute-state": ("state", "as_"),
    "discriminative-attribute-number": ("number", "an_"),
    "discriminative-attribute-action": ("action", "aa_"),
}
RELATION = ("relation", "asso_")
ATTRIBUTE_PARTS = ("state", "number", "action")

# --evaluation_type → what inference.py prints: "g" generative, "de"/"da"/"dr" one
# discriminative dimension each, "d" all three (which adds the overall discriminative block).
EVALUATIONS = {
    "a": ("g", "de", "da", "dr"),
    "g": ("g",),
    "d": ("de", "da", "dr"),
    "de": ("de",),
    "da": ("da",),
    "dr": ("dr",),
}
TASK_DIMENSIONS = {"g": ("generative",), "de": ("existence",), "da": ATTRIBUTE_PARTS, "dr": ("relation",)}


def exact_match(word1: str, word2: str) -> bool:
    """The vector-free similarity: two words are similar only when they are equal."""
    return word1 == word2


def dimension(annotation_type: str) -> str:
    """``"generative"``, ``"existence"``, ``"state"``, ``"number"``, ``"action"`` or
    ``"relation"`` for an annotation's ``type``, as the reference's if/elif chain decides."""
    if annotation_type == "generative":
        return "generative"
    return DIMENSIONS.get(annotation_type, RELATION)[0]


def selected_dimensions(evaluation: str) -> tuple[str, ...]:
    """The dimensions whose figures ``--evaluation_type evaluation`` prints."""
    if evaluation not in EVALUATIONS:
        raise ValueError(f"AMBER evaluation must be one of {sorted(EVALUATIONS)}, got {evaluation!r}")
    return tuple(d for task in EVALUATIONS[evaluation] for d in TASK_DIMENSIONS[task])


def object_vocabulary(association: Mapping[str, Sequence[str]]) -> set[str]:
    """Every object AMBER knows: the keys of ``relation.json`` and their association lists."""
    return {word for key, words in association.items() for word in (key, *words)}


def caption_objects(text: str, vocabulary: set[str]) -> list[str]:
    """The caption's nouns, lemmatized as WordNet nouns, that are in ``vocabulary``, in order
    with repeats. Like the reference, words are not lower-cased: a sentence-initial "Dogs"
    stays "Dogs" and is no object."""
    tagged = nlp.pos_tag(nlp.word_tokenize(text))
    return [lemma for lemma in (nlp.lemmatize(word) for word, tag in tagged if tag.startswith("NN")) if lemma in vocabulary]


@dataclass
class CaptionMatch:
    """One caption against its annotation.

    ``objects``: the caption's objects (:func:`caption_objects`); ``hallucinated``: those
    counted as hallucinated, in order; ``covered``: one flag per ``truth`` entry;
    ``cog``: one flag per ``hallu`` entry (mentioned hallucination targets)."""

    objects: list[str]
    hallucinated: list[str]
    covered: list[bool]
    cog: list[bool]


def _targets(objects: Sequence[str], association: Mapping[str, Sequence[str]]) -> tuple[list[str], list[int]]:
    """The reference's word list and flag list for a truth (or hallu) list of n objects:
    ``words`` = every object's associations, then the n objects; ``flags`` = the index of the
    object each association belongs to, then n zeros — the last n entries are the objects'
    flags, set to 1 when the object is matched."""
    words, flags = [], []
    for i, obj in enumerate(objects):
        words += association[obj]
        flags += [i] * len(association[obj])
    return words + list(objects), flags + [0] * len(objects)


def _mark(flags: list[int], j: int, n: int) -> None:
    """Word j matched: set the flag of its object (itself, or the object it is an association of)."""
    if j < len(flags) - n:
        flags[flags[j] + len(flags) - n] = 1
    else:
        flags[j] = 1


def match_caption(
    objects: Sequence[str],
    truth: Sequence[str],
    hallu: Sequence[str],
    association: Mapping[str, Sequence[str]],
    safe_words: Iterable[str],
    similar: Similar = exact_match,
) -> CaptionMatch:
    """Score one caption's ``objects`` against its annotation, step for step as inference.py.

    Matching takes the *first* entry of the word list equal to (or similar to) the object, and
    associations come before the objects themselves, so with truth ["person", "man"] the word
    "man" covers "person" (it is one of person's associations) and never "man"; a truth list
    with an object twice can only ever cover the first. Every object in ``truth`` and ``hallu``
    must be a key of ``association`` (the reference raises KeyError otherwise)."""
    safe_words = set(safe_words)
    truth_words, truth_flags = _targets(truth, association)
    hallu_words, hallu_flags = _targets(hallu, association)
    n_truth, n_hallu = len(truth), len(hallu)
    hallucinated = []
    for obj in objects:
        if obj in safe_words:
            continue
        if obj in truth_words:
            _mark(truth_flags, truth_words.index(obj), n_truth)
            continue
        if obj in hallu_words:
            _mark(hallu_flags, hallu_words.index(obj), n_hallu)
        for j, word in enumerate(hallu_words):
            if similar(obj, word):
                _mark(hallu_flags, j, n_hallu)
                break
        for j, word in enumerate(truth_words):
            if similar(obj, word):
                _mark(truth_flags, j, n_truth)
                break
        else:
            hallucinated.append(obj)
    # the reference's slices [-n:]: with n = 0 the list is empty too (no objects, no associations)
    return CaptionMatch(list(objects), hallucinated,
                        [bool(f) for f in truth_flags[-n_truth:]] if n_truth else [],
                        [bool(f) for f in hallu_flags[-n_hallu:]] if n_hallu else [])


def answer_correct(response: str, truth: str) -> bool:
    """Exactly "Yes" for truth "yes", exactly "No" otherwise ("yes", "No.", " No" are wrong)."""
    return response == "Yes" if truth == "yes" else response == "No"


def tally_caption(counters: dict[str, float], match: CaptionMatch) -> None:
    """Add one caption to the generative counters, as the reference does."""
    counters["chair_score"] += len(match.hallucinated)
    counters["chair_num"] += len(match.objects)
    counters["safe_cover_score"] += sum(match.covered)
    counters["safe_cover_num"] += len(match.covered)
    counters["hallu_cover_score"] += sum(match.cog)
    counters["hallu_cover_num"] += len(match.cog)
    if not match.hallucinated:
        counters["non_hallu_score"] += 1
    counters["non_hallu_num"] += 1


def tally_answer(counters: dict[str, float], annotation_type: str, truth: str, response: str) -> None:
    """Add one yes/no answer to the overall counters and to its dimension's."""
    _, prefix = DIMENSIONS.get(annotation_type, RELATION)
    for p in ("", prefix):
        counters[p + "qa_correct_num"] += 1
        if truth != "yes":
            counters[p + "qa_no_num"] += 1
        if response == "No":
            counters[p + "qa_ans_no_num"] += 1
        if answer_correct(response, truth):
            counters[p + "qa_correct_score"] += 1
            if truth != "yes":
                counters[p + "qa_no_score"] += 1
        if response == "No" and truth == "no":
            counters[p + "qa_ans_no_score"] += 1


def count(
    captions: Iterable[CaptionMatch],
    answers: Iterable[tuple[str, str, str]],
    start: Mapping[str, float] = METRICS_START,
) -> dict[str, float]:
    """The reference's counters after all ``captions`` and all ``answers``
    (``(annotation type, truth, response)`` triples), each added in order from ``start``."""
    counters = dict(start)
    for match in captions:
        tally_caption(counters, match)
    for annotation_type, truth, response in answers:
        tally_answer(counters, annotation_type, truth, response)
    return counters


def _percent(score: float, num: float) -> float:
    return round(score / num * 100, 1)


def _f1(precision: float, recall: float, eps: float) -> float:
    return round(2 * (precision / 100) * (recall / 100) / ((precision / 100) + (recall / 100) + eps) * 100, 1)


def _yes_no(c: Mapping[str, float], prefixes: Sequence[str], eps: float = 0.0001) -> dict[str, float]:
    def ratio(score: str, num: str) -> float:
        return _percent(sum(c[p + score] for p in prefixes), sum(c[p + num] for p in prefixes))

    precision = ratio("qa_ans_no_score", "qa_ans_no_num")
    recall = ratio("qa_no_score", "qa_no_num")
    return {"accuracy": ratio("qa_correct_score", "qa_correct_num"), "precision": precision,
            "recall": recall, "f1": _f1(precision, recall, eps)}


def printed_figures(counters: Mapping[str, float], evaluation: str = "a") -> dict[str, dict[str, float]]:
    """What inference.py prints for ``--evaluation_type evaluation``, by block:
    ``generative`` {chair, cover, hal, cog}; ``discriminative`` (with "a"/"d"), ``existence``,
    ``attribute``, ``state``, ``number``, ``action``, ``relation``: {accuracy, precision,
    recall, f1}. Percentages rounded to one decimal, exactly as printed."""
    selected_dimensions(evaluation)  # checks the name
    tasks, c = EVALUATIONS[evaluation], counters
    blocks: dict[str, dict[str, float]] = {}
    if "g" in tasks:
        blocks["generative"] = {
            "chair": _percent(c["chair_score"], c["chair_num"]),
            "cover": _percent(c["safe_cover_score"], c["safe_cover_num"]),
            "hal": round(100 - c["non_hallu_score"] / c["non_hallu_num"] * 100, 1),
            "cog": _percent(c["hallu_cover_score"], c["hallu_cover_num"]),
        }
    if {"de", "da", "dr"} <= set(tasks):
        blocks["discriminative"] = _yes_no(c, [""])
    if "de" in tasks:
        blocks["existence"] = _yes_no(c, ["ha_"], eps=0.001)  # the reference's existence F1 alone uses 0.001
    if "da" in tasks:
        blocks["attribute"] = _yes_no(c, ["as_", "an_", "aa_"])
        blocks["state"] = _yes_no(c, ["as_"])
        blocks["number"] = _yes_no(c, ["an_"])
        blocks["action"] = _yes_no(c, ["aa_"])
    if "dr" in tasks:
        blocks["relation"] = _yes_no(c, ["asso_"])
    return blocks
