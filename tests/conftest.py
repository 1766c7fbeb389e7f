"""Shared fixtures: tiny models of each family (built once per session) and a small
preference file of shapes-world scenes."""

import json
import os
import warnings

import pytest

warnings.filterwarnings("ignore", message=".*torchvision.*")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FAMILIES = ("llava", "qwen2_vl", "idefics3")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    from mmpo.model.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    paths = {}
    for family in FAMILIES:
        paths[family] = str(root / family)
        build_tiny_model(family, paths[family])
    return paths


@pytest.fixture(scope="session")
def pref_file(tmp_path_factory):
    from mmpo.shapes.world import caption, make_scene, render

    root = tmp_path_factory.mktemp("prefs")
    os.makedirs(root / "images")
    with open(root / "pairs.jsonl", "w") as f:
        for i in range(6):
            scene = make_scene(i, scene_id=f"s{i}")
            render(scene, size=32).save(root / "images" / f"s{i}.png")
            row = {"id": scene.id, "image": f"images/s{i}.png", "prompt": "Describe the image.",
                   "chosen": caption(scene.objects), "rejected": "There is a purple star at the top."}
            f.write(json.dumps(row) + "\n")
    return str(root / "pairs.jsonl")


@pytest.fixture(scope="session")
def llava(tiny_models):
    """The tiny LLaVA loaded once: (model, processor)."""
    import torch

    from mmpo.model import load_model, load_processor

    return load_model(tiny_models["llava"], dtype=torch.float32), load_processor(tiny_models["llava"])
