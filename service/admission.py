"""Admission control: work is admitted by cost before it starts, and every admitted request carries a deadline.

:class:`Admission` holds three budgets, each a setting: requests in the pipeline, decoded pixels (the
memory bound: about 7 bytes per pixel while an RGB image decodes, Pillow's buffer and the array) and pose
crops. A request takes a slot when its body starts arriving (:meth:`Admission.admit`; ``service.routes.body_started``:
a connection that sends headers and no body holds none), its pixels
once the image header is parsed and before the pixels are decoded, its crops once the boxes are known; over any
budget it gets
:class:`~core.errors.OverloadedError` (503 + ``Retry-After``) at once, never a wait in a queue.

:class:`~inference.context.RequestContext` is the admitted request: its deadline and cancellation (deadline
passed, client gone). The pipeline checks it between stages and the batcher drops the crops of a cancelled request, so an
abandoned request costs no further inference. The budgets are returned when both the HTTP handler and the
worker thread are done with the request: work that is still running after a 504 keeps its pixels counted.
"""

from __future__ import annotations

import threading
import time

from core.errors import OverloadedError
from inference.context import RequestContext


class Admission:
    """Budgets of work in flight (thread-safe).

    Args:
        max_requests: requests admitted at once (from arrival to the end of their work).
        max_pixels: decoded pixels (width x height summed over admitted images).
        max_crops: pose crops of admitted requests not yet finished.
        max_streams: videos and WebSocket streams at once (each also holds a request slot for its whole length).
        retry_after_s: the ``Retry-After`` a rejection carries.
    """

    def __init__(
        self, max_requests: int, max_pixels: int, max_crops: int, retry_after_s: int = 1, max_streams: int = 8
    ):
        self.max_requests, self.max_pixels, self.max_crops = int(max_requests), int(max_pixels), int(max_crops)
        self.max_streams = int(max_streams)
        self.retry_after_s = int(retry_after_s)
        self.requests = self.pixels = self.crops = self.streams = 0
        self._lock = threading.Lock()

    def _refuse(self, reason: str, message: str) -> OverloadedError:
        return OverloadedError(message, reason, self.retry_after_s)

    def admit(self, timeout_s: float) -> RequestContext:
        """A slot for a new request with a deadline ``timeout_s`` from now.

        Raises:
            OverloadedError: ``max_requests`` are already in flight (reason ``requests``).
        """
        with self._lock:
            if self.requests >= self.max_requests:
                raise self._refuse("requests", f"server busy: {self.requests} requests in flight; retry shortly")
            self.requests += 1
        return RequestContext(self, time.monotonic() + float(timeout_s))

    def admit_stream(self, timeout_s: float) -> RequestContext:
        """A slot for a video or a live stream (a request slot and a stream slot) with a deadline ``timeout_s`` from
        now; both go back when the context is released.

        Raises:
            OverloadedError: ``max_streams`` streams (reason ``streams``) or ``max_requests`` requests are in flight.
        """
        with self._lock:
            if self.streams >= self.max_streams:
                raise self._refuse("streams", f"server busy: {self.streams} video streams in flight; retry shortly")
            self.streams += 1
        try:
            ctx = self.admit(timeout_s)
        except Exception:
            with self._lock:
                self.streams -= 1
            raise
        ctx.on_release = self._close_stream
        return ctx

    def _close_stream(self) -> None:
        with self._lock:
            self.streams -= 1

    def _take(self, kind: str, n: int) -> None:
        limit = self.max_pixels if kind == "pixels" else self.max_crops
        with self._lock:
            held = getattr(self, kind)
            if held + n > limit:
                raise self._refuse(
                    kind, f"server busy: {held} {kind} in flight, this request needs {n} (limit {limit}); retry shortly"
                )
            setattr(self, kind, held + n)

    def _return(self, pixels: int, crops: int) -> None:
        """Pixels and crops back from a request that goes on (``RequestContext.return_budget``)."""
        with self._lock:
            self.pixels -= pixels
            self.crops -= crops

    def _give_back(self, pixels: int, crops: int) -> None:
        with self._lock:
            self.requests -= 1
            self.pixels -= pixels
            self.crops -= crops
