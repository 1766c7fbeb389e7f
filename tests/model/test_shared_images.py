"""Encoding each image once per pass gives the same log-probs and gradients as giving every
sequence its own copy of the pixels."""

import pytest
import torch

from mmpo.data import CorruptionConfig, load_preferences
from mmpo.data.collate import PreferenceCollator
from mmpo.model import load_model, load_processor, sequence_logps
from mmpo.model.logps import supports_shared_images


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "idefics3"])
def test_shared_images_match_plain_batching(tiny_models, pref_file, family):
    model = load_model(tiny_models[family], dtype=torch.float32)
    processor = load_processor(tiny_models[family])
    assert supports_shared_images(model)
    rows = list(load_preferences(pref_file))[:3]
    plain = PreferenceCollator(processor, corruption=CorruptionConfig())(rows)
    shared = PreferenceCollator(processor, corruption=CorruptionConfig(), share_images=True)(rows)
    assert shared["pixel_values"].shape[0] == plain["pixel_values"].shape[0] * 2 // 3  # real + corrupted only

    results = []
    for batch in (plain, shared):
        model.zero_grad()
        logps, _ = sequence_logps(model, batch)
        (logps * torch.tensor([1.0, -2.0, 0.5] * 3)).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((logps.detach(), grads))
    (plain_logps, plain_grads), (shared_logps, shared_grads) = results
    assert torch.allclose(plain_logps, shared_logps, atol=1e-5)
    assert plain_grads.keys() == shared_grads.keys()
    vision = [n for n in plain_grads if "vision" in n or "visual" in n]
    assert vision  # the vision tower is in the graph, and gets the same gradient
    for name in plain_grads:
        assert torch.allclose(plain_grads[name], shared_grads[name], atol=1e-5, rtol=1e-4), name
