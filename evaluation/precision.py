"""Reduced precision against fp32 on the same images: the accuracy gate of bf16 and int8 (``models/tolerance.py``).

AP on a small evaluation set is a poor statistic for a gate: COCO's AP thresholds each person's OKS at 0.50, 0.55,
..., 0.95, so a sub-pixel move of one person's keypoints (what another CPU's kernels or a minor OpenCV release does)
can move AP by 0.005 on coco-mini's 68 people, and the sign of such a move is chance. The gate therefore rests on
two *paired*, *continuous* per-person statistics, and reports AP with its sampling uncertainty:

* **keypoint agreement** (the precision-loss signal): for every annotated person, the OKS of the reduced-precision
  pipeline's keypoints against the fp32 pipeline's keypoints for the same person (each run's best match to that
  person, :func:`evaluation.metric.match_persons`), with the person's annotation area and COCO's sigmas over the
  labelled keypoints. Identical outputs give 1; bf16 and a sound int8 body stay close to 1; a quantised decode
  (keypoints moved by whole heatmap cells) falls well below. A person found by one run only counts 0.
* **OKS change against ground truth**: the mean over persons of ``OKS(reduced) - OKS(fp32)``, both against the
  annotation: whether the change in keypoints costs accuracy.
* **AP change** with a bootstrap confidence interval over images (paired: both runs resampled with the same
  images), recomputed from COCOeval's per-image matches as ``COCOeval.accumulate`` does (:func:`resampled_ap`).

Confidence intervals are percentile bootstraps over *images* (``scipy.stats.bootstrap``; people of one image share
a detector run, so images are the independent units). The verdict (:func:`judge`) takes the bounds in
``models/tolerance.py``; see there for what is asserted and the spread measured across CPUs, threads and library
versions.

Torch-free (numpy, scipy, pycocotools / xtcocotools).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from evaluation.metric import annotated_persons, keypoint_similarity, make_cocoeval, match_persons
from models.keypoints import COCO17_SIGMAS
from models.tolerance import (
    REDUCED_PRECISION_AGREEMENT_OKS,
    REDUCED_PRECISION_AP_DROP,
    REDUCED_PRECISION_FOUND_OKS,
    REDUCED_PRECISION_OKS_DROP,
)

#: Bootstrap resamples and confidence level of every interval here.
N_RESAMPLES: int = 2000
CONFIDENCE_LEVEL: float = 0.95


@dataclass(frozen=True)
class ImageEvaluation:
    """COCOeval's per-image keypoint matches for area ``all`` and the largest ``maxDets`` (20), in image order.

    Attributes:
        image_ids: int [I], the evaluated images (``params.imgIds``).
        per_image: for each image, None (no ground truth and no prediction) or (detection scores float [D],
            matched float [T, D] (0 = unmatched), detection ignored bool [T, D], ground-truth ignored bool [G]),
            detections already cut to ``maxDets`` as ``COCOeval.accumulate`` cuts them.
        iou_thrs: float [T], the OKS thresholds (0.50 .. 0.95).
        rec_thrs: float [R], the recall points (101).
    """

    image_ids: np.ndarray
    per_image: list
    iou_thrs: np.ndarray
    rec_thrs: np.ndarray


def evaluate_images(coco_gt, results: list[dict], image_ids: Iterable[int], **cocoeval_kwargs) -> ImageEvaluation:
    """Run ``COCOeval.evaluate`` (keypoints, :func:`evaluation.metric.make_cocoeval`) and keep the per-image matches
    that :func:`resampled_ap` accumulates.

    Args:
        coco_gt: COCO object (:func:`evaluation.metric.load_coco`).
        results: COCO keypoint result records.
        image_ids: the evaluated images.
        **cocoeval_kwargs: ``sigmas``, ``use_area``, ``backend``.

    Raises:
        ValueError: as :func:`evaluation.metric.make_cocoeval`.
    """
    ids = sorted({int(i) for i in image_ids})
    ev, _ = make_cocoeval(coco_gt, results, image_ids=ids, **cocoeval_kwargs)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
    p = ev.params
    max_det = p.maxDets[-1]
    n_img = len(p.imgIds)
    a0 = [tuple(a) for a in p.areaRng].index(tuple(p.areaRng[0]))  # area 'all' (index 0, as COCOeval's summarize)
    per_image = []
    for i in range(n_img):
        e = ev.evalImgs[a0 * n_img + i]  # category 0 (person): evalImgs is [cat][area][image]
        if e is None:
            per_image.append(None)
            continue
        per_image.append(
            (
                np.asarray(e["dtScores"][:max_det], dtype=np.float64),
                np.asarray(e["dtMatches"][:, :max_det], dtype=np.float64),
                np.asarray(e["dtIgnore"][:, :max_det], dtype=bool),
                np.asarray(e["gtIgnore"], dtype=bool),
            )
        )
    return ImageEvaluation(np.asarray(p.imgIds), per_image, np.asarray(p.iouThrs), np.asarray(p.recThrs))


def resampled_ap(evaluation: ImageEvaluation, sample: np.ndarray | None = None) -> float:
    """COCO keypoint AP (area all, 20 detections) of a multiset of the evaluated images.

    Follows ``COCOeval.accumulate`` (pycocotools ``cocoeval.py``): detections of the sampled images concatenated in
    sample order, sorted by score (mergesort, descending), cumulative true / false positives per OKS threshold,
    precision made monotone, read at the 101 recall points (0 past the last recall reached); AP is the mean over
    thresholds and recall points. With ``sample = arange(I)`` it equals ``COCOeval.stats[0]`` (tested); a repeated
    image counts its people and detections again (bootstrap).

    Args:
        evaluation: from :func:`evaluate_images`.
        sample: int [n] indices into ``evaluation.image_ids`` (all images once when None).

    Returns:
        AP in [0, 1], or -1.0 when the sample has no ground-truth person (COCOeval's convention).
    """
    idx = np.arange(len(evaluation.per_image)) if sample is None else np.asarray(sample, dtype=np.int64)
    parts = [evaluation.per_image[i] for i in idx if evaluation.per_image[i] is not None]
    if not parts:
        return -1.0
    gt_ignore = np.concatenate([p[3] for p in parts])
    npig = int(np.count_nonzero(~gt_ignore))
    if npig == 0:
        return -1.0
    scores = np.concatenate([p[0] for p in parts])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([p[1] for p in parts], axis=1)[:, order] != 0
    ignored = np.concatenate([p[2] for p in parts], axis=1)[:, order]
    tp = np.cumsum(matched & ~ignored, axis=1, dtype=np.float64)
    fp = np.cumsum(~matched & ~ignored, axis=1, dtype=np.float64)
    n_thr, n_det = tp.shape
    q = np.zeros((n_thr, len(evaluation.rec_thrs)))
    if n_det:
        recall = tp / npig
        precision = tp / (fp + tp + np.spacing(1))
        precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
        for t in range(n_thr):
            at = np.searchsorted(recall[t], evaluation.rec_thrs, side="left")
            ok = at < n_det
            q[t, ok] = precision[t, at[ok]]
    return float(q.mean())


def _bootstrap_ci(n_images: int, statistic, seed: int, n_resamples: int, confidence_level: float) -> np.ndarray:
    """Percentile bootstrap intervals over images of a vector statistic of image indices: float [S, 2] (low, high)."""
    from scipy.stats import bootstrap

    res = bootstrap(
        (np.arange(n_images),),
        lambda idx: np.asarray(statistic(idx), dtype=np.float64),
        vectorized=False,
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return np.stack([np.atleast_1d(res.confidence_interval.low), np.atleast_1d(res.confidence_interval.high)], axis=1)


def same_bbox_agreement(
    coco_gt,
    reference: dict[int, np.ndarray],
    same_bboxes: dict[int, np.ndarray],
    image_ids: Iterable[int],
    sigmas: np.ndarray | None = None,
    found_oks: float = REDUCED_PRECISION_FOUND_OKS,
) -> tuple[np.ndarray, np.ndarray]:
    """The pose model's precision loss on identical crops: for every annotated person the reference run found (its
    best-matching prediction has OKS >= ``found_oks`` against the annotation), the OKS of the reduced-precision
    keypoints of *the same box* against the reference keypoints (annotation area, COCO sigmas, labelled keypoints).

    Args:
        coco_gt: COCO object of the annotations.
        reference: image id -> float [N, K, 3] reference keypoints (x, y, score; original-image pixels), one row per
            box, before rescoring and NMS (``evaluation.runner.Predictions.per_image``).
        same_bboxes: image id -> float [N, K, 3], the reduced-precision pose model on the same N boxes, same order.
        image_ids: the images compared.
        sigmas: float [K] (default COCO-17).
        found_oks: the OKS at which the reference counts as having found a person (COCO's loosest threshold, 0.5).

    Returns:
        (agreement float64 [P'], image id int64 [P']) for the P' found persons.

    Raises:
        ValueError: the two runs disagree on an image's box count.
    """
    sig = COCO17_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    agree, images = [], []
    for ann, g, vis in annotated_persons(coco_gt, len(sig), image_ids):
        ref = reference.get(ann["image_id"])
        if ref is None or len(ref) == 0:
            continue
        red = same_bboxes.get(ann["image_id"])
        if red is None or len(red) != len(ref):
            raise ValueError(f"image {ann['image_id']}: the same-box run has other boxes than the reference")
        oks = keypoint_similarity(ref, g, ann["area"], sig)[:, vis].mean(axis=1)
        best = int(np.argmax(oks))
        if oks[best] < found_oks:
            continue
        agree.append(keypoint_similarity(red[best], ref[best], ann["area"], sig)[vis].mean())
        images.append(ann["image_id"])
    return np.asarray(agree, dtype=np.float64), np.asarray(images, dtype=np.int64)


@dataclass
class PrecisionComparison:
    """A reduced-precision run against the reference (fp32) run on the same images (:func:`compare_runs`).

    Attributes:
        precision, reference: the two precisions (``bf16`` / ``int8``; ``fp32``).
        images, persons: images evaluated; annotated persons (non-crowd, labelled keypoints).
        found_persons: persons the reference run found (best-match OKS >= ``REDUCED_PRECISION_FOUND_OKS``), over
            which ``agreement_oks`` is taken; None without a same-box run.
        agreement_oks: mean keypoint agreement of the pose model on identical crops (:func:`same_bbox_agreement`);
            ``agreement_oks_ci`` its interval; None without a same-box run.
        oks_reference, oks: mean best-match OKS against ground truth of each whole-pipeline run (0 for a person
            without prediction).
        oks_delta: ``oks - oks_reference`` (paired per person); ``oks_delta_ci`` its interval.
        ap_reference, ap, ap_delta: COCO keypoint AP of each run and the change; ``ap_delta_ci`` its paired interval.
        confidence_level, n_resamples: of the intervals (percentile bootstrap over images).
        passed: the verdict of :func:`judge`; ``reasons``: one line per failed check (empty when passed).
        bounds: the bounds judged against (``models/tolerance.py``).
    """

    precision: str
    reference: str
    images: int
    persons: int
    found_persons: int | None
    agreement_oks: float | None
    agreement_oks_ci: tuple[float, float] | None
    oks_reference: float
    oks: float
    oks_delta: float
    oks_delta_ci: tuple[float, float]
    ap_reference: float
    ap: float
    ap_delta: float
    ap_delta_ci: tuple[float, float]
    confidence_level: float = CONFIDENCE_LEVEL
    n_resamples: int = N_RESAMPLES
    passed: bool = True
    reasons: list[str] = field(default_factory=list)
    bounds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able (recorded in the int8 card and ``metrics.json``), figures rounded to 1e-4."""
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, float):
                out[k] = round(v, 4)
            elif isinstance(v, tuple):
                out[k] = [round(float(x), 4) for x in v]
        return out

    def describe(self) -> str:
        """The verdict and every figure, one line each (printed by ``pose-eval`` and ``pose-export quantize``)."""

        def ci(lo_hi, sign="+"):
            return f"[{lo_hi[0]:{sign}.4f}, {lo_hi[1]:{sign}.4f}]"

        head = f"{self.precision} vs {self.reference}: {'PASSED' if self.passed else 'FAILED'} the accuracy gate"
        lines = [head + f" ({self.persons} persons, {self.images} images; {self.confidence_level:.0%} bootstrap "
                 "intervals over images)"]  # fmt: skip
        if self.agreement_oks is not None:
            lines.append(
                f"  pose model on identical crops: keypoint agreement OKS({self.precision}, {self.reference}) = "
                f"{self.agreement_oks:.4f} {ci(self.agreement_oks_ci, '')} over the {self.found_persons} persons "
                f"{self.reference} found"
            )
        lines += [
            f"  whole pipeline, OKS vs ground truth: {self.oks_reference:.4f} -> {self.oks:.4f}, change "
            f"{self.oks_delta:+.4f} {ci(self.oks_delta_ci)}",
            f"  whole pipeline, AP: {self.ap_reference:.4f} -> {self.ap:.4f}, change {self.ap_delta:+.4f} "
            f"{ci(self.ap_delta_ci)}",
        ]
        return "\n".join(lines + [f"  failed: {r}" for r in self.reasons]) + "\n"


def judge(c: PrecisionComparison) -> PrecisionComparison:
    """Apply the reduced-precision gate of ``models/tolerance.py`` to a comparison (sets ``passed``, ``reasons``,
    ``bounds``; returns it).

    Fails when any of:

    * the pose model's mean keypoint agreement on identical crops is below
      :data:`~models.tolerance.REDUCED_PRECISION_AGREEMENT_OKS` (when a same-box run was made);
    * the whole pipeline's mean OKS change against ground truth is below ``-``
      :data:`~models.tolerance.REDUCED_PRECISION_OKS_DROP`;
    * the AP change is significantly below ``-`` :data:`~models.tolerance.REDUCED_PRECISION_AP_DROP`: the upper end
      of its confidence interval lies under it (a loss that large is established, not sampling noise).
    """
    reasons = []
    if c.agreement_oks is not None and c.agreement_oks < REDUCED_PRECISION_AGREEMENT_OKS:
        reasons.append(
            f"pose keypoint agreement OKS {c.agreement_oks:.4f} < {REDUCED_PRECISION_AGREEMENT_OKS}: {c.precision} "
            f"moves the keypoints of the same crops away from {c.reference}"
        )
    if c.oks_delta < -REDUCED_PRECISION_OKS_DROP:
        reasons.append(f"mean OKS change vs ground truth {c.oks_delta:+.4f} < -{REDUCED_PRECISION_OKS_DROP}")
    if c.ap_delta_ci[1] < -REDUCED_PRECISION_AP_DROP:
        reasons.append(
            f"AP change {c.ap_delta:+.4f}: its whole {c.confidence_level:.0%} interval lies below "
            f"-{REDUCED_PRECISION_AP_DROP} (upper end {c.ap_delta_ci[1]:+.4f})"
        )
    c.passed, c.reasons = not reasons, reasons
    c.bounds = {
        "agreement_oks_min": REDUCED_PRECISION_AGREEMENT_OKS,
        "found_oks": REDUCED_PRECISION_FOUND_OKS,
        "oks_delta_min": -REDUCED_PRECISION_OKS_DROP,
        "ap_delta_ci_high_min": -REDUCED_PRECISION_AP_DROP,
    }
    return c


def _comparison_ci(
    ids: list[int],
    person_image_ids: np.ndarray,
    agree: np.ndarray | None,
    agree_image: np.ndarray | None,
    delta: np.ndarray,
    ev_ref,
    ev_red,
    seed: int,
    n_resamples: int,
    confidence_level: float,
) -> np.ndarray:
    """Bootstrap intervals over images of :func:`compare_runs`' three figures: same-box agreement OKS, per-person OKS
    change, AP change (rows 0, 1, 2; columns low, high)."""
    persons_of = [np.flatnonzero(person_image_ids == i) for i in ids]
    found_of = [np.flatnonzero(agree_image == i) for i in ids] if agree is not None else None

    def statistic(sample: np.ndarray) -> list[float]:
        people = np.concatenate([persons_of[i] for i in sample])
        found = np.concatenate([found_of[i] for i in sample]) if found_of is not None else np.zeros(0, np.int64)
        return [
            agree[found].mean() if len(found) else 1.0,
            delta[people].mean() if len(people) else 0.0,
            resampled_ap(ev_red, sample) - resampled_ap(ev_ref, sample),
        ]

    return _bootstrap_ci(len(ids), statistic, seed, n_resamples, confidence_level)


def compare_runs(
    coco_gt,
    reference_results: list[dict],
    results: list[dict],
    image_ids: Iterable[int],
    *,
    precision: str,
    reference: str = "fp32",
    same_bboxes: tuple[dict, dict] | None = None,
    sigmas: np.ndarray | None = None,
    use_area: bool = True,
    backend: str = "auto",
    n_resamples: int = N_RESAMPLES,
    confidence_level: float = CONFIDENCE_LEVEL,
    seed: int = 0,
) -> PrecisionComparison:
    """Compare a reduced-precision run with the reference run of the same pipeline on the same images, and judge it.

    Args:
        coco_gt: COCO object of the annotations (:func:`evaluation.metric.load_coco`).
        reference_results, results: COCO keypoint result records of the two whole-pipeline runs (after rescoring and
            OKS-NMS, as ``evaluation.metric.CocoKeypointMetric.coco_results`` gives them), original-image pixels.
        image_ids: the images both runs evaluated.
        precision, reference: names for the report.
        same_bboxes: (reference keypoints, reduced-precision keypoints on the reference's boxes), each image id ->
            float [N, K, 3] (:func:`same_bbox_agreement`); None: no pose-model agreement figure or check.
        sigmas: float [K] OKS sigmas (default COCO-17).
        use_area, backend: as :func:`evaluation.metric.run_cocoeval`.
        n_resamples, confidence_level, seed: of the bootstrap (fixed seed: the same inputs give the same intervals).

    Returns:
        :class:`PrecisionComparison`, judged by :func:`judge`.

    Raises:
        ValueError: no annotated person in the images, a run without any result, or same-box runs that disagree
            on the boxes.
    """
    sig = COCO17_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    ids = sorted({int(i) for i in image_ids})
    ref = match_persons(coco_gt, reference_results, sigmas=sig, image_ids=ids)
    red = match_persons(coco_gt, results, sigmas=sig, image_ids=ids)
    if len(ref.ann_ids) == 0:
        raise ValueError("no annotated person in the evaluated images: nothing to compare")
    delta = red.oks - ref.oks
    agree = agree_image = None
    if same_bboxes is not None:
        agree, agree_image = same_bbox_agreement(coco_gt, *same_bboxes, ids, sig)

    cocoeval_kwargs = {"sigmas": sig, "use_area": use_area, "backend": backend}
    ev_ref = evaluate_images(coco_gt, reference_results, ids, **cocoeval_kwargs)
    ev_red = evaluate_images(coco_gt, results, ids, **cocoeval_kwargs)
    ci = _comparison_ci(
        ids, ref.image_ids, agree, agree_image, delta, ev_ref, ev_red, seed, n_resamples, confidence_level
    )
    ap_ref, ap = resampled_ap(ev_ref), resampled_ap(ev_red)
    has_agree = agree is not None and len(agree) > 0
    comparison = PrecisionComparison(
        precision=precision,
        reference=reference,
        images=len(ids),
        persons=len(ref.ann_ids),
        found_persons=None if agree is None else len(agree),
        agreement_oks=float(agree.mean()) if has_agree else None,
        agreement_oks_ci=(float(ci[0, 0]), float(ci[0, 1])) if has_agree else None,
        oks_reference=float(ref.oks.mean()),
        oks=float(red.oks.mean()),
        oks_delta=float(delta.mean()),
        oks_delta_ci=(float(ci[1, 0]), float(ci[1, 1])),
        ap_reference=ap_ref,
        ap=ap,
        ap_delta=ap - ap_ref,
        ap_delta_ci=(float(ci[2, 0]), float(ci[2, 1])),
        confidence_level=confidence_level,
        n_resamples=n_resamples,
    )
    return judge(comparison)
