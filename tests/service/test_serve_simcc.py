"""An RTMPose-style SimCC model served by its card alone: a small torch network at random weights with MMDeploy's
contract (input ``input`` float32 NCHW RGB normalised by the card's mean / std; outputs ``simcc_x`` [B, 17, 384] and
``simcc_y`` [B, 17, 512], split ratio 2), exported with ``torch.onnx``, run through the real ``PosePipeline`` (batcher;
onnxruntime CPU and OpenVINO) and the FastAPI app, with and without the flip test.

The expected image keypoints are computed here independently of the service: the test's own normalisation and
onnxruntime session on the crops, a plain numpy argmax decode (MMPose's rules: first maximum, bin / 2, score = the
smaller maximum, flip test = x vectors reversed and joints swapped, then averaged) and the inverse affine
``x / w * scale + center - scale / 2``. A wrong colour order, normalisation, output order, flip or mapping moves
keypoints by whole bins (>= 0.5 crop px); the bound is float32 rounding of the mapping (1e-3 image px).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from core.settings import Settings  # noqa: E402
from inference.pipeline import PosePipeline  # noqa: E402
from models.card import ModelCard  # noqa: E402
from models.geometry import bbox_to_center_scale, crop_batch  # noqa: E402
from models.keypoints import flip_indices  # noqa: E402

pytestmark = pytest.mark.slow  # the torch.onnx export takes several seconds

W, H, RATIO = 192, 256, 2.0
MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])
BOXES = np.array([[40.0, 30.0, 250.0, 330.0], [300.5, 100.25, 420.0, 260.0], [10.0, 200.0, 120.0, 390.0]])


class TinySimCC(torch.nn.Module):
    """[B, 3, 256, 192] -> (simcc_x [B, 17, 384], simcc_y [B, 17, 512]): an 8x8 stride-8 convolution to 17 maps of
    32x24, flattened per joint, and one linear layer per axis (as RTMCCHead ends in ``cls_x`` / ``cls_y``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 17, 8, stride=8)
        self.cls_x = torch.nn.Linear(32 * 24, int(W * RATIO))
        self.cls_y = torch.nn.Linear(32 * 24, int(H * RATIO))

    def forward(self, x):
        f = self.conv(x).flatten(2)
        return self.cls_x(f), self.cls_y(f)


def readme_rtmpose_card() -> dict:
    """The example card of the README's "RTMPose / SimCC models" section."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### RTMPose / SimCC models", 1)[1]
    return json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))


@pytest.fixture(scope="module")
def simcc_card(tmp_path_factory):
    """The exported ONNX and, beside it, the README's RTMPose example card (unchanged)."""
    folder = tmp_path_factory.mktemp("rtmpose")
    torch.manual_seed(0)
    model = TinySimCC().eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.onnx.export(
        model,
        (torch.zeros(2, 3, H, W),),
        dynamo=True,
        input_names=["input"],
        output_names=["simcc_x", "simcc_y"],
        dynamic_shapes=({0: batch},),
        external_data=False,
        verbose=False,
    )
    program.save(str(folder / "end2end.onnx"), external_data=False)
    card = ModelCard.from_dict(readme_rtmpose_card())
    assert card.model_file == "end2end.onnx" and card.input_size == (W, H) and card.output.split_ratio == RATIO
    assert (card.input.mean, card.input.std, card.input.color) == (MEAN.tolist(), STD.tolist(), "RGB")
    return card.save(folder / "end2end.json")


@pytest.fixture(scope="module")
def image():
    """A colourful RGB image (smooth colour ramps plus noise), so the colour order and normalisation matter."""
    rng = np.random.default_rng(22)
    yy, xx = np.mgrid[0:400, 0:480]
    ramps = np.stack([xx * 255 / 480, yy * 255 / 400, (xx + yy) % 256], axis=-1)
    return np.clip(ramps + rng.normal(0, 40, ramps.shape), 0, 255).astype(np.uint8)


def expected_keypoints(card_path, image: np.ndarray, flip: bool) -> np.ndarray:
    """Independent reference: float64 [N, 17, 3] image keypoints (x, y, score)."""
    centers, scales = bbox_to_center_scale(BOXES, (W, H))
    crops = crop_batch(image, centers, scales, (W, H))
    session = ort.InferenceSession(str(card_path.with_suffix(".onnx")), providers=["CPUExecutionProvider"])

    def run(c):
        x = ((c.astype(np.float64) - MEAN) / STD).astype(np.float32).transpose(0, 3, 1, 2)
        sx, sy = session.run(["simcc_x", "simcc_y"], {"input": np.ascontiguousarray(x)})
        return sx.astype(np.float64), sy.astype(np.float64)

    sx, sy = run(crops)
    if flip:
        fx, fy = run(np.ascontiguousarray(crops[:, :, ::-1]))
        fi = flip_indices()
        sx, sy = (sx + fx[:, fi, ::-1]) / 2, (sy + fy[:, fi]) / 2
    for v in (sx, sy):  # the argmax is well separated, so float32 vs float64 averaging cannot change it
        top2 = np.sort(v, axis=-1)[..., -2:]
        assert (top2[..., 1] - top2[..., 0]).min() > 1e-4
    x_crop, y_crop = sx.argmax(-1) / RATIO, sy.argmax(-1) / RATIO
    score = np.minimum(sx.max(-1), sy.max(-1))
    c, s = centers.astype(np.float64)[:, None], scales.astype(np.float64)[:, None]
    x_img = x_crop / W * s[..., 0] + c[..., 0] - s[..., 0] / 2
    y_img = y_crop / H * s[..., 1] + c[..., 1] - s[..., 1] / 2
    assert (score > 0).all()  # no -1 bins here: every row has a positive maximum
    return np.stack([x_img, y_img, score], axis=-1)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("flip", [False, True], ids=["single", "flip-test"])
def test_simcc_card_serves_through_the_pipeline_and_batcher(simcc_card, image, flip, runtime):
    if runtime == "openvino":
        pytest.importorskip("openvino")
    settings = Settings(pose_model=simcc_card, runtime=runtime, flip_test=flip, warmup=False)
    pipe = PosePipeline.from_settings(settings)
    try:
        assert pipe.pose.flip_test is flip and pipe.crops_per_box == (2 if flip else 1)
        result = pipe.predict(image, BOXES)
        assert pipe.batcher.batches_run >= 1
    finally:
        pipe.close()
    want = expected_keypoints(simcc_card, image, flip)
    assert result.keypoints.shape == (3, 17, 3)
    np.testing.assert_allclose(result.keypoints[..., :2], want[..., :2], atol=1e-3)
    # scores: float32 runtimes' rounding (measured <= 1.5e-6); min vs max / mean of the two maxima differs by >> 1e-4
    np.testing.assert_allclose(result.keypoints[..., 2], want[..., 2], atol=1e-4)
    # the two modes really differ (the flip test is applied, not ignored)
    other = expected_keypoints(simcc_card, image, not flip)
    assert np.abs(other[..., :2] - want[..., :2]).max() >= 0.5


def test_simcc_card_over_http_with_caller_boxes(simcc_card, image):
    from fastapi.testclient import TestClient
    from PIL import Image

    from service.app import create_app

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    settings = Settings(pose_model=simcc_card, providers=["CPUExecutionProvider"], flip_test=True, warmup=False)
    with TestClient(create_app(settings, PosePipeline.from_settings(settings))) as client:
        r = client.post("/pose", params={"boxes": json.dumps(BOXES.tolist())}, content=buf.getvalue(),
                        headers={"Content-Type": "image/png"})  # fmt: skip
        assert r.status_code == 200, r.text
        models = client.get("/v1/models").json()
    persons = r.json()["persons"]
    order = [BOXES.tolist().index(p["bbox"]) for p in persons]  # the response's order is its own
    assert sorted(order) == [0, 1, 2]
    got = np.array([p["keypoints"] for p in persons])
    np.testing.assert_allclose(got, expected_keypoints(simcc_card, image, flip=True)[order], atol=0.006)
    assert "simcc" in json.dumps(models)


def test_a_card_naming_a_missing_output_fails_at_load(simcc_card):
    from core.errors import ModelLoadError

    card = ModelCard.load(simcc_card)
    card.output.y_name = "heatmaps"
    card.save(simcc_card.with_name("wrong.json"))
    with pytest.raises(ModelLoadError, match="output 'heatmaps' not in model outputs"):
        PosePipeline.from_settings(Settings(pose_model=simcc_card.with_name("wrong.json"), warmup=False))
