"""`--sft_reduction`: the trainer hands the option to the objective, and the logged SFT
term is the pooled token mean of the very log-probs it scored."""

import importlib

import pytest

from mmpo.train import TrainConfig, train

trainer_module = importlib.import_module("mmpo.train.trainer")


def run(tiny_models, pref_file, out, **over):
    return train(TrainConfig(output_dir=str(out), model=tiny_models["llava"], data=pref_file, objective="sft",
                             max_steps=1, per_device_train_batch_size=4, gradient_accumulation_steps=1,
                             learning_rate=1e-3, lora_r=4, lora_alpha=8, logging_steps=1, report_to="none",
                             save_strategy="no", disable_tqdm=True, seed=0, **over))


def test_token_reduction_reaches_the_loss(tiny_models, pref_file, tmp_path, monkeypatch):
    seen = []
    real = trainer_module.compute_objective

    def spy(weights, logps, params):
        seen.append((logps.policy_chosen.detach().clone(), logps.chosen_lengths.clone(), params.sft_reduction))
        return real(weights, logps, params)

    monkeypatch.setattr(trainer_module, "compute_objective", spy)
    logged = run(tiny_models, pref_file, tmp_path / "token", sft_reduction="token").history[0]["loss/sft"]
    logps, lengths, reduction = seen[0]
    assert reduction == "token" and len(set(lengths.tolist())) > 1  # captions of different lengths
    assert logged == pytest.approx((-logps.sum() / lengths.sum()).item(), rel=1e-5)
    assert logged != pytest.approx((-logps / lengths).mean().item(), rel=1e-5)  # not the per-sequence mean


def test_a_bad_reduction_names_the_option():
    with pytest.raises(ValueError, match=r"--sft_reduction must be one of sequence, token, got 'mean'"):
        TrainConfig(output_dir="unused", sft_reduction="mean")
