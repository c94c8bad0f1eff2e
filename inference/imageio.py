"""Image decoding from bytes, with limits checked before the full decode.

Pillow reads the header (format, size) first; the byte limit and the pixel limit (decompression
bombs) are checked before any pixel is decoded. EXIF orientation is applied. Grayscale, alpha,
palette, CMYK and 16-bit images come out as 8-bit 3-channel RGB.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ImageDecodeError, PayloadTooLargeError, UnsupportedMediaTypeError

#: Pillow format names the service accepts. MPO is a JPEG with extra frames (what many phones and cameras
#: write); its first frame, the main image, is decoded.
SUPPORTED_FORMATS: frozenset[str] = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP"})
#: Content-Types accepted for a raw image body (multipart uploads are checked by content).
SUPPORTED_CONTENT_TYPES: frozenset[str] = frozenset(
    {"image/jpeg", "image/jpg", "image/png", "image/webp", "image/bmp", "image/x-ms-bmp", "application/octet-stream"}
)

# Our own pixel limit replaces Pillow's global one (which warns at ~89 Mpx and raises at 2x that).
Image.MAX_IMAGE_PIXELS = None


#: Rows converted at a time for 16-bit and float images (bounds the temporaries, not the result).
_GRAY_ROWS = 256


def _gray_to_rgb8(img: Image.Image) -> np.ndarray:
    """A 16/32-bit integer (``I;16*``, ``I``: 0..65535 -> 0..255, round to nearest) or float (``F``: 0..255) Pillow
    image -> uint8 [H, W, 3], a band of rows at a time: no float64 copy of the whole image (a 50 Mpx 16-bit PNG of a
    few hundred KB would otherwise cost about 1.5 GB of temporaries)."""
    src = np.asarray(img)
    out = np.empty((*src.shape, 3), np.uint8)
    for r in range(0, src.shape[0], _GRAY_ROWS):
        band = src[r : r + _GRAY_ROWS]
        if img.mode == "F":
            v = np.clip(np.rint(band), 0, 255)
        else:  # (x + 128) // 257 == round(x / 257) for 0 <= x <= 65535 (x / 257 is never a half: 257 is odd)
            v = (np.clip(band, 0, 65535).astype(np.uint32) + 128) // 257
        out[r : r + _GRAY_ROWS] = v.astype(np.uint8)[..., None]
    return out


def _to_rgb8(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> uint8 [H, W, 3] RGB. 16/32-bit integer images are scaled from 0..65535."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode.startswith("I") or mode == "F":  # I;16, I;16B, I;16L, I (32-bit holding 16-bit PNG data), F
        return _gray_to_rgb8(img)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def decode_image(
    data: bytes,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
    before_decode: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Decode image bytes to an RGB array.

    Args:
        data: the encoded file (JPEG or MPO, PNG, WebP or BMP).
        max_bytes: reject larger inputs before parsing (None: no limit).
        max_pixels: reject images with width x height above this before decoding pixels.
        before_decode: called with (width, height) after the header checks and before any pixel is decoded
            (admission control reserves the decoded pixels there; it may raise to stop the decode).

    Returns:
        uint8 [H, W, 3], RGB, EXIF orientation applied (H, W are the displayed size).

    Raises:
        PayloadTooLargeError: over ``max_bytes`` or ``max_pixels``.
        UnsupportedMediaTypeError: a real image in a format outside :data:`SUPPORTED_FORMATS`.
        ImageDecodeError: empty, not an image, corrupt or truncated.
    """
    if not data:
        raise ImageDecodeError("empty body: no image bytes received")
    if max_bytes is not None and len(data) > max_bytes:
        raise PayloadTooLargeError(f"image is {len(data)} bytes, the limit is {max_bytes} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(
            "cannot identify an image in the uploaded bytes (JPEG, PNG, WebP, BMP accepted)"
        ) from exc
    except Exception as exc:  # Pillow raises many types for corrupt headers
        raise ImageDecodeError(f"cannot read the image header: {exc}") from exc
    with img:
        if img.format not in SUPPORTED_FORMATS:
            raise UnsupportedMediaTypeError(f"image format {img.format} is not supported; send JPEG, PNG, WebP or BMP")
        w, h = img.size
        if w <= 0 or h <= 0:
            raise ImageDecodeError(f"image has an empty size {w}x{h}")
        if max_pixels is not None and w * h > max_pixels:
            raise PayloadTooLargeError(f"image is {w}x{h} = {w * h} pixels, the limit is {max_pixels} pixels")
        if before_decode is not None:
            before_decode(w, h)
        try:
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # no copy of the pixels when there is nothing to rotate
            return _to_rgb8(img)
        except Exception as exc:
            raise ImageDecodeError(f"cannot decode the image ({img.format} {w}x{h}): {exc}") from exc
