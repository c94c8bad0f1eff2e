"""Reporting of the offline evaluation: the MMPose model-zoo table, the precision table and the per-keypoint plot."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models.zoo import model_zoo_table

if TYPE_CHECKING:
    from evaluation.precision_runs import PrecisionRun


def format_precision_table(runs: list[PrecisionRun]) -> str:
    """Markdown: one row per precision with AP, AP50, AP75, AR and the AP difference to the first run."""
    ref = runs[0].result.stats["AP"]
    lines = ["| precision | AP | AP50 | AP75 | AR | AP - AP(" + runs[0].precision + ") |", "|---|---|---|---|---|---|"]
    for r in runs:
        s = r.result.stats
        figures = " | ".join(f"{s[k]:.4f}" for k in ("AP", "AP50", "AP75", "AR"))
        lines.append(f"| {r.precision} | {figures} | {s['AP'] - ref:+.4f} |")
    return "\n".join(lines) + "\n"


def format_ap_table(rows: list[dict], dataset: str = "coco") -> str:
    """The MMPose model-zoo table in Markdown (``models.zoo.model_zoo_table``): ``Arch | Input Size | AP | AP50 |
    AP75 | AR | AR50`` (COCO) or ``Arch | Input Size | Mean | Mean@0.1`` (MPII).

    Args:
        rows: dicts with ``arch`` (str), ``input_size`` ((w, h) pixels, printed height x width as MMPose does) and
            ``stats`` (figures by column name, 0..1); printed with 3 decimals like the zoo.
        dataset: ``coco`` or ``mpii``.
    """
    return model_zoo_table([{**r, "metrics": r["stats"]} for r in rows], dataset)


def plot_per_keypoint(breakdown: dict, path: str | Path, title: str = "") -> Path:
    """Bar chart of mean keypoint OKS and PCK per keypoint (matplotlib, Agg backend). Returns the PNG path.

    Args:
        breakdown: :func:`evaluation.metric.per_keypoint_breakdown` output.
        path: where to write the PNG.
        title: figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = breakdown["names"]
    x = np.arange(len(names))
    oks = np.nan_to_num(np.asarray(breakdown["oks"], dtype=float))
    pck = np.nan_to_num(np.asarray(breakdown["pck"], dtype=float))
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=100)
    ax.bar(x - 0.2, oks, width=0.4, label="mean keypoint OKS")
    ax.bar(x + 0.2, pck, width=0.4, label=f"PCK@{breakdown['pck_thr']:g} (bbox)")
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylim(0, 1.2)
    ax.set_ylabel("score")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", ncol=2, frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
