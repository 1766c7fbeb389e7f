"""Gemma 3: ``token_type_ids`` mark image tokens (1), which attend to each other both ways
inside their image; text and response tokens are 0 (causal). Image features are one
tensor, not a list."""

from __future__ import annotations

from mmpo.model.families.base import Family

GEMMA3 = Family(
    "Gemma 3", ("gemma3",), token_keys=("token_type_ids",), features_as_list=False,
    shared_prefix="image tokens attend both ways inside their image: the prompt pass would need that mask",
)
