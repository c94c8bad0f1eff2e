"""COCOeval for keypoints: the COCO API backend (xtcocotools, what MMPose uses, else pycocotools), loading annotation
files quietly, building and running ``COCOeval(..., 'keypoints')`` with our sigmas."""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.keypoints import COCO17_SIGMAS

#: Names of COCOeval's ten keypoint stats, in ``COCOeval.stats`` order.
STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")

_BACKENDS = ("auto", "xtcocotools", "pycocotools")


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
