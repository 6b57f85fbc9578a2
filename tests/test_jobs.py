"""The resumable job runner (tada_core.runtime.jobs) on trivial units: resume, refusal of another spec,
cut lines, stops and interrupts, multi-process shares and their merge; and BenchmarkResult's round trip."""

import json
import logging
import math
import threading
from pathlib import Path

import pytest

from tada_core.errors import TadaError
from tada_core.runtime.distributed import Processes
from tada_core.runtime.jobs import Job, Stage, run

RESULTS = Path(__file__).parent.parent / "results" / "organism_benchmark"


class Squares:
    """A job's units 0..n-1; each record is the unit's square. Counts the units it did, and raises
    KeyboardInterrupt on the unit ``interrupt_at``."""

    def __init__(self, n=6, interrupt_at=None):
        self.n, self.interrupt_at, self.did = n, interrupt_at, []

    def do(self, unit):
        if unit == self.interrupt_at:
            raise KeyboardInterrupt
        self.did.append(unit)
        return {"unit": unit, "square": unit * unit}

    def job(self, spec=None, **kw):
        return Job(name="squares", spec=spec or {"n": self.n}, stages=[Stage(range(self.n), self.do)],
                   reduce=lambda done: [rec["square"] for rec in done.values()], **kw)


def lines(folder):
    return [json.loads(x) for x in (folder / "journal.jsonl").read_text().splitlines()]


def test_a_rerun_does_only_the_missing_units_and_gives_the_uninterrupted_result(tmp_path):
    whole = Squares()
    assert run(whole.job(), tmp_path / "whole", progress=False) == [0, 1, 4, 9, 16, 25]
    cut = Squares(interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        run(cut.job(), tmp_path / "cut", progress=False)
    assert [r["unit"] for r in lines(tmp_path / "cut")] == [0, 1, 2]       # every finished unit is kept
    again = Squares()
    assert run(again.job(), tmp_path / "cut", progress=False) == [0, 1, 4, 9, 16, 25]
    assert again.did == [3, 4, 5]
    assert (tmp_path / "cut" / "journal.jsonl").read_bytes() == (tmp_path / "whole" / "journal.jsonl").read_bytes()
    done = Squares()
    assert run(done.job(), tmp_path / "cut", progress=False) == [0, 1, 4, 9, 16, 25] and done.did == []


def test_a_resume_is_logged_with_its_count(tmp_path, caplog):
    with pytest.raises(KeyboardInterrupt):
        run(Squares(interrupt_at=2).job(), tmp_path, progress=False)
    with caplog.at_level(logging.INFO, logger="tada_core.runtime.jobs"):
        run(Squares().job(), tmp_path, progress=False)
    assert f"resuming {tmp_path}: 2 of 6 units finished" in caplog.text


def test_a_changed_spec_is_refused_naming_the_key(tmp_path):
    run(Squares().job(spec={"n": 6, "power": 2}), tmp_path, progress=False)
    other = Squares()
    with pytest.raises(TadaError, match=r"different job \(differs in: power\)"):
        run(other.job(spec={"n": 6, "power": 3}), tmp_path, progress=False)
    assert other.did == []


def test_a_cut_last_line_and_a_malformed_record_are_redone(tmp_path, caplog):
    run(Squares().job(), tmp_path, progress=False)
    journal = tmp_path / "journal.jsonl"
    kept = journal.read_text().splitlines()
    # unit 1's record names no unit (dropped), unit 5's line was cut short by a crash
    journal.write_text("\n".join([kept[0], '{"square": 1}', *kept[2:5], kept[5][:9]]))
    again = Squares()
    with caplog.at_level(logging.INFO, logger="tada_core.runtime.jobs"):
        assert run(again.job(), tmp_path, progress=False) == [0, 1, 4, 9, 16, 25]
    assert again.did == [1, 5]
    assert "squares: 1 malformed records" in caplog.text and "4 of 6 units finished" in caplog.text


def test_an_exception_from_on_unit_stops_the_job_and_keeps_its_units(tmp_path):
    class Stop(Exception):
        pass

    seen = []

    def stop(done, total):
        seen.append((done, total))
        if done == 4:
            raise Stop

    first = Squares()
    with pytest.raises(Stop):
        run(first.job(), tmp_path / "a", progress=False, on_unit=stop)
    assert seen == [(0, 6), (1, 6), (2, 6), (3, 6), (4, 6)] and first.did == [0, 1, 2, 3]
    assert [r["unit"] for r in lines(tmp_path / "a")] == [0, 1, 2, 3]
    seen.clear()
    rest = Squares()
    assert run(rest.job(), tmp_path / "a", progress=False, on_unit=lambda d, t: seen.append((d, t))) \
        == run(Squares().job(), tmp_path / "b", progress=False)
    assert rest.did == [4, 5] and seen == [(4, 6), (5, 6), (6, 6)]
    assert (tmp_path / "a" / "journal.jsonl").read_bytes() == (tmp_path / "b" / "journal.jsonl").read_bytes()


def test_stages_meet_and_their_before_hook_sees_the_earlier_records(tmp_path):
    seen = []

    def before(done):
        seen.append(sorted(done))

    job = Job(name="two stages", spec={}, stages=[Stage(["a", "b"], lambda u: {"unit": u}),
                                                  Stage(["c"], lambda u: {"unit": u}, before=before)])
    assert list(run(job, tmp_path, progress=False)) == ["a", "b", "c"]
    assert list(run(job, tmp_path, progress=False)) == ["a", "b", "c"]     # the hook runs on a resume too
    assert seen == [["a", "b"], ["a", "b", "c"]]


def test_a_record_that_does_not_name_its_unit_is_refused(tmp_path):
    job = Job(name="bad", spec={}, stages=[Stage([0], lambda u: {"unit": u + 1})])
    with pytest.raises(ValueError, match="read back as unit 1"):
        run(job, tmp_path, progress=False)


def test_without_a_folder_nothing_is_kept_and_several_processes_need_one():
    squares = Squares()
    assert run(squares.job(), progress=False) == [0, 1, 4, 9, 16, 25]
    with pytest.raises(TadaError, match="squares: a multi-process run needs an output folder"):
        run(squares.job(), processes=Processes(0, 2), progress=False)


class Alone:
    """accelerate's state for one process: its barrier returns at once."""

    def wait_for_everyone(self):
        pass


class Threads:
    """accelerate's state for processes simulated as threads: a real barrier."""

    def __init__(self, count):
        self.barrier = threading.Barrier(count, timeout=20)

    def wait_for_everyone(self):
        self.barrier.wait()


def test_two_processes_share_the_units_and_merge_in_order(tmp_path):
    """Two processes (threads with a barrier) each do every other unit of each stage, journal to their parts,
    and the main one merges the parts into the journal a single process writes."""
    whole = Squares(n=7)
    alone = run(whole.job(), tmp_path / "alone", progress=False)
    state, workers, out, errors = Threads(2), [Squares(n=7), Squares(n=7)], {}, []

    def process(i):
        try:
            out[i] = run(workers[i].job(), tmp_path / "two", processes=Processes(i, 2, state=state), progress=False)
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)
            state.barrier.abort()

    threads = [threading.Thread(target=process, args=(i,)) for i in (1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert workers[0].did == [0, 2, 4, 6] and workers[1].did == [1, 3, 5]
    assert out[0] == out[1] == alone
    assert (tmp_path / "two" / "journal.jsonl").read_bytes() == (tmp_path / "alone" / "journal.jsonl").read_bytes()
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["journal.jsonl", "spec.json"]


def test_a_dead_process_loses_nothing_it_finished(tmp_path):
    """Process 2 of 2 finishes its share and finds the other's missing; a rerun on one process does exactly the
    missing units and merges the part into the journal in the job's order."""
    second = Squares()
    with pytest.raises(TadaError, match="squares: 3 units are missing from .* after every process finished"):
        run(second.job(), tmp_path / "cut", processes=Processes(1, 2, state=Alone()), progress=False)
    assert second.did == [1, 3, 5]
    assert [json.loads(x)["unit"] for x in (tmp_path / "cut" / "journal.part001.jsonl").read_text().splitlines()] \
        == [1, 3, 5]
    rest = Squares()
    assert run(rest.job(), tmp_path / "cut", progress=False) == run(Squares().job(), tmp_path / "whole", progress=False)
    assert rest.did == [0, 2, 4] and not list((tmp_path / "cut").glob("*.part*"))
    assert (tmp_path / "cut" / "journal.jsonl").read_bytes() == (tmp_path / "whole" / "journal.jsonl").read_bytes()


# ----- BenchmarkResult round trip ---------------------------------------------------------
@pytest.mark.parametrize("concept", sorted(p.parent.name for p in RESULTS.glob("*/result.json")))
def test_a_committed_benchmark_result_round_trips(concept):
    from tada_core.evaluation.benchmark.runner import BenchmarkResult

    text = (RESULTS / concept / "result.json").read_text()
    result = BenchmarkResult.from_dict(json.loads(text))
    assert json.dumps(result.to_dict(), indent=2) + "\n" == text      # the very file
    assert BenchmarkResult.from_dict(result.to_dict()) == result
    assert isinstance(result.methods[0].auc["avg"], float) and result.methods[0].key == "pci"
    missing = [m for m in result.methods if not m.available]
    assert all(math.isnan(m.nauc) for m in missing)                     # null numbers are NaN again


def test_a_benchmark_result_with_unknown_keys_is_refused():
    from tada_core.evaluation.benchmark.runner import BenchmarkResult

    data = json.loads((RESULTS / "mood" / "result.json").read_text())
    with pytest.raises(TadaError, match=r"unknown keys \['colour'\]"):
        BenchmarkResult.from_dict({**data, "colour": 1})
    data["methods"][1]["auc_mean"] = 0.5
    with pytest.raises(TadaError, match=r"not a method result: unknown keys \['auc_mean'\]"):
        BenchmarkResult.from_dict(data)
    del data["methods"][1]["auc_mean"], data["gap"]
    with pytest.raises(TadaError, match=r"missing keys \['gap'\]"):
        BenchmarkResult.from_dict(data)
