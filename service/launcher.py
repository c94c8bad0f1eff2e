"""Run ``pose-serve`` as a subprocess on a free 127.0.0.1 port and wait until it is ready.

Used by the tests that talk to a real server and by the ``bench/`` scripts (a real uvicorn process,
the same command line a user runs).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _get(url: str, timeout: float) -> tuple[int, dict]:
    """(status, JSON body or {}) of a GET (the standard library's client: serving installs no HTTP client)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    try:
        return status, json.loads(body or b"{}")
    except ValueError:
        return status, {}


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A running ``pose-serve``; ``url`` is its base URL. Use as a context manager.

    Args:
        args: extra ``pose-serve`` options (e.g. ``["--detector", path, "--pose", card]``).
        env: extra environment variables (``POSE_*`` settings).
        ready_timeout: seconds :meth:`wait_ready` waits for ``/readyz``.
    """

    def __init__(self, args: list[str], env: dict[str, str] | None = None, ready_timeout: float = 180.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - the server's output, read on failure
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                *args,
            ],
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.ready_timeout = ready_timeout

    def wait_listening(self) -> None:
        """Wait until ``/healthz`` answers (60 s). Raises RuntimeError if the process exits, TimeoutError."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()}")
            try:
                if _get(self.url + "/healthz", timeout=2)[0] == 200:
                    return
            except (urllib.error.URLError, OSError):  # not listening yet (HTTPError is answered in _get)
                time.sleep(0.2)
        raise TimeoutError("server did not start listening within 60 s")

    def wait_ready(self) -> None:
        """Wait until ``/readyz`` answers 200. Raises RuntimeError on a failed model load, TimeoutError."""
        self.wait_listening()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            status, body = _get(self.url + "/readyz", timeout=5)
            if status == 200:
                return
            if body.get("error") == "model_not_loaded":
                raise RuntimeError(f"models failed to load: {body}")
            time.sleep(0.2)
        raise TimeoutError(f"server not ready within {self.ready_timeout} s")

    def output(self) -> str:
        """What the server printed so far (stdout and stderr)."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
