"""Paths into element structures, in the format every message of this package uses.

``from_generator`` treats tuples and dicts as structures and everything else (lists included) as
one value. A path names a leaf the way :mod:`helpers.signatures` prints it: ``[1]`` is position 1
of a tuple, ``['image']`` is the str key ``"image"`` (a bytes key is shown as its ``repr`` too),
``[key=1]`` is any other dict key (the int key 1, never to be confused with position ``[1]``), and
``<root>`` is an element that is a single tensor.

Example:
    >>> join_key(join_position(ROOT, 0), "image")
    "[0]['image']"
    >>> join_key(ROOT, 1)
    '[key=1]'
"""

from __future__ import annotations

from typing import Any

__all__ = ["ROOT", "is_namedtuple", "join_key", "join_position"]

ROOT = "<root>"
"""The path of an element that is a single tensor rather than a tuple or dict."""


def join_position(path: str, position: int) -> str:
    """Appends a tuple position to a path: ``[1]``."""
    return ("" if path == ROOT else path) + f"[{position}]"


def join_key(path: str, key: Any) -> str:
    """Appends a dict key to a path: ``['image']`` for str and bytes keys, ``[key=1]`` otherwise."""
    step = repr(key) if isinstance(key, (str, bytes)) else f"key={key!r}"
    return ("" if path == ROOT else path) + f"[{step}]"


def is_namedtuple(value: Any) -> bool:
    """True for an instance of a ``collections.namedtuple`` or ``typing.NamedTuple`` class."""
    return isinstance(value, tuple) and hasattr(type(value), "_fields")
