"""``pose-predict`` (inference/predict.py) in-process on the real models (YOLOv8n + MoveNet): images, folders, globs,
a whole video with its rendering, a loopback http:// URL, missing and corrupt sources, Ctrl-C, and no torch."""

from __future__ import annotations

import _thread
import http.server
import json
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from inference.predict import expand_sources, main
from tests.conftest import REPO_ROOT


@pytest.fixture()
def model_args(yolo_onnx, movenet_card, tmp_path) -> list[str]:
    return [
        "--detector", str(yolo_onnx), "--pose", str(movenet_card), "--providers", "CPUExecutionProvider",
        "--cache-dir", str(tmp_path / "cache"), "--offline", "--no-prepare-defaults", "--quiet",
    ]  # fmt: skip


def _ndjson(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _mp4_frames(path: Path) -> tuple[int, tuple[int, int]]:
    import av

    with av.open(str(path)) as c:
        frames = [f for f in c.decode(video=0)]
    return len(frames), (frames[0].width, frames[0].height)


def _mp4_frame(path: Path, index: int) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise IndexError(index)


def test_a_folder_of_images_gives_one_json_each_with_the_service_fields(coco_tiny, model_args, tmp_path):
    from service.schemas import PoseResponse

    images = tmp_path / "images"
    images.mkdir()
    names = sorted(p.name for p in coco_tiny.glob("*.jpg"))[:3]
    for name in names:
        shutil.copy(coco_tiny / name, images / name)
    (images / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert main([str(images), "--out", str(out), "--render", *model_args]) == 0
    assert sorted(p.name for p in out.glob("*.json")) == sorted(n.replace(".jpg", ".json") for n in names)
    for name in names:
        answer = json.loads((out / name.replace(".jpg", ".json")).read_text())
        assert set(answer) == set(PoseResponse.model_fields)
        PoseResponse.model_validate(answer)
        assert answer["persons"] and answer["models"]["detector"] == "yolov8n"
        assert len(answer["persons"][0]["keypoints"]) == 17 and "track_id" not in answer["persons"][0]
        assert {"decode", "detect", "pose", "total"} <= set(answer["timings_ms"])
        from PIL import Image

        with Image.open(out / name) as drawn:  # --render: <stem>.jpg, the image's size
            assert drawn.size == (answer["width"], answer["height"])


def test_a_glob(coco_tiny, model_args, tmp_path):
    out = tmp_path / "out"
    assert main([str(coco_tiny / "*.jpg"), "--out", str(out), *model_args]) == 0
    assert sorted(p.stem for p in out.iterdir()) == sorted(p.stem for p in coco_tiny.glob("*.jpg"))


def test_a_whole_video_with_tracks_and_its_rendering(bikes_mp4, model_args, tmp_path):
    """All 250 frames of bikes.mp4, the detector every 5th frame (and on its scene cuts): one NDJSON line per frame
    between the header and the summary, tracks that end at a scene cut, and an MP4 of as many frames as the source."""
    out = tmp_path / "out"
    assert main([str(bikes_mp4), "--out", str(out), "--render", "--det-interval", "5", *model_args]) == 0
    lines = _ndjson(out / "bikes.ndjson")
    header, frames, summary = lines[0], lines[1:-1], lines[-1]
    assert header["type"] == "video" and (header["width"], header["height"], header["frames"]) == (640, 272, 250)
    assert header["fps"] == 25 and header["models"] == {"detector": "yolov8n", "pose": "movenet_thunder"}
    assert len(header["keypoint_names"]) == 17
    assert [f["frame"] for f in frames] == list(range(250)) and all(f["type"] == "frame" for f in frames)
    assert frames[100]["time_s"] == pytest.approx(4.0)
    persons = [p for f in frames for p in f["persons"]]
    assert persons and all(isinstance(p["track_id"], int) for p in persons)
    ids = [{p["track_id"] for p in f["persons"]} for f in frames]
    walker = set().union(*ids[187:242])  # the scene between the cuts at frames 187 and 242: a pedestrian
    assert walker and not walker & set().union(*ids[:187])  # a scene cut ends every track
    assert max(sum(i in s for s in ids) for i in walker) >= 20  # and the pedestrian keeps one ID for 20+ frames
    assert summary["type"] == "summary" and summary["frames"] == 250 and summary["scene_cuts"] == 5
    assert summary["tracks"] == len({p["track_id"] for p in persons}) and summary["persons"] == len(persons)
    assert summary["detector_runs"] < 125 and "interrupted" not in summary and "error" not in summary
    assert _mp4_frames(out / "bikes.mp4") == (250, (640, 272))
    drawn, source = _mp4_frame(out / "bikes.mp4", 190), _mp4_frame(bikes_mp4, 190)
    x1, y1, x2, y2 = (int(v) for v in frames[190]["persons"][0]["bbox"])
    change = np.abs(drawn.astype(int) - source.astype(int)).sum(-1)
    assert change[y1:y2, x1:x2].mean() > 3 * change[:, : max(1, x1 - 10)].mean()  # skeleton drawn, not re-encoding


def _serve_with_ranges(data: bytes) -> http.server.ThreadingHTTPServer:
    """A loopback HTTP server of ``data`` at any path, answering byte ranges as file servers do (FFmpeg seeks to an
    MP4's index at the end with a Range request)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            start, end = 0, len(data) - 1
            ranged = self.headers.get("Range", "").startswith("bytes=")
            if ranged:
                first, _, last = self.headers["Range"][6:].partition("-")
                start, end = int(first or 0), min(int(last) if last else len(data) - 1, len(data) - 1)
            self.send_response(206 if ranged else 200)
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            try:
                self.wfile.write(data[start : end + 1])
            except (BrokenPipeError, ConnectionResetError):  # FFmpeg closes a connection once it has seen enough
                pass

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_loopback_http_url_without_tracking(bikes_mp4, model_args, tmp_path):
    server = _serve_with_ranges(bikes_mp4.read_bytes())
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{bikes_mp4.name}"
        out = tmp_path / "out"
        args = [url, "--out", str(out), "--no-track", "--max-frames", "12", "--frame-stride", "2", *model_args]
        assert main(args) == 0
    finally:
        server.shutdown()
        server.server_close()
    lines = _ndjson(out / "bikes.ndjson")
    assert len(lines) == 14 and [f["frame"] for f in lines[1:-1]] == list(range(0, 24, 2))
    assert lines[-1]["frames"] == 12 and lines[-1]["tracks"] is None
    assert all("track_id" not in p for f in lines[1:-1] for p in f["persons"])


def test_a_missing_source_fails_fast_with_its_name(coco_tiny, model_args, tmp_path, capsys):
    out = tmp_path / "out"
    missing, empty_glob = tmp_path / "nope.jpg", str(tmp_path / "none-*.png")
    status = main([str(coco_tiny / "000000000785.jpg"), str(missing), empty_glob, "--out", str(out), *model_args])
    err = capsys.readouterr().err
    assert status == 2 and f"{missing}: no such file or folder" in err and f"{empty_glob}: matches no image" in err
    assert not out.exists()  # checked before any model loads or anything is written


def test_a_model_not_found_exits_1_and_one_that_fails_to_load_exits_3(coco_tiny, yolo_onnx, movenet_card, tmp_path,
                                                                     capsys):  # fmt: skip
    card = tmp_path / "broken.json"
    card.write_text("{not json")
    args = [str(coco_tiny / "000000000785.jpg"), "--out", str(tmp_path / "out"), "--quiet", "--offline"]
    args += ["--detector", str(yolo_onnx), "--cache-dir", str(tmp_path)]
    assert main([*args, "--pose", str(card)]) == 1  # the card does not parse: found wanting before any load
    assert "broken.json" in capsys.readouterr().err and not (tmp_path / "out").exists()
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an ONNX model" * 10)
    from models.card import ModelCard

    bad = ModelCard.load(movenet_card)
    bad.model_file = str(garbage)
    assert main([*args, "--pose", str(bad.save(tmp_path / "garbage.json"))]) == 3  # exists, cannot load
    assert "garbage" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_corrupt_video_among_good_images(coco_tiny, model_args, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(coco_tiny / "000000000785.jpg", folder / "a.jpg")
    shutil.copy(coco_tiny / "000000040083.jpg", folder / "c.jpg")
    (folder / "b.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    out = tmp_path / "out"
    assert main([str(folder), "--out", str(out), *model_args]) == 1
    assert (out / "a.json").is_file() and (out / "c.json").is_file()
    assert "b.mp4" in capsys.readouterr().err


def test_ctrl_c_closes_the_outputs_and_exits_130(bikes_mp4, model_args, tmp_path, monkeypatch):
    """SIGINT during the fifth frame: that frame finishes, the NDJSON ends with its summary (interrupted), the MP4 is
    closed and playable with the frames processed, and the status is 130."""
    from inference.stream import PoseStream

    process = PoseStream.process

    def interrupted_at_4(self, image, time_s, frame, ctx=None):
        result = process(self, image, time_s, frame, ctx)
        if frame == 4:
            # SIGINT as the interpreter sees it (its handler runs in the main thread). Not os.kill: after the OpenVINO
            # tests ran in this process, the C-level SIGINT disposition can point into an unloaded plugin library, and a
            # real signal then segfaults the test process (gdb: the fault is in raise(SIGINT) itself).
            _thread.interrupt_main(signal.SIGINT)
        return result

    monkeypatch.setattr(PoseStream, "process", interrupted_at_4)
    before = signal.getsignal(signal.SIGINT)
    out = tmp_path / "out"
    assert main([str(bikes_mp4), "--out", str(out), "--render", *model_args]) == 130
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    lines = _ndjson(out / "bikes.ndjson")
    assert len(lines) == 7 and lines[-1]["interrupted"] is True and lines[-1]["frames"] == 5
    assert _mp4_frames(out / "bikes.mp4") == (5, (640, 272))


def test_sources_are_expanded_sorted_once_with_unique_stems(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "e").mkdir()
    for name in ("d/b.jpg", "d/a.PNG", "d/clip.mov", "d/x.txt", "e/a.jpg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "d" / "sub").mkdir()
    (tmp_path / "d" / "sub" / "z.jpg").write_bytes(b"x")
    sources, problems = expand_sources(
        [str(tmp_path / "d"), str(tmp_path / "d" / "b.jpg"), str(tmp_path / "e" / "*.jpg"),
         "rtsp://cam/live", "http://host/v/match.mp4?x=1", str(tmp_path / "d" / "x.txt")]
    )  # fmt: skip
    assert [(s.kind, Path(s.location).name, s.stem) for s in sources[:4]] == [
        ("image", "a.PNG", "a"), ("image", "b.jpg", "b"), ("video", "clip.mov", "clip"), ("image", "a.jpg", "a_1"),
    ]  # fmt: skip
    assert [(s.kind, s.location, s.stem) for s in sources[4:]] == [
        ("video", "rtsp://cam/live", "live"), ("video", "http://host/v/match.mp4?x=1", "match"),
    ]  # fmt: skip
    assert len(problems) == 1 and "x.txt: not an image" in problems[0]


def test_importing_pose_predict_leaves_torch_and_the_http_stack_out():
    code = (
        "import sys, inference.predict\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'fastapi', 'starlette', 'uvicorn', 'service'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
