"""The model card (models/card.py): validation, round trip, input preparation and the one decode."""

import json

import numpy as np
import pytest

from models.card import InputSpec, ModelCard, ModelCardError, OutputSpec, card_for_config
from models.codecs import flip_back_heatmaps
from models.keypoints import MPII16, flip_indices
from models.zoo import get_config


def _card(**out):
    return ModelCard(
        name="t",
        model_file="m.onnx",
        input=InputSpec(name="x", width=192, height=256),
        output=OutputSpec(name="y", **out),
    )


def test_keypoint_outputs_decode_by_order_units_and_layout():
    raw = np.array([[[0.25, 0.5, 0.9]]], np.float32)  # [B=1, K=1, 3]
    card = ModelCard(
        name="t",
        model_file="m.onnx",
        input=InputSpec(name="x", width=192, height=256),
        output=OutputSpec(name="y", coord_units="normalized"),
        keypoints={"name": "one", "names": ["a"]},
    )
    np.testing.assert_allclose(card.decode(raw), [[[48, 128, 0.9]]])
    card.output.coord_order = "yx"
    np.testing.assert_allclose(card.decode(raw[:, None]), [[[96, 64, 0.9]]])  # MoveNet's [B, 1, K, 3] yx
    card.output.coord_order, card.output.coord_units = "xy", "input_pixels"
    np.testing.assert_allclose(card.decode(raw[..., :2] * 100), [[[25, 50, 1.0]]])  # no score: 1
    with pytest.raises(ValueError, match="keypoint output"):
        card.decode(np.zeros((1, 17, 5)))
    with pytest.raises(ValueError, match="no flip pairs"):
        card.decode(raw, raw)  # a one-keypoint schema has no flip pairs


def test_flip_test_merges_mirrored_outputs_as_mmpose():
    card = card_for_config(get_config("ipr_res50"))
    coords = np.random.default_rng(0).random((2, 17, 2)).astype(np.float32)
    # a mirrored crop whose prediction is exactly the mirror image: the flip test returns the same keypoints
    mirror = coords[:, flip_indices()].copy()
    mirror[..., 0] = 1 - coords[:, flip_indices(), 0] - 1 / 256
    np.testing.assert_allclose(card.decode(coords, mirror), card.decode(coords), atol=1e-4)
    # heatmaps: the flipped map is flipped back before averaging, then decoded
    hm_card = card_for_config(get_config("td-hm_res50"))
    hm = np.random.default_rng(1).random((1, 17, 64, 48)).astype(np.float32)
    flipped = np.random.default_rng(2).random((1, 17, 64, 48)).astype(np.float32)
    averaged = (hm + flip_back_heatmaps(flipped, flip_indices(), shift=True)) * 0.5
    np.testing.assert_array_equal(hm_card.decode(hm, flipped), hm_card.decode(averaged))
    with pytest.raises(ValueError, match="flipped output"):
        hm_card.decode(hm, flipped[:, :, :32])


def test_input_prepare_follows_the_card():
    crops = np.random.default_rng(0).integers(0, 256, (2, 256, 192, 3), dtype=np.uint8)
    spec = InputSpec(name="x", width=192, height=256, layout="NCHW", dtype="float32", color="BGR",
                     mean=[1.0, 2.0, 3.0], std=[2.0, 2.0, 2.0])  # fmt: skip
    x = spec.prepare(crops)
    assert x.shape == (2, 3, 256, 192) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x[1, 0, 5, 7], (crops[1, 5, 7, 2] - 1.0) / 2.0)  # BGR: channel 0 is blue
    raw = InputSpec(name="x", width=192, height=256, layout="NHWC", dtype="int32").prepare(crops)
    assert raw.dtype == np.int32 and (raw == crops).all()
    with pytest.raises(ValueError, match="uint8"):
        spec.prepare(crops.astype(np.float32))


def test_card_validation_and_round_trip(tmp_path):
    with pytest.raises(ModelCardError, match="input.layout"):
        ModelCard(
            name="t",
            model_file="m",
            input=InputSpec(name="x", width=1, height=1, layout="CHW"),
            output=OutputSpec(name="y"),
        )
    with pytest.raises(ModelCardError, match="flip_pairs"):
        _card().__class__(
            name="t", model_file="m", input=InputSpec(name="x", width=1, height=1), output=OutputSpec(name="y"),
            keypoints={"name": "x", "names": ["a", "b"], "flip_pairs": [[0, 5]]},
        )  # fmt: skip
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


def test_card_for_config_describes_the_exported_graph():
    integral = card_for_config(get_config("ipr_res50_debias"), "m.onnx")
    assert (integral.output.name, integral.output.kind, integral.output.coord_units) == (
        "coords",
        "keypoints",
        "normalized",
    )
    assert (integral.input.layout, integral.input.dtype) == ("NHWC", "uint8") and integral.input.mean is None
    heatmap = card_for_config(get_config("td-hm_res50"))
    assert (heatmap.output.name, heatmap.output.kind, heatmap.input_size) == ("heatmaps", "heatmap", (192, 256))
    assert heatmap.flip_index.tolist() == flip_indices().tolist()
    five = card_for_config(get_config("ipr_res50").replace(num_keypoints=5, keypoint_schema=None))
    assert len(five.keypoint_names) == 5 and five.flip_index is None
    with pytest.raises(ValueError, match="keypoint_schema"):
        get_config("ipr_res50").replace(num_keypoints=5)
    # MPII models: MPII's names and flip pairs; the RLE graph's third output value is the keypoint score
    mpii = card_for_config(get_config("td-reg_res50_rle_mpii"))
    assert mpii.keypoints["name"] == "mpii16" and mpii.keypoint_names == list(MPII16.names)
    assert mpii.flip_index.tolist() == MPII16.flip_index().tolist() and mpii.schema is MPII16
    assert (mpii.output.name, mpii.output.kind, mpii.output.coord_units, mpii.input_size) == (
        "coords",
        "keypoints",
        "normalized",
        (256, 256),
    )
    out = np.zeros((1, 16, 3), np.float32)
    out[0, :, :2], out[0, :, 2] = [0.25, 0.5], np.linspace(0.1, 0.9, 16)
    decoded = mpii.decode(out)
    np.testing.assert_allclose(decoded[0, :, :2], np.tile([64.0, 128.0], (16, 1)))
    np.testing.assert_allclose(decoded[0, :, 2], out[0, :, 2])
    # a card without flip pairs but with MPII's names takes the schema's pairs
    bare = ModelCard.from_dict({**mpii.to_dict(), "keypoints": {"name": "mpii16", "names": list(MPII16.names)}})
    assert bare.flip_index.tolist() == MPII16.flip_index().tolist()


def _simcc_card(**out) -> ModelCard:
    spec = {"name": "simcc_x", "y_name": "simcc_y", "kind": "simcc", "split_ratio": 2.0, **out}
    return ModelCard(
        name="rtm",
        model_file="end2end.onnx",
        input=InputSpec(
            name="input", width=192, height=256, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]
        ),
        output=OutputSpec(**spec),
    )


def test_simcc_card_decodes_argmax_over_split_ratio_and_the_smaller_maximum():
    card = _simcc_card()
    assert card.output.tensor_names == ("simcc_x", "simcc_y")
    sx, sy = np.zeros((2, 17, 384), np.float32), np.zeros((2, 17, 512), np.float32)
    sx[0, 3, 101], sy[0, 3, 7] = 0.8, 0.6  # x bin 101 -> 50.5 px, y bin 7 -> 3.5 px; score min(0.8, 0.6)
    sx[1, 0, 383], sy[1, 0, 511] = 0.2, 0.9  # the last bins
    sx[1, 1, [10, 20]] = 0.5  # a tie: the first index, as np.argmax / MMPose
    sy[1, 1, 0] = 0.5
    out = card.decode((sx, sy))
    assert out.shape == (2, 17, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 3], [50.5, 3.5, np.float32(0.6)])
    np.testing.assert_array_equal(out[1, 0], [191.5, 255.5, np.float32(0.2)])
    np.testing.assert_array_equal(out[1, 1], [5.0, 0.0, 0.5])
    np.testing.assert_array_equal(out[0, 0], [-0.5, -0.5, 0.0])  # all-zero vectors: MMPose's -1 bin, score 0
    with pytest.raises(ValueError, match="384 .x. and 512 .y. long"):
        _simcc_card(split_ratio=1.5).decode((sx, sy))
    with pytest.raises(ValueError, match="pair"):
        card.decode(sx)


def test_simcc_flip_test_reverses_x_vectors_and_swaps_joints_as_mmpose_flip_vectors():
    card = _simcc_card()
    rng = np.random.default_rng(3)
    sx, sy = rng.random((2, 17, 384)), rng.random((2, 17, 512))
    fx, fy = rng.random((2, 17, 384)), rng.random((2, 17, 512))
    fi = flip_indices()
    want = card.decode(((sx + fx[:, fi, ::-1]) * 0.5, (sy + fy[:, fi]) * 0.5))
    np.testing.assert_array_equal(card.decode((sx, sy), (fx, fy)), want)
    # a flipped crop predicting the exact mirror: the flip test returns the single pass
    np.testing.assert_array_equal(card.decode((sx, sy), (sx[:, fi, ::-1], sy[:, fi])), card.decode((sx, sy)))
    with pytest.raises(ValueError, match="flipped outputs"):
        card.decode((sx, sy), (fx[..., :10], fy))


def test_simcc_card_validation_and_round_trip(tmp_path):
    card = _simcc_card()
    back = ModelCard.load(card.save(tmp_path / "rtm.json"))
    assert back == card and back.output.split_ratio == 2.0
    for bad, match in (({"y_name": None}, "y_name"), ({"split_ratio": 0}, "split_ratio"),
                       ({"split_ratio": None}, "split_ratio")):  # fmt: skip
        with pytest.raises(ModelCardError, match=match):
            _simcc_card(**bad)
    with pytest.raises(ModelCardError, match="belong to kind simcc"):
        _card(split_ratio=2.0)
    assert "y_name" not in _card().to_dict()["output"]  # other kinds' cards are unchanged


def test_simcc_non_finite_vectors_give_a_non_finite_score():
    """NaN vectors (a broken model) must not decode to a plausible keypoint: the score is NaN, so the pipeline's
    finiteness check drops that person."""
    sx, sy = np.ones((1, 17, 384), np.float32), np.ones((1, 17, 512), np.float32)
    sx[0, 2, 5] = np.nan
    out = _simcc_card().decode((sx, sy))
    assert np.isnan(out[0, 2, 2]) and np.isfinite(np.delete(out[0], 2, axis=0)).all()
