"""Our served HTTP pipeline against MMPose's ``inference_topdown``, one run, same images, same checkpoint.

    python bench/bench_vs_mmpose.py [--mmpose-python /work/mmpose-venv/bin/python] [--rounds 3] \\
        [--work /tmp/bench-vs-mmpose] [--detector-loop] [--clients 4]

1. An MMPose-layout ``ipr_res50_dsnt`` checkpoint is built in the MMPose virtual environment
   (``bench/mmpose_topdown.py make-checkpoint``): MMPose's own config and model, every weight filled by the recipe of
   ``tests/mmpose_golden/recipe.py``. No trained checkpoint can be downloaded here, so the weights are random and the
   AP of this model means nothing; speed and agreement with MMPose are what this measures.
2. MMPose 1.3.2 ``inference_topdown`` (torch fp32, the config's flip test) runs the coco-tiny images with their
   ground-truth boxes (MMPose's rule, ``evaluation.boxes.gt_bboxes``): persons/s of the best round, keypoints. It runs
   once per torch thread count of ``--threads`` (default 1 and 2) and the fastest counts: on 2 cores shared with other
   jobs, torch's 2 OpenMP threads can be several times slower than 1 (each barrier waits for a descheduled thread).
3. The same checkpoint is exported by ``pose-export pose`` (ONNX + card, verified against torch) and quantised by
   ``pose-export quantize`` (calibration: coco-mini images, ground-truth boxes; coco-mini and coco-tiny share no image;
   the detector is quantised too, calibrated on the same images).
4. For each runtime x precision (onnxruntime fp32, OpenVINO fp32 / bf16 / int8) a real ``pose-serve`` process
   (flip test on) answers ``POST /pose?boxes=...`` for the same images, one request at a time: persons/s of the best
   round, the ratio to MMPose, and the largest keypoint difference to MMPose's output (original-image pixels).
5. ``--detector-loop``: the same servers with the detector in the loop (YOLOv8n from the shared assets, at the same
   precision), ``--clients`` concurrent clients over the coco-mini images: images/s and persons/s.

Prints a Markdown table. Figures, not assertions: never part of the test pass. The AP gates of reduced precision are
measured on trained models (``tests/export/test_quantize_gate.py``), not here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIG = "body_2d_keypoint/integral_regression/coco/ipr_res50_dsnt-8xb64-210e_coco-256x256.py"
RUNS = [("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8")]


def mmpose_config(python: str) -> str:
    """The config file inside the MMPose venv's package (``mmpose/.mim/configs``)."""
    out = subprocess.run(
        [python, "-c", "import importlib.util as u; print(u.find_spec('mmpose').submodule_search_locations[0])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return str(Path(out.stdout.strip()) / ".mim" / "configs" / CONFIG)


def coco_jobs(assets: Path) -> list[dict]:
    """coco-tiny images with their ground-truth person boxes (xyxy), MMPose's rule."""
    from evaluation.boxes import gt_bboxes
    from evaluation.metric import load_coco

    coco = load_coco(assets / "coco-tiny" / "test_coco.json")
    jobs = []
    for i in coco.getImgIds():
        boxes = gt_bboxes(coco, i)[0]
        if len(boxes):
            jobs.append({"image": str(assets / "coco-tiny" / coco.imgs[i]["file_name"]), "bboxes": boxes.tolist()})
    return jobs


def serve_rounds(url: str, jobs: list[dict], rounds: int) -> tuple[float, np.ndarray]:
    """(best round's seconds, keypoints [P, 17, 3] of the last round) answering the jobs one request at a time."""
    import httpx

    payloads = [(Path(j["image"]).read_bytes(), json.dumps(j["bboxes"])) for j in jobs]
    best, kpts = float("inf"), None
    with httpx.Client(base_url=url, timeout=300) as client:

        def one_round():
            out = []
            for data, boxes in payloads:
                r = client.post("/pose", params={"boxes": boxes}, content=data, headers={"Content-Type": "image/jpeg"})
                r.raise_for_status()
                out += [p["keypoints"] for p in r.json()["persons"]]
            return np.asarray(out, np.float64)

        one_round()  # warm-up
        for _ in range(rounds):
            t = time.perf_counter()
            kpts = one_round()
            best = min(best, time.perf_counter() - t)
    return best, kpts


def detector_loop(url: str, images: list[Path], clients: int) -> tuple[float, int]:
    """(images/s, persons found) with ``clients`` concurrent clients sending every image once (after a warm-up)."""
    import httpx

    payloads = [p.read_bytes() for p in images]
    limits = httpx.Limits(max_connections=clients + 2)
    with httpx.Client(base_url=url, timeout=300, limits=limits) as client:

        def call(data: bytes) -> int:
            r = client.post("/pose", content=data, headers={"Content-Type": "image/jpeg"})
            r.raise_for_status()
            return len(r.json()["persons"])

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(call, payloads[: 2 * clients]))  # warm-up
            t = time.perf_counter()
            persons = sum(pool.map(call, payloads))
            wall = time.perf_counter() - t
    return len(payloads) / wall, persons


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mmpose-python", default="/work/mmpose-venv/bin/python", help="the MMPose venv's python")
    ap.add_argument("--assets", default=str(REPO.parent / "shared" / "assets"), help="the shared test assets")
    ap.add_argument("--work", default="/tmp/bench-vs-mmpose", help="checkpoint, exports, cache")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds over the images (the best one counts)")
    ap.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="MMPose's torch thread counts (the fastest counts)"
    )
    ap.add_argument("--detector-loop", action="store_true", help="also: detector in the loop on coco-mini")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients of the detector loop")
    ap.add_argument("--runs", nargs="+", default=[f"{r}:{p}" for r, p in RUNS], help="runtime:precision list")
    args = ap.parse_args()
    assets, work = Path(args.assets), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    env = {"YOLO_OFFLINE": "1", "POSE_CACHE_DIR": str(cache), "POSE_PREPARE_DEFAULTS": "false"}
    print(f"load average before: {os.getloadavg()}", flush=True)

    # 1. the MMPose-layout checkpoint, 2. MMPose's own run
    config = mmpose_config(args.mmpose_python)
    ckpt = work / "ipr_res50_dsnt_recipe.pth"
    script = str(REPO / "bench" / "mmpose_topdown.py")
    if not ckpt.is_file():
        subprocess.run(
            [args.mmpose_python, script, "make-checkpoint", "--config", config, "--out", str(ckpt)], check=True
        )
    jobs = coco_jobs(assets)
    (work / "jobs.json").write_text(json.dumps(jobs))
    mm_rate, mm, mm_threads = 0.0, None, None
    for threads in args.threads:
        out = work / f"mmpose-{threads}.npz"
        cmd = [args.mmpose_python, script, "infer", "--config", config, "--checkpoint", str(ckpt), "--jobs"]
        cmd += [str(work / "jobs.json"), "--out", str(out), "--rounds", str(args.rounds), "--threads", str(threads)]
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        res = np.load(out)
        persons = int(res["persons"])
        rate = persons / float(res["seconds"].min())
        print(f"MMPose inference_topdown, {threads} thread(s): {persons} persons, {rate:.2f} persons/s", flush=True)
        if rate > mm_rate:
            mm_rate, mm, mm_threads = rate, res, threads

    # 3. export and quantise the same checkpoint
    from core.settings import Settings
    from export.pose import export_pose
    from export.quantize import describe_report, quantize_models

    card = work / "model" / "ipr_res50_dsnt.json"
    if not card.is_file():
        r = export_pose(str(ckpt), work / "model", config="ipr_res50_dsnt", check_images=[assets / "coco-tiny"])
        print(f"export: {r.verdict.describe()}", flush=True)
    detector = assets / "detector" / "yolov8n.onnx"
    if any(p == "int8" for p in (r.split(":")[1] for r in args.runs)):
        mini = assets / "coco-mini"
        settings = Settings(pose_model=card, detector_model=detector, cache_dir=cache, flip_test=True)
        report = quantize_models(
            settings, mini / "val2017", calib_ann=mini / "annotations" / "person_keypoints_val2017.json"
        )
        print(describe_report(report), flush=True)

    # 4. the served pipeline per runtime x precision
    from service.launcher import ServerProcess

    rows = []
    mini_images = sorted((assets / "coco-mini" / "val2017").glob("*.jpg"))
    for run in args.runs:
        runtime, precision = run.split(":")
        argv = ["--detector", str(detector), "--pose", str(card), "--runtime", runtime, "--precision", precision]
        argv += ["--flip-test", "--max-inflight-requests", str(max(8, 2 * args.clients))]
        with ServerProcess(argv, env=env, ready_timeout=600) as srv:
            srv.wait_ready()
            seconds, kpts = serve_rounds(srv.url, jobs, args.rounds)
            row = {
                "runtime": runtime,
                "precision": precision,
                "persons_per_s": persons / seconds,
                "ratio": persons / seconds / mm_rate,
                "max_px": float(np.abs(kpts[..., :2] - mm["keypoints"][..., :2]).max()),
                "load": os.getloadavg()[0],
            }
            if args.detector_loop:
                row["images_per_s"], row["loop_persons"] = detector_loop(srv.url, mini_images, args.clients)
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(f"\nMMPose 1.3.2 inference_topdown (torch fp32, {mm_threads} thread(s), flip test): {mm_rate:.2f} persons/s "
          f"on {persons} coco-tiny persons (ground-truth boxes)\n")  # fmt: skip
    head = "| runtime | precision | persons/s | x MMPose | max keypoint diff to MMPose (px) | load avg |"
    sep = "|---|---|---|---|---|---|"
    if args.detector_loop:
        head += f" detector loop: images/s ({args.clients} clients, coco-mini) |"
        sep += "---|"
    print(head + "\n" + sep)
    for r in rows:
        line = f"| {r['runtime']} | {r['precision']} | {r['persons_per_s']:.2f} | {r['ratio']:.2f} | {r['max_px']:.3g} | {r['load']:.2f} |"
        if args.detector_loop:
            line += f" {r['images_per_s']:.2f} |"
        print(line)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
