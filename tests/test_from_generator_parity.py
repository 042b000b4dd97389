"""The drop-ins deliver what ``tf.data.Dataset.from_generator`` delivers, event by event.

Every case of TensorFlow's public ``from_generator`` tests (``tensorflow/python/data/kernel_tests/
from_generator_test.py``), re-expressed here in plain Python, plus the findings of the issue
"Drop-ins that lose nothing", runs through plain ``from_generator`` and through every drop-in:
``chunked_from_generator`` with chunks of 1, 3 and 256 elements, ``sharded_from_generator`` with 1
shard and with 3 shards, and ``from_generator(signatures.checked(...))``. An *event* is what one
``next()`` on a Python iterator over the dataset gives: an element (structure, dtype, shape and
value, NaN-aware), an error (its class), or the end of data.

The deliberate differences (the table in ``helpers.pipelines``) are tested as such: lossy casts
are refused where ``from_generator`` converts; spec names are dropped by the chunked paths.
"""

from __future__ import annotations

import gc
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import _chunks, pipelines, signatures

DROP_INS = ["chunked-1", "chunked-3", "chunked-256", "sharded-1", "sharded-3", "checked"]
ORDERED = [kind for kind in DROP_INS if kind != "sharded-3"]
SHARD_CHUNK = 2  # chunk size of the 3-shard variant
END = ("end",)


# --------------------------------------------------------------------------- building datasets


class _ShardView:
    """Shard ``index`` of ``count`` of an iterator: the blocks of ``block`` positions it owns.

    Position ``p`` (an element, or an exception raised by the source) belongs to shard
    ``(p // block) % count``; interleaving the shards chunk by chunk restores the source order.
    Like the source, it raises for an owned exception and goes on.
    """

    def __init__(self, source: Iterator[Any], index: int, count: int, block: int) -> None:
        self.source, self.index, self.count, self.block = source, index, count, block
        self.position = 0

    def __iter__(self) -> _ShardView:
        return self

    def __next__(self) -> Any:
        while True:
            owned = (self.position // self.block) % self.count == self.index
            self.position += 1
            try:
                element = next(self.source)
            except StopIteration:
                raise
            except Exception:
                if owned:
                    raise
                continue
            if owned:
                return element


def _sharded_generator(generator: Callable[..., Any], block: int) -> Callable[..., Any]:
    """A shard function over ``generator``'s output (see :class:`_ShardView`)."""

    def shard(index: Any, count: Any, *args: Any) -> Iterator[Any]:
        return _ShardView(iter(generator(*args)), int(index), int(count), block)

    return shard


def build(kind: str, generator: Callable[..., Any], **arguments: Any) -> tf.data.Dataset:
    """The dataset of one drop-in, given ``from_generator``'s keyword arguments."""
    if kind == "plain":
        return tf.data.Dataset.from_generator(generator, **arguments)
    if kind == "checked":
        signature = tf.data.Dataset.from_generator(generator, **arguments).element_spec
        rest = {k: v for k, v in arguments.items() if k in ("args", "name")}
        return tf.data.Dataset.from_generator(
            signatures.checked(generator, signature), output_signature=signature, **rest
        )
    family, size = kind.split("-")
    if family == "chunked":
        return pipelines.chunked_from_generator(generator, **arguments, chunk_size=int(size))
    shards = int(size)
    if shards == 1:

        def single(index: Any, count: Any, *args: Any) -> Any:
            del index, count
            return generator(*args)

        return pipelines.sharded_from_generator(single, **arguments, num_shards=1, chunk_size=3)
    signature = tf.data.Dataset.from_generator(generator, **arguments).element_spec
    block = SHARD_CHUNK if _chunks.supported(signature) else 1  # the fallback is per element
    return pipelines.sharded_from_generator(
        _sharded_generator(generator, block),
        **arguments,
        num_shards=shards,
        chunk_size=SHARD_CHUNK,
    )


# --------------------------------------------------------------------------- events


def _value(value: Any) -> Any:
    """A comparable form of one component: dtype, shape and values (NaN as a string)."""
    if isinstance(value, tf.RaggedTensor):
        return ("ragged", value.dtype.name, value.to_list())
    if isinstance(value, tf.SparseTensor):
        return ("sparse", value.dtype.name, tf.sparse.to_dense(value).numpy().tolist())
    array = np.asarray(value)
    items = array.tolist()
    if array.dtype.kind in "fc":
        items = np.where(np.isnan(array), "nan", array.astype(object)).tolist()
    return (array.dtype.name, array.shape, items)


def events(dataset: tf.data.Dataset, limit: int = 1000) -> list[Any]:
    """Every ``next()`` on an iterator over ``dataset``: values, errors, then the end."""
    out: list[Any] = []
    iterator = iter(dataset)
    while len(out) < limit:
        try:
            element = next(iterator)
        except StopIteration:
            out.append(END)
            break
        except tf.errors.OpError as error:
            out.append(("error", type(error).__name__))
            continue
        out.append(("value", tf.nest.map_structure(_value, element)))
    return out


def _unordered(found: list[Any]) -> tuple[list[str], int]:
    """Values (as sorted reprs) and the number of errors, for shards that reorder."""
    values = sorted(repr(event) for event in found if event[0] == "value")
    return values, sum(event[0] == "error" for event in found)


def assert_parity(
    generator: Callable[..., Any],
    kinds: list[str] = DROP_INS,
    transform: Callable[[tf.data.Dataset], tf.data.Dataset] = lambda ds: ds,
    **arguments: Any,
) -> list[Any]:
    """Asserts that every drop-in gives plain ``from_generator``'s events; returns them."""
    want = events(transform(build("plain", generator, **arguments)))
    for kind in kinds:
        got = events(transform(build(kind, generator, **arguments)))
        if kind == "sharded-3":
            assert _unordered(got) == _unordered(want), kind
            assert got[-1] == want[-1], kind
        else:
            assert got == want, kind
    return want


def _unnamed(spec: Any) -> Any:
    return tf.nest.map_structure(
        lambda s: tf.TensorSpec(s.shape, s.dtype) if type(s) is tf.TensorSpec else s, spec
    )


class Script:
    """An iterator over a script: values are yielded, exceptions raised, and it goes on.

    Like the custom iterators of the TensorFlow tests (queues, file tails), raising does not
    finish it; after the script it raises ``StopIteration`` once and then ``again`` follows.
    """

    def __init__(self, items: list[Any], again: list[Any] | None = None) -> None:
        self.items = list(items)
        self.again = list(again or [])
        self.stopped = False

    def __iter__(self) -> Script:
        return self

    def __next__(self) -> Any:
        if not self.items:
            self.items, self.again = self.again, []
            raise StopIteration
        item = self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


I64 = tf.TensorSpec((), tf.int64)
I32 = tf.TensorSpec((), tf.int32)


# --------------------------------------------------------------------------- TensorFlow's cases


@pytest.mark.parametrize(
    "generator",
    [
        pytest.param(lambda: ([i] * i for i in range(1, 8)), id="generator-expression"),
        pytest.param(lambda: [[i] * i for i in range(1, 8)], id="list"),
        pytest.param(lambda: np.arange(9, dtype=np.int64), id="ndarray"),
    ],
)
def test_types_only_with_repeat_and_prefetch(generator):
    assert_parity(generator, transform=lambda ds: ds.repeat(2).prefetch(5), output_types=tf.int64)


def test_generator_function_with_repeat_and_prefetch():
    def gen():
        for i in range(1, 8):
            yield [i] * i

    assert_parity(gen, transform=lambda ds: ds.repeat(2).prefetch(5), output_types=tf.int64)


def test_types_and_shapes_with_unknown_dimension_and_repeat():
    def gen():
        for i in range(1, 6):
            yield [i] * i, [i, i**2, i**3]

    assert_parity(
        gen,
        transform=lambda ds: ds.repeat(2).prefetch(5),
        output_types=(tf.int64, tf.int64),
        output_shapes=([None], [3]),
    )


@pytest.mark.parametrize("kind", ["plain", *ORDERED])
def test_many_concurrent_iterators_inside_interleave(kind):
    def gen():
        for i in range(1, 6):
            yield [i] * i, [i, i**2, i**3]

    def inner(_):
        return (
            build(kind, gen, output_types=(tf.int64, tf.int64), output_shapes=([None], [3]))
            .repeat(2)
            .prefetch(5)
        )

    dataset = tf.data.Dataset.range(4).interleave(inner, cycle_length=3, block_length=5)
    got = [(a.numpy().tolist(), b.numpy().tolist()) for a, b in dataset]
    one_pass = [([i] * i, [i, i**2, i**3]) for i in range(1, 6)]
    assert got == one_pass * 2 * 4


@pytest.mark.parametrize("dtype", [tf.int8, tf.int32, tf.int64])
def test_implicit_conversion_of_lists(dtype):
    def gen():
        yield [1]
        yield [2]
        yield [3]

    found = assert_parity(gen, output_types=dtype, output_shapes=[1])
    assert [event[1][0] for event in found[:3]] == [dtype.name] * 3


def test_strings_and_bytes():
    def gen():
        yield "foo"
        yield b"bar"
        yield "baz"

    found = assert_parity(gen, output_types=tf.string, output_shapes=[])
    assert [event[1][2] for event in found[:3]] == [b"foo", b"bar", b"baz"]


def test_value_error_in_the_middle_and_the_stream_goes_on():
    def gen():
        yield np.array([1, 2, 3], dtype=np.int64)
        yield np.array([4, 5, 6], dtype=np.int64)
        yield "ERROR"
        yield np.array([7, 8, 9], dtype=np.int64)

    found = assert_parity(gen, output_types=tf.int64, output_shapes=[3])
    assert [event[0] for event in found] == ["value", "value", "error", "value", "end"]


def test_shape_error_in_the_middle_and_the_stream_goes_on():
    def gen():
        yield np.array([1, 2, 3], dtype=np.int64)
        yield np.array([4, 5, 6], dtype=np.int64)
        yield np.array([7, 8, 9, 10], dtype=np.int64)
        yield np.array([11, 12, 13], dtype=np.int64)

    found = assert_parity(gen, output_types=tf.int64, output_shapes=[3])
    assert [event[0] for event in found] == ["value", "value", "error", "value", "end"]


@pytest.mark.parametrize("shapes", [None, ((), ())])
def test_structure_errors_in_the_middle(shapes):
    def gen():
        yield 1, 2
        yield 3, 4
        yield 5
        yield 6, 7, 8
        yield 9, 10

    found = assert_parity(gen, output_types=(tf.int64, tf.int64), output_shapes=shapes)
    assert [event[0] for event in found] == ["value", "value", "error", "error", "value", "end"]


def test_heterogeneous_shapes_with_types_only():
    def gen():
        yield 1
        yield [2, 3]

    assert_parity(gen, output_types=tf.int64)


def test_stopping_early_with_take():
    def gen():
        yield 0
        yield 1
        yield 2

    assert_parity(gen, transform=lambda ds: ds.take(2), output_types=tf.int64)


@pytest.mark.parametrize("kind", ["plain", *DROP_INS])
def test_iterator_object_is_deleted_when_the_iterator_ends(kind):
    deleted = threading.Event()

    class Endless:
        def __iter__(self):
            return self

        def __next__(self):
            return 42

        def __del__(self):
            deleted.set()

    dataset = build(kind, Endless, output_types=tf.int64, output_shapes=()).take(2)
    assert events(dataset) == [("value", ("int64", (), 42))] * 2 + [END]
    gc.collect()
    assert deleted.wait(timeout=10)


@pytest.mark.parametrize("kind", ["plain", *DROP_INS])
def test_generator_finally_runs_when_the_iterator_is_deleted(kind):
    finished = threading.Event()

    def gen():
        try:
            yield from range(10_000)
        finally:
            finished.set()

    iterator = iter(build(kind, gen, output_signature=I64))
    next(iterator)
    next(iterator)
    assert not finished.is_set()
    del iterator
    gc.collect()
    assert finished.wait(timeout=10)


@pytest.mark.parametrize("kind", ["plain", *ORDERED])
def test_args_inside_flat_map(kind):
    def gen(n):
        for _ in range(n):
            yield np.array(n, dtype=np.int64)

    def inner(n):
        return build(kind, gen, output_types=tf.int64, output_shapes=(), args=(n,))

    got = [int(x) for x in tf.data.Dataset.range(5).flat_map(inner)]
    assert got == [1, 2, 2, 3, 3, 3, 4, 4, 4, 4]


@pytest.mark.parametrize("kind", ["plain", *ORDERED])
def test_two_args_of_two_dtypes_inside_flat_map(kind):
    def gen(n, message):
        for i in range(n):
            yield i, message

    def inner(n, message):
        return build(
            kind, gen, output_types=(tf.int64, tf.string), output_shapes=((), ()), args=(n, message)
        )

    source = tf.data.Dataset.zip(
        (tf.data.Dataset.range(4), tf.data.Dataset.from_tensors("Hi!").repeat())
    )
    got = [(int(i), bytes(m.numpy())) for i, m in source.flat_map(inner)]
    assert got == [(i, b"Hi!") for n in range(4) for i in range(n)]


def test_repeated_short_list_elements():
    def gen():
        for _ in range(10):
            yield [20]

    assert_parity(gen, transform=lambda ds: ds.take(1), output_types=tf.int64)


def test_ragged_tensor_spec_falls_back_and_matches():
    def gen():
        yield tf.ragged.constant([[1, 2], [3]], dtype=tf.int64, ragged_rank=1)

    signature = tf.RaggedTensorSpec(shape=(2, None), dtype=tf.int64)
    assert_parity(gen, output_signature=signature)


def test_sparse_tensor_spec_falls_back_and_matches():
    def gen():
        yield tf.SparseTensor(
            indices=[[0, 0], [1, 2]], values=tf.constant([1, 2], tf.int64), dense_shape=[3, 4]
        )

    assert_parity(gen, output_signature=tf.SparseTensorSpec([3, 4], tf.int64))


@pytest.mark.parametrize("kind", DROP_INS)
def test_element_spec_equals_from_generator_up_to_names(kind):
    signature = {
        "image": tf.TensorSpec((2, 2), tf.float32, name="image"),
        "tokens": tf.TensorSpec((None,), tf.int32),
        "pair": (I64, tf.TensorSpec((), tf.string)),
    }

    def gen():
        yield {"image": np.zeros((2, 2)), "tokens": [1], "pair": (1, "a")}

    want = build("plain", gen, output_signature=signature).element_spec
    got = build(kind, gen, output_signature=signature).element_spec
    assert _unnamed(got) == _unnamed(want)


@pytest.mark.parametrize("kind", ["plain", *DROP_INS])
def test_generator_calls_per_pass(kind):
    calls = []

    def gen():
        calls.append(1)
        yield from range(7)

    dataset = build(kind, gen, output_signature=I64)
    for _ in range(3):
        assert sorted(event[1][2] for event in events(dataset)[:-1]) == list(range(7))
    shards = 3 if kind == "sharded-3" else 1
    assert len(calls) == 3 * shards


# --------------------------------------------------------------------------- the findings


def _int_stream(count: int, bad: dict[int, Any]) -> Callable[[], Iterator[Any]]:
    def gen():
        for index in range(count):
            if bad.get(index) == "raise":
                raise ValueError(f"generator failed at {index}")
            yield bad.get(index, index)

    return gen


@pytest.mark.parametrize("position", [7, 300])
def test_finding_1_good_elements_before_an_error_are_delivered(position):
    found = assert_parity(
        _int_stream(320, {position: "not a number"}), kinds=ORDERED, output_signature=I64
    )
    assert found[position] == ("error", "InvalidArgumentError")
    raised = assert_parity(_int_stream(320, {position: "raise"}), output_signature=I64)
    assert [event[0] for event in raised] == ["value"] * position + ["error", "end"]


def test_finding_2_ignore_errors_keeps_every_good_element():
    bad = {3: "x", 10: (1, 2), 11: "y", 270: None}
    found = assert_parity(
        _int_stream(300, bad), transform=lambda ds: ds.ignore_errors(), output_signature=I64
    )
    assert [event[1][2] for event in found[:-1]] == [i for i in range(300) if i not in bad]


def test_finding_3_the_stream_goes_on_after_a_refused_element():
    def gen():
        return Script([1, 2, ValueError("flaky read"), 3, "x", 4, ValueError("again"), 5])

    found = assert_parity(gen, output_signature=I64)
    kinds = [event[0] for event in found]
    assert kinds == ["value", "value", "error", "value", "error", "value", "error", "value", "end"]


@pytest.mark.parametrize(
    ("shape", "spec_shape"),
    [
        ((0, 4), (None, None)),
        ((0, 5), (None, 5)),
        ((2, 0, 3), (None, None, None)),
        ((3, 0), (3, None)),
    ],
)
def test_finding_4_zero_size_dimensions_keep_their_shape(shape, spec_shape):
    def gen():
        yield np.zeros(shape, np.float32)
        yield np.ones((1,) * len(shape), np.float32)

    found = assert_parity(gen, output_signature=tf.TensorSpec(spec_shape, tf.float32))
    assert found[0][1][1] == shape


def test_finding_5_structure_rules_are_tensorflows():
    with pytest.raises(TypeError) as want:
        tf.data.Dataset.from_generator(lambda: iter(()), output_signature=[I64])
    for kind in DROP_INS:
        with pytest.raises(TypeError) as got:
            build(kind, lambda: iter(()), output_signature=[I64])
        assert str(got.value) == str(want.value)

    class ReadOnly(Mapping):
        def __init__(self, data):
            self.data = data

        def __getitem__(self, key):
            return self.data[key]

        def __iter__(self):
            return iter(self.data)

        def __len__(self):
            return len(self.data)

    def gen():
        yield (1, 2)
        yield [3, 4]
        yield (5, 6)

    assert_parity(gen, output_signature=(I64, I64))

    def dicts():
        yield {"a": 1}
        yield ReadOnly({"a": 2})
        yield {"a": 3}

    found = assert_parity(dicts, output_signature={"a": I64})
    assert [event[0] for event in found] == ["value", "error", "value", "end"]


@pytest.mark.parametrize("kind", ["chunked-1", "chunked-3", "chunked-256", "sharded-1", "checked"])
def test_finding_6_verdicts_do_not_depend_on_neighbours(kind):
    f32, f64 = tf.TensorSpec((), tf.float32), tf.TensorSpec((), tf.float64)
    cases = [
        ([0.5, 2**24 + 1, 1.5], f32, [False, True, False]),
        ([2**24 + 1], f32, [True]),
        ([1, 2**53 + 1, 3], f64, [False, True, False]),
        ([np.int64(2**53 + 1)], f64, [True]),
        ([1, 2.0, True, np.float32(0.25)], f64, [False, False, False, False]),
        ([-1, 1], tf.TensorSpec((), tf.uint64), [True, False]),
    ]
    for values, spec, refused in cases:
        found = events(build(kind, lambda v=values: iter(v), output_signature=spec))
        assert [event[0] == "error" for event in found[:-1]] == refused, (values, spec)
        for value, verdict in zip(values, refused, strict=True):
            try:
                signatures.check_element(value, spec)
            except signatures.SignatureError:
                assert verdict, value
            else:
                assert not verdict, value


def test_finding_7_nothing_is_pulled_after_stop_iteration():
    def gen():
        return Script([1, 2, 3], again=[4, 5])

    found = assert_parity(gen, output_signature=I64)
    assert [event[1][2] for event in found[:-1]] == [1, 2, 3]


def test_finding_8_from_generator_call_signature():
    def gen(*args):
        yield from range(3)

    for kind in DROP_INS:
        dataset = build(kind, gen, output_types=tf.int64, output_shapes=(), args=None, name="n")
        assert sorted(event[1][2] for event in events(dataset)[:-1]) == [0, 1, 2]
    dataset = pipelines.chunked_from_generator(gen, tf.int64, (), None, None, "n", chunk_size=2)
    assert [int(x) for x in dataset] == [0, 1, 2]


def _without_prefetch(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """tf.data's automatic prefetch (on by default) buffers outputs, also from_generator's."""
    options = tf.data.Options()
    options.experimental_optimization.inject_prefetch = False
    options.autotune.enabled = False
    return dataset.with_options(options)


def _pulled_ahead(build_dataset: Callable[[Callable[..., Any]], tf.data.Dataset]) -> int:
    pulled = []

    def gen(shard=0, count=1):
        for value in itertools.count(int(shard), int(count)):
            pulled.append(value)
            yield value

    iterator = iter(_without_prefetch(build_dataset(gen)))
    for _ in range(50):
        next(iterator)
    time.sleep(0.2)  # let the generators run as far ahead as they can
    del iterator
    return len(pulled) - 50


@pytest.mark.parametrize(("chunk", "shards"), [(8, 1), (3, 2)])
def test_finding_9_run_ahead_is_bounded_as_documented(chunk, shards):
    """Chunked: less than a chunk. Sharded: the chunk being consumed plus 2 per shard."""
    assert _pulled_ahead(lambda gen: tf.data.Dataset.from_generator(gen, output_signature=I64)) == 0
    ahead = _pulled_ahead(
        lambda gen: pipelines.chunked_from_generator(gen, output_signature=I64, chunk_size=chunk)
    )
    assert ahead < chunk
    ahead = _pulled_ahead(
        lambda gen: pipelines.sharded_from_generator(
            gen, output_signature=I64, num_shards=shards, chunk_size=chunk
        )
    )
    assert ahead < chunk + 2 * shards * chunk


# --------------------------------------------------------------------------- random streams

PAIR = (tf.TensorSpec((2,), tf.float32), tf.TensorSpec((), tf.int32))
_exact = st.tuples(
    st.lists(st.integers(-1000, 1000), min_size=2, max_size=2).map(
        lambda xs: np.array(xs, np.float32)
    ),
    st.integers(-(2**31), 2**31 - 1),
)
_refused_by_both = st.sampled_from(
    [("x", 1), (np.zeros(3, np.float32), 1), [np.zeros(2), 1], (np.zeros(2), "two"), None]
)
_lossy = st.sampled_from([(np.zeros(2), 2.5), (np.zeros(2), 2**40), ([1e300, 0.0], 1)])
_raised = st.just(ValueError("read failed"))
_item = st.one_of(
    _exact.map(lambda x: ("exact", x)),
    _refused_by_both.map(lambda x: ("refused", x)),
    _lossy.map(lambda x: ("lossy", x)),
    _raised.map(lambda x: ("raised", x)),
)
_CURRENT: dict[str, list[Any]] = {"items": []}
_DATASETS: dict[str, tf.data.Dataset] = {}


def _script() -> Script:
    return Script([item for _, item in _CURRENT["items"]])


def _dataset(kind: str) -> tf.data.Dataset:
    if kind not in _DATASETS:
        if kind.startswith("chunked-"):
            size = int(kind.split("-")[1])
            _DATASETS[kind] = pipelines.chunked_from_generator(
                _script, output_signature=PAIR, chunk_size=size
            )
        else:
            _DATASETS[kind] = build(kind, _script, output_signature=PAIR)
    return _DATASETS[kind]


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # plain 1e300
@settings(max_examples=20)
@given(
    items=st.lists(_item, max_size=12),
    kind=st.sampled_from(
        ["chunked-1", "chunked-2", "chunked-3", "chunked-5", "sharded-1", "checked"]
    ),
    ignore=st.booleans(),
)
def test_random_streams_give_from_generators_events(items, kind, ignore):
    _CURRENT["items"] = items
    transform = (lambda ds: ds.ignore_errors()) if ignore else (lambda ds: ds)
    want = events(transform(_dataset("plain")))
    got = events(transform(_dataset(kind)))
    expected: list[Any] = []
    plain_values = iter(want)
    for category, _ in items:
        if category == "lossy":  # from_generator converts it silently; the drop-ins refuse it
            next(plain_values)
            if not ignore:
                expected.append(("error", "InvalidArgumentError"))
        elif category in ("refused", "raised") and ignore:
            continue
        else:
            expected.append(next(plain_values))
    expected.append(next(plain_values))
    assert got == expected
