"""Measure input pipelines: throughput in elements per second, and timelines of where time goes.

:func:`measure_throughput` runs a dataset several times after a warm-up and reports the median
rate. It consumes the dataset as training code does, with a Python ``for`` loop over its iterator
(``Dataset.reduce`` would consume inside TensorFlow, but measured only ≈0.45x the rate of a loop
over ``from_tensor_slices(...).batch(256)``). Per-element datasets go through a ``batch(1024)``
sink first, so that the loop's cost per item does not cap the measurement, or a
``ragged_batch(1024)`` sink when their elements have ``None`` dimensions. Batched datasets are
counted by their leading dimension, so a final partial batch counts what it holds; their
``element_spec`` is checked first, so a per-element dataset passed with ``batched=True`` is
refused instead of miscounted.

:class:`Timeline` records ``(lane, start_s, duration_s)`` events for
:func:`helpers.plotting.plot_timeline`: wrap a generator function to record each element it
produces, and time training steps with :meth:`Timeline.span`.

Wall-clock numbers depend on the machine and its load. Compare variants measured the same way,
close together in time, and prefer ratios to absolute rates. The first iteration of any
``from_generator`` dataset changes the process's allocator settings (TensorFlow logs "Memory
patch applied"), after which native pipelines run slower in that process: measure the in-memory
bound first, or each variant in its own process.

Each repetition makes a fresh iterator, and its start-up (threads, the first call into Python)
is timed with it: 18-23 ms for a ``from_generator`` pipeline on a 2-core machine, more than a
whole pass of a fast pipeline over 4,000 small images. Time short datasets over several epochs
(``dataset.repeat(10)``), so that the rate is the pipeline's and not its start-up's.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from helpers import _nest

__all__ = [
    "Throughput",
    "Timeline",
    "check_batched",
    "compare_throughputs",
    "leading_size",
    "measure_throughput",
]

Clock = Callable[[], float]
SINK_BATCH = 1024


@dataclass(frozen=True)
class Throughput:
    """Result of :func:`measure_throughput`: one count and one duration per repetition.

    Attributes:
        counts: Elements seen in each timed repetition.
        seconds: Duration of each timed repetition.
    """

    counts: tuple[int, ...]
    seconds: tuple[float, ...]

    @property
    def rates(self) -> tuple[float, ...]:
        """Elements per second of each repetition."""
        return tuple(
            count / max(seconds, 1e-12)
            for count, seconds in zip(self.counts, self.seconds, strict=True)
        )

    @property
    def elements_per_s(self) -> float:
        """Median rate over the repetitions, in elements per second."""
        return statistics.median(self.rates)

    @property
    def elements(self) -> int:
        """Elements per repetition (the first one; they differ only if the dataset does)."""
        return self.counts[0]


def leading_size(batch: Any) -> int:
    """Number of elements in a batch: the leading dimension of its first component.

    Args:
        batch: A tensor, ``tf.RaggedTensor``, NumPy array, or a nest (tuple, dict) of them.

    Returns:
        The size of the leading dimension.

    Raises:
        ValueError: If the first component is a scalar, so there is no leading dimension.
    """
    first = tf.nest.flatten(batch)[0]
    if isinstance(first, tf.RaggedTensor):
        return int(first.nrows())
    if isinstance(first, tf.SparseTensor):
        return int(first.dense_shape[0])
    shape = tuple(first.shape)
    if not shape:
        raise ValueError(
            "leading_size: expected a batch with a leading dimension, got a scalar first "
            f"component {first!r}; pass batched=False for per-element datasets"
        )
    return int(shape[0])


def check_batched(element_spec: Any) -> None:
    """Checks that an ``element_spec`` describes batches, so counting by leading dimension is right.

    A batch made by ``batch``, ``rebatch``, ``padded_batch`` or ``ragged_batch`` gives every
    component a leading dimension of unknown size (``None``), since the last batch may be
    partial. A known leading size is refused: a per-element dataset of 28x28x3 images has one too
    (28), and would be counted as 28 elements per image.

    Args:
        element_spec: ``dataset.element_spec``.

    Raises:
        ValueError: If a component is a scalar or has a known leading size; the message names the
            component, its shape, and what to pass instead.
    """
    for path, spec in _nest.leaves(element_spec):
        shape = getattr(spec, "shape", None)
        if shape is None or shape.rank is None:
            continue  # unknown rank: nothing to check before running
        if shape.rank == 0:
            raise ValueError(
                f"batched=True: expected a batch with a leading dimension in every component, "
                f"got a scalar at {path} ({spec}); pass batched=False for per-element datasets"
            )
        if shape[0] is not None:
            raise ValueError(
                f"batched=True: expected batches, whose leading dimension has unknown size "
                f"(None), got shape {shape} at {path}: this looks like a per-element dataset, "
                f"where each element would count as {shape[0]}; pass batched=False. "
                "Batches of a fixed size (drop_remainder=True) cannot be told apart from it: "
                "measure them without drop_remainder"
            )


def _sink(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Groups a per-element dataset into large batches, so the loop runs once per 1024 items."""
    fixed = all(
        type(spec) is tf.TensorSpec and spec.shape.is_fully_defined()
        for spec in tf.nest.flatten(dataset.element_spec)
    )
    return dataset.batch(SINK_BATCH) if fixed else dataset.ragged_batch(SINK_BATCH)


def _count_by_iterating(dataset: tf.data.Dataset, batched: bool) -> int:
    """Consumes the dataset with a Python loop and returns how many elements it held."""
    count = 0
    for batch in dataset if batched else _sink(dataset):
        count += leading_size(batch)
    return count


def _count_with_step(dataset: tf.data.Dataset, batched: bool, step: Callable[[Any], Any]) -> int:
    """Iterates in Python, calling ``step`` on each item like a training loop."""
    count = 0
    for item in dataset:
        step(item)
        count += leading_size(item) if batched else 1
    return count


def measure_throughput(
    dataset: tf.data.Dataset,
    *,
    batched: bool = False,
    repetitions: int = 5,
    warmup: int = 1,
    step: Callable[[Any], Any] | None = None,
    clock: Clock = time.perf_counter,
) -> Throughput:
    """Measures how many elements per second a dataset delivers (median of several runs).

    Args:
        dataset: A finite dataset; each repetition iterates it from the start.
        batched: True if each item is a batch; elements are then counted by the leading
            dimension of the first component (so a partial last batch counts what it holds).
            The ``element_spec`` must look like batches (see :func:`check_batched`).
        repetitions: Timed passes over the dataset.
        warmup: Untimed passes first (thread pools start, functions trace, caches fill).
        step: If given, the dataset is iterated in Python and ``step(item)`` is called on every
            item, like a training loop (for example a simulated training step). If None, the
            dataset alone is measured (per-element datasets in batches of 1024).
        clock: Returns the current time in seconds; inject a fake clock in tests.

    Returns:
        The counts and durations of the timed repetitions; ``.elements_per_s`` is the median.

    Raises:
        ValueError: If ``repetitions`` < 1, ``warmup`` < 0, the dataset yields nothing, or
            ``batched=True`` but the ``element_spec`` does not describe batches.
    """
    if repetitions < 1 or warmup < 0:
        raise ValueError(
            f"measure_throughput: expected repetitions >= 1 and warmup >= 0, got "
            f"repetitions={repetitions}, warmup={warmup}"
        )
    if batched:
        check_batched(dataset.element_spec)
    if step is None:

        def run() -> int:
            return _count_by_iterating(dataset, batched)

    else:

        def run() -> int:
            return _count_with_step(dataset, batched, step)

    for _ in range(warmup):
        run()
    counts, seconds = [], []
    for _ in range(repetitions):
        start = clock()
        counts.append(run())
        seconds.append(clock() - start)
    if not any(counts):
        raise ValueError("measure_throughput: the dataset yielded no elements")
    return Throughput(tuple(counts), tuple(seconds))


def compare_throughputs(
    datasets: Mapping[str, tf.data.Dataset],
    *,
    batched: bool = False,
    rounds: int = 3,
    warmup: int = 1,
    clock: Clock = time.perf_counter,
) -> dict[str, Throughput]:
    """Measures several datasets in alternation, so a slow moment of the machine hits them all.

    Each dataset is warmed up first; then every round times one pass of each dataset in turn
    (A, B, C, A, B, C, ...). Prefer this over separate :func:`measure_throughput` calls when the
    ratio between the datasets is what matters.

    Args:
        datasets: Named finite datasets.
        batched: True if every dataset yields batches (see :func:`measure_throughput`).
        rounds: Timed passes per dataset.
        warmup: Untimed passes per dataset before the first round.
        clock: Returns the current time in seconds; inject a fake clock in tests.

    Returns:
        One :class:`Throughput` per name, in the order given; ``.elements_per_s`` is the median.

    Raises:
        ValueError: If ``datasets`` is empty, ``rounds`` < 1, or ``batched=True`` but a
            dataset's ``element_spec`` does not describe batches.
    """
    if not datasets or rounds < 1:
        raise ValueError(
            f"compare_throughputs: expected at least one dataset and rounds >= 1, got "
            f"{len(datasets)} dataset(s) and rounds={rounds}"
        )
    if batched:
        for name, dataset in datasets.items():
            try:
                check_batched(dataset.element_spec)
            except ValueError as error:
                raise ValueError(f"compare_throughputs: dataset {name!r}: {error}") from None
    for dataset in datasets.values():
        if warmup:  # the last warm-up pass is a discarded timed pass
            measure_throughput(dataset, batched=batched, repetitions=1, warmup=warmup - 1)
    results: dict[str, tuple[list[int], list[float]]] = {name: ([], []) for name in datasets}
    for _ in range(rounds):
        for name, dataset in datasets.items():
            single = measure_throughput(
                dataset, batched=batched, repetitions=1, warmup=0, clock=clock
            )
            results[name][0].append(single.counts[0])
            results[name][1].append(single.seconds[0])
    return {
        name: Throughput(tuple(counts), tuple(seconds))
        for name, (counts, seconds) in results.items()
    }


class Timeline:
    """Records what happened when, as ``(lane, start_s, duration_s)`` events.

    Times are seconds since the timeline was created (or last :meth:`reset`). Recording is
    thread-safe: a generator run by tf.data in its own thread and a training loop in the main
    thread can record into the same timeline.

    Example::

        timeline = Timeline()
        dataset = tf.data.Dataset.from_generator(
            timeline.wrap_generator(make_batches, "generator"), output_signature=signature
        ).prefetch(1)
        for batch in dataset:
            with timeline.span("training step"):
                train_step(batch)
        plotting.plot_timeline(timeline.events)
    """

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        """Creates an empty timeline whose time zero is now.

        Args:
            clock: Returns the current time in seconds; inject a fake clock in tests.
        """
        self._clock = clock
        self._lock = threading.Lock()
        self._events: list[tuple[str, float, float]] = []
        self._origin = clock()

    def reset(self) -> None:
        """Forgets all events and makes now the new time zero."""
        with self._lock:
            self._events.clear()
            self._origin = self._clock()

    def record(self, lane: str, start: float, end: float) -> None:
        """Adds one event given absolute clock readings.

        Args:
            lane: Row of the timeline plot, such as ``"generator"``.
            start: Clock reading when the work began.
            end: Clock reading when it ended.

        Raises:
            ValueError: If ``end`` is before ``start``.
        """
        if end < start:
            raise ValueError(
                f"Timeline.record: lane {lane!r} ends at {end} before its start {start}"
            )
        with self._lock:
            self._events.append((lane, start - self._origin, end - start))

    @contextlib.contextmanager
    def span(self, lane: str) -> Iterator[None]:
        """Context manager recording the time spent inside it on ``lane``.

        Args:
            lane: Row of the timeline plot, such as ``"training step"``.

        Yields:
            Nothing; the event is recorded when the block exits (also on an exception).
        """
        start = self._clock()
        try:
            yield
        finally:
            self.record(lane, start, self._clock())

    def wrap_generator(
        self, generator_fn: Callable[..., Iterable[Any]], lane: str = "generator"
    ) -> Callable[..., Iterator[Any]]:
        """Wraps a generator function so producing each element is recorded on ``lane``.

        Args:
            generator_fn: A callable returning an iterable, as passed to ``from_generator``.
            lane: Row of the timeline plot.

        Returns:
            A generator function with the same arguments that yields the same elements.
        """

        def traced(*args: Any) -> Iterator[Any]:
            iterator = iter(generator_fn(*args))
            while True:
                start = self._clock()
                try:
                    element = next(iterator)
                except StopIteration:
                    return
                self.record(lane, start, self._clock())
                yield element

        return traced

    @property
    def events(self) -> list[tuple[str, float, float]]:
        """All events so far, sorted by start time, as ``(lane, start_s, duration_s)``."""
        with self._lock:
            return sorted(self._events, key=lambda event: event[1])

    def lanes(self) -> list[str]:
        """Lane names in order of first appearance."""
        return list(dict.fromkeys(lane for lane, _, _ in self.events))

    def busy_seconds(self, lane: str) -> float:
        """Total duration recorded on ``lane``.

        Args:
            lane: The lane name.

        Returns:
            Sum of the durations of its events (0.0 for an unknown lane).
        """
        return sum(duration for name, _, duration in self.events if name == lane)

    def overlap_seconds(self, lane_a: str, lane_b: str) -> float:
        """Time during which both lanes were busy (how much ``prefetch`` overlapped them).

        Args:
            lane_a: One lane name.
            lane_b: The other lane name.

        Returns:
            Total seconds covered by events of both lanes at once.
        """
        a = _merged(self.events, lane_a)
        b = _merged(self.events, lane_b)
        total, i, j = 0.0, 0, 0
        while i < len(a) and j < len(b):
            total += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
            if a[i][1] < b[j][1]:
                i += 1
            else:
                j += 1
        return total


def _merged(events: list[tuple[str, float, float]], lane: str) -> list[tuple[float, float]]:
    """The lane's events as sorted, non-overlapping ``(start, end)`` intervals."""
    intervals = sorted(
        (start, start + duration) for name, start, duration in events if name == lane
    )
    merged: list[tuple[float, float]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
