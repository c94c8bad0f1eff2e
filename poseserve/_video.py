"""The answer of ``POST /v1/pose/video``: its NDJSON lines parsed (:class:`_VideoLines`) and read as they arrive,
blocking (:class:`PoseVideo`) or ``async for`` (:class:`AsyncPoseVideo`); :mod:`poseserve.client` re-exports both.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from poseserve._errors import PoseAPIError, PoseConnectionError
from poseserve.results import Poses

__all__ = ["AsyncPoseVideo", "PoseVideo"]


class _VideoLines:
    """Parsing of a video's NDJSON lines (the header, frames, summary, error), shared by both iterators."""

    def __init__(self):
        self.header: dict[str, Any] = {}
        self.summary: dict[str, Any] | None = None
        self.keypoint_names: tuple[str, ...] = ()

    def line(self, text: str) -> Poses | None:
        """A :class:`Poses` for a frame line, None for the header / summary.

        Raises:
            PoseAPIError: an error line. PoseConnectionError: a line that is not JSON (a broken answer).
        """
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise PoseConnectionError(f"video answer: a line is not JSON: {text[:80]!r}") from exc
        kind = obj.get("type")
        if kind == "frame":
            h = self.header
            return Poses.from_answer({**obj, "width": h.get("width", 0), "height": h.get("height", 0),
                                      "models": h.get("models") or {}}, self.keypoint_names)  # fmt: skip
        if kind == "video":
            self.header = obj
            self.keypoint_names = tuple(obj.get("keypoint_names") or ())
        elif kind == "summary":
            self.summary = obj
        elif kind == "error":
            raise PoseAPIError.from_json(obj)
        return None


class PoseVideo(_VideoLines):
    """The answer of :meth:`PoseClient.video`, read as it arrives: iterate for a :class:`~poseserve.results.Poses`
    per processed frame (once). Close it (or use ``with``) to stop early: the server then stops decoding.

    Attributes:
        header: the ``video`` line: ``width``, ``height`` (pixels), ``fps``, ``frames`` (declared), ``models``,
            ``keypoint_names``, ``options``; read on the first step of the iteration.
        summary: the ``summary`` line (``frames``, ``tracks``, ``detector_runs``, ``scene_cuts``, ``timings_ms``,
            ``fps`` ...) once the iteration is done; None before, or when the answer ended with an error.
    """

    def __init__(self, response: httpx.Response):
        super().__init__()
        self._response = response

    def __iter__(self) -> Iterator[Poses]:
        """Yields per-frame results.

        Raises:
            PoseAPIError: an ``error`` line (a frame that failed, the deadline). PoseConnectionError: the answer
                broke off or a read timed out.
        """
        try:
            for text in self._response.iter_lines():
                if text.strip():
                    poses = self.line(text)
                    if poses is not None:
                        yield poses
        except httpx.TransportError as exc:
            raise PoseConnectionError(f"video answer: {type(exc).__name__}: {exc}") from exc
        finally:
            self.close()

    def close(self) -> None:
        """Stop reading (the server stops the video's work)."""
        self._response.close()

    def __enter__(self) -> PoseVideo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncPoseVideo(_VideoLines):
    """The ``async for`` twin of :class:`PoseVideo` (``header``, ``summary``, ``await close()``,
    ``async with``)."""

    def __init__(self, response: httpx.Response):
        super().__init__()
        self._response = response

    async def __aiter__(self) -> AsyncIterator[Poses]:
        try:
            async for text in self._response.aiter_lines():
                if text.strip():
                    poses = self.line(text)
                    if poses is not None:
                        yield poses
        except httpx.TransportError as exc:
            raise PoseConnectionError(f"video answer: {type(exc).__name__}: {exc}") from exc
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop reading (the server stops the video's work)."""
        await self._response.aclose()

    async def __aenter__(self) -> AsyncPoseVideo:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
