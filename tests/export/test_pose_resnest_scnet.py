"""Pose export of the ResNeSt and SCNet entries (``models/zoo/families/resnest_scnet.py``): each entry at 8-channel
stem and base width (its real depth, head, input size and flip test) exports to ONNX + card, round-trips through
onnxruntime within the tolerance policy, passes the TensorRT lint and serves through the card's decode with the flip
test: ``tests/export/test_pose.py``'s checks (:func:`test_zoo_config_round_trips_through_onnxruntime`), run on these
entries. ResNeSt's split attention exports as GlobalAveragePool / Reshape / Softmax, SCNet's calibration branch as
AveragePool + Resize (nearest) back to the input's size, also at 384x288 where layer4's 12x9 map pools to 3x2."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import tests.export.test_pose as base  # noqa: E402
from export.pose import crops_from_images, export_pose_model  # noqa: E402
from models.pose_model import build_pose_model, scale_head_logits  # noqa: E402
from models.zoo import get_config  # noqa: E402
from models.zoo.families.resnest_scnet import ENTRIES  # noqa: E402
from tests.small_models import small_backbone  # noqa: E402

pytestmark = pytest.mark.slow  # ONNX exports: seconds each

#: exported on every slow run: one of each backbone at each input size; the deeper ones repeat the same operators
ALWAYS = ("td-hm_resnest50", "td-hm_resnest50_coco-384x288", "td-hm_scnet50", "td-hm_scnet50_coco-384x288")
EXPORTED = tuple(
    n if n in ALWAYS else pytest.param(n, marks=[pytest.mark.zoo_breadth], id=n)
    for n in sorted(c.name for c in ENTRIES)
)


#: torch's seed of each backbone's random weights. coco-tiny's crops have flat (padded) regions where a random
#: heatmap can have two exactly equal maxima (the same float64 value at two pixels), and float32 noise then picks
#: either; these seeds give no maximum within 1e-6 of the runner-up on the crops below (measured for every entry).
SEEDS = {"resnest": 2, "scnet": 0}


def small_model(name: str, crops):
    """The entry at 8-channel stem / base width, 32-channel deconvolutions, head logits spread like a trained
    model's (``scale_head_logits``); ResNeSt-200 / 269 at depth 101 (same blocks; their full depth is checked against
    MMPose's keys and shapes in tests/models/test_resnest_scnet_parity.py)."""
    cfg = small_backbone(get_config(name))  # stem / base 8
    if cfg.backbone_args["depth"] > 101:  # ResNeSt-200 / 269: the same blocks as ResNeSt-101, 2-3x the export time
        cfg = cfg.replace(backbone_args={**cfg.backbone_args, "depth": 101})
    cfg = cfg.replace(deconv_out_channels=(32, 32, 32))
    torch.manual_seed(SEEDS[cfg.backbone])
    return scale_head_logits(build_pose_model(cfg), crops)


class _Exports(base._Exports):
    def __missing__(self, name):
        crops = self.tiny_crops(get_config(name).input_size, 2)
        model = small_model(name, crops)
        self[name] = (model, export_pose_model(model, self.out, crops, "2 coco-tiny crops", threads=self.threads))
        return self[name]


@pytest.fixture(scope="module")
def tiny_crops(coco_tiny):
    images = sorted(coco_tiny.glob("*.jpg"))
    return lambda size, n=4: crops_from_images(images, size, n)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_crops, cpu_settings):
    return _Exports(tmp_path_factory.mktemp("pose-export"), tiny_crops, cpu_settings.intra_op_threads)


@pytest.mark.parametrize("name", EXPORTED)
def test_entry_exports_round_trips_and_serves_with_flip_test(exported, tiny_crops, cpu_settings, name):
    base.test_zoo_config_round_trips_through_onnxruntime(exported, tiny_crops, cpu_settings, name)
