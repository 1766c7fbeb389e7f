"""POPE scoring (Li et al. 2023, "Evaluating Object Hallucination in Large Vision-Language
Models", arXiv 2305.10355), as its reference script RUCAIBox/POPE ``evaluate.py`` does it.

Each free-text answer is reduced to "yes" or "no" by :func:`parse_pope_answer`, then the
yes/no predictions are scored against the labels as binary classification with **"yes" as
the positive class** (:func:`pope_scores`).

Checked against the reference's copies in CircleRadon/Osprey ``osprey/eval/pope/evaluate.py``,
haotian-liu/LLaVA ``llava/eval/eval_pope.py`` and llava-rlhf/LLaVA-RLHF
``Eval/summarize_eval_pope.py`` (the same parsing and counting, line for line). Variants we
do *not* follow: shikiw/OPERA ``pope_eval.py`` deletes every "." instead of cutting at the
first, and also counts "NO" and words ending in "n't" as no; lmms-eval's ``pope`` task
compares the lower-cased answer with the label exactly and takes yes-ratio from the labels.
"""

from __future__ import annotations

from collections.abc import Sequence

NEGATIVE_WORDS = frozenset({"No", "not", "no"})  # case-sensitive, as in the reference
ANSWERS = ("yes", "no")


def parse_pope_answer(text: str) -> str:
    """"no" if the answer's first sentence holds the word "No", "not" or "no", else "yes".

    The reference's rule, quirks included: keep the text before the first ".", delete ",",
    split on single spaces (not on newlines or tabs) and look for those three exact words.
    So an empty answer is "yes", "Yes. No." is "yes", and "NO", "Not", "Nope", "No!" and
    "I don't think so" are all "yes".

    >>> parse_pope_answer("No, there is no dog."), parse_pope_answer("Yes. No.")
    ('no', 'yes')
    >>> parse_pope_answer(""), parse_pope_answer("NO")
    ('yes', 'yes')
    """
    first_sentence = text.split(".", 1)[0]
    words = first_sentence.replace(",", "").split(" ")
    return "no" if any(word in NEGATIVE_WORDS for word in words) else "yes"


def _fraction(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def pope_scores(predictions: Sequence[str], labels: Sequence[str]) -> dict[str, float | int]:
    """Accuracy, precision, recall, F1 and yes-ratio of parsed yes/no ``predictions``.

    ``predictions`` and ``labels`` are "yes"/"no" strings of equal length (parse raw answers
    with :func:`parse_pope_answer` first). Rates are fractions; ``yes_ratio`` is the share of
    *predictions* that are "yes". Where the reference would divide by zero (no "yes"
    prediction: precision; no "yes" label: recall; neither right: F1) the figure is 0.0,
    as lmms-eval and scikit-learn report it; :func:`undefined_scores` names them.

    >>> pope_scores(["yes", "yes", "no", "no"], ["yes", "no", "no", "yes"])["precision"]
    0.5
    """
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels; they must pair up one to one")
    if not labels:
        raise ValueError("no predictions to score")
    for name, values in (("predictions", predictions), ("labels", labels)):
        odd = next((v for v in values if v not in ANSWERS), None)
        if odd is not None:
            hint = "; parse answers with parse_pope_answer first" if name == "predictions" else ""
            raise ValueError(f"{name} must be 'yes' or 'no', got {odd!r}{hint}")
    pairs = list(zip(predictions, labels))
    tp = pairs.count(("yes", "yes"))
    fp = pairs.count(("yes", "no"))
    tn = pairs.count(("no", "no"))
    fn = pairs.count(("no", "yes"))
    precision, recall = _fraction(tp, tp + fp), _fraction(tp, tp + fn)
    return {
        "accuracy": (tp + tn) / len(pairs),
        "precision": precision,
        "recall": recall,
        "f1": _fraction(2 * precision * recall, precision + recall),
        "yes_ratio": (tp + fp) / len(pairs),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "n": len(pairs),
    }


def undefined_scores(scores: dict[str, float | int]) -> list[str]:
    """The figures of :func:`pope_scores` that are 0.0 only because their denominator is 0
    (the reference script raises ZeroDivisionError on these)."""
    tp, fp, fn = scores["tp"], scores["fp"], scores["fn"]
    undefined = [name for name, whole in (("precision", tp + fp), ("recall", tp + fn)) if whole == 0]
    if tp == 0:  # precision + recall == 0
        undefined.append("f1")
    return undefined
