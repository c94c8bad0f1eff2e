import numpy as np
import pytest

from models.geometry import (
    bbox_to_center_scale,
    bbox_xyxy2cs,
    crop_image,
    fix_aspect_ratio,
    get_warp_matrix,
    keypoints_crop_to_image,
    transform_points,
    validate_bboxes,
)


def test_bbox_to_center_scale_pads_and_squares():
    c, s = bbox_to_center_scale(np.array([[10, 20, 110, 220]]), (256, 256), padding=1.25)
    np.testing.assert_allclose(c, [[60, 120]])
    np.testing.assert_allclose(s, [[250, 250]])  # h*1.25 = 250, w grown to match
    c, s = bbox_to_center_scale(np.array([[0, 0, 192, 100]]), (192, 256))
    np.testing.assert_allclose(s[0, 0] / s[0, 1], 192 / 256, rtol=1e-6)


def test_fix_aspect_ratio_grows_the_short_side_only():
    np.testing.assert_allclose(fix_aspect_ratio(np.array([300.0, 100.0]), 1.0), [300, 300])
    np.testing.assert_allclose(fix_aspect_ratio(np.array([100.0, 300.0]), 0.75), [225, 300])


@pytest.mark.parametrize("rot", [0.0, 17.0])
def test_warp_then_inverse_round_trip(rot):
    rng = np.random.default_rng(0)
    center, scale = np.array([321.5, 207.25]), np.array([180.0, 180.0])
    m = get_warp_matrix(center, scale, rot, (256, 256))
    inv = get_warp_matrix(center, scale, rot, (256, 256), inv=True)
    pts = rng.uniform(100, 400, size=(50, 2))
    back = transform_points(transform_points(pts, m), inv)
    assert np.abs(back - pts).max() < 1e-3


def test_crop_then_keypoints_back_to_image_round_trip():
    boxes = np.array([[50.3, 40.1, 210.7, 380.9], [300, 10, 420, 90]], np.float32)
    centers, scales = bbox_to_center_scale(boxes, (256, 256))
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 255, size=(2, 17, 2))
    in_image = keypoints_crop_to_image(pts, centers, scales, (256, 256))
    for i in range(2):
        m = get_warp_matrix(centers[i], scales[i], 0.0, (256, 256))
        np.testing.assert_allclose(transform_points(in_image[i], m), pts[i], atol=1e-3)


def test_crop_samples_the_right_pixels():
    # a bright square in the image must land at the crop's centre
    img = np.zeros((400, 600, 3), np.uint8)
    img[190:211, 290:311] = 255
    center, scale = bbox_xyxy2cs(np.array([250.0, 150.0, 350.0, 250.0]), padding=1.0)
    crop = crop_image(img, center, scale, (256, 256))
    ys, xs = np.nonzero(crop[..., 0] > 128)
    assert abs(xs.mean() - 127.5) < 2 and abs(ys.mean() - 127.5) < 2
    assert crop[0, 0].tolist() == [0, 0, 0]  # constant-0 border region


@pytest.mark.parametrize(
    "bad, msg",
    [
        ([[10, 10, 5, 20]], "empty"),
        ([[0, 0, np.nan, 10]], "non-finite"),
        ([[1, 2, 3]], "shape"),
    ],
)
def test_validate_bboxes_names_the_problem(bad, msg):
    with pytest.raises(ValueError, match=msg):
        validate_bboxes(np.array(bad, dtype=np.float64))


def test_box_iou_matrix():
    from models.geometry import box_iou_matrix

    a = np.array([[0, 0, 100, 100], [0, 0, 0, 0]], float)
    b = np.array([[50, 0, 150, 100], [0, 0, 100, 100], [200, 200, 300, 300], [0, 0, 0, 0]], float)
    got = box_iou_matrix(a, b)
    np.testing.assert_allclose(got, [[50 / 150, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # empty boxes: 0, no NaN
    np.testing.assert_allclose(box_iou_matrix(b, a), got.T)
    assert box_iou_matrix(np.zeros((0, 4)), b).shape == (0, 4)
    with pytest.raises(ValueError):
        box_iou_matrix(np.zeros((2, 3)), b)


def test_warp_matrices_and_crop_batch_are_bit_identical_to_the_per_box_path():
    """The batched matrices equal ``get_warp_matrix`` bit for bit, so ``crop_batch`` gives exactly the crops of
    ``crop_image`` (a float64 solve of all boxes at once would differ by ulps and move about a third of the crops by
    one level)."""
    from models.geometry import crop_batch, warp_matrices

    rng = np.random.default_rng(7)
    centers = rng.uniform(-100, 3000, (500, 2)).astype(np.float32)
    scales = rng.uniform(0.5, 2000, (500, 2)).astype(np.float32)
    for size in [(192, 256), (288, 384), (256, 256)]:
        batched = warp_matrices(centers, scales, size)
        single = np.stack([get_warp_matrix(c, s, 0.0, size) for c, s in zip(centers, scales)])
        assert batched.dtype == np.float64 and batched.shape == (500, 2, 3)
        assert np.array_equal(batched, single)
    image = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    xy = rng.uniform(-50, 380, (200, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 300, (200, 2))], 1).astype(np.float32)
    centers, scales = bbox_to_center_scale(boxes, (192, 256), 1.25)
    crops = crop_batch(image, centers, scales, (192, 256))
    assert crops.shape == (200, 256, 192, 3) and crops.dtype == np.uint8
    assert np.array_equal(crops, np.stack([crop_image(image, c, s, (192, 256)) for c, s in zip(centers, scales)]))
    assert crop_batch(image, centers[:0], scales[:0], (192, 256)).shape == (0, 256, 192, 3)
