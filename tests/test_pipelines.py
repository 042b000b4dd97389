from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import _chunks, pipelines

IMAGE = tf.TensorSpec((4, 3), tf.float32)
LABEL = tf.TensorSpec((), tf.int32)
PAIR = (IMAGE, LABEL)


def pairs(count: int = 23):
    """A per-element generator function of (image, label) with Python-int labels."""
    rng = np.random.default_rng(1)
    images = rng.random((count, 4, 3), dtype=np.float32)

    def generate():
        for index in range(count):
            yield images[index], index

    return generate


def as_numpy(dataset: tf.data.Dataset) -> list:
    return list(dataset.as_numpy_iterator())


def assert_same(left, right) -> None:
    """Structures and values equal (dense arrays, ragged tensors, nested tuples and dicts)."""
    tf.nest.assert_same_structure(left, right)
    for a, b in zip(tf.nest.flatten(left), tf.nest.flatten(right), strict=True):
        if isinstance(a, tf.RaggedTensor) or isinstance(b, tf.RaggedTensor):
            assert a.to_list() == b.to_list()
        else:
            np.testing.assert_array_equal(a, b)
            assert np.asarray(a).dtype == np.asarray(b).dtype


def assert_datasets_equal(got: tf.data.Dataset, want: tf.data.Dataset) -> None:
    assert got.element_spec == want.element_spec
    got_items, want_items = list(got), list(want)
    assert len(got_items) == len(want_items)
    for a, b in zip(got_items, want_items, strict=True):
        assert_same(
            tf.nest.map_structure(_numpy, a, expand_composites=False),
            tf.nest.map_structure(_numpy, b, expand_composites=False),
        )


def _numpy(value):
    return value if isinstance(value, tf.RaggedTensor) else value.numpy()


def plain(generator_fn, signature, args=None) -> tf.data.Dataset:
    return tf.data.Dataset.from_generator(generator_fn, output_signature=signature, args=args)


# --------------------------------------------------------------------------- equality and order


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 23, 256])
def test_per_element_output_equals_from_generator(chunk_size):
    gen = pairs(23)
    got = pipelines.chunked_from_generator(gen, output_signature=PAIR, chunk_size=chunk_size)
    assert_datasets_equal(got, plain(gen, PAIR))


@pytest.mark.parametrize(("chunk_size", "batch_size"), [(3, 4), (8, 4), (5, 5), (256, 10), (1, 7)])
def test_batched_output_equals_batch_of_from_generator(chunk_size, batch_size):
    gen = pairs(23)
    got = pipelines.chunked_from_generator(
        gen, output_signature=PAIR, chunk_size=chunk_size, batch_size=batch_size
    )
    want = plain(gen, PAIR).batch(batch_size)
    assert_datasets_equal(got, want)
    assert [len(labels) for _, labels in as_numpy(got)][-1] == (23 % batch_size or batch_size)


@settings(max_examples=15, deadline=None)
@given(
    count=st.integers(0, 40),
    chunk_size=st.integers(1, 12),
    batch_size=st.one_of(st.none(), st.integers(1, 9)),
)
def test_any_sizes_keep_every_element_in_order(count, chunk_size, batch_size):
    gen = pairs(count)
    got = pipelines.chunked_from_generator(
        gen, output_signature=PAIR, chunk_size=chunk_size, batch_size=batch_size
    )
    want = plain(gen, PAIR)
    assert_datasets_equal(got, want if batch_size is None else want.batch(batch_size))


def test_empty_generator_gives_empty_dataset():
    got = pipelines.chunked_from_generator(lambda: iter(()), output_signature=PAIR)
    assert as_numpy(got) == []


@pytest.mark.parametrize("shape", [(0,), (2, 0), (0, 3)])
def test_components_with_no_values_come_out_as_from_generator_gives_them(shape):
    # tf.data's unbatch() segfaults on chunks of shape (n, 0) (TensorFlow 2.20 and 2.21).
    signature = (tf.TensorSpec(shape, tf.uint8), tf.TensorSpec((), tf.int64))

    def gen():
        for index in range(5):
            yield np.zeros(shape, np.uint8), index

    for chunk_size in (1, 3):
        got = pipelines.chunked_from_generator(
            gen, output_signature=signature, chunk_size=chunk_size
        )
        assert_datasets_equal(got, plain(gen, signature))
    sharded = pipelines.sharded_from_generator(
        lambda index, count: gen(), output_signature=signature, num_shards=2
    )
    assert sorted(int(label) for _, label in sharded) == sorted(2 * list(range(5)))


@pytest.mark.parametrize("chunk_size, batch_size", [(4, 3), (256, 256), (5, 10)])
def test_variable_length_rows_batch_like_ragged_batch(chunk_size, batch_size):
    signature = (tf.TensorSpec((None,), tf.int32), tf.TensorSpec((), tf.int64))
    lengths = [3, 0, 1, 0, 0, 7, 2, 5, 0, 4, 1, 6]

    def gen():
        for index, length in enumerate(lengths):
            yield np.arange(length, dtype=np.int32) + index, index

    got = pipelines.chunked_from_generator(
        gen, output_signature=signature, chunk_size=chunk_size, batch_size=batch_size
    )
    want = plain(gen, signature).ragged_batch(batch_size)
    assert got.element_spec == want.element_spec
    for (tokens, labels), (want_tokens, want_labels) in zip(got, want, strict=True):
        assert tokens.to_list() == want_tokens.to_list()
        assert labels.numpy().tolist() == want_labels.numpy().tolist()


def test_single_spec_signature():
    signature = tf.TensorSpec((2,), tf.int64)

    def gen():
        for index in range(10):
            yield np.array([index, -index])

    got = pipelines.chunked_from_generator(gen, output_signature=signature, chunk_size=4)
    assert_datasets_equal(got, plain(gen, signature))


def test_dict_and_nested_signatures():
    signature = {
        "image": IMAGE,
        "meta": (
            LABEL,
            {"name": tf.TensorSpec((), tf.string), "weight": tf.TensorSpec((), tf.float32)},
        ),
    }
    images = np.arange(11 * 12, dtype=np.float32).reshape(11, 4, 3)

    def gen():
        for index in range(11):
            yield {
                "meta": (index, {"weight": index / 2, "name": f"item-{index}"}),
                "image": images[index],
            }

    got = pipelines.chunked_from_generator(gen, output_signature=signature, chunk_size=4)
    assert_datasets_equal(got, plain(gen, signature))
    batched = pipelines.chunked_from_generator(
        gen, output_signature=signature, chunk_size=4, batch_size=3
    )
    assert_datasets_equal(batched, plain(gen, signature).batch(3))


def test_args_are_passed_like_from_generator():
    signature = tf.TensorSpec((), tf.int64)

    def gen(start, stop, name):
        assert name == b"counter"  # from_generator passes strings as bytes
        yield from range(int(start), int(stop))

    got = pipelines.chunked_from_generator(
        gen, output_signature=signature, args=(3, 9, "counter"), chunk_size=4
    )
    assert as_numpy(got) == list(range(3, 9))


def test_float64_and_int_values_are_cast_like_from_generator():
    signature = (tf.TensorSpec((3,), tf.float32), tf.TensorSpec((), tf.uint8))

    def gen():
        for index in range(9):
            yield np.full(3, index / 3, dtype=np.float64), index * 20

    got = pipelines.chunked_from_generator(gen, output_signature=signature, chunk_size=4)
    assert_datasets_equal(got, plain(gen, signature))


def test_bytes_keep_trailing_nul_bytes_and_strings_are_utf8():
    signature = (tf.TensorSpec((), tf.string), tf.TensorSpec((2,), tf.string))
    values = [b"ab\x00", b"\x00\x00", "caf\u00e9", b""]

    def gen():
        for value in values:
            yield value, np.array([value, "x"], dtype=object)

    got = pipelines.chunked_from_generator(gen, output_signature=signature, chunk_size=3)
    assert_datasets_equal(got, plain(gen, signature))
    assert [first for first, _ in as_numpy(got)] == [b"ab\x00", b"\x00\x00", b"caf\xc3\xa9", b""]


def test_variable_length_string_arrays():
    signature = tf.TensorSpec((None,), tf.string)

    def gen():
        for count in range(6):
            yield [b"t\x00"] * count

    got = pipelines.chunked_from_generator(gen, output_signature=signature, chunk_size=4)
    assert_datasets_equal(got, plain(gen, signature))


def test_non_string_value_for_string_spec_is_reported():
    def gen():
        yield "fine"
        yield 7

    dataset = pipelines.chunked_from_generator(gen, output_signature=tf.TensorSpec((), tf.string))
    with pytest.raises(tf.errors.InvalidArgumentError, match="element 1"):
        as_numpy(dataset)


# --------------------------------------------------------------------------- variable shapes


def ragged_gen():
    for index in range(9):
        yield {
            "tokens": np.arange(index, dtype=np.int32),
            "grid": np.full((2, index % 4, 3), index, dtype=np.float32),
        }


RAGGED = {
    "tokens": tf.TensorSpec((None,), tf.int32),
    "grid": tf.TensorSpec((2, None, 3), tf.float32),
}


def test_variable_length_elements_come_out_dense_and_equal():
    got = pipelines.chunked_from_generator(ragged_gen, output_signature=RAGGED, chunk_size=4)
    assert_datasets_equal(got, plain(ragged_gen, RAGGED))


def test_variable_length_batches_are_ragged():
    got = pipelines.chunked_from_generator(
        ragged_gen, output_signature=RAGGED, chunk_size=4, batch_size=3
    )
    want = plain(ragged_gen, RAGGED).ragged_batch(3)
    batches = list(got)
    assert len(batches) == 3
    assert isinstance(batches[0]["tokens"], tf.RaggedTensor)
    for a, b in zip(batches, want, strict=True):
        assert a["tokens"].to_list() == b["tokens"].to_list()
        assert a["grid"].to_list() == b["grid"].to_list()


def test_ragged_signature_falls_back_to_per_element_from_generator():
    signature = tf.RaggedTensorSpec((None, None), tf.int32, ragged_rank=1)

    def gen():
        for index in range(5):
            yield tf.ragged.constant([[index], list(range(index))], dtype=tf.int32)

    got = pipelines.chunked_from_generator(gen, output_signature=signature, chunk_size=2)
    want = plain(gen, signature)
    assert got.element_spec == want.element_spec
    assert [x.to_list() for x in got] == [x.to_list() for x in want]


# --------------------------------------------------------------------------- epochs


def test_every_epoch_calls_the_generator_afresh():
    calls = []

    def gen():
        calls.append(1)
        yield from range(10)

    dataset = pipelines.chunked_from_generator(
        gen, output_signature=tf.TensorSpec((), tf.int64), chunk_size=3
    )
    epochs = [as_numpy(dataset) for _ in range(3)]
    assert epochs == [list(range(10))] * 3
    assert len(calls) == 3


def test_repeat_gives_consecutive_epochs():
    dataset = pipelines.chunked_from_generator(
        lambda: iter(range(5)), output_signature=tf.TensorSpec((), tf.int64), chunk_size=2
    )
    assert as_numpy(dataset.repeat(2)) == [0, 1, 2, 3, 4] * 2


# --------------------------------------------------------------------------- bad elements


def bad_at(index: int, bad):
    def gen():
        for position in range(10):
            yield (np.zeros((4, 3), np.float32), bad if position == index else position)

    return gen


def test_wrong_shape_names_element_and_path():
    def gen():
        for position in range(10):
            shape = (4, 2) if position == 6 else (4, 3)
            yield np.zeros(shape, np.float32), position

    dataset = pipelines.chunked_from_generator(gen, output_signature=PAIR, chunk_size=4)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"element 6, \[0\]"):
        as_numpy(dataset)


def test_lossy_cast_is_refused_where_from_generator_is_silent():
    gen = bad_at(5, 2.7)
    assert as_numpy(plain(gen, PAIR))[5][1] == 2  # from_generator truncates silently
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"element 5, \[1\]"):
        as_numpy(pipelines.chunked_from_generator(gen, output_signature=PAIR, chunk_size=4))


def test_wrong_structure_names_element():
    def gen():
        yield np.zeros((4, 3), np.float32), 1
        yield np.zeros((4, 3), np.float32), 1, "extra"

    with pytest.raises(tf.errors.InvalidArgumentError, match="element 1"):
        as_numpy(pipelines.chunked_from_generator(gen, output_signature=PAIR))


def test_sharded_error_names_the_shard():
    def gen(shard, num_shards):
        for position in range(int(shard), 12, int(num_shards)):
            yield np.zeros((4, 3), np.float32), 2.5 if position == 7 else position

    dataset = pipelines.sharded_from_generator(
        gen, output_signature=PAIR, num_shards=3, chunk_size=2
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"shard 1 of 3: element 2, \[1\]"):
        as_numpy(dataset)


def test_generator_returning_non_iterable_is_reported():
    dataset = pipelines.chunked_from_generator(
        lambda: 42, output_signature=tf.TensorSpec((), tf.int64)
    )
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="generator must return an iterable, got int"
    ):
        as_numpy(dataset)


# --------------------------------------------------------------------------- arguments


def test_generator_object_is_refused_with_a_hint():
    gen = pairs(3)
    with pytest.raises(TypeError, match=r"chunked_from_generator\(\) .* not a generator object"):
        pipelines.chunked_from_generator(gen(), output_signature=PAIR)
    with pytest.raises(TypeError, match=r"sharded_from_generator\(\) .* not a generator object"):
        pipelines.sharded_from_generator(gen(), output_signature=PAIR, num_shards=2)


def test_non_callable_is_refused():
    with pytest.raises(TypeError, match=r"needs a callable returning an iterator, got .*list"):
        pipelines.chunked_from_generator([1, 2], output_signature=tf.TensorSpec((), tf.int64))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"chunk_size": 0}, ValueError, "chunk_size: expected an int >= 1, got 0"),
        ({"chunk_size": 2.5}, TypeError, "chunk_size: expected an int, got float"),
        ({"chunk_size": True}, TypeError, "chunk_size: expected an int, got bool True"),
        ({"batch_size": -3}, ValueError, "batch_size: expected an int >= 1, got -3"),
    ],
)
def test_bad_sizes_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        pipelines.chunked_from_generator(pairs(3), output_signature=PAIR, **kwargs)


def test_bad_num_shards_is_refused():
    with pytest.raises(ValueError, match="num_shards: expected an int >= 1, got 0"):
        pipelines.sharded_from_generator(pairs(3), output_signature=PAIR, num_shards=0)


def test_signature_leaf_that_is_not_a_spec_is_refused():
    with pytest.raises(
        TypeError, match=r"must contain objects that are subclass of `tf\.TypeSpec`"
    ):
        pipelines.chunked_from_generator(pairs(3), output_signature=(IMAGE, tf.int32))


def test_numpy_integer_sizes_are_accepted():
    got = pipelines.chunked_from_generator(pairs(5), output_signature=PAIR, chunk_size=np.int64(2))
    assert len(as_numpy(got)) == 5


# --------------------------------------------------------------------------- sharding


def strided(count: int):
    def gen(shard, num_shards):
        yield from range(int(shard), count, int(num_shards))

    return gen


SCALAR = tf.TensorSpec((), tf.int64)


@pytest.mark.parametrize("num_shards", [1, 2, 3, 5])
@pytest.mark.parametrize("deterministic", [True, False])
def test_sharding_covers_each_element_once(num_shards, deterministic):
    dataset = pipelines.sharded_from_generator(
        strided(29),
        output_signature=SCALAR,
        num_shards=num_shards,
        chunk_size=4,
        deterministic=deterministic,
    )
    assert sorted(as_numpy(dataset)) == list(range(29))


def test_deterministic_order_is_round_robin_by_chunk():
    dataset = pipelines.sharded_from_generator(
        strided(10), output_signature=SCALAR, num_shards=2, chunk_size=2
    )
    # shard 0 yields 0 2 4 6 8, shard 1 yields 1 3 5 7 9; chunks of 2 alternate.
    assert as_numpy(dataset) == [0, 2, 1, 3, 4, 6, 5, 7, 8, 9]
    assert as_numpy(dataset) == as_numpy(dataset)


def test_sharded_batches_and_structure():
    images = np.arange(13 * 12, dtype=np.float32).reshape(13, 4, 3)

    def gen(shard, num_shards):
        for index in range(int(shard), 13, int(num_shards)):
            yield {"image": images[index], "label": index}

    signature = {"image": IMAGE, "label": LABEL}
    dataset = pipelines.sharded_from_generator(
        gen, output_signature=signature, num_shards=3, chunk_size=2, batch_size=4
    )
    assert dataset.element_spec == {
        "image": tf.TensorSpec((None, 4, 3), tf.float32),
        "label": tf.TensorSpec((None,), tf.int32),
    }
    batches = as_numpy(dataset)
    labels = np.concatenate([batch["label"] for batch in batches])
    assert sorted(labels) == list(range(13))
    for batch in batches:
        np.testing.assert_array_equal(batch["image"], images[batch["label"]])


def test_single_shard_equals_chunked():
    def gen(shard, num_shards):
        yield from pairs(11)()

    sharded = pipelines.sharded_from_generator(
        gen, output_signature=PAIR, num_shards=1, chunk_size=3
    )
    assert_datasets_equal(
        sharded, pipelines.chunked_from_generator(pairs(11), output_signature=PAIR)
    )


def test_sixteen_shards_wait_at_the_same_time():
    barrier = threading.Barrier(16, timeout=30)  # breaks unless all sixteen wait together

    def gen(shard, num_shards):
        barrier.wait()
        yield from range(int(shard), 32, int(num_shards))

    dataset = pipelines.sharded_from_generator(gen, output_signature=SCALAR, num_shards=16)
    assert sorted(as_numpy(dataset)) == list(range(32))


def test_all_shards_run_at_once_from_the_first_pass():
    barrier = threading.Barrier(4, timeout=20)  # breaks unless four shards wait on it together

    def gen(shard, num_shards):
        barrier.wait()
        yield from range(int(shard), 8, int(num_shards))

    dataset = pipelines.sharded_from_generator(
        gen, output_signature=SCALAR, num_shards=4, chunk_size=2
    )
    assert sorted(as_numpy(dataset)) == list(range(8))


def test_sharded_fallback_pool_has_a_thread_per_shard_and_at_least_the_usable_cores():
    ragged = tf.RaggedTensorSpec((None, None), tf.int64)
    for shards in (1, 16):
        dataset = pipelines.sharded_from_generator(
            strided(4), output_signature=ragged, num_shards=shards
        )
        want = max(shards, pipelines.usable_cores())
        assert dataset.options().threading.private_threadpool_size == want


def test_usable_cores_follows_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert pipelines.usable_cores() == 3
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert pipelines.usable_cores() == 1


def test_sharded_ragged_signature_falls_back():
    signature = tf.RaggedTensorSpec((None, None), tf.int64, ragged_rank=1)

    def gen(shard, num_shards):
        for index in range(int(shard), 6, int(num_shards)):
            yield tf.ragged.constant([[index], []], dtype=tf.int64)

    dataset = pipelines.sharded_from_generator(
        gen, output_signature=signature, num_shards=2, batch_size=2
    )
    rows = [row for batch in dataset for row in batch.to_list()]
    assert sorted(rows) == [[[index], []] for index in range(6)]


# --------------------------------------------------------------------------- buffer reuse


def test_buffer_pool_reuses_only_unreferenced_arrays():
    pool = _chunks.BufferPool(capacity=2)
    first = pool.get((3, 2), np.dtype(np.float32))
    held = first  # a second reference, as a tensor wrapping the array would hold
    assert pool.get((3, 2), np.dtype(np.float32)) is not held
    del first, held
    again = pool.get((3, 2), np.dtype(np.float32))
    assert pool.get((3, 2), np.dtype(np.float32)) is not again  # `again` is still referenced
    assert pool.get((4, 2), np.dtype(np.float32)).shape == (4, 2)


def test_large_chunks_stay_correct_while_earlier_outputs_are_alive():
    # Chunks of 8 x 64 KiB are large enough for TensorFlow to wrap them without copying; the
    # pool must not overwrite an array that an earlier, still-referenced tensor uses.
    rng = np.random.default_rng(3)
    data = rng.random((70, 128, 128), dtype=np.float32)
    signature = tf.TensorSpec((128, 128), tf.float32)

    def gen():
        yield from data

    for batch_size in (None, 8):
        dataset = pipelines.chunked_from_generator(
            gen, output_signature=signature, chunk_size=8, batch_size=batch_size
        ).prefetch(4)
        kept = list(dataset)  # every output tensor stays alive until the comparison
        got = np.concatenate([np.reshape(t.numpy(), (-1, 128, 128)) for t in kept])
        np.testing.assert_array_equal(got, data)


def test_chunk_arrays_start_on_64_byte_boundaries_so_tensorflow_need_not_copy_them():
    array = _chunks._aligned_empty((5, 7, 3), np.dtype(np.float32))
    assert array.ctypes.data % 64 == 0
    assert (array.shape, array.dtype, array.flags.writeable) == ((5, 7, 3), np.float32, True)
    assert _chunks._aligned_empty((0, 3), np.dtype(np.int64)).shape == (0, 3)


def test_buffer_pool_keeps_an_array_while_a_slice_of_it_is_alive():
    pool = _chunks.BufferPool(capacity=1)
    first = pool.get((4, 2), np.dtype(np.float32))
    memory = id(first.base)
    piece = first[1:3]  # a chunk piece: its base is the memory, not ``first``
    del first
    assert id(pool.get((4, 2), np.dtype(np.float32)).base) != memory
    del piece
    assert id(pool.get((4, 2), np.dtype(np.float32)).base) == memory


def test_chunk_pieces_around_a_bad_element_stay_correct_while_all_outputs_are_alive():
    data = np.random.default_rng(4).random((70, 128, 128), dtype=np.float32)
    signature = tf.TensorSpec((128, 128), tf.float32)

    def gen():
        for index, row in enumerate(data):
            yield row if index % 9 != 5 else row[:3]  # every 9th from 5 has the wrong shape

    plain = tf.data.Dataset.from_generator(gen, output_signature=signature)
    expected = {  # ``batch`` drops the elements it had gathered when an error reaches it
        None: data[np.arange(70) % 9 != 5],
        8: np.concatenate([batch.numpy() for batch in plain.batch(8).ignore_errors()]),
    }
    for batch_size, want in expected.items():
        dataset = pipelines.chunked_from_generator(
            gen, output_signature=signature, chunk_size=8, batch_size=batch_size
        )
        kept = list(dataset.ignore_errors())  # every output tensor stays alive
        got = np.concatenate([np.reshape(t.numpy(), (-1, 128, 128)) for t in kept])
        np.testing.assert_array_equal(got, want)


def test_small_and_large_leaves_keep_their_values_around_bad_elements_and_in_any_memory_order():
    # Leaves of up to 1 KB are collected as bytes (``SmallDenseColumn``), larger ones are copied
    # into the chunk array: both must give the same values, whatever the value's memory order.
    rng = np.random.default_rng(5)
    small, large = rng.random((40, 3, 4)), rng.random((40, 20, 20))
    signature = {
        "small": tf.TensorSpec((3, 4), tf.float64),
        "large": tf.TensorSpec((20, 20), tf.float64),
    }
    assert isinstance(_chunks._column(signature["small"], 8), _chunks.SmallDenseColumn)
    assert type(_chunks._column(signature["large"], 8)) is _chunks.DenseColumn

    def gen():
        for index in range(40):
            if index % 7 == 3:
                yield {"small": small[index][:2], "large": large[index]}  # wrong shape: an error
            else:  # Fortran-ordered and strided views
                yield {"small": np.asfortranarray(small[index]), "large": large[index].T.T[::1]}

    good = np.arange(40) % 7 != 3
    dataset = pipelines.chunked_from_generator(gen, output_signature=signature, chunk_size=8)
    kept = list(dataset.ignore_errors())  # every output tensor stays alive
    np.testing.assert_array_equal(np.stack([x["small"] for x in kept]), small[good])
    np.testing.assert_array_equal(np.stack([x["large"] for x in kept]), large[good])


def test_small_leaves_stay_in_their_rows_after_elements_that_leave_the_fast_path():
    # Small leaves are written one after another to a byte stream: an element stored only in
    # part (its first leaf written, its second refused or cast), a failing pull, or a value that
    # is not C-contiguous must not shift the rows after it.
    class Broken:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("cannot convert")

    class Stream:
        def __init__(self):
            self.index = -1

        def __iter__(self):
            return self

        def __next__(self):
            self.index += 1
            index = self.index
            if index == 12:
                raise StopIteration
            if index == 4:
                raise ValueError("pull failed")
            a = np.full(3, index, np.float32)
            b = np.full(2, index, np.float32)
            if index == 2:
                b = np.full(2, index, np.int64)  # int64 -> float32: stored by the slow path
            elif index == 6:
                b = np.full(2, 1e300)  # overflows float32: refused
            elif index == 8:
                b = Broken()  # converting it raises: refused
            elif index == 9:
                a = np.full((3, 2), index, np.float32)[:, 0]  # strided: not C-contiguous
            return {"a": a, "b": b}

    signature = {"a": tf.TensorSpec((3,), tf.float32), "b": tf.TensorSpec((2,), tf.float32)}
    dataset = pipelines.chunked_from_generator(Stream, output_signature=signature, chunk_size=12)
    events, iterator = [], iter(dataset)
    while True:
        try:
            element = next(iterator)
        except tf.errors.OpError:
            events.append("error")
            continue
        except StopIteration:
            break
        events.append((element["a"].numpy().tolist(), element["b"].numpy().tolist()))
    expected = [([i] * 3, [i] * 2) if i not in (4, 6, 8) else "error" for i in range(12)]
    assert events == expected


def test_small_leaf_values_that_need_a_lossless_cast_are_stored_cast():
    signature = tf.TensorSpec((3,), tf.float32)

    def gen():
        yield np.array([1.5, 2.0, 3.0])  # float64: rounds to float32, as check_element allows
        yield [4, 5, 6]  # a list of ints
        yield np.array([7, 8, 9], np.int16)

    got = [
        x.tolist()
        for x in as_numpy(pipelines.chunked_from_generator(gen, output_signature=signature))
    ]
    assert got == [[1.5, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]


# ---------------------------------------------------------------- default chunk sizes


@pytest.mark.parametrize(
    ("signature", "batch_size", "expected"),
    [
        (tf.TensorSpec((), tf.int64), None, 4096),
        (tf.TensorSpec((), tf.int64), 100, 3200),
        ({"a": tf.TensorSpec((36,), tf.float32), "y": tf.TensorSpec((), tf.int32)}, 256, 4096),
        ((tf.TensorSpec((28, 28, 3), tf.float32), tf.TensorSpec((), tf.int32)), 256, 1024),
        (tf.TensorSpec((224, 224, 3), tf.uint8), 32, 64),
        (tf.TensorSpec((1024,), tf.float32), 256, 4096),
        (tf.TensorSpec((4096,), tf.float32), 256, 1024),
        (tf.TensorSpec((None,), tf.int32), 256, 256),
        ((tf.TensorSpec((), tf.string), tf.TensorSpec((), tf.int32)), 256, 256),  # size unknown
    ],
)
def test_default_chunk_grows_for_small_fixed_shape_elements(signature, batch_size, expected):
    assert _chunks.auto_chunk_size(signature, batch_size) == expected


@pytest.mark.parametrize(
    ("signature", "expected"),
    [
        (tf.TensorSpec((), tf.int64), 256),
        (tf.TensorSpec((None, 3), tf.float32), 256),
        ((tf.TensorSpec((224, 224, 3), tf.uint8), tf.TensorSpec((), tf.int32)), 64),
        (tf.TensorSpec((4096, 4096), tf.float32), 16),
    ],
)
def test_default_shard_chunk_shrinks_for_large_elements(signature, expected):
    assert _chunks.auto_shard_chunk_size(signature) == expected


def test_a_chunk_with_a_fill_time_limit_is_handed_over_early_and_nothing_is_lost():
    plan = _chunks.Plan(tf.TensorSpec((), tf.int64), 256, fill_limit_s=0.0)  # over at first look
    pieces = list(_chunks.ChunkIterator(plan, iter(range(100))))
    clock = _chunks._CLOCK_EVERY  # rows filled before the first look at the clock
    assert [len(piece[0]) for piece in pieces] == [clock, clock, clock, 100 - 3 * clock]
    assert np.concatenate([piece[0] for piece in pieces]).tolist() == list(range(100))


def test_after_an_early_hand_over_chunks_return_to_the_grid_of_full_chunks():
    # A chunk cut short by the fill time limit is followed by one that ends where the full chunk
    # would have, so later chunks line up with batches of the chunk size again (rebatch() can
    # then pass them on without copying; misaligned, it copied every batch of large images).
    clock = _chunks._CLOCK_EVERY

    def numbers():
        for value in range(5 * clock):
            if value == 3:
                time.sleep(0.2)  # only the first chunk is slow
            yield value

    plan = _chunks.Plan(tf.TensorSpec((), tf.int64), 2 * clock, fill_limit_s=0.1)
    pieces = list(_chunks.ChunkIterator(plan, numbers()))
    assert [len(piece[0]) for piece in pieces] == [clock, clock, 2 * clock, clock]
    assert np.concatenate([piece[0] for piece in pieces]).tolist() == list(range(5 * clock))


def test_default_chunks_deliver_exact_batches():
    dataset = pipelines.chunked_from_generator(
        lambda: iter(range(1000)), output_signature=tf.TensorSpec((), tf.int64), batch_size=256
    )
    assert [len(batch) for batch in dataset] == [256, 256, 256, 232]


# ---------------------------------------------------------------- generators reusing buffers


def test_generator_refilling_one_buffer_gives_every_value():
    def gen():
        buffer = np.zeros((4, 3), np.float32)
        for index in range(11):
            buffer[:] = index
            yield buffer

    for batch_size in (None, 4):
        dataset = pipelines.chunked_from_generator(
            gen, output_signature=IMAGE, chunk_size=4, batch_size=batch_size
        )
        got = np.concatenate([np.reshape(x, (-1, 4, 3)) for x in as_numpy(dataset)])
        np.testing.assert_array_equal(got[:, 0, 0], np.arange(11, dtype=np.float32))


def test_generator_alternating_two_buffers_gives_every_value():
    def gen():
        buffers = [np.zeros(3, np.int64), np.zeros(3, np.int64)]
        for index in range(9):
            buffer = buffers[index % 2]
            buffer[:] = index
            yield buffer

    dataset = pipelines.chunked_from_generator(
        gen, output_signature=tf.TensorSpec((3,), tf.int64), chunk_size=4
    )
    assert [row.tolist() for row in as_numpy(dataset)] == [[index] * 3 for index in range(9)]


def test_reused_buffers_in_dict_and_tuple_structures_with_partial_last_chunk():
    signature = {
        "pair": (tf.TensorSpec((2,), tf.float32), tf.TensorSpec((), tf.int32)),
        "tokens": tf.TensorSpec((None,), tf.int64),
        "word": tf.TensorSpec((2,), tf.string),
    }

    def gen():
        image, label = np.zeros(2, np.float32), np.zeros((), np.int32)
        tokens, words = np.zeros(5, np.int64), np.array([b"", b""], dtype=object)
        for index in range(7):
            image[:], label[...], tokens[:] = index, index, index
            words[:] = [b"w%d" % index, b"x"]
            yield {"tokens": tokens[: index % 3 + 1], "word": words, "pair": (image, label)}

    for batch_size in (None, 3):
        dataset = pipelines.chunked_from_generator(
            gen, output_signature=signature, chunk_size=3, batch_size=batch_size
        )
        items = list(dataset.unbatch() if batch_size else dataset)
        assert len(items) == 7  # two full chunks and a partial one
        for index, item in enumerate(items):
            image, label = item["pair"]
            assert image.numpy().tolist() == [index, index]
            assert int(label) == index
            assert item["tokens"].numpy().tolist() == [index] * (index % 3 + 1)
            assert item["word"].numpy().tolist() == [b"w%d" % index, b"x"]


def test_reused_buffer_with_a_lossy_value_is_reported_by_index():
    def gen():
        buffer = np.zeros(3, np.float64)
        for index in range(6):
            buffer[:] = 1e40 if index == 4 else index
            yield buffer

    dataset = pipelines.chunked_from_generator(
        gen, output_signature=tf.TensorSpec((3,), tf.float32), chunk_size=4
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"element 4, <root>.*overflows"):
        as_numpy(dataset)


def test_scalar_column_errors_name_element_and_path_after_buffers_moved_on():
    def gen():
        buffer = np.zeros((4, 3), np.float32)
        for index in range(8):
            buffer[:] = index
            yield buffer, 2**40 + 1 if index == 6 else index

    with pytest.raises(tf.errors.InvalidArgumentError, match=r"element 6, \[1\]"):
        as_numpy(
            pipelines.chunked_from_generator(
                gen, output_signature=(IMAGE, tf.TensorSpec((), tf.float32))
            )
        )


# --------------------------------------------------------------------------- documented differences


def test_spec_names_are_dropped_but_shapes_and_dtypes_kept():
    signature = (tf.TensorSpec((4, 3), tf.float32, name="image"), tf.TensorSpec((), tf.int32))
    got = pipelines.chunked_from_generator(pairs(5), output_signature=signature).element_spec
    want = plain(pairs(5), signature).element_spec
    assert got != want
    assert got == PAIR
    assert [spec.name for spec in got] == [None, None]


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize(("value", "dtype"), [(2**40 + 1, tf.float32), (1e40, tf.float32)])
def test_stricter_than_from_generator_for_lossy_casts(value, dtype):
    signature = tf.TensorSpec((), dtype)

    def gen():
        yield value

    assert len(as_numpy(plain(gen, signature))) == 1  # from_generator converts silently
    with pytest.raises(tf.errors.InvalidArgumentError, match="SignatureError"):
        as_numpy(pipelines.chunked_from_generator(gen, output_signature=signature))


# ------------------------------------------------------------ from_generator's signature


def test_call_signature_matches_from_generator():
    import inspect

    want = list(inspect.signature(tf.data.Dataset.from_generator).parameters.values())
    for function in (pipelines.chunked_from_generator, pipelines.sharded_from_generator):
        got = list(inspect.signature(function).parameters.values())
        assert [(p.name, p.kind, p.default) for p in got[: len(want)]] == [
            (p.name, p.kind, p.default) for p in want
        ]
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in got[len(want) :])


def test_from_generator_keywords_and_legacy_types_are_accepted():
    def gen():
        yield from range(5)

    dataset = pipelines.chunked_from_generator(
        generator=gen, output_types=tf.int64, output_shapes=(), args=None, name="numbers"
    )
    assert as_numpy(dataset) == list(range(5))
    assert dataset.element_spec == tf.TensorSpec((), tf.int64)


@pytest.mark.parametrize(
    "arguments",
    [
        {"output_types": tf.TensorSpec((), tf.int64)},
        {"output_signature": [tf.TensorSpec((1,), tf.int64)]},
        {},
        {"output_types": tf.int64, "output_signature": tf.TensorSpec((), tf.int64)},
        {"output_shapes": (), "output_signature": tf.TensorSpec((), tf.int64)},
    ],
)
def test_bad_combinations_fail_as_from_generator_fails(arguments):
    def gen():
        yield 1

    with pytest.raises(TypeError) as expected:
        tf.data.Dataset.from_generator(gen, **arguments)
    for function, extra in (
        (pipelines.chunked_from_generator, {}),
        (pipelines.sharded_from_generator, {"num_shards": 2}),
    ):
        with pytest.raises(TypeError) as got:
            function(gen, **arguments, **extra)
        assert str(got.value) == str(expected.value)


def test_sharded_passes_args_after_shard_index_and_count():
    def gen(shard, count, stop, label):
        for value in range(shard, int(stop), count):
            yield value, label

    signature = (tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.string))
    dataset = pipelines.sharded_from_generator(
        gen, args=(10, "x"), output_signature=signature, num_shards=3, chunk_size=2
    )
    got = sorted(as_numpy(dataset))
    assert got == [(value, b"x") for value in range(10)]


def test_a_value_whose_conversion_raises_is_that_elements_error_and_later_indices_stay_right():
    class Broken:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("cannot convert")

    def gen():
        for index in range(10):
            if index == 2:
                yield Broken()
            elif index == 6:
                yield np.zeros(5, np.float32)  # wrong shape
            else:
                yield np.full(3, index, np.float32)

    dataset = pipelines.chunked_from_generator(
        gen, output_signature=tf.TensorSpec((3,), tf.float32), chunk_size=8
    )
    events = []
    iterator = iter(dataset)
    while True:
        try:
            events.append(int(next(iterator)[0]))
        except tf.errors.OpError as error:  # RuntimeError arrives as UnknownError
            events.append("cannot convert" if "cannot convert" in str(error) else str(error))
        except StopIteration:
            break
    assert events[:3] == [0, 1, "cannot convert"]
    assert events[3:6] == [3, 4, 5] and events[7:] == [7, 8, 9]
    assert "element 6" in events[6]
