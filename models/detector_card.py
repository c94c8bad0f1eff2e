"""The detector card: the JSON file beside a person detector's ONNX that says how to feed it and read its outputs.

Three output contracts are served (``contract``), each with the preprocessing conventions of the project that
exports it:

* ``ultralytics``: Ultralytics ``export(format="onnx")``: one output ``output0`` [B, 4 + C, N] (cx, cy, w, h in
  input pixels, then C sigmoid class scores; NMS in the service) or, with ``export(nms=True)``, [B, M, 6] (x1, y1,
  x2, y2, score, class). Input RGB scaled to 0..1, letterbox centred with pad 114, sizes rounded
  (``ultralytics/data/augment.py`` ``LetterBox``).
* ``yolox``: the official YOLOX export (``tools/export_onnx.py`` of Megvii-BaseDetection/YOLOX): one output
  ``output`` [B, N, 5 + C] = box, objectness, C class scores (both sigmoid), anchors ordered stride by stride
  (8, 16, 32), row-major. ``yolox_decode``: ``grid`` when the box is the head's raw regression (the export's
  default, ``decode_in_inference`` off) and needs ``demo_postprocess`` (``yolox/utils/demo_utils.py``):
  ``cx, cy = (t_xy + grid_xy) * stride``, ``w, h = exp(t_wh) * stride``; ``none`` when the graph already decodes
  (``--decode_in_inference``): cx, cy, w, h in input pixels. Score = objectness x class score. Input BGR, 0..255
  (no normalisation), image at the top-left corner, pad 114, sizes floored (``yolox/data/data_augment.py``
  ``preproc``).
* ``mmdeploy``: MMDeploy's end2end detection export (``mmdeploy/codebase/mmdet/models/detectors`` and its
  ``multiclass_nms``): outputs ``dets`` float32 [B, N, 5] = x1, y1, x2, y2, score in input pixels and ``labels``
  int [B, N] (int64 from onnxruntime exports, int32 from TensorRT); NMS is in the graph. Input as MMDet's
  pipeline: ``Resize(keep_ratio=True)`` then ``Pad`` (image at the top-left, padding on the right / bottom, pad
  value 114 for RTMDet and MMDet's YOLOX), ``mean`` / ``std`` from the config's ``data_preprocessor`` (RTMDet:
  BGR, mean 103.53, 116.28, 123.675, std 57.375, 57.12, 58.395; ``mmdet/configs/rtmdet``, MMPose
  ``projects/rtmpose/rtmdet/person``), MMCV's ``rescale_size`` rounding half up.

A card looks like::

    {
      "card": "detector",
      "schema_version": 1,
      "name": "rtmdet_nano_person",
      "model_file": "rtmdet_nano_person.onnx",          # relative to the card, or absolute
      "contract": "mmdeploy",
      "input": {"name": "input", "width": 320, "height": 320, "color": "BGR",
                "mean": [103.53, 116.28, 123.675], "std": [57.375, 57.12, 58.395]},
      "letterbox": {"placement": "top_left", "pad_value": 114, "resize": "keep_ratio", "rounding": "half_up"},
      "yolox_decode": null, "strides": null,             # yolox only: "grid" | "none", [8, 16, 32]
      "person_class": 0,
      "licence": "Apache-2.0",
      "source": {"url": "...", "sha256": "..."},
      "extra": {}
    }

``mean`` / ``std`` are per channel in 0..255 units and in the card's colour order: the input is
``(pixel - mean) / std``. Without a card, :func:`detect_contract` tells the contract from the graph's output names
and shapes, and :func:`default_card` gives that contract's conventions. Torch-free (numpy only).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

DETECTOR_CARD_SCHEMA_VERSION = 1
#: The ``card`` field of every detector card (a pose card has none).
DETECTOR_CARD_KIND = "detector"
CONTRACTS = ("ultralytics", "yolox", "mmdeploy")
PLACEMENTS = ("center", "top_left")
ROUNDINGS = ("round", "floor", "half_up")
RESIZES = ("keep_ratio",)
COLORS = ("RGB", "BGR")
YOLOX_DECODES = ("grid", "none")
#: YOLOX's strides (``YOLOXHead(strides=[8, 16, 32])``; P6 models add 64).
YOLOX_STRIDES = (8, 16, 32)
#: RTMDet's normalisation (MMDet ``rtmdet_*`` configs' ``data_preprocessor``, BGR order, ``bgr_to_rgb=False``).
RTMDET_MEAN = (103.53, 116.28, 123.675)
RTMDET_STD = (57.375, 57.12, 58.395)


class DetectorCardError(ValueError):
    """A detector card is missing, not JSON, not a detector card, or has a field with a wrong value; or a graph's
    outputs fit no known contract."""


@dataclass
class DetectorInput:
    """Detector input: tensor name (None: the graph's first input), size in pixels, colour order, normalisation.

    ``mean`` / ``std``: 3 values each, 0..255 units, in ``color`` order; ``(pixel - mean) / std`` (None: 0 and 1).
    """

    name: str | None
    width: int
    height: int
    color: str = "RGB"
    mean: list[float] | None = None
    std: list[float] | None = None


@dataclass
class LetterboxSpec:
    """How an image becomes the input: ``resize`` (``keep_ratio``: scale ``r = min(H / h, W / w)``), the resized
    size's ``rounding`` (``round``: Python's round, Ultralytics ``LetterBox``; ``floor``: ``int(w * r)``, YOLOX
    ``preproc`` and rtmlib; ``half_up``: ``int(w * r + 0.5)``, MMCV ``rescale_size``), ``placement`` (``center``:
    padding split on both sides, Ultralytics; ``top_left``: padding on the right and bottom, YOLOX and MMDet
    ``Pad``) and the ``pad_value`` (0..255, all channels, before normalisation)."""

    placement: str = "center"
    pad_value: int = 114
    resize: str = "keep_ratio"
    rounding: str = "round"


@dataclass
class DetectorCard:
    """A person detector card (see the module docstring for the JSON form and the contracts)."""

    contract: str
    input: DetectorInput
    letterbox: LetterboxSpec = field(default_factory=LetterboxSpec)
    name: str = "detector"
    model_file: str | None = None
    yolox_decode: str | None = None
    strides: list[int] | None = None
    person_class: int = 0
    licence: str | None = None
    source: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    schema_version: int = DETECTOR_CARD_SCHEMA_VERSION
    card: str = DETECTOR_CARD_KIND
    path: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.contract == "yolox":
            self.yolox_decode = self.yolox_decode or "grid"
            self.strides = list(self.strides or YOLOX_STRIDES)
        self.validate()

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the model input in pixels."""
        return (self.input.width, self.input.height)

    def validate(self) -> None:
        """Raise :class:`DetectorCardError` naming the first field with an invalid value."""
        checks = [
            ("card", self.card, (DETECTOR_CARD_KIND,)),
            ("contract", self.contract, CONTRACTS),
            ("input.color", self.input.color, COLORS),
            ("letterbox.placement", self.letterbox.placement, PLACEMENTS),
            ("letterbox.resize", self.letterbox.resize, RESIZES),
            ("letterbox.rounding", self.letterbox.rounding, ROUNDINGS),
        ]
        if self.contract == "yolox":
            checks.append(("yolox_decode", self.yolox_decode, YOLOX_DECODES))
        for name, value, allowed in checks:
            if value not in allowed:
                raise DetectorCardError(f"detector card field {name}={value!r} must be one of {list(allowed)}")
        if self.contract != "yolox" and (self.yolox_decode is not None or self.strides is not None):
            raise DetectorCardError(
                f"detector card fields yolox_decode / strides are for contract yolox, not {self.contract}"
            )
        if self.input.width <= 0 or self.input.height <= 0:
            raise DetectorCardError(f"detector card input size {self.input_size} must be positive")
        for key in ("mean", "std"):
            v = getattr(self.input, key)
            if v is not None and (len(v) != 3 or not np.all(np.isfinite(v))):
                raise DetectorCardError(f"detector card field input.{key} must have 3 finite values, got {v}")
        if self.input.std is not None and any(s == 0 for s in self.input.std):
            raise DetectorCardError("detector card field input.std must not contain 0")
        if not 0 <= self.letterbox.pad_value <= 255:
            raise DetectorCardError(
                f"detector card field letterbox.pad_value={self.letterbox.pad_value} is not in 0..255"
            )
        if self.person_class < 0:
            raise DetectorCardError(f"detector card field person_class={self.person_class} must be >= 0")
        if self.strides is not None and (not self.strides or any(int(s) <= 0 for s in self.strides)):
            raise DetectorCardError(f"detector card field strides={self.strides} must be positive integers")

    def model_path(self) -> Path:
        """The model file: ``model_file`` relative to the card's folder (or absolute).

        Raises:
            DetectorCardError: the card names no model file.
        """
        if not self.model_file:
            raise DetectorCardError(f"detector card {self.path or self.name!r} has no model_file")
        p = Path(self.model_file).expanduser()
        if not p.is_absolute() and self.path is not None:
            p = self.path.parent / p
        return p

    def yolox_anchor_count(self) -> int:
        """How many anchors a YOLOX head has at this input size: ``sum((H // s) * (W // s))`` over the strides
        (8400 at 640 x 640)."""
        strides = self.strides or list(YOLOX_STRIDES)
        return int(sum((self.input.height // s) * (self.input.width // s) for s in strides))

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("path")
        return d

    def save(self, path: str | Path) -> Path:
        """Write the card as JSON. Returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict, path: Path | None = None) -> DetectorCard:
        """Build from the JSON form.

        Raises:
            DetectorCardError: not a detector card (``card`` is not ``detector``: e.g. a pose card), a required field
                missing, an unknown field, or an invalid value.
        """
        where = f" {path}" if path else ""
        if not isinstance(data, dict) or data.get("card") != DETECTOR_CARD_KIND:
            raise DetectorCardError(f"{path or 'the JSON'} is not a detector card (its field card must be 'detector')")
        try:
            data = dict(data)
            inp = DetectorInput(**data.pop("input"))
            lb = LetterboxSpec(**data.pop("letterbox", {}))
            return cls(input=inp, letterbox=lb, path=path, **data)
        except (KeyError, TypeError) as exc:
            raise DetectorCardError(f"invalid detector card{where}: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> DetectorCard:
        """Read a detector card JSON.

        Raises:
            DetectorCardError: the file is missing, is not JSON, or is not a valid detector card.
        """
        path = Path(path).expanduser()
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise DetectorCardError(f"detector card not found: {path}") from exc
        except json.JSONDecodeError as exc:
            raise DetectorCardError(f"detector card {path} is not valid JSON: {exc}") from exc
        return cls.from_dict(data, path)


def default_card(contract: str, width: int = 640, height: int | None = None, **fields) -> DetectorCard:
    """The conventions of ``contract`` as its exporter's own inference code applies them (module docstring).

    Args:
        contract: one of :data:`CONTRACTS`.
        width, height: input size in pixels (``height`` None: square).
        fields: card fields to override (``name``, ``model_file``, ``licence``, ``yolox_decode``, ...).

    Raises:
        DetectorCardError: an unknown contract or an invalid field.
    """
    height = width if height is None else height
    if contract == "ultralytics":
        inp = DetectorInput(None, width, height, "RGB", [0.0, 0.0, 0.0], [255.0, 255.0, 255.0])
        lb = LetterboxSpec("center", 114, "keep_ratio", "round")
    elif contract == "yolox":
        inp = DetectorInput(None, width, height, "BGR", None, None)
        lb = LetterboxSpec("top_left", 114, "keep_ratio", "floor")
    elif contract == "mmdeploy":
        inp = DetectorInput(None, width, height, "BGR", list(RTMDET_MEAN), list(RTMDET_STD))
        lb = LetterboxSpec("top_left", 114, "keep_ratio", "half_up")
    else:
        raise DetectorCardError(f"unknown detector contract {contract!r}; known: {list(CONTRACTS)}")
    return DetectorCard(contract=contract, input=inp, letterbox=lb, **fields)


def detect_contract(output_names: list[str], output_shapes: list[list[int | None]]) -> str:
    """Tell a detector's output contract from its graph's outputs (names as each exporter writes them).

    * ``mmdeploy``: outputs named ``dets`` ([B, N, 5]) and ``labels`` ([B, N]);
    * ``yolox``: one output named ``output`` (``tools/export_onnx.py``'s ``--output-name`` default), [B, N, 5 + C];
    * ``ultralytics``: one output named ``output0``, 3-D ([B, 4 + C, N] or [B, M, 6]).

    Args:
        output_names, output_shapes: the runtime's (``Runtime.output_names`` / ``output_shapes``; None for dynamic
            dimensions).

    Returns:
        One of :data:`CONTRACTS`.

    Raises:
        DetectorCardError: the outputs fit none of them; the message lists what was seen and asks for a card.
    """
    shapes = dict(zip(output_names, output_shapes))
    seen = ", ".join(f"{n} {list(s)}" for n, s in shapes.items()) or "none"

    def rank(name: str) -> int:
        return len(shapes[name])

    if "dets" in shapes and "labels" in shapes:
        if rank("dets") == 3 and rank("labels") == 2 and shapes["dets"][2] in (5, None):
            return "mmdeploy"
    elif len(shapes) == 1 and "output" in shapes and rank("output") == 3:
        last = shapes["output"][2]
        if last is not None and last >= 6:
            return "yolox"
    elif len(shapes) == 1 and "output0" in shapes and rank("output0") == 3:
        return "ultralytics"
    raise DetectorCardError(
        f"cannot tell the detector's output contract from its graph: outputs {seen}. Known: ultralytics (output0 "
        "[B, 4+C, N] or [B, M, 6]), yolox (output [B, N, 5+C]), mmdeploy (dets [B, N, 5] and labels [B, N]). "
        'Write a detector card (<model>.json beside the model, with "card": "detector" and "contract")'
    )


#: The ONNX metadata key (``ModelProto.metadata_props``) under which the exports embed the detector card's JSON (the
#: pose card's is ``models.card.CARD_METADATA_KEY``): an ONNX copied without its JSON still has its card.
DETECTOR_CARD_METADATA_KEY = "poseserve.detector_card"


def detector_card_from_metadata(text: str, model_path: Path) -> DetectorCard:
    """A detector card embedded in a model file (:data:`DETECTOR_CARD_METADATA_KEY`), ``model_file`` set to it.

    Raises:
        DetectorCardError: not JSON, or not a valid detector card.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DetectorCardError(f"the detector card embedded in {model_path} is not valid JSON: {exc}") from exc
    if isinstance(data, dict):
        data["model_file"] = model_path.name
    return DetectorCard.from_dict(data, path=model_path.resolve().with_suffix(".json"))


def detector_card_path(model_or_card: str | Path) -> Path:
    """The card of a detector path: the path itself if it is a ``.json``, else ``<stem>.json`` beside it."""
    p = Path(model_or_card)
    return p if p.suffix == ".json" else p.with_suffix(".json")


def find_detector_card(model_or_card: str | Path) -> tuple[Path, DetectorCard | None]:
    """The model file to open and its card, if any: a ``.json`` path is the card (the model is its
    ``model_file``); a model path gets the ``<stem>.json`` beside it when that file exists, else no card
    (the contract is then told from the graph, :func:`detect_contract`).

    Returns:
        (model path, card or None). A card embedded in an ONNX file's metadata is read by
        ``inference.person_detector.load_detector_card`` (onnxruntime), not here.

    Raises:
        DetectorCardError: the card is invalid (or a ``.json`` beside the model is not a detector card).
    """
    path = Path(model_or_card).expanduser()
    card_path = detector_card_path(path)
    if path.suffix == ".json" or card_path.is_file():
        card = DetectorCard.load(card_path)
        if path.suffix == ".json":
            return card.model_path(), card
        return path, card
    return path, None
