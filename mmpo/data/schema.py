"""The one validated in-memory form of a multimodal preference row, and the errors and
skip report that every loader shares."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Union

from PIL import Image

# An image is either an absolute path on disk (loaded lazily) or an in-memory PIL image
# (Hugging Face datasets hand those out).
ImageSource = Union[str, Image.Image]


class DataError(ValueError):
    """A bad preference row. ``str(err)`` names the file, line and field and says what to do."""

    def __init__(self, location: str, field: str | None, problem: str, reason: str) -> None:
        self.location = location
        self.field = field
        self.problem = problem
        self.reason = reason  # short machine-readable category, used by the skip report
        where = f"{location}: field '{field}'" if field else location
        super().__init__(f"{where}: {problem}")


@dataclass
class PreferenceExample:
    """One preference row.

    ``images`` condition the prompt (one or several, placed before the prompt text);
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

    def skip(self, err: DataError) -> None:
        self.skipped[err.reason] += 1
        self.errors.append(str(err))

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
    return value


def check_pair(chosen: str, rejected: str, location: str) -> None:
    """Rejects a pair whose two responses are the same text: it carries no preference."""
    if chosen.strip() == rejected.strip():
        raise DataError(location, "rejected", "is identical to 'chosen'; the pair carries no preference", "identical_pair")
