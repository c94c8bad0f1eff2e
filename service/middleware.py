"""A pure ASGI middleware that guards every HTTP request before the app sees its body.

* Head size: the request line and headers beyond ``max_header_bytes`` get 431 (uvicorn's h11 limit only
  bounds a head that is still incomplete in its buffer; one that arrives in a single read passes it).
* Body size: bytes are counted as they arrive (chunked and multipart uploads included); past the limit the
  read stops with :class:`~core.errors.PayloadTooLargeError` (413): nothing beyond it is read or spooled.
* Slow clients: each wait for the next body chunk is bounded by ``read_timeout_s``
  (:class:`~core.errors.RequestTimeoutError`, 408). Once the body is complete, receiving is left alone
  (it then only reports a disconnect).
* ``POST /v1/pose`` (and its alias ``/pose``) metrics: answers by status and latency, whatever the answer.
* Request id: taken from ``X-Request-ID`` or made (:func:`service.observability.request_id_for`), set for the logs
  of the request (HTTP and WebSocket) and returned in the ``X-Request-ID`` header of every HTTP answer.

Paths are matched without the ``root_path`` prefix (a proxy's, when it does not strip it).

Errors raised while the app reads the body reach the app's exception handlers (``service/app.py``) as any
other :class:`~core.errors.PoseServiceError`.
"""

from __future__ import annotations

import asyncio
import time

from core.errors import HeadersTooLargeError, PayloadTooLargeError, RequestTimeoutError
from service.observability import REQUEST_ID, request_id_for
from service.state import ServiceState

#: The image route and its alias, whose answers are counted (``pose_requests_total``, the latency histogram).
POSE_PATHS = frozenset({"/pose", "/v1/pose"})


def route_path(scope) -> str:
    """The request's path without the ``root_path`` prefix (as Starlette's router matches it)."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path


class RequestGuard:
    """Args:
    app: the ASGI app.
    state: the service state (settings: ``read_timeout_s``; the metrics).
    max_body_bytes: the body limit (the upload limit plus multipart framing).
    body_limits: other limits by path (``/v1/pose/video`` and ``/pose/video``: the video limit).
    """

    def __init__(self, app, state: ServiceState, max_body_bytes: int, body_limits: dict[str, int] | None = None):
        self.app = app
        self.state = state
        self.max_body_bytes = int(max_body_bytes)
        self.body_limits = {k: int(v) for k, v in (body_limits or {}).items()}
        self.read_timeout_s = float(state.settings.read_timeout_s)
        self.max_header_bytes = int(state.settings.max_header_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(scope["headers"])
        token = REQUEST_ID.set(request_id)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
                return
            header = (b"x-request-id", request_id.encode("latin-1"))

            async def send_with_id(message):
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), header]}
                await send(message)

            await self._http(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)

    async def _http(self, scope, receive, send):
        head = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        head += sum(len(k) + len(v) + 4 for k, v in scope["headers"])
        if head > self.max_header_bytes:
            from service.routes import error_response

            err = HeadersTooLargeError(f"request head of {head} bytes exceeds the limit of {self.max_header_bytes}")
            await error_response(err)(scope, receive, send)
            return
        received = 0
        body_done = False
        path = route_path(scope)
        max_body_bytes = self.body_limits.get(path, self.max_body_bytes)

        async def guarded_receive():
            nonlocal received, body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout_s)
            except TimeoutError:
                raise RequestTimeoutError(
                    f"no request body data for {self.read_timeout_s:g} s; send the body without pauses"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body_bytes:
                    raise PayloadTooLargeError(f"request body exceeds the limit of {max_body_bytes} bytes")
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        if path not in POSE_PATHS or scope["method"] != "POST":
            await self.app(scope, guarded_receive, send)
            return
        status = 500
        t0 = time.perf_counter()

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, guarded_receive, send_and_note)
        finally:
            self.state.requests.labels(str(status)).inc()
            self.state.latency.observe(time.perf_counter() - t0)
