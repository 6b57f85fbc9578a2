"""Long jobs (the localization sweep) in a worker thread, with progress and a stop that keeps finished work."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator


class Stopped(Exception):
    """Raised inside the job at its next progress report after a stop was requested."""


def background(work: Callable[[Callable[[int, int], None]], Any], name: str,
               poll: float = 0.25) -> Iterator[tuple[int, int, Any]]:
    """Run ``work(report)`` in a thread; yield ``(done, total, None)`` every ``poll`` seconds and finally
    ``(done, total, result)``. Closing the generator (a cancelled request) stops the job at its next
    ``report(done, total)`` call, which raises :class:`Stopped` there; an error in the job is raised here.
    A stopped job yields no result."""
    stop = threading.Event()
    state: dict[str, Any] = {"done": 0, "total": 0, "result": None, "error": None}

    def report(done: int, total: int) -> None:
        state.update(done=done, total=total)
        if stop.is_set():
            raise Stopped

    def run() -> None:
        try:
            state["result"] = work(report)
        except Stopped:
            pass
        except BaseException as e:  # re-raised in the request's thread
            state["error"] = e

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(poll)
            yield state["done"], state["total"], None
        if state["error"] is not None:
            raise state["error"]
        yield state["done"], state["total"], state["result"]
    finally:
        stop.set()
