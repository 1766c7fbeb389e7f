"""The correctness pipeline (InternVL2-MPO, arXiv 2411.10442, §3.1): preference pairs for
questions with a clear ground truth, built as InternVL builds MMPR.

Sample ``samples`` chain-of-thought responses per question (the question's short-answer
suffix stripped, InternVL's instruction around it: :mod:`mmpo.pairs.cot_format`), read each
back with InternVL's format rules, and sort them: a response that breaks the format is a
*format negative*; one whose answer matches the ground truth
(:func:`mmpo.pairs.answers.answers_match`) is *correct* (chosen), any other *wrong*
(rejected). Pairs follow ``build_pairs_based_on_pos_neg`` and ``save_pairs`` of InternVL's
``*_correctness_postprocess.py`` (``mm_reasoning_pipeline/``, ``mmpr_pipeline/``,
``reasoning_data_pipeline/mmpr_data_pipeline_correctness_postprocess.py``):

* every (correct, wrong) combination is a candidate, except when the correct response's
  answer is a substring of the wrong one's (case-insensitive: "the wrong one may say the
  same thing");
* at most ``max_pairs`` candidates are drawn at random without replacement
  (``random.sample``), then repeated (chosen, rejected) texts are dropped;
* format negatives are paired with correct responses by the same rule, capped the same
  way; their answer is InternVL's placeholder ``"None"``, so a correct answer that is a
  substring of "none" ("no", "one") gets no format pairs (InternVL's quirk, kept).

Draws are seeded by (``seed``, row id), so a resumed run writes what an uninterrupted one
would. Not reproduced: InternVL's per-dataset ``check_answer`` modes (TextVQA score, relaxed
accuracy, ANLS; mmpo judges with its one matcher), its optional ``--answer-fix`` rewriting
and its lowering of the cap to 3 for files over 500,000 lines.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace

from mmpo.pairs.answers import answers_match
from mmpo.pairs.cot_format import INSTRUCTIONS, cot_prompt, parse_response
from mmpo.pairs.generate import GenerationConfig, GenerationRequest, check_generation_options, generate
from mmpo.pairs.inputs import PromptRow, relative_images
from mmpo.pairs.progress import batches_with_progress
from mmpo.pairs.store import PairStore

FORMAT_NEGATIVE_ANSWER = "None"  # the answer InternVL gives a response it cannot parse


@dataclass
class CorrectnessConfig:
    """Options of ``mmpo pairs correctness``."""

    samples: int = field(default=32, metadata={"help": "Responses sampled per question."})
    max_pairs: int = field(default=15, metadata={"help": "Pairs kept per question, drawn at random (InternVL's --num-pairs-per-key); the same cap applies to format negatives."})
    style: str = field(default="final", metadata={"help": "final: InternVL's 'Final answer: ..' instruction and format checks; boxed: its \\boxed{} instruction (the last box is the answer)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (0 = greedy)."})
    max_new_tokens: int = field(default=2048, metadata={"help": "Tokens per sampled response (InternVL's default 2048: shorter cuts lose the final answer and turn into format negatives)."})
    batch_size: int = field(default=16, metadata={"help": "Sequences per generate call."})
    seed: int = field(default=0, metadata={"help": "Seeds sampling and the draw of pairs."})
    instruction: str | None = field(default=None, metadata={"help": "Your own reasoning instruction, a template holding {question} (default: InternVL's for --style); the answer is still read by --style's rules."})

    def __post_init__(self) -> None:
        if self.style not in INSTRUCTIONS:
            raise ValueError(f"--style must be one of {sorted(INSTRUCTIONS)}, got {self.style!r}")
        if self.instruction is not None and "{question}" not in self.instruction:
            raise ValueError(f"--instruction must contain {{question}}, got {self.instruction!r}")
        if self.samples < 2 or self.max_pairs < 1:
            raise ValueError("need --samples >= 2 and --max_pairs >= 1")
        check_generation_options(self)

    def pair_prompt(self, question: str) -> str:
        """The prompt as the written pairs carry it (and the model is asked)."""
        return cot_prompt(question, self.style, self.instruction)


@dataclass(frozen=True)
class Judged:
    """One sampled response and the answer read from it."""

    text: str
    answer: str


@dataclass
class QuestionPairs:
    """What one question's responses give: correctness pairs, format-negative pairs, and
    counts of what was dropped (and why) for each file."""

    pairs: list[tuple[str, str]]
    format_pairs: list[tuple[str, str]]
    drops: Counter
    format_drops: Counter


def judge(responses: list[str], truth: str, style: str) -> tuple[list[Judged], list[Judged], list[Judged]]:
    """(correct, wrong, format negatives), each in sampling order, duplicates kept (as InternVL)."""
    correct, wrong, unparsed = [], [], []
    for text in responses:
        parsed = parse_response(text, style)
        if parsed is None:
            unparsed.append(Judged(text, FORMAT_NEGATIVE_ANSWER))
        elif answers_match(parsed.answer, truth):
            correct.append(Judged(text, parsed.answer))
        else:
            wrong.append(Judged(text, parsed.answer))
    return correct, wrong, unparsed


def sample_pairs(chosen: list[Judged], rejected: list[Judged], max_pairs: int, rng: random.Random) -> tuple[list[tuple[str, str]], Counter]:
    """At most ``max_pairs`` distinct (chosen, rejected) texts, as InternVL draws them; and
    the drop counts (``answer_in_rejected``, ``duplicate_pair``)."""
    drops: Counter = Counter()
    candidates = []
    for c in chosen:
        for r in rejected:
            if c.answer.lower() in r.answer.lower():
                drops["answer_in_rejected"] += 1
            else:
                candidates.append((c.text, r.text))
    drawn = rng.sample(candidates, min(len(candidates), max_pairs))
    distinct = list(dict.fromkeys(drawn))
    if len(distinct) < len(drawn):
        drops["duplicate_pair"] += len(drawn) - len(distinct)
    return distinct, drops


def make_pairs(responses: list[str], truth: str, max_pairs: int, seed: str, style: str = "final") -> QuestionPairs:
    """Correctness and format-negative pairs of one question's responses; ``seed`` seeds
    both draws (each its own stream)."""
    correct, wrong, unparsed = judge(responses, truth, style)
    pairs, drops = sample_pairs(correct, wrong, max_pairs, random.Random(seed))
    format_pairs, format_drops = sample_pairs(correct, unparsed, max_pairs, random.Random(f"{seed}|format"))
    if unparsed:
        drops["unparseable_response"] += len(unparsed)
    if not correct:
        drops["no_correct_response"] += 1
    if not wrong:
        drops["no_wrong_response"] += 1
    return QuestionPairs(pairs, format_pairs, drops, format_drops)


def format_negatives_path(out_path: str) -> str:
    return out_path.removesuffix(".jsonl") + ".format.jsonl"


def correctness(model, processor, rows: list[PromptRow], out_path: str, config: CorrectnessConfig) -> PairStore:
    """Write correctness pairs for ``rows`` (each with ``answer``) to ``out_path`` and
    format-negative pairs (a correct response vs one that breaks the format) beside it
    (:func:`format_negatives_path`); resumable."""
    format_store = PairStore(format_negatives_path(out_path))
    store = PairStore(out_path)
    gen = GenerationConfig(max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                           batch_size=config.batch_size, seed=config.seed)
    for start, batch in batches_with_progress(rows, 1, store, "correctness"):
        row = batch[0]
        request = GenerationRequest(row.load_images(), config.pair_prompt(row.prompt))
        seeded = replace(gen, seed=config.seed * 7_919 + start)  # fixed by the question's position
        responses = generate(model, processor, [request] * config.samples, seeded)
        found = make_pairs(responses, row.answer, config.max_pairs, f"{config.seed}|{row.id}", config.style)
        common = {"image": relative_images(row, out_path), "prompt": request.prompt, "answer": row.answer}
        if not format_store.is_done(row.id):  # written first: a key done in `store` is done here too
            format_store.add(row.id, [{"id": f"{row.id}-fmt{k}", **common, "chosen": c, "rejected": r,
                                       "method": "format_negative"} for k, (c, r) in enumerate(found.format_pairs)],
                             found.format_drops)
        store.add(row.id, [{"id": f"{row.id}-c{k}", **common, "chosen": c, "rejected": r, "method": "correctness"}
                           for k, (c, r) in enumerate(found.pairs)], found.drops)
    return store
