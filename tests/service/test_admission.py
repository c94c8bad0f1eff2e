"""Admission control (service/admission.py): budgets by cost, deadlines, cancellation, release by both holders."""

import threading
import time

import pytest

from core.errors import ClientDisconnectedError, DeadlineExceededError, OverloadedError
from inference.context import RequestContext
from service.admission import Admission
from tests.fakes import wait_until


def test_requests_pixels_and_crops_are_budgets_refused_at_once():
    adm = Admission(max_requests=2, max_pixels=1000, max_crops=10, retry_after_s=3)
    a, b = adm.admit(10), adm.admit(10)
    t0 = time.perf_counter()
    with pytest.raises(OverloadedError, match="2 requests in flight") as e:
        adm.admit(10)
    assert time.perf_counter() - t0 < 0.5 and e.value.reason == "requests"  # no wait (a queue would wait 10 s)
    assert e.value.status == 503 and e.value.headers == {"Retry-After": "3"}
    a.reserve_pixels(800)
    with pytest.raises(OverloadedError, match="800 pixels in flight, this request needs 300") as e:
        b.reserve_pixels(300)
    assert e.value.reason == "pixels" and adm.pixels == 800
    b.reserve_crops(10)
    with pytest.raises(OverloadedError) as e:
        a.reserve_crops(1)
    assert e.value.reason == "crops"
    a.release()
    b.release()
    assert (adm.requests, adm.pixels, adm.crops) == (0, 0, 0)
    adm.admit(10).release()  # a slot again


def test_the_budget_returns_only_when_handler_and_worker_are_both_done():
    adm = Admission(1, 100, 10)
    ctx = adm.admit(10)
    ctx.reserve_pixels(50)
    ctx.start_work()
    ctx.release()  # the handler answered (e.g. 504); the worker still decodes
    assert (adm.requests, adm.pixels) == (1, 50)
    with pytest.raises(OverloadedError):
        adm.admit(10)
    ctx.release()  # the worker finished
    assert (adm.requests, adm.pixels) == (0, 0)


def test_deadline_and_disconnect_cancel_the_request():
    adm = Admission(4, 10, 10)
    ctx = adm.admit(30.0)  # far off: a stalled machine cannot reach it before the checks below
    ctx.check()
    assert 0 < ctx.remaining_s <= 30.0
    short = adm.admit(0.05)
    wait_until(lambda: short.remaining_s < 0, timeout=5, what="the 50 ms deadline")
    with pytest.raises(DeadlineExceededError):
        short.check()
    ctx.check()  # the other request's deadline is its own
    gone = RequestContext.unbounded()
    gone.cancel("disconnected")
    gone.cancel("deadline")  # the first reason stays
    with pytest.raises(ClientDisconnectedError):
        gone.check()


def test_concurrent_admission_never_exceeds_the_budget():
    adm = Admission(max_requests=3, max_pixels=10**9, max_crops=10**9)
    peak, lock, refused = [0], threading.Lock(), []

    def worker():
        for _ in range(200):
            try:
                ctx = adm.admit(10)
            except OverloadedError:
                refused.append(1)
                continue
            with lock:
                peak[0] = max(peak[0], adm.requests)
            ctx.release()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] <= 3 and adm.requests == 0
