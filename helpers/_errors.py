"""``SignatureError`` and how its messages describe values and specs.

:class:`SignatureError` is defined here, below :mod:`helpers.signatures`, so that the private
modules that raise it (:mod:`helpers._casts`, :mod:`helpers._infer`, :mod:`helpers._nest`) need not
import the public module; :mod:`helpers.signatures` re-exports it under its own name.

Example:
    >>> import numpy as np
    >>> describe_value(np.zeros((2, 3), np.float32))
    'float32 array with shape (2, 3)'
    >>> format_shape(tf.TensorShape([None, 3]))
    '(None, 3)'
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

__all__ = [
    "MismatchError",
    "SignatureError",
    "describe_value",
    "format_scalar",
    "format_shape",
    "format_spec",
]


class SignatureError(TypeError):
    """An element, a sample or a signature does not fit what ``from_generator`` needs.

    A subclass of ``TypeError``, like the errors ``from_generator`` itself raises for a bad element.
    The message names the element (or sample) index, the path inside the structure, what was
    expected and what came.
    """


# Tracebacks, doctests and pickles name it where users import it from.
SignatureError.__module__ = "helpers.signatures"


class MismatchError(Exception):
    """Internal: a value does not fit its spec exactly.

    In ``_casts`` it carries the reason, turned into a :class:`SignatureError`; in ``_chunks`` it
    sends the element from the fast copy path to ``check_element``, which decides.
    """


def format_shape(shape: tf.TensorShape | tuple[int | None, ...]) -> str:
    """Formats a shape like a Python tuple, ``<unknown>`` for unknown rank."""
    if isinstance(shape, tf.TensorShape):
        if shape.rank is None:
            return "<unknown>"
        shape = tuple(shape.as_list())
    return str(tuple(shape))


def format_spec(spec: tf.TensorSpec | tf.RaggedTensorSpec | tf.SparseTensorSpec) -> str:
    """Formats a spec for a message, e.g. ``float32 with shape (28, 28, 3)``."""
    if isinstance(spec, tf.SparseTensorSpec):
        return f"a tf.SparseTensor of {spec.dtype.name} with dense shape {format_shape(spec.shape)}"
    if isinstance(spec, tf.RaggedTensorSpec):
        return (
            f"a tf.RaggedTensor of {spec.dtype.name} with shape {format_shape(spec.shape)}, "
            f"ragged_rank {spec.ragged_rank}, row_splits {spec.row_splits_dtype.name}"
        )
    return f"{spec.dtype.name} with shape {format_shape(spec.shape)}"


def format_scalar(value: Any) -> str:
    """Formats one value (a Python or NumPy scalar) for a message."""
    if isinstance(value, np.generic):
        value = value.item() if value.dtype.kind in "biufcSU" else value
    return repr(value)


def describe_value(value: Any) -> str:
    """Describes a yielded value for a message: its kind, dtype, shape and, if small, its value."""
    if value is None:
        return "None"
    if isinstance(value, tf.RaggedTensor):
        return (
            f"a tf.RaggedTensor of {value.dtype.name} with shape {format_shape(value.shape)}, "
            f"ragged_rank {value.ragged_rank}, row_splits {value.row_splits.dtype.name}"
        )
    if isinstance(value, tf.SparseTensor):
        return (
            f"a tf.SparseTensor of {value.dtype.name} with dense shape {format_shape(value.shape)}"
        )
    if isinstance(value, tf.compat.v1.SparseTensorValue):
        return f"a SparseTensorValue with dense_shape {np.asarray(value.dense_shape).tolist()}"
    if isinstance(value, tf.Tensor):
        return f"a tf.Tensor of {value.dtype.name} with shape {format_shape(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array with shape {value.shape}"
    if isinstance(value, np.generic):
        return f"NumPy {value.dtype} {format_scalar(value)}"
    if isinstance(value, (bool, int, float, complex, str, bytes)):
        return f"Python {type(value).__name__} {format_scalar(value)}"
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type(value).__name__} {text}"
