"""Start and stop TensorFlow servers in child processes: a ``tf.data`` service and a small cluster.

Notebook 08 needs servers that run in *other* processes than the notebook's kernel, because what
it shows is what happens when an input pipeline leaves the process that built it. Each server is
a child Python process that runs a few lines of plain TensorFlow; for the ``tf.data`` service::

    # the dispatcher
    tf.data.experimental.service.DispatchServer(
        tf.data.experimental.service.DispatcherConfig(port=port, worker_addresses=workers)
    ).join()
    # each worker
    tf.data.experimental.service.WorkerServer(
        tf.data.experimental.service.WorkerConfig(
            dispatcher_address=dispatcher, worker_address=address, port=port
        )
    ).join()

and for a cluster task ``tf.distribute.Server(cluster_spec, job_name=..., task_index=0).join()``.
This module adds what a notebook needs around those lines and what a reader does not need to
read: free ports on 127.0.0.1, every server's stderr (TensorFlow's C++ log) in a log file
instead of on the notebook's screen, a wait until every server is up (with the end of its log
if one fails), a watchdog that ends a server when the process that started it dies, and a stop
that ends workers before the server they report to. Servers run with ``sys.tracebacklimit = 0``:
an error raised by Python code inside a server (for example a missing ``from_generator``
callback) travels back to the client as text, and a traceback in it would list the server's
file paths.

Nothing happens at import; TensorFlow is imported only by the child processes.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Cluster",
    "DataService",
    "child_processes",
    "start_cluster",
    "start_data_service",
    "stop",
]

LOCALHOST = "127.0.0.1"
READY = "ready"
LOG_TAIL_LINES = 5


@dataclass(frozen=True)
class DataService:
    """A running ``tf.data`` service, from :func:`start_data_service`.

    Attributes:
        target: The dispatcher's address for ``tf.data.experimental.service.distribute(...,
            service=target)``, e.g. ``"grpc://127.0.0.1:40123"``.
        processes: The server processes by name (``"dispatcher"``, ``"worker0"``, ...), in the
            order they were started.
        log_dir: The folder that holds each server's stderr as ``<name>.log``.
    """

    target: str
    processes: dict[str, subprocess.Popen[str]]
    log_dir: Path


@dataclass(frozen=True)
class Cluster:
    """Running ``tf.distribute.Server`` tasks, from :func:`start_cluster`.

    Attributes:
        spec: The cluster as ``{job: [address, ...]}``, for ``tf.train.ClusterSpec(spec)``. It
            includes a ``"chief"`` task whose server is *not* started: the caller joins as it.
        processes: The server processes by name (``"worker0"``, ``"ps0"``, ...), in start order.
        log_dir: The folder that holds each server's stderr as ``<name>.log``.
    """

    spec: dict[str, list[str]]
    processes: dict[str, subprocess.Popen[str]]
    log_dir: Path


def start_data_service(
    log_dir: str | os.PathLike[str], num_workers: int = 2, timeout: float = 120.0
) -> DataService:
    """Starts a ``tf.data`` service dispatcher and ``num_workers`` workers, each in its own process.

    The dispatcher is given the workers' addresses in advance, so every sharding policy works,
    including the static ones (``FILE``, ``DATA``). Returns once every server is up.

    Args:
        log_dir: An existing folder; each server's stderr goes to ``<name>.log`` in it.
        num_workers: How many worker processes to start (at least 1).
        timeout: Seconds to wait, in all, for every server to be up.

    Returns:
        The service: pass ``service.target`` to ``tf.data.experimental.service.distribute``,
        and ``service.processes`` to :func:`stop` when done.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: ``log_dir`` is not an existing folder, ``num_workers`` < 1 or
            ``timeout`` <= 0.
        RuntimeError: A server exited or was not up within ``timeout``; the message names it and
            quotes the end of its log. Every server started is stopped first.
    """
    folder = _checked_folder(log_dir)
    _check_count("num_workers", num_workers, minimum=1)
    _check_timeout(timeout)
    dispatcher_port, *worker_ports = _free_ports(1 + num_workers)
    dispatcher = f"{LOCALHOST}:{dispatcher_port}"
    workers = [f"{LOCALHOST}:{port}" for port in worker_ports]
    bodies = {
        "dispatcher": (
            "server = tf.data.experimental.service.DispatchServer(\n"
            "    tf.data.experimental.service.DispatcherConfig(\n"
            f"        port={dispatcher_port}, worker_addresses={workers!r}\n"
            "    )\n"
            ")\n"
        )
    }
    for index, (port, address) in enumerate(zip(worker_ports, workers, strict=True)):
        bodies[f"worker{index}"] = (
            "server = tf.data.experimental.service.WorkerServer(\n"
            "    tf.data.experimental.service.WorkerConfig(\n"
            f"        dispatcher_address={dispatcher!r}, worker_address={address!r}, port={port}\n"
            "    )\n"
            ")\n"
        )
    processes = _launch(bodies, folder)
    _wait_until_ready(processes, folder, timeout)
    return DataService(target=f"grpc://{dispatcher}", processes=processes, log_dir=folder)


def start_cluster(
    log_dir: str | os.PathLike[str], num_workers: int = 1, num_ps: int = 1, timeout: float = 120.0
) -> Cluster:
    """Starts a ``tf.distribute`` cluster's worker and parameter-server tasks as processes.

    The cluster also has one ``"chief"`` task, which is not started here: the caller's process
    joins as the chief (for example as the coordinator of ``ParameterServerStrategy``).

    Args:
        log_dir: An existing folder; each server's stderr goes to ``<name>.log`` in it.
        num_workers: How many ``"worker"`` tasks to start (at least 1).
        num_ps: How many ``"ps"`` (parameter server) tasks to start (at least 1).
        timeout: Seconds to wait, in all, for every server to be up.

    Returns:
        The cluster: ``tf.train.ClusterSpec(cluster.spec)`` describes it; pass
        ``cluster.processes`` to :func:`stop` when done.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: ``log_dir`` is not an existing folder, a count < 1 or ``timeout`` <= 0.
        RuntimeError: A server exited or was not up within ``timeout``; the message names it and
            quotes the end of its log. Every server started is stopped first.
    """
    folder = _checked_folder(log_dir)
    _check_count("num_workers", num_workers, minimum=1)
    _check_count("num_ps", num_ps, minimum=1)
    _check_timeout(timeout)
    ports = iter(_free_ports(1 + num_workers + num_ps))
    spec = {
        job: [f"{LOCALHOST}:{next(ports)}" for _ in range(count)]
        for job, count in [("chief", 1), ("worker", num_workers), ("ps", num_ps)]
    }
    bodies = {
        f"{job}{index}": (
            f"server = tf.distribute.Server(\n"
            f"    tf.train.ClusterSpec({spec!r}), job_name={job!r}, task_index={index},"
            ' protocol="grpc"\n'
            ")\n"
        )
        for job in ["worker", "ps"]
        for index in range(len(spec[job]))
    }
    processes = _launch(bodies, folder)
    _wait_until_ready(processes, folder, timeout)
    return Cluster(spec=spec, processes=processes, log_dir=folder)


def stop(processes: Mapping[str, subprocess.Popen[str]], timeout: float = 10.0) -> dict[str, int]:
    """Stops server processes, the last started first, and returns their exit codes.

    Each process still running gets ``SIGTERM`` and up to ``timeout`` seconds to exit, then
    ``SIGKILL``. Stopping in reverse start order ends a ``tf.data`` service's workers before its
    dispatcher, so no worker is left reporting to a dispatcher that is gone. Processes that have
    already exited are only collected.

    Args:
        processes: Processes by name, e.g. ``DataService.processes`` or ``Cluster.processes``.
        timeout: Seconds each process gets to exit after ``SIGTERM`` (more than 0).

    Returns:
        Exit code by name; a negative code is the signal that ended the process (-15: SIGTERM).

    Raises:
        TypeError: ``processes`` is not a mapping of ``subprocess.Popen`` objects.
        ValueError: ``timeout`` <= 0.
    """
    if not isinstance(processes, Mapping):
        raise TypeError(
            f"expected a mapping of name to subprocess.Popen, got {type(processes).__name__}"
        )
    for name, process in processes.items():
        if not isinstance(process, subprocess.Popen):
            raise TypeError(f"expected subprocess.Popen for {name!r}, got {type(process).__name__}")
    _check_timeout(timeout)
    for process in reversed(list(processes.values())):
        _stop_one(process, timeout)
    return {name: int(process.returncode) for name, process in processes.items()}


def child_processes() -> list[str]:
    """Names of this process's child processes that are still running (exited ones excluded).

    Uses ``psutil``, which every Jupyter kernel has (``ipykernel`` depends on it).

    Returns:
        One process name per running child or grandchild, e.g. ``["python3"]``; ``[]`` if none.
    """
    import psutil

    running = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                running.append(child.name())
        except psutil.NoSuchProcess:
            continue
    return running


_WATCHDOG = """\
import os
import sys
import threading
import time

import tensorflow as tf

sys.tracebacklimit = 0


def _exit_when_orphaned(parent):
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


threading.Thread(target=_exit_when_orphaned, args=({parent},), daemon=True).start()
"""
_SERVE = f"""
print({READY!r}, flush=True)
server.join()
"""


def _checked_folder(log_dir: object) -> Path:
    if not isinstance(log_dir, (str, os.PathLike)):
        raise TypeError(f"expected log_dir as str or path, got {type(log_dir).__name__}")
    folder = Path(log_dir)
    if not folder.is_dir():
        raise ValueError(f"expected log_dir to be an existing folder, got {str(folder)!r}")
    return folder


def _check_count(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected {name} as int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"expected {name} >= {minimum}, got {value}")


def _check_timeout(timeout: object) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"expected timeout as a number of seconds, got {type(timeout).__name__}")
    if not timeout > 0:
        raise ValueError(f"expected timeout > 0 seconds, got {timeout}")


def _free_ports(count: int) -> list[int]:
    """Distinct TCP ports that were free on 127.0.0.1 a moment ago (the OS picks them)."""
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind((LOCALHOST, 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _launch(bodies: Mapping[str, str], log_dir: Path) -> dict[str, subprocess.Popen[str]]:
    """Starts one Python process per body without waiting; stderr to ``log_dir/<name>.log``."""
    processes: dict[str, subprocess.Popen[str]] = {}
    try:
        for name, body in bodies.items():
            code = _WATCHDOG.format(parent=os.getpid()) + body + _SERVE
            with open(log_dir / f"{name}.log", "w") as log:
                processes[name] = subprocess.Popen(
                    [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=log, text=True
                )
    except BaseException:
        stop(processes)
        raise
    return processes


def _wait_until_ready(
    processes: dict[str, subprocess.Popen[str]], log_dir: Path, timeout: float
) -> None:
    """Waits until every process printed the ready line; otherwise stops all and raises."""
    deadline = time.monotonic() + timeout
    for name, process in processes.items():
        assert process.stdout is not None
        wait = max(deadline - time.monotonic(), 0.0)
        readable, _, _ = select.select([process.stdout], [], [], wait)
        line = process.stdout.readline().strip() if readable else ""
        if line != READY:
            stop(processes)
            log = log_dir / f"{name}.log"
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
            raise RuntimeError(
                f"server {name!r} was not up within {timeout} s (expected the line {READY!r}, "
                f"got {line!r}; exit code {process.returncode}); end of {log.name}:\n{tail}"
            )


def _stop_one(process: subprocess.Popen[str], timeout: float) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()
