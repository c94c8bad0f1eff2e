"""Load test of a real ``pose-serve`` process on 127.0.0.1: closed-loop clients and open-loop arrivals.

    python bench/bench_load.py --detector ../shared/assets/detector/yolov8n.onnx --pose CARD.json \\
        [--images ../shared/assets/coco-mini/val2017] [--seconds 60] [--clients 1 16 64] [--rates 1 2 4] \\
        [--capacity REQ_PER_S] [-- extra pose-serve options]

Closed loop: N clients each send the next request when the previous answer arrives (``--backoff-clients``: after a
503 they first wait its ``Retry-After``, as a well-behaved client or load balancer does). Open loop: requests
arrive at a fixed rate (a multiple of the capacity, which is measured first with 4 closed-loop clients unless
``--capacity`` is given), whether or not earlier ones were answered, as real traffic does; clients wait up to
120 s. For each run it prints the answers by status, client latency p50 / p95 / p99 / max of the 200s, the
p99 of the 503s, answers later than the server's deadline, throughput, and the server's RSS before / peak /
after (``/proc/<pid>/status``). Figures, not assertions: never part of the test pass.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.settings import Settings  # noqa: E402
from service.launcher import ServerProcess  # noqa: E402


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


async def one(client: httpx.AsyncClient, data: bytes, out: list) -> float:
    """One POST /pose; appends (status or exception name, seconds). Returns the answer's ``Retry-After`` (0 if none)."""
    t = time.perf_counter()
    try:
        r = await client.post("/pose", content=data, headers={"Content-Type": "image/jpeg"})
        out.append((r.status_code, time.perf_counter() - t))
        return float(r.headers.get("retry-after", 0)) if r.status_code == 503 else 0.0
    except httpx.HTTPError as exc:
        out.append((type(exc).__name__, time.perf_counter() - t))
        return 0.0


async def closed_loop(url: str, payloads: list[bytes], clients: int, seconds: float, backoff: bool = False) -> list:
    out: list = []
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker(i: int) -> None:
            k = i
            while time.perf_counter() < stop:
                retry_after = await one(client, payloads[k % len(payloads)], out)
                if backoff and retry_after:  # a well-behaved client waits as a 503 asks
                    await asyncio.sleep(min(retry_after, max(0.0, stop - time.perf_counter())))
                k += clients

        await asyncio.gather(*(worker(i) for i in range(clients)))
    return out


async def open_loop(url: str, payloads: list[bytes], rate: float, seconds: float) -> list:
    out: list = []
    tasks = []
    limits = httpx.Limits(max_connections=2000)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        t0 = time.perf_counter()
        n = int(rate * seconds)
        for k in range(n):
            delay = t0 + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, payloads[k % len(payloads)], out)))
        await asyncio.gather(*tasks)
    return out


def report(name: str, out: list, wall: float, deadline: float, rss: tuple[float, float, float]) -> dict:
    codes = Counter(c for c, _ in out)
    ok = [t for c, t in out if c == 200]
    busy = [t for c, t in out if c == 503]
    row = {
        "run": name,
        "requests": len(out),
        "codes": dict(sorted(codes.items(), key=str)),
        "ok_per_s": len(ok) / wall,
        "p50": pct(ok, 50),
        "p95": pct(ok, 95),
        "p99": pct(ok, 99),
        "max": max(ok) if ok else float("nan"),
        "p99_503_ms": pct(busy, 99) * 1000,
        "over_deadline": sum(1 for _, t in out if t > deadline),
        "rss": rss,
    }
    print(
        f"| {name} | {len(out)} | {', '.join(f'{k}: {v}' for k, v in row['codes'].items())} | {row['ok_per_s']:.2f} | "
        f"{row['p50']:.2f} / {row['p95']:.2f} / {row['p99']:.2f} / {row['max']:.2f} | {row['p99_503_ms']:.0f} | "
        f"{row['over_deadline']} | {rss[0]:.0f} / {rss[1]:.0f} / {rss[2]:.0f} |",
        flush=True,
    )
    return row


async def measured(srv: ServerProcess, coro):
    pid = srv.proc.pid
    before, peak = rss_mib(pid), rss_mib(pid)
    task = asyncio.create_task(coro)
    t0 = time.perf_counter()
    while not task.done():
        peak = max(peak, rss_mib(pid))
        await asyncio.sleep(0.25)
    wall = time.perf_counter() - t0
    await asyncio.sleep(2.0)  # the server finishes what it still holds
    return task.result(), wall, (before, max(peak, rss_mib(pid, "VmHWM")), rss_mib(pid))


async def main_async(args) -> None:
    files = sorted(Path(args.images).glob("*.jpg"))
    if not files:
        sys.exit(f"no .jpg images in {args.images}")
    payloads = [f.read_bytes() for f in files[:200]]
    server_args = ["--detector", args.detector, "--pose", args.pose, "--log-level", "error", *args.server_args]
    with ServerProcess(server_args) as srv:
        srv.wait_ready()
        deadline = args.deadline if args.deadline is not None else Settings().request_timeout_s
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as c:
            for data in payloads[:4]:  # warm-up
                await one(c, data, [])
        capacity = args.capacity
        if capacity is None:
            out, wall, _ = await measured(srv, closed_loop(srv.url, payloads, 4, min(args.seconds, 20)))
            capacity = sum(1 for c, _ in out if c == 200) / wall
        print(
            f"# capacity {capacity:.2f} req/s (images of {args.images}); deadline {deadline:g} s; {args.seconds:g} s per run"
        )
        print("| run | requests | answers | 200/s | 200 latency p50 / p95 / p99 / max (s) | 503 p99 (ms) | "
              "over deadline | RSS before / peak / after (MiB) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for n in args.clients:
            out, wall, rss = await measured(srv, closed_loop(srv.url, payloads, n, args.seconds))
            report(f"closed loop, {n} clients", out, wall, deadline, rss)
        for n in args.backoff_clients:
            out, wall, rss = await measured(srv, closed_loop(srv.url, payloads, n, args.seconds, backoff=True))
            report(f"closed loop, {n} clients honouring Retry-After", out, wall, deadline, rss)
        for m in args.rates:
            out, wall, rss = await measured(srv, open_loop(srv.url, payloads, m * capacity, args.seconds))
            report(f"open loop, {m:g}x capacity ({m * capacity:.1f}/s)", out, wall, deadline, rss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", required=True)
    ap.add_argument("--pose", required=True)
    ap.add_argument("--images", default="../shared/assets/coco-mini/val2017", help="folder of .jpg images")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, nargs="*", default=[1, 16, 64])
    ap.add_argument("--backoff-clients", type=int, nargs="*", default=[64],
                    help="closed-loop runs whose clients wait Retry-After after a 503")  # fmt: skip
    ap.add_argument("--rates", type=float, nargs="*", default=[1.0, 2.0, 4.0], help="open-loop rates, x capacity")
    ap.add_argument("--capacity", type=float, default=None, help="requests/s (default: measured)")
    ap.add_argument("--deadline", type=float, default=None,
                    help="the server's POSE_REQUEST_TIMEOUT_S, for counting (default: the setting's default)")  # fmt: skip
    ap.add_argument("server_args", nargs="*", help="extra pose-serve options (after --)")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
