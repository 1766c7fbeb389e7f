"""How a prompt and a response are laid out by a processor's chat template: one user turn
(images first, then text) and the assistant turn that follows it."""

from __future__ import annotations


def user_turn(n_images: int, prompt: str) -> list[dict]:
    content = [{"type": "image"}] * n_images + [{"type": "text", "text": prompt}]
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
