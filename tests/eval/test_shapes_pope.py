"""POPE on shapes-world scenes: answer parsing, hand-computed metrics, question sampling."""

import random

import pytest

from mmpo.eval.benchmarks.shapes_pope import STRATEGIES, parse_yes_no, pope_metrics, pope_questions
from mmpo.shapes.world import COLORS, SHAPES, Scene, ShapeObject, make_scene

TWO = Scene("two", (ShapeObject("circle", "red", 0), ShapeObject("star", "blue", 4)), 0)


@pytest.mark.parametrize("text, expected", [
    ("Yes, there is a red circle.", "yes"),
    ("yes", "yes"),
    ("YES.", "yes"),
    ("  **Yes**", "yes"),
    ("No.", "no"),
    ("no, there is not", "no"),
    ("There is no red circle.", None),
    ("Nope", None),
    ("yesterday", None),
    ("Not sure", None),
    ("", None),
])
def test_parse_yes_no(text, expected):
    assert parse_yes_no(text) == expected


def test_hand_computed_metrics():
    predictions = ["yes", "yes", "no", None, "yes", "no"]
    labels = ["yes", "no", "no", "yes", "yes", "yes"]
    # TP = 2 (0, 4), FP = 1 (1), TN = 1 (2), FN = 2 (3 unparsed -> "no", 5).
    # accuracy = 3/6; precision = 2/3; recall = 2/4; F1 = 2*(2/3)*(1/2) / (2/3 + 1/2) = 4/7;
    # yes_ratio = 3 "yes" / 6.
    result = pope_metrics(predictions, labels)
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(0.5)
    assert result["f1"] == pytest.approx(4 / 7)
    assert result["yes_ratio"] == pytest.approx(0.5)
    assert (result["unparsed"], result["n"]) == (1, 6)


def test_metrics_degenerate_cases():
    all_no = pope_metrics(["no", "no"], ["yes", "no"])
    assert (all_no["precision"], all_no["recall"], all_no["f1"], all_no["yes_ratio"]) == (0.0, 0.0, 0.0, 0.0)
    assert all_no["accuracy"] == 0.5
    unparsed = pope_metrics([None, None], ["no", "no"])
    assert unparsed["accuracy"] == 0.0 and unparsed["unparsed"] == 2
    assert pope_metrics([], [])["accuracy"] == 0.0


@pytest.mark.parametrize("predictions, labels", [
    (["yes"], []),
    (["yes"], ["maybe"]),
    (["Yes"], ["yes"]),
])
def test_metrics_reject_bad_input(predictions, labels):
    with pytest.raises(ValueError):
        pope_metrics(predictions, labels)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_questions_labels_are_true(strategy):
    popular = [(s, c) for c in COLORS for s in SHAPES]
    for seed in range(100):
        scene = make_scene(seed)
        present = {(o.shape, o.color) for o in scene.objects}
        questions = pope_questions(scene, random.Random(seed), 3, 3, strategy, popular=popular)
        objects = [(q["object"]["shape"], q["object"]["color"]) for q in questions]
        assert len(set(objects)) == len(objects)
        assert sum(q["label"] == "yes" for q in questions) == len(present)
        assert sum(q["label"] == "no" for q in questions) == 3
        for q, pair in zip(questions, objects):
            assert (pair in present) == (q["label"] == "yes")
            assert q["question"] == f"Is there {'an' if pair[1] == 'orange' else 'a'} {pair[1]} {pair[0]} in the image?"


def test_balanced_when_scene_has_enough_objects():
    scene = Scene("three", TWO.objects + (ShapeObject("square", "green", 8),), 0)
    labels = [q["label"] for q in pope_questions(scene, random.Random(0), 3, 3)]
    assert labels.count("yes") == labels.count("no") == 3


def test_positives_capped_at_scene_size():
    scene = Scene("one", (ShapeObject("triangle", "purple", 2),), 0)
    labels = [q["label"] for q in pope_questions(scene, random.Random(0), 3, 3)]
    assert labels.count("yes") == 1 and labels.count("no") == 3
    assert len(pope_questions(scene, random.Random(0), 0, 100)) == len(SHAPES) * len(COLORS) - 1


def test_deterministic_given_rng():
    assert pope_questions(TWO, random.Random(7), 2, 4) == pope_questions(TWO, random.Random(7), 2, 4)


def test_adversarial_negatives_share_shape_or_colour():
    # absent pairs sharing circle/star or red/blue: 2 shapes * 5 other colours + 2 colours * 2 other shapes = 14
    for seed in range(20):
        questions = pope_questions(TWO, random.Random(seed), 2, 14, "adversarial")
        negatives = [q["object"] for q in questions if q["label"] == "no"]
        assert len(negatives) == 14
        assert all(o["shape"] in ("circle", "star") or o["color"] in ("red", "blue") for o in negatives)


def test_random_negatives_reach_unrelated_pairs():
    unrelated = 0
    for seed in range(20):
        for q in pope_questions(TWO, random.Random(seed), 0, 3, "random"):
            unrelated += q["object"]["shape"] not in ("circle", "star") and q["object"]["color"] not in ("red", "blue")
    assert unrelated > 0


def test_popular_negatives_follow_ranking():
    popular = [("circle", "red"), ("square", "green"), ("star", "blue"), ("triangle", "yellow")]
    questions = pope_questions(TWO, random.Random(0), 0, 2, "popular", popular=popular)
    pairs = {(q["object"]["shape"], q["object"]["color"]) for q in questions}
    assert pairs == {("square", "green"), ("triangle", "yellow")}
    # beyond the ranking, the rest are other absent pairs
    more = pope_questions(TWO, random.Random(0), 0, 5, "popular", popular=popular)
    pairs = {(q["object"]["shape"], q["object"]["color"]) for q in more}
    assert {("square", "green"), ("triangle", "yellow")} < pairs and not pairs & {("circle", "red"), ("star", "blue")}


def test_bad_strategy_or_missing_ranking():
    with pytest.raises(ValueError):
        pope_questions(TWO, random.Random(0), 1, 1, "frequent")
    with pytest.raises(ValueError):
        pope_questions(TWO, random.Random(0), 1, 1, "popular")
