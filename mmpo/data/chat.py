"""How a prompt and a response are laid out by a processor's chat template: one user turn
and the assistant turn that follows it.

The user turn holds the images first, then the text, unless the prompt holds one
``<image>`` placeholder per image (MMPR's ``Image-1: <image>\\nImage-2: <image>\\n…``, an
image part TRL puts mid-text): then the turn's parts follow the prompt, each image at its
placeholder. Templates that iterate the parts in order (Qwen2-VL, Idefics3, InternVL) put
the images there; templates that render every image first (llava-1.5-hf) still do.
"""

from __future__ import annotations

from mmpo.data.prompts import IMAGE_PLACEHOLDER, without_placeholders


def user_turn(n_images: int, prompt: str) -> list[dict]:
    pieces = prompt.split(IMAGE_PLACEHOLDER)
    if n_images and len(pieces) == n_images + 1:  # images where the prompt places them
        content: list[dict] = []
        for i, text in enumerate(pieces):
            if text:
                content.append({"type": "text", "text": text})
            if i < n_images:
                content.append({"type": "image"})
    else:
        text = without_placeholders(prompt) if len(pieces) > 1 else prompt
        content = [{"type": "image"}] * n_images + [{"type": "text", "text": text}]
    return [{"role": "user", "content": content}]


def prompt_text(processor, n_images: int, prompt: str) -> str:
    """The user turn plus the template's opening of the assistant turn."""
    return processor.apply_chat_template(user_turn(n_images, prompt), add_generation_prompt=True, tokenize=False)


def assistant_text(processor, n_images: int, prompt: str, response: str) -> str:
    """The assistant turn as the template writes it after :func:`prompt_text`: the response
    plus the template's end-of-turn marker (``</s>``, ``<|im_end|>``…). Templates that do
    not extend their generation prompt get the response plus EOS."""
    messages = user_turn(n_images, prompt) + [{"role": "assistant", "content": [{"type": "text", "text": response}]}]
    opening = prompt_text(processor, n_images, prompt)
    full = processor.apply_chat_template(messages, tokenize=False)
    if full.startswith(opening):
        return full[len(opening):]
    return response + (processor.tokenizer.eos_token or "")
