"""When the HTTP client sends a request again: the :class:`Retry` policy (:mod:`poseserve.client` re-exports it),
the transport failures it covers and the retry loop's bookkeeping shared by the blocking and the async client.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import httpx

from poseserve._errors import PoseClientError

__all__ = ["Retry"]

#: The client's logger (retries are logged at INFO): named after the public module, where callers look for it.
log = logging.getLogger("poseserve.client")

#: Transport failures retried: no answer came (refused, reset, closed early). A read timeout is not among them: the
#: server may still be working on the request, and sending it again would add load where there is already too much.
_RETRIED_TRANSPORT = (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class Retry:
    """When and how long to wait before sending a request again.

    A request is retried on an HTTP status in ``statuses`` (503: overloaded, models loading, shutting down) and on
    a connection failure (refused, reset, connect timeout, closed before the answer), never on a 4xx or another
    status. Wait before attempt ``n + 1`` (seconds): ``d = min(max_backoff_s, backoff_s * 2 ** (n - 1))``, then
    ``max(Retry-After, d / 2) + uniform(0, d / 2)``: exponential back-off with jitter, never earlier than the
    server asked. The last error is raised when ``attempts`` were sent or the next wait would end after ``total_s``
    seconds from the first attempt. ``Retry(attempts=1)``: no retries.

    Attributes:
        attempts: most sends of one request (first one included), >= 1.
        backoff_s: the first back-off step (seconds).
        max_backoff_s: the largest back-off step (seconds).
        total_s: the time budget of all attempts and waits (seconds).
        statuses: HTTP statuses that are retried.
    """

    attempts: int = 5
    backoff_s: float = 0.25
    max_backoff_s: float = 8.0
    total_s: float = 60.0
    statuses: frozenset[int] = frozenset({503})

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff_s < 0 or self.max_backoff_s < 0 or self.total_s < 0:
            raise ValueError(f"invalid retry policy: {self}")

    def wait_s(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), given the server's ``Retry-After``."""
        d = min(self.max_backoff_s, self.backoff_s * 2.0 ** (attempt - 1))
        return max(retry_after or 0.0, d / 2) + random.uniform(0.0, d / 2)


class _Attempts:
    """The retry loop's bookkeeping, shared by the blocking and the async client."""

    def __init__(self, retry: Retry, what: str):
        self.retry, self.what = retry, what
        self.start = time.monotonic()
        self.n = 0

    def next_wait(self, error: PoseClientError, retry_after: float | None) -> float:
        """The wait before the next attempt; raises ``error`` when the policy allows no further attempt."""
        if self.n >= self.retry.attempts:
            raise error
        wait = self.retry.wait_s(self.n, retry_after)
        if time.monotonic() - self.start + wait > self.retry.total_s:
            raise error
        log.info("%s: %s; attempt %d in %.2f s", self.what, error, self.n + 1, wait)
        return wait
