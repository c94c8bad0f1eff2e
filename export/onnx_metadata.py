"""Model facts written into an ONNX file's metadata (``ModelProto.metadata_props``), as Ultralytics writes its own:
the pose card (``models.card.CARD_METADATA_KEY``) and the detector card
(``models.detector_card.DETECTOR_CARD_METADATA_KEY``), so a copy of the ONNX without its JSON still serves."""

from __future__ import annotations

import json
from pathlib import Path


def embed_metadata(onnx_path: Path, key: str, data: dict) -> None:
    """Write ``data`` as compact JSON under ``key`` in the ONNX file's metadata, replacing an older entry of that key
    and keeping the others; the graph is unchanged.

    Raises:
        OSError: the file cannot be read or written. onnx's errors for a file that is not ONNX.
    """
    import onnx

    model = onnx.load(str(onnx_path))
    keep = [(p.key, p.value) for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    for k, value in [*keep, (key, json.dumps(data, separators=(",", ":")))]:
        entry = model.metadata_props.add()
        entry.key, entry.value = k, value
    onnx.save(model, str(onnx_path))
