"""The ``pose-export`` command line: one parser builder per subcommand (``export.cli`` carries them out).

Each builder adds its subcommand's own options, then the engine options (:func:`add_engine_args`), the lint option
(:func:`add_lint_arg`) and the settings options (``core.cli_options.add_settings_options``) it takes, in that order
(the order of ``pose-export SUBCOMMAND --help``).
"""

from __future__ import annotations

import argparse

from core.cli_options import add_settings_options, add_version_option
from core.precision import ENGINE_PRECISIONS
from core.settings import CACHE_FIELDS, ENGINE_PROFILE_FIELDS, HOST_FIELDS, LOG_FIELDS, MODEL_FIELDS

#: Settings every pose-export subcommand takes (but quantize).
_SETTINGS = (*CACHE_FIELDS, *HOST_FIELDS, *LOG_FIELDS, *ENGINE_PROFILE_FIELDS)
#: Settings of pose-export quantize: the models, and how the pipeline that measures their AP runs (the fp32 OpenVINO
#: runtime on the CPU: a subset of ``RUNTIME_FIELDS``, ``PIPELINE_FIELDS`` and ``DETECTOR_FIELDS``).
_QUANTIZE_SETTINGS = (
    *MODEL_FIELDS,
    "cache_dir",
    "ov_device",
    "intra_op_threads",
    "allow_unsupported_precision",
    "bbox_padding",
    "flip_test",
    "det_score_thr",
    "det_iou_thr",
    *LOG_FIELDS,
)


def add_engine_args(p: argparse.ArgumentParser, default_precision: str = "fp16") -> None:
    """``--precision``, ``--batch``, ``--workspace-gib``, ``--version-compatible``: the engine spec's options."""
    p.add_argument("--precision", choices=list(ENGINE_PRECISIONS), default=default_precision, help="engine precision")
    p.add_argument(
        "--batch",
        type=int,
        nargs=3,
        metavar=("MIN", "OPT", "MAX"),
        default=None,
        help="optimisation profile batch sizes (default 1, --trt-opt-batch-size, --max-batch-size: 1 8 32)",
    )
    p.add_argument("--workspace-gib", type=float, default=4.0, help="builder workspace limit (GiB)")
    p.add_argument(
        "--version-compatible",
        action="store_true",
        help="TensorRT's version-compatible plan: loads with this and later TensorRT 10.x releases (e.g. a newer "
        "Triton), maybe slower; default: loads only with the TensorRT that built it",
    )


def add_lint_arg(p: argparse.ArgumentParser) -> None:
    """``--lint error|warn|off``: what a failed TensorRT-readiness lint of a written or read ONNX file does."""
    p.add_argument(
        "--lint",
        choices=["error", "warn", "off"],
        default="error",
        help="TensorRT-readiness lint of the ONNX file (export/lint.py): fail, only warn, or skip (default error)",
    )


def add_pose_parser(sub: argparse._SubParsersAction) -> None:
    """``pose-export pose``: a zoo name or checkpoint -> ONNX + card."""
    pp = sub.add_parser("pose", help="pose checkpoint -> ONNX + model card (verified against torch)")
    pp.add_argument("model", help="zoo name (pose-zoo list: ipr_res50_debias, td-reg_res50_rle, ...) or a .pth")
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
    add_engine_args(pp)
    add_lint_arg(pp)
    add_settings_options(pp, _SETTINGS)


def add_detector_parser(sub: argparse._SubParsersAction) -> None:
    """``pose-export detector``: Ultralytics weights -> ONNX."""
    pd = sub.add_parser("detector", help="Ultralytics .pt / .yaml -> ONNX (dynamic batch), via Ultralytics")
    pd.add_argument("weights", help="e.g. yolo11n.pt, or yolov8n.yaml (random weights)")
    pd.add_argument("--out", required=True, help="output .onnx path")
    pd.add_argument("--imgsz", type=int, default=640)
    pd.add_argument("--opset", type=int, default=17)
    pd.add_argument("--engine", action="store_true", help="also build a TensorRT engine into the cache")
    add_engine_args(pd)
    add_lint_arg(pd)
    add_settings_options(pd, _SETTINGS)


def add_rtmdet_parser(sub: argparse._SubParsersAction) -> None:
    """``pose-export rtmdet``: an RTMDet checkpoint -> ONNX + detector card."""
    pr = sub.add_parser(
        "rtmdet", help="RTMDet .pth (MMDet / MMPose) -> ONNX (MMDeploy's dets / labels) + detector card"
    )
    pr.add_argument(
        "checkpoint", nargs="?", help="e.g. rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.pth; none: random"
    )
    pr.add_argument("--out", required=True, help="output folder (<name>.onnx + <name>.json)")
    pr.add_argument("--name", default="rtmdet_nano_person", help="the architecture (models.rtmdet.RTMDET_CONFIGS)")
    pr.add_argument("--pre-top-k", type=int, default=200, help="candidates entering the in-graph NMS")
    add_lint_arg(pr)
    add_settings_options(pr, _SETTINGS)


def add_engine_parser(sub: argparse._SubParsersAction) -> None:
    """``pose-export engine``: ONNX -> TensorRT engine, or ``--served``: the served models' engines."""
    pe = sub.add_parser("engine", help="ONNX -> TensorRT engine (cached by GPU, TensorRT version, ONNX hash)")
    pe.add_argument("onnx", nargs="?", help="the ONNX file (or --served)")
    pe.add_argument(
        "--served",
        action="store_true",
        help="the engines of the models pose-serve serves (--detector / --pose, default: the default models in the "
        "cache), each with its own profile; what `pose-serve --runtime tensorrt` runs at start-up",
    )
    pe.add_argument("--output", help="write the engine here instead of the cache")
    pe.add_argument("--rebuild", action="store_true", help="rebuild even if cached")
    pe.add_argument("--check", action="store_true", help="compare engine vs onnxruntime on a random batch")
    pe.add_argument(
        "--model",
        choices=["auto", "pose", "detector"],
        default="auto",
        help="what the ONNX file is, for the default profile: a pose model's batches are crops (up to "
        "--max-batch-size), a detector's images (up to POSE_DET_MAX_BATCH_SIZE); auto: pose when it has a card",
    )
    add_engine_args(pe)
    add_lint_arg(pe)
    add_settings_options(pe, (*_SETTINGS, *MODEL_FIELDS, "default_detector"))  # --served: the models pose-serve serves


def add_triton_parser(sub: argparse._SubParsersAction) -> None:
    """``pose-export triton``: a Triton model repository."""
    pt = sub.add_parser("triton", help="write a Triton model repository (config.pbtxt, dynamic batching)")
    pt.add_argument("--repository", required=True)
    pt.add_argument("--pose-card", help="pose model card JSON (its ONNX beside it)")
    pt.add_argument("--detector", help="detector ONNX")
    pt.add_argument("--platform", choices=["onnxruntime", "tensorrt"], default="onnxruntime")
    pt.add_argument("--pose-engine", help="pose engine (platform tensorrt)")
    pt.add_argument("--detector-engine", help="detector engine (platform tensorrt)")
    pt.add_argument("--max-queue-delay-us", type=int, default=2000)
    pt.add_argument("--kind", choices=["KIND_GPU", "KIND_CPU"], default="KIND_GPU")
    add_settings_options(pt, _SETTINGS)


def add_defaults_parser(sub: argparse._SubParsersAction) -> None:
    """``pose-export defaults``: download + export the default models."""
    pf = sub.add_parser(
        "defaults",
        help="download + export the default models (--default-detector yolo11n or rtmdet-nano, ipr_res50_debias)",
    )
    pf.add_argument("--force", action="store_true", help="export again even if present")
    add_lint_arg(pf)
    add_settings_options(pf, (*_SETTINGS, "default_detector"))


def add_lint_parser(sub: argparse._SubParsersAction) -> None:
    """``pose-export lint``: TensorRT-readiness of ONNX files."""
    pl = sub.add_parser("lint", help="will TensorRT 10 parse these ONNX files? (no GPU needed)")
    pl.add_argument("onnx", nargs="+")
    pl.add_argument("--fixed-batch", action="store_true", help="do not require a symbolic batch axis")
    pl.add_argument("--json", action="store_true", help="print the reports as JSON")
    add_settings_options(pl, _SETTINGS)


def add_quantize_parser(sub: argparse._SubParsersAction) -> None:
    """``pose-export quantize``: int8 models (NNCF) into the cache, their AP change measured."""
    pq = sub.add_parser(
        "quantize",
        help="int8 post-training quantisation (NNCF) of the pose model and detector into the cache, AP change measured",
    )
    pq.add_argument("--calib-images", required=True, help="folder of calibration images")
    pq.add_argument("--calib-ann", help="COCO annotations whose person boxes cut the pose calibration crops "
                    "(default: the fp32 detector's boxes)")  # fmt: skip
    pq.add_argument("--eval-ann", help="COCO keypoint annotations of the AP evaluation (left out of calibration)")
    pq.add_argument("--eval-images", help="image folder of --eval-ann")
    pq.add_argument("--calib-max-images", type=int, default=80, help="most calibration images (default 80)")
    pq.add_argument("--calib-max-crops", type=int, default=320, help="most pose calibration crops (default 320)")
    pq.add_argument(
        "--pose-tail-depth",
        type=int,
        help="compute layers of the pose model's output tail kept in float (default: export.quantize.POSE_TAIL_DEPTH, "
        "1; 0: quantise everything, decode included)",
    )
    add_settings_options(pq, _QUANTIZE_SETTINGS)


#: The subcommands' parser builders, in the order ``pose-export --help`` lists them.
SUBCOMMAND_PARSERS = (
    add_pose_parser,
    add_detector_parser,
    add_rtmdet_parser,
    add_engine_parser,
    add_triton_parser,
    add_defaults_parser,
    add_lint_parser,
    add_quantize_parser,
)


def build_parser(description: str) -> argparse.ArgumentParser:
    """The ``pose-export`` parser: ``--version`` and every subcommand of :data:`SUBCOMMAND_PARSERS`."""
    p = argparse.ArgumentParser(prog="pose-export", description=description)
    add_version_option(p)
    sub = p.add_subparsers(dest="command", required=True)
    for add_parser in SUBCOMMAND_PARSERS:
        add_parser(sub)
    return p
