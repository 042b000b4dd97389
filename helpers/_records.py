"""The machinery of :mod:`helpers.records`: the file format, encoding, parsing and checks.

Entry points, in the order the public functions call them (everything with a leading underscore
is a detail of one of them):

* writing: :func:`as_dataset`, :func:`plan`, :func:`prepare_directory`, :func:`shard_names`,
  :func:`write_shards`, :func:`write_manifest`;
* reading: :func:`load_manifest`, :func:`check_sizes`, :func:`verify_shards`,
  :func:`shard_records`, :func:`parsers`, :func:`check_spec`, :func:`all_raw`.

Format (version 1):

* Every component (leaf of the element's nest structure) becomes one bytes feature ``c0``, ``c1``,
  ... of the Example, in ``tf.nest.flatten`` order. A dense component with a fully known shape and
  a dtype that ``tf.io.decode_raw`` supports is stored as its raw bytes (encoding ``"raw"``): the
  batched reader decodes a whole batch of it with one op. Any other dense component (strings,
  ``None`` dimensions, uint32, uint64) is stored as a serialised ``TensorProto`` (encoding
  ``"tensor_proto"``, ``tf.io.serialize_tensor``), which keeps dtype, shape and value exactly. A
  ragged component is stored as the ``TensorProto`` of its flat values followed by one per
  row-splits level; a sparse component as the ``TensorProto`` of its indices, values and dense
  shape.
* Elements are assigned to shards round-robin (element ``i`` goes to shard ``i % num_shards``), so
  a generator of unknown length can be sharded in one pass. The reader interleaves the shards one
  element at a time in shard order, which restores the original order exactly.
* ``TensorSpec`` names are not stored: a dataset read back has unnamed specs, as after any ``map``.
* Examples are serialised deterministically (features sorted by key), so the same elements give
  byte-identical shards, and the same SHA-256 digests, in every run.
* The manifest's ``structure`` nests ``{"tuple": [...]}``, ``{"dict": {str key: ...}}``,
  ``{"dict_items": [[{"int": 1} or {"bytes": hex}, ...], ...]}`` (a dict with an int or bytes
  key) and ``{"namedtuple": {"name", "fields", "items"}}`` around component keys. A namedtuple
  comes back as a ``collections.namedtuple`` class of the same name and fields (equal elements
  and specs, but not the writer's class: methods and defaults are not stored).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from helpers import _nest, signatures
from helpers.signatures import SignatureError

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "helpers.records"
FORMAT_VERSION = 1
_PARTIAL = ".partial"
_COUNT_BATCH = 4096
_WRITE_BATCH = 256
# dtypes tf.io.decode_raw can produce; others are stored as TensorProto.
_RAW_DTYPES = frozenset(
    tf.as_dtype(name)
    for name in (
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
        "bool",
        "complex64",
        "complex128",
    )
)


class RecordsError(ValueError):
    """A directory is not a complete, consistent set of shards written by ``write_tfrecords``.

    Attributes:
        path: the file the problem was found in (the manifest or a shard).
        problem: what is wrong, without the path.
    """

    def __init__(self, path: Path, problem: str) -> None:
        """Builds the error.

        Args:
            path: the file the problem was found in.
            problem: what is wrong with it.
        """
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


# Shown and pickled as helpers.records.RecordsError, where users import it from.
RecordsError.__module__ = "helpers.records"


@dataclass(frozen=True)
class _Component:
    """One leaf of the element structure and how it is stored."""

    key: str
    path: str
    spec: tf.TensorSpec | tf.RaggedTensorSpec | tf.SparseTensorSpec
    encoding: str  # "raw" or "tensor_proto"

    @property
    def ragged(self) -> bool:
        return isinstance(self.spec, tf.RaggedTensorSpec)

    @property
    def sparse(self) -> bool:
        return isinstance(self.spec, tf.SparseTensorSpec)

    @property
    def parts(self) -> int:
        """How many serialised tensors hold one value: 1 dense, 1 + ragged_rank, 3 sparse."""
        if self.ragged:
            return 1 + self.spec.ragged_rank
        return 3 if self.sparse else 1


# ------------------------------------------------------------------------------------------------
# Signature <-> JSON

_STORABLE = (
    "tf.TensorSpec, tf.RaggedTensorSpec or tf.SparseTensorSpec, in tuples, namedtuples and dicts "
    "with str, int or bytes keys"
)


def plan(signature: Any) -> tuple[Any, list[_Component]]:
    """Returns the JSON nest structure and the components of a signature (tf.nest.flatten order).

    Raises:
        SignatureError: naming the path of the first structure or leaf that cannot be stored.
    """
    components: list[_Component] = []
    structure = _plan_node(signature, _nest.ROOT, components)
    order = [c.key for c in components]
    flat = tf.nest.flatten(_structure_from_json(structure, {k: k for k in order}))
    # tf.nest sorts dict keys; renumber so that c0, c1, ... follow tf.nest.flatten order.
    rename = {old: f"c{i}" for i, old in enumerate(flat)}
    by_key = {c.key: c for c in components}
    components = [
        _Component(rename[k], by_key[k].path, by_key[k].spec, by_key[k].encoding) for k in flat
    ]
    return _rename_leaves(structure, rename), components


def _plan_node(node: Any, path: str, out: list[_Component]) -> Any:
    if isinstance(node, list):
        raise _refused(
            path, "list", "tf.data treats a list as one value, use a tuple for a structure"
        )
    if _nest.is_namedtuple(node):
        items = [_plan_node(v, _nest.join_position(path, i), out) for i, v in enumerate(node)]
        fields = list(node._fields)
        return {"namedtuple": {"name": type(node).__name__, "fields": fields, "items": items}}
    if isinstance(node, tuple):
        return {
            "tuple": [_plan_node(v, _nest.join_position(path, i), out) for i, v in enumerate(node)]
        }
    if isinstance(node, dict):
        _check_keys(node, path)
        entries = {k: _plan_node(v, _nest.join_key(path, k), out) for k, v in node.items()}
        if all(isinstance(k, str) for k in entries):
            return {"dict": entries}
        return {"dict_items": [[_key_json(k), v] for k, v in entries.items()]}
    key = f"k{len(out)}"
    out.append(_Component(key, path, _check_leaf(node, path), _encoding(node)))
    return key


def _check_keys(node: dict[Any, Any], path: str) -> None:
    """Refuses dict keys JSON cannot store exactly, and keys tf.nest cannot sort."""
    for k in node:
        if isinstance(k, bool) or not isinstance(k, (str, int, bytes)):
            raise SignatureError(
                f"signature at {_nest.join_key(path, k)}: expected a str, int or bytes dict key, "
                f"got {type(k).__name__} {k!r}; write_tfrecords stores {_STORABLE}"
            )
    try:
        sorted(node)
    except TypeError:
        raise SignatureError(
            f"signature at {path}: expected dict keys that sort (tf.nest sorts them), "
            f"got {list(node)!r}"
        ) from None


def _key_json(key: int | bytes) -> dict[str, Any]:
    return {"int": key} if isinstance(key, int) else {"bytes": key.hex()}


def _key_from_json(entry: dict[str, Any]) -> int | bytes:
    ((kind, value),) = entry.items()
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "bytes" and isinstance(value, str):
        return bytes.fromhex(value)
    raise ValueError(f"unknown dict key {entry!r}")


@functools.cache
def _namedtuple(name: str, fields: tuple[str, ...]) -> type:
    """A namedtuple class with this name and these fields (one per process, so specs compare)."""
    return collections.namedtuple(name, fields)


def _refused(path: str, got: str, hint: str) -> SignatureError:
    """The error for an unstorable node: the path, what is supported, what came, what to do."""
    advice = f"; {hint}" if hint else ""
    return SignatureError(f"signature at {path}: expected {_STORABLE}, got {got}{advice}")


def _check_leaf(spec: Any, path: str) -> tf.TensorSpec | tf.RaggedTensorSpec | tf.SparseTensorSpec:
    where = f"signature at {path}"
    if isinstance(spec, tf.RaggedTensorSpec):
        if spec.ragged_rank < 1 or spec.shape.rank is None:
            raise SignatureError(
                f"{where}: expected a RaggedTensorSpec with ragged_rank >= 1 and a known rank, "
                f"got {spec}"
            )
        if spec.flat_values_spec is not None:
            raise SignatureError(
                f"{where}: expected a RaggedTensorSpec without flat_values_spec, got {spec}"
            )
        if any(d is not None for d in spec.shape[1 : spec.ragged_rank + 1]):
            raise SignatureError(
                f"{where}: expected dimensions 1 to ragged_rank to be None, got {spec}, which has "
                "a uniform dimension inside its ragged dimensions that row splits cannot restore"
            )
        return spec
    if isinstance(spec, (tf.TensorSpec, tf.SparseTensorSpec)):
        if spec.dtype in (tf.resource, tf.variant):
            raise SignatureError(
                f"{where}: expected a dtype that can be stored in a file, got {spec.dtype.name}"
            )
        return spec
    raise _refused(path, type(spec).__name__, "")


def _encoding(spec: tf.TypeSpec) -> str:
    dense = isinstance(spec, tf.TensorSpec)
    return (
        "raw"
        if dense and spec.shape.is_fully_defined() and spec.dtype in _RAW_DTYPES
        else ("tensor_proto")
    )


def _rename_leaves(structure: Any, rename: dict[str, str]) -> Any:
    if isinstance(structure, str):
        return rename[structure]
    ((kind, items),) = structure.items()
    if kind == "dict":
        return {kind: {k: _rename_leaves(v, rename) for k, v in items.items()}}
    if kind == "dict_items":
        return {kind: [[k, _rename_leaves(v, rename)] for k, v in items]}
    if kind == "namedtuple":
        return {kind: {**items, "items": [_rename_leaves(v, rename) for v in items["items"]]}}
    return {kind: [_rename_leaves(v, rename) for v in items]}


def _structure_from_json(structure: Any, leaves: dict[str, Any]) -> Any:
    """Rebuilds the nest structure with each leaf key replaced by ``leaves[key]``."""
    if isinstance(structure, str):
        return leaves[structure]
    ((kind, items),) = structure.items()
    if kind == "dict":
        return {k: _structure_from_json(v, leaves) for k, v in items.items()}
    if kind == "dict_items":
        return {_key_from_json(k): _structure_from_json(v, leaves) for k, v in items}
    if kind == "namedtuple":
        cls = _namedtuple(items["name"], tuple(items["fields"]))
        return cls(*(_structure_from_json(v, leaves) for v in items["items"]))
    if kind != "tuple":
        raise ValueError(f"unknown structure kind {kind!r}")
    return tuple(_structure_from_json(v, leaves) for v in items)


def _shape_json(shape: tf.TensorShape) -> list[int | None] | None:
    return None if shape.rank is None else shape.as_list()


def _component_json(c: _Component) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "key": c.key,
        "path": c.path,
        "type": "ragged" if c.ragged else "sparse" if c.sparse else "tensor",
        "dtype": c.spec.dtype.name,
        "shape": _shape_json(c.spec.shape),
        "encoding": c.encoding,
    }
    if c.ragged:
        entry["ragged_rank"] = c.spec.ragged_rank
        entry["row_splits_dtype"] = c.spec.row_splits_dtype.name
    return entry


def _component_from_json(entry: dict[str, Any]) -> _Component:
    shape = tf.TensorShape(entry["shape"])
    dtype = tf.as_dtype(entry["dtype"])
    if entry["type"] == "ragged":
        spec = tf.RaggedTensorSpec(
            shape, dtype, entry["ragged_rank"], tf.as_dtype(entry["row_splits_dtype"])
        )
    elif entry["type"] == "tensor":
        spec = tf.TensorSpec(shape, dtype)
    elif entry["type"] == "sparse":
        spec = tf.SparseTensorSpec(shape, dtype)
    else:
        raise ValueError(f"unknown component type {entry['type']!r}")
    if entry["encoding"] != _encoding(spec):
        raise ValueError(f"encoding {entry['encoding']!r} does not fit {spec}")
    return _Component(entry["key"], entry["path"], spec, entry["encoding"])


def _unnamed(signature: Any) -> Any:
    """The signature with TensorSpec names dropped (tf.data drops them in every map)."""
    return tf.nest.map_structure(
        lambda s: tf.TensorSpec(s.shape, s.dtype) if isinstance(s, tf.TensorSpec) else s,
        signature,
    )


# ------------------------------------------------------------------------------------------------
# Encoding (in the tf.data graph, then one Example per element in Python)


def _raw_bytes(value: tf.Tensor, spec: tf.TensorSpec) -> tf.Tensor:
    """The tensor's bytes in host order, like ``numpy.ndarray.tobytes``, as a graph op.

    ``serialize_tensor`` writes a ``TensorProto`` whose last field is ``tensor_content``, the raw
    bytes; its length is known from the static shape and dtype, so the tail of the proto is them.
    """
    serialised = tf.io.serialize_tensor(value)
    size = spec.shape.num_elements() * spec.dtype.size
    return tf.strings.substr(serialised, tf.strings.length(serialised) - size, size)


def _encode_component(value: Any, c: _Component) -> tf.Tensor:
    if c.ragged:
        parts = [value.flat_values, *value.nested_row_splits]
        return tf.stack([tf.io.serialize_tensor(p) for p in parts])
    if c.sparse:
        parts = [value.indices, value.values, value.dense_shape]
        return tf.stack([tf.io.serialize_tensor(p) for p in parts])
    if c.encoding == "raw":
        return _raw_bytes(value, c.spec)
    return tf.io.serialize_tensor(value)


def _encoder(components: list[_Component]) -> Callable[..., tuple[tf.Tensor, ...]]:
    """A ``Dataset.map`` function turning an element into one string tensor per component."""

    def encode(*element: Any) -> tuple[tf.Tensor, ...]:
        # map() unpacks a tuple element into arguments; flattening them gives the same leaves.
        values = tf.nest.flatten(element)
        return tuple(_encode_component(v, c) for v, c in zip(values, components, strict=True))

    return encode


def _example(keys: list[str], row: Sequence[Any]) -> bytes:
    """One serialised tf.train.Example with a bytes feature per component."""
    feature = {
        key: tf.train.Feature(
            bytes_list=tf.train.BytesList(value=list(v) if isinstance(v, np.ndarray) else [v])
        )
        for key, v in zip(keys, row, strict=True)
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    # deterministic: map entries sorted by key, so the same elements always give the same bytes.
    return example.SerializeToString(deterministic=True)


# ------------------------------------------------------------------------------------------------
# Parsing (graph side, while reading)


def _feature_spec(components: list[_Component]) -> dict[str, tf.io.FixedLenFeature]:
    return {
        c.key: tf.io.FixedLenFeature([c.parts] if c.parts > 1 else [], tf.string)
        for c in components
    }


def _decode_one(data: tf.Tensor, c: _Component, little_endian: bool) -> Any:
    spec = c.spec
    if c.ragged:
        rank = spec.ragged_rank
        flat = tf.ensure_shape(
            tf.io.parse_tensor(data[0], spec.dtype), [None, *spec.shape[rank + 1 :]]
        )
        nrows = spec.shape[0]
        splits = [
            tf.ensure_shape(
                tf.io.parse_tensor(data[i], spec.row_splits_dtype),
                [nrows + 1 if i == 1 and nrows is not None else None],
            )
            for i in range(1, rank + 1)
        ]
        return tf.RaggedTensor.from_nested_row_splits(flat, splits, validate=False)
    if c.sparse:
        return _decode_sparse(data, spec)
    if c.encoding == "raw":
        return tf.reshape(tf.io.decode_raw(data, spec.dtype, little_endian), spec.shape)
    return tf.ensure_shape(tf.io.parse_tensor(data, spec.dtype), spec.shape)


def _decode_sparse(data: tf.Tensor, spec: tf.SparseTensorSpec) -> tf.SparseTensor:
    """A SparseTensor from its serialised indices, values and dense shape, with the spec's shape."""
    rank = spec.shape.rank
    indices = tf.ensure_shape(tf.io.parse_tensor(data[0], tf.int64), [None, rank])
    values = tf.ensure_shape(tf.io.parse_tensor(data[1], spec.dtype), [None])
    dense_shape = tf.ensure_shape(tf.io.parse_tensor(data[2], tf.int64), [rank])
    sparse = tf.SparseTensor(indices, values, dense_shape)
    sparse.set_shape(spec.shape)
    return sparse


def _decode_batch(data: tf.Tensor, c: _Component, little_endian: bool) -> tf.Tensor:
    """Decodes a [batch] vector of raw bytes into a [batch, *shape] tensor with one op."""
    flat = tf.io.decode_raw(data, c.spec.dtype, little_endian)
    return tf.reshape(flat, [-1, *c.spec.shape])


def parsers(
    structure: Any, components: list[_Component], little_endian: bool
) -> tuple[Callable[[tf.Tensor], Any], Callable[[tf.Tensor], Any]]:
    """Returns (parse one serialised Example, parse a batch of them) for these components."""
    features = _feature_spec(components)

    def parse_one(record: tf.Tensor) -> Any:
        parsed = tf.io.parse_single_example(record, features)
        leaves = {c.key: _decode_one(parsed[c.key], c, little_endian) for c in components}
        return _structure_from_json(structure, leaves)

    def parse_batch(records: tf.Tensor) -> Any:
        parsed = tf.io.parse_example(records, features)
        leaves = {c.key: _decode_batch(parsed[c.key], c, little_endian) for c in components}
        return _structure_from_json(structure, leaves)

    return parse_one, parse_batch


# ------------------------------------------------------------------------------------------------
# Writing


def as_dataset(source: Any, output_signature: Any) -> tf.data.Dataset:
    """The finite dataset to write: ``source`` itself, or ``from_generator`` over it.

    Raises:
        SignatureError: ``source`` is neither a dataset nor a generator function, or the signature
            cannot be stored (the path is named).
        ValueError: a missing or contradicting ``output_signature``, or an infinite dataset.
    """
    if isinstance(source, tf.data.Dataset):
        if output_signature is not None and _unnamed(output_signature) != _unnamed(
            source.element_spec
        ):
            raise ValueError(
                f"output_signature {output_signature} differs from the dataset's element_spec "
                f"{source.element_spec}; leave output_signature=None for a dataset"
            )
        dataset = source
    else:
        signatures.require_generator_function(source, "write_tfrecords()")
        if output_signature is None:
            raise ValueError(
                "output_signature is required when source is a generator function; "
                "helpers.signatures.infer_signature(source) can propose one"
            )
        plan(output_signature)
        dataset = tf.data.Dataset.from_generator(source, output_signature=output_signature)
    if int(dataset.cardinality()) == tf.data.INFINITE_CARDINALITY:
        raise ValueError("source is an infinite dataset; take() a finite part of it first")
    return dataset


def shard_names(num_shards: int) -> list[str]:
    """The shard file names, ``shard-00000-of-00004.tfrecord`` and so on."""
    return [_shard_name(i, num_shards) for i in range(num_shards)]


def _shard_name(index: int, num_shards: int) -> str:
    return f"shard-{index:05d}-of-{num_shards:05d}.tfrecord"


def _is_ours(name: str) -> bool:
    base = name.removesuffix(_PARTIAL)
    return base == MANIFEST_NAME or (base.startswith("shard-") and base.endswith(".tfrecord"))


def prepare_directory(directory: Path, overwrite: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    existing = sorted(p.name for p in directory.iterdir())
    if not existing:
        return
    if not overwrite:
        raise FileExistsError(
            f"{directory} is not empty ({len(existing)} entries, e.g. {existing[0]!r}); "
            "write to a new directory or pass overwrite=True"
        )
    # Remove the manifest first: from that moment on the directory no longer reads as complete.
    (directory / MANIFEST_NAME).unlink(missing_ok=True)
    _fsync_directory(directory)
    for name in existing:
        if _is_ours(name):
            (directory / name).unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _interactive() -> bool:
    """True in a terminal (stderr is a TTY) or in a Jupyter kernel."""
    if sys.stderr is not None and hasattr(sys.stderr, "isatty") and sys.stderr.isatty():
        return True
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


class _NoBar(contextlib.AbstractContextManager):
    """Stands in for a disabled progress bar without importing tqdm."""

    def update(self, n: int) -> None:
        """Ignores progress."""

    def __exit__(self, *exc: object) -> None:
        return None


def _progress_bar(total: int | None, progress: bool | None) -> Any:
    """A tqdm.auto bar (a context manager) if asked for or interactive, else a silent stand-in.

    tqdm.auto is imported only when the bar is shown: in Jupyter without ipywidgets its import
    alone writes a warning to stderr.
    """
    if not (_interactive() if progress is None else progress):
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=" elements", desc="write_tfrecords")


def write_shards(
    dataset: tf.data.Dataset,
    components: list[_Component],
    directory: Path,
    names: list[str],
    progress: bool | None,
) -> list[int]:
    """Writes the elements round-robin to ``names`` in ``directory``; returns the count per shard.

    Each shard is written under a ``.partial`` name, synced and renamed when all are complete. If
    the source raises, the partial files are removed and the exception propagates.
    """
    partials = [directory / (name + _PARTIAL) for name in names]
    try:
        counts = _write_partials(dataset, components, partials, progress)
    except BaseException:
        for p in partials:
            p.unlink(missing_ok=True)
        raise
    for partial, name in zip(partials, names, strict=True):
        _fsync_file(partial)
        os.replace(partial, directory / name)
    return counts


def _write_partials(
    dataset: tf.data.Dataset,
    components: list[_Component],
    partials: list[Path],
    progress: bool | None,
) -> list[int]:
    """Writes every element round-robin to the partial files; returns the count per shard."""
    cardinality = int(dataset.cardinality())
    encoded = (
        dataset.map(_encoder(components), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(_WRITE_BATCH)
        .prefetch(1)
    )
    keys = [c.key for c in components]
    counts = [0] * len(partials)
    index = 0
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(tf.io.TFRecordWriter(str(p))) for p in partials]
        bar = stack.enter_context(
            _progress_bar(cardinality if cardinality >= 0 else None, progress)
        )
        for batch in encoded.as_numpy_iterator():
            for row in zip(*batch, strict=True):
                shard = index % len(writers)
                writers[shard].write(_example(keys, row))
                counts[shard] += 1
                index += 1
            bar.update(len(batch[0]))
    return counts


def _sha256(path: Path) -> str:
    """The SHA-256 digest of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest_text(manifest: dict[str, Any]) -> str:
    """JSON with one line per top-level key, per component and per shard: easy to read and diff."""
    lines = []
    for key, value in manifest.items():
        if isinstance(value, list):
            items = ",\n".join(f"    {json.dumps(v)}" for v in value)
            text = f"[\n{items}\n  ]"
        else:
            text = json.dumps(value)
        lines.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_manifest(
    directory: Path,
    structure: Any,
    components: list[_Component],
    names: list[str],
    counts: list[int],
) -> None:
    """Writes ``manifest.json`` (through a temporary name): signature, shards, sizes, SHA-256."""
    shards = [
        {
            "file": n,
            "num_elements": c,
            "num_bytes": (directory / n).stat().st_size,
            "sha256": _sha256(directory / n),
        }
        for n, c in zip(names, counts, strict=True)
    ]
    total = sum(counts)
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "byte_order": sys.byteorder,
        "num_elements": total,
        "structure": structure,
        "components": [_component_json(c) for c in components],
        "shards": shards,
    }
    partial = directory / (MANIFEST_NAME + _PARTIAL)
    with open(partial, "w", encoding="utf-8") as f:
        f.write(_manifest_text(manifest))
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, directory / MANIFEST_NAME)
    _fsync_directory(directory)


# ------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class _Shard:
    path: Path
    num_elements: int
    num_bytes: int
    sha256: str


@dataclass(frozen=True)
class _Manifest:
    path: Path
    structure: Any
    components: list[_Component]
    shards: list[_Shard]
    num_elements: int
    little_endian: bool


def load_manifest(directory: Path) -> _Manifest:
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise RecordsError(
            path,
            "no manifest: the directory was not written by write_tfrecords, or the write did not "
            "finish (the manifest is written last)",
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordsError(path, f"manifest is not valid JSON ({e})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise RecordsError(path, f"not a {FORMAT_NAME} manifest")
    if raw.get("version") != FORMAT_VERSION:
        raise RecordsError(
            path, f"format version {raw.get('version')!r}, this reader reads {FORMAT_VERSION}"
        )
    try:
        components = [_component_from_json(e) for e in raw["components"]]
        structure = raw["structure"]
        _structure_from_json(structure, {c.key: c for c in components})
        shards = [_shard_from_json(directory, s) for s in raw["shards"]]
        manifest = _Manifest(
            path,
            structure,
            components,
            shards,
            int(raw["num_elements"]),
            raw["byte_order"] == "little",
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RecordsError(path, f"manifest is malformed ({type(e).__name__}: {e})") from None
    if not manifest.shards:
        raise RecordsError(
            path, "the manifest lists no shards (write_tfrecords writes at least one)"
        )
    total = sum(s.num_elements for s in manifest.shards)
    if total != manifest.num_elements:
        raise RecordsError(
            path, f"num_elements is {manifest.num_elements} but the shard counts add up to {total}"
        )
    return manifest


def _shard_from_json(directory: Path, entry: dict[str, Any]) -> _Shard:
    digest = entry["sha256"]
    if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
        raise ValueError(f"sha256 of {entry['file']!r} is not 64 hex digits: {digest!r}")
    return _Shard(
        directory / entry["file"], int(entry["num_elements"]), int(entry["num_bytes"]), digest
    )


def check_sizes(manifest: _Manifest) -> None:
    for shard in manifest.shards:
        if not shard.path.is_file():
            raise RecordsError(shard.path, "shard listed in the manifest is missing")
        size = shard.path.stat().st_size
        if size != shard.num_bytes:
            state = "truncated" if size < shard.num_bytes else "longer than written"
            raise RecordsError(
                shard.path,
                f"shard is {state}: the manifest records {shard.num_bytes} bytes, "
                f"the file has {size}",
            )


@functools.cache
def _record_counter() -> Callable[[str], tf.Tensor]:
    """A tf.function counting a TFRecord file's records (traced once per process)."""

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
    def count(path: tf.Tensor) -> tf.Tensor:
        batches = tf.data.TFRecordDataset(path).batch(_COUNT_BATCH)
        return batches.reduce(tf.constant(0, tf.int64), lambda n, b: n + tf.size(b, tf.int64))

    return count


def _tf_message(error: tf.errors.OpError) -> str:
    """The useful line of a TensorFlow error message, without traceback, op and function names."""
    noise = ("File ", "Graph execution error", "Detected at node", "[[")
    lines = [line.strip() for line in error.message.splitlines()]
    lines = [line for line in lines if line and not line.startswith(noise)]
    text = re.sub(r"\{\{[^}]*\}\}", "", lines[-1] if lines else error.message)
    return re.sub(r"\s*\[Op:.*$", "", text, flags=re.DOTALL).strip()


def _count_records(path: Path) -> int:
    """Counts the records of one shard, checking every CRC (raises RecordsError on damage)."""
    try:
        return int(_record_counter()(str(path)))
    except tf.errors.DataLossError as e:
        raise RecordsError(path, f"shard is damaged: {_tf_message(e)}") from None


def verify_shards(manifest: _Manifest) -> None:
    """Checks every shard's CRCs and element count, then that its bytes are the ones written."""
    for shard in manifest.shards:
        count = _count_records(shard.path)
        if count != shard.num_elements:
            raise RecordsError(
                shard.path,
                f"shard holds {count} elements, the manifest records {shard.num_elements}",
            )
    names = {s.sha256: s.path.name for s in manifest.shards}
    for shard in manifest.shards:
        digest = _sha256(shard.path)
        if digest == shard.sha256:
            continue
        if digest in names:
            raise RecordsError(
                shard.path,
                f"shard holds the bytes written as {names[digest]}: shard files were swapped or "
                "renamed, and reading them would return the elements in the wrong order",
            )
        raise RecordsError(
            shard.path,
            f"shard's SHA-256 is {digest[:12]}..., the manifest records {shard.sha256[:12]}...: "
            "the file was replaced or rewritten after write_tfrecords wrote it",
        )


def _fail(message: tf.Tensor) -> tf.Tensor:
    """Fails with InvalidArgumentError carrying ``message`` (a string tensor) when it runs."""
    never = tf.equal(tf.strings.length(message), -1)  # not constant: no trace-time folding
    with tf.control_dependencies([tf.debugging.Assert(never, [message], summarize=1)]):
        return tf.identity(message)


def _counted_shard(path: tf.Tensor, count: tf.Tensor) -> tf.data.Dataset:
    """One shard's first ``count`` records; fails naming the file if it holds fewer.

    ``take(count)`` stops after ``count`` records without asking for another, so only a shard
    that ends sooner reaches the failing tail, whose message carries the path. No function runs
    per element: the check costs about what ``assert_cardinality`` did (whose message cannot
    name the file). Records after the first ``count`` are not read.
    """
    message = tf.strings.join(
        [
            path,
            ": shard holds fewer than the ",
            tf.strings.as_string(count),
            " elements the manifest records (it was cut at a record boundary, or replaced)",
        ]
    )
    ended_early = tf.data.Dataset.from_tensors(message).map(_fail)
    return tf.data.TFRecordDataset(path).concatenate(ended_early).take(count)


def shard_records(manifest: _Manifest, assert_total: bool) -> tf.data.Dataset:
    """The serialised Examples of all shards in the original order.

    Every shard's element count is checked inside the interleave, so the check travels with the
    shard: a reader handed only some shards (dynamic sharding) still checks each one it reads.
    With ``assert_total`` the total count is asserted as well (TensorFlow's
    ``assert_cardinality``, which the ``tf.data`` service's ``FILE`` rewrite understands); that
    gives the dataset a known cardinality.
    """
    paths = [str(s.path) for s in manifest.shards]
    counts = [s.num_elements for s in manifest.shards]
    records = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(counts, tf.int64))
    ).interleave(
        _counted_shard,
        cycle_length=len(paths),
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if not assert_total:
        return records
    return records.apply(tf.data.experimental.assert_cardinality(manifest.num_elements))


def all_raw(manifest: _Manifest) -> bool:
    """True if every component is stored raw, so a batch can be parsed with one op per component."""
    return all(c.encoding == "raw" for c in manifest.components)


def check_spec(manifest: _Manifest, element_spec: Any) -> None:
    """Refuses a manifest whose signature the parser cannot reproduce exactly."""
    expected = _structure_from_json(
        manifest.structure, {c.key: c.spec for c in manifest.components}
    )
    if element_spec != expected:
        raise RecordsError(
            manifest.path,
            f"the signature {expected} cannot be read back exactly (it parses as {element_spec})",
        )
