"""Small Matplotlib helpers for the notebooks: image grids, training curves, throughput, timelines.

Every function draws on Axes it creates (or on the ``ax`` you pass), returns them, and never calls
``plt.show()``, so the caller decides when and how a figure is shown or saved. Inputs may be
NumPy arrays, anything with a ``.numpy()`` method (such as ``tf.Tensor``) or plain array-likes;
this module does not import TensorFlow. Colours come from the default property cycle (``"C0"``,
``"C1"``, ...) rather than ``plt.cm.get_cmap``, which Matplotlib 3.9 removed; no API newer than
Matplotlib 3.5 is used, so the helpers work on Colab's 3.10 as on 3.11.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, MaxNLocator

__all__ = ["plot_history", "plot_throughput", "plot_timeline", "show_images"]


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


def _images_for_display(images: Any) -> np.ndarray:
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


def _label_indices(labels: Any, count: int) -> np.ndarray:
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


def _label_text(index: int, class_names: Mapping[int, str] | Sequence[str] | None) -> str:
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


def show_images(
    images: Any,
    labels: Any = None,
    *,
    class_names: Mapping[int, str] | Sequence[str] | None = None,
    ncols: int = 8,
    title: str | None = None,
    cell_size: float = 1.2,
) -> np.ndarray:
    """Draws a batch of images as a grid, each titled with its class.

    Args:
        images: A batch shaped (N, H, W), (N, H, W, 1) or (N, H, W, 3): float in [0, 1] or integers
            in [0, 255]. A NumPy array, a ``tf.Tensor`` or any array-like. Values outside the range
            raise instead of being rescaled, so the grid shows exactly what the model receives.
        labels: Optional integer labels shaped (N,) or one-hot labels shaped (N, K).
        class_names: Optional mapping (or sequence) from class index to name, used in the titles.
        ncols: Maximum number of images per row.
        title: Optional title for the whole figure.
        cell_size: Width of one image cell in inches.

    Returns:
        A 2-D NumPy array of Axes shaped (rows, columns); cells without an image are hidden.

    Raises:
        ValueError: On a wrong image rank, channel count, value range, label count or ``ncols``.
        TypeError: If images or labels are not numeric.
    """
    array = _images_for_display(images)
    count = array.shape[0]
    indices = None if labels is None else _label_indices(labels, count)
    if isinstance(ncols, bool) or not isinstance(ncols, numbers.Integral) or ncols < 1:
        raise ValueError(f"ncols: expected a positive int, got {ncols!r}")
    columns = min(int(ncols), count)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(cell_size * columns, (cell_size + 0.25) * rows + (0.3 if title else 0.0)),
        squeeze=False,
    )
    gray = array.ndim == 3
    for position, ax in enumerate(axes.flat):
        if position >= count:
            ax.set_visible(False)
            continue
        ax.imshow(array[position], cmap="gray" if gray else None, vmin=0, vmax=_vmax(array))
        ax.set_xticks([])
        ax.set_yticks([])
        if indices is not None:
            ax.set_title(_label_text(int(indices[position]), class_names), fontsize=9)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return axes


def _vmax(array: np.ndarray) -> float:
    """Returns the display maximum for an image array: 1 for floats, 255 for uint8."""
    return 1.0 if np.issubdtype(array.dtype, np.floating) else 255.0


def _history_dict(history: Any) -> dict[str, list[float]]:
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


def plot_history(
    history: Any,
    *,
    metrics: Sequence[str] | None = None,
    panel_size: tuple[float, float] = (4.0, 3.0),
    validation_freq: int | Sequence[int] = 1,
) -> np.ndarray:
    """Plots training curves: one panel per metric, training against ``val_`` values.

    Args:
        history: A ``keras.callbacks.History`` (what ``model.fit`` returns) or a dict such as
            ``{"loss": [...], "val_loss": [...]}``.
        metrics: Names of the metrics to plot, without the ``val_`` prefix. Defaults to every
            training metric in the history, in its order.
        panel_size: Width and height of one panel in inches.
        validation_freq: The ``validation_freq`` given to ``model.fit``, which records ``val_``
            values only at some epochs: an int ``k`` (epochs ``k``, ``2k``, ...) or a sequence
            of 1-based epochs. Validation points are drawn at those epochs. It is never guessed
            from the lengths (several frequencies give the same count), so a shorter ``val_``
            list without it is an error that says so.

    Returns:
        A 1-D NumPy array of Axes, one per metric. The x axis is the epoch, starting at 1.

    Raises:
        TypeError: If ``history`` is not a History or a mapping.
        ValueError: If a requested metric is missing, ``validation_freq`` is not a positive int
            or a sequence of epochs, or a ``val_`` curve's length does not fit it.
    """
    logs = _history_dict(history)
    names = list(metrics) if metrics is not None else [n for n in logs if not n.startswith("val_")]
    if not names:
        raise ValueError(f"metrics: expected at least one metric name, got {names!r}")
    for name in names:
        if name not in logs:
            available = sorted(n for n in logs if not n.startswith("val_"))
            raise ValueError(f"metrics: expected one of {available}, got {name!r}")
    figure, axes = plt.subplots(
        1, len(names), figsize=(panel_size[0] * len(names), panel_size[1]), squeeze=False
    )
    for ax, name in zip(axes[0], names, strict=True):
        train = logs[name]
        val = logs.get(f"val_{name}")
        val_epochs = (
            None if val is None else _validation_epochs(name, len(train), val, validation_freq)
        )
        _plot_metric(ax, name, train, val, val_epochs)
    figure.tight_layout()
    return axes[0]


def _validation_epochs(
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
        ValueError: If ``validation_freq`` is invalid or does not give ``len(val)`` epochs.
    """
    if isinstance(validation_freq, numbers.Integral) and not isinstance(validation_freq, bool):
        if validation_freq < 1:
            raise ValueError(f"validation_freq: expected a positive int, got {validation_freq!r}")
        at = list(range(int(validation_freq), epochs + 1, int(validation_freq)))
    elif isinstance(validation_freq, Sequence) and not isinstance(validation_freq, str):
        at = sorted({int(e) for e in validation_freq if 1 <= e <= epochs})
    else:
        raise ValueError(
            "validation_freq: expected a positive int or a sequence of epochs, "
            f"got {validation_freq!r}"
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


def _plot_metric(
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


def format_rate(rate: float) -> str:
    """Formats elements per second compactly, e.g. ``"850/s"``, ``"12.3k/s"``, ``"4.56M/s"``.

    Args:
        rate: Elements per second.

    Returns:
        The rate with three significant digits and a k/M/G suffix.
    """
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(rate) >= factor:
            return f"{rate / factor:.3g}{suffix}/s"
    return f"{rate:.3g}/s"


def _format_ratio(ratio: float) -> str:
    """Formats a ratio as a percentage with about three significant digits."""
    percent = 100.0 * ratio
    return f"{percent:.1f} %" if percent < 100 else f"{percent:.0f} %"


def _checked_rates(rates: Mapping[str, float], log: bool) -> dict[str, float]:
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


def plot_throughput(
    rates: Mapping[str, float],
    *,
    bound_name: str | None = None,
    ax: Axes | None = None,
    title: str = "Throughput",
    log: bool = False,
) -> Axes:
    """Draws horizontal bars of elements per second, each labelled with its rate.

    Args:
        rates: Mapping from variant name to elements per second, drawn top to bottom in order.
        bound_name: Optional key of ``rates`` that is the upper bound (for example the same
            pipeline fed from memory); every other bar is also labelled with its share of it.
        ax: Axes to draw on; a new figure is created when None.
        title: The plot title.
        log: Use a logarithmic x axis (useful when rates differ by orders of magnitude).

    Returns:
        The Axes drawn on.

    Raises:
        TypeError: If ``rates`` is not a mapping.
        ValueError: If ``rates`` is empty, holds a negative or non-finite rate, or
            ``bound_name`` is not one of its keys or has a zero rate.
    """
    values = _checked_rates(rates, log)
    if bound_name is not None:
        if bound_name not in values:
            raise ValueError(f"bound_name: expected one of {list(values)}, got {bound_name!r}")
        if values[bound_name] == 0:
            raise ValueError(f"rates[{bound_name!r}]: expected a positive bound, got 0")
    figure = None
    if ax is None:
        figure, ax = plt.subplots(figsize=(8, 0.5 * len(values) + 1.2))
    names = list(values)
    bars = ax.barh(names, list(values.values()), color=[f"C{i % 10}" for i in range(len(names))])
    ax.bar_label(bars, labels=[_bar_text(n, values, bound_name) for n in names], padding=3)
    ax.invert_yaxis()
    largest = max(values.values())
    if log:
        ax.set_xscale("log")
        ax.set_xlim(min(values.values()) / 2, largest * 30)
    else:
        ax.set_xlim(0, largest * 1.45 if largest > 0 else 1.0)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: format_rate(x).removesuffix("/s")))
    ax.set_title(title)
    ax.set_xlabel("elements / s" + (" (log scale)" if log else ""))
    ax.set_ylabel("pipeline")
    if figure is not None:
        figure.tight_layout()
    return ax


def _bar_text(name: str, values: Mapping[str, float], bound_name: str | None) -> str:
    """Returns a throughput bar's label: its rate, and its share of the bound when there is one."""
    text = format_rate(values[name])
    if bound_name is None:
        return text
    if name == bound_name:
        return f"{text} (bound)"
    return f"{text} · {_format_ratio(values[name] / values[bound_name])} of bound"


def _checked_events(events: Sequence[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
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


def plot_timeline(
    events: Sequence[tuple[str, float, float]],
    *,
    ax: Axes | None = None,
    title: str = "Timeline",
) -> Axes:
    """Draws events as bars on a time axis, one row per lane (for example per thread or stage).

    Args:
        events: Sequence of ``(lane name, start seconds, duration seconds)``. Lanes are drawn top
            to bottom in the order they first appear.
        ax: Axes to draw on; a new figure is created when None.
        title: The plot title.

    Returns:
        The Axes drawn on.

    Raises:
        TypeError: If ``events`` is not a sequence of 3-tuples.
        ValueError: If there are no events, or an event has a negative duration or a
            non-finite time.
    """
    checked = _checked_events(events)
    lanes = list(dict.fromkeys(lane for lane, _, _ in checked))
    figure = None
    if ax is None:
        figure, ax = plt.subplots(figsize=(8, 0.45 * len(lanes) + 1.3))
    for row, lane in enumerate(lanes):
        spans = [(start, duration) for name, start, duration in checked if name == lane]
        ax.barh(
            [row] * len(spans),
            [duration for _, duration in spans],
            left=[start for start, _ in spans],
            height=0.6,
            color=f"C{row % 10}",
            edgecolor="white",
            linewidth=0.5,
        )
    ax.set_yticks(range(len(lanes)), labels=lanes)
    ax.set_ylim(len(lanes) - 0.5, -0.5)
    begin = min(start for _, start, _ in checked)
    end = max(start + duration for _, start, duration in checked)
    margin = 0.02 * (end - begin) if end > begin else 0.5
    ax.set_xlim(min(0.0, begin), end + margin)
    ax.set_title(title)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("lane")
    ax.grid(axis="x", alpha=0.3)
    if figure is not None:
        figure.tight_layout()
    return ax
