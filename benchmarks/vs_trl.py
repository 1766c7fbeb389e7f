"""Throughput and peak memory of mmpo against its peers, on the same rows, same steps.

    python benchmarks/vs_trl.py [--shape lm-heavy,small-vlm] [--tasks dpo,mpo,mdpo,mdpo-split]
                                [--steps 10] [--rows 40] [--batch 4] [--repeats 3]

A tiny but image-heavy LLaVA-architecture model (256 image tokens per image, random init)
in one or more shapes (``SHAPES``: how costly the vision tower and the vocabulary head are
next to the decoder, copied from real VLMs) is trained with LoRA for the same steps on the
same shapes-world pairs by:

- DPO: mmpo vs TRL's DPOTrainer (``loss_type="sigmoid"``),
- MPO: mmpo vs TRL's DPOTrainer (``loss_type=["sigmoid", "bco_pair", "sft"]``, weights 0.8/0.2/1),
- mDPO: mmpo vs a loop doing what the official mDPO code does: chosen and rejected with the
  image duplicated, an extra forward for a corrupted image re-sampled per pass, all logits
  materialised, and the same calls again for the reference; ``mdpo-split`` is the same
  against mmpo with ``split_backward`` (less memory for one extra forward).

Every run is its own process (so peaks do not leak between runs); runs alternate between the
two sides and repeat. Printed: rows/s; the peak resident memory added by training (the
process high-water mark reset just before training); the peak of live tensor bytes (one
extra, untimed 3-step run per side under the profiler: what a GPU's
``max_memory_allocated`` reports; resident memory also holds what glibc keeps after
tensors are freed); and the ratios mmpo / peer of each repeat's adjacent pair of runs
(median and range).
Throughput counts the steps after the first, so set-up and warm-up are excluded on both sides.
Requires ``pip install trl``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> None:
    """Reset the process's resident-memory high-water mark (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


# Model shapes around a 256-wide, 2-layer Llama decoder (per token: ~1.2 M multiply-adds).
# What differs between VLMs of different sizes is how heavy the vision tower and the
# vocabulary projection are next to the decoder; each shape copies one real proportion.
SHAPES = {
    "lm-heavy": dict(vision_hidden=64, vocab=None, about=(
        "a light vision tower and head, as in 7B-class VLMs (LLaVA-1.5-7B: CLIP-L/336 ~4 % of the "
        "compute per image, the 32k-word head ~2 % of the decoder per token)")),
    "small-vlm": dict(vision_hidden=256, vocab=1024, about=(
        "a vision tower as heavy as the decoder and a heavy head, as in 0.5-2B VLMs (LLaVA-OneVision-0.5B, "
        "InternVL2-1B, Qwen2-VL-2B: the vision tower costs 1.1-3.4x the decoder's image prefix, the 152k-word head "
        "18-38 % of the decoder per token)")),
}


def prepare(root: str, rows: int, shape: str) -> dict:
    """The model and the data, written once for every run."""
    from mmpo.demo import hallucinate
    from mmpo.model.tiny import build_tiny_model
    from mmpo.shapes.world import caption, make_scene, render

    model_dir = os.path.join(root, "model")
    model, _ = build_tiny_model("llava", model_dir, image_size=128, patch_size=8, hidden=256, layers=2,
                                vision_hidden=SHAPES[shape]["vision_hidden"],
                                corpus=[caption(make_scene(s).objects) for s in range(300)])
    if SHAPES[shape]["vocab"]:  # a larger output vocabulary than the tiny tokenizer has, as real models pad theirs
        model.resize_token_embeddings(SHAPES[shape]["vocab"], mean_resizing=False)
        model.save_pretrained(model_dir)
    import random

    rng = random.Random(0)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    with open(os.path.join(root, "pairs.jsonl"), "w") as f:
        for i in range(rows):
            scene = make_scene(i)
            render(scene, size=128).save(os.path.join(root, "images", f"{i}.png"))
            f.write(json.dumps({"id": f"r{i}", "image": f"images/{i}.png", "prompt": "Describe the image.",
                                "chosen": caption(scene.objects), "rejected": caption(hallucinate(scene.objects, rng))}) + "\n")
    return {"model": model_dir, "data": os.path.join(root, "pairs.jsonl")}


def proportions(model_dir: str) -> str:
    """The shape's cost ratios, counted from its config in multiply-adds (attention scores left out)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    text, vision = config["text_config"], config["vision_config"]
    h, inter, layers = text["hidden_size"], text["intermediate_size"], text["num_hidden_layers"]
    kv = text["num_key_value_heads"] * (text.get("head_dim") or h // text["num_attention_heads"])
    decoder = layers * (2 * h * h + 2 * h * kv + 3 * h * inter)  # q, o; k, v; gate, up, down — per token
    hv, vinter = vision["hidden_size"], vision["intermediate_size"]
    patches = (vision["image_size"] // vision["patch_size"]) ** 2
    tower = vision["num_hidden_layers"] * (4 * hv * hv + 2 * hv * vinter) * (patches + 1)  # per image
    head = h * text["vocab_size"]
    return (f"vision tower per image = {tower / (decoder * patches):.2f}x the decoder on its {patches} image tokens; "
            f"head = {head / decoder:.0%} of the decoder per token")


LORA_DROPOUT = 0.05  # the mDPO recipe's; set from --lora_dropout in each run's process


def lora_kwargs() -> dict:
    return dict(r=16, lora_alpha=32, lora_dropout=LORA_DROPOUT)


def run_mmpo(paths: dict, objective: str, steps: int, batch: int, out: str, **options) -> dict:
    from mmpo.train import PreferenceTrainer, TrainConfig
    from mmpo.train.run import build_model, load_training_data
    from mmpo.model.load import load_processor

    config = TrainConfig(output_dir=out, model=paths["model"], data=paths["data"], objective=objective,
                         max_steps=steps, per_device_train_batch_size=batch, gradient_accumulation_steps=1,
                         learning_rate=1e-4, warmup_steps=0, lora_r=16, lora_alpha=32, lora_dropout=LORA_DROPOUT,
                         save_strategy="no", report_to="none", disable_tqdm=True, logging_steps=steps, **options)
    data = load_training_data(config)
    model, ref = build_model(config)
    trainer = PreferenceTrainer(model, config, data, load_processor(paths["model"]), ref_model=ref)
    return timed_trainer(trainer, batch)


def run_trl(paths: dict, loss: str, steps: int, batch: int, out: str) -> dict:
    import datasets
    from peft import LoraConfig
    from PIL import Image
    from trl import DPOConfig, DPOTrainer

    from mmpo.model.load import language_model_lora_targets, load_model, load_processor

    rows = [json.loads(line) for line in open(paths["data"])]
    root = os.path.dirname(paths["data"])
    dataset = datasets.Dataset.from_list([{
        "images": [Image.open(os.path.join(root, r["image"])).convert("RGB")],
        "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": r["prompt"]}]}],
        "chosen": [{"role": "assistant", "content": [{"type": "text", "text": r["chosen"]}]}],
        "rejected": [{"role": "assistant", "content": [{"type": "text", "text": r["rejected"]}]}],
    } for r in rows])
    model = load_model(paths["model"], dtype="float32")
    processor = load_processor(paths["model"])
    losses = {"dpo": (["sigmoid"], None), "mpo": (["sigmoid", "bco_pair", "sft"], [0.8, 0.2, 1.0])}[loss]
    args = DPOConfig(output_dir=out, per_device_train_batch_size=batch, max_steps=steps, learning_rate=1e-4,
                     beta=0.1, loss_type=losses[0], loss_weights=losses[1], max_length=None, bf16=False,
                     report_to="none", save_strategy="no", disable_tqdm=True, logging_steps=steps,
                     gradient_accumulation_steps=1, warmup_steps=0)
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor,
                         peft_config=LoraConfig(target_modules=language_model_lora_targets(model), **lora_kwargs()))
    return timed_trainer(trainer, batch)


def run_official_mdpo(paths: dict, steps: int, batch: int) -> dict:
    """What the official mDPO code does per step, on mmpo's collation: real image duplicated
    for chosen and rejected, a separate forward for a crop re-sampled per pass, full logits,
    and the same three forwards for the reference."""
    import itertools

    import torch
    from peft import LoraConfig, get_peft_model

    from mmpo.data import load_preferences
    from mmpo.data.collate import PreferenceCollator
    from mmpo.losses import LogProbs, ObjectiveParams, compute_objective, parse_objective
    from mmpo.model.load import language_model_lora_targets, load_model, load_processor

    model = load_model(paths["model"], dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(target_modules=language_model_lora_targets(model), **lora_kwargs()))
    processor = load_processor(paths["model"])
    data = list(load_preferences(paths["data"]))
    plain = PreferenceCollator(processor)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step(i: int, rows) -> None:
        pair = plain(rows)
        policy = official_logps(model, pair)
        policy_corrupted = official_logps(model, official_corrupted_batch(processor, rows, 2 * i))  # a fresh crop
        with torch.no_grad(), model.disable_adapter():
            reference = official_logps(model, pair)
            reference_corrupted = official_logps(model, official_corrupted_batch(processor, rows, 2 * i + 1))
        b = len(rows)
        loss, _ = compute_objective(parse_objective("mdpo"), LogProbs(
            policy[:b], policy[b:], pair["response_mask"][:b].sum(1), reference[:b], reference[b:],
            policy_corrupted, reference_corrupted), ObjectiveParams(beta=0.1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    batches = itertools.cycle([data[k : k + batch] for k in range(0, len(data) - batch + 1, batch)])
    stamps: list[float] = []

    def loop() -> None:
        for i in range(steps):
            step(i, next(batches))
            stamps.append(time.perf_counter())

    return timed(loop, stamps, batch)


def official_logps(model, batch: dict):
    """Summed response log-probs from full logits over every position, as the official
    mDPO code computes them. Shapes: batch of N sequences → (N,)."""
    import torch

    from mmpo.model.logps import model_inputs

    logits = model(**model_inputs(batch)).logits[:, :-1].float()  # (N, T-1, V)
    token = torch.log_softmax(logits, -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    return (token * batch["response_mask"][:, 1:]).sum(1)


def official_corrupted_batch(processor, rows, seed: int) -> dict:
    """Chosen under a crop drawn afresh from ``seed``, as the official code re-samples per pass."""
    from mmpo.data import CorruptionConfig
    from mmpo.data.collate import PreferenceCollator

    return PreferenceCollator(processor, corruption=CorruptionConfig(seed=seed)).responses(
        rows, [r.chosen for r in rows], corrupted=True)


def timed_trainer(trainer, batch: int) -> dict:
    from transformers import TrainerCallback

    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    trainer.add_callback(Stamp())
    return timed(trainer.train, stamps, batch)


TENSOR_PEAK = False  # set by --tensor_peak in a run's process


def timed(fn, stamps: list[float], batch: int) -> dict:
    """Run ``fn``; throughput over the steps after the first (set-up and warm-up excluded),
    peak memory over the whole run. With ``TENSOR_PEAK``, a separate kind of run: the peak
    of live tensor bytes instead, from the profiler's allocator records."""
    import torch

    torch.manual_seed(0)
    if TENSOR_PEAK:
        return {"tensor_peak_mib": tensor_peak_mib(fn)}
    reset_peak()
    before = rss_kib("VmRSS")
    fn()
    seconds = stamps[-1] - stamps[0]
    return {"rows_per_s": (len(stamps) - 1) * batch / seconds, "peak_mib": (rss_kib("VmHWM") - before) / 1024,
            "seconds": seconds}


def tensor_peak_mib(fn) -> float:
    """Highest total of live CPU tensor bytes while ``fn`` runs, above the total when it
    starts: what ``torch.cuda.max_memory_allocated`` reports on a GPU. (Resident memory
    also counts what the C allocator keeps after tensors are freed, which on glibc is
    most of a training step's churn.)"""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    path = tempfile.mktemp(suffix=".json")
    prof.export_chrome_trace(path)
    with open(path) as f:
        events = [e["args"] for e in json.load(f)["traceEvents"] if e.get("name") == "[memory]"]
    os.remove(path)
    start = events[0]["Total Allocated"] - events[0]["Bytes"]
    return (max(e["Total Allocated"] for e in events) - start) / 2**20


def child(args) -> None:
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    global LORA_DROPOUT, TENSOR_PEAK
    LORA_DROPOUT, TENSOR_PEAK = args.lora_dropout, args.tensor_peak
    paths = json.loads(args.paths)
    out = tempfile.mkdtemp()
    side, task = args.child.split(":")
    if side == "mmpo":
        objective, options = ("mdpo", {"split_backward": True}) if task == "mdpo-split" else (task, {})
        result = run_mmpo(paths, objective, args.steps, args.batch, out, **options)
    elif task.startswith("mdpo"):
        result = run_official_mdpo(paths, args.steps, args.batch)
    else:
        result = run_trl(paths, task, args.steps, args.batch, out)
    print("RESULT " + json.dumps(result))


PEERS = {"dpo": "trl", "mpo": "trl", "mdpo": "official", "mdpo-split": "official"}


def measure(args, paths: dict) -> dict[str, dict[str, list[dict]]]:
    """Every (task, side) run in its own process, sides alternating, ``args.repeats`` times;
    then one tensor-peak run per side (a profiler slows a run, so it is never timed)."""
    results: dict[str, dict[str, list[dict]]] = {}
    for task in args.tasks.split(","):
        peer = PEERS[task]
        results[task] = {"mmpo": [], peer: []}
        for repeat in range(args.repeats):
            for side in (["mmpo", peer] if repeat % 2 == 0 else [peer, "mmpo"]):
                results[task][side].append(run_child(args, paths, side, task, args.steps))
        for side in ("mmpo", peer):
            results[task][side][0].update(run_child(args, paths, side, task, 3, "--tensor_peak"))
    return results


def run_child(args, paths: dict, side: str, task: str, steps: int, *extra: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", f"{side}:{task}", "--paths", json.dumps(paths), "--steps", str(steps),
         "--batch", str(args.batch), "--threads", str(args.threads), "--lora_dropout", str(args.lora_dropout), *extra],
        capture_output=True, text=True)
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not line:
        sys.exit(f"{side} {task} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[0][7:])


def report(shape: str, paths: dict, results: dict[str, dict[str, list[dict]]], args) -> None:
    """Medians per side, and the ratios of each repeat's adjacent pair of runs (median,
    then the range over repeats): pairing cancels slow drifts of the machine."""
    def median(runs, key):
        return statistics.median(r[key] for r in runs)

    print(f"\nshape {shape}: {SHAPES[shape]['about']}\n  {proportions(paths['model'])}")
    print(f"{args.steps} steps × batch {args.batch}, 256 image tokens per row, LoRA r 16 dropout {args.lora_dropout}, "
          f"{args.repeats} alternating repeats, {args.threads} threads\n")
    print("peak RSS: resident-memory high-water mark added by training; tensor peak: live tensor bytes "
          "(the allocator's peak, as torch.cuda.max_memory_allocated on a GPU)\n")
    print(f"{'task':<10} {'side':<9} {'rows/s':>8} {'peak RSS MiB':>13} {'tensor peak MiB':>16}")
    for task, sides in results.items():
        for side, runs in sides.items():
            print(f"{task:<10} {side:<9} {median(runs, 'rows_per_s'):8.2f} {median(runs, 'peak_mib'):13.0f} "
                  f"{runs[0]['tensor_peak_mib']:16.0f}")
        ours, theirs = sides["mmpo"], sides[PEERS[task]]
        speed = [a["rows_per_s"] / b["rows_per_s"] for a, b in zip(ours, theirs)]
        memory = [a["peak_mib"] / max(1e-9, b["peak_mib"]) for a, b in zip(ours, theirs)]
        tensors = ours[0]["tensor_peak_mib"] / theirs[0]["tensor_peak_mib"]
        print(f"{task:<10} ratio     {statistics.median(speed):7.2f}× throughput ({min(speed):.2f}–{max(speed):.2f}), "
              f"{statistics.median(memory):.2f}× peak RSS ({min(memory):.2f}–{max(memory):.2f}), "
              f"{tensors:.2f}× tensor peak (mmpo / {PEERS[task]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--lora_dropout", type=float, default=0.05,
                        help="LoRA dropout on both sides (default: the mDPO recipe's 0.05)")
    parser.add_argument("--tasks", default="dpo,mpo,mdpo,mdpo-split",
                        help="mdpo-split: mmpo's mDPO with --split_backward (less memory, one extra forward)")
    parser.add_argument("--tensor_peak", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child")
    parser.add_argument("--paths")
    args = parser.parse_args()
    if args.child:
        return child(args)

    for shape in args.shape.split(","):
        if shape not in SHAPES:
            sys.exit(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")
        paths = prepare(tempfile.mkdtemp(prefix="mmpo-bench-"), args.rows, shape)
        report(shape, paths, measure(args, paths), args)


if __name__ == "__main__":
    main()
