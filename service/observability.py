"""Operations: request ids, log format, OpenTelemetry spans.

* Request id: every HTTP request and WebSocket session gets one, taken from the client's ``X-Request-ID`` header when
  it is 1 to 128 characters of ``[A-Za-z0-9._:-]`` (what a proxy such as nginx's ``$request_id`` or an ingress
  writes), else a new ``uuid4`` hex. It is returned in the ``X-Request-ID`` response header and stamped on every log
  record written while the request runs (:class:`RequestIdFilter`; the contextvar follows the request into
  Starlette's worker threads, which copy the context).
* Log format (``log_format``): ``text`` (``time level logger [request id]: message``) or ``json``: one JSON object per
  line with ``time``, ``level``, ``logger``, ``message``, ``request_id`` (python-json-logger's ``JsonFormatter``),
  for uvicorn's loggers too.
* Tracing (``otel_tracing``, the ``otel`` extra): the FastAPI instrumentation's server span per request
  (``opentelemetry-instrumentation-fastapi``) and, under it, one span per pipeline stage (``decode``, ``detect``,
  ``crop``, ``pose``) laid back to back from the stage times the pipeline measured (:func:`stage_spans`). The
  exporter follows OpenTelemetry's own variables (``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ...)
  when the process runs under ``opentelemetry-instrument``; otherwise :func:`setup_tracing` installs an SDK tracer
  provider exporting to the console unless one is configured.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Mapping

from core.settings import Settings

#: The request id of the request this code runs for ("-" outside any request).
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
HEADER = "x-request-id"
_VALID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
#: Stage spans, in the order the pipeline runs them (``PoseResult.timings_ms`` keys).
STAGES = ("decode", "detect", "crop", "pose")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"


def request_id_for(headers: list[tuple[bytes, bytes]]) -> str:
    """The request id of an ASGI scope's ``headers``: a valid ``X-Request-ID`` as given, else a new uuid4 hex."""
    for key, value in headers:
        if key.lower() == HEADER.encode():
            text = value.decode("latin-1").strip()
            if _VALID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id`` (the current request's, or ``-``) on every record a handler emits."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def configure_logging(settings: Settings) -> None:
    """Root and uvicorn loggers at ``log_level`` in ``log_format``, each record with its request id (stderr)."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # through the root handler, in the same format
        log = logging.getLogger(name)
        log.handlers.clear()
        log.propagate = True


# ---------------------------------------------------------------------------------------------------- tracing
def setup_tracing(app, settings: Settings) -> bool:
    """Instrument ``app`` with OpenTelemetry's FastAPI instrumentation when ``otel_tracing`` is on.

    A tracer provider is installed only when none is (``opentelemetry-instrument`` installs one from the
    ``OTEL_*`` variables): the SDK's, with a batch processor and the console exporter.

    Returns:
        Whether tracing is on.

    Raises:
        RuntimeError: ``otel_tracing`` is on and the ``otel`` extra is not installed (the message names it).
    """
    if not settings.otel_tracing:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError as exc:
        raise RuntimeError(
            f"otel_tracing needs OpenTelemetry ({exc.name} is missing): pip install 'poseserve[otel]'"
        ) from exc
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    return True


def stage_spans(timings_ms: Mapping[str, float], end_ns: int | None = None) -> int:
    """One span per pipeline stage, children of the current span (the request's), ending at ``end_ns`` and laid
    back to back in :data:`STAGES` order with the measured durations (the stages run one after another; a batcher's
    queueing is inside ``detect`` / ``pose``).

    Args:
        timings_ms: the pipeline's ``PoseResult.timings_ms`` (milliseconds per stage; missing stages are skipped).
        end_ns: when the last stage ended (``time.time_ns()``; default: now).

    Returns:
        The number of spans started (0 when OpenTelemetry is not installed; without a tracer provider they are
        OpenTelemetry's no-op spans).
    """
    try:
        from opentelemetry import trace
    except ImportError:
        return 0
    tracer = trace.get_tracer("poseserve")
    stages = [(s, float(timings_ms[s])) for s in STAGES if s in timings_ms]
    t = (time.time_ns() if end_ns is None else end_ns) - int(sum(ms for _, ms in stages) * 1e6)
    for name, ms in stages:
        span = tracer.start_span(f"pose.{name}", start_time=t)
        t += int(ms * 1e6)
        span.set_attribute("poseserve.stage_ms", ms)
        span.end(end_time=t)
    return len(stages)
