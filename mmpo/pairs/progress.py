"""Fixed input batches with a progress bar that shows pairs per second, skipping batches
whose rows are all finished (their positions, and so their seeds, never move)."""

from __future__ import annotations

import time
from typing import Iterator

from tqdm import tqdm

from mmpo.pairs.store import PairStore


def batches_with_progress(rows: list, size: int, store: PairStore, label: str, unit: str = "pairs") -> Iterator[tuple[int, list]]:
    bar = tqdm(total=len(rows), desc=label, unit="input", initial=sum(store.is_done(r.id) for r in rows))
    started, written = time.time(), store.pairs_written
    for start in range(0, len(rows), size):
        batch = rows[start : start + size]
        pending = [r for r in batch if not store.is_done(r.id)]
        if not pending:
            continue
        yield start, batch
        bar.update(len(pending))
        rate = (store.pairs_written - written) / max(time.time() - started, 1e-9)
        bar.set_postfix({unit: store.pairs_written, f"{unit}_per_s": f"{rate:.2f}"})
    bar.close()
