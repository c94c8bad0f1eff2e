"""RTMDet checkpoint (MMDet 3.x / MMPose ``.pth``) -> ONNX with MMDeploy's end2end contract + detector card.

The graph (:class:`RTMDetEnd2End`) is ``models.rtmdet.RTMDet`` (decoded candidates) followed by an NMS inside the
graph, so the file serves as ``contract: mmdeploy``: input ``input`` float32 [B, 3, S, S] (BGR, ``(x - mean) / std``
with RTMDet's mean / std, image at the top-left, pad 114), outputs ``dets`` float32 [B, K, 5] (x1, y1, x2, y2, score
in input pixels) and ``labels`` int64 [B, K]. The NMS follows the config's ``test_cfg`` (score threshold, IoU
threshold, at most ``max_per_img``) and MMCV's ``batched_nms`` (classes kept apart by a coordinate offset; each
anchor keeps its best class, exact for the one-class person model), greedy over the ``pre_top_k`` best-scoring
candidates, unrolled in the graph (plain ONNX operators: no custom op, TensorRT-parsable); rows that are not
detections are zero with label -1. MMDeploy's own export runs ``NonMaxSuppression`` on up to 5000 candidates
instead, so in crowded images the two can keep different boxes beyond the ``pre_top_k`` best.

Every export is checked: onnxruntime vs the torch graph on a fixed-seed batch of 2 (max |diff| of the boxes, scores
and labels). Which checkpoint was exported, and its SHA-256, go into the card.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from core.hashing import sha256_file
from models.detector_card import RTMDET_MEAN, RTMDET_STD, DetectorCard, default_card
from models.rtmdet import RTMDET_CONFIGS, RTMDet, RTMDetConfig, randomize

log = logging.getLogger(__name__)


class RTMDetExportError(RuntimeError):
    """Unknown config, a checkpoint that does not fit the architecture, or an export that failed its check."""


@dataclass
class RTMDetExport:
    """Result of :func:`export_rtmdet`."""

    onnx_path: Path
    card_path: Path
    max_abs_diff: float
    seconds: float


class RTMDetEnd2End(nn.Module):
    """:class:`models.rtmdet.RTMDet` + score threshold + greedy NMS + top ``keep_top_k``: MMDeploy's output layout.

    Args:
        model: the detector (eval mode).
        pre_top_k: candidates (best score first) that enter the NMS (at most the anchor count).
        keep_top_k: rows of the output (``max_per_img``).
        iou_thr: NMS IoU threshold (a box goes when its IoU with a kept one of its class exceeds it).
        score_thr: candidates below it are dropped.
    """

    def __init__(
        self, model: RTMDet, pre_top_k: int = 200, keep_top_k: int = 100, iou_thr: float = 0.6, score_thr: float = 0.05
    ) -> None:
        super().__init__()
        self.model = model
        self.pre_top_k, self.keep_top_k = pre_top_k, keep_top_k
        self.iou_thr, self.score_thr = iou_thr, score_thr

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        boxes, scores = self.model(x)
        best, label = scores.max(-1)
        k = min(self.pre_top_k, best.shape[1])
        top, idx = best.topk(k, dim=1)
        boxes = torch.gather(boxes, 1, idx[..., None].expand(-1, -1, 4))
        label = torch.gather(label, 1, idx)
        offset = label[..., None].to(boxes.dtype) * (float(max(x.shape[-2:])) * 2 + 1)  # batched_nms
        b = boxes + offset
        area = (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
        lt = torch.maximum(b[:, :, None, :2], b[:, None, :, :2])
        rb = torch.minimum(b[:, :, None, 2:], b[:, None, :, 2:])
        inter = (rb - lt).clamp(min=0).prod(-1)
        iou = inter / (area[:, :, None] + area[:, None, :] - inter).clamp(min=1e-6)
        later = torch.arange(k)[None, :] > torch.arange(k)[:, None]
        keep = top > self.score_thr
        for i in range(k):  # greedy: candidate i, if still kept, removes the later ones it overlaps
            keep = keep & ~((iou[:, i, :] > self.iou_thr) & later[i][None, :] & keep[:, i : i + 1])
        key = torch.where(keep, top, torch.full_like(top, -1.0))
        n = min(self.keep_top_k, k)
        _, order = key.topk(n, dim=1)
        kept = torch.gather(keep, 1, order)
        dets = torch.cat(
            [torch.gather(boxes, 1, order[..., None].expand(-1, -1, 4)), torch.gather(top, 1, order)[..., None]], -1
        )
        dets = dets * kept[..., None].to(dets.dtype)
        labels = torch.where(kept, torch.gather(label, 1, order), torch.full_like(order, -1))
        return dets, labels


def rtmdet_card(config: RTMDetConfig, onnx_path: Path, source: dict) -> DetectorCard:
    """The detector card of an exported RTMDet: contract ``mmdeploy``, input ``input``, BGR, RTMDet's mean / std,
    MMDet's ``Resize`` (keep ratio, half-up rounding) + ``Pad`` (top-left image, 114), person class 0, Apache-2.0."""
    card = default_card(
        "mmdeploy",
        config.input_size,
        name=config.name,
        model_file=onnx_path.name,
        licence="Apache-2.0",
        source=source,
        extra={"published": dict(config.published), "export": "export/rtmdet.py (in-graph greedy NMS)"},
    )
    card.input.name = "input"
    assert card.input.mean == list(RTMDET_MEAN) and card.input.std == list(RTMDET_STD)
    return card


def _onnx_export(module: nn.Module, example: Tensor, path: Path, opset: int, outputs: list[str], name: str) -> None:
    try:
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["input"],
            output_names=outputs,
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},),
            external_data=False,
            verbose=False,
        )
        program.save(str(path), external_data=False)
    except Exception as exc:
        raise RTMDetExportError(f"torch.onnx.export of {name} failed: {exc}") from exc


def _check(
    model: RTMDet, graph: RTMDetEnd2End, example: Tensor, onnx_path: Path, opset: int, name: str
) -> tuple[float, float]:
    """(max |onnxruntime - torch| of the network's boxes and scores, fraction of the end2end detections torch has)."""
    import tempfile

    from inference.runtime import OrtRuntime

    with torch.no_grad():
        want_net = [t.numpy() for t in model(example)]
        want = [t.numpy() for t in graph(example)]
    with tempfile.TemporaryDirectory(prefix="rtmdet-check-") as tmp:
        net_path = Path(tmp) / "network.onnx"
        _onnx_export(model, example, net_path, opset, ["boxes", "scores"], name)
        got_net = OrtRuntime(net_path, ["CPUExecutionProvider"]).run({"input": example.numpy()})
    diff = max(float(np.abs(g - w).max()) for g, w in zip(got_net, want_net))
    got = OrtRuntime(onnx_path, ["CPUExecutionProvider"]).run({"input": example.numpy()})
    if got[0].shape != want[0].shape or got[1].dtype != np.int64:
        raise RTMDetExportError(
            f"exported {name} writes dets {list(got[0].shape)} {got[1].dtype}, torch {list(want[0].shape)}"
        )
    found = total = 0
    for dets, labels, tdets, tlabels in zip(got[0], got[1], want[0], want[1]):
        for d, lab in zip(dets, labels):
            if lab < 0:
                continue
            total += 1
            same = (tlabels == lab) & (np.abs(tdets - d).max(1) <= 1e-2)
            found += bool(same.any())
    return diff, (found / total if total else 1.0)


def load_rtmdet_checkpoint(model: RTMDet, checkpoint: str | Path) -> None:
    """Load an MMDet / MMPose RTMDet ``.pth`` (its ``state_dict``, keys ``backbone.`` / ``neck.`` / ``bbox_head.``)
    strictly.

    Raises:
        RTMDetExportError: missing or unexpected keys, or shapes that differ (the message lists them).
    """
    from models.checkpoints.checkpoint_files import extract_state_dict, read_checkpoint

    state = extract_state_dict(read_checkpoint(checkpoint))
    state = {k: v for k, v in state.items() if k.split(".", 1)[0] in ("backbone", "neck", "bbox_head")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise RTMDetExportError(f"{checkpoint} does not fit {model.config.name}: {exc}") from exc


def export_rtmdet(
    name: str,
    out_dir: str | Path,
    checkpoint: str | Path | None = None,
    opset: int = 18,
    tolerance: float = 1e-3,
    pre_top_k: int = 200,
    min_agreement: float = 0.9,
) -> RTMDetExport:
    """Export an RTMDet config (:data:`models.rtmdet.RTMDET_CONFIGS`) to ``<out_dir>/<name>.onnx`` + its card.

    Args:
        name: the config, e.g. ``rtmdet_nano_person``.
        out_dir: where the ONNX and the card JSON go.
        checkpoint: the ``.pth`` (for ``rtmdet_nano_person``: MMPose's
            ``rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.pth``, whose SHA-256 must start with ``05d8511e``);
            None: random weights (``models.rtmdet.randomize``, seed 0: tests, speed).
        opset: ONNX opset.
        tolerance: largest accepted max |onnxruntime - torch| of the network's decoded boxes (input pixels) and scores
            (the same network exported without the NMS, to a temporary file).
        min_agreement: least fraction of the end2end graph's detections that torch's run also has (same class, box
            within 0.01 px): the NMS is a discrete choice, and candidates whose scores differ by float rounding (common
            at random weights) may swap at the ``pre_top_k`` boundary.
        pre_top_k: candidates entering the in-graph NMS (:class:`RTMDetEnd2End`).

    Returns:
        :class:`RTMDetExport`.

    Raises:
        RTMDetExportError: unknown name, the checkpoint's hash prefix or keys do not fit, or the check failed.
    """
    if name not in RTMDET_CONFIGS:
        raise RTMDetExportError(f"unknown RTMDet config {name!r}; known: {sorted(RTMDET_CONFIGS)}")
    config = RTMDET_CONFIGS[name]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{name}.onnx"
    model = RTMDet(config).eval()
    source: dict = {"config": name, "checkpoint": None, "random_weights_seed": 0}
    if checkpoint is None:
        randomize(model, 0)
    if checkpoint is not None:
        digest = sha256_file(checkpoint)
        if config.sha256_prefix and not digest.startswith(config.sha256_prefix):
            raise RTMDetExportError(f"SHA-256 of {checkpoint} is {digest}; {name}'s starts with {config.sha256_prefix}")
        load_rtmdet_checkpoint(model, checkpoint)
        source = {"config": name, "checkpoint": Path(checkpoint).name, "sha256": digest, "url": config.url}
    graph = RTMDetEnd2End(model, pre_top_k=pre_top_k).eval()
    s = config.input_size
    example = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, s, s)).astype(np.float32))
    t0 = time.perf_counter()
    _onnx_export(graph, example, onnx_path, opset, ["dets", "labels"], name)
    seconds = time.perf_counter() - t0
    try:
        diff, agree = _check(model, graph, example, onnx_path, opset, name)
    except RTMDetExportError:
        onnx_path.unlink(missing_ok=True)
        raise
    if not diff <= tolerance or agree < min_agreement:
        onnx_path.unlink(missing_ok=True)
        raise RTMDetExportError(
            f"{name}: onnxruntime vs torch max |diff| {diff:.3g} (limit {tolerance}) of the network's boxes and scores; "
            f"{agree:.1%} of the detections agree (limit {min_agreement:.0%})"
        )
    card = rtmdet_card(config, onnx_path, {**source, "max_abs_diff": diff, "detections_agree": agree})
    log.info("exported %s -> %s in %.1f s (max |ort - torch| %.2e)", name, onnx_path, seconds, diff)
    from export.detector import embed_detector_card

    embed_detector_card(onnx_path, card)
    return RTMDetExport(onnx_path, card.save(onnx_path.with_suffix(".json")), diff, seconds)
