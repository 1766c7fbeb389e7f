"""Two processes on CPU (gloo): MPO's δ is averaged across ranks, and training under DDP
(split backward included) runs with the data sharded between ranks."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def run(args, cwd):
    proc = subprocess.run([*TORCHRUN, *args], cwd=cwd, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
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


def test_ddp_training_shards_the_data(tiny_models, pref_file, tmp_path):
    out = tmp_path / "o"
    args = ["-m", "mmpo.cli", "train", "--model", tiny_models["llava"], "--data", pref_file, "--output_dir", str(out),
            "--objective", "mdpo", "--split_backward", "true", "--use_cpu", "true", "--max_steps", "3",
            "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1", "--save_strategy", "steps",
            "--save_steps", "3", "--report_to", "none", "--lora_r", "4", "--lora_alpha", "8", "--disable_tqdm", "true"]
    run(args, cwd=os.getcwd())
    state = json.load(open(out / "checkpoint-3" / "trainer_state.json"))
    assert state["epoch"] == pytest.approx(1.0)  # 6 rows, 1 per device × 2 ranks: one epoch in 3 steps
    assert os.path.exists(out / "adapter_model.safetensors")
