"""Tiny random-init vision-language models of real Hugging Face families, built offline.

``build_tiny_model("llava", out_dir)`` writes a model + processor that
``AutoModelForImageTextToText`` / ``AutoProcessor`` load like any hub checkpoint: a few
layers, a BPE tokenizer trained locally, a chat template. Users smoke-test configs with
them (``mmpo tiny-model``); our tests and benchmarks use them because nothing can be
downloaded at test time.
"""

from __future__ import annotations

import os
from typing import Iterable

import torch

from mmpo.model.load import save_processor

FAMILIES = ("llava", "qwen2_vl", "idefics3")

_DEFAULT_CORPUS = (
    "a red circle at the top left . a blue square in the middle . a green triangle at the bottom right . "
    "there is one yellow star and two purple hexagons . what is shown in the image ? describe the image . "
    "how many shapes are there ? is there a orange circle ? yes . no . the answer is three . "
    "final answer : 4 . the picture shows a small dog , a large cat and a tree near a house . "
    "colours shapes objects left right top bottom centre middle above below next to the of and with "
)


def train_tokenizer(corpus: Iterable[str], special_tokens: list[str], vocab_size: int = 512):
    """A byte-level BPE tokenizer trained on ``corpus`` here and now, wrapped for transformers.

    ``special_tokens`` become single tokens that BPE never splits (image placeholders, turn
    markers); ``<pad>``, ``<s>``, ``</s>``, ``<unk>`` are always added first.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    base = ["<pad>", "<s>", "</s>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=base + special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_special_tokens=special_tokens,
    )


def _chat_template(user: str, image: str, end_user: str, assistant: str, end_assistant: str,
                   in_order: bool = False) -> str:
    """A Jinja chat template: images of a user turn first, then its text (llava-1.5-hf's
    rule), or, ``in_order``, the parts as given, each image where it is (Qwen2-VL's and
    Idefics3's rule). For images-first content the two write the same text."""
    parts = (
        "{% for part in message['content'] %}{% if part['type'] == 'image' %}" + image + "{% elif part['type'] == 'text' %}"
        "{{ part['text'] }}{% endif %}{% endfor %}"
        if in_order else
        "{% for part in message['content'] %}{% if part['type'] == 'image' %}" + image + "{% endif %}{% endfor %}"
        "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    )
    return (
        "{% for message in messages %}"
        "{% if message['role'] == 'user' %}" + user + "{% elif message['role'] == 'system' %}System: "
        "{% else %}" + assistant + "{% endif %}"
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}" + parts +
        "{% endif %}"
        "{% if message['role'] == 'user' %}" + end_user + "{% elif message['role'] == 'system' %}\n"
        "{% else %}" + end_assistant + "{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}" + assistant + "{% endif %}"
    )


def _text_config(tok, hidden: int, layers: int) -> dict:
    return dict(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    )


def build_tiny_model(
    family: str,
    out_dir: str | None = None,
    *,
    image_size: int = 32,
    patch_size: int = 8,
    hidden: int = 64,
    layers: int = 2,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 512,
    vision_hidden: int = 32,
    seed: int = 0,
):
    """Build (and, with ``out_dir``, save) a tiny random-init model and its processor.

    Image tokens per image: llava (image_size/patch_size)², qwen2_vl that over 4 (2×2
    merge), idefics3 that over 4 (pixel shuffle). Returns ``(model, processor)``.
    """
    from transformers import AutoModelForImageTextToText

    if family not in FAMILIES:
        raise ValueError(f"unknown tiny family {family!r}; choose one of {', '.join(FAMILIES)}")
    torch.manual_seed(seed)
    corpus = list(corpus) if corpus is not None else [_DEFAULT_CORPUS] * 4
    builder = {"llava": _llava, "qwen2_vl": _qwen2_vl, "idefics3": _idefics3}[family]
    config, processor = builder(corpus, vocab_size, image_size, patch_size, hidden, layers, vision_hidden)
    tok = processor.tokenizer
    model = AutoModelForImageTextToText.from_config(config)
    model.generation_config.bos_token_id = tok.bos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.eval()
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        model.save_pretrained(out_dir)
        save_processor(processor, out_dir)
    return model, processor


def _llava(corpus, vocab_size, image_size, patch_size, hidden, layers, vision_hidden):
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaProcessor

    tok = train_tokenizer(corpus, ["<image>"], vocab_size)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    template = _chat_template("USER: ", "<image>\n", " ", "ASSISTANT:", "</s>")
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tok, patch_size=patch_size,
        vision_feature_select_strategy="default", num_additional_image_tokens=1, chat_template=template,
    )
    config = LlavaConfig(
        vision_config=dict(
            model_type="clip_vision_model", hidden_size=vision_hidden, intermediate_size=vision_hidden * 2,
            num_hidden_layers=layers, num_attention_heads=4, image_size=image_size, patch_size=patch_size,
            projection_dim=vision_hidden,
        ),
        text_config=dict(model_type="llama", **_text_config(tok, hidden, layers)),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        multimodal_projector_bias=False,  # a bias lets the projector drown the image in a constant
        tie_word_embeddings=False,
    )
    return config, processor


def _qwen2_vl(corpus, vocab_size, image_size, patch_size, hidden, layers, vision_hidden):
    from transformers import Qwen2VLConfig, Qwen2VLImageProcessor, Qwen2VLProcessor

    from mmpo.model.load import video_processor_optional

    specials = ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>", "<|im_start|>", "<|im_end|>"]
    tok = train_tokenizer(corpus, specials, vocab_size)
    pixels = image_size * image_size
    image_processor = Qwen2VLImageProcessor(
        patch_size=patch_size, merge_size=2, temporal_patch_size=2,
        min_pixels=pixels, max_pixels=pixels, size={"shortest_edge": pixels, "longest_edge": pixels},
    )
    template = _chat_template(
        "<|im_start|>user\n", "<|vision_start|><|image_pad|><|vision_end|>", "<|im_end|>\n",
        "<|im_start|>assistant\n", "<|im_end|>\n", in_order=True,
    )
    try:
        from transformers import Qwen2VLVideoProcessor

        video_processor = Qwen2VLVideoProcessor()
    except ImportError:  # needs torchvision; image-only training does not
        video_processor = None
    with video_processor_optional():
        processor = Qwen2VLProcessor(
            image_processor=image_processor, tokenizer=tok, video_processor=video_processor, chat_template=template
        )
    half = hidden // 4 // 2  # rotary frequencies per head, split over (time, height, width)
    section = [half // 4, (half - half // 4) // 2]
    text = _text_config(tok, hidden, layers)
    text.update(rope_parameters={"rope_type": "default", "mrope_section": [*section, half - sum(section)]})
    config = Qwen2VLConfig(
        text_config=dict(model_type="qwen2_vl_text", **text),
        vision_config=dict(
            depth=layers, embed_dim=vision_hidden, hidden_size=hidden, num_heads=4, mlp_ratio=2, in_channels=3,
            patch_size=patch_size, spatial_merge_size=2, temporal_patch_size=2,
        ),
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    return config, processor


def _idefics3(corpus, vocab_size, image_size, patch_size, hidden, layers, vision_hidden):
    from transformers import Idefics3Config, Idefics3ImageProcessor, Idefics3Processor

    specials = ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>"]
    tok = train_tokenizer(corpus, specials, vocab_size)
    image_processor = Idefics3ImageProcessor(
        do_image_splitting=False, size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size},
    )
    template = _chat_template("User:", "<image>", "<end_of_utterance>\n", "Assistant:", "<end_of_utterance>\n",
                              in_order=True)
    seq_len = (image_size // patch_size) ** 2 // 4
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=seq_len, chat_template=template)
    config = Idefics3Config(
        vision_config=dict(
            hidden_size=vision_hidden, intermediate_size=vision_hidden * 2, num_hidden_layers=layers, num_attention_heads=4,
            image_size=image_size, patch_size=patch_size,
        ),
        text_config=dict(model_type="llama", **_text_config(tok, hidden, layers)),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=2,
        tie_word_embeddings=False,
    )
    return config, processor
