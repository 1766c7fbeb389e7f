"""Append-only, resumable output for pair generation.

``<out>`` holds the preference rows (mmpo JSONL); ``<out>.done`` one line per finished
input key with its counts. An input's rows are appended and flushed before its key is
marked done, so after a kill the next run drops rows of unfinished keys (and a torn last
line), skips finished keys and ends with every row exactly once.
"""

from __future__ import annotations

import json
import os
from collections import Counter

from mmpo.io import write_text_atomic


class PairStore:
    """``key_field`` is the output field that names a row's input key: ``source_id`` for
    pairs (an input yields several pairs), ``id`` for answers (one row per input, its own id)."""

    def __init__(self, out_path: str, key_field: str = "source_id") -> None:
        self.out_path = out_path
        self.key_field = key_field
        self.done_path = out_path + ".done"
        self.done: dict[str, dict] = {}
        self.drops: Counter = Counter()
        self.pairs_written = 0
        os.makedirs(os.path.dirname(os.path.abspath(out_path)) or ".", exist_ok=True)
        for line in read_json_lines_tolerant(self.done_path):
            self.done[line["key"]] = line
        kept = [row for row in read_json_lines_tolerant(out_path) if str(row.get(key_field)) in self.done]
        # Rewrite both files without torn or orphaned lines before appending to them.
        write_text_atomic(out_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
        write_text_atomic(self.done_path, "".join(json.dumps(d) + "\n" for d in self.done.values()))
        self.resumed = len(self.done)

    def is_done(self, key: str) -> bool:
        return key in self.done

    def add(self, key: str, rows: list[dict], drops: Counter | dict) -> None:
        """Append ``key``'s rows, then mark ``key`` done (in that order)."""
        with open(self.out_path, "a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row if self.key_field in row else dict(row, **{self.key_field: key}), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        record = {"key": key, "pairs": len(rows), "drops": dict(drops)}
        with open(self.done_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done[key] = record
        self.pairs_written += len(rows)
        self.drops.update(drops)

    def summary(self, inputs: int, unit: str = "pairs") -> str:
        total_pairs = sum(d["pairs"] for d in self.done.values())
        drops = Counter()
        for d in self.done.values():
            drops.update(d["drops"])
        line = f"{inputs} inputs, {len(self.done)} done ({self.resumed} from an earlier run), {total_pairs} {unit} → {self.out_path}"
        if drops:
            line += "; dropped: " + ", ".join(f"{n} {reason}" for reason, n in drops.most_common())
        return line


def read_json_lines_tolerant(path: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a kill: its key is not done, so it is regenerated
    return rows
