"""``reports.measure.competitors.competitors``: the busy processes of ``tfparity bench --load`` run
during the block and are gone after it, however it ends. No timing is asserted (waits only have
bounds)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reports.measure.competitors import competitors


@pytest.mark.parametrize("count", [0, 1, 2])
def test_competitors_run_during_the_block_and_are_gone_after(process_alive, count):
    with competitors(count) as processes:
        pids = [process.pid for process in processes]
        assert len(pids) == count
        assert all(process.poll() is None and process_alive(process.pid) for process in processes)
    assert all(process.returncode is not None for process in processes)
    assert not any(process_alive(pid) for pid in pids)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_competitors_stopped_when_the_block_raises(process_alive, error):
    with pytest.raises(error):
        with competitors(2) as processes:
            raise error("stop")
    assert len(processes) == 2
    assert not any(process_alive(process.pid) for process in processes)


def test_competitors_exit_by_themselves_after_max_seconds():
    with competitors(1, max_seconds=0.2) as (process,):
        assert process.wait(timeout=60) == 0


def test_competitors_exit_when_their_parent_dies(process_alive):
    # The parent starts one competitor, prints its pid and exits without cleaning up.
    code = ("import os\nfrom reports.measure.competitors import competitors\n"
            "with competitors(1) as (p,):\n    print(p.pid, flush=True)\n    os._exit(0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True, cwd=Path(__file__).resolve().parents[1])
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 60  # a bound on the wait, not a timing assertion
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not process_alive(pid)


@pytest.mark.parametrize("count, max_seconds", [(-1, 1.0), (1.5, 1.0), (True, 1.0), (1, 0.0)])
def test_competitors_reject_bad_arguments(count, max_seconds):
    with pytest.raises(ValueError, match="competitors: expected"):
        with competitors(count, max_seconds):
            pass


def test_competitors_are_children_in_their_own_session():
    with competitors(1) as (process,):
        assert os.getsid(process.pid) == process.pid != os.getsid(0)
