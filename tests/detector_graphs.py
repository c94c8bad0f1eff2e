"""Tiny torch detectors at random weights whose ONNX outputs have exactly each served contract's layout (names, shapes,
dtypes as the exporters write them), for the decode tests of ``inference.person_detector``.

* :class:`TinyYOLOX`: YOLOX's head output (``yolox/models/yolo_head.py``, inference branch): per level
  ``cat([reg, obj.sigmoid(), cls.sigmoid()], 1)``, flattened and concatenated over the strides (8, 16, 32), permuted
  to [B, N, 5 + C]; ``decode=True`` adds ``decode_outputs`` (the grid decode, ``meshgrid`` of y then x), as
  ``tools/export_onnx.py --decode_in_inference`` does. Output name ``output``, input ``images``.
* :class:`TinyRTMDet`: an RTMDet-style head decoded (priors at ``(x, y) * stride``, MMDet ``MlvlPointGenerator``
  offset 0; ``distance2bbox`` of ``exp(reg) * stride``; sigmoid class scores) followed by an in-graph NMS (per class,
  MMCV ``batched_nms``'s class-offset trick, unrolled greedy over the top ``keep`` candidates); suppressed rows are
  zero, as MMDeploy pads. Outputs ``dets`` float32 [B, keep, 5], ``labels`` int64 [B, keep]; input ``input``.
* :class:`TinyUltralytics`: the Ultralytics layout ``output0`` [B, 4 + C, N] (cx, cy, w, h, then sigmoid classes).

Inputs are scaled inside (``input_scale``: YOLOX takes 0..255) so random weights give boxes of a few strides. All
share a small strided backbone (input side 64: levels 8x8, 4x4, 2x2 = 84 anchors). Torch is imported here, so
only tests that export import this module.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

STRIDES = (8, 16, 32)


class _Backbone(nn.Module):
    """Conv-SiLU stages of stride 2; returns the stride 8, 16 and 32 maps."""

    def __init__(self, width: int = 8, input_scale: float = 1.0) -> None:
        super().__init__()
        self.input_scale = input_scale
        chans = [3, width, width, width, width, width]
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, 2, 1), nn.SiLU()) for i in range(5)
        )
        for stage in self.stages:  # He init: features that still depend on the image five layers down
            nn.init.kaiming_normal_(stage[0].weight)
            nn.init.zeros_(stage[0].bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        x = x * self.input_scale
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= 2:
                feats.append(x)
        return feats


def _grids(feats: list[Tensor], strides=STRIDES) -> tuple[Tensor, Tensor]:
    """[1, N, 2] grid cells (x, y) and [1, N, 1] strides, level by level, row-major (YOLOX ``decode_outputs``)."""
    grids, steps = [], []
    for f, s in zip(feats, strides):
        h, w = f.shape[-2:]
        yv, xv = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        grids.append(torch.stack((xv, yv), 2).reshape(1, -1, 2))
        steps.append(torch.full((1, h * w, 1), float(s)))
    return torch.cat(grids, 1).float(), torch.cat(steps, 1)


class TinyYOLOX(nn.Module):
    def __init__(
        self, num_classes: int = 3, decode: bool = False, width: int = 8, input_scale: float = 1 / 255
    ) -> None:
        super().__init__()
        self.backbone = _Backbone(width, input_scale)
        self.reg = nn.ModuleList(nn.Conv2d(width, 4, 1) for _ in STRIDES)
        self.obj = nn.ModuleList(nn.Conv2d(width, 1, 1) for _ in STRIDES)
        self.cls = nn.ModuleList(nn.Conv2d(width, num_classes, 1) for _ in STRIDES)
        self.decode = decode

    def forward(self, x: Tensor) -> Tensor:
        feats = self.backbone(x)
        outs = [
            torch.cat([self.reg[i](f), self.obj[i](f).sigmoid(), self.cls[i](f).sigmoid()], 1)
            for i, f in enumerate(feats)
        ]
        out = torch.cat([o.flatten(start_dim=2) for o in outs], dim=2).permute(0, 2, 1)
        if not self.decode:
            return out
        return self.decode_outputs(out, feats)

    @staticmethod
    def decode_outputs(out: Tensor, feats: list[Tensor]) -> Tensor:
        grid, stride = _grids(feats)
        return torch.cat([(out[..., :2] + grid) * stride, torch.exp(out[..., 2:4]) * stride, out[..., 4:]], dim=-1)


class TinyRTMDet(nn.Module):
    def __init__(self, num_classes: int = 3, keep: int = 20, iou_thr: float = 0.5, width: int = 8) -> None:
        super().__init__()
        self.backbone = _Backbone(width)
        self.reg = nn.ModuleList(nn.Conv2d(width, 4, 1) for _ in STRIDES)
        self.cls = nn.ModuleList(nn.Conv2d(width, num_classes, 1) for _ in STRIDES)
        for conv in self.cls:  # class scores that vary with the place (argmax labels of every class)
            nn.init.normal_(conv.weight, std=0.5)
            nn.init.zeros_(conv.bias)
        self.keep, self.iou_thr = keep, iou_thr

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.backbone(x)
        grid, stride = _grids(feats)
        priors = grid * stride  # MlvlPointGenerator, offset 0
        reg = torch.cat([r(f).flatten(2) for r, f in zip(self.reg, feats)], 2).permute(0, 2, 1)
        cls = torch.cat([c(f).flatten(2) for c, f in zip(self.cls, feats)], 2).permute(0, 2, 1).sigmoid()
        dist = torch.exp(reg) * stride
        boxes = torch.cat([priors - dist[..., :2], priors + dist[..., 2:]], -1)  # distance2bbox
        scores, labels = cls.max(-1)
        top, idx = scores.topk(self.keep, dim=1)
        boxes = torch.gather(boxes, 1, idx[..., None].expand(-1, -1, 4))
        labels = torch.gather(labels, 1, idx)
        shifted = boxes + labels[..., None].float() * 4096.0  # batched_nms: classes never overlap
        keep = self._nms(shifted, top)
        dets = torch.cat([boxes, top[..., None]], -1) * keep[..., None].float()
        labels = labels * keep.long()
        return dets, labels

    def _nms(self, boxes: Tensor, scores: Tensor) -> Tensor:
        """Greedy NMS over score-sorted boxes [B, K, 4] -> keep mask [B, K] (unrolled over K)."""
        area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        lt = torch.maximum(boxes[:, :, None, :2], boxes[:, None, :, :2])
        rb = torch.minimum(boxes[:, :, None, 2:], boxes[:, None, :, 2:])
        inter = (rb - lt).clamp(min=0).prod(-1)
        iou = inter / (area[:, :, None] + area[:, None, :] - inter)
        k = boxes.shape[1]
        later = torch.arange(k)[None, :] > torch.arange(k)[:, None]  # [K, K]: j after i
        keep = scores > 0
        for i in range(k):
            suppress = (iou[:, i, :] > self.iou_thr) & later[i][None, :] & keep[:, i : i + 1]
            keep = keep & ~suppress
        return keep


class TinyUltralytics(nn.Module):
    def __init__(self, num_classes: int = 3, width: int = 8) -> None:
        super().__init__()
        self.yolox = TinyYOLOX(num_classes, decode=True, width=width, input_scale=1.0)

    def forward(self, x: Tensor) -> Tensor:
        out = self.yolox(x)
        return torch.cat([out[..., :4], out[..., 5:]], -1).permute(0, 2, 1)  # no objectness, channels first


def export(model: nn.Module, path: Path, input_name: str, output_names: list[str], size: int = 64) -> Path:
    """torch.onnx (dynamo) export with a dynamic batch axis; float32 input [B, 3, size, size]. Returns ``path``."""
    model.eval()
    example = torch.rand(2, 3, size, size) * 255
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        opset_version=18,
        input_names=[input_name],
        output_names=output_names,
        dynamic_shapes=({0: batch},),
        external_data=False,
        verbose=False,
    )
    program.save(str(path), external_data=False)
    return Path(path)
