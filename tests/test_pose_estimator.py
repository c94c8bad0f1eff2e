"""Card-driven pose estimator with the real MoveNet Thunder model, and output decoding per card."""

import json

import numpy as np
import pytest

from models.card import InputSpec, ModelCard, ModelCardError, OutputSpec
from models.geometry import box_to_center_scale
from service.errors import InvalidParameterError, ModelLoadError
from service.imageio import decode_image
from service.pose import PoseEstimator, decode_output


def _card(**out):
    return ModelCard(
        name="t",
        model_file="m.onnx",
        input=InputSpec(name="x", width=192, height=256),
        output=OutputSpec(name="y", **out),
    )


def test_decode_output_variants():
    raw = np.array([[[0.25, 0.5, 0.9]]], np.float32)  # [B=1, K=1, 3]
    np.testing.assert_allclose(decode_output(raw, _card(coord_units="normalized")), [[[48, 128, 0.9]]])
    np.testing.assert_allclose(
        decode_output(raw[:, None], _card(coord_order="yx", coord_units="normalized")), [[[96, 64, 0.9]]]
    )
    np.testing.assert_allclose(decode_output(raw[..., :2] * 100, _card()), [[[25, 50, 1.0]]])
    with pytest.raises(Exception, match="keypoint output"):
        decode_output(np.zeros((1, 17, 5)), _card())


def test_card_validation_and_round_trip(tmp_path):
    with pytest.raises(ModelCardError, match="input.layout"):
        ModelCard(
            name="t",
            model_file="m",
            input=InputSpec(name="x", width=1, height=1, layout="CHW"),
            output=OutputSpec(name="y"),
        )
    card = _card(coord_units="normalized")
    p = card.save(tmp_path / "c.json")
    again = ModelCard.load(p)
    assert again.to_dict() == card.to_dict() and again.model_path() == tmp_path / "m.onnx"
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ModelCardError, match="not valid JSON"):
        ModelCard.load(tmp_path / "bad.json")
    (tmp_path / "missing.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(ModelCardError, match="invalid model card"):
        ModelCard.load(tmp_path / "missing.json")


@pytest.fixture(scope="module")
def movenet(movenet_card):
    return PoseEstimator.from_card(movenet_card)


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


def test_movenet_keypoints_land_on_the_annotated_people(movenet, tiny_people):
    image, boxes, gt = tiny_people
    kpts = movenet.predict(image, boxes)
    assert kpts.shape == (len(boxes), 17, 3) and kpts.dtype == np.float32
    visible = gt[..., 2] > 0
    err = np.linalg.norm(kpts[..., :2] - gt[..., :2], axis=-1)[visible]
    box_diag = np.linalg.norm(boxes[:, 2:] - boxes[:, :2], axis=1)
    # median error under 5 % of the box diagonal: the decode, the yx order and the inverse warp are right
    assert np.median(err) < 0.05 * box_diag.mean(), f"median keypoint error {np.median(err):.1f}px"


def test_fixed_batch_model_runs_many_crops_and_predict_matches_crops(movenet, tiny_people):
    image, boxes, _ = tiny_people
    assert movenet.fixed_batch == 1
    crops, centers, scales = movenet.crops_for(image, boxes)
    kc = movenet.predict_crops(crops)
    np.testing.assert_allclose(movenet.to_image(kc, centers, scales), movenet.predict(image, boxes), atol=1e-4)
    one = movenet.predict_crops(crops[1:2])
    np.testing.assert_allclose(one, kc[1:2], atol=1e-5)  # batch composition does not change results
    c, s = box_to_center_scale(boxes, (256, 256))
    np.testing.assert_allclose(centers, c)


def test_flip_test_is_mirror_symmetric(movenet_card, tiny_people):
    pe = PoseEstimator.from_card(movenet_card, flip_test=True)
    image, boxes, _ = tiny_people
    crops, _, _ = pe.crops_for(image, boxes[:2])
    a = pe.predict_crops(crops)
    b = pe.predict_crops(np.ascontiguousarray(crops[:, :, ::-1]))
    mirrored = b[:, pe._flip_idx].copy()
    mirrored[..., 0] = 255 - mirrored[..., 0]
    np.testing.assert_allclose(a, mirrored, atol=1e-3)


def test_bad_inputs_raise_clear_errors(movenet, tiny_people, movenet_card, tmp_path):
    image, _, _ = tiny_people
    with pytest.raises(InvalidParameterError, match="empty"):
        movenet.predict(image, np.array([[10, 10, 10, 50]]))
    with pytest.raises(InvalidParameterError, match="uint8"):
        movenet.predict_crops(np.zeros((1, 128, 128, 3), np.uint8))
    assert movenet.predict(image, np.zeros((0, 4))).shape == (0, 17, 3)
    card = ModelCard.load(movenet_card)
    card.input.name = "images"
    with pytest.raises(ModelLoadError, match="not in model inputs"):
        PoseEstimator.from_card(card.save(tmp_path / "wrong.json"))
    card.input.name = "input:0"
    card.input.width = 192
    with pytest.raises(ModelLoadError, match="does not fit"):
        PoseEstimator.from_card(card.save(tmp_path / "wrong2.json"))
    with pytest.raises(ModelLoadError, match="not found"):
        PoseEstimator.from_card(tmp_path / "nothing.json")
