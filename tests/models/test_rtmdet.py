"""RTMDet-nano person (models/rtmdet.py): MMDet's parameter names and the size MMPose publishes, and the decode of the
head's outputs against an independent one (priors, distance2bbox, sigmoid)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.rtmdet import RTMDET_CONFIGS, STRIDES, RTMDet, RTMDetSepBNHead, randomize  # noqa: E402

NANO = RTMDET_CONFIGS["rtmdet_nano_person"]


def test_nano_has_the_size_mmpose_publishes():
    """MMPose's projects/rtmpose README: RTMDet-nano person, 0.99 M parameters, 0.31 GFLOPs (MACs) at 320 x 320."""
    from torch.utils.flop_counter import FlopCounterMode

    model = RTMDet(NANO).eval()
    assert sum(p.numel() for p in model.parameters()) == 994_423
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 320, 320))
    assert round(counter.get_total_flops() / 2e9, 2) == dict(NANO.published)["gflops"] == 0.31


def test_state_dict_names_are_mmdets():
    keys = set(RTMDet(NANO).state_dict())
    for name in [
        "backbone.stem.0.conv.weight",
        "backbone.stem.2.bn.running_var",
        "backbone.stage1.0.depthwise_conv.conv.weight",  # the stride-2 depthwise-separable conv
        "backbone.stage1.1.blocks.0.conv2.depthwise_conv.conv.weight",  # CSPNeXtBlock's 5x5
        "backbone.stage1.1.attention.fc.bias",  # ChannelAttention
        "backbone.stage4.1.conv1.conv.weight",  # SPPBottleneck
        "backbone.stage4.2.final_conv.bn.weight",
        "neck.reduce_layers.1.conv.weight",
        "neck.top_down_blocks.0.blocks.0.conv1.pointwise_conv.conv.weight",
        "neck.downsamples.1.depthwise_conv.bn.running_mean",
        "neck.bottom_up_blocks.1.short_conv.conv.weight",
        "neck.out_convs.2.pointwise_conv.conv.weight",
        "bbox_head.cls_convs.2.1.depthwise_conv.conv.weight",
        "bbox_head.reg_convs.0.0.pointwise_conv.bn.bias",
        "bbox_head.rtm_cls.0.weight",
        "bbox_head.rtm_reg.2.bias",
    ]:
        assert name in keys, name
    assert not any(k.startswith("bbox_head.rtm_obj") for k in keys)  # with_objectness=False
    shapes = RTMDet(NANO).state_dict()
    assert tuple(shapes["backbone.stem.0.conv.weight"].shape) == (8, 3, 3, 3)
    assert tuple(shapes["bbox_head.rtm_cls.0.weight"].shape) == (1, 64, 1, 1)


def test_share_conv_ties_convolutions_not_batchnorms():
    head = RTMDetSepBNHead(1, 16, 16, share_conv=True)
    assert head.cls_convs[2][1].conv is head.cls_convs[0][1].conv
    assert head.cls_convs[2][1].bn is not head.cls_convs[0][1].bn


def test_forward_is_the_heads_outputs_decoded():
    model = randomize(RTMDet(NANO)).eval()
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 3, 64, 96)).astype(np.float32))
    with torch.no_grad():
        boxes, scores = model(x)
        cls, dist = model.bbox_head(model.neck(model.backbone(x)))
    assert boxes.shape == (2, sum((64 // s) * (96 // s) for s in STRIDES), 4) and scores.shape[-1] == 1
    want_b, want_s = [], []
    for c, d, s in zip(cls, dist, STRIDES):  # MlvlPointGenerator (offset 0), distance2bbox, sigmoid
        _, _, h, w = c.shape
        for y in range(h):
            for xx in range(w):
                px, py = xx * s, y * s
                left, top, right, bottom = d[:, :, y, xx].numpy().T
                want_b.append(np.stack([px - left, py - top, px + right, py + bottom], -1))
                want_s.append(1 / (1 + np.exp(-c[:, :, y, xx].numpy())))
    np.testing.assert_allclose(boxes.numpy(), np.stack(want_b, 1), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(scores.numpy(), np.stack(want_s, 1), rtol=1e-5, atol=1e-6)
