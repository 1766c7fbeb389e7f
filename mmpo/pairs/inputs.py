"""Input rows of the pair-generation commands: ``{"id", "image", "prompt" (or "question"),
"chosen" (DropoutNTP, optional), "answer" (correctness pipeline)}`` per JSONL line, with
the same validation, path and image rules as preference data (:mod:`mmpo.data.images`),
so a row `mmpo train` would refuse is refused here, before any generation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from PIL import Image

from mmpo.data.images import MAX_IMAGE_PIXELS, ImageCheck, check_image, load_image, resolve_image_path
from mmpo.data.formats.common import read_json_lines, row_id
from mmpo.data.schema import DataError, LoadReport, check_text


@dataclass
class PromptRow:
    id: str
    images: list[str]  # absolute paths
    prompt: str
    chosen: str | None = None
    answer: str | None = None
    source: str = ""
    fields: dict = field(default_factory=dict)  # the input row as read (carried to answer files)
    max_image_pixels: int = MAX_IMAGE_PIXELS

    def load_images(self) -> list[Image.Image]:
        """The row's images decoded as training decodes them."""
        return [load_image(p, self.source, "image", self.max_image_pixels) for p in self.images]


class PromptRows(list):
    """The rows read (a list), plus ``report``: what was read and skipped, and why."""

    report: LoadReport


def load_prompt_rows(
    path: str,
    *,
    need: str | None = None,
    image_root: str | None = None,
    image_roots: tuple[str, ...] | list[str] = (),
    check_images: ImageCheck = "exists",
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    skip_invalid: bool = False,
    check_row: Callable[[PromptRow], None] | None = None,
) -> PromptRows:
    """Rows of ``path``; ``need`` names a field every row must have ("answer").
    ``check_images='full'`` decodes every image now; ``check_row`` raises a
    :class:`DataError` for a row that fails a further check (the prompt's length).
    With ``skip_invalid`` a bad row is skipped and recorded in ``rows.report``. Absolute
    image paths are refused unless they lie under one of ``image_roots``."""
    root = image_root or os.path.dirname(os.path.abspath(path))
    rows, seen = PromptRows(), {}
    rows.report = LoadReport(path=path)
    for index, (location, obj) in enumerate(read_json_lines(path)):
        rows.report.rows_read += 1
        try:
            if isinstance(obj, DataError):
                raise obj
            row = _prompt_row(obj, index, location, root, need, check_images, max_image_pixels, tuple(image_roots))
            if check_row is not None:
                check_row(row)
            if row.id in seen:
                raise DataError(location, "id", f"{row.id!r} is already used at {seen[row.id]}", "duplicate_id")
        except DataError as err:
            if not skip_invalid:
                raise
            rows.report.skip(err)
            continue
        seen[row.id] = location
        rows.append(row)
    rows.report.rows_kept = len(rows)
    if not rows:
        detail = f" ({rows.report.summary()})" if rows.report.rows_read else ""
        err = DataError(path, None, f"holds no usable rows{detail}", "empty_dataset")
        err.report = rows.report
        raise err
    return rows


def _prompt_row(obj: dict, index: int, location: str, root: str, need: str | None, check_images: ImageCheck,
                max_image_pixels: int, image_roots: tuple[str, ...]) -> PromptRow:
    images = obj.get("image")
    images = images if isinstance(images, list) else [images]
    if images == [None] or not images:
        raise DataError(location, "image", "is missing; every row needs an image", "missing_field")
    paths = []
    for p in images:
        full = resolve_image_path(p, root, location, "image", allowed_roots=image_roots)
        check_image(full, location, "image", check_images, max_image_pixels)
        paths.append(full)
    prompt = check_text(obj.get("prompt", obj.get("question")), location, "prompt")
    row = PromptRow(row_id(obj, index, location), paths, prompt, source=location, fields=obj,
                    max_image_pixels=max_image_pixels)
    if obj.get("chosen") is not None:
        row.chosen = check_text(obj["chosen"], location, "chosen")
    if obj.get("answer") is not None:
        answer = obj["answer"]
        if isinstance(answer, (dict, list)):
            raise DataError(location, "answer", f"must be text or a number, got {type(answer).__name__}", "wrong_type")
        row.answer = check_text(str(answer), location, "answer")
    if need and getattr(row, need) is None:
        raise DataError(location, need, "is missing; this command needs it", "missing_field")
    return row


def relative_images(row: PromptRow, out_path: str) -> list[str] | str:
    """The row's image paths relative to the output file's folder (how mmpo JSONL wants
    them); an image outside that folder is an error suggesting where to write instead."""
    out_dir = os.path.dirname(os.path.abspath(out_path))
    rel = []
    for p in row.images:
        r = os.path.relpath(p, out_dir)
        if r.startswith(".."):
            raise ValueError(
                f"image {p} is outside the output folder {out_dir}; write the pairs file in a folder that "
                "contains the images (e.g. next to the input file) so `mmpo train` can read it unchanged"
            )
        rel.append(r)
    return rel[0] if len(rel) == 1 else rel
