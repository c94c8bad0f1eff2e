"""An MPII-format annotation file (MMPose's json + ``mpii_gt_val.mat`` head boxes) made from a COCO keypoint file.

COCO-17 joints map onto MPII-16's by name (ankles, knees, hips, wrists, elbows, shoulders); pelvis and thorax are the
hip / shoulder midpoints, the upper neck lies 30 % and the head top 130 % of the way from the thorax to the nose (only
where those joints are labelled). Coordinates are written as MPII's Matlab 1-based pixels; the center is the box
center + 1 with MPII's 15-pixels-per-scale-unit shift taken out (``evaluation.mpii.read_mpii`` puts it back) and the
scale is the box's longer side in 200-pixel units. The head box spans the head top and upper neck, widened by 40 %.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from models.keypoints import COCO17_NAMES, MPII16_NAMES

_DIRECT = {n: COCO17_NAMES.index(n) for n in MPII16_NAMES if n in COCO17_NAMES}


def mpii_from_coco(coco_file: Path, out_dir: Path, min_keypoints: int = 8) -> tuple[Path, Path, int]:
    """Write ``mpii.json`` and ``mpii_gt.mat`` into ``out_dir`` from the people of ``coco_file`` with at least
    ``min_keypoints`` labelled keypoints; returns (annotation file, head-box file, number of people)."""
    from scipy.io import savemat

    coco = json.loads(Path(coco_file).read_text())
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    anns, heads = [], []
    for a in coco["annotations"]:
        if a.get("iscrowd", 0) or a.get("num_keypoints", 0) < min_keypoints:
            continue
        kp = np.asarray(a["keypoints"], np.float64).reshape(17, 3)
        vis = kp[:, 2] > 0
        joints = np.zeros((16, 2))
        jv = np.zeros(16, int)
        for j, name in enumerate(MPII16_NAMES):
            if name in _DIRECT:
                c = _DIRECT[name]
                joints[j], jv[j] = kp[c, :2], int(vis[c])
        mid_hip, mid_sh = kp[[11, 12], :2].mean(0), kp[[5, 6], :2].mean(0)
        joints[6], jv[6] = mid_hip, int(vis[11] and vis[12])
        joints[7], jv[7] = mid_sh, int(vis[5] and vis[6])
        neck_ok = bool(vis[5] and vis[6] and vis[0])
        joints[8], jv[8] = mid_sh + 0.3 * (kp[0, :2] - mid_sh), int(neck_ok)
        joints[9], jv[9] = mid_sh + 1.3 * (kp[0, :2] - mid_sh), int(neck_ok)
        x, y, w, h = a["bbox"]
        s = max(w, h) / 200.0
        center = [x + w / 2 + 1.0, y + h / 2 + 1.0 - 15.0 * s]
        anns.append(
            {
                "image": files[a["image_id"]],
                "center": center,
                "scale": s,
                "joints": (joints + 1.0).round(3).tolist(),
                "joints_vis": jv.tolist(),
            }
        )
        top, neck = joints[9] + 1.0, joints[8] + 1.0
        half = max(0.2 * np.linalg.norm(top - neck), 4.0)
        lo, hi = np.minimum(top, neck) - half, np.maximum(top, neck) + half
        heads.append([lo.tolist(), hi.tolist()])
    out_dir.mkdir(parents=True, exist_ok=True)
    ann_path, mat_path = out_dir / "mpii.json", out_dir / "mpii_gt.mat"
    ann_path.write_text(json.dumps(anns))
    savemat(str(mat_path), {"headboxes_src": np.transpose(np.asarray(heads, np.float64), (1, 2, 0))})
    return ann_path, mat_path, len(anns)
