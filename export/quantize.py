"""int8 post-training quantisation of the served models with NNCF (``pose-export quantize``), gated by measured AP.

    pose-export quantize --pose movenet.json --detector yolov8n.onnx \\
        --calib-images coco-mini/val2017 --eval-ann coco-mini/annotations/person_keypoints_val2017.json \\
        --eval-images coco-mini/val2017

The calibration data is what the service feeds the models, made by the service's own code:

* detector: whole images letterboxed by ``inference.person_detector.PersonDetector.preprocess``;
* pose model: person crops cut by ``inference.pose_estimator.PoseEstimator.crops_for`` (``models.geometry``: MMPose's padding,
  aspect fix and affine warp) around ground-truth boxes (``--calib-ann``, MMPose's rule
  ``evaluation.boxes.gt_bboxes``) or around the boxes the fp32 detector finds, each with its mirror image (what the flip
  test feeds), prepared by the card (``InputSpec.prepare``).

Images named by the evaluation annotations are left out of the calibration set, so the AP the card records is
measured on images the quantisation never saw.

Each model is read by OpenVINO (``Core.read_model``: the ONNX file as exported) and quantised by
``nncf.quantize(model, nncf.Dataset(samples), preset=MIXED, subset_size=len(samples))`` (NNCF "Basic Quantization
Flow": min-max statistics of the activations on the calibration samples, then fast bias correction; MIXED: symmetric
weights, asymmetric activations). The detector's score sigmoids stay in float (Ultralytics' own OpenVINO int8 export
leaves them out the same way, ``ultralytics/utils/export/openvino.py``). The result is saved as OpenVINO IR
(``openvino.save_model``, no fp16 weight compression) into ``Settings.cache.int8(<sha256 of the fp32 file>)``, where
``POSE_PRECISION=int8`` finds it (``inference.runtime_ov.int8_model_path``), with:

* the pose model's int8 card (``precision: int8``; ``extra.quantization``: tool versions, calibration set, and the
  AP at fp32 and int8 on the evaluation set with their difference);
* ``<detector stem>.json``: the same record for the detector.

Then the served pipeline runs the evaluation images at fp32 and at int8 (``evaluation.precision_runs.evaluate_precisions``,
both models at each precision, the live detector's boxes when a detector is given, else ground truth) and the
reduced-precision gate judges the pair (``evaluation.precision.compare_runs``: keypoint agreement with fp32, the
paired OKS change against ground truth, the AP change with its bootstrap interval; bounds in ``models/tolerance.py``).
The figures and the verdict are written into both records (``ap``, ``gate``); ``pose-export quantize`` exits 1 when
the gate fails (the int8 files stay in the cache, their records saying so).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.hashing import sha256_file
from core.settings import Settings
from evaluation.precision import PrecisionComparison
from inference.imageio import decode_image
from models.card import ModelCard, card_path_for

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: NNCF presets: symmetric activations for the pose model (MoveNet on coco-mini: AP change within 0.01 where MIXED
#: lost 0.015; see bench/RESULTS.md), asymmetric for the detector's SiLU activations.
POSE_PRESET = "PERFORMANCE"
DETECTOR_PRESET = "MIXED"
#: Compute layers of the output tail kept in float (:func:`graph_tail`): the pose model's last layer (its heatmap /
#: offset / regression convolutions and the decode after them); the detector's whole detection head (three
#: convolutions per branch in YOLOv8 / YOLO11, then the box and class decode). Measured on coco-mini with YOLOv8n and
#: MoveNet Thunder: with one detector layer in float int8 lost 0.017 AP, with three it changed AP by +0.002.
POSE_TAIL_DEPTH = 1
DETECTOR_TAIL_DEPTH = 3


class QuantizeError(RuntimeError):
    """NNCF / OpenVINO missing, no calibration data, or the quantisation failed."""


@dataclass
class QuantizeReport:
    """What :func:`quantize_models` wrote and measured.

    Attributes:
        pose_card: the int8 card (its ``.xml`` / ``.bin`` beside it).
        detector_ir: the int8 detector IR, or None when no detector was given.
        calibration: the calibration set as recorded in the card.
        ap: ``{"fp32": AP, "int8": AP, "delta": AP(int8) - AP(fp32), ...}``, or None when no evaluation set was given.
        gate: the judged comparison of the int8 run with the fp32 run (``evaluation.precision``), or None likewise.
        runs: the fp32 and int8 ``evaluation.precision_runs.PrecisionRun`` behind them (empty likewise).
    """

    pose_card: Path
    detector_ir: Path | None
    calibration: dict
    ap: dict | None
    gate: PrecisionComparison | None = None
    runs: list = field(default_factory=list, repr=False)


def _import_nncf():
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise QuantizeError(
            f"int8 quantisation needs NNCF and OpenVINO ({exc}); pip install 'poseserve[quantize]'"
        ) from exc
    return nncf, ov


def calibration_files(image_dir: str | Path, exclude: set[str], max_images: int) -> list[Path]:
    """Image files of ``image_dir`` (sorted by name) whose names are not in ``exclude``, at most ``max_images``.

    Raises:
        QuantizeError: the folder is missing or holds no usable image.
    """
    folder = Path(image_dir)
    if not folder.is_dir():
        raise QuantizeError(f"calibration image folder not found: {folder}")
    files = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.name not in exclude]
    if not files:
        raise QuantizeError(f"no calibration images in {folder} (after leaving out {len(exclude)} evaluation images)")
    return files[: int(max_images)]


#: Operations whose inputs NNCF quantises and where :func:`graph_tail` stops.
_COMPUTE_OPS = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData")


def graph_tail(model, depth: int = 1) -> list[str]:
    """Friendly names of a model's output tail: every operation between the outputs and the last compute layers
    (convolutions, matmuls), those layers included. The tail turns feature maps into coordinates and scores (a pose
    model's heatmap / offset decode, a detector's box and class decode), where 8-bit steps move keypoints and boxes
    by whole pixels, so it stays in float; the body (nearly all the compute) is quantised.
    """
    names: list[str] = []
    seen: dict[str, int] = {}
    stack = [(r.input(0).get_source_output().get_node(), depth) for r in model.get_results()]
    while stack:
        node, left = stack.pop()
        name = node.get_friendly_name()
        if seen.get(name, -1) >= left or node.get_type_name() in (
            "Parameter",
            "Constant",
        ):
            continue
        if name not in seen:
            names.append(name)
        seen[name] = left
        if node.get_type_name() in _COMPUTE_OPS:
            left -= 1
            if left == 0:
                continue
        stack += [(i.get_source_output().get_node(), left) for i in node.inputs()]
    return names


def quantize_ir(
    model_path: str | Path,
    samples: list[dict],
    out_xml: Path,
    preset: str = "MIXED",
    tail_depth: int = 1,
    ignore_sigmoid: bool = False,
) -> Path:
    """Quantise one model with NNCF on OpenVINO and save it as IR.

    Args:
        model_path: the fp32 ONNX (or IR) file.
        samples: the calibration feeds (input name -> array with the model's batch size).
        out_xml: the ``.xml`` to write (``.bin`` beside it).
        preset: ``nncf.QuantizationPreset`` name: ``PERFORMANCE`` (symmetric weights and activations) or ``MIXED``
            (asymmetric activations: better for activations that are not ReLU-like, such as SiLU).
        tail_depth: how many compute layers of the output tail stay in float (:func:`graph_tail`; 0: none).
        ignore_sigmoid: keep every ``Sigmoid`` in float (the detector's class scores).

    Returns:
        ``out_xml``.

    Raises:
        QuantizeError: no samples, or NNCF failed.
    """
    nncf, ov = _import_nncf()
    if not samples:
        raise QuantizeError(f"no calibration samples for {Path(model_path).name}")
    model = ov.Core().read_model(str(model_path))
    names = graph_tail(model, tail_depth) if tail_depth else []
    if ignore_sigmoid:
        names += [op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "Sigmoid"]
    ignored = nncf.IgnoredScope(names=sorted(set(names)), validate=False)
    try:
        quantized = nncf.quantize(
            model,
            nncf.Dataset(samples),
            preset=getattr(nncf.QuantizationPreset, preset),
            subset_size=len(samples),
            ignored_scope=ignored,
        )
    except Exception as exc:
        raise QuantizeError(f"NNCF could not quantise {Path(model_path).name}: {exc}") from exc
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return out_xml


def _tool_versions() -> dict:
    nncf, ov = _import_nncf()
    return {"nncf": nncf.__version__, "openvino": ov.__version__.split("-")[0]}


def _calibration_samples(
    settings: Settings,
    card: ModelCard,
    files: list[Path],
    calib_coco,
    max_calib_crops: int,
) -> tuple[list[dict], list[dict], int]:
    """The calibration data, made by the fp32 pipeline's own preprocessing: detector inputs of each image, pose
    inputs of the persons' crops (ground-truth boxes of ``calib_coco``, else the detector's) and their mirror images.

    Returns:
        (detector samples, pose samples, pose batch size).

    Raises:
        QuantizeError: no person in the images.
    """
    from evaluation.boxes import gt_bboxes
    from inference.pipeline import PosePipeline

    by_name = {im["file_name"]: i for i, im in calib_coco.imgs.items()} if calib_coco is not None else {}
    pipeline = PosePipeline.from_settings(settings, batching=False)
    det_samples: list[dict] = []
    crops: list[np.ndarray] = []
    try:
        for f in files:
            image = decode_image(f.read_bytes())
            if pipeline.detector is not None:
                x, _ = pipeline.detector.preprocess(image)
                det_samples.append({pipeline.detector.input_name: x})
            if calib_coco is not None:
                boxes = gt_bboxes(calib_coco, by_name[f.name])[0] if f.name in by_name else np.zeros((0, 4), np.float32)
            else:
                boxes = pipeline.detector.detect(image)[0]
            if len(boxes):
                c = pipeline.pose.crops_for(image, boxes)[0]
                crops += [*c, *c[:, :, ::-1]]
    finally:
        pipeline.close()
    if not crops:
        raise QuantizeError(f"no persons in the {len(files)} calibration images")
    crops = crops[:max_calib_crops]
    batch = pipeline.pose.fixed_batch or 1
    pose_samples = []
    for start in range(0, len(crops) - len(crops) % batch, batch):
        chunk = np.stack(crops[start : start + batch])
        pose_samples.append({card.input.name: card.input.prepare(np.ascontiguousarray(chunk))})

    return det_samples, pose_samples, batch


def _quantize_detector(
    settings: Settings, det_samples: list[dict], quantization: dict
) -> tuple[Path | None, Path | None]:
    """Quantise ``settings.detector_model`` (when set) into the cache with its record (``<xml>.json``); (None, None)
    without a detector."""
    if settings.detector_model is None:
        return None, None
    det_source = Path(settings.detector_model)
    det_sha256 = sha256_file(det_source)
    det_xml = quantize_ir(
        det_source,
        det_samples,
        settings.cache.int8_model(det_source, det_sha256),
        DETECTOR_PRESET,
        DETECTOR_TAIL_DEPTH,
        ignore_sigmoid=True,
    )
    det_record = det_xml.with_suffix(".json")
    record = {"quantized_from": {"file": det_source.name, "sha256": det_sha256}, **quantization}
    det_record.write_text(json.dumps(record, indent=2) + "\n")
    return det_xml, det_record


def _measure_ap(
    settings: Settings,
    eval_coco,
    eval_ann,
    eval_images,
    int8_card: ModelCard,
    card_path: Path,
    det_record: Path | None,
) -> tuple[dict, PrecisionComparison, list]:
    """AP of the fp32 and int8 pipelines on the evaluation set and the accuracy gate; recorded in the int8 card and
    the detector's record. Returns (the AP record, the gate, the runs)."""
    from evaluation.precision_runs import compare_precision_runs, evaluate_precisions

    boxes = "detector" if settings.detector_model is not None else "gt"
    runs = evaluate_precisions(
        settings,
        eval_coco,
        eval_ann,
        eval_images,
        ["fp32", "int8"],
        box_source=boxes,
        same_bboxes=True,
    )
    gate = compare_precision_runs(eval_coco, runs)[0]
    ap = {
        "fp32": round(gate.ap_reference, 4),
        "int8": round(gate.ap, 4),
        "delta": round(gate.ap_delta, 4),
        "delta_ci": [round(x, 4) for x in gate.ap_delta_ci],
        "evaluation": f"{len(runs[0].predictions.image_ids)} images of {Path(eval_ann).name}",
        "boxes": "the detector at the same precision" if boxes == "detector" else "ground truth",
        "flip_test": settings.flip_test,
        "metric": "COCO keypoint AP (evaluation.runner: rescoring, OKS-NMS)",
    }
    int8_card.extra["quantization"].update(ap=ap, gate=gate.to_dict())
    int8_card.save(card_path)
    if det_record is not None:
        record = json.loads(det_record.read_text())
        det_record.write_text(json.dumps({**record, "ap": ap, "gate": gate.to_dict()}, indent=2) + "\n")
    return ap, gate, runs


def _fp32_card(settings: Settings, calib_ann, eval_ann, eval_images) -> ModelCard:
    """The fp32 card to quantise, after checking the calibration and evaluation options.

    Raises:
        QuantizeError: an int8 card, no source of calibration boxes, half an evaluation set.
    """
    card = ModelCard.load(card_path_for(settings.pose_model))
    if card.precision != "fp32":
        raise QuantizeError(f"card {card.name!r} is already {card.precision}; quantise its fp32 model")
    if calib_ann is None and settings.detector_model is None:
        raise QuantizeError("calibration boxes need ground truth (--calib-ann) or a detector (--detector)")
    if (eval_ann is None) != (eval_images is None):
        raise QuantizeError("give both --eval-ann and --eval-images, or neither")
    return card


def _quantize_pose(
    settings: Settings,
    card: ModelCard,
    pose_samples: list[dict],
    pose_tail_depth: int,
    quantization: dict,
) -> tuple[ModelCard, Path]:
    """Quantise the card's model into the cache and write its int8 card (AP not yet measured): (card, its path)."""
    pose_source = card.model_path()
    pose_sha256 = sha256_file(pose_source)
    pose_xml = quantize_ir(
        pose_source,
        pose_samples,
        settings.cache.int8_model(pose_source, pose_sha256),
        POSE_PRESET,
        pose_tail_depth,
    )
    int8_card = ModelCard.from_dict({**card.to_dict(), "model_file": pose_xml.name, "precision": "int8"})
    int8_card.source = {
        **card.source,
        "quantized_from": {
            "file": pose_source.name,
            "sha256": pose_sha256,
        },
    }
    int8_card.extra = {**card.extra, "quantization": {**quantization, "ap": None}}
    card_path = int8_card.save(pose_xml.with_suffix(".json"))
    return int8_card, card_path


def _calibration_record(
    settings: Settings,
    files: list[Path],
    exclude: set,
    calib_images,
    calib_ann,
    eval_ann,
    pose_crops: int,
    detector_images: int,
) -> dict:
    """What the int8 card and the detector's record say about the calibration data."""
    return {
        "images": f"{len(files)} images of {Path(calib_images).name}/ (sorted by name"
        + (f", leaving out the {len(exclude)} images of {Path(eval_ann).name}" if exclude else "")
        + ")",
        "image_files": [f.name for f in files],
        "pose_crops": pose_crops,
        "pose_boxes": f"ground truth of {Path(calib_ann).name}" if calib_ann else "the fp32 detector's boxes",
        "pose_crop_geometry": f"models.geometry, padding {settings.bbox_padding}, each crop and its mirror image",
        "detector_images": detector_images,
    }


def _quantization_record(pose_tail_depth: int, calibration: dict) -> dict:
    """What the int8 card and the detector's record say about the quantisation (tools, method, calibration)."""
    return {
        "tool": _tool_versions(),
        "method": f"nncf.quantize (OpenVINO backend), fast bias correction, all samples; preset {POSE_PRESET} (pose), "
        f"{DETECTOR_PRESET} (detector); float output tail (export.quantize.graph_tail) of {pose_tail_depth} (pose) "
        f"and {DETECTOR_TAIL_DEPTH} (detector) compute layers, detector sigmoids in float",
        "calibration": calibration,
    }


def quantize_models(
    settings: Settings,
    calib_images: str | Path,
    calib_ann: str | Path | None = None,
    eval_ann: str | Path | None = None,
    eval_images: str | Path | None = None,
    max_calib_images: int = 80,
    max_calib_crops: int = 320,
    pose_tail_depth: int | None = None,
) -> QuantizeReport:
    """Quantise the pose model (and the detector, when ``settings.detector_model`` is set) to int8, write them and
    their records into the cache, and measure the AP change (see the module docstring).

    Args:
        settings: ``pose_model`` (an fp32 card), ``detector_model`` (optional), ``cache_dir``, ``ov_device``,
            ``intra_op_threads``, ``bbox_padding``, ``flip_test`` and the detector thresholds (for the AP runs and
            the calibration boxes); the runtime is OpenVINO whatever ``settings.runtime`` says.
        calib_images: folder of calibration images.
        calib_ann: COCO annotations giving the calibration persons' boxes (ground truth); None: the fp32 detector's
            boxes (needs ``detector_model``).
        eval_ann, eval_images: the AP evaluation set (its images are left out of the calibration set); None: the
            AP change is recorded as not measured.
        max_calib_images: most calibration images (the detector's samples, and the images persons are cut from).
        max_calib_crops: most pose calibration crops (mirrored crops included).
        pose_tail_depth: compute layers of the pose model's output tail kept in float (:func:`graph_tail`; default
            :data:`POSE_TAIL_DEPTH` when None; 0 quantises the whole model, decode included: a known accuracy loss the gate
            must catch).

    Returns:
        :class:`QuantizeReport`.

    Raises:
        QuantizeError: NNCF missing, no calibration data, an int8 card given, quantisation failed.
        ModelLoadError: a model cannot be opened.
    """
    from evaluation.metric import load_coco

    if settings.pose_model is None:
        raise QuantizeError("no pose model given (--pose CARD)")
    pose_tail_depth = POSE_TAIL_DEPTH if pose_tail_depth is None else int(pose_tail_depth)
    if pose_tail_depth < 0:
        raise QuantizeError(f"the pose tail depth must be >= 0, got {pose_tail_depth}")
    _import_nncf()
    settings = settings.model_copy(update={"runtime": "openvino", "precision": "fp32"})
    card = _fp32_card(settings, calib_ann, eval_ann, eval_images)

    eval_coco = load_coco(eval_ann) if eval_ann is not None else None
    exclude = {im["file_name"] for im in eval_coco.imgs.values()} if eval_coco is not None else set()
    files = calibration_files(calib_images, exclude, max_calib_images)
    calib_coco = load_coco(calib_ann) if calib_ann is not None else None

    det_samples, pose_samples, batch = _calibration_samples(settings, card, files, calib_coco, max_calib_crops)
    calibration = _calibration_record(
        settings,
        files,
        exclude,
        calib_images,
        calib_ann,
        eval_ann,
        len(pose_samples) * batch,
        len(det_samples),
    )
    quantization = _quantization_record(pose_tail_depth, calibration)

    int8_card, card_path = _quantize_pose(settings, card, pose_samples, pose_tail_depth, quantization)

    det_xml, det_record = _quantize_detector(settings, det_samples, quantization)
    log.info("int8 models written: %s%s", card_path, f", {det_xml}" if det_xml else "")

    ap = gate = None
    runs = []
    if eval_coco is not None:
        ap, gate, runs = _measure_ap(settings, eval_coco, eval_ann, eval_images, int8_card, card_path, det_record)
    return QuantizeReport(card_path, det_xml, calibration, ap, gate, runs)


def describe_report(report: QuantizeReport) -> str:
    """The report as printed by ``pose-export quantize``."""
    lines = [f"int8 card: {report.pose_card}"]
    if report.detector_ir is not None:
        lines.append(f"int8 detector: {report.detector_ir}")
    cal = report.calibration
    lines.append(f"calibration: {cal['images']}; {cal['pose_crops']} pose crops ({cal['pose_boxes']})")
    if report.ap is None:
        lines.append("AP change: not measured (give --eval-ann and --eval-images)")
    else:
        a = report.ap
        lines.append(
            f"AP fp32 {a['fp32']:.4f}, int8 {a['int8']:.4f}: AP(int8) - AP(fp32) = {a['delta']:+.4f} ({a['evaluation']})"
        )
    if report.gate is not None:
        lines.append(report.gate.describe().rstrip("\n"))
    return "\n".join(lines)
