"""Pose model (zoo name or ``.pth``, ours or MMPose's) -> ONNX + model card JSON, verified.

The exported graph holds what must run on the accelerator, and nothing that has a numpy home:

* input ``crops``: uint8 [B, h, w, 3] RGB crops (NHWC, 0-255; B dynamic), cut by
  ``models/geometry.py`` exactly as MMPose's ``TopdownAffine`` does;
* inside: cast, NHWC -> NCHW and ``(pixel - mean) / std`` with the RGB ImageNet mean / std
  (``TopdownPoseModel.preprocess``, = MMPose ``PoseDataPreprocessor`` with ``bgr_to_rgb``), then the network;
* output ``coords`` (integral heads: IPR / DSNT / Debias-IPR, and DeepPose regression heads: [B, K, 2] x, y
  normalised to the crop; RLE heads: [B, K, 3], the third value the keypoint score ``mean(1 - sigmoid(sigma))``;
  Debias computes C in log space, so the graph is finite for any logits in fp32 and fp16) or ``heatmaps``
  (SimpleBaseline ``td-hm_*``: [B, K, H, W]).

The card (``models.card.card_for_config``) says how to decode that output; decode and the flip test run
in numpy (``ModelCard.decode`` on ``models.codecs``), the same code for the served graph and the torch
model, as MMDeploy leaves pose post-processing to its SDK. RLE's flip test averages the mirrored pass's scores
with the original's, which equals MMPose's averaging of the sigmas (the score is linear in sigma). The card's
``extra.evaluation`` names the data set that evaluates the model and MMPose's COCO person-score mode
(``pose-eval`` reads both).

Every export is verified on the crops the caller gives: onnxruntime (CPU) vs the torch module, both
decoded by the card to keypoints in crop pixels, judged by the project's tolerance policy
(``models.tolerance.judge_export``: 0.05 crop px, or within the fp32 noise envelope of a float64 torch
run). The verdict and its figures are recorded in the card; a rejected export's files are removed.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from export.onnx_metadata import embed_metadata
from models.card import CARD_METADATA_KEY, ModelCard, card_for_config
from models.tolerance import EXPORT_TOLERANCE_PX, Verdict, judge_export

log = logging.getLogger(__name__)

INPUT_NAME = "crops"
DEFAULT_OPSET = 18
MIN_OPSET = 17


class PoseExportError(RuntimeError):
    """The model could not be exported, or the exported graph failed verification."""


class ServingPoseGraph(nn.Module):
    """uint8 RGB crops [B, h, w, 3] -> the network's output (``coords`` [B, K, 2] or [B, K, 3], or ``heatmaps``
    [B, K, H, W]).

    Args:
        model: a ``models.pose_model.TopdownPoseModel`` in eval mode.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    def forward(self, crops: Tensor) -> Tensor:
        return self.model(self.model.preprocess(crops))


# ----------------------------------------------------------------------------------------------------
# verification crops


def synthetic_crops(input_size: tuple[int, int], n: int = 4) -> np.ndarray:
    """Smooth fixed-seed colour fields, uint8 [n, h, w, 3]: verification crops when no images are given."""
    import cv2

    w, h = input_size
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(n, max(h // 16, 1), max(w // 16, 1), 3), dtype=np.uint8)
    return np.stack([cv2.resize(s, (w, h), interpolation=cv2.INTER_CUBIC) for s in small])


def crops_from_images(paths: list[str | Path], input_size: tuple[int, int], n: int = 8) -> np.ndarray:
    """uint8 RGB crops [m, h, w, 3] (m <= n): the whole of each image, cut with the served geometry
    (``models.geometry``: padding 1.25, aspect fix, ``cv2.warpAffine``) after the served decode.

    Args:
        paths: image files, or folders whose ``*.jpg`` / ``*.png`` files are taken in name order.
        input_size: (w, h) of the crops.
        n: most crops.

    Raises:
        PoseExportError: no readable image among ``paths``.
    """
    from inference.imageio import decode_image
    from models.geometry import bbox_to_center_scale, crop_batch

    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(q for q in p.iterdir() if q.suffix.lower() in (".jpg", ".jpeg", ".png")) if p.is_dir() else [p]
    crops = []
    for f in files[:n]:
        rgb = decode_image(f.read_bytes())
        h, w = rgb.shape[:2]
        center, scale = bbox_to_center_scale(np.array([[0, 0, w - 1, h - 1]], np.float32), input_size)
        crops.append(crop_batch(rgb, center, scale, input_size)[0])
    if not crops:
        raise PoseExportError(f"no images found in {[str(p) for p in paths]} for the export verification")
    return np.stack(crops)


# ----------------------------------------------------------------------------------------------------
# export


@dataclass
class PoseExport:
    """Result of an export: files, the verification verdict and timings."""

    onnx_path: Path
    card_path: Path
    verdict: Verdict
    export_seconds: float
    verify_seconds: float
    crops: str

    @property
    def max_abs_diff_px(self) -> float:
        """max |onnxruntime - torch fp32| over the keypoints, crop pixels."""
        return self.verdict.max_abs_diff


def _torch_onnx_export(graph: nn.Module, example: Tensor, onnx_path: Path, opset: int, output_name: str) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        graph,
        (example,),
        dynamo=True,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[output_name],
        dynamic_shapes=({0: batch},),
        external_data=False,
        verbose=False,
    )
    program.save(str(onnx_path), external_data=False)


def embed_card(onnx_path: Path, card: ModelCard) -> None:
    """Write the card's JSON into the ONNX file's metadata (``metadata_props[models.card.CARD_METADATA_KEY]``,
    :func:`export.onnx_metadata.embed_metadata`); the serving side reads it when no card JSON is beside the file
    (``inference.pose_estimator.load_card``)."""
    embed_metadata(onnx_path, CARD_METADATA_KEY, card.to_dict())


def run_onnx(onnx_path: Path, crops: np.ndarray, threads: int = 0) -> np.ndarray:
    """The graph's output for ``crops`` from onnxruntime's CPU provider (``inference.runtime.OrtRuntime``)."""
    from inference.runtime import OrtRuntime

    rt = OrtRuntime(onnx_path, ["CPUExecutionProvider"], intra_op_threads=threads)
    return rt.run({INPUT_NAME: crops})[0]


def run_torch(graph: nn.Module, crops: np.ndarray, float64: bool = False) -> np.ndarray:
    """The torch module's output for ``crops``; ``float64`` runs a double-precision copy (the exact reference)."""
    module = copy.deepcopy(graph).double() if float64 else graph
    with torch.no_grad():
        return module(torch.from_numpy(crops)).numpy()


def verify(graph: nn.Module, onnx_path: Path, crops: np.ndarray, card: ModelCard, threads: int = 0) -> Verdict:
    """onnxruntime vs the torch module on ``crops``, both decoded by ``card``, judged by ``models.tolerance``.

    Raises:
        ValueError: output shapes differ, or onnxruntime gave a non-finite value.
    """
    judge = verification_card(card)
    got = judge.decode(run_onnx(onnx_path, crops, threads))
    ref = judge.decode(run_torch(graph, crops))
    return judge_export(got, ref, lambda: judge.decode(run_torch(graph, crops, float64=True)))


def verification_card(card: ModelCard) -> ModelCard:
    """The card whose decode :func:`verify` measures the graph with: ``card`` itself, but heatmaps of the ``dark`` /
    ``udp`` codecs through the ``msra`` decode (argmax + quarter pixel). The graph is what is verified: DARK / UDP's
    refinement is numpy code applied alike to both outputs after it, and its Newton step on the log of the blurred
    map is ill-conditioned on untrained maps (offsets of pixels from 1e-6 differences), which would judge the
    decode's conditioning instead of the export."""
    if card.output.codec == "msra":
        return card
    output = dataclasses.replace(card.output, codec="msra", blur_kernel_size=None)
    return dataclasses.replace(card, output=output)


def evaluation_extra(cfg) -> dict:
    """How the model is evaluated, for the card's ``extra.evaluation``: ``dataset`` (``"coco"``, ``"mpii"``, or None
    for a generic schema) and ``score_mode`` (MMPose ``CocoMetric``'s person score: ``bbox_rle`` for RLE's COCO
    configs, else ``bbox_keypoint``)."""
    return {"dataset": cfg.dataset, "score_mode": cfg.score_mode}


def export_pose_model(
    model: nn.Module,
    output_dir: str | Path,
    crops: np.ndarray,
    crops_description: str,
    name: str | None = None,
    source: dict | None = None,
    opset: int = DEFAULT_OPSET,
    tolerance_px: float = EXPORT_TOLERANCE_PX,
    threads: int = 0,
) -> PoseExport:
    """Export a built ``TopdownPoseModel`` to ``<output_dir>/<name>.onnx`` + ``<name>.json`` and verify it.

    Args:
        model: ``models.pose_model.TopdownPoseModel`` (weights loaded).
        output_dir: folder for the two files (created).
        crops: uint8 RGB crops [N, h, w, 3] to verify on (:func:`crops_from_images`, :func:`synthetic_crops`).
        crops_description: what ``crops`` are (recorded in the card).
        name: file stem and card name (default ``model.config.name``).
        source: checkpoint facts for the card (``checkpoint``, ``sha256``, ``format``, ...).
        opset: ONNX opset (>= 17).
        tolerance_px: the pixel bound of ``models.tolerance.judge_export``.
        threads: onnxruntime intra-op threads for the verification (0: library default).

    Returns:
        :class:`PoseExport`.

    Raises:
        PoseExportError: opset < 17, bad crops, the exporter failed, or the verification rejected the graph
            (the message names the figures; the files are removed).
    """
    if opset < MIN_OPSET:
        raise PoseExportError(f"opset {opset} < {MIN_OPSET}")
    cfg = model.config
    name = name or cfg.name
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path, card_path = out_dir / f"{name}.onnx", out_dir / f"{name}.json"
    graph = ServingPoseGraph(model.eval()).eval()
    crops = np.ascontiguousarray(crops, dtype=np.uint8)
    w, h = cfg.input_size
    if crops.ndim != 4 or crops.shape[1:] != (h, w, 3) or len(crops) == 0:
        raise PoseExportError(f"verification crops must be uint8 [N >= 1, {h}, {w}, 3], got {list(crops.shape)}")
    card = card_for_config(cfg, onnx_path.name, name=name, source=dict(source or {}))

    t0 = time.perf_counter()
    try:
        # batch >= 2 in the example: torch.export specialises a size-1 axis to a constant
        example = np.concatenate([crops, crops])[:2]
        _torch_onnx_export(graph, torch.from_numpy(example), onnx_path, opset, card.output.name)
    except Exception as exc:
        raise PoseExportError(f"torch.onnx.export of {name} failed: {exc}") from exc
    export_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    try:
        verdict = verify(graph, onnx_path, crops, card, threads)
        if not verdict.passed:
            raise ValueError(verdict.describe())
    except ValueError as exc:
        onnx_path.unlink(missing_ok=True)
        raise PoseExportError(f"{name}: export rejected on {crops_description}: {exc}") from exc
    verify_seconds = time.perf_counter() - t1
    log.info("%s: exported in %.1f s; %s (%s)", name, export_seconds, verdict.describe(), crops_description)
    card.extra = {
        "config": cfg.to_dict(),
        "published": dict(cfg.published),
        "normalization_in_graph": {"color": "RGB", "mean": list(cfg.mean), "std": list(cfg.std)},
        "evaluation": evaluation_extra(cfg),
        "opset": opset,
        "torch": torch.__version__,
        "verification": {
            "runtime": "onnxruntime CPUExecutionProvider",
            "crops": crops_description,
            **verdict.to_dict(),
        },
        "export_seconds": round(export_seconds, 2),
    }
    card.save(card_path)
    embed_card(onnx_path, card)
    return PoseExport(onnx_path, card_path, verdict, export_seconds, verify_seconds, crops_description)


def export_pose(
    name_or_path: str | Path,
    output_dir: str | Path,
    check_images: list[str | Path] | None = None,
    num_check_crops: int = 8,
    checkpoint: str | Path | None = None,
    config: str | dict | None = None,
    cache_dir: str | Path | None = None,
    offline: bool = False,
    name: str | None = None,
    **kwargs,
) -> PoseExport:
    """Load a checkpoint and export it (see :func:`export_pose_model` for ``kwargs``).

    Args:
        name_or_path: a zoo name (its published MMPose checkpoint is downloaded, hash-verified, into
            ``cache_dir``) or a ``.pth`` path (ours, or MMPose's).
        output_dir: folder for ``<name>.onnx`` and ``<name>.json``.
        check_images: images or folders whose crops verify the export (:func:`crops_from_images`);
            None: :func:`synthetic_crops`.
        num_check_crops: how many verification crops.
        checkpoint: an already-downloaded checkpoint for a zoo name (skips the download).
        config: config override for an MMPose file the zoo does not know (zoo name or dict).
        cache_dir: checkpoint folder for zoo names (``Settings.cache.checkpoints``).
        offline: never download.
        name: output stem (default: the zoo / config name).

    Raises:
        PoseExportError: the checkpoint cannot be loaded (missing, wrong keys, download failed) or the
            export / verification failed.
    """
    from models.checkpoints import CheckpointError, ChecksumError, load_pose_checkpoint

    src = checkpoint if checkpoint is not None else name_or_path
    if checkpoint is not None and config is None and not Path(str(name_or_path)).is_file():
        config = str(name_or_path)
    try:
        model, meta = load_pose_checkpoint(src, cache_dir=cache_dir, config=config, offline=offline)
    except (FileNotFoundError, CheckpointError, ChecksumError, KeyError, ValueError) as exc:
        raise PoseExportError(f"cannot load {src}: {exc}") from exc
    size = model.config.input_size
    if check_images:
        crops = crops_from_images(check_images, size, num_check_crops)
        description = f"{len(crops)} crops of {', '.join(map(str, check_images))}"
    else:
        crops, description = synthetic_crops(size, num_check_crops), f"{num_check_crops} synthetic crops (fixed seed)"
    source = {k: meta[k] for k in ("checkpoint", "sha256", "format", "config_name") if k in meta}
    name = name or meta.get("config_name")
    return export_pose_model(model, output_dir, crops, description, name, source, **kwargs)
