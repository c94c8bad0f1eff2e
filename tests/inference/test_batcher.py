"""The cross-request crop batcher (inference/batcher.py): shared batches, fairness, cancellation, failures."""

import threading

import numpy as np
import pytest

from core.errors import ClientDisconnectedError, ShuttingDownError
from inference.batcher import Batcher
from inference.context import RequestContext


def _fake_predict(calls):
    def predict(crops):
        calls.append(crops[:, 0, 0, 0].tolist())
        # keypoint "x" = the crop's constant value: lets each request check it got its own slice
        return np.repeat(crops[:, :1, :1, :1].astype(np.float32).reshape(-1, 1, 1), 3, axis=2)

    return predict


def _gated_predict(calls):
    """A predict whose first call signals ``started`` and then blocks until ``release`` is set: the test acts while
    that batch is known to be running, not after a sleep a loaded machine may outrun."""
    started, release = threading.Event(), threading.Event()
    inner = _fake_predict(calls)

    def predict(crops):
        out = inner(crops)
        if len(calls) == 1:
            started.set()
            assert release.wait(10), "the test never released the first batch"
        return out

    return predict, started, release


def test_concurrent_requests_share_batches_and_get_their_own_results():
    calls: list[list[int]] = []
    b = Batcher(_fake_predict(calls), max_batch_size=64, max_wait_ms=200)
    n_threads, barrier, results, errors = 8, threading.Barrier(8), {}, []

    def worker(i):
        crops = np.full((i + 1, 4, 4, 3), i, np.uint8)
        barrier.wait()
        try:
            results[i] = b.predict(crops)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    b.close()
    assert not errors
    for i in range(n_threads):
        assert results[i].shape == (i + 1, 1, 3) and np.all(results[i] == i)
    sizes = [len(c) for c in calls]
    assert sum(sizes) == sum(range(1, 9)) and len(sizes) < n_threads  # crops of several requests were merged
    assert max(sizes) <= 64


def test_a_large_request_is_split_and_others_interleave_with_it():
    """200 crops of request A, then 2 of B: B's crops ride in A's second batch, not after all of A's."""
    calls: list[list[int]] = []
    predict, started, release = _gated_predict(calls)
    b = Batcher(predict, max_batch_size=16, max_wait_ms=1)
    big = b.submit(np.full((200, 4, 4, 3), 1, np.uint8))
    assert started.wait(10)  # A's first batch is running
    small = b.submit(np.full((2, 4, 4, 3), 2, np.uint8))
    release.set()
    assert small.result(5).shape == (2, 1, 3) and np.all(small.result() == 2)
    assert big.result(10).shape == (200, 1, 3) and np.all(big.result() == 1)
    b.close()
    batch_of_small = next(i for i, c in enumerate(calls) if 2 in c)
    assert batch_of_small == 1, f"B waited for {batch_of_small} batches of A"  # the batch right after A's first
    assert all(len(c) <= 16 for c in calls) and sum(len(c) for c in calls) == 202
    assert calls[batch_of_small].count(1) >= 8  # A keeps its share of that batch


def test_cancelled_requests_are_dropped_before_they_run():
    calls: list[list[int]] = []
    predict, started, release = _gated_predict(calls)
    b = Batcher(predict, max_batch_size=4, max_wait_ms=1)
    first = b.submit(np.full((4, 4, 4, 3), 1, np.uint8))  # occupies the model
    assert started.wait(10)
    ctx = RequestContext.unbounded()
    gone = b.submit(np.full((40, 4, 4, 3), 9, np.uint8), ctx)
    ctx.cancel("disconnected")
    release.set()
    with pytest.raises(ClientDisconnectedError):
        gone.result(5)
    first.result(5)
    b.close()
    assert not any(9 in c for c in calls) and b.dropped_crops == 40


def test_max_batch_size_and_errors_reach_every_request():
    calls: list[list[int]] = []
    b = Batcher(_fake_predict(calls), max_batch_size=4, max_wait_ms=50)
    futs = [b.submit(np.zeros((3, 4, 4, 3), np.uint8)) for _ in range(3)]
    for f in futs:
        assert f.result(5).shape == (3, 1, 3)
    assert max(len(c) for c in calls) <= 4
    b.close()

    def boom(crops):
        raise ValueError("model exploded")

    b = Batcher(boom, max_batch_size=8, max_wait_ms=50)
    futs = [b.submit(np.zeros((1, 4, 4, 3), np.uint8)) for _ in range(2)]
    for f in futs:
        with pytest.raises(ValueError, match="exploded"):
            f.result(5)
    assert b.queued_items == 0
    b.close()
    with pytest.raises(ShuttingDownError, match="closed"):  # 503 JSON in the service
        b.submit(np.zeros((1, 4, 4, 3), np.uint8)).result(1)


def test_the_watchdog_cancels_a_call_past_the_timeout_and_no_other():
    """One watchdog thread for the batcher's life (no thread per call): a call blocked past ``run_timeout_s`` is
    cancelled between 1 and 1.25 times it (the test allows scheduling slack), the calls before and after it are not."""
    from core.errors import InferenceError

    cancels: list[float] = []
    stop = threading.Event()

    def predict(crops):
        if crops[0, 0, 0, 0] == 9:  # the stuck one: runs until cancelled
            assert stop.wait(30), "never cancelled"
            stop.clear()
            raise RuntimeError("terminated")
        return np.zeros((len(crops), 1, 3), np.float32)

    b = Batcher(
        predict, max_batch_size=4, max_wait_ms=0, run_timeout_s=0.3, cancel_fn=lambda: (cancels.append(1), stop.set())
    )
    try:
        crops = np.zeros((1, 2, 2, 3), np.uint8)
        threads_before = threading.active_count()
        for _ in range(50):  # fast calls: never cancelled, and no thread started per call
            b.predict(crops, RequestContext.unbounded())
        assert threading.active_count() == threads_before and not cancels
        import time

        t0 = time.monotonic()
        with pytest.raises(InferenceError, match="inference timeout") as err:
            b.predict(np.full((1, 2, 2, 3), 9, np.uint8), RequestContext.unbounded())
        took = time.monotonic() - t0
        assert err.value.kind == "timeout" and cancels == [1] and 0.3 <= took < 3, took
        assert b.consecutive_timeouts == 1
        b.predict(crops, RequestContext.unbounded())  # the next call runs in time: not cancelled
        assert cancels == [1] and b.consecutive_timeouts == 0
    finally:
        b.close()
