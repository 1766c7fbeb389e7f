"""Corrupted images m′ for mDPO's conditional preference term (CoPO).

Every corruption is a deterministic function of (seed, row id, epoch): the policy and the
reference pass score y_w against the *same* m′ (the official mDPO code re-samples the crop
between the two passes, which turns the reference term into noise), and a rerun with the
same seed gives the same images.

Strategies (``CorruptionConfig.strategy``):
- ``crop``  — the paper's default: a random crop keeping ``area`` = (1 %, 20 %) of the
  image with aspect ratio in [3/4, 4/3], resized back (torchvision's RandomResizedCrop rule),
- ``other`` — another image of the dataset,
- ``noise`` — additive Gaussian noise with std ``noise_std`` (pixel scale 0–1),
- ``blur``  — Gaussian blur with radius ``blur_radius`` (× the image's short side / 100),
- ``mask``  — random square patches covering ``mask_fraction`` of the image set to grey,
- ``blank`` — a uniform image of the input's mean colour.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageFilter

STRATEGIES = ("crop", "other", "noise", "blur", "mask", "blank")


@dataclass
class CorruptionConfig:
    """How to make m′. ``area`` is the (min, max) fraction of the area a crop keeps."""

    strategy: str = "crop"
    area: tuple[float, float] = (0.01, 0.2)
    noise_std: float = 0.5
    blur_radius: float = 5.0
    mask_fraction: float = 0.7
    mask_patches: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown corruption {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        lo, hi = self.area
        if not 0.0 < lo <= hi <= 1.0:  # False for NaN too
            raise ValueError(f"crop area range must satisfy 0 < min <= max <= 1, got {self.area}")
        if not (math.isfinite(self.noise_std) and self.noise_std > 0):
            raise ValueError(f"noise std must be a finite number > 0, got {self.noise_std}")
        if not (math.isfinite(self.blur_radius) and self.blur_radius > 0):
            raise ValueError(f"blur radius must be a finite number > 0, got {self.blur_radius}")
        if not 0.0 < self.mask_fraction <= 1.0:
            raise ValueError(f"mask fraction must be in (0, 1], got {self.mask_fraction}")
        if isinstance(self.mask_patches, bool) or not isinstance(self.mask_patches, int) or self.mask_patches < 1:
            raise ValueError(f"mask patches must be a whole number >= 1, got {self.mask_patches!r}")

    @classmethod
    def parse(cls, spec: str, seed: int = 0) -> "CorruptionConfig":
        """``"crop"``, ``"crop:0.2-0.5"`` (keep 20–50 % of the area), ``"noise:0.3"``,
        ``"blur:8"``, ``"mask:0.5"``, ``"other"``, ``"blank"``."""
        name, _, arg = spec.partition(":")
        config = cls(strategy=name.strip(), seed=seed)
        if arg:
            try:
                if config.strategy == "crop":
                    lo, _, hi = arg.partition("-")
                    config.area = (float(lo), float(hi or lo))
                elif config.strategy == "noise":
                    config.noise_std = float(arg)
                elif config.strategy == "blur":
                    config.blur_radius = float(arg)
                elif config.strategy == "mask":
                    config.mask_fraction = float(arg)
                else:
                    raise ValueError(f"corruption {config.strategy!r} takes no argument")
                config.__post_init__()
            except ValueError as exc:
                raise ValueError(f"bad corruption spec {spec!r}: {exc}") from None
        return config


def row_rng(seed: int, row_id: str, epoch: int) -> random.Random:
    """A generator fixed by (seed, row id, epoch), stable across processes and runs
    (``hash()`` is salted per process, so a digest is used instead)."""
    digest = hashlib.sha256(f"{seed}|{row_id}|{epoch}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def crop_box(width: int, height: int, rng: random.Random, area: tuple[float, float]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a crop keeping a fraction of the area drawn from
    ``area`` with log-uniform aspect ratio in [3/4, 4/3]; falls back to a centred crop of
    the target area when ten draws do not fit (as torchvision does)."""
    total = width * height
    for _ in range(10):
        target = total * rng.uniform(*area)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w = int(round(math.sqrt(target * ratio)))
        h = int(round(math.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            left = rng.randint(0, width - w)
            top = rng.randint(0, height - h)
            return left, top, left + w, top + h
    side = max(1, int(round(math.sqrt(total * area[0]))))
    w, h = min(side, width), min(side, height)
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def corrupt_image(
    image: Image.Image,
    config: CorruptionConfig,
    row_id: str,
    epoch: int = 0,
    other_images: Sequence[str] | None = None,
    load_other: Callable[[str], Image.Image] | None = None,
) -> Image.Image:
    """m′ for ``image`` of row ``row_id`` in ``epoch``, the same size and mode as ``image``.

    ``other`` needs ``other_images`` (candidate row ids) and ``load_other`` (row id → image);
    the row itself is never picked when another candidate exists.
    """
    rng = row_rng(config.seed, row_id, epoch)
    image = image.convert("RGB")
    width, height = image.size
    if config.strategy == "crop":
        box = crop_box(width, height, rng, config.area)
        return image.crop(box).resize((width, height), Image.BICUBIC)
    if config.strategy == "other":
        if not other_images or load_other is None:
            raise ValueError("corruption 'other' needs the dataset's other images")
        candidates = [r for r in other_images if r != row_id] or list(other_images)
        return load_other(rng.choice(candidates)).convert("RGB").resize((width, height), Image.BICUBIC)
    pixels = np.asarray(image, dtype=np.float32) / 255.0  # (H, W, 3)
    if config.strategy == "noise":
        noise = np.random.default_rng(rng.getrandbits(63)).normal(0.0, config.noise_std, pixels.shape)
        pixels = np.clip(pixels + noise, 0.0, 1.0)
    elif config.strategy == "blur":
        radius = config.blur_radius * min(width, height) / 100.0
        return image.filter(ImageFilter.GaussianBlur(radius))
    elif config.strategy == "mask":
        side = max(1, int(round(math.sqrt(config.mask_fraction * width * height / config.mask_patches))))
        covered = np.zeros((height, width), dtype=bool)
        while covered.mean() < config.mask_fraction:
            left, top = rng.randint(0, max(0, width - side)), rng.randint(0, max(0, height - side))
            covered[top : top + side, left : left + side] = True
        pixels[covered] = 0.5
    elif config.strategy == "blank":
        pixels[:] = pixels.reshape(-1, 3).mean(axis=0)
    return Image.fromarray((pixels * 255.0 + 0.5).astype(np.uint8))
