"""The COCO keypoint metric, computed the way MMPose's ``CocoMetric`` computes it for top-down models.

This is the one module holding the metric (torch-free: numpy + pycocotools / xtcocotools).

Steps, in MMPose's order (``mmpose/evaluation/metrics/coco_metric.py``, ``CocoMetric.compute_metrics``):

1. person score (``score_mode``, :func:`models.scoring.person_scores`): ``bbox_keypoint`` (the default)
   ``bbox_score * mean(keypoint scores > 0.2)``, 0 when no keypoint score is above the threshold; ``bbox_rle`` (RLE's
   configs) ``bbox_score + mean + max`` of the keypoint scores; ``keypoint`` the mean of all K keypoint scores (what a
   minimal pipeline without a detector score does); ``bbox`` the bbox score.
2. OKS-NMS per image at OKS 0.9 (``mmpose/evaluation/functional/nms.py``, ``oks_nms`` / ``oks_iou``):
   greedy, highest score first; a prediction is dropped when its OKS with a kept one is > 0.9.
   The OKS area of a prediction is MMPose's ``np.prod(bbox_scales)``: the product of the padded
   (x1.25), aspect-fixed (square for a 256x256 input) box scale, in original-image pixels squared
   (:func:`scale_area`).
3. COCO results JSON (``results2json``): one record per person, ``keypoints`` = flattened [K, 3]
   (x, y in original-image pixels, keypoint score), ``category_id`` 1, ``score`` from step 1.
4. ``COCOeval(..., 'keypoints')`` with the OKS sigmas of :mod:`models.keypoints`; xtcocotools (what
   MMPose uses) when it is installed, else pycocotools (same keypoint numerics for COCO with areas);
   :attr:`KeypointEvalResult.backend` says which one ran.

Everything is in original-image pixels; keypoints are [K, 3] = x, y, score (MMPose convention:
a pixel's index is its coordinate).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.keypoints import COCO17_NAMES, COCO17_SIGMAS
from models.scoring import RESCORE_KEYPOINT_THRESHOLD, SCORE_MODES, person_scores

#: MMPose CocoMetric defaults.
DEFAULT_KEYPOINT_SCORE_THR: float = RESCORE_KEYPOINT_THRESHOLD
DEFAULT_NMS_THR: float = 0.9

#: Names of COCOeval's ten keypoint stats, in ``COCOeval.stats`` order.
STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")

_BACKENDS = ("auto", "xtcocotools", "pycocotools")


# --------------------------------------------------------------------------------------------------
# Scoring, area, OKS and OKS-NMS (pure numpy)
# --------------------------------------------------------------------------------------------------


def _as_keypoints(keypoints: np.ndarray, name: str = "keypoints") -> np.ndarray:
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[2] != 3:
        raise ValueError(f"{name} must have shape [N, K, 3] (x, y, score), got {list(kp.shape)}")
    if not np.isfinite(kp).all():
        raise ValueError(f"{name} contain a non-finite value")
    return kp


def scale_area(scales: np.ndarray) -> np.ndarray:
    """MMPose's OKS area of top-down predictions: ``prod(bbox_scale)`` per instance.

    Follows ``CocoMetric.process`` (``np.prod(gt_instances.bbox_scales, axis=1)``), where ``bbox_scale``
    is the box (w, h) after padding (x1.25) and the aspect fix of ``TopdownAffine``, i.e. the ``scale``
    returned by :func:`models.geometry.box_to_center_scale`.

    Args:
        scales: float [N, 2], (w, h) in original-image pixels.

    Returns:
        float64 [N], pixels squared.
    """
    s = np.asarray(scales, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 2:
        raise ValueError(f"scales must have shape [N, 2] (w, h), got {list(s.shape)}")
    return s[:, 0] * s[:, 1]


def oks_iou(
    keypoints: np.ndarray,
    others: np.ndarray,
    area: float,
    other_areas: np.ndarray,
    sigmas: np.ndarray | None = None,
) -> np.ndarray:
    """OKS between one prediction and M others (both predictions; used by OKS-NMS).

    Follows ``oks_iou`` of ``mmpose/evaluation/functional/nms.py`` (no visibility threshold):
    ``mean_k exp(-d_k^2 / (2 * (2 sigma_k)^2 * ((a + a_m) / 2 + eps)))`` over all K keypoints.

    Args:
        keypoints: float [K, 3] (x, y, score), original-image pixels.
        others: float [M, K, 3].
        area: OKS area of ``keypoints`` (pixels squared, see :func:`scale_area`).
        other_areas: float [M].
        sigmas: float [K] OKS sigmas; default :data:`models.keypoints.COCO17_SIGMAS`.

    Returns:
        float32 [M] OKS values in [0, 1] (float32 as MMPose, so threshold ties resolve the same way).
    """
    sig = COCO17_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    g = np.asarray(keypoints, dtype=np.float64)
    d = np.asarray(others, dtype=np.float64).reshape(-1, g.shape[0], g.shape[1])
    if len(d) == 0:
        return np.zeros(0, dtype=np.float32)
    variances = (sig * 2) ** 2
    a_d = np.asarray(other_areas, dtype=np.float64).reshape(-1)
    sq_dist = (d[:, :, 0] - g[None, :, 0]) ** 2 + (d[:, :, 1] - g[None, :, 1]) ** 2
    e = sq_dist / variances[None] / ((area + a_d)[:, None] / 2 + np.spacing(1)) / 2
    return np.exp(-e).mean(axis=1).astype(np.float32)


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float = DEFAULT_NMS_THR,
    sigmas: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy OKS non-maximum suppression of the predictions of one image.

    Follows ``oks_nms`` of ``mmpose/evaluation/functional/nms.py``: visit predictions by descending
    score (``argsort()[::-1]``, the same tie order as MMPose), keep the best, drop every remaining one
    whose OKS with it is > ``thr``.

    Args:
        keypoints: float [N, K, 3] (x, y, score) in original-image pixels.
        scores: float [N] person scores (:func:`models.scoring.person_scores`).
        areas: float [N] OKS areas (:func:`scale_area`).
        thr: OKS above which a lower-scored prediction is suppressed (MMPose: 0.9).
        sigmas: float [K]; default COCO-17 sigmas.

    Returns:
        int64 [n_keep] indices into the inputs, in the order they were kept (highest score first).

    Raises:
        ValueError: shapes do not match.
    """
    kp = _as_keypoints(keypoints)
    sc = np.asarray(scores, dtype=np.float64).reshape(-1)
    ar = np.asarray(areas, dtype=np.float64).reshape(-1)
    if not (len(kp) == len(sc) == len(ar)):
        raise ValueError(f"oks_nms: {len(kp)} keypoint sets, {len(sc)} scores, {len(ar)} areas")
    order = sc.argsort()[::-1]
    keep: list[int] = []
    while len(order) > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ovr = oks_iou(kp[i], kp[rest], ar[i], ar[rest], sigmas)
        order = rest[ovr <= thr]
    return np.asarray(keep, dtype=np.int64)


# --------------------------------------------------------------------------------------------------
# COCOeval backends
# --------------------------------------------------------------------------------------------------


def coco_backend(name: str = "auto") -> tuple[str, type, type]:
    """Pick the COCO API: ``(backend name, COCO class, COCOeval class)``.

    ``auto`` takes xtcocotools (what MMPose's CocoMetric imports) when it is importable, else pycocotools.

    Raises:
        ValueError: unknown name.
        ImportError: the requested package (or, for ``auto``, both) is not installed.
    """
    if name not in _BACKENDS:
        raise ValueError(f"COCO backend {name!r} must be one of {list(_BACKENDS)}")
    candidates = ["xtcocotools", "pycocotools"] if name == "auto" else [name]
    errors = []
    for pkg in candidates:
        try:
            coco_mod = importlib.import_module(f"{pkg}.coco")
            eval_mod = importlib.import_module(f"{pkg}.cocoeval")
        except ImportError as exc:
            errors.append(f"{pkg}: {exc}")
            continue
        return pkg, coco_mod.COCO, eval_mod.COCOeval
    raise ImportError("no COCO API available (pip install pycocotools or xtcocotools): " + "; ".join(errors))


def load_coco(ann_file: str | Path, backend: str = "auto"):
    """Load a COCO annotation file quietly with the chosen backend (see :func:`coco_backend`).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a COCO annotation file with ``images`` and ``annotations``.
    """
    path = Path(ann_file)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    _, coco_cls, _ = coco_backend(backend)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = coco_cls(str(path))
    if "images" not in coco.dataset or "annotations" not in coco.dataset:
        raise ValueError(f"{path} is not a COCO annotation file (needs 'images' and 'annotations')")
    return coco


@dataclass
class KeypointEvalResult:
    """What :meth:`CocoKeypointMetric.evaluate` returns.

    Attributes:
        stats: COCOeval's ten keypoint stats by :data:`STAT_NAMES` (AP, AP50, AP75, AP_M, AP_L, AR, ...).
        backend: ``xtcocotools`` or ``pycocotools``, the package whose COCOeval ran.
        summary: COCOeval's printed summary table.
        num_results: COCO result records evaluated (after NMS).
        per_keypoint: :func:`per_keypoint_breakdown` output.
    """

    stats: dict[str, float]
    backend: str
    summary: str
    num_results: int
    per_keypoint: dict = field(default_factory=dict)


def make_cocoeval(
    coco_gt,
    results: list[dict],
    *,
    sigmas: np.ndarray | None = None,
    use_area: bool = True,
    backend: str = "auto",
    image_ids: Iterable[int] | None = None,
):
    """A keypoint ``COCOeval`` on COCO result records, set up as MMPose's ``CocoMetric._do_python_keypoint_eval`` sets
    it up (not yet evaluated): ``loadRes`` then ``COCOeval(gt, dt, 'keypoints', sigmas, use_area)`` (xtcocotools) or
    ``COCOeval(gt, dt, 'keypoints')`` with ``params.kpt_oks_sigmas = sigmas`` (pycocotools, which always uses the
    annotation area).

    Args: as :func:`run_cocoeval`.

    Returns:
        (the ``COCOeval`` object, the backend's name).

    Raises:
        ValueError: ``results`` is empty, or refers to an image id missing from the annotations.
    """
    name, _, eval_cls = coco_backend(backend)
    if not results:
        raise ValueError("no keypoint results to evaluate (the model produced no person)")
    gt_ids = set(coco_gt.getImgIds())
    missing = {r["image_id"] for r in results} - gt_ids
    if missing:
        raise ValueError(f"results refer to image ids not in the annotation file: {sorted(missing)[:5]}")
    sig = COCO17_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)
        if name == "xtcocotools":
            ev = eval_cls(coco_gt, coco_dt, "keypoints", np.array(sig), use_area)
        else:
            if not use_area:
                raise ValueError("use_area=False needs xtcocotools")
            ev = eval_cls(coco_gt, coco_dt, "keypoints")
            ev.params.kpt_oks_sigmas = np.array(sig)
    ev.params.useSegm = None
    if image_ids is not None:
        ev.params.imgIds = sorted({int(i) for i in image_ids})
    return ev, name


def run_cocoeval(
    coco_gt,
    results: list[dict],
    *,
    sigmas: np.ndarray | None = None,
    use_area: bool = True,
    backend: str = "auto",
    image_ids: Iterable[int] | None = None,
) -> tuple[dict[str, float], str, str]:
    """COCOeval for keypoints on COCO result records (:func:`make_cocoeval`, then ``evaluate``, ``accumulate``,
    ``summarize``).

    Args:
        coco_gt: a COCO object from :func:`load_coco` (same backend).
        results: COCO keypoint result records (``image_id``, ``category_id``, ``keypoints``, ``score``).
        sigmas: float [K]; default COCO-17 sigmas.
        use_area: xtcocotools only; False is not supported by pycocotools.
        backend: see :func:`coco_backend`.
        image_ids: evaluate only these images (``params.imgIds``; all annotated images when None).

    Returns:
        (stats by :data:`STAT_NAMES`, backend name, COCOeval's summary text).

    Raises:
        ValueError: ``results`` is empty, or refers to an image id missing from the annotations.
    """
    ev, name = make_cocoeval(coco_gt, results, sigmas=sigmas, use_area=use_area, backend=backend, image_ids=image_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
    summary_buf = io.StringIO()
    with contextlib.redirect_stdout(summary_buf):
        ev.summarize()
    stats = {k: float(v) for k, v in zip(STAT_NAMES, ev.stats)}
    return stats, name, summary_buf.getvalue()


@dataclass(frozen=True)
class PersonMatches:
    """The best-matching prediction of every annotated person (:func:`match_persons`).

    Attributes:
        ann_ids: int64 [P], annotation ids, in annotation-file order.
        image_ids: int64 [P], each person's image id.
        areas: float64 [P], annotation areas (COCO's OKS scale), original-image pixels squared.
        gt: float64 [P, K, 3], ground-truth keypoints (x, y, visibility), original-image pixels.
        visible: bool [P, K], labelled keypoints (visibility > 0).
        keypoints: float64 [P, K, 3], the best-matching prediction (x, y, score); NaN where the image has none.
        keypoint_oks: float64 [P, K], COCO's per-keypoint similarity of that prediction (0 where none).
        oks: float64 [P], OKS of that prediction: mean keypoint similarity over the labelled keypoints (0 where none).
    """

    ann_ids: np.ndarray
    image_ids: np.ndarray
    areas: np.ndarray
    gt: np.ndarray
    visible: np.ndarray
    keypoints: np.ndarray
    keypoint_oks: np.ndarray
    oks: np.ndarray

    @property
    def matched(self) -> np.ndarray:
        """bool [P]: the person's image has a prediction."""
        return ~np.isnan(self.keypoints[:, 0, 0])


def keypoint_similarity(pred: np.ndarray, gt: np.ndarray, area: float, sigmas: np.ndarray) -> np.ndarray:
    """COCO's per-keypoint similarity ``exp(-d^2 / (2 * area * (2 sigma)^2))`` (pycocotools ``computeOks``).

    Args:
        pred: float [..., K, >=2], x, y in original-image pixels.
        gt: float [K, >=2], same pixels.
        area: the object scale (annotation area), pixels squared.
        sigmas: float [K].

    Returns:
        float64 [..., K] in [0, 1].
    """
    p, g = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    sq = (p[..., 0] - g[:, 0]) ** 2 + (p[..., 1] - g[:, 1]) ** 2
    return np.exp(-sq / ((np.asarray(sigmas, dtype=np.float64) * 2) ** 2) / (area + np.spacing(1)) / 2)


def annotated_persons(coco_gt, num_keypoints: int, image_ids: Iterable[int] | None = None):
    """The persons every per-person figure is taken over: non-crowd annotations with at least one labelled keypoint,
    in annotation-file order.

    Yields:
        (annotation dict, ground truth float64 [K, 3] x, y, visibility, labelled bool [K]).
    """
    wanted = None if image_ids is None else {int(i) for i in image_ids}
    for ann in coco_gt.dataset["annotations"]:
        if wanted is not None and ann["image_id"] not in wanted:
            continue
        if ann.get("iscrowd", 0) or ann.get("num_keypoints", 0) == 0:
            continue
        g = np.asarray(ann["keypoints"], dtype=np.float64).reshape(num_keypoints, 3)
        vis = g[:, 2] > 0
        if vis.any():
            yield ann, g, vis


def match_persons(
    coco_gt, results: list[dict], *, sigmas: np.ndarray | None = None, image_ids: Iterable[int] | None = None
) -> PersonMatches:
    """For each non-crowd ground-truth person with at least one labelled keypoint, the prediction of the same image
    with the highest OKS (COCO's ``computeOks`` formula, area = annotation area, mean over the labelled keypoints).

    Args:
        coco_gt: COCO object (:func:`load_coco`).
        results: COCO keypoint result records (original-image pixels).
        sigmas: float [K]; default COCO-17 sigmas.
        image_ids: only people of these images (all when None).

    Returns:
        :class:`PersonMatches` (P = 0 when no person qualifies).
    """
    sig = COCO17_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    k = len(sig)
    by_image: dict[int, list[np.ndarray]] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(np.asarray(r["keypoints"], dtype=np.float64).reshape(k, 3))
    rows: list[tuple] = []
    for ann, g, vis in annotated_persons(coco_gt, k, image_ids):
        preds = by_image.get(ann["image_id"])
        kp, ks, oks = np.full((k, 3), np.nan), np.zeros(k), 0.0
        if preds:
            d = np.stack(preds)
            sim = keypoint_similarity(d, g, ann["area"], sig)
            best = int(np.argmax(sim[:, vis].mean(axis=1)))
            kp, ks, oks = d[best], sim[best], float(sim[best, vis].mean())
        rows.append((ann["id"], ann["image_id"], float(ann["area"]), g, vis, kp, ks, oks))
    if not rows:
        z = np.zeros((0, k, 3))
        return PersonMatches(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0),
            z,
            np.zeros((0, k), bool),
            z,
            np.zeros((0, k)),
            np.zeros(0),
        )
    cols = list(zip(*rows))
    return PersonMatches(
        np.asarray(cols[0], np.int64),
        np.asarray(cols[1], np.int64),
        np.asarray(cols[2], np.float64),
        np.stack(cols[3]),
        np.stack(cols[4]),
        np.stack(cols[5]),
        np.stack(cols[6]),
        np.asarray(cols[7], np.float64),
    )


def per_keypoint_breakdown(
    coco_gt,
    results: list[dict],
    *,
    sigmas: np.ndarray | None = None,
    pck_thr: float = 0.05,
    image_ids: Iterable[int] | None = None,
) -> dict:
    """Per-keypoint OKS and PCK of the best-matching prediction of every annotated person (:func:`match_persons`).

    For each labelled keypoint k (visibility > 0) of each person:

    * keypoint OKS ``exp(-d_k^2 / (2 * area * (2 sigma_k)^2))`` (COCO ``cocoeval.py``), and
    * PCK: ``1`` when both ``|dx|`` and ``|dy|`` are below ``pck_thr * max(bbox w, h)`` (MMPose
      ``PCKAccuracy`` with ``norm_item='bbox'``, ``mmpose/evaluation/functional/keypoint_eval.py``).

    People without any prediction count as OKS 0 / PCK 0 for every labelled keypoint.

    Args:
        coco_gt: COCO object (:func:`load_coco`).
        results: COCO keypoint result records (original-image pixels).
        sigmas: float [K]; default COCO-17 sigmas.
        pck_thr: PCK threshold as a fraction of the box's longer side.
        image_ids: only people of these images (all when None).

    Returns:
        dict with ``names`` (K str), ``oks`` (K float, mean keypoint OKS), ``pck`` (K float), ``count`` (K int,
        labelled keypoints), ``pck_thr``; means are NaN for a keypoint never labelled.
    """
    sig = COCO17_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    k = len(sig)
    m = match_persons(coco_gt, results, sigmas=sig, image_ids=image_ids)
    anns = coco_gt.anns
    norm = np.array([max(anns[int(a)]["bbox"][2], anns[int(a)]["bbox"][3], np.spacing(1)) for a in m.ann_ids])
    norm = norm.reshape(-1, 1)
    with np.errstate(invalid="ignore"):
        close = (np.abs(m.keypoints[:, :, 0] - m.gt[:, :, 0]) / norm < pck_thr) & (
            np.abs(m.keypoints[:, :, 1] - m.gt[:, :, 1]) / norm < pck_thr
        )
    count = m.visible.sum(axis=0).astype(np.int64)
    oks_sum = np.where(m.visible, m.keypoint_oks, 0.0).sum(axis=0)
    pck_sum = np.where(m.visible, close, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        oks = np.where(count > 0, oks_sum / count, np.nan)
        pck = np.where(count > 0, pck_sum / count, np.nan)
    names = list(COCO17_NAMES) if k == len(COCO17_NAMES) else [str(i) for i in range(k)]
    return {"names": names, "oks": oks.tolist(), "pck": pck.tolist(), "count": count.tolist(), "pck_thr": pck_thr}


# --------------------------------------------------------------------------------------------------
# The accumulator used by the job
# --------------------------------------------------------------------------------------------------


class CocoKeypointMetric:
    """Collects top-down predictions image by image, then rescoring, OKS-NMS, results JSON and COCOeval.

    Follows MMPose ``CocoMetric`` (``score_mode='bbox_keypoint'`` or RLE's ``'bbox_rle'``,
    ``keypoint_score_thr=0.2``, ``nms_mode='oks_nms'``, ``nms_thr=0.9``, ``use_area=True``). Instances are kept per
    image in the order they are added (MMPose sorts by sample id, which is the dataset order the job also uses).

    Args:
        ann_file: COCO keypoint annotation JSON (ground truth).
        score_mode: the person score (:func:`models.scoring.person_scores`): ``bbox_keypoint``, ``bbox_rle``, ``bbox`` or
            ``keypoint`` (mean of all keypoint scores: no detector score).
        keypoint_score_thr: see :func:`models.scoring.person_scores` (``threshold``).
        nms: apply OKS-NMS per image.
        nms_thr: OKS threshold of the NMS.
        sigmas: float [K] OKS sigmas; default COCO-17 (:data:`models.keypoints.COCO17_SIGMAS`).
        use_area: passed to xtcocotools' COCOeval.
        backend: ``auto`` / ``xtcocotools`` / ``pycocotools`` (:func:`coco_backend`).

    Raises:
        FileNotFoundError / ValueError: from :func:`load_coco`.
    """

    def __init__(
        self,
        ann_file: str | Path,
        *,
        score_mode: str = "bbox_keypoint",
        keypoint_score_thr: float = DEFAULT_KEYPOINT_SCORE_THR,
        nms: bool = True,
        nms_thr: float = DEFAULT_NMS_THR,
        sigmas: np.ndarray | None = None,
        use_area: bool = True,
        backend: str = "auto",
    ) -> None:
        self.backend = coco_backend(backend)[0]
        self.coco = load_coco(ann_file, self.backend)
        if score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode {score_mode!r} must be one of {SCORE_MODES}")
        self.score_mode = score_mode
        self.keypoint_score_thr = keypoint_score_thr
        self.nms = nms
        self.nms_thr = nms_thr
        self.sigmas = COCO17_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
        self.use_area = use_area
        self._images: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self._valid_ids = set(self.coco.getImgIds())

    @property
    def num_instances(self) -> int:
        """Predictions added so far (before NMS)."""
        return sum(len(kp) for parts in self._images.values() for kp, _, _ in parts)

    def add(self, image_id: int, keypoints: np.ndarray, bbox_scores: np.ndarray, areas: np.ndarray) -> None:
        """Add the predictions of one image (call again to append more people of the same image).

        Args:
            image_id: COCO image id (must be in the annotation file).
            keypoints: float [N, K, 3], x, y in original-image pixels and keypoint score.
            bbox_scores: float [N], detector score of each box (1.0 for ground-truth boxes).
            areas: float [N], OKS area of each prediction (:func:`scale_area` of the crop scales).

        Raises:
            ValueError: unknown image id, wrong shapes, or non-finite values.
        """
        if image_id not in self._valid_ids:
            raise ValueError(f"image id {image_id} is not in the annotation file")
        kp = _as_keypoints(keypoints)
        if kp.shape[1] != len(self.sigmas):
            raise ValueError(f"keypoints have K={kp.shape[1]}, the metric has {len(self.sigmas)} sigmas")
        bs = np.asarray(bbox_scores, dtype=np.float64).reshape(-1)
        ar = np.asarray(areas, dtype=np.float64).reshape(-1)
        if not (len(kp) == len(bs) == len(ar)):
            raise ValueError(f"add(): {len(kp)} keypoint sets, {len(bs)} bbox scores, {len(ar)} areas")
        if len(kp) == 0:
            return
        self._images.setdefault(int(image_id), []).append((kp, bs, ar))

    def coco_results(self) -> list[dict]:
        """Rescore, OKS-NMS, and format as COCO keypoint result records (``results2json``).

        Returns:
            list of ``{"image_id", "category_id": 1, "keypoints": [3K floats], "score"}``, grouped by image in
            insertion order, within an image in NMS keep order (or insertion order with NMS off).
        """
        out: list[dict] = []
        for image_id, parts in self._images.items():
            kp = np.concatenate([p[0] for p in parts])
            bs = np.concatenate([p[1] for p in parts])
            ar = np.concatenate([p[2] for p in parts])
            scores = person_scores(bs, kp[:, :, 2], self.keypoint_score_thr, mode=self.score_mode)
            keep = oks_nms(kp, scores, ar, self.nms_thr, self.sigmas) if self.nms else np.arange(len(kp))
            for i in keep:
                out.append(
                    {
                        "image_id": image_id,
                        "category_id": 1,
                        "keypoints": kp[i].reshape(-1).tolist(),
                        "score": float(scores[i]),
                    }
                )
        return out

    def evaluate(
        self, results: list[dict] | None = None, *, pck_thr: float = 0.05, image_ids: Iterable[int] | None = None
    ) -> KeypointEvalResult:
        """COCOeval (keypoints) plus the per-keypoint breakdown.

        Args:
            results: records from :meth:`coco_results` (computed when None).
            pck_thr: threshold of :func:`per_keypoint_breakdown`.
            image_ids: restrict COCOeval and the breakdown to these images (all annotated images when None).

        Raises:
            ValueError: nothing to evaluate.
        """
        res = self.coco_results() if results is None else results
        stats, backend, summary = run_cocoeval(
            self.coco, res, sigmas=self.sigmas, use_area=self.use_area, backend=self.backend, image_ids=image_ids
        )
        breakdown = per_keypoint_breakdown(self.coco, res, sigmas=self.sigmas, pck_thr=pck_thr, image_ids=image_ids)
        return KeypointEvalResult(stats, backend, summary, len(res), breakdown)


def write_results_json(results: Iterable[dict], path: str | Path) -> Path:
    """Write COCO keypoint result records as a JSON list (the file COCO's ``loadRes`` reads). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(results)))
    return path
