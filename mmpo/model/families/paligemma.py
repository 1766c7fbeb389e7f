"""PaliGemma / PaliGemma 2: a prefix-LM. ``token_type_ids`` are 0 over the prompt (image
tokens and question attend to each other both ways) and 1 over the response (causal), so
the response's extras are 1, not 0: were they 0, response tokens would see later response
tokens and their log-probs would be wrong. A shared prompt runs with its own
``token_type_ids`` (bidirectional), the responses after it causally, as in the full
sequence.

PaliGemma checkpoints ship no chat template; the processor itself writes
``<image>… <bos>prompt\\n`` and the response follows, ended by EOS. mmpo gives the
processor a template with exactly that layout when it has none.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmpo.model.families.base import Family

# The user turn (images first, then the text); the processor adds <bos> after the images
# and "\n" after the prompt; the assistant turn is the response and EOS.
DEFAULT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>{% endif %}{% endfor %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}"
    "{% elif message['role'] == 'assistant' %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)


@dataclass(frozen=True)
class PaliGemma(Family):
    token_keys: tuple[str, ...] | None = ("token_type_ids",)
    features_as_list: bool = False
    prompt_token_keys: tuple[str, ...] = ("token_type_ids",)  # the shared prompt's pass: bidirectional

    def packs_prefix(self) -> bool:
        return False  # one packed row would need the prefix-LM mask and ours at once

    def prepare_processor(self, processor):
        if not getattr(processor, "chat_template", None):
            processor.chat_template = DEFAULT_TEMPLATE
        return processor

    def extend_token_values(self, key: str, prompt: Tensor, response_length: int) -> Tensor:
        return torch.cat([prompt, prompt.new_ones((response_length, *prompt.shape[1:]))])  # 1: causal suffix


PALIGEMMA = PaliGemma("PaliGemma", ("paligemma",))
