"""Reasoning QA in the shapes world, for the study's "MPO vs DPO + SFT" table (MPO,
arXiv 2411.10442: the correctness pipeline builds pairs for questions with a ground truth,
and MPO beats DPO + SFT on chain-of-thought reasoning).

The question is a count conditioned on an attribute ("How many red shapes are there?"),
asked with a short chain-of-thought instruction (:data:`INSTRUCTION`, through the
correctness pipeline's ``instruction`` option: InternVL's own is ~150 tokens under the tiny
tokenizer, 8× the prompts the base model was pre-trained on, and a reasoner trained on it
learned to answer "1" whatever the image); the answer is read by InternVL's rules. A worked answer first describes the scene
(perception, where hallucinations happen), then counts, then states the answer::

    There is a red circle at the top left and a blue star in the middle.
    1 of them is red.
    Final answer: 1

(one step per line: InternVL's format check wants at least two line breaks).

The base shapes VLM answers such questions with a bare number, so a short second SFT stage
(the *reasoner*, cached like the base model) teaches it this format on scenes that follow
the priors, mixed with the base model's own tasks so it keeps them — as a real VLM is
instruction-tuned for reasoning before MPO.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field

import torch

from mmpo.data.collate import PreferenceCollator
from mmpo.data.schema import PreferenceExample
from mmpo.eval.benchmarks.shapes_chair import chair
from mmpo.eval.metrics.qa import qa_scores, score_response
from mmpo.model.load import load_model, load_processor
from mmpo.pairs.cot_format import cot_prompt
from mmpo.pairs.generate import GenerationConfig, GenerationRequest, generate
from mmpo.shapes.pretrain import (PretrainConfig, _cosine, cached_model, code_fingerprint, sft_step, shapes_vlm,
                                  training_example)
from mmpo.shapes.tasks import reasoning_task
from mmpo.shapes.world import Scene, caption, make_scene, render

STYLE = "final"  # answers read as InternVL's "Final answer: .." format
INSTRUCTION = "{question} Think step by step."
MAX_NEW_TOKENS = 64  # a worked answer is ~35 tokens


def worked_answer(scene: Scene, color: str) -> str:
    """The chain of thought for "How many ``color`` shapes are there?": describe, count, answer."""
    n = sum(o.color == color for o in scene.objects)
    count = f"None of them is {color}." if n == 0 else f"{n} of them {'is' if n == 1 else 'are'} {color}."
    return f"{caption(scene.objects)}\n{count}\nFinal answer: {n}"


def reasoning_question(scene: Scene, rng: random.Random) -> tuple[str, str, str]:
    """(prompt with the chain-of-thought instruction, worked answer, ground truth)."""
    task = reasoning_task(scene, rng)
    color = task.prompt.removeprefix("How many ").split()[0]
    return cot_prompt(task.prompt, STYLE, INSTRUCTION), worked_answer(scene, color), task.answer


@dataclass
class ReasonerConfig:
    """The reasoning SFT stage on top of a base shapes VLM (~2 minutes on one core). At 250
    steps it writes the right description and count line but answers "1" to everything
    (the answer token is 1/40 of a sequence's loss); at 500 it answers 89 % of the
    evaluation questions of base seed 0 right."""

    base: PretrainConfig = field(default_factory=PretrainConfig)
    steps: int = 500
    batch_size: int = 32
    learning_rate: float = 3e-4
    reasoning_share: float = 0.5  # the rest of each batch: the base model's own tasks
    seed: int = 0

    def key(self) -> str:
        state = {"config": asdict(self), "base": self.base.key(), "code": code_fingerprint("mmpo.shapes.reasoning")}
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:12]


def _example(index: int, config: ReasonerConfig, rng: random.Random) -> tuple[PreferenceExample, str]:
    if rng.random() >= config.reasoning_share:
        return training_example(index, config.base, rng)
    scene = make_scene(config.base.seed * 1_000_000 + 700_000 + index, scene_id=f"cot{index}", prior=config.base.prior)
    prompt, answer, _ = reasoning_question(scene, rng)
    return PreferenceExample(scene.id, [render(scene)], prompt, answer, "-"), answer


def train_reasoner(config: ReasonerConfig, base_dir: str, out_dir: str, log=print) -> str:
    """Copy the base model to ``out_dir`` and SFT its language model and projector there
    (the vision tower stays as pre-trained)."""
    shutil.copytree(base_dir, out_dir)
    torch.manual_seed(config.seed)
    model = load_model(out_dir, dtype=torch.float32)
    collator = PreferenceCollator(load_processor(out_dir), max_length=512)  # the instruction is long
    for p in model.model.vision_tower.parameters():
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _cosine(step, config.steps))
    rng = random.Random(config.seed)
    model.train()
    for step in range(config.steps):
        rows, answers = zip(*(_example(step * config.batch_size + i, config, rng) for i in range(config.batch_size)))
        loss = sft_step(model, collator.responses(list(rows), list(answers)), optimizer, schedule)
        if step % 50 == 0 or step == config.steps - 1:
            log(f"reasoner step {step:4d}/{config.steps}  loss {loss.item():.3f}")
    model.eval()
    model.save_pretrained(out_dir)
    return out_dir


def shapes_reasoner(config: ReasonerConfig, log=print) -> str:
    """Path of the reasoner for ``config`` (its base model first, each cached)."""
    return cached_model(f"shapes-reasoner-{config.key()}",
                        lambda out: train_reasoner(config, shapes_vlm(config.base, log), out, log))


def question_rows(scenes: list[Scene], seed: int, image_dir: str) -> list:
    """The correctness pipeline's inputs: one reasoning question per scene, with its answer
    (the prompt carries no instruction: the pipeline adds its own)."""
    from mmpo.pairs.inputs import PromptRow

    rng = random.Random(seed)
    rows = []
    for scene in scenes:
        task = reasoning_task(scene, rng)
        rows.append(PromptRow(f"{scene.id}-why", [os.path.join(image_dir, f"{scene.id}.png")], task.prompt,
                              answer=task.answer))
    return rows


@torch.no_grad()
def evaluate_reasoning(model, processor, scenes: list[Scene]) -> dict[str, float]:
    """Greedy worked answers on ``scenes``: accuracy and no-answer rate by the QA metric
    (the correctness pipeline's own answer rules), CHAIR_i of the descriptions in them, words."""
    rng = random.Random(11)
    questions = [reasoning_question(s, rng) for s in scenes]
    replies = generate(model, processor, [GenerationRequest([render(s)], q[0]) for s, q in zip(scenes, questions)],
                       GenerationConfig(max_new_tokens=MAX_NEW_TOKENS, temperature=0.0, batch_size=40))
    scored = [score_response(r, q[2]) for r, q in zip(replies, questions)]
    qa = qa_scores([ok for _, ok in scored], [answer is not None for answer, _ in scored])
    described = chair([r.split("\n")[0] for r in replies], [list(s.objects) for s in scenes])
    return {"reasoning_accuracy": qa["accuracy"], "no_answer_rate": qa["no_answer_rate"],
            "reasoning_chair_i": described["chair_i"],
            "reasoning_words": sum(len(r.split()) for r in replies) / len(replies)}
