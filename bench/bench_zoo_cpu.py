"""CPU speed of the zoo's pose models as served: persons per second on onnxruntime fp32 and OpenVINO fp32 / int8.

    python bench/bench_zoo_cpu.py [--models td-hm_res50 td-hm_hrnet-w32 ...] [--batch 8] [--threads 2] [--int8]
        [--images ../shared/assets/coco-tiny] [--seconds 3]

Each model is built at its published size with random weights (the architecture's cost; no checkpoint can be
downloaded here), its head scaled to a trained model's logit spread, exported by the real ``pose-export`` path
(``export.pose.export_pose_model``: the served graph, uint8 NHWC crops in) and timed on batches of real crops.
Persons per second count the flip test as the served card does (two crops per person when the entry flip-tests).
``--int8`` also quantises the graph with NNCF on those crops (``export.quantize.quantize_ir``) and times OpenVINO
int8; whether int8 keeps its AP (the gate of ``pose-export int8``) needs trained weights, so with random weights the
int8 column is speed only. Figures, not assertions: never part of the test pass.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from export.pose import crops_from_images, export_pose_model  # noqa: E402
from models.pose_model import build_pose_model, scale_head_logits  # noqa: E402
from models.zoo import ZOO  # noqa: E402


def _timed(run, seconds: float) -> float:
    """Median seconds of one call of ``run`` over about ``seconds`` (after one warm-up call)."""
    run()
    times, stop = [], time.perf_counter() + seconds
    while time.perf_counter() < stop or len(times) < 3:
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_one(name: str, images: list[Path], batch: int, threads: int, seconds: float, int8: bool, tmp: Path) -> dict:
    """Export ``name`` and time it; returns a row of figures."""
    import onnxruntime as ort

    model = build_pose_model(name)
    cfg = model.config
    crops = crops_from_images(images, cfg.input_size, n=batch)
    if len(crops) < batch:
        crops = np.concatenate([crops] * (batch // max(1, len(crops)) + 1))[:batch]
    try:
        scale_head_logits(model, crops)
    except NotImplementedError:  # a head without a last layer of its own (CPM: the backbone's stages give heatmaps)
        pass
    exp = export_pose_model(model, tmp / name, crops, "bench crops", threads=threads)
    per_person = 2 if cfg.flip_test else 1
    row = {"name": name, "collection": cfg.collection, "input": f"{cfg.input_size[1]}x{cfg.input_size[0]}"}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(exp.onnx_path), opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: crops}
    row["ort_fp32"] = batch / per_person / _timed(lambda: sess.run(None, feed), seconds)
    try:
        import openvino as ov
    except ImportError:
        return row
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    compiled = core.compile_model(str(exp.onnx_path), "CPU", config)
    row["ov_fp32"] = batch / per_person / _timed(lambda: compiled(feed), seconds)
    if int8:
        from export.quantize import quantize_ir

        xml = quantize_ir(exp.onnx_path, [feed], tmp / f"{name}_int8.xml", "MIXED", 1)
        compiled = core.compile_model(str(xml), "CPU", {"INFERENCE_NUM_THREADS": threads})
        row["ov_int8"] = batch / per_person / _timed(lambda: compiled(feed), seconds)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=sorted(ZOO), choices=sorted(ZOO), metavar="NAME")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--int8", action="store_true")
    p.add_argument("--images", type=Path, default=Path(__file__).resolve().parents[2] / "shared/assets/coco-tiny")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    images = sorted(args.images.glob("*.jpg"))
    print(f"batch {args.batch}, {args.threads} threads; persons/s (flip test counted as served)")
    print("| collection | model | input | note | onnxruntime fp32 | OpenVINO fp32 | OpenVINO int8 |")
    print("|---|---|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            try:
                r = bench_one(name, images, args.batch, args.threads, args.seconds, args.int8, Path(tmp))
            except Exception as exc:  # noqa: BLE001 - a figure table: report the failure and go on
                print(f"| {ZOO[name].collection} | {name} | - | failed: {type(exc).__name__}: {exc} | - | - | - |")
                continue
            cells = [f"{r[k]:.1f}" if k in r else "-" for k in ("ort_fp32", "ov_fp32", "ov_int8")]
            print(f"| {r['collection']} | {name} | {r['input']} | | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
