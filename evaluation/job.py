"""``pose-eval``: the offline COCO keypoint (AP) or MPII (PCKh) evaluation of the served pipeline, with the model-zoo
table.

    pose-eval --ann person_keypoints_val2017.json --images val2017/ --pose ipr_res50.json \\
        --boxes file --det-file COCO_val2017_detections_AP_H_56_person.json --out-dir eval_out/
    pose-eval --dataset mpii --ann mpii_val.json --headboxes mpii_gt_val.mat --images mpii/images/ \\
        --pose td-reg_res50_rle_mpii.json --flip-test

It runs what the service runs: images are decoded by ``inference.imageio.decode_image`` (EXIF-aware,
RGB), boxes go through ``inference.pipeline.PosePipeline`` (the service's crop, engine and decode; the
live detector is ``inference.person_detector.PersonDetector``), and the predictions are scored by
:mod:`evaluation.metric` (MMPose ``CocoMetric``: rescoring, OKS-NMS 0.9, COCOeval).

Boxes (``--boxes``):

* ``gt``: ground-truth boxes as MMPose's top-down COCO dataset takes them
  (``mmpose/datasets/datasets/base/base_coco_style_dataset.py``): crowd annotations, people without
  labelled keypoints and empty boxes are skipped, the xywh box is clipped to ``[0, W-1] x [0, H-1]``;
  bbox score 1.
* ``file``: a detection-results file in the ``COCO_val2017_detections_AP_H_56_person.json`` format (a JSON
  list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``); category 1 only, boxes kept with
  ``score >= --det-file-score-thr`` (default 0.0: MMPose's configs set no ``bbox_score_thr``); detections of
  images that are not in the annotation file are skipped and counted.
* ``detector``: the live YOLO person detector of the service (``--detector yolov8n.onnx``, with the
  service's ``--det-score-threshold`` / ``--det-nms-iou`` settings).

Runtime and pipeline options are the service's settings (``core.settings.Settings``: the same flags
and ``POSE_*`` variables as ``pose-serve``).

Images are read one at a time (a small read-ahead thread decodes the next few), so val2017 never has to
fit in memory; only the keypoints are kept (17 x 3 floats per person).

Data set (``--dataset``, default ``auto``: the card's ``extra.evaluation.dataset``, else the data set of its keypoint
schema, else COCO): ``coco`` scores with :mod:`evaluation.metric` (person score ``--score-mode``, default the card's
``extra.evaluation.score_mode``: MMPose's ``bbox_rle`` for RLE's COCO configs, ``bbox_keypoint`` otherwise);
``mpii`` reads an MPII-format annotation file and its head boxes (:mod:`evaluation.mpii`: MMPose's ``MpiiDataset``),
runs the pipeline on the annotations' center / scale boxes and scores PCKh as MMPose's ``MpiiPCKAccuracy``; the table
has MMPose's MPII columns (``Arch | Input Size | Mean | Mean@0.1``).

Flip test: the service's flip test (``--flip-test``) merges the mirrored crop with MMPose's flip-back,
unless the model card says flip test is already in the graph (``flip_test_in_graph``, third-party
models), in which case it is always on and ``--flip-test`` changes nothing. The table notes which one ran.

Outputs (``--out-dir``), COCO: ``ap_table.md`` (the Markdown table, also printed), ``results.keypoints.json`` (COCO
results), ``metrics.json`` (all ten COCOeval stats, settings, per-keypoint figures) and ``per_keypoint.png``
(mean keypoint OKS and PCK per keypoint). MPII: ``pckh_table.md``, ``metrics.json`` (MMPose's PCKh figures in percent,
the table's columns, settings) and ``results.mpii.json`` (per annotation: its index, image and keypoints).
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.cli_options import add_settings_options, settings_from_args
from core.settings import (
    CACHE_FIELDS,
    DETECTOR_FIELDS,
    MODEL_FIELDS,
    PIPELINE_FIELDS,
    RUNTIME_FIELDS,
    Settings,
)
from evaluation.boxes import DetectionFile, gt_boxes, load_detection_file
from evaluation.metric import (
    DEFAULT_KEYPOINT_SCORE_THR,
    DEFAULT_NMS_THR,
    CocoKeypointMetric,
    KeypointEvalResult,
    scale_area,
    write_results_json,
)
from evaluation.mpii import MpiiInstance, mpii_pckh, read_mpii, zoo_columns
from evaluation.precision import PrecisionComparison, compare_runs
from inference.imageio import decode_image
from inference.pipeline import PosePipeline
from inference.pose_estimator import PoseEstimator
from models.card import ModelCard, ModelCardError, card_path_for
from models.scoring import SCORE_MODES
from models.zoo import METRIC_COLUMNS, model_zoo_table

BOX_SOURCES = ("gt", "file", "detector")
DATASETS = ("auto", "coco", "mpii")
TABLE_COLUMNS = ("Arch", "Input Size", *METRIC_COLUMNS["coco"])


# --------------------------------------------------------------------------------------------------
# Streaming images
# --------------------------------------------------------------------------------------------------


def iter_images(image_dir: Path, items: list[tuple[int, str]], prefetch: int = 4) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(image_id, uint8 [H, W, 3] RGB)`` one image at a time, decoded by the service's decoder.

    A background thread reads and decodes up to ``prefetch`` images ahead; nothing else is kept in memory.

    Raises:
        FileNotFoundError: an image of the annotation file is missing from ``image_dir``.
        core.errors.ImageDecodeError: an image cannot be decoded.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            for image_id, file_name in items:
                p = image_dir / file_name
                if not p.is_file():
                    raise FileNotFoundError(f"image {file_name} (id {image_id}) not found in {image_dir}")
                if not put((image_id, decode_image(p.read_bytes()))):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer
            put(exc)

    t = threading.Thread(target=reader, name="pose-eval-reader", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # a reader blocked on a full queue gives up within 0.1 s


# --------------------------------------------------------------------------------------------------
# Running the pipeline
# --------------------------------------------------------------------------------------------------


@dataclass
class Predictions:
    """Raw pipeline outputs for a data set (before rescoring / NMS), so several metric settings can reuse them.

    Attributes:
        per_image: image id -> (keypoints float32 [N, K, 3] original-image pixels, bbox scores float32 [N],
            OKS areas float64 [N] = product of the padded square crop scale).
        image_ids: ids of the images evaluated (COCOeval is restricted to them).
        num_boxes: boxes sent to the pose model.
        box_source: ``gt`` / ``file`` / ``detector``.
        notes: facts for the report (detection-file counts, flip test, providers).
        boxes: image id -> float32 [N, 4] xyxy original-image pixels, the boxes behind ``per_image`` (same order).
    """

    per_image: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]
    image_ids: list[int]
    num_boxes: int
    box_source: str
    notes: dict = field(default_factory=dict)
    boxes: dict[int, np.ndarray] = field(default_factory=dict)

    def as_detections(self) -> DetectionFile:
        """These predictions' boxes and bbox scores as a detection file (``box_source="file"``): another run on
        exactly the same boxes."""
        boxes = {i: (self.boxes[i], self.per_image[i][1]) for i in self.per_image}
        return DetectionFile(boxes, sum(len(b) for b, _ in boxes.values()), 0, 0)


def run_pipeline(
    coco,
    image_dir: str | Path,
    pipeline: PosePipeline,
    *,
    box_source: str = "gt",
    detections: DetectionFile | None = None,
    max_images: int | None = None,
    progress: bool = True,
) -> Predictions:
    """Run the served pipeline over the images of a COCO annotation file.

    Args:
        coco: COCO object of the annotation file (``evaluation.metric.load_coco``).
        image_dir: folder holding the images named by ``file_name``.
        pipeline: the service's pipeline (``PosePipeline.from_settings``); its detector is used for
            ``box_source="detector"``.
        box_source: ``gt``, ``file`` (needs ``detections``) or ``detector`` (needs ``pipeline.detector``).
        detections: from :func:`load_detection_file`.
        max_images: evaluate only the first N images of the annotation file (quick runs).
        progress: show a tqdm progress bar.

    Returns:
        :class:`Predictions`.

    Raises:
        ValueError: unknown box source, or its input is missing.
        FileNotFoundError: an image is missing.
    """
    if box_source not in BOX_SOURCES:
        raise ValueError(f"box source {box_source!r} must be one of {list(BOX_SOURCES)}")
    if box_source == "file" and detections is None:
        raise ValueError("box source 'file' needs a detection file (--det-file)")
    if box_source == "detector" and pipeline.detector is None:
        raise ValueError("box source 'detector' needs a detector model (--detector)")
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_dir}")
    image_ids = list(coco.getImgIds())
    if max_images is not None:
        image_ids = image_ids[: int(max_images)]

    # boxes known up front (gt / file): images without any box are not even decoded
    boxes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if box_source == "gt":
        boxes = {i: gt_boxes(coco, i) for i in image_ids}
    elif box_source == "file":
        boxes = {i: detections.boxes[i] for i in image_ids if i in detections.boxes}
    todo = [i for i in image_ids if box_source == "detector" or len(boxes.get(i, ((), ()))[1]) > 0]
    items = [(i, coco.imgs[i]["file_name"]) for i in todo]

    per_image: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    image_boxes: dict[int, np.ndarray] = {}
    num_boxes = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc=f"pose-eval ({box_source} boxes)", unit="img", file=sys.stderr)
    try:
        for image_id, image in iter_images(image_dir, items):
            if box_source == "detector":
                out = pipeline.predict(image)
                bbox_scores = out.bbox_scores
            else:
                b, bbox_scores = boxes[image_id]
                out = pipeline.predict(image, b)
            num_boxes += len(out.bboxes)
            if len(out.bboxes):
                per_image[image_id] = (out.keypoints, np.asarray(bbox_scores, np.float32), scale_area(out.scales))
                image_boxes[image_id] = np.asarray(out.bboxes, np.float32)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(persons=num_boxes, refresh=False)
    finally:
        if bar is not None:
            bar.close()
    notes = {"flip_test": _flip_note(pipeline.pose)}
    if detections is not None and box_source == "file":
        notes.update(
            det_boxes_kept=detections.num_kept,
            det_boxes_below_thr=detections.num_below_thr,
            det_boxes_unknown_image=detections.num_unknown_image,
        )
    return Predictions(per_image, image_ids, num_boxes, box_source, notes, image_boxes)


@dataclass
class MpiiPredictions:
    """Pipeline outputs for the annotations of an MPII-format file, in file order.

    Attributes:
        instances: the annotations (:func:`evaluation.mpii.read_mpii`).
        keypoints: float32 [N, 16, 3]: x, y in 0-based original-image pixels, score.
        notes: facts for the report (flip test).
    """

    instances: list[MpiiInstance]
    keypoints: np.ndarray
    notes: dict = field(default_factory=dict)


def run_pipeline_mpii(
    instances: list[MpiiInstance],
    image_dir: str | Path,
    pipeline: PosePipeline,
    *,
    max_images: int | None = None,
    progress: bool = True,
) -> MpiiPredictions:
    """Run the served pipeline on the annotated people of an MPII-format file (MMPose's ``MpiiDataset`` boxes).

    Each annotation's box is ``bbox_cs2xyxy(center, 200 x scale)``; the pipeline pads it by 1.25 and fixes the aspect
    ratio, which gives MMPose's ``GetBBoxCenterScale`` + ``TopdownAffine`` crop (the center / scale round trip through
    the corners is float32-exact to ~1e-5 px). Images are read one at a time (:func:`iter_images`).

    Args:
        instances: from :func:`evaluation.mpii.read_mpii`.
        image_dir: the folder of the ``image`` files.
        pipeline: the service's pipeline (no detector needed).
        max_images: only the annotations of the first N images (in file order).
        progress: a tqdm progress bar.

    Returns:
        :class:`MpiiPredictions` (only the annotations of the images run).

    Raises:
        FileNotFoundError: the folder or an image is missing.
        ValueError: the model's keypoints are not MPII's 16.
    """
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_dir}")
    if pipeline.pose.num_keypoints != 16:
        raise ValueError(
            f"MPII evaluation needs a 16-keypoint MPII model, {pipeline.pose.name!r} has {pipeline.pose.num_keypoints}"
        )
    by_file: dict[str, list[MpiiInstance]] = {}
    for inst in instances:
        by_file.setdefault(inst.file_name, []).append(inst)
    files = list(by_file)[: max_images if max_images is not None else None]
    keypoints: dict[int, np.ndarray] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files), desc="pose-eval (MPII boxes)", unit="img", file=sys.stderr)
    try:
        for i, image in iter_images(image_dir, list(enumerate(files))):
            people = by_file[files[i]]
            out = pipeline.predict(image, np.stack([p.bbox for p in people]))
            for p, kp in zip(people, out.keypoints):
                keypoints[p.index] = kp
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    run = [inst for inst in instances if inst.index in keypoints]
    kp = np.stack([keypoints[inst.index] for inst in run]) if run else np.zeros((0, 16, 3), np.float32)
    return MpiiPredictions(run, kp, {"flip_test": _flip_note(pipeline.pose)})


def score_mpii(predictions: MpiiPredictions) -> dict[str, float]:
    """MMPose's MPII PCKh of pipeline outputs (:func:`evaluation.mpii.mpii_pckh`), in percent.

    Raises:
        ValueError: no predictions, or an annotation without a head size (give the head-box file).
    """
    inst = predictions.instances
    if not inst:
        raise ValueError("no MPII annotations were evaluated")
    if any(i.head_size is None for i in inst):
        raise ValueError("PCKh needs the head boxes (mpii_gt_val.mat): pass --headboxes")
    return mpii_pckh(
        predictions.keypoints[..., :2],
        np.stack([i.keypoints for i in inst]),
        np.stack([i.visible for i in inst]),
        np.array([i.head_size for i in inst]),
    )


def _flip_note(pose: PoseEstimator) -> str:
    if pose.card.flip_test_in_graph:
        return "in graph"
    return "service" if pose.flip_test else "off"


def score_predictions(
    predictions: Predictions,
    ann_file: str | Path,
    *,
    score_mode: str = "bbox_keypoint",
    nms: bool = True,
    nms_thr: float = DEFAULT_NMS_THR,
    keypoint_score_thr: float = DEFAULT_KEYPOINT_SCORE_THR,
    backend: str = "auto",
    pck_thr: float = 0.05,
) -> tuple[KeypointEvalResult, list[dict]]:
    """Person scores (``score_mode``: MMPose ``CocoMetric``'s), OKS-NMS and COCOeval of pipeline outputs (see
    :class:`evaluation.metric.CocoKeypointMetric`).

    Returns:
        (the evaluation result, the COCO result records).
    """
    metric = CocoKeypointMetric(
        ann_file,
        score_mode=score_mode,
        nms=nms,
        nms_thr=nms_thr,
        keypoint_score_thr=keypoint_score_thr,
        backend=backend,
    )
    for image_id, (kp, bs, areas) in predictions.per_image.items():
        metric.add(image_id, kp, bs, areas)
    results = metric.coco_results()
    return metric.evaluate(results, pck_thr=pck_thr, image_ids=predictions.image_ids), results


@dataclass
class PrecisionRun:
    """One evaluation of the pipeline at one precision (:func:`evaluate_precisions`).

    Attributes:
        precision: ``fp32`` / ``bf16`` / ``int8`` (``Settings.precision``).
        result: the COCO keypoint figures (``result.stats["AP"]``, ...).
        records: the COCO result records.
        predictions: the raw pipeline outputs.
        describe: ``PosePipeline.describe()`` of the pipeline that ran (runtimes, precisions, devices).
        same_boxes: the pose model alone at this precision on the reference run's boxes (identical crops), or None
            (the reference run itself, or ``same_boxes=False``).
    """

    precision: str
    result: KeypointEvalResult
    records: list[dict]
    predictions: Predictions
    describe: dict
    same_boxes: Predictions | None = None


def evaluate_precisions(
    settings: Settings,
    coco,
    ann_file: str | Path,
    image_dir: str | Path,
    precisions: list[str],
    *,
    box_source: str = "gt",
    detections: DetectionFile | None = None,
    max_images: int | None = None,
    progress: bool = False,
    same_boxes: bool = False,
    **metric_kwargs,
) -> list[PrecisionRun]:
    """Run the served pipeline over the same images once per precision (both models at that precision) and score
    each run the same way: the accuracy gate of reduced precision (bf16, int8), which random weights cannot show.

    Args:
        settings: the pipeline's settings (``pose_model``, ``detector_model`` for ``box_source="detector"``,
            ``runtime``, ...); ``precision`` is replaced by each of ``precisions`` in turn.
        coco, ann_file: the annotations (``evaluation.metric.load_coco``) and their file.
        image_dir: the images' folder.
        precisions: e.g. ``["fp32", "bf16"]`` (the first is the reference of :func:`format_precision_table`).
        box_source, detections, max_images, progress: as :func:`run_pipeline`.
        same_boxes: also run the pose model alone at each later precision on the first run's boxes
            (:attr:`PrecisionRun.same_boxes`: the pose model's own precision loss, on identical crops).
        **metric_kwargs: as :func:`score_predictions` (``score_mode``, ``nms``, ``backend``, ...).

    Returns:
        One :class:`PrecisionRun` per precision, in order.

    Raises:
        ModelLoadError: a precision the runtime or the CPU cannot run (``inference.runtime_ov.check_precision``), or an
            int8 model missing from the cache; what :func:`run_pipeline` raises.
    """
    runs = []
    for precision in precisions:
        pipeline = PosePipeline.from_settings(settings.model_copy(update={"precision": precision}), batching=False)
        try:
            preds = run_pipeline(
                coco,
                image_dir,
                pipeline,
                box_source=box_source,
                detections=detections,
                max_images=max_images,
                progress=progress,
            )
            result, records = score_predictions(preds, ann_file, **metric_kwargs)
            runs.append(PrecisionRun(precision, result, records, preds, pipeline.describe()))
        finally:
            pipeline.close()
        if same_boxes and len(runs) > 1:
            pose_only = settings.model_copy(update={"precision": precision, "detector_model": None})
            pipeline = PosePipeline.from_settings(pose_only, batching=False)
            try:
                runs[-1].same_boxes = run_pipeline(
                    coco,
                    image_dir,
                    pipeline,
                    box_source="file",
                    detections=runs[0].predictions.as_detections(),
                    max_images=max_images,
                    progress=progress,
                )
            finally:
                pipeline.close()
    return runs


def compare_precision_runs(coco, runs: list[PrecisionRun], backend: str = "auto") -> list[PrecisionComparison]:
    """Judge every run after the first against the first (the reference, fp32) with the reduced-precision gate
    (:func:`evaluation.precision.compare_runs`: keypoint agreement, paired OKS change, AP change with its bootstrap
    interval; bounds in ``models/tolerance.py``).

    Args:
        coco: the annotations the runs were scored on.
        runs: from :func:`evaluate_precisions`, the reference first.
        backend: the COCOeval backend (as the runs were scored).

    Returns:
        One judged :class:`evaluation.precision.PrecisionComparison` per run after the first.
    """
    ref = runs[0]
    return [
        compare_runs(
            coco,
            ref.records,
            r.records,
            ref.predictions.image_ids,
            precision=r.precision,
            reference=ref.precision,
            backend=backend,
            same_boxes=None
            if r.same_boxes is None
            else (
                {i: v[0] for i, v in ref.predictions.per_image.items()},
                {i: v[0] for i, v in r.same_boxes.per_image.items()},
            ),
        )
        for r in runs[1:]
    ]


def format_precision_table(runs: list[PrecisionRun]) -> str:
    """Markdown: one row per precision with AP, AP50, AP75, AR and the AP difference to the first run."""
    ref = runs[0].result.stats["AP"]
    lines = ["| precision | AP | AP50 | AP75 | AR | AP - AP(" + runs[0].precision + ") |", "|---|---|---|---|---|---|"]
    for r in runs:
        s = r.result.stats
        figures = " | ".join(f"{s[k]:.4f}" for k in ("AP", "AP50", "AP75", "AR"))
        lines.append(f"| {r.precision} | {figures} | {s['AP'] - ref:+.4f} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------------


def format_ap_table(rows: list[dict], dataset: str = "coco") -> str:
    """The MMPose model-zoo table in Markdown (``models.zoo.model_zoo_table``): ``Arch | Input Size | AP | AP50 |
    AP75 | AR | AR50`` (COCO) or ``Arch | Input Size | Mean | Mean@0.1`` (MPII).

    Args:
        rows: dicts with ``arch`` (str), ``input_size`` ((w, h) pixels, printed height x width as MMPose does) and
            ``stats`` (figures by column name, 0..1); printed with 3 decimals like the zoo.
        dataset: ``coco`` or ``mpii``.
    """
    return model_zoo_table([{**r, "metrics": r["stats"]} for r in rows], dataset)


def plot_per_keypoint(breakdown: dict, path: str | Path, title: str = "") -> Path:
    """Bar chart of mean keypoint OKS and PCK per keypoint (matplotlib, Agg backend). Returns the PNG path.

    Args:
        breakdown: :func:`evaluation.metric.per_keypoint_breakdown` output.
        path: where to write the PNG.
        title: figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = breakdown["names"]
    x = np.arange(len(names))
    oks = np.nan_to_num(np.asarray(breakdown["oks"], dtype=float))
    pck = np.nan_to_num(np.asarray(breakdown["pck"], dtype=float))
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=100)
    ax.bar(x - 0.2, oks, width=0.4, label="mean keypoint OKS")
    ax.bar(x + 0.2, pck, width=0.4, label=f"PCK@{breakdown['pck_thr']:g} (bbox)")
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylim(0, 1.2)
    ax.set_ylabel("score")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", ncol=2, frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------------
# Model loading (card, or zoo name / checkpoint through the export package)
# --------------------------------------------------------------------------------------------------


def card_from_checkpoint(zoo: str | None, checkpoint: str | None, out_dir: Path, settings: Settings) -> Path:
    """Turn a zoo name or a ``.pth`` into an ONNX + card with the export package; returns the card path.

    Calls ``export.pose.export_pose(zoo or checkpoint, out_dir, checkpoint=checkpoint, ...)`` (the export is
    verified against torch; with both given, ``zoo`` names the config of an MMPose ``.pth``; zoo checkpoints
    go to ``settings.cache.checkpoints``) when the export package (``pip install poseserve[export]``, torch)
    is installed.

    Raises:
        RuntimeError: the export package is not installed (export first and pass ``--pose``), or
            ``export.pose.PoseExportError`` (a RuntimeError): the checkpoint cannot be loaded or exported.
    """
    try:
        from export.pose import export_pose  # type: ignore[import-not-found]
    except ImportError as exc:
        raise RuntimeError(
            "evaluating a zoo name or a .pth needs the export package (export.pose.export_pose), which is not "
            f"available here ({exc}); export the model to ONNX + card first and pass --pose CARD.json"
        ) from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    return export_pose(
        zoo or checkpoint,
        out_dir,
        checkpoint=checkpoint,
        cache_dir=settings.cache.checkpoints,
        offline=settings.offline,
        threads=settings.intra_op_threads,
    ).card_path


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------

#: Settings fields ``pose-eval`` takes as options (the same flags as ``pose-serve``).
_SETTINGS = (*MODEL_FIELDS, *RUNTIME_FIELDS, *PIPELINE_FIELDS, *DETECTOR_FIELDS, *CACHE_FIELDS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="pose-eval",
        description="COCO keypoint (AP) or MPII (PCKh) evaluation of the served pipeline; prints the MMPose model-zoo "
        "table.",
    )
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        default="auto",
        help="coco (AP) or mpii (PCKh); default auto: the data set of the model card (its keypoint schema)",
    )
    p.add_argument("--ann", required=True, help="annotation file: person_keypoints_val2017.json or mpii_val.json")
    p.add_argument("--images", required=True, help="image folder (val2017/, MPII's images/)")
    p.add_argument("--headboxes", help="MPII: the head boxes of --ann for PCKh (mpii_gt_val.mat)")
    m = p.add_argument_group("pose model (--pose CARD from the settings, or one of)")
    m.add_argument("--zoo", help="zoo model name, exported on the fly (needs the export package)")
    m.add_argument("--checkpoint", help=".pth checkpoint, exported on the fly (needs the export package)")
    b = p.add_argument_group("boxes (COCO; MPII uses its annotations' boxes)")
    b.add_argument("--boxes", choices=BOX_SOURCES, default="gt", help="box source (default gt)")
    b.add_argument("--det-file", help="detection results (COCO_val2017_detections_AP_H_56_person.json format)")
    b.add_argument(
        "--det-file-score-thr",
        type=float,
        default=0.0,
        help="minimum score of a --det-file box (default 0.0, as MMPose's configs)",
    )
    e = p.add_argument_group("COCO metric")
    e.add_argument(
        "--score-mode",
        choices=("auto", *SCORE_MODES),
        default="auto",
        help="person score (MMPose CocoMetric score_mode); default auto: the card's (bbox_rle for RLE's COCO "
        "configs), else bbox_keypoint",
    )
    e.add_argument(
        "--no-rescore", action="store_true", help="person score = mean keypoint score (--score-mode keypoint)"
    )
    e.add_argument("--no-nms", action="store_true", help="switch OKS-NMS off")
    e.add_argument("--nms-thr", type=float, default=DEFAULT_NMS_THR)
    e.add_argument("--kpt-score-thr", type=float, default=DEFAULT_KEYPOINT_SCORE_THR)
    e.add_argument("--coco-backend", choices=["auto", "xtcocotools", "pycocotools"], default="auto")
    e.add_argument("--pck-thr", type=float, default=0.05, help="PCK threshold (fraction of the box's longer side)")
    o = p.add_argument_group("output")
    o.add_argument("--out-dir", default="eval_out", help="where the table, results JSON, metrics and plot go")
    o.add_argument("--arch", help="name in the table's Arch column (default: the card's name)")
    o.add_argument("--max-images", type=int, help="only the first N images (quick runs)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument(
        "--compare-precision",
        choices=["fp32", "bf16", "int8"],
        help="run the same images again at this precision (both models; openvino runtime), print the AP "
        "difference to the --precision run and judge it by the reduced-precision gate (models/tolerance.py; "
        "metrics.json: precision_comparison, precision_gate); exit status 1 when the gate fails",
    )
    add_settings_options(p.add_argument_group("runtime and pipeline settings (as pose-serve)"), _SETTINGS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the job; returns the exit status (0 ok, 1 a reduced-precision comparison failed its gate, 2 bad input)."""
    args = parse_args(argv)
    from core.errors import PoseServiceError

    try:
        return _main(args)
    except (FileNotFoundError, ValueError, RuntimeError, PoseServiceError) as exc:
        print(f"pose-eval: {exc}", file=sys.stderr)
        return 2


def card_evaluation(card: ModelCard) -> tuple[str, str]:
    """(data set, COCO score mode) of a card: its ``extra.evaluation`` (written by ``pose-export``), else the data set
    of its keypoint schema and ``bbox_keypoint``; a card with neither is evaluated on COCO."""
    ev = card.extra.get("evaluation") or {}
    dataset = ev.get("dataset") or (card.schema.dataset if card.schema is not None else None) or "coco"
    return dataset, ev.get("score_mode") or "bbox_keypoint"


def _main(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    out_dir = Path(args.out_dir)
    n_sources = sum(x is not None for x in (settings.pose_model, args.zoo, args.checkpoint))
    if n_sources != 1:
        raise ValueError("give exactly one of --pose, --zoo, --checkpoint")
    if args.boxes == "file" and not args.det_file:
        raise ValueError("--boxes file needs --det-file")
    if args.boxes == "detector" and settings.detector_model is None:
        raise ValueError("--boxes detector needs --detector")
    card_path = settings.pose_model or card_from_checkpoint(args.zoo, args.checkpoint, out_dir / "model", settings)
    settings = settings.model_copy(
        update={
            "pose_model": card_path,
            "detector_model": settings.detector_model if args.boxes == "detector" else None,
        }
    )
    try:
        card = ModelCard.load(card_path_for(card_path))
    except ModelCardError as exc:
        raise ValueError(str(exc)) from exc
    card_dataset, card_score_mode = card_evaluation(card)
    dataset = card_dataset if args.dataset == "auto" else args.dataset
    if dataset not in ("coco", "mpii"):
        raise ValueError(f"cannot evaluate {card.name!r} on {dataset!r}: give --dataset coco or mpii")
    out_dir.mkdir(parents=True, exist_ok=True)
    if dataset == "mpii":
        if args.compare_precision:
            raise ValueError("--compare-precision is implemented for COCO keypoint AP only")
        pipeline = PosePipeline.from_settings(settings, batching=False)
        try:
            return _main_mpii(args, pipeline, settings, out_dir)
        finally:
            pipeline.close()
    score_mode = "keypoint" if args.no_rescore else (card_score_mode if args.score_mode == "auto" else args.score_mode)
    return _main_coco(args, settings, out_dir, score_mode)


def _main_mpii(args: argparse.Namespace, pipeline: PosePipeline, settings: Settings, out_dir: Path) -> int:
    if args.boxes != "gt":
        raise ValueError("MPII is evaluated on its annotations' boxes (--boxes gt)")
    if not args.headboxes:
        raise ValueError("--dataset mpii needs --headboxes (mpii_gt_val.mat) for PCKh")
    instances = read_mpii(args.ann, args.headboxes)
    preds = run_pipeline_mpii(
        instances, args.images, pipeline, max_images=args.max_images, progress=not args.no_progress
    )
    stats = score_mpii(preds)
    pose = pipeline.pose
    arch = args.arch or pose.card.name
    columns = zoo_columns(stats)
    table = format_ap_table([{"arch": arch, "input_size": pose.input_size, "stats": columns}], "mpii")
    run_settings = {
        "dataset": "mpii",
        "boxes": "annotations (center, scale)",
        "flip_test": preds.notes["flip_test"],
        "runtime": settings.runtime,
        "precision": settings.precision,
        "providers": pose.runtime.describe().get("active_providers"),
        "images": len({i.file_name for i in preds.instances}),
        "persons": len(preds.instances),
    }
    note = (
        f"\nMPII PCKh (MMPose MpiiPCKAccuracy): Mean = PCKh@0.5, Mean@0.1 = PCKh@0.1; flip test: "
        f"{run_settings['flip_test']}; images: {run_settings['images']}; persons: {run_settings['persons']}.\n"
    )
    records = [
        {"index": i.index, "image": i.file_name, "keypoints": kp.reshape(-1).tolist()}
        for i, kp in zip(preds.instances, preds.keypoints)
    ]
    metrics = {"arch": arch, "input_size": list(pose.input_size), "stats": columns, "pckh": stats}
    written = _write_outputs(
        out_dir, "pckh_table.md", table + note, "results.mpii.json", records, metrics, run_settings
    )
    print("".join(f"{k}: {v:.2f}\n" for k, v in stats.items()), end="")
    print(table + note, end="")
    print(f"written: {', '.join(map(str, written))}")
    return 0


def _write_outputs(
    out_dir: Path, table_file: str, table: str, results_file: str, records: list, metrics: dict, run_settings: dict
) -> list[Path]:
    """The job's files: the table (Markdown), the result records (JSON list) and ``metrics.json`` (the figures and
    the run's settings). Returns their paths."""
    paths = [out_dir / table_file, out_dir / results_file, out_dir / "metrics.json"]
    paths[0].write_text(table)
    write_results_json(records, paths[1])
    paths[2].write_text(json.dumps({**metrics, "settings": run_settings}, indent=2))
    return paths


def _main_coco(args: argparse.Namespace, settings: Settings, out_dir: Path, score_mode: str) -> int:
    from evaluation.metric import load_coco

    coco = load_coco(args.ann, args.coco_backend)
    detections = None
    if args.boxes == "file":
        detections = load_detection_file(args.det_file, set(coco.getImgIds()), args.det_file_score_thr)
    precisions = [settings.precision] + ([args.compare_precision] if args.compare_precision else [])
    runs = evaluate_precisions(
        settings,
        coco,
        args.ann,
        args.images,
        precisions,
        same_boxes=True,
        box_source=args.boxes,
        detections=detections,
        max_images=args.max_images,
        progress=not args.no_progress,
        score_mode=score_mode,
        nms=not args.no_nms,
        nms_thr=args.nms_thr,
        keypoint_score_thr=args.kpt_score_thr,
        backend=args.coco_backend,
        pck_thr=args.pck_thr,
    )
    result, records, preds, described = runs[0].result, runs[0].records, runs[0].predictions, runs[0].describe
    card = described["pose"]["card"]
    input_size = (card["input"]["width"], card["input"]["height"])
    arch = args.arch or card["name"]
    table = format_ap_table([{"arch": arch, "input_size": input_size, "stats": result.stats}])
    run_settings = {
        "dataset": "coco",
        "boxes": args.boxes,
        "det_file": args.det_file,
        "det_file_score_thr": args.det_file_score_thr if args.boxes == "file" else None,
        "detector": str(settings.detector_model) if settings.detector_model else None,
        "det_score_threshold": settings.det_score_threshold if args.boxes == "detector" else None,
        "flip_test": preds.notes["flip_test"],
        "score_mode": score_mode,
        "oks_nms": None if args.no_nms else args.nms_thr,
        "coco_backend": result.backend,
        "runtime": settings.runtime,
        "precision": described["pose"]["precision"],
        "detector_precision": described["detector"]["precision"] if described["detector"] else None,
        "providers": described["pose"]["runtime"].get("active_providers"),
        "images": len(preds.image_ids),
        "persons_in": preds.num_boxes,
        "results_after_nms": result.num_results,
        **{k: v for k, v in preds.notes.items() if k != "flip_test"},
    }
    note = (
        f"\nBoxes: {args.boxes}; flip test: {run_settings['flip_test']}; person score: {score_mode}; "
        f"OKS-NMS: {'off' if args.no_nms else args.nms_thr}; COCOeval: {result.backend}; "
        f"images: {run_settings['images']}; persons: {preds.num_boxes} -> {result.num_results} after NMS.\n"
    )
    gates = compare_precision_runs(coco, runs, args.coco_backend) if len(runs) > 1 else []
    metrics = {
        "arch": arch,
        "input_size": list(input_size),
        "stats": result.stats,
        "per_keypoint": result.per_keypoint,
        "precision_comparison": None
        if len(runs) == 1
        else {r.precision: {**r.result.stats, "AP_delta": r.result.stats["AP"] - result.stats["AP"]} for r in runs},
        "precision_gate": {g.precision: g.to_dict() for g in gates} or None,
    }
    written = _write_outputs(
        out_dir, "ap_table.md", table + note, "results.keypoints.json", records, metrics, run_settings
    )
    written.append(
        plot_per_keypoint(result.per_keypoint, out_dir / "per_keypoint.png", title=f"{arch}: per-keypoint OKS / PCK")
    )
    print(result.summary, end="")
    print(table + note, end="")
    if len(runs) > 1:
        comparison = format_precision_table(runs)
        (out_dir / "precision_table.md").write_text(comparison)
        written.append(out_dir / "precision_table.md")
        print("\nSame images, both models at each precision:\n" + comparison, end="")
        print(
            f"AP({runs[1].precision}) - AP({runs[0].precision}) = {runs[1].result.stats['AP'] - result.stats['AP']:+.4f}"
        )
        print("".join(g.describe() for g in gates), end="")
    print(f"written: {', '.join(map(str, written))}")
    failed = [g.precision for g in gates if not g.passed]
    if failed:
        print(f"pose-eval: {', '.join(failed)} failed the reduced-precision accuracy gate (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
