"""``pose-serve``: start the HTTP service with uvicorn.

    pose-serve --detector yolov8n.onnx --pose movenet.json --port 8000

Options override ``POSE_*`` environment variables (see ``service/settings.py``). With no model
paths, the default models are looked up in the cache directory (``service/defaults.py``).
"""

from __future__ import annotations

import argparse
import logging
import sys

from service.errors import ModelLoadError
from service.settings import Settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pose-serve", description="Serve top-down pose estimation over HTTP.")
    p.add_argument("--detector", help="detector ONNX / engine (Ultralytics contract)")
    p.add_argument("--pose", help="pose model card JSON (or the model file with its card beside it)")
    p.add_argument("--host", help="bind address (default 127.0.0.1; use 0.0.0.0 in a container)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--runtime", choices=["onnxruntime", "tensorrt"], help="inference backend")
    p.add_argument(
        "--providers",
        help="comma-separated onnxruntime execution providers, e.g. CUDAExecutionProvider,CPUExecutionProvider",
    )
    p.add_argument(
        "--allow-provider-fallback",
        action="store_true",
        default=None,
        help="accept CPU when a GPU provider is unavailable",
    )
    p.add_argument("--cache-dir", help="where default models live")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by the given options."""
    overrides = {
        "detector_model": args.detector,
        "pose_model": args.pose,
        "host": args.host,
        "port": args.port,
        "runtime": args.runtime,
        "providers": [p.strip() for p in args.providers.split(",") if p.strip()] if args.providers else None,
        "allow_provider_fallback": args.allow_provider_fallback,
        "cache_dir": args.cache_dir,
    }
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def resolve_models(settings: Settings) -> Settings:
    """Fill unset model paths with the default models from the cache directory.

    Raises:
        ModelLoadError: defaults are missing (the message names the files and the command that prepares them).
    """
    if settings.detector_model is not None and settings.pose_model is not None:
        return settings
    from service.defaults import resolve_default_models

    det, pose = resolve_default_models(settings.cache_dir)
    return settings.model_copy(
        update={"detector_model": settings.detector_model or det, "pose_model": settings.pose_model or pose}
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = resolve_models(settings_from_args(args))
    except ModelLoadError as exc:
        print(f"pose-serve: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # pydantic validation of options / env
        print(f"pose-serve: invalid settings: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from service.app import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level, workers=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
