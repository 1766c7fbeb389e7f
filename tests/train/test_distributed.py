"""Two processes on CPU (gloo): MPO's δ is averaged across ranks, and DDP and FSDP training
through the wrapped scorer (split backward included) shard the data yet keep one model."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
ROOT = str(Path(__file__).resolve().parents[2])  # the scripts import this checkout's mmpo, not an installed one


def run(args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([*TORCHRUN, *args], cwd=cwd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_running_mean_is_averaged_across_ranks(tmp_path):
    script = tmp_path / "delta.py"
    script.write_text(textwrap.dedent("""
        import json, sys, torch, torch.distributed as dist
        from mmpo.losses import RewardRunningMean
        dist.init_process_group("gloo")
        rank = dist.get_rank()
        tracker = RewardRunningMean()
        deltas = []
        for step in range(3):  # rank r, step s: chosen rewards all (r + 1) * (s + 1), rejected all -s
            chosen = torch.full((4,), float((rank + 1) * (step + 1)))
            deltas.append(tracker.update(chosen, torch.full((4,), float(-step))))
        json.dump(deltas, open(sys.argv[1] + f".{rank}", "w"))
        dist.destroy_process_group()
    """))
    run([str(script), str(tmp_path / "out")], cwd=os.getcwd())
    ranks = [json.load(open(tmp_path / f"out.{r}")) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # every rank holds the same δ
    batch_means = [sum(((r + 1) * (s + 1) - s) / 2 for r in (0, 1)) / 2 for s in range(3)]  # pooled, rank-averaged
    expected = [sum(batch_means[: s + 1]) / (s + 1) for s in range(3)]
    assert ranks[0] == pytest.approx(expected)


FSDP = {"fsdp": True, "fsdp_config": {"version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP"}}


def train_on_two_ranks(tiny_models, pref_file, tmp_path, name, engine, steps, resume=None):
    """``steps`` of mDPO with split backward on 2 gloo processes, writing to
    ``tmp_path/engine`` (``resume``: a checkpoint there); per rank: the rows it saw (with
    their epochs), its final adapter and the wrapper the Trainer trained through."""
    script = tmp_path / f"{name}.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys, torch, torch.distributed as dist
        from accelerate.state import PartialState
        from accelerate.utils import DistributedType
        from transformers import set_seed
        from mmpo.model.load import load_processor
        from mmpo.train import PreferenceTrainer, TrainConfig
        from mmpo.train.run import build_model, load_training_data
        config = TrainConfig(output_dir={str(tmp_path / engine)!r}, model={tiny_models["llava"]!r}, data={pref_file!r},
                             objective="mdpo", split_backward=True, use_cpu=True, max_steps={steps},
                             per_device_train_batch_size=1, gradient_accumulation_steps=1, learning_rate=1e-2,
                             lr_scheduler_type="constant", warmup_steps=0, lora_r=4, lora_alpha=8, lora_dropout=0.0,
                             save_strategy="steps", save_steps=2, report_to="none", disable_tqdm=True,
                             **{FSDP if engine == "fsdp" else {}!r})
        if config.fsdp:  # accelerate turns FSDP on only for processes on accelerators (GPU, NPU, XPU…)
            PartialState._shared_state["distributed_type"] = DistributedType.MULTI_GPU
        data = load_training_data(config)
        set_seed(0)  # as `mmpo train` does: every rank draws the same LoRA weights
        model, ref = build_model(config)
        trainer = PreferenceTrainer(model, config, data, load_processor(config.model), ref_model=ref)
        seen = []
        collate = trainer.data_collator
        trainer.data_collator = lambda rows: (seen.extend((r.id, e) for r, e in rows), collate(rows))[1]
        trainer.train(resume_from_checkpoint={resume!r})
        trainer.save_model(config.output_dir)
        refusal = None
        if not config.fsdp:  # the same CPU processes asking for FSDP, which accelerate would not turn on
            try:
                PreferenceTrainer(model, TrainConfig(**{{**config.to_dict(), **{FSDP!r}}}), data, trainer.processor)
            except ValueError as exc:
                refusal = str(exc)
        rank = dist.get_rank()
        torch.save({{n: p.detach() for n, p in model.named_parameters() if p.requires_grad}}, sys.argv[1] + f".{{rank}}.pt")
        json.dump({{"rows": seen, "epoch": trainer.state.epoch, "wrapper": type(trainer.model_wrapped).__name__,
                    "fsdp_refusal": refusal}},
                  open(sys.argv[1] + f".{{rank}}.json", "w"))
    """))
    run([str(script), str(tmp_path / name)], cwd=os.getcwd())
    import torch

    return [json.load(open(tmp_path / f"{name}.{r}.json")) for r in (0, 1)], \
        [torch.load(tmp_path / f"{name}.{r}.pt") for r in (0, 1)]


def test_ddp_and_fsdp_ranks_train_one_model_on_sharded_data(tiny_models, pref_file, tmp_path):
    """Each rank sees its own rows, each with its epoch, yet after every step all ranks hold
    the same adapter: the engine wrapped around the scorer synchronises the gradients
    (split backward on, for its two backward passes). FSDP (parameters sharded, gathered
    for each pass), run for 2 steps and resumed from its checkpoint for 2 more, ends with
    the adapter DDP trains in 4."""
    import torch
    from safetensors.torch import load_file

    logs, adapters = train_on_two_ranks(tiny_models, pref_file, tmp_path, "ddp", "ddp", steps=4)
    assert all(log["wrapper"] == "DistributedDataParallel" for log in logs)
    assert all("accelerate did not turn FSDP on" in log["fsdp_refusal"] for log in logs)
    first_epoch = [{row for row, epoch in log["rows"] if epoch == 0} for log in logs]
    assert not first_epoch[0] & first_epoch[1]  # the data is sharded
    assert logs[0]["epoch"] == pytest.approx(4 / 3)  # 6 rows, 1 per rank per step: one epoch in 3 steps
    for log in logs:  # each row arrives with the epoch it is drawn in, on every rank (3 per epoch, 1 prefetched)
        assert [epoch for _, epoch in log["rows"]][:4] == [0, 0, 0, 1]
    assert adapters[0].keys() == adapters[1].keys() and adapters[0]
    assert any(v.abs().sum() > 0 for k, v in adapters[0].items() if "lora_B" in k)  # it trained
    for name in adapters[0]:
        assert torch.allclose(adapters[0][name], adapters[1][name], atol=1e-6), name

    logs, _ = train_on_two_ranks(tiny_models, pref_file, tmp_path, "fsdp", "fsdp", steps=2)
    assert all(log["wrapper"] == "FSDPPolicyScorer" for log in logs)
    assert not {row for row, _ in logs[0]["rows"][:2]} & {row for row, _ in logs[1]["rows"][:2]}
    checkpoint = str(tmp_path / "fsdp" / "checkpoint-2")
    assert "optimizer.bin" in os.listdir(checkpoint)  # FSDP's own optimizer state
    train_on_two_ranks(tiny_models, pref_file, tmp_path, "fsdp-resumed", "fsdp", steps=4, resume=checkpoint)
    ddp, fsdp = (load_file(str(tmp_path / engine / "adapter_model.safetensors")) for engine in ("ddp", "fsdp"))
    assert ddp.keys() == fsdp.keys()
    for name in ddp:
        assert torch.allclose(ddp[name], fsdp[name], atol=1e-5), (name, (ddp[name] - fsdp[name]).abs().max())
