"""Does a value survive ``from_generator``'s conversion to a spec unchanged? The leaf checks.

:func:`helpers.signatures.check_element` walks the structure and hands every leaf to one of
:func:`check_dense`, :func:`check_ragged` and :func:`check_sparse`, which raise
:class:`~helpers._errors.MismatchError` with the reason a value does not fit.

``from_generator`` converts a dense value with a NumPy cast (``np.asarray(value).astype(dtype)``),
which silently wraps, truncates and overflows. :func:`check_dense` redoes that cast and compares
every value exactly (integers as integers, floats in their own dtype; never through
``np.longdouble``), so it decides, for every platform alike:

* which casts lose nothing (``bool`` into numbers, ``int32`` into ``float64``; not ``int64`` into
  ``float64``) and need no value check;
* which values change (fractions into integers, out-of-range integers, NaN or inf into integers,
  finite floats that overflow, dropped imaginary parts), and in what words to say so;
* float rounding (``float64`` to ``float32``), allowed unless ``strict``.

Rare cases live here too: ``decimal.Decimal`` and ``fractions.Fraction`` values and Python ints
of any size (checked item by item in an object array), ``bfloat16`` (widened to ``float32`` to
compare), ``None`` (which NumPy turns into ``nan`` or ``False``), strings for ``tf.string`` specs,
and the stricter rules of ``tf.convert_to_tensor``, which ``from_generator`` uses instead of NumPy
once a ``tf.RaggedTensorSpec`` or ``tf.SparseTensorSpec`` is anywhere in the signature ("tensor
mode"). Ragged and sparse values are never cast: their dtype must match exactly.

Example:
    >>> check_dense(2.5, tf.TensorSpec((), tf.int32), strict=False, mode="")
    Traceback (most recent call last):
    ...
    helpers._errors.MismatchError: 2.5 is not a whole number (from_generator would silently ...
"""

from __future__ import annotations

import decimal
import fractions
import math
import numbers
import warnings
from typing import Any

import numpy as np
import tensorflow as tf

from helpers._errors import MismatchError, format_scalar, format_shape
from helpers._nest import is_structure

__all__ = [
    "RATIONAL_TYPES",
    "SPARSE_TYPES",
    "STRING_TYPES",
    "check_dense",
    "check_ragged",
    "check_sparse",
]

STRING_TYPES = (str, bytes, np.str_, np.bytes_)
RATIONAL_TYPES = (decimal.Decimal, fractions.Fraction)
"""Exact non-float numbers that from_generator converts like floats (``float(x)``, ``int(x)``)."""
SPARSE_TYPES = (tf.SparseTensor, tf.compat.v1.SparseTensorValue)


def check_dense(value: Any, spec: tf.TensorSpec, strict: bool, mode: str) -> None:
    """Checks one value against a TensorSpec; raises MismatchError with the reason.

    In order: what is no dense value at all (None, ragged, sparse, dict), the shape, then (unless
    the value is empty) the values: strings for ``tf.string``, numbers otherwise; in tensor mode
    (``mode`` names the composite spec) ``tf.convert_to_tensor``'s refusals before and after.
    """
    if value is None:
        raise MismatchError(
            f"None is not a value: from_generator would {_none_fate(spec.dtype, mode)} "
            "(yield a value or drop the component)"
        )
    if isinstance(value, tf.RaggedTensor):
        raise MismatchError(
            "a dense value was expected (use tf.RaggedTensorSpec for ragged values)"
        )
    if isinstance(value, SPARSE_TYPES):
        raise MismatchError(
            "a dense value was expected (use tf.SparseTensorSpec for sparse values)"
        )
    if is_structure(value) and not isinstance(value, tuple):
        raise MismatchError("a dict cannot be converted to a tensor; the signature has a leaf here")
    try:
        src = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise MismatchError(f"it cannot be converted to an array ({error})") from None
    if not _shape_fits(src.shape, spec.shape):
        raise MismatchError(f"the shape {src.shape} does not fit {format_shape(spec.shape)}")
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


def check_ragged(value: Any, spec: tf.RaggedTensorSpec) -> None:
    """Checks one value against a RaggedTensorSpec; raises MismatchError with the reason."""
    if not isinstance(value, tf.RaggedTensor):
        raise MismatchError(
            "from_generator accepts only a tf.RaggedTensor here (nested Python lists and arrays "
            "are refused); yield tf.ragged.constant(...) or tf.RaggedTensor.from_row_lengths(...)"
        )
    if value.dtype != spec.dtype:
        raise MismatchError(
            f"the dtype {value.dtype.name} is not {spec.dtype.name} (no cast happens)"
        )
    if value.ragged_rank != spec.ragged_rank:
        raise MismatchError(f"the ragged_rank {value.ragged_rank} is not {spec.ragged_rank}")
    if value.row_splits.dtype != spec.row_splits_dtype:
        raise MismatchError(
            f"the row_splits dtype {value.row_splits.dtype.name} is not "
            f"{spec.row_splits_dtype.name}"
        )
    if not spec.shape.is_compatible_with(value.shape):
        raise MismatchError(
            f"the shape {format_shape(value.shape)} does not fit {format_shape(spec.shape)}"
        )


def check_sparse(value: Any, spec: tf.SparseTensorSpec) -> None:
    """Checks one value against a SparseTensorSpec; raises MismatchError with the reason."""
    if not isinstance(value, SPARSE_TYPES):
        raise MismatchError(
            "from_generator accepts only a tf.SparseTensor or tf.compat.v1.SparseTensorValue "
            "here; yield tf.sparse.SparseTensor(indices, values, dense_shape)"
        )
    try:
        sparse = tf.SparseTensor.from_value(value)
    except (TypeError, ValueError) as error:
        raise MismatchError(f"it cannot be made into a tf.SparseTensor ({error})") from None
    if sparse.dtype != spec.dtype:
        raise MismatchError(
            f"the dtype {sparse.dtype.name} is not {spec.dtype.name} (no cast happens)"
        )
    if not spec.shape.is_compatible_with(sparse.shape):
        raise MismatchError(
            f"the dense shape {format_shape(sparse.shape)} does not fit {format_shape(spec.shape)}"
        )


# --------------------------------------------------------------------------------------------
# Numbers: redo the NumPy cast, then find the first value that changed
# --------------------------------------------------------------------------------------------


def _check_numbers(
    value: Any, src: np.ndarray, target: np.dtype, dtype: tf.DType, strict: bool
) -> None:
    """Checks that the values of ``src`` (``value`` as an array) survive the cast unchanged."""
    kind = src.dtype.kind
    if kind in "SU":
        raise MismatchError(
            f"a string is not a number: from_generator would parse it into {dtype.name} "
            "(or fail); convert it explicitly"
        )
    if kind not in "biufcO":
        raise MismatchError(f"{src.dtype} values are not numbers; convert them explicitly")
    if _is_exact_cast(src.dtype, target):
        return
    try:
        out = _tf_convert(value, target)
    except (TypeError, ValueError, OverflowError) as error:
        raise MismatchError(f"it cannot be converted to {dtype.name} ({error})") from None
    if kind == "O":
        _check_object_values(src, out, dtype, strict)
        return
    _refuse_bad_values(src, out, dtype, strict)


def _refuse_bad_values(src: np.ndarray, out: np.ndarray, dtype: tf.DType, strict: bool) -> None:
    """Raises MismatchError naming the first value of ``src`` that ``out`` does not hold."""
    bad = _bad_mask(src, out, dtype, strict)
    if not bad.any():
        return
    count, first = _first_bad(bad)
    reason = _reason(src[first], out[first], dtype, strict)
    if src.ndim == 0:
        raise MismatchError(reason)
    raise MismatchError(
        f"{count} of {src.size} values do not survive the cast to {dtype.name}; "
        f"the first, at index {first}: {reason}"
    )


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


def _first_bad(bad: np.ndarray) -> tuple[int, tuple[int, ...]]:
    """Returns the number of marked values and the index of the first one."""
    flat = np.flatnonzero(bad)
    return int(flat.size), tuple(int(i) for i in np.unravel_index(flat[0], bad.shape))


# --------------------------------------------------------------------------------------------
# Which values changed: exact comparisons per kind (bool, integer, float, complex)
# --------------------------------------------------------------------------------------------


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
            real_out = out.real
            if real_out.dtype.kind == "V":  # bfloat16: widened exactly to float32 to compare
                real_out = real_out.astype(np.float32)
            bad = _bad_float_part(src.real, real_out, strict)
            if dtype.is_complex:
                bad |= _bad_float_part(np.imag(src), out.imag, strict)
        return bad if lost_imaginary is None else bad | lost_imaginary


def _integer_bounds(dtype: np.dtype) -> tuple[float, float]:
    """Returns ``(low, high)`` with every value of the integer ``dtype`` in ``[low, high)``.

    Both are powers of two (or 0), so they are exact in float32 and wider floats.
    """
    info = np.iinfo(dtype)
    return float(int(info.min)), float(int(info.max) + 1)


def _bad_integer_cast(src: np.ndarray, target: np.dtype) -> np.ndarray:
    """Marks real values (bool, integer or float) that an integer ``target`` cannot hold exactly."""
    if src.dtype.kind in "biu":
        info = np.iinfo(target)
        return (src < int(info.min)) | (src > int(info.max))  # NumPy compares integers exactly
    # float16 widened (exactly) to float32, so the integer bounds up to 2**64 are exact in it
    wide = src.astype(np.float32) if src.dtype.itemsize < 4 else src
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
    wide = out.astype(np.float32) if out.dtype.itemsize < 4 else out  # float16 -> float32, exact
    in_range = np.isfinite(wide) & (wide >= low) & (wide < high)
    back = np.where(in_range, wide, 0.0).astype(src.dtype)
    return ~in_range | (back != src)


# --------------------------------------------------------------------------------------------
# Why a value changed, in words (also for Decimal and Fraction)
# --------------------------------------------------------------------------------------------


def _reason(x: Any, y: Any, dtype: tf.DType, strict: bool) -> str:
    """Explains why the value ``x`` does not survive the cast to ``dtype`` (it became ``y``)."""
    name = dtype.name
    shown_x, shown_y = format_scalar(x), format_scalar(y)
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


def _float_kind(dtype: tf.DType) -> bool:
    """True for floating and complex TensorFlow dtypes."""
    return dtype.is_floating or dtype.is_complex


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
    return isinstance(x, (float, np.floating, *RATIONAL_TYPES))


def _none_fate(dtype: tf.DType, mode: str) -> str:
    """What from_generator does with a None for ``dtype`` (it converts None only in NumPy mode)."""
    if mode:
        return "refuse it"
    if dtype.is_floating or dtype.is_complex:
        return "silently turn it into nan"
    if dtype == tf.bool:
        return "silently turn it into False"
    return "refuse it"


# --------------------------------------------------------------------------------------------
# Object arrays (Python ints of any size, Decimal, Fraction, mixed values) and strings
# --------------------------------------------------------------------------------------------


def _check_object_values(src: np.ndarray, out: np.ndarray, dtype: tf.DType, strict: bool) -> None:
    """Checks an object array (Python numbers of any size, or mixed values) item by item."""
    wide = out.astype(np.float64) if dtype == tf.bfloat16 else out
    for position, (x, y) in enumerate(zip(src.flat, wide.flat, strict=True)):
        place = tuple(int(i) for i in np.unravel_index(position, src.shape))
        where = "" if src.ndim == 0 else f" at index {place}"
        if isinstance(x, np.generic):
            x = x.item()
        if not isinstance(x, (int, float, complex, *RATIONAL_TYPES)):
            raise MismatchError(f"{format_scalar(x)}{where} is not a number")
        if _item_changed(x, y.item(), dtype, strict):
            raise MismatchError(_reason(x, y.item(), dtype, strict) + where)


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
            if not isinstance(item, STRING_TYPES):
                place = tuple(int(i) for i in np.unravel_index(position, items.shape))
                where = "" if items.ndim == 0 else f" at index {place}"
                raise MismatchError(
                    f"{format_scalar(item)}{where} is not str or bytes "
                    "(from_generator raises InternalError 'Unsupported object type')"
                )
        return
    raise MismatchError(
        "a number is not a string: from_generator raises InternalError 'Unsupported object "
        "type'; convert it explicitly, e.g. str(x)"
    )


# --------------------------------------------------------------------------------------------
# Tensor mode: tf.convert_to_tensor's stricter rules (a composite spec in the signature)
# --------------------------------------------------------------------------------------------

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
            raise MismatchError(
                f"a tf.Tensor of {value.dtype.name} is not converted to {dtype.name} "
                "(tf.convert_to_tensor refuses it); cast it with tf.cast first"
            )
        return
    if isinstance(value, (np.ndarray, np.generic)) or dtype == tf.string:
        return
    uses = f"with {mode} in the signature, from_generator uses tf.convert_to_tensor"
    if src.dtype.kind in "SU":
        raise MismatchError(
            f"a string is not a number: {uses}, which refuses it; convert it explicitly"
        )
    if src.dtype.kind == "O":
        for item in src.flat:
            if isinstance(item, RATIONAL_TYPES):
                raise MismatchError(
                    f"{uses}, which refuses a {type(item).__name__}; convert it with float() or "
                    "int() first"
                )
        return
    target_kind = np.dtype(dtype.as_numpy_dtype).kind
    target_kind = "f" if target_kind == "V" else target_kind  # bfloat16
    if target_kind not in _PYTHON_ALLOWED_KINDS.get(src.dtype.kind, target_kind):
        raise MismatchError(
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
        raise MismatchError(
            f"with {mode} in the signature, from_generator uses tf.convert_to_tensor, which "
            f"refuses it ({reason}); yield a NumPy value of the right dtype"
        ) from None
