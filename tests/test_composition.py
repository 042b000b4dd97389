"""The package's functions compose: what infer_signature returns, the others accept.

A property test chains ``signatures.infer_signature`` -> ``records.write_tfrecords`` ->
``records.read_tfrecords`` on random small nested elements and checks that they come back exactly;
``pipelines.chunked_from_generator`` and ``signatures.checked`` must accept the same inferred
signature. What ``write_tfrecords`` does not store (dict keys other than str, int and bytes) is
refused with a ``SignatureError`` naming the path and what is supported.
"""

from __future__ import annotations

import collections
import functools
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import pipelines, signatures
from helpers.records import read_tfrecords, write_tfrecords
from helpers.signatures import SignatureError

DTYPES = ["int32", "int64", "uint8", "float32", "float64", "bool", "bytes"]
KEYS = st.one_of(  # one kind per dict: tf.nest sorts the keys
    st.lists(st.text(alphabet="abcxyz_", min_size=1, max_size=4), min_size=1, max_size=3),
    st.lists(st.integers(-3, 3), min_size=1, max_size=3),
    st.lists(st.binary(min_size=0, max_size=2), min_size=1, max_size=3),
)

# A schema says what every element looks like: ("leaf", dtype, rank, form) nested in
# ("tuple", [schemas]) and ("dict", {key: schema}). Elements drawn from one schema share
# structure, dtypes and ranks; their dimensions vary, so inferred shapes get None dimensions.
FORMS = st.sampled_from(["dense", "dense", "ragged", "sparse"])
LEAF = st.tuples(st.just("leaf"), st.sampled_from(DTYPES), st.integers(0, 2), FORMS)
SCHEMAS = st.recursive(
    LEAF,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda items: ("tuple", items)),
        st.lists(inner, min_size=1, max_size=3).map(lambda items: ("namedtuple", items)),
        st.tuples(KEYS, st.lists(inner, min_size=3, max_size=3)).map(
            lambda keys_items: ("dict", dict(zip(*keys_items, strict=False)))
        ),
    ),
    max_leaves=5,
)


def _values(draw: Any, dtype: str, size: int) -> list[Any]:
    if dtype == "bytes":
        alphabet = st.binary(min_size=0, max_size=3).filter(lambda b: b"\x00" not in b)
        return draw(st.lists(alphabet, min_size=size, max_size=size))
    if dtype == "bool":
        return draw(st.lists(st.booleans(), min_size=size, max_size=size))
    if dtype.startswith("float"):
        width = 32 if dtype == "float32" else 64
        return draw(st.lists(st.floats(width=width), min_size=size, max_size=size))
    info = np.iinfo(dtype)
    return draw(st.lists(st.integers(int(info.min), int(info.max)), min_size=size, max_size=size))


def _leaf(draw: Any, dtype: str, rank: int, form: str) -> Any:
    numpy_dtype = "S3" if dtype == "bytes" else dtype
    if form == "sparse":
        return tf.sparse.from_dense(_leaf(draw, dtype, max(rank, 1), "dense"))
    if form == "ragged":
        rows = draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
        flat = np.array(_values(draw, dtype, sum(rows)), dtype=numpy_dtype)
        return tf.RaggedTensor.from_row_lengths(flat, rows)
    shape = tuple(draw(st.lists(st.integers(0, 3), min_size=rank, max_size=rank)))
    size = int(np.prod(shape)) if shape else 1
    return np.array(_values(draw, dtype, size), dtype=numpy_dtype).reshape(shape)


def _element(draw: Any, schema: Any) -> Any:
    kind = schema[0]
    if kind == "tuple":
        return tuple(_element(draw, s) for s in schema[1])
    if kind == "namedtuple":
        return _row_class(len(schema[1]))(*(_element(draw, s) for s in schema[1]))
    if kind == "dict":
        return {k: _element(draw, s) for k, s in schema[1].items()}
    return _leaf(draw, *schema[1:])


@functools.cache
def _row_class(size: int) -> type:
    return collections.namedtuple(f"Row{size}", [f"f{i}" for i in range(size)])


@st.composite
def element_lists(draw: Any) -> list[Any]:
    schema = draw(SCHEMAS)
    return [_element(draw, schema) for _ in range(draw(st.integers(1, 4)))]


def _assert_same(got: Any, expected: Any) -> None:
    tf.nest.assert_same_structure(got, expected)
    for g, e in zip(tf.nest.flatten(got), tf.nest.flatten(expected), strict=True):
        if isinstance(e, tf.RaggedTensor):
            assert isinstance(g, tf.RaggedTensor) and g.dtype == e.dtype
            assert g.to_list() == e.to_list() or _same_with_nan(g.to_list(), e.to_list())
        elif isinstance(e, tf.SparseTensor):
            assert isinstance(g, tf.SparseTensor)
            for part in ("indices", "values", "dense_shape"):
                _assert_array(getattr(g, part), getattr(e, part).numpy())
        else:
            _assert_array(g, e)


def _assert_array(got: tf.Tensor, expected: Any) -> None:
    value, e = np.asarray(got.numpy()), np.asarray(expected)
    if e.dtype.kind in "SO":  # tf.string comes back as bytes objects
        assert value.shape == e.shape and value.tolist() == e.tolist()
    else:
        np.testing.assert_array_equal(value, e, strict=True)  # dtype, shape, NaN too


def _same_with_nan(a: Any, b: Any) -> bool:
    np.testing.assert_array_equal(np.array(a, dtype=object), np.array(b, dtype=object))
    return True


@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(elements=element_lists(), num_shards=st.integers(1, 3))
def test_infer_write_read_round_trip(tmp_path_factory, elements, num_shards):
    signature = signatures.infer_signature(lambda: iter(elements))
    directory = write_tfrecords(
        lambda: iter(elements),
        tmp_path_factory.mktemp("records"),
        output_signature=signature,
        num_shards=num_shards,
        progress=False,
    )
    dataset = read_tfrecords(directory)
    assert dataset.element_spec == signature
    got = list(dataset)
    assert len(got) == len(elements)
    for read, original in zip(got, elements, strict=True):
        _assert_same(read, original)


@settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(elements=element_lists())
def test_chunked_from_generator_and_checked_take_the_inferred_signature(elements):
    def gen():
        yield from elements

    signature = signatures.infer_signature(gen)
    guarded = tf.data.Dataset.from_generator(
        signatures.checked(gen, signature), output_signature=signature
    )
    chunked = pipelines.chunked_from_generator(gen, output_signature=signature, chunk_size=2)
    for dataset in (guarded, chunked):
        assert dataset.element_spec == signature
        got = list(dataset)
        assert len(got) == len(elements)
        for read, original in zip(got, elements, strict=True):
            _assert_same(read, original)


ZERO_SIZE = """
import numpy as np
import tensorflow as tf
from helpers import pipelines

def gen():
    yield np.zeros(0, np.uint8)

dataset = pipelines.chunked_from_generator(gen, output_signature=tf.TensorSpec((0,), tf.uint8))
print([element.shape for element in dataset])
"""


def test_chunked_zero_size_component(run_python):
    # Crashed the process (SIGSEGV) before ac8e6a8; run in a subprocess so a regression fails here.
    result = run_python(ZERO_SIZE)
    assert (result.returncode, result.stdout.split()) == (0, ["[TensorShape([0])]"])


EXAMPLES = [
    ({"image": np.zeros((2, 2), np.uint8), "label": 3}, (np.ones(3, np.float32), b"x")),
    ({"image": np.ones((3, 2), np.uint8), "label": 4}, (np.zeros(1, np.float32), b"yz")),
]


def test_chunked_from_generator_and_checked_accept_the_inferred_signature():
    def gen():
        yield from EXAMPLES

    signature = signatures.infer_signature(gen)
    chunked = pipelines.chunked_from_generator(gen, output_signature=signature)
    guarded = tf.data.Dataset.from_generator(
        signatures.checked(gen, signature), output_signature=signature
    )
    for dataset in (chunked, guarded):
        assert dataset.element_spec == signature
        got = list(dataset)
        for read, original in zip(got, EXAMPLES, strict=True):
            tf.nest.assert_same_structure(read, original)
            for g, e in zip(tf.nest.flatten(read), tf.nest.flatten(original), strict=True):
                assert np.asarray(g.numpy()).tolist() == np.asarray(e).tolist()


Point = collections.namedtuple("Point", "x y")


@pytest.mark.parametrize(
    ("samples", "match"),
    [
        (
            [(0, {1.5: 2.0})],
            r"signature at \[1\]\[key=1.5\]: expected a str, int or bytes dict key",
        ),
        (
            [{True: 1, False: 2}],
            r"signature at \[key=False\]: expected a str, int or bytes dict key",
        ),
    ],
)
def test_what_write_tfrecords_does_not_store_is_refused_naming_the_path(tmp_path, samples, match):
    signature = signatures.infer_signature(samples)
    with pytest.raises(SignatureError, match=match):
        write_tfrecords(lambda: iter(samples), tmp_path, output_signature=signature)
    assert list(tmp_path.iterdir()) == []


Point = collections.namedtuple("Point", "x y")


def test_namedtuples_and_int_and_bytes_keys_round_trip(tmp_path):
    elements = [
        Point(np.int64(1), {3: tf.sparse.from_dense([0.0, 0.5]), -1: b"a"}),
        Point(np.int64(2), {3: tf.sparse.from_dense([1.5, 0.0]), -1: b"bc"}),
    ]
    signature = signatures.infer_signature(elements)
    directory = write_tfrecords(lambda: iter(elements), tmp_path, output_signature=signature)
    manifest = (directory / "manifest.json").read_text()
    assert '"namedtuple": {"name": "Point", "fields": ["x", "y"]' in manifest
    assert '"dict_items": [[{"int": ' in manifest
    dataset = read_tfrecords(directory)
    assert dataset.element_spec == signature
    first = next(iter(dataset))
    assert type(first).__name__ == "Point" and first._fields == ("x", "y")
    assert sorted(first.y) == [-1, 3] and first.y[-1].numpy() == b"a"
    for read, original in zip(dataset, elements, strict=True):
        _assert_same(read, original)
