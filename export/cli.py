"""``pose-export``: checkpoints -> ONNX (+ card) -> TensorRT engines / Triton repository; default models.
``pose-zoo``: list the zoo, download its checkpoints.

    pose-export pose ipr_res50_debias --out models/                 # zoo name: downloads MMPose's checkpoint
    pose-export pose work/ipr/best.pth --out models/ --check-images photos/   # ours (or an MMPose .pth)
    pose-export detector yolo11n.pt --out models/yolo11n.onnx      # Ultralytics .pt (or yolov8n.yaml)
    pose-export rtmdet rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.pth --out models/   # RTMDet (Apache-2.0)
    pose-export engine models/ipr_res50_debias.onnx --precision fp16 --batch 1 8 32
    pose-export triton --repository triton/ --pose-card models/ipr_res50_debias.json --detector models/yolo11n.onnx
    pose-export lint models/*.onnx                                  # will TensorRT 10 parse them? (export/lint.py)
    pose-export quantize --pose models/movenet.json --detector models/yolov8n.onnx --calib-images coco/val2017 \
        --eval-ann coco/person_keypoints_val2017.json --eval-images coco/val2017   # int8 (NNCF) + measured AP change
    pose-export defaults                                            # what `pose-serve` with no arguments uses
    pose-zoo list | pose-zoo download td-reg_res50_rle

Every ONNX file ``pose``, ``detector``, ``rtmdet`` and ``defaults`` write, and every one ``engine`` reads, is linted for
TensorRT 10 (``export.lint``; ``--lint error`` fails, ``warn`` logs, ``off`` skips).

Options that are settings (``--cache-dir``, ``--offline``, ``--intra-op-threads``, ``--device``,
``--max-batch-size``, ``--trt-opt-batch-size``) come from :class:`core.settings.Settings` (``POSE_*``
variables; options override them): an engine's default profile is 1 / ``trt_opt_batch_size`` /
``max_batch_size``, the batch sizes the service will run. Exit status 0 on success; 2 on a usage error (argparse's,
an invalid setting, a missing or contradictory option); 1 with a one-line message on a failure it understands (missing
file, missing dependency, failed verification, lint or accuracy gate), never a traceback for those.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from core.cli_options import add_settings_options, add_version_option, settings_from_args
from core.errors import UsageError
from core.settings import CACHE_FIELDS, Settings
from export.cli_parsers import build_parser

#: Exit status of a usage error (as argparse's) and of a failure.
EXIT_USAGE, EXIT_FAILURE = 2, 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a ``pose-export`` command line (``export.cli_parsers``: one parser builder per subcommand)."""
    return build_parser(__doc__.splitlines()[0]).parse_args(argv)


def is_pose_model(onnx_path: Path) -> bool:
    """Whether an ONNX file is a pose model: it has a card beside it or embedded in its metadata (every pose model
    the service serves does; a detector has none). Torch-free (onnxruntime reads the metadata); False when the file
    cannot be read."""
    from models.card import CARD_METADATA_KEY, card_path_for

    if card_path_for(onnx_path).is_file():
        return True
    try:
        from inference.pose_estimator import onnx_metadata

        return CARD_METADATA_KEY in onnx_metadata(onnx_path)
    except Exception:  # onnxruntime missing or the file unreadable: the build reports that itself
        return False


def _spec(args, settings: Settings, detector: bool = False):
    """The engine spec of ``--precision`` / ``--batch`` / ``--workspace-gib``. The default profile is the batches the
    service runs the model at: 1 / ``trt_opt_batch_size`` / ``max_batch_size`` for a pose model, 1 /
    ``min(trt_opt_batch_size, det_max_batch_size)`` / ``det_max_batch_size`` for a detector (images, not crops)."""
    from export.tensorrt import EngineSpec

    hi = settings.det_max_batch_size if detector else settings.max_batch_size
    profile = tuple(args.batch) if args.batch else (1, min(settings.trt_opt_batch_size, hi), hi)
    try:
        return EngineSpec(
            precision=args.precision,
            profile=profile,
            workspace_gib=args.workspace_gib,
            version_compatible=args.version_compatible,
        )
    except ValueError as exc:  # --batch, --precision, --workspace-gib
        raise UsageError(str(exc)) from exc


def _engine(onnx_path: Path, args, settings: Settings, detector: bool = False) -> Path:
    from export.tensorrt import EngineCache

    cache = EngineCache(settings.cache, settings.device)
    path = cache.get_or_build(onnx_path, _spec(args, settings, detector), rebuild=getattr(args, "rebuild", False))
    print(f"engine: {path}")
    return path


def _lint(onnx_path: Path, mode: str) -> None:
    """Lint an ONNX file (``export.lint.check_graph``) and print the verdict; raises GraphLintError in mode error."""
    from export.lint import check_graph

    report = check_graph(onnx_path, mode)
    if report is not None:
        verdict = "TensorRT-ready" if report.ok else f"{len(report.errors)} TensorRT error(s) (see the log)"
        print(f"lint {Path(onnx_path).name}: {verdict}, {sum(report.op_counts.values())} nodes, opset {report.opset}")


def export_pose_command(args: argparse.Namespace, settings: Settings) -> None:
    """``pose-export pose``: checkpoint -> ONNX + card, verified; lint; optionally the engine."""
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
    _lint(r.onnx_path, args.lint)
    if args.engine:
        _engine(r.onnx_path, args, settings)


def export_detector_command(args: argparse.Namespace, settings: Settings) -> None:
    """``pose-export detector``: Ultralytics weights -> ONNX; lint; optionally the engine."""
    from export.detector import export_detector

    r = export_detector(args.weights, args.out, imgsz=args.imgsz, opset=args.opset)
    print(f"onnx: {r.onnx_path} ({r.num_classes} classes, input {r.imgsz}x{r.imgsz}, dynamic batch)")
    print(f"max |onnxruntime - torch| = {r.max_abs_diff:.2e}; export {r.seconds:.1f} s")
    _lint(r.onnx_path, args.lint)
    if args.engine:
        _engine(r.onnx_path, args, settings, detector=True)


def served_engines_command(args: argparse.Namespace, settings: Settings) -> None:
    """``pose-export engine --served``: the engines of the models ``pose-serve`` serves (its ``--detector`` /
    ``--pose``, default: the default models in the cache), the detector's with the images' profile, the pose model's
    with the crops'."""
    from inference.default_models import served_onnx_files

    if args.onnx or args.output:
        raise UsageError("--served builds the served models' engines into the cache: no ONNX path, no --output")
    if settings.detector_model is None:
        settings = settings.model_copy(update={"detector_model": settings.cache.detector(settings.default_detector)})
    if settings.pose_model is None:
        settings = settings.model_copy(update={"pose_model": settings.cache.default_pose_card})
    det, pose = served_onnx_files(settings)
    for onnx_path, detector in ((det, True), (pose, False)):
        if onnx_path is None:
            continue
        if not onnx_path.is_file():
            raise FileNotFoundError(
                f"ONNX file not found: {onnx_path} (prepare the models first: pose-export defaults)"
            )
        spec = _spec(args, settings, detector)
        print(f"{'detector' if detector else 'pose model'} {onnx_path.name}: profile {spec.profile}, {spec.precision}")
        _lint(onnx_path, args.lint)
        _engine(onnx_path, args, settings, detector)


def export_rtmdet_command(args: argparse.Namespace, settings: Settings) -> None:
    """``pose-export rtmdet``: an RTMDet checkpoint -> ONNX + detector card (contract mmdeploy); lint."""
    from export.rtmdet import export_rtmdet

    r = export_rtmdet(args.name, args.out, checkpoint=args.checkpoint, pre_top_k=args.pre_top_k)
    print(f"onnx: {r.onnx_path}\ncard: {r.card_path}")
    print(f"max |onnxruntime - torch| = {r.max_abs_diff:.2e} (network); export {r.seconds:.1f} s")
    _lint(r.onnx_path, args.lint)


def engine_command(args: argparse.Namespace, settings: Settings) -> None:
    """``pose-export engine``: ONNX -> TensorRT engine (cached, or at ``--output``); optionally compared with onnxruntime."""
    if args.served:
        return served_engines_command(args, settings)
    if not args.onnx:
        raise UsageError("give the ONNX file, or --served")
    onnx_path = Path(args.onnx)
    _spec(args, settings)  # validates the profile before anything else
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {onnx_path}")
    detector = args.model == "detector" or (args.model == "auto" and not is_pose_model(onnx_path))
    spec = _spec(args, settings, detector)
    print(f"{'detector' if detector else 'pose model'} {onnx_path.name}: profile {spec.profile}, {spec.precision}")
    _lint(onnx_path, args.lint)
    if args.output:
        from export.tensorrt import build_engine

        path = build_engine(onnx_path, args.output, spec, settings.device)
        print(f"engine: {path}")
    else:
        path = _engine(onnx_path, args, settings, detector)
    if args.check:
        _check_engine(path, onnx_path, spec.profile[1], settings.device)


def triton_command(args: argparse.Namespace, settings: Settings) -> None:
    """``pose-export triton``: write the pose and / or detector model into a Triton model repository."""
    from export.triton import write_triton_model

    if not args.pose_card and not args.detector:
        raise UsageError("give --pose-card and/or --detector")
    common = dict(
        platform=args.platform,
        max_batch_size=settings.max_batch_size,  # the same largest batch as the service's
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
        _print_loads_with(args.platform, args.pose_engine)
    if args.detector:
        folder = write_triton_model(
            args.repository, "detector", args.detector, engine_path=args.detector_engine, **common
        )
        print(f"triton model: {folder}")
        _print_loads_with(args.platform, args.detector_engine)


def _print_loads_with(platform: str, engine) -> None:
    """Say which TensorRT / Triton releases load a plan (its sidecar's ``loads_with``, ``export.tensorrt``)."""
    if platform == "tensorrt" and engine:
        from inference.runtime_trt import read_sidecar

        print(f"  loads with: {(read_sidecar(engine) or {}).get('loads_with', 'the TensorRT release that built it')}")


def defaults_command(args: argparse.Namespace, settings: Settings) -> None:
    """``pose-export defaults``: download + export the default models; lint them (``rtmdet-nano``, a file served as
    OpenMMLab published it, with warnings at most: its TensorRT readiness is reported, not required)."""
    from export.defaults import prepare_defaults

    det, card = prepare_defaults(settings, force=args.force)
    print(f"detector: {det}\npose card: {card}")
    published = settings.default_detector == "rtmdet-nano"
    _lint(det, "warn" if published and args.lint == "error" else args.lint)
    _lint(card.with_suffix(".onnx"), args.lint)


def quantize_command(args: argparse.Namespace, settings: Settings) -> int | None:
    """``pose-export quantize``: int8 models into the cache; 1 when they fail the accuracy gate."""
    from export.quantize import describe_report, quantize_models

    report = quantize_models(
        settings,
        args.calib_images,
        calib_ann=args.calib_ann,
        eval_ann=args.eval_ann,
        eval_images=args.eval_images,
        max_calib_images=args.calib_max_images,
        max_calib_crops=args.calib_max_crops,
        pose_tail_depth=args.pose_tail_depth,
    )
    print(describe_report(report))
    if report.gate is not None and not report.gate.passed:
        print("pose-export quantize: the int8 models failed the accuracy gate (see above)", file=sys.stderr)
        return 1
    print("serve them with: pose-serve --runtime openvino --precision int8 (same --pose / --detector)")
    return None


def lint_command(args: argparse.Namespace, settings: Settings) -> None:
    """``pose-export lint``: lint ONNX files, print the reports (text or JSON); GraphLintError if any fails."""
    import json

    from export.lint import GraphLintError, lint_onnx

    reports = [lint_onnx(path, dynamic_batch=not args.fixed_batch) for path in args.onnx]
    print(
        json.dumps([r.to_dict() for r in reports], indent=2) if args.json else "\n".join(r.describe() for r in reports)
    )
    failed = [r.model for r in reports if not r.ok]
    if failed:
        raise GraphLintError(f"{len(failed)} of {len(reports)} file(s) would not build with TensorRT 10: {failed}")


#: ``pose-export`` subcommand -> the function that carries it out.
COMMANDS = {
    "pose": export_pose_command,
    "detector": export_detector_command,
    "rtmdet": export_rtmdet_command,
    "engine": engine_command,
    "triton": triton_command,
    "defaults": defaults_command,
    "quantize": quantize_command,
    "lint": lint_command,
}


def run(args: argparse.Namespace, settings: Settings) -> int | None:
    """Carry out one subcommand (:data:`COMMANDS`); returns an exit status other than 0 where the subcommand ran but
    failed a check (``quantize``: the accuracy gate), else None."""
    return COMMANDS[args.command](args, settings)


def _check_engine(engine_path: Path, onnx_path: Path, batch: int, device: int) -> None:
    import numpy as np

    from export.tensorrt import compare_engine_to_onnx
    from inference.runtime import OrtRuntime

    ort_rt = OrtRuntime(onnx_path, ["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for name, shape, dtype in zip(ort_rt.input_names, ort_rt.input_shapes, ort_rt.input_dtypes):
        shape = [batch if d is None else d for d in shape]
        feeds[name] = (rng.integers(0, 256, shape) if dtype == np.uint8 else rng.random(shape)).astype(dtype)
    diffs = compare_engine_to_onnx(engine_path, onnx_path, feeds, device)
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
        return EXIT_USAGE
    _configure_logging(settings)
    from core.errors import ModelLoadError
    from export.tensorrt import EngineBuildError

    known: tuple[type[BaseException], ...] = (EngineBuildError, ModelLoadError, FileNotFoundError, ValueError)
    # GraphLintError is a ValueError: lint failures are one-line messages with exit status 1 as well
    known += _optional_errors()
    try:
        status = run(args, settings)
    except ImportError as exc:  # what this subcommand needs is not installed (torch, onnx, Ultralytics, NNCF, ...)
        print(f"pose-export {args.command}: {exc}; {COMMAND_EXTRAS[args.command]}", file=sys.stderr)
        return EXIT_FAILURE
    except known as exc:
        print(f"pose-export {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILURE
    return status or 0


#: ``pose-export`` subcommand -> how to install what it imports (said when an import fails). ``engine`` and ``lint``
#: are torch-free: the ``tensorrt`` extra brings onnx and onnx-graphsurgeon (the lint) with TensorRT, so they run in
#: the GPU serving image built with ``WITH_TENSORRT=1``.
COMMAND_EXTRAS = {
    "pose": "install the export extra: pip install 'poseserve[export]' (torch), or use the export image",
    "detector": "install the export extra and Ultralytics (README: Export), or use the export image",
    "rtmdet": "install the export extra: pip install 'poseserve[export]' (torch), or use the export image",
    "defaults": "install the export extra and Ultralytics (README: Export), or use the export image",
    "engine": "install the tensorrt extra on a GPU machine: pip install 'poseserve[serve-gpu,tensorrt]' "
    "-c docker/constraints/serve-gpu.txt --extra-index-url https://pypi.nvidia.com (no torch needed), or use the "
    "serve image built with --build-arg WITH_TENSORRT=1",
    "lint": "install onnx and onnx-graphsurgeon: pip install 'poseserve[tensorrt]' or 'poseserve[export]'",
    "triton": "install onnx: pip install onnx (or the tensorrt / export extra)",
    "quantize": "install the quantize extra: pip install 'poseserve[quantize]'",
}


def _optional_errors() -> tuple[type[BaseException], ...]:
    """The error types of the export modules that import here: each module separately, so that a module whose
    dependencies are missing (``export.pose`` without torch) leaves the torch-free subcommands (``engine``,
    ``lint``, ``triton``) working; the subcommand that needs it then fails with :data:`COMMAND_EXTRAS`' hint."""
    import importlib

    found: list[type[BaseException]] = []
    for module, names in (
        ("export.defaults", ("DefaultsError",)),
        ("export.detector", ("DetectorExportError",)),
        ("export.pose", ("PoseExportError",)),
        ("export.quantize", ("QuantizeError",)),
        ("export.rtmdet", ("RTMDetExportError",)),
        ("export.triton", ("TritonExportError",)),
        ("models.checkpoints", ("CheckpointError", "ChecksumError")),
    ):
        try:
            mod = importlib.import_module(module)
        except (ImportError, OSError):  # OSError: a library of torch that does not load
            continue
        found += [getattr(mod, n) for n in names]
    return tuple(found)


def zoo_main(argv: list[str] | None = None) -> int:
    """``pose-zoo list`` / ``pose-zoo download NAME`` (into ``Settings.cache.checkpoints``)."""
    from models.zoo import ZOO, zoo_table

    ap = argparse.ArgumentParser(prog="pose-zoo", description="Pose model zoo: list entries, fetch checkpoints.")
    add_version_option(ap)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser(
        "list", help="list the named configs by family with their published COCO AP/AR or MPII PCKh, and checkpoints"
    )
    dl = sub.add_parser("download", help="download (or verify the cached) published checkpoint")
    dl.add_argument("name", choices=sorted(ZOO))
    add_settings_options(dl, CACHE_FIELDS)
    args = ap.parse_args(argv)
    if args.cmd == "list":
        print(zoo_table())
        return 0
    settings = settings_from_args(args)
    try:
        from models.checkpoints import ChecksumError, load_pretrained
    except ImportError as exc:
        print(f"pose-zoo download: {exc}; install the export extra: pip install 'poseserve[export]'", file=sys.stderr)
        return EXIT_FAILURE
    try:
        print(load_pretrained(args.name, settings.cache.checkpoints, offline=settings.offline))
    except (FileNotFoundError, ChecksumError) as e:
        print(f"pose-zoo download: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
