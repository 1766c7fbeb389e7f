"""``PreferenceTrainer``: a ``transformers.Trainer`` whose loss is an mmpo objective.

The Trainer's model is a :class:`~mmpo.train.scorer.PolicyScorer` around the policy, so
the engine accelerate wraps it in (DDP, FSDP, DeepSpeed) sees every scoring pass and does
its own gradient synchronisation and parameter gathering.

One level of subclassing: ``compute_loss`` (policy and reference log-probs →
:func:`mmpo.losses.compute_objective`), ``training_step`` (stops the run on a non-finite
loss or gradient), ``get_train_dataloader`` (the epoch travels with each index, see
:mod:`mmpo.data.epochs`), ``log`` (adds the objective's metrics), ``train`` (checks the
checkpoint and restores MPO's δ on resume), and ``_save`` / ``_load_from_checkpoint``,
which hand the Trainer the policy inside the scorer, so checkpoints hold the adapter (or
model) exactly as without it. Checkpointing, mixed precision and logging backends are the
Trainer's own.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import torch
from torch import nn
from transformers import Trainer, TrainerCallback

from mmpo.data.batch import CHOSEN, CORRUPTED, REJECTED, PreferenceBatch
from mmpo.data.collate import PreferenceCollator
from mmpo.data.epochs import tag_epochs
from mmpo.io import write_json_atomic
from mmpo.losses import ObjectiveParams, RewardRunningMean, compute_objective, needs_reference
from mmpo.model.load import save_processor
from mmpo.model.logps import image_encoder_frozen, supports_shared_images
from mmpo.train.checkpoints import STATE_FILE, latest_checkpoint, resolve_resume
from mmpo.train.config import TrainConfig
from mmpo.train.scorer import IMAGE_FEATURES, REFERENCE, PolicyScorer, log_probs


class TrainingDiverged(RuntimeError):
    """The loss, a gradient or the weights became NaN or infinite. The message names the
    step, the rows of the batch and the last good checkpoint."""


class PreferenceTrainer(Trainer):
    """Trains ``model`` (a PEFT model, or a full model with ``ref_model``) on preference rows.

    Reference log-probs come, in order of preference, from ``reference_cache`` (precomputed
    per row and epoch), from ``ref_model``, or from ``model`` with its adapters disabled.
    :attr:`policy` is ``model``; the Trainer's ``self.model`` is the scorer around it.
    """

    def __init__(
        self,
        model: nn.Module,
        args: TrainConfig,
        train_dataset,
        processor,
        ref_model: nn.Module | None = None,
        reference_cache: dict[tuple[str, int], torch.Tensor] | None = None,
        callbacks: list[TrainerCallback] | None = None,
    ) -> None:
        self.weights = args.objective_weights
        self.collator = PreferenceCollator(
            processor,
            corruption=args.corruption_config if "copo" in self.weights else None,
            no_image=args.no_image,
            max_length=args.max_length,
            max_prompt_length=args.max_prompt_length,
            other_images=_image_pool(train_dataset, args.max_image_pixels) if args.corruption_config.strategy == "other" else {},
            share_images=args.share_images and supports_shared_images(model),
            max_image_pixels=args.max_image_pixels,
        )
        self.processor = processor
        self.ref_model = ref_model
        self.reference_cache = reference_cache
        self.params = ObjectiveParams(
            beta=args.beta,
            label_smoothing=args.label_smoothing,
            anchor_delta=args.anchor_delta,
            sft_reduction=args.sft_reduction,
            bco_running_mean=RewardRunningMean() if "bco_pair" in self.weights else None,
        )
        self._metrics: dict[str, list[float]] = defaultdict(list)
        self.nonfinite_skipped = 0  # optimizer steps skipped for a non-finite gradient (--skip_nonfinite_batches)
        self._window_rows: list[str] = []  # rows of the accumulation window under way
        self._last_window_rows: list[str] = []  # and of the last finished one
        self._last_step_skipped = False
        # One vision-tower pass per step for policy and reference, when neither can change it.
        self.reuse_image_features = (
            args.reuse_image_features
            and self.collator.share_images
            and needs_reference(self.weights)
            and image_encoder_frozen(model, ref_model)
        )
        self.split_backward = args.split_backward and "copo" in self.weights
        if self.split_backward and not self.reuse_image_features:
            raise ValueError(
                "split_backward needs the image features computed once per step and shared by every pass: "
                "keep share_images and reuse_image_features on, with a frozen vision tower and projector "
                "(the default with LoRA on the language model)"
            )
        super().__init__(
            model=PolicyScorer(model, share_prefix=args.share_prefix),
            args=args,
            data_collator=self.collator,
            train_dataset=train_dataset,
            callbacks=[_StateCallback(self), *(callbacks or [])],
        )
        if args.fsdp and not self.is_fsdp_enabled:
            raise ValueError(
                f"--fsdp: accelerate did not turn FSDP on for this run ({self.accelerator.distributed_type}): it does "
                "so only for several processes on accelerators (GPU, NPU, XPU…), never on CPU, and training would "
                "have run unsharded; launch on GPUs (see examples/accelerate/fsdp.yaml) or drop --fsdp")
        # Our loss is already a per-batch mean: let the Trainer scale it for accumulation.
        self.model_accepts_loss_kwargs = False
        if self.ref_model is not None:  # a scorer too, so FSDP / ZeRO-3 gather its shards for each pass
            self.ref_model = self.accelerator.prepare_model(PolicyScorer(ref_model, args.share_prefix),
                                                            evaluation_mode=True)
        fsdp_version = getattr(getattr(self.accelerator.state, "fsdp_plugin", None), "fsdp_version", None)
        if fsdp_version == 1 and hasattr(model, "active_peft_config"):  # FSDP1: LoRA layers wrapped on their own
            from transformers.distributed.fsdp import update_fsdp_plugin_peft

            update_fsdp_plugin_peft(model, self.accelerator)

    @property
    def policy(self) -> nn.Module:
        """The model being trained, without the scorer and engine wrappers."""
        return self.accelerator.unwrap_model(self.model).model

    def get_train_dataloader(self):
        """The Trainer's loader, its sampler yielding ``(index, epoch)`` so every worker,
        persistent ones included, builds the m′ of the epoch it collates for."""
        return tag_epochs(super().get_train_dataloader())

    # -- the loss ----------------------------------------------------------------------
    def compute_loss(self, model, inputs: PreferenceBatch, return_outputs=False, num_items_in_batch=None):
        """``model``: the (wrapped) :class:`PolicyScorer`; ``inputs``: one collated batch."""
        features = None
        if self.reuse_image_features and inputs.image_sets is not None:
            with torch.no_grad():
                features = model(inputs, what=IMAGE_FEATURES)
        # Reference first: its activations are freed before the policy's graph is built.
        reference = self.reference_logps(model, inputs, features) if needs_reference(self.weights) else None
        if self.split_backward and model.training and torch.is_grad_enabled():
            loss, metrics = self.split_backward_loss(model, inputs, features, reference)
        else:
            policy, _ = model(inputs, features)  # (N,), N = 2B or 3B
            loss, metrics = compute_objective(self.weights, log_probs(inputs, policy, reference), self.params)
        for key, value in metrics.items():
            self._metrics[key].append(value)
        return (loss, metrics) if return_outputs else loss

    def split_backward_loss(self, model, inputs, features, reference):
        """The mDPO loss with its real-image and corrupted-image branches back-propagated one
        after the other, so their activations are never alive together.

        The loss couples the branches only through the scalars it reads, logπ(y|m) and
        logπ(y_w|m′), so with those values known its gradient splits exactly:
        ∇L = Σ_s ∂L/∂s · ∇s. Order: real branch forward (kept), corrupted branch forward
        without a graph (for its value), ∂L/∂s for every scalar, backward through the real
        branch (freed), corrupted branch forward again with the same dropout draws and
        returned as ``∂L/∂s · s`` for the Trainer's backward. Gradients match the joint
        pass; the cost is one extra no-grad forward of the corrupted prefix.
        """
        real, real_features = inputs.select((CHOSEN, REJECTED), features)
        corrupted, corrupted_features = inputs.select((CORRUPTED,), features)
        with self.accelerator.no_sync(model):  # the engine reduces both branches' gradients in the last backward
            policy_real = model(real, real_features)[0]  # (2B,)
            rng = _rng_state()
            with torch.no_grad():
                corrupted_value = model(corrupted, corrupted_features)[0]
            scalars = (policy_real.detach().requires_grad_(), corrupted_value.requires_grad_())
            loss, metrics = compute_objective(self.weights, log_probs(inputs, torch.cat(scalars), reference), self.params)
            grad_real, grad_corrupted = torch.autograd.grad(loss, scalars)
            self.accelerator.backward((policy_real * grad_real).sum() / self.current_gradient_accumulation_steps)
        _set_rng_state(rng)
        policy_corrupted = model(corrupted, corrupted_features)[0]  # (B,)
        surrogate = (policy_corrupted * grad_corrupted).sum()
        return loss.detach() + surrogate - surrogate.detach(), metrics

    @torch.no_grad()
    def reference_logps(self, model, inputs: PreferenceBatch, image_features=None) -> torch.Tensor:
        """Reference log-probs of exactly the sequences the policy just scored
        (``image_features``: the policy's, when :attr:`reuse_image_features`)."""
        if self.reference_cache is not None:  # looked up with the epoch whose m′ the policy scores
            epochs = inputs.row_epochs if "copo" in self.weights else [0] * inputs.rows
            rows = [self.reference_cache[key] for key in zip(inputs.row_ids, epochs)]
            table = torch.stack(rows).to(inputs.input_ids.device)  # (B, groups)
            return table.T.reshape(-1)  # group-major, like the batch
        return self.live_reference_logps(model, inputs, image_features)

    @torch.no_grad()
    def live_reference_logps(self, model, inputs: PreferenceBatch, image_features=None) -> torch.Tensor:
        """Reference log-probs computed now: the frozen copy, or the scorer ``model`` with
        the policy's adapters disabled."""
        if self.ref_model is not None:
            return self.ref_model(inputs, image_features)[0]
        return model(inputs, image_features, what=REFERENCE)[0]

    def training_step(self, model, inputs: PreferenceBatch, num_items_in_batch=None):
        """The Trainer's step (the engine synchronises gradients in its backward), then, at
        the end of an accumulation window, the gradients checked.

        A non-finite loss or gradient raises :class:`TrainingDiverged`; with
        ``--skip_nonfinite_batches`` the window's gradients are dropped instead (the
        optimizer leaves parameters without a gradient alone) and counted."""
        self._window_rows.extend(inputs.row_ids)
        loss = super().training_step(model, inputs, num_items_in_batch)
        can_skip = self.args.skip_nonfinite_batches and not self.is_deepspeed_enabled
        if not torch.isfinite(loss) and not can_skip:
            raise self.diverged(f"at step {self.state.global_step + 1}: the loss is {loss.item()}", inputs.row_ids)
        if self.accelerator.sync_gradients:
            self._last_step_skipped = False
            if not self.args.fp16 and not gradients_finite(model):  # fp16: the grad scaler skips overflows itself
                if not can_skip:
                    raise self.diverged(f"at step {self.state.global_step + 1}: the gradient is not finite",
                                        self._window_rows)
                model.zero_grad(set_to_none=True)
                self.nonfinite_skipped += 1
                self._last_step_skipped = True
            self._last_window_rows, self._window_rows = self._window_rows, []
        return loss

    def diverged(self, what: str, row_ids: list[str], skippable: bool = True) -> TrainingDiverged:
        """The error that stops a diverged run: where, which rows, and what to do next."""
        sources = {row.id: row.source for row in self.train_dataset} if hasattr(self.train_dataset, "examples") else {}
        shown = ", ".join(f"{r} ({sources[r]})" if r in sources else str(r) for r in row_ids[:8])
        more = f" and {len(row_ids) - 8} more" if len(row_ids) > 8 else ""
        checkpoint, _ = latest_checkpoint(self.args.output_dir)
        if checkpoint:
            resume = (f"the last good checkpoint is {checkpoint}: resume from it with --resume_from_checkpoint "
                      f"{checkpoint} and a lower --learning_rate")
        else:
            resume = "no checkpoint was saved before it"
        return TrainingDiverged(
            f"training diverged {what} (epoch {self.state.epoch or 0:.2f}), in the batch of rows {shown}{more}; "
            f"{resume}. No adapter was written."
            + (" (--skip_nonfinite_batches skips such batches instead, counting them.)" if skippable else "")
        )

    def check_parameters(self) -> None:
        """Raise :class:`TrainingDiverged` rather than save non-finite weights."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        if params and not torch.stack([torch.isfinite(p).all() for p in params]).all():
            raise self.diverged(f"after step {self.state.global_step}: the trained weights are not finite",
                                self._last_window_rows, skippable=False)

    # -- logging and state -------------------------------------------------------------
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._metrics:
            for key, values in self._metrics.items():
                logs[key] = sum(values) / len(values)
            self._metrics.clear()
        if "loss" in logs and self.args.skip_nonfinite_batches:
            logs["nonfinite_skipped"] = self.nonfinite_skipped
            if self._last_step_skipped and "grad_norm" in logs:
                logs["grad_norm"] = float("nan")  # the Trainer measured the dropped gradient as 0
        super().log(logs, start_time)

    def mmpo_state(self) -> dict:
        tracker = self.params.bco_running_mean
        return {"bco_running_mean": tracker.state_dict() if tracker else None}

    def load_mmpo_state(self, checkpoint: str) -> None:
        path = os.path.join(checkpoint, STATE_FILE)
        if not os.path.isfile(path):
            return
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        if state.get("bco_running_mean") and self.params.bco_running_mean is not None:
            self.params.bco_running_mean.load_state_dict(state["bco_running_mean"])

    def train(self, resume_from_checkpoint=None, **kwargs):
        """``resume_from_checkpoint``: a checkpoint folder, checked before anything is
        loaded from it, or True / "latest" for the newest complete one (see
        :mod:`mmpo.train.checkpoints`)."""
        need_training_state = not (self.is_deepspeed_enabled or self.args.save_only_model)
        resume_from_checkpoint = resolve_resume(resume_from_checkpoint, self.args.output_dir, need_training_state)
        if resume_from_checkpoint:
            self.load_mmpo_state(resume_from_checkpoint)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """The Trainer's save of the policy (``save_pretrained``: an adapter for LoRA),
        from the scorer's state dict when the engine gathered one (FSDP, DeepSpeed)."""
        if state_dict is not None:
            prefix = "model."
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        scorer, self.model = self.model, self.policy
        try:
            super()._save(output_dir, state_dict=state_dict)
        finally:
            self.model = scorer

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        """Weights saved by :meth:`_save` go back into the policy; an engine's own sharded
        checkpoint (FSDP) into the wrapped scorer it was saved from."""
        super()._load_from_checkpoint(resume_from_checkpoint, self.policy if model is None else model)


def _rng_state() -> tuple:
    """CPU and CUDA generator states (LoRA dropout draws from them)."""
    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None


def _set_rng_state(state: tuple) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


def gradients_finite(model: nn.Module) -> bool:
    """Whether every gradient held is finite (one device sync); True when none is held."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return not grads or bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


def _image_pool(dataset, max_pixels: int) -> dict:
    """Row id → loader of its first image, for the 'other image' corruption."""
    from mmpo.data.images import load_image

    return {row.id: (lambda row=row: load_image(row.images[0], row.source, "image", max_pixels)) for row in dataset}


class _StateCallback(TrainerCallback):
    """Makes every checkpoint complete-or-ignored: before the Trainer writes one, the
    weights are checked finite and a stale ``mmpo_state.json`` in its folder is removed;
    after, the processor and then ``mmpo_state.json`` (MPO's δ; the completion mark) go in."""

    def __init__(self, trainer: PreferenceTrainer) -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        self._before_save(args, state, control)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._before_save(args, state, control)

    def _before_save(self, args, state, control) -> None:
        if not control.should_save:
            return
        self.trainer.check_parameters()
        marker = os.path.join(args.output_dir, f"checkpoint-{state.global_step}", STATE_FILE)
        if state.is_world_process_zero and os.path.isfile(marker):
            os.remove(marker)

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        checkpoint = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if os.path.isdir(checkpoint):
            save_processor(self.trainer.processor, checkpoint)
            write_json_atomic(os.path.join(checkpoint, STATE_FILE), self.trainer.mmpo_state())
