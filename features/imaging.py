"""Safe image decoding: the one function every path (dataset files, uploads) goes through."""

from __future__ import annotations

import functools
import io
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from cbir.core.config import DEFAULT_MAX_PIXELS
from cbir.core.errors import CbirError

ImageSource = bytes | bytearray | memoryview | str | os.PathLike | BinaryIO | np.ndarray

# File suffixes Pillow can decode (HEIC/HEIF through pillow-heif) that folder walks take as images.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
    | {".heic", ".heif", ".avif"}
)

# The short side decode_image reduces large images to by default: enough for every extractor
# we have or plan (CIFAR nets 32, pretrained backbones 224-256, full-resolution SIFT <= 1024).
DEFAULT_MIN_SIDE = 1024

# Hard ceiling on the size an image may declare, whatever the format: JPEG decodes reduced, so
# CBIR_MAX_PIXELS bounds its memory but not its decoding time, which follows the declared size.
MAX_DECLARED_PIXELS = 1_000_000_000

# Formats Pillow can decode at 1/2, 1/4 or 1/8 scale (DCT scaling, Image.draft).
_REDUCIBLE = frozenset({"JPEG", "MPO"})
# ISO-BMFF brands of HEIC/HEIF files, to name the missing plugin when one cannot be opened.
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")


class ImageDecodeError(CbirError):
    """An image could not be decoded; `name` is the file or upload, `reason` says why."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def decode_image(
    source: ImageSource,
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int | None = DEFAULT_MIN_SIDE,
    max_declared_pixels: int = MAX_DECLARED_PIXELS,
) -> np.ndarray:
    """Decode `source` to an RGB image, uint8 array of shape (height, width, 3).

    Accepts encoded bytes, a path, a binary file object, or an already decoded array
    (uint8, (h, w) or (h, w, 3|4)). EXIF orientation is applied, alpha is composited
    on white, 16-bit, CMYK and palette images are converted, animated images give their
    first frame. Images larger than needed come back reduced so that their short side stays
    at least `min_side` (never enlarged; None keeps full resolution): JPEG is decoded
    reduced (DCT scaling), other formats are reduced after decoding. `max_pixels` bounds the
    pixels actually decoded (a JPEG's reduced size, any other format's declared size), checked
    before decoding; `max_declared_pixels` bounds the declared size of every format. Every
    failure raises ImageDecodeError naming `name` (or the path).
    """
    label = name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<image>")
    if isinstance(source, np.ndarray):
        return _from_array(source, label)
    data = _read_bytes(source, label)
    if not data:
        raise ImageDecodeError(label, "empty file (0 bytes)")
    _register_heif_opener()
    try:
        with _open(data, label, max_declared_pixels) as img:
            if min_side and img.format in _REDUCIBLE:
                img.draft(img.mode, (min_side, min_side))  # size is now what will be decoded
            width, height = img.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    label,
                    f"decompression bomb refused: {width}x{height} = {width * height:,} pixels "
                    f"to decode exceeds the limit of {max_pixels:,} "
                    "(raise CBIR_MAX_PIXELS to allow it)",
                )
            if getattr(img, "is_animated", False):
                img.seek(0)
            img.load()
            if img.getexif().get(ExifTags.Base.Orientation, 1) != 1:
                ImageOps.exif_transpose(img, in_place=True)
            return _to_rgb(img, min_side)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(label, f"decompression bomb refused: {exc}") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(label, _unrecognised(data)) from None
    except Exception as exc:
        raise ImageDecodeError(label, f"corrupt or truncated image ({exc})") from None


def _open(data: bytes, label: str, max_declared_pixels: int) -> Image.Image:
    """Open `data` lazily (header only), refusing a declared size over `max_declared_pixels`."""
    # Pillow's own bomb check runs inside Image.open, before ours; it must not refuse what we
    # allow, and its warning (for sizes we refuse next anyway) must not reach the console.
    if Image.MAX_IMAGE_PIXELS is not None and max_declared_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_declared_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = Image.open(io.BytesIO(data))
    width, height = img.size
    if width * height > max_declared_pixels:
        img.close()
        raise ImageDecodeError(
            label,
            f"decompression bomb refused: the image declares {width}x{height} = "
            f"{width * height:,} pixels, over the hard ceiling of {max_declared_pixels:,}",
        )
    return img


@functools.cache
def _register_heif_opener() -> bool:
    """Let Pillow open HEIC/HEIF through pillow-heif, once per process; False when not installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    # libheif applies the HEIF orientation itself and resets the EXIF tag, so no double turn.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    return True


def _unrecognised(data: bytes) -> str:
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS and not _register_heif_opener():
        return "HEIC/HEIF image, but pillow-heif is not installed (pip install pillow-heif)"
    return "not an image (format not recognised)"


def _reduce(img: Image.Image, min_side: int | None) -> Image.Image:
    """Box-average `img` by the largest integer factor that keeps its short side >= min_side."""
    factor = min(img.size) // min_side if min_side else 1
    return img.reduce(factor) if factor >= 2 else img


def _read_bytes(source: ImageSource, label: str) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise ImageDecodeError(label, f"cannot read file ({exc.strerror})") from None
        if not stat.S_ISREG(mode):
            raise ImageDecodeError(label, "not a regular file")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ImageDecodeError(label, f"cannot read file ({exc.strerror})") from None
    try:
        return source.read()
    except OSError as exc:
        raise ImageDecodeError(label, f"cannot read stream ({exc})") from None


def _from_array(array: np.ndarray, label: str) -> np.ndarray:
    if array.dtype != np.uint8:
        raise ImageDecodeError(label, f"array must be uint8, got {array.dtype}")
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2))
    if array.ndim == 3 and array.shape[2] == 3:
        return np.ascontiguousarray(array)
    if array.ndim == 3 and array.shape[2] == 4:
        return _to_rgb(Image.fromarray(array, mode="RGBA"))
    raise ImageDecodeError(
        label, f"array must have shape (h, w), (h, w, 3) or (h, w, 4), got {array.shape}"
    )


def _to_rgb(img: Image.Image, min_side: int | None = None) -> np.ndarray:
    """RGB uint8 pixels of `img`, reduced (see _reduce) before the copy into numpy."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _high_depth_gray(_reduce(img, min_side) if mode in ("I", "F") else img)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    elif "transparency" in img.info and mode in ("L", "RGB"):
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    rgb = _reduce(img if img.mode == "RGB" else img.convert("RGB"), min_side)
    array = np.asarray(rgb)
    if array.dtype != np.uint8:
        array = _scale_to_uint8(array)
    return np.ascontiguousarray(array)


def _high_depth_gray(img: Image.Image) -> np.ndarray:
    """16-bit and 32-bit grayscale: scale the full range to 8 bits (Pillow would clip at 255)."""
    gray = _scale_to_uint8(np.asarray(img))
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def _scale_to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "f":
        top = 1.0 if float(np.nanmax(array, initial=0.0)) <= 1.0 else 255.0
        return np.clip(np.nan_to_num(array) * (255.0 / top), 0, 255).round().astype(np.uint8)
    # Integer images deeper than 8 bits are 16-bit in practice (PNG/TIFF): map 0..65535 to 0..255.
    return np.clip(array.astype(np.int64) // 257, 0, 255).astype(np.uint8)


def resize_square(image: np.ndarray, side: int) -> np.ndarray:
    """RGB uint8 (h, w, 3) -> (side, side, 3), contiguous; area averaging when either side
    shrinks, bilinear otherwise. Non-square images are squashed (the aspect is not kept)."""
    import cv2

    h, w = image.shape[:2]
    if (h, w) == (side, side):
        return np.ascontiguousarray(image)
    interpolation = cv2.INTER_AREA if h > side or w > side else cv2.INTER_LINEAR
    return cv2.resize(image, (side, side), interpolation=interpolation)
