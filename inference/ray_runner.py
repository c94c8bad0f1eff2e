"""``pose-predict --runner ray``: the same engine as the server, over a Ray cluster with Ray Data.

    pose-predict 'val2017/*.jpg' clips/ list.parquet --runner ray --out runs/pose/ray \\
        [--ray-address ray://head:10001] [--concurrency 8] [--num-gpus 1] [--num-cpus 4]

Images go through :meth:`ray.data.Dataset.map_batches` with a callable class (:class:`PoseWorker`): Ray Data runs it
in a pool of actors, each of which opens the models once (:meth:`inference.pipeline.PosePipeline.from_settings`, the
server's pipeline) and then takes batches of image paths (Ray Data docs: "Transforming batches" / "Stateful
transforms", ``map_batches(<class>, compute=ActorPoolStrategy(size=n), num_cpus=..., num_gpus=..., batch_size=...)``;
Ray 2.51 deprecated ``concurrency=`` for ``compute=``). With
``--batching`` (the default, as the server) the images of a batch run in threads so the pipeline's cross-request
batchers put their crops in one pose-model batch; ``--no-batching`` runs them one by one. Videos go through a second
``map_batches`` with one video per batch (one task per video): its frames in order through
:class:`~inference.stream.PoseStream` (tracking, smoothing) as ``pose-predict --runner local`` runs them.

The driver (this process) streams the actors' results (:meth:`ray.data.Dataset.iter_batches`) and writes, in
``--out`` (which only the driver needs to reach; the inputs and the models must be readable at the same paths on every
node: a shared file system, or the image's model cache):

* ``poses/part-<run>-<n>.parquet``: one row per person (:data:`POSE_SCHEMA`): ``source``, ``kind``, ``image_id``
  (images), ``frame`` / ``time_s`` (videos: index in the source, presentation time in seconds), ``track_id`` (videos
  when tracking), ``person`` (rank by score in its image / frame), ``bbox`` [x1, y1, x2, y2] and ``keypoints`` [K][x, y,
  score] in pixels of the original image / frame (after EXIF orientation), ``bbox_score``, ``score``, ``run_id``.
  The numbers are those of the service's JSON (:func:`inference.encoding.person_dicts`, rounded as it rounds).
* ``sources/part-<run>-<n>.parquet``: one row per processed source and run (:data:`SOURCE_SCHEMA`): ``width``,
  ``height``, ``persons``, ``frames``, ``error`` (None when it succeeded). Written after its ``poses`` file, so a
  source is done only once both are on disk (each file is written to a temporary name, then renamed).
* ``errors.parquet``: ``source``, ``kind``, ``error``, ``run_id`` of each source whose latest run failed (a corrupt
  image, an unreadable file, a video that stops decoding). A failing source never stops the job.
* ``coco_results.json``: the COCO keypoint results of the images (``image_id``, ``category_id`` 1, ``keypoints`` 3K
  floats, ``score``: the person score of the service's answer), which ``pose-eval --results`` scores; and
  ``image_ids.json``, ``{source: image_id}`` of every image: the COCO id in the file name when the stem is a number
  (``000000000139.jpg`` -> 139), else a stable id from the path (:func:`image_id_for`).

Resume: a rerun with the same ``--out`` reads ``sources/`` and skips every source that has a row there (done, or
failed: ``--retry-errors`` runs the failed ones again). Results are written every :data:`FLUSH_SOURCES` sources or
:data:`FLUSH_SECONDS` seconds, so an interrupted job (Ctrl-C, a lost driver) redoes at most that much. The tables
are rebuilt from the latest run of each source (rows of older or unfinished runs are ignored, never deleted).

Ray is optional (``pip install 'poseserve[ray]'``); this module imports ``ray`` and ``pyarrow`` only in the functions
that need them.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import PoseServiceError, UsageError
from core.settings import Settings

# the tables and resume: re-exported, the names stay importable from here
from inference.ray_tables import HASHED_ID_BASE as HASHED_ID_BASE
from inference.ray_tables import POSE_COLUMNS as POSE_COLUMNS
from inference.ray_tables import SOURCE_COLUMNS as SOURCE_COLUMNS
from inference.ray_tables import ResultStore, _schemas, image_id_for
from inference.ray_tables import read_source_list as read_source_list

#: Sources between two flushes of the results to ``--out`` (and at most this much is redone after an interruption).
FLUSH_SOURCES = 512
#: Seconds between two flushes, whatever the count.
FLUSH_SECONDS = 60.0


@dataclass(frozen=True)
class VideoOptions:
    """What ``pose-predict`` does with a video: ``track`` / ``smooth`` (None: the settings' default), every
    ``frame_stride``-th decoded frame, at most ``max_frames`` processed frames (None: all)."""

    track: bool | None = None
    smooth: bool | None = None
    frame_stride: int = 1
    max_frames: int | None = None


# ------------------------------------------------------------------------------------------------------------------
# The actor


class PoseWorker:
    """The callable class of ``map_batches``: one per Ray actor, the models opened once in ``__init__``.

    Args:
        settings: resolved settings (model paths readable on the node, runtime, providers, ``intra_op_threads``).
        run_id: the job's run id, copied into every row.
        batching: the pipeline's cross-request batchers on (the images of a batch run in threads and share pose
            batches) or off (one image after the other).
        video: what to do with videos.

    Raises:
        ModelLoadError: a model cannot be opened (Ray reports it as the actor's failure; the job stops).
    """

    def __init__(self, settings: Settings, run_id: str, batching: bool = True, video: VideoOptions | None = None):
        from inference.pipeline import PosePipeline

        self.settings, self.run_id, self.batching = settings, run_id, batching
        self.video_options = video or VideoOptions()
        self.pipeline = PosePipeline.from_settings(settings, batching=batching)
        self._pool = ThreadPoolExecutor(max_workers=settings.max_batch_size) if batching else None
        self._schemas = _schemas()

    def __del__(self) -> None:  # the actor ends: stop the batchers' threads
        pool, pipeline = getattr(self, "_pool", None), getattr(self, "pipeline", None)
        if pool is not None:
            pool.shutdown(wait=False)
        if pipeline is not None:
            pipeline.close()

    def __call__(self, batch) -> Any:
        """One batch of sources (a ``pyarrow.Table`` with ``source``, ``kind``, ``image_id``) -> a ``pyarrow.Table``
        of the combined schema: the person rows (``row == "person"``) and one status row per source
        (``row == "source"``)."""
        import pyarrow as pa

        sources = batch.to_pylist()
        if self._pool is not None and len(sources) > 1:
            parts = list(self._pool.map(self._one, sources))
        else:
            parts = [self._one(s) for s in sources]
        rows = [r for part in parts for r in part]
        return pa.Table.from_pylist(rows, schema=self._schemas[2])

    def _one(self, item: dict) -> list[dict]:
        t0 = time.perf_counter()
        status = {"row": "source", "source": item["source"], "kind": item["kind"], "image_id": item["image_id"],
                  "run_id": self.run_id, "error": None}  # fmt: skip
        try:
            if item["kind"] == "video":
                persons, facts = self._video(item)
            else:
                persons, facts = self._image(item)
        except Exception as exc:  # any failure of one source is that source's error, never the job's
            status.update(error=_message(exc), persons=0, elapsed_s=time.perf_counter() - t0)
            return [status]
        status.update(facts, persons=len(persons), elapsed_s=time.perf_counter() - t0)
        return persons + [status]

    def _image(self, item: dict) -> tuple[list[dict], dict]:
        from inference.encoding import person_dicts
        from inference.imageio import decode_image

        image = decode_image(Path(item["source"]).read_bytes(), None, self.settings.max_image_pixels)
        result = self.pipeline.predict(image)
        rows = [self._person(item, p, rank) for rank, p in enumerate(person_dicts(result))]
        return rows, {"width": result.width, "height": result.height, "frames": None}

    def _video(self, item: dict) -> tuple[list[dict], dict]:
        from inference.context import RequestContext
        from inference.encoding import person_dicts
        from inference.stream import PoseStream, StreamOptions
        from inference.video import VideoLimits, open_video

        v = self.video_options
        options = StreamOptions.from_settings(self.settings, track=v.track, smooth=v.smooth)
        ctx = RequestContext(None, time.monotonic() + self.settings.video_timeout_s)
        stream = PoseStream(self.pipeline, options)
        rows: list[dict] = []
        with open_video(item["source"], VideoLimits.from_settings(self.settings)) as reader:
            info = reader.info
            for frame in reader.frames(stride=v.frame_stride, max_frames=v.max_frames):
                out = stream.process(frame.image, frame.time_s, frame.index, ctx)
                extra = {"frame": int(out.frame), "time_s": round(float(out.time_s), 4)}
                rows += [
                    self._person(item, p, rank, **extra)
                    for rank, p in enumerate(person_dicts(out.result, out.track_ids))
                ]
        return rows, {"width": info.width, "height": info.height, "frames": stream.stats.frames}

    def _person(self, item: dict, p: dict, rank: int, **extra) -> dict:
        return {"row": "person", "source": item["source"], "kind": item["kind"], "image_id": item["image_id"],
                "track_id": p.get("track_id"), "person": rank, "bbox": p["bbox"], "bbox_score": p["bbox_score"],
                "score": p["score"], "keypoints": p["keypoints"], "run_id": self.run_id, **extra}  # fmt: skip


def _message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, (OSError, PoseServiceError)) else f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------------------------------------------------------
# The job


def init_ray(address: str | None = None, **kwargs) -> None:
    """Connect to the Ray cluster at ``address`` (``ray://host:10001``, ``host:6379``, ``auto``), else at
    ``RAY_ADDRESS``, else start a local one (Ray docs: ``ray.init``). A local Ray's workers import this
    installation's packages (its folder goes first on their ``PYTHONPATH``); on a cluster, poseserve must be
    installed on every node (the same image). Does nothing when Ray is already initialised.

    Args:
        address: the cluster, or None.
        kwargs: passed to ``ray.init`` (a local Ray: ``num_cpus``, ``object_store_memory``...).

    Raises:
        UsageError: Ray is not installed (``pip install 'poseserve[ray]'``).
    """
    ray = import_ray()
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        kwargs.setdefault("runtime_env", {"env_vars": {"PYTHONPATH": path}})
        kwargs.setdefault("include_dashboard", False)
    ray.init(address=address, log_to_driver=kwargs.pop("log_to_driver", True), **kwargs)


def import_ray():
    """``ray`` and ``ray.data``, or a :class:`UsageError` that says how to install them."""
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"--runner ray needs Ray Data: pip install 'poseserve[ray]' ({exc})") from exc
    return ray


@dataclass
class RayJob:
    """One ``pose-predict --runner ray`` run.

    Args:
        settings: resolved settings (models found; ``intra_op_threads`` per actor).
        out: the output folder.
        concurrency: actors (None: as many as the cluster's CPUs / ``num_cpus`` or GPUs / ``num_gpus`` allow).
        num_cpus: CPUs reserved per actor (also the models' threads when ``intra_op_threads`` is 0).
        num_gpus: GPUs per actor (0: CPU only).
        batch_size: images per ``map_batches`` call.
        batching: the pipeline's batchers (see :class:`PoseWorker`).
        video: the video options.
        retry_errors: run the sources whose latest run failed again.
        quiet: no progress lines.
    """

    settings: Settings
    out: Path
    concurrency: int | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    batch_size: int = 8
    batching: bool = True
    video: VideoOptions = VideoOptions()
    retry_errors: bool = False
    quiet: bool = False

    def run(self, images: Sequence[str], videos: Sequence[str], stop=lambda: False) -> dict[str, Any]:
        """Run the pending sources and rebuild the tables.

        Args:
            images, videos: file paths (readable on every node).
            stop: checked between result batches; True stops the job after writing what has arrived.

        Returns:
            ``finish()``'s counts plus ``run_id``, ``skipped`` (done before), ``ran`` (this run's sources),
            ``interrupted``.
        """
        ray = import_ray()
        run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        store = ResultStore(self.out, run_id)
        todo_images = store.pending(images, self.retry_errors)
        todo_videos = store.pending(videos, self.retry_errors)
        skipped = len(images) + len(videos) - len(todo_images) - len(todo_videos)
        self._note(f"{skipped} sources already in {self.out}; {len(todo_images)} images and {len(todo_videos)} "
                   f"videos to run (run {run_id})")  # fmt: skip
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = not self.quiet
        ran, interrupted = 0, False
        for kind, todo, batch_size in (("image", todo_images, self.batch_size), ("video", todo_videos, 1)):
            if not todo or interrupted:
                continue
            items = [
                {"source": s, "kind": kind, "image_id": image_id_for(s) if kind == "image" else None} for s in todo
            ]
            ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 10 * self._actors(ray))))
            out = ds.map_batches(
                PoseWorker,
                fn_constructor_kwargs={
                    "settings": self._actor_settings(),
                    "run_id": run_id,
                    "batching": self.batching,
                    "video": self.video,
                },  # fmt: skip
                batch_size=batch_size,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=self._actors(ray)),
                num_cpus=self.num_cpus,
                num_gpus=self.num_gpus or None,
            )
            n, interrupted = self._drain(out, store, stop)
            ran += n
        counts = store.finish()
        return {**counts, "run_id": run_id, "skipped": skipped, "ran": ran, "interrupted": interrupted}

    def _drain(self, dataset, store: ResultStore, stop) -> tuple[int, bool]:
        """Stream the results to ``store`` (flushing by count and time). Returns (sources written, interrupted)."""
        import pyarrow as pa

        pending: list = []
        n_pending = written = 0
        last = time.monotonic()

        def flush() -> None:
            nonlocal pending, n_pending, written, last
            if pending:
                written += store.write(pa.concat_tables(pending))[0]
            pending, n_pending, last = [], 0, time.monotonic()

        try:
            for table in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
                pending.append(table)
                n_pending += int(sum(1 for r in table.column("row").to_pylist() if r == "source"))
                if n_pending >= FLUSH_SOURCES or time.monotonic() - last >= FLUSH_SECONDS:
                    flush()
                if stop():
                    break
        except KeyboardInterrupt:
            flush()
            raise
        flush()
        return written, bool(stop())

    def _actor_settings(self) -> Settings:
        if self.settings.intra_op_threads == 0 and self.num_gpus == 0:
            return self.settings.model_copy(update={"intra_op_threads": max(1, int(self.num_cpus))})
        return self.settings

    def _actors(self, ray) -> int:
        if self.concurrency is not None:
            return self.concurrency
        resources = ray.cluster_resources()
        if self.num_gpus:
            return max(1, int(resources.get("GPU", 0) // self.num_gpus))
        return max(1, int(resources.get("CPU", 1) // max(self.num_cpus, 1e-9)))

    def _note(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr)
