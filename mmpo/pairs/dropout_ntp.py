"""DropoutNTP (InternVL2-MPO, arXiv 2411.10442, §3.1): rejected responses for data with no
clear ground truth.

Keep the first ``ratio`` of the chosen response's words, let the model continue that prefix
**without the image**, and take prefix + continuation as the rejected response: it reads
like the chosen one but, past the cut, says what the language prior says rather than what
the image shows. The paper found ratio 0.5 best. When a row has no chosen response, one is
sampled from the model *with* the image first (InternVL's script requires one).

As InternVL's DropoutNTP scripts run it (``mm_reasoning_pipeline/internvl_lmdeploy_continue_wo_image.py``,
``mmpr_pipeline/internvl_lmdeploy_dropout_ntp.py``, ``reasoning_data_pipeline/mmpr_data_pipeline_dropout_ntp.py``
in OpenGVLab/InternVL ``internvl_chat/tools/``): the prefix is the chosen text's literal
beginning (:func:`literal_prefix`, their ``VQADataset._truncate_prefix``), continued for up
to 1024 new tokens (their ``--max-new-tokens``) from the prompt without its ``<image>``
placeholders (:func:`text_only_prompt`), and rejected = prefix + continuation.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from mmpo.pairs.cot_format import IMAGE_PLACEHOLDER
from mmpo.pairs.generate import GenerationConfig, GenerationRequest, check_generation_options, generate
from mmpo.pairs.inputs import PromptRow, relative_images
from mmpo.pairs.progress import batches_with_progress
from mmpo.pairs.store import PairStore


@dataclass
class DropoutNTPConfig:
    """Options of ``mmpo pairs dropout-ntp``."""

    ratio: float = field(default=0.5, metadata={"help": "Fraction of the chosen response's space-separated words kept, literally, as the prefix (MPO: 0.5)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the continuation and of a sampled chosen (0 = greedy)."})
    max_new_tokens: int = field(default=1024, metadata={"help": "Tokens per continuation and per sampled chosen (InternVL's default 1024: shorter cuts give rejected responses a length cue)."})
    batch_size: int = field(default=16, metadata={"help": "Sequences per generate call."})
    seed: int = field(default=0, metadata={"help": "Seeds sampling."})

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio < 1.0:
            raise ValueError(f"--ratio must be between 0 and 1 (exclusive), got {self.ratio}")
        check_generation_options(self)

    def pair_prompt(self, prompt: str) -> str:
        """The prompt as the written pairs carry it."""
        return prompt


def literal_prefix(text: str, ratio: float) -> str:
    """The beginning of ``text`` up to its ``int(n · ratio)``-th space, n the number of
    space-separated pieces, stripped: InternVL's ``_truncate_prefix`` (``split(' ')``, keep,
    ``' '.join``, ``strip()``). Line breaks and runs of spaces stay as written, a word
    followed by a line break counts with the next one, and a cut before the first space is
    an empty prefix (the continuation then starts from nothing).

    >>> literal_prefix("Step 1: count.\\nStep 2: add them up.", 0.5)
    'Step 1: count.\\nStep'
    >>> literal_prefix("Nothing.", 0.5)
    ''
    """
    pieces = text.split(" ")
    return " ".join(pieces[: int(len(pieces) * ratio)]).strip()


def text_only_prompt(prompt: str) -> str:
    """The prompt the image-free continuation is asked with: ``<image>`` placeholders taken
    out, then stripped (InternVL: ``prompt.replace(IMAGE_TOKEN, '').strip()`` without
    ``--load-image``); the written pair keeps the prompt as it was."""
    return prompt.replace(IMAGE_PLACEHOLDER, "").strip()


def dropout_ntp(model, processor, rows: list[PromptRow], out_path: str, config: DropoutNTPConfig) -> PairStore:
    """Write DropoutNTP preference rows for ``rows`` to ``out_path`` (resumable)."""
    store = PairStore(out_path)
    gen = GenerationConfig(max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                           batch_size=config.batch_size, seed=config.seed)
    for start, batch in batches_with_progress(rows, config.batch_size, store, "dropout-ntp"):
        images = [row.load_images() for row in batch]
        chosen = [row.chosen for row in batch]
        missing = [i for i, c in enumerate(chosen) if c is None]
        if missing:  # sample a chosen response with the image
            requests = [GenerationRequest(images[i], batch[i].prompt) for i in missing]
            sampled = generate(model, processor, requests, _seeded(gen, start, 1))
            for i, text in zip(missing, sampled):
                chosen[i] = text
        prefixes = [literal_prefix(c, config.ratio) if c else "" for c in chosen]
        requests = [GenerationRequest([], text_only_prompt(row.prompt), prefix=p) for row, p in zip(batch, prefixes)]
        continuations = generate(model, processor, requests, _seeded(gen, start, 2))
        for row, c, prefix, cont in zip(batch, chosen, prefixes, continuations):
            if store.is_done(row.id):
                continue
            rejected = (prefix + cont).strip()
            drops: Counter = Counter()
            if not c or not c.strip():
                drops["empty_chosen"] += 1
            elif not cont.strip():
                drops["empty_continuation"] += 1
            elif rejected == c.strip():
                drops["identical"] += 1
            pairs = [] if drops else [{
                "id": f"{row.id}-dntp", "image": relative_images(row, out_path), "prompt": row.prompt,
                "chosen": c.strip(), "rejected": rejected, "method": "dropout_ntp", "ratio": config.ratio,
            }]
            store.add(row.id, pairs, drops)
    return store


def _seeded(gen: GenerationConfig, start: int, stage: int) -> GenerationConfig:
    """The generation config with a seed fixed by the batch's position and the stage, so a
    resumed run draws exactly what an uninterrupted one would."""
    return replace(gen, seed=gen.seed * 7_919 + start * 4 + stage)
