"""Multi-process runs through Hugging Face accelerate: a sweep's units of work split across processes.

Long commands (``tada localize``, ``tada sae cache``, ``tada caa``, ``tada benchmark``) run under
accelerate's own launcher, one process per GPU (or several CPU processes)::

    accelerate launch --multi_gpu --num_processes 4 -m tada_core.cli localize --concept tempo --out runs/loc

accelerate (through torchrun) starts the processes and owns the process group: NCCL on GPUs,
gloo on CPU. This module only says which units of a job are whose (:func:`tada_core.runtime.jobs.run`
uses it for every resumable job): :meth:`Processes.share` deals the units still to do round-robin, each process appends its finished units to its own
journal in the job's :class:`~tada_core.runtime.io.ResumableFolder` (``<journal>.part<rank>.jsonl``),
and after a barrier the main process merges the parts into the journal, in the job's own
order, and writes the results. The units and their batches are the single-process run's, so
the numbers and the files are the same; a killed process loses only the unit in flight, and a
rerun with any number of processes (one included) does exactly the missing units.

Nothing here is global: :func:`launched` reads the launcher's environment once, in the command
that needs it, and the :class:`Processes` it returns is passed to the job.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence, TypeVar
import torch

from tada_core.errors import TadaError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Processes:
    """This process's place among the processes of a run: ``index`` of ``count`` (one by default)."""

    index: int = 0
    count: int = 1
    local_index: int = 0              # the index among this machine's processes (picks its GPU)
    state: Any = dataclasses.field(default=None, compare=False, repr=False)   # accelerate's PartialState

    @property
    def main(self) -> bool:
        return self.index == 0

    @property
    def distributed(self) -> bool:
        return self.count > 1

    def share(self, units: Sequence[T]) -> list[T]:
        """This process's units: every ``count``-th, starting at ``index`` (all of them when alone)."""
        return list(units[self.index::self.count])

    def wait(self) -> None:
        """A barrier: returns when every process has reached it (at once when alone)."""
        if self.distributed:
            self.state.wait_for_everyone()

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in process order (``[obj]`` when alone)."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.count
        dist.all_gather_object(out, obj)
        return out

    def device(self, device: str | None) -> str | None:
        """The device this process runs on: each process of a multi-GPU run takes the GPU of its local index."""
        if not self.distributed:
            return device

        if (device or "").startswith("cpu") or (device is None and not torch.cuda.is_available()):
            return "cpu"
        if device not in (None, "cuda"):
            raise TadaError(f"--device {device}: a multi-process run places process k on cuda:k of its machine; "
                            f"give --device cuda (or none) and choose GPUs with CUDA_VISIBLE_DEVICES")
        return f"cuda:{self.local_index}"

    def label(self) -> str:
        return f" [process {self.index + 1}/{self.count}]" if self.distributed else ""


def launched(device: str | None = None) -> Processes:
    """The processes this program was started with: one, or those of ``accelerate launch`` / torchrun.

    ``device``: the run's ``--device``; "cpu" (or a machine without CUDA) makes the process group
    gloo's, so that a multi-process run works on CPUs too (this is how CI tests it).
    """
    try:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    except ValueError:
        world = 1
    if world <= 1:
        return Processes()
    from accelerate import PartialState

    cpu = (device or "").startswith("cpu") or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    return Processes(index=state.process_index, count=state.num_processes, local_index=state.local_process_index,
                     state=state)


def require_folder(processes: Processes, out: Any, what: str) -> None:
    """Multi-process runs exchange their finished units through the output folder: refuse a run without one."""
    if processes.distributed and out is None:
        raise TadaError(f"{what}: a multi-process run needs an output folder (out=...): its processes share "
                        f"finished work through it")


__all__ = ["Processes", "launched", "require_folder"]
