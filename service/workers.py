"""``pose-serve --workers N``: N server processes on one listening socket, to use more cores than one Python process.

One process answers requests with Python code between its C calls (HTTP parsing, multipart, batching hand-offs,
JSON), so past about one core of such work a single server stops scaling however many cores the machine has. With
``workers`` > 1 the supervisor (the ``pose-serve`` process) binds the port, then forks N workers; each loads its own
models and runs the whole service on the shared socket (the kernel hands each new connection to one worker), as
gunicorn's and uvicorn's own multi-worker modes do. Workers are forked before any model, thread or runtime exists, and each
loads and warms up its models before it takes a connection (a worker still loading would answer 503 to requests the
others can serve), so ``/readyz`` is 200 from the first worker that listens and a replaced worker joins only when
ready.

The trade-offs (README, "Using more cores"):

* memory: every worker holds its own models (N copies of the weights, N ONNX Runtime / OpenVINO sessions; on a GPU,
  N CUDA contexts and N TensorRT engines' activation memory);
* batching: each worker batches only the crops of its own connections, so batches are smaller than one process would
  form under the same load (a GPU wants few workers and large batches; a CPU gains most from workers);
* per-worker state: admission limits (``max_inflight_*``, ``max_streams``), ``/readyz``, ``/metrics`` and the
  request-id log lines are each worker's own. ``/metrics`` describes the worker that took the scrape; every series
  carries nothing that tells workers apart, so for exact fleet metrics run one worker per container and scale
  containers (``docker/kubernetes/``), which is also what a Kubernetes HPA expects.

Supervision: SIGTERM / SIGINT to the supervisor is passed to every worker (each then drains as a single server does,
``shutdown_timeout_s``); a worker still alive :data:`KILL_MARGIN_S` after that is killed. A worker that exits on its
own is replaced by a fresh fork, except when its models failed to load (``EXIT_LOAD_FAILURE``): then the others are
stopped and the supervisor exits with that status. More than :data:`MAX_RESTARTS` replacements within
:data:`RESTART_WINDOW_S` stop the service with exit status 1 (a crash loop should reach the orchestrator).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import time

from core.settings import Settings

log = logging.getLogger("service")

#: Seconds past ``shutdown_timeout_s`` before the supervisor kills a worker that has not exited.
KILL_MARGIN_S = 5.0
#: At most this many worker replacements within :data:`RESTART_WINDOW_S` seconds.
MAX_RESTARTS, RESTART_WINDOW_S = 5, 60.0


def _run_worker(index: int, sock, settings: Settings) -> int:
    """A worker's life: build the app, serve on the supervisor's socket, return the exit status."""
    from service.app import create_app
    from service.server import EXIT_LOAD_FAILURE, PoseServer, uvicorn_config

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    app = create_app(settings)
    state = app.state.service
    # load (and warm up) before taking connections: the kernel hands new connections to any worker that accepts,
    # and a worker still loading would answer them 503 while the others could serve them
    state.load()
    if state.error is not None and settings.exit_on_load_failure:
        print(f"pose-serve worker {index}: model loading failed: {state.error}", file=sys.stderr)
        return EXIT_LOAD_FAILURE
    server = PoseServer(uvicorn_config(app, settings), state)
    gc.freeze()  # as service.server.serve: the loaded models and the app leave the collector's generations
    server.run(sockets=[sock])
    if state.fatal:
        print(f"pose-serve worker {index}: model loading failed: {state.error}", file=sys.stderr)
        return EXIT_LOAD_FAILURE
    return 0


def _fork_worker(index: int, sock, settings: Settings) -> int:
    """Fork worker ``index``; returns its pid in the supervisor (never returns in the worker)."""
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        status = _run_worker(index, sock, settings)
    except BaseException:  # noqa: BLE001 - the worker must not return into the supervisor's code
        logging.getLogger("service").exception("pose-serve worker %d failed", index)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return 0  # unreachable


def serve_workers(settings: Settings) -> int:
    """Serve with ``settings.workers`` forked workers on one socket until SIGTERM / SIGINT (see the module docstring).

    Returns:
        The exit status: 0 after a clean shutdown, ``service.server.EXIT_LOAD_FAILURE`` when a worker's models failed
        to load, 1 after a crash loop.

    Raises:
        OSError: the port cannot be bound.
    """
    from service.server import EXIT_LOAD_FAILURE, uvicorn_config

    sock = uvicorn_config(None, settings).bind_socket()
    workers: dict[int, int] = {}  # pid -> index
    stopping: list[float] = []  # the time the stop began (empty: serving)
    restarts: list[float] = []
    status = 0

    def stop(signum=None, frame=None) -> None:
        if not stopping:
            stopping.append(time.monotonic())
            log.info("pose-serve: stopping %d workers", len(workers))
            for pid in workers:
                _signal(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for i in range(settings.workers):
        workers[_fork_worker(i, sock, settings)] = i
    log.info("pose-serve: %d workers on %s:%d", settings.workers, settings.host, settings.port)
    while workers:
        pid, code = _wait_any()
        if pid < 0:
            break
        if pid == 0:  # nothing exited yet
            if stopping and time.monotonic() - stopping[0] > settings.shutdown_timeout_s + KILL_MARGIN_S:
                for p in workers:
                    _signal(p, signal.SIGKILL)
            time.sleep(0.1)
            continue
        index = workers.pop(pid, None)
        if index is None or stopping:
            continue
        if code == EXIT_LOAD_FAILURE:
            status = EXIT_LOAD_FAILURE
            stop()
            continue
        now = time.monotonic()
        restarts[:] = [t for t in restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(restarts) > MAX_RESTARTS:
            log.error("pose-serve: %d worker restarts within %g s: stopping", len(restarts), RESTART_WINDOW_S)
            status = 1
            stop()
            continue
        log.warning("pose-serve: worker %d (pid %d) exited with %s: starting a new one", index, pid, code)
        workers[_fork_worker(index, sock, settings)] = index
    sock.close()
    return status


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_any() -> tuple[int, int]:
    """(pid, exit status) of a child that ended, or (0, 0) if none has; a signal's death reads as 128 + signal."""
    try:
        pid, raw = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:  # no child left (all reaped)
        return -1, 0
    if pid == 0:
        return 0, 0
    return pid, os.waitstatus_to_exitcode(raw) if os.WIFEXITED(raw) else 128 + os.WTERMSIG(raw)
