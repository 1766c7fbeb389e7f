"""Image reliance: how much a model's log-likelihood of its own answers drops when the
image is replaced by a corrupted one.

    reliance(y) = [log π(y | m, x) − log π(y | m′, x)] / |y|        (nats per token)

A model that ignores the image scores ≈ 0; one that conditions on it scores > 0. mDPO's CoPO
trains on one corruption (a random crop keeping 1–20 % by default), so a model can learn to
tell that corruption apart without looking at the image more: ``mmpo eval reliance``
therefore measures several m′ (the training crop and ones CoPO never saw: a blank image,
another example's image, noise), so the diagnostic cannot be gamed by the corruption it
is measured with.
"""

from __future__ import annotations

import torch

from mmpo.data.collate import PreferenceCollator
from mmpo.data.corrupt import CorruptionConfig
from mmpo.data.images import load_image
from mmpo.data.schema import PreferenceExample
from mmpo.model.logps import sequence_logps

DEFAULT_CORRUPTIONS = ("crop", "blank", "other", "noise:0.5")


@torch.no_grad()
def reliance_per_example(
    model, processor, rows: list[PreferenceExample], answers: list[str],
    corruption: CorruptionConfig | None = None, batch_size: int = 32,
) -> list[float]:
    """Per-token log-likelihood drop of each answer from the real to the corrupted image."""
    corruption = corruption or CorruptionConfig(seed=4321)
    others = {row.id: (lambda src=row.images[0], where=row.source: load_image(src, where)) for row in rows if row.images}
    collator = PreferenceCollator(processor, corruption=corruption, other_images=others)  # "other": another row's image
    drops = []
    for start in range(0, len(rows), batch_size):
        part, texts = rows[start : start + batch_size], answers[start : start + batch_size]
        real, lengths = sequence_logps(model, collator.responses(part, texts))
        corrupted, _ = sequence_logps(model, collator.responses(part, texts, corrupted=True))
        drops.append((real - corrupted) / lengths.clamp(min=1))
    return torch.cat(drops).tolist() if drops else []


def image_reliance(
    model, processor, rows: list[PreferenceExample], answers: list[str],
    corruption: CorruptionConfig | None = None, batch_size: int = 32,
) -> float:
    """Mean per-token log-likelihood drop of ``answers`` from the real to the corrupted image."""
    values = reliance_per_example(model, processor, rows, answers, corruption, batch_size)
    return torch.tensor(values).mean().item() if values else 0.0  # float32 mean, as before
