"""The ``asyncio`` HTTP client, :class:`AsyncPoseClient` (:mod:`poseserve.client` re-exports it): the twin of
:class:`~poseserve.client.PoseClient`, awaited.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal, overload

import httpx

from poseserve._errors import PoseClientError, PoseConnectionError, _api_error
from poseserve._requests import _Base, _stream_query, _video_params, _video_source
from poseserve._retry import _RETRIED_TRANSPORT, Retry, _Attempts
from poseserve._session import AsyncPoseSession, _handshake_failure
from poseserve._video import AsyncPoseVideo
from poseserve.results import Poses

__all__ = ["AsyncPoseClient"]


class AsyncPoseClient(_Base):
    """The ``asyncio`` twin of :class:`PoseClient`: the same arguments, methods and errors, awaited
    (``await client.pose(image)``, ``async for poses in await client.video(path)``, ``async with await
    client.stream() as session``). Use as an async context manager, or ``await close()``.
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", api_key: str | None = None, *,
                 timeout: float | httpx.Timeout = 60.0, retry: Retry | None = None, image_format: str = "png",
                 headers: Mapping[str, str] | None = None, **httpx_kwargs: Any):  # fmt: skip
        super().__init__(url, api_key, timeout, retry, image_format, headers)
        self._http = httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=self.timeout, **httpx_kwargs)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncPoseClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _send(self, build: Callable[[], httpx.Request], stream: bool = False,
                    what: str = "request") -> httpx.Response:  # fmt: skip
        attempts = _Attempts(self.retry, what)
        while True:
            attempts.n += 1
            try:
                resp = await self._http.send(build(), stream=stream)
            except _RETRIED_TRANSPORT as exc:
                err: PoseClientError = PoseConnectionError(f"{what}: {type(exc).__name__}: {exc}", attempts.n)
                err.__cause__ = exc
                retry_after = None
            except httpx.TransportError as exc:
                raise PoseConnectionError(f"{what}: {type(exc).__name__}: {exc}", attempts.n) from exc
            else:
                if resp.status_code < 400:
                    return resp
                try:
                    body = await resp.aread()
                finally:
                    await resp.aclose()
                err = _api_error(resp.status_code, resp.headers, body, attempts.n)
                if resp.status_code not in self.retry.statuses:
                    raise err
                retry_after = err.retry_after
            await asyncio.sleep(attempts.next_wait(err, retry_after))

    async def _get_json(self, path: str) -> Any:
        return (await self._send(lambda: self._http.build_request("GET", path), what=f"GET {path}")).json()

    @overload
    async def pose(self, image: Any, bboxes: Any = ..., *, rgb: bool = ..., render: Literal[False] = ...) -> Poses: ...
    @overload
    async def pose(self, image: Any, bboxes: Any = ..., *, rgb: bool = ..., render: Literal[True]) -> bytes: ...

    async def pose(self, image: Any, bboxes: Any = None, *, rgb: bool = False, render: bool = False) -> Poses | bytes:
        """As :meth:`PoseClient.pose` (the image is encoded in a worker thread)."""
        files, form = await asyncio.to_thread(self._pose_parts, image, bboxes, rgb)
        params = {"render": "true"} if render else None

        def build() -> httpx.Request:
            return self._http.build_request("POST", "/v1/pose", files=files, data=form, params=params)

        resp = await self._send(build, what="POST /v1/pose")
        return resp.content if render else Poses.from_answer(resp.json())

    __call__ = pose

    async def models(self) -> dict[str, Any]:
        """As :meth:`PoseClient.models`."""
        models = await self._get_json("/v1/models")
        self._keypoint_names = self._models_names(models)
        return models

    async def health(self) -> bool:
        """As :meth:`PoseClient.health`."""
        return await self._probe("/healthz")

    async def ready(self) -> bool:
        """As :meth:`PoseClient.ready`."""
        return await self._probe("/readyz")

    async def _probe(self, path: str) -> bool:
        try:
            resp = await self._http.get(path)
        except httpx.TransportError as exc:
            raise PoseConnectionError(f"GET {path}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code == 503:
            return False
        if resp.status_code >= 400:
            raise _api_error(resp.status_code, resp.headers, resp.content)
        return True

    async def wait_ready(self, timeout_s: float = 120.0, interval_s: float = 0.5) -> None:
        """As :meth:`PoseClient.wait_ready`."""
        end = time.monotonic() + timeout_s
        while True:
            try:
                if await self.ready():
                    return
            except PoseConnectionError:
                pass
            if time.monotonic() > end:
                raise TimeoutError(f"{self.url} not ready within {timeout_s:g} s")
            await asyncio.sleep(interval_s)

    async def video(self, source: str | os.PathLike | bytes, *, track: bool = True, smooth: bool = True,
                    det_interval: int | None = None, stride: int = 1,
                    max_frames: int | None = None) -> AsyncPoseVideo:  # fmt: skip
        """As :meth:`PoseClient.video`; returns an :class:`AsyncPoseVideo` (``async for``)."""
        chunks, size, ctype = _video_source(source)
        params = _video_params(track, smooth, det_interval, stride, max_frames)
        headers = {"Content-Type": ctype, "Content-Length": str(size)}

        async def achunks() -> AsyncIterator[bytes]:
            it = chunks()
            while (block := await asyncio.to_thread(next, it, None)) is not None:
                yield block

        def build() -> httpx.Request:
            return self._http.build_request("POST", "/v1/pose/video", content=achunks(), headers=headers,
                                            params=params)  # fmt: skip

        resp = await self._send(build, stream=True, what="POST /v1/pose/video")
        return AsyncPoseVideo(resp)

    async def stream(self, *, track: bool = True, smooth: bool = True, det_interval: int | None = None,
                     open_timeout_s: float = 10.0, max_size: int | None = 16 << 20) -> AsyncPoseSession:  # fmt: skip
        """As :meth:`PoseClient.stream`; returns an :class:`AsyncPoseSession`."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake

        names = self._keypoint_names if self._keypoint_names is not None else self._models_names(await self.models())
        url = f"{self.ws_url}?{_stream_query(track, smooth, det_interval)}"
        attempts = _Attempts(self.retry, "stream")
        while True:
            attempts.n += 1
            try:
                ws = await connect(url, additional_headers=self.headers, open_timeout=open_timeout_s,
                                   max_size=max_size)  # fmt: skip
                return AsyncPoseSession(ws, names, self.image_format)
            except (OSError, TimeoutError, asyncio.TimeoutError, InvalidHandshake) as exc:  # InvalidStatus too
                err, retry_after = _handshake_failure(exc, self.retry.statuses, attempts.n)
            await asyncio.sleep(attempts.next_wait(err, retry_after))
