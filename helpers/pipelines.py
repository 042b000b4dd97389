"""Fast drop-ins for ``tf.data.Dataset.from_generator``: chunking and sharding.

``from_generator`` pays a fixed cost for every element it pulls out of Python (a call from
TensorFlow's runtime into Python through ``py_function``, then a conversion of each component to a
tensor): about 200 µs per element measured on a 2-core machine.
The helpers here keep your per-element generator unchanged but pull its elements in chunks:
they copy each element's components into per-chunk NumPy arrays as the elements arrive, hand
TensorFlow one chunk at a time and let TensorFlow split the chunks again (``unbatch``) or regroup
them into batches (``rebatch``). The per-element cost is then paid once per chunk. Because every
value is copied (or kept only if immutable) the moment it arrives, a generator that refills and
yields the same array again and again (``buf[:] = x; yield buf``) gives the right data.

``sharded_from_generator`` runs several such generators (shards) side by side with
``interleave``. That helps only when the generator spends its time outside the GIL (file or network
reads, ``time.sleep``, NumPy on large arrays); pure-Python work runs one shard at a time.

Differences from ``from_generator`` (all documented on :func:`chunked_from_generator`):
elements are checked, so lossy casts that ``from_generator`` does silently raise a
:class:`helpers.signatures.SignatureError` instead; ``TensorSpec`` names are not kept in
``element_spec``; the generator runs up to one chunk ahead of the consumer.

Elements are checked with :func:`helpers.signatures.check_element` whenever a value does not
convert exactly, so a bad element is reported by index and path as ``signatures.checked`` does.
Like every Python error raised inside ``from_generator``, it reaches you wrapped in a
``tf.errors.InvalidArgumentError`` whose message contains the original one.

Importing this module imports TensorFlow but configures nothing.
"""

from __future__ import annotations

import itertools
import math
import operator
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from helpers import signatures

__all__ = ["chunked_from_generator", "sharded_from_generator", "usable_cores"]

GeneratorFn = Callable[..., Iterable[Any]]
_Flattener = Callable[[Any, list], None]


class _MismatchError(Exception):
    """Raised internally when a chunk does not convert exactly; the slow path explains why."""


# --------------------------------------------------------------------------- argument checks


def _check_count(name: str, value: Any) -> int:
    """Returns ``value`` as an int if it is an integer >= 1.

    Args:
        name: Argument name for the error message.
        value: The value passed.

    Returns:
        The value as a Python int.

    Raises:
        TypeError: If the value is not an integer (``bool`` is refused too).
        ValueError: If the value is smaller than 1.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer >= 1, got the bool {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer >= 1, got {type(value).__name__} {value!r}"
        ) from None
    if number < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {number}")
    return number


# --------------------------------------------------------------------------- signature plan


def _walk(signature: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Yields ``(path, leaf)`` in ``tf.nest.flatten`` order (dict keys sorted).

    Args:
        signature: A nest of ``tf.TypeSpec`` in tuples, lists and dicts.
        path: Path of ``signature`` itself.

    Yields:
        Pairs of a readable path such as ``[0]['image']`` and the leaf found there.
    """
    if isinstance(signature, Mapping):
        for key in sorted(signature):
            yield from _walk(signature[key], f"{path}[{key!r}]")
    elif isinstance(signature, (tuple, list)):
        for index, item in enumerate(signature):
            yield from _walk(item, f"{path}[{index}]")
    else:
        yield path or "<root>", signature


def _flattener(signature: Any) -> _Flattener:
    """Compiles a fast function that appends an element's leaves in ``tf.nest.flatten`` order.

    Args:
        signature: A nest of ``tf.TypeSpec``.

    Returns:
        ``flatten(element, out)``; it raises ``_MismatchError`` when the structure differs.
    """
    if isinstance(signature, Mapping):
        keys = sorted(signature)
        parts = [_flattener(signature[key]) for key in keys]

        def flatten_dict(element: Any, out: list) -> None:
            if not isinstance(element, Mapping) or len(element) != len(keys):
                raise _MismatchError
            for key, part in zip(keys, parts, strict=True):
                if key not in element:
                    raise _MismatchError
                part(element[key], out)

        return flatten_dict
    if isinstance(signature, (tuple, list)):
        parts = [_flattener(item) for item in signature]

        def flatten_sequence(element: Any, out: list) -> None:
            if not isinstance(element, (tuple, list)) or len(element) != len(parts):
                raise _MismatchError
            for item, part in zip(element, parts, strict=True):
                part(item, out)

        return flatten_sequence
    return lambda element, out: out.append(element)


def _fits(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Casts ``array`` to ``dtype`` if that is obviously lossless, else raises ``_MismatchError``.

    Conservative by design: anything not clearly safe goes to ``check_element``, which decides.

    Args:
        array: A value or a chunk component, as NumPy converted it.
        dtype: The NumPy dtype of the signature.

    Returns:
        The array in ``dtype``.

    Raises:
        _MismatchError: If the cast might lose information or the kinds do not match.
    """
    if array.dtype == dtype:
        return array
    if array.dtype.kind not in "biuf" or dtype.kind not in "iuf":
        raise _MismatchError
    if np.can_cast(array.dtype, dtype, "safe"):
        return array.astype(dtype)
    with np.errstate(all="ignore"):
        cast = array.astype(dtype)
        if dtype.kind == "f" and array.dtype.kind == "f":
            exact = np.array_equal(np.isfinite(cast), np.isfinite(array))
        else:
            exact = np.array_equal(cast.astype(array.dtype), array)
    if not exact:
        raise _MismatchError
    return cast


class _BufferPool:
    """Recycles the arrays a chunk is copied into, once nothing else references them.

    A fresh multi-megabyte array per chunk is costly: large allocations are served by fresh,
    zero-filled pages from the operating system, especially after ``from_generator`` lowered the
    process's malloc trim threshold. TensorFlow may wrap a yielded array without copying it, and
    then holds a reference until the tensor is freed, so an array is reused only when its
    reference count shows that the pool is its sole owner.
    """

    def __init__(self, capacity: int = 4) -> None:
        """Creates an empty pool keeping at most ``capacity`` arrays."""
        self._arrays: list[np.ndarray] = []
        self._capacity = capacity
        self._owned = self._baseline()

    def _counts(self) -> list[int]:
        """Reference counts of the pooled arrays, always taken the same way."""
        return [sys.getrefcount(array) for array in self._arrays]

    def _baseline(self) -> int:
        """What ``_counts`` reports for an array only the pool holds (measured, not guessed)."""
        self._arrays.append(np.empty(0))
        owned = self._counts()[0]
        self._arrays.clear()
        return owned

    def _free(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
        """An array of this shape and dtype that only the pool references, if any."""
        for array, count in zip(self._arrays, self._counts(), strict=True):
            if count <= self._owned and array.shape == shape and array.dtype == dtype:
                return array
        return None

    def get(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Returns a reusable array, or a new one (kept for reuse while there is room)."""
        array = self._free(shape, dtype)
        if array is None:
            array = np.empty(shape, dtype)
            if len(self._arrays) < self._capacity:
                self._arrays.append(array)
        return array


@dataclass(frozen=True)
class _Leaf:
    """How one ``tf.TensorSpec`` of the signature travels through a chunk.

    Fully known shapes travel as one array with a leading chunk dimension. A shape with ``None``
    dimensions travels as a ragged chunk: flat values plus one row-length vector per dimension up
    to the last ``None``.
    """

    spec: tf.TensorSpec

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype of the spec."""
        return np.dtype(self.spec.dtype.as_numpy_dtype)

    @property
    def shape(self) -> tuple[int | None, ...]:
        """The spec's shape as a tuple (``None`` for unknown dimensions)."""
        return tuple(self.spec.shape.as_list())

    @property
    def ragged_levels(self) -> int:
        """Number of leading element dimensions kept as ragged levels (0 for fixed shapes)."""
        unknown = [axis for axis, size in enumerate(self.shape) if size is None]
        return unknown[-1] + 1 if unknown else 0

    def chunk_specs(self) -> list[tf.TensorSpec]:
        """The dense specs this leaf is sent as through ``from_generator``."""
        levels = self.ragged_levels
        values = tf.TensorSpec([None, *self.shape[levels:]], self.spec.dtype)
        return [values] + [tf.TensorSpec([None], tf.int64) for _ in range(levels)]

    def column(self, size: int) -> _Column:
        """A new collector for this leaf's values, ``size`` rows per chunk."""
        if self.ragged_levels:
            return _RaggedColumn(self, size)
        if self.dtype.kind == "O":
            return _StringColumn(self, size)
        if self.spec.shape.rank == 0:
            return _ScalarColumn(self, size)
        return _DenseColumn(self, size)

    def pack(self, parts: Sequence[tf.Tensor]) -> tf.Tensor | tf.RaggedTensor:
        """Rebuilds the chunk tensor (dense or ragged) from the sent parts (runs in ``map``)."""
        if self.ragged_levels == 0:
            return parts[0]
        return tf.RaggedTensor.from_nested_row_lengths(parts[0], list(parts[1:]), validate=False)

    def densify(self, value: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
        """Turns one unbatched element back into a dense tensor of the signature's shape."""
        if isinstance(value, tf.RaggedTensor):
            value = value.to_tensor()
        return tf.ensure_shape(value, self.spec.shape)


# --------------------------------------------------------------------------- chunk columns
#
# A generator may yield the same array object again and again, refilled in place
# (``buf[:] = x; yield buf``). Every value is therefore copied, or kept only if immutable, the
# moment it arrives: nothing of an element is read after the generator has been resumed.


class _Column:
    """One leaf's values for the chunk being filled.

    ``put`` copies a value in if it is exact (right shape, and a dtype that converts without
    loss), else raises ``_MismatchError`` and writes nothing that matters: the caller then checks
    the element and calls ``put_cast``. ``finish`` returns the chunk's arrays; it may still raise
    ``_MismatchError`` for checks that are cheaper over a whole chunk (scalars, ragged values).
    """

    def __init__(self, leaf: _Leaf, size: int) -> None:
        """Creates the collector for ``leaf`` with room for ``size`` rows."""
        self.leaf = leaf
        self.dtype = leaf.dtype
        self.shape = leaf.shape
        self.size = size
        self.rows: list[Any] = [None] * size

    def begin(self) -> None:
        """Prepares for a new chunk (the rows are overwritten)."""

    def put(self, row: int, value: Any) -> None:
        """Stores ``value`` in ``row`` if it is immutable or copied; else ``_MismatchError``."""
        raise NotImplementedError

    def put_cast(self, row: int, value: Any) -> None:
        """Stores a value that passed ``check_element``, cast as ``from_generator`` would."""
        self.put(row, value)

    def get(self, row: int) -> Any:
        """The stored value of ``row`` (to rebuild an element for ``check_element``)."""
        return self.rows[row]

    def finish(self, count: int, cast: bool) -> list[np.ndarray]:
        """The arrays of ``chunk_specs`` for the first ``count`` rows."""
        raise NotImplementedError


class _DenseColumn(_Column):
    """A fixed-shape numeric leaf: each value is copied into a preallocated chunk array.

    The chunk arrays come from a :class:`_BufferPool`, so a new array is allocated only while
    TensorFlow still holds the previous ones.
    """

    def __init__(self, leaf: _Leaf, size: int) -> None:
        """Creates the collector and its buffer pool."""
        super().__init__(leaf, size)
        self.pool = _BufferPool()
        self.buffer: np.ndarray | None = None

    def begin(self) -> None:
        """Takes a free chunk array from the pool (the previous one stays with TensorFlow)."""
        self.buffer = None  # drop our reference first, or the pool would never see it free
        self.buffer = self.pool.get((self.size, *self.shape), self.dtype)

    def put(self, row: int, value: Any) -> None:
        """Copies an exact value into the chunk array; converts others only if lossless."""
        if type(value) is np.ndarray and value.dtype == self.dtype and value.shape == self.shape:
            self.buffer[row] = value
            return
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):
            raise _MismatchError from None
        if array.shape != self.shape:
            raise _MismatchError
        self.buffer[row] = _fits(array, self.dtype)

    def put_cast(self, row: int, value: Any) -> None:
        """Copies a checked value, cast to the spec's dtype."""
        self.buffer[row] = np.asarray(value).astype(self.dtype)

    def get(self, row: int) -> np.ndarray:
        """The row as stored (an exact copy of what the generator yielded)."""
        return self.buffer[row]

    def finish(self, count: int, cast: bool) -> list[np.ndarray]:
        """The chunk array, cut to ``count`` rows for a partial last chunk."""
        del cast  # every row was converted when it arrived
        return [self.buffer if count == self.size else self.buffer[:count]]


class _ScalarColumn(_Column):
    """A numeric scalar leaf: immutable values are kept, and converted in one go per chunk.

    ``np.array`` over a list of Python or NumPy scalars is much faster than a write per element.
    """

    def put(self, row: int, value: Any) -> None:
        """Keeps immutable scalars; a 0-d array is copied out as a NumPy scalar."""
        kind = type(value)
        if kind is int or kind is float or kind is bool or isinstance(value, np.generic):
            self.rows[row] = value
        elif kind is np.ndarray and value.ndim == 0:
            self.rows[row] = value[()]
        else:
            raise _MismatchError

    def put_cast(self, row: int, value: Any) -> None:
        """Keeps a checked value, cast to the spec's dtype."""
        self.rows[row] = np.asarray(value).astype(self.dtype)[()]

    def finish(self, count: int, cast: bool) -> list[np.ndarray]:
        """One array of ``count`` values; ``_MismatchError`` if a cast could lose information."""
        try:
            array = np.array(self.rows[:count])
        except (ValueError, TypeError):
            raise _MismatchError from None
        if array.shape != (count,):
            raise _MismatchError
        return [array.astype(self.dtype) if cast else _fits(array, self.dtype)]


class _StringColumn(_Column):
    """A fixed-shape ``tf.string`` leaf, as object arrays (an ``S`` array drops trailing NULs)."""

    def put(self, row: int, value: Any) -> None:
        """Keeps a ``str``/``bytes`` scalar, or a copied object array of them."""
        if not self.shape:
            if not isinstance(value, (str, bytes)):
                raise _MismatchError
            self.rows[row] = value
            return
        try:
            array = np.array(value, dtype=object)
        except (ValueError, TypeError):
            raise _MismatchError from None
        if array.shape != self.shape or not all(isinstance(x, (str, bytes)) for x in array.flat):
            raise _MismatchError
        self.rows[row] = array

    def finish(self, count: int, cast: bool) -> list[np.ndarray]:
        """One object array of shape ``(count, *shape)``."""
        del cast  # every row was checked when it arrived
        if self.shape:
            return [np.stack(self.rows[:count])]
        array = np.empty(count, dtype=object)
        array[:] = self.rows[:count]
        return [array]


class _RaggedColumn(_Column):
    """A leaf with ``None`` dimensions: copied arrays, sent as flat values and row lengths."""

    def put(self, row: int, value: Any) -> None:
        """Keeps a copy of the value if its rank and known dimensions fit."""
        strings = self.dtype.kind == "O"
        try:
            array = np.array(value, dtype=object if strings else None)
        except (ValueError, TypeError):
            raise _MismatchError from None
        if array.ndim != len(self.shape) or any(
            want is not None and got != want
            for got, want in zip(array.shape, self.shape, strict=True)
        ):
            raise _MismatchError
        if strings and not all(isinstance(x, (str, bytes)) for x in array.flat):
            raise _MismatchError
        self.rows[row] = array

    def finish(self, count: int, cast: bool) -> list[np.ndarray]:
        """Flat values and nested row lengths; ``_MismatchError`` if the cast could lose data."""
        arrays = self.rows[:count]
        levels = self.leaf.ragged_levels
        trailing = self.shape[levels:]
        flat = np.concatenate([array.reshape((-1, *trailing)) for array in arrays])
        flat = flat.astype(self.dtype) if cast else _fits(flat, self.dtype)
        lengths = [np.array([array.shape[0] for array in arrays], dtype=np.int64)]
        for level in range(1, levels):
            lengths.append(
                np.concatenate(
                    [
                        np.full(math.prod(array.shape[:level]), array.shape[level], np.int64)
                        for array in arrays
                    ]
                )
            )
        return [flat, *lengths]


class _Plan:
    """Everything derived once from the signature: leaves, flattener, specs of a chunk."""

    def __init__(self, signature: Any) -> None:
        """Derives the plan from ``signature`` (a nest of ``tf.TensorSpec``)."""
        self.signature = signature
        self.leaves = [_Leaf(spec) for _, spec in _walk(signature)]
        self.flatten = _flattener(signature)
        self.chunk_signature = tuple(spec for leaf in self.leaves for spec in leaf.chunk_specs())
        self.ragged = any(leaf.ragged_levels for leaf in self.leaves)
        self.single = not isinstance(signature, (tuple, list, Mapping))
        self.flat_tuple = isinstance(signature, (tuple, list)) and all(
            isinstance(item, tf.TypeSpec) for item in signature
        )

    def values(self, element: Any) -> Sequence[Any]:
        """The element's leaf values in signature order; ``_MismatchError`` if the nest differs."""
        if self.single:
            return (element,)
        if self.flat_tuple:
            if not isinstance(element, (tuple, list)) or len(element) != len(self.leaves):
                raise _MismatchError
            return element
        flat: list = []
        self.flatten(element, flat)
        return flat

    def pack(self, *parts: tf.Tensor) -> Any:
        """Map function: rebuilds the user's structure from the flat chunk parts."""
        values, position = [], 0
        for leaf in self.leaves:
            size = 1 + leaf.ragged_levels
            values.append(leaf.pack(parts[position : position + size]))
            position += size
        return tf.nest.pack_sequence_as(self.signature, values)

    def densify(self, *element: Any) -> Any:
        """Map function: makes every ragged leaf of one element dense with the signature's shape."""
        value = element[0] if len(element) == 1 else element
        values = [
            leaf.densify(x) for leaf, x in zip(self.leaves, tf.nest.flatten(value), strict=True)
        ]
        return tf.nest.pack_sequence_as(self.signature, values)


_END = object()


class _ChunkFiller:
    """Fills chunks from one pass of one generator (one thread; columns are not shared)."""

    def __init__(self, plan: _Plan, size: int, where: str) -> None:
        """Creates the columns for chunks of ``size`` elements.

        Args:
            plan: The plan for the signature.
            size: Elements per chunk.
            where: Prefix for error messages (such as ``"shard 2 of 4: "``).
        """
        self.plan = plan
        self.size = size
        self.where = where
        self.columns = [leaf.column(size) for leaf in plan.leaves]

    def fill(self, iterator: Iterator[Any], start: int) -> int:
        """Copies up to ``size`` elements into the columns as they arrive.

        Args:
            iterator: The generator's iterator.
            start: Index of the chunk's first element in the generator's output.

        Returns:
            The number of elements copied (0 when the generator is exhausted).
        """
        first = next(iterator, _END)
        if first is _END:
            return 0
        for column in self.columns:
            column.begin()
        puts = [column.put for column in self.columns]
        values = self.plan.values
        row = 0
        for element in itertools.chain((first,), itertools.islice(iterator, self.size - 1)):
            try:
                for put, value in zip(puts, values(element), strict=True):
                    put(row, value)
            except _MismatchError:
                self._put_checked(row, element, start + row)
            row += 1
        return row

    def _put_checked(self, row: int, element: Any, index: int) -> None:
        """Checks an element that did not copy exactly, then stores it cast, or raises."""
        self._check(element, index)
        try:
            for column, value in zip(self.columns, self.plan.values(element), strict=True):
                column.put_cast(row, value)
        except (_MismatchError, ValueError, TypeError) as error:
            raise signatures.SignatureError(
                f"{self.where}element {index}: it passed check_element but could not be "
                f"converted to the signature {self.plan.signature} ({type(error).__name__})"
            ) from error

    def _check(self, element: Any, index: int) -> None:
        """``check_element`` with the shard prefix on its message."""
        try:
            signatures.check_element(element, self.plan.signature, index=index)
        except signatures.SignatureError as error:
            if not self.where:
                raise
            raise signatures.SignatureError(f"{self.where}{error}") from None

    def finish(self, count: int, start: int) -> tuple[np.ndarray, ...]:
        """The chunk's arrays in ``chunk_signature`` order.

        A column-wide check that fails (a scalar cast that might lose information) sends every
        element of the chunk, rebuilt from the stored copies, through ``check_element``.

        Args:
            count: Elements in the chunk.
            start: Index of its first element in the generator's output.

        Returns:
            The arrays to yield through ``from_generator``.

        Raises:
            helpers.signatures.SignatureError: If an element does not match the signature.
        """
        try:
            return tuple(part for column in self.columns for part in column.finish(count, False))
        except _MismatchError:
            pass
        for row in range(count):
            stored = [column.get(row) for column in self.columns]
            self._check(tf.nest.pack_sequence_as(self.plan.signature, stored), start + row)
        try:
            return tuple(part for column in self.columns for part in column.finish(count, True))
        except (_MismatchError, ValueError, TypeError) as error:
            raise signatures.SignatureError(
                f"{self.where}elements {start} to {start + count - 1}: they passed "
                f"check_element but could not be stacked into the signature "
                f"{self.plan.signature} ({type(error).__name__})"
            ) from error


def _chunks(generator_fn: GeneratorFn, plan: _Plan, chunk_size: int, sharded: bool) -> GeneratorFn:
    """Wraps a per-element generator function into one that yields converted chunks.

    Args:
        generator_fn: The user's generator function.
        plan: The plan for the signature.
        chunk_size: Elements per chunk.
        sharded: True if the arguments are ``(shard_index, num_shards)``; errors then name the
            shard.

    Returns:
        A generator function with the same arguments, yielding tuples of arrays.
    """

    def generate(*args: Any) -> Iterator[tuple[np.ndarray, ...]]:
        where = f"shard {args[0]} of {args[1]}: " if sharded else ""
        iterable = generator_fn(*args)
        try:
            iterator = iter(iterable)
        except TypeError:
            raise TypeError(
                f"generator_fn must return an iterable, got {type(iterable).__name__}"
            ) from None
        filler = _ChunkFiller(plan, chunk_size, where)  # one pass, one thread: no sharing
        start = 0
        while count := filler.fill(iterator, start):
            yield filler.finish(count, start)
            start += count

    return generate


def _signature(
    generator: GeneratorFn,
    output_types: Any,
    output_shapes: Any,
    args: Any,
    output_signature: Any,
    name: str | None,
) -> Any:
    """The element spec ``from_generator`` derives from these arguments, with its errors.

    Builds (and drops) the plain ``from_generator`` dataset, so every combination of
    ``output_types``, ``output_shapes`` and ``output_signature`` is accepted or refused exactly as
    ``from_generator`` does, at construction.
    """
    return tf.data.Dataset.from_generator(
        generator, output_types, output_shapes, args, output_signature, name
    ).element_spec


def _supported(signature: Any) -> bool:
    """True if every leaf is a ``tf.TensorSpec`` of known rank (the chunked path handles those).

    Raises:
        TypeError: If a leaf is not a ``tf.TypeSpec`` at all.
    """
    supported = True
    for path, leaf in _walk(signature):
        if not isinstance(leaf, tf.TypeSpec):
            raise TypeError(
                f"output_signature at {path}: expected a tf.TensorSpec (or another tf.TypeSpec), "
                f"got {type(leaf).__name__} {leaf!r}"
            )
        if type(leaf) is not tf.TensorSpec or leaf.shape.rank is None:
            supported = False
    return supported


def _chunk_dataset(
    generator_fn: GeneratorFn,
    plan: _Plan,
    chunk_size: int,
    args: Any,
    name: str | None,
    sharded: bool = False,
) -> tf.data.Dataset:
    """``from_generator`` over chunks, mapped back to the user's structure (leading ``None``)."""
    chunks = tf.data.Dataset.from_generator(
        _chunks(generator_fn, plan, chunk_size, sharded),
        output_signature=plan.chunk_signature,
        args=args,
        name=name,
    )
    return chunks.map(plan.pack)


def _finish(chunks: tf.data.Dataset, plan: _Plan, batch_size: int | None) -> tf.data.Dataset:
    """Splits chunks into elements, or regroups them into batches of ``batch_size``."""
    if batch_size is not None:
        return chunks.rebatch(batch_size)
    elements = chunks.unbatch()
    if plan.ragged:
        elements = elements.map(plan.densify)
    return elements


def _plain(
    generator_fn: GeneratorFn,
    signature: Any,
    args: Any,
    batch_size: int | None,
    name: str | None,
) -> tf.data.Dataset:
    """The documented fallback: per-element ``from_generator`` with checked elements."""
    dataset = tf.data.Dataset.from_generator(
        signatures.checked(generator_fn, signature),
        output_signature=signature,
        args=args,
        name=name,
    )
    return dataset if batch_size is None else dataset.batch(batch_size)


# --------------------------------------------------------------------------- public API


def usable_cores() -> int:
    """Number of CPU cores this process may run on.

    ``os.cpu_count()`` counts the machine's cores, even when a container or ``taskset`` limits
    the process to fewer; ``os.sched_getaffinity(0)`` (Linux) counts the allowed ones.

    Returns:
        The allowed cores where the platform tells, else ``os.cpu_count()`` (at least 1).
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def chunked_from_generator(
    generator: GeneratorFn,
    output_types: Any = None,
    output_shapes: Any = None,
    args: Sequence[Any] | None = None,
    output_signature: Any = None,
    name: str | None = None,
    *,
    chunk_size: int = 256,
    batch_size: int | None = None,
) -> tf.data.Dataset:
    """A faster ``tf.data.Dataset.from_generator`` for the same per-element generator.

    Pulls ``chunk_size`` elements at a time from ``generator(*args)``, copying each
    component into a per-chunk array as the element arrives, and lets TensorFlow split the chunk
    again, so the per-element cost of ``from_generator`` is paid once per chunk. The result has
    the same elements in the same order and the same structure (tuples, dicts, nesting) as
    ``tf.data.Dataset.from_generator(generator, output_signature=output_signature, args=args)``,
    including the last partial chunk, and the generator is called afresh for every epoch.

    **Stricter than ``from_generator``.** Every value must convert to its spec's dtype without
    loss, as :func:`helpers.signatures.check_element` defines it. Where ``from_generator``
    silently converts, this raises ``SignatureError`` (wrapped in
    ``tf.errors.InvalidArgumentError``): ``2.7`` into ``int32`` (``from_generator`` gives 2),
    ``300`` into ``int8`` (44), ``1e40`` into ``float32`` (inf), ``2**40 + 1`` into ``float32``
    (rounded to ``2**40``). Rounding ``float64`` values to ``float32`` is allowed. Convert such
    values yourself, on purpose, if you want the cast.

    **Spec names are dropped.** ``element_spec`` has the same shapes and dtypes as the plain
    dataset's, but a ``tf.TensorSpec(..., name="image")`` comes out with ``name=None`` (tf.data's
    ``map``/``unbatch`` do not carry names), so ``element_spec ==`` comparisons differ when the
    signature names its specs. The values are unaffected.

    Components whose shape has ``None`` dimensions travel as ragged chunks and come out dense
    again, with their own shape. With ``batch_size``, the output equals ``.batch(batch_size)`` of
    the plain dataset (last batch partial); components with ``None`` dimensions then come out as
    ``tf.RaggedTensor`` batches (what ``Dataset.ragged_batch`` gives), since a dense batch of
    different shapes does not exist. Signatures with other leaves (``tf.RaggedTensorSpec``,
    ``tf.SparseTensorSpec``, unknown rank) fall back to the per-element ``from_generator`` with
    checked elements: correct, not faster.

    Values are copied (or kept, if immutable) as soon as they arrive, so a generator may refill
    and yield the same array every time. Plain ``from_generator`` may wrap a yielded array
    without copying, and then shows such an array's last contents in every element. Elements are
    checked one by one only when a value does not convert exactly (a wrong structure, shape or
    dtype, or a cast that could lose information); exact values cost no check. The generator runs
    up to ``chunk_size`` elements ahead of the consumer, so its side effects happen earlier.

    Args:
        generator: A callable returning an iterable of elements; called once per epoch with
            ``*args``. Not a generator object.
        output_types: Deprecated in ``from_generator``, accepted as it accepts them: a nest of
            ``tf.DType`` (give ``output_signature`` instead).
        output_shapes: With ``output_types``: a nest of shapes.
        output_signature: A nest (tuples, dicts) of ``tf.TensorSpec``, one per component.
        args: Arguments for ``generator``, passed as ``from_generator`` passes them (converted
            to tensors and back, so strings arrive as ``bytes``).
        name: A name for the tf.data operations, as in ``from_generator``.
        chunk_size: Elements per chunk; the main speed knob (256 is a good default).
        batch_size: If given, the dataset yields batches of this size instead of elements.

    Returns:
        A ``tf.data.Dataset`` of elements (or batches) matching ``output_signature``.

    Raises:
        SignatureError: If ``generator`` is not callable (for example a generator object).
        TypeError: For the argument combinations ``from_generator`` refuses (no signature, both
            ``output_types`` and ``output_signature``, a leaf that is not a ``tf.TypeSpec``, a
            list in the signature), with ``from_generator``'s message.
        ValueError: If ``chunk_size`` or ``batch_size`` is smaller than 1.
    """
    signatures.require_generator_function(generator, "chunked_from_generator()")
    chunk_size = _check_count("chunk_size", chunk_size)
    batch_size = None if batch_size is None else _check_count("batch_size", batch_size)
    signature = _signature(generator, output_types, output_shapes, args, output_signature, name)
    if not _supported(signature):
        return _plain(generator, signature, args, batch_size, name)
    plan = _Plan(signature)
    return _finish(_chunk_dataset(generator, plan, chunk_size, args, name), plan, batch_size)


def sharded_from_generator(
    generator: GeneratorFn,
    output_types: Any = None,
    output_shapes: Any = None,
    args: Sequence[Any] | None = None,
    output_signature: Any = None,
    name: str | None = None,
    *,
    num_shards: int,
    chunk_size: int = 256,
    batch_size: int | None = None,
    deterministic: bool = True,
) -> tf.data.Dataset:
    """Runs ``num_shards`` chunked generators side by side and interleaves their output.

    ``generator(shard_index, num_shards, *args)`` must yield the elements of one shard (for example
    every ``num_shards``-th file starting at ``shard_index``); together the shards should yield
    each element once. The shards are chunked as in :func:`chunked_from_generator` and interleaved
    chunk by chunk with ``num_parallel_calls=tf.data.AUTOTUNE``. With ``deterministic=True`` the
    order is fixed: chunk 0 of shard 0, chunk 0 of shard 1, ..., chunk 1 of shard 0, ...;
    ``deterministic=False`` lets a ready shard go first.

    tf.data's default thread pool has one thread per core, which caps how many shards run at once.
    Shards that wait on I/O need a thread each, so the dataset gets a private thread pool of
    ``max(num_shards, usable cores)`` threads (``options.threading.private_threadpool_size``);
    usable cores are the ones this process may run on (``os.sched_getaffinity``, where the
    platform has it, else ``os.cpu_count()``).

    Everything :func:`chunked_from_generator` says about checks, spec names and copying holds
    here too.

    Shards only speed things up when the generator releases the GIL (reading files, sockets,
    sleeping, large NumPy operations). Pure-Python generators run one at a time whatever the
    number of shards; chunking is what helps them.

    Args:
        generator: A callable ``(shard_index, num_shards, *args) -> iterable of elements``;
            ``shard_index`` and ``num_shards`` arrive as NumPy ``int64``. Not a generator object.
        output_types: As in :func:`chunked_from_generator`.
        output_shapes: As in :func:`chunked_from_generator`.
        args: Extra arguments for ``generator``, passed after ``(shard_index, num_shards)``.
        output_signature: A nest (tuples, dicts) of ``tf.TensorSpec``.
        name: A name for the tf.data operations, as in ``from_generator``.
        num_shards: Number of generators run side by side.
        chunk_size: Elements per chunk (``1`` sends elements one by one).
        batch_size: If given, the dataset yields batches of this size instead of elements.
        deterministic: Keep the round-robin order above (True) or yield whatever is ready.

    Returns:
        A ``tf.data.Dataset`` of elements (or batches) matching ``output_signature``.

    Raises:
        SignatureError: If ``generator`` is not callable (for example a generator object).
        TypeError: For the argument combinations ``from_generator`` refuses.
        ValueError: If ``num_shards``, ``chunk_size`` or ``batch_size`` is smaller than 1.
    """
    signatures.require_generator_function(generator, "sharded_from_generator()")
    num_shards = _check_count("num_shards", num_shards)
    chunk_size = _check_count("chunk_size", chunk_size)
    batch_size = None if batch_size is None else _check_count("batch_size", batch_size)
    extra = tuple(args) if args is not None else ()
    signature = _signature(
        generator, output_types, output_shapes, (0, num_shards, *extra), output_signature, name
    )
    plan = _Plan(signature) if _supported(signature) else None

    @tf.autograph.experimental.do_not_convert  # builds datasets in Python; nothing to convert
    def shard(index: tf.Tensor) -> tf.data.Dataset:
        shard_args = (index, num_shards, *extra)
        if plan is None:
            return _plain(generator, signature, shard_args, None, name)
        return _chunk_dataset(generator, plan, chunk_size, shard_args, name, sharded=True)

    interleaved = tf.data.Dataset.range(num_shards).interleave(
        shard,
        cycle_length=num_shards,
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if plan is not None:
        dataset = _finish(interleaved, plan, batch_size)
    else:
        dataset = interleaved if batch_size is None else interleaved.batch(batch_size)
    options = tf.data.Options()
    options.threading.private_threadpool_size = max(num_shards, usable_cores())
    return dataset.with_options(options)
