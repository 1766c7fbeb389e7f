"""``PolicyScorer``: the model's response log-probs as the ``forward`` of a module.

mmpo scores sequences by calling the backbone and the output head itself (to encode each
image once, run each prompt once and project only response positions), never the model's
own ``forward``. Wrapping that scoring in a module of its own, the one the Trainer hands
to accelerate, puts every pass through the engine's wrapper: DDP arms its gradient hooks
and all-reduces during backward, FSDP gathers the shards of each wrapped block before it
runs and reduce-scatters the gradients, DeepSpeed does its own. Every pass that touches
parameters therefore goes through :meth:`PolicyScorer.forward`, the reference pass and the
image encoding included (under FSDP a sharded parameter is only whole inside a forward).

The Trainer saves and restores the model inside (an adapter for LoRA), not the scorer.
"""

from __future__ import annotations

from contextlib import nullcontext

from torch import Tensor, nn

from mmpo.data.batch import CHOSEN, CORRUPTED, REJECTED, PreferenceBatch
from mmpo.losses import LogProbs
from mmpo.model.logps import ImageFeatures, encode_image_sets, sequence_logps

POLICY, REFERENCE, IMAGE_FEATURES = "policy", "reference", "image_features"


class PolicyScorer(nn.Module):
    """``scorer(batch)`` → summed response log-probs (N,) and response lengths (N,) of
    every sequence of ``batch`` (:func:`mmpo.model.logps.sequence_logps`).

    ``model``: the policy (a PEFT model or a full model), or a frozen reference copy.
    ``share_prefix``: run each distinct prompt once where the family allows it.
    """

    def __init__(self, model: nn.Module, share_prefix: bool = True) -> None:
        super().__init__()
        self.model = model
        self.share_prefix = share_prefix

    def forward(self, batch: PreferenceBatch, image_features: ImageFeatures | None = None,
                what: str = POLICY) -> tuple[Tensor, Tensor] | ImageFeatures:
        """``what``: ``"policy"`` (the model as it is), ``"reference"`` (the model with its
        adapters disabled; call it without gradients) or ``"image_features"`` (each
        distinct image set of a ``share_images`` batch encoded once, see
        :func:`~mmpo.model.logps.encode_image_sets`; returned instead of log-probs).
        ``image_features``: already encoded, so the vision tower is skipped."""
        if what == IMAGE_FEATURES:
            return encode_image_sets(self.model, batch)
        adapters_off = self.model.disable_adapter() if what == REFERENCE else nullcontext()
        with adapters_off:
            return sequence_logps(self.model, batch, share_prefix=self.share_prefix, image_features=image_features)

    def activation_checkpointing_enable(self, **kwargs) -> None:
        """What the Trainer calls for ``--gradient_checkpointing``: the model's own."""
        self.model.activation_checkpointing_enable(**kwargs)

    @property
    def config(self):
        """The model's config (the Trainer sets ``use_cache`` on it)."""
        return self.model.config

    @property
    def _no_split_modules(self) -> list[str]:
        """The model's blocks, which FSDP's transformer-based auto wrap shards one by one:
        those its class declares that the model holds (a family's list names classes of
        every variant, e.g. LLaVA's ``CLIPTextEmbeddings``, which accelerate refuses)."""
        present = {type(m).__name__ for m in self.model.modules()}
        return [name for name in getattr(self.model, "_no_split_modules", None) or [] if name in present]


def log_probs(batch: PreferenceBatch, policy: Tensor, reference: Tensor | None) -> LogProbs:
    """The objective's inputs from per-sequence log-probs (N,) of ``batch``'s layout."""
    mine, ref = batch.split(policy), batch.split(reference)
    return LogProbs(
        policy_chosen=mine[CHOSEN],
        policy_rejected=mine[REJECTED],
        chosen_lengths=batch.response_lengths()[batch.group(CHOSEN)],
        reference_chosen=ref.get(CHOSEN),
        reference_rejected=ref.get(REJECTED),
        policy_corrupted=mine.get(CORRUPTED),
        reference_corrupted=ref.get(CORRUPTED),
    )
