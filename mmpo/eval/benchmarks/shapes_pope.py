"""POPE yes/no object-existence probing for shapes-world scenes.

Follows POPE (Li et al. 2023, "Evaluating Object Hallucination in Large Vision-Language
Models", arXiv:2305.10355): ask "Is there a <object> in the image?" for objects that are
present (label "yes") and absent (label "no"), and score the answers as binary
classification with "yes" as the positive class. Absent objects are drawn by one of POPE's
three strategies: "random", "popular" (the most frequent objects overall) and
"adversarial" (objects likely to be confused with what is there; here, absent pairs that
share the shape or the colour of a present object).

Objects are (shape, colour) pairs of :mod:`mmpo.shapes.world`; each question is a dict
{"question", "label", "object": {"shape", "color"}}.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from mmpo.shapes.tasks import prior_temptations
from mmpo.shapes.world import COLORS, SHAPES, Scene, article

STRATEGIES = ("random", "popular", "adversarial")
_ANSWER = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


def question_text(shape: str, color: str) -> str:
    return f"Is there {article(color)} {color} {shape} in the image?"


def parse_yes_no(text: str) -> str | None:
    """"yes" or "no" when the answer's first word is yes/no (case and leading punctuation
    ignored: "Yes, there is..." → "yes", "No." → "no"); None otherwise."""
    match = _ANSWER.match(text)
    return match.group(1).lower() if match else None


def _fraction(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def pope_metrics(predictions: Sequence[str | None], labels: Sequence[str]) -> dict[str, float | int]:
    """Accuracy, precision, recall, F1 (positive class "yes") and yes-ratio of parsed answers.

    An unparsed prediction (None) is never correct, so it lowers accuracy; for precision
    and recall it counts as a "no" prediction (a missed "yes", never a false "yes"). The
    yes-ratio is the fraction of all predictions that are "yes". Fractions with a zero
    denominator are 0.0.
    """
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels")
    if bad := {label for label in labels if label not in ("yes", "no")}:
        raise ValueError(f"labels must be 'yes' or 'no', got {sorted(bad)}")
    if bad := {p for p in predictions if p not in ("yes", "no", None)}:
        raise ValueError(f"predictions must be 'yes', 'no' or None, got {sorted(bad)}")
    pairs = list(zip(predictions, labels))
    tp = sum(p == "yes" and y == "yes" for p, y in pairs)
    fp = sum(p == "yes" and y == "no" for p, y in pairs)
    fn = sum(p != "yes" and y == "yes" for p, y in pairs)
    precision, recall = _fraction(tp, tp + fp), _fraction(tp, tp + fn)
    return {
        "accuracy": _fraction(sum(p == y for p, y in pairs), len(pairs)),
        "precision": precision,
        "recall": recall,
        "f1": _fraction(2 * precision * recall, precision + recall),
        "yes_ratio": _fraction(tp + fp, len(pairs)),
        "unparsed": sum(p is None for p in predictions),
        "n": len(pairs),
    }


def _negatives(
    present: set[tuple[str, str]], rng: random.Random, k: int, strategy: str,
    popular: Sequence[tuple[str, str]] | None, scene: Scene | None = None,
) -> list[tuple[str, str]]:
    """``k`` absent (shape, colour) pairs, best first for ``strategy``, ties broken at random."""
    absent = [(s, c) for s in SHAPES for c in COLORS if (s, c) not in present]
    rng.shuffle(absent)
    if strategy == "adversarial":  # POPE: the objects that co-occur with what is there; here the priors' temptations
        tempting = {pair: i for i, pair in enumerate(prior_temptations(scene))} if scene else {}
        shapes, colors = {s for s, _ in present}, {c for _, c in present}
        absent.sort(key=lambda pair: (tempting.get(pair, len(tempting)), pair[0] not in shapes and pair[1] not in colors))
    elif strategy == "popular":
        rank = {pair: i for i, pair in enumerate(popular)}
        absent.sort(key=lambda pair: rank.get(pair, len(rank)))
    return absent[:k]


def pope_questions(
    scene: Scene, rng: random.Random, n_pos: int, n_neg: int, strategy: str = "random",
    popular: Sequence[tuple[str, str]] | None = None,
) -> list[dict]:
    """Yes/no existence questions about ``scene``, shuffled with ``rng``.

    ``n_pos`` present objects (label "yes", at most the scene's object count) and ``n_neg``
    absent (shape, colour) pairs (label "no", at most the number of absent pairs), absent
    pairs chosen by ``strategy``: "random" uniformly; "adversarial" pairs sharing the shape
    or colour of a present object first; "popular" in the order of ``popular`` ((shape,
    colour) pairs, most frequent first; unranked pairs come last, in random order).
    Pass ``n_pos == n_neg`` for POPE's balanced set; counts are capped, not rebalanced.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "popular" and popular is None:
        raise ValueError("strategy 'popular' needs the popular ranking")
    present = sorted({(o.shape, o.color) for o in scene.objects})
    positives = rng.sample(present, min(n_pos, len(present)))
    negatives = _negatives(set(present), rng, n_neg, strategy, popular, scene)
    questions = [
        {"question": question_text(shape, color), "label": label, "object": {"shape": shape, "color": color}}
        for label, pairs in (("yes", positives), ("no", negatives))
        for shape, color in pairs
    ]
    rng.shuffle(questions)
    return questions
