"""LLaMA-Factory's sharegpt preference layout (``data/README.md``, "Preference Dataset",
registered with ``"formatting": "sharegpt", "ranking": true``): ``conversations`` (a list
of ``{"from", "value"}`` turns ending in a ``human`` turn), ``chosen`` and ``rejected``
(each one ``{"from": "gpt", "value"}``), ``images`` (paths, relative to the JSON's folder as
LLaMA-Factory's ``media_dir`` defaults to the dataset folder), optional ``system``. The
system text is taken out; ``<image>`` in the human turn places the images. Single-turn rows
only (a longer history is an error naming the row). LLaMA-Factory's OpenAI-style variant
(``messages`` of ``{"role", "content"}``, ``chosen``/``rejected`` as assistant messages or
text) is read the same way."""

from __future__ import annotations

from typing import Any

from mmpo.data.formats.common import ImageRules, TextOnlyRow, make_example, row_id, row_images
from mmpo.data.schema import DataError, PreferenceExample

USER_TAGS = ("human", "user")
ASSISTANT_TAGS = ("gpt", "assistant")


def sharegpt_row(obj: dict, index: int, location: str, root: str, rules: ImageRules) -> PreferenceExample:
    field = "conversations" if "conversations" in obj else "messages"
    turns = obj.get(field)
    if not isinstance(turns, list) or not turns or not all(isinstance(t, dict) for t in turns):
        raise DataError(location, field, "must be a non-empty list of {from, value} turns", "wrong_type")
    if not obj.get("images"):
        raise TextOnlyRow(location, "images")
    user = [t for t in turns if _speaker(t) != "system"]
    if len(user) != 1 or _speaker(user[0]) not in USER_TAGS:
        raise DataError(location, field, f"must hold one human turn (after an optional system turn), got "
                        f"{[_speaker(t) for t in turns]}; multi-turn rows are not supported", "multi_turn")
    return make_example(
        location=location,
        row_id=row_id(obj, index, location),
        images=row_images(obj.get("images"), root, location, "images", rules),
        prompt=_text(user[0]),
        prompt_field=field,
        chosen=_response(obj.get("chosen"), location, "chosen"),
        rejected=_response(obj.get("rejected"), location, "rejected"),
    )


def _speaker(turn: dict) -> Any:
    return turn.get("from", turn.get("role"))


def _text(turn: dict) -> Any:
    return turn.get("value", turn.get("content"))


def _response(value: Any, location: str, field: str) -> Any:
    if isinstance(value, dict):
        if _speaker(value) not in ASSISTANT_TAGS:
            raise DataError(location, field, f"must be a gpt turn, got from={_speaker(value)!r}", "wrong_type")
        return _text(value)
    return value
