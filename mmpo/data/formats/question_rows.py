"""Rows that name the prompt ``question``: MMPR's annotation lines (InternVL2-MPO,
arXiv 2411.10442: ``image`` (a path, a list of paths, or absent for a text-only row),
``question``, ``chosen``, ``rejected``) and openbmb/RLAIF-V-Dataset's columns (``image``,
``question``, ``chosen``, ``rejected``, plus ``ds_name``, ``origin_dataset``, ``idx``…,
kept as metadata)."""

from __future__ import annotations

from mmpo.data.formats.common import ImageRules, TextOnlyRow, make_example, row_id, row_images
from mmpo.data.schema import PreferenceExample

KNOWN = {"id", "image", "images", "question", "chosen", "rejected", "image_path"}


def question_row(obj: dict, index: int, location: str, root: str, rules: ImageRules, *,
                 id_prefix: str = "") -> PreferenceExample:
    field = "images" if "images" in obj and "image" not in obj else "image"
    if not obj.get(field):
        raise TextOnlyRow(location, field)
    identifier = f"{id_prefix}{index}" if id_prefix else row_id(obj, index, location)
    return make_example(
        location=location,
        row_id=identifier,
        images=row_images(obj.get(field), root, location, field, rules),
        prompt=obj.get("question"),
        prompt_field="question",
        chosen=obj.get("chosen"),
        rejected=obj.get("rejected"),
        metadata={k: v for k, v in obj.items() if k not in KNOWN and isinstance(v, (str, int, float, bool))},
    )
