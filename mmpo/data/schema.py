"""The one validated in-memory form of a multimodal preference row, and the errors and
skip report that every loader shares."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Union

from PIL import Image

from mmpo.io import write_text_atomic

# An image is an absolute path on disk, the encoded bytes of an image embedded in the data
# (a datasets Image column, a base64 string), both decoded when a batch needs them, or an
# in-memory PIL image (a Dataset object handed to load_preferences may hold those).
ImageSource = Union[str, bytes, Image.Image]


class DataError(ValueError):
    """A bad preference row. ``str(err)`` names the file, line and field and says what to do.

    ``location`` is ``"file:line"`` (JSON lines), ``"file[index]"`` (a JSON list, a
    dataset) or just the file; ``report``, on the error that ends a load where every row
    was skipped, is that load's :class:`LoadReport`.
    """

    def __init__(self, location: str, field: str | None, problem: str, reason: str) -> None:
        self.location = location
        self.field = field
        self.problem = problem
        self.reason = reason  # short machine-readable category, used by the skip report
        self.report: LoadReport | None = None
        where = f"{location}: field '{field}'" if field else location
        super().__init__(f"{where}: {problem}")

    def record(self) -> dict[str, Any]:
        """The error as one line of ``skipped.jsonl``: file, line (or index), field, reason, message."""
        file, line, index = self.location, None, None
        if match := re.fullmatch(r"(.*):(\d+)", self.location):
            file, line = match[1], int(match[2])
        elif match := re.fullmatch(r"(.*)\[(?:row )?(\d+)\]", self.location):
            file, index = match[1], int(match[2])
        record = {"file": file, "line": line, "field": self.field, "reason": self.reason, "message": str(self)}
        if index is not None:
            record["index"] = index
        return record


@dataclass
class PreferenceExample:
    """One preference row.

    ``images`` condition the prompt: one or several, placed before the prompt text, or, when
    the prompt holds one ``<image>`` placeholder per image, each at its placeholder;
    ``rejected_images``, when given, is an explicit negative image set for CoPO (used
    instead of a corrupted copy); ``source`` is "file:line" for error messages.
    """

    id: str
    images: list[ImageSource]
    prompt: str
    chosen: str
    rejected: str
    rejected_images: list[ImageSource] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""


@dataclass
class LoadReport:
    """What a loader read and what it skipped, by reason, so nothing disappears silently."""

    path: str
    rows_read: int = 0
    rows_kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)  # one per skipped row, see DataError.record
    format: str = ""  # the layout read (see mmpo.data.formats)
    notes: list[str] = field(default_factory=list)  # what the reader decided: path bases, templates taken out

    def skip(self, err: DataError) -> None:
        self.skipped[err.reason] += 1
        self.errors.append(str(err))
        self.records.append(err.record())

    def write_skipped(self, path: str) -> None:
        """Every skipped row as JSON lines (``file``, ``line``, ``field``, ``reason``,
        ``message``), written atomically; an empty file when nothing was skipped."""
        write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records))

    def summary(self) -> str:
        line = f"{self.path}: {self.rows_kept} of {self.rows_read} rows kept"
        if self.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
            line += f"; skipped {sum(self.skipped.values())} ({reasons})"
        return line


def check_text(value: Any, location: str, name: str, *, allow_empty: bool = False) -> str:
    """The field as a string, or a :class:`DataError` saying why it isn't one."""
    if value is None:
        raise DataError(location, name, "is missing; every row needs it", "missing_field")
    if not isinstance(value, str):
        raise DataError(location, name, f"must be a string, got {type(value).__name__}", "wrong_type")
    if not allow_empty and not value.strip():
        raise DataError(location, name, "is empty", f"empty_{name}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone \udXXX escape: valid JSON, not text a tokenizer takes
        raise DataError(location, name, f"holds an unpaired surrogate {value[exc.start]!r} at character "
                        f"{exc.start}, which is not text", "bad_encoding") from None
    return value


def check_pair(chosen: str, rejected: str, location: str) -> None:
    """Rejects a pair whose two responses are the same text: it carries no preference."""
    if chosen.strip() == rejected.strip():
        raise DataError(location, "rejected", "is identical to 'chosen'; the pair carries no preference", "identical_pair")
