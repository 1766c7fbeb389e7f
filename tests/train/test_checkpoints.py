"""Resume is safe: a damaged or incomplete checkpoint is named, "latest" takes the newest
complete one, and a save interrupted by a kill is never picked up half-written."""

import json
import os

import pytest
import torch
from safetensors.torch import save_file

from mmpo.train.checkpoints import CheckpointError, checkpoint_problem, latest_checkpoint, resolve_resume


def fake_checkpoint(path, complete=True):
    os.makedirs(path)
    save_file({"w": torch.zeros(4)}, os.path.join(path, "adapter_model.safetensors"))
    torch.save({"state": {}}, os.path.join(path, "optimizer.pt"))
    torch.save({}, os.path.join(path, "scheduler.pt"))
    with open(os.path.join(path, "trainer_state.json"), "w") as f:
        json.dump({"global_step": 1}, f)
    if complete:
        with open(os.path.join(path, "mmpo_state.json"), "w") as f:
            json.dump({"bco_running_mean": None}, f)
    return path


def truncate(path, keep=0.5):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: int(len(data) * keep)])


def test_checkpoint_problems_name_the_file(tmp_path):
    good = fake_checkpoint(str(tmp_path / "checkpoint-1"))
    assert checkpoint_problem(good) is None
    for name, damage in [("adapter_model.safetensors", truncate), ("optimizer.pt", truncate),
                         ("trainer_state.json", lambda p: open(p, "w").write("{"))]:
        ckpt = fake_checkpoint(str(tmp_path / f"c-{name}"))
        damage(os.path.join(ckpt, name))
        assert checkpoint_problem(ckpt).startswith(f"{os.path.join(ckpt, name)} is damaged")
    missing = fake_checkpoint(str(tmp_path / "no-scheduler"))
    os.remove(os.path.join(missing, "scheduler.pt"))
    assert checkpoint_problem(missing) == f"{os.path.join(missing, 'scheduler.pt')} is missing"
    assert checkpoint_problem(missing, need_training_state=False) is None
    fsdp = fake_checkpoint(str(tmp_path / "fsdp"))  # FSDP writes its optimizer state as optimizer.bin
    os.rename(os.path.join(fsdp, "optimizer.pt"), os.path.join(fsdp, "optimizer.bin"))
    assert checkpoint_problem(fsdp) is None
    os.remove(os.path.join(fsdp, "optimizer.bin"))
    assert checkpoint_problem(fsdp) == f"{os.path.join(fsdp, 'optimizer.pt')} is missing"
    assert "is incomplete" in checkpoint_problem(fake_checkpoint(str(tmp_path / "half"), complete=False))


def test_latest_takes_the_newest_complete_checkpoint(tmp_path, capsys):
    for step in (2, 10):
        fake_checkpoint(str(tmp_path / f"checkpoint-{step}"))
    fake_checkpoint(str(tmp_path / "checkpoint-12"), complete=False)  # killed while saving
    truncate(os.path.join(fake_checkpoint(str(tmp_path / "checkpoint-11")), "adapter_model.safetensors"))
    path, passed_over = latest_checkpoint(str(tmp_path))
    assert path == str(tmp_path / "checkpoint-10")  # 10 > 2 by number, not by name
    assert len(passed_over) == 2 and "checkpoint-12 is incomplete" in passed_over[0]
    assert resolve_resume("latest", str(tmp_path)) == path
    assert "resuming from" in capsys.readouterr().out
    with pytest.raises(CheckpointError, match="checkpoint-11/adapter_model.safetensors is damaged"):
        resolve_resume(str(tmp_path / "checkpoint-11"), str(tmp_path))
    with pytest.raises(CheckpointError, match="no complete checkpoint in"):
        resolve_resume(True, str(tmp_path / "empty"))
    assert resolve_resume(None, str(tmp_path)) is None


def test_a_save_killed_halfway_is_never_resumed_from(tiny_models, pref_file, tmp_path, monkeypatch):
    """A rerun into a folder holding an earlier run's checkpoints: the save of checkpoint-2
    dies after the weights were written. Its stale completion mark was removed before the
    save began, so "latest" falls back to checkpoint-1, which this run completed."""
    from mmpo.train import PreferenceTrainer, TrainConfig, train

    def run(**over):
        return train(TrainConfig(output_dir=str(tmp_path / "run"), model=tiny_models["llava"], data=pref_file,
                                 max_steps=2, per_device_train_batch_size=2, gradient_accumulation_steps=1,
                                 learning_rate=1e-3, lora_r=4, lora_alpha=8, report_to="none", save_steps=1,
                                 disable_tqdm=True, **over))

    run()
    assert latest_checkpoint(str(tmp_path / "run"))[0] == str(tmp_path / "run" / "checkpoint-2")

    class Killed(Exception):
        pass

    real = PreferenceTrainer.save_model

    def save_then_die(self, output_dir=None, _internal_call=False):
        real(self, output_dir, _internal_call)
        if str(output_dir).endswith("checkpoint-2"):
            raise Killed()

    monkeypatch.setattr(PreferenceTrainer, "save_model", save_then_die)
    with pytest.raises(Killed):
        run(seed=1)
    assert "is incomplete" in checkpoint_problem(str(tmp_path / "run" / "checkpoint-2"))
    assert latest_checkpoint(str(tmp_path / "run"))[0] == str(tmp_path / "run" / "checkpoint-1")
