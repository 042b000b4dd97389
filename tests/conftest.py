"""Shared pytest configuration: one hypothesis profile for every test, and ``run_python``.

Runs are reproducible (``derandomize=True`` derives examples from each test's source, so CI and a
laptop see the same cases), have no per-example deadline (TensorFlow's first call in a process is
slow and a shared machine is noisy), and print the blob needed to replay a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "tf-generator-tutorials",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("tf-generator-tutorials")


@pytest.fixture
def run_python() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs Python source in a fresh interpreter, for what one process cannot show.

    For example a crash, what a module imports, or what differs between processes. TensorFlow's
    C++ log is quiet (``TF_CPP_MIN_LOG_LEVEL=3``); the caller checks ``returncode``.
    """

    def run(source: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", source, *args],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            check=False,
        )

    return run
