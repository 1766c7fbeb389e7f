"""PreferenceBatch: its groups, splitting per-sequence values, selecting groups as a batch
of their own (same log-probs as inside the full batch, Qwen-VL's grids included), device
moves, and the dict of model inputs it reads as."""

import pytest
import torch

from mmpo.data import CorruptionConfig, load_preferences
from mmpo.data.batch import PreferenceBatch
from mmpo.data.collate import PreferenceCollator
from mmpo.model import load_model, load_processor, sequence_logps
from mmpo.model.logps import encode_image_sets


@pytest.fixture(scope="module")
def rows(pref_file):
    return list(load_preferences(pref_file))[:2]


def test_groups_split_and_rows(llava, rows):
    _, processor = llava
    batch = PreferenceCollator(processor, corruption=CorruptionConfig(), epoch=3)(rows)
    assert isinstance(batch, PreferenceBatch)
    assert batch.groups == ("chosen", "rejected", "corrupted") and batch.rows == 2
    assert batch.row_ids == [r.id for r in rows] and batch.row_epochs == [3, 3]
    parts = batch.split(torch.arange(6.0))
    assert {k: v.tolist() for k, v in parts.items()} == {"chosen": [0, 1], "rejected": [2, 3], "corrupted": [4, 5]}
    assert batch.split(None) == {}
    assert batch.response_lengths()[batch.group("chosen")].tolist() == batch.response_lengths()[4:].tolist()
    single = PreferenceCollator(processor).responses(rows, ["a", "b"])
    assert single.groups == ("response",) and single.input_ids.shape[0] == 2


def test_reads_as_the_dict_of_model_inputs(llava, rows):
    _, processor = llava
    plain = PreferenceCollator(processor)(rows)
    assert list(plain) == ["input_ids", "attention_mask", "response_mask", "pixel_values", "row_ids", "row_epochs"]
    shared = PreferenceCollator(processor, share_images=True)(rows)
    assert shared["vision_keys"] == ["pixel_values"] and "image_sets" in shared and "image_sets" not in plain
    assert shared["pixel_values"].shape[0] == 2 and shared.image_sets.tolist() == [0, 1, 0, 1]
    assert dict(shared)["input_ids"] is shared.input_ids and shared.get("labels") is None and len(shared) == 10
    assert shared["text_vision_keys"] == []  # LLaVA: the text model reads no vision input once handed features
    moved = shared.to("cpu")
    assert isinstance(moved, PreferenceBatch) and torch.equal(moved.vision["pixel_values"], shared["pixel_values"])
    assert moved.groups == shared.groups and torch.equal(moved.image_sets, shared.image_sets)


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_selected_groups_score_as_in_the_full_batch(tiny_models, rows, family):
    model = load_model(tiny_models[family], dtype=torch.float32).eval()
    batch = PreferenceCollator(load_processor(tiny_models[family]), corruption=CorruptionConfig(), share_images=True)(rows)
    with torch.no_grad():
        features = encode_image_sets(model, batch)
        full = batch.split(sequence_logps(model, batch, image_features=features)[0])
        corrupted, corrupted_features = batch.select(("corrupted",), features)
        real, real_features = batch.select(("chosen", "rejected"), features)
        assert corrupted.groups == ("corrupted",) and corrupted.image_sets.tolist() == [0, 1]
        assert real.image_sets.tolist() == [0, 1, 0, 1] and len(real_features) == 2
        assert corrupted_features == features[2:] and not corrupted.vision.get("pixel_values")
        torch.testing.assert_close(sequence_logps(model, corrupted, image_features=corrupted_features)[0],
                                   full["corrupted"])
        real_logps = real.split(sequence_logps(model, real, image_features=real_features)[0])
    torch.testing.assert_close(real_logps["chosen"], full["chosen"])
    torch.testing.assert_close(real_logps["rejected"], full["rejected"])


def test_select_needs_shared_images(llava, rows):
    batch = PreferenceCollator(llava[1], corruption=CorruptionConfig())(rows)
    with pytest.raises(ValueError, match="share_images"):
        batch.select(("corrupted",))
