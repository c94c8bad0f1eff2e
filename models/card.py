"""The model card: the JSON file beside an exported pose model that tells the service how to run it.

The service reads the card and nothing else about the model, so any top-down model with a card can be served
(ours, MMPose heatmap / regression models, the MoveNet test model), with COCO-17, MPII-16 or generic keypoints. Export writes cards,
the service and evaluation read them. Torch-free (numpy).

A card looks like::

    {
      "schema_version": 1,
      "name": "ipr_res50_debias",
      "model_file": "ipr_res50_debias.onnx",          # relative to the card, or absolute
      "input":  {"name": "crops", "width": 256, "height": 256, "layout": "NHWC",
                 "dtype": "uint8", "color": "RGB", "mean": null, "std": null},
      "output": {"name": "coords", "kind": "keypoints",
                 "coord_order": "xy", "coord_units": "normalized", "flip_shift": true},
      "keypoints": {"name": "coco17", "names": ["nose", ...], "flip_pairs": [[1, 2], ...]},
      "flip_test_in_graph": false,
      "precision": "fp32",                              # or "int8": NNCF-quantised (``pose-export quantize``)
      "source": {"checkpoint": "...pth", "sha256": "..."},
      "extra": {}
    }

Output kinds:
    * ``keypoints``: [B, K, 2] or [B, K, 3] (or [B, 1, K, C]); the last axis holds two coordinates
      in ``coord_order`` and, if present, a score (RLE models: 1 - mean sigma). ``coord_units`` is ``input_pixels`` (crop pixels,
      MMPose convention) or ``normalized`` (crop pixel / input size, in [0, 1]).
    * ``heatmap``: [B, K, H, W]; decoded by ``output.codec`` (default ``msra``: MMPose's ``MSRAHeatmap.decode``,
      argmax, quarter-pixel refinement; score = the maximum; ``dark``: ``MSRAHeatmap(unbiased=True)``, ``udp``:
      ``UDPHeatmap``, both with ``output.blur_kernel_size``, see ``models.codecs_dark_udp``). A ``udp`` card's crops
      are UDP's (:attr:`ModelCard.use_udp`, ``models.geometry.get_udp_warp_matrix``); ``megvii`` (MSPN / RSN):
      ``MegviiHeatmap.decode`` (blur, argmax, quarter-pixel shift; score = maximum / 255 + 0.5;
      ``models.megvii_heatmap``).
    * ``simcc``: two outputs, ``name`` = x vectors [B, K, round(w * split_ratio)] and ``y_name`` = y vectors
      [B, K, round(h * split_ratio)] (RTMPose / SimCC ONNX files from MMDeploy and rtmlib call them ``simcc_x`` and
      ``simcc_y``); decoded by MMPose's ``SimCCLabel.decode`` (argmax per axis / split ratio; score = the smaller of
      the two maxima). An RTMPose card (MMDeploy's ONNX takes the normalised float image, NCHW RGB)::

        {"schema_version": 1, "name": "rtmpose-m", "model_file": "end2end.onnx",
         "input": {"name": "input", "width": 192, "height": 256, "layout": "NCHW", "dtype": "float32",
                   "color": "RGB", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]},
         "output": {"name": "simcc_x", "y_name": "simcc_y", "kind": "simcc", "split_ratio": 2.0},
         "keypoints": {"name": "coco17", "names": ["nose", ...]}}

:meth:`ModelCard.decode` is the one decode of model outputs (with the flip test merged in), used by the
service and by the torch model alike; :meth:`InputSpec.prepare` is the one numpy input preparation for
models that do not normalise inside their graph.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.precision import CARD_PRECISIONS
from models.codecs import SimCCLabel, flip_back_heatmaps, flip_back_keypoints, flip_back_simcc
from models.codecs_dark_udp import DEFAULT_BLUR_KERNEL, HEATMAP_CODECS, decode_heatmaps_with
from models.heads import head_kind
from models.keypoints import COCO17_NAMES, KeypointSchema, flip_indices, get_schema, schema_for_names

CARD_SCHEMA_VERSION = 1
_LAYOUTS = ("NCHW", "NHWC")
_DTYPES = ("uint8", "float32", "float16", "int32")
_COLORS = ("RGB", "BGR")
_KINDS = ("keypoints", "heatmap", "simcc")
_ORDERS = ("xy", "yx")
_UNITS = ("input_pixels", "normalized")
#: heatmap decodes (``OutputSpec.codec``): MMPose ``MSRAHeatmap`` (the default) and ``MegviiHeatmap`` (MSPN / RSN)


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

    def prepare(self, crops: np.ndarray) -> np.ndarray:
        """uint8 RGB crops [N, h, w, 3] -> the model's input tensor: colour order, ``(x - mean) / std``
        (float32), layout, dtype; contiguous.

        Raises:
            ValueError: not uint8 [N, height, width, 3].
        """
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (self.height, self.width, 3) or crops.dtype != np.uint8:
            raise ValueError(
                f"crops must be uint8 [N, {self.height}, {self.width}, 3], got {crops.dtype} {list(crops.shape)}"
            )
        x = crops[..., ::-1] if self.color == "BGR" else crops
        if self.mean is not None or self.std is not None or self.dtype in ("float32", "float16"):
            x = x.astype(np.float32)
            if self.mean is not None:
                x = x - np.asarray(self.mean, np.float32)
            if self.std is not None:
                x = x / np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=self.dtype)


@dataclass
class OutputSpec:
    """Model output: tensor name, kind (``keypoints`` / ``heatmap`` / ``simcc``), coordinate order and units.

    ``flip_shift``: how the flip test maps a flipped crop back: heatmaps move one pixel right after
    mirroring (MMPose ``shift_heatmap``), coordinates map ``x -> w - 1 - x`` (MMPose ``shift_coords``);
    False: no shift, ``x -> w - x``. SimCC ignores it (MMPose reverses the x vectors, ``flip_vectors``).

    ``y_name`` and ``split_ratio`` belong to the ``simcc`` kind only (both required there): the y-vector output's
    name (``name`` is the x vectors') and the bins per crop pixel (MMPose ``simcc_split_ratio``, 2.0 for RTMPose).

    ``codec`` (``heatmap`` kind; ``models.codecs_dark_udp.HEATMAP_CODECS``): ``msra`` (the default: cards written
    before the field load unchanged), ``dark``, ``udp`` (which also selects UDP's crop) or ``megvii`` (MSPN / RSN:
    ``models.megvii_heatmap.decode_megvii_heatmaps``, blur kernel 5); ``blur_kernel_size``: the
    DARK / UDP decode's odd blur kernel (None: MMPose's default 11).
    """

    name: str
    kind: str = "keypoints"
    coord_order: str = "xy"
    coord_units: str = "input_pixels"
    flip_shift: bool = True
    y_name: str | None = None
    split_ratio: float | None = None
    codec: str = "msra"
    blur_kernel_size: int | None = None

    @property
    def tensor_names(self) -> tuple[str, ...]:
        """The model outputs the decode reads, in order: ``(name,)``, or ``(name, y_name)`` for ``simcc``."""
        return (self.name, self.y_name) if self.kind == "simcc" else (self.name,)


@dataclass
class ModelCard:
    """A top-down pose model card (see the module docstring for the JSON form)."""

    name: str
    model_file: str
    input: InputSpec
    output: OutputSpec
    keypoints: dict = field(default_factory=lambda: {"name": "coco17", "names": list(COCO17_NAMES)})
    flip_test_in_graph: bool = False
    precision: str = "fp32"
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
    def use_udp(self) -> bool:
        """Crops are UDP's (``models.geometry.get_udp_warp_matrix``; MMPose ``TopdownAffine(use_udp=True)``)."""
        return self.output.codec == "udp"

    @property
    def keypoint_names(self) -> list[str]:
        return list(self.keypoints.get("names", []))

    @property
    def schema(self) -> KeypointSchema | None:
        """The ``models.keypoints`` schema whose names are the card's keypoint names (COCO-17, MPII-16), or None."""
        return schema_for_names(self.keypoint_names)

    def schema_dict(self) -> dict:
        """The card's keypoint schema as JSON data (``GET /v1/models``): the ``models.keypoints`` schema its names
        belong to (names, flip pairs, skeleton, sigmas), else its own names and flip pairs (no skeleton, no sigmas)."""
        if self.schema is not None:
            return self.schema.to_dict()
        return {
            "name": self.keypoints.get("name", ""),
            "keypoint_names": self.keypoint_names,
            "flip_pairs": [list(p) for p in self.keypoints.get("flip_pairs") or []],
            "skeleton": [],
            "sigmas": None,
        }

    @property
    def flip_index(self) -> np.ndarray | None:
        """Joint permutation of a horizontal flip (int64 [K]): from ``keypoints.flip_pairs``, else the pairs of the
        schema the names belong to (:attr:`schema`); None when there are none (no flip test possible)."""
        pairs = self.keypoints.get("flip_pairs")
        if pairs is None and self.schema is not None:
            pairs = self.schema.flip_pairs
        return None if pairs is None else flip_indices(len(self.keypoint_names), [tuple(p) for p in pairs])

    def decode(self, output, output_flipped=None) -> np.ndarray:
        """Model output -> keypoints in crop pixels, with the flip test merged in when ``output_flipped`` is given.

        Args:
            output: the output tensor for B crops: ``keypoints`` kind [B, K, 2 | 3] or [B, 1, K, 2 | 3];
                ``heatmap`` kind [B, K, H, W]; ``simcc`` kind the pair (x vectors [B, K, Wx], y vectors [B, K, Wy])
                in the order of :attr:`OutputSpec.tensor_names`.
            output_flipped: the same tensor(s) for the horizontally mirrored crops, or None. Heatmaps are
                flipped back and averaged before the decode (MMPose); SimCC vectors likewise (x reversed, joints
                reordered: :func:`models.codecs.flip_back_simcc`, as ``RTMCCHead.predict``); coordinates are decoded,
                flipped back (:func:`models.codecs.flip_back_keypoints`) and averaged, scores included.

        Returns:
            float32 [B, K, 3]: x, y in crop pixels (MMPose convention), score (1.0 when the model gives none).

        Raises:
            ValueError: a shape that does not fit the card, or a flip test on a card without flip pairs.
        """
        flip_index = None
        if output_flipped is not None:
            flip_index = self.flip_index
            if flip_index is None:
                raise ValueError(f"card {self.name!r} defines no flip pairs (keypoints.flip_pairs): no flip test")
        w, h = self.input_size
        if self.output.kind == "simcc":
            return self._decode_simcc(output, output_flipped, flip_index)
        if self.output.kind == "heatmap":
            hm = _as_float(output)
            if output_flipped is not None:
                flipped = flip_back_heatmaps(_as_float(output_flipped), flip_index, self.output.flip_shift)
                if flipped.shape != hm.shape:
                    raise ValueError(f"flipped output {list(flipped.shape)} != output {list(hm.shape)}")
                hm = (hm + flipped) * 0.5
            blur = self.output.blur_kernel_size or DEFAULT_BLUR_KERNEL
            keypoints, scores = decode_heatmaps_with(self.output.codec, hm, (w, h), blur)
            return np.concatenate([keypoints, scores[..., None]], axis=-1).astype(np.float32)
        kpts = self._decode_keypoints(output)
        if output_flipped is not None:
            flipped = flip_back_keypoints(self._decode_keypoints(output_flipped), flip_index, w, self.output.flip_shift)
            if flipped.shape != kpts.shape:
                raise ValueError(f"flipped output {list(flipped.shape)} != output {list(kpts.shape)}")
            kpts = (kpts + flipped) * 0.5
        return kpts.astype(np.float32)

    def _decode_simcc(self, output, output_flipped, flip_index: np.ndarray | None) -> np.ndarray:
        """SimCC decode (MMPose ``RTMCCHead.predict`` + ``SimCCLabel.decode``): float32 [B, K, 3] (float64 inputs are
        averaged in float64; the coordinates are float32 in MMPose too)."""
        sx, sy = _simcc_pair(output)
        if output_flipped is not None:
            fx, fy = flip_back_simcc(*_simcc_pair(output_flipped), flip_index)
            if fx.shape != sx.shape or fy.shape != sy.shape:
                raise ValueError(
                    f"flipped outputs {list(fx.shape)} / {list(fy.shape)} != outputs {list(sx.shape)} / {list(sy.shape)}"
                )
            sx, sy = (sx + fx) * 0.5, (sy + fy) * 0.5
        keypoints, scores = SimCCLabel(self.input_size, self.output.split_ratio).decode(sx, sy)
        return np.concatenate([keypoints, scores[..., None].astype(np.float32)], axis=-1)

    def _decode_keypoints(self, output: np.ndarray) -> np.ndarray:
        """[B, K, 3] x, y crop pixels, score, in the output's float precision (float64 stays float64)."""
        out = _as_float(output)
        if out.ndim == 4 and out.shape[1] == 1:
            out = out[:, 0]
        if out.ndim != 3 or out.shape[2] not in (2, 3):
            raise ValueError(f"keypoint output must be [B, K, 2|3] or [B, 1, K, 2|3], got {list(np.shape(output))}")
        xy = out[..., :2]
        if self.output.coord_order == "yx":
            xy = xy[..., ::-1]
        if self.output.coord_units == "normalized":
            xy = xy * np.array(self.input_size, dtype=out.dtype)
        score = out[..., 2:3] if out.shape[2] == 3 else np.ones_like(out[..., :1])
        return np.concatenate([xy, score], axis=-1)

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
            ("precision", self.precision, CARD_PRECISIONS),
        ]
        for name, value, allowed in checks:
            if value not in allowed:
                raise ModelCardError(f"model card field {name}={value!r} must be one of {list(allowed)}")
        if self.output.kind == "simcc":
            if not self.output.y_name:
                raise ModelCardError("model card field output.y_name (the y vectors' output) is required for simcc")
            ratio = self.output.split_ratio
            if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0:
                raise ModelCardError(f"model card field output.split_ratio={ratio!r} must be a positive number")
        elif self.output.y_name is not None or self.output.split_ratio is not None:
            raise ModelCardError(
                f"model card fields output.y_name / output.split_ratio belong to kind simcc, not {self.output.kind}"
            )
        self._validate_codec()
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
        try:
            self.flip_index  # noqa: B018 - validates keypoints.flip_pairs
        except (TypeError, ValueError) as exc:
            raise ModelCardError(f"model card field keypoints.flip_pairs is invalid: {exc}") from exc
        if self.schema_version != CARD_SCHEMA_VERSION:
            raise ModelCardError(
                f"model card schema_version {self.schema_version} is not supported (expected {CARD_SCHEMA_VERSION})"
            )

    def _validate_codec(self) -> None:
        """``output.codec`` / ``output.blur_kernel_size`` (see :class:`OutputSpec`)."""
        codec, blur = self.output.codec, self.output.blur_kernel_size
        if codec not in HEATMAP_CODECS:
            raise ModelCardError(f"model card field output.codec={codec!r} must be one of {list(HEATMAP_CODECS)}")
        if codec != "msra" and self.output.kind != "heatmap":
            raise ModelCardError(f"model card field output.codec={codec!r} belongs to kind heatmap")
        if blur is not None and (isinstance(blur, bool) or not isinstance(blur, int) or blur < 1 or blur % 2 != 1):
            raise ModelCardError(f"model card field output.blur_kernel_size={blur!r} must be a positive odd int")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("path")
        for key in ("y_name", "split_ratio", "blur_kernel_size"):  # optional fields: other cards stay as they were
            if d["output"][key] is None:
                d["output"].pop(key)
        if d["output"]["codec"] == "msra":
            d["output"].pop("codec")
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


def _simcc_pair(output) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) SimCC vectors of a simcc output, as floats (:func:`_as_float`).

    Raises:
        ValueError: not a pair of arrays.
    """
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        raise ValueError("a simcc card decodes the pair (x vectors [B, K, Wx], y vectors [B, K, Wy])")
    return _as_float(output[0]), _as_float(output[1])


def _as_float(a) -> np.ndarray:
    """float64 arrays stay float64 (parity proofs); anything else becomes float32."""
    a = np.asarray(a)
    return a if a.dtype == np.float64 else a.astype(np.float32)


#: The ONNX metadata key (``ModelProto.metadata_props``) under which ``pose-export`` embeds the card's JSON, as
#: Ultralytics embeds its model facts in its exports: an ONNX file copied without its JSON still serves.
CARD_METADATA_KEY = "poseserve.card"


def card_from_metadata(text: str, model_path: Path) -> ModelCard:
    """A card embedded in a model file (:data:`CARD_METADATA_KEY`), its ``model_file`` pointed at ``model_path``.

    Raises:
        ModelCardError: not JSON, or not a valid card.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelCardError(f"the card embedded in {model_path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelCardError(f"the card embedded in {model_path} is not a JSON object")
    data["model_file"] = model_path.name
    return ModelCard.from_dict(data, path=model_path.resolve().with_suffix(".json"))


def card_path_for(model_or_card: str | Path) -> Path:
    """The card for a model path: the path itself if it is a ``.json``, else ``<stem>.json`` beside it."""
    p = Path(model_or_card)
    return p if p.suffix == ".json" else p.with_suffix(".json")


def card_for_config(config, model_file: str = "", **fields) -> ModelCard:
    """The card of a zoo-config model exported by ``export.pose`` (graph = preprocessing + network).

    Input ``crops`` uint8 NHWC RGB (normalisation inside the graph). Output ``coords`` for the coordinate heads
    (integral and DeepPose regression: [B, K, 2] xy normalised to the crop; RLE: [B, K, 3], the third value the
    keypoint score) or ``heatmaps`` (heatmap head: [B, K, H, W]); ``flip_shift`` from the config
    (``shift_coords`` / ``shift_heatmap``): the head kind's ``output_spec`` (``models.heads``; this imports the head's
    module, and torch with it). Keypoint names and flip pairs from the config's ``keypoint_schema``
    (``models.keypoints``: COCO-17, MPII-16); a config without a schema gets generic names and no flip pairs
    (no flip test).

    Args:
        config: a ``models.zoo.PoseModelConfig``.
        model_file: the graph file (relative to the card, or absolute).
        **fields: other :class:`ModelCard` fields (``name``, ``source``, ``extra``).
    """
    if config.keypoint_schema is not None:
        schema = get_schema(config.keypoint_schema)
        keypoints = {
            "name": schema.name,
            "names": list(schema.names),
            "flip_pairs": [list(p) for p in schema.flip_pairs],
        }
    else:  # no schema known for this K: generic names, no flip pairs (so no flip test)
        keypoints = {
            "name": f"k{config.num_keypoints}",
            "names": [f"keypoint_{i}" for i in range(config.num_keypoints)],
        }
    w, h = config.input_size
    kind = head_kind(config.head_kind)
    kind.check_config(config)
    output = kind.output_spec(config)
    fields.setdefault("name", config.name)
    return ModelCard(
        model_file=model_file,
        input=InputSpec(name="crops", width=w, height=h, layout="NHWC", dtype="uint8", color="RGB"),
        output=output,
        keypoints=keypoints,
        **fields,
    )
