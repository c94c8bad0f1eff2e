"""Latency and throughput of the served pipeline over HTTP (real uvicorn process on 127.0.0.1).

    python bench/bench_service.py --detector DET.onnx --pose CARD.json [--images ../shared/assets/coco-mini/val2017]
        [--requests 40] [--concurrency 1 4]

Prints per-stage median timings reported by the server, client-side latency percentiles and
requests/s for each concurrency level. Figures, not assertions: this is never part of the test pass.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from service.launcher import ServerProcess  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", required=True)
    ap.add_argument("--pose", required=True)
    ap.add_argument("--images", default="../shared/assets/coco-mini/val2017", help="folder of .jpg images")
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    args = ap.parse_args()
    files = sorted(Path(args.images).glob("*.jpg"))[: args.requests]
    if not files:
        sys.exit(f"no .jpg images in {args.images}")
    payloads = [f.read_bytes() for f in files]
    with ServerProcess(["--detector", args.detector, "--pose", args.pose]) as srv:
        srv.wait_ready()
        for conc in args.concurrency:
            stages: dict[str, list[float]] = {}
            lat: list[float] = []
            people = 0

            def call(data: bytes, client: httpx.Client):
                t = time.perf_counter()
                r = client.post("/pose", content=data, headers={"Content-Type": "image/jpeg"})
                r.raise_for_status()
                return (time.perf_counter() - t) * 1000, r.json()

            with httpx.Client(base_url=srv.url, timeout=120) as client:
                call(payloads[0], client)  # warm
                t0 = time.perf_counter()
                with ThreadPoolExecutor(conc) as pool:
                    for ms, body in pool.map(lambda d: call(d, client), payloads):
                        lat.append(ms)
                        people += len(body["persons"])
                        for k, v in body["timings_ms"].items():
                            if body["persons"] or k not in ("crop", "pose"):  # pose stages of images with people
                                stages.setdefault(k, []).append(v)
                wall = time.perf_counter() - t0
            q = statistics.quantiles(lat, n=20)
            print(
                f"concurrency {conc}: {len(lat)} requests, {people} people, {len(lat) / wall:.2f} req/s, "
                f"{people / wall:.1f} people/s, latency p50 {statistics.median(lat):.1f} ms p95 {q[18]:.1f} ms"
            )
            print(
                "  server stage medians (ms): "
                + ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in stages.items())
            )


if __name__ == "__main__":
    main()
