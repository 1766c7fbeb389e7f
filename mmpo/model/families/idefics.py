"""Idefics2, Idefics3, SmolVLM: pixel values batched per sequence (padding images all
zero), features returned as one tensor. SmolVLM's processor reads its video half's
settings even to write an image-only chat; without torchvision (no video processor)
the chat template is rendered by the base processor, which is all an image chat uses."""

from __future__ import annotations

from dataclasses import dataclass

from mmpo.model.families.base import Family


@dataclass(frozen=True)
class Idefics(Family):
    token_keys: tuple[str, ...] | None = ()
    features_as_list: bool = False

    def prepare_processor(self, processor):
        if "video_processor" in processor.get_attributes() and getattr(processor, "video_processor", None) is None:
            from functools import partial

            from transformers.processing_utils import ProcessorMixin

            processor.apply_chat_template = partial(ProcessorMixin.apply_chat_template, processor)
        return processor


IDEFICS2 = Idefics("Idefics2", ("idefics2",))
IDEFICS3 = Idefics("Idefics3", ("idefics3",))
SMOLVLM = Idefics("SmolVLM", ("smolvlm",))
