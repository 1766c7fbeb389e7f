"""Loading and saving any Hugging Face image-text-to-text model and its processor, and
finding the language model inside it (LoRA goes there; the vision tower stays frozen).

Safe by default: weights only from safetensors, no remote code unless asked.
"""

from __future__ import annotations

import contextlib
import os
import re

import torch
from torch import nn

# Submodule names families use for the language model, and for parts that must stay frozen.
LANGUAGE_MODEL_NAMES = ("language_model", "text_model")
PROCESSOR_CONFIG = "processor_config.json"
VISION_NAMES = ("vision_tower", "visual", "vision_model", "multi_modal_projector", "connector", "vision_embed")


def load_model(path: str, *, dtype: torch.dtype | str = "auto", trust_remote_code: bool = False) -> nn.Module:
    """``AutoModelForImageTextToText.from_pretrained`` from a directory or hub id, safetensors only."""
    from transformers import AutoModelForImageTextToText

    try:
        return AutoModelForImageTextToText.from_pretrained(
            path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except OSError as exc:
        raise OSError(f"cannot load a vision-language model from {path!r}: {exc}") from None


@contextlib.contextmanager
def video_processor_optional():
    """Lets a processor be built with ``video_processor=None``.

    Several image+video processors (Qwen2-VL, Qwen2.5-VL) insist on a video processor, which
    needs torchvision; image preference training never touches video, so where torchvision
    is missing mmpo builds them without one.
    """
    from transformers.processing_utils import ProcessorMixin

    original = ProcessorMixin.check_argument_for_proper_class

    def check(self, name, arg):
        if name == "video_processor" and arg is None:
            return None
        return original(self, name, arg)

    ProcessorMixin.check_argument_for_proper_class = check
    try:
        yield
    finally:
        ProcessorMixin.check_argument_for_proper_class = original


def load_processor(path: str, *, trust_remote_code: bool = False):
    """``AutoProcessor.from_pretrained``; for image+video processors whose video half cannot
    be built here (no torchvision), the same processor class without it, with the
    checkpoint's own ``processor_config.json`` settings (``num_image_tokens``,
    ``image_seq_length``, ``vision_feature_select_strategy``, …)."""
    from mmpo.model.families import check_checkpoint

    family = check_checkpoint(path, trust_remote_code=trust_remote_code)  # a family mmpo cannot train here stops now, with the reason
    return family.prepare_processor(_load_processor(path, trust_remote_code))


def _load_processor(path: str, trust_remote_code: bool):
    from transformers import AutoConfig, AutoImageProcessor, AutoProcessor, AutoTokenizer
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    try:
        return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (ImportError, AttributeError, ValueError, TypeError) as first_error:
        model_type = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code).model_type
        class_name = PROCESSOR_MAPPING_NAMES.get(model_type)
        import transformers

        cls = getattr(transformers, class_name, None) if class_name else None
        if cls is None or "video_processor" not in cls.get_attributes():
            raise first_error
        template_file = os.path.join(path, "chat_template.jinja")
        template = open(template_file, encoding="utf-8").read() if os.path.isfile(template_file) else None
        with video_processor_optional():
            return cls(
                image_processor=AutoImageProcessor.from_pretrained(path),
                tokenizer=AutoTokenizer.from_pretrained(path),
                video_processor=None,
                chat_template=template,
                **_processor_settings(path, cls),
            )


def _processor_settings(path: str, cls) -> dict:
    """The processor's own settings from ``processor_config.json`` (its sub-processors and
    class name left out), as keyword arguments of ``cls``."""
    import json

    file = os.path.join(path, PROCESSOR_CONFIG)
    if not os.path.isfile(file):
        return {}
    with open(file, encoding="utf-8") as f:
        settings = json.load(f)
    skip = {"processor_class", "chat_template", "auto_map", *cls.get_attributes()}
    return {k: v for k, v in settings.items() if k not in skip}


def save_processor(processor, out_dir: str) -> None:
    """``processor.save_pretrained``, also for processors built without their video half
    (their settings still go to ``processor_config.json``)."""
    if getattr(processor, "video_processor", "absent") is None:
        import json

        processor.image_processor.save_pretrained(out_dir)
        processor.tokenizer.save_pretrained(out_dir)
        if processor.chat_template:
            with open(os.path.join(out_dir, "chat_template.jinja"), "w", encoding="utf-8") as f:
                f.write(processor.chat_template)
        settings = {k: v for k, v in processor.to_dict().items() if k not in (*processor.get_attributes(), "chat_template")}
        with open(os.path.join(out_dir, PROCESSOR_CONFIG), "w", encoding="utf-8") as f:
            json.dump(settings, f, indent=2)
        return
    processor.save_pretrained(out_dir)


def language_model_prefix(model: nn.Module) -> str:
    """Dotted name of the language-model submodule, e.g. ``model.language_model``."""
    for name, _ in model.named_modules():
        if name.split(".")[-1] in LANGUAGE_MODEL_NAMES:
            return name
    raise ValueError(
        f"cannot find the language model inside {type(model).__name__} (looked for a submodule named "
        f"{' or '.join(LANGUAGE_MODEL_NAMES)}); pass lora_target_modules explicitly"
    )


def language_model_lora_targets(model: nn.Module) -> str:
    """A peft ``target_modules`` regex matching every ``nn.Linear`` of the language model
    (attention and MLP projections), and nothing in the vision tower, projector or lm_head."""
    prefix = language_model_prefix(model)
    leaves = sorted(
        {name.split(".")[-1] for name, module in model.named_modules()
         if isinstance(module, nn.Linear) and name.startswith(prefix + ".")}
    )
    if not leaves:
        raise ValueError(f"no linear layers found under {prefix}")
    return rf"^{re.escape(prefix)}\..*\.({'|'.join(map(re.escape, leaves))})$"


def freeze_vision(model: nn.Module) -> None:
    """Vision tower and projector get no gradients (the mDPO recipe)."""
    for name, param in model.named_parameters():
        if any(part in VISION_NAMES for part in name.split(".")):
            param.requires_grad_(False)
