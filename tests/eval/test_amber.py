"""AMBER scoring against hand-worked figures on a small fixture in AMBER's own layout.

``fixtures/amber/data/`` is laid out like AMBER's ``data/`` folder: ``annotations.json`` (4
generative records, then yes/no records of every dimension, ids 1..21 in order as the
reference's ``annotations[id - 1]`` lookup needs), ``relation.json`` (the entries of AMBER's
file for the objects used, copied as they are), ``safe_words.txt`` and ``metrics.txt``
(AMBER's, verbatim) and the six ``query/query_*.json`` files. ``responses.json`` is in the
format ``inference.py --inference_data`` reads.

Every figure below was also printed by AMBER's unmodified ``inference.py`` run on this fixture
for each evaluation type (nltk's functions replaced by mmpo.eval.nlp's, spaCy stubbed with
exact-match similarity), and by the same run on 50 random annotation/response sets with
random "similar" word pairs, all figures equal.
"""

import json
import os
import shutil

import pytest

import mmpo.eval.benchmarks.amber as amber
from mmpo.eval.benchmarks.amber import amber_questions, evaluate_amber, load_metrics_start
from mmpo.eval.metrics.amber import (
    METRICS_START,
    answer_correct,
    caption_objects,
    count,
    match_caption,
    object_vocabulary,
    printed_figures,
)

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "amber")
DATA = os.path.join(HERE, "data")
RESPONSES = os.path.join(HERE, "responses.json")
with open(os.path.join(DATA, "relation.json"), encoding="utf-8") as _f:
    RELATION = json.load(_f)
SAFE = ["orange", "snack", "line", "camera", "light", "shoe", "sign", "range", "individual"]


@pytest.fixture(autouse=True)
def no_spacy(monkeypatch):
    """The vector-free path, whatever is installed (a test opts into a fake similarity)."""
    monkeypatch.setattr(amber, "spacy_similarity", lambda threshold: None)


@pytest.fixture
def result():
    return evaluate_amber(RESPONSES, HERE, "a")


# Generative (exact-match similarity), per response:
#  1 truth [dog, grass, child, tree], hallu [cat, car, bench]
#    "Dogs rest in a park. Two dogs play on the ground while the children sit on a bench.
#     There is a light near a cat and an umbrella."
#    nouns: Dogs (capitalised: lemmatizer leaves it, not in the vocabulary), park (not in
#    relation.json), dogs→dog, ground, children→child, bench, light, cat, umbrella
#    objects (7): dog ✓truth, ground ✓ (grass's association → covers grass), child ✓,
#    bench ✗ (hallu: Cog), light (safe word: skipped, still counted), cat ✗ (hallu: Cog),
#    umbrella ✗ (in relation.json but in neither list) → 3 hallucinated;
#    covered dog, grass, child (3 of 4); Cog cat, bench (2 of 3)
#  2 truth [person, man, sky], hallu [bird]; "Two women and a man stand under the sky."
#    women→woman: first match is person's association → covers person; man: also first
#    matched in person's associations → covers person again, "man" itself never;
#    sky ✓ → covered 2 of 3, 0 hallucinated, Cog 0 of 1
#  3 truth [ship, ship, sea], hallu [bird]; "A ship and another ship are on the sea."
#    both "ship"s match the first ship → covered 2 of 3; Cog 0 of 1
#  4 truth [dog], hallu [cat]; "" → no objects, covered 0 of 1, Cog 0 of 1
# CHAIR = 3 / (0.001 + 7 + 3 + 3 + 0) = 23.07… → 23.1
# Cover = (3 + 2 + 2 + 0) / (0.001 + 4 + 3 + 3 + 1) = 63.63… → 63.6
# Hal   = 100 - 3 / (0.001 + 4) * 100 = 25.01… → 25.0   (responses 2, 3, 4 clean)
# Cog   = 2 / (0.001 + 3 + 1 + 1 + 1) = 33.32… → 33.3
GENERATIVE = {"chair_exact": 23.1, "cover_exact": 63.6, "hal_exact": 25.0, "cog_exact": 33.3}

# Discriminative ("No" positive; only exact "Yes"/"No" count):
#  existence  5 no/"No" ✓   6 no/"no" ✗   7 yes/"Yes" ✓   8 yes/"No" ✗
#  state      9 yes/"Yes" ✓  10 no/"No" ✓  11 no/"Yes" ✗
#  number    12 yes/"Yes, there is" ✗  13 no/"No" ✓  14 no/"No." ✗
#  action    15 yes/"No" ✗  16 no/"No" ✓  17 yes/"Yes" ✓
#  relation  18 no/"No" ✓  19 yes/"Yes" ✓  20 yes/"No" ✗  21 no/" No" ✗
#            (types "relation" and "discriminative-relation" both count as relation)
# existence: acc 2/4.001 = 49.99 → 50.0; P 1/2.001 → 50.0; R 1/2.001 → 50.0;
#            F1 = 2·.5·.5/(.5+.5+0.001) = 49.95005 → 50.0
# state:     acc 2/3.001 → 66.6; P 1/1.001 = 99.90 → 99.9; R 1/2.001 → 50.0;
#            F1 from the rounded 99.9 and 50.0: .999/(1.499+.0001) = 66.64 → 66.6
#            (from the exact P = 1, R = 0.5 it would be 66.7)
# number:    acc 1/3.001 → 33.3; P 1/1.001 → 99.9; R 1/2.001 → 50.0; F1 66.6
# action:    acc 2/3.001 → 66.6; P 1/2.001 → 50.0; R 1/1.001 → 99.9; F1 66.6
# attribute: acc (2+1+2)/(3.001·3) = 55.54 → 55.5; P 3/4.003 = 74.94 → 74.9;
#            R 3/5.003 = 59.96 → 60.0; F1 .8988/1.3491 = 66.62 → 66.6
# relation:  acc 2/4.001 → 50.0; P 1/2.001 → 50.0; R 1/2.001 → 50.0; F1 49.995 → 50.0
# overall:   acc 9/17.001 = 52.94 → 52.9; P 5/8.001 = 62.49 → 62.5;
#            R 5/9.001 = 55.55 → 55.5; F1 .69375/1.1801 = 58.79 → 58.8
DISCRIMINATIVE = {
    "discriminative": (52.9, 62.5, 55.5, 58.8, 17),
    "existence": (50.0, 50.0, 50.0, 50.0, 4),
    "attribute": (55.5, 74.9, 60.0, 66.6, 9),
    "state": (66.6, 99.9, 50.0, 66.6, 3),
    "number": (33.3, 99.9, 50.0, 66.6, 3),
    "action": (66.6, 50.0, 99.9, 66.6, 3),
    "relation": (50.0, 50.0, 50.0, 50.0, 4),
}


def test_headline_figures(result):
    assert result.benchmark == "amber"
    assert result.metrics == {**GENERATIVE, "accuracy": 52.9, "precision": 62.5, "recall": 55.5, "f1": 58.8}


def test_groups(result):
    assert result.groups["generative"] == {**GENERATIVE, "responses": 4, "objects": 13, "hallucinated_objects": 3}
    for name, (acc, p, r, f1, n) in DISCRIMINATIVE.items():
        assert {k: result.groups[name][k] for k in ("accuracy", "precision", "recall", "f1", "questions")} == {
            "accuracy": acc, "precision": p, "recall": r, "f1": f1, "questions": n}, name
    assert result.groups["number"]["not_yes_no"] == 2  # "Yes, there is", "No."
    assert list(result.groups) == ["generative", "discriminative", "existence", "attribute", "state", "number",
                                   "action", "relation"]


def test_generative_details(result):
    first, second, third, empty = result.details[:4]
    assert first["id"] == 1 and first["task"] == "generative"
    assert first["objects"] == ["dog", "ground", "child", "bench", "light", "cat", "umbrella"]
    assert first["hallucinated"] == ["bench", "cat", "umbrella"]
    assert first["covered"] == ["dog", "grass", "child"] and first["cog"] == ["cat", "bench"]
    assert second["objects"] == ["woman", "man", "sky"] and second["covered"] == ["person", "sky"]
    assert third["covered"] == ["ship", "sea"] and third["hallucinated"] == []
    assert empty == {"id": 4, "task": "generative", "answer": "", "hallucinated": [], "objects": [],
                     "covered": [], "cog": []}


def test_discriminative_details(result):
    by_id = {d["id"]: d for d in result.details}
    assert by_id[5] == {"id": 5, "task": "existence", "question": "Is there a cat in this image?", "answer": "No",
                        "label": "no", "correct": True}
    assert [by_id[i]["correct"] for i in (6, 12, 14, 21)] == [False] * 4  # "no", "Yes, there is", "No.", " No"
    assert [by_id[i]["task"] for i in (9, 12, 15, 18, 19)] == ["state", "number", "action", "relation", "relation"]
    assert [d["id"] for d in result.details] == list(range(1, 22))


def test_notes_and_inputs(result):
    text = " ".join(result.notes)
    assert "percentages rounded to one decimal" in text
    assert "en_core_web_lg" in text and "chair_exact" in text and "exact string equality" in text
    assert "4 of 17 answers here are neither" in text
    assert result.inputs["evaluation"] == "a" and result.inputs["similarity"].startswith("exact")
    assert set(result.inputs["nlp"]) == {"sentences", "pos_tags", "wordnet"}


def test_one_dimension_evaluations():
    existence = evaluate_amber(RESPONSES, HERE, "de")
    assert existence.metrics == {"existence_accuracy": 50.0, "existence_precision": 50.0, "existence_recall": 50.0,
                                 "existence_f1": 50.0}
    assert list(existence.groups) == ["existence"] and [d["id"] for d in existence.details] == [5, 6, 7, 8]
    assert any("17 responses belong to tasks" in note for note in existence.notes)
    attribute = evaluate_amber(RESPONSES, os.path.join(HERE, "data"), "da")  # the data/ folder itself works too
    assert attribute.metrics["attribute_f1"] == 66.6
    assert list(attribute.groups) == ["attribute", "state", "number", "action"]
    discriminative = evaluate_amber(RESPONSES, HERE, "d")
    assert discriminative.metrics == {"accuracy": 52.9, "precision": 62.5, "recall": 55.5, "f1": 58.8}
    assert "generative" not in discriminative.groups and "similarity" not in discriminative.inputs
    generative = evaluate_amber(RESPONSES, HERE, "g")
    assert generative.metrics == GENERATIVE and list(generative.groups) == ["generative"]


def test_caption_objects_plural_and_case():
    vocabulary = object_vocabulary(RELATION)
    # "Dogs" keeps its capital (no lemma, not an object); goose is not in this relation.json
    assert caption_objects("Dogs and two dogs. The women saw geese.", vocabulary) == ["dog", "woman"]


def test_association_order_and_duplicates():
    # "man" is one of person's associations, which come first: it covers person, never man
    match = match_caption(["man"], ["person", "man"], [], RELATION, SAFE)
    assert match.covered == [True, False] and match.hallucinated == []
    # "person" is one of man's associations: covers man
    assert match_caption(["person"], ["person", "man"], [], RELATION, SAFE).covered == [False, True]
    # a safe word is an object (counted in CHAIR's denominator) but never hallucinated nor a Cog hit
    safe = match_caption(["light", "light"], ["dog"], ["car"], RELATION, SAFE)
    assert safe.objects == ["light", "light"] and safe.hallucinated == [] and safe.cog == [False]


def test_similarity_step():
    similar = {("cat", "dog"), ("umbrella", "bill")}  # a stand-in for word vectors

    def fake(a, b):
        return a == b or (a, b) in similar

    match = match_caption(["cat", "umbrella"], ["dog"], ["bird"], RELATION, SAFE, fake)
    # cat ~ dog: not hallucinated, covers dog; umbrella ~ bill (bird's association): Cog for bird,
    # and still hallucinated (similar to no truth word)
    assert match.hallucinated == ["umbrella"] and match.covered == [True] and match.cog == [True]
    exact = match_caption(["cat", "umbrella"], ["dog"], ["bird"], RELATION, SAFE)
    assert exact.hallucinated == ["cat", "umbrella"] and exact.covered == [False] and exact.cog == [False]


def test_spacy_path_uses_reference_names(monkeypatch):
    monkeypatch.setattr(amber, "spacy_similarity", lambda threshold: (lambda a, b: a == b or {a, b} == {"cat", "dog"}))
    r = evaluate_amber(RESPONSES, HERE, "g")
    # response 1's cat is now similar to the truth object dog: hallucinated bench, umbrella
    # → CHAIR 2/13.001 = 15.38 → 15.4; Hal unchanged (response 1 still has one); Cog unchanged
    # (the cat still matched the hallu list exactly)
    assert r.metrics == {"chair": 15.4, "cover": 63.6, "hal": 25.0, "cog": 33.3}
    assert not any("exact string equality" in note for note in r.notes)
    assert r.inputs["similarity"] == "spaCy en_core_web_lg similarity > 0.8"


@pytest.mark.parametrize("response, truth, correct", [
    ("Yes", "yes", True), ("No", "no", True), ("yes", "yes", False), ("no", "no", False),
    ("Yes, there is", "yes", False), ("No.", "no", False), (" No", "no", False), ("", "no", False),
    ("No", "yes", False), ("Yes", "no", False),
])
def test_answer_correct_is_exact(response, truth, correct):
    assert answer_correct(response, truth) is correct


def test_existence_f1_constant():
    # 1 correct "No" of 2 "No" answers, 3 questions with truth "no": P 1/2.001 → 50.0,
    # R 1/3.001 → 33.3. F1 = 2·.5·.333/(.5+.333+ε): ε = 0.001 (existence) → 39.9,
    # ε = 0.0001 (every other block) → 40.0; exact P/R would give 40.0.
    answers = [("no", "No"), ("yes", "No"), ("no", "Yes"), ("no", "Yes")]
    existence = [("discriminative-hallucination", t, r) for t, r in answers]
    relation = [("relation", t, r) for t, r in answers]
    assert printed_figures(count([], existence), "de")["existence"] == {
        "accuracy": 25.0, "precision": 50.0, "recall": 33.3, "f1": 39.9}
    assert printed_figures(count([], relation), "dr")["relation"]["f1"] == 40.0


def test_denominators_start_at_0001():
    # 3 correct of 16: 3/16 = 18.75 % would round to 18.8; the reference divides by 16.001 → 18.7
    answers = [("discriminative-attribute-state", "yes", "Yes" if i < 3 else "No") for i in range(16)]
    assert printed_figures(count([], answers), "da")["state"]["accuracy"] == 18.7
    # nothing answered: no division by zero; Hal = 100 - 0 / 0.001 * 100 = 100.0
    assert printed_figures(count([], []), "a")["generative"] == {"chair": 0.0, "cover": 0.0, "hal": 100.0, "cog": 0.0}
    assert printed_figures(count([], []), "dr")["relation"] == {"accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_metrics_txt_is_read():
    assert load_metrics_start(os.path.join(DATA, "metrics.txt")) == METRICS_START


def test_questions(tmp_path):
    for n in (1, 2, 3, 4):
        (tmp_path / f"AMBER_{n}.jpg").write_bytes(b"")
    rows = amber_questions(HERE, str(tmp_path), "a")
    assert len(rows) == 21
    assert rows[0] == {"id": 1, "image": str(tmp_path / "AMBER_1.jpg"), "prompt": "Describe this image.",
                       "task": "generative"}
    assert rows[-1]["task"] == "relation" and rows[-1]["prompt"] == "Is there direct contact between the ship and sky?"
    assert [r["id"] for r in amber_questions(HERE, str(tmp_path), "dr")] == [18, 19, 20, 21]
    (tmp_path / "AMBER_3.jpg").unlink()
    with pytest.raises(ValueError, match="AMBER images not found"):
        amber_questions(HERE, str(tmp_path), "g")


def _responses(tmp_path, obj) -> str:
    path = tmp_path / "responses.json"
    path.write_text(json.dumps(obj))
    return str(path)


@pytest.mark.parametrize("obj, message", [
    ({"id": 1, "response": "x"}, "must be a JSON list"),
    ([{"id": 1, "answer": "x"}], r"row 0 \(id 1\): no 'response' key"),
    ([{"id": "1", "response": "x"}], "'id' must be an AMBER id"),
    ([{"id": 5, "response": "No"}, {"id": 99, "response": "No"}], "row 1: id 99 is not in"),
    ([{"id": 5, "response": None}], "'response' must be a string"),
])
def test_bad_responses(tmp_path, obj, message):
    with pytest.raises(ValueError, match=message):
        evaluate_amber(_responses(tmp_path, obj), HERE)


@pytest.mark.parametrize("missing", ["relation.json", "safe_words.txt", "metrics.txt"])
def test_missing_data_file(tmp_path, missing):
    shutil.copytree(DATA, tmp_path / "data")
    (tmp_path / "data" / missing).unlink()
    with pytest.raises(ValueError, match=missing):
        evaluate_amber(RESPONSES, str(tmp_path))


def test_bad_folder_and_evaluation(tmp_path):
    with pytest.raises(ValueError, match="no annotations.json"):
        evaluate_amber(RESPONSES, str(tmp_path))
    with pytest.raises(ValueError, match="evaluation must be one of"):
        evaluate_amber(RESPONSES, HERE, "x")
    shutil.copytree(DATA, tmp_path / "data")
    (tmp_path / "data" / "metrics.txt").write_text("chair_num=0.001\n")
    with pytest.raises(ValueError, match="no starting value for"):
        evaluate_amber(RESPONSES, str(tmp_path))
