"""Logging: every library module logs to its own ``logging.getLogger(__name__)`` (as diffusers and
transformers do) and never prints; the ``tada`` command decides what a user sees (``-v`` / ``-q``).

Levels: WARNING for what may be wrong (a resumed folder with dropped lines, a fallback taken), INFO for
what a long command is doing (loading, resuming N finished units, where results were written), DEBUG
for detail (hook counts, shapes, timings).
"""

from __future__ import annotations

import logging
import sys

ROOT = "tada_core"


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is at the time of the record (a test's capture, a
    redirected stream), not to the stream that existed when logging was configured."""

    _tada = True

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure(verbosity: int = 0) -> None:
    """Route ``tada_core``'s records to stderr: ``verbosity`` -1 (``-q``): warnings only; 0: progress notes
    (INFO); 1+ (``-v``): DEBUG, and diffusers' / transformers' own INFO messages too. Idempotent."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logger = logging.getLogger(ROOT)
    logger.setLevel(level)
    if not any(getattr(h, "_tada", False) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    for name in ("diffusers", "transformers"):
        logging.getLogger(name).setLevel(logging.INFO if verbosity > 0 else logging.WARNING)


__all__ = ["configure", "ROOT"]
