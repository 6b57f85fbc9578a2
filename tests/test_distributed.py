"""Multi-process runs through accelerate: the same numbers and files as one process, and nothing lost
when a process dies (tada_core.runtime.distributed, io.ResumableFolder's parts)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tada_core.runtime.distributed import Processes
from tada_core.errors import TadaError
from tada_core.runtime.io import ResumableFolder
from tada_core.methods.localize import localize, read_localization
from tada_core.adapters.settings import GenerationSettings

from .conftest import Energy
from .test_localize import CONCEPT, PAIRS, Interrupting, same

JOBS = Path(__file__).parent / "distributed_jobs.py"


class Alone:
    """A stand-in for accelerate's state in one process: its barrier returns at once."""

    def wait_for_everyone(self):
        pass


def test_share_deals_units_round_robin():
    units = list(range(7))
    parts = [Processes(index=i, count=3, state=Alone()).share(units) for i in range(3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
    assert Processes().share(units) == units and Processes().gather("x") == ["x"]


def test_parts_are_read_merged_in_order_and_removed(tmp_path):
    spec = {"what": 1}
    for i in (1, 0):
        folder = ResumableFolder(tmp_path, spec, journal_file="j.jsonl", processes=Processes(i, 2, state=Alone()))
        with folder.journal() as log:
            for k in (i, i + 2):
                log.append({"k": k})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.part000.jsonl", "j.part001.jsonl", "spec.json"]
    alone = ResumableFolder(tmp_path, spec, journal_file="j.jsonl")
    assert sorted(r["k"] for r in alone.records()) == [0, 1, 2, 3]
    alone.merge(lambda rec: rec["k"])
    assert [json.loads(x)["k"] for x in (tmp_path / "j.jsonl").read_text().splitlines()] == [0, 1, 2, 3]
    assert not list(tmp_path.glob("j.part*"))
    with pytest.raises(TadaError, match="different job"):
        ResumableFolder(tmp_path, {"what": 2}, journal_file="j.jsonl", processes=Processes(1, 2, state=Alone()))


def test_a_line_cut_short_does_not_swallow_the_next_record(tmp_path):
    folder = ResumableFolder(tmp_path, {}, journal_file="j.jsonl")
    (tmp_path / "j.jsonl").write_text('{"k": 0}\n{"k": 1, "si')   # a crash in the middle of a line
    with folder.journal() as log:
        log.append({"k": 2})
    assert [r["k"] for r in folder.records()] == [0, 2]


def test_a_killed_process_loses_only_its_batch_in_flight(models, tmp_path):
    """Process 2 of 2 dies after its first batch; a rerun on one process does only the missing batches
    and leaves the folder as an uninterrupted single-process run does."""
    model = models("tada-organism")
    kw = dict(seeds=[0, 1], layers=[1, 4], settings=GenerationSettings(batch_size=4), progress=False)
    full = localize(model, CONCEPT, PAIRS, Energy(), out=tmp_path / "full", **kw)
    with pytest.raises(KeyboardInterrupt):
        localize(model, CONCEPT, PAIRS, Interrupting(after=2), out=tmp_path / "cut",
                 processes=Processes(index=1, count=2, state=Alone()), **kw)
    assert len((tmp_path / "cut" / "scores.part001.jsonl").read_text().splitlines()) == 2
    resumed = Interrupting(after=10 ** 6)
    again = localize(model, CONCEPT, PAIRS, resumed, out=tmp_path / "cut", **kw)
    assert resumed.calls == 4 * 2 - 2            # 4 conditions x 2 batches, 2 were done by the dead process
    assert same(again, full) and same(read_localization(tmp_path / "cut"), full)
    assert not list((tmp_path / "cut").glob("*.part*"))
    for name in ("scores.jsonl", "scores.csv", "impact.json", "sweep.json"):
        assert (tmp_path / "cut" / name).read_text() == (tmp_path / "full" / name).read_text(), name


def test_a_multi_process_run_needs_a_folder(models):
    with pytest.raises(TadaError, match="needs an output folder"):
        localize(models("tiny-ace-step"), CONCEPT, PAIRS, Energy(), layers=[0], progress=False,
                 processes=Processes(index=0, count=2, state=Alone()))


def _files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".txt"}


def _timeless(data):
    """A record without its wall-clock fields (how long a call took differs between any two runs)."""
    if isinstance(data, dict):
        return {k: _timeless(v) for k, v in data.items() if k not in ("seconds", "compute_s")}
    if isinstance(data, list):
        return [_timeless(v) for v in data]
    return data


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _close(x, y) -> bool:
    """Equal data, numbers to float rounding."""
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(_close(x[k], y[k]) for k in x)
    if isinstance(x, list):
        return isinstance(y, list) and len(x) == len(y) and all(_close(u, v) for u, v in zip(x, y))
    if isinstance(x, float):
        return y == pytest.approx(x, rel=1e-5, abs=1e-7)
    return x == y


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not on PATH")
def test_two_processes_equal_one(tmp_path):
    """`accelerate launch` with two CPU processes (gloo) runs localize, caa, sae cache, sae train and
    benchmark on the organism and a tiny fixture: the files equal a single-process run's (one CPU thread
    per process in both, as accelerate gives each CPU process), SAE weights to float rounding."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    single, multi = tmp_path / "single", tmp_path / "multi"
    single.mkdir(), multi.mkdir()
    runs = [([sys.executable, str(JOBS)], single),
            (["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--main_process_port", str(_free_port()), "--mixed_precision", "no", "--dynamo_backend", "no",
              str(JOBS)], multi)]
    for argv, cwd in runs:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    a, b = _files(single), _files(multi)
    assert set(a) == set(b) and any(".part" in name for name in a) is False
    assert {"loc/tempo/scores.jsonl", "caa/steering.safetensors", "cache/shard_00002.safetensors",
            "bench/mood/clips.jsonl", "tiny-cache/shards.jsonl", "sae/config.json"} <= set(a)
    for name in a:
        if name.startswith("sae/") and name.endswith(".safetensors"):
            from safetensors.torch import load_file

            x, y = load_file(a[name]), load_file(b[name])
            assert all(torch.allclose(x[k], y[k], atol=1e-5) for k in x), name   # data-parallel training
        elif name.startswith("bench/") and name.endswith((".json", ".jsonl")):
            load = (lambda p: [json.loads(x) for x in p.read_text().splitlines()]) if name.endswith(".jsonl") \
                else (lambda p: json.loads(p.read_text()))
            assert _timeless(load(a[name])) == _timeless(load(b[name])), name
        elif name.startswith("sae/") and name.endswith(".json"):
            assert _close(json.loads(a[name].read_text()), json.loads(b[name].read_text())), name
        elif name.startswith("bench/") or name.startswith("sae/"):
            continue     # tables and cards print the numbers checked above, and compute time
        else:
            assert a[name].read_bytes() == b[name].read_bytes(), name
