"""Prefix sharing: run each distinct prompt (image tokens included) once and let every
response that follows it attend to it.

A preference row's chosen and rejected responses share their prompt, and in a VLM the
prompt is mostly image tokens (576 for LLaVA-1.5 against ~100 response tokens), so the
plain path spends most of its work running the same prefix twice (three times with mDPO's
corrupted-image branch, which has its own prefix).

Two mechanisms, same numbers:

- **cache** (the default): the distinct prompts run once, left-padded to a common end
  column, with plain causal attention, keeping their per-layer keys and values. Then one
  row per prompt holds all of its responses side by side, and an attention function of our
  own (:func:`prefix_attention`) lets each response token see its prompt's keys and values
  where they lie, plus its own response's earlier tokens: nothing of the prompt is copied
  per response, so backward holds the prompt's keys and values once, not once per
  sequence. Gradients flow back into the prompt through them. Gradient checkpointing
  disables the cache, so it cannot run there.
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

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AttentionInterface

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
    input_ids = batch["input_ids"]  # (N, T)
    layout = _Layout.of(batch, targets)
    rows = _response_rows(input_ids, layout, first_column=layout.prompt_lengths)  # responses after their prompt
    device = input_ids.device
    for g, p in enumerate(layout.prompt_lengths):
        rows.ids[g, :p] = input_ids[layout.first[g], :p]
        rows.positions[g, :p] = torch.arange(p, device=device)
        rows.segment[g, :p] = -1

    # Query q sees key k when k is not after q, and k is prompt or in q's own response.
    width = rows.ids.shape[1]
    causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
    seg_q, seg_k = rows.segment[:, :, None], rows.segment[:, None, :]
    allowed = causal & (seg_k != -2) & ((seg_k == -1) | (seg_k == seg_q))  # (G, W, W)
    allowed[:, :, 0] |= rows.segment == -2  # padding queries see one key, so no softmax row is empty
    decoder = text_decoder(backbone)
    if decoder.config._attn_implementation == "eager":
        mask = _additive(allowed, decoder.get_input_embeddings().weight.dtype)
    else:
        mask = allowed
    hidden = backbone(input_ids=rows.ids, attention_mask=mask[:, None], position_ids=rows.positions,
                      mm_encoder_outputs=prompt_images, use_cache=False).last_hidden_state  # (G, W, H)
    # Response token t is predicted at the column before it: the prompt's last for t = 0.
    predictor = torch.tensor([c - 1 if t else layout.prompt_lengths[g] - 1 for g, c, t in rows.tokens], device=device)
    rows_of = torch.tensor([g for g, _, _ in rows.tokens], device=device)
    return hidden[rows_of, predictor]  # (M, H)


def cached_prefix_hidden(
    backbone: nn.Module, batch: dict[str, Any], targets: Tensor, prompt_images: dict[str, Any]
) -> Tensor:
    """Hidden states at the positions that predict response tokens, (M, H), in the same
    order as ``batch["input_ids"][:, 1:][targets]``. ``prompt_images``: the
    ``mm_encoder_outputs`` giving distinct prompt g the features of image set g.

    The distinct prompts run once, left-padded to a common end column, keeping their
    keys and values. Then one row per prompt holds all of its responses side by side, and
    :func:`prefix_attention` lets each response token see its prompt's cached keys and
    values, read in place, and the earlier tokens of its own response."""
    input_ids = batch["input_ids"]  # (N, T)
    layout = _Layout.of(batch, targets)
    width = max(layout.prompt_lengths)
    device = input_ids.device
    n_sets = len(layout.first)
    prompt_ids = torch.full((n_sets, width), int(input_ids[0, 0]), dtype=input_ids.dtype, device=device)
    prompt_mask = torch.zeros((n_sets, width), dtype=batch["attention_mask"].dtype, device=device)
    for g, (j, length) in enumerate(zip(layout.first, layout.prompt_lengths)):
        prompt_ids[g, width - length :] = input_ids[j, :length]
        prompt_mask[g, width - length :] = 1
    positions = (prompt_mask.cumsum(1) - 1).clamp(min=0)  # (G, P): 0.. from each prompt's first token
    prompt_out = backbone(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions,
                          use_cache=True, mm_encoder_outputs=prompt_images)

    rows = _response_rows(input_ids, layout, first_column=[0] * n_sets)  # (G, L)
    length = rows.ids.shape[1]
    causal = torch.ones((length, length), dtype=torch.bool, device=device).tril()
    own = (rows.segment[:, :, None] == rows.segment[:, None, :]) & (rows.segment[:, None, :] >= 0) & causal
    sees_prompt = prompt_mask.bool()[:, None, :].expand(n_sets, length, width)  # padding slots too: no empty row
    decoder = text_decoder(backbone)
    dtype = decoder.get_input_embeddings().weight.dtype
    cache = prompt_out.past_key_values
    state = _PrefixState([layer.keys for layer in cache.layers], [layer.values for layer in cache.layers],
                         _additive(torch.cat([sees_prompt, own], dim=2), dtype)[:, None])  # (G, 1, L, P + L)
    embeds = decoder.get_input_embeddings()(rows.ids)  # (G, L, H)
    bypassed = RuntimeError(
        f"{type(decoder).__name__} does not run its attention layers through transformers' attention interface, "
        "so prefix sharing cannot attach each prompt to its responses; train with --share_prefix false")
    with _attention_to_prefix(decoder, state):
        try:
            hidden = decoder(inputs_embeds=embeds, attention_mask=state.mask, position_ids=rows.positions,
                             use_cache=False).last_hidden_state  # (G, L, H)
        except RuntimeError as error:  # e.g. its own attention meeting our (G, 1, L, P + L) mask
            raise (bypassed if state.calls < len(state.keys) else error) from error
    if state.calls != len(state.keys):
        raise bypassed
    # Response token t is predicted by the slot before it, the prompt's last column for t = 0.
    flat = torch.cat([prompt_out.last_hidden_state[:, -1], hidden.reshape(-1, hidden.shape[-1])])  # (G + G·L, H)
    index = torch.tensor([n_sets + g * length + c - 1 if t else g for g, c, t in rows.tokens], device=device)
    return flat[index]  # (M, H)


PREFIX_ATTENTION = "mmpo_prefix"


class _PrefixState:
    """What :func:`prefix_attention` reads during a response forward: each layer's prompt
    keys and values (G, Hkv, P, d) and the additive mask (G, 1, L, P + L)."""

    def __init__(self, keys: list[Tensor], values: list[Tensor], mask: Tensor) -> None:
        self.keys, self.values, self.mask, self.calls = keys, values, mask, 0


_STATE: ContextVar[_PrefixState | None] = ContextVar("mmpo_prefix_state", default=None)


def prefix_attention(module: nn.Module, query: Tensor, key: Tensor, value: Tensor, attention_mask: Tensor | None,
                     scaling: float | None = None, dropout: float = 0.0, softcap: float | None = None, **kwargs: Any):
    """transformers attention function for rows of responses continuing cached prompts.

    softmax over [q·K_prompt | q·K_responses] (one softmax, two score blocks), so the
    prompt's keys and values are read where the prompt forward left them: never gathered
    or concatenated per response, which would copy them once per sequence and keep the
    copies for backward. Heads that share a key/value head are folded into the query
    length, so grouped-query attention copies nothing either. Shapes: query (G, Hq, L, d),
    key and value (G, Hkv, L, d) → (G, L, Hq, d)."""
    state = _STATE.get()
    if state is None or softcap:
        raise RuntimeError("prefix_attention runs only inside cached_prefix_hidden, without logit soft-capping")
    prompt_keys, prompt_values = state.keys[module.layer_idx], state.values[module.layer_idx]  # (G, Hkv, P, d)
    groups, heads, length, dim = query.shape
    kv_heads, width = prompt_keys.shape[1], prompt_keys.shape[2]
    fold = heads // kv_heads
    q = query.reshape(groups, kv_heads, fold * length, dim) * (dim**-0.5 if scaling is None else scaling)
    scores = torch.cat([q @ prompt_keys.transpose(-1, -2), q @ key.transpose(-1, -2)], dim=-1)  # (G, Hkv, fold·L, P + L)
    scores = scores.view(groups, kv_heads, fold, length, width + length) + state.mask[:, :, None]
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype).view(groups, kv_heads, fold * length, -1)
    if dropout:
        probs = F.dropout(probs, dropout, training=True)
    out = probs[..., :width] @ prompt_values + probs[..., width:] @ value  # (G, Hkv, fold·L, d)
    state.calls += 1
    return out.view(groups, heads, length, dim).transpose(1, 2).contiguous(), None


AttentionInterface.register(PREFIX_ATTENTION, prefix_attention)


@contextmanager
def _attention_to_prefix(decoder: nn.Module, state: _PrefixState):
    """Route ``decoder``'s attention layers through :func:`prefix_attention` for one forward."""
    config, token = decoder.config, _STATE.set(state)
    previous = config._attn_implementation
    config._attn_implementation = PREFIX_ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = previous
        _STATE.reset(token)


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


class _Rows:
    """Rows of responses: ``ids``, ``positions`` (rotary: continuing the prompt) and
    ``segment`` (the sequence a slot holds; -2 = free) (G, W); ``tokens``: (row, column,
    t) of every response token, in target order (sequence-major, then t)."""

    def __init__(self, ids: Tensor, positions: Tensor, segment: Tensor, tokens: list[tuple[int, int, int]]) -> None:
        self.ids, self.positions, self.segment, self.tokens = ids, positions, segment, tokens


def _response_rows(input_ids: Tensor, layout: _Layout, first_column: list[int]) -> _Rows:
    """Row g holds prompt g's responses side by side in sequence order, from ``first_column[g]``."""
    used = list(first_column)
    columns = []  # where sequence i's response starts in its row
    for g, length in zip(layout.sets, layout.lengths):
        columns.append(used[g])
        used[g] += length
    device = input_ids.device
    shape = (len(first_column), max(used))
    ids = torch.full(shape, int(input_ids[0, 0]), dtype=input_ids.dtype, device=device)
    positions = torch.zeros(shape, dtype=torch.long, device=device)
    segment = torch.full(shape, -2, dtype=torch.long, device=device)
    tokens = []
    for i, (g, col, start, length) in enumerate(zip(layout.sets, columns, layout.starts, layout.lengths)):
        ids[g, col : col + length] = input_ids[i, start : start + length]
        positions[g, col : col + length] = torch.arange(start, start + length, device=device)
        segment[g, col : col + length] = i
        tokens += [(g, col + t, t) for t in range(length)]
    return _Rows(ids, positions, segment, tokens)


def _additive(allowed: Tensor, dtype: torch.dtype) -> Tensor:
    """A boolean "may attend" mask as 0 / the dtype's lowest value."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)
