"""The same images through the served pipeline at several precisions, judged by the reduced-precision gate
(:mod:`evaluation.precision`): what ``pose-eval --compare-precision`` and ``pose-export quantize`` run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings
from evaluation.boxes import DetectionFile
from evaluation.metric import KeypointEvalResult
from evaluation.precision import PrecisionComparison, compare_runs
from evaluation.runner import Predictions, run_pipeline, score_predictions
from inference.pipeline import PosePipeline


@dataclass
class PrecisionRun:
    """One evaluation of the pipeline at one precision (:func:`evaluate_precisions`).

    Attributes:
        precision: ``fp32`` / ``bf16`` / ``int8`` (``Settings.precision``).
        result: the COCO keypoint figures (``result.stats["AP"]``, ...).
        records: the COCO result records.
        predictions: the raw pipeline outputs.
        describe: ``PosePipeline.describe()`` of the pipeline that ran (runtimes, precisions, devices).
        same_bboxes: the pose model alone at this precision on the reference run's boxes (identical crops), or None
            (the reference run itself, or ``same_bboxes=False``).
    """

    precision: str
    result: KeypointEvalResult
    records: list[dict]
    predictions: Predictions
    describe: dict
    same_bboxes: Predictions | None = None


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
    same_bboxes: bool = False,
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
        same_bboxes: also run the pose model alone at each later precision on the first run's boxes
            (:attr:`PrecisionRun.same_bboxes`: the pose model's own precision loss, on identical crops).
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
            run = PrecisionRun(precision, result, records, preds, pipeline.describe())
            if same_bboxes and runs:
                run.same_bboxes = _on_reference_bboxes(runs[0], preds, pipeline, coco, image_dir, max_images, progress)
            runs.append(run)
        finally:
            pipeline.close()
    return runs


def _on_reference_bboxes(
    reference: PrecisionRun,
    preds: Predictions,
    pipeline: PosePipeline,
    coco,
    image_dir: str | Path,
    max_images: int | None,
    progress: bool,
) -> Predictions:
    """The pose model of ``pipeline`` on the reference run's boxes. Ground-truth or detection-file boxes are the same
    for every run, so ``preds`` already is that run; detector boxes are fed to the same pipeline as caller boxes
    (the detector is skipped)."""
    if reference.predictions.box_source != "detector":
        return preds
    return run_pipeline(
        coco,
        image_dir,
        pipeline,
        box_source="file",
        detections=reference.predictions.as_detections(),
        max_images=max_images,
        progress=progress,
    )


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
            same_bboxes=None
            if r.same_bboxes is None
            else (
                {i: v[0] for i, v in ref.predictions.per_image.items()},
                {i: v[0] for i, v in r.same_bboxes.per_image.items()},
            ),
        )
        for r in runs[1:]
    ]
