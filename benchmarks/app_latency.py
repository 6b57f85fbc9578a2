"""Start-up time of ``python app.py`` and round-trip time of its requests on the shipped organism.

    python benchmarks/app_latency.py [--repeats 5] [--duration 4] [--steps 20]

Starts ``python app.py`` (offline, on 127.0.0.1) as a child process and times it until
the page answers; then times gradio_client calls (the whole round trip: queue,
generation, spectrograms, WAV encoding, download). Prints the median of each and the
ratio steer / generate: a steer request makes original and steered clips in one batched
call of two, so it should cost well under two generate requests.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import machine, median_time, run_benchmark

ROOT = Path(__file__).resolve().parents[1]


def start_app(port: int) -> tuple[subprocess.Popen, float]:
    """``python app.py`` as a child process; returns it and the seconds until the page answered."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"python app.py exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                if r.status == 200:
                    return proc, time.perf_counter() - t0
        except OSError:
            time.sleep(0.1)


def launch_app() -> tuple[subprocess.Popen, float, str]:
    """``python app.py`` on a free port of 127.0.0.1: the process, its start-up seconds and its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc, startup = start_app(port)
    return proc, startup, f"http://127.0.0.1:{port}/"


def main() -> None:
    from gradio_client import Client

    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    print(machine())
    proc, startup, url = launch_app()
    print(f"python app.py: page answers after {startup:.1f} s (imports, model load, server start)")
    try:
        client = Client(url, verbose=False)
        settings = (0, args.duration, args.steps)
        calls = {
            "generate": lambda: client.predict("tada-organism", "a waltz with piano", *settings, api_name="/generate"),
            "steer": lambda: client.predict("tada-organism", "a waltz with piano", *settings, "tada-organism-tempo-caa",
                                            "", [6], 1.0, None, api_name="/steer"),
            "patch": lambda: client.predict("tada-organism", "a slow waltz", "a fast march with drums", [6],
                                            *settings, api_name="/patch"),
        }
        for fn in calls.values():  # warm-up: model load, first-call allocations
            fn()
        times = {name: median_time(fn, args.repeats) for name, fn in calls.items()}
    finally:
        proc.terminate()
        proc.wait()
    print(f"{args.duration:g} s clips, {args.steps} steps, median of {args.repeats} round trips:")
    for name, t in times.items():
        print(f"  {name:9s} {t:.2f} s")
    print(f"steer (original + steered) / generate (one clip) = {times['steer'] / times['generate']:.2f}")


if __name__ == "__main__":
    run_benchmark(main)
