"""The run's log: ``log.jsonl`` in the work folder (one JSON record per log interval and per validation) and, with
``--tensorboard``, the same scalars in TensorBoard; only rank 0 writes."""

from __future__ import annotations

import json
from pathlib import Path


class RunLog:
    """Append records to ``<work>/log.jsonl`` (and TensorBoard); a no-op on ranks other than 0."""

    def __init__(self, work: Path, main_proc: bool, tensorboard: bool) -> None:
        """Raises:
        ValueError: ``tensorboard`` without the tensorboard package."""
        self.writer = None
        if main_proc and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ValueError(f"--tensorboard needs the tensorboard package ({exc})") from None
            self.writer = SummaryWriter(str(work / "tensorboard"))
        self.file = (work / "log.jsonl").open("a") if main_proc else None

    def write(self, record: dict) -> None:
        """One record (``mode``: start / train / val, ``iter``, figures); numbers also go to TensorBoard."""
        if self.file is None:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "iter"):
                    self.writer.add_scalar(f"{record['mode']}/{k}", v, record["iter"])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.writer is not None:
            self.writer.close()
