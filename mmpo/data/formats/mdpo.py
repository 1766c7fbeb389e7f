"""The mDPO repo's data JSON (luka-group/mDPO, ``data/sample_data.json``; the full set is
fwnlp/mDPO-preference-data): a JSON list of ``{img_path, prompt, chosen, rejected}``.
``prompt`` carries Bunny's Vicuna template and ``<image>``
(``"A chat between … USER: <image>\\n{question} ASSISTANT:"``); both are taken out
(:mod:`mmpo.data.prompts`), so the model sees its own template once. ``img_path`` is
relative to the JSON file's folder."""

from __future__ import annotations

from mmpo.data.formats.common import ImageRules, make_example, row_id, row_images
from mmpo.data.schema import PreferenceExample


def mdpo_row(obj: dict, index: int, location: str, root: str, rules: ImageRules) -> PreferenceExample:
    return make_example(
        location=location,
        row_id=row_id(obj, index, location),
        images=row_images(obj.get("img_path"), root, location, "img_path", rules),
        prompt=obj.get("prompt"),
        chosen=obj.get("chosen"),
        rejected=obj.get("rejected"),
    )
