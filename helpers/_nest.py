"""Paths into element structures, in the format every message of this package uses.

``from_generator`` treats tuples and dicts as structures and everything else (lists included) as
one value. A path names a leaf the way :mod:`helpers.signatures` prints it: ``[1]`` is position 1
of a tuple, ``['image']`` is the str key ``"image"`` (a bytes key is shown as its ``repr`` too),
``[key=1]`` is any other dict key (the int key 1, never to be confused with position ``[1]``), and
``<root>`` is an element that is a single tensor. :func:`leaves` walks a signature in ``tf.nest``
order (dict keys sorted).

Example:
    >>> join_key(join_position(ROOT, 0), "image")
    "[0]['image']"
    >>> join_key(ROOT, 1)
    '[key=1]'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from helpers._errors import SignatureError

__all__ = [
    "ROOT",
    "is_namedtuple",
    "is_structure",
    "join_key",
    "join_position",
    "leaves",
    "sorted_keys",
]

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


def is_structure(value: Any) -> bool:
    """True for what ``from_generator`` treats as a structure: tuples and dicts, not lists."""
    return isinstance(value, (tuple, dict))


def sorted_keys(mapping: Mapping[Any, Any], where: str) -> list[Any]:
    """Returns the keys of a dict in ``tf.nest`` order (sorted); SignatureError if unsortable."""
    try:
        return sorted(mapping)
    except TypeError as error:
        raise SignatureError(
            f"{where}: dict keys must be sortable, got {list(mapping)!r}"
        ) from error


def leaves(signature: Any, path: str = ROOT) -> Iterator[tuple[str, Any]]:
    """Yields ``(path, spec)`` for every leaf of a signature, in ``tf.nest`` order."""
    if isinstance(signature, dict):
        for key in sorted_keys(signature, path):
            yield from leaves(signature[key], join_key(path, key))
    elif isinstance(signature, tuple):
        for position, item in enumerate(signature):
            yield from leaves(item, join_position(path, position))
    else:
        yield path, signature
