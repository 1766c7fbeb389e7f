"""MMPR (InternVL2-MPO, arXiv 2411.10442), as downloaded: a ``meta.json`` naming each
source's ``root`` (image folder), ``annotation`` (JSONL, see :mod:`.question_rows`),
``repeat_time`` and ``length``.

Where the paths are resolved from: InternVL's training scripts
(``internvl_chat/internvl/train/internvl_chat_mpo.py``, ``os.path.join(root, image)`` with
``root`` as written in ``meta.json``) run from the folder that holds ``MMPR-v1.2/``, so
the paths (``MMPR-v1.2/images/…``) are relative to the working directory. mmpo tries the
working directory first, then ``meta.json``'s folder, then its parent, and says in the
load report which one it used. An absolute path (MMPR v1.0's ``meta.json`` names its
authors' cluster) is used when it exists; else its longest tail that exists under one of
those folders is (``/mnt/…/MMPR/images/x`` → ``./MMPR/images/x``).

``repeat_time`` > 1 repeats a source's rows; a fraction keeps that share of them, sampled
with the seed (as InternVL does). Text-only rows are skipped and recorded.
"""

from __future__ import annotations

import os
import random
from typing import Iterator

from mmpo.data.formats.common import RowThunk, read_json, read_json_lines, schema_rows
from mmpo.data.formats.question_rows import question_row
from mmpo.data.schema import DataError

MAX_REPEAT = 1000  # repeat_time above this is a typo (and would fill memory)


def is_mmpr_meta(obj: object) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, dict) and "annotation" in v for v in obj.values())


def search_bases(meta_path: str) -> list[tuple[str, str]]:
    """``(folder, how to name it)`` in the order MMPR paths are tried."""
    meta_dir = os.path.dirname(os.path.abspath(meta_path))
    bases = [(os.getcwd(), "the working directory"), (meta_dir, "meta.json's folder"),
             (os.path.dirname(meta_dir), "meta.json's parent folder")]
    seen, unique = set(), []
    for folder, name in bases:
        if folder not in seen:
            seen.add(folder)
            unique.append((folder, name))
    return unique


def resolve_meta_path(value: str, bases: list[tuple[str, str]], meta_path: str, field: str) -> tuple[str, str]:
    """``(path, how it was found)`` for a ``root`` or ``annotation`` of ``meta.json``."""
    if os.path.isabs(value):
        if os.path.exists(value):
            return value, "as written (absolute)"
        parts = [p for p in value.split(os.sep) if p]
        for k in range(1, len(parts)):
            tail = os.path.join(*parts[k:])
            for folder, name in bases:
                if os.path.exists(os.path.join(folder, tail)):
                    return os.path.join(folder, tail), f"the tail {tail!r} of an absolute path, under {name} {folder}"
    else:
        for folder, name in bases:
            if os.path.exists(os.path.join(folder, value)):
                return os.path.join(folder, value), f"{name} {folder}"
    tried = ", ".join(f"{name} ({folder})" for folder, name in bases)
    raise DataError(meta_path, field, f"{value!r} not found (tried it as written and under {tried}); run from the "
                    "folder that holds the dataset (as InternVL's scripts do) or fix meta.json", "missing_file")


def mmpr_rows(meta_path: str, image_root: str | None, seed: int, notes: list[str]) -> Iterator[RowThunk]:
    meta = read_json(meta_path)
    if not isinstance(meta, dict):
        raise DataError(meta_path, None, f"must be a JSON object of sources, got {type(meta).__name__}", "wrong_type")
    bases = search_bases(meta_path)
    rng = random.Random(seed)
    for name, entry in meta.items():
        if not isinstance(entry, dict):
            raise DataError(meta_path, name, f"must be an object with root and annotation, got {type(entry).__name__}",
                            "wrong_type")
        for key in ("root", "annotation"):
            if not isinstance(entry.get(key), str):
                raise DataError(meta_path, f"{name}.{key}", "must be a path string", "wrong_type")
        annotation, how = resolve_meta_path(entry["annotation"], bases, meta_path, f"{name}.annotation")
        if not os.path.isfile(annotation):
            raise DataError(meta_path, f"{name}.annotation", f"annotation file not found: {annotation}", "missing_file")
        if image_root:
            root = image_root
        else:
            root, root_how = resolve_meta_path(entry["root"], bases, meta_path, f"{name}.root")
            how = how if how == root_how else f"{how} (annotation), {root_how} (root)"
        note = f"MMPR paths resolved from {how}"
        if note not in notes:
            notes.append(note)
        repeat = entry.get("repeat_time", 1)
        if isinstance(repeat, bool) or not isinstance(repeat, (int, float)) or not 0 < repeat <= MAX_REPEAT:
            raise DataError(meta_path, f"{name}.repeat_time", f"must be a number in (0, {MAX_REPEAT}], got {repeat!r}",
                            "wrong_type")
        lines = list(read_json_lines(annotation))
        if repeat < 1:  # a fraction of the rows, sampled with the seed (as InternVL does)
            keep = sorted(rng.sample(range(len(lines)), k=int(len(lines) * repeat)))
            lines = [lines[i] for i in keep]
        else:
            lines = lines * int(repeat)

        def row(obj, index, location, root, rules, name=name):
            row = question_row(obj, index, location, root, rules, id_prefix=f"{name}/")
            row.metadata["source"] = name
            return row

        yield from schema_rows(iter(lines), row, root)
