"""A live session over the ``/v1/pose/stream`` WebSocket: frames in, results out, blocking (:class:`PoseSession`)
or ``asyncio`` (:class:`AsyncPoseSession`), with the bookkeeping both share (:class:`_SessionState`);
:mod:`poseserve.client` re-exports both.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from poseserve._errors import PoseAPIError, PoseClientError, PoseConnectionError, _api_error
from poseserve._images import encode_image
from poseserve.results import Poses

__all__ = ["AsyncPoseSession", "PoseSession"]


def _handshake_failure(exc: BaseException, statuses, attempt: int) -> tuple[PoseClientError, float | None]:
    """What a failed WebSocket opening handshake means for the retry loop of ``stream()`` (both clients'):
    the error to raise or retry on and the server's ``Retry-After`` (seconds, None without an answer).

    Args:
        exc: what ``websockets``' ``connect`` raised: ``InvalidStatus`` (an HTTP answer instead of the upgrade),
            another ``InvalidHandshake``, ``OSError`` or a timeout (no complete answer).
        statuses: the HTTP statuses that are retried (``Retry.statuses``).
        attempt: this attempt's number (1-based).

    Raises:
        PoseAPIError: an HTTP answer whose status is not retried (raised here, without the handshake's traceback).
    """
    from websockets.exceptions import InvalidStatus

    if isinstance(exc, InvalidStatus):
        r = exc.response
        err: PoseClientError = _api_error(r.status_code, r.headers, r.body or b"", attempt)
        if r.status_code not in statuses:
            raise err from None
        return err, err.retry_after
    err = PoseConnectionError(f"stream: {type(exc).__name__}: {exc}", attempt)
    err.__cause__ = exc
    return err, None


class _SessionState:
    """A stream session's bookkeeping shared by both session classes: the frames sent (their sizes, for the
    results' ``width`` / ``height``) and the parsing of replies."""

    def __init__(self, keypoint_names: tuple[str, ...], image_format: str):
        self.keypoint_names, self.image_format = keypoint_names, image_format
        self.sent = 0
        self.sizes: dict[int, tuple[int, int]] = {}
        self.last_reply: dict[str, Any] = {}

    def frame_messages(self, image: Any, frame_id: Any, time_s: float | None, rgb: bool) -> tuple[str | None, bytes]:
        data, _, size = encode_image(image, rgb, self.image_format)
        self.sizes[self.sent] = size
        self.sent += 1
        if frame_id is None and time_s is None:
            return None, data
        return json.dumps({"type": "frame", "id": frame_id, "time_s": time_s}), data

    def reply(self, text: str | bytes) -> Poses:
        msg = json.loads(text)
        frame = msg.get("frame")
        w, h = 0, 0
        if isinstance(frame, int):
            w, h = self.sizes.get(frame, (0, 0))
            for seq in [s for s in self.sizes if s <= frame]:  # replies come in order; earlier ones were dropped
                del self.sizes[seq]
        if msg.get("type") == "error":
            raise PoseAPIError.from_json(msg, frame=frame, frame_id=msg.get("id"))
        self.last_reply = msg
        return Poses.from_answer({**msg, "width": w, "height": h}, self.keypoint_names)


class _SessionBase:
    """What both sessions hold: the open WebSocket and the frames' bookkeeping (:class:`_SessionState`)."""

    def __init__(self, ws, keypoint_names: tuple[str, ...], image_format: str = "png"):
        self._ws = ws
        self._state = _SessionState(keypoint_names, image_format)

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        return self._state.keypoint_names

    @property
    def last_reply(self) -> dict[str, Any]:
        return self._state.last_reply


class PoseSession(_SessionBase):
    """A live pose session over the ``/v1/pose/stream`` WebSocket (:meth:`PoseClient.stream`).

    ``session(frame)`` sends one frame and waits for its result (one frame in flight: no frame is dropped). To keep
    a camera's pace, :meth:`send` frames as they come and :meth:`recv` results as they are ready: the server keeps
    only the latest waiting frame (older ones are dropped, counted in ``dropped_frames``), so the latency stays about
    one frame's processing.

    Attributes:
        keypoint_names: the pose model's keypoint names (from ``GET /v1/models``).
        last_reply: the last frame message as JSON (``dropped_frames``, ``received_frames``, ``latency_ms``, ``id``).
    """

    def send(self, frame: Any, *, frame_id: str | int | None = None, time_s: float | None = None,
             rgb: bool = False) -> int:  # fmt: skip
        """Send one frame.

        Args:
            frame: as :meth:`PoseClient.pose`'s ``image``.
            frame_id: comes back in the reply (``last_reply["id"]``, :attr:`PoseAPIError.frame_id`).
            time_s: the frame's capture time in seconds (the smoother's clock); None: the server's arrival time.
            rgb: a numpy ``frame`` is RGB.

        Returns:
            The frame's index in the session (0-based; the result's ``frame``).

        Raises:
            PoseConnectionError: the session is closed. ValueError / TypeError / OSError: as :func:`encode_image`.
        """
        from websockets.exceptions import ConnectionClosed

        meta, data = self._state.frame_messages(frame, frame_id, time_s, rgb)
        try:
            if meta is not None:
                self._ws.send(meta)
            self._ws.send(data)
        except ConnectionClosed as exc:
            raise PoseConnectionError(f"stream closed: {exc}") from exc
        return self._state.sent - 1

    def recv(self, timeout: float | None = None) -> Poses:
        """The next result (frames answer in the order sent; dropped frames get none).

        Raises:
            PoseAPIError: the server could not process a frame (``frame``, ``frame_id`` say which; the session goes
                on). PoseConnectionError: the session is closed. TimeoutError: nothing within ``timeout`` seconds.
        """
        from websockets.exceptions import ConnectionClosed

        try:
            text = self._ws.recv(timeout=timeout)
        except ConnectionClosed as exc:
            raise PoseConnectionError(f"stream closed: {exc}") from exc
        return self._state.reply(text)

    def __call__(self, frame: Any, time_s: float | None = None, *, rgb: bool = False,
                 timeout: float | None = 60.0) -> Poses:  # fmt: skip
        """Send ``frame`` and wait for its result (:meth:`send` then :meth:`recv`)."""
        self.send(frame, time_s=time_s, rgb=rgb)
        return self.recv(timeout)

    def close(self) -> None:
        """Close the session (the server stops its work at once)."""
        self._ws.close()

    def __enter__(self) -> PoseSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncPoseSession(_SessionBase):
    """The ``asyncio`` twin of :class:`PoseSession` (``await send``, ``await recv``, ``await session(frame)``,
    ``async with``)."""

    async def send(self, frame: Any, *, frame_id: str | int | None = None, time_s: float | None = None,
                   rgb: bool = False) -> int:  # fmt: skip
        """As :meth:`PoseSession.send`."""
        from websockets.exceptions import ConnectionClosed

        meta, data = await asyncio.to_thread(self._state.frame_messages, frame, frame_id, time_s, rgb)
        try:
            if meta is not None:
                await self._ws.send(meta)
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise PoseConnectionError(f"stream closed: {exc}") from exc
        return self._state.sent - 1

    async def recv(self, timeout: float | None = None) -> Poses:
        """As :meth:`PoseSession.recv`."""
        from websockets.exceptions import ConnectionClosed

        try:
            text = await asyncio.wait_for(self._ws.recv(), timeout)
        except ConnectionClosed as exc:
            raise PoseConnectionError(f"stream closed: {exc}") from exc
        except asyncio.TimeoutError:  # not yet TimeoutError on Python 3.10
            raise TimeoutError(f"no reply within {timeout} s") from None
        return self._state.reply(text)

    async def __call__(self, frame: Any, time_s: float | None = None, *, rgb: bool = False,
                       timeout: float | None = 60.0) -> Poses:  # fmt: skip
        """As :meth:`PoseSession.__call__`."""
        await self.send(frame, time_s=time_s, rgb=rgb)
        return await self.recv(timeout)

    async def close(self) -> None:
        """As :meth:`PoseSession.close`."""
        await self._ws.close()

    async def __aenter__(self) -> AsyncPoseSession:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
