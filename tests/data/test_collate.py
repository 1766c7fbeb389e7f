"""Batch layout, the truncation rule, the no-image ablation and deterministic m′."""

import pytest
import torch

from mmpo.data import CorruptionConfig, DataError, load_preferences
from mmpo.data.collate import PreferenceCollator
from mmpo.model import load_processor


@pytest.fixture(scope="module")
def llava_processor(tiny_models):
    return load_processor(tiny_models["llava"])


def image_token_count(batch, processor):
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    return int((batch["input_ids"] == image_id).sum())


def test_layout_and_response_mask(llava_processor, pref_file):
    rows = list(load_preferences(pref_file))[:2]
    batch = PreferenceCollator(llava_processor)(rows)
    assert batch["input_ids"].shape[0] == 4 and batch["pixel_values"].shape[0] == 4
    tok = llava_processor.tokenizer
    for j, text in enumerate([rows[0].chosen, rows[1].chosen, rows[0].rejected, rows[1].rejected]):
        response = tok.decode(batch["input_ids"][j][batch["response_mask"][j]])
        assert response == text + "</s>"
    assert image_token_count(batch, llava_processor) == 4 * 16


def test_response_is_truncated_never_the_prompt(llava_processor, pref_file):
    rows = list(load_preferences(pref_file))[:1]
    full = PreferenceCollator(llava_processor)(rows)
    prompt_len = int((~full["response_mask"][0] & full["attention_mask"][0].bool()).sum())
    cut = PreferenceCollator(llava_processor, max_length=prompt_len + 3)(rows)
    assert cut["input_ids"].shape[1] == prompt_len + 3
    assert int(cut["response_mask"][0].sum()) == 3
    assert image_token_count(cut, llava_processor) == 2 * 16
    with pytest.raises(DataError, match=r"pairs.jsonl:1: field 'prompt': is \d+ tokens with its image"):
        PreferenceCollator(llava_processor, max_length=prompt_len)(rows)


def test_no_image_removes_the_image(llava_processor, pref_file):
    rows = list(load_preferences(pref_file))[:2]
    batch = PreferenceCollator(llava_processor, no_image=True, corruption=CorruptionConfig())(rows)
    assert "pixel_values" not in batch
    assert image_token_count(batch, llava_processor) == 0
    assert batch["input_ids"].shape[0] == 4  # no corrupted-image branch without an image


def test_corrupted_image_is_deterministic_per_epoch(llava_processor, pref_file):
    rows = list(load_preferences(pref_file))[:3]
    collator = PreferenceCollator(llava_processor, corruption=CorruptionConfig(seed=5))
    a, b = collator(rows), collator(rows)
    assert torch.equal(a["pixel_values"], b["pixel_values"])
    real, corrupted = a["pixel_values"][:3], a["pixel_values"][6:]
    assert not torch.equal(real, corrupted)
    collator.epoch = 1
    assert not torch.equal(collator(rows)["pixel_values"][6:], corrupted)


def test_explicit_rejected_image_is_used(llava_processor, pref_file, tmp_path):
    from PIL import Image

    rows = list(load_preferences(pref_file))[:1]
    path = tmp_path / "neg.png"
    Image.new("RGB", (32, 32), (0, 0, 0)).save(path)
    rows[0].rejected_images = [str(path)]
    batch = PreferenceCollator(llava_processor, corruption=CorruptionConfig())(rows)
    black = llava_processor(text=["USER: <image>\nx ASSISTANT:"], images=[[Image.open(path)]], return_tensors="pt")
    assert torch.allclose(batch["pixel_values"][2], black["pixel_values"][0])


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "idefics3"])
def test_prompt_length_at_load_is_the_batch_prompt_length(tiny_models, tmp_path, family):
    """The length counted at load (no pixels decoded: text tokens plus what the processor
    adds for images of these sizes) is the one the batch has, for every family, image
    count and size."""
    from PIL import Image

    from mmpo.data.schema import PreferenceExample

    processor = load_processor(tiny_models[family])
    collator = PreferenceCollator(processor)
    for k, (sizes, prompt) in enumerate([([(32, 32)], "Describe the image."), ([(64, 40), (40, 96)], "Compare them."),
                                         ([(57, 31)], "A longer question, with punctuation: does it count? " * 3)]):
        paths = []
        for j, size in enumerate(sizes):
            paths.append(str(tmp_path / f"{k}-{j}.png"))
            Image.new("RGB", size, (9, 99, 199)).save(paths[-1])
        row = PreferenceExample(id=str(k), images=paths, prompt=prompt, chosen="yes", rejected="no", source=f"f:{k}")
        batch = collator([row])
        in_batch = int((batch["attention_mask"][0].bool() & ~batch["response_mask"][0]).sum())
        assert collator.prompt_length(prompt, paths) == in_batch, (family, sizes)


def test_check_row_raises_the_batch_error_at_load(llava_processor, pref_file):
    rows = list(load_preferences(pref_file))[:1]
    length = PreferenceCollator(llava_processor).prompt_length(rows[0].prompt, rows[0].images)
    PreferenceCollator(llava_processor, max_prompt_length=length).check_row(rows[0])
    with pytest.raises(DataError, match=rf"pairs.jsonl:1: field 'prompt': is {length} tokens with its image") as err:
        PreferenceCollator(llava_processor, max_prompt_length=length - 1).check_row(rows[0])
    assert err.value.reason == "prompt_too_long" and "--skip_invalid_rows" in str(err.value)
    no_image = PreferenceCollator(llava_processor, no_image=True, max_prompt_length=length - 1)
    no_image.check_row(rows[0])  # without its 16 image tokens the prompt fits


def test_rows_carry_their_epoch(llava_processor, pref_file):
    """A row handed over with its epoch gets that epoch's m′, whatever the collator's own
    ``epoch`` says (so a worker process needs no state from the trainer)."""
    rows = list(load_preferences(pref_file))[:2]
    collator = PreferenceCollator(llava_processor, corruption=CorruptionConfig(seed=5))
    epoch_one = collator([(row, 1) for row in rows])
    collator.epoch = 1
    assert torch.equal(epoch_one["pixel_values"], collator(rows)["pixel_values"])
    assert epoch_one["row_epochs"] == [1, 1] and collator(rows)["row_epochs"] == [1, 1]
    collator.epoch = 0
    assert not torch.equal(epoch_one["pixel_values"][4:], collator(rows)["pixel_values"][4:])
    data = load_preferences(pref_file)
    assert data[(3, 2)] == (data[3], 2)
