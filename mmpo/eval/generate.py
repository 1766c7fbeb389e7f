"""``mmpo generate``: answer a file of image questions with a model (optionally + adapter).

Input rows ``{"id", "image", "prompt"}`` (``question`` is read for ``prompt``) plus any other
fields; each output row is the input row with ``"answer"`` added. Batches are fixed slices
of the input with left padding, greedy by default (``temperature > 0`` samples, seeded by
the batch's position), through :func:`mmpo.pairs.generate.generate` — the generator
``mmpo pairs`` uses. Output is append-only and resumable exactly as ``mmpo pairs``: a killed
run started again writes every row once, with no torn line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from mmpo.data.images import load_image
from mmpo.pairs.generate import GenerationConfig, GenerationRequest, generate
from mmpo.pairs.inputs import PromptRow, load_prompt_rows
from mmpo.pairs.progress import batches_with_progress
from mmpo.pairs.store import PairStore


@dataclass
class GenerateFiles:
    """What ``mmpo generate`` reads and writes."""

    data: str = field(metadata={"help": "Input JSONL: id, image, prompt (or question); other fields are kept."})
    out: str = field(metadata={"help": "Output JSONL: each input row plus 'answer' (resumable)."})
    image_root: str | None = field(default=None, metadata={"help": "Folder image paths are relative to (default: the data file's)."})


@dataclass
class GenerationOptions:
    """The model and decoding options of ``mmpo generate`` and of every ``mmpo eval X --model``."""

    model: str | None = field(default=None, metadata={"help": "Model directory (or hub id) of an image-text-to-text model."})
    adapter: str | None = field(default=None, metadata={"help": "PEFT adapter directory to apply (e.g. mmpo train's output)."})
    max_new_tokens: int = field(default=512, metadata={"help": "Longest answer, in tokens."})
    batch_size: int = field(default=8, metadata={"help": "Prompts per generate call (left padded)."})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy (default); > 0 samples, seeded by --seed."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass when sampling."})
    seed: int = field(default=0, metadata={"help": "Sampling seed (each batch is seeded by its position)."})
    device: str | None = field(default=None, metadata={"help": "cuda, cpu… (default: cuda when available)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the checkpoint."})

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"--max_new_tokens must be ≥ 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be ≥ 1, got {self.batch_size}")
        if not self.temperature >= 0:
            raise ValueError(f"--temperature must be ≥ 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"--top_p must be in (0, 1], got {self.top_p}")


def load_generator(config: GenerationOptions):
    """(model, processor) on the configured device, with the adapter applied when given."""
    from mmpo.model.load import load_model, load_processor

    if not config.model:
        raise ValueError("--model is required to generate answers")
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    model = load_model(config.model, dtype=dtype, trust_remote_code=config.trust_remote_code)
    if config.adapter:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, config.adapter)
        except (OSError, ValueError) as err:
            raise OSError(f"cannot load the adapter {config.adapter!r}: {err}") from None
    processor = load_processor(config.model, trust_remote_code=config.trust_remote_code)
    return model.to(device).eval(), processor


def answer_rows(model, processor, rows: list[PromptRow], out_path: str, config: GenerationOptions) -> PairStore:
    """Append ``{**input row, "answer"}`` for every row not yet in ``out_path``."""
    store = PairStore(out_path, key_field="id")
    store.inputs = len(rows)
    gen = GenerationConfig(max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                           top_p=config.top_p, batch_size=config.batch_size, seed=config.seed)
    for start, batch in batches_with_progress(rows, config.batch_size, store, "generate", unit="answers"):
        requests = [GenerationRequest([load_image(p, row.source) for p in row.images], row.prompt) for row in batch]
        # one generate call per batch, seeded by the batch's position: a resumed run draws the same
        answers = generate(model, processor, requests, replace(gen, seed=gen.seed * 7_919 + start))
        for row, answer in zip(batch, answers):
            if not store.is_done(row.id):
                store.add(row.id, [dict(row.fields, answer=answer)], {})
    return store


def generate_answers(files: GenerateFiles, options: GenerationOptions, model=None, processor=None) -> PairStore:
    """Run ``mmpo generate``: load the rows (all checked before the model loads) and the model
    (unless given), then answer every row not answered yet."""
    rows = load_prompt_rows(files.data, image_root=files.image_root)
    if model is None:
        model, processor = load_generator(options)
    return answer_rows(model, processor, rows, files.out, options)
