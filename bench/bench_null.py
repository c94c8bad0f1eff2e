"""The CPU side's ceiling: a real ``pose-serve`` process serving a pose model that costs nothing.

    python bench/bench_null.py [--boxes 1 8 32] [--clients 8] [--seconds 20] [--image IMG] [--detector ONNX]
        [-- extra pose-serve options]          # IMG, ONNX default to ../shared/assets' coco-tiny image and YOLOv8n

The null model is an ONNX graph with the card contract of our exports (input ``crops`` uint8 NHWC 256x192 RGB,
output ``coords`` [B, 17, 2] normalised): the mean of each crop, times zero, plus constants. What is left is the
CPU work around the model: HTTP, multipart parsing, JPEG decode, crop warps, batching hand-offs, decode, JSON. Boxes
are the caller's (``?boxes=``), so the detector never runs. Closed loop: ``--clients`` clients each send the next
request when the previous answer arrives, on the same machine as the server (they compete for its cores).

Prints, per box count: requests/s, crops/s, the server's CPU seconds per request (``/proc/<pid>/stat``) and crops
per server CPU-second (the per-core figure). Figures, not assertions: never part of the test pass.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.card import InputSpec, ModelCard, OutputSpec  # noqa: E402
from service.launcher import ServerProcess  # noqa: E402

ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets"
K, W, H = 17, 192, 256


def null_model(folder: Path) -> Path:
    """Write ``null.onnx`` and its card; returns the card path."""
    import onnx
    from onnx import TensorProto, helper

    const = np.random.default_rng(0).uniform(0.2, 0.8, (K, 2)).astype(np.float32)
    nodes = [
        helper.make_node("Cast", ["crops"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], keepdims=0, axes=[1, 2, 3]),
        helper.make_node("Unsqueeze", ["m", "ax"], ["m3"]),
        helper.make_node("Mul", ["m3", "zero"], ["z"]),
        helper.make_node("Add", ["z", "const"], ["coords"]),
    ]
    graph = helper.make_graph(
        nodes,
        "null_pose",
        [helper.make_tensor_value_info("crops", TensorProto.UINT8, ["batch", H, W, 3])],
        [helper.make_tensor_value_info("coords", TensorProto.FLOAT, ["batch", K, 2])],
        initializer=[
            helper.make_tensor("ax", TensorProto.INT64, [2], [1, 2]),
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("const", TensorProto.FLOAT, [K, 2], const.ravel().tolist()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "null.onnx"))
    card = ModelCard(
        name="null",
        model_file="null.onnx",
        input=InputSpec(name="crops", width=W, height=H, layout="NHWC", dtype="uint8", color="RGB"),
        output=OutputSpec(name="coords", kind="keypoints", coord_order="xy", coord_units="normalized"),
        source={"checkpoint": "none: bench/bench_null.py's constant graph"},
    )
    return card.save(folder / "null.json")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads, plus those of its live child processes (``--workers``), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own + sum(cpu_seconds(int(c)) for c in children)


def boxes_for(n: int, w: int, h: int) -> list[list[float]]:
    """``n`` person-sized boxes spread over a ``w`` x ``h`` image."""
    rng = np.random.default_rng(n)
    out = []
    for _ in range(n):
        bw, bh = rng.uniform(0.1, 0.3) * w, rng.uniform(0.3, 0.6) * h
        x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        out.append([round(x, 1), round(y, 1), round(x + bw, 1), round(y + bh, 1)])
    return out


async def closed_loop(url: str, data: bytes, boxes: list, clients: int, seconds: float) -> tuple[int, int]:
    """(answers 200, other answers) of ``clients`` closed-loop clients over ``seconds``."""
    ok = bad = 0
    stop = time.perf_counter() + seconds
    params = {"boxes": json.dumps(boxes)}

    async def client(c: httpx.AsyncClient):
        nonlocal ok, bad
        while time.perf_counter() < stop:
            r = await c.post("/v1/pose", content=data, params=params, headers={"Content-Type": "image/jpeg"})
            if r.status_code == 200:
                ok += 1
            else:
                bad += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        await asyncio.gather(*(client(c) for _ in range(clients)))
    return ok, bad


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--boxes", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--image", type=Path, default=ASSETS / "coco-tiny" / "000000196141.jpg")
    p.add_argument("--detector", type=Path, default=ASSETS / "detector" / "yolov8n.onnx")
    p.add_argument("--upscale", type=int, default=1, help="send the image K times larger (bicubic, JPEG quality 95)")
    args = p.parse_args(argv)
    import io

    from PIL import Image

    data = args.image.read_bytes()
    if args.upscale > 1:
        img = Image.open(io.BytesIO(data))
        img = img.resize((img.width * args.upscale, img.height * args.upscale), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=95)
        data = buf.getvalue()
    w, h = Image.open(io.BytesIO(data)).size
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        card = null_model(Path(tmp))
        env = {"POSE_MAX_INFLIGHT_REQUESTS": "256", "POSE_MAX_INFLIGHT_CROPS": "100000", "POSE_WARMUP": "false"}
        with ServerProcess(["--detector", str(args.detector), "--pose", str(card), *extra], env=env) as srv:
            srv.wait_ready()
            pid = srv.proc.pid
            for n in args.boxes:
                boxes = boxes_for(n, w, h)
                asyncio.run(closed_loop(srv.url, data, boxes, args.clients, 2.0))  # warm-up
                cpu0, t0 = cpu_seconds(pid), time.perf_counter()
                ok, bad = asyncio.run(closed_loop(srv.url, data, boxes, args.clients, args.seconds))
                wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
                rows.append((n, ok / wall, ok * n / wall, cpu / max(ok, 1) * 1000, ok * n / max(cpu, 1e-9), bad))
    print(f"image {args.image.name} ({w}x{h}), {args.clients} closed-loop clients, {args.seconds:g} s per row, "
          f"{os.cpu_count()} CPUs; server options: {' '.join(extra) or '(defaults)'}")  # fmt: skip
    print("| boxes | requests/s | crops/s | server CPU ms / request | crops per server CPU-second | non-200 |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, rps, cps, cpu_ms, per_cpu, bad in rows:
        print(f"| {n} | {rps:.0f} | {cps:.0f} | {cpu_ms:.2f} | {per_cpu:.0f} | {bad} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
