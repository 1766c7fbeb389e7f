"""What mmpo needs to know about a model family, with the generic default.

A :class:`Family` answers, for one ``model_type``: how the processor's per-token extras
(``token_type_ids``, ``mm_token_type_ids``, cross-attention masks) continue over the
response tokens, how image features computed once are handed back to the model
(``mm_encoder_outputs``), which rotary positions a sequence has, and which fast paths
(shared images, shared prefix) it supports, with the reason where one is off. The default
fits LLaVA-style families: image tokens in the text, features scattered into them in order,
1-D rotary positions. A family with its own layout gets a small file of its own in this
package; nothing elsewhere branches on batch keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

# The features of one image set, flattened in the order its image tokens appear:
# (image tokens, hidden) for the pooled features, then any extra per-token streams
# (e.g. Qwen3-VL's deepstack layers), each (image tokens, hidden).
SetFeatures = tuple[Tensor, ...]


class UnsupportedFamily(ValueError):
    """A checkpoint whose family mmpo cannot train here, said before its weights load."""


@dataclass(frozen=True)
class Family:
    """The generic family; subclasses override one method each where their layout differs.

    ``name``: shown to the user. ``model_types``: transformers' ``config.model_type``
    values it covers. ``token_keys``: processor outputs laid out per token (their first
    two dimensions are the batch and the sequence); ``None`` means every output shaped
    like ``input_ids`` (the default for families without a file of their own).
    ``shared_images`` / ``shared_prefix``: ``None`` when the fast path is supported, else
    the reason it is off. ``features_as_list``: the model's forward takes
    ``mm_encoder_outputs["image"].pooler_output`` as a list of tensors it concatenates
    (LLaVA, Qwen-VL) rather than one tensor (Gemma 3, InternVL, Idefics).
    ``text_vision_keys``: vision inputs the text model still needs once the features are
    given (Qwen-VL's ``image_grid_thw`` for its rotary positions), one row per image.
    ``prompt_token_keys``: per-token extras the prompt's attention pattern depends on,
    handed to the shared prompt's own pass (``token_type_ids`` of prefix-LM and
    bidirectional-image families); responses attend causally, so their pass needs none.
    """

    name: str
    model_types: tuple[str, ...]
    token_keys: tuple[str, ...] | None = None
    shared_images: str | None = None
    shared_prefix: str | None = None
    features_as_list: bool = True
    text_vision_keys: tuple[str, ...] = ()
    prompt_token_keys: tuple[str, ...] = ()

    # -- before loading weights ------------------------------------------------------
    def unsupported(self, config) -> str | None:
        """Why this checkpoint cannot be trained here, or None."""
        return None

    def prepare_processor(self, processor):
        """The processor as mmpo uses it (a default prompt format where it has none…)."""
        return processor

    # -- collation -------------------------------------------------------------------
    def is_token_key(self, key: str, value: Any, input_ids: Tensor) -> bool:
        if self.token_keys is not None:
            return key in self.token_keys
        return torch.is_tensor(value) and value.shape == input_ids.shape

    def extend_token_values(self, key: str, prompt: Tensor, response_length: int) -> Tensor:
        """A per-token extra over ``prompt + response``: (P, …) → (P + R, …). Default: 0
        over the response (text tokens)."""
        return torch.cat([prompt, prompt.new_zeros((response_length, *prompt.shape[1:]))])

    # -- shared images ---------------------------------------------------------------
    def shared_images_off(self, backbone: nn.Module | None) -> str | None:
        """Why each image cannot be encoded once for several sequences of this model, or None."""
        if self.shared_images:
            return self.shared_images
        if backbone is None or not hasattr(backbone, "get_image_features"):
            return f"{type(backbone).__name__} has no get_image_features"
        import inspect

        if "mm_encoder_outputs" not in inspect.signature(backbone.forward).parameters:
            return f"{type(backbone).__name__}.forward takes no precomputed image features (mm_encoder_outputs)"
        return None

    def image_token_id(self, config) -> int:
        for name in ("image_token_id", "image_token_index"):
            if isinstance(getattr(config, name, None), int):
                return getattr(config, name)
        raise ValueError(f"{self.name}: the model config names no image token (image_token_id)")

    def encode(self, backbone: nn.Module, vision: dict[str, Tensor], tokens_per_set: list[int]) -> list[SetFeatures]:
        """Vision tower + projector on every image of the batch at once, cut per image
        set by the number of image tokens each set's prompt holds (the model scatters
        features into its image tokens in order)."""
        out = backbone.get_image_features(**vision, return_dict=True)
        streams = [_flat(out.pooler_output), *(self._extra_streams(out))]
        return [tuple(s) for s in zip(*(stream.split(tokens_per_set) for stream in streams))]

    def _extra_streams(self, out) -> list[Tensor]:
        return []

    def encoder_outputs(self, per_set: list[SetFeatures], sets: list[int]) -> dict[str, Any]:
        """transformers' ``mm_encoder_outputs`` giving sequence i the features of image set ``sets[i]``."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        pooled = [per_set[s][0] for s in sets]
        return {"image": BaseModelOutputWithPooling(pooler_output=pooled if self.features_as_list else torch.cat(pooled))}

    # -- positions and the shared prefix ---------------------------------------------
    def shared_prefix_off(self, decoder_config, batch: dict[str, Any]) -> str | None:
        """Why this batch cannot share its prompts, or None."""
        if self.shared_prefix:
            return self.shared_prefix
        window = getattr(decoder_config, "sliding_window", None) if getattr(decoder_config, "use_sliding_window", True) else None
        if window and window < batch["input_ids"].shape[1]:
            return f"a sliding window of {window} tokens, shorter than the sequences, changes who sees whom"
        if _length_dependent_rope(decoder_config):
            return "length-dependent rotary scaling (dynamic NTK / LongRoPE) gives a prompt alone other frequencies"
        return None

    def position_ids(self, backbone: nn.Module, batch: dict[str, Any]) -> Tensor:
        """Rotary positions of every sequence of a right-padded batch: (N, T) from 0."""
        mask = batch["attention_mask"]
        return (mask.long().cumsum(1) - 1).clamp(min=0)

    def packs_prefix(self) -> bool:
        """Whether the packed layout (positions restarting per response) fits this family."""
        return True


def _flat(features) -> Tensor:
    """Pooled image features as (image tokens, hidden), whatever the model returned."""
    if isinstance(features, (list, tuple)):
        return torch.cat([f.reshape(-1, f.shape[-1]) for f in features])
    return features.reshape(-1, features.shape[-1])


def _length_dependent_rope(config) -> bool:
    """Rotary scaling whose frequencies depend on the length of the current input (dynamic NTK, LongRoPE)."""
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    settings = [rope, *(v for v in rope.values() if isinstance(v, dict))] if isinstance(rope, dict) else []
    return any(r.get("rope_type", r.get("type")) in ("dynamic", "longrope") for r in settings)
