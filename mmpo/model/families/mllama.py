"""Mllama (Llama 3.2 Vision): images enter through cross-attention layers, not image
tokens. ``cross_attention_mask`` (B, T, images, tiles) says which image tiles each token
attends to; response tokens attend to the same tiles as the last prompt token (as in
generation). No image features to hand over, no prompt cache to share: the plain path."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmpo.model.families.base import Family


@dataclass(frozen=True)
class Mllama(Family):
    token_keys: tuple[str, ...] | None = ("cross_attention_mask",)
    shared_images: str | None = "images enter through cross-attention, not precomputed features"
    shared_prefix: str | None = "the cross-attention layers need the image states on every response pass"

    def extend_token_values(self, key: str, prompt: Tensor, response_length: int) -> Tensor:
        return torch.cat([prompt, prompt[-1:].expand(response_length, *prompt.shape[1:])])  # (P + R, images, tiles)


MLLAMA = Mllama("Mllama", ("mllama",))
