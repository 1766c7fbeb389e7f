"""Every preference loss mmpo knows, as pure functions of per-sequence log-ratios.

A *log-ratio* is ``log π_θ(y|x) − log π_ref(y|x)`` with both log-probs summed over the
response tokens. Pairwise losses share one signature so they can be checked against the
papers and swapped by name::

    name(chosen, rejected, *, beta, **params) -> Tensor[B]

Each returns per-example losses; the caller reduces. An *objective* is a weighted sum of
named terms (``dpo``, ``mdpo``, ``mpo`` or a custom ``"sigmoid:0.8,bco_pair:0.2,sft:1"``),
computed by :func:`compute_objective` from a :class:`LogProbs` record. No model, no trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor


# --------------------------------------------------------------------------- pairwise losses
def sigmoid(chosen: Tensor, rejected: Tensor, *, beta: float, label_smoothing: float = 0.0) -> Tensor:
    """DPO (Rafailov et al. 2023, arXiv 2305.18290), optionally conservative (cDPO).

    The Bradley-Terry likelihood of the preference with the implicit reward β·log-ratio::

        h = β·(chosen − rejected)
        L = −(1 − ε)·log σ(h) − ε·log σ(−h)

    ε = ``label_smoothing`` is the assumed probability that the label is flipped
    (Mitchell 2023, "A note on DPO with noisy preferences"); ε = 0 is plain DPO.
    Shapes: chosen, rejected (B,) → (B,).
    """
    h = beta * (chosen - rejected)
    return -(1.0 - label_smoothing) * F.logsigmoid(h) - label_smoothing * F.logsigmoid(-h)


def hinge(chosen: Tensor, rejected: Tensor, *, beta: float) -> Tensor:
    """SLiC hinge loss (Zhao et al. 2023, arXiv 2305.10425) on DPO log-ratios::

        L = max(0, 1 − β·(chosen − rejected))

    Shapes: (B,) → (B,).
    """
    return torch.relu(1.0 - beta * (chosen - rejected))


def ipo(chosen: Tensor, rejected: Tensor, *, beta: float) -> Tensor:
    """IPO (Azar et al. 2023, arXiv 2310.12036, eq. 17), with β playing the role of τ::

        L = (chosen − rejected − 1/(2β))²

    The paper's log-ratios are sums over tokens, as here (TRL averages them instead).
    Shapes: (B,) → (B,).
    """
    return (chosen - rejected - 1.0 / (2.0 * beta)) ** 2


def robust(chosen: Tensor, rejected: Tensor, *, beta: float, label_smoothing: float = 0.0) -> Tensor:
    """Robust DPO (Chowdhury et al. 2024, arXiv 2403.00409, eq. 8): an unbiased loss
    under labels flipped with probability ε = ``label_smoothing`` (ε < 1/2)::

        h = β·(chosen − rejected)
        L = [(1 − ε)·(−log σ(h)) − ε·(−log σ(−h))] / (1 − 2ε)

    Shapes: (B,) → (B,).
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"robust DPO needs 0 <= label_smoothing < 0.5, got {label_smoothing}")
    h = beta * (chosen - rejected)
    return ((1.0 - label_smoothing) * -F.logsigmoid(h) + label_smoothing * F.logsigmoid(-h)) / (
        1.0 - 2.0 * label_smoothing
    )


def bco_pair(chosen: Tensor, rejected: Tensor, *, beta: float, delta: float | Tensor) -> Tensor:
    """Binary classifier optimization on a pair (Jung et al. 2024, arXiv 2404.04656), the
    "quality" term L_q of MPO (Wang et al. 2024, arXiv 2411.10442, eq. 4)::

        L = −log σ(β·chosen − δ) − log σ(−(β·rejected − δ))

    Each response is classified on its own: chosen rewards pushed above δ, rejected below.
    MPO takes δ as the running mean of past rewards (:class:`RewardRunningMean`).
    Shapes: (B,) → (B,).
    """
    return -F.logsigmoid(beta * chosen - delta) - F.logsigmoid(-(beta * rejected - delta))


def copo(chosen: Tensor, rejected: Tensor, *, beta: float) -> Tensor:
    """mDPO's conditional preference term CoPO (Wang et al. 2024, arXiv 2406.11839, eq. 3).

    Both arguments are log-ratios of the *same chosen response* y_w: ``chosen`` under the
    real image m, ``rejected`` under a corrupted image m′. The response is fixed, so the
    only way to lower the loss is to make y_w depend on the image::

        L = −log σ(β·[logratio(y_w | m, x) − logratio(y_w | m′, x)])

    Shapes: (B,) → (B,).
    """
    return -F.logsigmoid(beta * (chosen - rejected))


def anchor(chosen: Tensor, *, beta: float, delta: float = 0.0) -> Tensor:
    """mDPO's anchored preference term AncPO (arXiv 2406.11839, eq. 4)::

        L = −log σ(β·logratio(y_w | m, x) − δ)

    Keeps the chosen reward above the anchor δ (0 in the paper), so that DPO cannot win by
    lowering the likelihood of both responses. Shapes: (B,) → (B,).
    """
    return -F.logsigmoid(beta * chosen - delta)


SFT_REDUCTIONS = ("sequence", "token")


def sft(chosen_logps: Tensor, chosen_lengths: Tensor, reduction: str = "sequence") -> Tensor:
    """Negative log-likelihood of the chosen response, MPO's generation term L_g
    (arXiv 2411.10442, eq. 5), normalised by length in one of two ways.

    ``"sequence"`` (the paper's eq. 5): each sequence's mean token NLL, so the batch mean
    weighs every sequence alike::

        L_i = −log π_θ(y_i | x_i) / |y_i|

    ``"token"`` (InternVL's MPO trainer, ``MultimodalDPOTrainer.concatenated_forward`` in
    ``internvl_chat/internvl/train/trainer_dpo.py``: ``nn.CrossEntropyLoss`` over every
    chosen token of the micro-batch): one token mean pooled over the batch, so long
    responses weigh more. Returned per example so that the caller's mean is that pool::

        L_i = −log π_θ(y_i | x_i) · B / Σ_j |y_j|,   mean_i L_i = −Σ_j log π_θ(y_j | x_j) / Σ_j |y_j|

    ``chosen_logps`` are policy log-probs (not ratios) summed over response tokens,
    ``chosen_lengths`` the number of response tokens. Shapes: (B,), (B,) → (B,).
    """
    lengths = chosen_lengths.clamp(min=1).to(chosen_logps.dtype)
    if reduction == "sequence":
        return -chosen_logps / lengths
    if reduction == "token":
        return -chosen_logps * chosen_logps.shape[0] / lengths.sum()
    raise ValueError(f"sft reduction must be one of {SFT_REDUCTIONS}, got {reduction!r}")


PAIRWISE_LOSSES = {
    "sigmoid": sigmoid,
    "hinge": hinge,
    "ipo": ipo,
    "robust": robust,
    "bco_pair": bco_pair,
    "copo": copo,
}


# --------------------------------------------------------------------------- MPO's δ
class RewardRunningMean:
    """δ for ``bco_pair`` the way MPO computes it: the cumulative mean of every batch-mean
    reward seen so far, chosen and rejected rewards pooled into one batch mean.

    ``update`` averages the batch mean across processes when ``torch.distributed`` is
    initialised (every rank then holds the same δ), folds it into the running mean and
    returns the new δ, which includes the current batch (as TRL's ``bco_pair`` and the
    InternVL MPO trainer do). ``state_dict``/``load_state_dict`` carry it across a resume.
    """

    def __init__(self) -> None:
        self.mean = 0.0
        self.count = 0

    def update(self, chosen_rewards: Tensor, rejected_rewards: Tensor) -> float:
        batch_mean = torch.cat([chosen_rewards.detach().flatten(), rejected_rewards.detach().flatten()])
        batch_mean = batch_mean.float().mean()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(batch_mean, op=torch.distributed.ReduceOp.SUM)
            batch_mean = batch_mean / torch.distributed.get_world_size()
        self.count += 1
        self.mean += (batch_mean.item() - self.mean) / self.count
        return self.mean

    def state_dict(self) -> dict:
        return {"mean": self.mean, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean = float(state["mean"])
        self.count = int(state["count"])


# --------------------------------------------------------------------------- objectives
OBJECTIVE_PRESETS: dict[str, dict[str, float]] = {
    "dpo": {"sigmoid": 1.0},
    "mdpo": {"sigmoid": 1.0, "copo": 1.0, "anchor": 1.0},
    "mpo": {"sigmoid": 0.8, "bco_pair": 0.2, "sft": 1.0},
}

TERMS = (*PAIRWISE_LOSSES, "anchor", "sft")


def parse_objective(spec: str | dict[str, float]) -> dict[str, float]:
    """``"mdpo"`` → its preset weights; ``"sigmoid:0.8,bco_pair:0.2,sft:1"`` → that mix.

    A term written without a weight gets weight 1. Unknown names raise a ``ValueError``
    that lists the known ones.
    """
    if isinstance(spec, dict):
        weights = {str(k): float(v) for k, v in spec.items()}
    elif spec.strip() in OBJECTIVE_PRESETS:
        weights = dict(OBJECTIVE_PRESETS[spec.strip()])
    else:
        weights = {}
        for part in spec.split(","):
            name, _, weight = part.strip().partition(":")
            name = name.strip()
            try:
                weights[name] = float(weight) if weight.strip() else 1.0
            except ValueError:
                raise ValueError(f"objective {spec!r}: weight of {name!r} is not a number: {weight!r}") from None
    unknown = [name for name in weights if name not in TERMS]
    if unknown or not weights:
        raise ValueError(
            f"objective {spec!r}: unknown term(s) {unknown or '(none given)'}; presets are "
            f"{sorted(OBJECTIVE_PRESETS)} and terms are {list(TERMS)}"
        )
    return weights


def needs_corrupted_image(weights: dict[str, float]) -> bool:
    """Whether the objective needs y_w scored under a corrupted image (CoPO)."""
    return "copo" in weights


def needs_reference(weights: dict[str, float]) -> bool:
    """Whether any term uses log-ratios (everything but SFT does)."""
    return any(name != "sft" for name in weights)


@dataclass
class LogProbs:
    """Summed response log-probs of one batch, for the policy and (optionally) the reference.

    All tensors are (B,). ``*_corrupted`` score the chosen response under the corrupted
    image and are only needed for CoPO. ``chosen_lengths`` counts chosen response tokens.
    """

    policy_chosen: Tensor
    policy_rejected: Tensor
    chosen_lengths: Tensor
    reference_chosen: Tensor | None = None
    reference_rejected: Tensor | None = None
    policy_corrupted: Tensor | None = None
    reference_corrupted: Tensor | None = None

    def ratios(self) -> tuple[Tensor, Tensor, Tensor | None]:
        if self.reference_chosen is None or self.reference_rejected is None:
            raise ValueError("this objective needs reference log-probs")
        chosen = self.policy_chosen - self.reference_chosen
        rejected = self.policy_rejected - self.reference_rejected
        corrupted = None
        if self.policy_corrupted is not None and self.reference_corrupted is not None:
            corrupted = self.policy_corrupted - self.reference_corrupted
        return chosen, rejected, corrupted


@dataclass
class ObjectiveParams:
    """Hyper-parameters of the terms: β, label smoothing, mDPO's anchor δ, the MPO
    δ tracker (None means δ = ``bco_delta``, a constant) and how the SFT term is
    normalised (:func:`sft`'s ``reduction``)."""

    beta: float = 0.1
    label_smoothing: float = 0.0
    anchor_delta: float = 0.0
    bco_delta: float = 0.0
    bco_running_mean: RewardRunningMean | None = field(default=None)
    sft_reduction: str = "sequence"


def compute_objective(
    weights: dict[str, float], logps: LogProbs, params: ObjectiveParams
) -> tuple[Tensor, dict[str, float]]:
    """Weighted sum of the named terms, averaged over the batch, plus metrics to log.

    Returns ``(loss, metrics)``: ``loss`` is a scalar with gradients; ``metrics`` holds
    each term's mean (``loss/<term>``), the rewards β·log-ratio of chosen and rejected,
    their margin and accuracy, and for CoPO the image-conditional margin/accuracy
    (chosen under the real vs the corrupted image); for BCO the δ in use.
    """
    beta = params.beta
    metrics: dict[str, float] = {}
    terms: dict[str, Tensor] = {}
    chosen = rejected = corrupted = None
    if needs_reference(weights):
        chosen, rejected, corrupted = logps.ratios()
        chosen_rewards, rejected_rewards = beta * chosen.detach(), beta * rejected.detach()
        metrics["rewards/chosen"] = chosen_rewards.mean().item()
        metrics["rewards/rejected"] = rejected_rewards.mean().item()
        metrics["rewards/margins"] = (chosen_rewards - rejected_rewards).mean().item()
        metrics["rewards/accuracies"] = (chosen_rewards > rejected_rewards).float().mean().item()

    for name in weights:
        if name in ("sigmoid", "robust"):
            terms[name] = PAIRWISE_LOSSES[name](chosen, rejected, beta=beta, label_smoothing=params.label_smoothing)
        elif name in ("hinge", "ipo"):
            terms[name] = PAIRWISE_LOSSES[name](chosen, rejected, beta=beta)
        elif name == "bco_pair":
            delta = params.bco_delta
            if params.bco_running_mean is not None:
                delta = params.bco_running_mean.update(beta * chosen, beta * rejected)
            metrics["bco/delta"] = float(delta)
            terms[name] = bco_pair(chosen, rejected, beta=beta, delta=delta)
        elif name == "copo":
            if corrupted is None:
                raise ValueError("the copo term needs log-probs of the chosen response under a corrupted image")
            terms[name] = copo(chosen, corrupted, beta=beta)
            image_margin = beta * (chosen.detach() - corrupted.detach())
            metrics["image/margins"] = image_margin.mean().item()
            metrics["image/accuracies"] = (image_margin > 0).float().mean().item()
        elif name == "anchor":
            terms[name] = anchor(chosen, beta=beta, delta=params.anchor_delta)
        elif name == "sft":
            terms[name] = sft(logps.policy_chosen, logps.chosen_lengths, params.sft_reduction)

    loss = sum(weights[name] * value.mean() for name, value in terms.items())
    for name, value in terms.items():
        metrics[f"loss/{name}"] = value.detach().mean().item()
    return loss, metrics
