"""Write golden outputs of MMPose's own COCO keypoint metric and OKS-NMS into tests/data/mmpose_metric/.

Runs in a SEPARATE venv with MMPose installed (never in the project venv). Exact steps used
(MMPose 1.3.2, mmengine 0.10.7, Python 3.11, CPU):

    python3 -m venv /work/mmpose-venv-eval
    /work/mmpose-venv-eval/bin/pip install /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
    /work/mmpose-venv-eval/bin/pip install --no-deps mmpose==1.3.2 mmengine==0.10.7 mmdet==3.3.0 mmcv-lite==2.1.0
    /work/mmpose-venv-eval/bin/pip install addict yapf rich termcolor matplotlib opencv-python-headless \
        json-tricks munkres scipy pillow pyyaml six shapely terminaltables tqdm pycocotools numpy cython wheel
    # the xtcocotools 1.14.3 wheel is built against numpy 1.x ("numpy.dtype size changed" under numpy 2):
    # build it from source against the installed numpy 2
    /work/mmpose-venv-eval/bin/pip install --force-reinstall --no-deps --no-build-isolation \
        --no-binary xtcocotools xtcocotools==1.14.3
    cd <repo root> && /work/mmpose-venv-eval/bin/python tests/mmpose_golden/make_metric_golden.py

``mmpose.evaluation`` imports fine with mmcv-lite here (no ``mmcv._ext`` stub was needed); should a later
mmcv-lite need one, :func:`_stub_mmcv_ext` installs an empty module before the import.

What it writes (all small, committed; read by ``tests/evaluation/test_metric.py``):

* ``ann.json``: a synthetic COCO keypoint annotation file (6 images, 14 people, one with no labelled
  keypoint, random visibilities), generated from a fixed seed.
* ``inputs.npz``: per prediction ``img_id`` [N], ``keypoints`` [N, 17, 3] (x, y, score; original pixels),
  ``bbox_xyxy`` [N, 4], ``bbox_scores`` [N]: noisy copies of the ground truth at several noise levels,
  near-duplicates (to be removed by OKS-NMS), and false positives.
* ``areas.npz``: ``bbox_scales`` [N, 2] from MMPose's ``bbox_xyxy2cs`` (padding 1.25) then
  ``TopdownAffine._fix_aspect_ratio`` (256x256 input), and ``areas`` = their product (``CocoMetric.process``).
* ``nms.json``: per image, MMPose ``oks_nms`` keep indices at 0.9 on the rescored predictions, and
  ``oks_iou`` of the first prediction of each image against the others.
* ``metric_<score_mode>_<nms_mode>.json``: MMPose ``CocoMetric`` (xtcocotools) stats and the results JSON it
  wrote, for score_mode in {bbox_keypoint, keypoint} x nms_mode in {oks_nms, none}.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "data" / "mmpose_metric"
SEED = 20260521
INPUT_SIZE = (256, 256)
K = 17


def _stub_mmcv_ext() -> None:
    """Install an empty ``mmcv._ext`` if the compiled ops are absent (only needed by some mmcv-lite builds)."""
    if importlib.util.find_spec("mmcv") is not None and "mmcv._ext" not in sys.modules:
        try:
            importlib.import_module("mmcv._ext")
        except ImportError:
            sys.modules["mmcv._ext"] = types.ModuleType("mmcv._ext")


def make_annotations(rng: np.random.Generator) -> dict:
    """A synthetic COCO keypoint annotation file: people as jittered copies of a template pose."""
    template = np.array(
        [
            [0.50, 0.08], [0.53, 0.05], [0.47, 0.05], [0.57, 0.07], [0.43, 0.07],
            [0.65, 0.22], [0.35, 0.22], [0.72, 0.40], [0.28, 0.40], [0.75, 0.56],
            [0.25, 0.56], [0.60, 0.56], [0.40, 0.56], [0.62, 0.76], [0.38, 0.76],
            [0.63, 0.96], [0.37, 0.96],
        ]
    )  # fmt: skip
    images, anns = [], []
    ann_id = 1000
    people_per_image = [1, 2, 3, 4, 2, 2]
    for i, n_people in enumerate(people_per_image):
        img_id = 100 + i
        width, height = 640, 480
        images.append({"id": img_id, "file_name": f"{img_id:012d}.jpg", "width": width, "height": height})
        for p in range(n_people):
            bw, bh = rng.uniform(60, 200), rng.uniform(150, 400)
            x0, y0 = rng.uniform(0, width - bw), rng.uniform(0, height - bh)
            xy = template * [bw, bh] + [x0, y0] + rng.normal(0, 3, size=(K, 2))
            v = rng.choice([0, 1, 2], size=K, p=[0.2, 0.2, 0.6])
            if i == 3 and p == 3:
                v[:] = 0  # one person without any labelled keypoint (ignored by COCOeval / MMPose GT mode)
            kp = np.concatenate([np.round(xy, 2), v[:, None]], axis=1)
            kp[v == 0, :2] = 0
            anns.append(
                {
                    "id": ann_id,
                    "image_id": img_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [round(x0, 2), round(y0, 2), round(bw, 2), round(bh, 2)],
                    "area": round(bw * bh * 0.6, 2),
                    "num_keypoints": int((v > 0).sum()),
                    "keypoints": [float(x) if j % 3 != 2 else int(x) for j, x in enumerate(kp.reshape(-1))],
                }
            )
            ann_id += 1
    categories = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": [], "skeleton": []}]
    return {"images": images, "annotations": anns, "categories": categories}


def make_predictions(coco: dict, rng: np.random.Generator) -> dict:
    """Predictions: noisy copies of each person, near-duplicates, and false positives."""
    img_ids, kpts, boxes, bbox_scores = [], [], [], []
    by_img: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a)
    for img in coco["images"]:
        for a in by_img.get(img["id"], []):
            g = np.asarray(a["keypoints"], dtype=np.float64).reshape(K, 3)
            x, y, w, h = a["bbox"]
            # fill unlabelled keypoints with a plausible spot inside the box
            fill = np.column_stack([rng.uniform(x, x + w, K), rng.uniform(y, y + h, K)])
            base = np.where(g[:, 2:3] > 0, g[:, :2], fill)
            noise_px = rng.choice([1.0, 4.0, 12.0])
            for copy in range(3 if noise_px < 10 else 1):
                xy = base + rng.normal(0, noise_px if copy == 0 else 0.5, size=(K, 2))
                s = np.clip(rng.uniform(0.05, 1.0, K), 0, 1)
                box = np.array([x, y, x + w, y + h]) + rng.normal(0, 2, 4)
                img_ids.append(img["id"])
                kpts.append(np.concatenate([xy, s[:, None]], axis=1))
                boxes.append(box)
                bbox_scores.append(rng.uniform(0.3, 1.0))
        # a false positive per image
        bw, bh = 80.0, 160.0
        x0, y0 = rng.uniform(0, img["width"] - bw), rng.uniform(0, img["height"] - bh)
        xy = np.column_stack([rng.uniform(x0, x0 + bw, K), rng.uniform(y0, y0 + bh, K)])
        img_ids.append(img["id"])
        kpts.append(np.concatenate([xy, rng.uniform(0, 0.6, (K, 1))], axis=1))
        boxes.append(np.array([x0, y0, x0 + bw, y0 + bh]))
        bbox_scores.append(rng.uniform(0.05, 0.9))
    return {
        "img_id": np.asarray(img_ids, dtype=np.int64),
        "keypoints": np.asarray(kpts, dtype=np.float32),
        "bbox_xyxy": np.asarray(boxes, dtype=np.float32),
        "bbox_scores": np.asarray(bbox_scores, dtype=np.float32),
    }


def main() -> None:
    _stub_mmcv_ext()
    import mmpose
    from mmengine.logging import MMLogger
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.datasets.transforms import TopdownAffine
    from mmpose.evaluation.functional import oks_nms
    from mmpose.evaluation.functional.nms import oks_iou
    from mmpose.evaluation.metrics import CocoMetric
    from mmpose.structures.bbox import bbox_xyxy2cs

    MMLogger.get_instance("mmpose_golden", log_level="WARNING")
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    coco = make_annotations(rng)
    ann_path = OUT / "ann.json"
    ann_path.write_text(json.dumps(coco))
    pred = make_predictions(coco, rng)
    np.savez_compressed(OUT / "inputs.npz", **pred)

    # areas as MMPose's top-down pipeline makes them: GetBBoxCenterScale (padding 1.25) -> TopdownAffine
    _, scales = bbox_xyxy2cs(pred["bbox_xyxy"], padding=1.25)
    scales = TopdownAffine._fix_aspect_ratio(scales, aspect_ratio=INPUT_SIZE[0] / INPUT_SIZE[1])
    areas = np.prod(scales, axis=1)
    np.savez_compressed(OUT / "areas.npz", bbox_scales=scales.astype(np.float32), areas=areas)

    meta = parse_pose_metainfo(dict(from_file="configs/_base_/datasets/coco.py"))
    sigmas = meta["sigmas"]

    # OKS-NMS alone, on MMPose-rescored predictions of each image (in prediction order = sample id order)
    nms_out = {}
    for img_id in np.unique(pred["img_id"]):
        idx = np.flatnonzero(pred["img_id"] == img_id)
        db = []
        for i in idx:
            s = pred["keypoints"][i, :, 2]
            valid = s[s > 0.2]
            score = float(pred["bbox_scores"][i] * (valid.mean() if len(valid) else 0.0))
            db.append({"keypoints": pred["keypoints"][i], "score": score, "area": areas[i]})
        keep = oks_nms(db, 0.9, sigmas=sigmas)
        kp_flat = np.array([d["keypoints"].flatten() for d in db])
        ious = oks_iou(kp_flat[0], kp_flat[1:], areas[idx[0]], areas[idx[1:]], sigmas)
        nms_out[str(int(img_id))] = {
            "indices": idx.tolist(),
            "keep": [int(idx[k]) for k in keep],
            "oks_first_vs_rest": ious.tolist(),
        }
    (OUT / "nms.json").write_text(json.dumps(nms_out, indent=1))

    # the full CocoMetric (xtcocotools COCOeval), one sample per prediction as in top-down testing
    for score_mode in ("bbox_keypoint", "keypoint"):
        for nms_mode in ("oks_nms", "none"):
            with tempfile.TemporaryDirectory() as tmp:
                prefix = str(Path(tmp) / "results")
                metric = CocoMetric(
                    ann_file=str(ann_path), score_mode=score_mode, nms_mode=nms_mode, outfile_prefix=prefix
                )
                metric.dataset_meta = meta
                samples = []
                for i in range(len(pred["img_id"])):
                    samples.append(
                        {
                            "id": i,
                            "img_id": int(pred["img_id"][i]),
                            "pred_instances": {
                                "keypoints": pred["keypoints"][i : i + 1, :, :2],
                                "keypoint_scores": pred["keypoints"][i : i + 1, :, 2],
                                "bbox_scores": pred["bbox_scores"][i : i + 1],
                            },
                            "gt_instances": {"bbox_scales": scales[i : i + 1]},
                        }
                    )
                metric.process([{}] * len(samples), samples)
                stats = metric.compute_metrics(metric.results)
                results = json.loads(Path(f"{prefix}.keypoints.json").read_text())
            (OUT / f"metric_{score_mode}_{nms_mode}.json").write_text(
                json.dumps(
                    {
                        "mmpose_version": mmpose.__version__,
                        "backend": "xtcocotools",
                        "stats": {k: float(v) for k, v in stats.items()},
                        "results": results,
                    }
                )
            )
            print(score_mode, nms_mode, {k: round(float(v), 4) for k, v in stats.items()})
    print(f"wrote {sorted(p.name for p in OUT.iterdir())}")


if __name__ == "__main__":
    main()
