"""Seeded synthetic scenes of coloured shapes, with exact ground truth and language priors.

A scene is 1–``max_objects`` objects, each a (shape, colour, cell of a 3×3 grid), drawn on
a lightly textured background. Because we draw the image, we know every object in it, so a
caption's hallucinations can be counted exactly.

Like photographs, training scenes follow regularities a language model can learn without
looking: each shape has a **typical colour** (circles are usually red, squares blue,
triangles green, stars yellow) and a **companion** (a circle usually comes with a star, a
square with a triangle). ``prior`` is how strongly a scene follows them (0: kinds drawn
uniformly and independently). A model that leans on these priors names the typical colour
or the absent companion — the language-prior hallucination mDPO and MPO set out to fix —
and it shows on scenes that break the priors.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star")
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 210, 40),
    "purple": (140, 50, 170),
    "orange": (240, 140, 30),
}
TYPICAL_COLOR = {"circle": "red", "square": "blue", "triangle": "green", "star": "yellow"}
COMPANION = {"circle": "star", "star": "circle", "square": "triangle", "triangle": "square"}
POSITIONS = (
    "top left", "top", "top right",
    "left", "middle", "right",
    "bottom left", "bottom", "bottom right",
)


@dataclass(frozen=True)
class ShapeObject:
    shape: str
    color: str
    cell: int  # 0..8, row-major over a 3×3 grid

    @property
    def position(self) -> str:
        return POSITIONS[self.cell]

    def phrase(self) -> str:
        return f"{article(self.color)} {self.color} {self.shape}"


def article(word: str) -> str:
    """"an" before a vowel ("an orange star"), else "a"."""
    return "an" if word[:1].lower() in "aeiou" else "a"


@dataclass(frozen=True)
class Scene:
    id: str
    objects: tuple[ShapeObject, ...]
    seed: int


def make_scene(seed: int, max_objects: int = 3, scene_id: str | None = None, prior: float = 0.0) -> Scene:
    """1–``max_objects`` distinct (shape, colour) objects in distinct grid cells.

    With ``prior`` p > 0, each object after the first is, with probability p, the companion
    shape of one already drawn (when absent), and each object takes its shape's typical
    colour with probability p; ``prior=0`` draws kinds uniformly."""
    rng = random.Random(seed)
    count = rng.randint(1, max_objects)
    if prior > 0:
        kinds = _prior_kinds(rng, count, prior)
    else:
        kinds = rng.sample([(s, c) for s in SHAPES for c in COLORS], count)
    cells = rng.sample(range(9), count)
    objects = tuple(sorted((ShapeObject(s, c, cell) for (s, c), cell in zip(kinds, cells)), key=lambda o: o.cell))
    return Scene(scene_id or f"scene-{seed}", objects, seed)


def _prior_kinds(rng: random.Random, count: int, prior: float) -> list[tuple[str, str]]:
    kinds: list[tuple[str, str]] = []
    while len(kinds) < count:
        shapes = {s for s, _ in kinds}
        companions = [COMPANION[s] for s, _ in kinds if COMPANION[s] not in shapes]
        shape = rng.choice(companions) if companions and rng.random() < prior else rng.choice(SHAPES)
        color = TYPICAL_COLOR[shape] if rng.random() < prior else rng.choice(list(COLORS))
        if (shape, color) not in kinds:
            kinds.append((shape, color))
    return kinds


def render(scene: Scene, size: int = 64) -> Image.Image:
    """The scene as an RGB image of ``size``×``size`` pixels."""
    rng = random.Random(scene.seed * 7919 + 1)
    base = tuple(rng.randint(200, 245) for _ in range(3))
    img = Image.new("RGB", (size, size), base)
    draw = ImageDraw.Draw(img)
    for _ in range(size // 4):  # faint texture
        x, y = rng.randrange(size), rng.randrange(size)
        shade = tuple(max(0, c - rng.randint(10, 30)) for c in base)
        draw.point((x, y), fill=shade)
    cell = size / 3
    for obj in scene.objects:
        cx, cy = (obj.cell % 3 + 0.5) * cell, (obj.cell // 3 + 0.5) * cell
        r = cell * 0.38
        fill = COLORS[obj.color]
        if obj.shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif obj.shape == "square":
            draw.rectangle((cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85), fill=fill)
        elif obj.shape == "triangle":
            draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=fill)
        else:  # star
            import math

            points = []
            for k in range(10):
                radius = r if k % 2 == 0 else r * 0.45
                angle = -math.pi / 2 + k * math.pi / 5
                points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
            draw.polygon(points, fill=fill)
    return img


def caption(objects: tuple[ShapeObject, ...] | list[ShapeObject]) -> str:
    """"There is a red circle at the top left and a blue star in the middle." """
    parts = [f"{o.phrase()} {'in the' if o.position == 'middle' else 'at the'} {o.position}" for o in objects]
    if not parts:
        return "There is nothing."
    body = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"There is {body}."
