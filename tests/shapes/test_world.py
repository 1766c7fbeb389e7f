"""The shapes world: seeded scenes, exact captions, answerable tasks."""

import random

import numpy as np

from mmpo.shapes.tasks import answer_matches, prior_temptations, tasks_for
from mmpo.shapes.world import COLORS, TYPICAL_COLOR, ShapeObject, caption, make_scene, render


def test_scenes_are_seeded_and_distinct():
    assert make_scene(3) == make_scene(3)
    scene = make_scene(11, max_objects=5)
    assert 1 <= len(scene.objects) <= 5
    assert len({o.cell for o in scene.objects}) == len(scene.objects)
    assert len({(o.shape, o.color) for o in scene.objects}) == len(scene.objects)
    assert np.array_equal(np.asarray(render(scene)), np.asarray(render(make_scene(11, max_objects=5))))


def test_render_draws_each_object_in_its_cell():
    scene = make_scene(5)
    pixels = np.asarray(render(scene, size=60)).astype(int)
    for obj in scene.objects:
        row, col = divmod(obj.cell, 3)
        cell = pixels[row * 20 : row * 20 + 20, col * 20 : col * 20 + 20].reshape(-1, 3)
        distance = np.abs(cell - np.array(COLORS[obj.color])).sum(axis=1)
        assert (distance < 30).sum() > 20, obj  # enough pixels of the object's colour


def test_caption_mentions_every_object():
    scene = make_scene(9, max_objects=3)
    text = caption(scene.objects)
    assert text.startswith("There is ") and text.endswith(".")
    for obj in scene.objects:
        assert f"{obj.color} {obj.shape}" in text and obj.position in text


def test_tasks_have_answers_grounded_in_the_scene():
    rng = random.Random(0)
    for seed in range(50):
        scene = make_scene(seed)
        kinds = {t.kind: t for t in tasks_for(scene, rng)}
        assert kinds["count"].answer == str(len(scene.objects))
        exist = kinds["exist"]
        named = exist.prompt.removeprefix("Is there ").removeprefix("an ").removeprefix("a ").removesuffix(" in the image?")
        present = any(f"{o.color} {o.shape}" == named for o in scene.objects)
        assert exist.answer == ("Yes" if present else "No")
    assert answer_matches("count", "3.", "3") and not answer_matches("count", "There are 3", "3")


def test_articles_and_priors():
    assert caption((ShapeObject("star", "orange", 0),)) == "There is an orange star at the top left."
    uniform = [o for i in range(2000) for o in make_scene(i).objects]
    primed = [o for i in range(2000) for o in make_scene(i, prior=0.8).objects]
    typical = lambda objs: sum(o.color == TYPICAL_COLOR[o.shape] for o in objs) / len(objs)  # noqa: E731
    assert typical(uniform) < 0.25 < 0.7 < typical(primed)  # 1/6 by chance; ≈ 0.8 + 0.2/6 with the prior
    scenes = [make_scene(i, prior=0.8) for i in range(2000)]
    with_circle = [s for s in scenes if len(s.objects) > 1 and any(o.shape == "circle" for o in s.objects)]
    assert sum(any(o.shape == "star" for o in s.objects) for s in with_circle) / len(with_circle) > 0.6
    scene = make_scene(3, prior=0.8)
    present = {(o.shape, o.color) for o in scene.objects}
    assert prior_temptations(scene) and not present & set(prior_temptations(scene))
