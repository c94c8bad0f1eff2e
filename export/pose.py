"""Pose model (zoo name or ``.pth``, ours or MMPose's) -> ONNX + model card JSON, verified.

The exported graph is the whole model-side of serving, so the service needs nothing but the card:

* input ``crops``: uint8 [B, h, w, 3] RGB crops (NHWC, 0-255; B dynamic), cut by
  ``models/geometry.py`` exactly as MMPose's ``TopdownAffine`` does;
* inside: NHWC -> NCHW, ``(pixel - mean) / std`` with the RGB ImageNet mean / std
  (``TopdownPoseModel.preprocess``, = MMPose ``PoseDataPreprocessor`` with ``bgr_to_rgb``), the network,
  optionally MMPose's flip test (``TopdownPoseModel.forward_flip_test``), and the decode;
* output ``keypoints``: float32 [B, K, 3] = x, y in crop pixels (MMPose convention), score.

Decode in the graph follows the codecs in ``models/codecs.py``: integral heads (IPR / DSNT / Debias-IPR)
give normalised coordinates, multiplied by the input size, score 1 (MMPose ``RegressionLabel.decode``:
integral models carry no confidence); heatmap heads (``td-hm_res50``) decode by argmax plus MMPose's
quarter-pixel refinement towards the higher neighbour (``MSRAHeatmap.decode``, ``refine_keypoints``),
score = the heatmap maximum. Debias computes C in log space (``models/heads.py``), so the graph stays
finite for any logits in fp32 and fp16.

Every export is verified: onnxruntime (CPU) output vs the PyTorch module on a batch of real crops
(cut from the coco-tiny images around their annotated people when the assets are present, else a
clearly reported synthetic fallback); the maximum |difference| in crop pixels is recorded in the card
and the export fails above the tolerance (1e-3 px by default).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from models.card import InputSpec, ModelCard, OutputSpec
from models.keypoints import COCO17_NAMES

log = logging.getLogger(__name__)

INPUT_NAME = "crops"
OUTPUT_NAME = "keypoints"
DEFAULT_OPSET = 18
MIN_OPSET = 17


class PoseExportError(RuntimeError):
    """The model could not be exported, or the exported graph failed verification."""


class ServingPoseGraph(nn.Module):
    """uint8 RGB crops [B, h, w, 3] -> keypoints float32 [B, K, 3] (x, y in crop pixels, score).

    Args:
        model: a ``models.pose_model.TopdownPoseModel`` in eval mode.
        flip_test: MMPose's flip test inside the graph (averaging with the flipped crop's output).
    """

    def __init__(self, model: nn.Module, flip_test: bool = False) -> None:
        super().__init__()
        from models.pose_model import PoseInferenceModule

        self.config = model.config
        self.net = PoseInferenceModule(model, flip_test=flip_test, uint8_rgb_input=True)
        w, h = self.config.input_size
        self.register_buffer("input_wh", torch.tensor([w, h], dtype=torch.float32), persistent=False)

    def forward(self, crops: Tensor) -> Tensor:
        out = self.net(crops)
        if self.config.head_kind == "integral":
            xy = out * self.input_wh
            return torch.cat([xy, torch.ones_like(xy[..., :1])], dim=-1)
        return decode_heatmaps_torch(out, self.config.input_size)


def decode_heatmaps_torch(heatmaps: Tensor, input_size: tuple[int, int]) -> Tensor:
    """MMPose ``MSRAHeatmap.decode`` (argmax, quarter-pixel refinement, scale) in graph-exportable torch.

    Args:
        heatmaps: float [B, K, H, W].
        input_size: (w, h) of the crop.

    Returns:
        float32 [B, K, 3]: x, y in crop pixels (-scale where the maximum is <= 0, as MMPose's -1 locations),
        score = heatmap maximum. Matches ``models.codecs.decode_heatmaps``.
    """
    b, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, k, h * w)
    idx = torch.argmax(flat, dim=2)
    vals = torch.amax(flat, dim=2)
    xi = idx % w
    yi = torch.div(idx, w, rounding_mode="floor")
    neg = vals <= 0
    xi = torch.where(neg, torch.full_like(xi, -1), xi)
    yi = torch.where(neg, torch.full_like(yi, -1), yi)

    def at(y: Tensor, x: Tensor) -> Tensor:
        return torch.gather(flat, 2, (y * w + x).unsqueeze(-1)).squeeze(-1)

    ok_x = (xi > 1) & (xi < w - 1) & (yi > 0) & (yi < h)
    ok_y = (yi > 1) & (yi < h - 1) & (xi > 0) & (xi < w)
    xc, yc = xi.clamp(1, w - 2), yi.clamp(1, h - 2)
    ycx, xcy = yi.clamp(0, h - 1), xi.clamp(0, w - 1)
    zero = torch.zeros_like(vals)
    dx = torch.where(ok_x, at(ycx, (xc + 1).clamp(max=w - 1)) - at(ycx, xc - 1), zero)
    dy = torch.where(ok_y, at((yc + 1).clamp(max=h - 1), xcy) - at(yc - 1, xcy), zero)
    x = xi.to(torch.float32) + torch.sign(dx) * 0.25
    y = yi.to(torch.float32) + torch.sign(dy) * 0.25
    x = x * (float(input_size[0]) / w)
    y = y * (float(input_size[1]) / h)
    return torch.stack([x, y, vals.to(torch.float32)], dim=-1)


# ----------------------------------------------------------------------------------------------------
# verification crops


def assets_dir() -> Path:
    """``$POSE_ASSETS_DIR`` or ``<repo>/../shared/assets`` (the test assets, see ``tests/conftest.py``)."""
    env = os.environ.get("POSE_ASSETS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "assets"


def real_crops(input_size: tuple[int, int], n: int = 4, assets: Path | None = None) -> np.ndarray | None:
    """uint8 RGB crops [n, h, w, 3] of the annotated people in coco-tiny, or None when the assets are absent.

    Boxes are the ground-truth COCO boxes (xywh -> xyxy), cut with MMPose's top-down geometry
    (``models.geometry``: padding 1.25, aspect fix, ``cv2.warpAffine``), largest people first.
    """
    from models.geometry import bbox_xywh2xyxy, box_to_center_scale, crop_batch
    from service.imageio import decode_image

    root = (assets or assets_dir()) / "coco-tiny"
    ann_path = root / "test_coco.json"
    if not ann_path.is_file():
        return None
    data = json.loads(ann_path.read_text())
    files = {im["id"]: im["file_name"] for im in data["images"]}
    anns = sorted(
        (a for a in data["annotations"] if a.get("num_keypoints", 0) > 0 and a["image_id"] in files),
        key=lambda a: -a["area"],
    )
    crops = []
    for a in anns[:n]:
        path = root / files[a["image_id"]]
        if not path.is_file():
            continue
        rgb = decode_image(path.read_bytes())  # the service's decode: what is served is what is verified
        box = bbox_xywh2xyxy(np.asarray([a["bbox"]], dtype=np.float32))
        center, scale = box_to_center_scale(box, input_size)
        crops.append(crop_batch(rgb, center, scale, input_size)[0])
    return np.stack(crops) if crops else None


def synthetic_crops(input_size: tuple[int, int], n: int = 4) -> np.ndarray:
    """Fallback crops when the real assets are absent: smooth fixed-seed colour fields, uint8 [n, h, w, 3]."""
    import cv2

    w, h = input_size
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(n, max(h // 16, 1), max(w // 16, 1), 3), dtype=np.uint8)
    return np.stack([cv2.resize(s, (w, h), interpolation=cv2.INTER_CUBIC) for s in small])


def verification_crops(input_size: tuple[int, int], n: int = 4) -> tuple[np.ndarray, str]:
    """(crops uint8 [n, h, w, 3], description): real coco-tiny crops if available, else synthetic ones."""
    crops = real_crops(input_size, n)
    if crops is not None and len(crops):
        return crops, f"{len(crops)} coco-tiny ground-truth person crops"
    log.warning("coco-tiny assets not found at %s: verifying on synthetic crops instead", assets_dir())
    return synthetic_crops(input_size, n), f"{n} synthetic crops (coco-tiny assets not found)"


# ----------------------------------------------------------------------------------------------------
# export


@dataclass
class PoseExport:
    """Result of an export: files, the measured deviation and timings."""

    onnx_path: Path
    card_path: Path
    max_abs_diff_px: float
    export_seconds: float
    verify_seconds: float
    crops: str


def _torch_onnx_export(graph: nn.Module, example: Tensor, onnx_path: Path, opset: int) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        graph,
        (example,),
        dynamo=True,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch},),
        external_data=False,
        verbose=False,
    )
    program.save(str(onnx_path), external_data=False)


def run_onnx(onnx_path: Path, crops: np.ndarray) -> np.ndarray:
    """onnxruntime (CPU, default graph optimisations) output for ``crops``: float32 [B, K, 3]."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {INPUT_NAME: crops})
    if not np.isfinite(got).all():
        raise PoseExportError(f"onnxruntime output of {onnx_path} has non-finite values")
    return got


def run_torch(graph: nn.Module, crops: np.ndarray, float64: bool = False) -> np.ndarray:
    """The torch module's output for ``crops``; ``float64`` runs a double-precision copy (the exact reference)."""
    module = copy.deepcopy(graph).double() if float64 else graph
    with torch.no_grad():
        return module(torch.from_numpy(crops)).numpy()


def verify_onnx(graph: nn.Module, onnx_path: Path, crops: np.ndarray) -> float:
    """Max |onnxruntime - torch (fp32)| over the keypoints [B, K, 3] for ``crops`` (crop pixels for x, y)."""
    got, ref = run_onnx(onnx_path, crops), run_torch(graph, crops)
    if got.shape != ref.shape:
        raise PoseExportError(f"onnxruntime output {list(got.shape)} != torch output {list(ref.shape)}")
    return float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max())


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def export_pose_model(
    model: nn.Module,
    output_dir: str | Path,
    name: str | None = None,
    source: dict | None = None,
    flip_test: bool = False,
    opset: int = DEFAULT_OPSET,
    tolerance_px: float = 1e-3,
    crops: np.ndarray | None = None,
    crops_description: str | None = None,
    num_check_crops: int = 4,
    strict: bool = True,
) -> PoseExport:
    """Export a built ``TopdownPoseModel`` to ``<output_dir>/<name>.onnx`` + ``<name>.json`` and verify it.

    Args:
        model: ``models.pose_model.TopdownPoseModel`` (weights loaded).
        output_dir: folder for the two files (created).
        name: file stem and card name (default ``model.config.name``).
        source: checkpoint facts for the card (``checkpoint``, ``sha256``, ``format``, ...).
        flip_test: MMPose flip test inside the graph (recorded as ``flip_test_in_graph``).
        opset: ONNX opset (>= 17).
        tolerance_px: largest accepted max |onnxruntime - torch| in crop pixels (scores included).
        crops: uint8 RGB crops [N, h, w, 3] to verify on (default :func:`verification_crops`).
        crops_description: what ``crops`` are (recorded in the card).
        num_check_crops: how many crops :func:`verification_crops` cuts.
        strict: True (default, the contract): fail whenever |onnxruntime - torch| > ``tolerance_px``.
            False (``pose-export pose --allow-fp32-noise``): an export above the tolerance is still
            accepted when onnxruntime is as close to a float64 run of the torch module as torch fp32
            itself is (|ort - fp64| <= 2 |torch32 - fp64| + tolerance): peaked Debias heatmaps (beta 10)
            can put torch's own fp32 error above 1e-3 px. The card records which rule passed.

    Returns:
        :class:`PoseExport`.

    Raises:
        PoseExportError: opset < 17, the exporter failed, or the verification failed (deviation above
            ``tolerance_px`` and not explained by fp32 noise, see ``strict``; non-finite output). The files
            of a failed verification are removed.
    """
    if opset < MIN_OPSET:
        raise PoseExportError(f"opset {opset} < {MIN_OPSET}")
    cfg = model.config
    name = name or cfg.name
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path, card_path = out_dir / f"{name}.onnx", out_dir / f"{name}.json"
    graph = ServingPoseGraph(model.eval(), flip_test=flip_test).eval()
    if crops is None:
        crops, crops_description = verification_crops(cfg.input_size, num_check_crops)
    crops = np.ascontiguousarray(crops, dtype=np.uint8)
    w, h = cfg.input_size
    if crops.ndim != 4 or crops.shape[1:] != (h, w, 3):
        raise PoseExportError(f"verification crops must be uint8 [N, {h}, {w}, 3], got {list(crops.shape)}")

    t0 = time.perf_counter()
    try:
        # batch >= 2 in the example: torch.export specialises a size-1 axis to a constant
        example = np.concatenate([crops, crops])[:2] if len(crops) < 2 else crops[:2]
        _torch_onnx_export(graph, torch.from_numpy(example), onnx_path, opset)
    except Exception as exc:
        raise PoseExportError(f"torch.onnx.export of {name} failed: {exc}") from exc
    export_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    got, ref = run_onnx(onnx_path, crops), run_torch(graph, crops)
    if got.shape != ref.shape:
        onnx_path.unlink(missing_ok=True)
        raise PoseExportError(f"onnxruntime output {list(got.shape)} != torch output {list(ref.shape)}")
    diff = _max_diff(got, ref)
    verification = {
        "runtime": "onnxruntime CPUExecutionProvider",
        "crops": crops_description,
        "max_abs_diff_px": diff,
        "tolerance_px": tolerance_px,
        "passed": "within tolerance",
    }
    if not diff <= tolerance_px:
        # Peaked soft-argmax heatmaps (Debias-IPR, beta 10) amplify fp32 rounding: then torch fp32 itself is
        # off the exact (fp64) result by about as much. Accept only if onnxruntime is as close to the fp64
        # result as torch fp32 is (an export error - wrong normalisation, colour, decode - is pixels off).
        exact = run_torch(graph, crops, float64=True)
        floor, ort_err = _max_diff(ref, exact), _max_diff(got, exact)
        verification.update(torch_fp32_vs_fp64_px=floor, onnxruntime_vs_fp64_px=ort_err)
        if strict or not ort_err <= 2.0 * floor + tolerance_px:
            onnx_path.unlink(missing_ok=True)
            raise PoseExportError(
                f"{name}: onnxruntime vs torch max |diff| {diff:.3g} px > tolerance {tolerance_px} px on "
                f"{crops_description} (vs the fp64 result: onnxruntime {ort_err:.3g} px, torch fp32 {floor:.3g} px); "
                "export rejected"
                + (
                    " (if torch fp32 is as far from fp64 as onnxruntime, this is fp32 noise: "
                    "--allow-fp32-noise on pose-export pose or defaults accepts it and records that in the card)"
                    if strict
                    else ""
                )
            )
        verification["passed"] = "within fp32 noise: |onnxruntime - fp64| <= 2 |torch fp32 - fp64| + tolerance"
        log.warning(
            "%s: |onnxruntime - torch| = %.2e px > %.0e px, but torch fp32 itself is %.2e px off the fp64 result "
            "(onnxruntime: %.2e px): accepted as fp32 noise",
            name,
            diff,
            tolerance_px,
            floor,
            ort_err,
        )
    verify_seconds = time.perf_counter() - t1
    card = ModelCard(
        name=name,
        model_file=onnx_path.name,
        input=InputSpec(name=INPUT_NAME, width=w, height=h, layout="NHWC", dtype="uint8", color="RGB"),
        output=OutputSpec(name=OUTPUT_NAME, kind="keypoints", coord_order="xy", coord_units="input_pixels"),
        keypoints={"name": "coco17", "names": list(COCO17_NAMES)},
        flip_test_in_graph=bool(flip_test),
        source=dict(source or {}),
        extra={
            "config": cfg.to_dict(),
            "head_kind": cfg.head_kind,
            "published": dict(cfg.published),
            "normalization_in_graph": {"color": "RGB", "mean": list(cfg.mean), "std": list(cfg.std)},
            "decode_in_graph": "integral: coords * input size, score 1"
            if cfg.head_kind == "integral"
            else "heatmap: argmax + quarter-pixel refinement (MMPose MSRAHeatmap), score = heatmap max",
            "opset": opset,
            "torch": torch.__version__,
            "verification": verification,
            "export_seconds": round(export_seconds, 2),
        },
    )
    card.save(card_path)
    log.info("%s: exported in %.1f s, max |ort - torch| = %.2e px (%s)", name, export_seconds, diff, crops_description)
    return PoseExport(onnx_path, card_path, diff, export_seconds, verify_seconds, crops_description)


def export_pose(
    name_or_path: str | Path,
    output_dir: str | Path,
    checkpoint: str | Path | None = None,
    config: str | dict | None = None,
    cache_dir: str | Path | None = None,
    name: str | None = None,
    **kwargs,
) -> PoseExport:
    """Load a checkpoint and export it (see :func:`export_pose_model` for ``kwargs``).

    Args:
        name_or_path: a zoo name (its published MMPose checkpoint is downloaded, hash-verified, into
            ``cache_dir``) or a ``.pth`` path (ours, or MMPose's).
        output_dir: folder for ``<name>.onnx`` and ``<name>.json``.
        checkpoint: an already-downloaded checkpoint for a zoo name (skips the download).
        config: config override for an MMPose file the zoo does not know (zoo name or dict).
        cache_dir: checkpoint cache for zoo names.
        name: output stem (default: the zoo / config name).

    Raises:
        PoseExportError: the checkpoint cannot be loaded (missing, wrong keys, download failed) or the
            export / verification failed.
    """
    from models.checkpoints import CheckpointError, load_pose_checkpoint

    src = checkpoint if checkpoint is not None else name_or_path
    if checkpoint is not None and config is None and not Path(str(name_or_path)).is_file():
        config = str(name_or_path)
    try:
        model, meta = load_pose_checkpoint(src, cache_dir=cache_dir, config=config)
    except (FileNotFoundError, CheckpointError, KeyError, ValueError) as exc:
        raise PoseExportError(f"cannot load {src}: {exc}") from exc
    source = {k: meta[k] for k in ("checkpoint", "sha256", "format", "config_name") if k in meta}
    return export_pose_model(model, output_dir, name=name or meta.get("config_name"), source=source, **kwargs)
