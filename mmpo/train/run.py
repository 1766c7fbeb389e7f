"""``train(config)``: the whole of ``mmpo train`` as one function.

setup (data, checked row by row at load, prompt lengths included; model, LoRA, reference)
→ train → save (adapter, processor, resolved config, optional merged model) → summary.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass

import torch
from torch import nn
from transformers import set_seed

from mmpo.data.collate import PreferenceCollator
from mmpo.data.loaders import PreferenceData, load_preferences
from mmpo.data.schema import DataError
from mmpo.io import write_json_atomic
from mmpo.losses import needs_reference
from mmpo.model.families import startup_lines
from mmpo.model.lean_lora import use_lean_lora_dropout
from mmpo.model.load import freeze_vision, language_model_lora_targets, language_model_prefix, load_model, load_processor, save_processor
from mmpo.train.config import TrainConfig
from mmpo.train.trainer import PreferenceTrainer

CONFIG_FILE = "mmpo_config.json"
SKIPPED_FILE = "skipped.jsonl"


@dataclass
class TrainResult:
    output_dir: str
    global_step: int
    metrics: dict
    history: list[dict]
    seconds: float


def build_model(config: TrainConfig) -> tuple[nn.Module, nn.Module | None]:
    """The policy (LoRA on the language model, or the full language model) and, for full
    fine-tuning, a frozen reference copy. The vision tower and projector stay frozen."""
    model = load_model(config.model, dtype=torch.bfloat16 if config.bf16 else torch.float32,
                       trust_remote_code=config.trust_remote_code)
    if config.full_finetune:
        ref_model = copy.deepcopy(model).eval().requires_grad_(False) if needs_reference(config.objective_weights) else None
        prefix = language_model_prefix(model)
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith(prefix + ".") or "lm_head" in name)
        freeze_vision(model)
        return model, ref_model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules or language_model_lora_targets(model),
    )
    model = get_peft_model(model, lora)
    if config.lean_lora_dropout:
        use_lean_lora_dropout(model)
    if config.gradient_checkpointing:
        model.enable_input_require_grads()
    return model, None


def load_training_data(config: TrainConfig, processor=None) -> PreferenceData:
    """The rows, each checked as training will use it (images decoded, the prompt's length
    with its image tokens against the limits); with ``--skip_invalid_rows`` the bad ones
    are skipped and listed in ``<output_dir>/skipped.jsonl``."""
    if not config.data:
        raise ValueError("no training data: pass --data FILE")
    if processor is None:
        processor = load_processor(config.model, trust_remote_code=config.trust_remote_code)
    lengths = PreferenceCollator(
        processor, corruption=config.corruption_config if "copo" in config.objective_weights else None,
        no_image=config.no_image, max_length=config.max_length, max_prompt_length=config.max_prompt_length,
        max_image_pixels=config.max_image_pixels,
    )
    skipped_path = os.path.join(config.output_dir, SKIPPED_FILE)
    try:
        data = load_preferences(
            config.data, format=config.data_format, image_root=config.image_root, image_roots=config.image_root_list,
            skip_invalid=config.skip_invalid_rows, seed=config.seed, max_image_pixels=config.max_image_pixels,
            check_row=lengths.check_row,
        )
    except DataError as err:
        if err.report is not None and config.process_index == 0:  # every row skipped: say which and why
            err.report.write_skipped(skipped_path)
        raise
    print(data.report.summary())
    for note in data.report.notes:
        print(f"  {note}")
    if (config.skip_invalid_rows or data.report.records) and config.process_index == 0:
        data.report.write_skipped(skipped_path)
        if data.report.records:
            print(f"skipped rows are listed in {skipped_path}")
    return data


def _image_key(source) -> str:
    """An image as the fingerprint sees it: its path, or the digest of its embedded bytes."""
    return hashlib.sha256(source).hexdigest() if isinstance(source, bytes) else str(source)


def data_fingerprint(config: TrainConfig, data: PreferenceData) -> str:
    """Hash of everything the reference log-probs depend on: model weights' files, rows,
    and the options that shape the sequences."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(config.model)) if os.path.isdir(config.model) else [config.model]:
        path = os.path.join(config.model, name)
        if os.path.isfile(path):
            stat = os.stat(path)
            h.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for row in data:
        h.update(json.dumps([row.id, row.prompt, row.chosen, row.rejected, [_image_key(i) for i in row.images],
                             [_image_key(i) for i in row.rejected_images]]).encode())
    h.update(json.dumps([config.corruption, config.seed, config.no_image, config.max_length,
                         config.max_prompt_length, sorted(config.objective_weights)]).encode())
    return h.hexdigest()[:16]


@torch.no_grad()
def precompute_reference(trainer: PreferenceTrainer, data: PreferenceData, config: TrainConfig) -> dict:
    """Reference log-probs of every row (and, for CoPO, every epoch's m′), computed once
    with adapters disabled and cached on disk under the data/model fingerprint. Chosen and
    rejected under the real image are computed once; later epochs only add their m′."""
    cache_path = os.path.join(config.output_dir, f"ref_logps-{data_fingerprint(config, data)}.pt")
    if os.path.isfile(cache_path):
        return torch.load(cache_path)
    model = trainer.model
    was_training = model.training
    model.eval()
    epochs = math.ceil(config.num_train_epochs) if "copo" in config.objective_weights else 1
    if config.max_steps > 0 and "copo" in config.objective_weights:
        rows_per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps * config.world_size
        steps_per_epoch = max(1, math.ceil(len(data) / rows_per_step))
        epochs = math.ceil(config.max_steps / steps_per_epoch)
    cache: dict[tuple[str, int], torch.Tensor] = {}
    collator = trainer.collator
    saved_epoch = collator.epoch
    size = config.per_device_eval_batch_size
    for epoch in range(epochs):
        collator.epoch = epoch
        for start in range(0, len(data), size):
            rows = [data[i] for i in range(start, min(len(data), start + size))]
            if epoch == 0:  # every sequence
                batch = collator(rows)
            else:  # only m′ changes with the epoch: chosen under this epoch's m′
                batch = collator.responses(rows, [row.chosen for row in rows], corrupted=True)
            logps = trainer.live_reference_logps(model, batch.to(trainer.args.device)).float().cpu()
            logps = logps.view(len(batch.groups), len(rows))  # (groups, B)
            for j, row in enumerate(rows):
                if epoch == 0:
                    cache[(row.id, 0)] = logps[:, j].clone()
                else:  # chosen, rejected under m from epoch 0; this epoch's m′
                    cache[(row.id, epoch)] = torch.cat([cache[(row.id, 0)][:2], logps[:, j]])
    collator.epoch = saved_epoch
    model.train(was_training)
    os.makedirs(config.output_dir, exist_ok=True)
    tmp = cache_path + ".tmp"
    torch.save(cache, tmp)
    os.replace(tmp, cache_path)
    return cache


def train(config: TrainConfig) -> TrainResult:
    """Run ``mmpo train`` from Python; returns where the adapter went and the log history."""
    if not config.model:
        raise ValueError("no model: pass --model DIR")
    start = time.time()
    set_seed(config.seed)  # LoRA's initial weights are drawn before the Trainer seeds anything
    processor = load_processor(config.model, trust_remote_code=config.trust_remote_code)
    data = load_training_data(config, processor)
    model, ref_model = build_model(config)
    trainer = PreferenceTrainer(model, config, data, processor, ref_model=ref_model)
    print("\n".join(startup_lines(trainer, data)))
    if config.precompute_ref_logps and needs_reference(config.objective_weights):
        trainer.reference_cache = precompute_reference(trainer, data, config)
    output = trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    save_outputs(trainer, config)
    history = [h for h in trainer.state.log_history if "loss" in h]
    result = TrainResult(config.output_dir, trainer.state.global_step, dict(output.metrics), history, time.time() - start)
    if trainer.is_world_process_zero():
        print(summary(result))
    return result


def save_outputs(trainer: PreferenceTrainer, config: TrainConfig) -> None:
    """Adapter (or full model) + processor + resolved config at the output root;
    ``merged/`` with the LoRA-merged model when asked. Non-finite weights are never saved."""
    trainer.check_parameters()
    trainer.save_model(config.output_dir)
    if not trainer.is_world_process_zero():
        return
    save_processor(trainer.processor, config.output_dir)
    resolved = config.to_dict()
    resolved["objective_weights"] = config.objective_weights
    write_json_atomic(os.path.join(config.output_dir, CONFIG_FILE), resolved)
    if config.merge and not config.full_finetune:
        merged_dir = os.path.join(config.output_dir, "merged")
        merged = trainer.policy.merge_and_unload()
        merged.save_pretrained(merged_dir)
        save_processor(trainer.processor, merged_dir)


def summary(result: TrainResult) -> str:
    last = result.history[-1] if result.history else {}
    keys = [k for k in last if k.startswith(("loss", "rewards/", "image/", "bco/", "nonfinite"))]
    lines = [f"mmpo: {result.global_step} steps in {result.seconds:.1f}s → {result.output_dir}"]
    lines += [f"  {k:<22} {last[k]:.4f}" for k in keys]
    return "\n".join(lines)
