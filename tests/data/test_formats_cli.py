"""Each public preference set, in its real layout, trains one step from the CLI, and
`mmpo data inspect` shows it as the model will see it."""

import json

import pytest

from mmpo.cli import main
from tests.data import real_layouts
from tests.train.test_train import lora_b_norm

ONE_STEP = ["--max_steps", "1", "--warmup_steps", "0", "--learning_rate", "1e-3", "--per_device_train_batch_size", "2",
            "--gradient_accumulation_steps", "1", "--lora_r", "4", "--lora_alpha", "8", "--report_to", "none",
            "--save_strategy", "no", "--disable_tqdm", "true", "--logging_steps", "1"]


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


@pytest.mark.parametrize("layout", sorted(real_layouts.LAYOUTS))
def test_every_layout_trains_one_step_from_the_cli(tiny_models, tmp_path, monkeypatch, capsys, layout):
    data = real_layouts.LAYOUTS[layout](str(tmp_path / "data"))
    if layout == "mmpr":
        monkeypatch.chdir(tmp_path / "data")  # InternVL's scripts run from the folder that holds MMPR-v1.2/
    family = "qwen2_vl" if layout == "mmpr" else "llava"  # MMPR's multi-image row, images in place
    out = tmp_path / "run"
    assert main(["train", "--model", tiny_models[family], "--data", data, "--objective", "mdpo",
                 "--output_dir", str(out), *ONE_STEP]) == 0
    printed = capsys.readouterr().out
    assert "rows kept" in printed
    assert lora_b_norm(str(out)) > 0  # LoRA B starts at zero: the step trained the adapter
    if layout in ("mmpr", "vlfeedback"):  # always-skipped rows are listed for the user
        skipped = [json.loads(line) for line in open(out / "skipped.jsonl")]
        assert [r["reason"] for r in skipped] == ["text_only" if layout == "mmpr" else "no_preference"]


def test_inspect_shows_the_templated_prompt_as_the_model_sees_it(tiny_models, tmp_path, capsys):
    data = real_layouts.mdpo(str(tmp_path))
    assert main(["data", "inspect", data, "--model", tiny_models["qwen2_vl"], "--rows", "1"]) == 0
    out = capsys.readouterr().out
    assert "format: mdpo" in out and "rows: 4 read, 4 kept, 0 skipped" in out
    assert "note: a vicuna chat template was taken out of 4 prompt(s)" in out
    assert ("<|im_start|>user\n    <|vision_start|><|image_pad|>×4<|vision_end|>what is shown in the image ?"
            "<|im_end|>\n    <|im_start|>assistant\n") in out
    assert "A chat between" not in out and "▶a red circle at the top left .<|im_end|>" in out


def test_inspect_shows_a_multi_image_row_and_what_is_skipped(tiny_models, tmp_path, monkeypatch, capsys):
    meta = real_layouts.mmpr(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["data", "inspect", meta, "--model", tiny_models["idefics3"], "--rows", "1"]) == 0
    out = capsys.readouterr().out
    assert "rows: 5 read, 4 kept, 1 skipped" in out and "images: 5 in the kept rows (1 row(s) with several)" in out
    assert "1 text_only (always skipped); first: " in out and "annotations/scienceqa_correctness.jsonl:4" in out
    assert "Image-1: <fake_token_around_image><global-img><image>×4<fake_token_around_image>\n    Image-2: " in out
    assert main(["data", "inspect", meta]) == 0  # without a model: the rows as read
    assert "[images: " in capsys.readouterr().out


def test_inspect_lists_rows_that_would_stop_training(tmp_path, capsys):
    real_layouts.save_images(str(tmp_path / "img"), 1)
    rows = [{"id": "a", "image": "img/0000.jpg", "prompt": "q ?", "chosen": "x", "rejected": "y"},
            {"id": "b", "image": "img/missing.jpg", "prompt": "q ?", "chosen": "x", "rejected": "y"}]
    real_layouts.write_jsonl(str(tmp_path / "p.jsonl"), rows)
    assert main(["data", "inspect", str(tmp_path / "p.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "1 missing_image (stops `mmpo train` unless --skip_invalid_rows); first: " in out and "p.jsonl:2" in out


def test_inspect_of_data_with_no_usable_row_still_reports(tmp_path, capsys):
    real_layouts.write_jsonl(str(tmp_path / "t.jsonl"), [{"messages": [{"role": "user", "content": "q"},
                                                                        {"role": "assistant", "content": "x"}],
                                                           "rejected_response": "y"}])
    assert main(["data", "inspect", str(tmp_path / "t.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "format: swift" in out and "rows: 1 read, 0 kept, 1 skipped" in out and "1 text_only" in out
