"""Turns preference rows into one model batch, a :class:`~mmpo.data.batch.PreferenceBatch`.

Layout of a batch of B rows (N sequences), by group:

    [0, B)    prompt + chosen    under the real image(s)
    [B, 2B)   prompt + rejected  under the real image(s)
    [2B, 3B)  prompt + chosen    under the corrupted image m′   (only when CoPO needs it)

Every sequence is ``prompt tokens (image tokens expanded by the processor) + response
tokens``, right-padded. ``response_mask`` marks the response tokens whose log-probs count.

Truncation rule: the prompt is never cut (that could cut image tokens or the question);
the response is cut from its end to fit ``max_length``. A row whose prompt alone is longer
than ``max_prompt_length`` (or leaves no room for a response) is an error naming the row,
which :meth:`PreferenceCollator.check_row` raises at load time, before training starts.

m′ is a deterministic function of (seed, row id, epoch), so the policy and reference
passes, which both read this batch, see the very same corrupted pixels. The epoch comes
with each row (``(row, epoch)``, as :class:`mmpo.data.epochs.EpochSampler` hands them
out, so worker processes need no state from the trainer) or from ``epoch``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from PIL import Image

from mmpo.data.batch import CHOSEN, CORRUPTED, REJECTED, RESPONSE, PreferenceBatch
from mmpo.data.chat import assistant_text, prompt_text
from mmpo.data.corrupt import CorruptionConfig, corrupt_image
from mmpo.data.images import MAX_IMAGE_PIXELS, image_size, load_image
from mmpo.data.schema import DataError, ImageSource, PreferenceExample
from mmpo.model.families import Family, family_of_processor

TEXT_KEYS = ("input_ids", "attention_mask")


@dataclass
class PreferenceCollator:
    """Callable ``rows -> batch``. A row is a :class:`PreferenceExample` or a
    ``(PreferenceExample, epoch)`` pair; ``epoch`` is the epoch of rows that come without one.

    ``no_image`` drops the images altogether (the paper's "DPO (No Image)" ablation);
    ``corruption=None`` skips the corrupted-image sequences. ``share_images`` emits the
    vision inputs once per distinct image set (the real images once, the corrupted ones
    once) plus ``image_sets``, the set each sequence uses, so the model encodes each image
    once per pass (see :func:`mmpo.model.logps.sequence_logps`); off, every sequence
    carries its own copy of its pixels.
    """

    processor: Any
    corruption: CorruptionConfig | None = None
    no_image: bool = False
    max_length: int = 2048
    max_prompt_length: int | None = None
    epoch: int = 0
    other_images: dict[str, Callable[[], Image.Image]] = field(default_factory=dict)
    share_images: bool = False
    max_image_pixels: int = MAX_IMAGE_PIXELS
    family: Family | None = None
    _image_tokens: dict = field(default_factory=dict, init=False, repr=False)  # image sizes → tokens they add

    def __post_init__(self) -> None:
        if self.family is None:  # how this processor's outputs are laid out (mmpo.model.families)
            self.family = family_of_processor(self.processor)
        self.processor = self.family.prepare_processor(self.processor)
        if not getattr(self.processor, "chat_template", None):
            raise ValueError(f"the {self.family.name} processor has no chat template, so mmpo cannot lay out prompt "
                             "and response; add a chat_template.jinja to the checkpoint folder")

    def __call__(self, rows: list[PreferenceExample | tuple[PreferenceExample, int]]) -> PreferenceBatch:
        rows, epochs = self._split_epochs(rows)
        real = [self._images(row) for row in rows]
        chosen = [self._response_ids(row, row.chosen) for row in rows]
        rejected = [self._response_ids(row, row.rejected) for row in rows]
        prompt_real = self._encode_prompts(rows, real)
        groups = [(prompt_real, chosen), (prompt_real, rejected)]
        if self.corruption is not None and not self.no_image:
            corrupted = [self._corrupted(row, imgs, epoch) for row, imgs, epoch in zip(rows, real, epochs)]
            groups.append((self._encode_prompts(rows, corrupted), chosen))
        names = (CHOSEN, REJECTED, CORRUPTED)[: len(groups)]
        return self._assemble(rows, groups, epochs, names)

    def responses(self, rows: list[PreferenceExample | tuple[PreferenceExample, int]], texts: list[str],
                  corrupted: bool = False) -> PreferenceBatch:
        """One sequence per row: prompt + ``texts[i]`` under the real image (or under m′
        with ``corrupted``). For SFT, scoring a model's own answers, image reliance."""
        rows, epochs = self._split_epochs(rows)
        images = [self._images(row) for row in rows]
        if corrupted:
            images = [self._corrupted(row, imgs, epoch) for row, imgs, epoch in zip(rows, images, epochs)]
        responses = [self._response_ids(row, text) for row, text in zip(rows, texts)]
        return self._assemble(rows, [(self._encode_prompts(rows, images), responses)], epochs, (RESPONSE,))

    # -- checks at load time -------------------------------------------------------------
    def check_row(self, row: PreferenceExample) -> None:
        """Raise now the :class:`DataError` this row's batch would raise in training: its
        prompt, image tokens included, over the length limit (under its real images, and
        under its ``rejected_images`` when CoPO scores them)."""
        self.check_prompt(row.prompt, row.images, row.source, "image")
        if self.corruption is not None and row.rejected_images and not self.no_image:
            self.check_prompt(row.prompt, row.rejected_images, row.source, "rejected_image")

    def check_prompt(self, prompt: str, images: list[ImageSource], location: str, field: str = "image") -> int:
        """:meth:`prompt_length`, or the :class:`DataError` of a prompt over the limit."""
        length = self.prompt_length(prompt, images, location, field)
        self._check_prompt_length(location, length)
        return length

    def prompt_length(self, prompt: str, images: list[ImageSource], location: str = "", field: str = "image") -> int:
        """Tokens of the prompt as :meth:`__call__` encodes it under ``images``, counted
        without decoding a pixel: the text's tokens plus what the processor adds for
        images of these sizes (measured once per distinct set of sizes on blank images;
        image tokens are special tokens, so the two add up)."""
        n_images = 0 if self.no_image else len(images)
        text_tokens = len(self.processor.tokenizer(prompt_text(self.processor, n_images, prompt),
                                                   add_special_tokens=False)["input_ids"])
        if not n_images:
            return text_tokens
        sizes = tuple(image_size(src, location, field, self.max_image_pixels) for src in images)
        if sizes not in self._image_tokens:
            probe = prompt_text(self.processor, n_images, "x")
            try:
                encoded = self.processor(text=[probe], images=[[Image.new("RGB", size) for size in sizes]])
            except Exception as exc:  # noqa: BLE001 — processors refuse sizes in their own ways
                raise DataError(location, field, f"the processor cannot take images of size "
                                f"{', '.join(f'{w}×{h}' for w, h in sizes)}: {exc}", "unusable_image") from None
            plain = self.processor.tokenizer(probe, add_special_tokens=False)["input_ids"]
            self._image_tokens[sizes] = len(encoded["input_ids"][0]) - len(plain)
        return text_tokens + self._image_tokens[sizes]

    def image_tokens_seen(self) -> list[int]:
        """The distinct numbers of tokens the images of a prompt added, as measured so far."""
        return sorted(set(self._image_tokens.values()))

    def _check_prompt_length(self, location: str, length: int) -> None:
        limit = self.max_prompt_length or self.max_length - 1
        if length > limit or length >= self.max_length:
            raise DataError(
                location, "prompt",
                f"is {length} tokens with its image(s), longer than the limit "
                f"(max_prompt_length={self.max_prompt_length}, max_length={self.max_length}); "
                "raise the limit (prompts are never cut, to keep image tokens whole) or skip the row "
                "with --skip_invalid_rows",
                "prompt_too_long",
            )

    # -- pieces --------------------------------------------------------------------------
    def _split_epochs(self, rows: list) -> tuple[list[PreferenceExample], list[int]]:
        """The rows, and the epoch of each (its own, or :attr:`epoch`)."""
        pairs = [row if isinstance(row, tuple) else (row, self.epoch) for row in rows]
        return [row for row, _ in pairs], [int(epoch) for _, epoch in pairs]

    def _images(self, row: PreferenceExample) -> list[Image.Image]:
        if self.no_image:
            return []
        return [load_image(src, row.source, "image", self.max_image_pixels) for src in row.images]

    def _corrupted(self, row: PreferenceExample, images: list[Image.Image], epoch: int) -> list[Image.Image]:
        if row.rejected_images:  # an explicit negative image from the data wins
            return [load_image(src, row.source, "rejected_image", self.max_image_pixels) for src in row.rejected_images]
        pool = list(self.other_images)
        load_other = lambda row_id: self.other_images[row_id]()  # noqa: E731
        return [
            corrupt_image(img, self.corruption, f"{row.id}#{i}" if i else row.id, epoch, pool, load_other)
            for i, img in enumerate(images)
        ]

    def _n_images(self, row: PreferenceExample) -> int:
        return 0 if self.no_image else len(row.images)

    def _response_ids(self, row: PreferenceExample, response: str) -> list[int]:
        """Tokens of the assistant turn as the chat template writes it (response plus the
        template's end-of-turn marker), tokenized on their own."""
        text = assistant_text(self.processor, self._n_images(row), row.prompt, response)
        return self.processor.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _encode_prompts(self, rows: list[PreferenceExample], images: list[list[Image.Image]]) -> dict[str, Any]:
        texts = [prompt_text(self.processor, self._n_images(row), row.prompt) for row in rows]
        if self.no_image:
            encoded = self.processor.tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        else:
            encoded = self.processor(text=texts, images=images, padding=True, return_tensors="pt")
        ids = [seq[mask.bool()].tolist() for seq, mask in zip(encoded["input_ids"], encoded["attention_mask"])]
        token_keys = [key for key, value in encoded.items()
                      if key not in TEXT_KEYS and self.family.is_token_key(key, value, encoded["input_ids"])]
        per_token = {  # (T_prompt, …) per row, padding dropped
            key: [seq[mask.bool()] for seq, mask in zip(torch.as_tensor(encoded[key]), encoded["attention_mask"])]
            for key in token_keys
        }
        vision = {
            key: value for key, value in encoded.items()
            if key not in TEXT_KEYS and key not in per_token and torch.is_tensor(value)
        }
        return {"ids": ids, "per_token": per_token, "vision": vision}

    def _assemble(self, rows: list[PreferenceExample], groups: list[tuple[dict, list[list[int]]]],
                  epochs: list[int], names: tuple[str, ...]) -> PreferenceBatch:
        sequences, response_lengths, per_token_rows = [], [], []
        for prompts, responses in groups:
            for i, (prompt_ids, response_ids) in enumerate(zip(prompts["ids"], responses)):
                self._check_prompt_length(rows[i].source, len(prompt_ids))
                response_ids = response_ids[: self.max_length - len(prompt_ids)]
                sequences.append(prompt_ids + response_ids)
                response_lengths.append((len(prompt_ids), len(response_ids)))
                per_token_rows.append({k: v[i] for k, v in prompts["per_token"].items()})

        pad_id = self.processor.tokenizer.pad_token_id or 0
        width = max(len(s) for s in sequences)
        n = len(sequences)
        input_ids = torch.full((n, width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)
        response_mask = torch.zeros((n, width), dtype=torch.bool)
        for j, (seq, (p_len, r_len)) in enumerate(zip(sequences, response_lengths)):
            input_ids[j, : len(seq)] = torch.tensor(seq)
            attention_mask[j, : len(seq)] = 1
            response_mask[j, p_len : p_len + r_len] = True
        batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask, "response_mask": response_mask}
        # Per-token extras (token_type_ids, mm_token_type_ids, cross_attention_mask): the
        # prompt's values continued over the response as the family says, 0 over padding.
        for key in per_token_rows[0]:
            first = per_token_rows[0][key]
            values = torch.zeros((n, width, *first.shape[1:]), dtype=first.dtype)
            for j, (extra, (p_len, r_len)) in enumerate(zip(per_token_rows, response_lengths)):
                values[j, : p_len + r_len] = self.family.extend_token_values(key, extra[key], r_len)
            batch[key] = values
        vision_keys = list(groups[0][0]["vision"])
        layout = dict(row_ids=[row.id for row in rows], row_epochs=epochs, groups=names,
                      extras={k: v for k, v in batch.items() if k not in TEXT_KEYS + ("response_mask",)})
        if self.share_images and vision_keys:
            # Each distinct prompt encoding (real images, corrupted images) once, in order.
            distinct = list({id(prompts): prompts for prompts, _ in groups}.values())
            offsets = {id(p): k * len(rows) for k, p in enumerate(distinct)}
            return PreferenceBatch(
                input_ids, attention_mask, response_mask, **layout,
                vision={key: torch.cat([p["vision"][key] for p in distinct], dim=0) for key in vision_keys},
                image_sets=torch.tensor(
                    [offsets[id(prompts)] + i for prompts, responses in groups for i in range(len(responses))]),
                images_per_set=torch.tensor([len(row.images) for _ in distinct for row in rows]),
                text_vision_keys=tuple(k for k in self.family.text_vision_keys if k in vision_keys),
            )
        # Vision inputs, one copy per sequence, in sequence order.
        vision = {key: torch.cat([prompts["vision"][key] for prompts, _ in groups], dim=0) for key in vision_keys}
        return PreferenceBatch(input_ids, attention_mask, response_mask, **layout, vision=vision)
