"""Unit tests of helpers.service: starting and stopping server processes, and bad input.

Servers are real child processes that import TensorFlow, so a start takes seconds. Timeouts
here only keep a broken run from hanging; nothing asserts how fast anything is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import service

HANG_GUARD = 300.0  # seconds; generous, for a loaded 2-core machine


def sleeper() -> subprocess.Popen[str]:
    """A child process that does nothing for a minute (stands in for a server)."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], stdout=subprocess.PIPE, text=True
    )


def pids_running(processes) -> list[int]:
    return [process.pid for process in processes.values() if process.poll() is None]


@pytest.fixture
def no_new_children():
    """Fails the test if it leaves a child process behind (children from before are ignored)."""
    before = len(service.child_processes())
    yield
    assert len(service.child_processes()) == before


# start_data_service


def test_start_data_service_starts_dispatcher_and_workers_and_stop_ends_them(
    tmp_path, no_new_children
):
    data_service = service.start_data_service(tmp_path, num_workers=2, timeout=HANG_GUARD)
    try:
        assert list(data_service.processes) == ["dispatcher", "worker0", "worker1"]
        assert data_service.target.startswith("grpc://127.0.0.1:")
        assert data_service.log_dir == tmp_path
        assert len(pids_running(data_service.processes)) == 3
        assert sorted(path.name for path in tmp_path.glob("*.log")) == [
            "dispatcher.log",
            "worker0.log",
            "worker1.log",
        ]
    finally:
        codes = service.stop(data_service.processes)
    assert codes == {"dispatcher": -15, "worker0": -15, "worker1": -15}
    assert pids_running(data_service.processes) == []


def test_start_data_service_reports_a_server_that_cannot_start(
    tmp_path, monkeypatch, no_new_children
):
    monkeypatch.setattr(
        service, "_WATCHDOG", "import sys\nsys.exit('this server cannot start ({parent})')\n"
    )
    with pytest.raises(RuntimeError, match=r"server 'dispatcher' was not up") as caught:
        service.start_data_service(tmp_path, num_workers=1, timeout=HANG_GUARD)
    assert "this server cannot start" in str(caught.value)
    assert "exit code 1" in str(caught.value)


def test_start_data_service_gives_up_after_timeout_and_leaves_nothing(tmp_path, no_new_children):
    # Importing TensorFlow alone takes longer than 0.01 s, so no server can be up in time.
    with pytest.raises(RuntimeError, match=r"was not up within 0.01 s"):
        service.start_data_service(tmp_path, num_workers=1, timeout=0.01)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"log_dir": 3}, TypeError, "expected log_dir as str or path, got int"),
        ({"log_dir": "no/such/folder"}, ValueError, "existing folder, got 'no/such/folder'"),
        ({"num_workers": 2.0}, TypeError, "expected num_workers as int, got float"),
        ({"num_workers": True}, TypeError, "expected num_workers as int, got bool"),
        ({"num_workers": 0}, ValueError, "expected num_workers >= 1, got 0"),
        ({"timeout": "60"}, TypeError, "expected timeout as a number of seconds, got str"),
        ({"timeout": 0}, ValueError, "expected timeout > 0 seconds, got 0"),
        ({"timeout": float("nan")}, ValueError, "expected timeout > 0 seconds, got nan"),
    ],
)
def test_start_data_service_refuses_bad_input(tmp_path, kwargs, error, message, no_new_children):
    arguments = {"log_dir": tmp_path, **kwargs}
    with pytest.raises(error, match=message):
        service.start_data_service(**arguments)


def test_start_data_service_refuses_a_file_as_log_dir(tmp_path):
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("")
    with pytest.raises(ValueError, match="expected log_dir to be an existing folder"):
        service.start_data_service(not_a_folder)


# start_cluster


def test_start_cluster_starts_worker_and_ps_tasks_with_a_chief_left_to_the_caller(
    tmp_path, no_new_children
):
    cluster = service.start_cluster(tmp_path, num_workers=1, num_ps=1, timeout=HANG_GUARD)
    try:
        assert sorted(cluster.spec) == ["chief", "ps", "worker"]
        assert [len(cluster.spec[job]) for job in ["chief", "worker", "ps"]] == [1, 1, 1]
        addresses = [address for job in cluster.spec.values() for address in job]
        assert len(set(addresses)) == 3
        assert all(address.startswith("127.0.0.1:") for address in addresses)
        assert list(cluster.processes) == ["worker0", "ps0"]
        assert len(pids_running(cluster.processes)) == 2
    finally:
        codes = service.stop(cluster.processes)
    assert codes == {"worker0": -15, "ps0": -15}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"log_dir": None}, TypeError, "expected log_dir as str or path, got NoneType"),
        ({"num_workers": 0}, ValueError, "expected num_workers >= 1, got 0"),
        ({"num_ps": "1"}, TypeError, "expected num_ps as int, got str"),
        ({"num_ps": -1}, ValueError, "expected num_ps >= 1, got -1"),
        ({"timeout": -5.0}, ValueError, "expected timeout > 0 seconds, got -5.0"),
    ],
)
def test_start_cluster_refuses_bad_input(tmp_path, kwargs, error, message, no_new_children):
    arguments = {"log_dir": tmp_path, **kwargs}
    with pytest.raises(error, match=message):
        service.start_cluster(**arguments)


# stop


def test_stop_ends_the_last_started_first_and_returns_exit_codes(monkeypatch):
    processes = {"dispatcher": sleeper(), "worker0": sleeper(), "worker1": sleeper()}
    order = []
    original = service._stop_one

    def recording(process, timeout):
        order.append(next(name for name, p in processes.items() if p is process))
        original(process, timeout)

    monkeypatch.setattr(service, "_stop_one", recording)
    assert service.stop(processes) == {"dispatcher": -15, "worker0": -15, "worker1": -15}
    assert order == ["worker1", "worker0", "dispatcher"]
    assert all(process.stdout.closed for process in processes.values())


def test_stop_collects_processes_that_already_exited():
    finished = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    finished.wait()
    running = sleeper()
    assert service.stop({"finished": finished, "running": running}) == {
        "finished": 3,
        "running": -15,
    }


def test_stop_kills_a_process_that_ignores_sigterm():
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('set', flush=True); time.sleep(60)"
    )
    stubborn = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout.readline().strip() == "set"
    assert service.stop({"stubborn": stubborn}, timeout=0.5) == {"stubborn": -9}


def test_stop_accepts_an_empty_mapping():
    assert service.stop({}) == {}


@pytest.mark.parametrize(
    ("processes", "timeout", "error", "message"),
    [
        ([], 10.0, TypeError, "expected a mapping of name to subprocess.Popen, got list"),
        (
            {"dispatcher": 1234},
            10.0,
            TypeError,
            "expected subprocess.Popen for 'dispatcher', got int",
        ),
        ({}, 0, ValueError, "expected timeout > 0 seconds, got 0"),
        ({}, None, TypeError, "expected timeout as a number of seconds, got NoneType"),
    ],
)
def test_stop_refuses_bad_input(processes, timeout, error, message):
    with pytest.raises(error, match=message):
        service.stop(processes, timeout=timeout)


# child_processes


def test_child_processes_lists_running_children_only():
    before = service.child_processes()
    child = sleeper()
    try:
        during = service.child_processes()
        assert len(during) == len(before) + 1
        assert all(isinstance(name, str) and name for name in during)
    finally:
        service.stop({"child": child})
    assert service.child_processes() == before


def test_module_has_no_side_effects_at_import():
    code = (
        "import sys; import helpers.service; "
        "assert 'tensorflow' not in sys.modules; assert 'psutil' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
