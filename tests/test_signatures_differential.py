"""Differential test: ``check_element`` against TensorFlow's own ``from_generator``.

For generated (value, dtype, shape) cases, every value is yielded through a real
``tf.data.Dataset.from_generator`` with that ``TensorSpec`` and read back. ``check_element`` must
raise exactly when TensorFlow raises or the value read back differs from the value yielded, and pass
otherwise.

"Differs" (see ``_changed``) compares the yielded and read-back values exactly, item by item, as
Python numbers (Python compares ints, floats, ``Decimal`` and ``Fraction`` exactly): NaN equals NaN,
``-0.0`` equals ``0.0``, ``True`` equals ``1``; a string read back as a number differs (it changed
kind). Rounding a float (or a ``Decimal`` or ``Fraction``) to a narrower float dtype is allowed in
the default mode as long as a finite value stays finite; with ``strict=True`` any change differs.

The values are Python scalars, NumPy arrays and scalars of every dtype, ``Decimal`` and
``Fraction`` values, lists of numbers, and lists that are empty or mix strings with numbers. The
same values also go through the stricter conversion ``from_generator`` uses when the signature
holds a ``tf.RaggedTensorSpec`` (``tf.convert_to_tensor`` instead of NumPy).

To keep the file fast, one dataset serves a whole batch of cases with the same spec: the
generator yields ``(case index, value)`` pairs and ``ignore_errors()`` drops the elements
TensorFlow refuses (an error would otherwise end the iteration), so a missing index means
"TensorFlow raised". Each value still passes through its own ``from_generator`` element.
"""

from __future__ import annotations

import decimal
import fractions
import math
import warnings
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from helpers.signatures import SignatureError, check_element

SPEC_DTYPES = [
    tf.bool,
    tf.int8,
    tf.int16,
    tf.int32,
    tf.int64,
    tf.uint8,
    tf.uint16,
    tf.uint32,
    tf.uint64,
    tf.float16,
    tf.bfloat16,
    tf.float32,
    tf.float64,
    tf.complex64,
    tf.complex128,
    tf.string,
]
SOURCE_DTYPES = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    np.complex128,
]
SPEC_SHAPES = [(), (None,), (2,), (2, 2), (None, None), None]
VALUE_SHAPES = [(), (), (2,), (3,), (2, 2)]


def _edge_ints() -> list[int]:
    """Integers at and just beyond the range of every integer dtype, and around float precision."""
    edges = {0, 1, -1, 2, 255, 256, 2048, 2049, 2**24 + 1, 2**40, 2**53 + 1, 2**64, -(2**63) - 1}
    for dtype in SOURCE_DTYPES[1:9]:
        info = np.iinfo(dtype)
        edges |= {int(info.min), int(info.max), int(info.min) - 1, int(info.max) + 1}
    return sorted(edges)


EDGE_INTS = _edge_ints()
EDGE_FLOATS = [
    0.0,
    -0.0,
    0.5,
    2.7,
    -2.7,
    -1.0,
    1.0,
    2.0,
    255.0,
    256.0,
    1e10,
    2.0**31,
    2.0**63,
    2.0**64,
    65504.0,
    65520.0,
    1e5,
    3.4028234663852886e38,
    3.5e38,
    1e300,
    1e-8,
    1e-50,
    1e-320,
    float(2**53 + 1),
    math.nan,
    math.inf,
    -math.inf,
]
STRINGS = ["3", "2.5", "nan", "1e400", "", "abc", "True", "é", b"3", b"\xff", b""]

python_ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(-(2**70), 2**70))
python_floats = st.one_of(st.sampled_from(EDGE_FLOATS), st.floats())
python_complex = st.one_of(
    st.builds(complex, st.sampled_from(EDGE_FLOATS), st.sampled_from([0.0, 1.0, math.nan])),
    st.complex_numbers(),
)
python_scalars = st.one_of(
    st.booleans(),
    python_ints,
    python_floats,
    python_complex,
    st.sampled_from(STRINGS),
    st.text(max_size=3),
    st.binary(max_size=3),
)


@st.composite
def numpy_values(draw: st.DrawFn) -> np.ndarray | np.generic:
    """NumPy arrays and scalars of every source dtype, with edge values mixed in."""
    dtype = np.dtype(draw(st.sampled_from(SOURCE_DTYPES)))
    shape = draw(st.sampled_from(VALUE_SHAPES))
    edges = [v for v in EDGE_INTS + EDGE_FLOATS if _fits(v, dtype)]
    elements = st.one_of(hnp.from_dtype(dtype), st.sampled_from(edges)) if edges else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array = draw(hnp.arrays(dtype, shape, elements=elements))
    return array[()] if shape == () and draw(st.booleans()) else array


def _fits(value: Any, dtype: np.dtype) -> bool:
    """True if a Python number fits ``dtype`` unchanged (to use it as a hypothesis element)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            stored = np.array(value).astype(dtype)
        except (OverflowError, ValueError, TypeError):
            return False
        return not _changed(np.asarray(value), stored, True)


python_lists = st.lists(
    st.one_of(python_ints, python_floats, st.booleans()), min_size=2, max_size=3
)
rationals = st.one_of(
    st.decimals(allow_nan=False),  # a signaling NaN once crashed TensorFlow's tensor mode
    st.sampled_from([decimal.Decimal(x) for x in ("1.5", "0.1", "3", "-1", "1e400", "-0", "NaN")]),
    st.fractions(),
    st.sampled_from(
        [fractions.Fraction(1, 2), fractions.Fraction(1, 3), fractions.Fraction(2**40)]
    ),
)
odd_lists = st.lists(
    st.one_of(st.sampled_from(["a", b"b", "3"]), st.booleans(), python_ints, rationals),
    max_size=3,
)
values = st.one_of(
    python_scalars, numpy_values(), numpy_values(), python_lists, rationals, odd_lists
)


def _python_items(array: np.ndarray) -> list[Any]:
    """The items of an array as exact Python values (bfloat16 widened exactly to float64)."""
    if array.dtype.kind == "V":
        array = array.astype(np.float64)
    return np.asarray(array).ravel().tolist()


def _parts(value: Any) -> tuple[Any, Any]:
    """Real and imaginary part of a Python number (0 for the imaginary part of a real)."""
    return (value.real, value.imag) if isinstance(value, complex) else (value, 0)


def _is_nan(value: Any) -> bool:
    """True for a float or Decimal NaN."""
    if isinstance(value, decimal.Decimal):
        return value.is_nan()
    return isinstance(value, float) and math.isnan(value)


def _is_finite(value: Any) -> bool:
    """True for a finite float or Decimal, and for every Fraction."""
    if isinstance(value, decimal.Decimal):
        return value.is_finite()
    return isinstance(value, fractions.Fraction) or math.isfinite(value)


def _same_number(a: Any, b: Any, float_rounding_ok: bool) -> bool:
    """Exact equality of two real Python numbers; NaN equals NaN; optional float rounding."""
    if _is_nan(a) or _is_nan(b):
        return _is_nan(a) and _is_nan(b)
    if float_rounding_ok and _is_finite(a):
        return math.isfinite(b)
    return a == b


ROUNDABLE = (float, decimal.Decimal, fractions.Fraction)


def _changed(yielded: Any, read_back: np.ndarray, strict: bool) -> bool:
    """True if the value read back from TensorFlow differs from the value yielded."""
    source = np.asarray(yielded)
    if read_back.dtype.kind in "OS":  # tf.string, read back as bytes
        expected = [x.encode() if isinstance(x, str) else x for x in source.ravel().tolist()]
        return expected != read_back.ravel().tolist()
    if source.dtype.kind in "SU":
        return True  # a string read back as a number changed kind, whatever its value
    rounding_ok = not strict and read_back.dtype.kind in "fcV"
    items = zip(_python_items(source), _python_items(read_back), strict=True)
    for x, y in items:
        if isinstance(x, (str, bytes)) or x is None:
            return True
        (x_real, x_imag), (y_real, y_imag) = _parts(x), _parts(y)
        if not _same_number(x_real, y_real, rounding_ok and isinstance(x_real, ROUNDABLE)):
            return True
        imag_rounding_ok = rounding_ok and read_back.dtype.kind == "c"
        if not _same_number(x_imag, y_imag, imag_rounding_ok and isinstance(x_imag, ROUNDABLE)):
            return True
    return False


RAGGED = tf.RaggedTensorSpec((None, None), tf.int32, 1)
"""Next to the spec under test, it switches from_generator to tf.convert_to_tensor."""


def _rows() -> tf.RaggedTensor:
    """A small ragged value for the RAGGED component."""
    return tf.ragged.constant([[1], [2, 3]], dtype=tf.int32)


def _run_through_tf(cases: list[Any], spec: tf.TensorSpec, ragged: bool) -> dict[int, np.ndarray]:
    """Yields every case through one from_generator dataset; returns what came back, by index."""
    rows = _rows()

    def generator():
        for index, value in enumerate(cases):
            yield (index, value, rows) if ragged else (index, value)

    signature = (tf.TensorSpec((), tf.int64), spec) + ((RAGGED,) if ragged else ())
    dataset = tf.data.Dataset.from_generator(generator, output_signature=signature)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy's RuntimeWarning/ComplexWarning in TF's own cast
        elements = dataset.ignore_errors().as_numpy_iterator()
        return {int(element[0]): np.asarray(element[1]) for element in elements}


def _check_raises(value: Any, spec: tf.TensorSpec, strict: bool, ragged: bool) -> bool:
    """True if check_element refuses the value (next to a ragged value if ``ragged``)."""
    try:
        if ragged:
            check_element((value, _rows()), (spec, RAGGED), strict=strict)
        else:
            check_element(value, spec, strict=strict)
    except SignatureError:
        return True
    return False


def _disagreements(cases: list[Any], spec: tf.TensorSpec, ragged: bool = False) -> list[str]:
    """Runs the cases through TensorFlow and check_element; describes every disagreement."""
    read_back = _run_through_tf(cases, spec, ragged)
    found = []
    for index, value in enumerate(cases):
        tf_raised = index not in read_back
        for strict in (False, True):
            expected = tf_raised or _changed(value, read_back[index], strict)
            if _check_raises(value, spec, strict, ragged) != expected:
                back = "raised" if tf_raised else repr(read_back[index])
                found.append(
                    f"{value!r} ({type(value).__name__}) into {spec} strict={strict} "
                    f"ragged={ragged}: "
                    f"TF {back}, check_element {'passed' if expected else 'raised'}"
                )
    return found


@pytest.mark.parametrize("dtype", SPEC_DTYPES, ids=lambda d: d.name)
@settings(max_examples=4)
@given(shape=st.sampled_from(SPEC_SHAPES), cases=st.lists(values, min_size=60, max_size=80))
def test_check_element_agrees_with_from_generator(
    dtype: tf.DType, shape: tuple[int | None, ...] | None, cases: list[Any]
) -> None:
    """16 dtypes x 4 examples x 60-80 cases: about 4,500 values, each through from_generator."""
    spec = tf.TensorSpec(shape, dtype)
    assert _disagreements(cases, spec) == []


# TensorFlow 2.21's tf.convert_to_tensor raises SystemError for a negative Python int into uint64
# and may then abort the process ("Check failed: !PyErr_Occurred()"), so uint64 is left out here.
# Its results for Python ints also depend on earlier conversions in the process, so the examples
# are derandomized: the same values in the same order on every run.
RAGGED_MODE_DTYPES = [dtype for dtype in SPEC_DTYPES if dtype != tf.uint64]


@pytest.mark.parametrize("dtype", RAGGED_MODE_DTYPES, ids=lambda d: d.name)
@settings(max_examples=2, derandomize=True, database=None)
@given(shape=st.sampled_from(SPEC_SHAPES), cases=st.lists(values, min_size=40, max_size=50))
def test_check_element_agrees_when_a_ragged_spec_switches_the_conversion(
    dtype: tf.DType, shape: tuple[int | None, ...] | None, cases: list[Any]
) -> None:
    """The same values next to a tf.RaggedTensor: about 1,300 through tf.convert_to_tensor."""
    spec = tf.TensorSpec(shape, dtype)
    assert _disagreements(cases, spec, ragged=True) == []


EDGE_CASES = [
    (2.7, tf.int32),
    (2**40, tf.int32),
    (2**31, tf.int32),
    (-1, tf.uint8),
    (1e300, tf.float32),
    ("3", tf.int32),
    (math.nan, tf.int32),
    (2**64, tf.uint64),
    (2**64, tf.float32),
    (2**63, tf.int64),
    (2**53 + 1, tf.float64),
    (np.float64(0.1), tf.float32),
    (1 + 0j, tf.bfloat16),
    (1 + 2j, tf.float32),
    ("abc", tf.bool),
    (2, tf.bool),
    (True, tf.int32),
    (-0.0, tf.uint8),
    (1e-50, tf.float32),
    (np.array([1, None]), tf.float32),
    (3, tf.string),
    ("é", tf.string),
    (np.uint64(2**63), tf.int64),
    (np.float16(-np.inf), tf.int32),
    (np.array([np.inf, -np.inf, 1.0], np.float16), tf.int64),
    (np.array([2.0**64, 2.0**63], np.float64), tf.uint64),
    (np.int64(2**63 - 1), tf.float64),
]


@pytest.mark.parametrize(("value", "dtype"), EDGE_CASES, ids=lambda x: repr(x)[:20])
def test_named_edge_cases_agree(value: Any, dtype: tf.DType) -> None:
    """The cases named in the issues and found while developing, each checked explicitly."""
    shape = np.asarray(value).shape
    assert _disagreements([value], tf.TensorSpec(shape, dtype)) == []
