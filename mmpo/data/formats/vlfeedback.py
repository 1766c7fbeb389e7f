"""Raw VLFeedback (MMInstruction/VLFeedback; Silkie, arXiv 2312.10665), binarised.

Each row holds an ``instruction``, its ``image`` (a datasets Image, or a path under
``image`` / ``image_path`` / ``img_path``) and ``completions``: four responses from
different models, each rated 1–5 by GPT-4V on three aspects (``annotations`` →
``Helpfulness`` / ``Visual Faithfulness`` / ``Ethical Considerations`` → ``Rating``).

Binarisation rule: a completion's score is the mean of its numeric aspect ratings (the
aggregate Silkie ranks by; a rating that is not a number, e.g. ``"N/A"``, is left out);
the highest-scoring completion is chosen and the lowest-scoring one rejected, one pair per
instruction (ties go to the earlier completion). Silkie's paper builds every pair with
different scores (~380k pairs from 80k instructions); mmpo keeps one pair per instruction so
row ids stay unique and no image is repeated within an epoch, as UltraFeedback's binarised
set (HuggingFaceH4/ultrafeedback_binarized) does for text. A row whose completions all
score the same carries no preference and is skipped and recorded (``no_preference``).
"""

from __future__ import annotations

import math
from typing import Any

from mmpo.data.formats.common import ImageRules, SkipRow, make_example, row_id, row_images
from mmpo.data.schema import DataError, PreferenceExample

ASPECTS = ("Helpfulness", "Visual Faithfulness", "Ethical Considerations")
IMAGE_FIELDS = ("image", "images", "image_path", "img_path")


def completion_score(completion: Any, location: str, index: int) -> float | None:
    """Mean of a completion's numeric aspect ratings, or None when it has none."""
    if not isinstance(completion, dict):
        raise DataError(location, f"completions[{index}]", "must be an object with response and annotations",
                        "wrong_type")
    annotations = completion.get("annotations") or {}
    ratings = []
    for aspect in ASPECTS:
        rating = (annotations.get(aspect) or {}).get("Rating") if isinstance(annotations, dict) else None
        try:
            value = float(rating)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            ratings.append(value)
    return sum(ratings) / len(ratings) if ratings else None


def vlfeedback_row(obj: dict, index: int, location: str, root: str, rules: ImageRules) -> PreferenceExample:
    completions = obj.get("completions")
    if not isinstance(completions, list):
        raise DataError(location, "completions", "must be a list of rated completions", "wrong_type")
    scored = [(score, i, c) for i, c in enumerate(completions)
              if (score := completion_score(c, location, i)) is not None and isinstance(c.get("response"), str)]
    if len(scored) < 2:
        raise SkipRow(location, "completions", f"has {len(scored)} rated response(s); a pair needs two",
                      "no_preference")
    best = max(scored, key=lambda s: (s[0], -s[1]))
    worst = min(scored, key=lambda s: (s[0], -s[1]))
    if best[0] == worst[0]:
        raise SkipRow(location, "completions", f"every response scores {best[0]:g}; there is no preference",
                      "no_preference")
    field = next((f for f in IMAGE_FIELDS if obj.get(f)), "image")
    return make_example(
        location=location,
        row_id=row_id(obj, index, location),
        images=row_images(obj.get(field), root, location, field, rules),
        prompt=obj.get("instruction"),
        prompt_field="instruction",
        chosen=best[2]["response"],
        rejected=worst[2]["response"],
        metadata={"chosen_model": best[2].get("model"), "rejected_model": worst[2].get("model"),
                  "chosen_score": best[0], "rejected_score": worst[0]},
    )
