"""Dynamic, fair batching of model inputs across concurrent requests: the pose crops, and the detector's images.

Each request thread submits its items (crops [N, h, w, 3], or a letterboxed image [1, 3, S, S]) and blocks on a
future; one worker thread per model builds batches of up to ``max_batch_size`` items (waiting at most
``max_wait_ms`` after the first arrives for others to join), runs the model once per batch, and hands each request
its slice. This is the "dynamic batching" of Triton / LitServe, reduced to the one hook the service needs, plus
what a shared server needs:

* fairness: a batch takes crops round-robin from the waiting requests (each gets an equal share of the
  batch, the rest goes to those with more), so a request with 200 boxes runs in several batches that the
  crops of other requests join, instead of holding the model for all of its crops first;
* cancellation: the crops of a request whose :class:`~service.admission.RequestContext` is cancelled
  (deadline passed, client gone) are dropped before they run;
* one model at a time on the CPU: the detector's and the pose model's batchers share a gate (a lock held while a
  batch runs; ``service.pipeline.make_batchers``), so each model's runtime may use every core (``service.runtime.model_threads``) without the two
  oversubscribing them; pre- and post-processing run outside it, in the request threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from service.admission import RequestContext

log = logging.getLogger(__name__)


class _Job:
    """One request's crops: how many were handed to a batch and how many came back."""

    def __init__(self, crops: np.ndarray, ctx: RequestContext | None):
        self.crops, self.ctx = crops, ctx
        self.future: Future = Future()
        self.out: np.ndarray | None = None
        self.taken = self.done = 0

    @property
    def waiting(self) -> int:
        return len(self.crops) - self.taken


class Batcher:
    """Collects item arrays from many threads into fair batched calls of ``predict_fn``.

    Args:
        predict_fn: items [N, ...] -> outputs [N, ...] (the pose model: crops uint8 [N, h, w, 3] -> keypoints
            float32 [N, K, 3]; the detector: images float32 [N, 3, S, S] -> raw outputs [N, ...]); called from the
            worker thread only.
        max_batch_size: most items per call.
        max_wait_ms: how long the first waiting item waits for others to join its batch.
        on_batch: called with the size of each batch run (metrics).
        gate: a lock held while ``predict_fn`` runs, shared with the other model's batcher (one model computes at a
            time); None: none.
        name: the worker thread's name.

    Use :meth:`submit` (returns a Future) or :meth:`predict` (blocks). :meth:`close` stops the worker;
    requests still queued then fail with ``RuntimeError``.
    """

    def __init__(
        self,
        predict_fn: Callable[[np.ndarray], np.ndarray],
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        on_batch: Callable[[int], None] | None = None,
        gate: threading.Lock | None = None,
        name: str = "pose-batcher",
    ):
        self.predict_fn = predict_fn
        self.gate = gate
        self.max_batch_size = int(max_batch_size)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self.on_batch = on_batch
        self._jobs: list[_Job] = []
        self._cond = threading.Condition()
        self._closed = False
        self.batches_run = 0
        self.dropped_crops = 0
        self.last_batch_sizes: list[int] = []
        self._worker = threading.Thread(target=self._loop, name=name, daemon=True)
        self._worker.start()

    @property
    def queued_items(self) -> int:
        """Items submitted and not yet handed to the model."""
        with self._cond:
            return sum(j.waiting for j in self._jobs)

    def submit(self, crops: np.ndarray, ctx: RequestContext | None = None) -> Future:
        """Queue items [N, ...] (crops [N, h, w, 3]); the future resolves to ``predict_fn``'s outputs for them
        ([N, ...]: keypoints [N, K, 3] in crop pixels; None for N = 0), or to the exception of the model call, or to
        ``ctx``'s deadline / disconnect error when it is dropped."""
        job = _Job(crops, ctx)
        if len(crops) == 0:
            job.future.set_result(None)
            return job.future
        with self._cond:
            if self._closed:
                job.future.set_exception(RuntimeError("batcher is closed"))
                return job.future
            self._jobs.append(job)
            self._cond.notify()
        return job.future

    def predict(self, crops: np.ndarray, ctx: RequestContext | None = None) -> np.ndarray | None:
        """Blocking :meth:`submit`; returns None for zero crops.

        Raises:
            DeadlineExceededError / ClientDisconnectedError: ``ctx`` was cancelled; the exception of the model call.
        """
        fut = self.submit(crops, ctx)
        if ctx is None or ctx.deadline == float("inf"):
            return fut.result()
        try:  # a dropped request's future fails at the next batch; the margin covers a batch in flight
            return fut.result(timeout=max(ctx.remaining_s, 0.0) + 5.0)
        except TimeoutError:
            ctx.cancel("deadline")
            ctx.check()
            raise

    def _drop_cancelled(self) -> None:
        """Fail and remove the jobs whose request was abandoned (caller holds the lock)."""
        for job in list(self._jobs):
            if job.ctx is None:
                continue
            try:
                job.ctx.check()
            except Exception as exc:
                self._jobs.remove(job)
                self.dropped_crops += job.waiting
                job.future.set_exception(exc)

    def _take_batch(self) -> list[tuple[_Job, int, int]]:
        """Round-robin slices (job, start, stop) filling one batch (caller holds the lock)."""
        slices: list[tuple[_Job, int, int]] = []
        room = self.max_batch_size
        while room > 0:
            open_jobs = [j for j in self._jobs if j.waiting > 0]
            if not open_jobs:
                break
            share = max(1, room // len(open_jobs))
            for job in open_jobs:
                n = min(share, job.waiting, room)
                if n <= 0:
                    break
                slices.append((job, job.taken, job.taken + n))
                job.taken += n
                room -= n
        return slices

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not any(j.waiting for j in self._jobs):
                    self._cond.wait()
                if self._closed:
                    break
                # give other requests max_wait to join, unless the batch is already full
                deadline = time.monotonic() + self.max_wait_s
                while not self._closed and sum(j.waiting for j in self._jobs) < self.max_batch_size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                self._drop_cancelled()
                slices = self._take_batch()
            if slices:
                self._run(slices)
        with self._cond:
            jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.future.set_exception(RuntimeError("batcher closed before the request ran"))

    def _run(self, slices: list[tuple[_Job, int, int]]) -> None:
        crops = [job.crops[a:b] for job, a, b in slices]
        try:
            batch = crops[0] if len(crops) == 1 else np.concatenate(crops)
            if self.gate is None:
                out = self.predict_fn(batch)
            else:
                with self.gate:
                    out = self.predict_fn(batch)
        except Exception as exc:  # hand the failure to every request in the batch
            with self._cond:
                for job in {id(j): j for j, _, _ in slices}.values():
                    if job in self._jobs:
                        self._jobs.remove(job)
                    if not job.future.done():
                        job.future.set_exception(exc)
            return
        size = sum(b - a for _, a, b in slices)
        self.batches_run += 1
        self.last_batch_sizes = (self.last_batch_sizes + [size])[-100:]
        if self.on_batch is not None:
            self.on_batch(size)
        start = 0
        finished = []
        with self._cond:
            for job, a, b in slices:
                if job.out is None:
                    job.out = np.empty((len(job.crops), *out.shape[1:]), out.dtype)
                job.out[a:b] = out[start : start + (b - a)]
                start += b - a
                job.done += b - a
                if job.done == len(job.crops) and job in self._jobs:
                    self._jobs.remove(job)
                    finished.append(job)
        for job in finished:
            if not job.future.done():
                job.future.set_result(job.out)

    def close(self) -> None:
        """Stop the worker thread (waits for the batch in flight)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._worker.join(timeout=5)
