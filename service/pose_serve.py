"""``pose-serve``: start the HTTP service with uvicorn.

    pose-serve --detector yolov8n.onnx --pose movenet.json --port 8000
    pose-serve --pose td-reg_res50_rle          # a zoo name: exported into the cache on first start

Every option is a :class:`core.settings.Settings` field (``POSE_<FIELD>`` in the environment;
options override it). With no model paths, the default models are looked up in the cache, and
prepared there when missing (``inference.default_models.resolve_models``: ``pose-export defaults`` run as a subprocess,
at the command line level only; the server never imports ``export``).

Exit status: 0 after a clean shutdown; 2 a usage error (an unknown option, an invalid setting, an unreadable API key
file); 1 a model that cannot be found (no defaults and none prepared, a missing file, a card that does not parse or
names a missing model file: checked by ``inference.default_models.check_model_files`` before the port is bound, unless
``--no-exit-on-load-failure``); 3 a model that passed those checks but failed to load in the runtime at start-up
(``service.server.EXIT_LOAD_FAILURE``, after the port was bound: loading and warm-up stay behind ``/readyz``).
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from core.cli_options import add_settings_options, add_version_option, settings_from_args
from core.errors import ModelLoadError
from core.settings import (
    CACHE_FIELDS,
    DEFAULT_MODEL_FIELDS,
    DETECTOR_FIELDS,
    MODEL_FIELDS,
    PIPELINE_FIELDS,
    RUNTIME_FIELDS,
    SERVE_FIELDS,
    VIDEO_FIELDS,
)
from inference.default_models import check_model_files, prepare_engines, resolve_models
from service.observability import configure_logging

#: Exit status of a usage error (argparse's own) and of a failure (a model that cannot be found).
EXIT_USAGE, EXIT_FAILURE = 2, 1

#: The sections of ``pose-serve --help``: every field of :data:`~core.settings.SERVE_FIELDS` in one (a test checks).
SERVE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("models", (*MODEL_FIELDS, *CACHE_FIELDS, *DEFAULT_MODEL_FIELDS)),
    ("runtime", RUNTIME_FIELDS),
    ("batching and pipeline", (*PIPELINE_FIELDS, "max_batch_wait_ms", "det_max_batch_size")),
    ("detector", DETECTOR_FIELDS),
    ("video and streams", (*VIDEO_FIELDS, "max_streams", "stream_idle_timeout_s")),
    (
        "limits and admission",
        (
            "max_upload_bytes",
            "max_image_pixels",
            "max_boxes",
            "max_render_pixels",
            "max_inflight_requests",
            "max_inflight_pixels",
            "max_inflight_crops",
            "request_timeout_s",
            "retry_after_s",
            "inference_timeout_s",
            "unready_after_timeouts",
        ),
    ),
    ("security", ("api_keys", "api_keys_file", "cors_allow_origins", "docs_enabled", "page_enabled")),
    (
        "server",
        (
            "host",
            "port",
            "workers",
            "root_path",
            "max_connections",
            "max_header_bytes",
            "header_timeout_s",
            "read_timeout_s",
            "keepalive_timeout_s",
            "shutdown_timeout_s",
            "warmup",
            "exit_on_load_failure",
            "log_level",
            "log_format",
            "otel_tracing",
        ),
    ),
    (
        "GPU",
        (
            "cudnn_conv_algo_search",
            "gpu_tf32",
            "gpu_mem_limit",
            "gpu_arena_extend_strategy",
            "trt_precision",
            "trt_opt_batch_size",
            "build_engines",
            "warmup_batch_sizes",
        ),
    ),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="pose-serve",
        description="Serve top-down pose estimation over HTTP.",
        epilog="With no --detector / --pose, the default models are taken from the cache; missing ones are prepared "
        "by running `pose-export defaults` as a subprocess (needs the export extra; --no-prepare-defaults: never), "
        "and a checkpoint given as --pose (.pth) is converted once by `pose-export pose` the same way, as is a zoo "
        "name given as --pose (`pose-zoo list`, e.g. --pose td-reg_res50_rle; cached in <cache>/pose/). The server "
        "process itself never imports the export package or torch.",
    )
    add_version_option(p)
    add_settings_options(p, SERVE_FIELDS, SERVE_GROUPS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        print(f"pose-serve: invalid settings: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings)
    try:
        settings = resolve_models(settings)
        if settings.exit_on_load_failure:  # fail before the port is bound; otherwise /readyz says 503
            check_model_files(settings)
        prepare_engines(settings)  # runtime tensorrt: missing engines built before the port is bound
    except ModelLoadError as exc:
        print(f"pose-serve: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if settings.workers > 1:
        from service.workers import serve_workers

        try:
            settings.api_key_set()  # the API key file: a usage error here, not in every worker
        except ValueError as exc:
            print(f"pose-serve: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return serve_workers(settings)
    from service.app import create_app
    from service.server import serve

    try:
        app = create_app(settings)
    except ValueError as exc:  # the API key file
        print(f"pose-serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return serve(app, settings)


if __name__ == "__main__":
    sys.exit(main())
