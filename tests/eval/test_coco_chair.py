"""CHAIR on COCO (OPERA's chair.py variant) against hand-worked values, on files in COCO's
own 2014 layout (tests/eval/fixtures/coco/)."""

import json
import os

import pytest

from mmpo.cli import main
from mmpo.data.schema import DataError
from mmpo.eval import nlp
from mmpo.eval.benchmarks.coco_chair import coco_image_id, evaluate_chair, load_coco_truth
from mmpo.eval.metrics.chair import caption_objects

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "coco")
ANNOTATIONS = os.path.join(FIXTURES, "annotations")
CAPTIONS = os.path.join(FIXTURES, "captions.jsonl")

try:
    nlp.backend()
except nlp.NLPDataMissing as err:  # WordNet comes from Debian's wordnet-base (the Makefile installs it)
    pytest.skip(str(err), allow_module_level=True)


@pytest.mark.parametrize("caption, nodes", [
    ("A kid on a sofa with a bike.", ["person", "couch", "bicycle"]),            # synonyms
    ("People and mice and knives.", ["person", "mouse", "knife"]),               # irregular plurals
    ("Two teddy bears on a dining table by a hot dog.", ["teddy bear", "dining table", "hot dog"]),
    ("cell phones and wine glasses", ["cell phone", "wine glass"]),            # plural two-word objects
    ("A dog, a dog and another DOG.", ["dog", "dog", "dog"]),                  # every occurrence, any case
    ("A baby elephant beside a passenger jet.", ["elephant", "airplane"]),     # "baby X" → X, "passenger jet" → jet
    ("The toilet seat is up.", ["toilet"]),                                    # not a chair
    ("the seat of the toilet", ["toilet"]),                                    # seat dropped when toilet is there
    ("a man in a bow tie", ["person", "tie"]),
    ("a motor bike", []),   # the reference's synonym line has " motor bike" (double space): never matches
    ("a motorbike", ["motorcycle"]),
    ("an iPhone", []),      # listed capitalised, captions are lower-cased: never matches
    ("", []),
    ("...!?", []),
])
def test_caption_objects_follow_the_reference_rules(caption, nodes):
    assert caption_objects(caption).node_words == nodes


def test_ground_truth_is_instances_union_reference_captions():
    truth, known, files = load_coco_truth(ANNOTATIONS, image_ids={102, 104})
    assert truth == {102: {"dining table", "pizza", "person", "hot dog"},  # caption adds a man and a hot dog
                     104: {"elephant", "person"}}
    assert {101, 102, 103, 104, 105} <= known and len(files) == 2


def test_chair_figures_hand_worked():
    """captions.jsonl, per caption (GT = instances ∪ reference-caption objects):
    101 {person, dog, couch}: kid, puppy, sofa, bikes → bicycle hallucinated          (1 of 4)
    102 {dining table, pizza, person, hot dog}: people, hot dogs, pizza, dining table, mice (1 of 5)
    103 {toilet}: toilet seat → toilet, cat, toilet                                   (1 of 3)
    104 {elephant, person}: baby elephant, passenger jet → airplane                   (1 of 2)
    105 {cell phone, tie}: "" → nothing                                               (0 of 0)
    105 (as a COCO file name): MAN → person, bow tie → tie, cell phones              (1 of 3)
    103 (as a string): "...!?" → nothing                                              (0 of 0)
    CHAIR_s = 5/7, CHAIR_i = 5/17, recall = (3+4+1+1+0+2+0) / (3+4+1+2+2+2+1) = 11/15."""
    result = evaluate_chair(CAPTIONS, ANNOTATIONS)
    assert result.metrics["chair_s"] == pytest.approx(5 / 7)
    assert result.metrics["chair_i"] == pytest.approx(5 / 17)
    assert result.metrics["recall"] == pytest.approx(11 / 15)
    assert (result.metrics["n_captions"], result.metrics["n_mentions"], result.metrics["n_hallucinated"]) == (7, 17, 5)
    first = result.details[0]
    assert first["mscoco_hallucinated_words"] == [["bike", "bicycle"]]
    assert first["hallucinated"] == ["bikes"]  # the caption's own words, for marking in reports
    assert result.details[5]["mscoco_generated_words"] == ["person", "tie", "cell phone"]
    assert result.details[3]["hallucinated"] == ["passenger jet"]


def test_an_instances_file_alone_and_a_separate_captions_file():
    alone = evaluate_chair(CAPTIONS, os.path.join(ANNOTATIONS, "instances_val2014.json"))
    both = evaluate_chair(CAPTIONS, os.path.join(ANNOTATIONS, "instances_val2014.json"),
                          [os.path.join(ANNOTATIONS, "captions_val2014.json")])
    assert both.metrics == evaluate_chair(CAPTIONS, ANNOTATIONS).metrics
    assert alone.metrics["chair_i"] == pytest.approx(7 / 17)  # without reference captions 102's people and hot dogs are hallucinated


def test_image_ids_in_every_form():
    assert coco_image_id(397133, "f:1", "image_id") == 397133
    assert coco_image_id("397133", "f:1", "image_id") == 397133
    assert coco_image_id("COCO_val2014_000000397133.jpg", "f:1", "image_id") == 397133
    with pytest.raises(DataError, match="f:1: field 'image_id'"):
        coco_image_id("cat.jpg.txt", "f:1", "image_id")


def test_bad_inputs_name_file_and_line(tmp_path):
    bad = tmp_path / "caps.jsonl"
    bad.write_text(json.dumps({"image_id": 101, "caption": "a dog"}) + "\n" + json.dumps({"image_id": 999, "caption": "x"}) + "\n")
    with pytest.raises(DataError, match=r"caps.jsonl:2: field 'image_id': image 999 is not in the COCO annotations"):
        evaluate_chair(str(bad), ANNOTATIONS)
    bad.write_text(json.dumps({"image_id": 101}) + "\n")
    with pytest.raises(DataError, match=r"caps.jsonl:1: field 'caption'"):
        evaluate_chair(str(bad), ANNOTATIONS)
    bad.write_text("{not json\n")
    with pytest.raises(DataError, match=r"caps.jsonl:1"):
        evaluate_chair(str(bad), ANNOTATIONS)
    with pytest.raises(FileNotFoundError, match="instances_train2014.json or instances_val2014.json"):
        evaluate_chair(CAPTIONS, str(tmp_path))


def test_cli_writes_json_and_markdown(tmp_path, capsys):
    out = tmp_path / "chair.json"
    assert main(["eval", "chair", "--captions", CAPTIONS, "--coco-annotations", ANNOTATIONS, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert list(result["metrics"])[:3] == ["chair_s", "chair_i", "recall"]
    assert result["metrics"]["chair_i"] == pytest.approx(5 / 17)
    assert "| chair_s | 0.7143 |" in (tmp_path / "chair.md").read_text()
    assert main(["eval", "chair", "--captions", str(tmp_path / "missing.jsonl"), "--coco-annotations", ANNOTATIONS,
                 "--out", str(out)]) == 1
    assert "captions file not found" in capsys.readouterr().err


def test_mention_positions_keep_the_references_off_by_one_after_a_dropped_seat():
    """The reference drops "seat" from the words but indexes its position list with the
    filtered positions, so every mention after the seat points one word early: "toilet"
    (lemma 4) is reported at 3. Its hallucination_idxs are reproduced as printed."""
    objects = caption_objects("The seat of the toilet is broken, and a chair and a cat stand nearby.")
    assert objects.node_words == ["toilet", "chair", "cat"]
    assert objects.idxs == [3, 9, 12]
    assert caption_objects("A toilet and a cat.").idxs == [1, 4]  # no seat: true positions
