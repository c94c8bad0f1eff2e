"""The HTTP client's errors (:mod:`poseserve.client` re-exports them): :class:`PoseAPIError` (the server's answer)
and :class:`PoseConnectionError` (no answer), both :class:`PoseClientError`; and the reading of an error answer.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["PoseAPIError", "PoseClientError", "PoseConnectionError"]


class PoseClientError(Exception):
    """Base class of the client's errors."""


class PoseAPIError(PoseClientError):
    """The server answered an error: an HTTP status >= 400 (``{"error": code, "message": text}``), an ``error`` line
    of a video's NDJSON, or an ``error`` message of a stream session.

    Attributes:
        status: the HTTP status (for a video line or a stream message: the status the error would have had).
        code: the server's error code (``core/errors.py``: ``overloaded``, ``unauthorized``, ``invalid_parameter``,
            ``undecodable_image`` ...; ``http_error`` when the body was not the server's JSON, from a proxy say).
        message: the server's explanation.
        retry_after: the ``Retry-After`` header in seconds, None when absent.
        attempts: how many times the request was sent (retries included).
        frame: for a stream session's error, the index of the frame it answers (None otherwise).
        frame_id: the ``id`` that frame was sent with.
    """

    def __init__(self, status: int, code: str, message: str, *, retry_after: float | None = None,
                 attempts: int = 1, frame: int | None = None, frame_id: Any = None):  # fmt: skip
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = int(status), code, message
        self.retry_after, self.attempts = retry_after, attempts
        self.frame, self.frame_id = frame, frame_id

    @classmethod
    def from_json(cls, body: Mapping[str, Any], status: int | None = None, **kw: Any) -> PoseAPIError:
        """From the server's error JSON (``{"error", "message"}``, with ``"status"`` in stream lines)."""
        st = status if status is not None else int(body.get("status", 500))
        return cls(st, str(body.get("error", "http_error")), str(body.get("message", "")), **kw)


class PoseConnectionError(PoseClientError):
    """No answer from the server (connection refused or reset, connect / read timeout, closed mid-answer) after the
    retries the :class:`Retry` policy allows; ``__cause__`` is httpx's or websockets' exception.

    Attributes:
        attempts: how many times the request was sent.
    """

    def __init__(self, message: str, attempts: int = 1):
        super().__init__(message)
        self.attempts = attempts


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _api_error(status: int, headers: Mapping[str, str], body: bytes, attempts: int = 1) -> PoseAPIError:
    retry_after = _retry_after(headers.get("retry-after"))
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and "error" in data:
        return PoseAPIError.from_json(data, status, retry_after=retry_after, attempts=attempts)
    text = body[:300].decode("utf-8", "replace").strip()
    return PoseAPIError(status, "http_error", text or f"HTTP {status}", retry_after=retry_after, attempts=attempts)
