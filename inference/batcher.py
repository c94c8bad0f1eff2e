"""Dynamic, fair batching of model inputs across concurrent requests: the pose crops, and the detector's images.

Each request thread submits its items (crops [N, h, w, 3], or a letterboxed image [1, 3, S, S]) and blocks on a
future; one worker thread per model builds batches of up to ``max_batch_size`` items (waiting at most
``max_wait_ms`` after the first arrives for others to join), runs the model once per batch, and hands each request
its slice. This is the "dynamic batching" of Triton / LitServe, reduced to the one hook the service needs, plus
what a shared server needs:

* fairness: a batch takes crops round-robin from the waiting requests (each gets an equal share of the
  batch, the rest goes to those with more), so a request with 200 boxes runs in several batches that the
  crops of other requests join, instead of holding the model for all of its crops first;
* cancellation: the crops of a request whose :class:`~inference.context.RequestContext` is cancelled
  (deadline passed, client gone) are dropped before they run;
* one model at a time on the CPU: the detector's and the pose model's batchers share a gate (a lock held while a
  batch runs; ``inference.pipeline.make_batchers``), so each model's runtime may use every core (``inference.runtime.model_threads``) without the two
  oversubscribing them; pre- and post-processing run outside it, in the request threads;
* fault isolation: every exception of a batch (the model call, the output checks, the write-back) goes to the
  requests of that batch and the worker goes on; a failed batch of several requests is retried one request at a
  time, so innocent batch-mates get their answers and only the request whose crops trip the model fails;
* a watchdog: a model call running longer than ``run_timeout_s`` is cancelled (``cancel_fn``: onnxruntime's
  ``RunOptions.terminate``, OpenVINO's ``InferRequest.cancel``) and fails as an ``InferenceError`` of kind
  ``timeout``; :attr:`Batcher.consecutive_timeouts` counts the calls in a row that did so (``/readyz``);
* :meth:`Batcher.close` (shutdown) cancels the running call and fails every request still waiting on the batcher
  with :class:`~core.errors.ShuttingDownError` (503), also when the call cannot be stopped (it is abandoned).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from core.errors import InferenceError, ShuttingDownError
from inference.context import RequestContext

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
            worker thread only. An output whose first axis is not N is an ``InferenceError`` of kind ``shape``.
        max_batch_size: most items per call.
        max_wait_ms: how long the first waiting item waits for others to join its batch.
        on_batch: called with the size of each batch run (metrics).
        gate: a lock held while ``predict_fn`` runs, shared with the other model's batcher (one model computes at a
            time); None: none.
        name: the worker thread's name (and the batcher's in logs and metrics).
        model: the model's name in error messages and metrics.
        cancel_fn: stops the model call in flight from another thread (``PoseEstimator.cancel``); None: calls
            cannot be stopped (the watchdog and shutdown then only abandon them).
        run_timeout_s: a call running longer is cancelled (seconds; 0: no watchdog). One watchdog thread for the
            batcher's life checks every ``run_timeout_s / 4``: a call is cancelled between 1 and 1.25 times
            ``run_timeout_s`` after it began (a timer thread per call cost the worker a thread start per batch).
        on_failure: called with the exception of every failed model call (metrics), retries included.

    Use :meth:`submit` (returns a Future) or :meth:`predict` (blocks). :meth:`close` stops the worker;
    requests still waiting then fail with ``ShuttingDownError``.
    """

    def __init__(
        self,
        predict_fn: Callable[[np.ndarray], np.ndarray],
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        on_batch: Callable[[int], None] | None = None,
        gate: threading.Lock | None = None,
        name: str = "pose-batcher",
        model: str = "model",
        cancel_fn: Callable[[], object] | None = None,
        run_timeout_s: float = 0.0,
        on_failure: Callable[[Exception], None] | None = None,
    ):
        self.predict_fn = predict_fn
        self.gate = gate
        self.max_batch_size = int(max_batch_size)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self.on_batch = on_batch
        self.name, self.model = name, model
        self.cancel_fn = cancel_fn
        self.run_timeout_s = float(run_timeout_s)
        self.on_failure = on_failure
        self._jobs: list[_Job] = []
        self._cond = threading.Condition()
        self._closed = False
        self._timed_out = False
        self.batches_run = 0
        self.dropped_crops = 0
        self.retried_batches = 0
        #: times the loop caught an exception outside the model call and went on (a bug, counted as a restart)
        self.restarts = 0
        #: model calls in a row that ran past ``run_timeout_s`` (0 after any call that finished in time)
        self.consecutive_timeouts = 0
        #: why the worker thread stopped, when it stopped while the batcher was open (``/healthz`` then fails)
        self.failure: str | None = None
        self.last_batch_sizes: list[int] = []
        self._watch = threading.Condition()  # guards _call_started and _timed_out: a call ends or is cancelled
        self._call_started: float | None = None  # time.monotonic() when the model call in flight began
        self._worker = threading.Thread(target=self._loop, name=name, daemon=True)
        self._worker.start()
        if self.run_timeout_s > 0:
            threading.Thread(target=self._watch_calls, name=f"{name}-watchdog", daemon=True).start()

    @property
    def queued_items(self) -> int:
        """Items submitted and not yet handed to the model."""
        with self._cond:
            return sum(j.waiting for j in self._jobs)

    @property
    def stopped(self) -> str | None:
        """Why the worker is not running although the batcher is open, or None (it runs, or the batcher closed)."""
        if self._closed:
            return None
        if self.failure is not None:
            return self.failure
        if not self._worker.is_alive():
            return "the worker thread is not running"
        return None

    def submit(self, crops: np.ndarray, ctx: RequestContext | None = None) -> Future:
        """Queue items [N, ...] (crops [N, h, w, 3]); the future resolves to ``predict_fn``'s outputs for them
        ([N, ...]: keypoints [N, K, 3] in crop pixels; None for N = 0), or to the exception of the model call, or to
        ``ctx``'s deadline / disconnect error when it is dropped, or to ``ShuttingDownError`` after :meth:`close`."""
        job = _Job(crops, ctx)
        if len(crops) == 0:
            job.future.set_result(None)
            return job.future
        with self._cond:
            if self._closed:
                job.future.set_exception(ShuttingDownError(f"{self.name} is closed: the server is shutting down"))
                return job.future
            if self.stopped is not None:
                job.future.set_exception(InferenceError(f"{self.name} is not running: {self.stopped}"))
                return job.future
            self._jobs.append(job)
            self._cond.notify()
        return job.future

    def predict(self, crops: np.ndarray, ctx: RequestContext | None = None) -> np.ndarray | None:
        """Blocking :meth:`submit`; returns None for zero crops.

        Raises:
            DeadlineExceededError / ClientDisconnectedError: ``ctx`` was cancelled; ShuttingDownError: the batcher
            closed; the exception of the model call (``InferenceError``).
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
        try:
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
                if not slices:
                    continue
                try:
                    self._run(slices)
                except Exception as exc:  # a fault outside the guarded model call: its requests get it, we go on
                    self.restarts += 1
                    log.exception("%s: batch failed outside the model call; its requests get the error", self.name)
                    self._fail([job for job, _, _ in slices], exc)
        except BaseException as exc:  # the thread is dying: /healthz and /readyz report it
            self.failure = f"{type(exc).__name__}: {exc}"
            log.critical("%s: worker thread stopped: %s", self.name, self.failure)
        finally:
            with self._cond:
                jobs, self._jobs = self._jobs, []
            err = ShuttingDownError(f"{self.model}: the server is shutting down; the request's inference was dropped")
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(err if self._closed else InferenceError(f"{self.name} stopped"))

    def _fail(self, jobs: list[_Job], exc: Exception) -> None:
        """Hand ``exc`` to ``jobs`` and forget them."""
        with self._cond:
            for job in {id(j): j for j in jobs}.values():
                if job in self._jobs:
                    self._jobs.remove(job)
                if not job.future.done():
                    job.future.set_exception(exc)

    def _watch_calls(self) -> None:
        """The watchdog thread: cancels a model call once it has run ``run_timeout_s``. Under ``_watch``, which the
        call's end also takes, so a call that has ended is never cancelled, nor the next one in its place."""
        poll = self.run_timeout_s / 4
        with self._watch:
            while not self._closed:
                started = self._call_started
                if started is None or time.monotonic() - started < self.run_timeout_s:
                    self._watch.wait(poll)
                    continue
                self._call_started = None  # cancelled once
                self._timed_out = True
                if self.cancel_fn is not None:
                    try:
                        self.cancel_fn()
                    except Exception:  # pragma: no cover - a runtime that cannot cancel: the call runs on
                        log.exception("%s: cancelling a call past the inference timeout failed", self.name)

    def _call(self, batch: np.ndarray) -> np.ndarray:
        """``predict_fn(batch)`` under the gate and the watchdog, its output's batch axis checked.

        Raises:
            InferenceError: the call failed (kind ``timeout`` when the watchdog cancelled it; ``shape`` when the
                output does not hold one result per item).
            ShuttingDownError: :meth:`close` cancelled it.
        """
        gate = self.gate if self.gate is not None else contextlib.nullcontext()
        with gate:
            with self._watch:
                self._timed_out = False
                self._call_started = time.monotonic()
            try:
                out = self.predict_fn(batch)
            except Exception as exc:
                if self._closed:
                    raise ShuttingDownError(
                        f"{self.model}: the server is shutting down; inference was cancelled"
                    ) from exc
                if self._timed_out:
                    self.consecutive_timeouts += 1
                    raise InferenceError(
                        f"{self.model}: a batch of {len(batch)} ran past the inference timeout of "
                        f"{self.run_timeout_s:g} s and was cancelled (timeout check)",
                        kind="timeout",
                    ) from exc
                raise
            finally:
                with self._watch:
                    self._call_started = None
        self.consecutive_timeouts = 0
        if out is None or len(out) != len(batch):
            got = "no output" if out is None else f"{len(out)} results"
            raise InferenceError(f"{self.model}: the model returned {got} for {len(batch)} inputs (batch-size check)",
                                 kind="shape")  # fmt: skip
        return out

    def _run(self, slices: list[tuple[_Job, int, int]]) -> None:
        jobs = list({id(j): j for j, _, _ in slices}.values())
        crops = [job.crops[a:b] for job, a, b in slices]
        try:
            out = self._call(crops[0] if len(crops) == 1 else np.concatenate(crops))
            for job, _, _ in slices:  # a request split over batches gets items of one shape
                if job.out is not None and job.out.shape[1:] != out.shape[1:]:
                    raise InferenceError(
                        f"{self.model}: output items of shape {list(out.shape[1:])} after {list(job.out.shape[1:])} "
                        "in an earlier batch of the same request (shape check)",
                        kind="shape",
                    )
        except Exception as exc:
            if self.on_failure is not None and not isinstance(exc, ShuttingDownError):
                self.on_failure(exc)
            if len(jobs) > 1 and not self._closed:  # retry each request alone: only the guilty one fails again
                self.retried_batches += 1
                log.warning("%s: a batch of %d requests failed (%s); retrying them one at a time", self.name,
                            len(jobs), exc)  # fmt: skip
                for job in jobs:
                    if job.ctx is not None:
                        try:
                            job.ctx.check()
                        except Exception as cancelled:
                            self._fail([job], cancelled)
                            continue
                    self._run([s for s in slices if s[0] is job])
                return
            self._fail(jobs, exc)
            return
        size = len(out)
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

    def close(self, join_timeout_s: float = 1.0) -> None:
        """Stop the worker: cancel the model call in flight (``cancel_fn``), fail every request still waiting on the
        batcher with ``ShuttingDownError`` (the call in flight included: when it cannot be stopped it is abandoned),
        and wait up to ``join_timeout_s`` for the thread."""
        with self._cond:
            self._closed = True
            jobs, self._jobs = self._jobs, []
            self._cond.notify_all()
        with self._watch:
            self._watch.notify_all()  # the watchdog ends
        if self.cancel_fn is not None:
            try:
                self.cancel_fn()
            except Exception:  # pragma: no cover - a runtime that cannot cancel: the call is abandoned
                log.exception("%s: cancelling the call in flight failed", self.name)
        err = ShuttingDownError(f"{self.model}: the server is shutting down; the request's inference was dropped")
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(err)
        self._worker.join(timeout=join_timeout_s)
