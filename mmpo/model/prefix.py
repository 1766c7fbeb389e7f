"""Prefix sharing: run each distinct prompt (image tokens included) once and let every
response that follows it attend to it.

A preference row's chosen and rejected responses share their prompt, and in a VLM the
prompt is mostly image tokens (576 for LLaVA-1.5 against ~100 response tokens), so the
plain path spends most of its work running the same prefix twice (three times with mDPO's
corrupted-image branch, which has its own prefix).

Two mechanisms, same numbers:

- **cache** (the default): the distinct prompts run once, left-padded to a common end
  column, with plain causal attention, keeping their per-layer keys and values. Then the
  responses of each prompt sit side by side in one row on top of its cache, with a 4-D
  mask hiding each response from the others (sdpa, eager), so the prompt's keys and
  values are extended once per prompt, not copied once per response; kernels without
  4-D masks (FlashAttention) take one row per response on a gathered copy. Gradients flow
  back into the prompt through the cache. Gradient checkpointing disables the cache, so
  it cannot run there.
- **packed** (under gradient checkpointing, with sdpa or eager attention): each distinct
  prompt becomes one row ``[prompt | response 1 | response 2 | …]``, with position ids
  restarting after the prompt for every response and a 4-D mask letting each response see
  the prompt and its own earlier tokens only: one ordinary forward, which checkpointing
  can replay. The explicit mask keeps attention off its fused causal kernels, which made
  it ~10 % slower than the cache on CPU, hence not the default.

Rotary positions come from the family (:meth:`~mmpo.model.families.base.Family.position_ids`):
computed once for every full sequence and sliced for its prompt and its response, so
Qwen-VL's 3-D positions take the same path as plain 1-D ones. Which families and batches
can share their prompts, and why the others cannot, is the family's to say; the reason a
path is off is logged once.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from mmpo.model.load import LANGUAGE_MODEL_NAMES

MASKABLE_ATTENTION = ("sdpa", "eager")
logger = logging.getLogger("mmpo")
_said: set[str] = set()


def text_decoder(backbone: nn.Module) -> nn.Module | None:
    for name in LANGUAGE_MODEL_NAMES:
        if isinstance(getattr(backbone, name, None), nn.Module):
            return getattr(backbone, name)
    return None


def prefix_sharing_mode(backbone: nn.Module | None, batch: dict[str, Any], family=None) -> str | None:
    """"cache" (fastest where it runs), "packed" under gradient checkpointing, or None where
    this family, kernel or batch must take the plain path (said once, with the reason)."""
    if family is None:
        from mmpo.model.families import family_of

        family = family_of(backbone)
    reason = prefix_sharing_off(backbone, family, batch)
    if reason is None:
        decoder = text_decoder(backbone)
        checkpointing = getattr(decoder, "is_activation_checkpointing", None)  # transformers' public flag
        if checkpointing is None:
            checkpointing = getattr(decoder, "gradient_checkpointing", False)
        if not checkpointing:
            return "cache"
        if getattr(decoder.config, "_attn_implementation", None) in MASKABLE_ATTENTION and family.packs_prefix():
            return "packed"
        reason = f"gradient checkpointing disables the prompt cache, and {family.name} cannot pack responses in one row"
    if reason not in _said and reason != family.shared_prefix and "image_sets" in batch:  # the rest: said at start
        _said.add(reason)
        logger.warning("mmpo: shared prefix off, each sequence runs in full: %s", reason)
    return None


def prefix_sharing_off(backbone: nn.Module | None, family, batch: dict[str, Any] | None) -> str | None:
    """Why the prompts of ``batch`` (or of any batch, with None) cannot be shared, or None."""
    decoder = text_decoder(backbone) if backbone is not None else None
    if decoder is None:
        return f"no text decoder found under {type(backbone).__name__} (looked for {' or '.join(LANGUAGE_MODEL_NAMES)})"
    if batch is None:
        return family.shared_prefix
    if "image_sets" not in batch:
        return "the batch was collated without shared images"
    return family.shared_prefix_off(decoder.config, batch)


def packed_prefix_hidden(
    backbone: nn.Module, batch: dict[str, Any], targets: Tensor, prompt_images: dict[str, Any], family
) -> Tensor:
    """Hidden states at the positions that predict response tokens, (M, H), in the same
    order as ``batch["input_ids"][:, 1:][targets]``, from one forward over rows
    ``[prompt g | its responses …]``. ``prompt_images``: the ``mm_encoder_outputs`` giving
    row g the features of image set g."""
    input_ids = batch["input_ids"]  # (N, T)
    layout = _Layout.of(batch, targets)
    full_positions = family.position_ids(backbone, batch)  # (N, T), from 0
    rows = _response_rows(input_ids, full_positions, layout, layout.sets, first_column=layout.prompt_lengths)
    device = input_ids.device
    for g, p in enumerate(layout.prompt_lengths):
        rows.ids[g, :p] = input_ids[layout.first[g], :p]
        rows.positions[..., g, :p] = full_positions[..., layout.first[g], :p]
        rows.segment[g, :p] = -1

    # Query q sees key k when k is not after q, and k is prompt or in q's own response.
    width = rows.ids.shape[1]
    causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
    seg_q, seg_k = rows.segment[:, :, None], rows.segment[:, None, :]
    allowed = causal & (seg_k != -2) & ((seg_k == -1) | (seg_k == seg_q))  # (G, W, W)
    allowed[:, :, 0] |= rows.segment == -2  # padding queries see one key, so no softmax row is empty
    hidden = backbone(input_ids=rows.ids, attention_mask=_four_d_mask(allowed[:, None], text_decoder(backbone)), position_ids=rows.positions,
                      mm_encoder_outputs=prompt_images, use_cache=False).last_hidden_state  # (G, W, H)
    # Response token t is predicted at the column before it: the prompt's last for t = 0.
    predictor = torch.tensor([c - 1 if t else layout.prompt_lengths[g] - 1 for _, g, c, t in rows.tokens], device=device)
    rows_of = torch.tensor([g for _, g, _, _ in rows.tokens], device=device)
    return hidden[rows_of, predictor]  # (M, H)


def cached_prefix_hidden(
    backbone: nn.Module, batch: dict[str, Any], targets: Tensor, prompt_images: dict[str, Any], family
) -> Tensor:
    """Hidden states at the positions that predict response tokens, (M, H), in the same
    order as ``batch["input_ids"][:, 1:][targets]``. ``prompt_images``: the
    ``mm_encoder_outputs`` giving distinct prompt g the features of image set g.

    ``family`` gives every sequence's rotary positions, sliced here for prompts and
    responses. The distinct prompts run once, left-padded to a common end column, keeping their keys
    and values. With sdpa or eager attention, all responses of a prompt then sit side by
    side in one row on top of that prompt's cache, with a 4-D mask hiding each response
    from the others: the prompt's keys and values are extended once per prompt rather
    than copied once per response. Other kernels (e.g. FlashAttention, which takes no 4-D
    mask) get one row per response on a per-response copy of its prompt's cache."""
    from transformers.cache_utils import DynamicCache

    input_ids = batch["input_ids"]  # (N, T)
    layout = _Layout.of(batch, targets)
    full_positions = family.position_ids(backbone, batch)  # (N, T), or (3, N, T) for 3-D rotary positions
    width = max(layout.prompt_lengths)
    device = input_ids.device
    n_sets = len(layout.first)
    filler = layout.text_token(input_ids)  # padding that is never an image placeholder
    prompt_ids = torch.full((n_sets, width), filler, dtype=input_ids.dtype, device=device)
    prompt_mask = torch.zeros((n_sets, width), dtype=batch["attention_mask"].dtype, device=device)
    positions = torch.zeros((*full_positions.shape[:-2], n_sets, width), dtype=full_positions.dtype, device=device)
    for g, (j, length) in enumerate(zip(layout.first, layout.prompt_lengths)):
        prompt_ids[g, width - length :] = input_ids[j, :length]
        prompt_mask[g, width - length :] = 1
        positions[..., g, width - length :] = full_positions[..., j, :length]  # (…, G, P)
    extras = {}  # per-token extras the prompt's own attention reads (e.g. token_type_ids), left-padded with 0
    for key in family.prompt_token_keys:
        values = batch[key]  # (N, T, …)
        extras[key] = values.new_zeros((n_sets, width, *values.shape[2:]))
        for g, (j, length) in enumerate(zip(layout.first, layout.prompt_lengths)):
            extras[key][g, width - length :] = values[j, :length]
    prompt_out = backbone(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions,
                          use_cache=True, mm_encoder_outputs=prompt_images, **extras)
    cache = prompt_out.cache

    decoder = text_decoder(backbone)
    maskable = decoder.config._attn_implementation in MASKABLE_ATTENTION
    row_of = layout.sets if maskable else list(range(len(layout.sets)))  # each sequence's response row
    n_rows = n_sets if maskable else len(row_of)
    rows = _response_rows(input_ids, full_positions, layout, row_of, first_column=[0] * n_rows)  # (rows, L)
    length = rows.ids.shape[1]
    if maskable:  # a response sees its prompt and its own earlier tokens
        causal = torch.ones((length, length), dtype=torch.bool, device=device).tril()
        own = (rows.segment[:, :, None] == rows.segment[:, None, :]) & (rows.segment[:, None, :] >= 0) & causal
        sees_prompt = prompt_mask.bool()[:, None, :].expand(n_sets, length, width)  # padding slots too: no empty row
        mask = _four_d_mask(torch.cat([sees_prompt, own], dim=2)[:, None], decoder)  # (G, 1, L, P + L)
    else:  # one response per row: the plain causal mask over [its prompt | itself]
        sets = torch.tensor(layout.sets, device=device)
        cache = DynamicCache(ddp_cache_data=[(layer.keys[sets], layer.values[sets]) for layer in cache.layers])
        mask = torch.cat([prompt_mask[sets], (rows.segment >= 0).to(prompt_mask.dtype)], dim=1)  # (N, P + L)
    embeds = decoder.get_input_embeddings()(rows.ids)  # (rows, L, H)
    hidden = decoder(inputs_embeds=embeds, attention_mask=mask, position_ids=rows.positions, cache=cache,
                     use_cache=False).last_hidden_state  # (rows, L, H)
    # Response token t is predicted by the slot before it; t = 0 by its prompt's last column.
    flat = torch.cat([prompt_out.last_hidden_state[:, -1], hidden.reshape(-1, hidden.shape[-1])])  # (G + rows·L, H)
    index = [n_sets + r * length + c - 1 if t else layout.sets[i] for i, r, c, t in rows.tokens]
    return flat[torch.tensor(index, device=device)]  # (M, H)


class _Layout:
    """Which distinct prompt each sequence continues, where its response starts and how long it is."""

    def __init__(self, sets: list[int], starts: list[int], lengths: list[int], n_sets: int) -> None:
        self.sets, self.starts, self.lengths = sets, starts, lengths
        self.first = [sets.index(g) for g in range(n_sets)]  # a sequence of each prompt
        self.prompt_lengths = [starts[j] for j in self.first]

    @classmethod
    def of(cls, batch: dict[str, Any], targets: Tensor) -> "_Layout":
        response_mask = batch["response_mask"]  # (N, T)
        lengths = response_mask.sum(1).tolist()
        if int(targets.sum()) != sum(lengths):
            raise RuntimeError("prefix sharing needs each sequence to be one prompt followed by one response")
        starts = response_mask.float().argmax(dim=1).tolist()  # first response column = prompt length
        return cls(batch["image_sets"].tolist(), starts, lengths, int(batch["images_per_set"].shape[0]))

    def text_token(self, input_ids: Tensor) -> int:
        """A plain text token of the batch (a response's first), to fill unused slots with."""
        i = next(i for i, n in enumerate(self.lengths) if n)
        return int(input_ids[i, self.starts[i]])


class _Rows:
    """Rows of responses: ``ids``, ``positions`` (rotary, (…, rows, W): continuing the prompt) and
    ``segment`` (the sequence a slot holds; -2 = free) (rows, W); ``tokens``: (sequence,
    row, column, t) of every response token, in target order (sequence-major, then t)."""

    def __init__(self, ids: Tensor, positions: Tensor, segment: Tensor, tokens: list[tuple[int, int, int, int]]) -> None:
        self.ids, self.positions, self.segment, self.tokens = ids, positions, segment, tokens


def _response_rows(input_ids: Tensor, full_positions: Tensor, layout: _Layout, row_of: list[int],
                   first_column: list[int]) -> _Rows:
    """Row r holds the responses of the sequences i with ``row_of[i] == r`` side by side,
    in sequence order, from ``first_column[r]``, each at the rotary positions it has in
    its full sequence (``full_positions``: (…, N, T))."""
    used = list(first_column)
    columns = []  # where sequence i's response starts in its row
    for r, length in zip(row_of, layout.lengths):
        columns.append(used[r])
        used[r] += length
    device = input_ids.device
    shape = (len(first_column), max(used))
    ids = torch.full(shape, layout.text_token(input_ids), dtype=input_ids.dtype, device=device)
    positions = torch.zeros((*full_positions.shape[:-2], *shape), dtype=full_positions.dtype, device=device)
    segment = torch.full(shape, -2, dtype=torch.long, device=device)
    tokens = []
    for i, (r, col, start, length) in enumerate(zip(row_of, columns, layout.starts, layout.lengths)):
        ids[r, col : col + length] = input_ids[i, start : start + length]
        positions[..., r, col : col + length] = full_positions[..., i, start : start + length]
        segment[r, col : col + length] = i
        tokens += [(i, r, col + t, t) for t in range(length)]
    return _Rows(ids, positions, segment, tokens)


def _four_d_mask(allowed: Tensor, decoder: nn.Module) -> Tensor:
    """A boolean "may attend" mask (B, 1, Q, K) in the form the decoder's attention takes:
    as is for sdpa, 0 / the dtype's lowest value for eager."""
    if decoder.config._attn_implementation != "eager":
        return allowed
    dtype = decoder.get_input_embeddings().weight.dtype
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)
