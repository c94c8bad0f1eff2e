"""The bytes sent for an image: :func:`encode_image` (:mod:`poseserve.client` re-exports it) turns a path, encoded
bytes, a numpy array or a PIL image into the upload of ``POST /v1/pose`` and of a stream session's frames.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["encode_image"]


def _to_pil(image: Any, rgb: bool):
    """A PIL RGB image of a numpy array (BGR unless ``rgb``) or a PIL image; None for other types.

    Raises:
        ValueError: an array that is not uint8 [H, W, 3].
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"an image array must be uint8 [H, W, 3] ({'RGB' if rgb else 'BGR'}), got {image.dtype} "
                f"{list(image.shape)}; convert grey or BGRA images with cv2.cvtColor first"
            )
        from PIL import Image

        return Image.fromarray(np.ascontiguousarray(image if rgb else image[..., ::-1]), "RGB")
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow comes with the client extra
        return None
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    return None


def _encoded_size(data: bytes) -> tuple[int, int]:
    """Width and height of encoded image bytes after EXIF orientation, read from the header only (0, 0 when PIL
    cannot tell); what the server's answer is in pixels of."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - the server says what is wrong with the bytes
        return 0, 0
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def encode_image(image: Any, rgb: bool = False, image_format: str = "png") -> tuple[bytes, str, tuple[int, int]]:
    """The bytes sent for ``image``, their Content-Type and the image's (width, height) in pixels.

    Args:
        image: a path (``str`` / ``os.PathLike``) or encoded bytes (JPEG, PNG, WebP, BMP: sent unchanged), a uint8
            [H, W, 3] numpy array (BGR, OpenCV's order, unless ``rgb``) or a PIL image (converted to RGB).
        rgb: a numpy ``image`` is RGB.
        image_format: how arrays and PIL images are encoded: ``"png"`` (lossless: the server sees exactly these
            pixels) or ``"jpeg"`` (quality 95: smaller, slightly different pixels).

    Raises:
        OSError: a path that cannot be read.
        ValueError: an array that is not uint8 [H, W, 3], an unknown ``image_format``.
        TypeError: another type.
    """
    if isinstance(image, (str, os.PathLike)):
        image = Path(image).expanduser().read_bytes()
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        return data, "application/octet-stream", _encoded_size(data)
    pil = _to_pil(image, rgb)
    if pil is None:
        raise TypeError(
            f"cannot send an image given as {type(image).__name__}: pass a path, bytes, a uint8 [H, W, 3] numpy "
            "array or a PIL image"
        )
    buf = io.BytesIO()
    if image_format == "png":
        pil.save(buf, format="PNG", compress_level=1)
        ctype = "image/png"
    elif image_format in ("jpeg", "jpg"):
        pil.save(buf, format="JPEG", quality=95)
        ctype = "image/jpeg"
    else:
        raise ValueError(f"image_format must be 'png' or 'jpeg', not {image_format!r}")
    return buf.getvalue(), ctype, pil.size
