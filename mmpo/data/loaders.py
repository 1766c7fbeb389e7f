"""``load_preferences``: preference data in any supported layout (see
:mod:`mmpo.data.formats` and the README's data section) to validated
:class:`PreferenceExample` rows, plus the report of what was read, kept and skipped.

Every bad row raises a :class:`DataError` naming file, line and field (a byte that is not
UTF-8 included); with ``skip_invalid=True`` it is skipped, counted by reason and recorded
in the :class:`LoadReport`. Rows that are well formed but not training pairs (text-only
rows, VLFeedback rows with no preference) are always skipped and recorded. A ``check_row``
callable adds checks that need more than the row, such as the prompt's length in tokens,
and is skipped the same way.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from mmpo.data.formats import FORMATS, ImageRules, RowThunk, detect_schema, open_rows
from mmpo.data.formats.common import SkipRow, read_json_lines, row_id
from mmpo.data.images import MAX_IMAGE_PIXELS, ImageCheck
from mmpo.data.schema import DataError, LoadReport, PreferenceExample

__all__ = ["FORMATS", "PreferenceData", "detect_schema", "load_preferences", "read_json_lines", "row_id"]


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
    image_roots: tuple[str, ...] | list[str] = (),
    check_images: ImageCheck = "full",
    skip_invalid: bool = False,
    seed: int = 0,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    check_row: Callable[[PreferenceExample], None] | None = None,
) -> PreferenceData:
    """Read preference rows from ``source``: a file or folder path, or a ``datasets.Dataset``.

    ``format`` is ``auto`` (the layout is detected) or one of :data:`FORMATS`.
    ``image_root`` overrides the folder relative image paths are resolved from (default:
    the data file's folder; for MMPR each source's ``root``). ``image_roots`` names the
    folders absolute image paths may come from (none by default: they are refused).
    ``check_images='full'`` decodes every image up front so a truncated file fails now,
    not hours into training; ``'exists'`` only checks presence; an image over
    ``max_image_pixels`` is a bad row either way. ``seed`` drives MMPR's fractional
    ``repeat_time`` sampling. ``check_row`` raises a :class:`DataError` for a row that
    fails a further check.
    """
    notes: list[str] = []
    rows, name, detected = open_rows(source, format, image_root, seed, notes)
    rules = ImageRules(check_images, max_image_pixels, tuple(os.path.abspath(r) for r in image_roots))
    try:
        data = _collect(rows, name, skip_invalid, rules, check_row)
    except DataError as err:
        if err.report is not None:  # every row skipped: the report still says what was read
            err.report.format, err.report.notes = detected, notes + err.report.notes
        raise
    data.report.format = detected
    data.report.notes = notes + data.report.notes
    return data


def _collect(rows: Iterator[RowThunk], path: str, skip_invalid: bool, rules: ImageRules,
             check_row: Callable[[PreferenceExample], None] | None) -> PreferenceData:
    report = LoadReport(path=path)
    examples = []
    seen: dict[str, str] = {}
    templates: Counter = Counter()
    for location, build in rows:
        report.rows_read += 1
        try:
            example = build(rules)
            if check_row is not None:
                check_row(example)
            if example.id in seen:  # ids key the corrupted image and cached reference log-probs
                raise DataError(location, "id", f"{example.id!r} is already used at {seen[example.id]}", "duplicate_id")
            seen[example.id] = location
            examples.append(example)
            if "template_removed" in example.metadata:
                templates[example.metadata["template_removed"]] += 1
        except SkipRow as err:
            report.skip(err)
        except DataError as err:
            if not skip_invalid:
                raise
            report.skip(err)
    report.rows_kept = len(examples)
    report.notes = [f"a {name} chat template was taken out of {n} prompt(s)" for name, n in templates.items()]
    if not examples:
        detail = f" ({report.summary()})" if report.rows_read else ""
        err = DataError(path, None, f"no usable preference rows{detail}", "empty_dataset")
        err.report = report
        raise err
    return PreferenceData(examples, report)
