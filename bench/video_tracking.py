"""ID switches of the pose tracker on clips with known motion, and track counts on ``video/bikes.mp4``.

    python bench/video_tracking.py [--assets ../shared/assets]

Built clips: a COCO image (coco-tiny) pasted on a grey canvas and moved by a known offset per frame (the pans of
``tests/inference/test_stream.py``), real YOLOv8n + MoveNet Thunder in-process. Each whole person of frame 0 (at least
12 keypoints above 0.3) is a ground-truth identity; a found person belongs to the identity whose moved frame-0 pose is
nearest (mean keypoint distance under 20 px); an ID switch is a change of the track ID an identity gets. Rows for
``det_interval`` 1 and 5 and for the tracker's ablations (``--ablations``): last position only (no constant-velocity
prediction), OKS only (no IoU), one-stage association, no pose NMS. bikes.mp4: track IDs of confident persons
(score > 0.5) per scene. Figures for the README and ``bench/RESULTS.md``; never part of the test pass.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "bench"))

from bench_video import _card  # noqa: E402

from tests.inference.test_stream import _match, panned  # noqa: E402

CLIPS = {  # name: (image, per-frame offset, frames)
    "two people, pan 3,1 px/frame": ("000000040083.jpg", (3, 1), 40),
    "four people, pan 3,1 px/frame": ("000000196141.jpg", (3, 1), 40),
    "five people, pan 6,0 px/frame": ("000000197388.jpg", (6, 0), 30),
    "four people, pan 8,3 px/frame": ("000000196141.jpg", (8, 3), 25),
}


def id_switches(results, v) -> tuple[int, int, int]:
    ref = results[0].result.keypoints
    ref = ref[(ref[..., 2] > 0.3).sum(-1) >= 12]
    owner: dict[int, int] = {}
    switches = 0
    for fr in results:
        expected = ref + np.array([v[0] * fr.frame, v[1] * fr.frame, 0.0])
        if not len(fr.result.keypoints):
            continue
        idx, dist = _match(fr.result.keypoints, expected)
        for tid, r, d in zip(fr.track_ids, idx, dist):
            if d <= 20:
                if owner.setdefault(int(r), int(tid)) != int(tid):
                    switches += 1
                    owner[int(r)] = int(tid)
    return switches, len(ref), len({int(i) for fr in results for i in fr.track_ids})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", default=str(REPO.parent / "shared" / "assets"))
    ap.add_argument("--ablations", action="store_true")
    args = ap.parse_args()
    assets = Path(args.assets)
    from core.settings import Settings
    from inference.imageio import decode_image
    from inference.pipeline import PosePipeline
    from inference.stream import PoseStream, StreamOptions
    from inference.video import open_video

    work = Path("/tmp/bench-video")
    work.mkdir(parents=True, exist_ok=True)
    card = _card(assets, work)
    settings = Settings(detector_model=assets / "detector" / "yolov8n.onnx", pose_model=card)
    pipeline = PosePipeline.from_settings(settings, batching=False)
    variants = {"ours": {}}
    if args.ablations:
        variants.update({"no pose NMS": {"pose_nms_thr": 1.0}, "IoU only": {"track_method": "iou"}})
    print("| clip | det_interval | tracker | identities | ID switches | track IDs given |")
    print("|---|---|---|---|---|---|")
    for name, (file, v, n) in CLIPS.items():
        image = decode_image((assets / "coco-tiny" / file).read_bytes())
        frames = list(panned(image, n, v, canvas=(760 + 8 * n // 2, 480 + 3 * n)))
        for det_interval in (1, 5):
            for variant, over in variants.items():
                options = StreamOptions.from_settings(settings, smooth=False, det_interval=det_interval, **over)
                stream = PoseStream(pipeline, options)
                results = [stream.process(f, t / 25.0, t) for t, f in frames]
                sw, ids, given = id_switches(results, v)
                print(f"| {name}, {n} frames | {det_interval} | {variant} | {ids} | {sw} | {given} |", flush=True)
    for det_interval in (1, 5):
        stream = PoseStream(pipeline, StreamOptions.from_settings(settings, det_interval=det_interval))
        per_scene: dict[int, set] = {}
        scene = 0
        with open_video(assets / "video" / "bikes.mp4") as reader:
            for f in reader.frames():
                fr = stream.process(f.image, f.time_s, f.index)
                scene += fr.scene_cut
                per_scene.setdefault(scene, set()).update(
                    int(t) for t, s in zip(fr.track_ids, fr.result.scores) if s > 0.5
                )
        s = stream.summary()
        print(f"bikes.mp4 det_interval {det_interval}: confident track IDs per scene "
              f"{ {k: sorted(v) for k, v in per_scene.items()} }, tracks {s['tracks']}, detector runs "
              f"{s['detector_runs']}, duplicates dropped {s['duplicates']}")  # fmt: skip
    pipeline.close()


if __name__ == "__main__":
    main()
