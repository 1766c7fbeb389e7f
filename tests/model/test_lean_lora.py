"""LoRA dropout fused into lora_A: peft's draws, outputs and gradients, with less saved."""

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model

from mmpo.data import CorruptionConfig, load_preferences
from mmpo.data.collate import PreferenceCollator
from mmpo.model import language_model_lora_targets, load_model, load_processor, sequence_logps
from mmpo.model.lean_lora import DropoutLoraA, use_lean_lora_dropout


def peft_pair(path, dropout=0.3):
    """The same LoRA model twice: peft's own dropout, and the lean one."""
    model = load_model(path, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout,
                                             target_modules=language_model_lora_targets(model)))
    for name, param in model.named_parameters():  # non-zero B, so every adapter shapes the output
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    lean = copy.deepcopy(model)
    return model, lean, use_lean_lora_dropout(lean)


def batch_of(path, pref_file):
    rows = list(load_preferences(pref_file))[:2]
    return PreferenceCollator(load_processor(path), corruption=CorruptionConfig(), share_images=True, max_length=60)(rows)


def scored(model, batch, saved=None):
    """Log-probs and LoRA gradients of one training-mode pass with a fixed seed."""
    model.train()
    model.zero_grad()
    torch.manual_seed(7)
    hooks = torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t if saved is not None else t, lambda t: t)
    with hooks:
        logps, _ = sequence_logps(model, batch, share_prefix=True)
    (logps * torch.linspace(-1, 1, logps.shape[0])).sum().backward()
    return logps.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def saved_bytes(tensors):
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


@pytest.mark.parametrize("family", ["llava", "idefics3"])
def test_same_draws_outputs_and_gradients_as_peft(tiny_models, pref_file, family):
    model, lean, swapped = peft_pair(tiny_models[family])
    assert swapped == sum(isinstance(m, DropoutLoraA) for m in lean.modules()) > 0
    batch = batch_of(tiny_models[family], pref_file)
    plain_saved, lean_saved = [], []
    logps, grads = scored(model, batch, plain_saved)
    lean_logps, lean_grads = scored(lean, batch, lean_saved)
    assert torch.allclose(logps, lean_logps, atol=1e-5), (logps, lean_logps)
    assert grads.keys() == lean_grads.keys() and any("lora_A" in n for n in grads)
    for name in grads:
        assert torch.allclose(grads[name], lean_grads[name], atol=1e-5, rtol=1e-4), name
    # Dropout really ran: another seed gives other log-probs.
    torch.manual_seed(8)
    assert not torch.allclose(sequence_logps(lean, batch, share_prefix=True)[0].detach(), lean_logps)
    # What autograd holds: no dropped-out copies, no float masks.
    assert saved_bytes(lean_saved) < 0.8 * saved_bytes(plain_saved), (saved_bytes(lean_saved), saved_bytes(plain_saved))


def test_eval_mode_and_checkpoint_names_unchanged(tiny_models, pref_file):
    model, lean, _ = peft_pair(tiny_models["llava"])
    assert model.state_dict().keys() == lean.state_dict().keys()
    assert all(a is not b and torch.equal(a, b) for a, b in zip(model.parameters(), lean.parameters()))
    batch = batch_of(tiny_models["llava"], pref_file)
    model.eval(), lean.eval()
    with torch.no_grad():
        assert torch.equal(sequence_logps(model, batch)[0], sequence_logps(lean, batch)[0])


def test_bf16_model_under_autocast_matches_peft(tiny_models):
    """A bf16 base with float32 adapters under bf16 autocast (the GPU recipe): same output
    and gradients, and the saved input is the bf16 one, not a float32 copy per layer."""
    model, lean, _ = peft_pair(tiny_models["llava"], dropout=0.5)
    results = []
    for m in (model, lean):
        m.to(torch.bfloat16)
        for name, p in m.named_parameters():
            if "lora_" in name:
                p.data = p.data.float()
        q = [mod for name, mod in m.named_modules() if name.endswith("self_attn.q_proj") and hasattr(mod, "lora_A")][0]
        q.train()
        x = torch.randn(3, 5, q.in_features, dtype=torch.bfloat16, generator=torch.Generator().manual_seed(0))
        x.requires_grad_(True)
        saved = []
        torch.manual_seed(3)
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.autograd.graph.saved_tensors_hooks(
                lambda t: saved.append(t) or t, lambda t: t):
            out = q(x)
        out.float().square().sum().backward()
        results.append((out.detach(), x.grad, q.lora_A["default"].weight.grad, saved))
    (out, gx, gw, saved), (lean_out, lean_gx, lean_gw, lean_saved) = results
    assert out.dtype == lean_out.dtype
    assert torch.allclose(out.float(), lean_out.float(), atol=1e-2, rtol=1e-2)
    assert torch.allclose(gx.float(), lean_gx.float(), atol=5e-2, rtol=2e-2)
    assert torch.allclose(gw, lean_gw, atol=5e-2, rtol=2e-2)
    assert not any(t.dtype == torch.float32 and t.shape == x.shape for t in lean_saved)
    assert saved_bytes(lean_saved) < saved_bytes(saved)


def test_variants_and_dropout_free_adapters_keep_peft_path(tiny_models):
    model = load_model(tiny_models["llava"], dtype=torch.float32)
    no_dropout = get_peft_model(model, LoraConfig(r=4, lora_dropout=0.0, target_modules=language_model_lora_targets(model)))
    assert use_lean_lora_dropout(no_dropout) == 0
    model = load_model(tiny_models["llava"], dtype=torch.float32)
    dora = get_peft_model(model, LoraConfig(r=4, lora_dropout=0.1, use_dora=True,
                                            target_modules=language_model_lora_targets(model)))
    assert use_lean_lora_dropout(dora) == 0
