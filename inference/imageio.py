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


#: The EXIF tag of the image orientation (1: as stored).
_EXIF_ORIENTATION = 0x0112

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
    return decode_image_reduced(data, max_bytes, max_pixels, before_decode, None)[0]


#: JPEG DCT scaling factors libjpeg offers (Pillow ``Image.draft``), largest first.
_DRAFT_FACTORS = (8, 4, 2)


def draft_factor(width: int, height: int, min_side: int | None) -> int:
    """The JPEG reduction factor for a ``width`` x ``height`` image: the largest of 8, 4, 2 that keeps the shorter side
    at least ``min_side`` pixels, else 1 (None or 0: 1)."""
    if not min_side:
        return 1
    return next((r for r in _DRAFT_FACTORS if min(width, height) // r >= min_side), 1)


def decode_image_reduced(
    data: bytes,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
    before_decode: Callable[[int, int], None] | None = None,
    min_side: int | None = None,
) -> tuple[np.ndarray, int, tuple[int, int]]:
    """:func:`decode_image`, decoding a large JPEG at 1/2, 1/4 or 1/8 of its size while its shorter side stays at least
    ``min_side`` pixels (libjpeg's DCT scaling through Pillow's ``Image.draft``: the reduced image comes out of the
    decoder directly, so the full-size pixels are never produced).

    Pixel ``j`` of the reduced image averages original pixels ``r*j .. r*j + r - 1``, so a point at ``x`` in it is at
    ``r * x + (r - 1) / 2`` in the original (:func:`to_original_pixels`). Only JPEG / MPO images without an EXIF
    rotation or mirror are reduced (a mirror of a width that is not a multiple of ``r`` would shift that mapping).

    Args:
        data, max_bytes, max_pixels, before_decode: as :func:`decode_image` (the limits apply to the original size,
            and ``before_decode`` gets the original size).
        min_side: the shorter side the reduced image keeps at least (None or 0: never reduce).

    Returns:
        (uint8 [H', W', 3] RGB, the factor r: 1, 2, 4 or 8, the original (W, H) as displayed); H' = ceil(H / r),
        W' = ceil(W / r).

    Raises:
        as :func:`decode_image`.
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
        r = draft_factor(w, h, min_side) if img.format in ("JPEG", "MPO") else 1
        try:
            if r > 1 and img.getexif().get(_EXIF_ORIENTATION, 1) == 1:
                img.draft("RGB", (w // r, h // r))
                r = round(w / img.size[0]) if img.size != (w, h) else 1
            else:
                r = 1
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # no copy of the pixels when there is nothing to rotate
            rgb = _to_rgb8(img)
            return rgb, r, ((w, h) if r > 1 else (rgb.shape[1], rgb.shape[0]))
        except Exception as exc:
            raise ImageDecodeError(f"cannot decode the image ({img.format} {w}x{h}): {exc}") from exc


def to_original_pixels(xy: np.ndarray, factor: int) -> np.ndarray:
    """Points [..., 2] (x, y) in a reduced decode's pixels -> original-image pixels: ``r * x + (r - 1) / 2``
    (:func:`decode_image_reduced`); float32."""
    out = np.asarray(xy, np.float32)
    return out if factor == 1 else out * np.float32(factor) + np.float32((factor - 1) / 2)


def to_reduced_pixels(xy: np.ndarray, factor: int) -> np.ndarray:
    """The inverse of :func:`to_original_pixels`: original-image pixels -> a reduced decode's pixels; float32."""
    out = np.asarray(xy, np.float32)
    return out if factor == 1 else (out - np.float32((factor - 1) / 2)) / np.float32(factor)
