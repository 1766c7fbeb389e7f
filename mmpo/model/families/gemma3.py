"""Gemma 3: ``token_type_ids`` mark image tokens (1), which attend to each other both ways
inside their image; text and response tokens are 0 (causal). Image features are one
tensor, not a list. A shared prompt runs with its ``token_type_ids``; the responses after
it are text, attending causally."""

from __future__ import annotations

from dataclasses import dataclass

from mmpo.model.families.base import Family


@dataclass(frozen=True)
class Gemma3(Family):
    token_keys: tuple[str, ...] | None = ("token_type_ids",)
    features_as_list: bool = False
    prompt_token_keys: tuple[str, ...] = ("token_type_ids",)

    def packs_prefix(self) -> bool:
        return False  # one packed row would need the image blocks' mask and ours at once


GEMMA3 = Gemma3("Gemma 3", ("gemma3",))
