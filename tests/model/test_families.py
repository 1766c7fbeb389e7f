"""Every supported family, as a user's saved folder: `mmpo train` runs a step with dpo,
mdpo and mpo at the defaults; response log-probs are causal; the fast paths (shared
images, shared prefix) give the plain path's log-probs; a family that cannot run here
says so before its weights load."""

import re

import pytest
import torch

from mmpo.data import CorruptionConfig, load_preferences
from mmpo.data.collate import PreferenceCollator
from mmpo.model import load_model, load_processor, sequence_logps
from mmpo.model.families import UnsupportedFamily, family_of
from mmpo.model.logps import supports_shared_images
from mmpo.model.tiny_families import BUILDERS, build_family
from mmpo.train import TrainConfig, train

from transformers.utils import is_torchvision_available

# Mistral 3's processor needs torchvision; without it the family is refused (tested below).
ALL = tuple(f for f in ("llava", "qwen2_vl", "idefics3", *BUILDERS) if f != "mistral3" or is_torchvision_available())


@pytest.fixture(scope="session")
def family_models(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    paths = dict(tiny_models)
    for name in BUILDERS:
        paths[name] = build_family(name, str(root / name))
    return paths


@pytest.fixture(scope="session")
def loaded(family_models):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_model(family_models[name], dtype=torch.float32).eval(), load_processor(family_models[name])
        return cache[name]

    return get


@pytest.fixture(scope="session")
def two_rows(pref_file):
    """The first two rows of the shared preference file, beside it (image paths stay relative)."""
    import os

    path = os.path.join(os.path.dirname(pref_file), "two_pairs.jsonl")
    with open(pref_file) as src, open(path, "w") as dst:
        dst.writelines(src.readlines()[:2])
    return path


@pytest.fixture(scope="module")
def rows(pref_file):
    rows = list(load_preferences(pref_file))[:2]
    rows[1].prompt = "Describe the image in a few words, please."  # prompts of different lengths
    return rows


@pytest.mark.parametrize("objective", ["dpo", "mdpo", "mpo"])
@pytest.mark.parametrize("family", [f for f in ALL if f not in ("llava", "qwen2_vl", "idefics3")])  # those: test_train
def test_train_one_step_at_the_defaults(family_models, two_rows, tmp_path, family, objective, capsys):
    config = TrainConfig(model=family_models[family], data=two_rows, objective=objective, output_dir=str(tmp_path),
                         max_steps=1, per_device_train_batch_size=1, report_to="none", save_strategy="no",
                         disable_tqdm=True, logging_steps=1)
    result = train(config)
    assert result.global_step == 1
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)
    said = capsys.readouterr().out
    assert f"mmpo: family {family_of_name(family)} ({family})" in said
    assert re.search(r"mmpo: shared images (on|off) \(.+\)\n", said)
    assert re.search(r"mmpo: shared prefix (on|off) \(.+\)\n", said)
    assert re.search(r"mmpo: image tokens per prompt \d+", said)


def family_of_name(model_type):
    from mmpo.model.families import family_of_type

    return family_of_type(model_type).name


def _response_batch(processor, rows, **kwargs):
    return PreferenceCollator(processor, corruption=CorruptionConfig(), **kwargs)(rows)


@pytest.mark.parametrize("family", ALL)
def test_a_response_token_does_not_see_later_ones(loaded, rows, family):
    """Cut the scored tokens before the last response token and change that token: the
    scored log-probs must not move (a prefix-LM whose response is marked bidirectional,
    e.g. PaliGemma with token_type_ids 0 over the response, fails this)."""
    model, processor = loaded(family)
    share = supports_shared_images(model)
    for kwargs in ({}, {"share_images": True, "share_prefix": True}) if share else ({},):
        batch = _response_batch(processor, rows, share_images=kwargs.get("share_images", False))
        changed, mask = _change_last_response_token(batch)
        before, _ = sequence_logps(model, {**batch, "response_mask": mask}, share_prefix=kwargs.get("share_prefix", False))
        after, _ = sequence_logps(model, {**changed, "response_mask": mask}, share_prefix=kwargs.get("share_prefix", False))
        assert torch.allclose(before, after, atol=1e-6, rtol=0), (family, kwargs, before - after)


def _change_last_response_token(batch):
    """The batch with every sequence's last response token replaced, and a response mask
    that scores every response token but that one."""
    changed = dict(batch)
    ids = batch["input_ids"].clone()
    mask = batch["response_mask"].clone()
    for i in range(ids.shape[0]):
        last = int(mask[i].nonzero().max())
        ids[i, last] = (ids[i, last] + 7) % 100 + 10  # another ordinary text token
        mask[i, last] = False
    changed["input_ids"] = ids
    return changed, mask


def test_the_causality_test_catches_a_bidirectional_response(loaded, rows, monkeypatch):
    """PaliGemma with the response marked as prefix (token_type_ids 0) sees later tokens."""
    from mmpo.model.families.base import Family
    from mmpo.model.families.paligemma import PaliGemma

    model, processor = loaded("paligemma")
    monkeypatch.setattr(PaliGemma, "extend_token_values", Family.extend_token_values)
    batch = _response_batch(processor, rows)
    changed, mask = _change_last_response_token(batch)
    before, _ = sequence_logps(model, {**batch, "response_mask": mask})
    after, _ = sequence_logps(model, {**changed, "response_mask": mask})
    assert (before - after).abs().max() > 1e-4


@pytest.mark.parametrize("family", ALL)
def test_fast_paths_match_the_plain_path(loaded, rows, family):
    """Shared images, then shared images + shared prefix, against every sequence in full
    with its own pixels, wherever the family turns a path on: log-probs and gradients."""
    model, processor = loaded(family)
    plain = _logps_and_grads(model, _response_batch(processor, rows))
    if not supports_shared_images(model):
        assert family_of(model).shared_images, "a family without shared images says why"
        return
    shared = _response_batch(processor, rows, share_images=True)
    for share_prefix in (False, True):
        fast = _logps_and_grads(model, shared, share_prefix=share_prefix)
        assert torch.allclose(fast[0], plain[0], atol=2e-5, rtol=0), (share_prefix, fast[0] - plain[0])
        assert fast[1].keys() == plain[1].keys()
        for name in plain[1]:
            assert torch.allclose(fast[1][name], plain[1][name], atol=1e-5, rtol=1e-3), (share_prefix, name)


def _logps_and_grads(model, batch, **kwargs):
    model.zero_grad()
    logps, _ = sequence_logps(model, batch, **kwargs)
    (logps * torch.linspace(-1.0, 1.0, logps.shape[0])).sum().backward()
    return logps.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_processor_settings_survive_without_a_video_processor(loaded):
    """An image+video processor built without its video half keeps the checkpoint's own
    settings (processor_config.json), so image token counts are the checkpoint's."""
    _, onevision = loaded("llava_onevision")
    _, internvl = loaded("internvl")
    assert onevision.num_image_tokens == 16 and onevision.vision_feature_select_strategy == "full"
    assert internvl.image_seq_length == 4


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
@pytest.mark.parametrize("mode", ["cache", "checkpointing"])
def test_qwen_prefix_sharing_uses_its_3d_positions(family_models, rows, family, mode, monkeypatch):
    """The shared prefix really runs for Qwen-VL (on the cache, or packed under gradient
    checkpointing) and matches the full sequences tightly; with 1-D positions instead of
    Qwen's 3-D ones it would not."""
    import mmpo.model.logps as logps_module
    from mmpo.model.families.base import Family
    from mmpo.model.families.qwen_vl import QwenVL

    model, processor = load_model(family_models[family], dtype=torch.float32), load_processor(family_models[family])
    if mode == "checkpointing":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    batch = _response_batch(processor, rows, share_images=True)
    full, _ = sequence_logps(model, batch)
    calls = []
    name = "cached_prefix_hidden" if mode == "cache" else "packed_prefix_hidden"
    real = getattr(logps_module, name)
    monkeypatch.setattr(logps_module, name, lambda *a: calls.append(1) or real(*a))
    shared, _ = sequence_logps(model, batch, share_prefix=True)
    assert calls == [1]
    assert torch.allclose(shared, full, atol=2e-5, rtol=0), (shared - full).abs().max()
    monkeypatch.setattr(QwenVL, "position_ids", Family.position_ids)
    wrong, _ = sequence_logps(model, batch, share_prefix=True)
    assert (wrong - full).abs().max() > 1e-4


def test_mllama_cross_attention_mask_covers_prompt_and_response(loaded, rows):
    _, processor = loaded("mllama")
    batch = _response_batch(processor, rows)
    mask = batch["cross_attention_mask"]  # (N, T, images, tiles)
    assert mask.shape[:2] == batch["input_ids"].shape
    for i in range(mask.shape[0]):
        last = int(batch["response_mask"][i].nonzero().max())
        first = int(batch["response_mask"][i].nonzero().min())
        assert torch.equal(mask[i, last], mask[i, first - 1])  # the response sees the prompt's last tiles
        assert mask[i, last + 1 :].sum() == 0  # padding sees nothing


def test_paligemma_gets_its_prompt_format_and_prefix_lm_layout(loaded, rows):
    _, processor = loaded("paligemma")
    batch = _response_batch(processor, rows)
    types, response = batch["token_type_ids"], batch["response_mask"]
    assert bool((types[response] == 1).all())  # the response is the causal suffix
    prompt = batch["attention_mask"].bool() & ~response
    assert bool((types[prompt] == 0).all())  # the prompt (image tokens, <bos>, question) the bidirectional prefix
    bos = processor.tokenizer.bos_token_id
    assert all(bos in batch["input_ids"][i][prompt[i]].tolist() for i in range(len(types)))


def test_startup_says_why_a_path_is_off(loaded):
    from mmpo.model.prefix import prefix_sharing_off

    model, _ = loaded("mllama")
    assert "cross-attention" in prefix_sharing_off(model.model, family_of(model), None)
    model, _ = loaded("llava")
    assert prefix_sharing_off(model.model, family_of(model), None) is None


def test_unsupported_family_is_refused_before_weights_load(family_models, pref_file, tmp_path, monkeypatch):
    """Mistral 3 needs torchvision for its processor: without it, mmpo names the family and
    the reason before reading a weight."""
    import mmpo.train.run as run_module

    if is_torchvision_available():
        pytest.skip("torchvision is installed: Mistral 3's processor can be built")
    monkeypatch.setattr(run_module, "load_model", lambda *a, **k: pytest.fail("weights were loaded"))
    with pytest.raises(UnsupportedFamily, match=r"Mistral 3 / Pixtral \(mistral3\).*torchvision"):
        train(TrainConfig(model=family_models["mistral3"], data=pref_file, output_dir=str(tmp_path), report_to="none"))


def test_a_checkpoint_without_chat_template_is_refused_before_weights_load(family_models, pref_file, tmp_path,
                                                                            monkeypatch):
    import shutil

    import mmpo.train.run as run_module

    folder = tmp_path / "no-template"
    shutil.copytree(family_models["llava_next"], folder)
    (folder / "chat_template.jinja").unlink()
    monkeypatch.setattr(run_module, "load_model", lambda *a, **k: pytest.fail("weights were loaded"))
    with pytest.raises(ValueError, match="LLaVA-NeXT processor has no chat template"):
        train(TrainConfig(model=str(folder), data=pref_file, output_dir=str(tmp_path / "out"), report_to="none"))
