"""The epoch, carried with every index from the sampler to the collator.

m′ is a function of (row, epoch). The epoch must reach the process that collates, which
with ``--dataloader_num_workers`` is a worker; persistent workers are started once and
never see state the trainer sets later. So the epoch travels with the index: the sampler
yields ``(index, epoch)``, :class:`mmpo.data.loaders.PreferenceData` answers it with
``(row, epoch)``, and the collator reads it off each row. The shuffle order is the
wrapped sampler's own, unchanged.
"""

from __future__ import annotations

from typing import Iterator

from torch.utils.data import DataLoader, Sampler


class EpochSampler(Sampler):
    """Yields ``(index, epoch)`` for every index of ``sampler``; ``set_epoch`` (called by
    the Trainer and accelerate before each epoch) is passed on to ``sampler``."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        for index in self.sampler:
            yield index, epoch
        self.epoch = epoch + 1  # like accelerate's seedable sampler, for loaders nobody calls set_epoch on

    def __len__(self) -> int:
        return len(self.sampler)


def tag_epochs(loader: DataLoader) -> DataLoader:
    """``loader`` (as ``Trainer.get_train_dataloader`` returns it, prepared by accelerate)
    with its sampler wrapped in :class:`EpochSampler`. Under multi-process sharding the
    batch sampler that draws the indices sits under ``BatchSamplerShard``, and accelerate
    keeps a second reference to the sampler on the shard: every level gets the wrapper."""
    levels, level = [], loader.batch_sampler
    while level is not None:
        levels.append(level)
        level = getattr(level, "batch_sampler", None)
    sampler = getattr(levels[-1], "sampler", None) if levels else None
    if sampler is None:
        raise RuntimeError(
            f"cannot attach the epoch to the training sampler (batch sampler {type(loader.batch_sampler).__name__}); "
            "mmpo needs it to build each epoch's corrupted image"
        )
    if not isinstance(sampler, EpochSampler):
        tagged = EpochSampler(sampler)
        for level in levels:
            if hasattr(level, "sampler"):
                level.sampler = tagged
    return loader
