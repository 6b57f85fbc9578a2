"""Memory of the app under a stream of visitors: resident memory of ``python app.py`` while it serves N requests.

    python benchmarks/app_soak.py [--requests 600] [--every 100] [--sessions 10] [--duration 1] [--steps 4]

Starts ``python app.py`` (offline, on 127.0.0.1) as a child process, sends steer requests through
gradio_client (a new client, that is a new visitor session, every ``--sessions`` requests; prompts,
seeds and alphas vary, as visitors' do), and prints the child's resident set size (VmRSS) after the
warm-up and every ``--every`` requests, then the growth per request over the last third. A server
that keeps something per request grows linearly; a bounded one levels off (a plateau).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from app_latency import launch_app
from common import machine, run_benchmark

ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def main() -> None:
    from gradio_client import Client

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=600)
    p.add_argument("--every", type=int, default=100, help="print RSS every this many requests")
    p.add_argument("--sessions", type=int, default=10, help="requests per visitor session (a new client)")
    p.add_argument("--duration", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=4)
    args = p.parse_args()
    print(machine())
    proc, startup, url = launch_app()
    words = ["waltz", "march", "pop song", "ballad", "techno track", "folk tune", "jazz piece", "rock song"]
    vectors = ["tada-organism-tempo-caa", "tada-organism-brightness-caa", "tada-organism-drums-caa"]
    layers = {"tada-organism-tempo-caa": [3], "tada-organism-brightness-caa": [5], "tada-organism-drums-caa": [5]}
    points = []
    try:
        client = None
        t0 = time.perf_counter()
        for i in range(args.requests + 1):
            if i % args.sessions == 0:
                client = Client(url, verbose=False)
            vec = vectors[i % len(vectors)]
            client.predict("tada-organism", f"a {words[i % len(words)]} number {i}", i, args.duration, args.steps,
                           vec, "", layers[vec], round(0.5 + (i % 7) * 0.2, 2), None, "", api_name="/steer")
            if i == 0 or i % args.every == 0:
                points.append((i, rss_mb(proc.pid)))
                print(f"after {i:4d} requests: RSS {points[-1][1]:7.1f} MB  ({time.perf_counter() - t0:.0f} s)",
                      flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    tail = [pt for pt in points if pt[0] >= args.requests - max(args.requests // 3, args.every)]
    if len(tail) >= 2:
        growth = (tail[-1][1] - tail[0][1]) / max(tail[-1][0] - tail[0][0], 1)
        print(f"\nstart-up {startup:.1f} s; RSS {points[0][1]:.0f} MB after the first request, "
              f"{points[-1][1]:.0f} MB after {points[-1][0]}; over the last {tail[-1][0] - tail[0][0]} requests: "
              f"{growth * 1024:.1f} KB per request")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "benchmarks"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    run_benchmark(main)
