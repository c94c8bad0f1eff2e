"""Top-down person data for training and validation: COCO and MPII (OpenCV decode in DataLoader workers).

COCO instances follow MMPose's ``CocoDataset`` in ``topdown`` mode (``mmpose/datasets/datasets/base/
base_coco_style_dataset.py``) through :func:`evaluation.boxes.coco_person_instance`: crowd annotations, people
without labelled keypoints and empty boxes are skipped; the box is clipped to the image; visibility is
``min(1, v)``. Validation takes the ground-truth boxes by the same rule, or the boxes of a detection-results
file (``COCO_val2017_detections_AP_H_56_person.json`` format, :func:`evaluation.boxes.load_detection_file`).

MPII instances (:class:`MpiiTopDown`) are MMPose's ``MpiiDataset``'s (read by :func:`evaluation.mpii.read_mpii`: box
from the annotation's center and 200-pixel scale, which ``GetBBoxCenterScale`` pads), with the joints converted to
0-based pixels (``joints - 1``) as MMPose 0.x's ``TopDownMpiiDataset`` did when it trained the published MPII
checkpoints. MMPose 1.3.2 keeps them 1-based while its center is 0-based and ``MpiiPCKAccuracy`` adds 1 to the
predictions, so a model trained on its targets predicts one pixel off; the published models and ours predict 0-based
keypoints, which is what the metric expects.

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

from evaluation.boxes import coco_person_instance, load_detection_file
from evaluation.metric import load_coco
from evaluation.mpii import MpiiDataError, read_mpii
from models.codecs import IntegralRegressionLabel, MSRAHeatmap, RegressionLabel
from models.geometry import bbox_to_center_scale, crop_image, validate_bboxes
from models.heads import head_kind
from models.keypoints import COCO17, get_schema
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


def make_codec(model: PoseModelConfig) -> IntegralRegressionLabel | MSRAHeatmap | RegressionLabel:
    """The config's target encoder, chosen by its head kind (``models.heads``, ``HeadKind.codec``):
    ``IntegralRegressionLabel`` (normalised heatmaps) for integral heads, ``MSRAHeatmap`` / ``DarkHeatmap`` /
    ``UDPHeatmap`` for heatmap heads (``model.codec``),
    ``RegressionLabel`` for DeepPose and RLE heads, with the model's input / heatmap size and sigma."""
    return head_kind(model.head_kind).codec(model)


@dataclass(frozen=True)
class Instance:
    """One person box of one image.

    Attributes:
        image_id: COCO / MPII image id. file: the image path.
        bbox: float32 [4] xyxy, image pixels. bbox_score: 1 for ground truth, the detector's score otherwise.
        keypoints: float32 [K, 2] image pixels (zeros for detection boxes). visible: float32 [K] in {0, 1}.
        center_scale: the annotation's own (center, scale) before padding (MPII), or None (from ``bbox``).
    """

    image_id: int
    file: Path
    bbox: np.ndarray
    bbox_score: float
    keypoints: np.ndarray
    visible: np.ndarray
    center_scale: tuple[np.ndarray, np.ndarray] | None = None


def _load(ann_file: str | Path):
    try:
        return load_coco(ann_file, "pycocotools")
    except FileNotFoundError as exc:
        raise DataError(str(exc)) from None
    except (ValueError, KeyError, TypeError) as exc:  # json errors are ValueErrors
        raise DataError(f"cannot read COCO annotation file {ann_file}: {exc}") from None


class TopDownData(Dataset):
    """Person instances cropped top-down: the item logic shared by :class:`CocoTopDown` and :class:`MpiiTopDown`.

    Args:
        model: the model config (input size, keypoint schema; the codec for training targets).
        train: True: items are training samples with targets; False: validation crops.
        augment: the random transforms (training only; ``enabled=False`` or None: none).
        seed: augmentation seed.

    Subclasses set ``self.instances`` (a list of :class:`Instance`).

    Items (``dataset[(epoch, i)]`` or ``dataset[i]`` for epoch 0):
        training: dict with ``inputs`` uint8 [h, w, 3] RGB crop, ``keypoint_weights`` float32 [K], ``keypoint_labels``
        float32 [K, 2] (normalised; integral, regression and RLE models) and ``heatmaps`` float32 [K, H, W] (heatmap
        and integral models; MSPN / RSN also ``level_heatmaps`` float32 [L, K, H, W], one per Megvii kernel).
        validation: dict with ``inputs``, ``center`` / ``scale`` float32 [2] (image pixels), ``image_id``,
        ``bbox_score`` and ``index`` (the instance's position).
    """

    instances: list[Instance]

    def __init__(self, model: PoseModelConfig, train: bool, augment: AugmentConfig | None, seed: int) -> None:
        self.model = model
        self.train = train
        self.augment = augment if (augment is not None and train) else AugmentConfig(enabled=False)
        self.seed = int(seed)
        self.codec = make_codec(model) if train else None
        self.schema = get_schema(model.keypoint_schema) if model.keypoint_schema else COCO17

    def __len__(self) -> int:
        return len(self.instances)

    def rng(self, epoch: int, index: int) -> np.random.RandomState:
        """The augmentation generator of instance ``index`` in ``epoch`` (see the module docstring)."""
        state = np.random.SeedSequence([self.seed, int(epoch), int(index)]).generate_state(1)[0]
        return np.random.RandomState(int(state))

    def _check_images(self, source: Path) -> None:
        missing = sorted({str(i.file) for i in self.instances if not i.file.is_file()})
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DataError(f"{len(missing)} images of {source} not found: {', '.join(missing[:5])}{more}")

    def __getitem__(self, item) -> dict:
        epoch, index = item if isinstance(item, tuple) else (0, item)
        inst = self.instances[index]
        image = read_image_rgb(inst.file)
        w, h = self.model.input_size
        if not self.train:
            centers, scales = bbox_to_center_scale(inst.bbox[None], (w, h))
            return {
                "inputs": crop_image(image, centers[0], scales[0], (w, h), use_udp=self.model.use_udp),
                "center": centers[0],
                "scale": scales[0],
                "image_id": inst.image_id,
                "bbox_score": np.float32(inst.bbox_score),
                "index": index,
            }
        flip_index = self.schema.flip_index()
        draws = NO_DRAWS
        if self.augment.enabled:
            draws = sample_draws(
                self.rng(epoch, index),
                inst.visible,
                self.augment,
                flip_index,
                self.schema.upper_body_ids,
                self.schema.lower_body_ids,
            )
        s = apply_topdown(
            image,
            inst.bbox,
            inst.keypoints,
            inst.visible,
            draws,
            (w, h),
            padding=self.augment.padding,
            half_body_padding=self.augment.half_body_padding,
            flip_index=flip_index,
            center_scale=inst.center_scale,
            use_udp=self.model.use_udp,
        )
        enc = self.codec.encode(s.keypoints[None], s.keypoints_visible[None])
        out = {"inputs": s.crop, "keypoint_weights": enc["keypoint_weights"][0]}
        if "heatmaps" in enc:
            out["heatmaps"] = enc["heatmaps"]
        if "level_heatmaps" in enc:  # MSPN / RSN: one target per kernel (models.megvii_heatmap.MultiLevelMegviiHeatmap)
            out["level_heatmaps"] = enc["level_heatmaps"]
        if "keypoint_labels" in enc:
            out["keypoint_labels"] = enc["keypoint_labels"][0]
        return out


class CocoTopDown(TopDownData):
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

    Items: see :class:`TopDownData`.

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
        super().__init__(model, train, augment, seed)
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        coco = _load(self.ann_file)
        image_ids = sorted(coco.getImgIds())
        if max_images is not None:
            image_ids = image_ids[: int(max_images)]
        self.image_ids = image_ids
        if det_file is not None and train:
            raise ValueError("a detection file gives validation boxes; training uses the annotations")
        dets = load_detection_file(det_file, set(image_ids), det_score_thr).bboxes if det_file else None
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
        self.instances = instances
        self._check_images(self.ann_file)


class MpiiTopDown(TopDownData):
    """Person instances of an MPII-format annotation file (MMPose's json), cropped top-down (see the module docstring).

    Args:
        ann_file: ``mpii_train.json`` / ``mpii_val.json``.
        image_dir: folder of the ``image`` files.
        model: the model config (an MPII-16 model).
        train, augment, seed: as :class:`CocoTopDown` (MPII's configs: ``training.transforms.MPII_AUGMENT``).
        headbox_file: ``mpii_gt_val.mat`` (validation: PCKh needs the head sizes), or None.
        max_images: only the annotations of the first N images (in file order).

    Items: see :class:`TopDownData`. ``mpii`` holds the :class:`evaluation.mpii.MpiiInstance` of each instance (their
    1-based joints, visibility and head sizes are what PCKh compares with).

    Raises:
        DataError: missing / malformed files, a missing image, no annotation, or a model that is not MPII-16.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        model: PoseModelConfig,
        train: bool = True,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        headbox_file: str | Path | None = None,
        max_images: int | None = None,
    ) -> None:
        super().__init__(model, train, augment, seed)
        if model.keypoint_schema != "mpii16":
            raise DataError(f"MPII data needs an MPII-16 model, {model.name!r} has keypoints {model.keypoint_schema!r}")
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        try:
            mpii = read_mpii(self.ann_file, headbox_file)
        except (FileNotFoundError, MpiiDataError) as exc:
            raise DataError(str(exc)) from None
        if max_images is not None:
            keep = list(dict.fromkeys(m.file_name for m in mpii))[: int(max_images)]
            mpii = [m for m in mpii if m.file_name in set(keep)]
        if not mpii:
            raise DataError(f"no annotations in {self.ann_file}")
        self.mpii = mpii
        self.instances = [
            Instance(
                m.image_id,
                self.image_dir / m.file_name,
                m.bbox,
                1.0,
                (m.keypoints - np.float32(1.0)).astype(np.float32),  # 0-based (module docstring)
                np.minimum(1.0, m.visible).astype(np.float32),
                (m.center, m.scale),
            )
            for m in mpii
        ]
        self._check_images(self.ann_file)


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
