"""`mmpo train` end to end on tiny models of three families, and the trainer's promises:
adapters change, the reference sees the policy's corrupted image, δ survives a resume,
cached reference log-probs match live ones, and a recorded loss trajectory holds."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from mmpo.cli import main
from mmpo.train import TrainConfig, train

FAST = ["--max_steps", "2", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
        "--learning_rate", "1e-3", "--lora_r", "8", "--lora_alpha", "16", "--logging_steps", "1",
        "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true"]


def lora_b_norm(output_dir: str) -> float:
    weights = load_file(os.path.join(output_dir, "adapter_model.safetensors"))
    b = [w for name, w in weights.items() if "lora_B" in name]
    assert b, "adapter has no LoRA B matrices"
    return float(sum(w.abs().sum() for w in b))


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "idefics3"])
@pytest.mark.parametrize("objective", ["dpo", "mdpo", "mpo"])
def test_cli_trains_every_family_and_objective(tiny_models, pref_file, tmp_path, family, objective):
    out = str(tmp_path / "run")
    rc = main(["train", "--model", tiny_models[family], "--data", pref_file, "--objective", objective,
               "--output_dir", out, *FAST])
    assert rc == 0
    assert lora_b_norm(out) > 0  # LoRA B starts at zero: non-zero means the adapter trained
    config = json.load(open(os.path.join(out, "adapter_config.json")))
    targets = str(config["target_modules"])
    assert "vision" not in targets and ("language_model" in targets or "text_model" in targets)
    resolved = json.load(open(os.path.join(out, "mmpo_config.json")))
    assert resolved["objective"] == objective


def test_vision_tower_gets_no_lora(tiny_models, pref_file, tmp_path):
    out = str(tmp_path / "run")
    main(["train", "--model", tiny_models["llava"], "--data", pref_file, "--output_dir", out, *FAST])
    names = load_file(os.path.join(out, "adapter_model.safetensors")).keys()
    assert names and all("language_model" in n for n in names)
    assert any("q_proj" in n for n in names) and any("down_proj" in n for n in names)


def test_real_console_script_and_yaml_config(tiny_models, pref_file, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"model: {tiny_models['llava']}\ndata: {pref_file}\nobjective: mpo\nlora_r: 4\nlora_dropout: 0.1\n")
    out = str(tmp_path / "yaml-run")
    proc = subprocess.run(
        [sys.executable, "-m", "mmpo.cli", "train", "--config", str(cfg), "--output-dir", out, *FAST],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    adapter = json.load(open(os.path.join(out, "adapter_config.json")))
    assert adapter["lora_dropout"] == 0.1 and adapter["r"] == 8  # YAML sets defaults, the command line wins
    assert json.load(open(os.path.join(out, "mmpo_config.json")))["objective"] == "mpo"
    assert "mmpo: 2 steps" in proc.stdout


def test_bad_data_is_a_clear_cli_error(tiny_models, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "nope.png", "prompt": "q", "chosen": "a", "rejected": "b"}\n')
    rc = main(["train", "--model", tiny_models["llava"], "--data", str(bad), "--output_dir", str(tmp_path / "o"), *FAST])
    assert rc == 1
    assert "bad.jsonl:1: field 'image': image file not found" in capsys.readouterr().err


def config(tiny_models, pref_file, out, **over):
    args = dict(output_dir=str(out), model=tiny_models["llava"], data=pref_file, max_steps=2,
                per_device_train_batch_size=2, gradient_accumulation_steps=1, learning_rate=1e-3, lora_r=8,
                lora_alpha=16, logging_steps=1, report_to="none", save_strategy="no", disable_tqdm=True, seed=0)
    args.update(over)
    return TrainConfig(**args)


@pytest.mark.parametrize("share_images", [True, False])
def test_policy_and_reference_see_the_same_corrupted_image(tiny_models, pref_file, tmp_path, monkeypatch, share_images):
    import mmpo.train.scorer as scorer_module

    seen = []
    real = scorer_module.sequence_logps

    def spy(model, batch, **kw):
        seen.append((batch["pixel_values"].clone(), batch.get("image_sets")))
        return real(model, batch, **kw)

    monkeypatch.setattr(scorer_module, "sequence_logps", spy)
    train(config(tiny_models, pref_file, tmp_path / "o", objective="mdpo", share_images=share_images))
    assert len(seen) == 4  # 2 steps × (reference, policy)
    for (reference_pixels, _), (policy_pixels, sets) in (seen[0:2], seen[2:4]):
        assert torch.equal(policy_pixels, reference_pixels)
        if share_images:  # pixels of the real images, then of m′; chosen, rejected, chosen-under-m′ index them
            rows = policy_pixels.shape[0] // 2
            assert sets.tolist() == [*range(rows), *range(rows), *range(rows, 2 * rows)]
        else:  # one copy per sequence
            rows = policy_pixels.shape[0] // 3
        assert not torch.equal(policy_pixels[:rows], policy_pixels[-rows:])  # m′ ≠ m


def test_no_image_ablation_trains_without_pixels(tiny_models, pref_file, tmp_path, monkeypatch):
    import mmpo.train.scorer as scorer_module

    seen = []
    real = scorer_module.sequence_logps
    monkeypatch.setattr(scorer_module, "sequence_logps", lambda m, b, **kw: (seen.append(dict(b)), real(m, b, **kw))[1])
    train(config(tiny_models, pref_file, tmp_path / "o", objective="dpo", no_image=True))
    image_id = 4  # first special token after <pad> <s> </s> <unk>
    assert seen and all("pixel_values" not in b and not (b["input_ids"] == image_id).any() for b in seen)


def test_mpo_delta_survives_resume(tiny_models, pref_file, tmp_path):
    first = config(tiny_models, pref_file, tmp_path / "b", objective="mpo", max_steps=4, save_strategy="steps", save_steps=2)
    result_first = train(first)
    state = json.load(open(tmp_path / "b" / "checkpoint-2" / "mmpo_state.json"))
    assert state["bco_running_mean"]["count"] == 2
    resumed = config(tiny_models, pref_file, tmp_path / "b", objective="mpo", max_steps=4,
                     resume_from_checkpoint=str(tmp_path / "b" / "checkpoint-2"))
    result = train(resumed)
    deltas_resumed = [h["bco/delta"] for h in result.history if h["step"] > 2]  # steps run after the resume
    deltas_first = [h["bco/delta"] for h in result_first.history if h["step"] > 2]
    assert len(deltas_resumed) == 2
    assert deltas_resumed == pytest.approx(deltas_first, abs=1e-6)
    state = json.load(open(tmp_path / "b" / "checkpoint-4" / "mmpo_state.json"))
    assert state["bco_running_mean"]["count"] == 4


def test_precomputed_reference_matches_live_reference(tiny_models, pref_file, tmp_path):
    # 6 rows, 2 per step: 4 steps reach a second epoch, whose m′ differs from the first's
    live = train(config(tiny_models, pref_file, tmp_path / "live", objective="mdpo", max_steps=4))
    cached = train(config(tiny_models, pref_file, tmp_path / "cached", objective="mdpo", max_steps=4,
                          precompute_ref_logps=True))
    assert [f for f in os.listdir(tmp_path / "cached") if f.startswith("ref_logps-")]
    assert len(live.history) == 4
    for a, b in zip(live.history, cached.history):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-4)
        assert a["image/margins"] == pytest.approx(b["image/margins"], abs=1e-4)


def test_full_finetune_and_merge(tiny_models, pref_file, tmp_path):
    full = train(config(tiny_models, pref_file, tmp_path / "full", objective="dpo", full_finetune=True, warmup_steps=0))
    assert full.history[-1]["rewards/margins"] != 0.0
    assert os.path.exists(tmp_path / "full" / "model.safetensors")
    train(config(tiny_models, pref_file, tmp_path / "merge", objective="dpo", merge=True))
    from mmpo.model import load_model

    merged = load_model(str(tmp_path / "merge" / "merged"), dtype=torch.float32)
    base = load_model(tiny_models["llava"], dtype=torch.float32)
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(dict(merged.named_parameters())[name], dict(base.named_parameters())[name])


def test_shared_paths_train_like_the_plain_path(tiny_models, pref_file, tmp_path, monkeypatch):
    """Image sharing, prefix sharing and reusing the policy's image features in the reference
    pass change how the work is done, not the numbers; with all three the vision tower runs
    once per step (real images and m′ together) instead of six times."""
    from transformers import LlavaModel

    encoded = []  # images through the vision tower, per call
    real = LlavaModel.get_image_features
    monkeypatch.setattr(LlavaModel, "get_image_features",
                        lambda self, pixel_values, **kw: encoded.append(len(pixel_values)) or real(self, pixel_values, **kw))
    runs, images = [], []
    for i, share in enumerate((False, True)):
        encoded.clear()
        runs.append(train(config(tiny_models, pref_file, tmp_path / f"r{i}", objective="mdpo", max_steps=3,
                                 warmup_steps=0, lora_dropout=0.0, share_images=share, share_prefix=share,
                                 reuse_image_features=share)))
        images.append(sum(encoded))
    rows = 2 * 3  # batch 2 × 3 steps
    assert images == [rows * 6, rows * 2]  # plain: m for chosen and rejected, m′, twice; shared: m and m′ once
    for plain, shared in zip(*(run.history for run in runs)):
        for key in ("loss", "rewards/margins", "image/margins"):
            assert plain[key] == pytest.approx(shared[key], abs=1e-4), key


def test_split_backward_trains_like_the_joint_pass(tiny_models, pref_file, tmp_path):
    """Back-propagating the real and the corrupted branch one after the other gives the
    same losses and the same trained adapter as one joint backward."""
    from safetensors.torch import load_file

    runs = [train(config(tiny_models, pref_file, tmp_path / f"s{i}", objective="mdpo", max_steps=3, warmup_steps=0,
                         lora_dropout=0.0, gradient_accumulation_steps=2, split_backward=split))
            for i, split in enumerate((False, True))]
    for joint, split in zip(*(run.history for run in runs)):
        for key in ("loss", "rewards/margins", "image/margins", "grad_norm"):
            assert joint[key] == pytest.approx(split[key], rel=1e-4, abs=1e-5), key
    joint, split = (load_file(str(tmp_path / f"s{i}" / "adapter_model.safetensors")) for i in (0, 1))
    assert joint.keys() == split.keys()
    for name in joint:
        assert torch.allclose(joint[name], split[name], atol=1e-5), (name, (joint[name] - split[name]).abs().max())


@pytest.mark.parametrize("checkpointing", [False, True])
def test_lean_lora_dropout_trains_like_peft(tiny_models, pref_file, tmp_path, checkpointing):
    """mmpo's LoRA dropout (mask kept, copies not) trains exactly like peft's, also when
    gradient checkpointing replays each layer's forward (the packed prefix path)."""
    from safetensors.torch import load_file

    runs = [train(config(tiny_models, pref_file, tmp_path / f"l{i}", objective="mdpo", max_steps=2, warmup_steps=0,
                         lora_dropout=0.2, lean_lora_dropout=lean, gradient_checkpointing=checkpointing))
            for i, lean in enumerate((False, True))]
    for plain, lean in zip(*(run.history for run in runs)):
        for key in ("loss", "grad_norm"):
            assert plain[key] == pytest.approx(lean[key], rel=1e-4, abs=1e-5), key
    plain, lean = (load_file(str(tmp_path / f"l{i}" / "adapter_model.safetensors")) for i in (0, 1))
    assert plain.keys() == lean.keys()
    for name in plain:
        assert torch.allclose(plain[name], lean[name], atol=1e-5), name


def test_split_backward_replays_the_same_dropout(tiny_models, pref_file, tmp_path, monkeypatch):
    """The corrupted branch runs twice (for its value, then for its gradient); with LoRA
    dropout on, both runs must draw the same masks."""
    import mmpo.train.scorer as scorer_module

    corrupted = []
    real = scorer_module.sequence_logps

    def spy(model, batch, **kw):
        out = real(model, batch, **kw)
        if model.training and len(batch["row_ids"]) == batch["input_ids"].shape[0]:  # the corrupted branch: B sequences
            corrupted.append(out[0].detach().clone())
        return out

    monkeypatch.setattr(scorer_module, "sequence_logps", spy)
    train(config(tiny_models, pref_file, tmp_path / "d", objective="mdpo", max_steps=2, lora_dropout=0.5,
                 gradient_accumulation_steps=1, warmup_steps=0, split_backward=True))
    assert len(corrupted) == 4  # 2 steps × (value, replay); from step 2 on the adapter is non-zero
    value, replay = corrupted[2:]
    assert torch.equal(value, replay)


def test_split_backward_needs_shared_image_features(tiny_models, pref_file, tmp_path):
    with pytest.raises(ValueError, match="split_backward needs"):
        train(config(tiny_models, pref_file, tmp_path / "e", objective="mdpo", split_backward=True, share_images=False))


# Per-step losses of a pinned tiny mDPO run: a refactor that changes the math changes these.
# With LoRA dropout the draws follow the layout of the tensors it runs on (prefix sharing
# lays responses out its own way); without dropout the shared and plain paths agree.
RECORDED_MDPO_LOSSES = {0.05: [2.07944, 2.05189, 2.05253, 1.97046], 0.0: [2.07944, 2.05238, 2.05226, 1.96804]}
# The rows they were recorded on, written out so that the shapes world's captions can
# evolve (its images are drawn by the same code, scenes 0-5).
RECORDED_CAPTIONS = [
    "There is a green triangle in the middle and a green circle at the bottom.",
    "There is a red star at the top.",
    "There is a blue circle at the top.",
    "There is a red star at the bottom right.",
    "There is a yellow square at the top.",
    "There is a orange star at the top left, a orange square at the bottom left and a blue square at the bottom right.",
]


@pytest.fixture(scope="module")
def recorded_pref_file(tmp_path_factory):
    from mmpo.shapes.world import make_scene, render

    root = tmp_path_factory.mktemp("recorded")
    os.makedirs(root / "images")
    with open(root / "pairs.jsonl", "w") as f:
        for i, text in enumerate(RECORDED_CAPTIONS):
            render(make_scene(i, scene_id=f"s{i}"), size=32).save(root / "images" / f"s{i}.png")
            row = {"id": f"s{i}", "image": f"images/s{i}.png", "prompt": "Describe the image.", "chosen": text,
                   "rejected": "There is a purple star at the top."}
            f.write(json.dumps(row) + "\n")
    return str(root / "pairs.jsonl")


@pytest.mark.parametrize("dropout,share_prefix", [(0.05, True), (0.0, True), (0.0, False)])
def test_recorded_trajectory(tiny_models, recorded_pref_file, tmp_path, dropout, share_prefix):
    result = train(config(tiny_models, recorded_pref_file, tmp_path / "t", objective="mdpo", max_steps=4,
                          warmup_steps=0, lora_dropout=dropout, share_prefix=share_prefix))
    losses = [round(h["loss"], 5) for h in result.history]
    print("trajectory", losses)
    assert len(losses) == 4 and losses[0] == pytest.approx(3 * 0.693147, abs=1e-4)  # all terms log 2 at step 1
    assert losses == pytest.approx(RECORDED_MDPO_LOSSES[dropout], abs=2e-4)



def test_dataloader_workers_see_each_epochs_corrupted_image(tiny_models, pref_file, tmp_path, monkeypatch):
    """Collation in worker processes (the usual GPU set-up) builds the same m′ per epoch as
    in the main process: 4 steps of 2 over 6 rows cross an epoch boundary. Persistent
    workers are started once, so the epoch reaches them with each index, not from the
    trainer; with the reference precomputed, the cache is looked up with that same epoch.
    (No LoRA dropout: a persistent loader draws its worker seed from the global generator
    once, not once per epoch, so later dropout masks differ for reasons of torch's own.)"""
    from mmpo.train.trainer import PreferenceTrainer

    epochs = []
    real = PreferenceTrainer.compute_loss
    monkeypatch.setattr(PreferenceTrainer, "compute_loss",
                        lambda self, model, inputs, *a, **kw: epochs.append(inputs["row_epochs"]) or real(
                            self, model, inputs, *a, **kw))
    runs = {}
    for name, workers, persistent, precompute in [("main", 0, False, False), ("workers", 2, False, False),
                                                  ("persistent", 1, True, False), ("cached", 1, True, True)]:
        epochs.clear()
        runs[name] = train(config(tiny_models, pref_file, tmp_path / name, objective="mdpo", max_steps=4,
                                  warmup_steps=0, lora_dropout=0.0, dataloader_num_workers=workers,
                                  dataloader_persistent_workers=persistent, precompute_ref_logps=precompute)).history
        assert epochs == [[0, 0], [0, 0], [0, 0], [1, 1]], name  # each batch comes with the epoch it was drawn in
    for name, tolerance in [("workers", 1e-6), ("persistent", 1e-6), ("cached", 1e-4)]:
        for main, other in zip(runs["main"], runs[name]):
            assert main["image/margins"] == pytest.approx(other["image/margins"], abs=tolerance), name
            assert main["loss"] == pytest.approx(other["loss"], abs=tolerance), name


@pytest.mark.parametrize("command", [["train"], ["pairs", "dropout-ntp"], ["pairs", "correctness"]])
def test_help_prints_every_option(command, capsys):
    with pytest.raises(SystemExit) as exit_:  # argparse %-formats help text: a stray % breaks --help
        main([*command, "--help"])
    assert exit_.value.code == 0 and "--max_image_pixels" in capsys.readouterr().out
