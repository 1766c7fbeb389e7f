"""``TrainConfig``: every option of ``mmpo train``, as a ``transformers.TrainingArguments``
subclass, so every Hugging Face flag works under its usual spelling. Field help is the
user documentation (``mmpo train --help`` prints it). Every option is checked when the
config is built, before anything is loaded, and a bad value is an error naming it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from mmpo.data.corrupt import CorruptionConfig
from mmpo.data.formats import FORMATS as DATA_FORMATS
from mmpo.data.images import MAX_IMAGE_PIXELS, PILLOW_MAX_PIXELS, split_roots
from mmpo.losses import SFT_REDUCTIONS, parse_objective



def _bf16_available() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


@dataclass
class TrainConfig(TrainingArguments):
    """Options of ``mmpo train``. Defaults follow the mDPO paper (LoRA r 64, α 128, dropout
    0.05 on the language model, lr 1e-5, cosine, warmup 0.1, 3 epochs, batch 8 × 4 = 32 on
    one device, β 0.1)."""

    # -- what to train on
    model: str | None = field(default=None, metadata={"help": "Model directory or hub id (AutoModelForImageTextToText)."})
    data: str | None = field(default=None, metadata={"help": "Preference data as downloaded: mmpo JSONL, an MMPR meta.json, mDPO JSON, LLaMA-Factory sharegpt JSON, ms-swift JSONL, raw VLFeedback, a hub parquet folder or file (RLAIF-V, TRL's rlaif-v_formatted) or a saved datasets folder. `mmpo data inspect FILE` shows how it is read."})
    data_format: str = field(default="auto", metadata={"help": "auto (detected from the file and its columns) | mmpo | trl | rlaif-v | mmpr | mdpo | sharegpt | swift | vlfeedback (jsonl = mmpo, hf = auto)."})
    image_root: str | None = field(default=None, metadata={"help": "Folder relative image paths are resolved from (default: the data file's folder; MMPR: each source's root)."})
    image_roots: str | None = field(default=None, metadata={"help": "Comma-separated folders absolute image paths may come from (ms-swift data often has them). Absolute paths are refused unless they lie under one of these."})
    skip_invalid_rows: bool = field(default=False, metadata={"help": "Skip bad rows instead of stopping at the first; each is counted by reason and recorded (file, line, reason, message) in <output_dir>/skipped.jsonl."})
    max_image_pixels: int = field(default=MAX_IMAGE_PIXELS, metadata={"help": f"Refuse images of more pixels than this (a bad row, skippable); default 64 megapixels, at most {PILLOW_MAX_PIXELS:,} (Pillow's own limit). Images over 16 MP are downscaled to 16 MP at load."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the checkpoint (off by default)."})

    # -- the objective
    objective: str = field(default="mdpo", metadata={"help": "dpo | mdpo | mpo | a custom mix like 'sigmoid:0.8,bco_pair:0.2,sft:1'."})
    loss_weights: str | None = field(default=None, metadata={"help": "Override weights of the objective's terms, e.g. 'copo:0.5,anchor:0'."})
    beta: float = field(default=0.1, metadata={"help": "β: the KL strength of every log-ratio term."})
    label_smoothing: float = field(default=0.0, metadata={"help": "ε for sigmoid (conservative DPO) and robust."})
    anchor_delta: float = field(default=0.0, metadata={"help": "δ of mDPO's anchor term."})
    sft_reduction: str = field(default="sequence", metadata={"help": "How the sft term is normalised: sequence (the MPO paper: each chosen response's mean token NLL, averaged over the batch) | token (InternVL's MPO trainer: one token mean pooled over every chosen token of the micro-batch, so long responses weigh more)."})
    corruption: str = field(default="crop", metadata={"help": "CoPO's m′: crop[:min-max] (default 0.01-0.2) | other | noise[:std] | blur[:r] | mask[:frac] | blank."})
    no_image: bool = field(default=False, metadata={"help": "Train with the image removed (the paper's 'DPO (No Image)' ablation)."})
    max_length: int = field(default=2048, metadata={"help": "Longest sequence in tokens; responses are cut from the end, prompts never."})
    max_prompt_length: int | None = field(default=None, metadata={"help": "A prompt (image tokens included) longer than this is an error."})

    # -- what is trained
    full_finetune: bool = field(default=False, metadata={"help": "Train all language-model weights (reference = a frozen copy) instead of LoRA."})
    lora_r: int = field(default=64, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=128, metadata={"help": "LoRA α."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lean_lora_dropout: bool = field(default=True, metadata={"help": "Apply LoRA dropout inside lora_A, keeping each layer's input and a one-byte mask for backward instead of peft's dropped-out copy and float mask per layer (same draws, outputs and gradients; about a third less activation memory at dropout 0.05)."})
    lora_target_modules: str | None = field(default=None, metadata={"help": "peft target_modules regex (default: every linear layer of the language model)."})
    share_images: bool = field(default=True, metadata={"help": "Encode each image once per pass for chosen, rejected (and m′ once), where the family allows it."})
    share_prefix: bool = field(default=True, metadata={"help": "Run each distinct prompt (image tokens included) once per pass and continue chosen and rejected from it: from its key/value cache, or packed in one masked row under gradient checkpointing (families with 1-D rotary positions; needs share_images)."})
    reuse_image_features: bool = field(default=True, metadata={"help": "Encode images once per step and hand the same features to the policy and the reference pass (only when the vision tower and projector are frozen and the reference shares them; needs share_images)."})
    split_backward: bool = field(default=False, metadata={"help": "mDPO with less memory: back-propagate the real-image branch, then the corrupted-image branch, so their activations are never held together (about 40 percent less activation memory, one extra no-grad forward of the corrupted prefix per step; needs a frozen image encoder, not with DeepSpeed)."})
    precompute_ref_logps: bool = field(default=False, metadata={"help": "Compute reference log-probs once before training and cache them."})
    merge: bool = field(default=False, metadata={"help": "Also write the LoRA-merged full model to <output_dir>/merged."})
    skip_nonfinite_batches: bool = field(default=False, metadata={"help": "On a NaN or infinite loss or gradient, drop that step's update and go on (counted as nonfinite_skipped in the logs) instead of stopping the run."})
    resume_from_checkpoint: str | None = field(default=None, metadata={"help": "A checkpoint folder to resume from (checked first: a damaged or incomplete one is an error naming the file), or 'latest' for the newest complete checkpoint in --output_dir."})

    # -- Hugging Face defaults changed to the paper's recipe
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Epochs."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Rows per device per step."})
    gradient_accumulation_steps: int = field(default=4, metadata={"help": "Steps accumulated per update."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})
    warmup_steps: float = field(default=0.1, metadata={"help": "Warm-up steps, or a fraction of all steps when < 1."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N steps."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Kept False: rows are not tokenized columns."})
    bf16: bool | None = field(default=None, metadata={"help": "bf16 mixed precision; default: on where the GPU supports it, off on CPU."})
    logging_nan_inf_filter: bool = field(default=False, metadata={"help": "Kept False: the logged loss is the real value, NaN included (Hugging Face's default hides it)."})

    def __post_init__(self) -> None:
        if self.bf16 is None:
            self.bf16 = _bf16_available()
        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # nothing to pin to on a CPU-only machine
        self.check_values()
        self.image_root_list = split_roots(self.image_roots)
        super().__post_init__()
        self.objective_weights = _weights("objective", self.objective)
        if self.loss_weights:
            self.objective_weights.update(_weights("loss_weights", self.loss_weights))
            self.objective_weights = {k: v for k, v in self.objective_weights.items() if v != 0.0}
            if not self.objective_weights:
                raise ValueError(f"--loss_weights {self.loss_weights!r} sets every term of the objective to 0")
        try:
            self.corruption_config = CorruptionConfig.parse(self.corruption, seed=self.seed)
        except ValueError as exc:
            raise ValueError(f"--corruption: {exc}") from None
        if self.split_backward and self.deepspeed:
            raise ValueError("split_backward runs two backward passes per step, which DeepSpeed's engine does not "
                             "allow; turn one of them off")

    def check_values(self) -> None:
        """Every numeric option in its range, each error naming the option."""
        finite = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
        rules = [
            ("beta", finite(self.beta) and self.beta > 0, "a finite number > 0"),
            ("label_smoothing", finite(self.label_smoothing) and 0 <= self.label_smoothing < 0.5, "in [0, 0.5)"),
            ("anchor_delta", finite(self.anchor_delta), "a finite number"),
            ("learning_rate", finite(self.learning_rate) and self.learning_rate >= 0, "a finite number >= 0"),
            ("weight_decay", finite(self.weight_decay) and self.weight_decay >= 0, "a finite number >= 0"),
            ("max_grad_norm", finite(self.max_grad_norm) and self.max_grad_norm >= 0, "a finite number >= 0"),
            ("adam_epsilon", finite(self.adam_epsilon) and self.adam_epsilon > 0, "a finite number > 0"),
            ("warmup_steps", finite(self.warmup_steps) and self.warmup_steps >= 0, "a finite number >= 0"),
            ("num_train_epochs", finite(self.num_train_epochs) and (self.num_train_epochs > 0 or self.max_steps > 0),
             "a finite number > 0 (or set --max_steps)"),
            ("max_length", self.max_length >= 2, "at least 2"),
            ("max_prompt_length", self.max_prompt_length is None or 1 <= self.max_prompt_length < self.max_length,
             "at least 1 and below --max_length"),
            ("max_image_pixels", 1 <= self.max_image_pixels <= PILLOW_MAX_PIXELS,
             f"between 1 and {PILLOW_MAX_PIXELS:,} (Pillow refuses larger images as decompression bombs)"),
            ("lora_r", self.lora_r >= 1, "at least 1"),
            ("lora_alpha", self.lora_alpha > 0, "> 0"),
            ("lora_dropout", finite(self.lora_dropout) and 0 <= self.lora_dropout < 1, "in [0, 1)"),
            ("data_format", self.data_format in DATA_FORMATS, f"one of {', '.join(DATA_FORMATS)}"),
            ("sft_reduction", self.sft_reduction in SFT_REDUCTIONS, f"one of {', '.join(SFT_REDUCTIONS)}"),
        ]
        for name, ok, rule in rules:
            if not ok:
                raise ValueError(f"--{name} must be {rule}, got {getattr(self, name)!r}")


def _weights(option: str, spec: str) -> dict[str, float]:
    """``parse_objective`` with every weight finite and >= 0 (a negative weight turns a
    term's optimisation around; NaN poisons the loss); errors name the option."""
    try:
        weights = parse_objective(spec)
    except ValueError as exc:
        raise ValueError(f"--{option}: {exc}") from None
    for name, weight in weights.items():
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"--{option} {spec!r}: the weight of {name!r} must be a finite number >= 0, got {weight}")
    return weights
