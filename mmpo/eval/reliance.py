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

@torch.no_grad()
def batched_logps(
    model, collator: PreferenceCollator, rows: list[PreferenceExample], answers: list[str], *,
    corrupted: bool = False, batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs of ``answers`` after their rows' prompts, under the real images (or
    the collator's m′ with ``corrupted``), and the answers' token counts. Shapes: (N,), (N,)."""
    logps, lengths = [], []
    for start in range(0, len(rows), batch_size):
        part, texts = rows[start : start + batch_size], answers[start : start + batch_size]
        batch_logps, batch_lengths = sequence_logps(model, collator.responses(part, texts, corrupted=corrupted))
        logps.append(batch_logps)
        lengths.append(batch_lengths)
    if not logps:
        return torch.zeros(0), torch.zeros(0)
    return torch.cat(logps), torch.cat(lengths)


def reliance_by_corruption(
    model, processor, rows: list[PreferenceExample], answers: list[str],
    corruptions: dict[str, CorruptionConfig], batch_size: int = 32,
) -> dict[str, list[float]]:
    """Per-token log-likelihood drop of each answer from the real image to each m′; the
    real-image log-likelihoods are computed once for all of them."""
    others = {row.id: (lambda src=row.images[0], where=row.source: load_image(src, where)) for row in rows if row.images}
    collators = {name: PreferenceCollator(processor, corruption=config, other_images=others)  # "other": another row's image
                 for name, config in corruptions.items()}
    if not collators:
        return {}
    real, lengths = batched_logps(model, next(iter(collators.values())), rows, answers, batch_size=batch_size)
    drops = {}
    for name, collator in collators.items():
        corrupted, _ = batched_logps(model, collator, rows, answers, corrupted=True, batch_size=batch_size)
        drops[name] = ((real - corrupted) / lengths.clamp(min=1)).tolist()
    return drops


def reliance_per_example(
    model, processor, rows: list[PreferenceExample], answers: list[str],
    corruption: CorruptionConfig | None = None, batch_size: int = 32,
) -> list[float]:
    """Per-token log-likelihood drop of each answer from the real to the corrupted image."""
    corruption = corruption or CorruptionConfig(seed=4321)
    return reliance_by_corruption(model, processor, rows, answers, {"m′": corruption}, batch_size)["m′"]


def mean_reliance(values: list[float]) -> float:
    return torch.tensor(values).mean().item() if values else 0.0  # float32 mean, as the demo has always taken it


def image_reliance(
    model, processor, rows: list[PreferenceExample], answers: list[str],
    corruption: CorruptionConfig | None = None, batch_size: int = 32,
) -> float:
    """Mean per-token log-likelihood drop of ``answers`` from the real to the corrupted image."""
    return mean_reliance(reliance_per_example(model, processor, rows, answers, corruption, batch_size))
