"""Image paths that cannot escape their dataset's root, and image loading that decodes an
image faithfully to 8-bit RGB or refuses it with a :class:`DataError` naming the row.

Decoding rules (every loader, the collator and ``mmpo pairs`` go through :func:`load_image`):

- 16-bit grey (``I;16*``) and 32-bit integer (``I``, read as 0–65535) images keep their
  high byte, the 16 → 8 bit rule libpng and Pillow use for 16-bit colour (which Pillow
  already decodes that way); a 32-bit image with values outside 0–65535 and floating-point
  images (``F``, no defined range) are refused.
- Transparency (an alpha channel, or a palette / tRNS transparent colour) is composited
  onto **white**, the background a viewer shows a document on; black would turn dark
  line art and logos on transparent backgrounds into a black square.
- Palette, CMYK, YCbCr, bilevel and the other Pillow modes are converted to RGB.
- An image of more than ``max_pixels`` (:data:`MAX_IMAGE_PIXELS`, 64 megapixels) is
  refused before a pixel is decoded: a small file can declare an enormous image.
- An image of more than :data:`LOAD_PIXELS` (16 megapixels, 4096 × 4096) is downscaled at
  load, keeping its aspect ratio, to that many pixels. Every supported processor resizes below that anyway (Qwen2-VL's default
  ceiling is 12.8 MP, LLaVA's 0.1 MP), so what the model sees is unchanged, and a loaded
  image never holds more than 48 MB.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from typing import Literal

import numpy as np
from PIL import Image

from mmpo.data.schema import DataError, ImageSource

ImageCheck = Literal["full", "exists", "none"]

MAX_IMAGE_PIXELS = 64_000_000  # refused above this (--max_image_pixels)
LOAD_PIXELS = 4096 * 4096  # downscaled to this at load
PILLOW_MAX_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)  # Pillow refuses larger images outright
BACKGROUND = (255, 255, 255)  # transparency is composited onto white
SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N")
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa")


def resolve_image_path(path: str, root: str, location: str, field: str, allowed_roots: tuple[str, ...] = ()) -> str:
    """``root/path`` made absolute, refusing ``..`` tricks (symlinks included) that leave
    ``root``. An absolute path outside ``root`` is refused unless it lies under one of
    ``allowed_roots`` (``--image_roots``), so a data file cannot make training read any
    file on the machine."""
    if not isinstance(path, str) or not path.strip():
        raise DataError(location, field, f"must be a non-empty image path, got {path!r}", "wrong_type")
    if "\x00" in path:
        raise DataError(location, field, f"image path {path!r} contains a NUL byte", "wrong_type")
    if os.path.isabs(path):
        full = os.path.realpath(path)
        for allowed in (root, *allowed_roots):
            allowed_real = os.path.realpath(allowed)
            if os.path.commonpath([allowed_real, full]) == allowed_real:
                return full
        allowed = f" (allowed now: {', '.join(allowed_roots)})" if allowed_roots else ""
        raise DataError(
            location, field, f"image path {path!r} is absolute and outside the dataset root {os.path.realpath(root)}; "
            f"such paths are refused by default{allowed}. Allow them with --image_roots naming the folders they may "
            f"come from (e.g. --image_roots {os.path.dirname(path) or '/'}), or make the paths relative to the data "
            "file", "absolute_image_path",
        )
    root_real = os.path.realpath(root)
    full = os.path.realpath(os.path.join(root_real, path))
    if os.path.commonpath([root_real, full]) != root_real:
        raise DataError(
            location, field, f"image path {path!r} escapes the dataset root {root_real}", "path_escapes_root"
        )
    return full


def split_roots(value: str | None) -> list[str]:
    """``--image_roots a,b`` as a list of folders; one that is not a folder is an error."""
    roots = [r.strip() for r in (value or "").split(",") if r.strip()]
    for root in roots:
        if not os.path.isdir(root):
            raise ValueError(f"--image_roots: {root!r} is not a folder")
    return roots


def check_image(path: ImageSource, location: str, field: str, mode: ImageCheck,
                max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """``mode='exists'`` checks the file is there; ``'full'`` also decodes every pixel,
    catching truncated, oversize and non-image files before training starts. An embedded
    image (bytes, PIL) is decoded in ``'full'`` mode, into a copy that is not kept."""
    if mode == "none":
        return
    if not isinstance(path, str):
        if mode == "full":
            load_image(path, location, field, max_pixels)
        return
    if not os.path.isfile(path):
        raise DataError(location, field, f"image file not found: {path}", "missing_image")
    if mode == "full":
        load_image(path, location, field, max_pixels)


def loaded_size(width: int, height: int) -> tuple[int, int]:
    """The size :func:`load_image` gives an image of ``width × height``: unchanged up to
    :data:`LOAD_PIXELS`, else scaled down (aspect ratio kept) to fit that many pixels."""
    if width * height <= LOAD_PIXELS:
        return width, height
    scale = math.sqrt(LOAD_PIXELS / (width * height))
    return max(1, int(width * scale)), max(1, int(height * scale))


def image_size(source: ImageSource, location: str = "", field: str = "image",
               max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """The size the image will have once loaded, read from its header (no pixels decoded);
    the same refusals as :func:`load_image` for unreadable and oversize images."""
    if isinstance(source, Image.Image):
        _check_pixels(source, source, location, field, max_pixels)
        return loaded_size(*source.size)
    with _opened(source, location, field) as img:
        _check_pixels(img, source, location, field, max_pixels)
        return loaded_size(*img.size)


def load_image(source: ImageSource, location: str = "", field: str = "image",
               max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """The image as 8-bit RGB, fully decoded, by the rules of the module docstring. A
    broken, oversize or undecodable image raises :class:`DataError`."""
    if isinstance(source, Image.Image):
        return _decode(source, source, location, field, max_pixels)
    with _opened(source, location, field) as img:
        return _decode(img, source, location, field, max_pixels)


class _opened:
    """``Image.open`` whose failures (Pillow raises many kinds on hostile files) are a
    :class:`DataError` naming the row; Pillow's own size warning is left to our limit."""

    def __init__(self, source, location: str, field: str) -> None:
        self.source, self.location, self.field = source, location, field

    def __enter__(self) -> Image.Image:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                self.image = Image.open(io.BytesIO(self.source) if isinstance(self.source, bytes) else self.source)
        except FileNotFoundError:
            raise DataError(self.location, self.field, f"image file not found: {describe(self.source)}",
                            "missing_image") from None
        except Image.DecompressionBombError as exc:
            raise DataError(self.location, self.field, f"image {describe(self.source)} is too large to decode ({exc}); "
                            "shrink it, or skip the row with --skip_invalid_rows", "image_too_large") from None
        except Exception as exc:  # noqa: BLE001 — anything Pillow raises on a bad file
            raise _unreadable(self.source, self.location, self.field, exc) from None
        return self.image

    def __exit__(self, *exc) -> None:
        self.image.close()


def describe(source: ImageSource) -> str:
    """How an error message names an image: its path, or what kind of embedded image it is."""
    if isinstance(source, bytes):
        return f"(embedded, {len(source):,} bytes)"
    if isinstance(source, Image.Image):
        return f"(in memory, {source.width}×{source.height})"
    return str(source)


def _unreadable(source, location: str, field: str, exc: Exception) -> DataError:
    return DataError(location, field, f"cannot read image {describe(source)}: {type(exc).__name__}: {exc}",
                     "unreadable_image")


def _check_pixels(img: Image.Image, source, location: str, field: str, max_pixels: int) -> None:
    width, height = img.size
    if width * height > max_pixels:
        raise DataError(
            location, field,
            f"image {describe(source)} is {width}×{height} = {width * height:,} pixels, over the "
            f"--max_image_pixels limit of {max_pixels:,}; shrink it, raise the limit, "
            "or skip the row with --skip_invalid_rows",
            "image_too_large",
        )
    if width < 1 or height < 1:
        raise DataError(location, field, f"image {describe(source)} is {width}×{height}, which has no pixels",
                        "unreadable_image")


def _decode(img: Image.Image, source, location: str, field: str, max_pixels: int) -> Image.Image:
    _check_pixels(img, source, location, field, max_pixels)
    target = loaded_size(*img.size)
    try:
        img.load()
        img = eight_bit(img)
        if img.size != target:  # before compositing: the smaller image is the one copied
            img = img.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
        return on_background(img)
    except UnsupportedImage as exc:
        raise DataError(location, field, f"image {describe(source)}: {exc}", "unsupported_image") from None
    except Exception as exc:  # noqa: BLE001 — truncated data, bad chunks, unsupported codecs…
        raise _unreadable(source, location, field, exc) from None


class UnsupportedImage(ValueError):
    """A decoded image with no faithful 8-bit RGB reading."""


def eight_bit(img: Image.Image) -> Image.Image:
    """A decoded image of any Pillow mode as 8-bit L, RGB or RGBA (the module docstring's rules)."""
    mode = img.mode
    if mode in SIXTEEN_BIT_GREY or mode == "I":
        values = np.asarray(img)
        if mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
            raise UnsupportedImage("a 32-bit integer image with values outside 0–65535 has no 8-bit reading; "
                                   "save it as an 8- or 16-bit image")
        return Image.fromarray((values >> 8).astype(np.uint8), "L")
    if mode == "F":
        raise UnsupportedImage("a floating-point image has no defined value range; save it as an 8- or 16-bit image")
    if mode in ("L", "RGB", "RGBA") and "transparency" not in img.info:
        return img
    if mode in ALPHA_MODES or "transparency" in img.info:
        return img.convert("RGBA")
    try:
        return img.convert("RGB")
    except ValueError as exc:
        raise UnsupportedImage(f"mode {mode} cannot be converted to RGB ({exc})") from None


def on_background(img: Image.Image) -> Image.Image:
    """An 8-bit image as RGB, its transparency composited onto :data:`BACKGROUND`."""
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")

