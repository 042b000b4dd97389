"""Throughput of the ways to feed a Python generator into tf.data, each variant in a fresh process.

Usage (from the repository root)::

    python benchmarks/bench_generators.py            # full mode, a few minutes
    python benchmarks/bench_generators.py --quick    # under a minute, noisier
    python benchmarks/bench_generators.py --json results.json

Every variant runs on the same synthetic data: N elements of (28x28x3 float32 image, int32 label),
batched by 256. Each measurement runs in its own fresh process, forked from a server that has only
imported NumPy, TensorFlow and Keras (``multiprocessing`` "forkserver", so a process costs a fork
instead of a seven-second TensorFlow import). That matters: the first iteration of any
``from_generator`` dataset changes the allocator settings of its process ("Memory patch
applied"), after which native pipelines run slower, so a one-process comparison flatters
generators. Rounds alternate the variants (round 1: A, B, C, ...; round 2: A, B, C, ...), so slow
phases of a shared machine hit every variant; the table reports the median over rounds.

Variants with per-element work (pure-Python or I/O-like) process fewer elements (``work_elements``,
``io_elements``; enough that the ~0.1-0.4 s it takes to start a sharded pipeline does not dominate)
and are still compared with the same in-memory bound, which does no such work: their ratio says
how far that work leaves you from the bound, and comparing them with each other says what helps.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BATCH = 256
IMAGE_SHAPE = (28, 28, 3)
IO_SLEEP_S = 0.0002  # per element: stands for a file or network read (releases the GIL)
PYTHON_WORK = 400  # loop iterations per element: pure-Python work (holds the GIL)
TRAIN_STEP_S = 0.04  # per batch of 256: a simulated training step (releases the GIL)
BOUND = "in-memory bound: from_tensor_slices"


@dataclass(frozen=True)
class Settings:
    """Sizes and repetitions of one benchmark mode."""

    elements: int
    work_elements: int
    io_elements: int
    rounds: int
    repetitions: int


FULL = Settings(elements=20_000, work_elements=4_000, io_elements=8_000, rounds=3, repetitions=2)
QUICK = Settings(elements=5_000, work_elements=1_500, io_elements=1_500, rounds=1, repetitions=1)


# --------------------------------------------------------------------------- data and work


def make_data(count: int) -> tuple[Any, Any]:
    """Seeded images and labels, as a real pipeline would read them."""
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.random((count, *IMAGE_SHAPE), dtype=np.float32)
    labels = rng.integers(0, 10, count).astype(np.int32)
    return images, labels


def python_work(index: int) -> int:
    """Pure-Python work per element (holds the GIL): decoding, parsing, augmenting in Python."""
    total = 0
    for step in range(PYTHON_WORK):
        total += (index * step) % 7
    return total


def io_work(index: int) -> None:
    """I/O-like work per element: waiting releases the GIL, as reading a file would."""
    del index
    time.sleep(IO_SLEEP_S)


WORK: dict[str, Callable[[int], Any]] = {"none": lambda index: None, "python": python_work}
WORK["io"] = io_work


def signature() -> tuple[Any, Any]:
    """The element signature: one image and its label."""
    import tensorflow as tf

    return (tf.TensorSpec(IMAGE_SHAPE, tf.float32), tf.TensorSpec((), tf.int32))


def element_generator(images: Any, labels: Any, work: str) -> Callable[..., Any]:
    """A per-element generator function over the data, with optional sharding arguments."""
    do_work = WORK[work]

    def generate(shard: int = 0, num_shards: int = 1) -> Any:
        for index in range(int(shard), len(images), int(num_shards)):
            do_work(index)
            yield images[index], labels[index]

    return generate


# --------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Built:
    """A dataset to measure, and how: batched counting, or a training loop with a step."""

    dataset: Any
    batched: bool = True
    step: Callable[[Any], Any] | None = None


def bound(settings: Settings) -> Built:
    import tensorflow as tf

    images, labels = make_data(settings.elements)
    return Built(tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH))


def naive(settings: Settings) -> Built:
    import tensorflow as tf

    gen = element_generator(*make_data(settings.elements), "none")
    return Built(tf.data.Dataset.from_generator(gen, output_signature=signature()).batch(BATCH))


def batch_yielding(settings: Settings) -> Built:
    import tensorflow as tf

    images, labels = make_data(settings.elements)

    def batches() -> Any:
        for start in range(0, len(images), BATCH):
            yield images[start : start + BATCH], labels[start : start + BATCH]

    spec = tuple(tf.TensorSpec((None, *s.shape), s.dtype) for s in signature())
    return Built(tf.data.Dataset.from_generator(batches, output_signature=spec))


def chunked_elements(settings: Settings) -> Built:
    from helpers import pipelines

    gen = element_generator(*make_data(settings.elements), "none")
    return Built(pipelines.chunked_from_generator(gen, signature()).batch(BATCH))


def chunked_batches(settings: Settings) -> Built:
    from helpers import pipelines

    gen = element_generator(*make_data(settings.elements), "none")
    return Built(pipelines.chunked_from_generator(gen, signature(), batch_size=BATCH))


def sharded(work: str, num_shards: int, chunk_size: int = 256) -> Callable[[Settings], Built]:
    def build(settings: Settings) -> Built:
        from helpers import pipelines

        count = settings.io_elements if work == "io" else settings.work_elements
        gen = element_generator(*make_data(count), work)
        dataset = pipelines.sharded_from_generator(
            gen, signature(), num_shards=num_shards, chunk_size=chunk_size, batch_size=BATCH
        )
        return Built(dataset)

    return build


def prefetching(enabled: bool) -> Callable[[Settings], Built]:
    def build(settings: Settings) -> Built:
        import tensorflow as tf

        gen = element_generator(*make_data(settings.work_elements), "none")
        dataset = tf.data.Dataset.from_generator(gen, output_signature=signature()).batch(BATCH)
        options = tf.data.Options()
        options.experimental_optimization.inject_prefetch = False  # "off" must really be off
        dataset = dataset.with_options(options)
        if enabled:
            dataset = dataset.prefetch(tf.data.AUTOTUNE)
        return Built(dataset, step=lambda batch: time.sleep(TRAIN_STEP_S))

    return build


def py_dataset(work: str, workers: int) -> Callable[[Settings], Built]:
    def build(settings: Settings) -> Built:
        import keras

        images, labels = make_data(settings.io_elements if work == "io" else settings.work_elements)
        do_work = WORK[work]

        class Batches(keras.utils.PyDataset):
            def __len__(self) -> int:
                return math.ceil(len(images) / BATCH)

            def __getitem__(self, index: int) -> Any:
                rows = range(index * BATCH, min((index + 1) * BATCH, len(images)))
                for row in rows:
                    do_work(row)
                return images[rows.start : rows.stop], labels[rows.start : rows.stop]

        data = Batches(workers=workers, use_multiprocessing=False, max_queue_size=8)
        return Built(PyDatasetEpochs(data))

    return build


class PyDatasetEpochs:
    """Iterates a PyDataset as ``model.fit`` does (Keras's private adapter, one epoch a pass)."""

    def __init__(self, data: Any) -> None:
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

        self.adapter = PyDatasetAdapter(data, shuffle=False)
        # What model.fit iterates on the TensorFlow backend: from_generator over the batches.
        self.dataset = self.adapter.get_tf_dataset()

    def __iter__(self) -> Any:
        self.adapter.on_epoch_begin()
        yield from self.dataset
        self.adapter.on_epoch_end()


VARIANTS: dict[str, Callable[[Settings], Built]] = {
    BOUND: bound,
    "naive from_generator, per element": naive,
    "generator yielding batches": batch_yielding,
    "chunked_from_generator + .batch(256)": chunked_elements,
    "chunked_from_generator(batch_size=256)": chunked_batches,
    "pure-Python work, 1 shard": sharded("python", 1),
    "pure-Python work, 2 shards": sharded("python", 2),
    "pure-Python work, 4 shards": sharded("python", 4),
    "I/O-like work, 1 shard": sharded("io", 1),
    "I/O-like work, 2 shards": sharded("io", 2),
    "I/O-like work, 4 shards": sharded("io", 4),
    "I/O-like work, 4 shards, chunk_size=1": sharded("io", 4, chunk_size=1),
    "prefetch off, 40 ms training step": prefetching(False),
    "prefetch on, 40 ms training step": prefetching(True),
    "PyDataset, pure-Python work, 1 worker": py_dataset("python", 1),
    "PyDataset, pure-Python work, 4 workers": py_dataset("python", 4),
    "PyDataset, I/O-like work, 1 worker": py_dataset("io", 1),
    "PyDataset, I/O-like work, 4 workers": py_dataset("io", 4),
}


# --------------------------------------------------------------------------- processes


def measure_in_child(name: str, settings: Settings, results: Any) -> None:
    """Runs in a fresh process: builds one variant, measures it, sends back elements/s."""
    try:
        from helpers import bench

        built = VARIANTS[name](settings)
        if isinstance(built.dataset, PyDatasetEpochs):
            step = built.step or (lambda batch: None)
            result = _measure_iterable(built.dataset, settings.repetitions, step)
        else:
            result = bench.measure_throughput(
                built.dataset,
                batched=built.batched,
                repetitions=settings.repetitions,
                warmup=1,
                step=built.step,
            ).elements_per_s
        results.put((name, result, None))
    except Exception as error:  # reported by the parent
        results.put((name, math.nan, f"{type(error).__name__}: {error}"))


def _measure_iterable(batches: Any, repetitions: int, step: Callable[[Any], Any]) -> float:
    """Median elements/s of a Python iterable of batches (one untimed pass first)."""
    rates = []
    for repetition in range(repetitions + 1):
        start, count = time.perf_counter(), 0
        for batch in batches:
            step(batch)
            count += len(batch[0])
        if repetition:
            rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def run_all(names: list[str], settings: Settings) -> dict[str, list[float]]:
    """Measures every variant ``settings.rounds`` times, alternating, one process each."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["numpy", "tensorflow", "keras", "helpers.bench"])
    results = context.Queue()
    rates: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(settings.rounds):
        for name in names:
            process = context.Process(target=measure_in_child, args=(name, settings, results))
            process.start()
            _, rate, error = results.get()
            process.join()
            if error:
                print(f"  {name}: FAILED: {error}", file=sys.stderr)
            rates[name].append(rate)
            print(f"  round {round_index + 1}: {name}: {rate:,.0f}/s", file=sys.stderr)
    return rates


# --------------------------------------------------------------------------- report


def machine() -> str:
    """One line describing the machine and its load."""
    model = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    import tensorflow as tf

    return (
        f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, load average {load}"
    )


def summarize(rates: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Median per variant and its ratio to the in-memory bound."""
    medians = {name: statistics.median(values) for name, values in rates.items()}
    bound_rate = medians.get(BOUND, math.nan)
    return [
        {"name": name, "elements_per_s": rate, "ratio_to_bound": rate / bound_rate}
        for name, rate in medians.items()
    ]


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the summary."""
    lines = ["| variant | elements/s | ratio to in-memory bound |", "| --- | ---: | ---: |"]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['elements_per_s']:,.0f} | {row['ratio_to_bound']:.1%} |"
        )
    return "\n".join(lines)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """The acceptance checks of issue 3, where the variants they need were measured."""
    rate = {row["name"]: row["elements_per_s"] for row in rows}
    checks = [
        ("chunked_from_generator(batch_size=256)", "naive from_generator, per element", 15.0),
        ("chunked_from_generator(batch_size=256)", BOUND, 0.5),
        ("chunked_from_generator + .batch(256)", "naive from_generator, per element", 8.0),
        ("I/O-like work, 4 shards", "I/O-like work, 1 shard", 3.0),
    ]
    lines = []
    for faster, slower, factor in checks:
        if faster in rate and slower in rate:
            ratio = rate[faster] / rate[slower]
            verdict = "ok" if ratio >= factor else "MISSED"
            lines.append(f"{faster} / {slower} = {ratio:.2f} (want >= {factor}): {verdict}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer elements, one round")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), help="run these variants")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    names = args.only or list(VARIANTS)
    if BOUND not in names:
        names.insert(0, BOUND)
    started = time.perf_counter()
    print(f"settings: {asdict(settings)}", file=sys.stderr)
    rates = run_all(names, settings)
    rows = summarize(rates)
    print(f"machine: {machine()}")
    print(
        f"{settings.elements:,} elements of (28x28x3 float32, int32), batches of {BATCH}; "
        f"{settings.work_elements:,} elements for variants with pure-Python work or a training "
        f"step, {settings.io_elements:,} for I/O-like work; "
        f"median of {settings.rounds} process(es) x {settings.repetitions} timed pass(es)\n"
    )
    print(table(rows))
    print()
    if args.quick:
        print("quick mode is small and single-round; the checks below are meant for full mode")
    print("\n".join(verdicts(rows)))
    print(f"\ntotal time: {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
