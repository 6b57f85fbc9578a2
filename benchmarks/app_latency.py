"""Round-trip time of the app's requests on the shipped organism, through the launched server.

    python benchmarks/app_latency.py [--repeats 5] [--duration 4] [--steps 20]

Launches ``app.py`` on 127.0.0.1 and times gradio_client calls (the whole round trip:
queue, generation, spectrograms, WAV encoding, download). Prints the median of each and
the ratio steer / generate: a steer request makes original and steered clips in one
batched call of two, so it should cost well under two generate requests.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from common import machine, median_time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import app as app_module
    from gradio_client import Client

    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    print(machine())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = app_module.build_app("tada-organism")
    app_module.launch(app, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        settings = (0, args.duration, args.steps)
        calls = {
            "generate": lambda: client.predict("tada-organism", "a waltz with piano", *settings, api_name="/generate"),
            "steer": lambda: client.predict("tada-organism", "a waltz with piano", *settings, "tada-organism-tempo-caa",
                                            "", [6], 1.0, api_name="/steer"),
            "patch": lambda: client.predict("tada-organism", "a slow waltz", "a fast march with drums", [6],
                                            *settings, api_name="/patch"),
        }
        for fn in calls.values():  # warm-up: model load, first-call allocations
            fn()
        times = {name: median_time(fn, args.repeats) for name, fn in calls.items()}
    finally:
        app.close()
    print(f"{args.duration:g} s clips, {args.steps} steps, median of {args.repeats} round trips:")
    for name, t in times.items():
        print(f"  {name:9s} {t:.2f} s")
    print(f"steer (original + steered) / generate (one clip) = {times['steer'] / times['generate']:.2f}")


if __name__ == "__main__":
    main()
