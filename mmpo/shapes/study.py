"""``mmpo demo --study``: the papers' tables in miniature, over several base models and
pair/training seeds, with 95 % confidence intervals and paired differences.

Every condition is trained from the same base model on pairs built from the same training
scenes; runs are (base seed, pair seed) cells, so a difference between two conditions is
taken within each cell and then averaged (a paired comparison), which removes the spread
between base models. The tables and the paper's direction for each claim:

* **Table 1** (mDPO Table 1; MPO): base, DPO, DPO without the image, mDPO, MPO — mDPO
  hallucinates less than DPO; DPO without the image is about as good as DPO (the
  "unconditional preference" the mDPO paper diagnoses); MPO hallucinates less than the base.
* **Ablation** (mDPO Table 3): mDPO without CoPO and without AncPO hallucinate more.
* **Corruption** (mDPO's study of m′): cropping 0–20 % beats cropping 20–50 %, another
  image and a blank image.
* **DropoutNTP ratio** (MPO): truncating half the words (0.5) beats 0.25 and 0.75.
* **Reasoning QA** (MPO's ablation of its loss terms): on pairs from the correctness
  pipeline, MPO answers more reasoning questions correctly than DPO + SFT, and than the SFT
  model it starts from (:mod:`mmpo.shapes.reasoning`: a reasoning SFT stage on the base
  model, then one adapter per objective).

Claims are judged with the 95 % CI of the paired difference — on CHAIR_i, and on reasoning
accuracy for the reasoning table: "agrees" when the CI excludes zero in the paper's
direction, "disagrees" when it excludes zero the other way, "inconclusive" otherwise. The learning rate is the demo's (chosen by ``--tune`` on
validation scenes); evaluation scenes are never used to choose anything.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from mmpo.io import write_json_atomic, write_text_atomic

METRICS = (("chair_s", "CHAIR_s ↓"), ("chair_i", "CHAIR_i ↓"), ("cover", "cover ↑"), ("pope_accuracy", "POPE acc ↑"),
           ("image_reliance", "reliance crop ↑"), ("reliance_blank", "reliance blank ↑"))
REASONING_METRICS = (("reasoning_accuracy", "accuracy ↑"), ("no_answer_rate", "no answer ↓"),
                     ("reasoning_chair_i", "CHAIR_i of its description ↓"), ("reasoning_words", "words"))
RATES = {"chair_s", "chair_i", "cover", "pope_accuracy", "reasoning_accuracy", "no_answer_rate",
         "reasoning_chair_i"}  # shown in %; the reliances in nats, words as they are


@dataclass(frozen=True)
class Condition:
    """One trained model per run: objective, image on/off, CoPO's m′, DropoutNTP ratio of its pairs."""

    table: str
    objective: str
    no_image: bool = False
    corruption: str = "crop"
    ratio: float = 0.5
    all_runs: bool = True  # False: only the first pair seed of each base model (the budget's side tables)


CONDITIONS = {
    "dpo": Condition("table1", "dpo"),
    "dpo_no_image": Condition("table1", "dpo", no_image=True),
    "mdpo": Condition("table1", "mdpo"),
    "mpo": Condition("table1", "mpo"),
    "mdpo_no_copo": Condition("ablation", "sigmoid:1,anchor:1"),
    "mdpo_no_anchor": Condition("ablation", "sigmoid:1,copo:1"),
    "mdpo_crop_20_50": Condition("corruption", "mdpo", corruption="crop:0.2-0.5", all_runs=False),
    "mdpo_other_image": Condition("corruption", "mdpo", corruption="other", all_runs=False),
    "mdpo_blank": Condition("corruption", "mdpo", corruption="blank", all_runs=False),
    "mpo_ratio_0.25": Condition("ratio", "mpo", ratio=0.25, all_runs=False),
    "mpo_ratio_0.75": Condition("ratio", "mpo", ratio=0.75, all_runs=False),
}
# The reasoning table: from the reasoner (:mod:`mmpo.shapes.reasoning`), on correctness pairs.
REASONING_CONDITIONS = {"reasoning_dpo": "dpo", "reasoning_dpo_sft": "sigmoid:1,sft:1", "reasoning_mpo": "mpo"}
# (table, title, rows, claims); a claim is (lower, higher, paper's words): CHAIR_i(lower) < CHAIR_i(higher).
TABLES = (
    ("table1", "Table 1: methods", ["base", "dpo", "dpo_no_image", "mdpo", "mpo"], [
        ("mdpo", "dpo", "mDPO hallucinates less than DPO"),
        ("mpo", "base", "MPO hallucinates less than the base model"),
        ("dpo", "base", "DPO hallucinates less than the base model"),
    ]),
    ("ablation", "Ablation: mDPO's terms", ["mdpo", "mdpo_no_copo", "mdpo_no_anchor", "dpo"], [
        ("mdpo", "mdpo_no_copo", "removing CoPO hurts"),
        ("mdpo", "mdpo_no_anchor", "removing AncPO hurts"),
    ]),
    ("corruption", "Corruption m′ for CoPO", ["mdpo", "mdpo_crop_20_50", "mdpo_other_image", "mdpo_blank"], [
        ("mdpo", "mdpo_crop_20_50", "crop 0–20 % beats crop 20–50 %"),
        ("mdpo", "mdpo_other_image", "crop 0–20 % beats another image"),
        ("mdpo", "mdpo_blank", "crop 0–20 % beats a blank image"),
    ]),
    ("ratio", "DropoutNTP truncation ratio (MPO)", ["mpo_ratio_0.25", "mpo", "mpo_ratio_0.75"], [
        ("mpo", "mpo_ratio_0.25", "ratio 0.5 beats 0.25"),
        ("mpo", "mpo_ratio_0.75", "ratio 0.5 beats 0.75"),
    ]),
)
# Claims on reasoning accuracy, higher is better: (better, worse, paper's words).
REASONING_TABLE = ("reasoning", "Reasoning QA: MPO vs DPO + SFT (correctness pairs)",
                   ["reasoner", "reasoning_dpo", "reasoning_dpo_sft", "reasoning_mpo"], [
                       ("reasoning_mpo", "reasoning_dpo_sft", "MPO answers more reasoning questions than DPO + SFT"),
                       ("reasoning_mpo", "reasoner", "MPO answers more reasoning questions than the SFT model"),
                       ("reasoning_dpo_sft", "reasoning_dpo", "adding the SFT term to DPO helps"),
                   ])
SIMILAR = [("dpo_no_image", "dpo", "DPO without the image is about as good as DPO")]  # paper: no real difference
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def ci95(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): the t-interval of the mean; a single value has no interval (NaN)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = T975.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def verdict(low: float, high: float, expected_negative: bool = True) -> str:
    if math.isnan(low):
        return "inconclusive (one run)"
    if high < 0:
        return "agrees" if expected_negative else "disagrees"
    if low > 0:
        return "disagrees" if expected_negative else "agrees"
    return "inconclusive"


def paired(runs: list[dict], a: str, b: str, metric: str = "chair_i") -> list[float]:
    """metric(a) − metric(b) in every run that has both."""
    return [run[a][metric] - run[b][metric] for run in runs if a in run and b in run]


def _fmt(mean: float, low: float, high: float, scale: float = 100.0) -> str:
    digits = 1 if scale == 100.0 else 2
    if math.isnan(low):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def render_study(runs: list[dict], config: dict) -> str:
    """study.md: per table the metrics (mean [95 % CI] over runs, in %), then each claim."""
    lines = ["# `mmpo demo --study`", "",
             f"{len(runs)} runs ({config['base_seeds']} base models × {config['pair_seeds']} pair/training seeds; "
             "side tables: the first pair seed of each base model). Rates in %, reliances in nats per token, "
             "mean [95 % CI over runs; a base model counts once per run of it]. The paired Δ, taken within each run, "
             "is the comparison that removes the spread between base models.", ""]
    for table, title, rows, claims in TABLES:
        lines += _table(runs, title, rows, METRICS)
        lines += _claims(runs, claims + (SIMILAR if table == "table1" else []), "chair_i", "CHAIR_i")
    _, title, rows, claims = REASONING_TABLE
    if any(rows[0] in run for run in runs):
        lines += _table(runs, title, rows, REASONING_METRICS)
        lines += _claims(runs, claims, "reasoning_accuracy", "accuracy", higher_is_better=True)
    return "\n".join(lines)


def _table(runs: list[dict], title: str, rows: list[str], metrics) -> list[str]:
    rows = [r for r in rows if any(r in run for run in runs)]
    lines = [f"## {title}", "", "| condition | runs | " + " | ".join(h for _, h in metrics) + " |",
             "|---|---:|" + "---:|" * len(metrics)]
    for row in rows:
        values = {m: [run[row][m] for run in runs if row in run and m in run[row]] for m, _ in metrics}
        lines.append(f"| {row} | {max(len(v) for v in values.values())} | " + " | ".join(
            _fmt(*ci95(values[m]), scale=100.0 if m in RATES else 1.0) if values[m] else "–" for m, _ in metrics) + " |")
    return lines


def _claims(runs: list[dict], claims, metric: str, name: str, higher_is_better: bool = False) -> list[str]:
    """One line per claim (a, b, words): the paired Δ metric(a) − metric(b) and its verdict;
    the paper says a is better than b (or, for :data:`SIMILAR`, that they are alike)."""
    lines = ["", f"| claim (paper) | paired Δ {name} | ours |", "|---|---:|---|"]
    for a, b, words in claims:
        diffs = paired(runs, a, b, metric)
        if not diffs:
            continue
        mean, low, high = ci95(diffs)
        if (a, b, words) in SIMILAR:
            ours = "agrees (no difference)" if not math.isnan(low) and low <= 0 <= high else (
                "inconclusive (one run)" if math.isnan(low) else "disagrees")
        else:
            ours = verdict(low, high, expected_negative=not higher_is_better)
        lines.append(f"| {words} | {a} − {b}: {_fmt(mean, low, high)} | {ours} |")
    return lines + [""]


def cells(config) -> list[tuple[int, int]]:
    """(base index, pair index) of every run, first pair seeds of all bases first, so that
    parallel workers start on different base models."""
    return [(b, k) for k in range(config.pair_seeds) for b in range(config.base_seeds)]


def run_cell(config, b: int, k: int) -> dict:
    """Every condition of one (base seed, pair seed) run: the base model (pre-trained once and
    cached), its pairs per DropoutNTP ratio, one trained adapter per condition, its metrics."""
    from peft import PeftModel

    from mmpo.demo import EVAL_SEED_OFFSET, build_pairs, evaluate, train_method
    from mmpo.model.load import load_model, load_processor
    from mmpo.shapes.pretrain import PretrainConfig, shapes_vlm
    from mmpo.shapes.world import make_scene

    started = time.time()
    eval_scenes = [make_scene(EVAL_SEED_OFFSET + i, scene_id=f"eval{i}") for i in range(config.eval_scenes)]
    pretrain = PretrainConfig(steps=config.pretrain_steps, seed=config.seed + b)
    base_dir = shapes_vlm(pretrain)
    processor = load_processor(base_dir)
    base = load_model(base_dir, dtype=torch.float32).eval()
    seed = config.seed + 100 * b + k
    run = {"base_seed": config.seed + b, "pair_seed": seed}
    run["base"], _ = evaluate(base, processor, eval_scenes)
    scenes = [make_scene(1_000_000 * (seed + 1) + i, scene_id=f"train{seed}-{i}", prior=pretrain.prior)
              for i in range(config.train_scenes)]
    pairs: dict[float, str] = {}
    for name, cond in CONDITIONS.items():
        if not cond.all_runs and k > 0:
            continue
        if cond.ratio not in pairs:
            pairs[cond.ratio] = build_pairs(base, processor, scenes, os.path.join(
                config.out, "data", f"base{b}-seed{seed}-ratio{cond.ratio:g}"), seed, ratio=cond.ratio)
        run_dir = os.path.join(config.out, "runs", f"base{b}-seed{seed}", name)
        train_method(base_dir, pairs[cond.ratio], run_dir, cond.objective, cond.no_image, config, seed,
                     corruption=cond.corruption)
        trained = PeftModel.from_pretrained(load_model(base_dir, dtype=torch.float32), run_dir).eval()
        run[name], _ = evaluate(trained, processor, eval_scenes)
        print(f"base {b} seed {seed} {name:>17}: chair_i {run[name]['chair_i']:.3f} cover {run[name]['cover']:.3f}"
              f"  ({time.time() - started:.0f}s)", flush=True)
    return run


def run_reasoning_cell(config, b: int, k: int) -> dict:
    """The reasoning table's part of run (b, k), on the same base model and training scenes
    as :func:`run_cell` (a cell of its own, so the two parts resume independently)."""
    from mmpo.demo import EVAL_SEED_OFFSET
    from mmpo.shapes.pretrain import PretrainConfig
    from mmpo.shapes.world import make_scene

    started = time.time()
    eval_scenes = [make_scene(EVAL_SEED_OFFSET + i, scene_id=f"eval{i}") for i in range(config.eval_scenes)]
    pretrain = PretrainConfig(steps=config.pretrain_steps, seed=config.seed + b)
    seed = config.seed + 100 * b + k
    scenes = [make_scene(1_000_000 * (seed + 1) + i, scene_id=f"train{seed}-{i}", prior=pretrain.prior)
              for i in range(config.train_scenes)]
    run = reasoning_runs(config, pretrain, scenes, eval_scenes, os.path.join(config.out, "data", f"base{b}-seed{seed}-reasoning"),
                         os.path.join(config.out, "runs", f"base{b}-seed{seed}"), seed)
    print(f"base {b} seed {seed} reasoning: " + ", ".join(
        f"{name} {run[name]['reasoning_accuracy']:.3f}" for name in ["reasoner", *REASONING_CONDITIONS] if name in run)
        + f"  ({run['reasoning_pairs']} pairs, {time.time() - started:.0f}s)", flush=True)
    return run


def reasoning_runs(config, pretrain, scenes, eval_scenes, data_dir: str, runs_dir: str, seed: int) -> dict:
    """The reasoning table's part of a cell: the reasoner (cached per base model), its
    correctness pairs on the cell's training scenes, one adapter per objective of
    :data:`REASONING_CONDITIONS`; their :func:`~mmpo.shapes.reasoning.evaluate_reasoning`
    metrics, and ``reasoning_pairs`` (no pairs, no adapters: the table says so)."""
    from peft import PeftModel

    from mmpo.demo import save_scenes, train_method
    from mmpo.model.load import load_model, load_processor
    from mmpo.pairs.correctness import CorrectnessConfig, correctness
    from mmpo.shapes.reasoning import INSTRUCTION, MAX_NEW_TOKENS, ReasonerConfig, evaluate_reasoning, question_rows, shapes_reasoner

    reasoner_dir = shapes_reasoner(ReasonerConfig(base=pretrain, steps=max(1, config.pretrain_steps // 3), seed=pretrain.seed))
    processor = load_processor(reasoner_dir)
    reasoner = load_model(reasoner_dir, dtype=torch.float32).eval()
    out = {"reasoner": evaluate_reasoning(reasoner, processor, eval_scenes)}
    save_scenes(scenes, os.path.join(data_dir, "images"))
    pairs = os.path.join(data_dir, "correctness.jsonl")
    store = correctness(reasoner, processor, question_rows(scenes, seed, os.path.join(data_dir, "images")), pairs,
                        CorrectnessConfig(samples=16, max_pairs=4, max_new_tokens=MAX_NEW_TOKENS, batch_size=32, seed=seed,
                                          instruction=INSTRUCTION))
    out["reasoning_pairs"] = sum(d["pairs"] for d in store.done.values())
    if not out["reasoning_pairs"]:
        return out
    for name, objective in REASONING_CONDITIONS.items():
        run_dir = os.path.join(runs_dir, name)
        train_method(reasoner_dir, pairs, run_dir, objective, False, config, seed)
        trained = PeftModel.from_pretrained(load_model(reasoner_dir, dtype=torch.float32), run_dir).eval()
        out[name] = evaluate_reasoning(trained, processor, eval_scenes)
    return out


def _cell_path(config, b: int, k: int, part: str = "") -> str:
    return os.path.join(config.out, "cells", f"base{b}-pair{k}{part}.json")


def _parts(config) -> dict[str, object]:
    """Cell file suffix → the function that computes it."""
    return {"": run_cell, **({"-reasoning": run_reasoning_cell} if REASONING_CONDITIONS else {})}


def _work(config) -> None:
    """Run every cell nobody has claimed: a cell is claimed by creating its lock file
    (O_EXCL), done when its JSON exists — so workers share the cells and a killed study,
    started again, reruns only the cells it had not finished."""
    torch.set_num_threads(1)  # as the demo: the same numbers on any machine
    os.makedirs(os.path.join(config.out, "cells"), exist_ok=True)
    for part, compute in _parts(config).items():
        for b, k in cells(config):
            path = _cell_path(config, b, k, part)
            if os.path.exists(path):
                continue
            try:
                os.close(os.open(path + ".lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            try:
                write_json_atomic(path, compute(config, b, k))
            finally:
                os.unlink(path + ".lock")


def run_study(config) -> dict:
    """Every (base seed, pair seed) cell in ``config.workers`` parallel processes (resumable),
    then study.md, study.json and study.png under ``config.out``. ``config`` is the demo's
    DemoConfig."""
    import multiprocessing

    started = time.time()
    os.makedirs(os.path.join(config.out, "cells"), exist_ok=True)
    for name in os.listdir(os.path.join(config.out, "cells")):  # locks of a killed study
        if name.endswith(".lock"):
            os.unlink(os.path.join(config.out, "cells", name))
    workers = max(1, min(config.workers, len(cells(config))))
    if workers == 1:
        _work(config)
    else:
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=_work, args=(config,)) for _ in range(workers)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
    missing = [(b, k, part) for part in _parts(config) for b, k in cells(config)
               if not os.path.exists(_cell_path(config, b, k, part))]
    if missing:
        raise RuntimeError(f"study cells {missing} did not finish; run the same command again to resume them")
    runs = [{key: value for part in _parts(config) for key, value in load_json(_cell_path(config, b, k, part)).items()}
            for b, k in cells(config)]
    summary = {"runs": runs, "config": asdict(config), "seconds": round(time.time() - started, 1)}
    write_json_atomic(os.path.join(config.out, "study.json"), summary)
    text = render_study(runs, {"base_seeds": config.base_seeds, "pair_seeds": config.pair_seeds})
    write_text_atomic(os.path.join(config.out, "study.md"), text + f"\nStudy finished in {summary['seconds']:.0f}s.\n")
    plot_study(runs, os.path.join(config.out, "study.png"))
    print(text)
    return summary


def load_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def plot_study(runs: list[dict], path: str) -> None:
    """Table 1's CHAIR_i and cover, mean with 95 % CI error bars."""
    from mmpo.eval.report import _pyplot, _save_figure

    plt = _pyplot()
    rows = [r for r in TABLES[0][2] if any(r in run for run in runs)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, (metric, title) in zip(axes, (("chair_i", "CHAIR_i ↓"), ("cover", "cover ↑"))):
        stats = [ci95([run[r][metric] for run in runs if r in run]) for r in rows]
        errors = [[0 if math.isnan(lo) else m - lo for m, lo, _ in stats], [0 if math.isnan(hi) else hi - m for m, _, hi in stats]]
        ax.bar(rows, [m for m, _, _ in stats], yerr=errors, capsize=3, color=[f"C{i}" for i in range(len(rows))])
        ax.set(title=title, ylim=(0, 1))
        ax.tick_params(axis="x", rotation=30)
    _save_figure(fig, path)
