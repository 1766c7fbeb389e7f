"""Over-optimisation checks along a preference run: how far the policy has moved from its
reference, and what that did to its captions — for the demo's ``curves.png``.

At each saved checkpoint, on a fixed set of validation scenes (never the evaluation scenes):

* ``kl``: KL(π ‖ π_ref) per token along the policy's own captions: captions y are *sampled*
  from the policy (temperature 1, no top-p, fixed seed), and at every response position t
  the full next-token distributions are compared, KL_t = Σ_v π(v | y_<t) (log π − log π_ref)(v | y_<t),
  averaged over all positions. Summing over the vocabulary (rather than using log π(y_t) −
  log π_ref(y_t) of the sampled token alone) makes it never negative and far less noisy;
  its expectation over y ~ π is the sequence KL divided by the mean length.
* ``words``: mean length of the policy's greedy captions (DPO's length drift);
* ``truth_logp``: mean per-token log-likelihood of the scenes' true captions (falls when the
  policy trades fluent, correct text for reward margin).
"""

from __future__ import annotations

import os
import re
import statistics

import torch

from mmpo.data.collate import PreferenceCollator
from mmpo.data.schema import PreferenceExample
from mmpo.eval.reliance import batched_logps
from mmpo.model.logps import model_inputs
from mmpo.pairs.generate import GenerationConfig, GenerationRequest, generate
from mmpo.shapes.tasks import CAPTION_PROMPT
from mmpo.shapes.world import Scene, caption, render

DRIFT_SCENES = 24  # validation scenes per checkpoint: one generation batch


@torch.no_grad()
def drift_point(policy, reference, processor, scenes: list[Scene], seed: int = 0) -> dict[str, float]:
    """``kl``, ``words`` and ``truth_logp`` of ``policy`` against ``reference`` on ``scenes``."""
    images = [render(s) for s in scenes]
    requests = [GenerationRequest([img], CAPTION_PROMPT) for img in images]
    sampled = [t or "-" for t in generate(policy, processor, requests, GenerationConfig(
        max_new_tokens=48, temperature=1.0, batch_size=len(requests), seed=seed))]
    greedy = generate(policy, processor, requests, GenerationConfig(max_new_tokens=48, temperature=0.0,
                                                                    batch_size=len(requests)))
    collator = PreferenceCollator(processor)
    rows = [PreferenceExample(s.id, [img], CAPTION_PROMPT, t, "-") for s, img, t in zip(scenes, images, sampled)]
    truths = [caption(s.objects) for s in scenes]
    truth_logps, truth_lengths = batched_logps(policy, collator, rows, truths, batch_size=len(rows))
    return {"kl": token_kl(policy, reference, collator.responses(rows, sampled)),
            "words": statistics.fmean(len(c.split()) for c in greedy),
            "truth_logp": statistics.fmean((truth_logps / truth_lengths.clamp(min=1)).tolist())}


def token_kl(policy, reference, batch) -> float:
    """Mean over the response positions of ``batch`` of KL(π(· | prefix) ‖ π_ref(· | prefix))."""
    targets = batch["response_mask"][:, 1:]  # (N, T-1): positions whose next token is a response token
    inputs = model_inputs(batch)
    log_p = torch.log_softmax(policy(**inputs, use_cache=False).logits[:, :-1][targets].float(), dim=-1)  # (M, V)
    log_q = torch.log_softmax(reference(**inputs, use_cache=False).logits[:, :-1][targets].float(), dim=-1)
    return float((log_p.exp() * (log_p - log_q)).sum(dim=-1).mean()) if len(log_p) else 0.0


def checkpoints(run_dir: str) -> list[tuple[int, str]]:
    """``(step, folder)`` of every ``checkpoint-N`` in ``run_dir``, by step."""
    found = [(int(m.group(1)), os.path.join(run_dir, name)) for name in os.listdir(run_dir)
             if (m := re.fullmatch(r"checkpoint-(\d+)", name))]
    return sorted(found)


def drift_curve(base_dir: str, run_dir: str, reference, processor, scenes: list[Scene]) -> list[dict]:
    """One entry per checkpoint of ``run_dir`` (LoRA adapters over ``base_dir``), plus step
    0 (the reference itself: KL 0 by definition), as history entries with a ``step``."""
    from peft import PeftModel

    from mmpo.model.load import load_model

    curve = [{"step": 0, **drift_point(reference, reference, processor, scenes)}]
    for step, folder in checkpoints(run_dir):
        policy = PeftModel.from_pretrained(load_model(base_dir, dtype=torch.float32), folder).eval()
        curve.append({"step": step, **drift_point(policy, reference, processor, scenes)})
    return curve
