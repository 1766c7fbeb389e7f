"""Image paths that cannot escape their dataset's root, and image loading that turns a
missing or broken file into a :class:`DataError` naming the row."""

from __future__ import annotations

import os
from typing import Literal

from PIL import Image, UnidentifiedImageError

from mmpo.data.schema import DataError, ImageSource

ImageCheck = Literal["full", "exists", "none"]


def resolve_image_path(path: str, root: str, location: str, field: str) -> str:
    """``root/path`` made absolute, refusing absolute paths and ``..`` tricks (symlinks
    included) that leave ``root``."""
    if not isinstance(path, str) or not path.strip():
        raise DataError(location, field, f"must be a non-empty image path, got {path!r}", "wrong_type")
    root_real = os.path.realpath(root)
    full = os.path.realpath(os.path.join(root_real, path))
    if os.path.commonpath([root_real, full]) != root_real:
        raise DataError(
            location, field, f"image path {path!r} escapes the dataset root {root_real}", "path_escapes_root"
        )
    return full


def check_image(path: str, location: str, field: str, mode: ImageCheck) -> None:
    """``mode='exists'`` checks the file is there; ``'full'`` also decodes every pixel,
    catching truncated and non-image files before training starts."""
    if mode == "none":
        return
    if not os.path.isfile(path):
        raise DataError(location, field, f"image file not found: {path}", "missing_image")
    if mode == "full":
        load_image(path, location, field)


def load_image(source: ImageSource, location: str = "", field: str = "image") -> Image.Image:
    """The image as RGB, fully decoded. A broken file raises :class:`DataError`."""
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    try:
        with Image.open(source) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError:
        raise DataError(location, field, f"image file not found: {source}", "missing_image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(location, field, f"cannot read image {source}: {exc}", "unreadable_image") from None
