"""The GPU path in one short run on a machine with an NVIDIA GPU (never in the test suite; its --dry-run is).

On a CPU machine with the export extra (and Ultralytics, README "Export"; or the export image), beforehand:

    python bench/gpu_check.py --prepare /tmp/gpu-onnx [--configs ipr_res50_debias td-reg_res50_rle] [--detector yolov8n.yaml]
    # or take the default models: pose-export defaults --cache-dir C, then --onnx-dir C/<default models folder>

On the GPU machine (onnxruntime-gpu, never beside onnxruntime; TensorRT 10 + cuda-python: the serve image built
with WITH_TENSORRT=1, or README "GPU"'s pip route; no torch, no Ultralytics):

    python bench/gpu_check.py --quick --onnx-dir /tmp/gpu-onnx --out /tmp/gpu-out [--images coco-mini/val2017]

Each step runs in a subprocess of its own with its own time limit (``--budget-scale`` scales them; their sum is
about 10 minutes) and writes ``<out>/<step>.json`` as it goes (a step that runs out of time keeps what it measured);
a tool that is missing makes its step a ``skip`` with the reason; ``<out>/summary.json`` lists every step:

1. ``facts``: GPU and driver (``nvidia-smi``), versions (Python, onnxruntime and its CUDA build, TensorRT, the
   ``cuda.bindings`` files), ``inference.cuda_stack`` (distributions, and ``--session``: the CUDA libraries a session
   really loaded, from ``/proc/self/maps``);
2. ``ort_cuda``: onnxruntime's CUDA EP at batches 1 / 8 / 32 (ms per batch) and its keypoints' largest difference to
   onnxruntime's CPU run in crop pixels (bound ``models.tolerance.EXPORT_TOLERANCE_PX``, TF32 off);
3. ``trt_build``: fp32 and fp16 engines of every model into ``<out>/cache`` (build seconds; TensorRT's timing cache
   kept beside them, so the second build of a model reuses the first's timings);
4. ``trt_runtime``: the engines at batches 1, 7 and 32 (within each profile) and from a second thread, ms per batch,
   keypoints against the CPU (fp32 <= 0.05 px, fp16 <= ``FP16_SMOKE_PX``);
5. ``ort_trt_ep``: onnxruntime's TensorRT EP, the session created twice: the second finds the engine cache (seconds
   of each);
6. ``http``: ``pose-serve`` on the CUDA EP (and with ``--runtime tensorrt`` when engines were built): seconds to
   ``/readyz``, images/s over ``--images`` (or synthetic images).

``--dry-run`` runs the same steps on a CPU machine: the CPU provider stands in for the CUDA EP (keypoints must then
agree exactly), the TensorRT steps skip (no TensorRT), HTTP serves a few images on the CPU. Without ``--onnx-dir`` it
writes a small pose model (onnx needed) and takes the test detector ``<--assets>/detector/yolov8n.onnx``. CI
(``.ci/run``) runs it.

Exit status 1 when a step fails (a bound exceeded, an error) or runs out of time; skips do not fail.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CUDA, CPU, TRT_EP = "CUDAExecutionProvider", "CPUExecutionProvider", "TensorrtExecutionProvider"
#: step -> time limit in seconds (sum under 10 minutes; ``--budget-scale`` multiplies them).
STEPS = {"facts": 30, "ort_cuda": 60, "trt_build": 220, "trt_runtime": 45, "ort_trt_ep": 120, "http": 120}
#: Zoo configs ``--prepare`` exports by default: the default pose model (integral: keypoints move continuously with
#: the numbers, so the px bounds are meaningful on random weights; a heatmap argmax on a flat random heatmap can jump).
#: Each one costs two engine builds in ``trt_build``: add more with ``--configs`` and a larger ``--budget-scale``.
PREPARE_CONFIGS = ("ipr_res50_debias",)


class Recorder:
    """One step's JSON (``<out>/<step>.json``), rewritten after every ``put`` so a killed step keeps its results."""

    def __init__(self, out: Path, step: str):
        self.path = out / f"{step}.json"
        self.data: dict = {"step": step, "status": "running", "results": {}}
        self.t0 = time.perf_counter()
        self.flush()

    def put(self, key: str, value) -> None:
        self.data["results"][key] = value
        self.flush()

    def finish(self, status: str, reason: str | None = None) -> None:
        self.data.update(status=status, reason=reason, seconds=round(time.perf_counter() - self.t0, 2))
        self.flush()

    def flush(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2, default=str) + "\n")


class Skip(Exception):
    """A tool the step needs is missing: the step is skipped with this reason."""


class Fail(Exception):
    """A check of the step failed: the step fails with this reason."""


# ---------------------------------------------------------------------------------------------------- models


def find_models(onnx_dir: Path) -> tuple[list[Path], list[Path]]:
    """(pose cards, detector ONNX files) of a folder: a ``.json`` that loads as a model card whose model file exists
    is a pose model; an ``.onnx`` without a card (beside or embedded) is a detector."""
    from models.card import ModelCard

    cards, poses = [], set()
    for f in sorted(onnx_dir.glob("*.json")):
        try:
            card = ModelCard.load(f)
        except Exception:
            continue
        if card.model_path().is_file():
            cards.append(f)
            poses.add(card.model_path().resolve())
    detectors = [f for f in sorted(onnx_dir.glob("*.onnx")) if f.resolve() not in poses]
    return cards, detectors


def write_dry_run_models(folder: Path, assets: Path) -> Path:
    """A small pose model (uint8 crops 64x48 -> 17 keypoints: mean-pooled pixels through a 1x1 convolution, dynamic
    batch) with its card, and the test detector ``<assets>/detector/yolov8n.onnx``; the folder."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from models.card import InputSpec, ModelCard, OutputSpec

    folder.mkdir(parents=True, exist_ok=True)
    h, w = 64, 48
    x = helper.make_tensor_value_info("crops", TensorProto.UINT8, ["batch", h, w, 3])
    y = helper.make_tensor_value_info("coords", TensorProto.FLOAT, ["batch", 17, 2])
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.uniform(-0.01, 0.01, (34, 3, 1, 1)).astype(np.float32), "w"),
        numpy_helper.from_array(np.array([0, 17, 2], np.int64), "shape"),
        numpy_helper.from_array(np.array([20.0], np.float32), "offset"),
    ]
    nodes = [
        helper.make_node("Cast", ["crops"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["f"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w"], ["c"]),
        helper.make_node("GlobalAveragePool", ["c"], ["p"]),
        helper.make_node("Reshape", ["p", "shape"], ["r"]),
        helper.make_node("Add", ["r", "offset"], ["coords"]),
    ]
    graph = helper.make_graph(nodes, "dry_run_pose", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, folder / "dry_run_pose.onnx")
    ModelCard(
        name="dry_run_pose",
        model_file="dry_run_pose.onnx",
        input=InputSpec(name="crops", width=w, height=h, layout="NHWC", dtype="uint8"),
        output=OutputSpec(name="coords", kind="keypoints"),
        source={"checkpoint": "bench/gpu_check.py --dry-run (synthetic)"},
    ).save(folder / "dry_run_pose.json")
    detector = assets / "detector" / "yolov8n.onnx"
    if detector.is_file():
        (folder / "yolov8n.onnx").write_bytes(detector.read_bytes())
    return folder


def prepare(folder: Path, configs: list[str], detector: str, width: int = 64) -> None:
    """``--prepare``: export ``configs`` (random weights with a trained model's output spread) and the detector into
    ``folder``, each linted for TensorRT; needs the export extra and Ultralytics (a CPU machine is enough).

    ``width``: the ResNet stem width (64: the published size, a 136 MB ResNet-50 ONNX whose timings are real; 16: a
    ~7 MB graph with the same operators, for a GPU machine reached through a small file transfer)."""
    import torch

    from export.detector import export_detector
    from export.lint import check_graph
    from export.pose import export_pose_model
    from models.pose_model import build_pose_model, scale_head_logits
    from models.zoo import get_config

    folder.mkdir(parents=True, exist_ok=True)
    for name in configs:
        cfg = get_config(name)
        if width != 64:  # as bench/export_time.py --width: same operators, fewer channels
            cfg = cfg.replace(backbone_base_channels=width, deconv_out_channels=(32, 32, 32))
        w, h = cfg.input_size
        crops = np.random.default_rng(0).integers(0, 256, (4, h, w, 3), dtype=np.uint8)
        torch.manual_seed(0)
        model = scale_head_logits(build_pose_model(cfg), crops)
        r = export_pose_model(model, folder, crops, "4 random crops", name=name)
        check_graph(r.onnx_path, "error")
        print(f"[prepare] {name}: {r.onnx_path} ({r.verdict.describe()}); lint ok")
    det = export_detector(detector, folder / f"{Path(detector).stem}.onnx")
    check_graph(det.onnx_path, "error")
    print(f"[prepare] detector {detector}: {det.onnx_path}; lint ok")


def _pose_feeds(card, batch: int, seed: int = 0) -> tuple[dict, int]:
    """Random uint8 crops for a pose card, as the model's input; (feeds, batch actually used: a fixed batch wins)."""
    from inference.runtime import probe_inputs

    (_, shape), *_ = probe_inputs(card.model_path())
    b = shape[0] if isinstance(shape[0], int) else batch
    w, h = card.input_size
    crops = np.random.default_rng(seed).integers(0, 256, (b, h, w, 3), dtype=np.uint8)
    return {card.input.name: card.input.prepare(crops)}, b


def _detector_feeds(path: Path, batch: int) -> tuple[dict, int]:
    from inference.runtime import probe_inputs

    (name, shape), *_ = probe_inputs(path)
    b = shape[0] if isinstance(shape[0], int) else batch
    dims = [b, *(d if isinstance(d, int) else 640 for d in shape[1:])]
    return {name: np.random.default_rng(batch).random(dims, dtype=np.float32)}, b


def _ms_per_run(run, feeds: dict, repeats: int = 5) -> float:
    """Milliseconds per ``run(feeds)`` after one warm-up call (cuDNN / TensorRT pick their kernels for the shape)."""
    run(feeds)
    t0 = time.perf_counter()
    for _ in range(repeats):
        run(feeds)
    return round((time.perf_counter() - t0) / repeats * 1000, 3)


def _run_into(box: dict, runtime, feeds: dict) -> None:
    """``box["out"] = runtime.run(feeds)[0]`` (a second thread's run)."""
    box["out"] = runtime.run(feeds)[0]


# ---------------------------------------------------------------------------------------------------- steps


def step_facts(args, rec: Recorder) -> None:
    """GPU, driver, versions, the CUDA stack check and (GPU or not) the libraries a CUDA session loaded."""
    facts = {"python": platform.python_version(), "machine": platform.machine()}
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        facts["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        facts["nvidia_smi"] = f"not available: {exc}"
    import onnxruntime as ort
    from onnxruntime.capi import build_and_package_info as info

    facts["onnxruntime"] = ort.__version__
    facts["onnxruntime_package"] = getattr(info, "package_name", "onnxruntime")
    facts["onnxruntime_cuda"] = getattr(info, "cuda_version", None)
    facts["onnxruntime_providers"] = ort.get_available_providers()
    try:
        import tensorrt

        facts["tensorrt"] = tensorrt.__version__
    except Exception as exc:  # ImportError, or OSError when its libraries do not load
        facts["tensorrt"] = f"not importable: {exc}"
    rec.put("facts", facts)
    from inference.cuda_stack import check_distributions, check_session, check_stack

    dist_facts, dist_problems = check_distributions()
    rec.put("distributions", {**dist_facts, "problems": dist_problems})
    if facts["onnxruntime_cuda"]:
        stack = check_stack(os.environ.get("CUDA_VERSION"), tensorrt=not str(facts["tensorrt"]).startswith("not"))
        rec.put("cuda_stack", {"facts": stack.facts, "problems": stack.problems})
    session = check_session(args.device)
    rec.put("session", {"facts": session.facts, "problems": session.problems})


def step_ort_cuda(args, rec: Recorder) -> None:
    """onnxruntime's CUDA EP (the CPU provider in a dry run) against the CPU: ms per batch, keypoint px difference."""
    import onnxruntime as ort

    from core.settings import Settings
    from inference.runtime import OrtRuntime, provider_options
    from models.card import ModelCard
    from models.tolerance import EXPORT_TOLERANCE_PX

    provider = CPU if args.dry_run else CUDA
    if provider not in ort.get_available_providers():
        raise Skip(f"onnxruntime has no {provider} ({ort.get_available_providers()}): install onnxruntime-gpu")
    settings = Settings(device=args.device)
    cards, detectors = find_models(args.onnx_dir)
    failures = []
    for card_path in cards:
        card = ModelCard.load(card_path)
        gpu = OrtRuntime(card.model_path(), [provider], provider_options=provider_options(settings, [provider]))
        cpu = OrtRuntime(card.model_path(), [CPU])
        figures = {"active_providers": gpu.active_providers}
        for batch in args.batches:
            feeds, b = _pose_feeds(card, batch)
            got, ref = card.decode(gpu.run(feeds)[0]), card.decode(cpu.run(feeds)[0])
            px = float(np.abs(got[..., :2].astype(np.float64) - ref[..., :2]).max())
            figures[f"b{b}"] = {"ms": _ms_per_run(gpu.run, feeds), "max_px_vs_cpu": px}
            if not np.isfinite(px) or px > EXPORT_TOLERANCE_PX:
                failures.append(f"{card.name} b{b}: {px:.4f} px > {EXPORT_TOLERANCE_PX}")
        rec.put(card.name, figures)
    for det in detectors:
        gpu = OrtRuntime(det, [provider], provider_options=provider_options(settings, [provider]))
        cpu = OrtRuntime(det, [CPU])
        figures = {}
        for batch in (1, 4):
            feeds, b = _detector_feeds(det, batch)
            diff = float(np.abs(gpu.run(feeds)[0].astype(np.float64) - cpu.run(feeds)[0]).max())
            figures[f"b{b}"] = {"ms": _ms_per_run(gpu.run, feeds), "max_abs_vs_cpu": diff}
        rec.put(det.name, figures)
    if failures:
        raise Fail("; ".join(failures))


def _import_tensorrt():
    try:
        import tensorrt

        from inference.runtime_trt import current_gpu_name

        current_gpu_name(0)
        return tensorrt
    except Exception as exc:  # ImportError, ModelLoadError (no GPU / cuda-python), OSError
        raise Skip(f"TensorRT or a GPU is not usable here: {exc}") from exc


def step_trt_build(args, rec: Recorder) -> None:
    """fp32 and fp16 engines of every model (build seconds; the timing cache kept)."""
    if args.dry_run:
        raise Skip("dry run: TensorRT builds need a GPU")
    _import_tensorrt()
    from core.settings import Settings
    from export.tensorrt import EngineCache, EngineSpec
    from inference.runtime_trt import read_sidecar

    settings = Settings(cache_dir=args.out / "cache", device=args.device)
    cache = EngineCache(settings.cache, args.device)
    cards, detectors = find_models(args.onnx_dir)
    from models.card import ModelCard

    models = [(ModelCard.load(c).model_path(), 32) for c in cards] + [(d, 4) for d in detectors]
    for onnx_path, hi in models:
        for precision in ("fp32", "fp16"):
            t0 = time.perf_counter()
            engine = cache.get_or_build(onnx_path, EngineSpec(precision, (1, min(8, hi), hi)))
            meta = read_sidecar(engine) or {}
            rec.put(
                f"{onnx_path.name} {precision}",
                {"engine": str(engine), "build_seconds": meta.get("build_seconds"), "wall_seconds":
                 round(time.perf_counter() - t0, 2), "tf32": meta.get("tf32"), "timing_cache_reused": meta.get("timing_cache_reused"),
                 "loads_with": meta.get("loads_with")},
            )  # fmt: skip


def step_trt_runtime(args, rec: Recorder) -> None:
    """The engines at batches 1, 7, 32 and from a second thread, keypoints against the CPU."""
    if args.dry_run:
        raise Skip("dry run: the TensorRT runtime needs a GPU")
    _import_tensorrt()
    from core.settings import Settings
    from inference.runtime import OrtRuntime
    from inference.runtime_trt import TrtRuntime
    from models.card import ModelCard
    from models.tolerance import EXPORT_TOLERANCE_PX, FP16_SMOKE_PX

    settings = Settings(cache_dir=args.out / "cache", device=args.device)
    cards, _ = find_models(args.onnx_dir)
    failures = []
    for card_path in cards:
        card = ModelCard.load(card_path)
        cpu = OrtRuntime(card.model_path(), [CPU])
        for precision, bound in (("fp32", EXPORT_TOLERANCE_PX), ("fp16", FP16_SMOKE_PX)):
            try:
                rt = TrtRuntime(card.model_path(), args.device, settings.cache, precision, 32)
            except Exception as exc:
                failures.append(f"{card.name} {precision}: {exc}")
                continue
            figures = {"batch_profile": rt.batch_profile}
            for batch in (1, 7, 32):
                feeds, b = _pose_feeds(card, batch, seed=batch)
                got, ref = card.decode(rt.run(feeds)[0]), card.decode(cpu.run(feeds)[0])
                px = float(np.abs(got[..., :2].astype(np.float64) - ref[..., :2]).max())
                figures[f"b{b}"] = {"ms": _ms_per_run(rt.run, feeds), "max_px_vs_cpu": px}
                if not np.isfinite(px) or px > bound:
                    failures.append(f"{card.name} {precision} b{b}: {px:.4f} px > {bound}")
            feeds, _ = _pose_feeds(card, 7, seed=7)
            box: dict = {}
            thread = threading.Thread(target=_run_into, args=(box, rt, feeds))
            thread.start()
            thread.join(60)
            same = "out" in box and np.array_equal(box["out"], rt.run(feeds)[0])
            figures["second_thread_same_output"] = same
            if not same:
                failures.append(f"{card.name} {precision}: the run from a second thread differs or failed")
            rec.put(f"{card.name} {precision}", figures)
    if failures:
        raise Fail("; ".join(failures))


def step_ort_trt_ep(args, rec: Recorder) -> None:
    """onnxruntime's TensorRT EP, the session created twice (the second reuses the engine cache)."""
    import onnxruntime as ort

    if args.dry_run or TRT_EP not in ort.get_available_providers():
        raise Skip(f"no {TRT_EP} here ({ort.get_available_providers()})")
    from core.settings import Settings
    from inference.runtime import create_runtime

    settings = Settings(cache_dir=args.out / "cache", device=args.device, providers=[TRT_EP, CUDA, CPU])
    cards, _ = find_models(args.onnx_dir)
    from models.card import ModelCard

    for card_path in cards[:1]:
        card = ModelCard.load(card_path)
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            rt = create_runtime(card.model_path(), settings, batch_size=32)
            feeds, _ = _pose_feeds(card, 8)
            rt.run(feeds)
            times.append(round(time.perf_counter() - t0, 2))
            rec.put(card.name, {"session_plus_first_run_seconds": times, "active": rt.active_providers})
            rt.close()


def step_http(args, rec: Recorder) -> None:
    """pose-serve on the CUDA EP (the CPU in a dry run) and on TensorRT when engines were built: ready, images/s."""
    import httpx

    from service.launcher import ServerProcess

    cards, detectors = find_models(args.onnx_dir)
    if not cards or not detectors:
        raise Skip(f"{args.onnx_dir} needs a pose card and a detector ONNX")
    images = sorted(args.images.glob("*.jpg"))[: args.http_images] if args.images else []
    if not images:
        import cv2

        rng = np.random.default_rng(0)
        images = []
        for i in range(args.http_images):
            path = args.out / f"synthetic_{i}.jpg"
            cv2.imwrite(str(path), rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
            images.append(path)
    payloads = [p.read_bytes() for p in images]
    common = ["--detector", str(detectors[0]), "--pose", str(cards[0]), "--cache-dir", str(args.out / "cache")]
    common += ["--device", str(args.device), "--no-prepare-defaults"]
    runs = {"cpu": ["--providers", CPU]} if args.dry_run else {"cuda-ep": ["--providers", f"{CUDA},{CPU}"]}
    if not args.dry_run and (args.out / "cache" / "engines").is_dir():
        runs["tensorrt"] = ["--runtime", "tensorrt", "--no-build-engines"]
    for label, extra in runs.items():
        t0 = time.perf_counter()
        with ServerProcess(common + extra, ready_timeout=STEPS["http"] * args.budget_scale) as srv:
            srv.wait_ready()
            ready = round(time.perf_counter() - t0, 2)
            runtime = httpx.get(srv.url + "/v1/models", timeout=10).json()["pose"]["runtime"]
            with httpx.Client(base_url=srv.url, timeout=60) as client:
                client.post("/pose", content=payloads[0], headers={"Content-Type": "image/jpeg"}).raise_for_status()
                t1 = time.perf_counter()
                for data in payloads:
                    client.post("/pose", content=data, headers={"Content-Type": "image/jpeg"}).raise_for_status()
                wall = time.perf_counter() - t1
        rec.put(label, {"seconds_to_ready": ready, "images_per_s": round(len(payloads) / wall, 2),
                        "images": len(payloads), "backend": runtime.get("backend"),
                        "active_providers": runtime.get("active_providers")})  # fmt: skip


STEP_FUNCTIONS = {
    "facts": step_facts,
    "ort_cuda": step_ort_cuda,
    "trt_build": step_trt_build,
    "trt_runtime": step_trt_runtime,
    "ort_trt_ep": step_ort_trt_ep,
    "http": step_http,
}


def run_step(args) -> int:
    """Run one step in this process (``--step``) and record it; exit status 0 (ok / skip) or 1 (fail)."""
    rec = Recorder(args.out, args.step)
    try:
        STEP_FUNCTIONS[args.step](args, rec)
    except Skip as exc:
        rec.finish("skip", str(exc))
        return 0
    except Fail as exc:
        rec.finish("fail", str(exc))
        return 1
    except Exception as exc:  # an error is the step's result, not the run's end
        rec.finish("fail", f"{type(exc).__name__}: {exc}")
        return 1
    rec.finish("ok")
    return 0


def run_all(args, argv: list[str]) -> int:
    """Every step in its own subprocess with its time limit; ``summary.json``; exit 1 when a step failed."""
    summary = {}
    for step, limit in STEPS.items():
        if args.steps and step not in args.steps:
            continue
        limit = limit * args.budget_scale
        cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--step", step]
        t0 = time.perf_counter()
        # a session of its own: at the time limit the whole group goes (a pose-serve the step started included)
        proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        path = args.out / f"{step}.json"
        data = json.loads(path.read_text()) if path.is_file() else {"status": "fail", "reason": "no output"}
        if data.get("status") == "running":  # killed at its time limit: keep what it measured
            data.update(status="timeout", reason=f"ran past its {limit:.0f} s limit", seconds=round(limit, 1))
            path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        summary[step] = {k: data.get(k) for k in ("status", "reason", "seconds")}
        summary[step]["wall_seconds"] = round(time.perf_counter() - t0, 2)
        print(f"[{step}] {data.get('status')} {data.get('reason') or ''} ({summary[step]['wall_seconds']} s)")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    bad = [s for s, v in summary.items() if v["status"] in ("fail", "timeout")]
    print(f"GPU check {'FAILED: ' + ', '.join(bad) if bad else 'passed'} ({args.out / 'summary.json'})")
    return 1 if bad else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="the one-shot check on a GPU machine")
    mode.add_argument("--dry-run", action="store_true", help="the same steps on a CPU machine (CI)")
    mode.add_argument("--prepare", type=Path, metavar="DIR", help="export the ONNX files for --quick (CPU, torch)")
    ap.add_argument("--onnx-dir", type=Path, help="pose cards + ONNX and a detector ONNX (from --prepare)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/poseserve-gpu-check"), help="JSON per step, the cache")
    ap.add_argument("--images", type=Path, help="folder of .jpg for the HTTP step (default: synthetic images)")
    ap.add_argument(
        "--assets",
        type=Path,
        default=REPO.parent / "shared" / "assets",
        help="--dry-run without --onnx-dir: the test assets folder whose detector/yolov8n.onnx it serves",
    )
    ap.add_argument("--http-images", type=int, default=None, help="images sent over HTTP (64; dry run 4)")
    ap.add_argument("--batches", type=int, nargs="+", default=None, help="pose batches of ort_cuda (1 8 32)")
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--budget-scale", type=float, default=1.0, help="multiply every step's time limit")
    ap.add_argument("--steps", nargs="+", choices=list(STEPS), help="only these steps")
    ap.add_argument("--configs", nargs="+", default=list(PREPARE_CONFIGS), help="--prepare: zoo configs")
    ap.add_argument("--detector", default="yolov8n.yaml", help="--prepare: Ultralytics .pt or .yaml")
    ap.add_argument("--width", type=int, default=64, help="--prepare: ResNet stem width (64 published; 16: small)")
    ap.add_argument("--step", choices=list(STEPS), help=argparse.SUPPRESS)  # one step, in this process
    args = ap.parse_args(argv)
    if args.http_images is None:
        args.http_images = 4 if args.dry_run else 64
    if args.batches is None:
        args.batches = [1, 2] if args.dry_run else [1, 8, 32]
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.prepare:
        prepare(args.prepare, args.configs, args.detector, args.width)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.onnx_dir is None:
        if not args.dry_run:
            print("gpu_check --quick needs --onnx-dir (make one with --prepare on a CPU machine)", file=sys.stderr)
            return 2
        args.onnx_dir = write_dry_run_models(args.out / "onnx", args.assets)
        argv += ["--onnx-dir", str(args.onnx_dir)]
    if args.step:
        return run_step(args)
    return run_all(args, argv)


if __name__ == "__main__":
    sys.exit(main())
