"""Image reliance: how much a model's log-likelihood of its own answers drops when the
image is replaced by a corrupted one (mDPO's CoPO corruption by default).

    reliance = mean over answers of [log π(y | m, x) − log π(y | m′, x)] / |y|

A model that ignores the image scores ≈ 0; one that conditions on it scores > 0.
"""

from __future__ import annotations

import torch

from mmpo.data.collate import PreferenceCollator
from mmpo.data.corrupt import CorruptionConfig
from mmpo.data.schema import PreferenceExample
from mmpo.model.logps import sequence_logps


@torch.no_grad()
def image_reliance(
    model, processor, rows: list[PreferenceExample], answers: list[str],
    corruption: CorruptionConfig | None = None, batch_size: int = 32,
) -> float:
    """Mean per-token log-likelihood drop of ``answers`` from the real to the corrupted image."""
    collator = PreferenceCollator(processor, corruption=corruption or CorruptionConfig(seed=4321))
    drops = []
    for start in range(0, len(rows), batch_size):
        part, texts = rows[start : start + batch_size], answers[start : start + batch_size]
        real, lengths = sequence_logps(model, collator.responses(part, texts))
        corrupted, _ = sequence_logps(model, collator.responses(part, texts, corrupted=True))
        drops.append((real - corrupted) / lengths.clamp(min=1))
    return torch.cat(drops).mean().item()
