"""Questions about a shapes-world scene with reference answers: captions, counting,
existence (POPE-style yes/no), attributes, and a short reasoning question — every answer
needs the image."""

from __future__ import annotations

import random
from dataclasses import dataclass

from mmpo.shapes.world import COLORS, COMPANION, SHAPES, TYPICAL_COLOR, Scene, article, caption

CAPTION_PROMPT = "Describe the image."


@dataclass(frozen=True)
class Task:
    kind: str  # caption | count | exist | attribute | reasoning
    prompt: str
    answer: str


def caption_task(scene: Scene) -> Task:
    return Task("caption", CAPTION_PROMPT, caption(scene.objects))


def count_task(scene: Scene) -> Task:
    return Task("count", "How many shapes are there?", str(len(scene.objects)))


def prior_temptations(scene: Scene) -> list[tuple[str, str]]:
    """Absent (shape, colour) pairs the world's priors suggest for ``scene``: each present
    shape's absent companion in its typical colour, then present shapes in their typical
    colour — what a model leaning on the priors hallucinates."""
    present = {(o.shape, o.color) for o in scene.objects}
    shapes = {o.shape for o in scene.objects}
    tempting = [(COMPANION[o.shape], TYPICAL_COLOR[COMPANION[o.shape]]) for o in scene.objects if COMPANION[o.shape] not in shapes]
    tempting += [(o.shape, TYPICAL_COLOR[o.shape]) for o in scene.objects]
    return list(dict.fromkeys(k for k in tempting if k not in present))


def exist_task(scene: Scene, rng: random.Random) -> Task:
    """Half the time an object of the scene, half the time an absent (shape, colour) — in
    half of those, one the priors tempt towards (:func:`prior_temptations`)."""
    present = {(o.shape, o.color) for o in scene.objects}
    if rng.random() < 0.5:
        shape, color = rng.choice(sorted(present))
    else:
        tempting = prior_temptations(scene)
        absent = [(s, c) for s in SHAPES for c in COLORS if (s, c) not in present]
        shape, color = rng.choice(tempting) if tempting and rng.random() < 0.5 else rng.choice(absent)
    answer = "Yes" if (shape, color) in present else "No"
    return Task("exist", f"Is there {article(color)} {color} {shape} in the image?", answer)


def attribute_task(scene: Scene, rng: random.Random) -> Task:
    """The colour of an object named by its shape (or the shape named by its colour)."""
    obj = rng.choice(scene.objects)
    if sum(o.shape == obj.shape for o in scene.objects) == 1 and rng.random() < 0.5:
        return Task("attribute", f"What colour is the {obj.shape}?", obj.color)
    if sum(o.color == obj.color for o in scene.objects) == 1:
        return Task("attribute", f"What shape is the {obj.color} object?", obj.shape)
    return Task("attribute", f"What colour is the object at the {obj.position}?", obj.color)


def reasoning_task(scene: Scene, rng: random.Random) -> Task:
    """A count conditioned on an attribute: "How many red shapes are there?" """
    color = rng.choice([o.color for o in scene.objects] + list(COLORS)[:2])
    return Task("reasoning", f"How many {color} shapes are there?", str(sum(o.color == color for o in scene.objects)))


def tasks_for(scene: Scene, rng: random.Random) -> list[Task]:
    """One task of each kind for ``scene``."""
    return [caption_task(scene), count_task(scene), exist_task(scene, rng), attribute_task(scene, rng),
            reasoning_task(scene, rng)]


def answer_matches(kind: str, response: str, answer: str) -> bool:
    """Short answers: the first word, case- and punctuation-insensitive."""
    words = response.strip().lower().replace(".", " ").replace(",", " ").split()
    return bool(words) and words[0] == answer.lower()
