"""CHAIR object-hallucination metrics for shapes-world captions.

Follows CHAIR (Rohrbach et al. 2018, "Object Hallucination in Image Captioning",
arXiv:1809.02156): an object a caption mentions but the image does not contain is
hallucinated. CHAIR-s is the fraction of captions with at least one hallucinated object,
CHAIR-i the fraction of mentioned objects that are hallucinated. Cover (object recall, as
reported alongside CHAIR in later work) is the fraction of ground-truth objects mentioned.

In the shapes world an object is a (shape, colour) pair, mentioned as an adjacent
"<colour> <shape>" phrase ("a red circle", "two blue stars"). Because scenes are drawn by
:mod:`mmpo.shapes.world`, the ground truth is exact and needs no synonym lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mmpo.shapes.world import COLORS, SHAPES, ShapeObject

Pair = tuple[str, str]  # (shape, colour)
Truth = Sequence[ShapeObject | Mapping[str, Any]]

_MENTION = re.compile(
    rf"\b({'|'.join(COLORS)})\s+({'|'.join(SHAPES)})(?:e?s)?\b",
    re.IGNORECASE,
)


def mentioned_objects(text: str) -> set[Pair]:
    """The distinct (shape, colour) pairs ``text`` mentions as "<colour> <shape>" phrases.

    Case-insensitive, whole words only ("reddish circle" mentions nothing), singular or
    plural shape ("circles"); the colour must directly precede the shape.
    """
    return {(shape.lower(), color.lower()) for color, shape in _MENTION.findall(text)}


def truth_pairs(truth: Truth) -> set[Pair]:
    """Ground-truth (shape, colour) pairs from ShapeObjects or dicts with "shape" and "color"."""
    return {(o.shape, o.color) if isinstance(o, ShapeObject) else (o["shape"], o["color"]) for o in truth}


def _names(pairs: set[Pair]) -> list[str]:
    return sorted(f"{color} {shape}" for shape, color in pairs)


def caption_report(text: str, truth: Truth) -> dict[str, list[str]]:
    """One caption against its scene: sorted "colour shape" names of the objects it
    ``mentioned``, those of them that are ``hallucinated``, and the ground truth it ``missed``."""
    mentioned, present = mentioned_objects(text), truth_pairs(truth)
    return {
        "mentioned": _names(mentioned),
        "hallucinated": _names(mentioned - present),
        "missed": _names(present - mentioned),
    }


def _fraction(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def chair(captions: Sequence[str], truths: Sequence[Truth]) -> dict[str, float | int]:
    """CHAIR-s, CHAIR-i and cover over paired captions and ground truths.

    Mentions are counted once per distinct object per caption. Every fraction is 0.0 when
    its denominator is zero (no captions, no mentions, no ground-truth objects).
    """
    if len(captions) != len(truths):
        raise ValueError(f"{len(captions)} captions but {len(truths)} ground truths")
    n_mentions = n_hallucinated = n_truth = n_recalled = n_bad_captions = 0
    for text, truth in zip(captions, truths):
        mentioned, present = mentioned_objects(text), truth_pairs(truth)
        hallucinated = len(mentioned - present)
        n_mentions += len(mentioned)
        n_hallucinated += hallucinated
        n_bad_captions += hallucinated > 0
        n_truth += len(present)
        n_recalled += len(mentioned & present)
    return {
        "chair_s": _fraction(n_bad_captions, len(captions)),
        "chair_i": _fraction(n_hallucinated, n_mentions),
        "cover": _fraction(n_recalled, n_truth),
        "n_captions": len(captions),
        "n_mentions": n_mentions,
        "n_hallucinated": n_hallucinated,
    }
