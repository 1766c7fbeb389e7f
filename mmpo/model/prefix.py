"""Prefix sharing: run each distinct prompt (image tokens included) once and let every
response that follows it attend to its keys and values.

A preference row's chosen and rejected responses share their prompt, and in a VLM the
prompt is mostly image tokens (576 for LLaVA-1.5 against ~100 response tokens), so the
plain path spends most of its work running the same prefix twice (three times with mDPO's
corrupted-image branch, which has its own prefix). Here the G distinct prompts run once,
left-padded so that they all end in the same column; their per-layer keys/values are
gathered for the N sequences and the responses run on top, attending to them. Gradients
flow back through the gathered cache into the single prompt pass.

For families with plain 1-D rotary positions (LLaVA, Idefics3, …); Qwen-VL's 3-D positions
and gradient checkpointing (which disables the cache) use the plain path.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mmpo.model.load import LANGUAGE_MODEL_NAMES


def text_decoder(backbone: nn.Module) -> nn.Module | None:
    for name in LANGUAGE_MODEL_NAMES:
        if isinstance(getattr(backbone, name, None), nn.Module):
            return getattr(backbone, name)
    return None


def supports_prefix_sharing(backbone: nn.Module | None, batch: dict[str, Any]) -> bool:
    decoder = text_decoder(backbone) if backbone is not None else None
    return (
        decoder is not None
        and "image_sets" in batch
        and "image_grid_thw" not in batch  # Qwen-VL: 3-D rotary positions
        and not getattr(decoder, "gradient_checkpointing", False)
    )


def prefix_shared_hidden(
    backbone: nn.Module, batch: dict[str, Any], targets: Tensor, prompt_images: dict[str, Any]
) -> Tensor:
    """Hidden states at the positions that predict response tokens, (M, H), in the same
    order as ``batch["input_ids"][:, 1:][targets]``. ``prompt_images``: the
    ``mm_encoder_outputs`` giving distinct prompt g the features of image set g."""
    from transformers.cache_utils import DynamicCache

    input_ids, response_mask = batch["input_ids"], batch["response_mask"]  # (N, T)
    sets = batch["image_sets"]  # (N,) which distinct prompt each sequence continues
    n_sets = int(batch["images_per_set"].shape[0])
    starts = response_mask.float().argmax(dim=1)  # (N,) first response column = prompt length
    first = [int((sets == g).nonzero()[0]) for g in range(n_sets)]  # a sequence of each prompt
    prompt_lengths = starts[first]  # (G,)
    width = int(prompt_lengths.max())

    # Distinct prompts, left-padded to a common end column.
    device = input_ids.device
    prompt_ids = torch.full((n_sets, width), int(input_ids[0, 0]), dtype=input_ids.dtype, device=device)
    prompt_mask = torch.zeros((n_sets, width), dtype=batch["attention_mask"].dtype, device=device)
    for g, j in enumerate(first):
        length = int(prompt_lengths[g])
        prompt_ids[g, width - length :] = input_ids[j, :length]
        prompt_mask[g, width - length :] = 1
    positions = (prompt_mask.cumsum(1) - 1).clamp(min=0)  # (G, P): 0.. from each prompt's first token
    prompt_out = backbone(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions,
                          use_cache=True, mm_encoder_outputs=prompt_images)
    cache = prompt_out.past_key_values
    gathered = DynamicCache(ddp_cache_data=[(layer.keys[sets], layer.values[sets]) for layer in cache.layers])

    # Responses, right-padded, continuing their prompt's positions.
    lengths = response_mask.sum(1)  # (N,)
    r_width = int(lengths.max())
    columns = torch.arange(r_width, device=device)
    take = (starts[:, None] + columns[None, :]).clamp(max=input_ids.shape[1] - 1)  # (N, R)
    response_ids = input_ids.gather(1, take)
    response_valid = columns[None, :] < lengths[:, None]  # (N, R)
    decoder = text_decoder(backbone)
    embeds = decoder.get_input_embeddings()(response_ids)
    mask = torch.cat([prompt_mask[sets], response_valid.to(prompt_mask.dtype)], dim=1)  # (N, P + R)
    response_positions = prompt_lengths[sets][:, None] + columns[None, :]
    cache_position = torch.arange(width, width + r_width, device=device)
    response_hidden = decoder(inputs_embeds=embeds, attention_mask=mask, position_ids=response_positions,
                              past_key_values=gathered, cache_position=cache_position,
                              use_cache=False).last_hidden_state  # (N, R, H)

    # Position t-1 predicts token t: the first response token from the prompt's last column.
    predictors = torch.cat([prompt_out.last_hidden_state[sets, -1:], response_hidden[:, :-1]], dim=1)  # (N, R, H)
    # Same order as the plain path's targets: row-major over (sequence, response position).
    if int(targets.sum()) != int(response_valid.sum()):
        raise RuntimeError("prefix sharing needs each sequence to be one prompt followed by one response")
    return predictors[response_valid]
