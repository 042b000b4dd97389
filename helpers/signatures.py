"""Infer, check and describe the ``output_signature`` of ``tf.data.Dataset.from_generator``.

``from_generator`` converts every yielded element to the dtypes of its ``output_signature`` with a
NumPy cast. A wrong structure, shape or an unconvertible value raises, but only when the dataset
is iterated, wrapped in a long ``InvalidArgumentError``. Worse, many wrong *values* do not raise:
measured on TensorFlow 2.21 with a ``tf.TensorSpec((), tf.int32)``, ``2.7`` arrives as ``2``,
``2**40`` as ``0``, ``2**31`` as ``-2147483648``, ``float("nan")`` as ``-2147483648`` and the
string ``"3"`` as ``3``; ``-1`` arrives as ``255`` in a ``uint8`` spec and ``1e300`` as ``inf`` in a
``float32`` spec.

This module finds those problems in plain Python, before or while TensorFlow sees the data:

* :func:`infer_signature` builds an ``output_signature`` from a few sample elements.
* :func:`check_element` checks one element against a signature and raises :class:`SignatureError`
  naming the element index, the path inside the structure, what was expected and what came; it
  also refuses every value that would not survive the cast to the spec's dtype unchanged.
* :func:`checked` wraps a generator function so every element it yields is checked, a drop-in for
  ``from_generator(checked(gen, sig), output_signature=sig)``.
* :func:`describe` prints a signature as a small table.

Paths follow ``tf.nest``: ``[1]`` is position 1 of a tuple, ``['image']`` is the dict key
``"image"``, ``[0]['image']`` nests them, and ``<root>`` is an element that is a single tensor. A
``str`` or ``bytes`` dict key is shown as its ``repr``; any other dict key as ``[key=<repr>]``
(``[key=1]`` is the int key 1, never to be confused with position ``[1]``). Dict keys are visited in
sorted order, as ``tf.nest`` and ``from_generator`` do.

Besides ``tf.TensorSpec`` and ``tf.RaggedTensorSpec``, signatures may hold ``tf.SparseTensorSpec``
leaves (``from_generator`` accepts a ``tf.SparseTensor`` or ``tf.compat.v1.SparseTensorValue``
there, without any cast).

This module holds the public functions and the structure walk. What a single value becomes in the
cast, and why it is refused, is decided in :mod:`helpers._casts` (exotic numbers, ``bfloat16`` and
the stricter conversion ``from_generator`` uses with a ragged or sparse spec included); how samples
become specs in :mod:`helpers._infer`.

Example:
    >>> import numpy as np
    >>> import tensorflow as tf
    >>> sig = infer_signature([(np.zeros((2, 3), np.float32), 1), (np.ones((4, 3), np.float32), 0)])
    >>> print(describe(sig))
    path  dtype    shape
    [0]   float32  (None, 3)
    [1]   int64    ()
    >>> check_element((np.zeros((5, 3), np.float32), 2**63), sig, index=7)
    Traceback (most recent call last):
    ...
    helpers.signatures.SignatureError: element 7, [1]: expected int64 with shape (), got ...
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeAlias

import tensorflow as tf

from helpers import _casts, _infer
from helpers._errors import MismatchError, SignatureError, describe_value, format_shape, format_spec
from helpers._nest import ROOT, check_structure, join_key, join_position, leaves, sorted_keys

__all__ = [
    "Signature",
    "SignatureError",
    "check_element",
    "checked",
    "describe",
    "infer_signature",
    "require_generator_function",
]

Signature: TypeAlias = Any
"""An ``output_signature``: a ``tf.TensorSpec``, ``tf.RaggedTensorSpec`` or ``tf.SparseTensorSpec``,
or tuples and dicts of them (``Any`` to type checkers: TensorFlow's own types are not checked)."""


def check_element(
    element: Any, signature: Signature, *, index: int | None = None, strict: bool = False
) -> None:
    """Checks one element against an ``output_signature`` like ``from_generator`` does, and more.

    Raises for everything ``from_generator`` refuses (wrong structure, list instead of tuple,
    missing or extra dict key, incompatible shape or rank, ``None``, unconvertible values) and for
    the silent damage it does not refuse: any value that does not survive the cast to the spec's
    dtype unchanged (fractional floats into integers, integers outside the target range, NaN or inf
    into integers, finite floats overflowing to inf, negatives into unsigned dtypes, numbers other
    than 0 and 1 into ``bool``, dropped imaginary parts, integers too large to be exact in a float
    dtype) and strings into numeric dtypes. Rounding a float to a narrower float dtype
    (``float64`` -> ``float32``) is allowed unless ``strict`` is True; overflow never is.
    ``decimal.Decimal`` and ``fractions.Fraction`` values, which ``from_generator`` converts with
    ``float()``/``int()``, follow the float rules. A list for a ``tf.string`` spec must hold only
    str or bytes. An empty value passes for every dtype, as in ``from_generator``. Values are
    converted in the calling thread; TensorFlow's own threads flush subnormal floats to zero, a
    change ``strict`` sees only when the check runs inside the pipeline (as with :func:`checked`).

    ``bool`` into numbers and exact int -> float casts are allowed. A ``tf.RaggedTensorSpec``
    needs a ``tf.RaggedTensor`` of exactly its dtype, ragged rank and row-splits dtype; a
    ``tf.SparseTensorSpec`` a ``tf.SparseTensor`` (or ``tf.compat.v1.SparseTensorValue``) of
    exactly its dtype with a compatible dense shape. With either spec anywhere in the signature,
    ``from_generator`` converts dense components with ``tf.convert_to_tensor``, which is stricter;
    this check follows it (a Python float is refused for an integer dtype, a Python string, None,
    ``Decimal`` or ``Fraction`` for a number, and a ``tf.Tensor`` must have the spec's dtype).

    Args:
        element: one element as a generator would yield it.
        signature: the ``output_signature``: a ``tf.TensorSpec``, ``tf.RaggedTensorSpec`` or
            ``tf.SparseTensorSpec``, or tuples and dicts of them.
        index: the element's position in the stream, named in the message when given.
        strict: also refuse float rounding (``float64`` -> ``float32``).

    Raises:
        SignatureError: with a message such as ``element 3, ['image']: expected float32 with shape
            (28, 28, 3), got float64 array with shape (28, 28): the shape (28, 28) does not fit
            (28, 28, 3)``.

    Example:
        >>> spec = tf.TensorSpec((), tf.int32)
        >>> check_element(7, spec)
        >>> check_element(2**40, spec, index=3)
        Traceback (most recent call last):
        ...
        helpers.signatures.SignatureError: element 3, <root>: expected int32 with shape (), got ...
    """
    prefix = "" if index is None else f"element {index}, "
    _walk(element, signature, prefix, strict, _validate_signature(signature))


def require_generator_function(generator_fn: Any, caller: str) -> None:
    """Refuses a generator object, or any non-callable, where a generator function is needed.

    ``from_generator`` and the helpers built on it call the function afresh for every pass over the
    data, so they need the generator *function*; a generator object can be iterated only once.

    Args:
        generator_fn: The value to check.
        caller: The name of the function that needs it, for the message (e.g. ``"checked()"``).

    Raises:
        SignatureError: If ``generator_fn`` is a generator object or not callable.

    Example:
        >>> def gen():
        ...     yield 1
        >>> require_generator_function(gen, "checked()")  # fine
        >>> require_generator_function(gen(), "checked()")
        Traceback (most recent call last):
        ...
        helpers.signatures.SignatureError: checked() needs the generator function, ...
    """
    if inspect.isgenerator(generator_fn) or (
        isinstance(generator_fn, Iterator) and not callable(generator_fn)
    ):
        raise SignatureError(
            f"{caller} needs the generator function, not a generator object: pass `gen`, not "
            "`gen()` (from_generator calls the function afresh for every pass over the data)"
        )
    if not callable(generator_fn):
        raise SignatureError(
            f"{caller} needs a callable returning an iterator, got {describe_value(generator_fn)}"
        )


def checked(
    generator_fn: Callable[..., Iterable[Any]], signature: Signature, *, strict: bool = False
) -> Callable[..., Iterator[Any]]:
    """Wraps a generator function so that every element it yields is checked first.

    The wrapper takes the same arguments (``from_generator`` passes ``args=`` as NumPy values),
    returns an iterator over the same elements, and calls :func:`check_element` on each with its
    index, counted from 0 on every call (every pass over the dataset). A refused element raises
    for that element only: the next ``next()`` goes on with the following element, as
    ``from_generator`` does after an element it cannot convert. Inside a pipeline the
    :class:`SignatureError` surfaces as TensorFlow's ``InvalidArgumentError`` whose message
    contains the check's message.

    Args:
        generator_fn: the generator function (a callable), not a generator object.
        signature: the ``output_signature`` to check against.
        strict: passed to :func:`check_element`.

    Returns:
        A function with ``generator_fn``'s name and docstring, returning an iterator.

    Raises:
        SignatureError: if ``generator_fn`` is a generator object or not callable, or the signature
            holds something other than TensorSpec, RaggedTensorSpec and SparseTensorSpec in tuples
            and dicts.

    Example:
        >>> def gen():
        ...     yield 1
        ...     yield 2**40
        >>> sig = tf.TensorSpec((), tf.int32)
        >>> ds = tf.data.Dataset.from_generator(checked(gen, sig), output_signature=sig)
    """
    require_generator_function(generator_fn, "checked()")
    tensor_mode = _validate_signature(signature)

    @functools.wraps(generator_fn)
    def checked_generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
        iterator = iter(generator_fn(*args, **kwargs))
        return _CheckedIterator(iterator, signature, strict, tensor_mode)

    return checked_generator


def infer_signature(source: Any, *, num_samples: int = 16) -> Signature:
    """Infers an ``output_signature`` for ``from_generator`` from sample elements.

    Each leaf gets a spec from its value:

    * NumPy arrays and scalars keep their dtype and shape; ``tf.Tensor``, ``tf.RaggedTensor`` and
      ``tf.SparseTensor`` (or ``SparseTensorValue``) their spec. NumPy and Python strings and
      bytes become ``tf.string``.
    * Python scalars: ``bool`` -> ``tf.bool``; ``int`` -> ``tf.int64`` (``int32`` would wrap
      values from ``2**31`` on, silently); ``float`` -> ``tf.float32``, TensorFlow's own choice for
      Python floats and what models use (a float64 value is rounded to float32, which
      :func:`check_element` allows; one too large for float32 is refused there);
      ``complex`` -> ``tf.complex64`` for the same reason.
    * Lists are single tensors, as in ``from_generator`` (only tuples and dicts are structures);
      their items follow the Python-scalar rules. Rows of different lengths are an error: yield a
      ``tf.RaggedTensor`` for them. A list mixing strings with other values is an error. An empty
      list takes its dtype from the other samples (``tf.float32``, as ``tf.constant([])``, if all
      are empty).
    * ``Decimal`` and ``Fraction`` values and Mappings that are not dicts (``from_generator``
      refuses those as structures) are errors.

    A dimension that differs between samples becomes ``None``. A structure, dtype or rank that
    differs is an error naming both samples and the path; so is a ``None`` value. Finally every
    sample is checked against the result with :func:`check_element`.

    Args:
        source: an iterable of sample elements, or a zero-argument callable returning an iterator
            (such as the generator function itself; it is called afresh, so the real run is not
            consumed). A generator *object* works as an iterable, but the samples taken are
            consumed from it.
        num_samples: how many samples to look at, at most.

    Returns:
        The ``output_signature``: a ``tf.TensorSpec``/``tf.RaggedTensorSpec`` or tuples and dicts
        of them (namedtuples are kept).

    Raises:
        SignatureError: if the source is empty or not iterable, or the samples disagree.
        ValueError: if ``num_samples`` is not a positive int.

    Example:
        >>> import numpy as np
        >>> def gen():
        ...     for n in (3, 5):
        ...         yield {"tokens": np.arange(n, dtype=np.int32), "label": n % 2}
        >>> infer_signature(gen)["tokens"]
        TensorSpec(shape=(None,), dtype=tf.int32, name=None)
    """
    samples = _infer.take_samples(source, num_samples)
    merged = _infer.merge_samples(samples)
    tensor_mode = _validate_signature(merged)
    for index, sample in enumerate(samples):
        try:
            _walk(sample, merged, "", False, tensor_mode)
        except SignatureError as error:
            raise SignatureError(
                f"the inferred signature refuses sample {index}: {error}"
            ) from None
    return merged


def describe(signature: Signature) -> str:
    """Formats a signature as a small aligned table: one row per leaf, in ``tf.nest`` order.

    Args:
        signature: an ``output_signature`` (specs in tuples and dicts), or ``dataset.element_spec``.

    Returns:
        The table as text, columns ``path``, ``dtype`` and ``shape``; ragged leaves are marked
        ``ragged`` with their ragged rank, sparse leaves ``sparse`` (the shape is the dense shape).

    Raises:
        SignatureError: if a leaf is not a TensorSpec, RaggedTensorSpec or SparseTensorSpec.

    Example:
        >>> sig = {
        ...     "image": tf.TensorSpec((28, 28), tf.float32),
        ...     "label": tf.TensorSpec((), tf.int64),
        ... }
        >>> print(describe(sig))
        path       dtype    shape
        ['image']  float32  (28, 28)
        ['label']  int64    ()
    """
    _validate_signature(signature)
    rows = [("path", "dtype", "shape")]
    for path, spec in leaves(signature):
        shape = format_shape(spec.shape)
        if isinstance(spec, tf.RaggedTensorSpec):
            shape += f" ragged (ragged_rank {spec.ragged_rank})"
        elif isinstance(spec, tf.SparseTensorSpec):
            shape += " sparse"
        rows.append((path, spec.dtype.name, shape))
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    lines = [f"{p:<{widths[0]}}  {d:<{widths[1]}}  {s}" for p, d, s in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Private glue: signature validation, the walk over an element, the checked iterator
# --------------------------------------------------------------------------------------------


def _validate_signature(signature: Signature) -> str:
    """Checks that every leaf is a TensorSpec, RaggedTensorSpec or SparseTensorSpec.

    Returns:
        The conversion mode: ``""`` if every leaf is a TensorSpec (``from_generator`` converts with
        NumPy), otherwise the spec that makes it convert with ``tf.convert_to_tensor``, e.g.
        ``"a RaggedTensorSpec"`` (see :mod:`helpers._casts`).

    Raises:
        SignatureError: if a leaf is something else (a list, a dtype, a string, ...).
    """
    mode = ""
    for path, spec in leaves(signature):
        if isinstance(spec, (tf.RaggedTensorSpec, tf.SparseTensorSpec)):
            mode = mode or f"a {type(spec).__name__}"
        elif not isinstance(spec, tf.TensorSpec):
            hint = " (use a tuple: from_generator refuses lists in a signature)"
            raise SignatureError(
                f"signature at {path}: expected tf.TensorSpec, tf.RaggedTensorSpec or "
                f"tf.SparseTensorSpec, got {type(spec).__name__}"
                f"{hint if isinstance(spec, list) else ''}"
            )
    return mode


def _walk(
    element: Any,
    signature: Signature,
    prefix: str,
    strict: bool,
    tensor_mode: str,
    path: str = ROOT,
) -> None:
    """Checks an element against a signature; raises SignatureError at the first fault.

    Tuples and dicts are checked here, leaves by :mod:`helpers._casts`. ``prefix`` starts every
    message (``"element 3, "`` or ``""``); ``tensor_mode`` is what :func:`_validate_signature`
    returned for the whole signature.
    """
    where = f"{prefix}{path}"
    if isinstance(signature, dict):
        check_structure(element, signature, where)
        for key in sorted_keys(signature, where):
            _walk(element[key], signature[key], prefix, strict, tensor_mode, join_key(path, key))
        return
    if isinstance(signature, tuple):
        check_structure(element, signature, where)
        for position, (item, spec) in enumerate(zip(element, signature, strict=True)):
            _walk(item, spec, prefix, strict, tensor_mode, join_position(path, position))
        return
    try:
        if isinstance(signature, tf.RaggedTensorSpec):
            _casts.check_ragged(element, signature)
        elif isinstance(signature, tf.SparseTensorSpec):
            _casts.check_sparse(element, signature)
        else:
            _casts.check_dense(element, signature, strict, tensor_mode)
    except MismatchError as mismatch:
        raise SignatureError(
            f"{where}: expected {format_spec(signature)}, got {describe_value(element)}: {mismatch}"
        ) from None


class _CheckedIterator:
    """The iterator :func:`checked` returns: a refused element raises, and the stream goes on.

    An iterator object rather than a generator: a generator that raises is finished, while
    ``from_generator`` calls ``next()`` again after a bad element and gets the following one.
    """

    def __init__(
        self, iterator: Iterator[Any], signature: Signature, strict: bool, tensor_mode: str
    ) -> None:
        """Wraps ``iterator``; indices count the elements it yields, from 0."""
        self._iterator = iterator
        self._signature = signature
        self._strict = strict
        self._tensor_mode = tensor_mode
        self._index = 0

    def __iter__(self) -> Iterator[Any]:
        """An iterator is its own iterable."""
        return self

    def __next__(self) -> Any:
        """The next element, checked; ``SignatureError`` for a refused one."""
        element = next(self._iterator)
        index = self._index
        self._index += 1
        _walk(element, self._signature, f"element {index}, ", self._strict, self._tensor_mode)
        return element
