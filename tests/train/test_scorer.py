"""PolicyScorer: the policy pass is the adapted model's log-probs, the reference pass the
base model's (adapters disabled inside forward), image features come out of forward too,
and log_probs cuts a batch's log-probs into the objective's fields."""

import copy

import torch

from mmpo.data import CorruptionConfig, load_preferences
from mmpo.data.collate import PreferenceCollator
from mmpo.model import language_model_lora_targets, sequence_logps
from mmpo.train.scorer import IMAGE_FEATURES, REFERENCE, PolicyScorer, log_probs


def test_policy_reference_and_image_passes(llava, pref_file):
    from peft import LoraConfig, get_peft_model

    base, processor = llava
    peft = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, lora_alpha=8, target_modules=language_model_lora_targets(base)))
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05, generator=torch.Generator().manual_seed(0))
    peft.eval()
    rows = list(load_preferences(pref_file))[:2]
    batch = PreferenceCollator(processor, corruption=CorruptionConfig(), share_images=True)(rows)
    scorer = PolicyScorer(peft, share_prefix=True)
    with torch.no_grad():
        features = scorer(batch, what=IMAGE_FEATURES)
        assert len(features) == 4  # the real images of 2 rows, then their m′
        policy, lengths = scorer(batch, features)
        reference = scorer(batch, features, what=REFERENCE)[0]
        torch.testing.assert_close(reference, sequence_logps(base, batch)[0])
        torch.testing.assert_close(policy, sequence_logps(peft, batch)[0])
    assert (policy - reference).abs().min() > 1e-4  # the adapter changes every sequence's log-prob
    logps = log_probs(batch, policy, reference)
    assert torch.equal(logps.policy_rejected, policy[2:4]) and torch.equal(logps.reference_corrupted, reference[4:])
    assert torch.equal(logps.chosen_lengths, lengths[:2])
    assert log_probs(batch, policy, None).reference_chosen is None
