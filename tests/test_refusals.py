"""Issue 15, "nothing lost, nothing silent": each bad input that used to pass silently or
end in a bare traceback, tried the way a user meets it (`mmpo train` / `mmpo pairs` on a
tiny LLaVA), now refused with a message naming file, line and field (or the option), or
handled faithfully. One test per row of the issue's table."""

import json
import math
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from mmpo.cli import main

FAST = ["--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--lora_r", "4",
        "--lora_alpha", "8", "--logging_steps", "1", "--report_to", "none", "--disable_tqdm", "true",
        "--warmup_steps", "0"]


@pytest.fixture
def data_dir(pref_file, tmp_path):
    """A copy of the shared preference file and its images, to damage."""
    root = tmp_path / "data"
    shutil.copytree(os.path.dirname(pref_file), root)
    return root


def rows_of(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def write_rows(path, rows, raw_lines=()):
    with open(path, "wb") as f:
        for row in rows:
            f.write(json.dumps(row).encode() + b"\n")
        for line in raw_lines:
            f.write(line + b"\n")


def train(tiny_models, data, out, *extra, max_steps=2):
    return main(["train", "--model", tiny_models["llava"], "--data", str(data), "--output_dir", str(out),
                 "--max_steps", str(max_steps), *FAST, *extra])


def finite_adapter(path):
    return all(torch.isfinite(t).all() for t in load_file(os.path.join(path, "adapter_model.safetensors")).values())


# -- a learning rate that makes the loss diverge ------------------------------------------
def test_divergence_stops_the_run_naming_step_rows_and_last_good_checkpoint(tiny_models, pref_file, tmp_path, capsys):
    out = tmp_path / "run"
    rc = train(tiny_models, pref_file, out, "--learning_rate", "1e20", "--save_steps", "1", max_steps=4)
    err = capsys.readouterr().err
    assert rc == 3
    assert "training diverged at step 2: the loss is nan" in err
    assert "in the batch of rows s" in err and "pairs.jsonl:" in err  # the rows, with their lines
    assert f"the last good checkpoint is {out / 'checkpoint-1'}" in err
    assert not (out / "adapter_model.safetensors").exists()  # no NaN adapter as the result
    assert sorted(os.listdir(out)) == ["checkpoint-1"] and finite_adapter(out / "checkpoint-1")


def test_skipping_nonfinite_batches_is_counted_and_logs_the_real_loss(tiny_models, pref_file, tmp_path):
    from mmpo.train import TrainConfig
    from mmpo.train import train as train_api

    result = train_api(TrainConfig(output_dir=str(tmp_path / "run"), model=tiny_models["llava"], data=pref_file,
                                   max_steps=3, per_device_train_batch_size=2, gradient_accumulation_steps=1,
                                   learning_rate=1e20, warmup_steps=0, lora_r=4, lora_alpha=8, logging_steps=1,
                                   report_to="none", save_strategy="no", disable_tqdm=True,
                                   skip_nonfinite_batches=True))
    losses = [h["loss"] for h in result.history]
    assert math.isfinite(losses[0]) and all(math.isnan(x) for x in losses[1:])  # never a silent 0
    assert [h["nonfinite_skipped"] for h in result.history] == [0, 1, 2]
    assert all(math.isnan(h["grad_norm"]) for h in result.history[1:])
    assert finite_adapter(tmp_path / "run")


# -- 16-bit grayscale PNG -------------------------------------------------------------------
def test_sixteen_bit_grey_is_scaled_in_train_and_pairs(tiny_models, data_dir):
    from tests.data.test_images import sixteen_bit_png

    from mmpo.data import load_preferences
    from mmpo.data.collate import PreferenceCollator
    from mmpo.model import load_processor
    from mmpo.pairs import load_prompt_rows

    gradient = np.linspace(0, 65535, 32 * 32).round().astype(np.uint16).reshape(32, 32)
    (data_dir / "images" / "grey16.png").write_bytes(sixteen_bit_png(gradient))
    eight_bit = Image.fromarray((gradient >> 8).astype(np.uint8)).convert("RGB")
    write_rows(data_dir / "grey.jsonl", [dict(rows_of(data_dir / "pairs.jsonl")[0], image="images/grey16.png")])
    processor = load_processor(tiny_models["llava"])
    row = load_preferences(str(data_dir / "grey.jsonl"))[0]
    batch = PreferenceCollator(processor)([row])  # what `mmpo train` feeds the model
    expected = processor(text=["<image>"], images=[[eight_bit]], return_tensors="pt")["pixel_values"][0]
    assert torch.allclose(batch["pixel_values"][0], expected)
    prompt_row = load_prompt_rows(str(data_dir / "grey.jsonl"), check_images="full")[0]  # what `mmpo pairs` uses
    pixels = np.asarray(prompt_row.load_images()[0])
    assert (pixels == 255).mean() < 0.01 and np.array_equal(pixels, np.asarray(eight_bit))


# -- a 30000×30000 PNG; a 10000×10000 one -------------------------------------------------------
def test_oversize_images_are_refused_naming_file_line_and_size(tiny_models, data_dir, tmp_path, capsys):
    from tests.data.test_images import png_bytes

    (data_dir / "images" / "bomb.png").write_bytes(png_bytes(30000, 30000, b"\x00" * 1000))  # 875 KB in the wild
    (data_dir / "images" / "big.png").write_bytes(png_bytes(10000, 10000, b"\x00" * 1000))
    rows = rows_of(data_dir / "pairs.jsonl")
    write_rows(data_dir / "p.jsonl", [dict(rows[0], image="images/bomb.png"), *rows[1:]])
    assert train(tiny_models, data_dir / "p.jsonl", tmp_path / "a") == 1
    err = capsys.readouterr().err
    assert "p.jsonl:1: field 'image': image" in err and "bomb.png is too large to decode" in err
    assert "900000000 pixels" in err and "Traceback" not in err
    write_rows(data_dir / "p.jsonl", [*rows[:2], dict(rows[2], image="images/big.png"), *rows[3:]])
    assert train(tiny_models, data_dir / "p.jsonl", tmp_path / "b") == 1
    assert ("p.jsonl:3: field 'image': image" in (err := capsys.readouterr().err)
            and "is 10000×10000 = 100,000,000 pixels, over the --max_image_pixels limit of 64,000,000" in err)
    assert main(["pairs", "dropout-ntp", "--model", tiny_models["llava"], "--data", str(data_dir / "p.jsonl"),
                 "--out", str(data_dir / "out.jsonl"), "--device", "cpu"]) == 1
    assert "p.jsonl:3: field 'image'" in capsys.readouterr().err and not (data_dir / "out.jsonl").exists()


# -- a prompt longer than the limit ---------------------------------------------------------
def test_prompt_over_the_limit_is_refused_at_load_in_train_and_pairs(tiny_models, data_dir, tmp_path, capsys):
    rows = rows_of(data_dir / "pairs.jsonl")
    write_rows(data_dir / "p.jsonl", [*rows[:4], dict(rows[4], prompt="Describe the image. " * 20), rows[5]])
    out = tmp_path / "run"
    assert train(tiny_models, data_dir / "p.jsonl", out, "--max_prompt_length", "60", "--save_steps", "1") == 1
    assert "p.jsonl:5: field 'prompt': is 1" in (err := capsys.readouterr().err) and "tokens with its image" in err
    assert not os.path.exists(out / "checkpoint-1")  # refused before training, not at the step it came up
    rc = main(["pairs", "dropout-ntp", "--model", tiny_models["llava"], "--data", str(data_dir / "p.jsonl"),
               "--out", str(data_dir / "out.jsonl"), "--max_prompt_length", "60", "--device", "cpu"])
    assert rc == 1 and "p.jsonl:5: field 'prompt'" in capsys.readouterr().err
    assert not (data_dir / "out.jsonl").exists()  # nothing generated


def test_pairs_checks_the_prompt_its_pairs_will_carry(tiny_models, data_dir):
    """The correctness pipeline writes the question plus its answer instruction as the
    prompt: that is the one measured against the limit."""
    from mmpo.cli import PairsArgs, load_pair_inputs
    from mmpo.data import DataError
    from mmpo.data.collate import PreferenceCollator
    from mmpo.model import load_processor
    from mmpo.pairs import CorrectnessConfig

    write_rows(data_dir / "qa.jsonl", [{"id": "q", "image": "images/s0.png", "question": "How many?", "answer": 1}])
    processor = load_processor(tiny_models["llava"])
    config = CorrectnessConfig()
    image = [str(data_dir / "images" / "s0.png")]
    bare = PreferenceCollator(processor).prompt_length("How many?", image)
    written = PreferenceCollator(processor).prompt_length(config.pair_prompt("How many?"), image)
    assert written > bare
    args = PairsArgs(model=tiny_models["llava"], data=str(data_dir / "qa.jsonl"), out=str(data_dir / "o.jsonl"),
                     max_prompt_length=written)
    assert len(load_pair_inputs(args, config, processor, "answer")) == 1
    args.max_prompt_length = written - 1
    with pytest.raises(DataError, match=rf"qa.jsonl:1: field 'prompt': is {written} tokens"):
        load_pair_inputs(args, config, processor, "answer")


# -- a line with invalid UTF-8 --------------------------------------------------------------------
def test_invalid_utf8_names_file_and_line_in_train_and_pairs(tiny_models, data_dir, tmp_path, capsys):
    rows = rows_of(data_dir / "pairs.jsonl")
    write_rows(data_dir / "p.jsonl", rows[:2], [json.dumps(rows[2]).encode().replace(b"Describe", b"Descr\xffbe")])
    assert train(tiny_models, data_dir / "p.jsonl", tmp_path / "run") == 1
    assert "p.jsonl:3: is not valid UTF-8 (byte 0xff at column" in capsys.readouterr().err
    assert main(["pairs", "dropout-ntp", "--model", tiny_models["llava"], "--data", str(data_dir / "p.jsonl"),
                 "--out", str(data_dir / "out.jsonl"), "--device", "cpu"]) == 1
    assert "p.jsonl:3: is not valid UTF-8" in capsys.readouterr().err


# -- --resume_from_checkpoint on a damaged checkpoint -------------------------------------------
def test_resume_refuses_a_damaged_checkpoint_and_latest_skips_it(tiny_models, pref_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(tiny_models, pref_file, out, "--learning_rate", "1e-3", "--save_steps", "1") == 0
    adapter = out / "checkpoint-2" / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:1000])  # truncated, as by a full disk
    capsys.readouterr()
    rc = train(tiny_models, pref_file, out, "--resume_from_checkpoint", str(out / "checkpoint-2"), max_steps=3)
    err = capsys.readouterr().err
    assert rc == 1 and f"{adapter} is damaged" in err and "Traceback" not in err
    rc = train(tiny_models, pref_file, out, "--resume_from_checkpoint", "latest", max_steps=3)
    printed = capsys.readouterr().out
    assert rc == 0 and f"not resuming from it: {adapter} is damaged" in printed
    assert f"resuming from {out / 'checkpoint-1'}" in printed and "mmpo: 3 steps" in printed


# -- an objective weight that is negative or NaN; corruption parameters out of range -------------
@pytest.mark.parametrize("option, message", [
    (["--objective", "sigmoid:-1"], "--objective 'sigmoid:-1': the weight of 'sigmoid' must be a finite number >= 0"),
    (["--objective", "sigmoid:nan,copo"], "the weight of 'sigmoid' must be a finite number >= 0, got nan"),
    (["--loss_weights", "copo:-0.5"], "--loss_weights 'copo:-0.5': the weight of 'copo' must be"),
    (["--loss_weights", "sigmoid:0,copo:0,anchor:0"], "--loss_weights 'sigmoid:0,copo:0,anchor:0' sets every term"),
    (["--corruption", "noise:-0.5"], "--corruption: bad corruption spec 'noise:-0.5': noise std must be a finite number > 0"),
    (["--corruption", "blur:nan"], "--corruption: bad corruption spec 'blur:nan': blur radius must be a finite"),
    (["--corruption", "mask:1.5"], "--corruption: bad corruption spec 'mask:1.5': mask fraction must be in (0, 1]"),
    (["--corruption", "crop:0.5-0.2"], "--corruption: bad corruption spec 'crop:0.5-0.2': crop area range"),
    (["--beta", "nan"], "--beta must be a finite number > 0, got nan"),
    (["--beta", "-0.1"], "--beta must be a finite number > 0, got -0.1"),
    (["--label_smoothing", "0.7"], "--label_smoothing must be in [0, 0.5)"),
    (["--learning_rate=-1e-5"], "--learning_rate must be a finite number >= 0"),
    (["--max_image_pixels", "0"], "--max_image_pixels must be between 1 and"),
    (["--max_prompt_length", "4096"], "--max_prompt_length must be at least 1 and below --max_length"),
    (["--lora_dropout", "1.5"], "--lora_dropout must be in [0, 1)"),
    (["--data_format", "csv"], "--data_format must be one of auto, mmpo, trl, rlaif-v, mdpo, sharegpt, swift, vlfeedback, mmpr, jsonl, hf"),
])
def test_bad_options_are_refused_at_start_up_naming_the_option(tiny_models, pref_file, tmp_path, capsys, option,
                                                               message):
    assert train(tiny_models, pref_file, tmp_path / "run", *option) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing started


# -- RGBA images ------------------------------------------------------------------------------
def test_transparent_pixels_train_as_white_not_black(tiny_models, data_dir):
    from mmpo.data import load_preferences
    from mmpo.data.collate import PreferenceCollator
    from mmpo.model import load_processor
    from mmpo.pairs import load_prompt_rows

    Image.new("RGBA", (32, 32), (0, 0, 0, 0)).save(data_dir / "images" / "clear.png")
    Image.new("RGB", (32, 32), (255, 255, 255)).save(data_dir / "images" / "white.png")
    rows = rows_of(data_dir / "pairs.jsonl")
    write_rows(data_dir / "p.jsonl", [dict(rows[0], image="images/clear.png"), dict(rows[1], image="images/white.png")])
    batch = PreferenceCollator(load_processor(tiny_models["llava"]))(list(load_preferences(str(data_dir / "p.jsonl"))))
    assert torch.equal(batch["pixel_values"][0], batch["pixel_values"][1])
    clear = load_prompt_rows(str(data_dir / "p.jsonl"))[0].load_images()[0]
    assert np.asarray(clear).min() == 255


# -- skipped rows are located ------------------------------------------------------------------
def test_skipped_rows_are_listed_with_file_line_reason_and_message(tiny_models, data_dir, tmp_path, capsys):
    from tests.data.test_images import png_bytes

    (data_dir / "images" / "bomb.png").write_bytes(png_bytes(30000, 30000, b"\x00" * 1000))
    rows = rows_of(data_dir / "pairs.jsonl")
    write_rows(data_dir / "p.jsonl", [rows[0], dict(rows[1], image="images/bomb.png"), rows[2],
                                      dict(rows[3], prompt="Describe the image. " * 20), rows[4], rows[5]],
               [json.dumps(dict(rows[0], id="x")).encode().replace(b"Describe", b"Descr\xffbe"), b"{oops"])
    out = tmp_path / "run"
    assert train(tiny_models, data_dir / "p.jsonl", out, "--skip_invalid_rows", "--max_prompt_length", "60",
                 "--save_strategy", "no", max_steps=1) == 0
    printed = capsys.readouterr().out
    assert "4 of 8 rows kept; skipped 4" in printed and str(out / "skipped.jsonl") in printed
    skipped = rows_of(out / "skipped.jsonl")
    path = str(data_dir / "p.jsonl")
    assert [(r["file"], r["line"], r["reason"]) for r in skipped] == [
        (path, 2, "image_too_large"), (path, 4, "prompt_too_long"), (path, 7, "bad_encoding"), (path, 8, "bad_json")]
    assert all(r["message"].startswith(f"{path}:{r['line']}") for r in skipped)
    pairs_out = data_dir / "pairs_out.jsonl"
    assert main(["pairs", "dropout-ntp", "--model", tiny_models["llava"], "--data", path, "--out", str(pairs_out),
                 "--skip_invalid_rows", "--max_prompt_length", "60", "--max_new_tokens", "4", "--device", "cpu"]) == 0
    assert [r["line"] for r in rows_of(data_dir / "pairs_out.skipped.jsonl")] == [2, 4, 7, 8]
    assert {r["source_id"] for r in rows_of(pairs_out)} <= {"s0", "s2", "s4", "s5"}
