"""Preference data as the public sets ship it. Two questions, answered separately:

- the **container** (from the path): a JSONL file, a JSON list, an MMPR ``meta.json``, a
  ``datasets`` folder saved with ``save_to_disk``, a hub parquet folder or one ``.parquet``
  file (read through ``datasets``), or a ``datasets.Dataset`` object;
- the **row schema** (from the first row's columns, or ``format=``): one small module each.

============  ====================================================  ======================
format        columns                                               module
============  ====================================================  ======================
mmpo          id, image, prompt, chosen, rejected                   :mod:`.mmpo_rows`
trl           images, prompt, chosen, rejected (conversational)     :mod:`.mmpo_rows`
rlaif-v       image, question, chosen, rejected                     :mod:`.question_rows`
mmpr          meta.json → annotation JSONL of question rows         :mod:`.mmpr`
mdpo          img_path, prompt (templated), chosen, rejected        :mod:`.mdpo`
sharegpt      conversations (or messages), chosen, rejected, images :mod:`.sharegpt`
swift         messages, rejected_response, images                   :mod:`.swift`
vlfeedback    instruction, image, completions (rated)               :mod:`.vlfeedback`
============  ====================================================  ======================
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any, Iterator

from mmpo.data.formats.common import (
    ImageRules, RowSchema, RowThunk, folder_of, json_list_rows, read_json, read_json_lines, schema_rows,
)
from mmpo.data.formats.mdpo import mdpo_row
from mmpo.data.formats.mmpo_rows import mmpo_row, trl_row
from mmpo.data.formats.mmpr import is_mmpr_meta, mmpr_rows
from mmpo.data.formats.question_rows import question_row
from mmpo.data.formats.sharegpt import sharegpt_row
from mmpo.data.formats.swift import swift_row
from mmpo.data.formats.vlfeedback import vlfeedback_row
from mmpo.data.schema import DataError

__all__ = ["FORMATS", "ImageRules", "RowThunk", "detect_schema", "open_rows"]


def _vlfeedback_or_mdpo(obj, index, location, root, rules):
    """``vlfeedback`` rows; an ``img_path`` row without ``completions`` is mDPO's (which
    earlier mmpo versions called ``vlfeedback``)."""
    if "completions" not in obj and "img_path" in obj:
        return mdpo_row(obj, index, location, root, rules)
    return vlfeedback_row(obj, index, location, root, rules)


SCHEMAS: dict[str, RowSchema] = {
    "mmpo": mmpo_row, "trl": trl_row, "rlaif-v": question_row, "mdpo": mdpo_row, "sharegpt": sharegpt_row,
    "swift": swift_row, "vlfeedback": _vlfeedback_or_mdpo,
}
ALIASES = {"jsonl": "mmpo", "hf": "auto"}
FORMATS = ("auto", *SCHEMAS, "mmpr", *ALIASES)
SPLIT = re.compile(r"(?:^|[/_.-])(train|test|validation|valid|dev|eval)(?:[/_.-]|$)")


def detect_schema(columns: Any) -> str:
    """The row schema a set of column names belongs to."""
    keys = set(columns)
    if "completions" in keys:
        return "vlfeedback"
    if "rejected_response" in keys or ("messages" in keys and "rejected_messages" in keys):
        return "swift"
    if "conversations" in keys or {"messages", "chosen", "rejected"} <= keys:
        return "sharegpt"
    if "img_path" in keys:
        return "mdpo"
    if "question" in keys:
        return "rlaif-v"
    if "images" in keys and "image" not in keys:
        return "trl"
    return "mmpo"


def open_rows(source: Any, format: str = "auto", image_root: str | None = None, seed: int = 0,
              notes: list[str] | None = None) -> tuple[Iterator[RowThunk], str, str]:
    """``(row thunks, name for messages, format)`` of ``source``; ``notes`` collects what
    the reader decided (which folder MMPR paths were resolved from…)."""
    notes = [] if notes is None else notes
    format = ALIASES.get(format, format)
    if format not in FORMATS:
        raise ValueError(f"unknown data format {format!r}; use one of {', '.join(FORMATS)}")
    if not isinstance(source, (str, os.PathLike)):
        return _dataset_rows(source, format, image_root or os.getcwd(), _name_of(source))
    path = os.fspath(source)
    if not os.path.exists(path):
        raise FileNotFoundError(f"preference data not found: {path}")
    if os.path.isdir(path):
        return _folder_rows(path, format, image_root, seed, notes)
    if path.endswith(".parquet"):
        return _dataset_rows(_parquet([path], path), format, image_root or folder_of(path), path)
    root = image_root or folder_of(path)
    kind = _json_kind(path)
    if kind == "mmpr" or format == "mmpr":
        return mmpr_rows(path, image_root, seed, notes), path, "mmpr"
    lines = json_list_rows(path) if kind == "list" else read_json_lines(path)
    if format == "auto":
        first, lines = _peek(lines)
        format = detect_schema(first.keys()) if isinstance(first, dict) else "mmpo"
    return schema_rows(lines, SCHEMAS[format], root), path, format


def _json_kind(path: str) -> str:
    """``list`` (a JSON list), ``mmpr`` (a meta.json) or ``lines`` (JSONL)."""
    if path.endswith(".jsonl"):
        return "lines"
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        head = f.read(4096).lstrip()
    if head.startswith("["):
        return "list"
    if head and not head.startswith("{"):
        raise ValueError(f"{path}: cannot tell the data format (neither JSON lines, a JSON list, a meta.json nor "
                         "parquet); pass --data_format")
    try:
        return "mmpr" if is_mmpr_meta(read_json(path)) else "lines"
    except (DataError, RecursionError):
        return "lines"


def _peek(rows: Iterator) -> tuple[Any, Iterator]:
    """The first parsed row (None when there is none) and the rows, that one included."""
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return None, iter(())

    def chained():
        yield first
        yield from rows

    return first[1], chained()


def _folder_rows(path: str, format: str, image_root: str | None, seed: int, notes: list[str]):
    import datasets

    names = set(os.listdir(path))
    if names & {"dataset_info.json", "state.json", "dataset_dict.json"}:
        try:
            dataset = datasets.load_from_disk(path)
        except (FileNotFoundError, ValueError) as exc:
            raise DataError(path, None, f"cannot be read as a saved dataset: {exc}", "bad_dataset") from None
        if isinstance(dataset, datasets.DatasetDict):
            if "train" not in dataset:
                raise ValueError(f"{path}: the DatasetDict has splits {list(dataset)}; pass the one to train on "
                                 "(e.g. its subfolder)")
            dataset = dataset["train"]
        return _dataset_rows(dataset, format, image_root or path, path)
    files = sorted(glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True))
    if files:
        return _dataset_rows(_parquet(files, path), format, image_root or path, path)
    if "meta.json" in names:
        return mmpr_rows(os.path.join(path, "meta.json"), image_root, seed, notes), path, "mmpr"
    raise ValueError(f"{path}: a folder mmpo can read holds a saved dataset (save_to_disk), parquet files "
                     "(a hub dataset as downloaded) or an MMPR meta.json; this one holds none")


def _parquet(files: list[str], path: str):
    """The train split of parquet ``files`` as a ``datasets.Dataset``: files named for a
    split (``data/train-00000-of-00002.parquet``) pick it; unnamed files are all one split."""
    import datasets

    splits: dict[str | None, list[str]] = {}
    for file in files:
        match = SPLIT.search(os.path.relpath(file, path if os.path.isdir(path) else os.path.dirname(file)))
        splits.setdefault(match[1] if match else None, []).append(file)
    if "train" in splits:
        chosen = splits["train"]
    elif list(splits) == [None]:
        chosen = splits[None]
    else:
        raise ValueError(f"{path}: parquet files of splits {sorted(s or '(unnamed)' for s in splits)} and none named "
                         "train; pass the file or folder of the split to train on")
    try:
        return datasets.load_dataset("parquet", data_files={"train": chosen}, split="train")
    except Exception as exc:  # noqa: BLE001 — pyarrow and datasets raise many kinds on a bad file
        raise DataError(path, None, f"cannot be read as parquet: {type(exc).__name__}: {exc}", "bad_parquet") from None


def _encoded_images(dataset):
    """``dataset`` with its Image columns read as ``{"bytes", "path"}`` instead of decoded,
    so rows keep their images encoded until a batch needs them."""
    import datasets

    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image) and feature.decode:
            dataset = dataset.cast_column(name, datasets.Image(decode=False))
        elif isinstance(feature, datasets.Sequence) and isinstance(feature.feature, datasets.Image):
            dataset = dataset.cast_column(name, datasets.Sequence(datasets.Image(decode=False)))
        elif isinstance(feature, list) and len(feature) == 1 and isinstance(feature[0], datasets.Image):
            dataset = dataset.cast_column(name, [datasets.Image(decode=False)])
    return dataset


def _dataset_rows(dataset, format: str, root: str, name: str) -> tuple[Iterator[RowThunk], str, str]:
    dataset = _encoded_images(dataset)
    if format == "auto":
        format = detect_schema(dataset.column_names)
    if format == "mmpo":  # a dataset in mmpo's columns is TRL's layout: text-only rows are skipped
        format = "trl"
    rows = ((f"{name}[row {index}]", row) for index, row in enumerate(dataset))
    return schema_rows(rows, SCHEMAS[format], root), name, format


def _name_of(source: Any) -> str:
    info = getattr(source, "info", None)
    return getattr(info, "dataset_name", None) or "dataset"
