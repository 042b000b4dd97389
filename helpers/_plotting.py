"""The machinery of :mod:`helpers.plotting`: input checks, label text and one training curve.

Every check raises TypeError for a wrong type and ValueError for a wrong value, with messages of
the form ``NAME: expected ..., got ...``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from helpers import _args


def images_for_display(images: Any) -> np.ndarray:
    """Validates a batch of images and returns it as (N, H, W) or (N, H, W, 3) for ``imshow``.

    Float images must already lie in [0, 1]; integer images must lie in [0, 255] and are shown as
    uint8. Nothing is rescaled silently, so what you see is what the model gets.

    Args:
        images: A batch shaped (N, H, W), (N, H, W, 1) or (N, H, W, 3).

    Returns:
        The images as float in [0, 1] or uint8, with a trailing channel of size 1 removed.

    Raises:
        ValueError: If the rank, channel count, size or value range is wrong.
        TypeError: If the images are not numeric.
    """
    array = _to_numpy(images, "images")
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] != 3):
        raise ValueError(
            "images: expected a batch shaped (N, H, W), (N, H, W, 1) or (N, H, W, 3), "
            f"got shape {np.shape(array)}"
        )
    if array.shape[0] == 0:
        raise ValueError("images: expected at least one image, got an empty batch")
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"images: expected float values in [0, 1], got values in [{low:.4g}, {high:.4g}]; "
                "divide uint8-range data by 255 (or pass uint8) before plotting"
            )
        return array
    low, high = int(array.min()), int(array.max())
    if low < 0 or high > 255:
        raise ValueError(
            f"images: expected integer values in [0, 255], got values in [{low}, {high}]"
        )
    return array.astype(np.uint8)


def label_indices(labels: Any, count: int) -> np.ndarray:
    """Turns integer or one-hot labels into a vector of class indices.

    Args:
        labels: Integer labels shaped (N,) or one-hot labels shaped (N, K).
        count: The number of images N.

    Returns:
        Integer class indices shaped (N,).

    Raises:
        ValueError: If the label count or rank does not fit the images.
        TypeError: If the labels are not numeric.
    """
    array = _to_numpy(labels, "labels")
    if array.ndim == 2:
        array = array.argmax(axis=1)
    elif array.ndim != 1:
        raise ValueError(
            "labels: expected integer labels shaped (N,) or one-hot labels shaped (N, K), "
            f"got shape {array.shape}"
        )
    if array.shape[0] != count:
        raise ValueError(f"labels: expected {count} labels (one per image), got {array.shape[0]}")
    if np.issubdtype(array.dtype, np.floating):
        _check_whole(array)
    return array.astype(np.int64)


def label_text(index: int, class_names: Mapping[int, str] | Sequence[str] | None) -> str:
    """Returns the display text for a class index.

    Args:
        index: The class index.
        class_names: A mapping or sequence from index to name, or None.

    Returns:
        The class name, or the index as text when there is no name for it.
    """
    if class_names is None:
        return str(index)
    if isinstance(class_names, Mapping):
        return str(class_names.get(index, index))
    return str(class_names[index]) if 0 <= index < len(class_names) else str(index)


def vmax(array: np.ndarray) -> float:
    """Returns the display maximum for an image array: 1 for floats, 255 for uint8."""
    return 1.0 if np.issubdtype(array.dtype, np.floating) else 255.0


def history_dict(history: Any) -> dict[str, list[float]]:
    """Extracts the metric lists from a Keras ``History`` or a plain mapping.

    Args:
        history: An object with a ``.history`` dict, or a mapping from metric name to values.

    Returns:
        A dict from metric name to a list of floats, one per epoch.

    Raises:
        TypeError: If ``history`` is neither.
        ValueError: If it holds no metrics or no epochs.
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping):
        raise TypeError(
            "history: expected a keras History (with a .history dict) or a dict of lists, "
            f"got {type(history).__name__}"
        )
    result = {str(name): [float(v) for v in np.ravel(values)] for name, values in logs.items()}
    if not result or not any(result.values()):
        raise ValueError("history: expected at least one metric with one epoch, got none")
    return result


def validation_epochs(
    name: str, epochs: int, val: list[float], validation_freq: int | Sequence[int]
) -> list[int]:
    """Returns the 1-based epochs at which ``model.fit`` recorded the validation values.

    Args:
        name: The metric name, for messages.
        epochs: The number of training epochs.
        val: The validation values.
        validation_freq: As in ``model.fit``: an int ``k`` or a sequence of 1-based epochs.

    Returns:
        One epoch per validation value.

    Raises:
        TypeError: If ``validation_freq`` is neither an int nor a sequence.
        ValueError: If ``validation_freq`` < 1 or does not give ``len(val)`` epochs.
    """
    if _args.is_integer(validation_freq):
        step = _args.positive_int("validation_freq", validation_freq)
        at = list(range(step, epochs + 1, step))
    elif isinstance(validation_freq, Sequence) and not isinstance(validation_freq, str):
        at = sorted({int(e) for e in validation_freq if 1 <= e <= epochs})
    else:
        raise TypeError(
            "validation_freq: expected a positive int or a sequence of epochs, "
            f"got {type(validation_freq).__name__} {validation_freq!r}"
        )
    if len(at) != len(val):
        hint = ""
        if validation_freq == 1 and len(val) < epochs:
            hint = "; if model.fit ran with validation_freq, pass the same validation_freq here"
        raise ValueError(
            f"history['val_{name}']: expected {len(at)} values ({epochs} epochs of {name!r}, "
            f"validation_freq={validation_freq!r}), got {len(val)}{hint}"
        )
    return at


def plot_metric(
    ax: Axes, name: str, train: list[float], val: list[float] | None, val_epochs: list[int] | None
) -> None:
    """Draws one metric's training (and validation) curve on ``ax``.

    Args:
        ax: The Axes to draw on.
        name: The metric name, used for the title and y label.
        train: The training values, one per epoch.
        val: The validation values, or None.
        val_epochs: The 1-based epoch of each validation value, or None.
    """
    epochs = np.arange(1, len(train) + 1)
    ax.plot(epochs, train, marker="o", markersize=3, label="train")
    if val is not None and val_epochs is not None:
        ax.plot(val_epochs, val, marker="o", markersize=3, label="validation")
    ax.set_title(name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()


def checked_rates(rates: Mapping[str, float], log: bool) -> dict[str, float]:
    """Validates throughput values and returns them as floats.

    Args:
        rates: Mapping from variant name to elements per second.
        log: Whether a logarithmic axis will be used (then rates must be positive).

    Returns:
        The rates as a dict of floats, in the given order.

    Raises:
        TypeError: If ``rates`` is not a mapping.
        ValueError: If it is empty or a rate is not finite, negative, or zero on a log axis.
    """
    if not isinstance(rates, Mapping):
        raise TypeError(
            f"rates: expected a mapping of name -> elements/s, got {type(rates).__name__}"
        )
    if not rates:
        raise ValueError("rates: expected at least one entry, got an empty mapping")
    result = {}
    for name, value in rates.items():
        rate = float(value)
        if not math.isfinite(rate) or rate < 0 or (log and rate == 0):
            need = "a positive" if log else "a finite, non-negative"
            raise ValueError(
                f"rates[{name!r}]: expected {need} number of elements/s, got {value!r}"
            )
        result[str(name)] = rate
    return result


def check_bound(values: Mapping[str, float], bound_name: str | None) -> None:
    """Refuses a ``bound_name`` that is not a key of the rates, or whose rate is zero."""
    if bound_name is None:
        return
    if bound_name not in values:
        raise ValueError(f"bound_name: expected one of {list(values)}, got {bound_name!r}")
    if values[bound_name] == 0:
        raise ValueError(f"rates[{bound_name!r}]: expected a positive bound, got 0")


def bound_suffix(name: str, values: Mapping[str, float], bound_name: str | None) -> str:
    """What follows a throughput bar's rate: its share of the bound, when there is one."""
    if bound_name is None:
        return ""
    if name == bound_name:
        return " (bound)"
    return f" · {_format_ratio(values[name] / values[bound_name])} of bound"


def checked_events(events: Sequence[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Validates timeline events.

    Args:
        events: Sequence of (lane name, start seconds, duration seconds).

    Returns:
        The events with numbers as floats.

    Raises:
        TypeError: If ``events`` or an event has the wrong type.
        ValueError: If there are no events, or an event has a non-finite time or negative duration.
    """
    if isinstance(events, (str, bytes)) or not isinstance(events, Sequence):
        raise TypeError(
            "events: expected a sequence of (lane, start_s, duration_s) tuples, "
            f"got {type(events).__name__}"
        )
    if not events:
        raise ValueError("events: expected at least one (lane, start_s, duration_s), got none")
    checked = []
    for index, event in enumerate(events):
        if not isinstance(event, Sequence) or isinstance(event, str) or len(event) != 3:
            raise TypeError(f"events[{index}]: expected (lane, start_s, duration_s), got {event!r}")
        lane, start, duration = str(event[0]), float(event[1]), float(event[2])
        if not (math.isfinite(start) and math.isfinite(duration)):
            raise ValueError(f"events[{index}]: expected finite times, got {event!r}")
        if duration < 0:
            raise ValueError(f"events[{index}]: expected duration_s >= 0, got {duration!r}")
        checked.append((lane, start, duration))
    return checked


def _to_numpy(value: Any, what: str) -> np.ndarray:
    """Converts a tensor (anything with ``.numpy()``) or an array-like to a NumPy array.

    Args:
        value: The value to convert.
        what: Name of the argument, used in the error message.

    Returns:
        The value as a NumPy array.

    Raises:
        TypeError: If the value cannot be converted to a numeric array.
    """
    if hasattr(value, "numpy"):
        value = value.numpy()
    array = np.asarray(value)
    if not (
        np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
        or array.dtype == np.bool_
    ):
        raise TypeError(
            f"{what}: expected a numeric array or tensor, got {type(value).__name__} "
            f"with dtype {array.dtype}"
        )
    return array


def _check_whole(labels: np.ndarray) -> None:
    """Raises if float labels hold NaN, infinities or fractions (they are not class indices).

    Args:
        labels: Float class indices shaped (N,).

    Raises:
        ValueError: Naming the first bad label, its index and what is wrong with it.
    """
    for problem, bad in (
        ("NaN", np.isnan(labels)),
        ("an infinite value", np.isinf(labels)),
        ("a fractional value", np.isfinite(labels) & (labels != np.round(labels))),
    ):
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"labels: expected whole-number class indices, got {problem} "
                f"({float(labels[index])!r}) at index {index}"
            )


def _format_ratio(ratio: float) -> str:
    """Formats a ratio as a percentage with about three significant digits."""
    percent = 100.0 * ratio
    return f"{percent:.1f} %" if percent < 100 else f"{percent:.0f} %"
