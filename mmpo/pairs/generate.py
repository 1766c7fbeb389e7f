"""Batched generation through ``transformers`` ``generate``, with or without the image and
with an optional assistant-turn prefix (DropoutNTP continues a prefix without the image).

Sampling is seeded per batch, and batches are fixed slices of the input, so a rerun (or a
resumed run) regenerates exactly the same text for the same rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from PIL import Image

from mmpo.data.chat import assistant_text, prompt_text
from mmpo.model.logps import unwrap


@dataclass
class GenerationRequest:
    """One prompt to answer: images (empty = text only), the user text, and an optional
    prefix already written in the assistant turn."""

    images: list[Image.Image]
    prompt: str
    prefix: str = ""


@dataclass
class GenerationConfig:
    """How to sample. ``top_k`` and ``top_p`` are passed on every sampled call, so a
    checkpoint's own ``generation_config.json`` cannot narrow them (Qwen2-VL's and
    Qwen2.5-VL's set ``top_k`` 1, which makes every sample the greedy answer); 50 and 1.0
    are InternVL's pipeline defaults (``--top-k``, ``--top-p``)."""

    max_new_tokens: int = 64
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 50
    batch_size: int = 16
    seed: int = 0


def check_generation_options(config) -> None:
    """A pipeline config's ``temperature``, ``max_new_tokens`` and ``batch_size`` in range;
    errors name the option."""
    if not (math.isfinite(config.temperature) and config.temperature >= 0):
        raise ValueError(f"--temperature must be a finite number >= 0, got {config.temperature}")
    for name in ("max_new_tokens", "batch_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(config, name)}")


def end_of_turn_ids(processor) -> list[int]:
    """Token ids that end an assistant turn: EOS plus the chat template's own end marker
    (``<|im_end|>``, ``<end_of_utterance>``…), read off the template itself."""
    tok = processor.tokenizer
    ids = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    tail = tok(assistant_text(processor, 0, "q", "x").removeprefix("x"), add_special_tokens=False)["input_ids"]
    if tail:
        ids.add(tail[0])
    return sorted(ids)


@torch.no_grad()
def generate_batch(
    model, processor, requests: list[GenerationRequest], config: GenerationConfig, batch_seed: int,
    eos_ids: list[int] | None = None,
) -> list[str]:
    """Continuations (text after each request's prefix) for one batch; ``eos_ids`` default
    to :func:`end_of_turn_ids`."""
    tok = processor.tokenizer
    texts = [prompt_text(processor, len(r.images), r.prompt) + r.prefix for r in requests]
    old_side = tok.padding_side
    tok.padding_side = "left"
    try:
        if any(r.images for r in requests):
            if not all(r.images for r in requests):
                raise ValueError("a generation batch mixes requests with and without images")
            enc = processor(text=texts, images=[r.images for r in requests], padding=True, return_tensors="pt")
        else:
            enc = tok(texts, padding=True, add_special_tokens=False, return_tensors="pt")
    finally:
        tok.padding_side = old_side
    device = next(unwrap(model).parameters()).device
    enc = {k: v.to(device) for k, v in enc.items()}
    sample = config.temperature > 0
    torch.manual_seed(batch_seed)
    out = model.generate(
        **enc,
        max_new_tokens=config.max_new_tokens,
        do_sample=sample,
        temperature=config.temperature if sample else None,
        top_p=config.top_p if sample else None,
        top_k=config.top_k if sample else None,
        eos_token_id=eos_ids or end_of_turn_ids(processor),
        pad_token_id=tok.pad_token_id,
    )
    new_tokens = out[:, enc["input_ids"].shape[1] :]
    return [text.strip() if not r.prefix else text for r, text in
            zip(requests, tok.batch_decode(new_tokens, skip_special_tokens=True))]


def generate(model, processor, requests: list[GenerationRequest], config: GenerationConfig) -> list[str]:
    """Continuations for every request, in order, in fixed batches seeded by position."""
    outputs: list[str] = []
    eos_ids = end_of_turn_ids(processor)
    was_training = model.training
    model.eval()
    for start in range(0, len(requests), config.batch_size):
        batch = requests[start : start + config.batch_size]
        outputs.extend(generate_batch(model, processor, batch, config, config.seed * 1_000_003 + start, eos_ids))
    model.train(was_training)
    return outputs
