"""Which checkpoint a run resumes from, and whether it can.

A checkpoint folder is *complete* when it holds ``mmpo_state.json``: mmpo writes that file
last, atomically, after the Trainer has written every other file of the checkpoint, and
deletes it before the Trainer writes into an existing folder again. A kill during a save
therefore leaves a folder without it, which is never resumed from. A complete folder's
files are then checked for damage (a safetensors header that does not cover the file, a
torch archive without its zip directory, JSON that does not parse), without loading them.

``--resume_from_checkpoint PATH`` resumes from PATH or fails naming the bad file;
``--resume_from_checkpoint latest`` takes the newest complete, undamaged checkpoint in
``--output_dir`` and says which newer ones it passed over and why.
"""

from __future__ import annotations

import json
import os
import re
import zipfile

STATE_FILE = "mmpo_state.json"
TRAINER_STATE = "trainer_state.json"
WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
OPTIMIZER_STATE = ("optimizer.pt", "optimizer.bin")  # the Trainer's; FSDP's (full state dict)
SCHEDULER_STATE = "scheduler.pt"
LATEST = ("latest", "true", "last")
_STEP = re.compile(r"^checkpoint-(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file."""


def checkpoint_problem(path: str, need_training_state: bool = True) -> str | None:
    """What stops a resume from ``path`` (naming the file), or None when it can be used.
    ``need_training_state``: optimizer and scheduler must be there (not for DeepSpeed,
    which keeps its own, nor for ``--save_only_model`` checkpoints)."""
    if not os.path.isdir(path):
        return f"{path} is not a checkpoint folder"
    if not os.path.isfile(os.path.join(path, STATE_FILE)):
        return (f"{path} is incomplete: {STATE_FILE}, which mmpo writes after every other file of a checkpoint, "
                "is missing (the save was interrupted, or the folder is not an mmpo checkpoint)")
    if need_training_state and not any(os.path.isfile(os.path.join(path, name)) for name in OPTIMIZER_STATE):
        return f"{os.path.join(path, OPTIMIZER_STATE[0])} is missing"
    for name in [TRAINER_STATE, *([SCHEDULER_STATE] if need_training_state else [])]:
        if not os.path.isfile(os.path.join(path, name)):
            return f"{os.path.join(path, name)} is missing"
    if not any(os.path.isfile(os.path.join(path, name)) for name in WEIGHTS):
        return f"{path} holds no weights (none of {', '.join(WEIGHTS)})"
    for name in sorted(os.listdir(path)):
        problem = file_problem(os.path.join(path, name))
        if problem:
            return problem
    return None


def file_problem(path: str) -> str | None:
    """Damage visible without loading the file: safetensors, torch archives, JSON."""
    if not os.path.isfile(path):
        return None
    try:
        if path.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(path, "pt"):
                pass
        elif path.endswith((".pt", ".pth", ".bin")):
            if not zipfile.is_zipfile(path):
                return f"{path} is damaged: not a complete torch archive (truncated?)"
        elif path.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                json.load(f)
    except Exception as exc:  # noqa: BLE001 — each reader fails its own way on a damaged file
        return f"{path} is damaged: {type(exc).__name__}: {exc}"
    return None


def checkpoints_newest_first(output_dir: str) -> list[str]:
    if not os.path.isdir(output_dir):
        return []
    found = [(int(m[1]), name) for name in os.listdir(output_dir) if (m := _STEP.match(name))]
    return [os.path.join(output_dir, name) for _, name in sorted(found, reverse=True)
            if os.path.isdir(os.path.join(output_dir, name))]


def latest_checkpoint(output_dir: str, need_training_state: bool = True) -> tuple[str | None, list[str]]:
    """The newest usable checkpoint in ``output_dir`` (None if there is none), and what
    was wrong with each newer one."""
    passed_over = []
    for path in checkpoints_newest_first(output_dir):
        problem = checkpoint_problem(path, need_training_state)
        if problem is None:
            return path, passed_over
        passed_over.append(problem)
    return None, passed_over


def resolve_resume(value: str | bool | None, output_dir: str, need_training_state: bool = True) -> str | None:
    """The checkpoint ``--resume_from_checkpoint value`` means, checked; prints which one
    "latest" chose and why newer ones were passed over."""
    if value is None or value is False or value == "":
        return None
    if value is True or str(value).lower() in LATEST:
        path, passed_over = latest_checkpoint(output_dir, need_training_state)
        for problem in passed_over:
            print(f"mmpo: not resuming from it: {problem}")
        if path is None:
            raise CheckpointError(f"--resume_from_checkpoint {value}: no complete checkpoint in {output_dir}"
                                  + (f" ({len(passed_over)} incomplete or damaged)" if passed_over else ""))
        print(f"mmpo: resuming from {path}")
        return path
    problem = checkpoint_problem(str(value), need_training_state)
    if problem:
        raise CheckpointError(f"--resume_from_checkpoint: cannot resume: {problem}; pass another checkpoint, or "
                              f"'latest' for the newest complete one in --output_dir")
    return str(value)
