"""The demo page (``GET /``, ``service/static/``) in a real headless Chromium (Selenium 4, the system's browser and
driver: nothing is downloaded) against a real ``pose-serve`` (YOLOv8n + MoveNet): an image, a video, the webcam (a
fake capture device playing a clip made from a COCO image) and a bad file, each checked against the server's JSON and
saved as a screenshot under ``test-artifacts/page/``. Without Chromium, chromedriver or selenium the browser tests skip
(the reason says which); the page's on / off switch is checked in-process either way."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from service.app import create_app
from service.page import STATIC_DIR
from tests.conftest import REPO_ROOT
from tests.fakes import fake_pipeline

ARTIFACTS = REPO_ROOT / "test-artifacts" / "page"
IMAGE = "000000196141.jpg"
#: The page's colours (inference/render.py): left, right, centre.
SIDE_COLORS = {"left": (0, 255, 0), "right": (255, 128, 0), "center": (51, 153, 255)}
PAGE_FILES = ("index.html", "app.js", "style.css")


def _ready(c: TestClient) -> TestClient:
    for _ in range(200):
        if c.get("/readyz").status_code == 200:
            break
        time.sleep(0.02)
    return c


# ---- in-process: the switch -----------------------------------------------------------------------------------------


def test_page_served_and_switched_off(monkeypatch):
    with TestClient(create_app(Settings(), fake_pipeline())) as c:
        r = c.get("/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert 'id="overlay"' in r.text and '<script src="static/app.js">' in r.text and '<base href="/">' in r.text
        for name in PAGE_FILES[1:]:
            assert c.get(f"/static/{name}").status_code == 200
    assert sum((STATIC_DIR / f).stat().st_size for f in PAGE_FILES) < 40_000  # small: no framework, no build
    monkeypatch.setenv("POSE_PAGE_ENABLED", "false")
    with TestClient(create_app(Settings(), fake_pipeline())) as c:
        assert c.get("/").status_code == 404
        assert c.get("/static/app.js").status_code == 404
        assert _ready(c).get("/readyz").status_code == 200  # the API is unaffected


def test_page_urls_follow_the_root_path():
    """Behind a proxy prefix (``POSE_ROOT_PATH``) the page's base is the prefix and every URL it uses is relative."""
    with TestClient(create_app(Settings(), fake_pipeline()), root_path="/api/pose") as c:
        text = c.get("/").text
    assert '<base href="/api/pose/">' in text
    for name in PAGE_FILES:
        source = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert not re.search(
            r"""(fetch\(|src=|href=|WebSocket\()\s*["'`]/(?!/)""", source.replace('<base href="/">', "")
        ), name
        assert "location.host" not in source, name
    with TestClient(create_app(Settings(), fake_pipeline()), root_path='/x"><script>') as c:
        assert "<script>/" not in c.get("/").text  # the prefix is escaped


# ---- in the browser -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def webdriver_mod():
    try:
        from selenium import webdriver
    except ImportError:
        pytest.skip("selenium is not installed (the dev extra: pip install -e '.[dev]')")
    missing = [n for n in ("chromium", "chromedriver") if shutil.which(n) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not on PATH (Debian: apt-get install chromium chromium-driver)")
    return webdriver


@pytest.fixture(scope="module")
def fake_camera(coco_tiny, tmp_path_factory) -> Path:
    """A Y4M clip for Chromium's fake capture device: 40 frames of a COCO image with people, panned 3,1 px a frame."""
    import av
    from PIL import Image

    img = np.asarray(Image.open(coco_tiny / IMAGE).convert("RGB"))
    w, h = 480, 360
    path = tmp_path_factory.mktemp("camera") / "clip.y4m"
    with av.open(str(path), "w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(40):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[i // 3 : i // 3 + h, 3 * i : 3 * i + w]))
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def driver(webdriver_mod, fake_camera):
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a browser or a driver
    options = webdriver_mod.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={fake_camera}"):  # fmt: skip
        options.add_argument(arg)
    d = webdriver_mod.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    d.set_script_timeout(30)
    yield d
    d.quit()


def _wait(driver, script: str, timeout: float = 30.0):
    """Poll ``return <script>`` until it is truthy; fail with the page's status line."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script("return " + script)
        if value:
            return value
        time.sleep(0.1)
    status = driver.execute_script(
        "return document.body.dataset.state + ': ' + document.getElementById('status').textContent"
    )
    pytest.fail(f"timed out waiting for {script!r}; page status {status!r}")


def _open(driver, pose_server):
    driver.get(pose_server.url + "/")
    _wait(driver, "document.body.dataset.state === 'ready'", 60)


def _text(driver, element_id: str) -> str:
    return driver.execute_script(f"return document.getElementById('{element_id}').textContent")


def _snap(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, f"{path}: {len(data)} bytes"


def _set_input(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    el = driver.find_element(By.ID, element_id)
    el.clear()
    el.send_keys(value)


def _side(name: str) -> str:
    return "left" if name.startswith("left") else "right" if name.startswith("right") else "center"


def test_page_ready_lists_models(driver, pose_server):
    _open(driver, pose_server)
    models = httpx.get(pose_server.url + "/v1/models", timeout=10).json()
    text = _text(driver, "models")
    assert models["detector"]["name"] in text and models["pose"]["name"] in text
    assert _text(driver, "flip-test") == ("on" if models["pose"]["flip_test"] else "off")
    assert driver.execute_script("return window.poseDemo.models.pose.name") == models["pose"]["name"]
    _snap(driver, "ready")


def test_image_result_drawn_at_keypoints(driver, pose_server, coco_tiny):
    from selenium.webdriver.common.by import By

    path = coco_tiny / IMAGE
    expected = httpx.post(pose_server.url + "/pose", files={"file": (IMAGE, path.read_bytes(), "image/jpeg")},
                          timeout=60).json()  # fmt: skip
    _open(driver, pose_server)
    driver.find_element(By.ID, "file").send_keys(str(path))
    _wait(driver, "window.poseDemo.last !== null && document.body.dataset.state === 'ready'", 60)
    n = len(expected["persons"])
    assert n > 0
    assert int(_text(driver, "person-count")) == n
    assert driver.execute_script("return window.poseDemo.last.persons.length") == n
    assert driver.execute_script("return window.poseDemo.framesDrawn") >= 1
    assert "total" in _text(driver, "timings")
    cw, ch = driver.execute_script("const c = document.getElementById('overlay'); return [c.width, c.height]")
    sx, sy = cw / expected["width"], ch / expected["height"]
    names = expected["keypoint_names"]
    checked = matched = 0
    r = 3
    for person in expected["persons"]:
        for k, (x, y, s) in enumerate(person["keypoints"]):
            if s < 0.6 or checked >= 24:
                continue
            px, py = round(x * sx), round(y * sy)
            data = driver.execute_script(
                "return Array.from(document.getElementById('overlay').getContext('2d')"
                ".getImageData(arguments[0], arguments[1], arguments[2], arguments[2]).data)",
                px - r, py - r, 2 * r + 1,
            )  # fmt: skip
            rgba = np.asarray(data, np.int32).reshape(-1, 4)
            opaque = rgba[rgba[:, 3] == 255, :3]
            assert len(opaque), f"nothing drawn near keypoint {names[k]} at ({px}, {py})"
            want = np.asarray(SIDE_COLORS[_side(names[k])])
            checked += 1
            matched += bool((np.abs(opaque - want).max(axis=1) <= 12).any())
    assert checked >= 5
    assert matched >= 0.8 * checked, f"{matched} of {checked} keypoints have their side's colour nearby"
    _snap(driver, "image")


def test_video_frames_and_track_ids(driver, pose_server, bikes_mp4):
    from selenium.webdriver.common.by import By

    _open(driver, pose_server)
    _set_input(driver, "max-frames", "40")
    _set_input(driver, "det-interval", "2")
    driver.find_element(By.ID, "file").send_keys(str(bikes_mp4))
    _wait(driver, "window.poseDemo.summary !== null || document.body.dataset.state === 'error'", 80)
    demo = driver.execute_script("return window.poseDemo")
    assert demo["state"] == "ready", _text(driver, "status")
    assert demo["header"]["options"]["det_interval"] == 2
    assert demo["framesAnswered"] == demo["summary"]["frames"] == 40
    assert demo["framesDrawn"] > 0 and demo["trackIds"]
    assert _text(driver, "track-ids") == ", ".join(str(i) for i in demo["trackIds"])
    assert int(_text(driver, "frames-drawn")) == demo["framesDrawn"]
    _snap(driver, "video")


def test_webcam_stream(driver, pose_server):
    from selenium.webdriver.common.by import By

    _open(driver, pose_server)
    driver.find_element(By.ID, "webcam").click()
    _wait(driver, "window.poseDemo.framesAnswered > 3 && window.poseDemo.personsTotal > 0", 60)
    demo = driver.execute_script("return window.poseDemo")
    assert demo["state"] == "streaming", _text(driver, "status")
    assert demo["framesSent"] >= demo["framesAnswered"] > 3
    assert demo["trackIds"] and "latency" in _text(driver, "timings")
    assert demo["framesDrawn"] >= demo["framesAnswered"]
    _snap(driver, "webcam")
    driver.find_element(By.ID, "stop").click()
    _wait(driver, "document.body.dataset.state === 'ready'", 10)


def test_bad_file_shows_server_message(driver, pose_server, tmp_path):
    from selenium.webdriver.common.by import By

    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"this is not an image\n" * 20)
    res = httpx.post(pose_server.url + "/pose", files={"file": ("x.jpg", bad.read_bytes(), "image/jpeg")}, timeout=30)
    assert res.status_code in (400, 415)
    message = res.json()["message"]
    _open(driver, pose_server)
    driver.find_element(By.ID, "file").send_keys(str(bad))
    _wait(driver, "document.body.dataset.state === 'error'", 30)
    assert message in _text(driver, "status")
    _snap(driver, "error")


def test_phone_width_has_no_horizontal_scroll(driver, pose_server):
    _open(driver, pose_server)
    try:
        driver.set_window_size(390, 844)
        time.sleep(0.2)
        assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        _snap(driver, "phone")
    finally:
        driver.set_window_size(1200, 900)


def test_api_key_asked_on_401_and_never_stored(driver, yolo_onnx, movenet_card, coco_tiny):
    from selenium.webdriver.common.by import By

    from service.launcher import ServerProcess

    key = "page-test-key"
    env = {"POSE_API_KEYS": key, "POSE_WARMUP": "false"}
    with ServerProcess(["--detector", str(yolo_onnx), "--pose", str(movenet_card)], env=env) as srv:
        srv.wait_ready()
        driver.get(srv.url + "/")
        _wait(driver, "document.body.dataset.state === 'error' && !document.getElementById('key-box').hidden", 60)
        assert "API key" in _text(driver, "status")
        driver.find_element(By.ID, "api-key").send_keys(key)
        driver.find_element(By.ID, "key-apply").click()
        _wait(driver, "document.body.dataset.state === 'ready'", 30)
        driver.find_element(By.ID, "file").send_keys(str(coco_tiny / IMAGE))
        _wait(driver, "window.poseDemo.last !== null && document.body.dataset.state === 'ready'", 60)
        assert int(_text(driver, "person-count")) > 0
        stored = driver.execute_script("return [localStorage.length, sessionStorage.length, document.cookie]")
        assert stored == [0, 0, ""]
