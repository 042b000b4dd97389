"""Fast drop-ins for ``tf.data.Dataset.from_generator``: chunking and sharding.

``from_generator`` pays a fixed cost for every element it pulls out of Python (a call from
TensorFlow's runtime into Python through ``py_function``, then a conversion of each component to a
tensor): about 200 µs per element measured on a 2-core machine.
The helpers here keep your per-element generator unchanged but pull its elements in chunks:
they stack ``chunk_size`` elements per component with NumPy, hand TensorFlow one chunk at a time
and let TensorFlow split the chunks again (``unbatch``) or regroup them into batches
(``rebatch``). The per-element cost is then paid once per chunk.

``sharded_from_generator`` runs several such generators (shards) side by side with
``interleave``. That helps only when the generator spends its time outside the GIL (file or network
reads, ``time.sleep``, NumPy on large arrays); pure-Python work runs one shard at a time.

Elements are checked with :func:`helpers.signatures.check_element` whenever a chunk does not
convert exactly, so a bad element is reported by index and path as ``signatures.checked`` does.
Like every Python error raised inside ``from_generator``, it reaches you wrapped in a
``tf.errors.InvalidArgumentError`` whose message contains the original one.

Importing this module imports TensorFlow but configures nothing.
"""

from __future__ import annotations

import inspect
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

__all__ = ["chunked_from_generator", "sharded_from_generator"]

GeneratorFn = Callable[..., Iterable[Any]]
_Flattener = Callable[[Any, list], None]


class _MismatchError(Exception):
    """Raised internally when a chunk does not convert exactly; the slow path explains why."""


# --------------------------------------------------------------------------- argument checks


def _check_callable(generator_fn: Any) -> None:
    """Refuses generator objects and other non-callables with a message that says what to pass.

    Args:
        generator_fn: The value passed as ``generator_fn``.

    Raises:
        TypeError: If ``generator_fn`` is not callable.
    """
    if callable(generator_fn):
        return
    if inspect.isgenerator(generator_fn) or isinstance(generator_fn, Iterator):
        raise TypeError(
            "generator_fn must be a callable that returns a fresh iterator for every epoch "
            f"(the generator function itself), got a {type(generator_fn).__name__} object: "
            "pass `make_elements`, not `make_elements()`"
        )
    raise TypeError(
        f"generator_fn must be a callable returning an iterable, got {type(generator_fn).__name__}"
    )


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
        array: A stacked chunk component.
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
    """Recycles the arrays a chunk is stacked into, once nothing else references them.

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

    Fully known shapes travel as one stacked array. A shape with ``None`` dimensions travels as a
    ragged chunk: flat values plus one row-length vector per dimension up to the last ``None``.
    """

    spec: tf.TensorSpec

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype of the spec."""
        return np.dtype(self.spec.dtype.as_numpy_dtype)

    @property
    def ragged_levels(self) -> int:
        """Number of leading element dimensions kept as ragged levels (0 for fixed shapes)."""
        dims = self.spec.shape.as_list()
        unknown = [axis for axis, size in enumerate(dims) if size is None]
        return unknown[-1] + 1 if unknown else 0

    def chunk_specs(self) -> list[tf.TensorSpec]:
        """The dense specs this leaf is sent as through ``from_generator``."""
        dims = self.spec.shape.as_list()
        levels = self.ragged_levels
        values = tf.TensorSpec([None, *dims[levels:]], self.spec.dtype)
        return [values] + [tf.TensorSpec([None], tf.int64) for _ in range(levels)]

    def convert(
        self, column: Sequence[Any], cast: bool, pool: _BufferPool | None = None
    ) -> list[np.ndarray]:
        """Turns the values of this leaf for a whole chunk into the arrays of ``chunk_specs``.

        Args:
            column: One value per element of the chunk.
            cast: False on the fast path (refuse anything inexact), True once the chunk passed
                ``check_element`` (cast exactly as ``from_generator`` would).
            pool: Where to take the stacked array from, on the fast path.

        Returns:
            The arrays to send.

        Raises:
            _MismatchError: If a shape or dtype does not fit (fast path).
        """
        if self.dtype.kind == "O" and self.ragged_levels == 0:
            return [self._strings(column)]
        if self.ragged_levels == 0:
            if pool is not None and not cast and self._stacks_exactly(column):
                shape = (len(column), *self.spec.shape.as_list())
                try:
                    return [np.stack(column, out=pool.get(shape, self.dtype), casting="no")]
                except (ValueError, TypeError):
                    pass  # a shape or dtype differs somewhere: the checks below say which
            try:
                # np.array is ~20x faster than np.stack on a column of scalars.
                array = np.array(column) if self.spec.shape.rank == 0 else np.stack(column)
            except ValueError:
                raise _MismatchError from None
            if array.shape[1:] != tuple(self.spec.shape.as_list()):
                raise _MismatchError
            return [array.astype(self.dtype) if cast else _fits(array, self.dtype)]
        return self._convert_ragged(column, cast)

    def _strings(self, column: Sequence[Any]) -> np.ndarray:
        """An object array of ``str``/``bytes`` (an ``S`` array would drop trailing NUL bytes)."""
        try:
            if self.spec.shape.rank == 0:
                array = np.empty(len(column), dtype=object)
                array[:] = column
            else:
                array = np.stack([np.asarray(value, dtype=object) for value in column])
        except ValueError:
            raise _MismatchError from None
        if array.shape[1:] != tuple(self.spec.shape.as_list()) or not all(
            isinstance(value, (str, bytes)) for value in array.flat
        ):
            raise _MismatchError
        return array

    def _stacks_exactly(self, column: Sequence[Any]) -> bool:
        """True if the column looks like arrays of the spec's dtype (worth stacking in place)."""
        first = column[0]
        return (
            self.spec.shape.rank > 0 and isinstance(first, np.ndarray) and first.dtype == self.dtype
        )

    def _convert_ragged(self, column: Sequence[Any], cast: bool) -> list[np.ndarray]:
        """Flat values and nested row lengths for a chunk of variable-shape values."""
        dims = self.spec.shape.as_list()
        levels = self.ragged_levels
        strings = self.dtype.kind == "O"
        arrays = [np.asarray(value, dtype=object if strings else None) for value in column]
        for array in arrays:
            if array.ndim != len(dims) or any(
                want is not None and got != want
                for got, want in zip(array.shape, dims, strict=True)
            ):
                raise _MismatchError
        trailing = tuple(dims[levels:])
        flat = np.concatenate([array.reshape((-1, *trailing)) for array in arrays])
        flat = flat.astype(self.dtype) if cast else _fits(flat, self.dtype)
        if strings and not all(isinstance(value, (str, bytes)) for value in flat.flat):
            raise _MismatchError
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


class _Plan:
    """Everything derived once from the signature: leaves, flattener, specs of a chunk."""

    def __init__(self, signature: Any) -> None:
        self.signature = signature
        self.leaves = [_Leaf(spec) for _, spec in _walk(signature)]
        self.flatten = _flattener(signature)
        self.chunk_signature = tuple(spec for leaf in self.leaves for spec in leaf.chunk_specs())
        self.ragged = any(leaf.ragged_levels for leaf in self.leaves)
        self.flat_tuple = isinstance(signature, (tuple, list)) and all(
            isinstance(item, tf.TypeSpec) for item in signature
        )

    def to_chunk(
        self, elements: list, start: int, where: str, pools: Sequence[_BufferPool] | None = None
    ) -> tuple[np.ndarray, ...]:
        """Converts a list of elements to the flat tuple of arrays of ``chunk_signature``.

        Args:
            elements: The elements of one chunk, as the user's generator yielded them.
            start: Index of the first element in the generator's output.
            where: Prefix for error messages (such as ``"shard 2 of 4: "``).
            pools: One buffer pool per leaf, private to one pass of one generator.

        Returns:
            The arrays to yield through ``from_generator``.

        Raises:
            helpers.signatures.SignatureError: If an element does not match the signature.
        """
        try:
            return self._convert(elements, cast=False, pools=pools)
        except _MismatchError:
            pass
        for offset, element in enumerate(elements):
            try:
                signatures.check_element(element, self.signature, index=start + offset)
            except signatures.SignatureError as error:
                if not where:
                    raise
                raise signatures.SignatureError(f"{where}{error}") from None
        try:
            return self._convert(elements, cast=True)
        except (_MismatchError, ValueError, TypeError) as error:
            raise signatures.SignatureError(
                f"{where}elements {start} to {start + len(elements) - 1}: they passed "
                f"check_element but could not be stacked into the signature {self.signature} "
                f"({type(error).__name__})"
            ) from error

    def _columns(self, elements: list) -> list[Sequence[Any]]:
        """One sequence of values per leaf; fast paths for a single leaf and a flat tuple."""
        width = len(self.leaves)
        if not isinstance(self.signature, (tuple, list, Mapping)):
            return [elements]
        if self.flat_tuple:
            for element in elements:
                if not isinstance(element, (tuple, list)) or len(element) != width:
                    raise _MismatchError
            return list(zip(*elements, strict=True))
        flat: list = []
        for element in elements:
            self.flatten(element, flat)
        return [flat[position::width] for position in range(width)]

    def _convert(
        self, elements: list, cast: bool, pools: Sequence[_BufferPool] | None = None
    ) -> tuple[np.ndarray, ...]:
        """Converts each leaf's column of a chunk (see ``_Leaf.convert``)."""
        out: list[np.ndarray] = []
        columns = self._columns(elements)
        for index, (leaf, column) in enumerate(zip(self.leaves, columns, strict=True)):
            out.extend(leaf.convert(column, cast, None if pools is None else pools[index]))
        return tuple(out)

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
        start = 0
        pools = [_BufferPool() for _ in plan.leaves]  # one pass, one thread: no sharing
        while chunk := list(itertools.islice(iterator, chunk_size)):
            yield plan.to_chunk(chunk, start, where, pools)
            start += len(chunk)

    return generate


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
    generator_fn: GeneratorFn, plan: _Plan, chunk_size: int, args: Any, sharded: bool = False
) -> tf.data.Dataset:
    """``from_generator`` over chunks, mapped back to the user's structure (leading ``None``)."""
    chunks = tf.data.Dataset.from_generator(
        _chunks(generator_fn, plan, chunk_size, sharded),
        output_signature=plan.chunk_signature,
        args=args,
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
    generator_fn: GeneratorFn, signature: Any, args: Any, batch_size: int | None
) -> tf.data.Dataset:
    """The documented fallback: per-element ``from_generator`` with checked elements."""
    dataset = tf.data.Dataset.from_generator(
        signatures.checked(generator_fn, signature), output_signature=signature, args=args
    )
    return dataset if batch_size is None else dataset.batch(batch_size)


# --------------------------------------------------------------------------- public API


def chunked_from_generator(
    generator_fn: GeneratorFn,
    output_signature: Any,
    *,
    args: Sequence[Any] = (),
    chunk_size: int = 256,
    batch_size: int | None = None,
) -> tf.data.Dataset:
    """A faster ``tf.data.Dataset.from_generator`` for the same per-element generator.

    Pulls ``chunk_size`` elements at a time from ``generator_fn(*args)``, stacks each component
    with NumPy and lets TensorFlow split the chunk again, so the per-element cost of
    ``from_generator`` is paid once per chunk. The result has the same elements in the same order,
    the same structure (tuples, dicts, nesting) and the same ``element_spec`` as
    ``tf.data.Dataset.from_generator(generator_fn, output_signature=output_signature, args=args)``,
    including the last partial chunk, and the generator is called afresh for every epoch.

    Components whose shape has ``None`` dimensions travel as ragged chunks and come out dense
    again, with their own shape. With ``batch_size``, the output equals ``.batch(batch_size)`` of
    the plain dataset (last batch partial); components with ``None`` dimensions then come out as
    ``tf.RaggedTensor`` batches (what ``Dataset.ragged_batch`` gives), since a dense batch of
    different shapes does not exist. Signatures with other leaves (``tf.RaggedTensorSpec``,
    ``tf.SparseTensorSpec``, unknown rank) fall back to the per-element ``from_generator`` with
    checked elements: correct, not faster.

    Elements are only checked one by one (with ``helpers.signatures.check_element``) when their
    chunk does not stack exactly: a wrong structure, shape or dtype, or a cast that could lose
    information. Exact chunks cost no check. One difference remains: the generator runs up to
    ``chunk_size`` elements ahead of the consumer, so side effects happen earlier.

    Args:
        generator_fn: A callable returning an iterable of elements; called once per epoch with
            ``*args``. Not a generator object.
        output_signature: A nest (tuples, lists, dicts) of ``tf.TensorSpec``, one per component.
        args: Arguments for ``generator_fn``, passed as ``from_generator`` passes them (converted
            to tensors and back, so strings arrive as ``bytes``).
        chunk_size: Elements stacked per chunk; the main speed knob (256 is a good default).
        batch_size: If given, the dataset yields batches of this size instead of elements.

    Returns:
        A ``tf.data.Dataset`` of elements (or batches) matching ``output_signature``.

    Raises:
        TypeError: If ``generator_fn`` is not callable (for example a generator object), or the
            signature contains something that is not a ``tf.TypeSpec``.
        ValueError: If ``chunk_size`` or ``batch_size`` is smaller than 1.
    """
    _check_callable(generator_fn)
    chunk_size = _check_count("chunk_size", chunk_size)
    batch_size = None if batch_size is None else _check_count("batch_size", batch_size)
    call_args = tuple(args) or None
    if not _supported(output_signature):
        return _plain(generator_fn, output_signature, call_args, batch_size)
    plan = _Plan(output_signature)
    return _finish(_chunk_dataset(generator_fn, plan, chunk_size, call_args), plan, batch_size)


def sharded_from_generator(
    generator_fn: GeneratorFn,
    output_signature: Any,
    *,
    num_shards: int,
    chunk_size: int = 256,
    batch_size: int | None = None,
    deterministic: bool = True,
) -> tf.data.Dataset:
    """Runs ``num_shards`` chunked generators side by side and interleaves their output.

    ``generator_fn(shard_index, num_shards)`` must yield the elements of one shard (for example
    every ``num_shards``-th file starting at ``shard_index``); together the shards should yield
    each element once. The shards are chunked as in :func:`chunked_from_generator` and interleaved
    chunk by chunk with ``num_parallel_calls=tf.data.AUTOTUNE``. With ``deterministic=True`` the
    order is fixed: chunk 0 of shard 0, chunk 0 of shard 1, ..., chunk 1 of shard 0, ...;
    ``deterministic=False`` lets a ready shard go first.

    tf.data's default thread pool has one thread per core, which caps how many shards run at once.
    Shards that wait on I/O need a thread each, so the dataset gets a private thread pool of
    ``max(num_shards, os.cpu_count())`` threads (``options.threading.private_threadpool_size``).

    Shards only speed things up when the generator releases the GIL (reading files, sockets,
    sleeping, large NumPy operations). Pure-Python generators run one at a time whatever the
    number of shards; chunking is what helps them.

    Args:
        generator_fn: A callable ``(shard_index, num_shards) -> iterable of elements``; both
            arguments arrive as NumPy ``int64``. Not a generator object.
        output_signature: A nest (tuples, lists, dicts) of ``tf.TensorSpec``.
        num_shards: Number of generators run side by side.
        chunk_size: Elements stacked per chunk (``1`` sends elements one by one).
        batch_size: If given, the dataset yields batches of this size instead of elements.
        deterministic: Keep the round-robin order above (True) or yield whatever is ready.

    Returns:
        A ``tf.data.Dataset`` of elements (or batches) matching ``output_signature``.

    Raises:
        TypeError: If ``generator_fn`` is not callable or the signature is not made of
            ``tf.TypeSpec`` leaves.
        ValueError: If ``num_shards``, ``chunk_size`` or ``batch_size`` is smaller than 1.
    """
    _check_callable(generator_fn)
    num_shards = _check_count("num_shards", num_shards)
    chunk_size = _check_count("chunk_size", chunk_size)
    batch_size = None if batch_size is None else _check_count("batch_size", batch_size)
    plan = _Plan(output_signature) if _supported(output_signature) else None

    @tf.autograph.experimental.do_not_convert  # builds datasets in Python; nothing to convert
    def shard(index: tf.Tensor) -> tf.data.Dataset:
        if plan is None:
            return _plain(generator_fn, output_signature, (index, num_shards), None)
        return _chunk_dataset(generator_fn, plan, chunk_size, (index, num_shards), sharded=True)

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
    options.threading.private_threadpool_size = max(num_shards, os.cpu_count() or 1)
    return dataset.with_options(options)
