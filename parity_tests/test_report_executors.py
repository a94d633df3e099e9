"""``tfparity report --executor processes`` and ``--executor ray`` (a local instance the command
starts and stops) give the serial executor's runs bit for bit under equal thread settings, and a
worker killed mid-sweep, or a node of a Ray cluster lost mid-sweep, costs only re-running the
runs it had in flight.

The serial reference runs in a subprocess whose environment holds the workers' thread variables
(``reports.experiment.sweep.worker.environment(1)``): one BLAS and one TensorFlow thread, as each
worker has. Quick protocol on the offline synthetic data; linear and the cnn (convolutions are where
thread counts would change the summation order).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reports.cli import main
from reports.experiment.sweep import worker

pytestmark = pytest.mark.slow

MODELS = ["linear", "cnn"]
RUNS = len(MODELS) * 3 * 2
COMMON = ["report", "--quick", "--data", "templates", "--seeds", "1", "--no-timing",
          "--no-decisions", "--no-progress"]
ARGS = [*COMMON, "--models", *MODELS]
TIME_KEYS = {"train_time", "eval_time"}


def saved_runs(out: Path) -> dict[str, dict]:
    """Run file name -> its result."""
    return {path.name: json.loads(path.read_text()) for path in (out / "runs").glob("*.json")}


def histories(runs: dict[str, dict]) -> dict[str, list[dict]]:
    """Each run's history without its timings: every loss and accuracy, bit for bit."""
    return {name: [{k: v for k, v in record.items() if k not in TIME_KEYS}
                   for record in result["history"]] for name, result in runs.items()}


def assert_same_histories(actual: dict[str, dict], expected: dict[str, dict]) -> None:
    assert sorted(actual) == sorted(expected)
    got, want = histories(actual), histories(expected)
    differing = [name for name in want if got[name] != want[name]]
    assert differing == [], f"histories differ from the serial executor's in {differing}"


@pytest.fixture(scope="module")
def serial_runs(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("serial")
    subprocess.run([sys.executable, "-m", "reports.cli", *ARGS, "--out", str(out)],
                   env={**os.environ, **worker.environment(1)}, check=True, timeout=600,
                   stdout=subprocess.DEVNULL)
    runs = saved_runs(out)
    assert len(runs) == RUNS
    return runs


def kill_a_worker_once_a_run_is_saved(runs_dir: Path, stop: threading.Event, killed: list) -> None:
    """SIGKILL one worker process of this process once the first run file exists (the others
    are then in flight)."""
    while not stop.is_set():
        workers = multiprocessing.active_children()
        if workers and any(runs_dir.glob("*.json")):
            os.kill(workers[0].pid, signal.SIGKILL)
            killed.append(workers[0].pid)
            return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def processes_run(tmp_path_factory):
    """``--executor processes --jobs 2``, one of whose workers is killed mid-sweep."""
    out = tmp_path_factory.mktemp("processes")
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=kill_a_worker_once_a_run_is_saved,
                              args=(out / "runs", stop, killed), daemon=True)
    killer.start()
    try:
        code = main([*ARGS, "--executor", "processes", "--jobs", "2", "--worker-threads", "1",
                     "--out", str(out)])
    finally:
        stop.set()
        killer.join()
    return code, out, killed


def test_processes_executor_gives_the_serial_runs(processes_run, serial_runs):
    code, out, _ = processes_run
    assert code == 0
    runs = saved_runs(out)
    assert_same_histories(runs, serial_runs)
    for result in runs.values():
        execution = result["execution"]
        assert execution["executor"] == "processes" and execution["workers"] == 2
        assert worker.environment(1).items() <= execution["thread_environment"].items()
        assert not execution["worker"].endswith(f":{os.getpid()}")  # trained in a worker


def test_processes_executor_reruns_the_runs_of_a_killed_worker(processes_run):
    code, out, killed = processes_run
    assert code == 0 and len(killed) == 1
    runs = saved_runs(out)
    assert len(runs) == RUNS
    rerun = [name for name, result in runs.items() if result["execution"]["attempt"] == 2]
    assert rerun, "no run was re-run after a worker was killed"
    assert all(not runs[name]["execution"]["worker"].endswith(f":{killed[0]}") for name in rerun)
    sweep = json.loads((out / "results.json").read_text())["time"]["sweep"]
    # cnn's settings 2 and 3 (lr 0.001) are one run under --quick: trained once per side.
    assert sweep["lost"] >= 1 and (sweep["trained"], sweep["derived"]) == (RUNS - 2, 2)
    assert list((out / "runs").glob("*.claim")) == []


def test_ray_executor_gives_the_serial_runs(tmp_path, serial_runs):
    import ray  # the ray extra, which make test installs
    assert main([*ARGS, "--executor", "ray", "--worker-threads", "1", "--out", str(tmp_path)]) == 0
    assert not ray.is_initialized()  # the local instance the command started is shut down
    runs = saved_runs(tmp_path)
    assert_same_histories(runs, serial_runs)
    for result in runs.values():
        execution = result["execution"]
        assert execution["executor"] == "ray" and execution["address"] == "local instance"
        assert worker.environment(1).items() <= execution["thread_environment"].items()
        assert not execution["worker"].endswith(f":{os.getpid()}")


def test_report_rejects_jobs_with_the_serial_executor(tmp_path, capsys):
    code = main(["report", "--quick", "--data", "templates", "--models", "linear", "--jobs", "2",
                 "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    assert "argument --jobs: applies to --executor processes or ray" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_report_ray_executor_without_ray_is_bad_input(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code = main(["report", "--quick", "--data", "templates", "--models", "linear",
                 "--executor", "ray", "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    assert "pip install 'tfparity[ray]'" in capsys.readouterr().err
    assert list((tmp_path / "runs").glob("*")) == []  # nothing trained, no claim left


# A Ray node that misses 2 health checks 300 ms apart (each answered within 300 ms) is dead.
HEALTH_CHECKS = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 300,
                 "health_check_timeout_ms": 300, "health_check_failure_threshold": 2}


def training_on(raylet_pid: int) -> bool:
    """Whether a worker of the raylet ``raylet_pid`` runs a training task ("ray::train")."""
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            if parent == raylet_pid and (entry / "cmdline").read_bytes().startswith(b"ray::train"):
                return True
        except (OSError, ValueError, IndexError):
            continue
    return False


def kill_raylet_once_it_trains(raylet_pid: int, stop: threading.Event, killed: list) -> None:
    """SIGKILL the raylet ``raylet_pid`` once one of its workers runs a training task."""
    while not stop.is_set():
        if training_on(raylet_pid):
            os.kill(raylet_pid, signal.SIGKILL)
            killed.append(raylet_pid)
            return
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds Ray's workers in /proc")
def test_ray_cluster_losing_a_node_reruns_only_its_runs(tmp_path, serial_runs):
    """A local cluster: a head node with no CPUs for tasks and two one-CPU worker nodes, health
    checks shortened so that a dead node is noticed in about a second; the second worker node's
    raylet gets SIGKILL once it runs a training task."""
    from ray import ray_constants
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "_system_config": HEALTH_CHECKS})
    stop, killed = threading.Event(), []
    try:
        nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        raylet = nodes[1].all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
        threading.Thread(target=kill_raylet_once_it_trains, args=(raylet, stop, killed),
                         daemon=True).start()
        code = main([*COMMON, "--models", "linear", "--executor", "ray", "--address",
                     cluster.address, "--out", str(tmp_path)])
    finally:
        stop.set()
        cluster.shutdown()
    assert code == 0 and killed == [raylet]
    runs = saved_runs(tmp_path)
    assert_same_histories(runs, {name: result for name, result in serial_runs.items()
                                 if name.startswith("linear-")})
    attempts = sorted(result["execution"]["attempt"] for result in runs.values())
    assert attempts[-1] == 2 and attempts.count(2) == 1, attempts  # the node's one run in flight
    sweep = json.loads((tmp_path / "results.json").read_text())["time"]["sweep"]
    assert sweep["lost"] == 1 and sweep["trained"] == len(runs) == 6
    assert list((tmp_path / "runs").glob("*.claim")) == []
