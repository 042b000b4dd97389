"""Process hygiene of the tf.data service pattern used by notebooks/08_scaling_out.ipynb.

The notebook starts a dispatcher and two workers as child processes, stops them, and its last
cell asserts that the kernel has no child process left. These tests exercise the same pattern
outside the notebook (the code is repeated here on purpose: nothing is imported from the
notebook): servers start, serve a dataset with every element once, and leave no process behind
when stopped; a server whose start-up fails is reported and cleaned up; and a server whose
parent dies without stopping it exits on its own.

Timeouts below only keep a broken run from hanging; nothing asserts how fast anything is.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HANG_GUARD = 300.0  # seconds; generous, for a loaded 2-core machine

SERVER_PRELUDE = """
import os
import threading
import time

import tensorflow as tf


def exit_when_orphaned(parent):
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


threading.Thread(target=exit_when_orphaned, args=({parent},), daemon=True).start()
"""
SERVER_READY = """
print("ready", flush=True)
server.join()
"""
DISPATCHER_BODY = """
server = tf.data.experimental.service.DispatchServer(
    tf.data.experimental.service.DispatcherConfig(port={port}, worker_addresses={workers!r})
)
"""
WORKER_BODY = """
server = tf.data.experimental.service.WorkerServer(
    tf.data.experimental.service.WorkerConfig(
        dispatcher_address={dispatcher!r}, worker_address={address!r}, port={port}
    )
)
"""


def free_ports(count: int) -> list[int]:
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def server_code(body: str, parent: int) -> str:
    return SERVER_PRELUDE.format(parent=parent) + body + SERVER_READY


def launch(bodies: dict[str, str], log_dir: Path) -> dict[str, subprocess.Popen]:
    servers: dict[str, subprocess.Popen] = {}
    try:
        for name, body in bodies.items():
            with open(log_dir / f"{name}.log", "w") as log:
                servers[name] = subprocess.Popen(
                    [sys.executable, "-c", server_code(body, os.getpid())],
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                )
    except BaseException:
        stop(servers)
        raise
    return servers


def wait_until_ready(
    servers: dict[str, subprocess.Popen], log_dir: Path, timeout: float = HANG_GUARD
) -> None:
    deadline = time.monotonic() + timeout
    for name, server in servers.items():
        readable, _, _ = select.select([server.stdout], [], [], max(deadline - time.monotonic(), 0))
        line = server.stdout.readline() if readable else ""
        if line.strip() != "ready":
            stop(servers)
            tail = "\n".join((log_dir / f"{name}.log").read_text().splitlines()[-5:])
            raise RuntimeError(
                f"server {name!r} did not report ready (got {line.strip()!r}, exit code "
                f"{server.returncode}); end of its log:\n{tail}"
            )


def stop(servers: dict[str, subprocess.Popen], timeout: float = 10.0) -> None:
    for server in servers.values():
        if server.poll() is None:
            server.terminate()
    for server in servers.values():
        try:
            server.wait(timeout)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stdout is not None:
            server.stdout.close()


def running_children(pids: set[int]) -> list[psutil.Process]:
    """Children of this process with one of `pids` that are still running (zombies excluded)."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.pid in pids and child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.fixture
def service(tmp_path):
    """A dispatcher and two workers on 127.0.0.1, stopped (and checked) after the test."""
    dispatcher_port, *worker_ports = free_ports(3)
    dispatcher = f"127.0.0.1:{dispatcher_port}"
    workers = [f"127.0.0.1:{port}" for port in worker_ports]
    bodies = {"dispatcher": DISPATCHER_BODY.format(port=dispatcher_port, workers=workers)}
    for index, (port, address) in enumerate(zip(worker_ports, workers, strict=True)):
        bodies[f"worker{index}"] = WORKER_BODY.format(
            dispatcher=dispatcher, address=address, port=port
        )
    servers = launch(bodies, tmp_path)
    try:
        wait_until_ready(servers, tmp_path)
        yield f"grpc://{dispatcher}", servers
    finally:
        stop(servers)


def test_service_serves_each_element_once_and_leaves_no_process(service, tmp_path):
    import tensorflow as tf

    address, servers = service
    files = []
    for shard in range(4):
        path = tmp_path / f"shard{shard}.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for i in range(shard, 20, 4):
                writer.write(str(i).encode())
        files.append(str(path))
    dataset = tf.data.TFRecordDataset(files).map(lambda r: tf.strings.to_number(r, tf.int64))
    distributed = dataset.apply(
        tf.data.experimental.service.distribute(
            processing_mode=tf.data.experimental.service.ShardingPolicy.FILE, service=address
        )
    )
    assert sorted(int(i) for i in distributed.as_numpy_iterator()) == list(range(20))

    pids = {server.pid for server in servers.values()}
    assert len(running_children(pids)) == 3
    stop(servers)
    assert all(server.returncode is not None for server in servers.values())
    assert running_children(pids) == []


def test_failed_start_is_reported_and_nothing_is_left(tmp_path):
    bodies = {
        "dispatcher": DISPATCHER_BODY.format(port=free_ports(1)[0], workers=[]),
        "broken": "raise SystemExit('this server cannot start')\n",
    }
    servers = launch(bodies, tmp_path)
    with pytest.raises(RuntimeError, match=r"server 'broken' did not report ready") as caught:
        wait_until_ready(servers, tmp_path)
    assert "this server cannot start" in str(caught.value)
    assert all(server.returncode is not None for server in servers.values())
    assert running_children({server.pid for server in servers.values()}) == []


def test_server_exits_when_its_parent_dies(tmp_path):
    """A parent that dies without stopping its server (a crashed kernel) leaves no server behind."""
    body = DISPATCHER_BODY.format(port=free_ports(1)[0], workers=[])
    parent_code = textwrap.dedent(
        f"""
        import os, subprocess, sys
        code = {SERVER_PRELUDE + body + SERVER_READY!r}.replace("{{parent}}", str(os.getpid()))
        server = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        print(server.pid, server.stdout.readline().strip(), flush=True)
        os._exit(0)  # die abruptly: no terminate, no wait
        """
    )
    parent = subprocess.run(
        [sys.executable, "-c", parent_code],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        timeout=HANG_GUARD,
        check=True,
    )
    server_pid, ready = parent.stdout.split()
    server_pid = int(server_pid)
    try:
        assert ready == "ready"
        deadline = time.monotonic() + HANG_GUARD
        while is_running(server_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not is_running(server_pid), f"server {server_pid} kept running after its parent died"
    finally:
        if is_running(server_pid):
            psutil.Process(server_pid).kill()


def is_running(pid: int) -> bool:
    """True if `pid` exists and is not a zombie (an exited orphan its new parent has not reaped)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
