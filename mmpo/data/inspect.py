"""``mmpo data inspect``: what mmpo makes of a preference file before anything trains.

The detected format, rows read and kept, image counts, what is skipped and why (rows that
are always skipped, such as text-only ones, and rows that would stop ``mmpo train`` unless
``--skip_invalid_rows``), what the reader decided (which folder MMPR paths came from, a chat
template taken out of the prompts), and the first rows. With ``--model`` each row is shown
exactly as the model will see it: the model's chat template, image tokens (runs collapsed
to ``<token>×N``) and where each response starts and ends (``▶ … ◀``); this is the view
that shows a double template or a literal ``<image>`` at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


from mmpo.data.images import MAX_IMAGE_PIXELS, describe, split_roots
from mmpo.data.loaders import load_preferences
from mmpo.data.schema import DataError, LoadReport, PreferenceExample

ALWAYS_SKIPPED = ("text_only", "no_preference")  # SkipRow reasons: skipped even without --skip_invalid_rows
RUN = 4  # a token repeated this many times in a row is shown once with its count


@dataclass
class InspectConfig:
    """Options of ``mmpo data inspect FILE``."""

    data: str = field(metadata={"help": "The preference data, as `mmpo train --data` takes it (a file or folder)."})
    model: str | None = field(default=None, metadata={"help": "Model directory: render rows with its processor (chat template, image tokens) exactly as training will."})
    data_format: str = field(default="auto", metadata={"help": "As `mmpo train --data_format` (default: detected)."})
    image_root: str | None = field(default=None, metadata={"help": "As `mmpo train --image_root`."})
    image_roots: str | None = field(default=None, metadata={"help": "As `mmpo train --image_roots`: comma-separated folders absolute image paths may come from."})
    rows: int = field(default=2, metadata={"help": "How many rows to show, first ones first. A multi-image row among the first 50 is shown too."})
    max_length: int = field(default=2048, metadata={"help": "As `mmpo train --max_length` (a prompt that leaves no room for a response is listed as skipped)."})
    max_image_pixels: int = field(default=MAX_IMAGE_PIXELS, metadata={"help": "As `mmpo train --max_image_pixels`."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the checkpoint (processor only)."})


@dataclass
class ShownRow:
    """One row as read and, with a model, as rendered: ``prompt``, ``chosen``, ``rejected``
    are the model's view (template, image tokens, ▶response◀), or the row's fields without one."""

    example: PreferenceExample
    prompt: str
    chosen: str
    rejected: str
    prompt_tokens: int | None = None


@dataclass
class DataInspection:
    path: str
    format: str
    report: LoadReport
    images: int
    multi_image_rows: int
    shown: list[ShownRow]
    model: str | None = None

    def text(self) -> str:
        r = self.report
        always = sum(n for reason, n in r.skipped.items() if reason in ALWAYS_SKIPPED)
        lines = [f"data: {self.path}", f"format: {self.format}",
                 f"rows: {r.rows_read} read, {r.rows_kept} kept, {r.rows_read - r.rows_kept} skipped",
                 f"images: {self.images} in the kept rows ({self.multi_image_rows} row(s) with several)"]
        lines += [f"note: {note}" for note in r.notes]
        if r.skipped:
            lines.append("skipped, by reason:")
            for reason, n in r.skipped.most_common():
                how = "always skipped" if reason in ALWAYS_SKIPPED else "stops `mmpo train` unless --skip_invalid_rows"
                first = next(rec["message"] for rec in r.records if rec["reason"] == reason)
                lines.append(f"  {n} {reason} ({how}); first: {first}")
            if always == sum(r.skipped.values()):
                lines.append("  (`mmpo train` skips these by itself and lists them in <output_dir>/skipped.jsonl)")
        view = f"as {self.model} sees it" if self.model else "as read (pass --model to see the model's view)"
        for k, row in enumerate(self.shown, start=1):
            ex = row.example
            tokens = f", {row.prompt_tokens} prompt tokens" if row.prompt_tokens is not None else ""
            lines += ["", f"row {ex.id} ({ex.source}; {len(ex.images)} image(s){tokens}), {view}:",
                      "  prompt:", *_indent(row.prompt), "  chosen:", *_indent(row.chosen),
                      "  rejected:", *_indent(row.rejected)]
        return "\n".join(lines)


def _indent(text: str) -> list[str]:
    return ["    " + line for line in text.split("\n")]


def inspect_data(source: Any, *, model: str | None = None, processor=None, format: str = "auto",
                 image_root: str | None = None, image_roots: tuple[str, ...] | list[str] = (), rows: int = 2,
                 max_length: int = 2048, max_image_pixels: int = MAX_IMAGE_PIXELS,
                 trust_remote_code: bool = False) -> DataInspection:
    """Read ``source`` as ``mmpo train`` would (every bad row skipped and counted instead of
    stopping) and show its first ``rows`` rows, rendered by ``model``'s processor when given."""
    from mmpo.data.collate import PreferenceCollator

    if processor is None and model is not None:
        from mmpo.model.load import load_processor

        processor = load_processor(model, trust_remote_code=trust_remote_code)
    collator = None if processor is None else PreferenceCollator(processor, max_length=max_length,
                                                                  max_image_pixels=max_image_pixels)
    try:
        data = load_preferences(source, format=format, image_root=image_root, image_roots=image_roots,
                                skip_invalid=True, max_image_pixels=max_image_pixels,
                                check_row=None if collator is None else collator.check_row)
    except DataError as err:
        if err.report is None:
            raise
        return DataInspection(path=err.report.path, format=err.report.format or format, report=err.report, images=0,
                              multi_image_rows=0, shown=[], model=model)
    examples = list(data)
    picked = examples[:rows]
    multi = next((ex for ex in examples[:50] if len(ex.images) > 1), None)
    if multi is not None and all(multi is not ex for ex in picked):
        picked.append(multi)
    shown = [_render(ex, collator) if collator else _as_read(ex) for ex in picked]
    return DataInspection(
        path=data.report.path, format=data.report.format, report=data.report,
        images=sum(len(ex.images) for ex in examples), multi_image_rows=sum(len(ex.images) > 1 for ex in examples),
        shown=shown, model=model,
    )


def inspect_command(config: InspectConfig) -> str:
    """The report ``mmpo data inspect`` prints."""
    return inspect_data(config.data, model=config.model, format=config.data_format, image_root=config.image_root,
                        image_roots=split_roots(config.image_roots), rows=config.rows, max_length=config.max_length,
                        max_image_pixels=config.max_image_pixels, trust_remote_code=config.trust_remote_code).text()


def _as_read(ex: PreferenceExample) -> ShownRow:
    images = ", ".join(describe(src) for src in ex.images)
    return ShownRow(ex, f"{ex.prompt}\n[images: {images}]", ex.chosen, ex.rejected)


def _render(ex: PreferenceExample, collator) -> ShownRow:
    """The row's two sequences (prompt + chosen, prompt + rejected) as token text."""
    batch = collator([ex])
    tokenizer = collator.processor.tokenizer
    texts = []
    for j in range(2):  # chosen, rejected
        keep = batch["attention_mask"][j].bool()
        ids = batch["input_ids"][j][keep].tolist()
        response = batch["response_mask"][j][keep].tolist()
        start = response.index(True) if True in response else len(ids)
        stop = len(response) - response[::-1].index(True) if True in response else len(ids)
        texts.append((_tokens_text(tokenizer, ids[:start]), _tokens_text(tokenizer, ids[start:stop]), start))
    (prompt, chosen, start), (_, rejected, _) = texts
    return ShownRow(ex, prompt, f"▶{chosen}◀", f"▶{rejected}◀", prompt_tokens=start)


def _tokens_text(tokenizer, ids: list[int]) -> str:
    """``ids`` decoded, special tokens kept, a run of one token (image tokens) as ``<tok>×N``."""
    out, plain, i = [], [], 0
    while i < len(ids):
        j = i
        while j < len(ids) and ids[j] == ids[i]:
            j += 1
        if j - i >= RUN:
            out.append(tokenizer.decode(plain, skip_special_tokens=False))
            plain = []
            out.append(f"{tokenizer.convert_ids_to_tokens(ids[i])}×{j - i}")
        else:
            plain.extend(ids[i:j])
        i = j
    out.append(tokenizer.decode(plain, skip_special_tokens=False))
    return "".join(out)


__all__ = ["DataInspection", "InspectConfig", "ShownRow", "inspect_command", "inspect_data"]
