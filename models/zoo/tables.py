"""The tables ``pose-zoo list`` and ``pose-eval`` print: MMPose's model-zoo tables in Markdown."""

from __future__ import annotations

from models.zoo.config import METRIC_COLUMNS, PoseModelConfig, size_hw
from models.zoo.entries import ZOO


def model_zoo_table(rows: list[dict], dataset: str, extra_columns: tuple[str, ...] = ()) -> str:
    """MMPose's model-zoo table in Markdown: ``| Arch | Input Size | <metrics of the data set> | <extra> |``.

    The one formatter of these tables (``pose-zoo list``, ``pose-eval``).

    Args:
        rows: dicts with ``arch`` (str), ``input_size`` ((w, h) pixels; printed as MMPose does, height x width:
            ``256x192``), ``metrics`` (figures by :data:`METRIC_COLUMNS` name, fractions; missing ones print ``-``)
            and one value per ``extra_columns`` name.
        dataset: ``"coco"`` or ``"mpii"`` (:data:`METRIC_COLUMNS`).
        extra_columns: more columns after the metrics (their values are printed as given).

    Returns:
        The table, one line per row, newline-terminated.

    Raises:
        KeyError: unknown data set.
    """
    metrics = METRIC_COLUMNS[dataset]
    head = ("Arch", "Input Size", *metrics, *extra_columns)
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join([":---", ":---:"] + [":---:"] * len(metrics) + [":---"] * len(extra_columns)) + "|",
    ]
    for r in rows:
        m = r["metrics"]
        figures = [f"{m[k]:.3f}" if m.get(k) is not None else "-" for k in metrics]
        cells = [r["arch"], size_hw(r["input_size"]), *figures, *(str(r[c]) for c in extra_columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: How MMPose's model-zoo pages name each backbone (``PoseModelConfig.backbone``) in a table's title.
BACKBONE_TITLES: dict[str, str] = {
    "resnet": "ResNet",
    "resnetv1d": "ResNetV1D",
    "resnext": "ResNeXt",
    "seresnet": "SEResNet",
    "resnest": "ResNeSt",
    "scnet": "SCNet",
    "alexnet": "AlexNet",
    "hrnet": "HRNet",
    "litehrnet": "LiteHRNet",
    "mobilenetv2": "MobileNet-v2",
    "shufflenetv1": "ShuffleNet-v1",
    "shufflenetv2": "ShuffleNet-v2",
    "hourglass": "Hourglass",
    "cpm": "CPM",
    "mspn": "MSPN",
    "rsn": "RSN",
}


def group_title(collection: str, backbone: str) -> str:
    """A table's title as MMPose's model-zoo pages write it: the collection, ``+ <backbone>`` when the backbone is
    not what the collection is named after (``SimpleBaseline2D + ResNeXt``; ``HRNet``)."""
    title = BACKBONE_TITLES.get(backbone, backbone)
    return (
        collection
        if title.lower().replace("-", "") in collection.lower().replace("-", "")
        else f"{collection} + {title}"
    )


_DATASET_TITLES = {
    "coco": "COCO val2017, person detections AP_H 56, flip test",
    "mpii": "MPII val, PCKh (Mean = PCKh@0.5), flip test",
}


def zoo_table() -> str:
    """Every entry with its published figures, grouped by collection, backbone and data set as MMPose's model-zoo
    tables (``pose-zoo list``; e.g. "SimpleBaseline2D + ResNeXt", "HRNet", "DarkPose"): one Markdown table per group with
    the columns of that data set, the zoo name and the checkpoint URL."""
    groups: dict[tuple[str, str], list[PoseModelConfig]] = {}
    for cfg in ZOO.values():
        title = group_title(cfg.collection or cfg.head_kind, cfg.backbone)
        groups.setdefault((title, cfg.dataset or "coco"), []).append(cfg)
    parts = []
    for (collection, dataset), cfgs in groups.items():
        rows = [
            {
                "arch": c.arch or c.name,
                "input_size": c.input_size,
                "metrics": c.published,
                "name": c.name,
                "ckpt": c.checkpoint_url,
            }
            for c in cfgs
        ]
        parts.append(
            f"## {collection} ({_DATASET_TITLES[dataset]})\n\n" + model_zoo_table(rows, dataset, ("name", "ckpt"))
        )
    return "\n".join(parts)
