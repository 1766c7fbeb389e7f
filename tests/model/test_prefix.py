"""Prefix sharing (each distinct prompt run once) gives the same log-probs and gradients as
running every sequence in full."""

import pytest
import torch

from mmpo.data import CorruptionConfig, load_preferences
from mmpo.data.collate import PreferenceCollator
from mmpo.model import load_model, load_processor, sequence_logps


@pytest.mark.parametrize("family", ["llava", "idefics3"])
@pytest.mark.parametrize("mode", ["cache", "cache-eager", "cache-gathered", "packed", "packed-eager", "checkpointing"])
def test_prefix_sharing_matches_full_sequences(tiny_models, pref_file, family, mode, monkeypatch):
    import mmpo.model.logps as logps_module

    calls = []
    name = "cached_prefix_hidden" if mode.startswith("cache") else "packed_prefix_hidden"
    real = getattr(logps_module, name)
    monkeypatch.setattr(logps_module, name, lambda *a: calls.append(1) or real(*a))
    model = load_model(tiny_models[family], dtype=torch.float32)
    if mode in ("packed", "packed-eager"):
        monkeypatch.setattr(logps_module, "prefix_sharing_mode", lambda *a: "packed")
    if mode.endswith("eager"):
        model.set_attn_implementation("eager")
    if mode == "cache-gathered":  # as for a kernel without 4-D masks (FlashAttention): a cache copy per response
        import mmpo.model.prefix as prefix_module

        monkeypatch.setattr(prefix_module, "MASKABLE_ATTENTION", ())
    if mode == "checkpointing":  # chosen automatically: the cache cannot run under checkpointing
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
    processor = load_processor(tiny_models[family])
    rows = list(load_preferences(pref_file))[:3]
    rows[1].prompt = "Describe the image in a few words, please."  # prompts of different lengths
    batch = PreferenceCollator(processor, corruption=CorruptionConfig(), share_images=True, max_length=60)(rows)
    results = []
    for share_prefix in (False, True):
        model.zero_grad()
        logps, _ = sequence_logps(model, batch, share_prefix=share_prefix)
        (logps * torch.tensor([1.0, -2.0, 0.5] * 3)).sum().backward()
        results.append((logps.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (full, full_grads), (shared, shared_grads) = results
    assert calls == [1]  # the shared path really ran, once
    assert torch.allclose(full, shared, atol=1e-4), (full, shared)
    assert full_grads.keys() == shared_grads.keys()
    for name in full_grads:
        assert torch.allclose(full_grads[name], shared_grads[name], atol=1e-4, rtol=1e-3), name



def test_length_dependent_rotary_scaling_takes_the_plain_path(tiny_models, pref_file):
    from mmpo.model.prefix import prefix_sharing_mode

    model = load_model(tiny_models["llava"], dtype=torch.float32)
    batch = PreferenceCollator(load_processor(tiny_models["llava"]), share_images=True)(list(load_preferences(pref_file))[:2])
    assert prefix_sharing_mode(model.model, batch) == "cache"
    model.model.language_model.config.rope_parameters = {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}
    assert prefix_sharing_mode(model.model, batch) is None
