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

Every bad row raises a :class:`DataError` naming file, line and field (a byte that is not
UTF-8 included); with ``skip_invalid=True`` it is skipped, counted by reason and recorded
in the :class:`LoadReport`. A ``check_row`` callable adds checks that need more than the
row, such as the prompt's length in tokens, and is skipped the same way.
"""

from __future__ import annotations

import codecs
import json
import os
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from PIL import Image

from mmpo.data.images import MAX_IMAGE_PIXELS, ImageCheck, check_image, load_image, resolve_image_path
from mmpo.data.schema import DataError, ImageSource, LoadReport, PreferenceExample, check_pair, check_text

IMAGE_PLACEHOLDER = "<image>"
MAX_REPEAT = 1000  # MMPR repeat_time above this is a typo (and would fill memory)


@dataclass
class PreferenceData:
    """Loaded rows plus the report of what was read and skipped. Indexable like a dataset."""

    examples: list[PreferenceExample]
    report: LoadReport

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int | tuple[int, int]) -> PreferenceExample | tuple[PreferenceExample, int]:
        """``data[i]`` is row i; ``data[(i, epoch)]`` (what :class:`mmpo.data.epochs.EpochSampler`
        yields) is ``(row i, epoch)``, so the collator knows the epoch in any worker process."""
        if isinstance(index, tuple):
            i, epoch = index
            return self.examples[i], epoch
        return self.examples[index]

    def __iter__(self) -> Iterator[PreferenceExample]:
        return iter(self.examples)


def load_preferences(
    source: Any,
    *,
    format: str = "auto",
    image_root: str | None = None,
    check_images: ImageCheck = "full",
    skip_invalid: bool = False,
    seed: int = 0,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    check_row: Callable[[PreferenceExample], None] | None = None,
) -> PreferenceData:
    """Read preference rows from ``source`` (a path or a ``datasets.Dataset``).

    ``format`` is one of ``auto``, ``jsonl``, ``mmpr``, ``vlfeedback``, ``hf``.
    ``image_root`` overrides the folder image paths are relative to (default: the data
    file's folder; for MMPR each source's ``root``). ``check_images='full'`` decodes every
    image up front so a truncated file fails now, not hours into training; ``'exists'``
    only checks presence; an image over ``max_image_pixels`` is a bad row either way.
    ``seed`` drives MMPR's fractional ``repeat_time`` sampling. ``check_row`` raises a
    :class:`DataError` for a row that fails a further check.
    """
    fmt = detect_format(source) if format == "auto" else format
    images = ImageRules(check_images, max_image_pixels)
    if fmt == "hf":
        return _collect(_hf_rows(source), _name_of(source), skip_invalid, images, check_row)
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
    return _collect(rows, path, skip_invalid, images, check_row)


def detect_format(source: Any) -> str:
    """Guess the format from the object or the file's name and first character."""
    if not isinstance(source, (str, os.PathLike)):
        return "hf"
    path = os.fspath(source)
    if os.path.isdir(path):
        return "hf"
    if path.endswith(".jsonl"):
        return "jsonl"
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        head = f.read(4096).lstrip()
    if head.startswith("["):
        return "vlfeedback"
    if head.startswith("{"):
        try:
            obj = json.loads(_read_text(path))
        except (DataError, ValueError, RecursionError):
            return "jsonl"
        if isinstance(obj, dict) and obj and all(isinstance(v, dict) and "annotation" in v for v in obj.values()):
            return "mmpr"
        return "jsonl"
    raise ValueError(f"{path}: cannot tell the data format; pass format= jsonl, mmpr, vlfeedback or hf")


@dataclass(frozen=True)
class ImageRules:
    """How a loader checks a row's images: ``check`` (see :func:`load_preferences`) and the
    largest image it accepts."""

    check: ImageCheck = "full"
    max_pixels: int = MAX_IMAGE_PIXELS


# A row generator yields (location, builder): calling the builder validates and returns the
# example or raises DataError; _collect decides whether that error stops the load.
RowThunk = tuple[str, Callable[[ImageRules], PreferenceExample]]


def _collect(rows: Iterator[RowThunk], path: str, skip_invalid: bool, images: ImageRules,
             check_row: Callable[[PreferenceExample], None] | None) -> PreferenceData:
    report = LoadReport(path=path)
    examples = []
    seen: dict[str, str] = {}
    for location, build in rows:
        report.rows_read += 1
        try:
            example = build(images)
            if check_row is not None:
                check_row(example)
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
        err = DataError(path, None, f"no usable preference rows{detail}", "empty_dataset")
        err.report = report
        raise err
    return PreferenceData(examples, report)


def row_id(obj: dict, index: int, location: str) -> str:
    """The row's ``id`` (a string or an integer), or its index when it has none."""
    value = obj.get("id", index)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(location, "id", f"must be a string or an integer, got {type(value).__name__}", "wrong_type")
    return str(value)


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


def _image_paths(value: Any, root: str, location: str, field: str, images: ImageRules, required: bool) -> list[str]:
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
        check_image(full, location, field, images.check, images.max_pixels)
        resolved.append(full)
    return resolved


def read_json_lines(path: str) -> Iterator[tuple[str, dict | DataError]]:
    """("file:line", object) per non-blank line; a bad line (not UTF-8, not JSON, not an
    object) yields a DataError instead. A UTF-8 byte-order mark on line 1 is allowed."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            location = f"{path}:{lineno}"
            if lineno == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield location, _encoding_error(location, raw, exc.start)
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                obj = DataError(location, None, f"is not valid JSON ({exc.msg} at column {exc.colno})", "bad_json")
            except (ValueError, RecursionError) as exc:  # a 5,000-digit number, nesting 10,000 deep
                obj = DataError(location, None, f"is not JSON mmpo can read ({type(exc).__name__}: {exc})", "bad_json")
            if not isinstance(obj, (dict, DataError)):
                obj = DataError(location, None, f"must be a JSON object, got {type(obj).__name__}", "wrong_type")
            yield location, obj


def _encoding_error(location: str, line: bytes, offset: int) -> DataError:
    column = len(line[:offset].decode("utf-8", errors="replace")) + 1
    return DataError(location, None, f"is not valid UTF-8 (byte 0x{line[offset]:02x} at column {column}); "
                     "save the file as UTF-8", "bad_encoding")


def _read_text(path: str) -> str:
    """A whole file as UTF-8 text, or a DataError naming the line of the first bad byte."""
    with open(path, "rb") as f:
        data = f.read().removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        lineno = data.count(b"\n", 0, exc.start) + 1
        raise _encoding_error(f"{path}:{lineno}", data[start:], exc.start - start) from None


def _read_json(path: str) -> Any:
    """A whole-file JSON document, or a DataError naming the file (and line)."""
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}", None, f"is not valid JSON ({exc.msg})", "bad_json") from None
    except (ValueError, RecursionError) as exc:
        raise DataError(path, None, f"is not JSON mmpo can read ({type(exc).__name__}: {exc})", "bad_json") from None


def _raise(err: DataError) -> Callable[[ImageRules], PreferenceExample]:
    def build(_images: ImageRules) -> PreferenceExample:
        raise err

    return build


# --------------------------------------------------------------------------- mmpo JSONL
def _jsonl_rows(path: str, root: str) -> Iterator[RowThunk]:
    for index, (location, obj) in enumerate(read_json_lines(path)):
        if isinstance(obj, DataError):
            yield location, _raise(obj)
            continue

        def build(images: ImageRules, obj=obj, location=location, index=index) -> PreferenceExample:
            known = {"id", "image", "prompt", "chosen", "rejected", "rejected_image"}
            return _make_example(
                location=location,
                row_id=row_id(obj, index, location),
                images=_image_paths(obj.get("image"), root, location, "image", images, required=True),
                prompt=obj.get("prompt"),
                chosen=obj.get("chosen"),
                rejected=obj.get("rejected"),
                rejected_images=_image_paths(obj.get("rejected_image"), root, location, "rejected_image", images, False),
                metadata={k: v for k, v in obj.items() if k not in known},
            )

        yield location, build


# --------------------------------------------------------------------------- MMPR
def _mmpr_rows(meta_path: str, image_root: str | None, seed: int) -> Iterator[RowThunk]:
    meta_dir = os.path.dirname(os.path.abspath(meta_path))
    meta = _read_json(meta_path)
    if not isinstance(meta, dict):
        raise DataError(meta_path, None, f"must be a JSON object of sources, got {type(meta).__name__}", "wrong_type")
    rng = random.Random(seed)
    for name, entry in meta.items():
        if not isinstance(entry, dict):
            raise DataError(meta_path, name, f"must be an object with root and annotation, got {type(entry).__name__}",
                            "wrong_type")
        for key in ("root", "annotation"):
            if not isinstance(entry.get(key), str):
                raise DataError(meta_path, f"{name}.{key}", "must be a path string", "wrong_type")
        root = image_root or os.path.join(meta_dir, entry["root"])
        annotation = os.path.join(meta_dir, entry["annotation"])
        if not os.path.isfile(annotation):
            raise DataError(meta_path, f"{name}.annotation", f"annotation file not found: {annotation}", "missing_file")
        lines = list(read_json_lines(annotation))
        repeat = entry.get("repeat_time", 1)
        if isinstance(repeat, bool) or not isinstance(repeat, (int, float)) or not 0 < repeat <= MAX_REPEAT:
            raise DataError(meta_path, f"{name}.repeat_time", f"must be a number in (0, {MAX_REPEAT}], got {repeat!r}",
                            "wrong_type")
        if repeat < 1:  # a fraction of the rows, sampled with the seed (as InternVL does)
            keep = sorted(rng.sample(range(len(lines)), k=int(len(lines) * repeat)))
            lines = [lines[i] for i in keep]
        else:
            lines = lines * int(repeat)
        for index, (location, obj) in enumerate(lines):
            if isinstance(obj, DataError):
                yield location, _raise(obj)
                continue

            def build(rules: ImageRules, obj=obj, location=location, index=index, name=name, root=root):
                images = _image_paths(obj.get("image"), root, location, "image", rules, required=True)
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
    rows = _read_json(path)
    if not isinstance(rows, list):
        raise DataError(path, None, "must hold a JSON list of rows", "wrong_type")
    for index, obj in enumerate(rows):
        location = f"{path}[{index}]"
        if not isinstance(obj, dict):
            yield location, _raise(DataError(location, None, "must be a JSON object", "wrong_type"))
            continue

        def build(images: ImageRules, obj=obj, location=location, index=index) -> PreferenceExample:
            return _make_example(
                location=location,
                row_id=row_id(obj, index, location),
                images=_image_paths(obj.get("img_path"), root, location, "img_path", images, required=True),
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
        elif not isinstance(content, list):
            raise DataError(location, field, f"message content must be text or a list of parts, got "
                            f"{type(content).__name__}", "wrong_type")
        else:
            texts.extend(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")
    return "".join(texts).strip()


def _hf_image(value: Any, location: str) -> ImageSource:
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict) and value.get("bytes"):
        import io

        try:
            return Image.open(io.BytesIO(value["bytes"]))
        except Image.DecompressionBombError as exc:
            raise DataError(location, "images", f"image is too large to decode ({exc})", "image_too_large") from None
        except Exception as exc:  # noqa: BLE001 — anything Pillow raises on bad bytes
            raise DataError(location, "images", f"cannot read image bytes: {type(exc).__name__}: {exc}",
                            "unreadable_image") from None
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

        def build(rules: ImageRules, row=row, location=location, index=index) -> PreferenceExample:
            raw = row.get("images", row.get("image"))
            raw = raw if isinstance(raw, list) else ([] if raw is None else [raw])
            if not raw:
                raise DataError(location, "images", "is missing or empty; every row needs an image", "missing_field")
            images = [_hf_image(img, location) for img in raw]
            if rules.check == "full":
                for img in images:
                    load_image(img, location, "images", rules.max_pixels)
            return _make_example(
                location=location,
                row_id=row_id(row, index, location),
                images=images,
                prompt=_message_text(row.get("prompt"), location, "prompt", "user"),
                chosen=_message_text(row.get("chosen"), location, "chosen", "assistant"),
                rejected=_message_text(row.get("rejected"), location, "rejected", "assistant"),
            )

        yield location, build
