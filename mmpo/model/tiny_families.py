"""Tiny random-init checkpoints of every supported family, for the family test matrix.

Each builder returns ``(config, processor)`` made from transformers' own config and
processor classes (PIL image processors, so no torchvision), at tiny sizes: hidden 32,
one or two layers, 32×32 images. :func:`build_family` saves them with ``save_pretrained``
like a user's folder. The three families of :mod:`mmpo.model.tiny` (used by the demo) are
built there, unchanged; the names here are ``model_type``s.
"""

from __future__ import annotations

import os

import torch

from mmpo.model.load import save_processor, video_processor_optional
from mmpo.model.tiny import _DEFAULT_CORPUS, _chat_template, _text_config, build_tiny_model, train_tokenizer

HIDDEN, VISION, IMAGE, PATCH = 32, 16, 32, 8
CORPUS = [_DEFAULT_CORPUS] * 4


def _named(tok, **names: str):
    """``tok`` with named special tokens (``tok.boi_token``, ``tok.boi_token_id``…), as processors read them."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>", extra_special_tokens=names)


def _vision(**extra) -> dict:
    return dict(hidden_size=VISION, intermediate_size=VISION * 2, num_hidden_layers=1, num_attention_heads=2, **extra)


def _text(tok, model_type: str, **extra) -> dict:
    text = _text_config(tok, HIDDEN, 1)
    text.update(model_type=model_type, **extra)
    return text


def _template(user="USER: ", image="<image>\n", end_user=" ", assistant="ASSISTANT:", end="</s>") -> str:
    return _chat_template(user, image, end_user, assistant, end)


def _without_video(cls, template: str | None = None, **kwargs):
    """A processor of an image+video family built without its video half (torchvision)."""
    with video_processor_optional():
        return cls(video_processor=None, chat_template=template or _template(), **kwargs)


def _llava_next():
    from transformers import LlavaNextConfig, LlavaNextImageProcessorPil, LlavaNextProcessor

    tok = train_tokenizer(CORPUS, ["<image>"])
    pinpoints = [[IMAGE, IMAGE], [IMAGE, 2 * IMAGE], [2 * IMAGE, IMAGE]]
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE}, image_grid_pinpoints=pinpoints)
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=PATCH,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=_template())
    config = LlavaNextConfig(
        vision_config=dict(model_type="clip_vision_model", image_size=IMAGE, patch_size=PATCH, projection_dim=VISION,
                           **_vision()),
        text_config=_text(tok, "llama"), image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=pinpoints, vision_feature_select_strategy="default", tie_word_embeddings=False,
    )
    return config, processor


def _llava_onevision():
    from transformers import LlavaOnevisionConfig, LlavaOnevisionImageProcessorPil, LlavaOnevisionProcessor

    tok = train_tokenizer(CORPUS, ["<image>", "<video>"])
    pinpoints = [[IMAGE, IMAGE], [IMAGE, 2 * IMAGE], [2 * IMAGE, IMAGE]]
    image_processor = LlavaOnevisionImageProcessorPil(size={"height": IMAGE, "width": IMAGE}, image_grid_pinpoints=pinpoints)
    processor = _without_video(LlavaOnevisionProcessor, image_processor=image_processor, tokenizer=tok,
                               num_image_tokens=(IMAGE // PATCH) ** 2, vision_feature_select_strategy="full")
    config = LlavaOnevisionConfig(
        vision_config=dict(model_type="siglip_vision_model", image_size=IMAGE, patch_size=PATCH, **_vision()),
        text_config=_text(tok, "qwen2"), image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"), image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="full", vision_feature_layer=-1, tie_word_embeddings=False,
    )
    return config, processor


QWEN_SPECIALS = ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>", "<|im_start|>", "<|im_end|>"]
QWEN_TEMPLATE = _chat_template("<|im_start|>user\n", "<|vision_start|><|image_pad|><|vision_end|>", "<|im_end|>\n",
                               "<|im_start|>assistant\n", "<|im_end|>\n")


def _qwen_ids(tok) -> dict:
    ids = dict(image_token_id="<|image_pad|>", video_token_id="<|video_pad|>",
               vision_start_token_id="<|vision_start|>", vision_end_token_id="<|vision_end|>")
    return {k: tok.convert_tokens_to_ids(v) for k, v in ids.items()}


def _qwen_image_processor(patch: int):
    from transformers import Qwen2VLImageProcessorPil

    pixels = IMAGE * IMAGE
    return Qwen2VLImageProcessorPil(patch_size=patch, merge_size=2, temporal_patch_size=2,
                                    size={"shortest_edge": pixels, "longest_edge": pixels})


def _mrope(head_dim: int) -> list[int]:
    half = head_dim // 2  # rotary frequencies per head, split over (time, height, width)
    section = [half // 4, (half - half // 4) // 2]
    return [*section, half - sum(section)]


def _qwen2_5_vl():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLProcessor

    tok = train_tokenizer(CORPUS, QWEN_SPECIALS)
    processor = _without_video(Qwen2_5_VLProcessor, template=QWEN_TEMPLATE, image_processor=_qwen_image_processor(PATCH),
                               tokenizer=tok)
    text = _text(tok, "qwen2_5_vl_text", rope_parameters={"rope_type": "default", "mrope_section": _mrope(HIDDEN // 4)})
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=dict(depth=1, hidden_size=VISION, intermediate_size=VISION * 2, num_heads=2, out_hidden_size=HIDDEN,
                           patch_size=PATCH, spatial_merge_size=2, temporal_patch_size=2, window_size=2 * PATCH,
                           fullatt_block_indexes=[0]),
        **_qwen_ids(tok), tie_word_embeddings=False,
    )
    return config, processor


def _qwen3_vl():
    from transformers import Qwen3VLConfig, Qwen3VLProcessor

    tok = train_tokenizer(CORPUS, QWEN_SPECIALS)
    processor = _without_video(Qwen3VLProcessor, template=QWEN_TEMPLATE, image_processor=_qwen_image_processor(PATCH),
                               tokenizer=tok)
    head_dim = HIDDEN // 4
    text = _text(tok, "qwen3_vl_text", head_dim=head_dim,
                 rope_parameters={"rope_type": "default", "mrope_section": _mrope(head_dim), "mrope_interleaved": True})
    text.pop("tie_word_embeddings")
    config = Qwen3VLConfig(
        text_config=text,
        vision_config=dict(depth=2, hidden_size=VISION, intermediate_size=VISION * 2, num_heads=2, out_hidden_size=HIDDEN,
                           patch_size=PATCH, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=16,
                           deepstack_visual_indexes=[0]),
        **_qwen_ids(tok), tie_word_embeddings=False,
    )
    return config, processor


def _idefics2():
    from transformers import Idefics2Config, Idefics2ImageProcessorPil, Idefics2Processor

    tok = train_tokenizer(CORPUS, ["<fake_token_around_image>", "<image>", "<end_of_utterance>"])
    image_processor = Idefics2ImageProcessorPil(do_image_splitting=False, size={"shortest_edge": IMAGE, "longest_edge": IMAGE})
    processor = Idefics2Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=4,
                                  chat_template=_template("User:", "<image>", "<end_of_utterance>\n", "Assistant:",
                                                          "<end_of_utterance>\n"))
    config = Idefics2Config(
        vision_config=dict(image_size=IMAGE, patch_size=PATCH, **_vision()),
        perceiver_config=dict(hidden_act="silu", resampler_n_latents=4, resampler_depth=1, resampler_n_heads=2,
                              resampler_head_dim=8, num_key_value_heads=1),
        text_config=_text(tok, "mistral"), image_token_id=tok.convert_tokens_to_ids("<image>"), tie_word_embeddings=False,
    )
    return config, processor


def _smolvlm():
    from transformers import SmolVLMConfig, SmolVLMImageProcessorPil, SmolVLMProcessor

    tok = train_tokenizer(CORPUS, ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>"])
    image_processor = SmolVLMImageProcessorPil(do_image_splitting=False, size={"longest_edge": IMAGE},
                                               max_image_size={"longest_edge": IMAGE})
    processor = _without_video(SmolVLMProcessor, image_processor=image_processor, tokenizer=tok,
                               image_seq_len=(IMAGE // PATCH) ** 2 // 4,
                               template=_template("User:", "<image>", "<end_of_utterance>\n", "Assistant:",
                                                  "<end_of_utterance>\n"))
    config = SmolVLMConfig(
        vision_config=dict(image_size=IMAGE, patch_size=PATCH, **_vision()),
        text_config=_text(tok, "llama"), image_token_id=tok.convert_tokens_to_ids("<image>"), scale_factor=2,
        tie_word_embeddings=False,
    )
    return config, processor


def _paligemma():
    """PaliGemma as shipped: no chat template (mmpo's family layer supplies the prompt format)."""
    from transformers import PaliGemmaConfig, PaliGemmaProcessor, SiglipImageProcessorPil

    tok = train_tokenizer(CORPUS, ["<image>"])
    tok.add_bos_token = True
    image_processor = SiglipImageProcessorPil(size={"height": IMAGE, "width": IMAGE})
    image_processor.image_seq_length = (IMAGE // PATCH) ** 2
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok)
    config = PaliGemmaConfig(
        vision_config=dict(model_type="siglip_vision_model", image_size=IMAGE, patch_size=PATCH,
                           projection_dim=HIDDEN, **_vision()),
        text_config=_text(tok, "gemma", head_dim=8), image_token_index=tok.convert_tokens_to_ids("<image>"),
        projection_dim=HIDDEN, hidden_size=HIDDEN, tie_word_embeddings=False,
    )
    return config, processor


def _gemma3():
    from transformers import Gemma3Config, Gemma3ImageProcessorPil, Gemma3Processor

    specials = ["<start_of_image>", "<end_of_image>", "<image_soft_token>", "<start_of_turn>", "<end_of_turn>"]
    tok = _named(train_tokenizer(CORPUS, specials), boi_token="<start_of_image>", eoi_token="<end_of_image>",
                 image_token="<image_soft_token>")
    image_processor = Gemma3ImageProcessorPil(size={"height": IMAGE, "width": IMAGE})
    template = _chat_template("<start_of_turn>user\n", "<start_of_image>", "<end_of_turn>\n", "<start_of_turn>model\n",
                              "<end_of_turn>\n")
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tok, image_seq_length=4, chat_template=template)
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in
           [("boi_token_index", "<start_of_image>"), ("eoi_token_index", "<end_of_image>"),
            ("image_token_index", "<image_soft_token>")]}
    text = _text(tok, "gemma3_text", head_dim=8, query_pre_attn_scalar=8, sliding_window=512,
                 layer_types=["full_attention"])
    config = Gemma3Config(
        text_config=text, vision_config=dict(model_type="siglip_vision_model", image_size=IMAGE, patch_size=PATCH, **_vision()),
        mm_tokens_per_image=4, **ids, tie_word_embeddings=False,
    )
    return config, processor


def _internvl():
    from transformers import GotOcr2ImageProcessorPil, InternVLConfig, InternVLProcessor

    tok = _named(train_tokenizer(CORPUS, ["<img>", "</img>", "<IMG_CONTEXT>", "<video>", "<|im_start|>", "<|im_end|>"]),
                 start_image_token="<img>", end_image_token="</img>", context_image_token="<IMG_CONTEXT>",
                 video_token="<video>")
    image_processor = GotOcr2ImageProcessorPil(size={"height": IMAGE, "width": IMAGE}, crop_to_patches=False)
    template = _chat_template("<|im_start|>user\n", "<IMG_CONTEXT>\n", "<|im_end|>\n", "<|im_start|>assistant\n",
                              "<|im_end|>\n")
    seq = (IMAGE // PATCH) ** 2 // 4
    processor = _without_video(InternVLProcessor, image_processor=image_processor, tokenizer=tok, image_seq_length=seq,
                               template=template)
    config = InternVLConfig(
        vision_config=dict(image_size=[IMAGE, IMAGE], patch_size=[PATCH, PATCH], **_vision()),
        text_config=_text(tok, "qwen2"), image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"), image_seq_length=seq,
        downsample_ratio=0.5, tie_word_embeddings=False,
    )
    return config, processor


def _aya_vision():
    from transformers import AyaVisionConfig, AyaVisionProcessor, GotOcr2ImageProcessorPil

    specials = ["<image>", "<|START_OF_IMG|>", "<|END_OF_IMG|>", "<|IMG_PATCH|>", "<|IMG_LINE_BREAK|>",
                "<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>"]
    tok = train_tokenizer(CORPUS, specials)
    image_processor = GotOcr2ImageProcessorPil(size={"height": IMAGE, "width": IMAGE}, crop_to_patches=False)
    template = _chat_template("<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", "<image>", "<|END_OF_TURN_TOKEN|>",
                              "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", "<|END_OF_TURN_TOKEN|>")
    processor = AyaVisionProcessor(image_processor=image_processor, tokenizer=tok, patch_size=PATCH, img_size=IMAGE,
                                   downsample_factor=2, chat_template=template)
    config = AyaVisionConfig(
        vision_config=dict(model_type="siglip_vision_model", image_size=IMAGE, patch_size=PATCH, **_vision()),
        text_config=_text(tok, "cohere2", layer_types=["full_attention"], sliding_window=512),
        image_token_index=tok.convert_tokens_to_ids("<|IMG_PATCH|>"), downsample_factor=2, tie_word_embeddings=False,
    )
    return config, processor


def _mllama():
    from transformers import MllamaConfig, MllamaImageProcessorPil, MllamaProcessor

    tok = train_tokenizer(CORPUS, ["<|image|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
    image_processor = MllamaImageProcessorPil(size={"height": IMAGE, "width": IMAGE}, max_image_tiles=2)
    template = _chat_template("<|start_header_id|>user<|end_header_id|>\n\n", "<|image|>", "<|eot_id|>",
                              "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>")
    processor = MllamaProcessor(image_processor=image_processor, tokenizer=tok, chat_template=template)
    text = _text(tok, "mllama_text_model", num_hidden_layers=2, cross_attention_layers=[1])
    text.pop("tie_word_embeddings")
    config = MllamaConfig(
        vision_config=dict(hidden_size=VISION, intermediate_size=VISION * 2, num_hidden_layers=1, num_global_layers=1,
                           attention_heads=2, image_size=IMAGE, patch_size=PATCH, max_num_tiles=2,
                           vision_output_dim=VISION * 2, intermediate_layers_indices=[0],
                           supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]]),
        text_config=text, image_token_index=tok.convert_tokens_to_ids("<|image|>"),
    )
    return config, processor


def _mistral3():
    """Mistral 3 with a Pixtral vision tower. Its processor (transformers' PixtralProcessor)
    imports torchvision; without it the processor's files are written as the class would
    write them, so the folder is what a user downloads."""
    from transformers import Mistral3Config
    from transformers.utils import is_torchvision_available

    tok = train_tokenizer(CORPUS, ["[IMG]", "[IMG_BREAK]", "[IMG_END]", "[INST]", "[/INST]"])
    template = _chat_template("[INST]", "[IMG]", "[/INST]", "", "</s>")
    settings = dict(patch_size=PATCH, spatial_merge_size=2, image_token="[IMG]", image_break_token="[IMG_BREAK]",
                    image_end_token="[IMG_END]")
    image_settings = dict(size={"longest_edge": IMAGE}, patch_size=PATCH)
    if is_torchvision_available():
        from transformers import PixtralImageProcessor, PixtralProcessor

        processor = PixtralProcessor(image_processor=PixtralImageProcessor(**image_settings), tokenizer=tok,
                                     chat_template=template, **settings)
    else:
        processor = _PixtralFiles(tok, template, settings, image_settings)
    config = Mistral3Config(
        vision_config=dict(model_type="pixtral", hidden_size=VISION, intermediate_size=VISION * 2, num_hidden_layers=1,
                           num_attention_heads=2, image_size=IMAGE, patch_size=PATCH, head_dim=VISION // 2),
        text_config=_text(tok, "mistral", head_dim=8), image_token_index=tok.convert_tokens_to_ids("[IMG]"),
        spatial_merge_size=2, tie_word_embeddings=False,
    )
    return config, processor


class _PixtralFiles:
    """Writes a PixtralProcessor's files without building one (it needs torchvision)."""

    def __init__(self, tokenizer, chat_template: str, settings: dict, image_settings: dict) -> None:
        self.tokenizer, self.chat_template, self.settings, self.image_settings = tokenizer, chat_template, settings, image_settings

    def save_pretrained(self, out_dir: str) -> None:
        import json

        self.tokenizer.save_pretrained(out_dir)
        with open(os.path.join(out_dir, "chat_template.jinja"), "w", encoding="utf-8") as f:
            f.write(self.chat_template)
        for name, content in (("processor_config.json", {"processor_class": "PixtralProcessor", **self.settings}),
                              ("preprocessor_config.json", {"image_processor_type": "PixtralImageProcessor",
                                                            **self.image_settings})):
            with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
                json.dump(content, f, indent=2)


BUILDERS = {
    "llava_next": _llava_next,
    "llava_onevision": _llava_onevision,
    "qwen2_5_vl": _qwen2_5_vl,
    "qwen3_vl": _qwen3_vl,
    "idefics2": _idefics2,
    "smolvlm": _smolvlm,
    "paligemma": _paligemma,
    "gemma3": _gemma3,
    "internvl": _internvl,
    "aya_vision": _aya_vision,
    "mllama": _mllama,
    "mistral3": _mistral3,
}
FAMILIES = ("llava", "qwen2_vl", "idefics3", *BUILDERS)


def build_family(name: str, out_dir: str, seed: int = 0) -> str:
    """Write a tiny random-init checkpoint of ``name`` (a ``model_type``) to ``out_dir``."""
    from transformers import AutoModelForImageTextToText

    if name not in BUILDERS:
        build_tiny_model(name, out_dir, seed=seed)
        return out_dir
    torch.manual_seed(seed)
    config, processor = BUILDERS[name]()
    model = AutoModelForImageTextToText.from_config(config)
    tok = processor.tokenizer
    model.generation_config.bos_token_id = tok.bos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    if isinstance(processor, _PixtralFiles):
        processor.save_pretrained(out_dir)
    else:
        save_processor(processor, out_dir)
    return out_dir
