"""Rendering (inference/render.py): skeletons and boxes land on the right pixels, left / right / centre colours from
the keypoint names, track labels and per-track colours; JPEG round trip."""

import io

import numpy as np
from PIL import Image

from inference.render import (
    BOX_COLOR,
    CENTER_COLOR,
    LEFT_COLOR,
    RIGHT_COLOR,
    TRACK_PALETTE,
    encode_jpeg,
    keypoint_sides,
    render_jpeg,
    render_poses,
    track_color,
)
from models.keypoints import COCO17_NAMES, MPII16_NAMES

BOX = np.array([[80, 30, 220, 190]], np.float32)


def _tinted(pixel, color) -> bool:
    """Whether ``pixel`` is ``color`` at some intensity (anti-aliased limbs are not drawn at full strength)."""
    pixel, color = np.asarray(pixel, float), np.asarray(color, float)
    return pixel.max() > 0.5 * color.max() and np.abs(pixel / pixel.max() - color / color.max()).max() < 0.1


def _shoulders_and_nose() -> np.ndarray:
    kpts = np.zeros((1, 17, 3), np.float32)
    kpts[0, :, :2] = [150, 100]
    kpts[0, 5] = [100, 50, 0.9]  # left shoulder
    kpts[0, 6] = [200, 50, 0.9]  # right shoulder: the 5-6 limb is drawn between them
    kpts[0, 11] = [100, 150, 0.9]  # left hip: the 5-11 limb is a left limb
    kpts[0, 0] = [20, 180, 0.1]  # below the threshold: not drawn
    return kpts


def test_joints_limbs_and_box_are_drawn_where_the_keypoints_are():
    image = np.zeros((200, 300, 3), np.uint8)
    out = render_poses(image, BOX, _shoulders_and_nose(), kpt_score_thr=0.3)
    assert out.shape == image.shape and out is not image and image.max() == 0  # a copy; the input is untouched
    assert tuple(out[50, 100]) == (255, 0, 0)  # joint colour without names (RGB red)
    assert tuple(out[50, 200]) == (255, 0, 0)
    assert out[50, 150].max() > 0  # on the limb between the shoulders
    assert tuple(out[110, 80]) == BOX_COLOR  # the box's left edge
    assert out[180, 20].max() == 0 and out[10, 10].max() == 0  # low-score joint and background untouched


def test_left_and_right_joints_and_limbs_in_their_colours():
    image = np.zeros((200, 300, 3), np.uint8)
    out = render_poses(image, BOX, _shoulders_and_nose(), keypoint_names=COCO17_NAMES)
    assert tuple(out[50, 100]) == LEFT_COLOR  # left shoulder
    assert tuple(out[50, 200]) == RIGHT_COLOR  # right shoulder
    assert tuple(out[150, 100]) == LEFT_COLOR  # left hip
    assert _tinted(out[100, 100], LEFT_COLOR)  # on the left shoulder - left hip limb (both ends left)
    assert _tinted(out[50, 150], CENTER_COLOR)  # the shoulder-to-shoulder limb crosses the body: centre
    assert tuple(out[110, 80]) == BOX_COLOR and out[180, 20].max() == 0


def test_keypoint_sides_from_names():
    assert keypoint_sides(COCO17_NAMES, 17).tolist() == [0] + [-1, 1] * 8
    mpii = keypoint_sides(MPII16_NAMES, 16)
    assert mpii[0] == 1 and mpii[5] == -1 and mpii[6] == 0  # right_ankle, left_ankle, pelvis
    assert keypoint_sides(None, 4).tolist() == [0] * 4 and keypoint_sides(["left_a"], 2).tolist() == [0, 0]


def test_track_ids_colour_the_box_and_label_it_at_the_top_left():
    image = np.zeros((200, 300, 3), np.uint8)
    kpts = np.zeros((2, 17, 3), np.float32)  # no joint drawn: only boxes and labels
    boxes = np.array([[80, 60, 140, 190], [180, 60, 260, 190]], np.float32)
    plain = render_poses(image, boxes, kpts)
    out = render_poses(image, boxes, kpts, track_ids=np.array([3, 7]))
    assert tuple(out[120, 80]) == track_color(3) and tuple(out[120, 180]) == track_color(7)
    assert track_color(3) != track_color(7)
    # the labels sit above each box's top-left corner, where the plain drawing left the background
    for x1, y1 in ((80, 60), (180, 60)):
        above = (slice(y1 - 15, y1), slice(x1, x1 + 30))
        assert plain[above].max() == 0 and (out[above] != plain[above]).any()
    near_three = out[45:60, 80:110].reshape(-1, 3)
    assert (near_three == track_color(3)).all(-1).any()  # the label's background is the track's colour


def test_label_moves_inside_a_box_at_the_top_edge():
    image = np.zeros((100, 100, 3), np.uint8)
    out = render_poses(image, np.array([[10, 0, 90, 90]], np.float32), np.zeros((1, 17, 3)), track_ids=[1])
    assert (out[2:12, 12:30] != 0).any()


def test_track_colour_is_stable_per_id():
    assert track_color(3) == track_color(3) == TRACK_PALETTE[3]
    assert track_color(3 + len(TRACK_PALETTE)) == track_color(3)
    assert len({track_color(i) for i in range(len(TRACK_PALETTE))}) == len(TRACK_PALETTE)
    image = np.zeros((200, 300, 3), np.uint8)
    kpts = np.zeros((1, 17, 3), np.float32)
    a = render_poses(image, BOX, kpts, track_ids=np.array([5]))
    b = render_poses(image + 0, BOX + 0, kpts, track_ids=np.array([5], np.int64))
    assert np.array_equal(a, b)


def test_jpeg_encoding_keeps_size_and_colour_order():
    image = np.zeros((40, 60, 3), np.uint8)
    image[..., 0] = 250  # red in RGB
    back = np.asarray(Image.open(io.BytesIO(encode_jpeg(image))).convert("RGB"))
    assert back.shape == (40, 60, 3) and back[..., 0].mean() > 200 and back[..., 2].mean() < 30


def test_render_jpeg_downscales_with_names_and_track_ids():
    image = np.zeros((400, 600, 3), np.uint8)
    kpts = _shoulders_and_nose() * [2, 2, 1]
    data = render_jpeg(image, BOX * 2, kpts, 60_000, keypoint_names=COCO17_NAMES, track_ids=np.array([2]))
    back = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert back.shape == (200, 300, 3)
    assert np.abs(back[50, 100].astype(int) - LEFT_COLOR).max() < 60  # left shoulder, scaled with the image
