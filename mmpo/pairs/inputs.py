"""Input rows of the pair-generation commands: ``{"id", "image", "prompt" (or "question"),
"chosen" (DropoutNTP, optional), "answer" (correctness pipeline)}`` per JSONL line, with
the same validation and path rules as preference data."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from mmpo.data.images import check_image, resolve_image_path
from mmpo.data.loaders import read_json_lines
from mmpo.data.schema import DataError, check_text


@dataclass
class PromptRow:
    id: str
    images: list[str]  # absolute paths
    prompt: str
    chosen: str | None = None
    answer: str | None = None
    source: str = ""
    fields: dict = field(default_factory=dict)  # the input row as read (carried to answer files)


def load_prompt_rows(path: str, *, need: str | None = None, image_root: str | None = None) -> list[PromptRow]:
    """Rows of ``path``; ``need`` names a field every row must have ("answer")."""
    root = image_root or os.path.dirname(os.path.abspath(path))
    rows, seen = [], {}
    for index, (location, obj) in enumerate(read_json_lines(path)):
        if isinstance(obj, DataError):
            raise obj
        images = obj.get("image")
        images = images if isinstance(images, list) else [images]
        if images == [None]:
            raise DataError(location, "image", "is missing; every row needs an image", "missing_field")
        paths = []
        for p in images:
            full = resolve_image_path(p, root, location, "image")
            check_image(full, location, "image", "exists")
            paths.append(full)
        prompt = check_text(obj.get("prompt", obj.get("question")), location, "prompt")
        row = PromptRow(str(obj.get("id", index)), paths, prompt, source=location, fields=obj)
        if obj.get("chosen") is not None:
            row.chosen = check_text(obj["chosen"], location, "chosen")
        if obj.get("answer") is not None:
            row.answer = check_text(str(obj["answer"]), location, "answer")
        if need and getattr(row, need) is None:
            raise DataError(location, need, "is missing; this command needs it", "missing_field")
        if row.id in seen:
            raise DataError(location, "id", f"{row.id!r} is already used at {seen[row.id]}", "duplicate_id")
        seen[row.id] = location
        rows.append(row)
    if not rows:
        raise DataError(path, None, "holds no rows", "empty_dataset")
    return rows


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
