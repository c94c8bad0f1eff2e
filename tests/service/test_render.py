"""Rendering (service/render.py): skeletons and boxes land on the right pixels; JPEG round trip."""

import io

import numpy as np
from PIL import Image

from service.render import encode_jpeg, render_poses


def test_joints_limbs_and_box_are_drawn_where_the_keypoints_are():
    image = np.zeros((200, 300, 3), np.uint8)
    kpts = np.zeros((1, 17, 3), np.float32)
    kpts[0, :, :2] = [150, 100]
    kpts[0, 5] = [100, 50, 0.9]  # left shoulder
    kpts[0, 6] = [200, 50, 0.9]  # right shoulder: the 5-6 limb is drawn between them
    kpts[0, 0] = [20, 180, 0.1]  # below the threshold: not drawn
    out = render_poses(image, np.array([[80, 30, 220, 190]], np.float32), kpts, kpt_score_thr=0.3)
    assert out.shape == image.shape and out is not image and image.max() == 0  # a copy; the input is untouched
    assert tuple(out[50, 100]) == (255, 0, 0)  # joint colour (RGB red)
    assert out[50, 150].max() > 0  # on the limb between the shoulders
    assert tuple(out[110, 80]) == (0, 200, 0)  # the box's left edge
    assert out[180, 20].max() == 0 and out[10, 10].max() == 0  # low-score joint and background untouched


def test_jpeg_encoding_keeps_size_and_colour_order():
    image = np.zeros((40, 60, 3), np.uint8)
    image[..., 0] = 250  # red in RGB
    back = np.asarray(Image.open(io.BytesIO(encode_jpeg(image))).convert("RGB"))
    assert back.shape == (40, 60, 3) and back[..., 0].mean() > 200 and back[..., 2].mean() < 30
