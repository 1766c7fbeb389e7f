"""Images are decoded faithfully to 8-bit RGB or refused with a DataError naming the row:
16-bit grey scaled, transparency on white, palette and CMYK converted, oversize images
refused from their header alone, large ones downscaled at load, hostile files refused."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mmpo.data import DataError
from mmpo.data.images import LOAD_PIXELS, image_size, load_image, loaded_size


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, pixels: bytes = b"", bit_depth: int = 8, color_type: int = 2) -> bytes:
    """A PNG written by hand: any declared size (the pixel data may be short), 16-bit too."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(pixels))
            + png_chunk(b"IEND", b""))


def sixteen_bit_png(values: np.ndarray, color_type: int = 0) -> bytes:
    rows = values.reshape(values.shape[0], -1).astype(">u2")
    return png_bytes(values.shape[1], values.shape[0], b"".join(b"\x00" + row.tobytes() for row in rows), 16, color_type)


def test_sixteen_bit_grey_is_scaled_not_saturated(tmp_path):
    """A 0–65535 gradient reads as a 0–255 gradient (Pillow's own RGB conversion clips it:
    99.6 % of the pixels came out white)."""
    gradient = np.linspace(0, 65535, 256 * 16).round().astype(np.uint16).reshape(16, 256)
    path = tmp_path / "grey16.png"
    path.write_bytes(sixteen_bit_png(gradient))
    assert Image.open(path).mode == "I;16"
    pixels = np.asarray(load_image(str(path)))
    assert pixels.shape == (16, 256, 3) and (pixels[..., 0] == pixels[..., 2]).all()
    assert np.abs(pixels[..., 0].astype(int) - gradient // 256).max() == 0  # the high byte
    assert (pixels == 255).mean() < 0.01 and pixels.min() == 0


def test_sixteen_bit_colour_and_32_bit_integer_images(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint16)
    rgb[..., 0], rgb[..., 1] = 65535, 32768
    (tmp_path / "rgb16.png").write_bytes(sixteen_bit_png(rgb, color_type=2))
    assert tuple(np.asarray(load_image(str(tmp_path / "rgb16.png")))[0, 0]) == (255, 128, 0)
    wide = Image.fromarray(np.full((4, 4), 40000, np.int32), "I")
    assert np.asarray(load_image(wide))[0, 0, 0] == 40000 >> 8
    with pytest.raises(DataError, match="outside 0–65535") as err:
        load_image(Image.fromarray(np.full((4, 4), -5, np.int32), "I"), "f.jsonl:3", "image")
    assert err.value.reason == "unsupported_image" and str(err.value).startswith("f.jsonl:3: field 'image'")
    with pytest.raises(DataError, match="floating-point"):
        load_image(Image.new("F", (4, 4), 0.5))


def test_transparency_is_composited_onto_white(tmp_path):
    rgba = Image.new("RGBA", (4, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (255, 0, 0, 255))
    rgba.putpixel((2, 0), (255, 0, 0, 128))
    rgba.save(tmp_path / "a.png")
    pixels = np.asarray(load_image(str(tmp_path / "a.png")))[0]
    assert tuple(pixels[0]) == (255, 255, 255)  # fully transparent: the white background (not black)
    assert tuple(pixels[1]) == (255, 0, 0)
    assert tuple(pixels[2]) == (255, 127, 127)  # half red over white
    grey_alpha = Image.new("LA", (2, 2), (0, 0))
    assert tuple(np.asarray(load_image(grey_alpha))[0, 0]) == (255, 255, 255)


def test_palette_and_cmyk_are_converted(tmp_path):
    palette = Image.new("P", (2, 2), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.save(tmp_path / "p.png")
    assert tuple(np.asarray(load_image(str(tmp_path / "p.png")))[0, 0]) == (10, 200, 30)
    palette.save(tmp_path / "pt.png", transparency=1)
    assert tuple(np.asarray(load_image(str(tmp_path / "pt.png")))[0, 0]) == (255, 255, 255)
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")  # pure red in CMYK
    red = np.asarray(load_image(str(tmp_path / "c.jpg")))[0, 0].astype(int)
    assert red[0] > 240 and red[1] < 15 and red[2] < 15


def test_oversize_image_is_refused_from_its_header(tmp_path):
    """30000×30000 declared in a few hundred bytes: refused (a DataError naming the row,
    skippable) before any pixel is decoded, above and below Pillow's own bomb limit."""
    for side in (30000, 10000):
        path = tmp_path / f"big{side}.png"
        path.write_bytes(png_bytes(side, side, b"\x00" * 100))
        with pytest.raises(DataError, match=r"p.jsonl:4: field 'image': image .*big") as err:
            load_image(str(path), "p.jsonl:4", "image")
        assert err.value.reason == "image_too_large"
        with pytest.raises(DataError) as err:
            image_size(str(path), "p.jsonl:4", "image")
        assert err.value.reason == "image_too_large"
    with pytest.raises(DataError, match=r"is 10000×10000 = 100,000,000 pixels, over the --max_image_pixels limit "
                                        r"of 64,000,000"):
        load_image(str(tmp_path / "big10000.png"))
    with pytest.raises(DataError, match="over the --max_image_pixels limit of 9,999"):
        load_image(Image.new("RGB", (100, 100)), max_pixels=9_999)


def test_large_images_are_downscaled_at_load():
    width, height = 5000, 4000  # 20 MP, legal, over the 16 MP load size
    image = load_image(Image.new("RGB", (width, height), (10, 20, 30)))
    assert image.size == loaded_size(width, height) == image_size(Image.new("RGB", (width, height)))
    assert image.size[0] * image.size[1] <= LOAD_PIXELS
    assert abs(image.size[0] / image.size[1] - width / height) < 1e-3
    assert tuple(np.asarray(image)[100, 100]) == (10, 20, 30)
    assert loaded_size(640, 480) == (640, 480)


@pytest.mark.parametrize("damage", ["truncate", "flip_header", "garbage", "empty", "zero_size"])
def test_hostile_files_are_data_errors(tmp_path, damage):
    good = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(good, "PNG")
    data = good.getvalue()
    bad = {"truncate": data[: len(data) // 2], "flip_header": data[:16] + bytes([data[16] ^ 0xFF]) + data[17:],
           "garbage": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "empty": b"",
           "zero_size": png_bytes(0, 5)}[damage]
    path = tmp_path / "bad.png"
    path.write_bytes(bad)
    with pytest.raises(DataError, match=r"x.jsonl:2: field 'image': ") as err:
        load_image(str(path), "x.jsonl:2", "image")
    assert err.value.reason in ("unreadable_image", "image_too_large")
