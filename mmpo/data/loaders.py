"""Loaders from the formats people ship preference data in, to validated
:class:`PreferenceExample` rows.

- mmpo JSONL (one row per line, see README): ``id``, ``image`` (path or list), ``prompt``,
  ``chosen``, ``rejected``, optional ``rejected_image``; paths relative to the file's folder.
- MMPR (InternVL2-MPO, arXiv 2411.10442): a ``meta.json`` naming per-source ``root``,
  ``annotation`` (JSONL of ``image``, ``question``, ``chosen``, ``rejected``),
  ``repeat_time`` and ``length``; ``<image>`` placeholders are taken out of the question.
- mDPO / VLFeedback JSON: a list of ``{prompt, chosen, rejected, img_path}``.
- Hugging Face ``datasets`` in TRL's layout: ``images`` + ``prompt``/``chosen``/``rejected``,
  either plain strings or conversational message lists.

Every bad row raises a :class:`DataError` naming file, line and field; with
``skip_invalid=True`` it is skipped and counted by reason in the :class:`LoadReport`.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from PIL import Image

from mmpo.data.images import ImageCheck, check_image, resolve_image_path
from mmpo.data.schema import DataError, ImageSource, LoadReport, PreferenceExample, check_pair, check_text

IMAGE_PLACEHOLDER = "<image>"


@dataclass
class PreferenceData:
    """Loaded rows plus the report of what was read and skipped. Indexable like a dataset."""

    examples: list[PreferenceExample]
    report: LoadReport

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> PreferenceExample:
        return self.examples[index]


def load_preferences(
    source: Any,
    *,
    format: str = "auto",
    image_root: str | None = None,
    check_images: ImageCheck = "full",
    skip_invalid: bool = False,
    seed: int = 0,
) -> PreferenceData:
    """Read preference rows from ``source`` (a path or a ``datasets.Dataset``).

    ``format`` is one of ``auto``, ``jsonl``, ``mmpr``, ``vlfeedback``, ``hf``.
    ``image_root`` overrides the folder image paths are relative to (default: the data
    file's folder; for MMPR each source's ``root``). ``check_images='full'`` decodes every
    image up front so a truncated file fails now, not hours into training; ``'exists'``
    only checks presence. ``seed`` drives MMPR's fractional ``repeat_time`` sampling.
    """
    fmt = detect_format(source) if format == "auto" else format
    if fmt == "hf":
        return _collect(_hf_rows(source), _name_of(source), skip_invalid, check_images)
    path = os.fspath(source)
    if not os.path.exists(path):
        raise FileNotFoundError(f"preference data not found: {path}")
    if fmt == "jsonl":
        rows = _jsonl_rows(path, image_root or os.path.dirname(os.path.abspath(path)))
    elif fmt == "vlfeedback":
        rows = _vlfeedback_rows(path, image_root or os.path.dirname(os.path.abspath(path)))
    elif fmt == "mmpr":
        rows = _mmpr_rows(path, image_root, seed)
    else:
        raise ValueError(f"unknown data format {fmt!r}; use auto, jsonl, mmpr, vlfeedback or hf")
    return _collect(rows, path, skip_invalid, check_images)


def detect_format(source: Any) -> str:
    """Guess the format from the object or the file's name and first character."""
    if not isinstance(source, (str, os.PathLike)):
        return "hf"
    path = os.fspath(source)
    if os.path.isdir(path):
        return "hf"
    if path.endswith(".jsonl"):
        return "jsonl"
    with open(path, encoding="utf-8") as f:
        head = f.read(4096).lstrip()
    if head.startswith("["):
        return "vlfeedback"
    if head.startswith("{"):
        try:
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
        except json.JSONDecodeError:
            return "jsonl"
        if isinstance(obj, dict) and obj and all(isinstance(v, dict) and "annotation" in v for v in obj.values()):
            return "mmpr"
        return "jsonl"
    raise ValueError(f"{path}: cannot tell the data format; pass format= jsonl, mmpr, vlfeedback or hf")


# A row generator yields (location, builder): calling the builder validates and returns the
# example or raises DataError; _collect decides whether that error stops the load.
RowThunk = tuple[str, Callable[[ImageCheck], PreferenceExample]]


def _collect(rows: Iterator[RowThunk], path: str, skip_invalid: bool, check_images: ImageCheck) -> PreferenceData:
    report = LoadReport(path=path)
    examples = []
    seen: dict[str, str] = {}
    for location, build in rows:
        report.rows_read += 1
        try:
            example = build(check_images)
            if example.id in seen:  # ids key the corrupted image and cached reference log-probs
                raise DataError(location, "id", f"{example.id!r} is already used at {seen[example.id]}", "duplicate_id")
            seen[example.id] = location
            examples.append(example)
        except DataError as err:
            if not skip_invalid:
                raise
            report.skip(err)
    report.rows_kept = len(examples)
    if not examples:
        detail = f" ({report.summary()})" if report.rows_read else ""
        raise DataError(path, None, f"no usable preference rows{detail}", "empty_dataset")
    return PreferenceData(examples, report)


def _make_example(
    *,
    location: str,
    row_id: str,
    images: list[ImageSource],
    prompt: Any,
    chosen: Any,
    rejected: Any,
    rejected_images: list[ImageSource] | None = None,
    metadata: dict | None = None,
) -> PreferenceExample:
    prompt = check_text(prompt, location, "prompt")
    chosen = check_text(chosen, location, "chosen")
    rejected = check_text(rejected, location, "rejected")
    check_pair(chosen, rejected, location)
    return PreferenceExample(
        id=row_id,
        images=images,
        prompt=prompt,
        chosen=chosen,
        rejected=rejected,
        rejected_images=rejected_images or [],
        metadata=metadata or {},
        source=location,
    )


def _image_paths(value: Any, root: str, location: str, field: str, check: ImageCheck, required: bool) -> list[str]:
    if value is None:
        if required:
            raise DataError(location, field, "is missing; every row needs an image", "missing_field")
        return []
    paths = value if isinstance(value, list) else [value]
    if not paths and required:
        raise DataError(location, field, "is an empty list; every row needs an image", "missing_field")
    resolved = []
    for p in paths:
        if not isinstance(p, str):
            raise DataError(location, field, f"must be a path string or a list of them, got {type(p).__name__}", "wrong_type")
        full = resolve_image_path(p, root, location, field)
        check_image(full, location, field, check)
        resolved.append(full)
    return resolved


def read_json_lines(path: str) -> Iterator[tuple[str, dict | DataError]]:
    """("file:line", object) per non-blank line; a bad line yields a DataError instead."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            location = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                obj = DataError(location, None, f"is not valid JSON ({exc.msg} at column {exc.colno})", "bad_json")
            if not isinstance(obj, (dict, DataError)):
                obj = DataError(location, None, f"must be a JSON object, got {type(obj).__name__}", "wrong_type")
            yield location, obj


def _raise(err: DataError) -> Callable[[ImageCheck], PreferenceExample]:
    def build(_check: ImageCheck) -> PreferenceExample:
        raise err

    return build


# --------------------------------------------------------------------------- mmpo JSONL
def _jsonl_rows(path: str, root: str) -> Iterator[RowThunk]:
    for index, (location, obj) in enumerate(read_json_lines(path)):
        if isinstance(obj, DataError):
            yield location, _raise(obj)
            continue

        def build(check: ImageCheck, obj=obj, location=location, index=index) -> PreferenceExample:
            known = {"id", "image", "prompt", "chosen", "rejected", "rejected_image"}
            return _make_example(
                location=location,
                row_id=str(obj.get("id", index)),
                images=_image_paths(obj.get("image"), root, location, "image", check, required=True),
                prompt=obj.get("prompt"),
                chosen=obj.get("chosen"),
                rejected=obj.get("rejected"),
                rejected_images=_image_paths(obj.get("rejected_image"), root, location, "rejected_image", check, False),
                metadata={k: v for k, v in obj.items() if k not in known},
            )

        yield location, build


# --------------------------------------------------------------------------- MMPR
def _mmpr_rows(meta_path: str, image_root: str | None, seed: int) -> Iterator[RowThunk]:
    meta_dir = os.path.dirname(os.path.abspath(meta_path))
    with open(meta_path, encoding="utf-8") as f:
        try:
            meta = json.load(f)
        except json.JSONDecodeError as exc:
            raise DataError(f"{meta_path}:{exc.lineno}", None, f"is not valid JSON ({exc.msg})", "bad_json") from None
    rng = random.Random(seed)
    for name, entry in meta.items():
        for key in ("root", "annotation"):
            if not isinstance(entry.get(key), str):
                raise DataError(meta_path, f"{name}.{key}", "must be a path string", "wrong_type")
        root = image_root or os.path.join(meta_dir, entry["root"])
        annotation = os.path.join(meta_dir, entry["annotation"])
        if not os.path.isfile(annotation):
            raise DataError(meta_path, f"{name}.annotation", f"annotation file not found: {annotation}", "missing_file")
        lines = list(read_json_lines(annotation))
        repeat = entry.get("repeat_time", 1)
        if not isinstance(repeat, (int, float)) or repeat <= 0:
            raise DataError(meta_path, f"{name}.repeat_time", f"must be a positive number, got {repeat!r}", "wrong_type")
        if repeat < 1:  # a fraction of the rows, sampled with the seed (as InternVL does)
            keep = sorted(rng.sample(range(len(lines)), k=int(len(lines) * repeat)))
            lines = [lines[i] for i in keep]
        else:
            lines = lines * int(repeat)
        for index, (location, obj) in enumerate(lines):
            if isinstance(obj, DataError):
                yield location, _raise(obj)
                continue

            def build(check: ImageCheck, obj=obj, location=location, index=index, name=name, root=root):
                images = _image_paths(obj.get("image"), root, location, "image", check, required=True)
                question = check_text(obj.get("question"), location, "question")
                placeholders = question.count(IMAGE_PLACEHOLDER)
                if placeholders not in (0, len(images)):
                    raise DataError(
                        location, "question",
                        f"has {placeholders} '<image>' placeholders for {len(images)} image(s)", "image_count_mismatch",
                    )
                prompt = question.replace(IMAGE_PLACEHOLDER, "").strip()
                return _make_example(
                    location=location,
                    row_id=f"{name}/{index}",
                    images=images,
                    prompt=prompt if prompt else None,
                    chosen=obj.get("chosen"),
                    rejected=obj.get("rejected"),
                    metadata={"source": name},
                )

            yield location, build


# --------------------------------------------------------------------------- mDPO / VLFeedback JSON
def _vlfeedback_rows(path: str, root: str) -> Iterator[RowThunk]:
    with open(path, encoding="utf-8") as f:
        try:
            rows = json.load(f)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}", None, f"is not valid JSON ({exc.msg})", "bad_json") from None
    if not isinstance(rows, list):
        raise DataError(path, None, "must hold a JSON list of rows", "wrong_type")
    for index, obj in enumerate(rows):
        location = f"{path}[{index}]"
        if not isinstance(obj, dict):
            yield location, _raise(DataError(location, None, "must be a JSON object", "wrong_type"))
            continue

        def build(check: ImageCheck, obj=obj, location=location, index=index) -> PreferenceExample:
            return _make_example(
                location=location,
                row_id=str(obj.get("id", index)),
                images=_image_paths(obj.get("img_path"), root, location, "img_path", check, required=True),
                prompt=obj.get("prompt"),
                chosen=obj.get("chosen"),
                rejected=obj.get("rejected"),
            )

        yield location, build


# --------------------------------------------------------------------------- Hugging Face datasets
def _name_of(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    info = getattr(source, "info", None)
    return getattr(info, "dataset_name", None) or "dataset"


def _message_text(value: Any, location: str, field: str, role: str) -> Any:
    """Text of a TRL conversational field: a list of messages whose content is a string or
    a list of typed parts. Plain strings pass through."""
    if not isinstance(value, list):
        return value
    texts = []
    for message in value:
        if not isinstance(message, dict) or "content" not in message:
            raise DataError(location, field, "messages must be objects with 'role' and 'content'", "wrong_type")
        if message.get("role") not in (role, None):
            if field == "prompt" and message.get("role") == "system":
                continue
            raise DataError(
                location, field, f"only single-turn conversations are supported; found a {message.get('role')!r} turn",
                "multi_turn",
            )
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
        else:
            texts.extend(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")
    return "".join(texts).strip()


def _hf_image(value: Any, location: str) -> ImageSource:
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict) and value.get("bytes"):
        import io

        return Image.open(io.BytesIO(value["bytes"]))
    if isinstance(value, dict) and value.get("path"):
        return value["path"]
    if isinstance(value, str):
        return value
    raise DataError(location, "images", f"cannot use an image of type {type(value).__name__}", "wrong_type")


def _hf_rows(source: Any) -> Iterator[RowThunk]:
    import datasets

    if isinstance(source, (str, os.PathLike)):
        source = datasets.load_from_disk(os.fspath(source))
    if isinstance(source, datasets.DatasetDict):
        if "train" not in source:
            raise ValueError(f"DatasetDict has splits {list(source)}; pass the one to train on")
        source = source["train"]
    name = _name_of(source)
    for index, row in enumerate(source):
        location = f"{name}[row {index}]"

        def build(check: ImageCheck, row=row, location=location, index=index) -> PreferenceExample:
            raw = row.get("images", row.get("image"))
            raw = raw if isinstance(raw, list) else ([] if raw is None else [raw])
            if not raw:
                raise DataError(location, "images", "is missing or empty; every row needs an image", "missing_field")
            images = [_hf_image(img, location) for img in raw]
            return _make_example(
                location=location,
                row_id=str(row.get("id", index)),
                images=images,
                prompt=_message_text(row.get("prompt"), location, "prompt", "user"),
                chosen=_message_text(row.get("chosen"), location, "chosen", "assistant"),
                rejected=_message_text(row.get("rejected"), location, "rejected", "assistant"),
            )

        yield location, build
