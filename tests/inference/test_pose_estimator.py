"""Card-driven pose estimator (inference/pose_estimator.py) with the real MoveNet Thunder model."""

import json

import numpy as np
import pytest

from core.errors import InvalidParameterError, ModelLoadError
from inference.imageio import decode_image
from inference.pose_estimator import PoseEstimator
from models.card import ModelCard
from models.geometry import bbox_to_center_scale
from models.tolerance import EXPORT_TOLERANCE_PX, assert_close


@pytest.fixture(scope="module")
def movenet(movenet_card, cpu_settings):
    return PoseEstimator.from_settings(movenet_card, cpu_settings)


@pytest.fixture(scope="module")
def tiny_people(coco_tiny):
    gt = json.loads((coco_tiny / "test_coco.json").read_text())
    im = next(i for i in gt["images"] if i["file_name"] == "000000196141.jpg")
    anns = [a for a in gt["annotations"] if a["image_id"] == im["id"] and a["num_keypoints"] >= 10]
    image = decode_image((coco_tiny / im["file_name"]).read_bytes())
    boxes = np.array(
        [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns]
    )
    gt_kpts = np.array([a["keypoints"] for a in anns], np.float64).reshape(len(anns), 17, 3)
    return image, boxes, gt_kpts


def _predict(pe: PoseEstimator, image, boxes):
    crops, centers, scales = pe.crops_for(image, boxes)
    return pe.to_image(pe.predict_crops(crops), centers, scales)


def test_movenet_keypoints_land_on_the_annotated_people(movenet, tiny_people):
    image, boxes, gt = tiny_people
    kpts = _predict(movenet, image, boxes)
    assert kpts.shape == (len(boxes), 17, 3) and kpts.dtype == np.float32
    visible = gt[..., 2] > 0
    err = np.linalg.norm(kpts[..., :2] - gt[..., :2], axis=-1)[visible]
    box_diag = np.linalg.norm(boxes[:, 2:] - boxes[:, :2], axis=1)
    # median error under 5 % of the box diagonal: the decode, the yx order and the inverse warp are right
    assert np.median(err) < 0.05 * box_diag.mean(), f"median keypoint error {np.median(err):.1f}px"


def test_fixed_batch_model_runs_many_crops_one_by_one(movenet, tiny_people):
    image, boxes, _ = tiny_people
    assert movenet.fixed_batch == 1 and len(boxes) >= 3
    crops, centers, scales = movenet.crops_for(image, boxes)
    kc = movenet.predict_crops(crops)
    one = movenet.predict_crops(crops[1:2])
    assert_close(one, kc[1:2], EXPORT_TOLERANCE_PX, "one crop alone vs in a batch")
    c, s = bbox_to_center_scale(boxes, (256, 256))
    np.testing.assert_allclose(centers, c)
    assert np.abs(kc[0, :, :2] - kc[1, :, :2]).max() > 10  # different people, different keypoints


def test_flip_test_is_mirror_symmetric(movenet_card, tiny_people, cpu_settings):
    from models.codecs import flip_back_keypoints

    pe = PoseEstimator.from_settings(movenet_card, cpu_settings.model_copy(update={"flip_test": True}))
    image, boxes, _ = tiny_people
    crops, _, _ = pe.crops_for(image, boxes[:2])
    a = pe.predict_crops(crops)
    b = pe.predict_crops(np.ascontiguousarray(crops[:, :, ::-1]))
    assert_close(flip_back_keypoints(b, pe.card.flip_index, 256), a, EXPORT_TOLERANCE_PX, "flip test of mirrored crops")
    plain = PoseEstimator.from_settings(movenet_card, cpu_settings).predict_crops(crops)
    assert np.abs(plain - a).max() > 0.1  # the mirrored pass changed the answer


def test_bad_inputs_raise_clear_errors(movenet, tiny_people, movenet_card, tmp_path, cpu_settings):
    image, _, _ = tiny_people
    with pytest.raises(InvalidParameterError, match="empty"):
        movenet.crops_for(image, np.array([[10, 10, 10, 50]]))
    with pytest.raises(InvalidParameterError, match="uint8"):
        movenet.predict_crops(np.zeros((1, 128, 128, 3), np.uint8))
    assert movenet.predict_crops(np.zeros((0, 256, 256, 3), np.uint8)).shape == (0, 17, 3)
    card = ModelCard.load(movenet_card)
    card.input.name = "images"
    with pytest.raises(ModelLoadError, match="not in model inputs"):
        PoseEstimator.from_settings(card.save(tmp_path / "wrong.json"), cpu_settings)
    card.input.name = "input:0"
    card.input.width = 192
    with pytest.raises(ModelLoadError, match="does not fit"):
        PoseEstimator.from_settings(card.save(tmp_path / "wrong2.json"), cpu_settings)
    with pytest.raises(ModelLoadError, match="not found"):
        PoseEstimator.from_settings(tmp_path / "nothing.json", cpu_settings)
    card.input.width = 256
    card.keypoints = {"name": "anon", "names": [f"k{i}" for i in range(17)]}
    with pytest.raises(ModelLoadError, match="no flip pairs"):
        PoseEstimator.from_settings(
            card.save(tmp_path / "anon.json"), cpu_settings.model_copy(update={"flip_test": True})
        )
