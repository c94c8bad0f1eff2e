"""Run the app under uvicorn with the connection hygiene a shared server needs (settings in brackets).

* request head size (``max_header_bytes``): h11 refuses larger heads (uvicorn answers 400);
* header timeout (``header_timeout_s``): a connection whose next request head does not arrive in time is
  closed, however slowly it trickles bytes (uvicorn's keep-alive timer stops at the first byte);
* connection cap (``max_connections``): connections beyond it are closed when they open, and uvicorn answers
  503 to requests beyond it (``limit_concurrency``);
* idle keep-alive connections closed after ``keepalive_timeout_s``;
* graceful shutdown (``shutdown_timeout_s``): on SIGTERM in-flight requests get that long, then the process
  exits even with stalled clients (uvicorn ``timeout_graceful_shutdown``). Inference still running
  :data:`SHUTDOWN_MARGIN_S` before that is cancelled (or abandoned where the runtime cannot stop) and its requests
  get a JSON 503 ``shutting_down``, so none is cut off without an answer; the process exits within
  ``shutdown_timeout_s`` plus about a second;
* a model that fails to load at start-up ends the process (exit status :data:`EXIT_LOAD_FAILURE`, the reason on
  stderr) unless ``exit_on_load_failure`` is off.

Body read timeouts and the body size limit are in ``service/middleware.py``. The protocol is uvicorn's h11
implementation (``uvicorn.protocols.http.h11_impl.H11Protocol``) with the header timer added; the tests in
``tests/service/test_server.py`` check it against the uvicorn version installed.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import threading

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from core.settings import Settings

log = logging.getLogger("service")

#: Inference still running this long before the end of the shutdown grace is cancelled (seconds).
SHUTDOWN_MARGIN_S = 1.0
#: ``pose-serve``'s exit status when a model failed to load at start-up (one that passed the file checks made before the
#: port is bound: a missing file or an invalid card exits 1 there, ``service.pose_serve``).
EXIT_LOAD_FAILURE = 3


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a request-head timeout, an early close beyond the connection cap and JSON
    bodies on its protocol-level 400s. ``header_timeout_s`` is set on the class by :func:`uvicorn_config`."""

    header_timeout_s: float = 10.0
    _header_timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if self.limit_concurrency is not None and len(self.connections) > self.limit_concurrency:
            log.warning("connection cap of %d reached: closing a new connection", self.limit_concurrency)
            transport.close()
            return
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        in_request = self.cycle is not None and not self.cycle.response_complete
        if not in_request and not self.transport.is_closing():
            log.info("closing a connection whose request head did not arrive within %g s", self.header_timeout_s)
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm_header_timer()  # the head arrived; the body has its own read timeout

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # the next request's head must arrive in time too

    def connection_lost(self, exc) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event) -> None:
        self._disarm_header_timer()  # the connection is a WebSocket session's from now on: the timer would cut it
        super().handle_websocket_upgrade(event)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's protocol-level 400 (malformed or oversized request head), with a JSON body."""
        body = json.dumps({"error": "bad_request", "message": f"{msg} (malformed request or head too large)"})
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body.encode()),
                      h11.EndOfMessage()):  # fmt: skip
            try:
                self.transport.write(self.conn.send(event))
            except h11.LocalProtocolError:
                break
        self.transport.close()


def uvicorn_config(app, settings: Settings) -> uvicorn.Config:
    """The uvicorn configuration of ``pose-serve`` for ``app`` (see the module docstring)."""
    protocol = type("PoseServeH11Protocol", (GuardedH11Protocol,), {"header_timeout_s": settings.header_timeout_s})
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        root_path=settings.root_path,  # a proxy's prefix: /docs and the schema's server URL name it
        http=protocol,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        limit_concurrency=settings.max_connections,
        # a WebSocket stream's frame is an image upload (service/stream.py)
        ws_max_size=settings.max_upload_bytes + 64 * 1024,
        timeout_keep_alive=settings.keepalive_timeout_s,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        log_level=settings.log_level,
        log_config=None,  # pose-serve's own handlers (service.observability.configure_logging): format, request id
        workers=1,
    )


class PoseServer(uvicorn.Server):
    """uvicorn's server plus the service's shutdown: on the first SIGTERM / SIGINT a timer cancels the inference
    still running :data:`SHUTDOWN_MARGIN_S` before the grace ends (``ServiceState.close``: its requests get 503);
    a fatal model-load failure (``ServiceState.on_fatal``) stops the server.

    Args:
        config: the uvicorn configuration (:func:`uvicorn_config`).
        state: the app's ``ServiceState``, or None (no inference to cancel).
    """

    def __init__(self, config: uvicorn.Config, state=None):
        super().__init__(config)
        self.state = state
        self._abort_timer: threading.Timer | None = None
        if state is not None:
            state.on_fatal = self._fatal

    def _fatal(self) -> None:
        self.should_exit = True

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        if self.state is not None and self._abort_timer is None:
            grace = float(self.config.timeout_graceful_shutdown or 0)
            self._abort_timer = threading.Timer(max(0.0, grace - SHUTDOWN_MARGIN_S), self._abort_inference)
            self._abort_timer.daemon = True
            self._abort_timer.start()

    def _abort_inference(self) -> None:
        log.warning("shutting down: cancelling the inference still running; its requests get 503")
        self.state.close()


def serve(app, settings: Settings) -> int:
    """Serve ``app`` until SIGTERM / SIGINT, or until its models fail to load (``exit_on_load_failure``).

    Returns:
        The process exit status: 0, or :data:`EXIT_LOAD_FAILURE` (the reason printed on stderr).
    """
    state = getattr(app.state, "service", None)
    server = PoseServer(uvicorn_config(app, settings), state)
    # the modules, the app and (in a --workers worker) the loaded models live as long as the process: frozen, the
    # cyclic collector stops walking them at each full collection that requests' garbage triggers (Python's
    # gc.freeze; the collector was 2.2 % of a perf profile of the server under bench/bench_null.py). Only here: a
    # process that serves nothing else.
    gc.freeze()
    server.run()
    if state is not None and state.fatal:
        print(f"pose-serve: model loading failed: {state.error}", file=sys.stderr)
        return EXIT_LOAD_FAILURE
    return 0
