"""Prefix sharing: run each distinct prompt (image tokens included) once and let every
response that follows it attend to it.

A preference row's chosen and rejected responses share their prompt, and in a VLM the
prompt is mostly image tokens (576 for LLaVA-1.5 against ~100 response tokens), so the
plain path spends most of its work running the same prefix twice (three times with mDPO's
corrupted-image branch, which has its own prefix).

Two mechanisms, same numbers:

- **cache** (the default): the distinct prompts run once, left-padded to a common end
  column, with plain causal attention; their per-layer keys and values are gathered for
  every response, which runs on top of them. Gradients flow back through the gathered
  cache. Gradient checkpointing disables the cache, so it cannot run there.
- **packed** (under gradient checkpointing, with sdpa or eager attention): each distinct
  prompt becomes one row ``[prompt | response 1 | response 2 | …]``, with position ids
  restarting after the prompt for every response and a 4-D mask letting each response see
  the prompt and its own earlier tokens only: one ordinary forward, which checkpointing
  can replay. The explicit mask keeps attention off its fused causal kernels, which made
  it ~10 % slower than the cache on CPU, hence not the default.

For families with plain 1-D rotary positions (LLaVA, Idefics3, …); Qwen-VL's 3-D positions
use the plain path.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mmpo.model.load import LANGUAGE_MODEL_NAMES

MASKABLE_ATTENTION = ("sdpa", "eager")


def text_decoder(backbone: nn.Module) -> nn.Module | None:
    for name in LANGUAGE_MODEL_NAMES:
        if isinstance(getattr(backbone, name, None), nn.Module):
            return getattr(backbone, name)
    return None


def prefix_sharing_mode(backbone: nn.Module | None, batch: dict[str, Any]) -> str | None:
    """"cache" (fastest where it runs), "packed" under gradient checkpointing, or None where
    this family, kernel or batch must take the plain path."""
    decoder = text_decoder(backbone) if backbone is not None else None
    if decoder is None or "image_sets" not in batch or "image_grid_thw" in batch:  # Qwen-VL: 3-D rotary positions
        return None
    if "token_type_ids" in batch:  # e.g. Gemma 3: image tokens attend both ways, not plain causal attention
        return None
    config = decoder.config
    window = getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", True) else None
    if window and window < batch["input_ids"].shape[1]:  # a window the prompt outgrows changes who sees whom
        return None
    if not getattr(decoder, "gradient_checkpointing", False):
        return "cache"
    return "packed" if getattr(decoder.config, "_attn_implementation", None) in MASKABLE_ATTENTION else None


def packed_prefix_hidden(
    backbone: nn.Module, batch: dict[str, Any], targets: Tensor, prompt_images: dict[str, Any]
) -> Tensor:
    """Hidden states at the positions that predict response tokens, (M, H), in the same
    order as ``batch["input_ids"][:, 1:][targets]``, from one forward over rows
    ``[prompt g | its responses …]``. ``prompt_images``: the ``mm_encoder_outputs`` giving
    row g the features of image set g."""
    input_ids, response_mask = batch["input_ids"], batch["response_mask"]  # (N, T)
    sets = batch["image_sets"].tolist()  # which distinct prompt each sequence continues
    n_sets = int(batch["images_per_set"].shape[0])
    starts = response_mask.float().argmax(dim=1).tolist()  # first response column = prompt length
    lengths = response_mask.sum(1).tolist()
    if int(targets.sum()) != sum(lengths):
        raise RuntimeError("prefix sharing needs each sequence to be one prompt followed by one response")

    # Row g: its prompt, then each of its responses in sequence order; segment -1 = prompt, -2 = padding.
    first_of: dict[int, int] = {}  # image set → its first sequence, whose prompt opens the row
    for i, g in enumerate(sets):
        first_of.setdefault(g, i)
    prompt_len = [starts[first_of[g]] for g in range(n_sets)]
    used = list(prompt_len)
    columns = []  # where sequence i's response starts in its row
    for i, g in enumerate(sets):
        columns.append(used[g])
        used[g] += lengths[i]
    width = max(used)
    device = input_ids.device
    ids = torch.full((n_sets, width), int(input_ids[0, 0]), dtype=input_ids.dtype, device=device)
    positions = torch.zeros((n_sets, width), dtype=torch.long, device=device)
    segment = torch.full((n_sets, width), -2, dtype=torch.long, device=device)
    for g, p in enumerate(prompt_len):
        ids[g, :p] = input_ids[first_of[g], :p]
        positions[g, :p] = torch.arange(p, device=device)
        segment[g, :p] = -1
    pred_rows, pred_cols = [], []  # where each response token's predictor sits, in target order
    for i, (g, col, length) in enumerate(zip(sets, columns, lengths)):
        p = starts[i]
        ids[g, col : col + length] = input_ids[i, p : p + length]
        positions[g, col : col + length] = torch.arange(p, p + length, device=device)
        segment[g, col : col + length] = i
        pred_rows += [g] * length
        pred_cols += [prompt_len[g] - 1, *range(col, col + length - 1)]

    # Query q sees key k when k is not after q, and k is prompt or in q's own response.
    causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
    seg_q, seg_k = segment[:, :, None], segment[:, None, :]
    allowed = causal & (seg_k != -2) & ((seg_k == -1) | (seg_k == seg_q))  # (G, W, W)
    allowed[:, :, 0] |= segment == -2  # padding queries see one key, so no softmax row is empty
    decoder = text_decoder(backbone)
    if decoder.config._attn_implementation == "eager":
        dtype = decoder.get_input_embeddings().weight.dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)
    else:
        mask = allowed
    hidden = backbone(input_ids=ids, attention_mask=mask[:, None], position_ids=positions,
                      mm_encoder_outputs=prompt_images, use_cache=False).last_hidden_state  # (G, W, H)
    index_rows = torch.tensor(pred_rows, device=device)
    index_cols = torch.tensor(pred_cols, device=device)
    return hidden[index_rows, index_cols]  # (M, H)


def cached_prefix_hidden(
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
