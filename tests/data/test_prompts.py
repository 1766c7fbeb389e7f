"""A prompt shipped with a chat template applied is reduced to its question; placeholders
that all come first are dropped, others kept in place."""

import pytest

from mmpo.data import DataError
from mmpo.data.prompts import question_text, strip_template


@pytest.mark.parametrize("templated, name", [
    ("A chat between a curious user and an artificial intelligence assistant. USER: <image>\nWhat is it? ASSISTANT:",
     "vicuna"),
    ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\nWhat is it?<|im_end|>\n"
     "<|im_start|>assistant\n", "chatml"),
    ("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n<image>\nWhat is it? [/INST]", "llama2"),
])
def test_known_templates_are_taken_out(templated, name):
    assert strip_template(templated) == ("<image>\nWhat is it?", name)
    assert question_text(templated, 1) == ("What is it?", name)


def test_plain_prompts_are_left_alone():
    for prompt in ("What is it?", "The user said USER: hi. What now?", "Answer ASSISTANT: style"):
        assert strip_template(prompt) == (prompt, None)


def test_placeholders_inside_the_text_are_kept_and_counted():
    assert question_text("Compare <image> with <image>.", 2) == ("Compare <image> with <image>.", None)
    assert question_text("<image>\n<image>\nSame?", 2) == ("Same?", None)
    with pytest.raises(DataError, match="has 1 '<image>' placeholders for 2 image"):
        question_text("Look: <image>", 2, "x.jsonl:3")
