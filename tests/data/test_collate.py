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
