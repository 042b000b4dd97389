"""Small Matplotlib helpers for the notebooks: image grids, training curves, throughput, timelines.

Every function draws on Axes it creates (or on the ``ax`` you pass), returns them, and never calls
``plt.show()``, so the caller decides when and how a figure is shown or saved. Inputs may be
NumPy arrays, anything with a ``.numpy()`` method (such as ``tf.Tensor``) or plain array-likes;
this module does not import TensorFlow. Colours come from the default property cycle (``"C0"``,
``"C1"``, ...) rather than ``plt.cm.get_cmap``, which Matplotlib 3.9 removed; no API newer than
Matplotlib 3.5 is used, so the helpers work on Colab's 3.10 as on 3.11.

Public functions: :func:`show_images`, :func:`plot_history`, :func:`plot_throughput`,
:func:`plot_timeline` and :func:`format_rate`; input checks live in :mod:`helpers._plotting`.

Example:
    >>> format_rate(12345.0)
    '12.3k/s'
    >>> ax = plot_throughput({"from_generator": 850.0, "from memory": 4.2e6}, log=True)
    >>> ax.get_xlabel()
    'elements / s (log scale)'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter

from helpers import _args, _plotting

__all__ = ["format_rate", "plot_history", "plot_throughput", "plot_timeline", "show_images"]


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
        ValueError: On a wrong image rank, channel count, value range or label count, or
            ``ncols`` < 1.
        TypeError: If images or labels are not numeric, or ``ncols`` is not an int (Python or
            NumPy, not bool).
    """
    array = _plotting.images_for_display(images)
    count = array.shape[0]
    indices = None if labels is None else _plotting.label_indices(labels, count)
    columns = min(_args.positive_int("ncols", ncols), count)
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
        ax.imshow(
            array[position], cmap="gray" if gray else None, vmin=0, vmax=_plotting.vmax(array)
        )
        ax.set_xticks([])
        ax.set_yticks([])
        if indices is not None:
            ax.set_title(_plotting.label_text(int(indices[position]), class_names), fontsize=9)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return axes


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
        TypeError: If ``history`` is not a History or a mapping, or ``validation_freq`` is
            neither an int nor a sequence of epochs.
        ValueError: If a requested metric is missing, ``validation_freq`` < 1, or a ``val_``
            curve's length does not fit it.
    """
    logs = _plotting.history_dict(history)
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
            None
            if val is None
            else _plotting.validation_epochs(name, len(train), val, validation_freq)
        )
        _plotting.plot_metric(ax, name, train, val, val_epochs)
    figure.tight_layout()
    return axes[0]


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
    values = _plotting.checked_rates(rates, log)
    _plotting.check_bound(values, bound_name)
    figure = None
    if ax is None:
        figure, ax = plt.subplots(figsize=(8, 0.5 * len(values) + 1.2))
    names = list(values)
    bars = ax.barh(names, list(values.values()), color=[f"C{i % 10}" for i in range(len(names))])
    ax.bar_label(
        bars,
        labels=[
            format_rate(values[n]) + _plotting.bound_suffix(n, values, bound_name) for n in names
        ],
        padding=3,
    )
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
    checked = _plotting.checked_events(events)
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
