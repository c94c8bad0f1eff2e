"""Batch throughput on coco-mini: ``pose-predict --runner local`` against ``--runner ray`` (Ray's overhead on one
machine), and what one Ray actor does (the figure to size a cluster with).

    python bench/bench_ray.py [--assets ../shared/assets] [--cpus 2] [--repeat 1]

YOLOv8n (test asset) + MoveNet Thunder on onnxruntime's CPU provider, the 159 images of coco-mini. Rows:

* ``local``: ``pose-predict --runner local`` (one process, the models' threads = ``--cpus``), wall time of the images
  after the models are loaded (``Predictor.images``);
* ``ray AxT``: ``pose-predict --runner ray`` on a local Ray of ``--cpus`` CPUs, A actors of T CPUs (and threads)
  each, ``--batch-size 8``, batching on / off; wall time of ``RayJob.run`` (actor start and model loading included:
  what a job pays once per actor), in a fresh output folder each time;
* per actor (batching off only): images / the sum of the per-image times in ``sources/``: the rate of one actor once
  its models are loaded (its images run one after the other).

Figures go to ``bench/RESULTS.md`` by hand; never part of the test pass.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
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
        source={"checkpoint": "Google MoveNet SinglePose Thunder v4 (shared test asset)"},
    ).save(card)
    return card


def _settings(assets: Path, card: Path, threads: int):
    from core.settings import Settings

    return Settings(detector_model=assets / "detector" / "yolov8n.onnx", pose_model=card,
                    providers=["CPUExecutionProvider"], intra_op_threads=threads, prepare_defaults=False)  # fmt: skip


def bench_local(images: list[str], settings, work: Path) -> float:
    """Seconds for the images through ``Predictor.images`` (models loaded before the clock starts)."""
    from inference.pipeline import PosePipeline
    from inference.predict import Predictor, StopRequest, parse_args

    args = parse_args(["x", "--out", str(work), "--quiet"])
    work.mkdir(parents=True, exist_ok=True)
    pipeline = PosePipeline.from_settings(settings)
    try:
        from inference.predict import Source

        sources = [Source("image", p, Path(p).stem) for p in images]
        with StopRequest() as stop:
            t0 = time.perf_counter()
            Predictor(pipeline, settings, args, stop).images(sources)
            return time.perf_counter() - t0
    finally:
        pipeline.close()


def bench_ray(images: list[str], settings, work: Path, actors: int, cpus: float, batching: bool) -> dict:
    from inference.ray_runner import RayJob, ResultStore

    job = RayJob(settings.model_copy(update={"intra_op_threads": 0}), work, concurrency=actors, num_cpus=cpus,
                 batch_size=8, batching=batching, quiet=True)  # fmt: skip
    t0 = time.perf_counter()
    summary = job.run(images, [])
    wall = time.perf_counter() - t0
    busy = sum(ResultStore(work, "x").status().column("elapsed_s").to_pylist())
    assert summary["errors"] == 0 and summary["ran"] == len(images), summary
    # one actor's steady rate: its images run one after the other with batching off (with batching on they overlap
    # in threads, and their times do not add up to the actor's busy time)
    return {"wall": wall, "per_actor": len(images) / busy if not batching else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--assets", type=Path, default=REPO.parent / "shared" / "assets")
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray and threads of the local runner")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    images = sorted(str(x) for x in (args.assets / "coco-mini" / "val2017").glob("*.jpg"))
    work = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    card = _card(args.assets, work)
    print(f"{len(images)} images (coco-mini), {args.cpus} CPUs, load average {os.getloadavg()[0]:.2f}")
    for _ in range(args.repeat):
        s = bench_local(images, _settings(args.assets, card, args.cpus), work / "local")
        print(
            f"| local (1 process, {args.cpus} threads, batching on) | {len(images) / s:.1f} | - | models loaded "
            "before the clock |"
        )
    from inference.ray_runner import init_ray

    t0 = time.perf_counter()
    init_ray(None, num_cpus=args.cpus, log_to_driver=False)
    print(f"ray.init (local, {args.cpus} CPUs): {time.perf_counter() - t0:.1f} s")
    configs = [(1, float(args.cpus), True), (args.cpus, 1.0, True), (args.cpus, 1.0, False), (1, 1.0, False)]
    n = 0
    for _ in range(args.repeat):
        for actors, cpus, batching in configs:
            n += 1
            r = bench_ray(images, _settings(args.assets, card, 0), work / f"ray{n}", actors, cpus, batching)
            per_actor = "-" if r["per_actor"] is None else f"{r['per_actor']:.1f}"
            print(f"| ray {actors}x{cpus:g} CPU, batching {'on' if batching else 'off'} | {len(images) / r['wall']:.1f} "
                  f"| {per_actor} | actor start and model load included |")  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
