"""Fast drop-ins for ``tf.data.Dataset.from_generator``: chunking and sharding.

``from_generator`` pays a fixed cost for every element it pulls out of Python (a call from
TensorFlow's runtime into Python, then a conversion of each component to a tensor).
:func:`chunked_from_generator` keeps your per-element generator unchanged but hands TensorFlow
``chunk_size`` elements at a time: it copies each element's components into per-chunk NumPy arrays
as the element arrives, and lets TensorFlow split the chunks again (``unbatch``) or regroup them
into batches (``rebatch``). The per-element cost is then paid once per chunk.
:func:`sharded_from_generator` runs several such generators (shards) side by side, which helps
when the generator waits outside the GIL (file or network reads, ``time.sleep``).

Both take ``from_generator``'s arguments (same names, positions and defaults) plus keyword-only
options, and deliver the same events: the same elements in the same order, the error of a bad
element at its position (after every good element before it, and the stream goes on after it, so
``.ignore_errors()`` keeps the good ones), the same end of data, a fresh generator call per pass.
The only differences:

=====================  ==========================================  ============================
What                   ``from_generator``                          chunked / sharded
=====================  ==========================================  ============================
Lossy casts            converts silently (``2.7`` -> ``2`` in       refuses the element with a
                       ``int32``, ``300`` -> ``44`` in ``int8``)   ``SignatureError`` naming
                                                                   its index and path
Spec names             kept in ``element_spec``                    dropped (``name=None``)
Run-ahead              one element per ``next()``, plus what        a chunk per ``next()``:
                       tf.data's automatic prefetch buffers        fewer than ``chunk_size``
                       (``inject_prefetch``, on by default)        elements ahead, plus the
                                                                   same prefetch, which now
                                                                   buffers chunks (sharded:
                                                                   ``chunk_size * (1 + 2 *
                                                                   num_shards)``)
=====================  ==========================================  ============================

Signatures with leaves other than ``tf.TensorSpec`` of known rank (``tf.RaggedTensorSpec``,
``tf.SparseTensorSpec``, ``output_types`` without ``output_shapes``) run through the plain
per-element ``from_generator`` with :func:`helpers.signatures.checked` elements: the same events,
not faster. The machinery lives in the private module ``helpers._chunks``.

Importing this module imports TensorFlow but configures nothing.

Example:
    >>> import tensorflow as tf
    >>> def numbers():
    ...     yield from range(5)
    >>> spec = tf.TensorSpec((), tf.int64)
    >>> [int(x) for x in chunked_from_generator(numbers, output_signature=spec, chunk_size=2)]
    [0, 1, 2, 3, 4]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from helpers import _args, _chunks, signatures

__all__ = ["chunked_from_generator", "sharded_from_generator", "usable_cores"]

GeneratorFn = Callable[..., Iterable[Any]]
_AUTO_FILL_LIMIT_S = 0.1  # a default-sized chunk is handed over after this long filling it


def chunked_from_generator(
    generator: GeneratorFn,
    output_types: Any = None,
    output_shapes: Any = None,
    args: Sequence[Any] | None = None,
    output_signature: Any = None,
    name: str | None = None,
    *,
    chunk_size: int | None = None,
    batch_size: int | None = None,
) -> tf.data.Dataset:
    """``tf.data.Dataset.from_generator``, with elements sent to TensorFlow a chunk at a time.

    The core idea in three steps: a chunk iterator pulls ``chunk_size`` elements from
    ``generator(*args)`` and copies them into one array per component; ``from_generator`` sends
    each chunk to TensorFlow at the cost of one element; ``unbatch`` (or ``rebatch``) splits the
    chunks again.

    Same elements, order, structure, errors and end of data as ``from_generator`` with the same
    arguments (see the module's table for the three differences): a refused element is an error
    for that element only, delivered after the good elements before it; the stream continues
    with the next one. Every value must convert to its spec's dtype without loss, as
    :func:`helpers.signatures.check_element` defines it (rounding ``float64`` to ``float32`` is
    allowed); where ``from_generator`` converts silently this raises ``SignatureError``, wrapped
    by TensorFlow in ``tf.errors.InvalidArgumentError``. Values are copied when they arrive, so a
    generator may refill and yield the same array every time.

    Components whose shape has ``None`` dimensions come out with their own shape. With
    ``batch_size``, the output equals ``.batch(batch_size)`` of the elements; components with
    ``None`` dimensions then come out as ``tf.RaggedTensor`` batches (``Dataset.ragged_batch``).

    Args:
        generator: A callable returning an iterable of elements; called once per pass with
            ``*args``. Not a generator object.
        output_types: Deprecated in ``from_generator``, accepted as it accepts them: a nest of
            ``tf.DType`` (give ``output_signature`` instead).
        output_shapes: With ``output_types``: a nest of shapes.
        args: Arguments for ``generator``, passed as ``from_generator`` passes them (converted
            to tensors and back, so strings arrive as ``bytes``).
        output_signature: A nest (tuples, dicts) of ``tf.TensorSpec``, one per component.
        name: A name for the tf.data operations, as in ``from_generator``.
        chunk_size: Elements per chunk, the main speed knob. By default ``batch_size`` (or
            256), doubled while a chunk of fixed-shape numbers stays within 16 MiB and
            4096 elements; a default-sized chunk is also handed over early, with the elements it
            has, once filling it took 0.1 s, so a slow generator's data is not held back (the
            next chunk then ends where the full one would have, keeping chunks on the batch grid).
        batch_size: If given, the dataset yields batches of this size instead of elements.

    Returns:
        A ``tf.data.Dataset`` of elements (or batches) with ``from_generator``'s element spec.

    Raises:
        SignatureError: If ``generator`` is not callable (for example a generator object).
        TypeError: For the argument combinations ``from_generator`` refuses (no signature, both
            ``output_types`` and ``output_signature``, a leaf that is not a ``tf.TypeSpec``, a
            list in the signature), with ``from_generator``'s message; or a size not an integer.
        ValueError: If ``chunk_size`` or ``batch_size`` is smaller than 1.

    Example:
        >>> def pairs():
        ...     for i in range(3):
        ...         yield [i, i], i
        >>> sig = (tf.TensorSpec((2,), tf.float32), tf.TensorSpec((), tf.int32))
        >>> ds = chunked_from_generator(pairs, output_signature=sig, batch_size=2)
        >>> [batch[1].numpy().tolist() for batch in ds]
        [[0, 1], [2]]
    """
    signatures.require_generator_function(generator, "chunked_from_generator()")
    chunk_size = None if chunk_size is None else _args.positive_int("chunk_size", chunk_size)
    batch_size = None if batch_size is None else _args.positive_int("batch_size", batch_size)
    signature = _signature(generator, output_types, output_shapes, args, output_signature, name)
    if not _chunks.supported(signature):
        return _batched(_checked_elements(generator, signature, args, name), batch_size)
    if chunk_size is None:
        size = _chunks.auto_chunk_size(signature, batch_size)
        plan = _chunks.Plan(signature, size, fill_limit_s=_AUTO_FILL_LIMIT_S)
    else:
        plan = _chunks.Plan(signature, chunk_size)
    return _split(_chunk_dataset(generator, plan, args, name), plan, batch_size)


def sharded_from_generator(
    generator: GeneratorFn,
    output_types: Any = None,
    output_shapes: Any = None,
    args: Sequence[Any] | None = None,
    output_signature: Any = None,
    name: str | None = None,
    *,
    num_shards: int,
    chunk_size: int | None = None,
    batch_size: int | None = None,
    deterministic: bool = True,
) -> tf.data.Dataset:
    """Runs ``num_shards`` chunked generators side by side and interleaves their output.

    ``generator(shard_index, num_shards, *args)`` yields the elements of one shard (for example
    every ``num_shards``-th file starting at ``shard_index``); together the shards should yield
    each element once. Each shard runs in its own Python thread, chunked as in
    :func:`chunked_from_generator`, and one ``from_generator`` takes the chunks in turn. With
    ``deterministic=True`` the order is fixed: chunk 0 of shard 0, chunk 0 of shard 1, ...,
    chunk 1 of shard 0, ... (a finished shard drops out); ``deterministic=False`` takes whichever
    shard is ready first. A bad element is an error for that element only, as in
    :func:`chunked_from_generator`; its chunk is delivered in pieces around it, each piece
    taking its shard's turn.

    **Choosing ``num_shards``.** Shards help only when the generator waits outside the GIL
    (reading files or sockets, sleeping, large NumPy operations): pick about as many shards as
    reads you want in flight, that is the wait per element times the elements per second you
    need (0.5 ms per read and 20,000 elements/s: 10 reads in flight, so 10 to 16 shards). More
    threads than that only add switching. Pure-Python generators run one at a time whatever the
    number of shards (the GIL); chunking is what helps them.

    **Run-ahead, bounded.** Each shard hands its chunks over through a queue of one, so besides
    the chunk being consumed each shard holds at most two chunks (one waiting, one being
    filled): at most ``chunk_size * (1 + 2 * num_shards)`` elements pulled ahead of the
    consumer, plus what tf.data's automatic prefetch buffers (see the module docstring).
    Deleting the iterator stops the threads and closes the shard generators.

    Signatures the chunk path does not handle (``tf.RaggedTensorSpec`` and other non-dense
    leaves) fall back to per-element ``from_generator`` shards run by ``interleave`` with a
    private pool of ``max(num_shards, usable cores)`` threads.

    Args:
        generator: A callable ``(shard_index, num_shards, *args) -> iterable of elements``;
            ``shard_index`` and ``num_shards`` arrive as NumPy ``int64``. Not a generator object.
        output_types: As in :func:`chunked_from_generator`.
        output_shapes: As in :func:`chunked_from_generator`.
        args: Extra arguments for ``generator``, passed after ``(shard_index, num_shards)``.
        output_signature: A nest (tuples, dicts) of ``tf.TensorSpec``.
        name: A name for the tf.data operations, as in ``from_generator``.
        num_shards: Number of generators run side by side.
        chunk_size: Elements per chunk (``1`` sends elements one by one). By default 256,
            halved for large elements while a chunk is over 16 MiB (down to 16).
        batch_size: If given, the dataset yields batches of this size instead of elements.
        deterministic: Keep the round-robin order above (True) or yield whatever is ready.

    Returns:
        A ``tf.data.Dataset`` of elements (or batches) with ``from_generator``'s element spec.

    Raises:
        SignatureError: If ``generator`` is not callable (for example a generator object).
        TypeError: For the argument combinations ``from_generator`` refuses, or a size that is
            not an integer.
        ValueError: If ``num_shards``, ``chunk_size`` or ``batch_size`` is smaller than 1.
    """
    signatures.require_generator_function(generator, "sharded_from_generator()")
    num_shards = _args.positive_int("num_shards", num_shards)
    chunk_size = None if chunk_size is None else _args.positive_int("chunk_size", chunk_size)
    batch_size = None if batch_size is None else _args.positive_int("batch_size", batch_size)
    extra = tuple(args) if args is not None else ()
    signature = _signature(
        generator, output_types, output_shapes, (0, num_shards, *extra), output_signature, name
    )
    if not _chunks.supported(signature):
        return _sharded_checked_elements(
            generator, signature, extra, name, num_shards, batch_size, deterministic
        )
    plan = _chunks.Plan(signature, chunk_size or _chunks.auto_shard_chunk_size(signature))

    def shards(count: Any, *call_args: Any) -> _chunks.ShardedChunks:
        def chunks(index: int) -> _chunks.ChunkIterator:
            shard_args = (np.int64(index), count, *call_args)
            where = f"shard {index} of {count}: "
            return _chunks.ChunkIterator(plan, _iterate(generator, shard_args), where)

        return _chunks.ShardedChunks(chunks, int(count), deterministic)

    dataset = tf.data.Dataset.from_generator(
        shards, output_signature=plan.chunk_signature, args=(num_shards, *extra), name=name
    )
    return _split(dataset.map(plan.pack), plan, batch_size)


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


# --------------------------------------------------------------------------- private


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
    given = {
        "output_types": output_types,
        "output_shapes": output_shapes,
        "args": args,
        "output_signature": output_signature,
        "name": name,
    }  # only what was given: naming output_types at all makes TensorFlow log a deprecation
    arguments = {key: value for key, value in given.items() if value is not None}
    return tf.data.Dataset.from_generator(generator, **arguments).element_spec


def _iterate(generator: GeneratorFn, args: Sequence[Any]) -> Iterator[Any]:
    """``iter(generator(*args))``, with a clear message when the result is not iterable."""
    iterable = generator(*args)
    try:
        return iter(iterable)
    except TypeError:
        raise TypeError(
            f"generator must return an iterable, got {type(iterable).__name__}"
        ) from None


def _chunk_dataset(
    generator: GeneratorFn,
    plan: _chunks.Plan,
    args: Any,
    name: str | None,
    sharded: bool = False,
) -> tf.data.Dataset:
    """``from_generator`` over chunk iterators, mapped back to the user's structure."""

    def chunks(*call_args: Any) -> _chunks.ChunkIterator:
        where = f"shard {call_args[0]} of {call_args[1]}: " if sharded else ""
        return _chunks.ChunkIterator(plan, _iterate(generator, call_args), where)

    dataset = tf.data.Dataset.from_generator(
        chunks, output_signature=plan.chunk_signature, args=args, name=name
    )
    return dataset.map(plan.pack)


def _split(chunks: tf.data.Dataset, plan: _chunks.Plan, batch_size: int | None) -> tf.data.Dataset:
    """Splits chunks into elements, or regroups them into batches of ``batch_size``."""
    if not plan.shaped:
        return _unbatch(chunks) if batch_size is None else chunks.rebatch(batch_size)
    if batch_size is not None and plan.rows_are_exact:  # ragged batches straight from the chunks
        return chunks.map(plan.ragged_rows).rebatch(batch_size)
    elements = _unbatch(chunks).map(plan.densify)
    return elements if batch_size is None else elements.ragged_batch(batch_size)


def _unbatch(chunks: tf.data.Dataset) -> tf.data.Dataset:
    """``chunks.unbatch()``, except where ``unbatch`` would crash the process.

    ``unbatch`` segfaults (TensorFlow 2.20 and 2.21) on a component whose rows hold no values, such
    as a chunk of shape ``(n, 0)``; ``flat_map(from_tensor_slices)`` splits those correctly.
    """
    shapes = [spec.shape for spec in tf.nest.flatten(chunks.element_spec)]
    if not any(0 in shape[1:] for shape in shapes if shape.rank is not None):
        return chunks.unbatch()
    if isinstance(chunks.element_spec, tuple):  # flat_map passes a tuple's parts as arguments
        return chunks.flat_map(lambda *parts: tf.data.Dataset.from_tensor_slices(parts))
    return chunks.flat_map(tf.data.Dataset.from_tensor_slices)


def _checked_elements(
    generator: GeneratorFn, signature: Any, args: Any, name: str | None
) -> tf.data.Dataset:
    """The fallback: per-element ``from_generator`` with checked elements."""
    return tf.data.Dataset.from_generator(
        signatures.checked(generator, signature), output_signature=signature, args=args, name=name
    )


def _sharded_checked_elements(
    generator: GeneratorFn,
    signature: Any,
    extra: tuple[Any, ...],
    name: str | None,
    num_shards: int,
    batch_size: int | None,
    deterministic: bool,
) -> tf.data.Dataset:
    """The fallback for shards: per-element ``from_generator`` datasets, interleaved."""

    @tf.autograph.experimental.do_not_convert  # builds datasets in Python; nothing to convert
    def shard(index: tf.Tensor) -> tf.data.Dataset:
        return _checked_elements(generator, signature, (index, num_shards, *extra), name)

    interleaved = tf.data.Dataset.range(num_shards).interleave(
        shard,
        cycle_length=num_shards,
        block_length=1,
        num_parallel_calls=num_shards,
        deterministic=deterministic,
    )
    options = tf.data.Options()
    options.threading.private_threadpool_size = max(num_shards, usable_cores())
    return _batched(interleaved, batch_size).with_options(options)


def _batched(dataset: tf.data.Dataset, batch_size: int | None) -> tf.data.Dataset:
    """``dataset.batch(batch_size)``, or the dataset itself without a batch size."""
    return dataset if batch_size is None else dataset.batch(batch_size)
