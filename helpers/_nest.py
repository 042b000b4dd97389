"""Paths into element structures, in the format every message of this package uses.

``from_generator`` treats tuples and dicts as structures and everything else (lists included) as
one value. A path names a leaf the way :mod:`helpers.signatures` prints it: ``[1]`` is position 1
of a tuple, ``['image']`` is the str key ``"image"`` (a bytes key is shown as its ``repr`` too),
``[key=1]`` is any other dict key (the int key 1, never to be confused with position ``[1]``), and
``<root>`` is an element that is a single tensor. :func:`leaves` walks a signature in ``tf.nest``
order (dict keys sorted); :func:`check_structure` checks one tuple or dict of an element against
its signature node with ``from_generator``'s rules.

Example:
    >>> join_key(join_position(ROOT, 0), "image")
    "[0]['image']"
    >>> join_key(ROOT, 1)
    '[key=1]'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from helpers._errors import SignatureError, describe_value

__all__ = [
    "ROOT",
    "check_structure",
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


def check_structure(element: Any, signature: Any, where: str) -> None:
    """Checks that a yielded element has the tuple or dict structure of a signature node.

    Only the node itself: the number of items of a tuple (of the same tuple type), the keys of a
    dict. Raises SignatureError, with ``where`` (``"element 3, [0]"``) leading the message.
    """
    if isinstance(signature, dict):
        if not isinstance(element, dict):
            hint = ""
            if isinstance(element, Mapping):
                hint = " (from_generator accepts only dict and its subclasses: yield dict(...))"
            raise SignatureError(
                f"{where}: expected a dict with keys {sorted_keys(signature, where)!r}, "
                f"got {describe_value(element)}{hint}"
            )
        missing = [key for key in signature if key not in element]
        extra = [key for key in element if key not in signature]
        if missing or extra:
            problems = [f"missing {missing!r}"] * bool(missing) + [f"extra {extra!r}"] * bool(extra)
            raise SignatureError(
                f"{where}: expected a dict with keys {sorted_keys(signature, where)!r}, "
                f"got keys {list(element)!r} ({', '.join(problems)})"
            )
        return
    kind = type(signature).__name__
    if not isinstance(element, type(signature)):
        hint = ""
        if isinstance(element, list):
            hint = " (from_generator treats a list as one tensor, not a structure: yield a tuple)"
        raise SignatureError(
            f"{where}: expected a {kind} of {len(signature)}, got {describe_value(element)}{hint}"
        )
    if len(element) != len(signature):
        raise SignatureError(
            f"{where}: expected a {kind} of {len(signature)}, got a {type(element).__name__} "
            f"of {len(element)}"
        )
