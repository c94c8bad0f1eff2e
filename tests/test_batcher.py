import threading

import numpy as np
import pytest

from service.batcher import CropBatcher


def _fake_predict(calls):
    def predict(crops):
        calls.append(len(crops))
        # keypoint "x" = the crop's constant value: lets each request check it got its own slice
        return np.repeat(crops[:, :1, :1, :1].astype(np.float32).reshape(-1, 1, 1), 3, axis=2)

    return predict


def test_concurrent_requests_share_batches_and_get_their_own_results():
    calls: list[int] = []
    b = CropBatcher(_fake_predict(calls), max_batch_size=64, max_wait_ms=200)
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
    assert sum(calls) == sum(range(1, 9)) and len(calls) < n_threads  # crops of several requests were merged
    assert max(calls) <= 64


def test_max_batch_size_is_respected_and_errors_reach_every_request():
    calls: list[int] = []
    b = CropBatcher(_fake_predict(calls), max_batch_size=4, max_wait_ms=50)
    futs = [b.submit(np.zeros((3, 4, 4, 3), np.uint8)) for _ in range(3)]
    for f in futs:
        assert f.result(5).shape == (3, 1, 3)
    assert max(calls) <= 4
    b.close()

    def boom(crops):
        raise ValueError("model exploded")

    b = CropBatcher(boom, max_batch_size=8, max_wait_ms=50)
    futs = [b.submit(np.zeros((1, 4, 4, 3), np.uint8)) for _ in range(2)]
    for f in futs:
        with pytest.raises(ValueError, match="exploded"):
            f.result(5)
    b.close()
    with pytest.raises(RuntimeError, match="closed"):
        b.submit(np.zeros((1, 4, 4, 3), np.uint8)).result(1)
