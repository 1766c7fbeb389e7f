"""CHAIR on shapes-world captions: mention parsing and hand-computed CHAIR-s/CHAIR-i/cover."""

import pytest

from mmpo.eval.benchmarks.shapes_chair import caption_report, chair, mentioned_objects, truth_pairs
from mmpo.shapes.world import ShapeObject, caption, make_scene


def test_mentions_from_world_caption():
    text = "There is a red circle at the top left and a blue star in the middle."
    assert mentioned_objects(text) == {("circle", "red"), ("star", "blue")}


def test_plurals_case_and_duplicates():
    text = "Two RED Circles, three green triangles, two Orange Stars and an orange star."
    assert mentioned_objects(text) == {("circle", "red"), ("triangle", "green"), ("star", "orange")}
    assert mentioned_objects("some purple squares") == {("square", "purple")}


@pytest.mark.parametrize("text", [
    "a reddish circle",       # colour is not a whole word
    "a red circled area",     # shape is not a whole word
    "a bluestar",             # no space between colour and shape
    "a red big circle",       # colour not adjacent to shape
    "a red, circle",          # punctuation between them
    "a circle that is red",   # shape before colour
    "",
])
def test_non_mentions(text):
    assert mentioned_objects(text) == set()


def test_truths_as_dicts_or_shape_objects():
    objects = [ShapeObject("circle", "red", 0), ShapeObject("star", "blue", 4)]
    dicts = [{"shape": "circle", "color": "red", "cell": 0}, {"shape": "star", "color": "blue"}]
    assert truth_pairs(objects) == truth_pairs(dicts) == {("circle", "red"), ("star", "blue")}
    text = "a red circle and a green square"
    assert chair([text], [objects]) == chair([text], [dicts])


def test_hand_computed_chair():
    captions = [
        "There is a red circle at the top left and a blue star in the middle.",  # 2 mentions, 0 hallucinated
        "There is a green square and a yellow triangle.",                         # 2 mentions, 1 hallucinated
        "Two orange stars, an orange star and a red square.",                     # 2 distinct, 1 hallucinated
    ]
    truths = [
        [ShapeObject("circle", "red", 0), ShapeObject("star", "blue", 4)],       # both recalled
        [{"shape": "square", "color": "green"}, {"shape": "star", "color": "purple"}],  # 1 of 2 recalled
        [ShapeObject("star", "orange", 8)],                                       # recalled
    ]
    result = chair(captions, truths)
    # chair_s = 2 hallucinating captions / 3; chair_i = 2 hallucinated / 6 mentions;
    # cover = (2 + 1 + 1) recalled / (2 + 2 + 1) ground-truth objects.
    assert result["chair_s"] == pytest.approx(2 / 3)
    assert result["chair_i"] == pytest.approx(2 / 6)
    assert result["cover"] == pytest.approx(4 / 5)
    assert (result["n_captions"], result["n_mentions"], result["n_hallucinated"]) == (3, 6, 2)


def test_empty_captions_and_inputs():
    truth = [ShapeObject("circle", "red", 0)]
    assert chair(["", "There is nothing."], [truth, truth]) == {
        "chair_s": 0.0, "chair_i": 0.0, "cover": 0.0, "n_captions": 2, "n_mentions": 0, "n_hallucinated": 0,
    }
    assert chair([], []) == {
        "chair_s": 0.0, "chair_i": 0.0, "cover": 0.0, "n_captions": 0, "n_mentions": 0, "n_hallucinated": 0,
    }


def test_length_mismatch_raises():
    with pytest.raises(ValueError):
        chair(["a red circle"], [])


def test_ground_truth_captions_never_hallucinate():
    scenes = [make_scene(seed) for seed in range(200)]
    result = chair([caption(s.objects) for s in scenes], [s.objects for s in scenes])
    assert result["chair_s"] == result["chair_i"] == 0.0
    assert result["cover"] == 1.0
    assert result["n_mentions"] == sum(len(s.objects) for s in scenes)


def test_swapped_object_is_one_hallucination_per_caption():
    scenes = [make_scene(seed, max_objects=3) for seed in range(50)]
    swapped = [(ShapeObject("star", "red", 0) if ("star", "red") not in truth_pairs(s.objects)
                else ShapeObject("circle", "green", 0),) + s.objects[1:] for s in scenes]
    result = chair([caption(objs) for objs in swapped], [s.objects for s in scenes])
    assert result["chair_s"] == 1.0
    assert result["n_hallucinated"] == len(scenes)


def test_caption_report():
    truth = [{"shape": "star", "color": "blue"}, {"shape": "circle", "color": "red"},
             {"shape": "square", "color": "yellow"}]
    report = caption_report("A red circle, two purple stars and a green triangle.", truth)
    assert report == {
        "mentioned": ["green triangle", "purple star", "red circle"],
        "hallucinated": ["green triangle", "purple star"],
        "missed": ["blue star", "yellow square"],
    }
    assert caption_report("", truth)["missed"] == ["blue star", "red circle", "yellow square"]
