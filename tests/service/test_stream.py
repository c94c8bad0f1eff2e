"""The ``/pose/stream`` WebSocket on a real server (``pose-serve``, YOLOv8n + MoveNet Thunder, 127.0.0.1) with a real
client (``websockets``): replies per processed frame with track IDs, latest-frame dropping under a flood with bounded
latency, separate sessions, closing stops the work, control messages, and refusals at the handshake."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from inference.imageio import decode_image
from inference.render import encode_jpeg
from tests.metrics import metric, wait_no_streams

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


def test_closing_the_socket_stops_its_work(pose_server, frames):
    with connect(_ws(pose_server.url), max_size=None) as ws:
        for f in frames[:5]:
            ws.send(f)
        json.loads(ws.recv(timeout=30))
    assert wait_no_streams(pose_server.url, 10) == 0
    n = metric(pose_server.url, 'pose_video_frames_total{source="stream"}')
    time.sleep(0.5)
    assert metric(pose_server.url, 'pose_video_frames_total{source="stream"}') == n


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
