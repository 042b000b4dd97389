"""Process hygiene of notebooks/08_scaling_out.ipynb and the helpers.service servers it uses.

The notebook starts a tf.data service (a dispatcher and two workers) and a small cluster (a
worker and a parameter server) as child processes, stops them, and its last code cell checks that
the kernel has no child process left. These tests check the same outside the notebook: the
service serves every element once under the sharding policies the notebook relies on and leaves
no process behind when stopped; a server whose parent dies without stopping it (a crashed
kernel) exits on its own; and every server the notebook starts is stopped in the notebook.

Timeouts below only keep a broken run from hanging; nothing asserts how fast anything is.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from helpers import service

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "08_scaling_out.ipynb"
HANG_GUARD = 300.0  # seconds; generous, for a loaded 2-core machine


def is_running(pid: int) -> bool:
    """True if `pid` exists and is not a zombie (an exited orphan its new parent has not reaped)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def data_service(tmp_path):
    """A dispatcher and two workers on 127.0.0.1, stopped (and checked) after the test."""
    started = service.start_data_service(tmp_path, num_workers=2, timeout=HANG_GUARD)
    try:
        yield started
    finally:
        service.stop(started.processes)
        assert not any(is_running(process.pid) for process in started.processes.values())


@pytest.mark.parametrize("policy", ["DYNAMIC", "FILE"])
def test_service_serves_each_tfrecord_element_once(data_service, tmp_path, policy):
    import tensorflow as tf

    files = []
    for shard in range(4):
        path = tmp_path / f"shard{shard}.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for i in range(shard, 20, 4):
                writer.write(str(i).encode())
        files.append(str(path))
    dataset = (
        tf.data.Dataset.from_tensor_slices(files)
        .interleave(tf.data.TFRecordDataset)
        .map(lambda record: tf.strings.to_number(record, tf.int64))
    )
    distributed = dataset.apply(
        tf.data.experimental.service.distribute(
            processing_mode=getattr(tf.data.experimental.service.ShardingPolicy, policy),
            service=data_service.target,
        )
    )
    assert sorted(int(i) for i in distributed.as_numpy_iterator()) == list(range(20))
    assert all(is_running(process.pid) for process in data_service.processes.values())


def test_servers_leave_their_stderr_in_log_files_not_on_the_parent_screen(tmp_path):
    code = textwrap.dedent(
        f"""
        from helpers import service
        started = service.start_data_service({str(tmp_path)!r}, num_workers=1)
        print(service.stop(started.processes), flush=True)
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}  # the servers log at INFO level
    parent = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        check=True,
        cwd=ROOT,
        env=env,
    )
    assert parent.stdout.strip() == "{'dispatcher': -15, 'worker0': -15}"
    assert "DispatchServer" not in parent.stderr
    assert "DispatchServer" in (tmp_path / "dispatcher.log").read_text()


def test_servers_exit_when_their_parent_dies(tmp_path):
    """A parent that dies without stopping its servers (a crashed kernel) leaves none behind."""
    code = textwrap.dedent(
        f"""
        import os
        from helpers import service
        started = service.start_data_service({str(tmp_path)!r}, num_workers=1)
        print(*(process.pid for process in started.processes.values()), flush=True)
        os._exit(0)  # die abruptly: no stop, no wait
        """
    )
    parent = subprocess.run(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        timeout=HANG_GUARD,
        check=True,
        cwd=ROOT,
    )
    server_pids = [int(pid) for pid in parent.stdout.split()]
    assert len(server_pids) == 2
    try:
        deadline = time.monotonic() + HANG_GUARD
        while any(map(is_running, server_pids)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(is_running, server_pids)), "a server kept running after its parent died"
    finally:
        for pid in filter(is_running, server_pids):
            psutil.Process(pid).kill()


def code_sources() -> list[str]:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]


def test_notebook_stops_every_server_it_starts():
    code = "\n".join(code_sources())
    started = re.findall(r"^(\w+) = service\.start_\w+\(", code, flags=re.MULTILINE)
    assert started, "the notebook starts no server; update this test"
    for name in started:
        assert f"service.stop({name}.processes)" in code, f"{name} is started but never stopped"


def test_notebook_last_code_cell_checks_for_leftover_processes():
    last = code_sources()[-1]
    assert "service.child_processes()" in last
    assert "assert leftover == []" in last
