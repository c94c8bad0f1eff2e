"""COCO top-down person data for training and validation (pycocotools, OpenCV decode in DataLoader workers).

Instances follow MMPose's ``CocoDataset`` in ``topdown`` mode (``mmpose/datasets/datasets/base/
base_coco_style_dataset.py``) through :func:`evaluation.job.coco_person_instance`: crowd annotations, people
without labelled keypoints and empty boxes are skipped; the box is clipped to the image; visibility is
``min(1, v)``. Validation takes the ground-truth boxes by the same rule, or the boxes of a detection-results
file (``COCO_val2017_detections_AP_H_56_person.json`` format, :func:`evaluation.job.load_detection_file`).

Every image named by the annotation file is checked to exist when the dataset is built, so a missing file is
one clear error before training starts; a file OpenCV cannot decode raises :class:`DataError` naming it (from
the worker, re-raised by the DataLoader in the main process).

Augmentation randomness: instance ``i`` of epoch ``e`` draws from ``RandomState(SeedSequence([seed, e, i]))``,
so the crops do not depend on the number of workers or processes, and a resumed run sees the same crops
as an uninterrupted one. The index a sampler yields is ``(epoch, i)`` (:class:`EpochIndices`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from evaluation.job import coco_person_instance, load_detection_file
from evaluation.metric import load_coco
from models.codecs import IntegralRegressionLabel, MSRAHeatmap
from models.geometry import box_to_center_scale, crop_image, validate_bboxes
from models.zoo import PoseModelConfig
from training.transforms import NO_DRAWS, AugmentConfig, apply_topdown, sample_draws


class DataError(ValueError):
    """Bad training data: a missing or corrupt image or annotation file (the message names the file)."""


def read_image_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file with OpenCV (MMPose ``LoadImage``: ``cv2`` backend, colour) -> uint8 [H, W, 3] RGB.

    Raises:
        DataError: the file is missing or OpenCV cannot decode it (the path is named).
    """
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise DataError(f"image not found: {path}")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise DataError(f"cannot decode image {path} ({data.size} bytes): corrupt or not an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def make_codec(model: PoseModelConfig) -> IntegralRegressionLabel | MSRAHeatmap:
    """The config's target encoder: ``IntegralRegressionLabel`` (normalised heatmaps) for integral heads,
    ``MSRAHeatmap`` for heatmap heads, with the model's input / heatmap size and sigma."""
    if model.head_kind == "integral":
        return IntegralRegressionLabel(model.input_size, model.heatmap_size, model.sigma, normalize=True)
    return MSRAHeatmap(model.input_size, model.heatmap_size, model.sigma)


@dataclass(frozen=True)
class Instance:
    """One person box of one image.

    Attributes:
        image_id: COCO image id. file: the image path.
        bbox: float32 [4] xyxy, image pixels. bbox_score: 1 for ground truth, the detector's score otherwise.
        keypoints: float32 [K, 2] image pixels (zeros for detection boxes). visible: float32 [K] in {0, 1}.
    """

    image_id: int
    file: Path
    bbox: np.ndarray
    bbox_score: float
    keypoints: np.ndarray
    visible: np.ndarray


def _load(ann_file: str | Path):
    try:
        return load_coco(ann_file, "pycocotools")
    except FileNotFoundError as exc:
        raise DataError(str(exc)) from None
    except (ValueError, KeyError, TypeError) as exc:  # json errors are ValueErrors
        raise DataError(f"cannot read COCO annotation file {ann_file}: {exc}") from None


class CocoTopDown(Dataset):
    """Person instances of a COCO keypoint file, cropped top-down.

    Args:
        ann_file: COCO keypoint annotation JSON.
        image_dir: folder of the images named by ``file_name``.
        model: the model config (input size; the codec for training targets).
        train: True: items are training samples with targets; False: validation crops.
        augment: the random transforms (training only; ``enabled=False`` or None: none).
        seed: augmentation seed.
        det_file: validation boxes from a detection-results file instead of the ground truth.
        det_score_thr: keep detections with score >= this (MMPose: 0.0).
        max_images: only the first N images of the file (quick runs).

    Items (``dataset[(epoch, i)]`` or ``dataset[i]`` for epoch 0):
        training: dict with ``inputs`` uint8 [h, w, 3] RGB crop, ``keypoint_weights`` float32 [K], ``heatmaps``
        float32 [K, H, W] and, for integral models, ``keypoint_labels`` float32 [K, 2] (normalised).
        validation: dict with ``inputs``, ``center`` / ``scale`` float32 [2] (image pixels), ``image_id``,
        ``bbox_score``.

    Raises:
        DataError: missing / unreadable annotation file, a missing image, or no usable instance.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        model: PoseModelConfig,
        train: bool = True,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        det_file: str | Path | None = None,
        det_score_thr: float = 0.0,
        max_images: int | None = None,
    ) -> None:
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        self.model = model
        self.train = train
        self.augment = augment if (augment is not None and train) else AugmentConfig(enabled=False)
        self.seed = int(seed)
        self.codec = make_codec(model) if train else None
        coco = _load(self.ann_file)
        image_ids = sorted(coco.getImgIds())
        if max_images is not None:
            image_ids = image_ids[: int(max_images)]
        self.image_ids = image_ids
        if det_file is not None and train:
            raise ValueError("a detection file gives validation boxes; training uses the annotations")
        dets = load_detection_file(det_file, set(image_ids), det_score_thr).boxes if det_file else None
        k = model.num_keypoints
        instances: list[Instance] = []
        for image_id in image_ids:
            info = coco.imgs[image_id]
            file = self.image_dir / info["file_name"]
            if dets is not None:
                boxes, scores = dets.get(image_id, (np.zeros((0, 4), np.float32), np.zeros(0, np.float32)))
                for b, s in zip(validate_bboxes(boxes) if len(boxes) else boxes, scores):
                    instances.append(
                        Instance(image_id, file, b, float(s), np.zeros((k, 2), np.float32), np.zeros(k, np.float32))
                    )
                continue
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
                try:
                    inst = coco_person_instance(ann, info["width"], info["height"])
                except ValueError as exc:
                    raise DataError(f"{self.ann_file}: {exc}") from None
                if inst is None:
                    continue
                bbox, kpts = inst
                if kpts.shape[0] != k:
                    raise DataError(
                        f"{self.ann_file}: annotation {ann.get('id')} has {kpts.shape[0]} keypoints, expected {k}"
                    )
                instances.append(
                    Instance(
                        image_id, file, bbox, 1.0, kpts[:, :2].copy(), np.minimum(1.0, kpts[:, 2]).astype(np.float32)
                    )
                )
        if not instances:
            what = "detections" if dets is not None else "person instances with labelled keypoints"
            raise DataError(f"no {what} in {self.ann_file} ({len(image_ids)} images)")
        missing = sorted({str(i.file) for i in instances if not i.file.is_file()})
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DataError(f"{len(missing)} images of {self.ann_file} not found: {', '.join(missing[:5])}{more}")
        self.instances = instances

    def __len__(self) -> int:
        return len(self.instances)

    def rng(self, epoch: int, index: int) -> np.random.RandomState:
        """The augmentation generator of instance ``index`` in ``epoch`` (see the module docstring)."""
        state = np.random.SeedSequence([self.seed, int(epoch), int(index)]).generate_state(1)[0]
        return np.random.RandomState(int(state))

    def __getitem__(self, item) -> dict:
        epoch, index = item if isinstance(item, tuple) else (0, item)
        inst = self.instances[index]
        image = read_image_rgb(inst.file)
        w, h = self.model.input_size
        if not self.train:
            centers, scales = box_to_center_scale(inst.bbox[None], (w, h))
            return {
                "inputs": crop_image(image, centers[0], scales[0], (w, h)),
                "center": centers[0],
                "scale": scales[0],
                "image_id": inst.image_id,
                "bbox_score": np.float32(inst.bbox_score),
            }
        draws = sample_draws(self.rng(epoch, index), inst.visible, self.augment) if self.augment.enabled else NO_DRAWS
        s = apply_topdown(
            image,
            inst.bbox,
            inst.keypoints,
            inst.visible,
            draws,
            (w, h),
            padding=self.augment.padding,
            half_body_padding=self.augment.half_body_padding,
        )
        enc = self.codec.encode(s.keypoints[None], s.keypoints_visible[None])
        out = {"inputs": s.crop, "keypoint_weights": enc["keypoint_weights"][0], "heatmaps": enc["heatmaps"]}
        if "keypoint_labels" in enc:
            out["keypoint_labels"] = enc["keypoint_labels"][0]
        return out


class EpochIndices(Sampler):
    """Wraps an index sampler with a ``set_epoch`` (``DistributedSampler``) and yields ``(epoch, index)``, skipping
    the first ``skip`` indices of the epoch (resuming mid-epoch).

    Args:
        sampler: e.g. ``torch.utils.data.DistributedSampler`` (its ``epoch`` attribute is read).
    """

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Start ``epoch``; leave out its first ``skip`` indices."""
        self.sampler.set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = int(getattr(self.sampler, "epoch", 0))
        for n, i in enumerate(self.sampler):
            if n >= self.skip:
                yield epoch, int(i)

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


def worker_init(_worker_id: int) -> None:
    """DataLoader worker set-up: one OpenCV thread per worker (MMPose ``opencv_num_threads=0``), one torch thread."""
    cv2.setNumThreads(0)
    torch.set_num_threads(1)
