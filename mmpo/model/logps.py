"""Per-sequence summed log-probs of response tokens.

The vocabulary projection is applied only at the positions that predict a response token,
in chunks: image and prompt positions never get logits, and peak memory does not grow with
vocabulary × sequence length. Families whose backbone cannot be called on its own fall
back to the full forward.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mmpo.model.families import SetFeatures, family_of
from mmpo.model.prefix import cached_prefix_hidden, packed_prefix_hidden, prefix_sharing_mode, text_decoder

MODEL_INPUT_EXCLUDE = ("response_mask", "row_ids", "row_epochs", "image_sets", "images_per_set", "vision_keys",
                       "text_vision_keys")


def unwrap(model: nn.Module) -> nn.Module:
    """The transformers model under PEFT / DDP wrappers (LoRA layers stay injected)."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):  # DDP
            model = model.module
        elif hasattr(model, "get_base_model"):  # PEFT
            model = model.get_base_model()
        else:
            return model


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if k not in MODEL_INPUT_EXCLUDE}


# Features of a batch's distinct image sets: [set] → ((image tokens, hidden), …) as the family lays them out.
ImageFeatures = list[SetFeatures]


def sequence_logps(
    model: nn.Module,
    batch: dict[str, Any],
    *,
    chunk_size: int = 4096,
    share_prefix: bool = False,
    image_features: ImageFeatures | None = None,
) -> tuple[Tensor, Tensor]:
    """(summed log-probs (N,), response token counts (N,)) for every sequence of ``batch``.

    ``batch`` comes from :class:`~mmpo.data.collate.PreferenceCollator`; the token at
    position t is scored by the logits at position t − 1. ``share_prefix`` runs each
    distinct prompt once (:mod:`mmpo.model.prefix`) where the family and batch allow it.
    ``image_features`` (from :func:`encode_image_sets`, for a batch with shared images)
    skips the vision tower: pass the same features to the policy and the reference pass
    when neither can change them (:func:`image_encoder_frozen`).
    """
    inner = unwrap(model)
    response_mask: Tensor = batch["response_mask"]  # (N, T)
    targets = response_mask[:, 1:]  # (N, T-1): which next-token predictions count
    target_ids = batch["input_ids"][:, 1:][targets]  # (M,)
    seq_index = targets.nonzero(as_tuple=True)[0]  # (M,)
    backbone = getattr(inner, "model", None)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None

    if "image_sets" in batch and image_features is None:
        image_features = encode_image_sets(inner, batch)

    family = family_of(inner)
    mode = prefix_sharing_mode(backbone, batch, family) if share_prefix and head is not None else None
    if mode is not None:
        prompt_images = family.encoder_outputs(image_features, list(range(len(image_features))))  # prompt g ↔ set g
        shared_hidden = packed_prefix_hidden if mode == "packed" else cached_prefix_hidden
        hidden = shared_hidden(backbone, batch, targets, prompt_images, family)  # (M, H)
        token_logps = _chunked_logps(head, hidden, target_ids, chunk_size)
    elif backbone is not None and head is not None:
        if "image_sets" in batch:
            hidden = _shared_image_forward(backbone, batch, image_features, family)  # (N, T, H)
        else:
            hidden = backbone(**model_inputs(batch), use_cache=False).last_hidden_state  # (N, T, H)
        hidden = hidden[:, :-1][targets]  # (M, H)
        token_logps = _chunked_logps(head, hidden, target_ids, chunk_size)
    else:
        logits = model(**model_inputs(batch), use_cache=False).logits[:, :-1][targets]  # (M, V)
        token_logps = _token_logps(logits, target_ids)

    n = response_mask.shape[0]
    sums = torch.zeros(n, dtype=torch.float32, device=token_logps.device).index_add(0, seq_index, token_logps.float())
    return sums, response_mask.sum(dim=1)


def supports_shared_images(model: nn.Module) -> bool:
    """Whether each image can be encoded once for several sequences of this model: the
    family supports it and the loaded model takes precomputed features
    (:meth:`~mmpo.model.families.base.Family.shared_images_off` says why not)."""
    inner = unwrap(model)
    if inner.get_output_embeddings() is None:
        return False
    return family_of(inner).shared_images_off(getattr(inner, "model", None)) is None


def image_encoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters that shape image features before the language model sees them (vision
    tower, projector / connector): everything in the backbone outside its text decoder."""
    backbone = getattr(unwrap(model), "model", None)
    decoder = text_decoder(backbone) if backbone is not None else None
    if decoder is None:
        return []
    inside = {id(p) for p in decoder.parameters()}
    return [p for p in backbone.parameters() if id(p) not in inside]


def image_encoder_frozen(model: nn.Module, ref_model: nn.Module | None = None) -> bool:
    """Whether image features are fixed during training and equal for policy and reference:
    no trainable parameter (LoRA included) in the policy's image encoder, and a separate
    reference model, if any, holds the same encoder weights."""
    params = image_encoder_parameters(model)
    if not params or any(p.requires_grad or not p.numel() for p in params):  # trainable, or sharded (ZeRO-3)
        return False
    backbone = unwrap(model).model
    inside = {id(m) for m in text_decoder(backbone).modules()}
    if any(_is_adapter(m) for m in backbone.modules() if id(m) not in inside):
        return False  # an adapter in the encoder, even a frozen one, is off in the reference pass
    if ref_model is None:  # the reference is the policy with its adapters disabled
        return True
    theirs = image_encoder_parameters(ref_model)
    return len(theirs) == len(params) and all(
        a.shape == b.shape and torch.equal(a.detach().cpu(), b.detach().cpu()) for a, b in zip(params, theirs)
    )


def _is_adapter(module: nn.Module) -> bool:
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
        from peft.utils import ModulesToSaveWrapper
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(module, (BaseTunerLayer, ModulesToSaveWrapper))


def encode_image_sets(model: nn.Module, batch: dict[str, Any]) -> ImageFeatures:
    """Run the vision tower and projector once on each distinct image set of a batch
    collated with ``share_images``: one entry per set, cut by the image tokens of a
    sequence that uses it."""
    inner = unwrap(model)
    family = family_of(inner)
    vision = {key: batch[key] for key in batch["vision_keys"]}
    sets = batch["image_sets"].tolist()
    image_token = family.image_token_id(inner.config)
    first = [sets.index(s) for s in range(len(batch["images_per_set"]))]  # a sequence of each set
    tokens_per_set = (batch["input_ids"][first] == image_token).sum(dim=1).tolist()
    return family.encode(inner.model, vision, tokens_per_set)


def _shared_image_forward(backbone: nn.Module, batch: dict[str, Any], per_set: ImageFeatures, family) -> Tensor:
    """Every sequence gets the already-encoded features of its image set (and, per image,
    the vision inputs its text model still reads, e.g. Qwen-VL's grids)."""
    from mmpo.data.batch import image_set_bounds

    vision = batch["vision_keys"]
    sets = batch["image_sets"].tolist()
    inputs = {k: v for k, v in model_inputs(batch).items() if k not in vision}
    bounds = image_set_bounds(batch["images_per_set"])
    for key in batch.get("text_vision_keys", []):  # one row per image → the rows of each sequence's images
        inputs[key] = torch.cat([batch[key][bounds[s] : bounds[s + 1]] for s in sets])
    outputs = family.encoder_outputs(per_set, sets)
    return backbone(**inputs, mm_encoder_outputs=outputs, use_cache=False).last_hidden_state


def _chunked_logps(head: nn.Module, hidden: Tensor, target_ids: Tensor, chunk_size: int) -> Tensor:
    """Vocabulary projection and log-softmax over (M, H) hidden states, ``chunk_size`` rows
    at a time. Shapes: (M, H), (M,) → (M,)."""
    if not hidden.shape[0]:
        return hidden.new_zeros(0)
    return torch.cat([
        _token_logps(head(hidden[i : i + chunk_size]), target_ids[i : i + chunk_size])
        for i in range(0, hidden.shape[0], chunk_size)
    ])


def _token_logps(logits: Tensor, target_ids: Tensor) -> Tensor:
    """log softmax(logits)[target] in float32. Shapes: (M, V), (M,) → (M,)."""
    logits = logits.float()
    return logits.gather(-1, target_ids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
