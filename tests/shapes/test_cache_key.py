"""The base model's cache key can't go stale: it covers the settings and the source of every
mmpo module the pre-training can run, found from the imports themselves."""

import hashlib

from mmpo.shapes import pretrain
from mmpo.shapes.pretrain import PretrainConfig, code_fingerprint, weight_sources


def test_sources_are_the_import_closure_of_the_training_loop():
    sources = weight_sources()
    for module in ("mmpo.shapes.world", "mmpo.shapes.tasks", "mmpo.shapes.pretrain", "mmpo.model.tiny",
                   "mmpo.data.collate", "mmpo.model.logps", "mmpo.losses"):
        assert module in sources
    assert not any(name.startswith(("mmpo.eval", "mmpo.train", "mmpo.demo")) for name in sources)


def test_key_changes_with_settings_code_and_versions(monkeypatch):
    config = PretrainConfig()
    key = config.key()
    assert key == PretrainConfig().key()  # stable
    assert PretrainConfig(prior=0.5).key() != key

    real = code_fingerprint()
    edited = dict(real, **{"mmpo.shapes.world": hashlib.sha256(b"one more rule").hexdigest()})
    monkeypatch.setattr(pretrain, "code_fingerprint", lambda: edited)
    assert config.key() != key  # an edit to the world is a new model
    monkeypatch.setattr(pretrain, "code_fingerprint", lambda: dict(real, torch="9.9"))
    assert config.key() != key  # so is another torch


def test_fingerprint_reads_the_files_once_per_process(tmp_path, monkeypatch):
    module = tmp_path / "mmpo_probe_module.py"
    module.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(pretrain, "weight_sources", lambda root: ["mmpo_probe_module"])
    code_fingerprint.cache_clear()
    first = code_fingerprint()["mmpo_probe_module"]
    module.write_text("X = 2\n")
    assert code_fingerprint()["mmpo_probe_module"] == first  # once per process: the code already imported
    code_fingerprint.cache_clear()
    assert code_fingerprint()["mmpo_probe_module"] != first  # a new process sees the edit
    code_fingerprint.cache_clear()


def test_reasoner_key_follows_its_base_and_its_own_code():
    """The reasoning SFT stage is a new model when its base model, its settings, or the code
    of its own closure (which includes the pipeline's prompt in mmpo.pairs.cot_format) change."""
    from mmpo.shapes.reasoning import ReasonerConfig

    key = ReasonerConfig().key()
    assert ReasonerConfig(base=PretrainConfig(seed=1)).key() != key
    assert ReasonerConfig(steps=10).key() != key
    assert "mmpo.pairs.cot_format" in weight_sources("mmpo.shapes.reasoning")
    assert "mmpo.shapes.pretrain" in weight_sources("mmpo.shapes.reasoning")
