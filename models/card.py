"""The model card: the JSON file beside an exported pose model that tells the service how to run it.

The service reads the card and nothing else about the model, so any top-down COCO-17 model with a
card can be served (ours, MMPose heatmap models, the MoveNet test model). Export writes cards,
the service and evaluation read them. Torch-free (stdlib only).

A card looks like::

    {
      "schema_version": 1,
      "name": "ipr_res50_debias",
      "model_file": "ipr_res50_debias.onnx",          # relative to the card, or absolute
      "input":  {"name": "crops", "width": 256, "height": 256, "layout": "NHWC",
                 "dtype": "uint8", "color": "RGB", "mean": null, "std": null},
      "output": {"name": "keypoints", "kind": "keypoints",
                 "coord_order": "xy", "coord_units": "input_pixels"},
      "keypoints": {"name": "coco17", "names": ["nose", ...]},
      "flip_test_in_graph": false,
      "source": {"checkpoint": "...pth", "sha256": "..."},
      "extra": {}
    }

Output kinds:
    * ``keypoints``: [B, K, 2] or [B, K, 3] (or [B, 1, K, C]); the last axis holds two coordinates
      in ``coord_order`` and, if present, a score. ``coord_units`` is ``input_pixels`` (crop pixels,
      MMPose convention) or ``normalized`` (crop pixel / input size, in [0, 1]).
    * ``heatmap``: [B, K, H, W]; decoded by argmax, score = the maximum (MMPose ``get_heatmap_maximum``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from models.keypoints import COCO17_NAMES

CARD_SCHEMA_VERSION = 1
_LAYOUTS = ("NCHW", "NHWC")
_DTYPES = ("uint8", "float32", "float16", "int32")
_COLORS = ("RGB", "BGR")
_KINDS = ("keypoints", "heatmap")
_ORDERS = ("xy", "yx")
_UNITS = ("input_pixels", "normalized")


class ModelCardError(ValueError):
    """A model card is missing, is not valid JSON, or has a field with a wrong value."""


@dataclass
class InputSpec:
    """Model input: tensor name, crop size in pixels, layout, dtype, colour order, normalisation.

    ``mean`` / ``std`` are per-channel in 0..255 units, in the card's colour order, and are applied
    by the service before the model (None when the graph normalises itself or takes raw pixels).
    """

    name: str
    width: int
    height: int
    layout: str = "NCHW"
    dtype: str = "float32"
    color: str = "RGB"
    mean: list[float] | None = None
    std: list[float] | None = None


@dataclass
class OutputSpec:
    """Model output: tensor name, kind (``keypoints`` / ``heatmap``), coordinate order and units."""

    name: str
    kind: str = "keypoints"
    coord_order: str = "xy"
    coord_units: str = "input_pixels"


@dataclass
class ModelCard:
    """A top-down pose model card (see the module docstring for the JSON form)."""

    name: str
    model_file: str
    input: InputSpec
    output: OutputSpec
    keypoints: dict = field(default_factory=lambda: {"name": "coco17", "names": list(COCO17_NAMES)})
    flip_test_in_graph: bool = False
    source: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    schema_version: int = CARD_SCHEMA_VERSION
    path: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def input_size(self) -> tuple[int, int]:
        """(w, h) of the crop the model takes."""
        return (self.input.width, self.input.height)

    @property
    def keypoint_names(self) -> list[str]:
        return list(self.keypoints.get("names", []))

    def model_path(self) -> Path:
        """Absolute path of the model file (relative paths are taken from the card's folder)."""
        p = Path(self.model_file)
        if not p.is_absolute() and self.path is not None:
            p = self.path.parent / p
        return p

    def validate(self) -> None:
        """Raise :class:`ModelCardError` naming the first field with an invalid value."""
        checks = [
            ("input.layout", self.input.layout, _LAYOUTS),
            ("input.dtype", self.input.dtype, _DTYPES),
            ("input.color", self.input.color, _COLORS),
            ("output.kind", self.output.kind, _KINDS),
            ("output.coord_order", self.output.coord_order, _ORDERS),
            ("output.coord_units", self.output.coord_units, _UNITS),
        ]
        for name, value, allowed in checks:
            if value not in allowed:
                raise ModelCardError(f"model card field {name}={value!r} must be one of {list(allowed)}")
        if self.input.width <= 0 or self.input.height <= 0:
            raise ModelCardError(f"model card input size {self.input_size} must be positive")
        for key in ("mean", "std"):
            v = getattr(self.input, key)
            if v is not None and len(v) != 3:
                raise ModelCardError(f"model card field input.{key} must have 3 values, got {v}")
        if self.input.std is not None and any(s == 0 for s in self.input.std):
            raise ModelCardError("model card field input.std must not contain 0")
        if not self.keypoint_names:
            raise ModelCardError("model card field keypoints.names is empty")
        if self.schema_version != CARD_SCHEMA_VERSION:
            raise ModelCardError(
                f"model card schema_version {self.schema_version} is not supported (expected {CARD_SCHEMA_VERSION})"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("path")
        return d

    def save(self, path: str | Path) -> Path:
        """Write the card as JSON; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        self.path = path
        return path

    @classmethod
    def from_dict(cls, data: dict, path: Path | None = None) -> ModelCard:
        """Build a card from parsed JSON.

        Raises:
            ModelCardError: a required field is missing or a value is invalid.
        """
        try:
            d = dict(data)
            d["input"] = InputSpec(**d["input"])
            d["output"] = OutputSpec(**d["output"])
            return cls(**d, path=path)
        except (KeyError, TypeError) as exc:
            where = f" in {path}" if path else ""
            raise ModelCardError(f"invalid model card{where}: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        """Read a card JSON file.

        Raises:
            ModelCardError: the file is missing, is not JSON, or is not a valid card.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ModelCardError(f"model card not found: {path}") from exc
        except json.JSONDecodeError as exc:
            raise ModelCardError(f"model card {path} is not valid JSON: {exc}") from exc
        return cls.from_dict(data, path=path.resolve())


def card_path_for(model_or_card: str | Path) -> Path:
    """The card for a model path: the path itself if it is a ``.json``, else ``<stem>.json`` beside it."""
    p = Path(model_or_card)
    return p if p.suffix == ".json" else p.with_suffix(".json")
