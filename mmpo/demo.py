"""``mmpo demo``: the mDPO and MPO experiments at toy scale, with hallucinations measured
exactly because we draw the images.

1. A tiny LLaVA-architecture VLM is pre-trained on shapes-world captions and QA (cached),
   on scenes that follow the world's language priors (typical colours, companion shapes)
   and on image-free captions, so it is a language model too.
2. Preference pairs are built from training scenes: ground-truth corrections of the model's
   own sampled captions (a hallucinated caption → rejected, the true caption → chosen),
   DropoutNTP pairs (the true caption's first half continued by the model without the
   image → rejected), and yes/no existence answers (right vs wrong).
3. LoRA adapters are trained with DPO, DPO without the image, mDPO and MPO (and, with
   ``--ablations``, mDPO without CoPO and without AncPO) on the same pairs.
4. Every model captions held-out scenes — drawn without the priors, so the priors mislead —
   and answers their questions: CHAIR, object recall, QA accuracy, POPE, and image reliance.

The learning rate shared by every method is chosen by ``--tune`` on validation scenes
(disjoint from the evaluation scenes) by the mean object F1 of the preference methods.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field

import torch

from mmpo.data.corrupt import CorruptionConfig
from mmpo.data.schema import PreferenceExample
from mmpo.eval.benchmarks.shapes_chair import caption_report, chair
from mmpo.eval.benchmarks.shapes_pope import pope_questions
from mmpo.eval.metrics.pope import parse_pope_answer, pope_scores
from mmpo.eval.reliance import batched_logps, mean_reliance, reliance_by_corruption
from mmpo.io import write_json_atomic, write_text_atomic
from mmpo.model.load import load_model, load_processor
from mmpo.pairs.dropout_ntp import DropoutNTPConfig, dropout_ntp
from mmpo.pairs.generate import GenerationConfig, GenerationRequest, generate
from mmpo.pairs.inputs import PromptRow
from mmpo.shapes.drift import DRIFT_SCENES, drift_curve
from mmpo.shapes.drift import checkpoints as drift_checkpoints
from mmpo.shapes.pretrain import PretrainConfig, shapes_vlm
from mmpo.shapes.tasks import CAPTION_PROMPT, answer_matches, attribute_task, count_task, reasoning_task
from mmpo.shapes.world import COLORS, SHAPES, Scene, ShapeObject, caption, make_scene, render

METHODS = {  # name → (objective, train without the image)
    "dpo": ("dpo", False),
    "dpo_no_image": ("dpo", True),
    "mdpo": ("mdpo", False),
    "mpo": ("mpo", False),
}
ABLATIONS = {"mdpo_no_copo": ("sigmoid:1,anchor:1", False), "mdpo_no_anchor": ("sigmoid:1,copo:1", False)}
EVAL_SEED_OFFSET = 50_000_000  # held-out scenes never overlap training scenes
VALIDATION_SEED_OFFSET = 60_000_000  # --tune's scenes: neither training nor evaluation
DRIFT_POINTS = 6  # checkpoints per method (first seed) for the over-optimisation curves
TUNED_LEARNING_RATE = 1e-4  # chosen by `mmpo demo --tune` on validation scenes (README: "Choosing the learning rate")


@dataclass
class DemoConfig:
    """Options of ``mmpo demo``."""

    out: str = field(default="demo_out", metadata={"help": "Output folder."})
    quick: bool = field(default=False, metadata={"help": "A < 3 minute version (smoke tests)."})
    seeds: int = field(default=1, metadata={"help": "Repeat pairs + training with N seeds; report mean ± std."})
    ablations: bool = field(default=False, metadata={"help": "Also train mDPO without CoPO and without AncPO."})
    train_scenes: int = field(default=240, metadata={"help": "Training scenes (3 pairs each)."})
    eval_scenes: int = field(default=120, metadata={"help": "Held-out evaluation scenes."})
    steps: int = field(default=120, metadata={"help": "Training steps per method (batch 16)."})
    seed: int = field(default=0, metadata={"help": "First seed."})
    pretrain_steps: int | None = field(default=None, metadata={"help": "SFT steps of the base VLM (default 1500; 400 with --quick)."})
    learning_rate: float = field(default=TUNED_LEARNING_RATE, metadata={"help": "LoRA learning rate shared by every method (default: the --tune choice)."})
    tune: bool = field(default=False, metadata={"help": "Choose the learning rate on validation scenes (writes tune.md), instead of the experiment."})
    tune_grid: str = field(default="1e-4,2e-4,5e-4,1e-3", metadata={"help": "Learning rates --tune tries."})
    study: bool = field(default=False, metadata={"help": "Run the papers' tables over --base_seeds × --pair_seeds (writes study.md, study.png)."})
    base_seeds: int = field(default=3, metadata={"help": "--study: base models pre-trained with different seeds."})
    pair_seeds: int = field(default=2, metadata={"help": "--study: pair/training seeds per base model."})
    workers: int = field(default=2, metadata={"help": "--study: runs trained in parallel (one thread each)."})

    def __post_init__(self) -> None:
        if self.quick:  # smaller sizes, where not set explicitly
            for name, value in {"train_scenes": 64, "eval_scenes": 40, "steps": 24}.items():
                if getattr(self, name) == self.__dataclass_fields__[name].default:
                    setattr(self, name, value)
        if self.pretrain_steps is None:
            self.pretrain_steps = 400 if self.quick else PretrainConfig.steps


def hallucinate(objects: tuple[ShapeObject, ...], rng: random.Random) -> tuple[ShapeObject, ...]:
    """The same objects with one replaced by a (shape, colour) that is not in the scene."""
    present = {(o.shape, o.color) for o in objects}
    absent = [(s, c) for s in SHAPES for c in COLORS if (s, c) not in present]
    swapped = list(objects)
    i = rng.randrange(len(objects))
    shape, color = rng.choice(absent)
    swapped[i] = ShapeObject(shape, color, objects[i].cell)
    return tuple(swapped)


def save_scenes(scenes: list[Scene], folder: str) -> dict[str, str]:
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for scene in scenes:
        paths[scene.id] = os.path.join(folder, f"{scene.id}.png")
        if not os.path.exists(paths[scene.id]):
            render(scene).save(paths[scene.id])
    return paths


def build_pairs(model, processor, scenes: list[Scene], data_dir: str, seed: int, ratio: float = 0.5) -> str:
    """The training preference file for one seed (see the module docstring)."""
    rng = random.Random(seed)
    save_scenes(scenes, os.path.join(data_dir, "images"))
    sampled = generate(model, processor, [GenerationRequest([render(s)], CAPTION_PROMPT) for s in scenes],
                       GenerationConfig(max_new_tokens=48, temperature=1.0, batch_size=32, seed=seed))
    rows = []
    for scene, text in zip(scenes, sampled):
        truth = caption(scene.objects)
        wrong = text if caption_report(text, list(scene.objects))["hallucinated"] else caption(hallucinate(scene.objects, rng))
        rows.append({"id": f"{scene.id}-fix", "image": f"images/{scene.id}.png", "prompt": CAPTION_PROMPT,
                     "chosen": truth, "rejected": wrong, "method": "correction"})
        question = pope_questions(scene, rng, 1, 1)[rng.randrange(2)]
        right = "Yes" if question["label"] == "yes" else "No"
        rows.append({"id": f"{scene.id}-pope", "image": f"images/{scene.id}.png", "prompt": question["question"],
                     "chosen": right, "rejected": "No" if right == "Yes" else "Yes", "method": "existence"})
    ntp_path = os.path.join(data_dir, "dropout_ntp.jsonl")
    prompt_rows = [PromptRow(f"{s.id}-dntp", [os.path.join(data_dir, "images", f"{s.id}.png")], CAPTION_PROMPT,
                             chosen=caption(s.objects)) for s in scenes]
    dropout_ntp(model, processor, prompt_rows, ntp_path, DropoutNTPConfig(max_new_tokens=40, batch_size=32, seed=seed, ratio=ratio))
    rows += [json.loads(line) for line in open(ntp_path, encoding="utf-8")]
    path = os.path.join(data_dir, "pairs.jsonl")
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))
    return path


@torch.no_grad()
def evaluate(model, processor, scenes: list[Scene]) -> tuple[dict, list[dict]]:
    """Metrics of one model on held-out scenes, and its captions."""
    images = [render(s) for s in scenes]
    greedy = GenerationConfig(max_new_tokens=48, temperature=0.0, batch_size=40)
    captions = generate(model, processor, [GenerationRequest([img], CAPTION_PROMPT) for img in images], greedy)
    truths = [list(s.objects) for s in scenes]
    metrics = {k: v for k, v in chair(captions, truths).items() if k in ("chair_s", "chair_i", "cover")}

    rng = random.Random(7)
    qa = [(img, task) for img, s in zip(images, scenes)
          for task in (count_task(s), attribute_task(s, rng), reasoning_task(s, rng))]
    short = GenerationConfig(max_new_tokens=4, temperature=0.0, batch_size=60)
    answers = generate(model, processor, [GenerationRequest([img], t.prompt) for img, t in qa], short)
    metrics["qa_accuracy"] = sum(answer_matches(t.kind, a, t.answer) for (_, t), a in zip(qa, answers)) / len(qa)

    pope = [(img, q) for img, s in zip(images, scenes) for q in pope_questions(s, rng, 1, 1, strategy="adversarial")]
    replies = generate(model, processor, [GenerationRequest([img], q["question"]) for img, q in pope], short)
    scores = pope_scores([parse_pope_answer(r) for r in replies], [q["label"] for _, q in pope])  # POPE's own rules
    metrics["pope_accuracy"], metrics["pope_f1"] = scores["accuracy"], scores["f1"]

    rows = [PreferenceExample(s.id, [img], CAPTION_PROMPT, c or "-", "-") for s, img, c in zip(scenes, images, captions)]
    # under CoPO's crop and under an m′ CoPO never trains on, so the gain cannot come from learning the crop alone
    drops = reliance_by_corruption(model, processor, rows, [c or "-" for c in captions],
                                   {"image_reliance": CorruptionConfig(seed=4321),
                                    "reliance_blank": CorruptionConfig(strategy="blank", seed=4321)})
    metrics.update({name: mean_reliance(values) for name, values in drops.items()})
    # over-optimisation checks: answer length, and how likely the model still finds the true captions
    metrics["words"] = statistics.fmean(len(c.split()) for c in captions)
    metrics["truth_logp"] = truth_log_likelihood(model, processor, scenes, images)
    generations = [{"image_id": s.id, "prompt": CAPTION_PROMPT, "response": c,
                    "objects": [{"shape": o.shape, "color": o.color, "position": o.position} for o in s.objects]}
                   for s, c in zip(scenes, captions)]
    return metrics, generations


def truth_log_likelihood(model, processor, scenes: list[Scene], images) -> float:
    """Mean per-token log-likelihood of the true captions of ``scenes`` (nats): falls when
    preference training over-optimises away from fluent, correct text."""
    from mmpo.data.collate import PreferenceCollator

    truths = [caption(s.objects) for s in scenes]
    rows = [PreferenceExample(s.id, [img], CAPTION_PROMPT, t, "-") for s, img, t in zip(scenes, images, truths)]
    logps, lengths = batched_logps(model, PreferenceCollator(processor), rows, truths, batch_size=40)
    return statistics.fmean((logps / lengths.clamp(min=1)).tolist())


def train_method(base_dir: str, pairs: str, out_dir: str, objective: str, no_image: bool, config: DemoConfig, seed: int,
                 corruption: str = "crop", checkpoints: int = 0):
    """One LoRA run; ``checkpoints`` > 0 also saves the adapter that many times along the way
    (for :mod:`mmpo.shapes.drift`)."""
    from mmpo.train import TrainConfig, train

    saving = {"save_strategy": "steps", "save_steps": max(1, config.steps // checkpoints), "save_only_model": True} \
        if checkpoints else {"save_strategy": "no"}
    run = TrainConfig(corruption=corruption, **saving,
        output_dir=out_dir, model=base_dir, data=pairs, objective=objective, no_image=no_image,
        max_steps=config.steps, per_device_train_batch_size=16, gradient_accumulation_steps=1,
        learning_rate=config.learning_rate, warmup_steps=0.1, lora_r=16, lora_alpha=32, lora_dropout=0.05,
        logging_steps=max(1, config.steps // 12), report_to="none", seed=seed, disable_tqdm=True,
    )
    return train(run)


def aggregate(per_seed: list[dict]) -> dict:
    """Per method and metric: the value (one seed) or mean, std and values (several)."""
    if len(per_seed) == 1:
        return per_seed[0]
    out = {}
    for method in per_seed[0]:
        out[method] = {}
        for metric in per_seed[0][method]:
            values = [run[method][metric] for run in per_seed]
            out[method][metric] = {"mean": statistics.mean(values), "std": statistics.stdev(values), "values": values}
    return out


def run_demo(config: DemoConfig) -> dict:
    """Run the whole experiment and write every output under ``config.out``."""
    from peft import PeftModel

    from mmpo.eval.report import write_report

    started = time.time()
    torch.set_num_threads(1)  # the same numbers on any machine (no thread-count-dependent sums); no slower at this size
    torch.manual_seed(config.seed)
    os.makedirs(config.out, exist_ok=True)
    pretrain = PretrainConfig(steps=config.pretrain_steps, seed=config.seed)
    base_dir = shapes_vlm(pretrain)
    print(f"base model: {base_dir}")
    processor = load_processor(base_dir)
    base = load_model(base_dir, dtype=torch.float32).eval()
    offset, prefix = (VALIDATION_SEED_OFFSET, "val") if config.tune else (EVAL_SEED_OFFSET, "eval")
    eval_scenes = [make_scene(offset + i, scene_id=f"{prefix}{i}") for i in range(config.eval_scenes)]
    image_paths = save_scenes(eval_scenes, os.path.join(config.out, "images"))
    methods = dict(METHODS, **(ABLATIONS if config.ablations else {}))

    drift_scenes = [make_scene(VALIDATION_SEED_OFFSET + i, scene_id=f"val{i}") for i in range(DRIFT_SCENES)]
    base_metrics, base_generations = evaluate(base, processor, eval_scenes)
    generations, histories, per_seed = {"base": base_generations}, {"base": []}, []
    for k in range(config.seeds):
        seed = config.seed + k
        scenes = [make_scene(1_000_000 * (seed + 1) + i, scene_id=f"train{seed}-{i}", prior=pretrain.prior)
                  for i in range(config.train_scenes)]
        pairs = build_pairs(base, processor, scenes, os.path.join(config.out, "data", f"seed{seed}"), seed)
        results = {"base": base_metrics}
        for method, (objective, no_image) in methods.items():
            run_dir = os.path.join(config.out, "runs", f"seed{seed}", method)
            result = train_method(base_dir, pairs, run_dir, objective, no_image, config, seed,
                                  checkpoints=DRIFT_POINTS if k == 0 else 0)
            trained = PeftModel.from_pretrained(load_model(base_dir, dtype=torch.float32), run_dir).eval()
            results[method], gens = evaluate(trained, processor, eval_scenes)
            if k == 0:
                drift = drift_curve(base_dir, run_dir, base, processor, drift_scenes)
                for _, folder in drift_checkpoints(run_dir):
                    shutil.rmtree(folder)
                generations[method], histories[method] = gens, result.history + drift
            print(f"seed {seed} {method:>15}: " + ", ".join(f"{m} {v:.3f}" for m, v in results[method].items()))
        per_seed.append(results)

    summary = {"methods": aggregate(per_seed), "config": asdict(config), "base_model": base_dir,
               "seconds": round(time.time() - started, 1)}
    for method, rows in generations.items():
        write_text_atomic(os.path.join(config.out, "generations", f"{method}.jsonl"),
                          "".join(json.dumps(r) + "\n" for r in rows))
    write_json_atomic(os.path.join(config.out, "results.json"), summary)
    write_json_atomic(os.path.join(config.out, "histories.json"), histories)
    paths = write_report(config.out, summary, histories, generations, image_paths)
    print(open(paths["markdown"], encoding="utf-8").read())
    print(f"demo finished in {summary['seconds']:.0f}s; results in {config.out}")
    return summary


def object_f1(metrics: dict) -> float:
    """Harmonic mean of object precision (1 − CHAIR_i) and recall (cover): rewards naming
    what is there and only that (CHAIR_i alone would reward saying nothing)."""
    from mmpo.eval.report import metric_value

    precision, recall = 1.0 - metric_value(metrics["chair_i"])[0], metric_value(metrics["cover"])[0]
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def tune(config: DemoConfig) -> float:
    """Run the experiment on validation scenes for each learning rate of ``tune_grid`` and
    return the one with the best mean object F1 over the preference methods (tune.md says
    what each scored). The evaluation scenes are never looked at."""
    from dataclasses import replace

    grid = [float(x) for x in config.tune_grid.split(",") if x.strip()]
    if not grid:
        raise ValueError("--tune_grid names no learning rate")
    rows = []
    for lr in grid:
        summary = run_demo(replace(config, learning_rate=lr, out=os.path.join(config.out, f"lr-{lr:g}")))
        methods = {m: v for m, v in summary["methods"].items() if m != "base"}
        per_method = {m: object_f1(v) for m, v in methods.items()}
        rows.append((lr, statistics.mean(per_method.values()), per_method, object_f1(summary["methods"]["base"])))
    best = max(rows, key=lambda row: row[1])[0]
    names = list(rows[0][2])
    lines = ["# `mmpo demo --tune`: learning rate on validation scenes", "",
             f"Object F1 (harmonic mean of 1 − CHAIR_i and cover) on {config.eval_scenes} validation scenes, "
             f"seed {config.seed}; base model: {rows[0][3]:.3f}. Chosen: **{best:g}** (best mean).", "",
             "| lr | mean | " + " | ".join(names) + " |", "|---:|---:|" + "---:|" * len(names)]
    lines += [f"| {lr:g} | {mean:.3f} | " + " | ".join(f"{per[m]:.3f}" for m in names) + " |" for lr, mean, per, _ in rows]
    write_text_atomic(os.path.join(config.out, "tune.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return best
