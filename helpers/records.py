"""Write a dataset or generator to TFRecord shards and read it back with the same element_spec.

``write_tfrecords`` stores every element of a ``tf.data.Dataset`` (or of a generator function with
an ``output_signature``) in ``num_shards`` TFRecord files, one ``tf.train.Example`` per element,
and writes a ``manifest.json`` next to them describing the signature and the shards (file name,
element count, size, SHA-256). ``read_tfrecords`` needs only the directory: it rebuilds the parser
from the manifest and returns a dataset whose ``element_spec`` and values equal the source's.

The format (one ``tf.train.Example`` per element, raw bytes where ``tf.io.decode_raw`` can read
them back, round-robin shards) is described in :mod:`helpers._records`, which holds the machinery.

Safety: each shard is written under a ``.partial`` name and renamed when complete; the manifest is
written last, also through a temporary name, and is the only thing the reader trusts. A write that
stops early (exception, Ctrl-C, killed process) therefore never leaves a directory that reads as
complete. ``read_tfrecords`` raises ``RecordsError`` naming the file for a missing or malformed
manifest, a missing shard, a shard whose size or element count disagrees with the manifest, a
truncated or corrupted shard, and a shard whose bytes are not the ones written (its SHA-256 differs
from the manifest's: for example two shards of the same size swapped, which would otherwise read
without error in the wrong order).

Errors during iteration (a shard changed after ``read_tfrecords`` returned): a shard that holds
fewer elements than the manifest records fails with ``tf.errors.InvalidArgumentError`` whose
message names the shard file. A corrupted or truncated record fails with TensorFlow's own
``DataLossError`` ("corrupted record at <offset>"), which does not name the file: TensorFlow's
reader does not say which file, and no graph-mode wrapper can add it without a cost per element.
Calling ``read_tfrecords`` again names the file (its verify pass finds the damage).

Distributed reading: every shard's element count is asserted where the shard is read, so a reader
given only some shards (``tf.data`` service with ``ShardingPolicy.DYNAMIC``, which hands shards to
workers on demand) still refuses a shorter shard. The total count is asserted only with
``read_tfrecords(..., assert_total=True)``, the default, which gives plain reads a known
cardinality; dynamic sharding needs ``assert_total=False`` (see ``read_tfrecords``). Which
elements reach the consumer under a sharding policy, and in what order, is the service's
guarantee, not this module's.

``RecordsError`` subclasses ``ValueError``: the directory's contents are not a valid record set,
which is a problem with the data, not with the operating system. Genuine OS failures (permission
denied, a full disk) propagate unchanged as ``OSError``.

Example:
    >>> import tempfile
    >>> import tensorflow as tf
    >>> source = tf.data.Dataset.range(6).map(lambda i: {"id": i, "square": i * i})
    >>> directory = write_tfrecords(source, tempfile.mkdtemp(), num_shards=2, progress=False)
    >>> [int(e["square"]) for e in read_tfrecords(directory)]
    [0, 1, 4, 9, 16, 25]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import tensorflow as tf

from helpers import _args, _records
from helpers._records import MANIFEST_NAME, RecordsError

__all__ = ["MANIFEST_NAME", "RecordsError", "read_tfrecords", "write_tfrecords"]


def write_tfrecords(
    source: tf.data.Dataset | Callable[..., Iterator[Any]],
    directory: str | os.PathLike[str],
    *,
    output_signature: Any = None,
    num_shards: int = 1,
    progress: bool | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes every element of a dataset or generator to TFRecord shards plus a manifest.

    Elements go to the shards round-robin (element ``i`` to shard ``i % num_shards``) in one pass
    over the source; ``read_tfrecords`` restores the original order. Each shard is written as
    ``shard-KKKKK-of-NNNNN.tfrecord.partial`` and renamed when complete; ``manifest.json`` is
    written last. If the source raises, the partial files are removed and the exception propagates.

    Args:
        source: a finite ``tf.data.Dataset``, or a generator function (a callable returning a fresh
            iterator, as for ``tf.data.Dataset.from_generator``) together with ``output_signature``.
            Components may be ``tf.TensorSpec`` (any dtype including string, ``None`` dimensions
            allowed), ``tf.RaggedTensorSpec`` or ``tf.SparseTensorSpec``, nested in tuples,
            namedtuples (read back as a namedtuple of the same name and fields) and dicts with
            str, int or bytes keys: whatever ``helpers.signatures.infer_signature`` returns.
        directory: where to write; created if missing. Must be empty unless ``overwrite`` is True.
        output_signature: required for a generator function (``helpers.signatures.infer_signature``
            can propose one); for a dataset leave it None or pass its element_spec.
        num_shards: number of TFRecord files, at least 1. Shards may be empty.
        progress: show a ``tqdm.auto`` progress bar: True, False, or None for "only when
            interactive" (stderr is a terminal, or inside Jupyter). Pass False in stored notebook
            outputs.
        overwrite: allow a non-empty directory; the old manifest is deleted first, then old shards.

    Returns:
        The directory, as a ``Path``.

    Raises:
        helpers.signatures.SignatureError: (a ``TypeError``) ``source`` is a generator object or
            not callable, or the signature holds something this format does not store
            (lists, dict keys other than str, int and bytes, resource dtypes); the message
            names the path, as ``[0]['image']``.
        TypeError: ``num_shards`` is not an int (Python or NumPy, not bool), ``progress`` not a
            bool or None.
        ValueError: ``num_shards`` < 1, a missing ``output_signature``, or an infinite dataset.
        FileExistsError: ``directory`` is not empty and ``overwrite`` is False.
    """
    num_shards = _args.positive_int("num_shards", num_shards)
    _args.require_bool("progress", progress, allow_none=True)
    dataset = _records.as_dataset(source, output_signature)
    structure, components = _records.plan(dataset.element_spec)

    directory = Path(directory)
    _records.prepare_directory(directory, overwrite)
    names = _records.shard_names(num_shards)
    counts = _records.write_shards(dataset, components, directory, names, progress)
    _records.write_manifest(directory, structure, components, names, counts)
    return directory


def read_tfrecords(
    directory: str | os.PathLike[str],
    *,
    verify: bool = True,
    batch_size: int | None = None,
    assert_total: bool = True,
) -> tf.data.Dataset:
    """Reads a directory written by ``write_tfrecords`` back into a dataset.

    Checks made before returning: the manifest exists and is valid, every shard exists and has the
    size the manifest records (a truncated or appended-to shard is refused at once). With
    ``verify=True`` each shard is also read through once (cheap: no parsing) to check every record's
    CRC and the element count, and hashed to check that its bytes are the ones written (which
    catches swapped or replaced shards of the right size). During iteration the element count of
    every shard is checked again and TFRecord's CRCs are checked, so a shard damaged after this
    call fails with a TensorFlow error instead of yielding a shorter dataset:
    ``InvalidArgumentError`` naming the file for a shard that ends early, ``DataLossError``
    (without the file name, TensorFlow's message) for a damaged record. Records after a shard's
    recorded count are not read.

    Distributed reading: the per-shard assertions sit inside the interleave over the shard list,
    so they hold in any reader that is handed only some shards. The total count is asserted too,
    after the interleave (``assert_total=True``); that is what gives a plain read its known
    cardinality (``len(dataset)``, progress bars, Keras epochs), and it assumes one reader sees
    every shard. Measured with the ``tf.data`` service in TensorFlow 2.21: ``ShardingPolicy.OFF``
    and ``DATA`` run the whole pipeline on each worker, and ``FILE``'s rewrite copes with the
    total assertion, so all three work with the default; ``DYNAMIC`` (``"distributed_epoch"``)
    hands each worker only the shards it asks for, the total assertion then fails in every job
    (``expected to contain N elements but contained only k``), and ``assert_total=False`` is
    required. Without the total assertion nothing is lost in safety (the shards are fixed by the
    manifest and each one's count is still asserted where it is read); only the cardinality
    becomes unknown.

    Args:
        directory: a directory written by ``write_tfrecords``.
        verify: read every shard once now to check its CRCs, element count and SHA-256. Pass
            False for very large data; iteration still checks CRCs and counts, but not that the
            shards are the files written (swapped shards of equal size then read in the wrong
            order).
        batch_size: if given, return batches, like ``read_tfrecords(directory).batch(batch_size)``
            but parsed a batch at a time (one ``parse_example`` and one ``decode_raw`` per
            component per batch) when every component has a fully known shape and a
            ``decode_raw`` dtype; otherwise the elements are parsed one by one, then batched.
        assert_total: also assert the total element count at the end of iteration, which makes
            the cardinality known. Pass False for dynamic sharding (``tf.data`` service
            ``ShardingPolicy.DYNAMIC``); every shard's count is asserted either way.

    Returns:
        A dataset whose element_spec equals the source's (TensorSpec names aside), in the original
        order; its cardinality is known if ``assert_total`` is True, else
        ``tf.data.UNKNOWN_CARDINALITY``.

    Raises:
        RecordsError: the directory is not a complete, consistent record set; the message names
            the file.
        TypeError: ``batch_size`` is not an int (Python or NumPy, not bool) or None;
            ``verify`` or ``assert_total`` is not a bool.
        ValueError: ``batch_size`` < 1.
    """
    if batch_size is not None:
        batch_size = _args.positive_int("batch_size", batch_size)
    _args.require_bool("verify", verify)
    _args.require_bool("assert_total", assert_total)
    manifest = _records.load_manifest(Path(directory))
    _records.check_sizes(manifest)
    if verify:
        _records.verify_shards(manifest)

    records = _records.shard_records(manifest, assert_total)
    parse_one, parse_batch = _records.parsers(
        manifest.structure, manifest.components, manifest.little_endian
    )
    elements = records.map(parse_one, num_parallel_calls=tf.data.AUTOTUNE)
    _records.check_spec(manifest, elements.element_spec)
    if batch_size is None:
        return elements
    if _records.all_raw(manifest):
        return records.batch(batch_size).map(parse_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return elements.batch(batch_size)
