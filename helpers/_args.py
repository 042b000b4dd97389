"""The package's argument checks: TypeError for a wrong type, ValueError for a wrong value.

Messages read ``NAME: expected ..., got ...``. Integers may be Python or NumPy integers; ``bool``
is refused where a count is expected (``True`` is an ``int`` to Python, never a count to a reader).

Example:
    >>> import numpy as np
    >>> positive_int("num_shards", np.int64(4))
    4
    >>> positive_int("num_shards", 2.5)
    Traceback (most recent call last):
    ...
    TypeError: num_shards: expected an int, got float 2.5
"""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["is_integer", "positive_int", "require_bool"]


def is_integer(value: Any) -> bool:
    """True for Python and NumPy integers; False for ``bool`` and anything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(name: str, value: Any) -> int:
    """Returns ``value`` as an ``int`` if it is an integer >= 1.

    Raises:
        TypeError: ``value`` is not a Python or NumPy integer (or is a bool).
        ValueError: ``value`` is < 1.
    """
    if not is_integer(value):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    return int(value)


def require_bool(name: str, value: Any, *, allow_none: bool = False) -> None:
    """Raises TypeError unless ``value`` is True or False (or None, if ``allow_none``)."""
    if isinstance(value, bool) or (allow_none and value is None):
        return
    expected = "True, False or None" if allow_none else "True or False"
    raise TypeError(f"{name}: expected {expected}, got {type(value).__name__} {value!r}")
