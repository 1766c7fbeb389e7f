"""ms-swift's RLHF layout (docs ``Customization/Custom-dataset.md``, "RLHF"): JSONL rows of
``messages`` (optional ``system``, one ``user`` turn, the chosen ``assistant`` turn),
``rejected_response`` and ``images``: paths (ms-swift recommends absolute ones; allow their
folders with ``--image_roots``), or base64 ``data:image/…;base64,…`` strings. Optional
``rejected_images`` (ms-swift >= 3.8) is the negative image set CoPO uses. The system
turn is taken out; ``<image>`` in the user turn places the images."""

from __future__ import annotations

from mmpo.data.formats.common import ImageRules, TextOnlyRow, make_example, row_id, row_images
from mmpo.data.schema import DataError, PreferenceExample


def swift_row(obj: dict, index: int, location: str, root: str, rules: ImageRules) -> PreferenceExample:
    messages = obj.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise DataError(location, "messages", "must be a list of {role, content} messages", "wrong_type")
    turns = [m for m in messages if m.get("role") != "system"]
    roles = [m.get("role") for m in turns]
    if roles != ["user", "assistant"]:
        raise DataError(location, "messages", f"must be one user turn then the chosen assistant turn (after an "
                        f"optional system turn), got roles {roles}; multi-turn rows are not supported", "multi_turn")
    if not obj.get("images"):
        raise TextOnlyRow(location, "images")
    if "rejected_response" not in obj and "rejected_messages" in obj:
        raise DataError(location, "rejected_messages", "is not supported; give rejected_response", "wrong_type")
    return make_example(
        location=location,
        row_id=row_id(obj, index, location),
        images=row_images(obj.get("images"), root, location, "images", rules),
        prompt=turns[0].get("content"),
        prompt_field="messages",
        chosen=turns[1].get("content"),
        rejected=obj.get("rejected_response"),
        rejected_images=row_images(obj.get("rejected_images"), root, location, "rejected_images", rules,
                                   required=False),
    )
