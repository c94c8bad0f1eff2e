"""``poseserve.client`` against real servers on 127.0.0.1, no mocks of HTTP or the WebSocket.

* ``pose_server`` (a real ``pose-serve`` process, YOLOv8n + MoveNet Thunder): image inputs (path, bytes, BGR and RGB
  numpy, PIL) give the persons of the server's raw JSON, caller boxes, ``render``, ``models`` / health, video over
  ``bikes.mp4`` with track ids, the WebSocket session, and the async client the same.
* :class:`tests.fakes.ThreadedServer` (the real app and uvicorn configuration over the fake models of
  ``tests/fakes.py``, for speed and a controllable slow model): API keys; overload made for real (``max_inflight_requests``
  1 and a request holding the only slot for 2.5 s), so the 503s, their ``Retry-After`` and the retries are the
  server's own; connection refused; a video's ``error`` line (its deadline passing while it streams).
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from core.settings import Settings
from poseserve.client import (
    AsyncPoseClient,
    PoseAPIError,
    PoseClient,
    PoseConnectionError,
    Retry,
    encode_image,
)
from poseserve.results import Poses
from tests.fakes import ThreadedServer, fake_pipeline, wait_until
from tests.metrics import metric

IMAGE = "000000196141.jpg"  # four people


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _same(a: Poses, b: Poses) -> None:
    assert (a.width, a.height, a.keypoint_names) == (b.width, b.height, b.keypoint_names)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.bboxes, b.bboxes)
    np.testing.assert_array_equal(a.scores, b.scores)


@pytest.fixture(scope="module")
def picture(coco_tiny) -> Image.Image:
    with Image.open(coco_tiny / IMAGE) as im:
        return im.convert("RGB")


@pytest.fixture(scope="module")
def client(pose_server):
    with PoseClient(pose_server.url) as c:
        yield c


# ------------------------------------------------------------------------------------------- the real server
def test_every_image_input_gives_the_persons_of_the_servers_json(client, pose_server, picture, tmp_path):
    png = _png(picture)
    path = tmp_path / "people.png"
    path.write_bytes(png)
    rgb = np.asarray(picture)
    raw = httpx.post(pose_server.url + "/v1/pose", files={"file": ("p.png", png, "image/png")}, timeout=60).json()
    expected = Poses.from_answer(raw)
    assert len(expected) >= 3 and expected.keypoints.shape[1:] == (17, 3)
    assert (expected.width, expected.height) == picture.size
    # PNG is lossless: the server decodes the same pixels from every form, so the numbers are identical
    for image, rgb_flag in ((path, False), (str(path), False), (png, False), (rgb[..., ::-1], False),
                            (rgb, True), (picture, False)):  # fmt: skip
        got = client.pose(image, rgb=rgb_flag)
        _same(got, expected)
        assert got.models == {"detector": raw["models"]["detector"], "pose": raw["models"]["pose"]}
    # a JPEG file is sent as it is, as curl would send it
    jpg = tmp_path / "people.jpg"
    picture.save(jpg, format="JPEG", quality=90)
    raw_jpeg = httpx.post(pose_server.url + "/v1/pose", content=jpg.read_bytes(),
                          headers={"Content-Type": "image/jpeg"}, timeout=60).json()  # fmt: skip
    _same(client(jpg), Poses.from_answer(raw_jpeg))


def test_caller_boxes_skip_the_detector(client, picture):
    boxes = np.array([[20.0, 30.0, 300.0, 420.0], [250.0, 40.0, 600.0, 420.0]], np.float32)
    got = client.pose(picture, bboxes=boxes)
    assert got.models["detector"] is None and len(got) == 2
    np.testing.assert_allclose(np.sort(got.bboxes, axis=0), np.sort(boxes, axis=0), atol=0.01)
    np.testing.assert_array_equal(got.bbox_scores, [1.0, 1.0])
    assert client.pose(picture, bboxes=boxes[0]).bboxes.shape == (1, 4)  # one box as [4]
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        client.pose(picture, bboxes=[[1, 2, 3]])


def test_render_answers_the_servers_jpeg(client, picture):
    jpeg = client.pose(picture, render=True)
    assert isinstance(jpeg, bytes) and jpeg[:3] == b"\xff\xd8\xff"
    with Image.open(io.BytesIO(jpeg)) as im:
        assert im.format == "JPEG" and im.size == picture.size


def test_models_health_and_readiness(client):
    models = client.models()
    assert len(models["keypoints"]["keypoint_names"]) == 17 and models["keypoints"]["keypoint_names"][0] == "nose"
    assert client.health() is True and client.ready() is True
    client.wait_ready(timeout_s=5)


def test_client_errors_are_typed_and_not_retried(client):
    with pytest.raises(PoseAPIError) as info:
        client.pose(b"not an image")
    e = info.value
    assert (e.status, e.code, e.attempts) == (400, "undecodable_image", 1) and e.message
    with pytest.raises(ValueError, match="uint8"):
        client.pose(np.zeros((10, 10), np.uint8))
    with pytest.raises(TypeError, match="path, bytes"):
        client.pose(12)


def test_video_yields_tracked_frames_as_they_stream(client, bikes_mp4):
    # bikes.mp4 shows nobody before frame 30 (tests/service/test_video.py), a cyclist from there
    with client.video(bikes_mp4, stride=5, max_frames=9, det_interval=2) as video:
        frames = list(video)
    assert [p.frame for p in frames] == list(range(0, 45, 5))
    assert video.header["type"] == "video" and (video.header["width"], video.header["height"]) == (640, 272)
    assert video.summary is not None and video.summary["frames"] == 9 and video.summary["tracks"] >= 1
    assert all(len(p) for p in frames[-3:])
    for p in frames:
        assert (p.width, p.height, p.num_keypoints) == (640, 272, 17) and p.time_s is not None
        if len(p):
            assert p.track_ids is not None and p.keypoints.shape == (len(p), 17, 3)
    # bytes as well as a path; no tracking: no track ids
    with client.video(bikes_mp4.read_bytes(), max_frames=3, stride=16, track=False) as video:
        again = list(video)
    assert [p.frame for p in again] == [0, 16, 32] and len(again[-1]) and again[-1].track_ids is None
    with pytest.raises(PoseAPIError) as info:
        client.video(b"not a video")
    assert (info.value.status, info.value.code) == (400, "undecodable_video")


def _shifted(picture: Image.Image, dx: int) -> np.ndarray:
    """A BGR frame of ``picture`` panned ``dx`` pixels right (a moving camera)."""
    rgb = np.asarray(picture)
    out = np.full_like(rgb, 114)
    out[:, dx:] = rgb[:, : rgb.shape[1] - dx]
    return out[..., ::-1].copy()


def test_stream_session_round_trip(client, picture):
    with client.stream(det_interval=1) as session:
        results = [session(_shifted(picture, 3 * t), time_s=t / 25) for t in range(4)]
        assert session.keypoint_names[0] == "nose" and session.last_reply["dropped_frames"] == 0
        # a frame the server cannot decode is an error for that frame; the session goes on
        n = session.send(b"not an image", frame_id="bad")
        with pytest.raises(PoseAPIError) as info:
            session.recv(timeout=30)
        assert (info.value.status, info.value.code, info.value.frame, info.value.frame_id) == (
            400, "undecodable_image", n, "bad")  # fmt: skip
        after = session(_shifted(picture, 12))
    assert [p.frame for p in results] == [0, 1, 2, 3] and after.frame == 5
    for p in (*results, after):
        assert (p.width, p.height) == picture.size and len(p) >= 3 and p.track_ids is not None
    # the same people keep their ids from frame to frame
    assert set(results[0].track_ids) & set(results[-1].track_ids)


def test_async_client_gives_what_the_sync_one_gives(client, pose_server, picture, bikes_mp4):
    sync = client.pose(picture)

    async def main():
        async with AsyncPoseClient(pose_server.url) as ac:
            got = await ac.pose(np.asarray(picture), rgb=True)
            jpeg = await ac(picture, render=True)
            assert await ac.ready() and await ac.health()
            async with await ac.video(bikes_mp4, stride=16, max_frames=3) as video:
                frames = [p async for p in video]
            async with await ac.stream() as session:
                live = await session(picture)
            return got, jpeg, frames, video.summary, live

    got, jpeg, frames, summary, live = asyncio.run(main())
    _same(got, sync)
    assert jpeg[:2] == b"\xff\xd8"
    assert [p.frame for p in frames] == [0, 16, 32] and summary["frames"] == 3
    assert len(frames[-1]) and frames[-1].track_ids is not None
    assert (live.width, live.height) == picture.size and len(live) >= 3 and live.track_ids is not None


# ------------------------------------------------------------------- fake models behind the real app and uvicorn
def _small_png() -> bytes:
    return _png(Image.new("RGB", (320, 240), (90, 120, 30)))


@pytest.fixture(scope="module")
def keyed_server():
    from service.app import create_app

    settings = Settings(warmup=False, api_keys=["s3cret"])
    with ThreadedServer(create_app(settings, fake_pipeline()), settings) as srv:
        yield srv


def test_api_key_required_and_checked(keyed_server):
    img = _small_png()
    for key in (None, "wrong"):
        with PoseClient(keyed_server.url, api_key=key) as c:
            with pytest.raises(PoseAPIError) as info:
                c.pose(img)
            assert (info.value.status, info.value.code, info.value.attempts) == (401, "unauthorized", 1)
            with pytest.raises(PoseAPIError) as info:
                c.models()
            assert info.value.status == 401
            with pytest.raises(PoseAPIError) as info:
                c.stream()  # the session's handshake is refused with the same JSON (models() goes first)
            assert info.value.status == 401
            assert c.health() is True  # probes need no key
    with PoseClient(keyed_server.url, api_key="s3cret") as c:
        assert len(c.pose(img)) == 1
        with c.stream() as session:
            assert len(session(img)) == 1

    async def wrong_key():
        async with AsyncPoseClient(keyed_server.url, api_key="wrong") as ac:
            await ac.pose(img)

    with pytest.raises(PoseAPIError) as info:
        asyncio.run(wrong_key())
    assert info.value.status == 401


#: how long the slow request holds the only request slot, seconds (the fake pose model's delay)
HOLD_S = 2.5


@pytest.fixture(scope="module")
def busy_server():
    """One request slot (``max_inflight_requests=1``), ``Retry-After: 1``, a pose model that takes 2.5 s."""
    from service.app import create_app

    settings = Settings(warmup=False, max_inflight_requests=1, retry_after_s=1)
    app = create_app(settings, fake_pipeline(delay=HOLD_S))
    with ThreadedServer(app, settings) as srv:
        srv.admission = app.state.service.admission
        yield srv


def _hold_the_slot(srv) -> threading.Thread:
    """A raw request that takes the server's only slot for ``HOLD_S``; returns once it holds it."""
    t = threading.Thread(target=lambda: httpx.post(srv.url + "/v1/pose", content=_small_png(),
                                                   headers={"Content-Type": "image/png"}, timeout=30))  # fmt: skip
    t.start()
    wait_until(lambda: srv.admission.requests == 1, what="the slow request admitted")
    return t


def test_503_is_retried_after_retry_after_until_the_slot_frees(busy_server, caplog):
    before = metric(busy_server.url, 'pose_rejections_total{reason="requests"}')
    slow = _hold_the_slot(busy_server)
    t0 = time.monotonic()
    with caplog.at_level(logging.INFO, "poseserve.client"), PoseClient(busy_server.url, retry=Retry(total_s=20)) as c:
        got = c.pose(_small_png())
    elapsed = time.monotonic() - t0
    slow.join()
    assert len(got) == 1
    refused = metric(busy_server.url, 'pose_rejections_total{reason="requests"}') - before
    assert refused >= 1  # the server really answered 503 to the client first
    retries = [r for r in caplog.records if "503 overloaded" in r.getMessage()]
    assert len(retries) == refused
    assert elapsed >= refused * 1.0  # never earlier than Retry-After: 1 s after each 503


def test_retries_stop_at_the_attempts_and_at_the_time_budget(busy_server):
    slow = _hold_the_slot(busy_server)
    try:
        t0 = time.monotonic()
        with PoseClient(busy_server.url, retry=Retry(attempts=2)) as c, pytest.raises(PoseAPIError) as info:
            c.pose(_small_png())
        e = info.value
        assert (e.status, e.code, e.attempts, e.retry_after) == (503, "overloaded", 2, 1.0)
        assert 1.0 <= time.monotonic() - t0 < HOLD_S
        # Retry-After (1 s) does not fit in a 0.5 s budget: the 503 is raised at once
        t0 = time.monotonic()
        with PoseClient(busy_server.url, retry=Retry(total_s=0.5)) as c, pytest.raises(PoseAPIError) as info:
            c.pose(_small_png())
        assert info.value.attempts == 1 and time.monotonic() - t0 < 1.0
    finally:
        slow.join()


def test_a_refused_stream_handshake_is_retried(busy_server):
    """A session needs a request slot: its handshake gets the 503 (with ``Retry-After``) while the slot is held."""
    before = metric(busy_server.url, 'pose_rejections_total{reason="requests"}')
    slow = _hold_the_slot(busy_server)
    t0 = time.monotonic()
    with PoseClient(busy_server.url, retry=Retry(total_s=20)) as c, c.stream() as session:
        elapsed = time.monotonic() - t0
        assert session.keypoint_names
    slow.join()
    refused = metric(busy_server.url, 'pose_rejections_total{reason="requests"}') - before
    assert refused >= 1 and elapsed >= refused * 1.0


def test_async_client_retries_503_too(busy_server):
    slow = _hold_the_slot(busy_server)

    async def main():
        async with AsyncPoseClient(busy_server.url, retry=Retry(total_s=20)) as ac:
            return await ac.pose(_small_png())

    t0 = time.monotonic()
    got = asyncio.run(main())
    slow.join()
    assert len(got) == 1 and time.monotonic() - t0 >= 1.0


def test_connection_refused_is_retried_then_raised_or_answered():
    from service.app import create_app

    settings = Settings(warmup=False)
    srv = ThreadedServer(create_app(settings, fake_pipeline()), settings)  # its port chosen, nothing listening yet
    fast = Retry(attempts=3, backoff_s=0.01)
    with PoseClient(srv.url, retry=fast) as c, pytest.raises(PoseConnectionError) as info:
        c.pose(_small_png())
    assert info.value.attempts == 3 and isinstance(info.value.__cause__, httpx.ConnectError)

    async def refused():
        async with AsyncPoseClient(srv.url, retry=fast) as ac:
            await ac.models()

    with pytest.raises(PoseConnectionError):
        asyncio.run(refused())
    # the server comes up while the client retries
    starter = threading.Timer(0.5, srv.__enter__)
    starter.start()
    try:
        with PoseClient(srv.url, retry=Retry(attempts=50, backoff_s=0.1, max_backoff_s=0.4, total_s=30)) as c:
            assert len(c.pose(_small_png())) == 1
    finally:
        starter.join()
        srv.__exit__()


def test_a_video_error_line_raises_a_typed_error(bikes_mp4):
    """The deadline (``video_timeout_s``) passes while the frames stream: the answer's last line is an error."""
    from service.app import create_app

    settings = Settings(warmup=False, video_timeout_s=2.0)
    with ThreadedServer(create_app(settings, fake_pipeline(delay=0.3)), settings) as srv, PoseClient(srv.url) as c:
        frames = []
        with pytest.raises(PoseAPIError) as info:  # noqa: PT012 - the error comes while iterating
            with c.video(bikes_mp4) as video:
                frames.extend(video)
    assert (info.value.status, info.value.code) == (504, "deadline_exceeded")
    assert frames and video.summary is None  # some frames came before the error line


def test_encode_image_is_lossless_png_by_default():
    rgb = np.random.default_rng(0).integers(0, 256, (7, 5, 3), np.uint8)
    data, ctype, size = encode_image(rgb[..., ::-1])  # BGR in
    assert ctype == "image/png" and size == (5, 7)
    with Image.open(io.BytesIO(data)) as im:
        np.testing.assert_array_equal(np.asarray(im), rgb)
    assert encode_image(rgb, rgb=True, image_format="jpeg")[1] == "image/jpeg"


def test_the_client_imports_no_runtime_and_declares_what_it_imports():
    """``pip install 'poseserve[client]'`` is enough: the module imports no onnxruntime, OpenCV, torch or FastAPI,
    and every third-party module it imports comes from the base dependencies or the ``client`` extra."""
    import ast
    import importlib.metadata
    import subprocess
    import sys

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from tests.conftest import REPO_ROOT

    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
    code = (
        "import sys, poseserve, poseserve.client; from poseserve import PoseClient, AsyncPoseClient; "
        "print(sorted(m for m in ('onnxruntime', 'cv2', 'torch', 'fastapi', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = {canonicalize_name(Requirement(r).name)
                for r in [*project["dependencies"], *project["optional-dependencies"]["client"]]}  # fmt: skip
    distributions = importlib.metadata.packages_distributions()
    imported = set()
    sources = [REPO_ROOT / "poseserve" / "client.py", *sorted((REPO_ROOT / "poseserve").glob("_[a-z]*.py"))]
    for node in (n for f in sources for n in ast.walk(ast.parse(f.read_text()))):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__", "poseserve"}
    assert third_party == {"httpx", "numpy", "PIL", "websockets"}
    for module in third_party:
        assert any(canonicalize_name(d) in declared for d in distributions[module]), module


def test_the_readme_example_runs(pose_server, coco_tiny, bikes_mp4, capsys):
    """The README's "Python client" example, on the test server, a COCO image and the test clip (3 frames)."""
    import re

    from tests.conftest import REPO_ROOT

    section = (REPO_ROOT / "README.md").read_text().split("## Python client", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    for old, new in (("http://127.0.0.1:8000", pose_server.url), ("person.jpg", str(coco_tiny / IMAGE)),
                     ("clip.mp4", str(bikes_mp4)), ("max_frames=100", "max_frames=3")):  # fmt: skip
        assert old in code
        code = code.replace(old, new)
    exec(compile(code, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"\([1-9]\d*, 17, 3\) \[\[", lines[0])
    assert [line.split()[0] for line in lines[-3:]] == ["0", "1", "2"]
