"""What every format reader shares: reading JSON safely, a row's images (paths, base64
strings, bytes, PIL images), and building a validated :class:`PreferenceExample`.

A reader yields ``(location, build)`` pairs: calling ``build(context)`` validates the row
and returns the example, or raises :class:`DataError`; the loader decides whether that
error stops the load. :class:`TextOnlyRow` (a :class:`SkipRow`) is always skipped and recorded, never fatal.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import os
import re
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterator

from PIL import Image

from mmpo.data.images import MAX_IMAGE_PIXELS, ImageCheck, check_image, resolve_image_path
from mmpo.data.prompts import question_text
from mmpo.data.schema import DataError, ImageSource, PreferenceExample, check_pair, check_text


class SkipRow(DataError):
    """A well-formed row that is not a training pair (no image, no preference): skipped and
    recorded in the load report whether or not bad rows are skipped."""


class TextOnlyRow(SkipRow):
    """A row with no image. mmpo's objectives all condition on an image, so such rows are
    skipped and recorded (reason ``text_only``)."""

    def __init__(self, location: str, field: str) -> None:
        super().__init__(location, field, "has no image; text-only rows are skipped (every mmpo objective "
                         "conditions on an image)", "text_only")


@dataclass(frozen=True)
class ImageRules:
    """How a reader checks a row's images: ``check`` (``full`` decodes, ``exists`` checks
    presence, ``none`` nothing), the largest image it accepts, and ``roots``: the folders
    absolute image paths may come from (none by default: absolute paths are refused)."""

    check: ImageCheck = "full"
    max_pixels: int = MAX_IMAGE_PIXELS
    roots: tuple[str, ...] = ()


BASE64 = re.compile(r"[A-Za-z0-9+/=\s]+")
BARE_BASE64_MIN = 64  # a string this long of base64 characters and no '.' (no file extension) is not a path

RowBuild = Callable[[ImageRules], PreferenceExample]
RowThunk = tuple[str, RowBuild]
# A row schema turns one parsed row (a dict) into an example: (obj, index, location, root, rules).
RowSchema = Callable[[dict, int, str, str, ImageRules], PreferenceExample]


def row_id(obj: dict, index: int, location: str) -> str:
    """The row's ``id`` (a string or an integer), or its index when it has none."""
    value = obj.get("id", index)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(location, "id", f"must be a string or an integer, got {type(value).__name__}", "wrong_type")
    return str(value)


def make_example(*, location: str, row_id: str, images: list[ImageSource], prompt: Any, chosen: Any,
                 rejected: Any, rejected_images: list[ImageSource] | None = None, metadata: dict | None = None,
                 prompt_field: str = "prompt") -> PreferenceExample:
    """A validated example. The prompt is reduced to the user's question (a chat template
    already applied in the data is taken out, see :mod:`mmpo.data.prompts`), with
    ``<image>`` placeholders kept only where they place an image inside the text."""
    metadata = dict(metadata or {})
    prompt = check_text(prompt, location, prompt_field)
    prompt, template = question_text(prompt, len(images), location, prompt_field)
    if template:
        metadata["template_removed"] = template
    if not prompt.strip():
        raise DataError(location, prompt_field, "is empty once its image placeholders are taken out",
                        f"empty_{prompt_field}")
    chosen = check_text(chosen, location, "chosen")
    rejected = check_text(rejected, location, "rejected")
    check_pair(chosen, rejected, location)
    return PreferenceExample(id=row_id, images=images, prompt=prompt, chosen=chosen, rejected=rejected,
                             rejected_images=rejected_images or [], metadata=metadata, source=location)


def row_images(value: Any, root: str, location: str, field: str, rules: ImageRules, *,
               required: bool = True) -> list[ImageSource]:
    """A row's images: a path relative to ``root`` (absolute ones only under ``rules.roots``),
    a ``data:image/…;base64,`` string, ``{"bytes", "path"}`` (a datasets Image), or a PIL
    image; one or a list. Embedded images are kept encoded (bytes) and decoded when a batch
    needs them, so a hub set's images are not all held decoded in memory. A missing image is
    a :class:`DataError`, or ``[]`` when not ``required``."""
    if value is None or value == []:
        if required:
            what = "is missing" if value is None else "is an empty list"
            raise DataError(location, field, f"{what}; every row needs an image", "missing_field")
        return []
    items = value if isinstance(value, list) else [value]
    images = []
    for item in items:
        image = _one_image(item, root, location, field, rules)
        check_image(image, location, field, rules.check, rules.max_pixels)
        images.append(image)
    return images


def _one_image(item: Any, root: str, location: str, field: str, rules: ImageRules) -> ImageSource:
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, dict) and item.get("bytes"):
        return bytes(item["bytes"])
    if isinstance(item, dict) and item.get("path"):
        item = item["path"]
    if not isinstance(item, str):
        raise DataError(location, field, f"must be a path string or a list of them, got {type(item).__name__}",
                        "wrong_type")
    if item.startswith("data:"):
        return _image_from_data_uri(item, location, field)
    if len(item) >= BARE_BASE64_MIN and "." not in item and BASE64.fullmatch(item):  # bare base64, as ms-swift also accepts
        return _image_from_data_uri("data:image/unknown;base64," + item, location, field)
    if item.startswith(("http://", "https://")):
        raise DataError(location, field, f"is a URL ({item[:80]}); mmpo reads images from disk only: download them "
                        "and point the rows at the files", "remote_image")
    return resolve_image_path(item, root, location, field, allowed_roots=rules.roots)


def _image_from_data_uri(uri: str, location: str, field: str) -> bytes:
    header, _, payload = uri.partition(",")
    if not header.startswith("data:image/") or not header.endswith(";base64"):
        raise DataError(location, field, f"is a data URI mmpo cannot read ({header[:60]!r}); "
                        "expected data:image/<type>;base64,<data>", "unreadable_image")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DataError(location, field, f"holds base64 image data that does not decode ({exc})",
                        "unreadable_image") from None


def raise_later(err: DataError) -> RowBuild:
    """A row builder that raises ``err``: a line that is not even a row is still a bad row."""

    def build(_rules: ImageRules) -> PreferenceExample:
        raise err

    return build


def schema_rows(rows: Iterator[tuple[str, dict | DataError]], schema: RowSchema, root: str) -> Iterator[RowThunk]:
    """``(location, obj)`` rows turned into row thunks by ``schema``."""
    for index, (location, obj) in enumerate(rows):
        if isinstance(obj, DataError):
            yield location, raise_later(obj)
            continue
        if not isinstance(obj, dict):
            yield location, raise_later(DataError(location, None, f"must be a JSON object, got {type(obj).__name__}",
                                                  "wrong_type"))
            continue
        yield location, partial(_build, schema, obj, index, location, root)


def _build(schema: RowSchema, obj: dict, index: int, location: str, root: str, rules: ImageRules) -> PreferenceExample:
    return schema(obj, index, location, root, rules)


# --------------------------------------------------------------------------- JSON files
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


def read_text(path: str) -> str:
    """A whole file as UTF-8 text, or a DataError naming the line of the first bad byte."""
    with open(path, "rb") as f:
        data = f.read().removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        lineno = data.count(b"\n", 0, exc.start) + 1
        raise _encoding_error(f"{path}:{lineno}", data[start:], exc.start - start) from None


def read_json(path: str) -> Any:
    """A whole-file JSON document, or a DataError naming the file (and line)."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}", None, f"is not valid JSON ({exc.msg})", "bad_json") from None
    except (ValueError, RecursionError) as exc:
        raise DataError(path, None, f"is not JSON mmpo can read ({type(exc).__name__}: {exc})", "bad_json") from None


def json_list_rows(path: str) -> Iterator[tuple[str, Any]]:
    """``("file[i]", row)`` for each element of a whole-file JSON list."""
    rows = read_json(path)
    if not isinstance(rows, list):
        raise DataError(path, None, "must hold a JSON list of rows", "wrong_type")
    for index, obj in enumerate(rows):
        yield f"{path}[{index}]", obj


def folder_of(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))
