"""Image decoding: formats, EXIF orientation, mode conversion, limits before decode."""

import io

import numpy as np
import pytest
from PIL import Image

from core.errors import ImageDecodeError, PayloadTooLargeError, UnsupportedMediaTypeError
from inference.imageio import decode_image


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _gradient(w=64, h=48) -> np.ndarray:
    x = np.zeros((h, w, 3), np.uint8)
    x[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None]
    x[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    x[..., 2] = 200
    return x


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "WEBP", "JPEG"])
def test_decodes_each_supported_format_to_rgb(fmt):
    ref = _gradient()
    kw = {"lossless": True} if fmt == "WEBP" else ({"quality": 98} if fmt == "JPEG" else {})
    out = decode_image(_encode(Image.fromarray(ref), fmt, **kw))
    assert out.dtype == np.uint8 and out.shape == ref.shape
    tol = 6 if fmt == "JPEG" else 0
    assert np.abs(out.astype(int) - ref).max() <= tol  # channel order kept: RGB in, RGB out


def test_real_coco_jpeg(coco_tiny):
    out = decode_image((coco_tiny / "000000000785.jpg").read_bytes())
    assert out.shape == (425, 640, 3)


def test_exif_orientation_is_applied():
    ref = _gradient(64, 48)
    img = Image.fromarray(ref)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    out = decode_image(_encode(img, "JPEG", exif=exif.tobytes(), quality=98))
    assert out.shape == (64, 48, 3)  # width and height swapped
    np.testing.assert_allclose(out.astype(int), np.rot90(ref, k=-1).astype(int), atol=8)


@pytest.mark.parametrize(
    "mode, make",
    [
        ("L", lambda: Image.fromarray(np.full((10, 12), 77, np.uint8), "L")),
        (
            "RGBA",
            lambda: Image.fromarray(
                np.dstack([np.full((10, 12, 3), 77, np.uint8), np.zeros((10, 12), np.uint8)]), "RGBA"
            ),
        ),
        ("P", lambda: Image.fromarray(np.full((10, 12, 3), 77, np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE)),
        ("LA", lambda: Image.fromarray(np.full((10, 12), 77, np.uint8), "L").convert("LA")),
    ],
)
def test_modes_become_8bit_3_channel(mode, make):
    img = make()
    assert img.mode == mode
    out = decode_image(_encode(img, "PNG"))
    assert out.shape == (10, 12, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - 77).max() <= 1


def test_16bit_grayscale_is_scaled_not_clipped():
    arr = np.full((8, 8), 65535 // 2, np.uint16)
    arr[0, 0] = 65535
    img = Image.fromarray(arr)
    out = decode_image(_encode(img, "PNG"))
    assert out.shape == (8, 8, 3)
    assert out[1, 1, 0] in (127, 128) and out[0, 0, 0] == 255


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_16bit_and_float_images_convert_exactly_in_bounded_memory(mode):
    """Round to nearest of x / 257 (float64 reference) for every 16-bit value; the numpy memory of the conversion
    is the result plus Pillow's copy, not float64 temporaries of the whole image (tracemalloc sees numpy's)."""
    import tracemalloc

    from inference.imageio import _to_rgb8

    values = np.arange(65536, dtype=np.int64).reshape(256, 256)
    if mode == "F":
        img = Image.fromarray((values % 300).astype(np.float32) - 20.25)
        ref = np.clip(np.rint((values % 300) - 20.25), 0, 255)
    else:
        img = Image.fromarray(values.astype(np.uint16 if mode == "I;16" else np.int32))
        ref = np.clip(np.rint(values / 257.0), 0, 255)
    assert img.mode == mode
    out = _to_rgb8(img)
    assert out.dtype == np.uint8 and out.shape == (256, 256, 3)
    np.testing.assert_array_equal(out, np.repeat(ref.astype(np.uint8)[..., None], 3, axis=2))

    big = Image.new(mode, (2000, 1500))
    bytes_per_pixel = {"I;16": 2, "I": 4, "F": 4}[mode]
    tracemalloc.start()
    _to_rgb8(big)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Pillow's bytes and numpy's array of them, the uint8 result, one band of temporaries (a float64 conversion of
    # the whole image: 25+ bytes per pixel)
    assert peak < (2 * bytes_per_pixel + 3 + 1) * big.width * big.height, peak / (big.width * big.height)


def test_byte_limit_checked_first():
    data = _encode(Image.fromarray(_gradient()), "PNG")
    with pytest.raises(PayloadTooLargeError, match="bytes"):
        decode_image(data, max_bytes=len(data) - 1)


@pytest.mark.slow
def test_decompression_bomb_rejected_before_decode():
    bomb = _encode(Image.new("1", (30000, 30000)), "PNG")  # ~100 kB of zeros, 900 Mpx
    assert len(bomb) < 1_000_000
    with pytest.raises(PayloadTooLargeError, match="pixels"):
        decode_image(bomb, max_pixels=50_000_000)


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_garbage_is_a_decode_error(data):
    with pytest.raises(ImageDecodeError):
        decode_image(data)


def test_truncated_jpeg_is_a_decode_error(coco_tiny):
    data = (coco_tiny / "000000000785.jpg").read_bytes()
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 3])


def test_unsupported_format_is_415_class():
    with pytest.raises(UnsupportedMediaTypeError, match="GIF"):
        decode_image(_encode(Image.fromarray(_gradient()), "GIF"))
