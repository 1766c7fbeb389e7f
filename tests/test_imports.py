"""Every module imports on its own (no hidden circular import, no missing dependency)."""

import importlib
import pkgutil

import pytest

import mmpo

MODULES = sorted(m.name for m in pkgutil.walk_packages(mmpo.__path__, "mmpo."))


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    importlib.import_module(name)


def test_public_api():
    from mmpo import CorruptionConfig, load_preferences, parse_objective  # noqa: F401
    from mmpo.pairs import correctness, dropout_ntp, extract_answer, is_correct  # noqa: F401
    from mmpo.train import TrainConfig, train  # noqa: F401

    assert len(MODULES) > 20
