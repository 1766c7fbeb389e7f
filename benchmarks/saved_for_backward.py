"""Bytes autograd keeps for backward in one mDPO step: mmpo against the official-style loop.

    python benchmarks/saved_for_backward.py [--shape small-vlm] [--lora_dropout 0.05] [--rows 4]

Builds the benchmark's model (``vs_trl.SHAPES``) and scores one batch the way each side
does, under ``torch.autograd.graph.saved_tensors_hooks``, summing the distinct storages
it is handed (a tensor saved by several operations counts once). mmpo: its trainer's
``compute_loss`` with the defaults. Official-style: chosen and rejected with the image
duplicated, then chosen under a corrupted image, on a peft model with peft's own LoRA
dropout. Prints the total and the five largest tensor shapes of each.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))


class SavedBytes:
    """A pack hook that records each saved tensor's storage once."""

    def __init__(self) -> None:
        self.storages: dict[int, int] = {}
        self.by_shape: collections.Counter = collections.Counter()

    def __call__(self, tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.storages:
            self.storages[storage.data_ptr()] = storage.nbytes()
            self.by_shape[(tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."))] += storage.nbytes()
        return tensor

    @property
    def mib(self) -> float:
        return sum(self.storages.values()) / 2**20


def saved_while(fn) -> SavedBytes:
    import torch

    saved = SavedBytes()
    with torch.autograd.graph.saved_tensors_hooks(saved, lambda t: t):
        fn()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="small-vlm")
    parser.add_argument("--lora_dropout", type=float, default=0.05)
    parser.add_argument("--rows", type=int, default=4)
    args = parser.parse_args()

    import vs_trl
    from mmpo.data.collate import PreferenceCollator
    from mmpo.model.load import load_processor
    from mmpo.train import PreferenceTrainer, TrainConfig
    from mmpo.train.run import build_model, load_training_data

    paths = vs_trl.prepare(tempfile.mkdtemp(prefix="mmpo-saved-"), max(8, args.rows), args.shape)
    config = TrainConfig(output_dir=tempfile.mkdtemp(), model=paths["model"], data=paths["data"], objective="mdpo",
                         per_device_train_batch_size=args.rows, lora_r=16, lora_alpha=32, lora_dropout=args.lora_dropout,
                         report_to="none", save_strategy="no", disable_tqdm=True)
    data = load_training_data(config)
    rows = [data[i] for i in range(args.rows)]
    processor = load_processor(paths["model"])

    model, _ = build_model(config)
    trainer = PreferenceTrainer(model, config, data, processor)
    batch = trainer.collator(rows)
    model.train()
    ours = saved_while(lambda: trainer.compute_loss(trainer.model, batch))  # the scorer around model

    peft_model, _ = build_model(dataclasses.replace(config, lean_lora_dropout=False))
    peft_model.train()
    pair, corrupted = PreferenceCollator(processor)(rows), vs_trl.official_corrupted_batch(processor, rows, seed=1)
    theirs = saved_while(lambda: [vs_trl.official_logps(peft_model, part) for part in (pair, corrupted)])
    print(f"\nshape {args.shape}, {args.rows} rows, LoRA dropout {args.lora_dropout}: saved for backward")
    for name, saved in (("mmpo", ours), ("official", theirs)):
        print(f"  {name:<9} {saved.mib:7.1f} MiB in {len(saved.storages)} tensors; largest: "
              + ", ".join(f"{shape} {dtype} {n / 2**20:.1f}" for (shape, dtype), n in saved.by_shape.most_common(5)))
    print(f"  ratio     {ours.mib / theirs.mib:.2f}× (mmpo / official)")


if __name__ == "__main__":
    main()
