"""The deadline / cancellation token of one request: what the batchers and the pipeline check between stages.

:class:`RequestContext` is an admitted request (``service.admission.Admission.admit`` makes one; library use such as
evaluation takes :meth:`RequestContext.unbounded`): its deadline and cancellation (deadline passed, client gone). The
pipeline checks it between stages and the batcher drops the crops of a cancelled request, so an abandoned request costs
no further inference. The budgets it holds go back when both the HTTP handler and the worker thread are done with the
request: work that is still running after a 504 keeps its pixels counted.

HTTP-free: the budgets are any object with the :class:`Budgets` methods (``service.admission.Admission``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from core.errors import ClientDisconnectedError, DeadlineExceededError


class Budgets(Protocol):
    """The budgets a :class:`RequestContext` takes from and gives back to (``service.admission.Admission``)."""

    def _take(self, kind: str, n: int) -> None: ...

    def _give_back(self, pixels: int, crops: int) -> None: ...

    def _return(self, pixels: int, crops: int) -> None: ...


class RequestContext:
    """An admitted request: its deadline, its cancellation and the budget it holds.

    Two holders share it, the HTTP handler and the worker thread running the pipeline; the budget goes back
    when both have called :meth:`release` (:meth:`start_work` registers the worker).
    """

    def __init__(self, admission: Budgets | None, deadline: float):
        self.admission = admission
        self.deadline = deadline
        self.pixels = self.crops = 0
        self.cancelled: str | None = None  # "deadline" or "disconnected"
        self._holders = 1
        self._lock = threading.Lock()
        #: called once after the budgets went back (a stream slot's release)
        self.on_release: Callable[[], None] | None = None

    @classmethod
    def unbounded(cls) -> RequestContext:
        """A context with no budget and no deadline (library use: evaluation, tests)."""
        return cls(None, float("inf"))

    @property
    def remaining_s(self) -> float:
        """Seconds until the deadline (negative once passed)."""
        return self.deadline - time.monotonic()

    def cancel(self, reason: str) -> None:
        """Mark the request abandoned (``deadline`` or ``disconnected``): :meth:`check` raises from now on."""
        self.cancelled = self.cancelled or reason

    def check(self) -> None:
        """Raise if the request was abandoned or its deadline passed.

        Raises:
            ClientDisconnectedError: the client went away.
            DeadlineExceededError: the deadline passed.
        """
        if self.cancelled is None and time.monotonic() > self.deadline:
            self.cancel("deadline")
        if self.cancelled == "disconnected":
            raise ClientDisconnectedError("the client disconnected; its work was dropped")
        if self.cancelled == "deadline":
            raise DeadlineExceededError("the request did not finish within its deadline; its work was dropped")

    def renew(self, timeout_s: float) -> None:
        """A new deadline ``timeout_s`` from now for the next piece of work of a long request (a live stream's next
        frame): a passed deadline is forgiven, a disconnect is not."""
        self.deadline = time.monotonic() + float(timeout_s)
        if self.cancelled == "deadline":
            self.cancelled = None

    def reserve_pixels(self, n: int) -> None:
        """Take ``n`` decoded pixels from the budget (before decoding). Raises OverloadedError."""
        if self.admission is not None:
            self.admission._take("pixels", int(n))
        self.pixels += int(n)

    def reserve_crops(self, n: int) -> None:
        """Take ``n`` pose crops from the budget (once the boxes are known). Raises OverloadedError."""
        if self.admission is not None:
            self.admission._take("crops", int(n))
        self.crops += int(n)

    def return_budget(self, pixels: int | None = None, crops: int | None = None) -> None:
        """Give pixels and crops back before the request ends (a video or stream frame once it is done; the request
        keeps its slot). None: all of that kind held now; 0: none."""
        px = self.pixels if pixels is None else min(int(pixels), self.pixels)
        cr = self.crops if crops is None else min(int(crops), self.crops)
        if px or cr:
            if self.admission is not None:
                self.admission._return(px, cr)
            self.pixels -= px
            self.crops -= cr

    def start_work(self) -> None:
        """Register the worker thread as a second holder (call before handing the request to it)."""
        with self._lock:
            self._holders += 1

    def release(self) -> None:
        """One holder is done; the last one returns the request slot, pixels and crops."""
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last and self.admission is not None:
            self.admission._give_back(self.pixels, self.crops)
        if last and self.on_release is not None:
            self.on_release()
