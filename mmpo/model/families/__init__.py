"""The family layer: everything mmpo knows about a model family, looked up by
``config.model_type`` (see :mod:`mmpo.model.families.base` for what a family answers).

``family_of(model)`` for a loaded model, ``family_of_processor(processor)`` at collation,
``check_checkpoint(path)`` before any weights load, ``startup_lines(...)`` for the log.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mmpo.model.families.base import Family, SetFeatures, UnsupportedFamily
from mmpo.model.families.gemma3 import GEMMA3
from mmpo.model.families.idefics import IDEFICS2, IDEFICS3, SMOLVLM
from mmpo.model.families.mistral3 import MISTRAL3
from mmpo.model.families.mllama import MLLAMA
from mmpo.model.families.paligemma import PALIGEMMA
from mmpo.model.families.qwen_vl import QWEN2_5_VL, QWEN2_VL, QWEN3_VL

# Families with the generic layout: image tokens in the text, features scattered into them.
LLAVA = Family("LLaVA-1.5", ("llava",), token_keys=())
LLAVA_NEXT = Family("LLaVA-NeXT", ("llava_next",), token_keys=())
LLAVA_ONEVISION = Family("LLaVA-OneVision", ("llava_onevision",), token_keys=())
INTERNVL = Family("InternVL", ("internvl",), token_keys=(), features_as_list=False)
AYA_VISION = Family("Aya Vision", ("aya_vision",), token_keys=(), features_as_list=False)

FAMILIES: tuple[Family, ...] = (
    LLAVA, LLAVA_NEXT, LLAVA_ONEVISION, QWEN2_VL, QWEN2_5_VL, QWEN3_VL, IDEFICS2, IDEFICS3, SMOLVLM,
    PALIGEMMA, GEMMA3, MLLAMA, INTERNVL, AYA_VISION, MISTRAL3,
)
_BY_TYPE = {t: f for f in FAMILIES for t in f.model_types}

__all__ = ["FAMILIES", "Family", "SetFeatures", "UnsupportedFamily", "check_checkpoint", "family_of",
           "family_of_processor", "family_of_type", "startup_lines"]


def family_of_type(model_type: str) -> Family:
    """The family of a ``model_type``; an unknown one gets the generic default under its own name."""
    return _BY_TYPE.get(model_type) or Family(model_type, (model_type,))


def family_of(model: nn.Module) -> Family:
    """The family of a loaded model (under PEFT / DDP wrappers too)."""
    config = getattr(model, "config", None)
    while config is None and hasattr(model, "module"):
        model = model.module
        config = getattr(model, "config", None)
    return family_of_type(getattr(config, "model_type", "") or "")


def family_of_processor(processor: Any) -> Family:
    """The family whose transformers processor class ``processor`` is (the generic default otherwise)."""
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    name = type(processor).__name__
    for family in FAMILIES:
        if any(PROCESSOR_MAPPING_NAMES.get(t) == name for t in family.model_types):
            return family
    return Family(name, ())


def check_checkpoint(path: str, *, trust_remote_code: bool = False) -> Family:
    """The family of the checkpoint at ``path`` (from its config alone), or
    :class:`UnsupportedFamily` naming the family and why, before any weights load."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):  # no readable config: loading the model says what is wrong
        return Family("unknown", ())
    family = family_of_type(config.model_type)
    reason = family.unsupported(config)
    if reason:
        raise UnsupportedFamily(f"mmpo cannot train {family.name} ({config.model_type}) from {path}: {reason}")
    return family


def startup_lines(trainer, rows) -> list[str]:
    """What ``mmpo train`` says at start: the family, each speed path on or off and why,
    and the image tokens per prompt (measured on the first ``rows``)."""
    from mmpo.model.logps import unwrap
    from mmpo.model.prefix import prefix_sharing_off

    inner = unwrap(trainer.model)
    family = family_of(inner)
    backbone = getattr(inner, "model", None)
    collator = trainer.collator
    lines = [f"mmpo: family {family.name} ({inner.config.model_type})"]
    if not trainer.args.share_images:
        images = "off (--share_images false)"
    else:
        reason = None if collator.share_images else family.shared_images_off(backbone)
        images = f"off ({reason})" if reason else "on (each image encoded once per pass for chosen, rejected and m′)"
    lines.append(f"mmpo: shared images {images}")
    if not trainer.args.share_prefix:
        prefix = "off (--share_prefix false)"
    elif not collator.share_images:
        prefix = "off (it needs shared images)"
    else:
        reason = prefix_sharing_off(backbone, family, None)
        prefix = f"off ({reason})" if reason else "on (each prompt runs once; its responses continue from it)"
    lines.append(f"mmpo: shared prefix {prefix}")
    for row in list(rows)[:4]:
        collator.prompt_length(row.prompt, row.images, row.source)
    tokens = collator.image_tokens_seen()
    if tokens:
        lines.append(f"mmpo: image tokens per prompt {', '.join(map(str, tokens))}")
    return lines
