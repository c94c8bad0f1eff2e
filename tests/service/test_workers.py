"""``pose-serve --workers N`` (``service/workers.py``) as a real process tree on 127.0.0.1: N forked workers on one
port answer exactly as a single server does; a killed worker is replaced while the port keeps answering; SIGTERM
stops every worker and the supervisor exits 0; a model that fails to load in the workers ends the supervisor with
exit status 3, as a single server's does."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service.launcher import ServerProcess

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or not Path("/proc").is_dir(), reason="needs fork and /proc")


def _workers(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _answer(url: str, image: bytes, boxes: list) -> dict:
    r = httpx.post(f"{url}/v1/pose", content=image, params={"boxes": json.dumps(boxes)},
                   headers={"Content-Type": "image/jpeg", "Connection": "close"}, timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    body.pop("timings_ms")
    return body


def test_two_workers_answer_as_one_server_survive_a_killed_worker_and_stop_on_sigterm(
    yolo_onnx, movenet_card, coco_tiny, pose_server
):
    image = (coco_tiny / "000000196141.jpg").read_bytes()
    boxes = [[10.0, 20.0, 200.0, 400.0], [300.0, 50.0, 500.0, 420.0]]
    expected = _answer(pose_server.url, image, boxes)
    with ServerProcess(["--detector", str(yolo_onnx), "--pose", str(movenet_card), "--workers", "2"]) as srv:
        srv.wait_ready()
        workers = _workers(srv.proc.pid)
        assert len(workers) == 2, workers
        with ThreadPoolExecutor(8) as pool:  # fresh connections, spread by the kernel over the two workers
            answers = list(pool.map(lambda _: _answer(srv.url, image, boxes), range(16)))
        assert all(a == expected for a in answers)

        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = _workers(srv.proc.pid)
            if len(now) == 2 and workers[0] not in now:
                break
            assert _answer(srv.url, image, boxes) == expected  # the other worker answers meanwhile
            time.sleep(0.2)
        else:
            pytest.fail(f"the killed worker was not replaced: {_workers(srv.proc.pid)}")
        srv.wait_ready()
        assert _answer(srv.url, image, boxes) == expected

        last = _workers(srv.proc.pid)
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=30) == 0, srv.output()
        assert not any(Path(f"/proc/{p}").exists() and "zombie" not in Path(f"/proc/{p}/status").read_text()
                       for p in last)  # fmt: skip


def test_workers_whose_models_fail_to_load_end_the_supervisor_with_exit_status_3(yolo_onnx, movenet_card, tmp_path):
    from models.card import ModelCard

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an ONNX model" * 10)
    bad = ModelCard.load(movenet_card)
    bad.model_file = str(garbage)
    card = bad.save(tmp_path / "garbage.json")
    with ServerProcess(["--detector", str(yolo_onnx), "--pose", str(card), "--workers", "2"]) as srv:
        assert srv.proc.wait(timeout=120) == 3, srv.output()
        assert "garbage" in srv.output()
