"""Response log-probs from the logits-only-where-needed path equal a plain full forward."""

import pytest
import torch

from mmpo.data import CorruptionConfig, load_preferences
from mmpo.data.collate import PreferenceCollator
from mmpo.model import load_model, load_processor, sequence_logps
from mmpo.model.logps import model_inputs


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "idefics3"])
def test_sequence_logps_match_full_forward(tiny_models, pref_file, family):
    model = load_model(tiny_models[family], dtype=torch.float32).eval()
    processor = load_processor(tiny_models[family])
    rows = list(load_preferences(pref_file))[:3]
    batch = PreferenceCollator(processor, corruption=CorruptionConfig())(rows)
    assert batch["input_ids"].shape[0] == 9  # chosen, rejected, chosen under m′
    fast, lengths = sequence_logps(model, batch)
    with torch.no_grad():
        logits = model(**model_inputs(batch)).logits.float()  # (N, T, V)
    token_logps = torch.log_softmax(logits[:, :-1], -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    expected = (token_logps * batch["response_mask"][:, 1:]).sum(1)
    assert torch.allclose(fast, expected, atol=1e-4)
    assert torch.equal(lengths, batch["response_mask"].sum(1))
    # the corrupted image changes the chosen caption's likelihood (same text, other pixels)
    assert not torch.allclose(fast[:3], fast[6:])
