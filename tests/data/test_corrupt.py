"""CoPO corruption is deterministic per (seed, row, epoch) and keeps the asked-for area."""

import random

import numpy as np
import pytest
from PIL import Image

from mmpo.data.corrupt import STRATEGIES, CorruptionConfig, corrupt_image, crop_box, row_rng


def scene(seed=0, size=(48, 40)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def same(a, b):
    return np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_deterministic_per_row_and_epoch(strategy):
    img = scene()
    pool = {"r1": img, "r2": scene(1), "r3": scene(2)}
    cfg = CorruptionConfig(strategy=strategy, seed=3)
    kw = dict(other_images=list(pool), load_other=pool.__getitem__)
    a = corrupt_image(img, cfg, "r1", epoch=0, **kw)
    b = corrupt_image(img, cfg, "r1", epoch=0, **kw)
    assert same(a, b) and a.size == img.size and a.mode == "RGB"
    assert not same(a, img)
    if strategy not in ("blur", "blank"):  # these have no randomness to vary
        variants = {np.asarray(corrupt_image(img, cfg, "r1", epoch=e, **kw)).tobytes() for e in range(6)}
        assert len(variants) > 1


def test_other_never_picks_the_row_itself():
    pool = {"r1": scene(0), "r2": scene(1)}
    cfg = CorruptionConfig(strategy="other")
    for epoch in range(5):
        out = corrupt_image(pool["r1"], cfg, "r1", epoch, list(pool), pool.__getitem__)
        assert same(out, pool["r2"])


@pytest.mark.parametrize("area", [(0.01, 0.2), (0.2, 0.5)])
def test_crop_area_fraction_in_range(area):
    fractions = []
    for i in range(300):
        l, t, r, b = crop_box(640, 480, random.Random(i), area)
        assert 0 <= l < r <= 640 and 0 <= t < b <= 480
        fractions.append((r - l) * (b - t) / (640 * 480))
    lo, hi = area
    assert min(fractions) >= lo * 0.95 and max(fractions) <= hi * 1.05
    assert np.mean(fractions) == pytest.approx((lo + hi) / 2, rel=0.1)


def test_row_rng_is_stable_and_distinct():
    assert row_rng(0, "a", 0).random() == row_rng(0, "a", 0).random()
    assert row_rng(0, "a", 0).random() != row_rng(0, "a", 1).random()
    assert row_rng(0, "a", 0).random() != row_rng(1, "a", 0).random()


def test_parse_specs_and_errors():
    assert CorruptionConfig.parse("crop:0.2-0.5").area == (0.2, 0.5)
    assert CorruptionConfig.parse("noise:0.3").noise_std == 0.3
    assert CorruptionConfig.parse("blank").strategy == "blank"
    with pytest.raises(ValueError, match="unknown corruption 'jpeg'"):
        CorruptionConfig.parse("jpeg")
    with pytest.raises(ValueError, match="crop area range"):
        CorruptionConfig.parse("crop:0.5-0.2")


def test_mask_covers_requested_fraction():
    img = Image.new("RGB", (64, 64), (255, 0, 0))
    out = np.asarray(corrupt_image(img, CorruptionConfig(strategy="mask", mask_fraction=0.5), "r"))
    grey = (out == 128).all(axis=-1).mean()
    assert 0.5 <= grey <= 0.75
