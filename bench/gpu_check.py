"""The GPU path, end to end, on a machine with an NVIDIA GPU (never in CI): one command.

    python bench/gpu_check.py [--out /tmp/poseserve-gpu] [--assets ../shared/assets] [--pretrained]
        [--configs NAME ...] [--detector yolov8n.yaml] [--batches 1 2 4 8 16 32] [--device 0]

Needs onnxruntime-gpu (never beside onnxruntime), TensorRT 10 + cuda-python, the export extra and httpx:
``pip install -e '.[serve-gpu,export,eval,tensorrt]' httpx`` with the constraints of
docker/constraints/serve-gpu.txt in a fresh environment (the dev extra would bring CPU onnxruntime), or the ``serve``
image built with WITH_TENSORRT=1 plus the export extra. Steps, each printed as it runs:

1. export the zoo configs of ``--configs`` (default :data:`DEFAULT_CONFIGS`: the four seed configs and one entry of
   every other head family, input size and keypoint schema; ``--configs all``: all 23) (``--pretrained``: MMPose's
   checkpoints from ``<out>/cache/checkpoints``, offline; default: full-size models with random weights whose head
   outputs have a trained model's spread, logit std 2 for heatmap / integral heads and 0.2 crop widths for
   regression / RLE coordinates, so timings are real and keypoints depend on the image) and the detector
   (``--detector``: a ``.pt`` or ``yolov8n.yaml``), each linted for TensorRT (``export.lint``);
2. build fp32 (TF32 off) and fp16 engines of each into the engine cache (pose profile 1 / 8 / max batch; the
   detector's up to the served detector batch, ``det_max_batch_size``);
3. compare keypoints on coco-tiny person crops (ground-truth boxes, the served crop geometry) against onnxruntime's
   float32 CPU run: fp32 engine and onnxruntime's CUDA EP within ``models.tolerance.EXPORT_TOLERANCE_PX``
   (0.05 px), fp16 engine within ``FP16_SMOKE_PX`` (1 px), every output finite (Debias included);
4. print crops/s per batch size for TensorRT fp16 / fp32 and the CUDA EP;
5. serve coco-mini over HTTP with ``--runtime tensorrt`` and with the CUDA EP (``pose-serve`` subprocesses) and
   print images/s, after checking ``/v1/models`` reports the runtime and the provider options asked for.

Exit status 1 when a check of step 3 or 5 fails. Figures, not assertions about speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
#: The seed configs and one entry of every other head family / input size / keypoint schema of the zoo.
DEFAULT_CONFIGS = (
    "ipr_res50",
    "ipr_res50_dsnt",
    "ipr_res50_debias",
    "td-hm_res50",
    "td-reg_res50",
    "td-reg_res152_rle_coco-384x288",
    "td-reg_res50_rle_mpii",
    "td-hm_res50_mpii",
)


def _require_gpu_stack() -> None:
    import onnxruntime as ort

    from inference.runtime_trt import import_cudart, import_tensorrt

    import_tensorrt()
    import_cudart()
    if CUDA not in ort.get_available_providers():
        sys.exit(f"onnxruntime has no CUDA provider ({ort.get_available_providers()}): install onnxruntime-gpu")


def person_crops(coco_dir: Path, input_size: tuple[int, int]) -> np.ndarray:
    """uint8 [N, h, w, 3] crops of every annotated person of coco-tiny, cut as the service cuts them."""
    from inference.imageio import decode_image
    from models.geometry import bbox_to_center_scale, bbox_xywh2xyxy, crop_batch

    gt = json.loads((coco_dir / "test_coco.json").read_text())
    crops = []
    for image in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == image["id"] and a.get("num_keypoints", 0) > 0]
        if not anns:
            continue
        rgb = decode_image((coco_dir / image["file_name"]).read_bytes())
        boxes = bbox_xywh2xyxy(np.asarray([a["bbox"] for a in anns], np.float32))
        centers, scales = bbox_to_center_scale(boxes, input_size)
        crops.append(crop_batch(rgb, centers, scales, input_size))
    return np.concatenate(crops)


def export_models(args, settings) -> tuple[list[Path], Path]:
    """Step 1: the zoo configs of ``args.configs`` (cards) and the detector ONNX, each linted."""
    import torch

    from export.detector import export_detector
    from export.lint import check_graph
    from export.pose import crops_from_images, export_pose_model
    from models.checkpoints import load_pose_checkpoint
    from models.pose_model import build_pose_model, scale_head_logits
    from models.zoo import ZOO, get_config

    images = sorted((args.assets / "coco-tiny").glob("*.jpg"))
    cards = []
    for name in sorted(ZOO) if args.configs == ["all"] else args.configs:
        cfg = get_config(name)
        crops = crops_from_images(images, cfg.input_size, 4)
        if args.pretrained:
            model, _ = load_pose_checkpoint(name, cache_dir=settings.cache.checkpoints, offline=True)
        else:
            torch.manual_seed(0)
            model = scale_head_logits(build_pose_model(cfg), crops)  # the head kind's trained_output_std
        r = export_pose_model(model, args.out / "pose", crops, "4 coco-tiny crops", name=name)
        check_graph(r.onnx_path, "error")
        print(f"[export] {name}: {r.verdict.describe()}; lint ok")
        cards.append(r.card_path)
    det = export_detector(args.detector, args.out / "detector" / f"{Path(args.detector).stem}.onnx")
    check_graph(det.onnx_path, "error")
    print(f"[export] detector {args.detector}: max |ort - torch| {det.max_abs_diff:.2e}; lint ok")
    return cards, det.onnx_path


def build_engines(onnx_files: list[Path], settings, max_batch: int) -> dict[tuple[str, str], Path]:
    """Step 2: fp32 and fp16 engines of each ONNX file into the engine cache."""
    from export.tensorrt import EngineCache, EngineSpec
    from inference.runtime_trt import read_sidecar

    cache = EngineCache(settings.cache, settings.device)
    engines = {}
    for onnx_path in onnx_files:
        hi = settings.det_max_batch_size if "detector" in onnx_path.parts else max_batch  # detector: batched images
        for precision in ("fp32", "fp16"):
            engine = cache.get_or_build(onnx_path, EngineSpec(precision, (1, min(8, hi), hi)))
            meta = read_sidecar(engine)
            print(f"[engine] {onnx_path.name} {precision}: tf32={meta.get('tf32')} {meta.get('build_seconds')} s")
            engines[(onnx_path.name, precision)] = engine
    return engines


def accuracy(cards, engines, settings, coco_dir: Path) -> list[str]:
    """Step 3: keypoints of the fp32 / fp16 engines and the CUDA EP vs onnxruntime CPU; returns failures."""
    from inference.runtime import OrtRuntime, provider_options
    from inference.runtime_trt import TrtRuntime
    from models.card import ModelCard
    from models.tolerance import EXPORT_TOLERANCE_PX, FP16_SMOKE_PX, max_abs_diff

    failures = []
    for card_path in cards:
        card = ModelCard.load(card_path)
        onnx_path = card.model_path()
        crops = person_crops(coco_dir, card.input_size)
        feeds = {card.input.name: crops}
        ref = card.decode(OrtRuntime(onnx_path, [CPU]).run(feeds)[0])
        cuda = OrtRuntime(onnx_path, [CUDA, CPU], provider_options=provider_options(settings, [CUDA]))
        runs = {"cuda-ep": (cuda, EXPORT_TOLERANCE_PX)}
        for precision, bound in (("fp32", EXPORT_TOLERANCE_PX), ("fp16", FP16_SMOKE_PX)):
            runs[f"trt-{precision}"] = (TrtRuntime(engines[(onnx_path.name, precision)], settings.device), bound)
        for label, (rt, bound) in runs.items():
            out = np.concatenate([rt.run({card.input.name: c})[0] for c in np.array_split(crops, -(-len(crops) // 8))])
            got = card.decode(out)
            finite = bool(np.isfinite(out).all() and np.isfinite(got).all())
            dev = max_abs_diff(got[..., :2], ref[..., :2]) if finite else float("inf")
            ok = finite and dev <= bound
            print(f"[accuracy] {card.name} {label}: max |Δ| {dev:.4f} px on {len(crops)} crops (bound {bound}) "
                  f"{'ok' if ok else 'FAIL'}")  # fmt: skip
            if not ok:
                failures.append(f"{card.name} {label}: {dev:.4f} px > {bound} (finite: {finite})")
    return failures


def throughput(cards, engines, settings, batches: list[int], repeats: int) -> None:
    """Step 4: crops/s per batch size."""
    from inference.runtime import OrtRuntime, provider_options
    from inference.runtime_trt import TrtRuntime
    from models.card import ModelCard

    for card_path in cards:
        card = ModelCard.load(card_path)
        w, h = card.input_size
        onnx_path = card.model_path()
        runtimes = {
            "trt-fp16": TrtRuntime(engines[(onnx_path.name, "fp16")], settings.device),
            "trt-fp32": TrtRuntime(engines[(onnx_path.name, "fp32")], settings.device),
            "cuda-ep": OrtRuntime(onnx_path, [CUDA], provider_options=provider_options(settings, [CUDA])),
        }
        for label, rt in runtimes.items():
            figures = []
            for b in batches:
                x = {card.input.name: np.random.default_rng(b).integers(0, 256, (b, h, w, 3), dtype=np.uint8)}
                for _ in range(3):
                    rt.run(x)
                t0 = time.perf_counter()
                for _ in range(repeats):
                    rt.run(x)
                figures.append(f"b{b} {b * repeats / (time.perf_counter() - t0):.0f}")
            print(f"[crops/s] {card.name} {label}: " + ", ".join(figures))


def serve(card: Path, detector: Path, settings, images: list[Path], concurrency: int) -> list[str]:
    """Step 5: HTTP images/s with the TensorRT runtime and with the CUDA EP; returns failures."""
    import httpx

    from service.launcher import ServerProcess

    payloads = [p.read_bytes() for p in images]
    common = ["--detector", str(detector), "--pose", str(card), "--cache-dir", str(settings.cache_dir)]
    common += ["--device", str(settings.device), "--max-batch-size", str(settings.max_batch_size)]
    failures = []
    for label, extra in (
        ("tensorrt", ["--runtime", "tensorrt"]),
        ("cuda-ep", ["--runtime", "onnxruntime", "--providers", f"{CUDA},{CPU}"]),
    ):
        with ServerProcess(common + extra, ready_timeout=900) as srv:
            srv.wait_ready()
            models = httpx.get(srv.url + "/v1/models", timeout=10).json()
            rt = models["pose"]["runtime"]
            if label == "tensorrt" and rt["backend"] != "tensorrt":
                failures.append(f"serve {label}: pose runtime is {rt['backend']}")
            if label == "cuda-ep":
                applied = rt.get("provider_options", {}).get(CUDA, {})
                if CUDA not in rt["active_providers"] or applied.get("cudnn_conv_algo_search") != "HEURISTIC":
                    failures.append(f"serve {label}: CUDA EP not active with our options: {rt}")
            with httpx.Client(base_url=srv.url, timeout=120) as client:

                def call(data: bytes) -> int:
                    r = client.post("/pose", content=data, headers={"Content-Type": "image/jpeg"})
                    r.raise_for_status()
                    return len(r.json()["persons"])

                call(payloads[0])
                t0 = time.perf_counter()
                with ThreadPoolExecutor(concurrency) as pool:
                    people = sum(pool.map(call, payloads))
                wall = time.perf_counter() - t0
            print(f"[http] {label}: {len(payloads) / wall:.1f} images/s, {people / wall:.1f} people/s "
                  f"({len(payloads)} coco-mini images, concurrency {concurrency})")  # fmt: skip
    return failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/poseserve-gpu-check"))
    ap.add_argument("--assets", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "assets")
    ap.add_argument("--pretrained", action="store_true", help="MMPose checkpoints from <out>/cache/checkpoints")
    ap.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), help="zoo names, or 'all'")
    ap.add_argument("--detector", default="yolov8n.yaml", help="Ultralytics .pt, or a .yaml (random weights)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--images", type=int, default=80, help="coco-mini images sent over HTTP")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--device", type=int, default=0)
    args = ap.parse_args()
    _require_gpu_stack()
    from core.settings import Settings

    settings = Settings(cache_dir=args.out / "cache", device=args.device, max_batch_size=max(args.batches))
    cards, detector = export_models(args, settings)
    engines = build_engines([*(c.with_suffix(".onnx") for c in cards), detector], settings, max(args.batches))
    failures = accuracy(cards, engines, settings, args.assets / "coco-tiny")
    throughput(cards, engines, settings, args.batches, args.repeats)
    images = sorted((args.assets / "coco-mini" / "val2017").glob("*.jpg"))[: args.images]
    debias = next((c for c in cards if c.stem == "ipr_res50_debias"), cards[0])
    failures += serve(debias, detector, settings, images, args.concurrency)
    print("\n".join(["GPU check FAILED:", *failures]) if failures else "GPU check passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
