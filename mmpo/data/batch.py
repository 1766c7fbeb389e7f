"""``PreferenceBatch``: one collated batch that knows its own layout.

B rows give N = len(groups) · B sequences, one block of B per group, in order:

    chosen     prompt + chosen    under the real image(s)
    rejected   prompt + rejected  under the real image(s)
    corrupted  prompt + chosen    under the corrupted image m′   (only when CoPO needs it)

(:meth:`~mmpo.data.collate.PreferenceCollator.responses` gives one group, ``response``.)
The batch splits per-sequence values by group (:meth:`split`), cuts out the sequences of
some groups as a batch of their own (:meth:`select`) and moves to a device (:meth:`to`,
which accelerate's data loader calls). For the model code it also reads like the dict of
model inputs it replaces: ``batch["input_ids"]``, ``"image_sets" in batch``, ``**batch``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

import torch
from torch import Tensor

CHOSEN, REJECTED, CORRUPTED, RESPONSE = "chosen", "rejected", "corrupted", "response"


def image_set_bounds(images_per_set: Tensor) -> list[int]:
    """Image set s of a ``share_images`` batch holds images ``bounds[s]:bounds[s + 1]``."""
    return [0, *itertools.accumulate(images_per_set.tolist())]


@dataclass
class PreferenceBatch:
    """Sequences of B rows, right-padded to T tokens, and where their images are.

    ``vision`` holds the processor's image inputs: one copy per sequence, in sequence
    order, or, with ``image_sets`` (collated with ``share_images``), once per distinct
    image set (the real images of the B rows, then their m′), sequence i using set
    ``image_sets[i]``, which holds ``images_per_set[s]`` images.
    """

    input_ids: Tensor  # (N, T)
    attention_mask: Tensor  # (N, T)
    response_mask: Tensor  # (N, T) bool: the response tokens whose log-probs count
    row_ids: list[str]  # (B,)
    row_epochs: list[int]  # (B,): the epoch whose m′ the row's corrupted group shows
    groups: tuple[str, ...]  # the blocks of B sequences, in order
    extras: dict[str, Tensor] = field(default_factory=dict)  # per-token (N, T), e.g. mm_token_type_ids
    vision: dict[str, Tensor] = field(default_factory=dict)  # pixel_values, image_grid_thw, …
    image_sets: Tensor | None = None  # (N,)
    images_per_set: Tensor | None = None  # (S,)
    text_vision_keys: tuple[str, ...] = ()  # vision inputs the text model reads even when handed features (a Qwen-VL grid)

    def __post_init__(self) -> None:
        n = self.input_ids.shape[0]
        if n != len(self.groups) * len(self.row_ids):
            raise ValueError(f"{n} sequences are not {len(self.groups)} groups of {len(self.row_ids)} rows")

    @property
    def rows(self) -> int:
        return len(self.row_ids)

    def group(self, name: str) -> slice:
        """The sequences of group ``name``."""
        g = self.groups.index(name)
        return slice(g * self.rows, (g + 1) * self.rows)

    def split(self, values: Tensor | None) -> dict[str, Tensor]:
        """Per-sequence ``values`` (N,) by group, each (B,); {} for None."""
        return {} if values is None else {name: values[self.group(name)] for name in self.groups}

    def response_lengths(self) -> Tensor:
        """Response tokens of each sequence, (N,)."""
        return self.response_mask.sum(dim=1)

    def select(self, groups: tuple[str, ...], image_features: list | None = None) -> tuple["PreferenceBatch", list | None]:
        """The sequences of ``groups`` as a batch of their own, the image sets they use
        renumbered from 0, and those sets' entries of ``image_features``
        (:func:`mmpo.model.logps.encode_image_sets`). Only for a batch with shared images,
        and for a model handed ``image_features``: raw pixels are not carried over (the
        family's ``text_vision_keys`` are, e.g. a Qwen-VL grid for its rotary positions)."""
        if self.image_sets is None and self.vision:
            raise ValueError("select needs a batch collated with share_images (one copy of each image set)")
        index = torch.cat([torch.arange(self.group(g).start, self.group(g).stop) for g in groups])  # (N',)
        index = index.to(self.input_ids.device)
        part = replace(
            self, groups=tuple(groups), vision={}, image_sets=None, images_per_set=None,
            input_ids=self.input_ids[index], attention_mask=self.attention_mask[index],
            response_mask=self.response_mask[index], extras={k: v[index] for k, v in self.extras.items()},
        )
        if self.image_sets is None:
            return part, image_features
        sets = self.image_sets[index].tolist()
        used = sorted(set(sets))
        renumber = {s: k for k, s in enumerate(used)}
        part.image_sets = torch.tensor([renumber[s] for s in sets], device=self.image_sets.device)
        part.images_per_set = self.images_per_set[used]
        if self.text_vision_keys:  # one row per image
            bounds = image_set_bounds(self.images_per_set)
            images = [i for s in used for i in range(bounds[s], bounds[s + 1])]
            part.vision = {key: self.vision[key][images] for key in self.text_vision_keys}
        return part, None if image_features is None else [image_features[s] for s in used]

    # -- device moves (accelerate's data loader calls .to, torch's pin_memory thread .pin_memory)
    def to(self, device: torch.device | str, non_blocking: bool = False) -> "PreferenceBatch":
        return self._apply(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "PreferenceBatch":
        return self._apply(lambda t: t.pin_memory())

    def _apply(self, fn) -> "PreferenceBatch":
        maybe = lambda t: None if t is None else fn(t)  # noqa: E731
        return replace(
            self, input_ids=fn(self.input_ids), attention_mask=fn(self.attention_mask),
            response_mask=fn(self.response_mask), extras={k: fn(v) for k, v in self.extras.items()},
            vision={k: fn(v) for k, v in self.vision.items()}, image_sets=maybe(self.image_sets),
            images_per_set=maybe(self.images_per_set),
        )

    # -- the dict of model inputs, as the model code reads it
    def _entries(self) -> dict[str, Any]:
        entries: dict[str, Any] = {"input_ids": self.input_ids, "attention_mask": self.attention_mask,
                                   "response_mask": self.response_mask, **self.extras, **self.vision}
        if self.image_sets is not None:
            entries.update(image_sets=self.image_sets, images_per_set=self.images_per_set,
                           vision_keys=list(self.vision), text_vision_keys=list(self.text_vision_keys))
        entries.update(row_ids=self.row_ids, row_epochs=self.row_epochs)
        return entries

    def keys(self):
        return self._entries().keys()

    def items(self):
        return self._entries().items()

    def __getitem__(self, key: str) -> Any:
        return self._entries()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._entries().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._entries()

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())
