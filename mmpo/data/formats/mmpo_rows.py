"""mmpo's own rows, which are also TRL's vision DPO layout (``HuggingFaceH4/rlaif-v_formatted``,
TRL's ``examples/scripts/dpo_vlm.py``): ``prompt``, ``chosen``, ``rejected`` and the
image(s) under ``image`` (mmpo) or ``images`` (TRL); optional ``id`` and ``rejected_image``.

Text fields are plain strings or TRL's conversational form, a list of
``{"role", "content"}`` messages whose content is a string or typed parts
(``{"type": "image"}``, ``{"type": "text", "text": …}``). A system message is taken out
(the question is the user's turn, nothing else); image parts become ``<image>``
placeholders at their place among the text parts, so an image TRL puts mid-text stays there.
"""

from __future__ import annotations

from typing import Any

from mmpo.data.formats.common import ImageRules, TextOnlyRow, make_example, row_id, row_images
from mmpo.data.prompts import IMAGE_PLACEHOLDER
from mmpo.data.schema import DataError, PreferenceExample

KNOWN = {"id", "image", "images", "prompt", "chosen", "rejected", "rejected_image"}


def mmpo_row(obj: dict, index: int, location: str, root: str, rules: ImageRules, *,
             text_only_ok: bool = False) -> PreferenceExample:
    """A row of mmpo JSONL or TRL's layout. ``text_only_ok``: a row with no image at all is
    skipped as text-only (TRL's sets hold some) instead of being a missing-field error."""
    field = "images" if "images" in obj and "image" not in obj else "image"
    value = obj.get(field)
    if text_only_ok and not value:
        raise TextOnlyRow(location, field)
    return make_example(
        location=location,
        row_id=row_id(obj, index, location),
        images=row_images(value, root, location, field, rules),
        prompt=message_text(obj.get("prompt"), location, "prompt", "user"),
        chosen=message_text(obj.get("chosen"), location, "chosen", "assistant"),
        rejected=message_text(obj.get("rejected"), location, "rejected", "assistant"),
        rejected_images=row_images(obj.get("rejected_image"), root, location, "rejected_image", rules, required=False),
        metadata={k: v for k, v in obj.items() if k not in KNOWN and _plain(v)},
    )


def trl_row(obj: dict, index: int, location: str, root: str, rules: ImageRules) -> PreferenceExample:
    return mmpo_row(obj, index, location, root, rules, text_only_ok=True)


def _plain(value: Any) -> bool:
    """Metadata worth carrying: JSON-like values, not images or bytes."""
    return isinstance(value, (str, int, float, bool, type(None), list, dict)) and not isinstance(value, bytes)


def message_text(value: Any, location: str, field: str, role: str) -> Any:
    """The text of a conversational field (plain strings pass through): the one ``role``
    turn, system turns dropped, image parts as ``<image>`` placeholders in place."""
    if not isinstance(value, list):
        return value
    texts = []
    for message in value:
        if not isinstance(message, dict) or "content" not in message:
            raise DataError(location, field, "messages must be objects with 'role' and 'content'", "wrong_type")
        if message.get("role") == "system" and field == "prompt":
            continue
        if message.get("role") not in (role, None):
            raise DataError(location, field, f"only single-turn conversations are supported; found a "
                            f"{message.get('role')!r} turn", "multi_turn")
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
        elif not isinstance(content, list):
            raise DataError(location, field, f"message content must be text or a list of parts, got "
                            f"{type(content).__name__}", "wrong_type")
        else:
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "text":
                    texts.append(part.get("text") or "")
                elif part.get("type") == "image" and field == "prompt":
                    texts.append(IMAGE_PLACEHOLDER)
    return "".join(texts).strip()
