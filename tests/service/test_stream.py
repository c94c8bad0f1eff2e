"""The ``/pose/stream`` WebSocket on a real server (``pose-serve``, YOLOv8n + MoveNet Thunder, 127.0.0.1) with a real
client (``websockets``): replies per processed frame with track IDs, latest-frame dropping under a flood with bounded
latency, separate sessions, closing stops the work, control messages, and refusals at the handshake."""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from inference.imageio import decode_image
from inference.render import encode_jpeg

#: the latest reply's latency under a flood, seconds: a frame waits for at most the one being processed (measured
#: ~0.3 s on 2 cores with another session running); far below what a queue of the 150 sent frames would take
FLOOD_LATENCY_BOUND_S = 3.0


def _ws(url: str, query: str = "") -> str:
    return url.replace("http://", "ws://") + "/pose/stream" + query


@pytest.fixture(scope="module")
def frames(coco_tiny) -> list[bytes]:
    """JPEG frames of a real image (four people) panned 3 px per frame."""
    image = decode_image((coco_tiny / "000000196141.jpg").read_bytes())
    out = []
    for t in range(40):
        canvas = np.full((480, 760, 3), 114, np.uint8)
        canvas[20 : 20 + 429, 30 + 3 * t : 30 + 3 * t + 640][:, : 760 - 30 - 3 * t] = image[:, : 760 - 30 - 3 * t]
        out.append(encode_jpeg(canvas))
    return out


def _metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics").text
    return sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith(name) and not line.startswith("#")
    )


def test_replies_per_frame_with_track_ids(pose_server, frames):
    with connect(_ws(pose_server.url), max_size=None) as ws:
        replies = []
        for i, f in enumerate(frames[:10]):
            ws.send(json.dumps({"type": "frame", "id": f"f{i}", "time_s": i / 25}))
            ws.send(f)
            replies.append(json.loads(ws.recv(timeout=30)))  # one at a time: nothing is dropped
    assert [r["type"] for r in replies] == ["frame"] * 10
    assert [r["id"] for r in replies] == [f"f{i}" for i in range(10)]
    assert all(r["dropped_frames"] == 0 for r in replies)
    ids = [sorted(p["track_id"] for p in r["persons"]) for r in replies]
    assert len(ids[0]) >= 3 and all(x == ids[0] for x in ids)  # the same people keep their IDs


def test_flood_drops_frames_and_latency_stays_bounded(pose_server, frames):
    before = _metric(pose_server.url, 'pose_video_frames_dropped_total{source="stream"}')
    replies: list[dict] = []
    with connect(_ws(pose_server.url), max_size=None) as ws:

        def read():
            try:
                while True:
                    replies.append(json.loads(ws.recv(timeout=30)))
            except Exception:  # noqa: BLE001 - closed
                return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        for i in range(150):  # far faster than the frames are processed
            ws.send(frames[i % len(frames)])
            time.sleep(0.005)
        sent_at = time.monotonic()
        while time.monotonic() - sent_at < 30 and (not replies or replies[-1]["received_frames"] < 150):
            time.sleep(0.05)
        time.sleep(1.0)  # the last waiting frame's reply
    frames_ = [r for r in replies if r["type"] == "frame"]
    assert 2 <= len(frames_) < 150
    last = frames_[-1]
    assert last["dropped_frames"] > 0 and last["dropped_frames"] + len(frames_) <= 150
    assert max(r["latency_ms"] for r in frames_) / 1000.0 < FLOOD_LATENCY_BOUND_S
    after = _metric(pose_server.url, 'pose_video_frames_dropped_total{source="stream"}')
    assert after - before == last["dropped_frames"]


def test_two_sessions_keep_separate_tracks(pose_server, frames, coco_tiny):
    other = encode_jpeg(decode_image((coco_tiny / "000000040083.jpg").read_bytes()))
    results: dict[str, list] = {"a": [], "b": []}

    def session(name, payloads):
        with connect(_ws(pose_server.url), max_size=None) as ws:
            for p in payloads:
                ws.send(p)
                results[name].append(json.loads(ws.recv(timeout=60)))

    threads = [threading.Thread(target=session, args=("a", frames[:8])),
               threading.Thread(target=session, args=("b", [other] * 8))]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    a = [sorted(p["track_id"] for p in r["persons"]) for r in results["a"]]
    b = [sorted(p["track_id"] for p in r["persons"]) for r in results["b"]]
    assert len(a) == len(b) == 8
    # each session numbers its own people from 1: the other session's people never take its IDs
    assert a[0] == list(range(1, len(a[0]) + 1)) and b[0] == list(range(1, len(b[0]) + 1))
    assert all(x == a[0] for x in a) and all(x == b[0] for x in b)
    assert len(a[0]) != len(b[0])


def test_closing_the_socket_stops_its_work(pose_server, frames):
    with connect(_ws(pose_server.url), max_size=None) as ws:
        for f in frames[:5]:
            ws.send(f)
        json.loads(ws.recv(timeout=30))
    deadline = time.monotonic() + 10
    while _metric(pose_server.url, "pose_active_streams") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _metric(pose_server.url, "pose_active_streams") == 0
    n = _metric(pose_server.url, 'pose_video_frames_total{source="stream"}')
    time.sleep(0.5)
    assert _metric(pose_server.url, 'pose_video_frames_total{source="stream"}') == n


def test_bad_frames_and_control_messages_get_error_replies(pose_server, frames):
    with connect(_ws(pose_server.url), max_size=None) as ws:
        ws.send(b"not an image")
        err = json.loads(ws.recv(timeout=30))
        assert (err["type"], err["status"], err["error"]) == ("error", 400, "undecodable_image")
        ws.send("{not json")
        assert json.loads(ws.recv(timeout=30))["error"] == "invalid_parameter"
        ws.send(json.dumps({"type": "options", "det_interval": 0}))
        assert "det_interval" in json.loads(ws.recv(timeout=30))["message"]
        ws.send(json.dumps({"type": "options", "track": False}))
        ws.send(frames[0])
        reply = json.loads(ws.recv(timeout=30))
        assert reply["type"] == "frame" and reply["persons"] and "track_id" not in reply["persons"][0]


def test_bad_query_refused_at_handshake(pose_server):
    with pytest.raises(InvalidStatus) as info:
        connect(_ws(pose_server.url, "?det_interval=0"))
    assert info.value.response.status_code in (403, 422)
