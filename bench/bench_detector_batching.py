"""Detector batching across concurrent requests: images/s of a dynamic-batch detector at detector batch 1 vs N.

    python bench/bench_detector_batching.py [--clients 4] [--batch 1 4] [--runs onnxruntime:fp32 openvino:fp32 ...]

The detector is ``pose-export detector yolov8n.yaml`` (Ultralytics' YOLOv8n architecture with random weights: the
test asset's batch axis is fixed, and no trained YOLO can be downloaded here), exported with a dynamic batch axis.
Its score threshold is set to 1.0 so that the random detections give the pose model no work: the figures are the
detector stage alone (decode, letterbox, the batched detector, post-processing) through real ``pose-serve``
processes, ``--clients`` concurrent clients over the coco-mini images. int8 runs quantise the random-weight detector
on coco-mini images first (``pose-export quantize``; its AP means nothing). Figures, never part of the test pass.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_vs_mmpose import detector_loop  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", default=str(REPO.parent / "shared" / "assets"), help="the shared test assets")
    ap.add_argument("--work", default="/tmp/bench-detector-batching")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4], help="POSE_DET_MAX_BATCH_SIZE values")
    ap.add_argument("--runs", nargs="+", default=["onnxruntime:fp32", "openvino:fp32", "openvino:bf16"])
    args = ap.parse_args()
    assets, work = Path(args.assets), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    detector = work / "yolov8n_dynamic.onnx"
    if not detector.is_file():
        from export.detector import export_detector

        export_detector("yolov8n.yaml", detector)
    card = work / "movenet_thunder.json"
    if not card.is_file():
        from models.card import InputSpec, ModelCard, OutputSpec

        ModelCard(
            name="movenet_thunder",
            model_file=str(assets / "pose" / "movenet_thunder.onnx"),
            input=InputSpec(name="input:0", width=256, height=256, layout="NHWC", dtype="int32", color="RGB"),
            output=OutputSpec(name="Identity:0", kind="keypoints", coord_order="yx", coord_units="normalized"),
        ).save(card)
    cache = work / "cache"
    if any(r.endswith(":int8") for r in args.runs):
        from core.settings import Settings
        from export.quantize import quantize_models

        mini = assets / "coco-mini"
        settings = Settings(pose_model=card, detector_model=detector, cache_dir=cache)
        quantize_models(settings, mini / "val2017", calib_ann=mini / "annotations" / "person_keypoints_val2017.json")

    from service.launcher import ServerProcess

    images = sorted((assets / "coco-mini" / "val2017").glob("*.jpg"))
    env = {"POSE_CACHE_DIR": str(cache), "POSE_PREPARE_DEFAULTS": "false", "POSE_DET_SCORE_THR": "1.0"}
    rows = []
    for run in args.runs:
        runtime, precision = run.split(":")
        for batch in args.batch:
            argv = ["--detector", str(detector), "--pose", str(card), "--runtime", runtime, "--precision", precision]
            argv += ["--det-max-batch-size", str(batch), "--max-inflight-requests", str(2 * args.clients + 2)]
            with ServerProcess(argv, env=env, ready_timeout=600) as srv:
                srv.wait_ready()
                rate, persons = detector_loop(srv.url, images, args.clients)
                import httpx

                metrics = httpx.get(srv.url + "/metrics").text
            sizes = [ln for ln in metrics.splitlines() if ln.startswith("pose_detector_batch_images_sum")]
            counts = [ln for ln in metrics.splitlines() if ln.startswith("pose_detector_batch_images_count")]
            mean = float(sizes[0].split()[-1]) / max(float(counts[0].split()[-1]), 1.0)
            row = {"runtime": runtime, "precision": precision, "det_batch": batch, "images_per_s": rate}
            row.update(mean_batch=mean, load=os.getloadavg()[0], persons=persons)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n| runtime | precision | detector batch | images/s ({args.clients} clients) | mean batch | load avg |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['runtime']} | {r['precision']} | {r['det_batch']} | {r['images_per_s']:.2f} | "
            f"{r['mean_batch']:.2f} | {r['load']:.2f} |"
        )


if __name__ == "__main__":
    main()
