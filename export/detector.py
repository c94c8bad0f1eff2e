"""Ultralytics YOLO ``.pt`` (or a model ``.yaml``, random weights, for tests) -> ONNX with the standard contract.

The export goes through Ultralytics' own exporter (``YOLO(...).export(format="onnx", dynamic=True)``,
``ultralytics/engine/exporter.py``), so the graph is exactly what Ultralytics ships: input ``images``
float32 [B, 3, S, S] (RGB, 0..1, letterboxed), output ``output0`` float32 [B, 4 + C, N] (cx, cy, w, h
in input pixels, then C sigmoid class scores; N = 8400 at S = 640), no NMS inside. Ultralytics'
``dynamic=True`` makes batch, height and width dynamic; we then fix height and width to S in the
graph's input/output declarations so only the batch axis is dynamic (what TensorRT profiles and
``inference/person_detector.py`` expect). Every export is checked: onnxruntime vs the PyTorch model on the
same letterboxed input, batch 2. A detector card (``models.detector_card``: contract ``ultralytics``, licence
AGPL-3.0) is written beside the ONNX.

Ultralytics needs its own install (it is not in the ``export`` extra, see the README): importing it
reads the ``torchvision`` version from package metadata, but its ONNX export of detection models
never imports torchvision, so a torchvision whose C++ ops do not load is harmless here.
``YOLO_OFFLINE=1`` and a temporary ``YOLO_CONFIG_DIR`` are set unless already set.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.hashing import sha256_file
from export.onnx_metadata import embed_metadata
from models.detector_card import DETECTOR_CARD_METADATA_KEY, DetectorCard, default_card

log = logging.getLogger(__name__)

#: The licence a detector card of an Ultralytics export states.
ULTRALYTICS_LICENCE = "AGPL-3.0 (Ultralytics weights and exporter)"

#: pip lines that make the detector export work (see module docstring).
ULTRALYTICS_INSTALL = (
    "pip install 'poseserve[export]' && pip install --no-deps 'ultralytics==8.4.190' 'torchvision==0.28.0' "
    "(--no-deps keeps opencv-python, which clashes with opencv-python-headless, out; the export extra "
    "carries Ultralytics' other dependencies)"
)


class DetectorExportError(RuntimeError):
    """Ultralytics missing, the weights file missing, or the exported graph failed its check."""


@dataclass
class DetectorExport:
    """Result of :func:`export_detector`."""

    onnx_path: Path
    imgsz: int
    num_classes: int
    max_abs_diff: float
    seconds: float
    card_path: Path | None = None


def import_ultralytics():
    """Import Ultralytics (offline, temp config dir) or raise :class:`DetectorExportError` naming the install lines.

    Importing Ultralytics replaces ``PIL.Image.open`` process-wide with a wrapper that pip-installs ``pi-heif``
    when Pillow cannot identify an image (``ultralytics/utils/patches.py``); Pillow's own ``open`` is put back,
    so the service's image decode behaves the same in this process (no installs, the same errors).
    """
    from PIL import Image

    pil_open = Image.open
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if "YOLO_CONFIG_DIR" not in os.environ:
        os.environ["YOLO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="yolo-config-")
    try:
        import ultralytics
        from ultralytics import YOLO
    except Exception as exc:  # ImportError, or PackageNotFoundError when torchvision metadata is absent
        raise DetectorExportError(
            f"Ultralytics cannot be imported ({type(exc).__name__}: {exc}); install it with: {ULTRALYTICS_INSTALL}"
        ) from exc
    finally:
        Image.open = pil_open
    return ultralytics, YOLO


def embed_detector_card(onnx_path: Path, card: DetectorCard) -> None:
    """Write the detector card's JSON into the ONNX file's metadata
    (``metadata_props[models.detector_card.DETECTOR_CARD_METADATA_KEY]``, :func:`export.onnx_metadata.embed_metadata`),
    so a copy without the JSON still serves (``inference.person_detector.load_detector_card``)."""
    embed_metadata(onnx_path, DETECTOR_CARD_METADATA_KEY, card.to_dict())


def _fix_spatial_dims(onnx_path: Path, imgsz: int, num_outputs_ch: int, num_anchors: int) -> None:
    """Declare height/width = imgsz on the input and [batch, 4 + C, N] on the output; batch stays dynamic."""
    import onnx

    model = onnx.load(str(onnx_path))
    inp = model.graph.input[0].type.tensor_type.shape.dim
    inp[0].dim_param = "batch"
    for axis, value in ((1, 3), (2, imgsz), (3, imgsz)):
        inp[axis].dim_value = value
    out = model.graph.output[0].type.tensor_type.shape.dim
    out[0].dim_param = "batch"
    out[1].dim_value = num_outputs_ch
    out[2].dim_value = num_anchors
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))


def _check_batch(imgsz: int, images: list[np.ndarray] | None) -> np.ndarray:
    """float32 [B, 3, S, S] in 0..1: real images letterboxed by the service's preprocessing, else a fixed-seed random batch."""
    from inference.person_detector import letterbox_batch

    if images:
        return letterbox_batch(images, imgsz)[0]
    return np.random.default_rng(0).random((2, 3, imgsz, imgsz), dtype=np.float32)


def _ultralytics_export(yolo, weights_str: str, output: Path, imgsz: int, opset: int, simplify: bool) -> None:
    """Ultralytics' ONNX export (dynamic batch, no NMS, fp32 on the CPU) in a temporary working directory, moved to
    ``output``.

    Raises:
        DetectorExportError: the export failed.
    """
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="yolo-export-") as tmp:
        os.chdir(tmp)  # a .yaml model is written to the working directory
        try:
            produced = yolo.export(
                format="onnx",
                imgsz=imgsz,
                dynamic=True,
                opset=opset,
                simplify=simplify,
                half=False,
                nms=False,
                device="cpu",
                batch=1,
            )
        except Exception as exc:
            raise DetectorExportError(f"Ultralytics export of {weights_str} failed: {exc}") from exc
        finally:
            os.chdir(cwd)
        produced = Path(produced) if Path(produced).is_absolute() else Path(tmp) / produced
        shutil.move(str(produced), output)


def _write_card(
    output: Path, weights_str: str, imgsz: int, num_classes: int, diff: float, input_name: str, source: dict | None
) -> Path:
    """Write the detector card of an Ultralytics export beside it (``<stem>.json``) and into its metadata; its path.

    Args:
        output: the exported ``.onnx`` file.
        weights_str: the weights it came from (the default ``source``: their name, and a ``.pt`` file's SHA-256).
        imgsz: square input side in pixels.
        num_classes: the model's classes (recorded in the card's ``extra``).
        diff: the measured max |onnxruntime - torch| (recorded in the card's ``extra``).
        input_name: the graph's input name.
        source: the card's ``source``; None: derived from ``weights_str``.
    """
    if source is None:
        source = {"weights": Path(weights_str).name}
        if Path(weights_str).is_file():
            source["sha256"] = sha256_file(weights_str)
    card = default_card(
        "ultralytics",
        imgsz,
        name=output.stem,
        model_file=output.name,
        licence=ULTRALYTICS_LICENCE,
        source=source,
        extra={"num_classes": num_classes, "max_abs_diff": diff},
    )
    card.input.name = input_name
    card_path = card.save(output.with_suffix(".json"))
    embed_detector_card(output, card)
    return card_path


def export_detector(
    weights: str | Path,
    output: str | Path,
    imgsz: int = 640,
    opset: int = 17,
    simplify: bool = True,
    check_images: list[np.ndarray] | None = None,
    tolerance: float = 1e-3,
    source: dict | None = None,
) -> DetectorExport:
    """Export an Ultralytics detection model to ONNX with a dynamic batch axis and check it.

    Args:
        weights: an Ultralytics ``.pt`` checkpoint (e.g. ``yolo11n.pt``) or a model ``.yaml`` name / path
            (e.g. ``yolov8n.yaml``: random weights, no download).
        output: the ``.onnx`` path to write.
        imgsz: square input side S in pixels.
        opset: ONNX opset.
        simplify: let Ultralytics run onnxslim.
        check_images: uint8 RGB [H, W, 3] images for the check (letterboxed); None: a random batch of 2.
        tolerance: largest accepted max |onnxruntime - torch| over the raw output (boxes in input pixels).
        source: the card's ``source`` (default: the weights' name, and the SHA-256 of a ``.pt`` file).

    Returns:
        :class:`DetectorExport` with the path, the measured deviation, the export time and the detector card written
        beside the ONNX (``<stem>.json``: contract ``ultralytics``, Ultralytics' letterbox, licence AGPL-3.0: the
        weights and the exporter are Ultralytics').

    Raises:
        DetectorExportError: Ultralytics missing, ``weights`` missing, a non-detection model, or the
            check failed (deviation above ``tolerance``, wrong output shape).
    """
    _, YOLO = import_ultralytics()
    import onnxruntime as ort
    import torch

    weights_str = str(weights)
    if weights_str.endswith(".pt") and not Path(weights_str).is_file():
        raise DetectorExportError(f"detector weights not found: {weights_str}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    yolo = YOLO(weights_str)
    if yolo.task != "detect":
        raise DetectorExportError(f"{weights_str} is a {yolo.task!r} model; the person detector needs a 'detect' model")
    num_classes = len(yolo.names)
    _ultralytics_export(yolo, weights_str, output, imgsz, opset, simplify)
    num_anchors = sum((imgsz // s) ** 2 for s in (8, 16, 32))
    _fix_spatial_dims(output, imgsz, 4 + num_classes, num_anchors)
    seconds = time.perf_counter() - t0

    x = _check_batch(imgsz, check_images)
    sess = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x})
    want_shape = (len(x), 4 + num_classes, num_anchors)
    if got.shape != want_shape:
        raise DetectorExportError(f"exported detector output is {list(got.shape)}, expected {list(want_shape)}")
    net = yolo.model.eval().float()
    with torch.no_grad():
        ref = net(torch.from_numpy(x))
    ref = (ref[0] if isinstance(ref, (list, tuple)) else ref).numpy()
    diff = float(np.abs(got - ref).max())
    if not diff <= tolerance:
        raise DetectorExportError(f"onnxruntime vs torch max |diff| {diff:.3g} > {tolerance} for {output}")
    log.info("exported %s -> %s in %.1f s (max |ort - torch| %.2e)", weights_str, output, seconds, diff)
    card_path = _write_card(output, weights_str, imgsz, num_classes, diff, sess.get_inputs()[0].name, source)
    return DetectorExport(output, imgsz, num_classes, diff, seconds, card_path)
