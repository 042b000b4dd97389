"""Shared pytest configuration: one hypothesis profile for every test.

Runs are reproducible (``derandomize=True`` derives examples from each test's source, so CI and a
laptop see the same cases), have no per-example deadline (TensorFlow's first call in a process is
slow and a shared machine is noisy), and print the blob needed to replay a failure.
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "tf-generator-tutorials",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("tf-generator-tutorials")
