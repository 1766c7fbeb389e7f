"""The correctness pipeline (InternVL2-MPO, arXiv 2411.10442, §3.1): preference pairs for
questions with a clear ground truth.

Sample ``samples`` chain-of-thought responses per question, extract each final answer
(:func:`mmpo.pairs.answers.extract_answer`), and pair correct responses (chosen) with
incorrect ones (rejected), at most ``max_pairs`` per question. A pair is skipped when the
ground-truth answer appears inside the wrong response's text (the "wrong" one may be right
but mis-extracted). Responses with no parseable final answer are format negatives: paired
with a correct response, they go to a separate file.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace

from mmpo.pairs.answers import extract_answer, is_correct, normalize
from mmpo.pairs.generate import GenerationConfig, GenerationRequest, check_generation_options, generate
from mmpo.pairs.inputs import PromptRow, relative_images
from mmpo.pairs.progress import batches_with_progress
from mmpo.pairs.store import PairStore

INSTRUCTIONS = {
    "final": "Think step by step, then give your answer on the last line as 'Final answer: <answer>'.",
    "boxed": "Think step by step, then put your final answer in \\boxed{}.",
}


@dataclass
class CorrectnessConfig:
    """Options of ``mmpo pairs correctness``."""

    samples: int = 32  # responses sampled per question
    max_pairs: int = 15  # pairs kept per question
    style: str = "final"  # "final" ("Final answer: …") or "boxed" (\boxed{…})
    temperature: float = 1.0
    max_new_tokens: int = 256
    batch_size: int = 16  # sequences per generate call
    seed: int = 0

    def __post_init__(self) -> None:
        if self.style not in INSTRUCTIONS:
            raise ValueError(f"style must be one of {sorted(INSTRUCTIONS)}, got {self.style!r}")
        if self.samples < 2 or self.max_pairs < 1:
            raise ValueError("need --samples >= 2 and --max_pairs >= 1")
        check_generation_options(self)

    def pair_prompt(self, question: str) -> str:
        """The prompt as the written pairs carry it: the question plus the answer instruction."""
        return cot_prompt(question, self.style)


def cot_prompt(question: str, style: str) -> str:
    return f"{question}\n{INSTRUCTIONS[style]}"


def make_pairs(
    responses: list[str], truth: str, max_pairs: int, rng: random.Random
) -> tuple[list[tuple[str, str]], list[str], list[str], Counter]:
    """(pairs of (chosen, rejected), correct responses, unparseable responses, drop counts)
    for one question."""
    correct, wrong, unparsed = [], [], []
    for text in responses:
        if extract_answer(text) is None:
            unparsed.append(text)
        elif is_correct(text, truth):
            correct.append(text)
        else:
            wrong.append(text)
    drops: Counter = Counter()
    if unparsed:
        drops["unparseable_response"] += len(unparsed)
    if not correct:
        drops["no_correct_response"] += 1
    if not wrong:
        drops["no_wrong_response"] += 1
    combos = [(c, w) for c in dict.fromkeys(correct) for w in dict.fromkeys(wrong)]
    rng.shuffle(combos)
    pairs, truth_norm = [], normalize(truth)
    for c, w in combos:
        if truth_norm and truth_norm in normalize(w):
            drops["answer_in_rejected"] += 1
            continue
        pairs.append((c, w))
        if len(pairs) == max_pairs:
            break
    return pairs, correct, unparsed, drops


def format_negatives_path(out_path: str) -> str:
    return out_path.removesuffix(".jsonl") + ".format.jsonl"


def correctness(model, processor, rows: list[PromptRow], out_path: str, config: CorrectnessConfig) -> PairStore:
    """Write correctness pairs for ``rows`` (each with ``answer``) to ``out_path`` and format
    negatives (a correct response vs an unparseable one) beside it; resumable."""
    format_store = PairStore(format_negatives_path(out_path))
    store = PairStore(out_path)
    gen = GenerationConfig(max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                           batch_size=config.batch_size, seed=config.seed)
    for start, batch in batches_with_progress(rows, 1, store, "correctness"):
        row = batch[0]
        request = GenerationRequest(row.load_images(), config.pair_prompt(row.prompt))
        seeded = replace(gen, seed=config.seed * 7_919 + start)  # fixed by the question's position
        responses = generate(model, processor, [request] * config.samples, seeded)
        rng = random.Random(f"{config.seed}|{row.id}")
        pairs, correct, unparsed, drops = make_pairs(responses, row.answer, config.max_pairs, rng)
        common = {"image": relative_images(row, out_path), "prompt": request.prompt, "answer": row.answer}
        if not format_store.is_done(row.id):  # written first: a key done in `store` is done here too
            format_rows = [{"id": f"{row.id}-fmt{k}", **common, "chosen": correct[k % len(correct)],
                            "rejected": text, "method": "format_negative"} for k, text in enumerate(unparsed)] if correct else []
            format_store.add(row.id, format_rows, {})
        store.add(row.id, [{"id": f"{row.id}-c{k}", **common, "chosen": c, "rejected": w, "method": "correctness"}
                           for k, (c, w) in enumerate(pairs)], drops)
    return store
