"""``pose-predict``: the engine in-process on images, folders, globs, videos and stream URLs; no server.

    pose-predict photo.jpg 'data/*.png' clips/ match.mp4 rtsp://camera/1 --out runs/pose/predict --render

As Ultralytics' ``yolo predict source=...``: each source's poses are written to ``--out`` (default
``runs/pose/predict``; the images first, under one progress bar, then each video with its own), in the encoding of
the service (:mod:`inference.encoding`):

* an image ``<stem>.json``: the fields of ``POST /pose``'s answer; with ``--render``, ``<stem>.jpg`` drawn;
* a video or URL ``<stem>.ndjson``: a ``video`` header line, one ``frame`` line per processed frame (people with
  their ``track_id``), a ``summary`` line (:meth:`inference.stream.PoseStream.summary`); with ``--render``,
  ``<stem>.mp4`` (H.264, every processed frame drawn: with ``--frame-stride 1`` as many frames as the source).

Videos run through :class:`~inference.stream.PoseStream` (detection interval, scene cuts, tracking, One-Euro
smoothing) over the same :class:`~inference.pipeline.PosePipeline` as the server's, models resolved as ``pose-serve``
resolves them (:func:`inference.default_models.resolve_models`). Every setting of the models, the runtime, the pipeline,
the detector and video is an option (``core.cli_options``), ``POSE_*`` in the environment.

``--runner ray`` runs the same pipeline in Ray actors over a cluster and writes Parquet tables and a COCO results
JSON instead (:mod:`inference.ray_runner`; files only, no URLs, no ``--render``; a rerun resumes).

Exit status: 0 all done; 1 some source failed (named on stderr; the others are written), or a model that cannot be
found (no defaults, a missing file, a card that does not parse: ``check_model_files``, as ``pose-serve``); 2 bad
options or a source that does not exist or matches nothing (checked for all sources before any model loads); 3 a
model that passed those checks and fails to load in the runtime; 130 interrupted (Ctrl-C: the frame in progress finishes, the files are closed
— the MP4 playable, the NDJSON with its summary — and nothing more is read; a second Ctrl-C stops at once).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from core.cli_options import add_settings_options, add_version_option, settings_from_args
from core.errors import ModelLoadError, PoseServiceError, UsageError
from core.settings import (
    CACHE_FIELDS,
    DEFAULT_MODEL_FIELDS,
    DETECTOR_FIELDS,
    LOG_FIELDS,
    MODEL_FIELDS,
    PIPELINE_FIELDS,
    RUNTIME_FIELDS,
    VIDEO_FIELDS,
    Settings,
)

# the sources: re-exported, the names stay importable from here
from inference.predict_sources import IMAGE_SUFFIXES as IMAGE_SUFFIXES
from inference.predict_sources import LIST_SUFFIXES as LIST_SUFFIXES
from inference.predict_sources import URL_SCHEMES as URL_SCHEMES
from inference.predict_sources import VIDEO_SUFFIXES as VIDEO_SUFFIXES
from inference.predict_sources import Source, _is_url, expand_sources

PROG = "pose-predict"
#: The settings ``pose-predict`` takes as options.
FIELDS: tuple[str, ...] = (
    MODEL_FIELDS + CACHE_FIELDS + RUNTIME_FIELDS + PIPELINE_FIELDS + DETECTOR_FIELDS + VIDEO_FIELDS + LOG_FIELDS
) + DEFAULT_MODEL_FIELDS
#: Output frame rate of a rendered video whose source declares none.
FALLBACK_FPS = 25.0

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOAD, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Pose estimation on images, folders, globs, videos and http(s) / rtsp URLs, in this process "
        "(no server). Writes <stem>.json per image and <stem>.ndjson per video in --out (with --render, "
        "<stem>.jpg / <stem>.mp4 drawn).",
        epilog="Exit status: 0 done, 1 some source failed (the others are written) or a model cannot be found, 2 bad "
        "options or missing sources (checked before any model loads), 3 a model failed to load, 130 interrupted "
        "(outputs closed). "
        "With no --detector / --pose, the default models are used as by pose-serve.",
    )
    add_version_option(p)
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="image or video file, folder (its images and videos, sorted, not recursive), quoted glob "
                   "('data/*.jpg'), a .parquet ('source' or 'path' column) or .json list of such files (relative "
                   "to the list's folder), or http(s):// / rtsp:// URL (read as a video; local runner only)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("runs/pose/predict"),
                   help="output folder, created (default runs/pose/predict)")  # fmt: skip
    p.add_argument("--render", action="store_true", help="also write the poses drawn: <stem>.jpg, <stem>.mp4")
    p.add_argument("--track", action=argparse.BooleanOptionalAction, default=None,
                   help="videos: a track_id per person, kept across frames (default on)")  # fmt: skip
    p.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=None,
                   help="videos: One-Euro smoothing of each track's keypoints and box (default on; needs tracks)")  # fmt: skip
    p.add_argument("--frame-stride", type=_positive, default=1, metavar="N",
                   help="videos: process every N-th decoded frame (default 1: all)")  # fmt: skip
    p.add_argument("--max-frames", type=_positive, default=None, metavar="N",
                   help="videos: stop after N processed frames (default: the whole video)")  # fmt: skip
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bars, per-source lines or info logs on stderr (errors still)")  # fmt: skip
    r = p.add_argument_group("runner (--runner ray: Ray Data over a cluster; see inference/ray_runner.py)")
    r.add_argument("--runner", choices=("local", "ray"), default="local",
                   help="local: this process, <stem>.json / .ndjson per source (default); ray: an actor pool on a "
                   "Ray cluster, Parquet tables (poses/, sources/, errors.parquet) and coco_results.json in --out, "
                   "resumable (a rerun skips the sources already there)")  # fmt: skip
    r.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="ray: the cluster (ray://head:10001, auto); default $RAY_ADDRESS, else a local Ray")  # fmt: skip
    r.add_argument("--concurrency", type=_positive, default=None, metavar="N",
                   help="ray: actors, each with both models (default: the cluster's CPUs / --num-cpus, or GPUs / "
                   "--num-gpus)")  # fmt: skip
    r.add_argument("--num-cpus", type=_positive_float, default=1.0, metavar="N",
                   help="ray: CPUs per actor, also the models' threads unless --intra-op-threads is set (default 1)")  # fmt: skip
    r.add_argument("--num-gpus", type=_non_negative_float, default=0.0, metavar="N",
                   help="ray: GPUs per actor (default 0; 1 with a GPU runtime, fractions share a GPU)")  # fmt: skip
    r.add_argument("--batch-size", type=_positive, default=8, metavar="N",
                   help="ray: images per map_batches call of an actor (default 8)")  # fmt: skip
    r.add_argument("--batching", action=argparse.BooleanOptionalAction, default=True,
                   help="ray: the images of a batch share pose-model batches, as in the server (default on)")  # fmt: skip
    r.add_argument("--retry-errors", action="store_true",
                   help="ray: run the sources whose last run failed again (default: skipped like the done ones)")  # fmt: skip
    add_settings_options(p, FIELDS)
    return p.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


# ------------------------------------------------------------------------------------------------------------------
# Ctrl-C and progress


class StopRequest:
    """Ctrl-C as a request: the first SIGINT sets :attr:`requested` (the loops stop after the frame in progress), a
    second raises ``KeyboardInterrupt`` at once. Installed only in the main thread (elsewhere SIGINT stays as it is)."""

    def __init__(self) -> None:
        self.requested = False
        self._installed = False
        self._previous = None

    def __enter__(self) -> StopRequest:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        except ValueError:  # not the main thread
            pass
        return self

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.SIG_DFL)

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{PROG}: stopping after the current frame (Ctrl-C again to stop at once)", file=sys.stderr)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int | None, desc: str, unit: str, quiet: bool):
    """A tqdm progress bar on stderr (rate in ``unit``/s), hidden with ``--quiet`` or when stderr is not a terminal."""
    if quiet:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # the video extra is not installed
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None, dynamic_ncols=True, leave=True)


# ------------------------------------------------------------------------------------------------------------------
# Work


class Predictor:
    """Runs the sources through one pipeline and writes their outputs.

    Args:
        pipeline: the shared :class:`~inference.pipeline.PosePipeline` (with a detector).
        settings: image and video limits, the video deadline, the stream options.
        args: the parsed command line (``out``, ``render``, ``track``, ``smooth``, ``frame_stride``, ``max_frames``,
            ``quiet``).
        stop: the Ctrl-C request, checked between images and between frames.
    """

    def __init__(self, pipeline, settings: Settings, args: argparse.Namespace, stop: StopRequest):
        self.pipeline, self.settings, self.args, self.stop = pipeline, settings, args, stop
        self.out: Path = args.out
        schema = pipeline.pose.card.schema
        self.skeleton = schema.skeleton if schema is not None else ()
        self.keypoint_names = list(pipeline.pose.card.keypoint_names)
        self.failures: list[str] = []

    def _fail(self, source: Source, exc: BaseException) -> None:
        message = f"{source.name}: {exc}"
        self.failures.append(message)
        print(f"{PROG}: {message}", file=sys.stderr)

    def _note(self, text: str) -> None:
        if not self.args.quiet:
            print(text, file=sys.stderr)

    def _render(self, image, result, track_ids=None):
        from inference.render import render_poses

        return render_poses(image, result.bboxes, result.keypoints, skeleton=self.skeleton,
                            keypoint_names=self.keypoint_names, track_ids=track_ids)  # fmt: skip

    def images(self, sources: list[Source]) -> None:
        """Each image: ``<stem>.json`` (and ``<stem>.jpg`` with ``--render``); one progress bar over them all."""
        from inference.encoding import image_answer, ndjson_line
        from inference.imageio import decode_image
        from inference.render import encode_jpeg

        bar = _bar(len(sources), "images", "img", self.args.quiet)
        try:
            for source in sources:
                if self.stop():
                    break
                try:
                    t0 = time.perf_counter()
                    image = decode_image(Path(source.location).read_bytes(), None, self.settings.max_image_pixels)
                    decode_ms = (time.perf_counter() - t0) * 1000.0
                    result = self.pipeline.predict(image)
                    result.timings_ms = {"decode": decode_ms, **result.timings_ms}
                    result.timings_ms["total"] = (time.perf_counter() - t0) * 1000.0
                except (OSError, PoseServiceError) as exc:
                    self._fail(source, exc)
                    bar.update()
                    continue
                answer = image_answer(result, self.pipeline.pose.name, self.keypoint_names)
                (self.out / f"{source.stem}.json").write_text(ndjson_line(answer), encoding="utf-8")
                if self.args.render:
                    (self.out / f"{source.stem}.jpg").write_bytes(encode_jpeg(self._render(image, result)))
                bar.update()
        finally:
            bar.close()

    def video(self, source: Source) -> None:
        """One video or stream: ``<stem>.ndjson`` (and ``<stem>.mp4`` with ``--render``), both closed whatever
        happens (an error or Ctrl-C ends the NDJSON with its summary line, ``error`` / ``interrupted`` set)."""
        from inference.context import RequestContext
        from inference.encoding import frame_line, ndjson_line, summary_line, video_header
        from inference.stream import PoseStream, StreamOptions
        from inference.video import VideoLimits, VideoWriter, open_video

        args, settings = self.args, self.settings
        options = StreamOptions.from_settings(settings, track=args.track, smooth=args.smooth)
        ctx = RequestContext(None, time.monotonic() + settings.video_timeout_s)
        t0 = time.perf_counter()
        try:
            reader = open_video(source.location, VideoLimits.from_settings(settings))
        except (OSError, PoseServiceError) as exc:
            self._fail(source, exc)
            return
        stream = PoseStream(self.pipeline, options)
        writer = ndjson = bar = None
        error: BaseException | None = None
        interrupted = False
        try:
            with reader:
                info = reader.info
                ndjson = (self.out / f"{source.stem}.ndjson").open("w", encoding="utf-8")
                ndjson.write(ndjson_line(video_header(info, self.pipeline, options)))
                if args.render:
                    fps = (info.fps or FALLBACK_FPS) / args.frame_stride
                    writer = VideoWriter(self.out / f"{source.stem}.mp4", info.width, info.height, fps)
                total = None if not info.frames else -(-int(info.frames) // args.frame_stride)
                if args.max_frames is not None:
                    total = args.max_frames if total is None else min(total, args.max_frames)
                bar = _bar(total, source.stem, "frame", args.quiet)
                frames = reader.frames(stride=args.frame_stride, max_frames=args.max_frames, should_stop=self.stop)
                for frame in frames:
                    result = stream.process(frame.image, frame.time_s, frame.index, ctx)
                    ndjson.write(ndjson_line(frame_line(result)))
                    if writer is not None:
                        writer.write(self._render(frame.image, result.result, result.track_ids))
                    bar.update()
                    if self.stop():
                        break
        except KeyboardInterrupt:
            ctx.cancel("disconnected")  # the batchers drop what this video still has queued
            interrupted = True
            raise
        except (OSError, PoseServiceError) as exc:
            error = exc
        finally:
            interrupted = interrupted or self.stop()
            if bar is not None:
                bar.close()
            if writer is not None:
                try:
                    writer.close()
                except PoseServiceError as exc:
                    error = error or exc
            if ndjson is not None:
                extra = {}
                if error is not None:
                    extra["error"] = str(error)
                if interrupted:
                    extra["interrupted"] = True
                ndjson.write(ndjson_line(summary_line(stream, reader, time.perf_counter() - t0, **extra)))
                ndjson.close()
        if error is not None:
            self._fail(source, error)
            return
        n, wall = stream.stats.frames, time.perf_counter() - t0
        outputs = f"{source.stem}.ndjson" + (f", {source.stem}.mp4" if writer is not None else "")
        self._note(f"{source.name}: {n} frames in {wall:.1f} s ({n / max(wall, 1e-9):.1f} frames/s) -> {outputs}")


def _ray_usage_problems(args: argparse.Namespace, sources: list[Source]) -> list[str]:
    problems = [f"{s.location}: --runner ray reads files, not streams" for s in sources if _is_url(s.location)]
    if args.render:
        problems.append("--render is for --runner local (the Ray runner writes tables)")
    try:
        from inference.ray_runner import import_ray

        import_ray()
    except UsageError as exc:
        problems.append(str(exc))
    return problems


def _main_ray(args: argparse.Namespace, settings: Settings, sources: list[Source]) -> int:
    """``--runner ray`` (:mod:`inference.ray_runner`): exit 0 all done, 1 some source failed (``errors.parquet``),
    3 a model failed to load in an actor, 130 interrupted (what arrived is written; a rerun resumes)."""
    from inference.ray_runner import RayJob, VideoOptions, init_ray

    paths = {kind: [str(Path(s.location).resolve()) for s in sources if s.kind == kind] for kind in ("image", "video")}
    video = VideoOptions(args.track, args.smooth, args.frame_stride, args.max_frames)
    job = RayJob(settings, args.out, concurrency=args.concurrency, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
                 batch_size=args.batch_size, batching=args.batching, video=video, retry_errors=args.retry_errors,
                 quiet=args.quiet)  # fmt: skip
    init_ray(args.ray_address)
    args.out.mkdir(parents=True, exist_ok=True)
    with StopRequest() as stop:
        try:
            summary = job.run(paths["image"], paths["video"], stop)
        except KeyboardInterrupt:
            stop.requested = True
            summary = None
        except Exception as exc:  # noqa: BLE001 - Ray wraps an actor's ModelLoadError in its own errors
            if "ModelLoadError" in f"{type(exc).__name__}: {exc}":
                print(f"{PROG}: a model failed to load in a Ray actor: {exc}", file=sys.stderr)
                return EXIT_LOAD
            raise
    if summary is None or summary["interrupted"]:
        print(f"{PROG}: interrupted; what finished is in {args.out} (run again to resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.quiet:
        print(f"{summary['ran']} sources run, {summary['skipped']} skipped (done before); {summary['sources']} in "
              f"{args.out}: {summary['persons']} persons, {summary['errors']} failed (errors.parquet)",
              file=sys.stderr)  # fmt: skip
    errors = summary["errors"]
    if errors:
        print(f"{PROG}: {errors} sources failed: {args.out / 'errors.parquet'}", file=sys.stderr)
    return EXIT_FAILED if errors else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run ``pose-predict``; returns the exit status (see the module's docstring)."""
    args = parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        print(f"{PROG}: invalid settings: {exc}", file=sys.stderr)
        return EXIT_USAGE
    level = "WARNING" if args.quiet and args.log_level is None else settings.log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sources, problems = expand_sources(args.sources)
    for problem in problems:
        print(f"{PROG}: {problem}", file=sys.stderr)
    if problems:
        return EXIT_USAGE

    if args.runner == "ray":
        usage = _ray_usage_problems(args, sources)
        for problem in usage:
            print(f"{PROG}: {problem}", file=sys.stderr)
        if usage:
            return EXIT_USAGE

    from inference.default_models import check_model_files, resolve_models
    from inference.pipeline import PosePipeline

    try:
        try:
            settings = resolve_models(settings)
            check_model_files(settings)
        except ModelLoadError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if args.runner == "ray":
            return _main_ray(args, settings, sources)
        try:
            pipeline = PosePipeline.from_settings(settings)
        except ModelLoadError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return EXIT_LOAD
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted while loading the models; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    args.out.mkdir(parents=True, exist_ok=True)
    with StopRequest() as stop:
        predictor = Predictor(pipeline, settings, args, stop)
        try:
            images = [s for s in sources if s.kind == "image"]
            if images:
                predictor.images(images)
            for source in (s for s in sources if s.kind == "video"):
                if stop():
                    break
                predictor.video(source)
        except KeyboardInterrupt:
            stop.requested = True
        finally:
            pipeline.close()
    if stop():
        print(f"{PROG}: interrupted; outputs so far are in {args.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    done = len(sources) - len(predictor.failures)
    predictor._note(f"{done} of {len(sources)} sources -> {args.out}")
    return EXIT_FAILED if predictor.failures else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
