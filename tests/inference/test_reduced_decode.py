"""Reduced-size JPEG decoding (``decode_min_side``; ``inference.imageio.decode_image_reduced``): the factor rule, the
pixel mapping ``r * x + (r - 1) / 2`` checked on a gradient image, which images are never reduced, the pipeline's
answers in original pixels, and the AP it costs on coco-mini shown 3x larger (no loss beyond a bound)."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
from PIL import Image

from inference.imageio import decode_image, decode_image_reduced, draft_factor, to_original_pixels, to_reduced_pixels


def _jpeg(rgb: np.ndarray, quality: int = 95, exif: Image.Exif | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, **({"exif": exif} if exif is not None else {}))
    return buf.getvalue()


def test_factor_rule_and_sizes():
    assert [draft_factor(4000, 3000, m) for m in (0, None, 300, 375, 376, 750, 751, 1500, 1501)] == [
        1, 1, 8, 8, 4, 4, 2, 2, 1,
    ]  # fmt: skip
    rgb = np.random.default_rng(0).integers(0, 256, (301, 443, 3), dtype=np.uint8)
    data = _jpeg(rgb)
    for min_side, r in [(0, 1), (150, 2), (75, 4), (37, 8), (151, 1)]:
        image, factor, size = decode_image_reduced(data, min_side=min_side)
        assert factor == r and size == (443, 301)
        assert image.shape == (-(-301 // r), -(-443 // r), 3) and image.dtype == np.uint8
    assert np.array_equal(decode_image_reduced(data)[0], decode_image(data))


def test_reduced_pixels_map_back_by_r_x_plus_half_r_minus_one():
    """Grey ramps (luma only: JPEG subsamples colour): where each reduced pixel sits in the original, read off a
    horizontal and a vertical ramp, is ``r * j + (r - 1) / 2`` (without the ``(r - 1) / 2`` term the offset would be 0;
    with r = 8 it is 3.5 pixels)."""
    h, w = 480, 640
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    ramps = {}
    for axis, v, n in (("x", x, w), ("y", y, h)):
        grey = (v * 255 / (n - 1)).round().astype(np.uint8)
        ramps[axis] = _jpeg(np.repeat(grey[..., None], 3, axis=2), quality=100)
    for r in (1, 2, 4, 8):
        image_x, factor, _ = decode_image_reduced(ramps["x"], min_side=h // r if r > 1 else 0)
        image_y, _, _ = decode_image_reduced(ramps["y"], min_side=h // r if r > 1 else 0)
        assert factor == r
        jj = np.arange(2, image_x.shape[1] - 2)
        ii = np.arange(2, image_y.shape[0] - 2)
        x_at = image_x[image_x.shape[0] // 2, jj, 1].astype(np.float64) * (w - 1) / 255.0
        y_at = image_y[ii, image_y.shape[1] // 2, 1].astype(np.float64) * (h - 1) / 255.0
        offset_x, offset_y = float(np.mean(x_at - r * jj)), float(np.mean(y_at - r * ii))
        # measured: x 0, 0.5, 1.5, 3.5; y 0, 0.52, 1.5, 3.77 (the grey levels' rounding); a missing term is >= 0.5 off
        assert abs(offset_x - (r - 1) / 2) < 0.3 and abs(offset_y - (r - 1) / 2) < 0.3, (r, offset_x, offset_y)
        assert np.allclose(to_original_pixels(np.stack([jj, jj], 1), r)[:, 0], r * jj + (r - 1) / 2)
        pts = np.array([[10.5, 7.25], [100.0, 33.0]], np.float32)
        assert np.allclose(to_reduced_pixels(to_original_pixels(pts, r), r), pts, atol=1e-5)


def test_png_and_exif_rotated_jpegs_are_never_reduced():
    rgb = np.random.default_rng(1).integers(0, 256, (400, 600, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    image, factor, size = decode_image_reduced(buf.getvalue(), min_side=100)
    assert factor == 1 and image.shape == (400, 600, 3) and size == (600, 400)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed
    image, factor, size = decode_image_reduced(_jpeg(rgb, exif=exif), min_side=100)
    assert factor == 1 and image.shape == (600, 400, 3) and size == (400, 600)


def _upscaled(coco_mini, tmp_path, k: int, limit: int):
    """The first ``limit`` coco-mini images with people, ``k`` times larger (bicubic, JPEG quality 95), and their
    annotations mapped the same way (x -> k x + (k - 1) / 2, areas x k^2)."""
    ann = json.loads((coco_mini / "annotations" / "person_keypoints_val2017.json").read_text())
    with_people = {a["image_id"] for a in ann["annotations"] if a.get("num_keypoints", 0) > 0 and not a["iscrowd"]}
    images = [im for im in ann["images"] if im["id"] in with_people][:limit]
    keep = {im["id"] for im in images}
    (tmp_path / "img").mkdir()
    for im in images:
        bgr = cv2.imread(str(coco_mini / "val2017" / im["file_name"]))
        big = cv2.resize(bgr, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(tmp_path / "img" / im["file_name"]), big, [cv2.IMWRITE_JPEG_QUALITY, 95])
        im["width"], im["height"] = im["width"] * k, im["height"] * k
    anns = []
    for a in ann["annotations"]:
        if a["image_id"] not in keep:
            continue
        kp = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
        kp[:, :2] = np.where(kp[:, 2:] > 0, kp[:, :2] * k + (k - 1) / 2, 0)
        x, y, w, h = a["bbox"]
        anns.append({**a, "keypoints": kp.ravel().tolist(), "bbox": [x * k, y * k, w * k, h * k],
                     "area": a["area"] * k * k, "segmentation": []})  # fmt: skip
    out = {**ann, "images": images, "annotations": anns}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(out))
    return path, tmp_path / "img"


def test_pipeline_answers_in_original_pixels_and_ap_on_larger_coco_mini(real_pipeline, coco_mini, tmp_path):
    """coco-mini's first 40 images with people, 3x larger (1920 x 1440-ish): with ground-truth boxes, the pipeline
    decoding them at half size or less (``decode_min_side`` 480: never below COCO's own resolution) answers in original pixels (its boxes are the caller's
    boxes back) and loses at most 0.02 AP against the full-size decode (measured here: see the printout)."""
    from evaluation.metric import CocoKeypointMetric
    from inference.pipeline import PosePipeline

    ann_file, image_dir = _upscaled(coco_mini, tmp_path, 3, 40)
    ann = json.loads(ann_file.read_text())
    boxes: dict[int, list] = {}
    for a in ann["annotations"]:
        if a.get("num_keypoints", 0) > 0 and not a["iscrowd"]:
            x, y, w, h = a["bbox"]
            boxes.setdefault(a["image_id"], []).append([x, y, x + w, y + h])
    full = PosePipeline(None, real_pipeline.pose)
    reduced = PosePipeline(None, real_pipeline.pose, decode_min_side=480)
    aps, factors = {}, []
    for name, pipe in (("full", full), ("reduced", reduced)):
        metric = CocoKeypointMetric(ann_file)
        for im in ann["images"]:
            data = (image_dir / im["file_name"]).read_bytes()
            b = np.asarray(boxes[im["id"]], np.float32)
            res = pipe.run(data, b)
            assert (res.width, res.height) == (im["width"], im["height"])
            assert res.decode_factor == (draft_factor(im["width"], im["height"], 480) if name == "reduced" else 1)
            factors.append(res.decode_factor)
            assert np.allclose(res.bboxes, b, atol=1e-3)
            metric.add(im["id"], res.keypoints, res.bbox_scores, np.prod(res.scales, axis=1))
        aps[name] = metric.evaluate(metric.coco_results()).stats["AP"]
    print(f"[reduced-decode] coco-mini x3, 40 images, GT boxes: AP full {aps['full']:.4f}, reduced decode "
          f"{aps['reduced']:.4f}")  # fmt: skip
    assert factors.count(2) >= 30, factors  # most images were decoded at half size (none below 480 pixels)
    assert aps["full"] > 0.3
    assert aps["reduced"] >= aps["full"] - 0.02
