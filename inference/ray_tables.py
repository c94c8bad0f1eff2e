"""The tables of ``pose-predict --runner ray`` (:mod:`inference.ray_runner`) in ``--out``: their Parquet schemas, the
COCO ``image_id`` of an image path, the resume state and the derived tables (:class:`ResultStore`), and the Parquet /
JSON source lists (:func:`read_source_list`). The layout of the folder is in :mod:`inference.ray_runner`'s docstring.

Ray is not needed here; ``pyarrow`` is imported only in the functions that need it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from core.errors import UsageError

#: Non-numeric file names get ids in [2**52, 2**53): above any COCO id, exact as JSON numbers (IEEE doubles).
HASHED_ID_BASE = 1 << 52

POSE_COLUMNS = (
    "source", "kind", "image_id", "frame", "time_s", "track_id", "person", "bbox", "bbox_score", "score", "keypoints",
    "run_id",
)  # fmt: skip
SOURCE_COLUMNS = ("source", "kind", "image_id", "width", "height", "persons", "frames", "error", "run_id", "elapsed_s")


def _schemas():
    import pyarrow as pa

    pose = pa.schema(
        [
            ("source", pa.string()),
            ("kind", pa.string()),
            ("image_id", pa.int64()),
            ("frame", pa.int64()),
            ("time_s", pa.float64()),
            ("track_id", pa.int64()),
            ("person", pa.int32()),
            ("bbox", pa.list_(pa.float64(), 4)),
            ("bbox_score", pa.float64()),
            ("score", pa.float64()),
            ("keypoints", pa.list_(pa.list_(pa.float64(), 3))),
            ("run_id", pa.string()),
        ]
    )
    source = pa.schema(
        [
            ("source", pa.string()),
            ("kind", pa.string()),
            ("image_id", pa.int64()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("persons", pa.int64()),
            ("frames", pa.int64()),
            ("error", pa.string()),
            ("run_id", pa.string()),
            ("elapsed_s", pa.float64()),
        ]
    )
    # what one map_batches call returns: both kinds of rows in one table, told apart by ``row``
    combined = pa.schema(
        [("row", pa.string())] + [pose.field(n) for n in POSE_COLUMNS]
        + [source.field(n) for n in ("width", "height", "persons", "frames", "error", "elapsed_s")]
    )  # fmt: skip
    return pose, source, combined


def image_id_for(source: str) -> int:
    """The COCO ``image_id`` of an image path: the number its file stem is (``000000000139.jpg`` -> 139), else
    :data:`HASHED_ID_BASE` + the first 52 bits of the SHA-256 of the path as given (stable across runs and
    machines for the same path string).

    Args:
        source: the image's path, as the job names it.

    Returns:
        int in [0, 2**53).
    """
    stem = Path(source).stem
    if stem.isdigit() and int(stem) < HASHED_ID_BASE:
        return int(stem)
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return HASHED_ID_BASE + (int.from_bytes(digest[:8], "big") >> 12)


class ResultStore:
    """``--out`` of a Ray job: the Parquet parts, the resume state and the derived tables (see
    :mod:`inference.ray_runner`).

    Args:
        out: the folder (created).
        run_id: this run's id (names the parts it writes).
    """

    def __init__(self, out: Path, run_id: str):
        self.out, self.run_id = Path(out), run_id
        self.poses_dir, self.sources_dir = self.out / "poses", self.out / "sources"
        self._part = 0
        self._lock = threading.Lock()

    def status(self):
        """The latest row of each source in ``sources/`` (a ``pyarrow.Table`` of :data:`SOURCE_COLUMNS`, possibly
        empty)."""
        import pyarrow as pa

        _, source_schema, _ = _schemas()
        table = _read_parts(self.sources_dir, source_schema)
        if table.num_rows == 0:
            return table
        latest: dict[str, int] = {}
        runs = table.column("run_id").to_pylist()
        for i, src in enumerate(table.column("source").to_pylist()):
            j = latest.get(src)
            if j is None or runs[i] >= runs[j]:
                latest[src] = i
        return table.take(pa.array(sorted(latest.values()), type=pa.int64()))

    def pending(self, sources: Sequence[str], retry_errors: bool = False) -> list[str]:
        """The sources that still need a run: no row in ``sources/``, or (``retry_errors``) a latest row with an
        error."""
        table = self.status()
        done = {
            s for s, e in zip(table.column("source").to_pylist(), table.column("error").to_pylist())
            if e is None or not retry_errors
        }  # fmt: skip
        return [s for s in sources if s not in done]

    def write(self, combined) -> tuple[int, int]:
        """Write one chunk of worker output (combined schema): its person rows to ``poses/``, then its source rows to
        ``sources/`` (temporary names, renamed when complete). Returns (sources, persons) written."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if combined.num_rows == 0:
            return 0, 0
        pose_schema, source_schema, _ = _schemas()
        is_person = pc.equal(combined.column("row"), "person")
        persons = combined.filter(is_person).select(list(POSE_COLUMNS)).cast(pose_schema)
        sources = combined.filter(pc.invert(is_person)).select(list(SOURCE_COLUMNS)).cast(source_schema)
        with self._lock:
            name = f"part-{self.run_id}-{self._part:05d}.parquet"
            self._part += 1
        for table, folder in ((persons, self.poses_dir), (sources, self.sources_dir)):
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.tmp"
            pq.write_table(table, tmp)
            os.replace(tmp, folder / name)
        return sources.num_rows, persons.num_rows

    def finish(self) -> dict[str, Any]:
        """Rebuild ``errors.parquet``, ``coco_results.json`` and ``image_ids.json`` from the latest run of each source.

        Returns:
            ``{"sources", "errors", "persons", "images"}``: counts over the whole folder (all runs).
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = self.status().to_pylist()
        errors = [r for r in rows if r["error"] is not None]
        err_schema = pa.schema([("source", pa.string()), ("kind", pa.string()), ("error", pa.string()),
                                ("run_id", pa.string())])  # fmt: skip
        err_table = pa.Table.from_pylist([{k: r[k] for k in err_schema.names} for r in errors], schema=err_schema)
        self.out.mkdir(parents=True, exist_ok=True)
        pq.write_table(err_table, self.out / "errors.parquet")
        poses = self.poses()
        coco: list[dict] = []
        for p in poses.to_pylist():
            if p["kind"] != "image":
                continue
            kps = [v for kp in p["keypoints"] for v in kp]
            coco.append({"image_id": p["image_id"], "category_id": 1, "keypoints": kps, "score": p["score"]})
        images = {r["source"]: r["image_id"] for r in rows if r["kind"] == "image"}
        ids = list(images.values())
        if len(set(ids)) != len(ids):
            raise UsageError("two images have the same image_id (the same COCO number in two folders?); rename one")
        (self.out / "coco_results.json").write_text(json.dumps(coco))
        (self.out / "image_ids.json").write_text(json.dumps(images, indent=0, sort_keys=True))
        return {"sources": len(rows), "errors": len(errors), "persons": poses.num_rows, "images": len(images)}

    def poses(self):
        """The person rows of each source's latest successful run (``pyarrow.Table`` of :data:`POSE_COLUMNS`), by
        source, frame and rank."""
        import pyarrow as pa
        import pyarrow.compute as pc

        pose_schema, _, _ = _schemas()
        status = self.status()
        ok = [(r["source"], r["run_id"]) for r in status.to_pylist() if r["error"] is None]
        table = _read_parts(self.poses_dir, pose_schema)
        if table.num_rows == 0 or not ok:
            return table.slice(0, 0)
        keys = pa.array([f"{s}\x00{r}" for s, r in ok])
        mine = pc.binary_join_element_wise(table.column("source"), table.column("run_id"), "\x00")
        table = table.filter(pc.is_in(mine, value_set=keys))
        frame = pc.fill_null(table.column("frame"), -1)
        table = table.append_column("_frame", frame)
        table = table.sort_by([("source", "ascending"), ("_frame", "ascending"), ("person", "ascending")])
        return table.drop_columns(["_frame"])


def _read_parts(folder: Path, schema):
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
    if not parts:
        return schema.empty_table()
    return pa.concat_tables([pq.read_table(p, schema=schema) for p in parts])


def read_source_list(path: Path) -> list[str]:
    """The paths listed in a Parquet file (column ``source``, else ``path``, else its only string column) or a JSON
    file (a list of strings, or of objects with ``source`` or ``path``). Relative paths are taken from the list
    file's folder.

    Raises:
        ValueError: the file has no such column / is not such a list.
        OSError: it cannot be read.
    """
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ValueError(f"{path}: reading a Parquet list needs pyarrow (pip install 'poseserve[ray]')") from exc
        table = pq.read_table(path)
        names = [n for n in ("source", "path") if n in table.column_names]
        if not names:
            import pyarrow as pa

            names = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
            if len(names) != 1:
                raise ValueError(f"{path}: no 'source' or 'path' column, and not exactly one string column")
        values: Iterable = table.column(names[0]).to_pylist()
    else:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise ValueError(f"{path}: a JSON list of paths (or of objects with 'source' / 'path') expected")
        values = [d.get("source", d.get("path")) if isinstance(d, dict) else d for d in data]
    out = []
    for v in values:
        if not isinstance(v, str) or not v:
            raise ValueError(f"{path}: every entry must be a path, got {v!r}")
        p = Path(v).expanduser()
        out.append(str(p if p.is_absolute() else path.parent / p))
    return out
