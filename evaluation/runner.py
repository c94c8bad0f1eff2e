"""The offline evaluation as a library: run the served pipeline over an annotation file and score it.

What ``pose-eval`` (:mod:`evaluation.job`, the command line) and ``pose-export quantize`` (its reduced-precision gate)
run: images are streamed and decoded by ``inference.imageio.decode_image`` (EXIF-aware, RGB) (:func:`iter_images`), boxes
go through ``inference.pipeline.PosePipeline`` (the service's crop, engine and decode; the live detector is
``inference.person_detector.PersonDetector``) (:func:`run_pipeline`, :func:`run_pipeline_mpii`), and the predictions
are scored by :mod:`evaluation.metric` (MMPose ``CocoMetric``: rescoring, OKS-NMS 0.9, COCOeval;
:func:`score_predictions`) or :mod:`evaluation.mpii` (PCKh; :func:`score_mpii`). Runs at several precisions are
:mod:`evaluation.precision_runs`. See :mod:`evaluation.job` for the box sources, data sets and flip test.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evaluation.boxes import DetectionFile, gt_bboxes
from evaluation.metric import (
    DEFAULT_KPT_SCORE_THR,
    DEFAULT_NMS_THR,
    CocoKeypointMetric,
    KeypointEvalResult,
    scale_area,
)
from evaluation.mpii import MpiiInstance, mpii_pckh
from inference.imageio import decode_image
from inference.pipeline import PosePipeline
from inference.pose_estimator import PoseEstimator
from models.card import ModelCard

BOX_SOURCES = ("gt", "file", "detector")


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
        num_bboxes: boxes sent to the pose model.
        box_source: ``gt`` / ``file`` / ``detector``.
        notes: facts for the report (detection-file counts, flip test, providers).
        bboxes: image id -> float32 [N, 4] xyxy original-image pixels, the boxes behind ``per_image`` (same order).
    """

    per_image: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]
    image_ids: list[int]
    num_bboxes: int
    box_source: str
    notes: dict = field(default_factory=dict)
    bboxes: dict[int, np.ndarray] = field(default_factory=dict)

    def as_detections(self) -> DetectionFile:
        """These predictions' boxes and bbox scores as a detection file (``box_source="file"``): another run on
        exactly the same boxes."""
        bboxes = {i: (self.bboxes[i], self.per_image[i][1]) for i in self.per_image}
        return DetectionFile(bboxes, sum(len(b) for b, _ in bboxes.values()), 0, 0)


def _check_box_source(box_source: str, detections: DetectionFile | None, pipeline: PosePipeline) -> None:
    """Raises ValueError: unknown box source, or its input (detection file, detector) is missing."""
    if box_source not in BOX_SOURCES:
        raise ValueError(f"box source {box_source!r} must be one of {list(BOX_SOURCES)}")
    if box_source == "file" and detections is None:
        raise ValueError("box source 'file' needs a detection file (--det-file)")
    if box_source == "detector" and pipeline.detector is None:
        raise ValueError("box source 'detector' needs a detector model (--detector)")


def _known_bboxes(
    coco, image_ids: list[int], box_source: str, detections: DetectionFile | None
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The boxes known before the images are read (``gt``, ``file``): image id -> (xyxy boxes, scores); {} for
    ``detector``."""
    if box_source == "gt":
        return {i: gt_bboxes(coco, i) for i in image_ids}
    if box_source == "file":
        return {i: detections.bboxes[i] for i in image_ids if i in detections.bboxes}
    return {}


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
    _check_box_source(box_source, detections, pipeline)
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_dir}")
    image_ids = list(coco.getImgIds())
    if max_images is not None:
        image_ids = image_ids[: int(max_images)]

    # boxes known up front (gt / file): images without any box are not even decoded
    bboxes = _known_bboxes(coco, image_ids, box_source, detections)
    todo = [i for i in image_ids if box_source == "detector" or len(bboxes.get(i, ((), ()))[1]) > 0]
    items = [(i, coco.imgs[i]["file_name"]) for i in todo]

    per_image: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    image_bboxes: dict[int, np.ndarray] = {}
    num_bboxes = 0
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
                b, bbox_scores = bboxes[image_id]
                out = pipeline.predict(image, b)
            num_bboxes += len(out.bboxes)
            if len(out.bboxes):
                per_image[image_id] = (out.keypoints, np.asarray(bbox_scores, np.float32), scale_area(out.scales))
                image_bboxes[image_id] = np.asarray(out.bboxes, np.float32)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(persons=num_bboxes, refresh=False)
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
    return Predictions(per_image, image_ids, num_bboxes, box_source, notes, image_bboxes)


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
    kpt_score_thr: float = DEFAULT_KPT_SCORE_THR,
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
        kpt_score_thr=kpt_score_thr,
        backend=backend,
    )
    for image_id, (kp, bs, areas) in predictions.per_image.items():
        metric.add(image_id, kp, bs, areas)
    results = metric.coco_results()
    return metric.evaluate(results, pck_thr=pck_thr, image_ids=predictions.image_ids), results


def card_evaluation(card: ModelCard) -> tuple[str, str]:
    """(data set, COCO score mode) of a card: its ``extra.evaluation`` (written by ``pose-export``), else the data set
    of its keypoint schema and ``bbox_keypoint``; a card with neither is evaluated on COCO."""
    ev = card.extra.get("evaluation") or {}
    dataset = ev.get("dataset") or (card.schema.dataset if card.schema is not None else None) or "coco"
    return dataset, ev.get("score_mode") or "bbox_keypoint"
