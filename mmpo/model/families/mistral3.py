"""Mistral 3 (Mistral-Small-3.1 with a Pixtral vision tower): transformers'
``PixtralProcessor`` imports torchvision, so without it the processor cannot be built;
mmpo says so before loading any weights. With torchvision it trains like LLaVA."""

from __future__ import annotations

from dataclasses import dataclass

from mmpo.model.families.base import Family


@dataclass(frozen=True)
class Mistral3(Family):
    token_keys: tuple[str, ...] | None = ()

    def unsupported(self, config) -> str | None:
        from transformers.utils import is_torchvision_available

        if not is_torchvision_available():
            return ("its processor (transformers' PixtralProcessor) imports torchvision, which is not installed; "
                    "install the torchvision build matching your torch")
        return None


MISTRAL3 = Mistral3("Mistral 3 / Pixtral", ("mistral3",))
