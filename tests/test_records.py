"""Tests of helpers.records: exact round trips, safe writes, refused damaged directories."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import _records, records
from helpers.records import MANIFEST_NAME, RecordsError, read_tfrecords, write_tfrecords
from helpers.signatures import SignatureError

NUMERIC = [
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "complex64",
    "complex128",
]
ALL_DTYPES = [*NUMERIC, "bool", "string"]


# --- random signatures and matching elements ---------------------------------------------------

dims = st.one_of(st.none(), st.integers(0, 3))
dense_specs = st.builds(
    lambda shape, dtype: tf.TensorSpec(shape, tf.as_dtype(dtype)),
    st.lists(dims, max_size=3),
    st.sampled_from(ALL_DTYPES),
)
ragged_specs = st.builds(
    lambda nrows, rank, inner, dtype, splits: tf.RaggedTensorSpec(
        [nrows, *([None] * rank), *inner], tf.as_dtype(dtype), rank, splits
    ),
    st.one_of(st.none(), st.integers(0, 3)),
    st.integers(1, 2),
    st.lists(st.integers(0, 2), max_size=1),
    st.sampled_from(ALL_DTYPES),
    st.sampled_from([tf.int32, tf.int64]),
)
leaves = st.one_of(dense_specs, ragged_specs)
signatures = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(tuple),
        st.dictionaries(
            st.text("abcxyz", min_size=1, max_size=3), children, min_size=1, max_size=3
        ),
    ),
    max_leaves=5,
)


def random_array(rng: np.random.Generator, shape: list[int], dtype: tf.DType) -> np.ndarray:
    """Random values of any dtype, with arbitrary bit patterns for numbers (NaN payloads too)."""
    count = int(np.prod(shape))
    if dtype == tf.string:
        words = np.empty(count, dtype=object)
        words[:] = [rng.bytes(int(rng.integers(0, 5))) for _ in range(count)]
        return words.reshape(shape)
    if dtype == tf.bool:
        return rng.integers(0, 2, shape).astype(bool)
    np_dtype = np.dtype(dtype.as_numpy_dtype)
    return np.frombuffer(rng.bytes(count * np_dtype.itemsize), np_dtype).reshape(shape).copy()


def random_value(rng: np.random.Generator, spec: tf.TypeSpec) -> object:
    if isinstance(spec, tf.RaggedTensorSpec):
        nrows = spec.shape[0] if spec.shape[0] is not None else int(rng.integers(0, 4))
        splits = []
        for _ in range(spec.ragged_rank):
            lengths = rng.integers(0, 3, nrows)
            splits.append(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
            nrows = int(splits[-1][-1])
        inner = spec.shape[spec.ragged_rank + 1 :].as_list()
        flat = tf.constant(random_array(rng, [nrows, *inner], spec.dtype), spec.dtype)
        splits_tf = [tf.constant(s, spec.row_splits_dtype) for s in splits]
        return tf.RaggedTensor.from_nested_row_splits(flat, splits_tf)
    shape = [d if d is not None else int(rng.integers(0, 4)) for d in spec.shape]
    return random_array(rng, shape, spec.dtype)


def random_element(rng: np.random.Generator, signature: object) -> object:
    return tf.nest.map_structure(lambda spec: random_value(rng, spec), signature)


def assert_same(expected: object, got: object) -> None:
    """Exact equality of one component: dtype, shape, and every byte."""
    if isinstance(got, tf.RaggedTensor):
        assert isinstance(expected, tf.RaggedTensor)
        assert got.shape.as_list() == expected.shape.as_list()
        for e, g in zip(expected.nested_row_splits, got.nested_row_splits, strict=True):
            assert g.dtype == e.dtype and g.numpy().tolist() == e.numpy().tolist()
        assert_same(expected.flat_values.numpy(), got.flat_values)
        return
    expected = np.asarray(expected.numpy() if isinstance(expected, tf.Tensor) else expected)
    value = got.numpy()
    assert np.shape(value) == expected.shape
    if got.dtype == tf.string:
        assert np.asarray(value, dtype=object).tolist() == expected.tolist()
    else:
        assert np.asarray(value).dtype == expected.dtype
        assert np.asarray(value).tobytes() == expected.tobytes()


def assert_round_trip(expected: list, dataset: tf.data.Dataset) -> None:
    got = list(dataset)
    assert len(got) == len(expected)
    for e, g in zip(expected, got, strict=True):
        tf.nest.assert_same_structure(e, g, expand_composites=False)
        for leaf_e, leaf_g in zip(tf.nest.flatten(e), tf.nest.flatten(g), strict=True):
            assert_same(leaf_e, leaf_g)


def write_and_check(tmp_path: Path, signature: object, elements: list, num_shards: int) -> None:
    directory = tmp_path / f"d{len(list(tmp_path.iterdir()))}"
    write_tfrecords(
        lambda: iter(elements), directory, output_signature=signature, num_shards=num_shards
    )
    dataset = read_tfrecords(directory)
    assert dataset.element_spec == signature
    assert int(dataset.cardinality()) == len(elements)
    assert_round_trip(elements, dataset)
    untotalled = read_tfrecords(directory, verify=False, assert_total=False)
    assert untotalled.element_spec == signature
    assert int(untotalled.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    assert_round_trip(elements, untotalled)


# --- round trips -----------------------------------------------------------------------------


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(signature=signatures, seed=st.integers(0, 2**32 - 1), count=st.integers(0, 4))
def test_round_trip_of_random_structures(tmp_path, signature, seed, count):
    rng = np.random.default_rng(seed)
    elements = [random_element(rng, signature) for _ in range(count)]
    write_and_check(tmp_path, signature, elements, num_shards=1 + seed % 3)


def test_every_dtype_round_trips_with_fixed_and_variable_shapes(tmp_path):
    signature = {
        dtype: (tf.TensorSpec([2, 3], tf.as_dtype(dtype)), tf.TensorSpec([None], dtype))
        for dtype in ALL_DTYPES
    }
    rng = np.random.default_rng(0)
    elements = [random_element(rng, signature) for _ in range(3)]
    write_and_check(tmp_path, signature, elements, num_shards=2)


def test_unknown_rank(tmp_path):
    signature = (tf.TensorSpec(None, tf.float32), {"s": tf.TensorSpec([], tf.string)})
    elements = [(np.ones([2, 1, 3], np.float32), {"s": b"a"}), (np.float32(2.0), {"s": b""})]
    write_and_check(tmp_path, signature, elements, num_shards=1)


def test_dataset_source_keeps_order_across_uneven_shards(tmp_path):
    source = tf.data.Dataset.range(11).map(
        lambda i: {"i": i, "x": tf.fill([2], tf.cast(i, tf.int8))}
    )
    for num_shards in (1, 4, 15):
        directory = write_tfrecords(source, tmp_path / str(num_shards), num_shards=num_shards)
        dataset = read_tfrecords(directory)
        assert dataset.element_spec == source.element_spec
        assert [int(e["i"]) for e in dataset] == list(range(11))


def test_round_robin_assignment_is_recorded(tmp_path):
    write_tfrecords(tf.data.Dataset.range(10), tmp_path, num_shards=4)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert [s["num_elements"] for s in manifest["shards"]] == [3, 3, 2, 2]
    assert manifest["num_elements"] == 10
    for entry in manifest["shards"]:
        data = (tmp_path / entry["file"]).read_bytes()
        assert entry["num_bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [MANIFEST_NAME] + [f"shard-0000{i}-of-00004.tfrecord" for i in range(4)]
    )


DIGESTS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import tensorflow as tf
    from helpers.records import MANIFEST_NAME, write_tfrecords

    source = tf.data.Dataset.range(20).map(lambda i: {f"k{j}": i + j for j in range(8)})
    write_tfrecords(source, sys.argv[1], num_shards=2, progress=False)
    manifest = json.loads((Path(sys.argv[1]) / MANIFEST_NAME).read_text())
    print(" ".join(shard["sha256"] for shard in manifest["shards"]))
    """
)


def test_same_elements_give_the_same_bytes_in_every_process(tmp_path, run_python):
    # Example features are a protobuf map, whose serialised order may differ between processes
    # unless serialisation is deterministic; the digests in the manifest depend on it.
    results = [run_python(DIGESTS, str(tmp_path / str(run))) for run in range(2)]
    assert [result.returncode for result in results] == [0, 0], results[0].stderr
    runs = [result.stdout.split() for result in results]
    assert len(runs[0]) == 2 and runs[0] == runs[1]


def test_manifest_is_readable_and_describes_the_signature(tmp_path):
    signature = {
        "image": tf.TensorSpec([4, 4, 3], tf.uint8),
        "tags": tf.RaggedTensorSpec([None, None], tf.string, 1, tf.int64),
    }
    write_tfrecords(lambda: iter([]), tmp_path, output_signature=signature)
    text = (tmp_path / MANIFEST_NAME).read_text()
    manifest = json.loads(text)
    assert manifest["format"] == "helpers.records" and manifest["version"] == 1
    assert manifest["structure"] == {"dict": {"image": "c0", "tags": "c1"}}
    image, tags = manifest["components"]
    assert image == {
        "key": "c0",
        "path": "['image']",
        "type": "tensor",
        "dtype": "uint8",
        "shape": [4, 4, 3],
        "encoding": "raw",
    }
    assert tags["type"] == "ragged" and tags["ragged_rank"] == 1 and tags["dtype"] == "string"
    assert '{"key": "c0"' in text  # one line per component


def test_empty_source_reads_back_empty_with_the_same_spec(tmp_path):
    signature = (tf.TensorSpec([3], tf.float32), tf.TensorSpec([], tf.int64))
    write_tfrecords(lambda: iter([]), tmp_path, output_signature=signature, num_shards=2)
    dataset = read_tfrecords(tmp_path)
    assert dataset.element_spec == signature and list(dataset) == []


def test_batched_read_equals_read_then_batch(tmp_path):
    source = tf.data.Dataset.range(10).map(
        lambda i: (
            tf.reshape(tf.cast(tf.range(6, dtype=tf.int64) + i, tf.float16), [2, 3]),
            i % 3 == 0,
        )
    )
    write_tfrecords(source, tmp_path, num_shards=3)
    batched = read_tfrecords(tmp_path, batch_size=4)
    expected = source.batch(4)
    assert batched.element_spec == expected.element_spec
    assert_round_trip(list(expected), batched)


def test_batched_read_falls_back_for_variable_components(tmp_path):
    signature = (tf.TensorSpec([], tf.string), tf.RaggedTensorSpec([None, None], tf.int32, 1))
    elements = [
        (b"a", tf.ragged.constant([[1], [2, 3]])),
        (b"b", tf.ragged.constant([[4, 5, 6]])),
        (b"c", tf.ragged.constant([[]], dtype=tf.int32)),
    ]
    write_tfrecords(lambda: iter(elements), tmp_path, output_signature=signature)
    batched = read_tfrecords(tmp_path, batch_size=2)
    reference = tf.data.Dataset.from_generator(lambda: iter(elements), output_signature=signature)
    assert batched.element_spec == reference.batch(2).element_spec
    assert_round_trip(list(reference.batch(2)), batched)


def test_tensor_spec_names_are_dropped(tmp_path):
    signature = tf.TensorSpec([], tf.int32, name="label")
    write_tfrecords(lambda: iter([1, 2]), tmp_path, output_signature=signature)
    assert read_tfrecords(tmp_path).element_spec == tf.TensorSpec([], tf.int32)


def test_raw_bytes_match_numpy_for_every_raw_dtype():
    rng = np.random.default_rng(1)
    for dtype in _records._RAW_DTYPES:
        for shape in ([], [0], [3, 5]):
            value = random_array(rng, shape, dtype)
            spec = tf.TensorSpec(shape, dtype)
            assert _records._raw_bytes(tf.constant(value, dtype), spec).numpy() == value.tobytes()


# --- safe writes -------------------------------------------------------------------------------


def test_manifest_is_renamed_into_place_last(tmp_path, monkeypatch):
    renamed = []
    real_replace = os.replace

    def spy(src, dst):
        renamed.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(records.os, "replace", spy)
    write_tfrecords(tf.data.Dataset.range(5), tmp_path, num_shards=2)
    assert renamed[-1] == MANIFEST_NAME and len(renamed) == 3


def failing_generator():
    for i in range(300):
        if i == 260:
            raise RuntimeError("source broke at element 260")
        yield i


def test_exception_mid_write_leaves_a_refused_directory(tmp_path):
    with pytest.raises(Exception, match="source broke at element 260"):
        write_tfrecords(
            failing_generator,
            tmp_path,
            output_signature=tf.TensorSpec([], tf.int64),
            num_shards=2,
        )
    assert list(tmp_path.iterdir()) == []  # partial shards removed, nothing looks complete
    with pytest.raises(RecordsError, match=r"manifest\.json: no manifest"):
        read_tfrecords(tmp_path)


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    import tensorflow as tf
    from helpers.records import write_tfrecords

    def slow():
        for i in range(100_000):
            if i == 300:
                print("writing", flush=True)
            if i >= 300:
                time.sleep(0.01)
            yield i

    write_tfrecords(slow, sys.argv[1], output_signature=tf.TensorSpec([], tf.int64),
                    num_shards=2, progress=False)
    """
)


def test_killed_writer_leaves_a_refused_directory(tmp_path):
    directory = tmp_path / "records"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert proc.stdout.readline().strip() == b"writing"
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 0 for p in directory.glob("*.partial")):
            assert time.monotonic() < deadline, "the writer never wrote a partial shard"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    names = sorted(p.name for p in directory.iterdir())
    assert names and all(name.endswith(".partial") for name in names)
    with pytest.raises(RecordsError, match="no manifest"):
        read_tfrecords(directory)


def test_non_empty_directory_needs_overwrite(tmp_path):
    write_tfrecords(tf.data.Dataset.range(5), tmp_path, num_shards=2)
    with pytest.raises(FileExistsError, match="is not empty"):
        write_tfrecords(tf.data.Dataset.range(3), tmp_path)
    (tmp_path / "notes.txt").write_text("kept")
    write_tfrecords(tf.data.Dataset.range(3), tmp_path, overwrite=True)
    assert [int(x) for x in read_tfrecords(tmp_path)] == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        MANIFEST_NAME,
        "notes.txt",
        "shard-00000-of-00001.tfrecord",
    ]


# --- refused directories ------------------------------------------------------------------------


@pytest.fixture
def written(tmp_path):
    source = tf.data.Dataset.range(40).map(lambda i: (tf.fill([16], tf.cast(i, tf.uint8)), i))
    write_tfrecords(source, tmp_path, num_shards=2)
    return tmp_path


def shard(directory: Path, index: int = 1) -> Path:
    return directory / f"shard-0000{index}-of-00002.tfrecord"


def edit_manifest(directory: Path, edit) -> None:
    path = directory / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


SHORT_SHARD_0 = r"shard-00000-of-00002\.tfrecord: shard holds fewer than the 21 elements"


def claim_one_more(manifest: dict) -> None:
    """Makes the manifest claim one element more in shard 0 (and in total) than it holds."""
    manifest["shards"][0]["num_elements"] += 1
    manifest["num_elements"] += 1


def test_missing_manifest(written):
    (written / MANIFEST_NAME).unlink()
    with pytest.raises(RecordsError, match="no manifest") as info:
        read_tfrecords(written)
    assert info.value.path == written / MANIFEST_NAME


def test_missing_directory(tmp_path):
    with pytest.raises(RecordsError, match="no manifest"):
        read_tfrecords(tmp_path / "nowhere")


def test_truncated_shard_is_refused_naming_the_file(written):
    path = shard(written)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 7)
    with pytest.raises(RecordsError, match=r"shard-00001-of-00002\.tfrecord: shard is truncated"):
        read_tfrecords(written)


def test_truncated_shard_with_a_matching_manifest_is_found_by_the_crc_pass(written):
    path = shard(written)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 7)
    edit_manifest(written, lambda m: m["shards"][1].update(num_bytes=path.stat().st_size))
    with pytest.raises(RecordsError, match=r"00002\.tfrecord: shard is damaged: truncated record"):
        read_tfrecords(written)


def test_corrupted_shard_is_refused(written):
    path = shard(written, 0)
    with open(path, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(
        RecordsError, match=r"00000-of-00002\.tfrecord: shard is damaged: corrupted"
    ):
        read_tfrecords(written)
    with pytest.raises(tf.errors.DataLossError):  # without the check pass, iteration still fails
        list(read_tfrecords(written, verify=False))


def test_count_mismatch_is_refused(written):
    edit_manifest(written, claim_one_more)
    with pytest.raises(RecordsError, match="holds 20 elements, the manifest records 21"):
        read_tfrecords(written)
    # Without the check pass, iteration fails instead of returning a shorter dataset.
    with pytest.raises(tf.errors.InvalidArgumentError, match=SHORT_SHARD_0):
        list(read_tfrecords(written, verify=False))


def swap(a: Path, b: Path) -> None:
    temporary = a.with_name("swapping")
    a.rename(temporary)
    b.rename(a)
    temporary.rename(b)


def test_swapped_shards_of_equal_size_are_refused(written):
    assert shard(written, 0).stat().st_size == shard(written, 1).stat().st_size
    swap(shard(written, 0), shard(written, 1))
    with pytest.raises(
        RecordsError,
        match=r"00000-of-00002\.tfrecord: shard holds the bytes written as "
        r"shard-00001-of-00002\.tfrecord: shard files were swapped",
    ):
        read_tfrecords(written)


def test_replaced_shard_of_equal_size_and_count_is_refused(tmp_path):
    original = tf.data.Dataset.range(6).map(lambda i: tf.fill([4], i))
    write_tfrecords(original, tmp_path / "a", num_shards=2)
    write_tfrecords(original.map(lambda x: x + 1), tmp_path / "b", num_shards=2)
    name = "shard-00001-of-00002.tfrecord"
    (tmp_path / "a" / name).write_bytes((tmp_path / "b" / name).read_bytes())
    with pytest.raises(RecordsError, match=f"{name}: shard's SHA-256 is .*, the manifest records"):
        read_tfrecords(tmp_path / "a")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda e: e.pop("sha256"), "KeyError: 'sha256'"),
        (lambda e: e.update(sha256="abc"), "sha256 of 'shard-00000-of-00002.tfrecord' is not 64"),
        (lambda e: e.update(sha256=None), "is not 64 hex digits: None"),
    ],
)
def test_manifest_needs_a_digest_per_shard(written, edit, match):
    edit_manifest(written, lambda m: edit(m["shards"][0]))
    with pytest.raises(RecordsError, match=match):
        read_tfrecords(written)


def test_shard_cut_after_the_call_fails_iteration_naming_the_file(written):
    dataset = read_tfrecords(written)
    path = shard(written, 0)
    data = path.read_bytes()
    record_size = len(data) // 20  # 20 records of equal size
    path.write_bytes(data[:-record_size])  # a clean cut between two records: no CRC notices
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        list(dataset)
    assert f"{path}: shard holds fewer than the 20 elements the manifest records" in str(info.value)


def test_shard_counts_must_add_up(written):
    edit_manifest(written, lambda m: m.update(num_elements=41))
    with pytest.raises(RecordsError, match="num_elements is 41 but the shard counts add up to 40"):
        read_tfrecords(written)


def test_manifest_without_shards(written):
    edit_manifest(written, lambda m: m.update(shards=[], num_elements=0))
    with pytest.raises(RecordsError, match="the manifest lists no shards"):
        read_tfrecords(written)


def test_missing_shard(written):
    shard(written, 0).unlink()
    with pytest.raises(RecordsError, match="shard listed in the manifest is missing"):
        read_tfrecords(written)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other"}', "not a helpers.records manifest"),
        ('{"format": "helpers.records", "version": 99}', "format version 99"),
        ('{"format": "helpers.records", "version": 1}', "manifest is malformed"),
    ],
)
def test_malformed_manifest(written, text, match):
    (written / MANIFEST_NAME).write_text(text)
    with pytest.raises(RecordsError, match=match):
        read_tfrecords(written)


def test_manifest_signature_that_cannot_be_read_back_exactly(tmp_path):
    signature = tf.RaggedTensorSpec([None, None, None], tf.int32, 2)
    write_tfrecords(lambda: iter([]), tmp_path, output_signature=signature)
    edit_manifest(tmp_path, lambda m: m["components"][0].update(shape=[None, 3, None]))
    with pytest.raises(RecordsError, match="cannot be read back exactly"):
        read_tfrecords(tmp_path)


def test_manifest_structure_must_name_its_components(written):
    edit_manifest(written, lambda m: m.update(structure={"tuple": ["c0", "c7"]}))
    with pytest.raises(RecordsError, match=r"manifest is malformed \(KeyError: 'c7'"):
        read_tfrecords(written)


def test_records_error_is_a_value_error():
    error = RecordsError(Path("d/manifest.json"), "no manifest")
    assert isinstance(error, ValueError) and str(error) == "d/manifest.json: no manifest"


# --- assert_total=False: for readers handed only some shards ----------------------------------


@pytest.mark.parametrize("num_shards", [1, 3])
@pytest.mark.parametrize("batch_size", [None, 4])
def test_without_total_assertion_plain_reads_are_unchanged_but_of_unknown_cardinality(
    tmp_path, num_shards, batch_size
):
    write_tfrecords(tf.data.Dataset.range(10), tmp_path, num_shards=num_shards)
    totalled = read_tfrecords(tmp_path, batch_size=batch_size)
    untotalled = read_tfrecords(tmp_path, batch_size=batch_size, assert_total=False)
    assert int(totalled.cardinality()) == (10 if batch_size is None else 3)
    assert int(untotalled.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    assert untotalled.element_spec == totalled.element_spec
    assert_round_trip(list(totalled), untotalled)


@pytest.mark.parametrize("assert_total", [True, False])
def test_miscounted_shard_still_fails_iteration(written, assert_total):
    edit_manifest(written, claim_one_more)
    dataset = read_tfrecords(written, verify=False, assert_total=assert_total)
    # The shard's own check fires, with or without the total one, naming the file.
    with pytest.raises(tf.errors.InvalidArgumentError, match=SHORT_SHARD_0):
        list(dataset)


@pytest.mark.parametrize("assert_total", [True, False])
def test_truncated_shard_still_fails_iteration(written, assert_total):
    path = shard(written)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 7)
    edit_manifest(written, lambda m: m["shards"][1].update(num_bytes=path.stat().st_size))
    dataset = read_tfrecords(written, verify=False, assert_total=assert_total)
    with pytest.raises(tf.errors.DataLossError, match="truncated record"):
        list(dataset)


def test_single_shard_without_total_assertion_is_still_counted(tmp_path):
    write_tfrecords(tf.data.Dataset.range(5), tmp_path)
    edit_manifest(tmp_path, claim_one_more)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"00001\.tfrecord: shard holds fewer than the 6 elements the manifest records",
    ):
        list(read_tfrecords(tmp_path, verify=False, assert_total=False))


@pytest.mark.parametrize("assert_total", [1, None, "no"])
def test_assert_total_must_be_a_bool(written, assert_total):
    with pytest.raises(TypeError, match="assert_total: expected True or False, got"):
        read_tfrecords(written, assert_total=assert_total)


@pytest.fixture(scope="module")
def data_service():
    """An in-process tf.data service: a dispatcher and two workers (stopped after the module)."""
    service = tf.data.experimental.service
    dispatcher = service.DispatchServer()
    address = dispatcher.target.split("://", 1)[1]
    workers = [service.WorkerServer(service.WorkerConfig(address)) for _ in range(2)]
    yield dispatcher.target
    for server in [*workers, dispatcher]:
        server._stop()


def dynamically_sharded(dataset: tf.data.Dataset, target: str) -> list[int]:
    distributed = dataset.apply(
        tf.data.experimental.service.distribute(
            processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC, service=target
        )
    )
    return [int(i) for i in distributed.as_numpy_iterator()]


def test_dynamic_sharding_needs_assert_total_false(tmp_path, data_service):
    write_tfrecords(tf.data.Dataset.range(40), tmp_path, num_shards=4)
    received = dynamically_sharded(read_tfrecords(tmp_path, assert_total=False), data_service)
    assert sorted(received) == list(range(40))
    # With the total assertion, the worker(s) that read only some shards count fewer than 40.
    with pytest.raises(tf.errors.FailedPreconditionError, match="expected to contain 40 elements"):
        dynamically_sharded(read_tfrecords(tmp_path), data_service)


@pytest.mark.parametrize("num_shards", [1, 2])
def test_dynamic_sharding_still_refuses_a_miscounted_shard(tmp_path, data_service, num_shards):
    write_tfrecords(tf.data.Dataset.range(40), tmp_path, num_shards=num_shards)
    edit_manifest(tmp_path, claim_one_more)
    expected = 40 // num_shards + 1
    dataset = read_tfrecords(tmp_path, verify=False, assert_total=False)
    with pytest.raises(tf.errors.OpError) as info:
        dynamically_sharded(dataset, data_service)
    shard_name = f"shard-00000-of-0000{num_shards}.tfrecord"
    assert f"{shard_name}: shard holds fewer than the {expected} elements" in str(info.value)


# --- bad arguments -----------------------------------------------------------------------------

SCALAR = tf.TensorSpec([], tf.int64)
Point = collections.namedtuple("Point", ["x", "y"])


def gen():
    yield 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"source": gen(), "output_signature": SCALAR}, TypeError, "not a generator object"),
        ({"source": [1, 2]}, TypeError, "needs a callable returning an iterator"),
        ({"source": gen}, ValueError, "output_signature is required"),
        (
            {"source": gen, "output_signature": SCALAR, "num_shards": 0},
            ValueError,
            "num_shards: expected an int >= 1, got 0",
        ),
        (
            {"source": gen, "output_signature": SCALAR, "num_shards": 2.0},
            TypeError,
            "num_shards: expected an int, got float 2.0",
        ),
        (
            {"source": gen, "output_signature": SCALAR, "num_shards": True},
            TypeError,
            "num_shards: expected an int, got bool True",
        ),
        (
            {"source": gen, "output_signature": SCALAR, "progress": "yes"},
            TypeError,
            "progress: expected True, False or None, got str 'yes'",
        ),
        (
            {"source": tf.data.Dataset.range(3), "output_signature": tf.TensorSpec([], tf.int32)},
            ValueError,
            "differs from the dataset's element_spec",
        ),
        ({"source": tf.data.Dataset.range(3).repeat()}, ValueError, "infinite dataset"),
        (
            {"source": gen, "output_signature": {"a": tf.TensorSpec([], tf.resource)}},
            SignatureError,
            r"signature at \['a'\]: expected a dtype that can be stored in a file, got resource",
        ),
        (
            {"source": gen, "output_signature": Point(SCALAR, tf.float32)},
            SignatureError,
            r"signature at \[1\]: expected tf.TensorSpec, .*, got DType",
        ),
        (
            {"source": gen, "output_signature": (SCALAR, [SCALAR])},
            SignatureError,
            r"signature at \[1\]: expected .*, got list; tf.data treats a list as one value",
        ),
        (
            {"source": gen, "output_signature": {(1, 2): SCALAR}},
            SignatureError,
            r"signature at \[key=\(1, 2\)\]: expected a str, int or bytes dict key, got tuple",
        ),
        (
            {"source": gen, "output_signature": {"a": SCALAR, 1: SCALAR}},
            SignatureError,
            r"signature at <root>: expected dict keys that sort \(tf.nest sorts them\), got",
        ),
        (
            {"source": gen, "output_signature": tf.RaggedTensorSpec([2, 3, None], tf.int32, 2)},
            SignatureError,
            r"signature at <root>: expected dimensions 1 to ragged_rank to be None, got .*uniform",
        ),
    ],
)
def test_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        write_tfrecords(directory=tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("batch_size", "error", "match"),
    [
        (0, ValueError, "batch_size: expected an int >= 1, got 0"),
        (-1, ValueError, "batch_size: expected an int >= 1, got -1"),
        (2.5, TypeError, "batch_size: expected an int, got float 2.5"),
        (True, TypeError, "batch_size: expected an int, got bool True"),
        ("4", TypeError, "batch_size: expected an int, got str '4'"),
    ],
)
def test_bad_batch_size(written, batch_size, error, match):
    with pytest.raises(error, match=match):
        read_tfrecords(written, batch_size=batch_size)


def test_numpy_integers_are_counts(tmp_path):
    directory = write_tfrecords(
        tf.data.Dataset.range(5), tmp_path, num_shards=np.int64(2), progress=False
    )
    batches = [b.numpy().tolist() for b in read_tfrecords(directory, batch_size=np.int32(2))]
    assert batches == [[0, 1], [2, 3], [4]]


def test_verify_must_be_a_bool(written):
    with pytest.raises(TypeError, match="verify: expected True or False, got int 1"):
        read_tfrecords(written, verify=1)


# --- progress ----------------------------------------------------------------------------------


def test_progress_bar_on_off_and_default(tmp_path, capsys):
    write_tfrecords(tf.data.Dataset.range(5), tmp_path / "a", progress=True)
    assert "write_tfrecords" in capsys.readouterr().err
    write_tfrecords(tf.data.Dataset.range(5), tmp_path / "b", progress=False)
    write_tfrecords(tf.data.Dataset.range(5), tmp_path / "c")  # pytest's stderr is not a TTY
    assert capsys.readouterr().err == ""


LAZY_TQDM = """
import sys
import tempfile

import tensorflow as tf

from helpers import _records, records
from helpers.signatures import SignatureError

directory = records.write_tfrecords(tf.data.Dataset.range(3), tempfile.mkdtemp(), progress=False)
list(records.read_tfrecords(directory))
print("tqdm" in sys.modules)
records.write_tfrecords(tf.data.Dataset.range(3), tempfile.mkdtemp(), progress=True)
print("tqdm.auto" in sys.modules)
"""


def test_tqdm_is_imported_only_when_a_bar_is_shown(run_python):
    # In Jupyter without ipywidgets, importing tqdm.auto alone writes a TqdmWarning to stderr.
    result = run_python(LAZY_TQDM)
    assert (result.returncode, result.stdout.split()) == (0, ["False", "True"]), result.stderr


# --- sparse components -------------------------------------------------------------------------


def test_sparse_components_round_trip_and_batch(tmp_path):
    dense = np.array([[0, 1.5, 0], [2, 0, 0], [0, 0, 7]], np.float32)
    signature = {"x": tf.SparseTensorSpec([None, 3], tf.float32), "y": SCALAR}

    def gen():
        for n in (1, 2, 3):
            yield {"x": tf.sparse.from_dense(dense[:n]), "y": n}

    directory = write_tfrecords(gen, tmp_path, output_signature=signature, num_shards=2)
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    assert manifest["components"][0]["type"] == "sparse"
    dataset = read_tfrecords(directory)
    assert dataset.element_spec == signature
    for n, element in enumerate(dataset, start=1):
        np.testing.assert_array_equal(tf.sparse.to_dense(element["x"]).numpy(), dense[:n])
    (batch,) = list(read_tfrecords(directory, batch_size=3))
    assert batch["x"].dense_shape.numpy().tolist() == [3, 3, 3]
    assert batch["y"].numpy().tolist() == [1, 2, 3]
