"""DropoutNTP and the correctness pipeline end to end on a tiny model: outputs `mmpo train`
reads unchanged, and a run killed halfway resumes to the very same file."""

import importlib
import json
import random

import pytest

from mmpo.cli import main
from mmpo.data import load_preferences
from mmpo.pairs import CorrectnessConfig, DropoutNTPConfig, correctness, dropout_ntp, load_prompt_rows
from mmpo.pairs.correctness import make_pairs
from mmpo.pairs.dropout_ntp import literal_prefix, text_only_prompt
from mmpo.pairs.store import PairStore
from mmpo.shapes.world import caption, make_scene, render


@pytest.fixture
def prompts(tmp_path):
    (tmp_path / "images").mkdir()
    with open(tmp_path / "prompts.jsonl", "w") as f:
        for i in range(5):
            scene = make_scene(i)
            render(scene, 32).save(tmp_path / "images" / f"{i}.png")
            row = {"id": f"p{i}", "image": f"images/{i}.png", "prompt": "Describe the image.",
                   "answer": str(len(scene.objects))}
            if i != 2:  # row 2 has no chosen: DropoutNTP samples one with the image
                row["chosen"] = ("Shapes:\n" if i == 0 else "") + caption(scene.objects)  # row 0's has a line break
            f.write(json.dumps(row) + "\n")
    return tmp_path


def test_literal_prefix_is_internvls_cut():
    assert literal_prefix("There is a red circle at the top.", 0.5) == "There is a red"
    # split on single spaces: a run of spaces counts its empty pieces, a line break joins two words
    # pieces Step|1:||count.\n\nStep|2:|add.: 6, int(6 * 0.7) = 4 kept, as written
    assert literal_prefix("Step 1:  count.\n\nStep 2: add.", 0.7) == "Step 1:  count.\n\nStep"
    assert literal_prefix("Nothing.", 0.5) == ""  # int(1 * 0.5) = 0 pieces


def test_a_prefix_keeps_its_newlines():
    chosen = "The image shows:\n- a red circle at the top,\n- a blue star in the middle.\n\nNothing else."
    prefix = literal_prefix(chosen, 0.5)
    assert prefix == "The image shows:\n- a red circle at the"  # 8 of its 16 space-separated pieces
    assert chosen.startswith(prefix) and "\n" in prefix


def test_the_continuation_is_asked_without_image_placeholders():
    assert text_only_prompt("<image>\nDescribe the image.") == "Describe the image."
    assert text_only_prompt("Image-1: <image>\nImage-2: <image>\nCompare them.") == "Image-1: \nImage-2: \nCompare them."


def test_dropout_ntp_pairs_keep_the_prefix_and_train(llava, prompts, tiny_models, tmp_path):
    model, processor = llava
    rows = load_prompt_rows(str(prompts / "prompts.jsonl"))
    out = str(prompts / "pairs.jsonl")
    store = dropout_ntp(model, processor, rows, out, DropoutNTPConfig(max_new_tokens=8, batch_size=2))
    pairs = [json.loads(line) for line in open(out)]
    assert len(pairs) + sum(store.drops.values()) == 5
    by_source = {p["source_id"]: p for p in pairs}
    first = by_source["p0"]
    assert first["chosen"] == "Shapes:\n" + caption(make_scene(0).objects)
    prefix = literal_prefix(first["chosen"], 0.5)
    assert first["rejected"].startswith(prefix) and prefix.startswith("Shapes:\nThere ")  # the line break kept
    assert first["rejected"] != first["chosen"]
    assert load_preferences(out).report.rows_kept == len(pairs)  # `mmpo train` reads it as it is
    rc = main(["train", "--model", tiny_models["llava"], "--data", out, "--output_dir", str(tmp_path / "run"),
               "--max_steps", "1", "--per_device_train_batch_size", "2", "--report_to", "none",
               "--save_strategy", "no", "--disable_tqdm", "true", "--lora_r", "4"])
    assert rc == 0


class Killed(Exception):
    pass


def test_resume_after_a_kill_gives_the_same_file(llava, prompts, monkeypatch):
    model, processor = llava
    rows = load_prompt_rows(str(prompts / "prompts.jsonl"))
    config = DropoutNTPConfig(max_new_tokens=6, batch_size=2, seed=3)
    whole = str(prompts / "whole.jsonl")
    dropout_ntp(model, processor, rows, whole, config)

    halfway = str(prompts / "half.jsonl")
    original_add = PairStore.add
    calls = {"n": 0}

    def add_then_die(self, key, pairs, drops):
        calls["n"] += 1
        if calls["n"] == 3:  # die mid-write: rows of the third input written, a torn line, no done mark
            with open(self.out_path, "a") as f:
                f.write(json.dumps(dict(pairs[0], source_id=key)) + "\n" if pairs else "")
                f.write('{"id": "torn')
            raise Killed()
        return original_add(self, key, pairs, drops)

    monkeypatch.setattr(PairStore, "add", add_then_die)
    with pytest.raises(Killed):
        dropout_ntp(model, processor, rows, halfway, config)
    monkeypatch.setattr(PairStore, "add", original_add)
    store = dropout_ntp(model, processor, rows, halfway, config)
    assert store.resumed == 2
    assert open(halfway).read() == open(whole).read()
    ids = [json.loads(line)["id"] for line in open(halfway)]
    assert len(ids) == len(set(ids))


def cot(reasoning: str, answer: str) -> str:
    """A response that passes InternVL's format checks."""
    return f"{reasoning}\nLet me check once more.\nFinal answer: {answer}"


def test_a_letter_answer_question_yields_pairs():
    """Every sentence contains the letter "a": only the extracted answers decide the pair."""
    right = cot("A red circle is at the top, and a blue star is at the bottom.", "A")
    wrong = cot("A blue star is a shape at the bottom.", "B")
    found = make_pairs([right, wrong, wrong], "A", max_pairs=15, seed="0")
    assert found.pairs == [(right, wrong)]  # the repeated pair is written once
    assert found.drops == {"duplicate_pair": 1}


def test_skip_when_the_correct_answer_is_inside_the_wrong_one():
    """InternVL's entailment skip: the correct response's answer, lower-cased, a substring of
    the wrong one's (the wrong one may be right but worded otherwise)."""
    chosen = cot("Three circles.", "3")
    inside = cot("Thirteen circles.", "13")  # "3" in "13": skipped, though 13 is wrong
    unrelated = cot("Four circles.", "4")
    found = make_pairs([chosen, inside, unrelated], "3", max_pairs=15, seed="0")
    assert found.pairs == [(chosen, unrelated)] and found.drops == {"answer_in_rejected": 1}
    found = make_pairs([cot("It is Paris.", "Paris"), cot("It is in France.", "PARIS, France")], "paris", 15, "0")
    assert found.pairs == [] and found.drops == {"answer_in_rejected": 1}


def test_a_direct_answer_is_never_chosen():
    found = make_pairs(["Final answer: A", cot("A blue star.", "B")], "A", max_pairs=15, seed="0")
    assert found.pairs == [] and found.format_pairs == []
    assert found.drops == {"unparseable_response": 1, "no_correct_response": 1}


def test_pairs_are_sampled_up_to_max_pairs_with_a_seed():
    right = [cot(f"Count {i}.", "1") for i in range(4)]
    wrong = [cot(f"Count {i}.", "2") for i in range(4)]
    first = make_pairs(right + wrong, "1", max_pairs=5, seed="0|q1").pairs
    assert len(first) == 5 and len(set(first)) == 5
    assert all(c in right and r in wrong for c, r in first)
    assert make_pairs(right + wrong, "1", max_pairs=5, seed="0|q1").pairs == first  # deterministic
    assert make_pairs(right + wrong, "1", max_pairs=5, seed="1|q1").pairs != first  # the seed draws


def test_format_negatives_are_capped_like_correctness_pairs():
    right = cot("One circle.", "1")
    broken = [f"It is {i} circles." for i in range(30)]  # no answer label: format negatives
    found = make_pairs([right, *broken], "1", max_pairs=4, seed="0|q")
    assert len(found.format_pairs) == 4 and all(c == right and r in broken for c, r in found.format_pairs)
    assert make_pairs([right, *broken], "1", max_pairs=4, seed="0|q").format_pairs == found.format_pairs
    assert found.drops["unparseable_response"] == 30


def test_a_no_answer_gets_no_format_pairs():
    """InternVL reads a format negative's answer as "None": "no" is inside it (its quirk, kept)."""
    found = make_pairs([cot("The circle is blue.", "No"), "It is not red."], "no", max_pairs=15, seed="0")
    assert found.format_pairs == [] and found.format_drops == {"answer_in_rejected": 1}


def test_correctness_pipeline_end_to_end(llava, prompts, monkeypatch):
    model, processor = llava
    rows = load_prompt_rows(str(prompts / "prompts.jsonl"), need="answer")

    def fake_generate(model, processor, requests, config):  # the tiny model can't count yet
        rng = random.Random(config.seed)
        return [rng.choice([cot("Counting.", "1"), cot("Counting.", "2"), cot("Counting.", "3"), "\\boxed{2}", "hmm"])
                for _ in requests]

    monkeypatch.setattr(importlib.import_module("mmpo.pairs.correctness"), "generate", fake_generate)
    out = str(prompts / "cor.jsonl")
    store = correctness(model, processor, rows, out, CorrectnessConfig(samples=8, max_pairs=3))
    pairs = [json.loads(line) for line in open(out)]
    assert pairs and all(len([p for p in pairs if p["source_id"] == r.id]) <= 3 for r in rows)
    truth = {r.id: r.answer for r in rows}
    from mmpo.pairs import is_correct

    assert all(is_correct(p["chosen"], truth[p["source_id"]]) and not is_correct(p["rejected"], truth[p["source_id"]])
               for p in pairs)
    assert load_preferences(out).report.rows_kept == len(pairs)
    fmt = [json.loads(line) for line in open(prompts / "cor.format.jsonl")]
    assert fmt and all(p["rejected"] in ("hmm", "\\boxed{2}") for p in fmt)
    assert all(len([p for p in fmt if p["source_id"] == r.id]) <= 3 for r in rows)
    assert "unparseable_response" in store.summary(len(rows))


def test_missing_answer_is_a_clear_error(prompts):
    from mmpo.data import DataError

    (prompts / "noanswer.jsonl").write_text('{"image": "images/0.png", "question": "How many?"}\n')
    with pytest.raises(DataError, match=r"noanswer.jsonl:1: field 'answer': is missing"):
        load_prompt_rows(str(prompts / "noanswer.jsonl"), need="answer")


def test_pairs_cli_dropout_ntp(prompts, tiny_models, capsys):
    out = prompts / "cli_pairs.jsonl"
    rc = main(["pairs", "dropout-ntp", "--model", tiny_models["llava"], "--data", str(prompts / "prompts.jsonl"),
               "--out", str(out), "--max_new_tokens", "6", "--batch_size", "4", "--device", "cpu"])
    assert rc == 0
    assert "5 inputs, 5 done" in capsys.readouterr().out
    assert load_preferences(str(out)).report.rows_kept >= 1
    assert main(["pairs", "nope"]) == 2


def test_sampling_is_not_narrowed_by_the_checkpoints_generation_config(llava, monkeypatch):
    """Qwen2-VL's generation_config.json sets top_k 1: sampled responses must still differ."""
    from PIL import Image

    from mmpo.pairs.generate import GenerationConfig, GenerationRequest, generate

    model, processor = llava
    monkeypatch.setattr(model.generation_config, "top_k", 1)
    request = GenerationRequest([Image.new("RGB", (32, 32), "red")], "Describe the image.")
    texts = generate(model, processor, [request] * 6, GenerationConfig(max_new_tokens=6, batch_size=6, seed=0))
    assert len(set(texts)) > 1


def test_pairs_cli_correctness_on_a_real_model(prompts, tiny_models, capsys):
    """Real sampling, end to end: the tiny model never writes InternVL's format, so every
    response is a format negative and no question has a correct one."""
    out = prompts / "cli_cor.jsonl"
    rc = main(["pairs", "correctness", "--model", tiny_models["llava"], "--data", str(prompts / "prompts.jsonl"),
               "--out", str(out), "--samples", "2", "--max_new_tokens", "4", "--batch_size", "2", "--device", "cpu"])
    assert rc == 0
    summary = capsys.readouterr().out
    assert "5 inputs, 5 done" in summary and "10 unparseable_response, 5 no_correct_response" in summary
    assert out.read_text() == "" and (prompts / "cli_cor.format.jsonl").read_text() == ""
