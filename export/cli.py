"""``pose-export``: checkpoints -> ONNX (+ card) -> TensorRT engines / Triton repository; default models.
``pose-zoo``: list the zoo, download its checkpoints.

    pose-export pose ipr_res50_debias --out models/                 # zoo name: downloads MMPose's checkpoint
    pose-export pose work/ipr/best.pth --out models/ --check-images photos/   # ours (or an MMPose .pth)
    pose-export detector yolo11n.pt --out models/yolo11n.onnx      # Ultralytics .pt (or yolov8n.yaml)
    pose-export engine models/ipr_res50_debias.onnx --precision fp16 --batch 1 8 32
    pose-export triton --repository triton/ --pose-card models/ipr_res50_debias.json --detector models/yolo11n.onnx
    pose-export defaults                                            # what `pose-serve` with no arguments uses
    pose-zoo list | pose-zoo download ipr_res50_debias

Options that are settings (``--cache-dir``, ``--offline``, ``--intra-op-threads``, ``--device``) come from
:class:`service.settings.Settings` (``POSE_*`` variables; options override them). Exit status 0 on
success, 2 with a one-line message on a failure it understands (missing file, missing dependency,
failed verification), never a traceback for those.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from service.settings import Settings, add_settings_options, settings_from_args

#: Settings every pose-export subcommand takes.
_SETTINGS = ("cache_dir", "offline", "intra_op_threads", "device", "log_level")


def _add_engine_args(p: argparse.ArgumentParser, default_precision: str = "fp16") -> None:
    p.add_argument("--precision", choices=["fp32", "fp16"], default=default_precision, help="engine precision")
    p.add_argument(
        "--batch",
        type=int,
        nargs=3,
        metavar=("MIN", "OPT", "MAX"),
        default=[1, 8, 32],
        help="optimisation profile batch sizes (default 1 8 32)",
    )
    p.add_argument("--workspace-gib", type=float, default=4.0, help="builder workspace limit (GiB)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pose-export", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    pp = sub.add_parser("pose", help="pose checkpoint -> ONNX + model card (verified against torch)")
    pp.add_argument("model", help="zoo name (ipr_res50, ipr_res50_dsnt, ipr_res50_debias, td-hm_res50) or a .pth")
    pp.add_argument("--out", default=".", help="output folder for <name>.onnx and <name>.json")
    pp.add_argument("--name", help="output file stem / card name")
    pp.add_argument("--config", help="zoo config for an MMPose .pth the zoo does not recognise")
    pp.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17)")
    pp.add_argument(
        "--check-images",
        nargs="+",
        metavar="PATH",
        help="images (or folders of .jpg/.png) whose crops verify the export (default: synthetic crops)",
    )
    pp.add_argument("--check-crops", type=int, default=8, help="how many crops verify the export")
    pp.add_argument("--engine", action="store_true", help="also build a TensorRT engine into the cache")
    _add_engine_args(pp)

    pd = sub.add_parser("detector", help="Ultralytics .pt / .yaml -> ONNX (dynamic batch), via Ultralytics")
    pd.add_argument("weights", help="e.g. yolo11n.pt, or yolov8n.yaml (random weights)")
    pd.add_argument("--out", required=True, help="output .onnx path")
    pd.add_argument("--imgsz", type=int, default=640)
    pd.add_argument("--opset", type=int, default=17)
    pd.add_argument("--engine", action="store_true", help="also build a TensorRT engine into the cache")
    _add_engine_args(pd)

    pe = sub.add_parser("engine", help="ONNX -> TensorRT engine (cached by GPU, TensorRT version, ONNX hash)")
    pe.add_argument("onnx")
    pe.add_argument("--output", help="write the engine here instead of the cache")
    pe.add_argument("--rebuild", action="store_true", help="rebuild even if cached")
    pe.add_argument("--check", action="store_true", help="compare engine vs onnxruntime on a random batch")
    _add_engine_args(pe)

    pt = sub.add_parser("triton", help="write a Triton model repository (config.pbtxt, dynamic batching)")
    pt.add_argument("--repository", required=True)
    pt.add_argument("--pose-card", help="pose model card JSON (its ONNX beside it)")
    pt.add_argument("--detector", help="detector ONNX")
    pt.add_argument("--platform", choices=["onnxruntime", "tensorrt"], default="onnxruntime")
    pt.add_argument("--pose-engine", help="pose engine (platform tensorrt)")
    pt.add_argument("--detector-engine", help="detector engine (platform tensorrt)")
    pt.add_argument("--max-batch-size", type=int, default=32)
    pt.add_argument("--max-queue-delay-us", type=int, default=2000)
    pt.add_argument("--kind", choices=["KIND_GPU", "KIND_CPU"], default="KIND_GPU")

    pf = sub.add_parser("defaults", help="download + export the default models (yolo11n, ipr_res50_debias)")
    pf.add_argument("--force", action="store_true", help="export again even if present")

    for sp in (pp, pd, pe, pt, pf):
        add_settings_options(sp, _SETTINGS)
    return p.parse_args(argv)


def _spec(args):
    from export.tensorrt import EngineSpec

    return EngineSpec(precision=args.precision, profile=tuple(args.batch), workspace_gib=args.workspace_gib)


def _engine(onnx_path: Path, args, settings: Settings) -> Path:
    from export.tensorrt import EngineCache

    cache = EngineCache(settings.cache.engines, settings.device)
    path = cache.get_or_build(onnx_path, _spec(args), rebuild=getattr(args, "rebuild", False))
    print(f"engine: {path}")
    return path


def run(args: argparse.Namespace, settings: Settings) -> None:
    if args.command == "pose":
        from export.pose import export_pose

        r = export_pose(
            args.model,
            args.out,
            check_images=args.check_images,
            num_check_crops=args.check_crops,
            config=args.config,
            cache_dir=settings.cache.checkpoints,
            offline=settings.offline,
            name=args.name,
            opset=args.opset,
            threads=settings.intra_op_threads,
        )
        print(f"onnx: {r.onnx_path}\ncard: {r.card_path}")
        print(f"{r.verdict.describe()} px on {r.crops}; export {r.export_seconds:.1f} s")
        if args.engine:
            _engine(r.onnx_path, args, settings)
    elif args.command == "detector":
        from export.detector import export_detector

        r = export_detector(args.weights, args.out, imgsz=args.imgsz, opset=args.opset)
        print(f"onnx: {r.onnx_path} ({r.num_classes} classes, input {r.imgsz}x{r.imgsz}, dynamic batch)")
        print(f"max |onnxruntime - torch| = {r.max_abs_diff:.2e}; export {r.seconds:.1f} s")
        if args.engine:
            _engine(r.onnx_path, args, settings)
    elif args.command == "engine":
        onnx_path = Path(args.onnx)
        if args.output:
            from export.tensorrt import build_engine

            path = build_engine(onnx_path, args.output, _spec(args))
            print(f"engine: {path}")
        else:
            path = _engine(onnx_path, args, settings)
        if args.check:
            _check_engine(path, onnx_path, args.batch[1])
    elif args.command == "triton":
        from export.triton import write_triton_model

        if not args.pose_card and not args.detector:
            raise ValueError("give --pose-card and/or --detector")
        common = dict(
            platform=args.platform,
            max_batch_size=args.max_batch_size,
            max_queue_delay_us=args.max_queue_delay_us,
            instance_kind=args.kind,
        )
        if args.pose_card:
            card = Path(args.pose_card)
            folder = write_triton_model(
                args.repository,
                "pose",
                card.with_suffix(".onnx"),
                engine_path=args.pose_engine,
                card_path=card,
                **common,
            )
            print(f"triton model: {folder}")
        if args.detector:
            folder = write_triton_model(
                args.repository, "detector", args.detector, engine_path=args.detector_engine, **common
            )
            print(f"triton model: {folder}")
    elif args.command == "defaults":
        from export.defaults import prepare_defaults

        det, card = prepare_defaults(settings, force=args.force)
        print(f"detector: {det}\npose card: {card}")


def _check_engine(engine_path: Path, onnx_path: Path, batch: int) -> None:
    import numpy as np

    from export.tensorrt import compare_engine_to_onnx
    from service.runtime import OrtRuntime

    ort_rt = OrtRuntime(onnx_path, ["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for name, shape, dtype in zip(ort_rt.input_names, ort_rt.input_shapes, ort_rt.input_dtypes):
        shape = [batch if d is None else d for d in shape]
        feeds[name] = (rng.integers(0, 256, shape) if dtype == np.uint8 else rng.random(shape)).astype(dtype)
    diffs = compare_engine_to_onnx(engine_path, onnx_path, feeds)
    print(f"max |TensorRT - onnxruntime| per output: {', '.join(f'{d:.3g}' for d in diffs)}")


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("onnx_ir", "onnxscript", "torch.onnx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:  # pydantic's ValidationError
        print(f"pose-export: invalid settings: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings)
    from export.tensorrt import EngineBuildError
    from service.errors import ModelLoadError

    known: tuple[type[BaseException], ...] = (EngineBuildError, ModelLoadError, FileNotFoundError, ValueError)
    try:
        from export.defaults import DefaultsError
        from export.detector import DetectorExportError
        from export.pose import PoseExportError
        from export.triton import TritonExportError
        from models.checkpoints import CheckpointError, ChecksumError

        known += (
            DefaultsError,
            DetectorExportError,
            PoseExportError,
            TritonExportError,
            CheckpointError,
            ChecksumError,
        )
    except ImportError as exc:  # torch / onnx missing: the export extra is not installed
        print(f"pose-export: {exc}; install the export extra: pip install 'poseserve[export]'", file=sys.stderr)
        return 2
    try:
        run(args, settings)
    except known as exc:
        print(f"pose-export {args.command}: {exc}", file=sys.stderr)
        return 2
    return 0


def zoo_main(argv: list[str] | None = None) -> int:
    """``pose-zoo list`` / ``pose-zoo download NAME`` (into ``Settings.cache.checkpoints``)."""
    from models.zoo import ZOO, zoo_table

    ap = argparse.ArgumentParser(prog="pose-zoo", description="Pose model zoo: list entries, fetch checkpoints.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the named configs with their published COCO val2017 AP/AR")
    dl = sub.add_parser("download", help="download (or verify the cached) published checkpoint")
    dl.add_argument("name", choices=sorted(ZOO))
    add_settings_options(dl, ("cache_dir", "offline"))
    args = ap.parse_args(argv)
    if args.cmd == "list":
        print(zoo_table())
        return 0
    settings = settings_from_args(args)
    try:
        from models.checkpoints import ChecksumError, load_pretrained
    except ImportError as exc:
        print(f"pose-zoo download: {exc}; install the export extra: pip install 'poseserve[export]'", file=sys.stderr)
        return 2
    try:
        print(load_pretrained(args.name, settings.cache.checkpoints, offline=settings.offline))
    except (FileNotFoundError, ChecksumError) as e:
        print(f"pose-zoo download: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
