"""Hostile and odd input, in-process over the real request flow (fake models): a generated corpus of more than a
hundred malformed or unusual requests, property-based tests of box parsing and image decoding (Hypothesis), and
an OpenAPI-driven fuzzer (schemathesis) against the app's own schema. Never a 500, always a JSON message, and
the server answers /healthz after each."""

from __future__ import annotations

import io
import json
import struct
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.errors import ImageDecodeError, InvalidParameterError, PayloadTooLargeError, UnsupportedMediaTypeError
from core.settings import Settings
from inference.imageio import decode_image
from service.app import create_app
from service.parsing import parse_bboxes
from tests.fakes import fake_pipeline

MAX_BYTES, MAX_PIXELS = 2_000_000, 20_000_000
SETTINGS = Settings(max_upload_bytes=MAX_BYTES, max_image_pixels=MAX_PIXELS, max_boxes=50, warmup=False)
JPEG_CT = {"Content-Type": "image/jpeg"}


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _mpo() -> bytes:
    """A two-frame MPO (what phones write for depth / burst shots)."""
    frames = [Image.new("RGB", (120, 90), (200, 10, 10)), Image.new("RGB", (120, 90), (10, 200, 10))]
    buf = io.BytesIO()
    frames[0].save(buf, format="MPO", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def _png_claiming(w: int, h: int) -> bytes:
    """A valid PNG signature and IHDR that declares w x h, then no pixel data."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def _corpus() -> list[tuple[str, int, str, dict]]:
    """(name, status, error code, request kwargs): every row of issue 10's table plus generated variants."""
    rng = np.random.default_rng(0)
    good = _save(Image.new("RGB", (320, 240), (90, 60, 30)), "JPEG")
    cases: list[tuple[str, int, str, dict]] = []
    # bytes that are not an image, and truncated images of every accepted format
    for i in range(12):
        junk = rng.integers(0, 256, int(rng.integers(1, 3000)), dtype=np.uint8).tobytes()
        cases.append((f"random bytes {i}", 400, "undecodable_image", {"content": junk, "headers": JPEG_CT}))
    for fmt in ("JPEG", "PNG", "WEBP", "BMP"):
        data = _save(Image.new("RGB", (200, 150), (1, 2, 3)), fmt)
        for cut in (8, 30, len(data) // 2):
            cases.append((f"{fmt} cut at {cut}", 400, "undecodable_image", {"content": data[:cut], "headers": JPEG_CT}))
    cases.append(("empty body", 400, "undecodable_image", {"content": b"", "headers": JPEG_CT}))
    # formats and content types we do not take
    for fmt in ("GIF", "TIFF", "ICO", "PPM", "TGA"):
        data = _save(Image.new("RGB", (32, 32)), fmt)
        cases.append((f"{fmt} image", 415, "unsupported_media_type", {"content": data, "headers": JPEG_CT}))
    for ct in ("text/plain", "application/json", "image/gif", "video/mp4", "multipart/mixed; boundary=x"):
        cases.append(
            (f"content-type {ct}", 415, "unsupported_media_type", {"content": good, "headers": {"Content-Type": ct}})
        )
    cases.append(("no content-type", 415, "unsupported_media_type", {"content": good}))
    # sizes: bytes, declared pixels (a 1.7 KB-style decompression bomb), extreme aspect ratios that are fine
    cases.append(
        ("too many bytes", 413, "payload_too_large", {"content": b"\xff" * (MAX_BYTES + 1), "headers": JPEG_CT})
    )
    for w, h in ((7000, 7000), (100_000, 300), (30_000, 30_000)):
        cases.append(
            (
                f"PNG header claims {w}x{h}",
                413,
                "payload_too_large",
                {"content": _png_claiming(w, h), "headers": JPEG_CT},
            )
        )
    for w, h in ((10000, 5), (5, 10000), (2000, 1), (1, 2000), (1, 1), (3, 7)):
        data = _save(Image.new("RGB", (w, h), (80, 80, 80)), "PNG")
        cases.append((f"{w}x{h} image", 200, "", {"content": data, "headers": JPEG_CT}))
    # odd but valid images
    odd = {
        "MPO (phone camera)": _mpo(),
        "16-bit grayscale PNG": _save(Image.fromarray(np.full((60, 80), 40000, np.uint16)), "PNG"),
        "palette PNG with transparency": _save(Image.new("P", (60, 80)), "PNG", transparency=0),
        "RGBA WebP": _save(Image.new("RGBA", (60, 80), (1, 2, 3, 4)), "WEBP"),
        "CMYK JPEG": _save(Image.new("CMYK", (60, 80), (1, 2, 3, 4)), "JPEG"),
        "grayscale BMP": _save(Image.new("L", (60, 80), 7), "BMP"),
        "1-bit PNG": _save(Image.new("1", (60, 80), 1), "PNG"),
    }
    for orientation in range(1, 9):  # every EXIF orientation a camera writes
        exif = Image.Exif()
        exif[0x0112] = orientation
        odd[f"JPEG with EXIF orientation {orientation}"] = _save(
            Image.new("RGB", (64, 48), (9, 9, 9)), "JPEG", exif=exif
        )
    odd["JPEG with trailing garbage"] = good + b"\x00garbage" * 10
    for name, data in odd.items():
        cases.append((name, 200, "", {"content": data, "headers": {"Content-Type": "application/octet-stream"}}))
    # boxes: absurd numbers, nesting, types, counts
    bad_boxes = {
        "wrong arity": "[[1, 2, 3]]",
        "not json": "not json",
        "empty box": "[[50, 50, 10, 10]]",
        "zero width": "[[5, 5, 5, 50]]",
        "strings": '[["1", 2, 3, 4]]',
        "booleans": "[[true, 2, 3, 4]]",
        "null": "[[null, 0, 1, 1]]",
        "object": '{"x1": 1}',
        "ragged": "[[0, 0, 1, 1], [0, 0]]",
        "three levels": "[[[0, 0, 1, 1]]]",
        "infinity": "[[1e999, 0, 1, 1]]",
        "-infinity": "[[-1e999, 0, 1, 1]]",
        "NaN literal": "[[NaN, 0, 1, 1]]",
        "float32 overflow": "[[-3e38, -3e38, 3e38, 3e38]]",
        "1e308": "[[0, 0, 1e308, 1e308]]",
        "400-digit integer": f"[[{'9' * 400}, 0, 1, 1]]",
        "5000-digit integer": f"[[0, 0, {'9' * 5000}, 1]]",
        "a string": '"boxes"',
        "a number": "42",
        "too many boxes": json.dumps([[0, 0, 10, 10]] * 51),
        "far coordinates": "[[0, 0, 2e7, 10]]",
    }
    for name, text in bad_boxes.items():
        cases.append(
            (
                f"boxes: {name}",
                422,
                "invalid_parameter",
                {"params": {"boxes": text}, "content": good, "headers": JPEG_CT},
            )
        )
    for name, text in {"one flat box": "[10, 20, 100, 200]", "no boxes": "[]", "empty string": "",
                       "negative coordinates": "[[-50, -50, 10, 10]]", "outside the image": "[[5000, 5000, 5100, 5100]]",
                       "float coordinates": "[[10.5, 20.25, 100.75, 200.125]]"}.items():  # fmt: skip
        cases.append((f"boxes: {name}", 200, "", {"params": {"boxes": text}, "content": good, "headers": JPEG_CT}))
    deep = "[" * 100_000
    cases.append(
        (
            "boxes: deep nesting in the query (head too large)",
            431,
            "headers_too_large",
            {"params": {"boxes": deep[:6000]}, "content": good, "headers": JPEG_CT},
        )
    )
    cases.append(
        (
            "boxes: 100,000-deep nesting in a form field",
            422,
            "invalid_parameter",
            {"files": {"file": ("x.jpg", good, "image/jpeg")}, "data": {"boxes": deep}},
        )
    )
    # query parameters and multipart shapes
    for v in ("maybe", "2", "", "yes please"):
        cases.append(
            (f"render={v!r}", 422, "invalid_parameter", {"params": {"render": v}, "content": good, "headers": JPEG_CT})
        )
    cases.append(("unknown parameter", 200, "", {"params": {"colour": "red"}, "content": good, "headers": JPEG_CT}))
    cases.append(
        ("multipart without file", 422, "invalid_parameter", {"data": {"boxes": "[]"}, "files": {"other": ("a", b"x")}})
    )
    cases.append(
        ("multipart wrong field", 422, "invalid_parameter", {"files": {"image": ("x.jpg", good, "image/jpeg")}})
    )
    cases.append(("multipart empty file", 400, "undecodable_image", {"files": {"file": ("x.jpg", b"", "image/jpeg")}}))
    cases.append(
        (
            "multipart bad boxes",
            422,
            "invalid_parameter",
            {"files": {"file": ("x.jpg", good, "image/jpeg")}, "data": {"boxes": "[[1]]"}},
        )
    )
    cases.append(
        ("multipart text file", 400, "undecodable_image", {"files": {"file": ("x.txt", b"hello", "text/plain")}})
    )
    cases.append(("multipart ok", 200, "", {"files": {"file": ("x.jpg", good, "image/jpeg")}}))
    cases.append(
        (
            "broken multipart",
            422,
            "invalid_parameter",
            {"content": b"--x\r\ngarbage", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
        )
    )
    cases.append(
        (
            "multipart no boundary",
            400,
            "undecodable_image",
            {"content": b"abc", "headers": {"Content-Type": "multipart/form-data"}},
        )
    )
    return cases


CORPUS = _corpus()


def test_the_corpus_is_large_and_covers_every_status():
    assert len(CORPUS) >= 100
    assert {s for _, s, _, _ in CORPUS} == {200, 400, 413, 415, 422, 431}


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(SETTINGS, fake_pipeline(max_upload_bytes=MAX_BYTES, max_image_pixels=MAX_PIXELS))) as c:
        for _ in range(200):
            if c.get("/readyz").status_code == 200:
                break
            time.sleep(0.01)
        yield c


@pytest.mark.parametrize("name, status, code, kwargs", CORPUS, ids=[c[0] for c in CORPUS])
def test_every_odd_input_gets_its_documented_answer(client, name, status, code, kwargs):
    r = client.post("/pose", **kwargs)
    assert r.status_code == status, f"{name}: {r.status_code} {r.text[:300]}"
    body = r.json()
    if status == 200:
        for p in body["persons"]:  # keypoints are always finite numbers (JSON has no NaN / null)
            assert all(isinstance(v, float | int) for row in p["keypoints"] for v in row)
            assert np.isfinite(np.array(p["keypoints"], float)).all() and np.isfinite(p["bbox"]).all()
    else:
        assert set(body) == {"error", "message"} and body["error"] == code and body["message"]
    assert client.get("/healthz").status_code == 200


def test_wrong_methods_and_paths_are_json_too(client):
    for method, path, status in (("GET", "/pose", 405), ("DELETE", "/pose", 405), ("GET", "/nope", 404)):
        r = client.request(method, path)
        assert r.status_code == status and set(r.json()) == {"error", "message"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
        lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=3), children, max_size=3),
        max_leaves=30,
    )
)
def test_box_parsing_either_returns_valid_boxes_or_names_the_problem(value):
    try:
        text = json.dumps(value)
    except ValueError:
        return
    try:
        boxes = parse_bboxes(text, max_boxes=50)
    except InvalidParameterError as exc:
        assert str(exc)
        return
    assert boxes is not None and boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
    assert np.isfinite(boxes).all() and (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["JPEG", "PNG", "WEBP", "BMP"]),
    st.integers(1, 64),
    st.integers(1, 64),
    st.sampled_from(["RGB", "L", "RGBA", "P", "I;16", "1"]),
    st.integers(0, 400),
    st.binary(max_size=64),
)
def test_image_decoding_returns_rgb_or_a_clear_error(fmt, w, h, mode, cut, noise):
    """Valid images of any mode decode to uint8 RGB of their size; truncated or corrupted ones raise one of the
    service's decode errors, never anything else."""
    img = Image.new(mode, (w, h))
    try:
        data = _save(img, fmt)
    except (OSError, ValueError, KeyError):
        return  # a mode this format cannot store
    arr = decode_image(data)
    assert arr.dtype == np.uint8 and arr.shape == (h, w, 3)
    damaged = data[:cut] + noise + data[cut + len(noise) :] if cut < len(data) else noise
    try:
        out = decode_image(damaged, max_pixels=MAX_PIXELS)
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    except (ImageDecodeError, UnsupportedMediaTypeError, PayloadTooLargeError):
        pass


def test_schemathesis_finds_no_server_error():
    """Schemathesis drives every operation of the app's own OpenAPI schema with generated requests: no 5xx."""
    schemathesis = pytest.importorskip("schemathesis")

    app = create_app(SETTINGS, fake_pipeline(max_upload_bytes=MAX_BYTES, max_image_pixels=MAX_PIXELS))
    app.state.service.load()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures = []
    for op in schema.get_all_operations():
        operation = op.ok()

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call()
            if response.status_code >= 500:
                failures.append((case.method, case.path, case.query, response.status_code, response.text[:200]))

        check()
    assert not failures, failures[:5]
