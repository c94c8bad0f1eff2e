"""Video throughput on ``video/bikes.mp4``: a client that POSTs each frame to ``/pose``, ``POST /pose/video`` at
``det_interval`` 1 and 5, and 1 / 4 concurrent ``/pose/stream`` WebSocket sessions.

    python bench/bench_video.py [--assets ../shared/assets] [--streams 1 4] [--ws-fps 25]

One real ``pose-serve`` (YOLOv8n test asset + MoveNet Thunder, onnxruntime CPU) for all rows. Rows:

* ``/pose loop``: the clip decoded by the client (PyAV), every frame JPEG-encoded (quality 90) and POSTed to
  ``/pose`` one after the other: what users do today;
* ``/pose/video det_interval N``: the clip uploaded once, NDJSON read to the end; frames/s = 250 / wall time;
* ``/pose/stream xK``: K sessions at once, each sending the clip's frames as JPEG at ``--ws-fps`` (a live camera:
  open loop, frames are not held back for replies); frames/s = replies per second summed over the sessions, with the
  reply latency p50 / p99 (frame sent to its reply read) and the frames dropped by the latest-frame rule; then the
  same sessions in closed loop (each sends its next frame when its reply came: what K sessions reach together).

Figures go to ``bench/RESULTS.md`` by hand; never part of the test pass.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _card(assets: Path, work: Path) -> Path:
    from models.card import InputSpec, ModelCard, OutputSpec

    card = work / "movenet_thunder.json"
    ModelCard(
        name="movenet_thunder",
        model_file=str(assets / "pose" / "movenet_thunder.onnx"),
        input=InputSpec(name="input:0", width=256, height=256, layout="NHWC", dtype="int32", color="RGB"),
        output=OutputSpec(name="Identity:0", kind="keypoints", coord_order="yx", coord_units="normalized"),
    ).save(card)
    return card


def _jpeg_frames(clip: Path) -> list[bytes]:
    from inference.render import encode_jpeg
    from inference.video import open_video

    with open_video(clip) as reader:
        return [encode_jpeg(f.image) for f in reader.frames()]


def pose_loop(url: str, frames: list[bytes]) -> float:
    import httpx

    with httpx.Client(timeout=60) as client:
        t0 = time.perf_counter()
        for data in frames:
            r = client.post(url + "/pose", content=data, headers={"Content-Type": "image/jpeg"})
            r.raise_for_status()
        return len(frames) / (time.perf_counter() - t0)


def pose_video(url: str, clip: Path, det_interval: int) -> tuple[float, dict]:
    import httpx

    t0 = time.perf_counter()
    with httpx.stream("POST", url + "/pose/video", params={"det_interval": det_interval},
                      files={"file": (clip.name, clip.read_bytes(), "video/mp4")}, timeout=600) as r:  # fmt: skip
        lines = [json.loads(x) for x in r.iter_lines() if x]
    wall = time.perf_counter() - t0
    summary = lines[-1]
    assert summary["type"] == "summary", summary
    return summary["frames"] / wall, summary


def ws_sessions(url: str, frames: list[bytes], sessions: int, fps: float) -> dict:
    """``sessions`` concurrent WebSocket clients; ``fps`` > 0: each sends at that rate (open loop); 0: each sends its
    next frame once the last reply came (closed loop: the throughput the sessions reach together)."""
    from websockets.sync.client import connect

    results = []

    def closed():
        latencies = []
        with connect(url.replace("http://", "ws://") + "/pose/stream", max_size=None) as ws:
            t0 = time.perf_counter()
            for data in frames:
                t = time.perf_counter()
                ws.send(data)
                json.loads(ws.recv(timeout=60))
                latencies.append(time.perf_counter() - t)
            wall = time.perf_counter() - t0
        results.append({"replies": len(frames), "wall": wall, "latencies": latencies, "dropped": 0})

    def one():
        latencies, replies = [], 0
        sent: dict[int, float] = {}
        with connect(url.replace("http://", "ws://") + "/pose/stream", max_size=None) as ws:
            done = threading.Event()
            last = {}

            def read():
                nonlocal replies
                while not done.is_set() or len(sent) > replies + last.get("dropped_frames", 0):
                    try:
                        msg = json.loads(ws.recv(timeout=5))
                    except Exception:  # noqa: BLE001 - no more replies
                        return
                    if msg.get("type") == "frame":
                        replies += 1
                        latencies.append(time.perf_counter() - sent[msg["id"]])
                        last.update(msg)

            reader = threading.Thread(target=read)
            reader.start()
            t0 = time.perf_counter()
            for i, data in enumerate(frames):
                time.sleep(max(0.0, t0 + i / fps - time.perf_counter()))
                ws.send(json.dumps({"type": "frame", "id": i, "time_s": i / fps}))
                sent[i] = time.perf_counter()
                ws.send(data)
            done.set()
            reader.join(30)
            wall = time.perf_counter() - t0
        results.append(
            {"replies": replies, "wall": wall, "latencies": latencies, "dropped": last.get("dropped_frames", 0)}
        )

    threads = [threading.Thread(target=one if fps > 0 else closed) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    import numpy as np

    lat = np.concatenate([r["latencies"] for r in results]) * 1000.0
    return {
        "fps": sum(r["replies"] / r["wall"] for r in results),
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "dropped": sum(r["dropped"] for r in results),
        "sent": sessions * len(frames),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", default=str(REPO.parent / "shared" / "assets"))
    ap.add_argument("--work", default="/tmp/bench-video")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--ws-fps", type=float, default=25.0, help="frames/s each WebSocket client sends")
    args = ap.parse_args()
    assets, work = Path(args.assets), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clip = assets / "video" / "bikes.mp4"
    card = _card(assets, work)
    frames = _jpeg_frames(clip)
    from service.launcher import ServerProcess

    rows = []
    argv = ["--detector", str(assets / "detector" / "yolov8n.onnx"), "--pose", str(card)]
    with ServerProcess(argv, env={"POSE_PREPARE_DEFAULTS": "false"}) as srv:
        srv.wait_ready()
        pose_loop(srv.url, frames[:20])  # warm the connection and the models
        rows.append({"row": "/pose loop (client decodes, one POST per frame)", "fps": pose_loop(srv.url, frames)})
        print(json.dumps(rows[-1]), flush=True)
        for n in (1, 5):
            fps, summary = pose_video(srv.url, clip, n)
            rows.append({"row": f"/pose/video det_interval {n}", "fps": fps, "detector_runs": summary["detector_runs"],
                         "tracks": summary["tracks"]})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
        for fps in (args.ws_fps, 0.0):
            for k in args.streams:
                r = ws_sessions(srv.url, frames, k, fps)
                mode = f"{fps:g} fps each" if fps else "closed loop"
                rows.append({"row": f"/pose/stream x{k} ({mode})", **r})
                print(json.dumps(rows[-1]), flush=True)
    load = os.getloadavg()[0]
    print(f"\nload average {load:.2f}\n")
    print("| path | frames/s | detector runs | tracks | latency p50 / p99 (ms) | dropped / sent |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        lat = f"{r['p50_ms']:.0f} / {r['p99_ms']:.0f}" if "p50_ms" in r else ""
        drop = f"{r['dropped']} / {r['sent']}" if "sent" in r else ""
        print(
            f"| {r['row']} | {r['fps']:.2f} | {r.get('detector_runs', '')} | {r.get('tracks', '')} | {lat} | {drop} |"
        )


if __name__ == "__main__":
    main()
