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

import decimal
import fractions
import functools
import inspect
import itertools
import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from helpers._nest import ROOT, join_key, join_position

__all__ = [
    "SignatureError",
    "check_element",
    "checked",
    "describe",
    "infer_signature",
    "require_generator_function",
]


_STRING_TYPES = (str, bytes, np.str_, np.bytes_)
_RATIONAL_TYPES = (decimal.Decimal, fractions.Fraction)
"""Exact non-float numbers that from_generator converts like floats (``float(x)``, ``int(x)``)."""
_SPARSE_TYPES = (tf.SparseTensor, tf.compat.v1.SparseTensorValue)


class SignatureError(TypeError):
    """An element, a sample or a signature does not fit what ``from_generator`` needs.

    A subclass of ``TypeError``, like the errors ``from_generator`` itself raises for a bad element.
    The message names the element (or sample) index, the path inside the structure, what was
    expected and what came.
    """


# --------------------------------------------------------------------------------------------
# Paths and structure walking (the tf.data flavour of tf.nest: lists are leaves, not structures)
# --------------------------------------------------------------------------------------------


def _is_structure(value: Any) -> bool:
    """True for what ``from_generator`` treats as a structure: tuples and dicts, not lists."""
    return isinstance(value, (tuple, dict))


def _sorted_keys(mapping: Mapping[Any, Any], where: str) -> list[Any]:
    """Returns the keys of a dict in ``tf.nest`` order (sorted)."""
    try:
        return sorted(mapping)
    except TypeError as error:
        raise SignatureError(
            f"{where}: dict keys must be sortable, got {list(mapping)!r}"
        ) from error


def _leaves(signature: Any, path: str = ROOT) -> Iterator[tuple[str, Any]]:
    """Yields ``(path, spec)`` for every leaf of a signature, in ``tf.nest`` order."""
    if isinstance(signature, dict):
        for key in _sorted_keys(signature, path):
            yield from _leaves(signature[key], join_key(path, key))
    elif isinstance(signature, tuple):
        for position, item in enumerate(signature):
            yield from _leaves(item, join_position(path, position))
    else:
        yield path, signature


def _validate_signature(signature: Any) -> str:
    """Checks that every leaf is a TensorSpec, RaggedTensorSpec or SparseTensorSpec.

    Returns:
        The conversion mode: ``""`` if every leaf is a TensorSpec (``from_generator`` converts with
        NumPy), otherwise the spec that makes it convert with ``tf.convert_to_tensor``, e.g.
        ``"a RaggedTensorSpec"`` (see :func:`_check_python_for_tensor_mode`).

    Raises:
        SignatureError: if a leaf is something else (a list, a dtype, a string, ...).
    """
    mode = ""
    for path, spec in _leaves(signature):
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


# --------------------------------------------------------------------------------------------
# Describing values and specs in messages
# --------------------------------------------------------------------------------------------


def _format_shape(shape: tf.TensorShape | tuple[int | None, ...]) -> str:
    """Formats a shape like a Python tuple, ``<unknown>`` for unknown rank."""
    if isinstance(shape, tf.TensorShape):
        if shape.rank is None:
            return "<unknown>"
        shape = tuple(shape.as_list())
    return str(tuple(shape))


def _format_spec(spec: tf.TensorSpec | tf.RaggedTensorSpec | tf.SparseTensorSpec) -> str:
    """Formats a spec for a message, e.g. ``float32 with shape (28, 28, 3)``."""
    if isinstance(spec, tf.SparseTensorSpec):
        return (
            f"a tf.SparseTensor of {spec.dtype.name} with dense shape {_format_shape(spec.shape)}"
        )
    if isinstance(spec, tf.RaggedTensorSpec):
        return (
            f"a tf.RaggedTensor of {spec.dtype.name} with shape {_format_shape(spec.shape)}, "
            f"ragged_rank {spec.ragged_rank}, row_splits {spec.row_splits_dtype.name}"
        )
    return f"{spec.dtype.name} with shape {_format_shape(spec.shape)}"


def _format_scalar(value: Any) -> str:
    """Formats one value (a Python or NumPy scalar) for a message."""
    if isinstance(value, np.generic):
        value = value.item() if value.dtype.kind in "biufcSU" else value
    return repr(value)


def _describe_value(value: Any) -> str:
    """Describes a yielded value for a message: its kind, dtype, shape and, if small, its value."""
    if value is None:
        return "None"
    if isinstance(value, tf.RaggedTensor):
        return (
            f"a tf.RaggedTensor of {value.dtype.name} with shape {_format_shape(value.shape)}, "
            f"ragged_rank {value.ragged_rank}, row_splits {value.row_splits.dtype.name}"
        )
    if isinstance(value, tf.SparseTensor):
        return (
            f"a tf.SparseTensor of {value.dtype.name} with dense shape {_format_shape(value.shape)}"
        )
    if isinstance(value, tf.compat.v1.SparseTensorValue):
        return f"a SparseTensorValue with dense_shape {np.asarray(value.dense_shape).tolist()}"
    if isinstance(value, tf.Tensor):
        return f"a tf.Tensor of {value.dtype.name} with shape {_format_shape(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array with shape {value.shape}"
    if isinstance(value, np.generic):
        return f"NumPy {value.dtype} {_format_scalar(value)}"
    if isinstance(value, (bool, int, float, complex, str, bytes)):
        return f"Python {type(value).__name__} {_format_scalar(value)}"
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type(value).__name__} {text}"


# --------------------------------------------------------------------------------------------
# Dense values: emulate the NumPy conversion from_generator does, then compare values
# --------------------------------------------------------------------------------------------


def _shape_fits(shape: tuple[int, ...], spec_shape: tf.TensorShape) -> bool:
    """True if an actual shape is compatible with a spec shape (``None`` matches any size)."""
    if spec_shape.rank is None:
        return True
    dims = spec_shape.as_list()
    return len(dims) == len(shape) and all(
        d is None or d == s for d, s in zip(dims, shape, strict=True)
    )


def _tf_convert(value: Any, target: np.dtype) -> np.ndarray:
    """Converts a yielded value exactly like ``from_generator`` does (NumPy, no TensorFlow op)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if np.issubdtype(target, np.number):
            return np.asarray(value, order="C").astype(target)
        return np.asarray(value, dtype=target, order="C")


def _is_exact_cast(source: np.dtype, target: np.dtype) -> bool:
    """True if every value of ``source`` survives the cast to ``target`` unchanged."""
    if source == target:
        return True
    if source.kind not in "biufc" or target.kind not in "biufc":
        return False
    if source.kind in "iu" and source.itemsize == 8 and target.kind in "fc":
        return False  # NumPy calls int64 -> float64 "safe", but 2**53 + 1 does not survive it.
    return bool(np.can_cast(source, target, casting="safe"))


def _float_kind(dtype: tf.DType) -> bool:
    """True for floating and complex TensorFlow dtypes."""
    return dtype.is_floating or dtype.is_complex


def _bad_mask(src: np.ndarray, out: np.ndarray, dtype: tf.DType, strict: bool) -> np.ndarray:
    """Marks the values of ``src`` that did not survive the cast to ``out`` unchanged.

    Every comparison is exact on every platform: integers are compared as integers (range check,
    then a round trip), floats in their own dtype (float16 as float32), never in ``np.longdouble``.

    Args:
        src: the yielded values, a NumPy array of kind b, i, u, f or c.
        out: ``src`` converted to the spec's dtype the way ``from_generator`` converts it.
        dtype: the spec's dtype.
        strict: if False, rounding a float to a narrower float dtype is allowed (overflow is not).

    Returns:
        A boolean array of ``src``'s shape.
    """
    with np.errstate(all="ignore"):
        lost_imaginary = None
        if src.dtype.kind == "c" and not dtype.is_complex:
            lost_imaginary = src.imag != 0
            src = src.real
        if dtype.is_bool:
            bad = ~((src == 0) | (src == 1))
        elif dtype.is_integer:
            bad = _bad_integer_cast(src, out.dtype)
        else:
            bad = _bad_float_part(src.real, _real_float(out.real), strict)
            if dtype.is_complex:
                bad |= _bad_float_part(np.imag(src), out.imag, strict)
        return bad if lost_imaginary is None else bad | lost_imaginary


def _real_float(array: np.ndarray) -> np.ndarray:
    """Returns a float array that NumPy can compare: bfloat16 is widened (exactly) to float32."""
    return array.astype(np.float32) if array.dtype.kind == "V" else array


def _integer_bounds(dtype: np.dtype) -> tuple[float, float]:
    """Returns ``(low, high)`` with every value of the integer ``dtype`` in ``[low, high)``.

    Both are powers of two (or 0), so they are exact in float32 and wider floats.
    """
    info = np.iinfo(dtype)
    return float(int(info.min)), float(int(info.max) + 1)


def _holds_bounds(array: np.ndarray) -> np.ndarray:
    """Widens float16 to float32 (exactly), so the integer bounds up to 2**64 are exact in it."""
    return array.astype(np.float32) if array.dtype.itemsize < 4 else array


def _bad_integer_cast(src: np.ndarray, target: np.dtype) -> np.ndarray:
    """Marks real values (bool, integer or float) that an integer ``target`` cannot hold exactly."""
    if src.dtype.kind in "biu":
        info = np.iinfo(target)
        return (src < int(info.min)) | (src > int(info.max))  # NumPy compares integers exactly
    wide = _holds_bounds(src)
    low, high = _integer_bounds(target)
    whole = np.isfinite(wide) & (wide >= low) & (wide < high) & (np.trunc(wide) == wide)
    return ~whole


def _bad_float_part(src: np.ndarray, out: np.ndarray, strict: bool) -> np.ndarray:
    """Marks real values that changed in a cast to a floating dtype (see :func:`_bad_mask`)."""
    if src.dtype.kind == "b":
        return np.zeros(src.shape, dtype=bool)
    if src.dtype.kind in "iu":
        return _bad_integer_round_trip(src, out)
    if not strict:  # only overflow counts: finite values that became inf
        overflow = ~np.isfinite(out)
        return overflow & np.isfinite(src) if overflow.any() else overflow
    # NumPy promotes both sides to the wider float dtype, which holds both exactly.
    return ~((src == out) | (np.isnan(src) & np.isnan(out)))


def _bad_integer_round_trip(src: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Marks integers that did not survive the cast to the float array ``out``.

    An integer survives if its float is finite, inside the integer dtype's range (so the cast
    back is defined) and casts back to the same integer.
    """
    low, high = _integer_bounds(src.dtype)
    wide = _holds_bounds(out)
    in_range = np.isfinite(wide) & (wide >= low) & (wide < high)
    back = np.where(in_range, wide, 0.0).astype(src.dtype)
    return ~in_range | (back != src)


def _finite(x: Any) -> bool:
    """True if a number (Python, NumPy, Decimal or Fraction) is finite; exact for Decimal."""
    if isinstance(x, decimal.Decimal):
        return x.is_finite()
    if isinstance(x, numbers.Rational):
        return True
    return bool(np.isfinite(x))


def _is_nan(x: Any) -> bool:
    """True if a real number is NaN (a float, a NumPy float or a Decimal)."""
    if isinstance(x, decimal.Decimal):
        return x.is_nan()
    return isinstance(x, (float, np.floating)) and math.isnan(x)


def _roundable(x: Any) -> bool:
    """True for real numbers that may be rounded into a float dtype (not integers)."""
    return isinstance(x, (float, np.floating, *_RATIONAL_TYPES))


def _reason(x: Any, y: Any, dtype: tf.DType, strict: bool) -> str:
    """Explains why the value ``x`` does not survive the cast to ``dtype`` (it became ``y``)."""
    name = dtype.name
    shown_x, shown_y = _format_scalar(x), _format_scalar(y)
    becomes = f"from_generator would silently turn it into {shown_y}"
    if isinstance(x, (complex, np.complexfloating)) and x.imag != 0 and not dtype.is_complex:
        return f"{shown_x} has an imaginary part, which the cast to {name} drops ({becomes})"
    real = x.real if isinstance(x, (complex, np.complexfloating)) else x
    if dtype.is_bool:
        return f"{shown_x} is not 0 or 1 ({becomes})"
    if dtype.is_integer:
        info = np.iinfo(dtype.as_numpy_dtype)
        if _roundable(real) and not _finite(real):
            return f"{shown_x} has no {name} value ({becomes})"
        if _roundable(real) and real != int(real):
            return f"{shown_x} is not a whole number ({becomes})"
        limits = f"[{info.min}, {info.max}]"
        if info.min == 0 and real < 0:
            return f"{shown_x} is negative and {name} is unsigned ({becomes})"
        return f"{shown_x} is outside the range of {name} {limits} ({becomes})"
    if _float_kind(dtype) and not _finite(y) and _finite(x):
        return f"{shown_x} overflows {name} ({becomes})"
    if strict and _roundable(real):
        return f"{shown_x} is rounded to {shown_y} in {name} (strict=True refuses rounding)"
    return f"{shown_x} is not exactly representable in {name} ({becomes})"


def _first_bad(bad: np.ndarray) -> tuple[int, tuple[int, ...]]:
    """Returns the number of marked values and the index of the first one."""
    flat = np.flatnonzero(bad)
    return int(flat.size), tuple(int(i) for i in np.unravel_index(flat[0], bad.shape))


class _MismatchError(Exception):
    """Internal: carries the reason a leaf does not fit; turned into a SignatureError."""


def _check_strings(value: Any, src: np.ndarray) -> None:
    """Checks that a value for a ``tf.string`` spec holds only str or bytes.

    A NumPy string array passes. A list (or other non-array) is looked at item by item, as
    ``from_generator`` converts it (to an object array): ``np.asarray([1, "a"])`` would be a string
    array, but ``from_generator`` refuses the ``1``.
    """
    if src.dtype.kind in "SU" and isinstance(value, (np.ndarray, np.generic)):
        return
    if src.dtype.kind in "OSU":
        items = src if src.dtype.kind == "O" else np.asarray(value, dtype=object)
        for position, item in enumerate(items.flat):
            if not isinstance(item, _STRING_TYPES):
                place = tuple(int(i) for i in np.unravel_index(position, items.shape))
                where = "" if items.ndim == 0 else f" at index {place}"
                raise _MismatchError(
                    f"{_format_scalar(item)}{where} is not str or bytes "
                    "(from_generator raises InternalError 'Unsupported object type')"
                )
        return
    raise _MismatchError(
        "a number is not a string: from_generator raises InternalError 'Unsupported object "
        "type'; convert it explicitly, e.g. str(x)"
    )


def _item_changed(x: Any, y: Any, dtype: tf.DType, strict: bool) -> bool:
    """True if the Python number ``x`` became a different number ``y`` (exact comparison)."""
    x_parts = (x.real, x.imag) if isinstance(x, complex) else (x, 0)
    y_parts = (y.real, y.imag) if isinstance(y, complex) else (y, 0)
    for a, b in zip(x_parts, y_parts, strict=True):
        if _is_nan(a):
            if not _is_nan(b):
                return True
            continue
        rounding = _roundable(a) and _float_kind(dtype) and not strict
        if rounding and _finite(a) and _finite(b):
            continue
        if a != b:  # exact for int, float, Decimal and Fraction alike
            return True
    return False


def _check_object_values(src: np.ndarray, out: np.ndarray, dtype: tf.DType, strict: bool) -> None:
    """Checks an object array (Python numbers of any size, or mixed values) item by item."""
    wide = out.astype(np.float64) if dtype == tf.bfloat16 else out
    for position, (x, y) in enumerate(zip(src.flat, wide.flat, strict=True)):
        place = tuple(int(i) for i in np.unravel_index(position, src.shape))
        where = "" if src.ndim == 0 else f" at index {place}"
        if isinstance(x, np.generic):
            x = x.item()
        if not isinstance(x, (int, float, complex, *_RATIONAL_TYPES)):
            raise _MismatchError(f"{_format_scalar(x)}{where} is not a number")
        if _item_changed(x, y.item(), dtype, strict):
            raise _MismatchError(_reason(x, y.item(), dtype, strict) + where)


def _check_numbers(
    value: Any, src: np.ndarray, target: np.dtype, dtype: tf.DType, strict: bool
) -> None:
    """Checks that the values of ``src`` (``value`` as an array) survive the cast unchanged."""
    kind = src.dtype.kind
    if kind in "SU":
        raise _MismatchError(
            f"a string is not a number: from_generator would parse it into {dtype.name} "
            "(or fail); convert it explicitly"
        )
    if kind not in "biufcO":
        raise _MismatchError(f"{src.dtype} values are not numbers; convert them explicitly")
    if _is_exact_cast(src.dtype, target):
        return
    try:
        out = _tf_convert(value, target)
    except (TypeError, ValueError, OverflowError) as error:
        raise _MismatchError(f"it cannot be converted to {dtype.name} ({error})") from None
    if kind == "O":
        _check_object_values(src, out, dtype, strict)
        return
    _refuse_bad_values(src, out, dtype, strict)


def _refuse_bad_values(src: np.ndarray, out: np.ndarray, dtype: tf.DType, strict: bool) -> None:
    """Raises _MismatchError naming the first value of ``src`` that ``out`` does not hold."""
    bad = _bad_mask(src, out, dtype, strict)
    if not bad.any():
        return
    count, first = _first_bad(bad)
    reason = _reason(src[first], out[first], dtype, strict)
    if src.ndim == 0:
        raise _MismatchError(reason)
    raise _MismatchError(
        f"{count} of {src.size} values do not survive the cast to {dtype.name}; "
        f"the first, at index {first}: {reason}"
    )


_PYTHON_ALLOWED_KINDS = {"b": "biufc", "i": "iufc", "u": "iufc", "f": "fc", "c": "c"}
_KIND_NAMES = {"b": "bool", "i": "int", "u": "int", "f": "float", "c": "complex"}


def _check_python_for_tensor_mode(value: Any, src: np.ndarray, dtype: tf.DType, mode: str) -> None:
    """Refuses what ``tf.convert_to_tensor`` refuses when the signature holds a composite spec.

    With a RaggedTensorSpec or SparseTensorSpec anywhere in the signature (``mode`` names it),
    ``from_generator`` converts every dense component with ``tf.convert_to_tensor``, which refuses
    a Python float for an integer dtype (even ``2.0``), a Python int for ``bool``, a Python string
    for a number, a ``Decimal`` or ``Fraction``, and a ``tf.Tensor`` of another dtype (and more,
    see :func:`_convert_like_tensor_mode`). NumPy values are cast as in the NumPy mode.
    """
    if isinstance(value, tf.Tensor):
        if value.dtype != dtype:
            raise _MismatchError(
                f"a tf.Tensor of {value.dtype.name} is not converted to {dtype.name} "
                "(tf.convert_to_tensor refuses it); cast it with tf.cast first"
            )
        return
    if isinstance(value, (np.ndarray, np.generic)) or dtype == tf.string:
        return
    uses = f"with {mode} in the signature, from_generator uses tf.convert_to_tensor"
    if src.dtype.kind in "SU":
        raise _MismatchError(
            f"a string is not a number: {uses}, which refuses it; convert it explicitly"
        )
    if src.dtype.kind == "O":
        for item in src.flat:
            if isinstance(item, _RATIONAL_TYPES):
                raise _MismatchError(
                    f"{uses}, which refuses a {type(item).__name__}; convert it with float() or "
                    "int() first"
                )
        return
    target_kind = np.dtype(dtype.as_numpy_dtype).kind
    target_kind = "f" if target_kind == "V" else target_kind  # bfloat16
    if target_kind not in _PYTHON_ALLOWED_KINDS.get(src.dtype.kind, target_kind):
        raise _MismatchError(
            f"{uses}, which refuses a Python {_KIND_NAMES[src.dtype.kind]} for {dtype.name}; yield "
            "a NumPy value of the right dtype"
        )


def _convert_like_tensor_mode(value: Any, dtype: tf.DType, mode: str) -> None:
    """Calls ``tf.convert_to_tensor`` on a Python value whose numbers already passed the checks.

    Its remaining refusals follow no simple rule (``False`` for ``int8`` but not ``int32``), so
    the check asks it. It runs last: TensorFlow 2.21 raises ``SystemError`` for a negative Python
    int into ``uint64`` and may later abort the process, so out-of-range values never get here.
    """
    if isinstance(value, (np.ndarray, np.generic, tf.Tensor)) or dtype == tf.string:
        return
    try:
        tf.convert_to_tensor(value, dtype=dtype)
    except (TypeError, ValueError, OverflowError, SystemError, tf.errors.OpError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise _MismatchError(
            f"with {mode} in the signature, from_generator uses tf.convert_to_tensor, which "
            f"refuses it ({reason}); yield a NumPy value of the right dtype"
        ) from None


def _none_fate(dtype: tf.DType, mode: str) -> str:
    """What from_generator does with a None for ``dtype`` (it converts None only in NumPy mode)."""
    if mode:
        return "refuse it"
    if dtype.is_floating or dtype.is_complex:
        return "silently turn it into nan"
    if dtype == tf.bool:
        return "silently turn it into False"
    return "refuse it"


def _check_dense(value: Any, spec: tf.TensorSpec, strict: bool, mode: str) -> None:
    """Checks one value against a TensorSpec; raises _MismatchError with the reason."""
    if value is None:
        raise _MismatchError(
            f"None is not a value: from_generator would {_none_fate(spec.dtype, mode)} "
            "(yield a value or drop the component)"
        )
    if isinstance(value, tf.RaggedTensor):
        raise _MismatchError(
            "a dense value was expected (use tf.RaggedTensorSpec for ragged values)"
        )
    if isinstance(value, _SPARSE_TYPES):
        raise _MismatchError(
            "a dense value was expected (use tf.SparseTensorSpec for sparse values)"
        )
    if _is_structure(value) and not isinstance(value, tuple):
        raise _MismatchError(
            "a dict cannot be converted to a tensor; the signature has a leaf here"
        )
    try:
        src = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise _MismatchError(f"it cannot be converted to an array ({error})") from None
    if not _shape_fits(src.shape, spec.shape):
        raise _MismatchError(f"the shape {src.shape} does not fit {_format_shape(spec.shape)}")
    if src.size == 0 and not isinstance(value, tf.Tensor):
        return  # from_generator accepts an empty value for every dtype: no value to lose
    if mode:
        _check_python_for_tensor_mode(value, src, spec.dtype, mode)
    if spec.dtype == tf.string:
        _check_strings(value, src)
    else:
        _check_numbers(value, src, np.dtype(spec.dtype.as_numpy_dtype), spec.dtype, strict)
    if mode:
        _convert_like_tensor_mode(value, spec.dtype, mode)


def _check_sparse(value: Any, spec: tf.SparseTensorSpec) -> None:
    """Checks one value against a SparseTensorSpec; raises _MismatchError with the reason."""
    if not isinstance(value, _SPARSE_TYPES):
        raise _MismatchError(
            "from_generator accepts only a tf.SparseTensor or tf.compat.v1.SparseTensorValue "
            "here; yield tf.sparse.SparseTensor(indices, values, dense_shape)"
        )
    try:
        sparse = tf.SparseTensor.from_value(value)
    except (TypeError, ValueError) as error:
        raise _MismatchError(f"it cannot be made into a tf.SparseTensor ({error})") from None
    if sparse.dtype != spec.dtype:
        raise _MismatchError(
            f"the dtype {sparse.dtype.name} is not {spec.dtype.name} (no cast happens)"
        )
    if not spec.shape.is_compatible_with(sparse.shape):
        raise _MismatchError(
            f"the dense shape {_format_shape(sparse.shape)} does not fit "
            f"{_format_shape(spec.shape)}"
        )


def _check_ragged(value: Any, spec: tf.RaggedTensorSpec) -> None:
    """Checks one value against a RaggedTensorSpec; raises _MismatchError with the reason."""
    if not isinstance(value, tf.RaggedTensor):
        raise _MismatchError(
            "from_generator accepts only a tf.RaggedTensor here (nested Python lists and arrays "
            "are refused); yield tf.ragged.constant(...) or tf.RaggedTensor.from_row_lengths(...)"
        )
    if value.dtype != spec.dtype:
        raise _MismatchError(
            f"the dtype {value.dtype.name} is not {spec.dtype.name} (no cast happens)"
        )
    if value.ragged_rank != spec.ragged_rank:
        raise _MismatchError(f"the ragged_rank {value.ragged_rank} is not {spec.ragged_rank}")
    if value.row_splits.dtype != spec.row_splits_dtype:
        raise _MismatchError(
            f"the row_splits dtype {value.row_splits.dtype.name} is not "
            f"{spec.row_splits_dtype.name}"
        )
    if not spec.shape.is_compatible_with(value.shape):
        raise _MismatchError(
            f"the shape {_format_shape(value.shape)} does not fit {_format_shape(spec.shape)}"
        )


def _check_structure(element: Any, signature: Any, where: str) -> None:
    """Checks that a yielded element has the tuple/dict structure of a signature node."""
    if isinstance(signature, dict):
        if not isinstance(element, dict):
            hint = ""
            if isinstance(element, Mapping):
                hint = " (from_generator accepts only dict and its subclasses: yield dict(...))"
            raise SignatureError(
                f"{where}: expected a dict with keys {_sorted_keys(signature, where)!r}, "
                f"got {_describe_value(element)}{hint}"
            )
        missing = [key for key in signature if key not in element]
        extra = [key for key in element if key not in signature]
        if missing or extra:
            problems = [f"missing {missing!r}"] * bool(missing) + [f"extra {extra!r}"] * bool(extra)
            raise SignatureError(
                f"{where}: expected a dict with keys {_sorted_keys(signature, where)!r}, "
                f"got keys {list(element)!r} ({', '.join(problems)})"
            )
        return
    kind = type(signature).__name__
    if not isinstance(element, type(signature)):
        hint = ""
        if isinstance(element, list):
            hint = " (from_generator treats a list as one tensor, not a structure: yield a tuple)"
        raise SignatureError(
            f"{where}: expected a {kind} of {len(signature)}, got {_describe_value(element)}{hint}"
        )
    if len(element) != len(signature):
        raise SignatureError(
            f"{where}: expected a {kind} of {len(signature)}, got a {type(element).__name__} "
            f"of {len(element)}"
        )


def _walk(element: Any, signature: Any, path: str, prefix: str, mode: tuple[bool, str]) -> None:
    """Checks an element against a signature raises SignatureError at the first fault."""
    where = f"{prefix}{path}"
    if isinstance(signature, (dict, tuple)):
        _check_structure(element, signature, where)
        if isinstance(signature, dict):
            for key in _sorted_keys(signature, where):
                _walk(element[key], signature[key], join_key(path, key), prefix, mode)
        else:
            for position, (item, spec) in enumerate(zip(element, signature, strict=True)):
                _walk(item, spec, join_position(path, position), prefix, mode)
        return
    strict, tensor_mode = mode
    try:
        if isinstance(signature, tf.RaggedTensorSpec):
            _check_ragged(element, signature)
        elif isinstance(signature, tf.SparseTensorSpec):
            _check_sparse(element, signature)
        else:
            _check_dense(element, signature, strict, tensor_mode)
    except _MismatchError as mismatch:
        raise SignatureError(
            f"{where}: expected {_format_spec(signature)}, "
            f"got {_describe_value(element)}: {mismatch}"
        ) from None


def check_element(
    element: Any, signature: Any, *, index: int | None = None, strict: bool = False
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
    tensor_mode = _validate_signature(signature)
    _check_prepared(element, signature, index, strict, tensor_mode)


def _check_prepared(
    element: Any, signature: Any, index: int | None, strict: bool, tensor_mode: str
) -> None:
    """check_element without validating the signature again (for :func:`checked`)."""
    prefix = "" if index is None else f"element {index}, "
    _walk(element, signature, ROOT, prefix, (strict, tensor_mode))


# --------------------------------------------------------------------------------------------
# checked
# --------------------------------------------------------------------------------------------


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
            f"{caller} needs a callable returning an iterator, got {_describe_value(generator_fn)}"
        )


def checked(
    generator_fn: Callable[..., Iterable[Any]], signature: Any, *, strict: bool = False
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


class _CheckedIterator:
    """The iterator :func:`checked` returns: a refused element raises, and the stream goes on.

    An iterator object rather than a generator: a generator that raises is finished, while
    ``from_generator`` calls ``next()`` again after a bad element and gets the following one.
    """

    def __init__(self, iterator: Iterator[Any], signature: Any, strict: bool, mode: str) -> None:
        """Wraps ``iterator``; indices count the elements it yields, from 0."""
        self._iterator = iterator
        self._signature = signature
        self._mode = (strict, mode)
        self._index = 0

    def __iter__(self) -> Iterator[Any]:
        """An iterator is its own iterable."""
        return self

    def __next__(self) -> Any:
        """The next element, checked; ``SignatureError`` for a refused one."""
        element = next(self._iterator)
        index = self._index
        self._index += 1
        _check_prepared(element, self._signature, index, *self._mode)
        return element


# --------------------------------------------------------------------------------------------
# infer_signature
# --------------------------------------------------------------------------------------------

_PYTHON_DTYPES = {bool: tf.bool, int: tf.int64, float: tf.float32, complex: tf.complex64}
_LIST_DTYPES = {"b": tf.bool, "i": tf.int64, "f": tf.float32, "c": tf.complex64}


class _EmptyListSpec:
    """Internal: the spec of an empty list while samples are merged; only its shape is known.

    ``np.asarray([])`` is float64, but an empty list says nothing about its dtype, so the dtype is
    taken from the other samples. If every sample is empty, it becomes ``tf.float32``, the dtype
    ``tf.constant([])`` gives.
    """

    def __init__(self, shape: tuple[int, ...] | tf.TensorShape) -> None:
        self.shape = tf.TensorShape(shape)


def _rebuild(like: tuple[Any, ...], items: list[Any]) -> tuple[Any, ...]:
    """Builds a tuple of ``items`` of the same type as ``like`` (namedtuples are kept)."""
    return type(like)(*items) if hasattr(like, "_fields") else tuple(items)


def _leaf_spec(value: Any, where: str) -> Any:
    """Infers the spec of one leaf value of a sample."""
    if value is None:
        raise SignatureError(f"{where}: got None; a None value cannot be put in a tensor")
    if isinstance(value, tf.RaggedTensor):
        return tf.RaggedTensorSpec.from_value(value)
    if isinstance(value, _SPARSE_TYPES):
        return tf.SparseTensorSpec.from_value(tf.SparseTensor.from_value(value))
    if isinstance(value, tf.Tensor):
        return tf.TensorSpec(value.shape, value.dtype)
    if isinstance(value, (str, bytes)):
        return tf.TensorSpec((), tf.string)
    if type(value) in _PYTHON_DTYPES:
        if type(value) is int and not -(2**63) <= value < 2**63:
            raise SignatureError(f"{where}: got Python int {value}, which does not fit in int64")
        return tf.TensorSpec((), _PYTHON_DTYPES[type(value)])
    if isinstance(value, _RATIONAL_TYPES):
        raise SignatureError(
            f"{where}: got {_describe_value(value)}; a {type(value).__name__} has no TensorFlow "
            "dtype of its own: convert it with float() or int(), or write the spec by hand"
        )
    return _array_spec(value, where)


def _array_spec(value: Any, where: str) -> Any:
    """Infers the spec of a NumPy array or scalar, or of a list (converted like from_generator)."""
    try:
        array = np.asarray(value)
    except ValueError as error:
        raise SignatureError(
            f"{where}: {_describe_value(value)} cannot be made into one array ({error}); for rows "
            "of different lengths yield a tf.RaggedTensor"
        ) from None
    is_numpy = isinstance(value, (np.ndarray, np.generic))
    if not is_numpy and array.size == 0:
        return _EmptyListSpec(array.shape)
    if array.dtype.kind in "OSU" and not (is_numpy and array.dtype.kind in "SU"):
        return _object_spec(value, array, where)
    if not is_numpy:
        dtype = _LIST_DTYPES.get(array.dtype.kind)
        if dtype is not None:
            return tf.TensorSpec(array.shape, dtype)
    try:
        return tf.TensorSpec(array.shape, tf.as_dtype(array.dtype))
    except TypeError:
        raise SignatureError(
            f"{where}: {_describe_value(value)} has dtype {array.dtype}, which TensorFlow has no "
            "dtype for"
        ) from None


def _object_spec(value: Any, array: np.ndarray, where: str) -> tf.TensorSpec:
    """Infers the spec of a list or object array: only all-string values make a tensor here."""
    items = array if array.dtype.kind == "O" else np.asarray(value, dtype=object)
    strings = [isinstance(item, _STRING_TYPES) for item in items.flat]
    if all(strings):
        return tf.TensorSpec(array.shape, tf.string)
    if any(strings):
        raise SignatureError(
            f"{where}: {_describe_value(value)} mixes strings with other values; from_generator "
            "refuses it for tf.string (and parses the strings for a number dtype): convert the "
            "values explicitly"
        )
    raise SignatureError(
        f"{where}: {_describe_value(value)} holds Python objects, not numbers or strings "
        "(rows of different lengths? yield a tf.RaggedTensor)"
    )


def _sample_tree(sample: Any, where: str, path: str = ROOT) -> Any:
    """Maps a sample to the same structure with an inferred spec at every leaf."""
    here = f"{where}{path}"
    if isinstance(sample, _SPARSE_TYPES):  # a SparseTensorValue is a namedtuple, yet a leaf
        return _leaf_spec(sample, here)
    if isinstance(sample, dict):
        keys = _sorted_keys(sample, here)
        return {key: _sample_tree(sample[key], where, join_key(path, key)) for key in keys}
    if isinstance(sample, Mapping):
        raise SignatureError(
            f"{here}: got a {type(sample).__name__}, a Mapping that is not a dict; from_generator "
            "accepts only dict (and its subclasses) as a structure: yield dict(...)"
        )
    if isinstance(sample, tuple):
        items = [_sample_tree(item, where, join_position(path, i)) for i, item in enumerate(sample)]
        return _rebuild(sample, items)
    return _leaf_spec(sample, here)


def _merge_shapes(first: tf.TensorShape, other: tf.TensorShape) -> tf.TensorShape | None:
    """Keeps the dimensions two shapes share and sets the others to None; None if ranks differ."""
    if first.rank != other.rank:
        return None
    dims = [a if a == b else None for a, b in zip(first.as_list(), other.as_list(), strict=True)]
    return tf.TensorShape(dims)


def _merged_shape(first: Any, other: Any, where: str) -> tf.TensorShape:
    """Merges the shapes of two leaf specs; raises SignatureError if their ranks differ."""
    shape = _merge_shapes(first.shape, other.shape)
    if shape is None:
        raise SignatureError(
            f"{where}: rank {first.shape.rank} versus rank {other.shape.rank} (write the "
            "signature by hand with shape=None if the rank really varies)"
        )
    return shape


def _merge_empty(first: Any, other: Any, where: str) -> Any:
    """Merges two leaf specs of which at least one is an empty list's (dtype unknown)."""
    known = other if isinstance(first, _EmptyListSpec) else first
    shape = _merged_shape(first, other, where)
    if isinstance(known, _EmptyListSpec):
        return _EmptyListSpec(shape)
    if type(known) is not tf.TensorSpec:
        raise SignatureError(f"{where}: an empty list versus {_format_spec(known)}")
    return tf.TensorSpec(shape, known.dtype)


def _merge_leaf(first: Any, other: Any, where: str) -> Any:
    """Merges the specs two samples gave for the same leaf."""
    if isinstance(first, _EmptyListSpec) or isinstance(other, _EmptyListSpec):
        return _merge_empty(first, other, where)
    if type(first) is not type(other) or first.dtype != other.dtype:
        raise SignatureError(f"{where}: {_format_spec(first)} versus {_format_spec(other)}")
    shape = _merged_shape(first, other, where)
    if isinstance(first, tf.SparseTensorSpec):
        return tf.SparseTensorSpec(shape, first.dtype)
    if isinstance(first, tf.RaggedTensorSpec):
        if (first.ragged_rank, first.row_splits_dtype) != (
            other.ragged_rank,
            other.row_splits_dtype,
        ):
            raise SignatureError(f"{where}: {_format_spec(first)} versus {_format_spec(other)}")
        return tf.RaggedTensorSpec(shape, first.dtype, first.ragged_rank, first.row_splits_dtype)
    return tf.TensorSpec(shape, first.dtype)


def _resolve_empty(tree: Any) -> Any:
    """Gives every leaf that only ever was an empty list the dtype ``tf.float32``."""
    if isinstance(tree, dict):
        return {key: _resolve_empty(value) for key, value in tree.items()}
    if isinstance(tree, tuple):
        return _rebuild(tree, [_resolve_empty(item) for item in tree])
    if isinstance(tree, _EmptyListSpec):
        return tf.TensorSpec(tree.shape, tf.float32)
    return tree


def _merge(first: Any, other: Any, where: str, path: str = ROOT) -> Any:
    """Merges two inferred trees; raises SignatureError where their structure or dtypes differ."""
    here = f"{where}{path}"
    if isinstance(first, dict) or isinstance(other, dict):
        if (
            not (isinstance(first, dict) and isinstance(other, dict))
            or first.keys() != other.keys()
        ):
            raise SignatureError(f"{here}: {_tree_kind(first)} versus {_tree_kind(other)}")
        return {key: _merge(first[key], other[key], where, join_key(path, key)) for key in first}
    if isinstance(first, tuple) or isinstance(other, tuple):
        if type(first) is not type(other) or len(first) != len(other):
            raise SignatureError(f"{here}: {_tree_kind(first)} versus {_tree_kind(other)}")
        items = [
            _merge(a, b, where, join_position(path, i))
            for i, (a, b) in enumerate(zip(first, other, strict=True))
        ]
        return _rebuild(first, items)
    return _merge_leaf(first, other, here)


def _tree_kind(tree: Any) -> str:
    """Names the structure of an inferred tree node for a message."""
    if isinstance(tree, dict):
        return f"a dict with keys {list(tree)!r}"
    if isinstance(tree, tuple):
        return f"a {type(tree).__name__} of {len(tree)}"
    return "a single tensor"


def _samples(source: Any, num_samples: int) -> list[Any]:
    """Takes up to ``num_samples`` samples from an iterable or a zero-argument callable."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if isinstance(source, (str, bytes, Mapping)):
        raise SignatureError(
            f"source must be an iterable of samples or a zero-argument callable, got "
            f"{type(source).__name__}"
        )
    if callable(source) and not isinstance(source, Iterable):
        try:
            iterator = iter(source())
        except TypeError as error:
            raise SignatureError(
                f"source was called with no arguments and did not return an iterator ({error})"
            ) from error
    elif isinstance(source, Iterable):
        iterator = iter(source)
    else:
        raise SignatureError(
            "source must be an iterable of samples or a zero-argument callable returning an "
            f"iterator, got {_describe_value(source)}"
        )
    samples = list(itertools.islice(iterator, num_samples))
    if not samples:
        raise SignatureError("source gave no samples: it is empty (or an exhausted generator)")
    return samples


def infer_signature(source: Any, *, num_samples: int = 16) -> Any:
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
        >>> def gen():
        ...     for n in (3, 5):
        ...         yield {"tokens": np.arange(n, dtype=np.int32), "label": n % 2}
        >>> infer_signature(gen)["tokens"]
        TensorSpec(shape=(None,), dtype=tf.int32, name=None)
    """
    samples = _samples(source, num_samples)
    merged = _sample_tree(samples[0], "sample 0, ")
    for index, sample in enumerate(samples[1:], start=1):
        tree = _sample_tree(sample, f"sample {index}, ")
        merged = _merge(merged, tree, f"samples 0 and {index} differ at ")
    merged = _resolve_empty(merged)
    tensor_mode = _validate_signature(merged)
    for index, sample in enumerate(samples):
        try:
            _check_prepared(sample, merged, None, False, tensor_mode)
        except SignatureError as error:
            raise SignatureError(
                f"the inferred signature refuses sample {index}: {error}"
            ) from None
    return merged


# --------------------------------------------------------------------------------------------
# describe
# --------------------------------------------------------------------------------------------


def describe(signature: Any) -> str:
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
    for path, spec in _leaves(signature):
        shape = _format_shape(spec.shape)
        if isinstance(spec, tf.RaggedTensorSpec):
            shape += f" ragged (ragged_rank {spec.ragged_rank})"
        elif isinstance(spec, tf.SparseTensorSpec):
            shape += " sparse"
        rows.append((path, spec.dtype.name, shape))
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    lines = [f"{p:<{widths[0]}}  {d:<{widths[1]}}  {s}" for p, d, s in rows]
    return "\n".join(lines)
