"""The tiny shapes-world VLM: a LLaVA-architecture model (CLIP-style vision tower,
projector, Llama decoder) with a tokenizer trained here, supervised-fine-tuned on the CPU
on shapes captions and QA until it is competent but still hallucinates.

Its scenes follow the world's language priors (typical colours, companion shapes; see
:mod:`mmpo.shapes.world`), and a share of its steps are image-free captions, as real VLMs
see text without images: it is a language model too, so its image-free continuations are
fluent and prior-driven, which is what DropoutNTP's negatives assume.

The result is cached under ``$MMPO_CACHE`` (default ``~/.cache/mmpo``) keyed by its
settings **and by the source of every mmpo module its training can run** (world, tasks,
tokenizer and model builder, collation, log-probs, the loss, this loop: the closure of this
module's imports) and the torch / transformers versions, so a cache written by older code is never reused.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass

import torch

from mmpo.data.collate import PreferenceCollator
from mmpo.data.schema import PreferenceExample
from mmpo.losses import sft
from mmpo.model.load import load_model, load_processor
from mmpo.model.logps import sequence_logps
from mmpo.model.tiny import build_tiny_model
from mmpo.shapes.tasks import CAPTION_PROMPT, exist_task, tasks_for
from mmpo.shapes.world import caption, make_scene, render


@dataclass
class PretrainConfig:
    """Size and schedule of the shapes VLM (defaults: ~2.5 minutes on 2 CPU cores)."""

    image_size: int = 48
    patch_size: int = 16  # one image token per grid cell
    hidden: int = 128
    vision_hidden: int = 96
    layers: int = 3
    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 1e-3
    scenes: int = 4000
    single_object_fraction: float = 0.2
    frozen_vision_fraction: float = 0.3
    prior: float = 0.6  # how strongly training scenes follow the world's language priors
    text_only_every: int = 6  # every N-th step is a batch of image-free captions
    seed: int = 0

    def key(self) -> str:
        """Settings + the code that turns them into weights: a change to either is a new model."""
        state = {"config": asdict(self), "code": code_fingerprint()}
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:12]


def weight_sources(root: str = "mmpo.shapes.pretrain") -> list[str]:
    """Every mmpo module this training loop can run: the closure of ``root``'s imports of
    ``mmpo.*`` (module-level and inside functions), read from the source, so a module that
    starts to matter is covered without anyone remembering to list it."""
    import ast
    import importlib.util

    seen, todo = set(), [root]
    while todo:
        name = todo.pop()
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:  # "from mmpo.x import name" where name is not a module
            spec = None
        if name in seen or spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        seen.add(name)
        with open(spec.origin, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            todo += [n for n in names if n == "mmpo" or n.startswith("mmpo.")]
    return sorted(seen)


@functools.lru_cache(maxsize=None)
def code_fingerprint(root: str = "mmpo.shapes.pretrain") -> dict[str, str]:
    """sha256 of the source of each module of :func:`weight_sources` of ``root``, plus the
    torch and transformers versions; read once per process, so files edited while a long run
    goes on do not change the key of the code that run already imported."""
    import importlib.util

    import transformers

    digests = {}
    for name in weight_sources(root):
        with open(importlib.util.find_spec(name).origin, "rb") as f:
            digests[name] = hashlib.sha256(f.read()).hexdigest()
    return {**digests, "torch": torch.__version__, "transformers": transformers.__version__}


def cache_dir() -> str:
    return os.environ.get("MMPO_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "mmpo"))


def tokenizer_corpus(n: int = 2000) -> list[str]:
    """Every kind of text the world produces, for training the tokenizer."""
    rng = random.Random(12345)
    texts = []
    for seed in range(n):
        for task in tasks_for(make_scene(10_000_000 + seed), rng):
            texts.append(f"{task.prompt} {task.answer}")
    return texts


def training_example(index: int, config: PretrainConfig, rng: random.Random, max_objects: int = 3) -> tuple[PreferenceExample, str]:
    scene = make_scene(config.seed * 1_000_000 + index % config.scenes, max_objects, scene_id=f"pre{index % config.scenes}",
                       prior=config.prior)
    tasks = tasks_for(scene, rng)
    task = rng.choice(tasks + [tasks[0], exist_task(scene, rng)])  # captions and existence twice as often
    row = PreferenceExample(scene.id, [render(scene)], task.prompt, task.answer, "-")
    return row, task.answer


def text_only_example(index: int, config: PretrainConfig) -> tuple[PreferenceExample, str]:
    """An image-free caption of a scene drawn from the priors: what the model says with nothing to look at."""
    scene = make_scene(config.seed * 1_000_000 + 500_000 + index, prior=config.prior, scene_id=f"text{index}")
    return PreferenceExample(scene.id, [], CAPTION_PROMPT, caption(scene.objects), "-"), caption(scene.objects)


def pretrain(config: PretrainConfig, out_dir: str, log=print) -> str:
    """SFT the tiny VLM from scratch (all weights) and save it to ``out_dir``."""
    torch.manual_seed(config.seed)
    build_tiny_model("llava", out_dir, image_size=config.image_size, patch_size=config.patch_size,
                     hidden=config.hidden, layers=config.layers, vision_hidden=config.vision_hidden, corpus=tokenizer_corpus(), vocab_size=400,
                     seed=config.seed)
    model = load_model(out_dir, dtype=torch.float32)
    processor = load_processor(out_dir)
    collator = PreferenceCollator(processor, max_length=256)
    text_collator = PreferenceCollator(processor, max_length=256, no_image=True)
    # The vision tower starts frozen at its random init, a fixed "retina": trained jointly from
    # scratch, its features collapse to a constant within ~20 steps (the decoder learns the
    # text prior first and treats the image as noise) and the model never looks at the image.
    # Once the decoder reads the image, the tower joins in at a lower learning rate.
    vision = list(model.model.vision_tower.parameters())
    vision_ids = {id(p) for p in vision}
    others = [p for p in model.parameters() if id(p) not in vision_ids]
    optimizer = torch.optim.AdamW([{"params": others}, {"params": vision, "lr": 0.0}],
                                  lr=config.learning_rate, weight_decay=0.01)
    vision_start = int(config.steps * config.frozen_vision_fraction)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, [
        lambda step: min(1.0, (step + 1) / 20) * _cosine(step, config.steps),
        lambda step: 0.3 * _cosine(step, config.steps) if step >= vision_start else 0.0,
    ])
    rng = random.Random(config.seed)
    model.train()
    start = time.time()
    for step in range(config.steps):
        # Curriculum: single-object scenes first, so that the image is the only way to lower
        # the loss and the vision tower gets a signal before the language prior settles.
        max_objects = 1 if step < config.steps * config.single_object_fraction else 3
        if config.text_only_every and step % config.text_only_every == config.text_only_every - 1:
            rows, answers = zip(*(text_only_example(step * config.batch_size + i, config) for i in range(config.batch_size)))
            batch = text_collator.responses(list(rows), list(answers))
        else:
            rows, answers = zip(*(training_example(step * config.batch_size + i, config, rng, max_objects)
                                  for i in range(config.batch_size)))
            batch = collator.responses(list(rows), list(answers))
        loss = sft_step(model, batch, optimizer, schedule)
        if step % 50 == 0 or step == config.steps - 1:
            log(f"pretrain step {step:4d}/{config.steps}  loss {loss.item():.3f}  {time.time() - start:.0f}s")
    model.eval()
    model.save_pretrained(out_dir)
    return out_dir


def sft_step(model, batch, optimizer, schedule) -> torch.Tensor:
    """One SFT update on ``batch`` (mean per-token NLL of its responses, gradients clipped to
    norm 1; parameters without a gradient are left out); returns the loss."""
    logps, lengths = sequence_logps(model, batch)
    loss = sft(logps, lengths).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


def _cosine(step: int, total: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


def shapes_vlm(config: PretrainConfig | None = None, log=print) -> str:
    """Path of the pretrained shapes VLM, training it first if it is not cached."""
    config = config or PretrainConfig()
    return cached_model(f"shapes-vlm-{config.key()}", lambda out: pretrain(config, out, log))


def cached_model(name: str, build) -> str:
    """``$MMPO_CACHE/name``, built first by ``build(folder)`` if it is not there; the folder
    is written under a temporary name and renamed, so a half-trained model is never cached."""
    path = os.path.join(cache_dir(), name)
    if os.path.isfile(os.path.join(path, "model.safetensors")):
        return path
    tmp = path + f".tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    build(tmp)
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path
