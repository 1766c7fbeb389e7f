"""A row's prompt as the user's question, nothing else.

Some sets ship prompts with a chat template already applied: the mDPO repo's data JSON
(``data/sample_data.json``) holds Bunny's / LLaVA-v1's Vicuna template, ``"A chat between
a curious user … USER: <image>\\n{question} ASSISTANT:"``. mmpo applies the model's own
template at collation, so a template found in the data is taken out here (else the model
would see two templates and a literal ``<image>``). Recognised (single turn only):

- Vicuna v1 (LLaVA-v1, Bunny, mDPO): ``[system] USER: {q} ASSISTANT:``
- ChatML (Qwen, InternVL): ``[<|im_start|>system …<|im_end|>]``
  ``<|im_start|>user\\n{q}<|im_end|>\\n<|im_start|>assistant\\n``
- Llama-2 / Mistral: ``[INST] [<<SYS>> … <</SYS>>] {q} [/INST]``

``<image>`` placeholders say where each image goes (LLaVA, InternVL/MMPR, LLaMA-Factory and
ms-swift all write them). When every placeholder comes before any text (``<image>\\n{q}``)
they are dropped: images first is what every template does anyway. Otherwise (MMPR's
``Image-1: <image>\\nImage-2: <image>\\n…``) they are kept in the prompt, one per image, and
:func:`mmpo.data.chat.user_turn` puts each image at its placeholder.
"""

from __future__ import annotations

import re

from mmpo.data.schema import DataError

IMAGE_PLACEHOLDER = "<image>"

TEMPLATES = {
    "vicuna": re.compile(r"^(?P<system>.*?)\bUSER:\s*(?P<q>.*?)\s*\bASSISTANT:\s*$", re.S),
    "chatml": re.compile(r"^(?:<\|im_start\|>system\n.*?<\|im_end\|>\s*)?<\|im_start\|>user\n(?P<q>.*?)<\|im_end\|>\s*"
                         r"<\|im_start\|>assistant\n?\s*$", re.S),
    "llama2": re.compile(r"^(?:<s>)?\s*\[INST\]\s*(?:<<SYS>>.*?<</SYS>>\s*)?(?P<q>.*?)\s*\[/INST\]\s*$", re.S),
}
TURN_MARKERS = {"vicuna": "USER:", "chatml": "<|im_start|>user", "llama2": "[INST]"}


def strip_template(prompt: str, location: str = "", field: str = "prompt") -> tuple[str, str | None]:
    """``(question, template name)`` when ``prompt`` is a single user turn of a known chat
    template, else ``(prompt, None)``. A multi-turn templated prompt is a DataError."""
    for name, pattern in TEMPLATES.items():
        match = pattern.match(prompt.strip())
        if match is None:
            continue
        question = match["q"]
        if TURN_MARKERS[name] in question:
            raise DataError(location, field, f"holds a multi-turn {name} conversation; only single-turn "
                            "preference rows are supported", "multi_turn")
        return question.strip(), name
    return prompt, None


def question_text(prompt: str, n_images: int, location: str = "", field: str = "prompt") -> tuple[str, str | None]:
    """The prompt reduced to the question: a known template taken out, and ``<image>``
    placeholders dropped when they all come first, else kept (their count must then match
    the images). Returns ``(prompt, template name or None)``."""
    prompt, template = strip_template(prompt, location, field)
    count = prompt.count(IMAGE_PLACEHOLDER)
    if count and count != n_images:
        raise DataError(location, field, f"has {count} '{IMAGE_PLACEHOLDER}' placeholders for {n_images} image(s)",
                        "image_count_mismatch")
    leading = re.match(rf"^(\s*{re.escape(IMAGE_PLACEHOLDER)})+\s*", prompt)
    if count and leading and prompt[leading.end():].count(IMAGE_PLACEHOLDER) == 0:
        prompt = prompt[leading.end():]
    return prompt.strip() if IMAGE_PLACEHOLDER not in prompt else prompt, template


def without_placeholders(prompt: str) -> str:
    """The prompt's text with its image placeholders taken out (for a model given no image)."""
    return re.sub(rf"\s*{re.escape(IMAGE_PLACEHOLDER)}\s*", " ", prompt).strip()
