"""``POST /pose/video`` on a real server (``pose-serve`` with YOLOv8n + MoveNet Thunder on 127.0.0.1): the real street
clip streamed back as NDJSON with track IDs, the annotated MP4, a client that goes away, and the metrics."""

from __future__ import annotations

import json
import time

import av
import httpx
import pytest

from tests.metrics import metric, wait_no_streams
from tests.videos import encode_clip

#: bikes.mp4's scenes (first frame of each), from the asset's README.
CUTS = (30, 76, 137, 187, 242)


def _stream_lines(url: str, data: bytes, params: dict | None = None, **kw) -> list[dict]:
    files = {"file": ("clip.mp4", data, "video/mp4")}
    with httpx.stream("POST", url + "/pose/video", files=files, params=params, timeout=300, **kw) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in r.iter_lines() if line]


@pytest.fixture(scope="module")
def bikes_lines(pose_server, bikes_mp4):
    return _stream_lines(pose_server.url, bikes_mp4.read_bytes())


def _scene(i: int) -> int:
    return sum(i >= c for c in CUTS)


def test_bikes_streams_one_line_per_frame(bikes_lines):
    head, frames, summary = bikes_lines[0], bikes_lines[1:-1], bikes_lines[-1]
    assert head["type"] == "video" and (head["width"], head["height"], head["frames"]) == (640, 272, 250)
    assert head["fps"] == pytest.approx(25.0) and head["models"]["detector"] == "yolov8n"
    assert [f["frame"] for f in frames] == list(range(250))
    assert all(f["type"] == "frame" for f in frames)
    assert frames[1]["time_s"] == pytest.approx(0.04, abs=1e-3)
    assert summary["type"] == "summary" and summary["frames"] == 250
    assert summary["scene_cuts"] == len(CUTS)
    assert [f["frame"] for f in frames if f["scene_cut"]] == list(CUTS)


def test_bikes_people_where_there_are_people(bikes_lines):
    """What the clip shows (looked at frame by frame; the assets README's description is off): a road marking [0, 30),
    no people; a man in a suit cycling through traffic [30, ~46), then traffic; a police cyclist standing [76, 137) (a
    car passing in front hides him in ~[83, 102): YOLOv8n finds nobody there); a parked bicycle with tiny people far
    behind [137, 187); a pedestrian's legs crossing [187, ~212), then the parked bicycle alone [~212, 250)."""
    frames = bikes_lines[1:-1]

    def found(lo, hi):
        part = [f for f in frames if lo <= f["frame"] < hi]
        return sum(bool(f["persons"]) for f in part) / len(part)

    assert found(30, 45) >= 0.9 and found(103, 137) >= 0.9 and found(189, 208) >= 0.8
    empty = [f for f in frames if f["frame"] < CUTS[0] or f["frame"] >= 216]
    assert sum(len(f["persons"]) for f in empty) == 0
    cyclist = [f for f in frames if 103 <= f["frame"] < 137]
    p = cyclist[0]["persons"][0]
    assert set(p) == {"track_id", "bbox", "bbox_score", "keypoints", "score"}
    assert len(p["keypoints"]) == 17 and isinstance(p["track_id"], int)
    ids = {q["track_id"] for f in cyclist for q in f["persons"] if q["score"] > 0.5}
    assert len(ids) == 1  # the cyclist keeps one track ID for the whole scene


def test_bikes_track_ids_change_at_scene_cuts(bikes_lines):
    ids_by_scene: dict[int, set[int]] = {}
    for f in bikes_lines[1:-1]:
        ids_by_scene.setdefault(_scene(f["frame"]), set()).update(p["track_id"] for p in f["persons"])
    scenes = [s for s, ids in ids_by_scene.items() if ids]
    assert {1, 2, 4} <= set(scenes)  # the suited cyclist's, the police cyclist's and the pedestrian's
    for a in scenes:
        for b in scenes:
            if a != b:
                assert not ids_by_scene[a] & ids_by_scene[b], (a, b, ids_by_scene)


def test_options_stride_max_frames_and_no_tracking(pose_server, bikes_mp4):
    lines = _stream_lines(
        pose_server.url, bikes_mp4.read_bytes(), {"frame_stride": 5, "max_frames": 12, "track": "false"}
    )
    frames = [f for f in lines if f["type"] == "frame"]
    assert [f["frame"] for f in frames] == list(range(0, 60, 5))
    assert all("track_id" not in p for f in frames for p in f["persons"])
    assert lines[0]["options"] == {"track": False, "smooth": False, "det_interval": 1}
    assert lines[-1]["tracks"] is None


def test_raw_video_body(pose_server, bikes_mp4):
    r = httpx.post(pose_server.url + "/pose/video", content=bikes_mp4.read_bytes(), params={"max_frames": 3},
                   headers={"Content-Type": "video/mp4"}, timeout=120)  # fmt: skip
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert r.status_code == 200 and [x["type"] for x in lines] == ["video", "frame", "frame", "frame", "summary"]


def test_render_returns_a_playable_mp4_with_the_same_frame_count(pose_server, bikes_mp4, tmp_path):
    r = httpx.post(pose_server.url + "/pose/video", params={"render": "true", "max_frames": 60},
                   files={"file": ("bikes.mp4", bikes_mp4.read_bytes(), "video/mp4")}, timeout=300)  # fmt: skip
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    out = tmp_path / "out.mp4"
    out.write_bytes(r.content)
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        assert (s.codec_context.name, s.width, s.height) == ("h264", 640, 272)
    assert n == 60


def test_client_gone_stops_decoding(pose_server, coco_tiny):
    from inference.imageio import decode_image

    image = decode_image((coco_tiny / "000000196141.jpg").read_bytes())
    clip = encode_clip([image[:428]] * 400, fps=25.0)  # libx264 yuv420p: even sizes
    before = metric(pose_server.url, 'pose_video_frames_total{source="video"}')
    with httpx.stream("POST", pose_server.url + "/pose/video", files={"file": ("c.mp4", clip, "video/mp4")},
                      timeout=60) as r:  # fmt: skip
        for i, _ in enumerate(r.iter_lines()):
            if i == 3:
                break  # hang up after the first frames
    assert wait_no_streams(pose_server.url, 20) == 0
    settled = metric(pose_server.url, 'pose_video_frames_total{source="video"}')
    time.sleep(1.0)
    after = metric(pose_server.url, 'pose_video_frames_total{source="video"}')
    assert after == settled and after - before < 100  # stopped, far before the 400 frames


def test_metrics_documented_names_exist(pose_server, bikes_lines):
    text = httpx.get(pose_server.url + "/metrics").text
    for name in ("pose_video_frames_total", "pose_video_frames_dropped_total", "pose_active_streams",
                 "pose_active_tracks", "pose_video_decode_seconds"):  # fmt: skip
        assert name in text
    assert metric(pose_server.url, 'pose_video_frames_total{source="video"}') >= 250
