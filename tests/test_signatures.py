"""Unit and property tests for helpers.signatures."""

from __future__ import annotations

import math
import re
import tracemalloc
from collections import OrderedDict, namedtuple
from collections.abc import Iterator, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from helpers.signatures import SignatureError, check_element, checked, describe, infer_signature

I32 = tf.TensorSpec((), tf.int32)
Point = namedtuple("Point", ["x", "y"])


def message(element: Any, signature: Any, **kwargs: Any) -> str:
    """The SignatureError message check_element gives (fails if it does not raise)."""
    with pytest.raises(SignatureError) as info:
        check_element(element, signature, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------- check_element: values

SILENT_DAMAGE = [
    (2.7, I32, "2.7 is not a whole number (from_generator would silently turn it into 2)"),
    (
        2**40,
        I32,
        "outside the range of int32 [-2147483648, 2147483647] (from_generator "
        "would silently turn it into 0)",
    ),
    (2**31, I32, "would silently turn it into -2147483648"),
    (
        -1,
        tf.TensorSpec((), tf.uint8),
        "-1 is negative and uint8 is unsigned (from_generator would silently turn it into 255)",
    ),
    (
        1e300,
        tf.TensorSpec((), tf.float32),
        "1e+300 overflows float32 (from_generator would silently turn it into inf)",
    ),
    ("3", I32, "a string is not a number"),
    (math.nan, I32, "nan has no int32 value"),
    (math.inf, I32, "inf has no int32 value"),
    (
        2,
        tf.TensorSpec((), tf.bool),
        "2 is not 0 or 1 (from_generator would silently turn it into True)",
    ),
    (1 + 2j, tf.TensorSpec((), tf.float32), "has an imaginary part"),
    (2**53 + 1, tf.TensorSpec((), tf.float64), "is not exactly representable in float64"),
    (np.int64(2**40), I32, "would silently turn it into 0"),
    (np.float64(1e300), tf.TensorSpec((), tf.float16), "overflows float16"),
]


@pytest.mark.parametrize(("value", "spec", "reason"), SILENT_DAMAGE, ids=lambda x: repr(x)[:24])
def test_silent_damage_is_refused(value: Any, spec: tf.TensorSpec, reason: str) -> None:
    text = message(value, spec, index=3)
    assert text.startswith(f"element 3, <root>: expected {spec.dtype.name} with shape (), got ")
    assert reason in text


def test_exact_message_for_2_to_the_40() -> None:
    assert message(2**40, I32, index=3) == (
        "element 3, <root>: expected int32 with shape (), got Python int 1099511627776: "
        "1099511627776 is outside the range of int32 [-2147483648, 2147483647] "
        "(from_generator would silently turn it into 0)"
    )


def test_array_damage_counts_values_and_names_the_first() -> None:
    text = message(np.array([1.0, 2.5, np.nan]), tf.TensorSpec((3,), tf.int32))
    assert "got float64 array with shape (3,)" in text
    assert "2 of 3 values do not survive the cast to int32; the first, at index (1,)" in text


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (7, tf.int32),
        (True, tf.int32),
        (1, tf.bool),
        (np.float64(3.0), tf.int32),
        (-0.0, tf.uint8),
        (2**24, tf.float32),
        (np.int32(-5), tf.float64),
        (np.float64(0.1), tf.float32),
        (1e-50, tf.float32),
        (math.nan, tf.float32),
        (-math.inf, tf.float16),
        (3, tf.complex64),
        (1 + 0j, tf.float64),
        ("é", tf.string),
        (b"\xff", tf.string),
        (np.uint64(2**63), tf.uint64),
        (tf.constant(5, tf.int64), tf.int32),
    ],
    ids=repr,
)
def test_values_that_survive_the_cast_pass(value: Any, dtype: tf.DType) -> None:
    check_element(value, tf.TensorSpec((), dtype))


def test_strict_refuses_float_rounding_but_not_exact_casts() -> None:
    spec = tf.TensorSpec((2,), tf.float32)
    check_element(np.array([0.1, 0.2]), spec)
    text = message(np.array([0.5, 0.1]), spec, strict=True)
    assert "the first, at index (1,): 0.1 is rounded to 0.10000000149011612 in float32" in text
    assert "strict=True refuses rounding" in text
    check_element(np.array([0.5, 0.25]), spec, strict=True)
    check_element(np.array([1, 2], np.int16), spec, strict=True)


def test_strings_and_numbers_do_not_mix() -> None:
    assert "a number is not a string" in message(3, tf.TensorSpec((), tf.string))
    assert "a string is not a number" in message(
        np.array(["1", "2"]), tf.TensorSpec((2,), tf.int32)
    )
    text = message(np.array(["a", 1], dtype=object), tf.TensorSpec((2,), tf.string))
    assert "1 at index (1,) is not str or bytes" in text


def test_none_and_unconvertible_values() -> None:
    assert message(None, I32, index=0) == (
        "element 0, <root>: expected int32 with shape (), got None: None is not a value: "
        "from_generator would refuse it (yield a value or drop the component)"
    )
    assert "silently turn it into nan" in message(None, tf.TensorSpec((), tf.float32))
    assert "silently turn it into False" in message(None, tf.TensorSpec((), tf.bool))
    assert "cannot be converted to int32" in message(object(), I32)
    assert "cannot be converted to int64" in message(2**64, tf.TensorSpec((), tf.int64))
    assert "None at index (1,) is not a number" in message(
        np.array([1.0, None]), tf.TensorSpec((2,), tf.float32)
    )
    assert "cannot be converted to an array" in message(
        [[1, 2], [3]], tf.TensorSpec(None, tf.int32)
    )


# ---------------------------------------------------------------------- check_element: structure

IMAGE = {"image": tf.TensorSpec((28, 28, 3), tf.float32), "label": tf.TensorSpec((), tf.int64)}


def test_shape_message_names_path_expected_and_got() -> None:
    element = {"image": np.zeros((28, 28)), "label": 1}
    assert message(element, IMAGE, index=3) == (
        "element 3, ['image']: expected float32 with shape (28, 28, 3), got float64 array with "
        "shape (28, 28): the shape (28, 28) does not fit (28, 28, 3)"
    )


@pytest.mark.parametrize(
    ("value", "shape"),
    [(np.zeros((2, 3)), (3, 2)), (np.zeros(6), (None, None)), (np.zeros((2, 3)), (2, 3, 1))],
)
def test_wrong_shape_or_rank(value: np.ndarray, shape: tuple[int | None, ...]) -> None:
    assert "does not fit" in message(value, tf.TensorSpec(shape, tf.float64))


def test_unknown_rank_and_none_dimensions_accept_any_size() -> None:
    check_element(np.zeros((2, 3, 4)), tf.TensorSpec(None, tf.float64))
    check_element(np.zeros((5, 3)), tf.TensorSpec((None, 3), tf.float64))


def test_missing_and_extra_keys() -> None:
    text = message({"image": np.zeros((28, 28, 3), np.float32)}, IMAGE, index=1)
    assert text == (
        "element 1, <root>: expected a dict with keys ['image', 'label'], got keys ['image'] "
        "(missing ['label'])"
    )
    extra = {"image": np.zeros((28, 28, 3), np.float32), "label": 1, "id": 7}
    assert "(extra ['id'])" in message(extra, IMAGE)


def test_list_is_not_a_tuple() -> None:
    text = message([1, 2], (I32, I32), index=0)
    assert text.startswith("element 0, <root>: expected a tuple of 2, got list [1, 2]")
    assert "yield a tuple" in text
    check_element([1, 2], tf.TensorSpec((2,), tf.int32))  # a list is one tensor
    check_element((1, 2), tf.TensorSpec((2,), tf.int32))  # so is a tuple at a leaf


def test_nested_paths_and_tuple_length() -> None:
    signature = ({"a": (I32, I32)}, I32)
    assert message(({"a": (1, 2.5)}, 1), signature).startswith("[0]['a'][1]: expected int32")
    assert "expected a tuple of 2, got a tuple of 3" in message(({"a": (1, 2, 3)}, 1), signature)
    assert "expected a dict with keys ['a'], got Python int 1" in message((1, 1), signature)


def test_namedtuples_follow_from_generator() -> None:
    check_element(Point(1, 2), (I32, I32))  # a namedtuple is a tuple
    check_element(Point(1, 2), Point(I32, I32))
    assert "expected a Point of 2, got tuple" in message((1, 2), Point(I32, I32))


def test_bad_signature_is_refused() -> None:
    with pytest.raises(SignatureError, match=r"signature at <root>: .*got list \(use a tuple"):
        check_element([1, 2], [I32, I32])
    with pytest.raises(SignatureError, match=r"signature at \['a'\]: .*got DType"):
        check_element({"a": 1}, {"a": tf.int32})


# ------------------------------------------------------------------------- check_element: ragged

RAGGED = tf.RaggedTensorSpec((None, None), tf.int32)
RAGGED_ROWS = tf.ragged.constant([[1], [2, 3]], dtype=tf.int32)


def test_ragged_values() -> None:
    check_element(tf.ragged.constant([[1, 2], [3]], dtype=tf.int32), RAGGED)
    assert "accepts only a tf.RaggedTensor" in message([[1, 2], [3]], RAGGED)
    assert "accepts only a tf.RaggedTensor" in message(np.zeros((2, 2), np.int32), RAGGED)
    wide = tf.ragged.constant([[1, 2], [3]], dtype=tf.int64)
    assert "the dtype int64 is not int32 (no cast happens)" in message(wide, RAGGED)
    three = tf.ragged.constant([[[1], [2]], [[3]]], dtype=tf.int32, ragged_rank=1)
    assert "the ragged_rank 1 is not 2" in message(
        three, tf.RaggedTensorSpec((None, None, 1), tf.int32)
    )
    fixed = tf.RaggedTensorSpec((3, None), tf.int32)
    assert "the shape (2, None) does not fit (3, None)" in message(
        tf.ragged.constant([[1, 2], [3]], dtype=tf.int32), fixed
    )
    assert "a dense value was expected" in message(
        tf.ragged.constant([[1]]), tf.TensorSpec(None, tf.int32)
    )


def test_ragged_signature_makes_dense_conversion_strict() -> None:
    """With a RaggedTensorSpec, from_generator converts dense parts with tf.convert_to_tensor."""
    signature = (I32, RAGGED)
    rows = tf.ragged.constant([[1]], dtype=tf.int32)
    check_element((np.float64(2.0), rows), signature)
    assert "refuses a Python float for int32" in message((2.0, rows), signature)
    assert "tf.convert_to_tensor refuses it" in message((tf.constant(2, tf.int64), rows), signature)
    check_element(2.0, I32)  # the same values pass without a RaggedTensorSpec
    check_element(tf.constant(2, tf.int64), I32)


# ------------------------------------------------------------------------------ infer_signature


def test_infer_python_numpy_and_tensor_leaves() -> None:
    sample = (True, 3, 2.5, 1j, "text", b"raw", np.float64(1.0), np.zeros((2, 3), np.uint8))
    expected = (
        tf.bool,
        tf.int64,
        tf.float32,
        tf.complex64,
        tf.string,
        tf.string,
        tf.float64,
        tf.uint8,
    )
    signature = infer_signature([sample])
    assert tuple(spec.dtype for spec in signature) == expected
    assert signature[-1].shape == (2, 3)
    assert infer_signature([tf.constant([[1.0]])]) == tf.TensorSpec((1, 1), tf.float32)
    assert infer_signature([[1, 2, 3]]) == tf.TensorSpec((3,), tf.int64)  # a list is one tensor
    assert infer_signature([[0.5, 1.0]]) == tf.TensorSpec((2,), tf.float32)
    assert infer_signature([np.array(["a", "bc"])]) == tf.TensorSpec((2,), tf.string)


def test_infer_merges_dimensions_and_keeps_structure() -> None:
    def gen():
        for n in (3, 5, 3):
            yield {"tokens": np.arange(n, dtype=np.int32), "pair": Point(n, np.zeros((2, n)))}

    signature = infer_signature(gen)
    assert signature["tokens"] == tf.TensorSpec((None,), tf.int32)
    assert isinstance(signature["pair"], Point)
    assert signature["pair"].y == tf.TensorSpec((2, None), tf.float64)


def test_infer_ragged() -> None:
    samples = [tf.ragged.constant([[1, 2], [3]]), tf.ragged.constant([[1], [2], [3, 4, 5]])]
    assert infer_signature(samples) == tf.RaggedTensorSpec((None, None), tf.int32, 1)
    with pytest.raises(SignatureError, match=r"cannot be made into one array.*RaggedTensor"):
        infer_signature([[[1, 2], [3]]])


@pytest.mark.parametrize(
    ("samples", "pattern"),
    [
        (
            [(1, 2), (1, 2.5)],
            r"samples 0 and 1 differ at \[1\]: int64 with shape \(\) versus float32",
        ),
        (
            [(1, 2), (1, 2), (1,)],
            r"samples 0 and 2 differ at <root>: a tuple of 2 versus a tuple of 1",
        ),
        (
            [{"a": 1}, {"b": 1}],
            r"samples 0 and 1 differ at <root>: a dict with keys \['a'\] versus",
        ),
        ([{"a": (1, 2)}, {"a": 3}], r"differ at \['a'\]: a tuple of 2 versus a single tensor"),
        (
            [np.zeros(3), np.zeros((3, 1))],
            r"samples 0 and 1 differ at <root>: rank 1 versus rank 2",
        ),
        ([(1, None)], r"sample 0, \[1\]: got None"),
        ([np.zeros(2, "datetime64[s]")], r"sample 0, <root>: .*datetime64\[s\]"),
        (
            [2**63],
            r"sample 0, <root>: got Python int 9223372036854775808, which does not fit in int64",
        ),
        ([1e300], r"the inferred signature refuses sample 0: <root>: .*overflows float32"),
        ([], "source gave no samples"),
    ],
)
def test_infer_errors(samples: list[Any], pattern: str) -> None:
    with pytest.raises(SignatureError, match=pattern):
        infer_signature(samples)


def test_infer_calls_a_callable_afresh_and_takes_at_most_num_samples() -> None:
    calls = []

    def endless():
        calls.append(1)
        n = 0
        while True:
            n += 1
            yield np.zeros(n)

    assert infer_signature(endless, num_samples=4) == tf.TensorSpec((None,), tf.float64)
    infer_signature(endless)
    assert len(calls) == 2


def test_infer_consumes_a_generator_object() -> None:
    generator = (i for i in range(20))
    infer_signature(generator, num_samples=16)
    assert list(generator) == [16, 17, 18, 19]


def test_infer_bad_sources() -> None:
    with pytest.raises(SignatureError, match="source must be an iterable"):
        infer_signature(42)
    with pytest.raises(SignatureError, match="source must be an iterable"):
        infer_signature("abc")
    with pytest.raises(SignatureError, match="did not return an iterator"):
        infer_signature(lambda: 42)
    with pytest.raises(ValueError, match="num_samples must be a positive int, got 0"):
        infer_signature([1], num_samples=0)


# -------------------------------------------------------------------------------------- checked


def test_checked_yields_the_same_elements_and_keeps_name_and_doc() -> None:
    def numbers(n, offset=0):
        """Counts."""
        yield from range(offset, offset + n)

    wrapped = checked(numbers, I32)
    assert list(wrapped(3, offset=5)) == [5, 6, 7]
    assert wrapped.__name__ == "numbers"
    assert wrapped.__doc__ == "Counts."
    assert wrapped.__wrapped__ is numbers


def test_checked_names_the_index() -> None:
    def gen():
        yield from (1, 2, 2.5)

    with pytest.raises(SignatureError, match=r"^element 2, <root>: expected int32"):
        list(checked(gen, I32)())


def test_checked_refuses_generator_objects_and_non_callables() -> None:
    def gen():
        yield 1

    with pytest.raises(SignatureError, match="not a generator object: pass `gen`, not `gen\\(\\)`"):
        checked(gen(), I32)
    with pytest.raises(SignatureError, match="needs a callable"):
        checked([1, 2], I32)
    with pytest.raises(SignatureError, match="signature at <root>"):
        checked(gen, [I32])


def test_checked_turns_silent_wraparound_into_an_error_in_a_pipeline() -> None:
    def gen(scale):
        yield 1 * int(scale)
        yield 2**40 * int(scale)

    plain = tf.data.Dataset.from_generator(gen, args=(1,), output_signature=I32)
    assert [int(x) for x in plain] == [1, 0]  # TensorFlow: 2**40 silently becomes 0

    guarded = tf.data.Dataset.from_generator(checked(gen, I32), args=(1,), output_signature=I32)
    expected = "SignatureError: element 1, <root>: expected int32 with shape (), got Python int"
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(expected)):
        list(guarded)


# ------------------------------------------------------------------------------------- describe


def test_describe_table() -> None:
    signature = {
        "label": tf.TensorSpec((), tf.int64),
        "image": tf.TensorSpec((28, 28, 3), tf.float32),
        "tokens": tf.RaggedTensorSpec((None, None), tf.int32),
        "meta": (tf.TensorSpec(None, tf.string),),
    }
    assert describe(signature) == "\n".join(
        [
            "path         dtype    shape",
            "['image']    float32  (28, 28, 3)",
            "['label']    int64    ()",
            "['meta'][0]  string   <unknown>",
            "['tokens']   int32    (None, None) ragged (ragged_rank 1)",
        ]
    )
    assert describe(I32) == "path    dtype  shape\n<root>  int32  ()"


def test_describe_refuses_bad_signatures() -> None:
    with pytest.raises(SignatureError, match=r"signature at \[1\]"):
        describe((I32, "int32"))


# ---------------------------------------------------------------------------- property tests

DTYPES = [
    np.bool_,
    np.int8,
    np.int32,
    np.int64,
    np.uint8,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
]
arrays = st.sampled_from(DTYPES).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, max_side=3))
)
keys = st.text(alphabet="abcdefgh", min_size=1, max_size=3)
structures = st.recursive(
    arrays,
    lambda children: st.one_of(
        st.tuples(children)
        | st.tuples(children, children)
        | st.tuples(children, children, children),
        st.dictionaries(keys, children, min_size=1, max_size=3),
    ),
    max_leaves=6,
)


def same_values(a: Any, b: Any) -> bool:
    return all(
        np.array_equal(x, y, equal_nan=x.dtype.kind in "fc") and x.dtype == y.dtype
        for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b), strict=True)
    )


@settings(max_examples=25)
@given(element=structures)
def test_inferred_signature_round_trips_through_from_generator(element: Any) -> None:
    signature = infer_signature([element])
    check_element(element, signature, strict=True)
    dataset = tf.data.Dataset.from_generator(lambda: iter([element]), output_signature=signature)
    (read_back,) = list(dataset.as_numpy_iterator())
    assert same_values(element, read_back)


@settings(max_examples=200)
@given(element=structures)
def test_check_element_passes_on_its_inferred_signature(element: Any) -> None:
    check_element(element, infer_signature([element, element]), index=0, strict=True)


# ---------------------------------------------------------------- regressions from the review


@pytest.mark.parametrize("value", [[1, "a"], [True, "a"], [1.5, b"b"], [["a"], [2]]], ids=repr)
def test_lists_mixing_strings_and_numbers_are_refused_for_strings(value: Any) -> None:
    """np.asarray makes a str array of them, but from_generator raises 'Unsupported object type'."""
    spec = tf.TensorSpec(np.asarray(value).shape, tf.string)
    assert "is not str or bytes (from_generator raises InternalError" in message(value, spec)
    with pytest.raises(SignatureError, match="mixes strings with other values"):
        infer_signature([value])
    check_element(["a", b"b", np.str_("c")], tf.TensorSpec((3,), tf.string))


@pytest.mark.parametrize(
    ("value", "dtype"),
    [([], tf.string), ([], tf.int32), ([[], []], tf.bool), (np.zeros(0, "U1"), tf.int32)],
    ids=repr,
)
def test_empty_values_pass_for_every_dtype(value: Any, dtype: tf.DType) -> None:
    check_element(value, tf.TensorSpec(None, dtype))
    check_element((value, RAGGED_ROWS), (tf.TensorSpec(None, dtype), RAGGED))


def test_infer_takes_an_empty_lists_dtype_from_the_other_samples() -> None:
    assert infer_signature([[], [1, 2]]) == tf.TensorSpec((None,), tf.int64)
    assert infer_signature([["a"], []]) == tf.TensorSpec((None,), tf.string)
    assert infer_signature([([[]], 1), ([[0.5]], 2)])[0] == tf.TensorSpec((1, None), tf.float32)
    assert infer_signature([[], []]) == tf.TensorSpec((0,), tf.float32)  # as tf.constant([])
    with pytest.raises(SignatureError, match=r"differ at <root>: an empty list versus a tf\.Ragg"):
        infer_signature([[[], []], tf.ragged.constant([[1], [2, 3]])])


def test_no_longdouble_needed_for_exact_integer_float_casts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where np.longdouble is float64 (Windows, Apple silicon), the checks stay exact."""
    monkeypatch.setattr(np, "longdouble", np.float64)
    refused = [
        (np.array([2**53 + 1], np.int64), tf.float64),
        (np.array([2**63 - 1], np.int64), tf.float64),  # rounds to 2**63, outside int64
        (np.array([2**64 - 1], np.uint64), tf.float32),
        (np.array([2.0**63], np.float64), tf.int64),
        (np.array([2.0**31], np.float32), tf.int32),
        (np.array([np.inf], np.float16), tf.int32),
        (np.array([65520], np.int32), tf.float16),
    ]
    for value, dtype in refused:
        assert "values do not survive the cast" in message(value, tf.TensorSpec((1,), dtype))
    exact = [
        (np.array([2**62, -(2**63)], np.int64), tf.float32),
        (np.array([-(2.0**63), 2.0**62], np.float64), tf.int64),
        (np.array([2.0**64 - 2.0**11], np.float64), tf.uint64),
        (np.array([65504, -3], np.int32), tf.float16),
    ]
    for value, dtype in exact:
        check_element(value, tf.TensorSpec((2,) if value.size == 2 else (1,), dtype), strict=True)


def test_float64_to_float32_check_needs_no_wide_copies() -> None:
    """The default (non-strict) path only looks for overflow: no longdouble copies of the data."""
    values = np.random.default_rng(0).random(1_000_000)
    tracemalloc.start()
    check_element(values, tf.TensorSpec((None,), tf.float32))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1.0 * values.nbytes  # the float32 copy is half of it; longdouble was 4 times


SPARSE = tf.SparseTensorSpec((3,), tf.int32)


def _sparse(dtype: tf.DType = tf.int32, size: int = 3) -> tf.SparseTensor:
    return tf.sparse.SparseTensor([[0]], tf.constant([7], dtype), [size])


def test_sparse_specs_are_supported() -> None:
    check_element(_sparse(), SPARSE)
    value = tf.compat.v1.SparseTensorValue(np.array([[0]]), np.array([7], np.int32), np.array([3]))
    check_element(value, tf.SparseTensorSpec((None,), tf.int32))
    assert "the dtype int64 is not int32 (no cast happens)" in message(_sparse(tf.int64), SPARSE)
    assert "the dense shape (4,) does not fit (3,)" in message(_sparse(size=4), SPARSE)
    assert message(np.zeros(3, np.int32), SPARSE, index=2).startswith(
        "element 2, <root>: expected a tf.SparseTensor of int32 with dense shape (3,), got int32 "
        "array with shape (3,): from_generator accepts only a tf.SparseTensor"
    )
    assert "use tf.SparseTensorSpec" in message(_sparse(), tf.TensorSpec((3,), tf.int32))
    assert "with a SparseTensorSpec in the signature" in message((2.0, _sparse()), (I32, SPARSE))
    assert describe((SPARSE,)) == "path  dtype  shape\n[0]   int32  (3,) sparse"


def test_sparse_inference_and_pipeline() -> None:
    samples = [(_sparse(size=3), 1), (_sparse(size=5), 2)]
    signature = infer_signature(samples)
    assert signature == (tf.SparseTensorSpec((None,), tf.int32), tf.TensorSpec((), tf.int64))

    def gen():
        yield from samples

    dataset = tf.data.Dataset.from_generator(checked(gen, signature), output_signature=signature)
    assert [int(tf.sparse.reduce_sum(s)) for s, _ in dataset] == [7, 7]


class _Record(Mapping):
    """A Mapping that is not a dict (from_generator refuses it as a structure)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_mappings_that_are_not_dicts_are_refused_everywhere() -> None:
    with pytest.raises(SignatureError, match=r"sample 0, <root>: got a _Record, a Mapping that"):
        infer_signature([_Record({"a": 1})])
    assert "accepts only dict and its subclasses" in message(_Record({"a": 1}), {"a": I32})
    check_element(OrderedDict(a=1), {"a": I32})  # a dict subclass is fine


@pytest.mark.parametrize(
    ("value", "dtype", "strict", "reason"),
    [
        (Decimal("1.5"), tf.float32, False, None),
        (Fraction(1, 3), tf.float32, False, None),
        (Decimal("3"), tf.int32, True, None),
        (Decimal("0.1"), tf.float64, True, "Decimal('0.1') is rounded to 0.1 in float64"),
        (Decimal("1.5"), tf.int32, False, "Decimal('1.5') is not a whole number"),
        (Fraction(5, 2), tf.int64, False, "Fraction(5, 2) is not a whole number"),
        (Decimal("1e400"), tf.float64, False, "Decimal('1E+400') overflows float64"),
        (Decimal("2"), tf.bool, False, "Decimal('2') is not 0 or 1"),
        (Decimal("1.5"), tf.string, False, "is not str or bytes"),
    ],
    ids=repr,
)
def test_decimal_and_fraction_follow_the_float_rules(
    value: Any, dtype: tf.DType, strict: bool, reason: str | None
) -> None:
    spec = tf.TensorSpec((), dtype)
    if reason is None:
        check_element(value, spec, strict=strict)
    else:
        assert reason in message(value, spec, strict=strict)


def test_decimal_and_fraction_in_the_ragged_mode_and_in_inference() -> None:
    text = message((Decimal("1.5"), RAGGED_ROWS), (tf.TensorSpec((), tf.float32), RAGGED))
    assert "tf.convert_to_tensor, which refuses a Decimal" in text
    with pytest.raises(SignatureError, match=r"a Fraction has no TensorFlow dtype of its own"):
        infer_signature([(1, Fraction(1, 2))])


def test_dict_keys_that_are_not_strings_cannot_be_taken_for_tuple_positions() -> None:
    signature = {1: (I32, I32), 2: I32}
    assert message({1: (1, 2.5), 2: 1}, signature).startswith("[key=1][1]: expected int32")
    assert describe(signature).splitlines()[1:] == [
        "[key=1][0]  int32  ()",
        "[key=1][1]  int32  ()",
        "[key=2]     int32  ()",
    ]
    assert describe({"image": I32}).splitlines()[1] == "['image']  int32  ()"


def test_the_ragged_mode_names_what_from_generator_really_does() -> None:
    """With a RaggedTensorSpec, None and Python strings are refused, not made nan or parsed."""
    f32 = (tf.TensorSpec((), tf.float32), RAGGED)
    assert "None is not a value: from_generator would refuse it" in message(
        (None, RAGGED_ROWS), f32
    )
    text = message(("3", RAGGED_ROWS), (I32, RAGGED))
    assert (
        "a string is not a number: with a RaggedTensorSpec in the signature, from_generator "
        in text
    )
    assert "which refuses it" in text and "parse" not in text
    assert "refuses it (Cannot convert False to EagerTensor of dtype int8)" in message(
        (False, RAGGED_ROWS), (tf.TensorSpec((), tf.int8), RAGGED)
    )
