"""How :func:`helpers.signatures.infer_signature` turns sample elements into a signature.

Each sample becomes a tree of the same structure with a spec at every leaf (:func:`_leaf_spec`:
the dtype rules for Python scalars, lists, NumPy values, strings and TensorFlow values), then the
trees are merged pairwise (:func:`_merge`): a dimension that differs becomes ``None``; a structure,
dtype or rank that differs is a :class:`~helpers._errors.SignatureError` naming both samples and
the path. An empty list has no dtype of its own (:class:`_EmptyListSpec`): it takes the other
samples' dtype, or ``tf.float32`` if every sample is empty.

Example:
    >>> label, values = merge_samples([(1, [0.5, 1.5]), (2, [2.5])])
    >>> label
    TensorSpec(shape=(), dtype=tf.int64, name=None)
    >>> values
    TensorSpec(shape=(None,), dtype=tf.float32, name=None)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from helpers._casts import RATIONAL_TYPES, SPARSE_TYPES, STRING_TYPES
from helpers._errors import SignatureError, describe_value, format_spec
from helpers._nest import ROOT, join_key, join_position, sorted_keys

__all__ = ["merge_samples", "take_samples"]


def take_samples(source: Any, num_samples: int) -> list[Any]:
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
            f"iterator, got {describe_value(source)}"
        )
    samples = list(itertools.islice(iterator, num_samples))
    if not samples:
        raise SignatureError("source gave no samples: it is empty (or an exhausted generator)")
    return samples


def merge_samples(samples: list[Any]) -> Any:
    """Infers a spec tree from every sample and merges them into one signature.

    Raises:
        SignatureError: naming the sample (or the two samples) and the path where a sample has no
            spec or two samples disagree.
    """
    merged = _sample_tree(samples[0], "sample 0, ")
    for index, sample in enumerate(samples[1:], start=1):
        tree = _sample_tree(sample, f"sample {index}, ")
        merged = _merge(merged, tree, f"samples 0 and {index} differ at ")
    return _resolve_empty(merged)


# --------------------------------------------------------------------------------------------
# One sample: a spec for every leaf
# --------------------------------------------------------------------------------------------


def _sample_tree(sample: Any, where: str, path: str = ROOT) -> Any:
    """Maps a sample to the same structure with an inferred spec at every leaf."""
    here = f"{where}{path}"
    if isinstance(sample, SPARSE_TYPES):  # a SparseTensorValue is a namedtuple, yet a leaf
        return _leaf_spec(sample, here)
    if isinstance(sample, dict):
        keys = sorted_keys(sample, here)
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


def _leaf_spec(value: Any, where: str) -> Any:
    """Infers the spec of one leaf value of a sample."""
    if value is None:
        raise SignatureError(f"{where}: got None; a None value cannot be put in a tensor")
    if isinstance(value, tf.RaggedTensor):
        return tf.RaggedTensorSpec.from_value(value)
    if isinstance(value, SPARSE_TYPES):
        return tf.SparseTensorSpec.from_value(tf.SparseTensor.from_value(value))
    if isinstance(value, tf.Tensor):
        return tf.TensorSpec(value.shape, value.dtype)
    if isinstance(value, (str, bytes)):
        return tf.TensorSpec((), tf.string)
    if type(value) in _PYTHON_DTYPES:
        if type(value) is int and not -(2**63) <= value < 2**63:
            raise SignatureError(f"{where}: got Python int {value}, which does not fit in int64")
        return tf.TensorSpec((), _PYTHON_DTYPES[type(value)])
    if isinstance(value, RATIONAL_TYPES):
        raise SignatureError(
            f"{where}: got {describe_value(value)}; a {type(value).__name__} has no TensorFlow "
            "dtype of its own: convert it with float() or int(), or write the spec by hand"
        )
    return _array_spec(value, where)


def _array_spec(value: Any, where: str) -> Any:
    """Infers the spec of a NumPy array or scalar, or of a list (converted like from_generator)."""
    try:
        array = np.asarray(value)
    except ValueError as error:
        raise SignatureError(
            f"{where}: {describe_value(value)} cannot be made into one array ({error}); for rows "
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
            f"{where}: {describe_value(value)} has dtype {array.dtype}, which TensorFlow has no "
            "dtype for"
        ) from None


def _object_spec(value: Any, array: np.ndarray, where: str) -> tf.TensorSpec:
    """Infers the spec of a list or object array: only all-string values make a tensor here."""
    items = array if array.dtype.kind == "O" else np.asarray(value, dtype=object)
    strings = [isinstance(item, STRING_TYPES) for item in items.flat]
    if all(strings):
        return tf.TensorSpec(array.shape, tf.string)
    if any(strings):
        raise SignatureError(
            f"{where}: {describe_value(value)} mixes strings with other values; from_generator "
            "refuses it for tf.string (and parses the strings for a number dtype): convert the "
            "values explicitly"
        )
    raise SignatureError(
        f"{where}: {describe_value(value)} holds Python objects, not numbers or strings "
        "(rows of different lengths? yield a tf.RaggedTensor)"
    )


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


# --------------------------------------------------------------------------------------------
# Merging the trees of two samples
# --------------------------------------------------------------------------------------------


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


def _merge_leaf(first: Any, other: Any, where: str) -> Any:
    """Merges the specs two samples gave for the same leaf."""
    if isinstance(first, _EmptyListSpec) or isinstance(other, _EmptyListSpec):
        return _merge_empty(first, other, where)
    if type(first) is not type(other) or first.dtype != other.dtype:
        raise SignatureError(f"{where}: {format_spec(first)} versus {format_spec(other)}")
    shape = _merged_shape(first, other, where)
    if isinstance(first, tf.SparseTensorSpec):
        return tf.SparseTensorSpec(shape, first.dtype)
    if isinstance(first, tf.RaggedTensorSpec):
        if (first.ragged_rank, first.row_splits_dtype) != (
            other.ragged_rank,
            other.row_splits_dtype,
        ):
            raise SignatureError(f"{where}: {format_spec(first)} versus {format_spec(other)}")
        return tf.RaggedTensorSpec(shape, first.dtype, first.ragged_rank, first.row_splits_dtype)
    return tf.TensorSpec(shape, first.dtype)


def _merge_empty(first: Any, other: Any, where: str) -> Any:
    """Merges two leaf specs of which at least one is an empty list's (dtype unknown)."""
    known = other if isinstance(first, _EmptyListSpec) else first
    shape = _merged_shape(first, other, where)
    if isinstance(known, _EmptyListSpec):
        return _EmptyListSpec(shape)
    if type(known) is not tf.TensorSpec:
        raise SignatureError(f"{where}: an empty list versus {format_spec(known)}")
    return tf.TensorSpec(shape, known.dtype)


def _merged_shape(first: Any, other: Any, where: str) -> tf.TensorShape:
    """Merges the shapes of two leaf specs; raises SignatureError if their ranks differ."""
    shape = _merge_shapes(first.shape, other.shape)
    if shape is None:
        raise SignatureError(
            f"{where}: rank {first.shape.rank} versus rank {other.shape.rank} (write the "
            "signature by hand with shape=None if the rank really varies)"
        )
    return shape


def _merge_shapes(first: tf.TensorShape, other: tf.TensorShape) -> tf.TensorShape | None:
    """Keeps the dimensions two shapes share and sets the others to None; None if ranks differ."""
    if first.rank != other.rank:
        return None
    dims = [a if a == b else None for a, b in zip(first.as_list(), other.as_list(), strict=True)]
    return tf.TensorShape(dims)


def _tree_kind(tree: Any) -> str:
    """Names the structure of an inferred tree node for a message."""
    if isinstance(tree, dict):
        return f"a dict with keys {list(tree)!r}"
    if isinstance(tree, tuple):
        return f"a {type(tree).__name__} of {len(tree)}"
    return "a single tensor"


def _resolve_empty(tree: Any) -> Any:
    """Gives every leaf that only ever was an empty list the dtype ``tf.float32``."""
    if isinstance(tree, dict):
        return {key: _resolve_empty(value) for key, value in tree.items()}
    if isinstance(tree, tuple):
        return _rebuild(tree, [_resolve_empty(item) for item in tree])
    if isinstance(tree, _EmptyListSpec):
        return tf.TensorSpec(tree.shape, tf.float32)
    return tree
