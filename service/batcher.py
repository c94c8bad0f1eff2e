"""Dynamic batching of pose crops across concurrent requests.

Each request thread submits its crops and blocks on a future; one worker thread gathers the crops
of all waiting requests (up to ``max_batch_size`` crops, waiting at most ``max_wait_ms`` after the
first arrives), runs the pose model once, and hands each request its slice. This is the
"dynamic batching" of Triton / LitServe, reduced to the single hook the service needs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

log = logging.getLogger(__name__)


class CropBatcher:
    """Collects crop arrays from many threads into batched calls of ``predict_fn``.

    Args:
        predict_fn: crops uint8 [N, h, w, 3] -> float32 [N, K, 3]; called from the worker thread only.
        max_batch_size: most crops per call (a single request larger than this runs alone).
        max_wait_ms: how long the first waiting request waits for others to join its batch.

    Use :meth:`submit` (returns a Future) or :meth:`predict` (blocks). :meth:`close` stops the worker;
    requests still queued then fail with ``RuntimeError``.
    """

    def __init__(
        self, predict_fn: Callable[[np.ndarray], np.ndarray], max_batch_size: int = 32, max_wait_ms: float = 2.0
    ):
        self.predict_fn = predict_fn
        self.max_batch_size = int(max_batch_size)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self._queue: queue.Queue = queue.Queue()
        self._closed = threading.Event()
        self.batches_run = 0
        self.last_batch_sizes: list[int] = []
        self._worker = threading.Thread(target=self._loop, name="pose-batcher", daemon=True)
        self._worker.start()

    def submit(self, crops: np.ndarray) -> Future:
        """Queue crops [N, h, w, 3]; the future resolves to keypoints [N, K, 3] in crop pixels."""
        fut: Future = Future()
        if self._closed.is_set():
            fut.set_exception(RuntimeError("batcher is closed"))
            return fut
        if len(crops) == 0:
            fut.set_result(None)
            return fut
        self._queue.put((crops, fut))
        return fut

    def predict(self, crops: np.ndarray, timeout: float | None = 60.0) -> np.ndarray | None:
        """Blocking :meth:`submit`; returns None for zero crops."""
        return self.submit(crops).result(timeout=timeout)

    def _loop(self) -> None:
        pending = None
        while not self._closed.is_set():
            if pending is None:
                try:
                    pending = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
            batch = [pending]
            pending = None
            n = len(batch[0][0])
            deadline = time.monotonic() + self.max_wait_s
            while n < self.max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if n + len(item[0]) > self.max_batch_size:
                    pending = item  # starts the next batch
                    break
                batch.append(item)
                n += len(item[0])
            self._run(batch)
        for _crops, fut in self._drain():
            fut.set_exception(RuntimeError("batcher closed before the request ran"))

    def _drain(self):
        while True:
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                return

    def _run(self, batch: list) -> None:
        sizes = [len(c) for c, _ in batch]
        try:
            out = self.predict_fn(np.concatenate([c for c, _ in batch]) if len(batch) > 1 else batch[0][0])
        except Exception as exc:  # hand the failure to every waiting request
            for _, fut in batch:
                fut.set_exception(exc)
            return
        self.batches_run += 1
        self.last_batch_sizes = (self.last_batch_sizes + [sum(sizes)])[-100:]
        start = 0
        for (_, fut), size in zip(batch, sizes):
            fut.set_result(out[start : start + size])
            start += size

    def close(self) -> None:
        """Stop the worker thread (waits for the batch in flight)."""
        self._closed.set()
        self._worker.join(timeout=5)
