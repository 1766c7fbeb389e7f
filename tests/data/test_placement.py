"""Images go where the data puts them, for each family whose template can place them, and
a prompt that came with a chat template is templated once."""

import pytest

from mmpo.data import load_preferences
from mmpo.data.chat import prompt_text, user_turn
from mmpo.data.collate import PreferenceCollator
from mmpo.model import load_processor
from tests.data import real_layouts

# what each tiny family writes for one image, as its real chat template does
IMAGE_MARK = {"llava": "<image>\n", "qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>", "idefics3": "<image>"}
MULTI = "Image-1: <image>\nImage-2: <image>\nwhich image shows a red circle ?"


def test_user_turn_follows_the_placeholders():
    assert user_turn(2, MULTI)[0]["content"] == [
        {"type": "text", "text": "Image-1: "}, {"type": "image"}, {"type": "text", "text": "\nImage-2: "},
        {"type": "image"}, {"type": "text", "text": "\nwhich image shows a red circle ?"}]
    assert user_turn(1, "plain ?")[0]["content"] == [{"type": "image"}, {"type": "text", "text": "plain ?"}]
    assert user_turn(0, MULTI)[0]["content"] == [{"type": "text", "text": "Image-1: Image-2: which image shows a red "
                                                                         "circle ?"}]  # --no_image


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "idefics3"])
def test_multi_image_row_renders_with_images_in_place(tiny_models, tmp_path, monkeypatch, family):
    processor = load_processor(tiny_models[family])
    meta = real_layouts.mmpr(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    row = load_preferences(meta)[3]
    text = prompt_text(processor, 2, row.prompt)
    mark = IMAGE_MARK[family]
    if family == "llava":  # llava-1.5-hf's template renders every image first
        assert text == f"USER: {mark}{mark}Image-1: \nImage-2: \nwhich image shows a red circle ? ASSISTANT:"
    else:
        assert f"Image-1: {mark}\nImage-2: {mark}\nwhich image shows a red circle ?" in text
    batch = PreferenceCollator(processor)([row])  # the processor expands both images where they are
    image_token = processor.tokenizer.convert_tokens_to_ids({"llava": "<image>", "qwen2_vl": "<|image_pad|>",
                                                             "idefics3": "<image>"}[family])
    per_image = {"llava": 16, "qwen2_vl": 4, "idefics3": 4}[family]
    assert int((batch["input_ids"][0] == image_token).sum()) == 2 * per_image


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "idefics3"])
def test_templated_mdpo_prompt_is_not_templated_twice(tiny_models, tmp_path, family):
    processor = load_processor(tiny_models[family])
    row = load_preferences(real_layouts.mdpo(str(tmp_path)))[0]
    batch = PreferenceCollator(processor)([row])
    text = processor.tokenizer.decode(batch["input_ids"][0][batch["attention_mask"][0].bool()])
    assert "A chat between" not in text and "USER:" not in text.replace("USER: <image>", "", 1)
    assert text.count("ASSISTANT:") == (1 if family == "llava" else 0)
    image_token = {"llava": "<image>", "qwen2_vl": "<|image_pad|>", "idefics3": "<image>"}[family]
    assert text.count(image_token) == {"llava": 16, "qwen2_vl": 4, "idefics3": 4}[family]  # one image, no literal extra
