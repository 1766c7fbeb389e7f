"""Qwen2-VL, Qwen2.5-VL, Qwen3-VL: 3-D rotary positions (time, height, width) for image
tokens, ``mm_token_type_ids`` marking them, and, for Qwen3-VL, deepstack features added to
the first decoder layers at the image positions.

The 3-D positions of a sequence depend only on its own tokens and image grids, so they are
computed once for the full prompt + response (``get_rope_index``) and sliced for the prompt
and for each response when the prompt is shared (on its cache, or packed in one row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mmpo.model.families.base import Family, SetFeatures


@dataclass(frozen=True)
class QwenVL(Family):
    token_keys: tuple[str, ...] | None = ("mm_token_type_ids",)
    text_vision_keys: tuple[str, ...] = ("image_grid_thw",)
    deepstack: bool = False

    def _extra_streams(self, out) -> list[Tensor]:
        if not self.deepstack:
            return []
        return [torch.cat([f.reshape(-1, f.shape[-1]) for f in layer]) if isinstance(layer, (list, tuple))
                else layer.reshape(-1, layer.shape[-1]) for layer in out.deepstack_features]  # per layer: (tokens, H)

    def encoder_outputs(self, per_set: list[SetFeatures], sets: list[int]) -> dict[str, Any]:
        outputs = super().encoder_outputs(per_set, sets)
        if self.deepstack:
            from transformers.models.qwen3_vl.modeling_qwen3_vl import BaseModelOutputWithDeepstackFeatures

            layers = len(per_set[sets[0]]) - 1
            outputs["image"] = BaseModelOutputWithDeepstackFeatures(
                pooler_output=outputs["image"].pooler_output,
                deepstack_features=[[per_set[s][1 + k] for s in sets] for k in range(layers)],
            )
        return outputs

    def position_ids(self, backbone: nn.Module, batch: dict[str, Any]) -> Tensor:
        """(3, N, T): Qwen-VL's own 3-D positions of each full sequence."""
        grids = _per_sequence_grids(batch)
        positions, _ = backbone.get_rope_index(
            batch["input_ids"], mm_token_type_ids=batch["mm_token_type_ids"], image_grid_thw=grids,
            attention_mask=batch["attention_mask"],
        )
        return positions


def _per_sequence_grids(batch: dict[str, Any]) -> Tensor | None:
    """``image_grid_thw`` with one row per image of every sequence, in sequence order."""
    grids = batch.get("image_grid_thw")
    if grids is None or "image_sets" not in batch:
        return grids
    from mmpo.data.batch import image_set_bounds

    bounds = image_set_bounds(batch["images_per_set"])
    return torch.cat([grids[bounds[s] : bounds[s + 1]] for s in batch["image_sets"].tolist()])


QWEN2_VL = QwenVL("Qwen2-VL", ("qwen2_vl",))
QWEN2_5_VL = QwenVL("Qwen2.5-VL", ("qwen2_5_vl",))
QWEN3_VL = QwenVL("Qwen3-VL", ("qwen3_vl",), deepstack=True)
