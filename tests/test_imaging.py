"""Safe decoding: odd formats become RGB uint8, broken ones raise one typed error naming the input."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from benchmarks.synthetic import bomb_png, encode, png_bytes, rgb_array, truncated_jpeg
from features.imaging import ImageDecodeError, decode_image


def test_rgb_png_round_trips_exactly():
    array = rgb_array(3)
    out = decode_image(encode(Image.fromarray(array)))
    assert out.dtype == np.uint8 and out.shape == (32, 32, 3)
    np.testing.assert_array_equal(out, array)


def test_path_and_file_object_give_the_same_pixels(tmp_path):
    data = png_bytes(5)
    path = tmp_path / "a.png"
    path.write_bytes(data)
    np.testing.assert_array_equal(decode_image(path), decode_image(io.BytesIO(data)))
    np.testing.assert_array_equal(decode_image(str(path)), decode_image(data))


def test_alpha_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red, fully transparent except one opaque pixel
    rgba[0, 0, 3] = 255
    out = decode_image(encode(Image.fromarray(rgba, "RGBA")))
    assert tuple(out[0, 0]) == (200, 0, 0)
    assert tuple(out[1, 1]) == (255, 255, 255)


def test_half_transparent_grey_alpha_blends_with_white():
    la = Image.new("LA", (2, 2), (0, 128))
    out = decode_image(encode(la))
    assert abs(int(out[0, 0, 0]) - 127) <= 1 and out.shape == (2, 2, 3)


def test_palette_with_transparency():
    p = Image.new("P", (3, 3), 0)
    p.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    p.info["transparency"] = 0
    out = decode_image(encode(p))
    assert tuple(out[1, 1]) == (255, 255, 255)
    p2 = Image.new("P", (3, 3), 0)
    p2.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    assert tuple(decode_image(encode(p2))[0, 0]) == (10, 20, 30)


def test_sixteen_bit_grey_uses_the_full_range():
    values = np.array([[0, 32896, 65535]], dtype=np.uint16)
    img = Image.fromarray(values)  # mode I;16
    out = decode_image(encode(img))
    assert out.shape == (1, 3, 3)
    assert list(out[0, :, 0]) == [0, 128, 255]


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red
    out = decode_image(encode(cmyk, "JPEG", quality=95))
    r, g, b = (int(v) for v in out[4, 4])
    assert r > 230 and g < 30 and b < 30


def test_exif_orientation_is_applied():
    array = np.zeros((10, 20, 3), dtype=np.uint8)
    array[0, 0] = (255, 0, 0)  # red in the top-left corner
    img = Image.fromarray(array)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = decode_image(encode(img, "PNG", exif=exif))
    assert out.shape == (20, 10, 3)
    assert out[0, -1, 0] > 200  # the red corner moved to the top-right


def test_animated_gif_gives_the_first_frame():
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    out = decode_image(buffer.getvalue())
    assert out[0, 0, 0] > 200 and out[0, 0, 2] < 50


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not an image"),
        (truncated_jpeg(), "corrupt or truncated"),
        (bomb_png(), "decompression bomb"),
    ],
)
def test_bad_inputs_raise_one_typed_error_naming_the_input(data, reason):
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data, name="upload.jpg")
    assert info.value.name == "upload.jpg"
    assert reason in info.value.reason
    assert str(info.value).startswith("upload.jpg: ")


def test_pixel_limit_is_configurable():
    data = png_bytes(1, size=32)
    with pytest.raises(ImageDecodeError, match="exceeds the limit of 1,000"):
        decode_image(data, max_pixels=1000)
    assert decode_image(data, max_pixels=1024).shape == (32, 32, 3)


def test_special_files_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageDecodeError, match="not a regular file"):
        decode_image(fifo)
    with pytest.raises(ImageDecodeError, match="cannot read file"):
        decode_image(tmp_path / "missing.jpg")


def test_arrays_pass_through_and_are_checked():
    gray = np.full((3, 5), 7, dtype=np.uint8)
    assert decode_image(gray).shape == (3, 5, 3)
    with pytest.raises(ImageDecodeError, match="uint8"):
        decode_image(np.zeros((3, 3, 3), dtype=np.float32))
