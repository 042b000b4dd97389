"""Throughput of the ways to feed per-element Python data into TensorFlow, side by side with peers.

Usage (from the repository root; Grain rows need ``pip install -e ".[bench]"``)::

    python benchmarks/bench_generators.py                  # full matrix, 3 rounds, < 8 min idle
    python benchmarks/bench_generators.py --quick          # 1 short round, 3 elements, ~1.5 min
    python benchmarks/bench_generators.py --json results.json
    python benchmarks/bench_generators.py --quick --elements tokens --variants Grain chunked

**Matrix.** Elements: a scalar int; a small dict (two float32[36] and an int32 label, 292 bytes);
a 28x28x3 float32 image with an int32 label; a 224x224x3 uint8 image with an int32 label; a
variable-length int32 token sequence (4 to 64 tokens, shape ``(None,)``, batched as
``tf.RaggedTensor``). Workloads: ``pure Python`` (the generator only indexes in-memory arrays) and
``I/O-like`` (``time.sleep(0.0005)`` per element, which releases the GIL as a file or network read
would). Every variant delivers the same elements as TensorFlow values in batches of 256 and is
consumed by a Python ``for`` loop over its iterator, as a custom training loop does (not inside
TensorFlow with ``Dataset.reduce``; peers that are not tf.data datasets could not be).

**Rows.** The in-memory bound: ``from_tensor_slices(arrays).batch(256)``, without and with
``.prefetch(AUTOTUNE)``, and (glibc only) without prefetch in a process whose ``malloc`` keeps
freed memory for reuse instead of taking fresh pages for every large batch; the fastest of them
counts as the element's bound (tf.data's fastest way to batch the same elements from memory; a
row above 100 % means the bound is not one, and the verdicts say so);
``from_generator`` per element; the plain tf.data idioms (a generator that groups elements into
NumPy batches; ``Dataset.range(k).interleave(from_generator per shard)`` with a private thread
pool); the helpers ``chunked_from_generator(batch_size=256)`` and ``sharded_from_generator``;
Keras ``PyDataset`` (threads, ``workers`` 1 and N) iterated as ``model.fit`` iterates it on the
TensorFlow backend (Keras's own ``PyDatasetAdapter.get_tf_dataset()``, a private Keras API: its
results are what ``fit`` gets, minus ``fit``'s distribution wrapper); Google Grain
(``MapDataset.source(...).map(load).batch(256).to_iter_dataset(read_options)``, so each prefetch
thread makes whole batches, which measured 5-10x faster here than prefetching elements and
batching after; no prefetch, the default ``ReadOptions()`` (16 threads, a buffer of 500 batches),
N threads), each NumPy batch converted to tensors in the loop (``tf.constant``,
``tf.RaggedTensor.from_row_lengths``).

**Method.** Each measurement runs in a fresh process forked from a server that has imported
NumPy, TensorFlow, Keras, Grain and the helpers once (``multiprocessing`` "forkserver"): the first
iteration of any ``from_generator`` dataset changes its process's allocator settings ("Memory
patch applied"), which slows native pipelines later in that process. A measurement takes the
first batch and a short warm-up untimed, then counts elements for a fixed time (at least a few
batches). Rounds alternate every cell (round 1: all cells, round 2: all cells, ...) so slow
phases of a shared machine hit every variant; the tables show the median over rounds. Full mode
stops early (and says so) rather than start a round that would end after ~7.5 minutes. In
the first round every cell is also checked for correctness before it is timed: a short finite
pass (two full batches and a partial one) must deliver exactly the generator's elements (values,
dtypes, each once), in batches of 256 but the last.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import importlib.util
import itertools
import json
import math
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BATCH = 256
IO_SLEEP_S = 0.0005  # per element in the I/O-like workload: a read that releases the GIL
WORKERS = 4  # "N": PyDataset workers, Grain threads, shards and interleave width
IO_CONCURRENCY = 16  # Grain's default thread count; the helpers and idioms get the same
CHECK_ELEMENTS = 2 * BATCH + 37  # correctness pass: two full batches and a partial one
CHILD_TIMEOUT_S = 120
HAVE_GRAIN = importlib.util.find_spec("grain") is not None


@dataclass(frozen=True)
class Settings:
    """Duration and repetitions of one benchmark mode."""

    seconds: float  # counting time per measurement (at least)
    min_batches: int  # counted batches per measurement (at least)
    warmup_s: float  # untimed iteration first (at least one batch): thread pools fill up
    rounds: int
    budget_s: float  # no new round starts if it would end after this (the first always runs)


FULL = Settings(seconds=0.4, min_batches=3, warmup_s=0.25, rounds=3, budget_s=450)
QUICK = Settings(seconds=0.1, min_batches=2, warmup_s=0.1, rounds=1, budget_s=85)
QUICK_ELEMENTS = ["small dict", "28x28x3 f32", "tokens"]  # a dict, a tuple, a ragged element


# --------------------------------------------------------------------------- elements


@dataclass(frozen=True)
class Element:
    """One element type: a pool of distinct rows, and how to read, stack and check them.

    Element ``i`` of every pipeline is row ``i % pool_rows`` of the pool; ``pool_rows`` is a
    multiple of the batch size, so a batch is one contiguous slice of the pool.
    """

    name: str
    pool_rows: int
    make_pool: Callable[[int], Any]  # rows -> columns (NumPy arrays; tokens: values, splits)
    signature: Callable[[], Any]  # -> nest of tf.TensorSpec for one element
    read: Callable[[Any, int], Any]  # (columns, row) -> the element as a generator yields it
    stack: Callable[[list[Any]], Any]  # elements -> one NumPy batch
    to_tensors: Callable[[Any], Any]  # NumPy batch -> TensorFlow batch (Grain rows)
    bound: Callable[[Any, int], Any]  # (columns, count) -> tf.data dataset of batches
    ragged: bool = False


def _rng() -> Any:
    import numpy as np

    return np.random.default_rng(0)


def _tensors(batch: Any) -> Any:
    import tensorflow as tf

    return tf.nest.map_structure(tf.constant, batch)


def _slices_bound(columns: Any, count: int) -> Any:
    """``from_tensor_slices`` of the pool, repeated to ``count`` elements, batched."""
    import tensorflow as tf

    return _repeated(tf.data.Dataset.from_tensor_slices(columns), count).batch(BATCH)


def _repeated(dataset: Any, count: int) -> Any:
    rows = int(dataset.cardinality())
    dataset = dataset.repeat(math.ceil(count / rows))
    return dataset if count % rows == 0 else dataset.take(count)


def _stack_tuple(items: list[Any]) -> Any:
    import numpy as np

    return tuple(np.stack(column) for column in zip(*items, strict=True))


def _scalar_pool(rows: int) -> Any:
    import numpy as np

    return np.arange(rows, dtype=np.int64), list(range(rows))


def _scalar_element() -> Element:
    import numpy as np

    def signature() -> Any:
        import tensorflow as tf

        return tf.TensorSpec((), tf.int64)

    return Element(
        name="scalar int",
        pool_rows=4096,
        make_pool=_scalar_pool,
        signature=signature,
        read=lambda pool, row: pool[1][row],  # a Python int, as a counting generator yields
        stack=lambda items: np.array(items, dtype=np.int64),
        to_tensors=_tensors,
        bound=lambda pool, count: _slices_bound(pool[0], count),
    )


def _small_pool(rows: int) -> Any:
    import numpy as np

    rng = _rng()
    return {
        "a": rng.random((rows, 36), dtype=np.float32),
        "b": rng.random((rows, 36), dtype=np.float32),
        "label": np.arange(rows, dtype=np.int32),
    }


def _small_element() -> Element:
    import numpy as np

    def signature() -> Any:
        import tensorflow as tf

        return {
            "a": tf.TensorSpec((36,), tf.float32),
            "b": tf.TensorSpec((36,), tf.float32),
            "label": tf.TensorSpec((), tf.int32),
        }

    def read(pool: Any, row: int) -> Any:
        return {"a": pool["a"][row], "b": pool["b"][row], "label": row}  # label: a Python int

    def stack(items: list[Any]) -> Any:
        return {
            "a": np.stack([item["a"] for item in items]),
            "b": np.stack([item["b"] for item in items]),
            "label": np.array([item["label"] for item in items], dtype=np.int32),
        }

    return Element(
        name="small dict",
        pool_rows=4096,
        make_pool=_small_pool,
        signature=signature,
        read=read,
        stack=stack,
        to_tensors=_tensors,
        bound=_slices_bound,
    )


def _image_element(name: str, shape: tuple[int, ...], dtype: str, rows: int) -> Element:
    def make_pool(count: int) -> Any:
        import numpy as np

        rng = _rng()
        if dtype == "uint8":
            images = rng.integers(0, 256, (count, *shape), dtype=np.uint8)
        else:
            images = rng.random((count, *shape), dtype=np.float32)
        return images, np.arange(count, dtype=np.int32)

    def signature() -> Any:
        import tensorflow as tf

        return (tf.TensorSpec(shape, tf.as_dtype(dtype)), tf.TensorSpec((), tf.int32))

    return Element(
        name=name,
        pool_rows=rows,
        make_pool=make_pool,
        signature=signature,
        read=lambda pool, row: (pool[0][row], pool[1][row]),
        stack=_stack_tuple,
        to_tensors=_tensors,
        bound=_slices_bound,
    )


def _token_pool(rows: int) -> Any:
    import numpy as np

    rng = _rng()
    lengths = rng.integers(4, 65, rows)
    splits = np.concatenate([[0], np.cumsum(lengths)])
    values = rng.integers(0, 30_000, int(splits[-1]), dtype=np.int32)
    return values, splits


def _token_element() -> Element:
    import numpy as np

    def signature() -> Any:
        import tensorflow as tf

        return tf.TensorSpec((None,), tf.int32)

    def read(pool: Any, row: int) -> Any:
        values, splits = pool
        return values[splits[row] : splits[row + 1]]

    def stack(items: list[Any]) -> Any:  # ragged: flat values and row lengths
        return np.concatenate(items), np.array([len(item) for item in items], dtype=np.int64)

    def to_tensors(batch: Any) -> Any:
        import tensorflow as tf

        return tf.RaggedTensor.from_row_lengths(batch[0], batch[1])

    def bound(pool: Any, count: int) -> Any:
        import tensorflow as tf

        rows = tf.RaggedTensor.from_row_splits(pool[0], pool[1])
        return _repeated(tf.data.Dataset.from_tensor_slices(rows), count).batch(BATCH)

    return Element(
        name="tokens",
        pool_rows=4096,
        make_pool=_token_pool,
        signature=signature,
        read=read,
        stack=stack,
        to_tensors=to_tensors,
        bound=bound,
        ragged=True,
    )


ELEMENTS: dict[str, Callable[[], Element]] = {
    "scalar int": _scalar_element,
    "small dict": _small_element,
    "28x28x3 f32": lambda: _image_element("28x28x3 f32", (28, 28, 3), "float32", 4096),
    "224x224x3 u8": lambda: _image_element("224x224x3 u8", (224, 224, 3), "uint8", 256),
    "tokens": _token_element,
}
WORKLOADS = ["pure Python", "I/O-like"]


def io_wait() -> None:
    """I/O-like work per element: waiting releases the GIL, as reading a file would."""
    time.sleep(IO_SLEEP_S)


@dataclass(frozen=True)
class Source:
    """Everything a variant builds from: the element type, its pool and the per-element work."""

    element: Element
    pool: Any
    count: int
    work: Callable[[], None] | None

    def load(self, index: int) -> Any:
        """Element ``index`` after the workload's per-element work."""
        if self.work is not None:
            self.work()
        return self.element.read(self.pool, index % self.element.pool_rows)

    def generator(self) -> Callable[..., Iterator[Any]]:
        """The user's per-element generator function; with arguments, one shard of it."""
        load, count = self.load, self.count

        def generate(shard: int = 0, num_shards: int = 1) -> Iterator[Any]:
            for index in range(int(shard), count, int(num_shards)):
                yield load(index)

        return generate

    def batches(self, rows: Iterable[int]) -> Any:
        """One NumPy batch of the given element indices, loaded one by one."""
        return self.element.stack([self.load(index) for index in rows])


# --------------------------------------------------------------------------- variants


def _batch(dataset: Any, source: Source) -> Any:
    return dataset.ragged_batch(BATCH) if source.element.ragged else dataset.batch(BATCH)


def _batch_signature(source: Source) -> Any:
    import tensorflow as tf

    if source.element.ragged:
        return (tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.int64))
    return tf.nest.map_structure(
        lambda spec: tf.TensorSpec((None, *spec.shape), spec.dtype), source.element.signature()
    )


def bound(source: Source) -> Iterable[Any]:
    return source.element.bound(source.pool, source.count)


def bound_prefetch(source: Source) -> Iterable[Any]:
    import tensorflow as tf

    return bound(source).prefetch(tf.data.AUTOTUNE)


def bound_kept_memory(source: Source) -> Iterable[Any]:
    """The bound in a process whose ``malloc`` keeps freed memory for reuse (glibc only).

    Every batch is a fresh tensor. glibc serves large blocks (above its mmap threshold, which
    adapts up to 32 MB) with fresh pages from the operating system and gives them back when
    they are freed, so each batch is page-faulted in anew: a 38 MB batch of 224x224x3 images
    every time. On some machines that alone caps the bound (measured on a 2-core VM: 16k el/s,
    85k with this setting). ``mallopt`` raises the mmap threshold to 1 GiB and the trim
    threshold to its maximum, in this measurement's process only.
    """
    import ctypes

    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    if not (libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 2**31 - 1)):
        raise RuntimeError("mallopt refused the thresholds")
    return bound(source)


def naive(source: Source) -> Iterable[Any]:
    import tensorflow as tf

    signature = source.element.signature()
    return _batch(
        tf.data.Dataset.from_generator(source.generator(), output_signature=signature), source
    )


def batch_idiom(source: Source) -> Iterable[Any]:
    """The plain tf.data idiom: the per-element generator, grouped into NumPy batches."""
    import tensorflow as tf

    generate, stack = source.generator(), source.element.stack

    def batches() -> Iterator[Any]:
        items = []
        for item in generate():
            items.append(item)
            if len(items) == BATCH:
                yield stack(items)
                items = []
        if items:
            yield stack(items)

    dataset = tf.data.Dataset.from_generator(batches, output_signature=_batch_signature(source))
    if source.element.ragged:
        dataset = dataset.map(tf.RaggedTensor.from_row_lengths)
    return dataset


def chunked(source: Source) -> Iterable[Any]:
    from helpers import pipelines

    return pipelines.chunked_from_generator(
        source.generator(), output_signature=source.element.signature(), batch_size=BATCH
    )


def sharded(num_shards: int) -> Callable[[Source], Iterable[Any]]:
    def build(source: Source) -> Iterable[Any]:
        from helpers import pipelines

        return pipelines.sharded_from_generator(
            source.generator(),
            output_signature=source.element.signature(),
            num_shards=num_shards,
            chunk_size=BATCH,
            batch_size=BATCH,
            deterministic=True,
        )

    return build


def interleave_idiom(width: int) -> Callable[[Source], Iterable[Any]]:
    """The plain tf.data idiom for waiting generators: one from_generator per shard, interleaved."""

    def build(source: Source) -> Iterable[Any]:
        import tensorflow as tf

        generate, signature = source.generator(), source.element.signature()
        dataset = tf.data.Dataset.range(width).interleave(
            lambda shard: tf.data.Dataset.from_generator(
                generate, args=(shard, width), output_signature=signature
            ),
            cycle_length=width,
            num_parallel_calls=width,
        )
        options = tf.data.Options()
        options.threading.private_threadpool_size = width
        return _batch(dataset, source).with_options(options)

    return build


def py_dataset(workers: int) -> Callable[[Source], Iterable[Any]]:
    def build(source: Source) -> Iterable[Any]:
        import keras

        class Batches(keras.utils.PyDataset):
            def __len__(self) -> int:
                return math.ceil(source.count / BATCH)

            def __getitem__(self, index: int) -> Any:
                stop = min((index + 1) * BATCH, source.count)
                batch = source.batches(range(index * BATCH, stop))
                if source.element.ragged:
                    import tensorflow as tf

                    return (tf.RaggedTensor.from_row_lengths(*batch),)
                return batch if isinstance(batch, (dict, tuple)) else (batch,)

        return PyDatasetEpoch(Batches(workers=workers, use_multiprocessing=False))

    return build


class PyDatasetEpoch:
    """One epoch of a PyDataset as ``model.fit`` iterates it (Keras's private adapter)."""

    def __init__(self, data: Any) -> None:
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

        self.adapter = PyDatasetAdapter(data, shuffle=False)
        self.dataset = self.adapter.get_tf_dataset()  # what fit iterates on TensorFlow

    def __iter__(self) -> Iterator[Any]:
        self.adapter.on_epoch_begin()
        for batch in self.dataset:
            yield batch[0] if isinstance(batch, tuple) and len(batch) == 1 else batch
        self.adapter.on_epoch_end()


def grain_loader(threads: int | None) -> Callable[[Source], Iterable[Any]]:
    """Grain: per-element loads, prefetched by ``threads`` (None: defaults; 0: no prefetch)."""

    def build(source: Source) -> Iterable[Any]:
        import grain

        options = grain.ReadOptions() if threads is None else grain.ReadOptions(num_threads=threads)
        if threads == 0:
            options = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
        dataset = (  # batch before prefetching, as Grain's tutorials do: threads make batches
            grain.MapDataset.source(range(source.count))
            .map(source.load)
            .batch(BATCH, batch_fn=source.element.stack)
            .to_iter_dataset(options)
        )
        return GrainTensors(dataset, source.element.to_tensors)

    return build


class GrainTensors:
    """Iterates a Grain dataset and converts each NumPy batch to TensorFlow values."""

    def __init__(self, dataset: Any, to_tensors: Callable[[Any], Any]) -> None:
        self.dataset = dataset
        self.to_tensors = to_tensors

    def __iter__(self) -> Iterator[Any]:
        for batch in self.dataset:
            yield self.to_tensors(batch)


Builder = Callable[[Source], Iterable[Any]]
BOUND = "in-memory bound"  # the faster of the "bound" rows is each element's bound


def variants(workload: str) -> dict[str, tuple[str, Builder]]:
    """Rows for one workload: name -> (kind, builder); kinds group rows in the verdicts."""
    rows: dict[str, tuple[str, Builder]] = {}
    if workload == "pure Python":
        rows[BOUND] = ("bound", bound)
        rows[f"{BOUND} + prefetch"] = ("bound", bound_prefetch)
        if platform.libc_ver()[0] == "glibc":
            rows[f"{BOUND}, malloc keeps memory"] = ("bound", bound_kept_memory)
    widths = [WORKERS, IO_CONCURRENCY] if workload == "I/O-like" else [WORKERS]
    rows["from_generator per element"] = ("baseline", naive)
    rows["tf.data idiom: generator of batches"] = ("idiom", batch_idiom)
    for width in widths:
        rows[f"tf.data idiom: interleave {width} generators"] = ("idiom", interleave_idiom(width))
    rows["chunked_from_generator(batch_size=256)"] = ("helper", chunked)
    for width in [2, WORKERS] if workload == "pure Python" else widths:
        rows[f"sharded_from_generator, {width} shards"] = ("helper", sharded(width))
    for workers in [1, *widths]:
        rows[f"Keras PyDataset, workers={workers}"] = ("peer", py_dataset(workers))
    if HAVE_GRAIN:
        rows["Grain, no prefetch"] = ("peer", grain_loader(0))
        rows[f"Grain, defaults ({IO_CONCURRENCY} threads)"] = ("peer", grain_loader(None))
        rows[f"Grain, {WORKERS} threads"] = ("peer", grain_loader(WORKERS))
    return rows


# --------------------------------------------------------------------------- checking


def split_rows(batch: Any) -> list[tuple[bytes, ...]]:
    """One fingerprint per element of a TensorFlow batch: each leaf's dtype and bytes."""
    import numpy as np
    import tensorflow as tf

    columns = []
    for leaf in tf.nest.flatten(batch, expand_composites=False):
        if isinstance(leaf, tf.RaggedTensor):
            values, splits = leaf.flat_values.numpy(), leaf.row_splits.numpy()
            rows = [values[start:stop] for start, stop in itertools.pairwise(splits)]
        else:
            rows = list(np.asarray(leaf))
        columns.append([np.asarray(row).dtype.str.encode() + row.tobytes() for row in rows])
    return list(zip(*columns, strict=True))


def expected_rows(source: Source) -> collections.Counter[tuple[bytes, ...]]:
    """Fingerprints of the generator's elements, converted to the signature's dtypes."""
    import numpy as np
    import tensorflow as tf

    dtypes = [spec.dtype.as_numpy_dtype for spec in tf.nest.flatten(source.element.signature())]
    rows: collections.Counter[tuple[bytes, ...]] = collections.Counter()
    for index in range(source.count):
        element = source.element.read(source.pool, index % source.element.pool_rows)
        leaves = [
            np.asarray(leaf, dtype)
            for leaf, dtype in zip(tf.nest.flatten(element), dtypes, strict=True)
        ]
        rows[tuple(leaf.dtype.str.encode() + leaf.tobytes() for leaf in leaves)] += 1
    return rows


def check(batches: Iterable[Any], source: Source) -> str:
    """ "ok", or what is wrong with one finite pass of ``batches`` over ``source``."""
    got: collections.Counter[tuple[bytes, ...]] = collections.Counter()
    sizes = []
    for batch in batches:
        rows = split_rows(batch)
        sizes.append(len(rows))
        got.update(rows)
    if any(size != BATCH for size in sizes[:-1]) or not 0 < sizes[-1] <= BATCH:
        return f"batch sizes {sizes}, expected {BATCH} but the last"
    expected = expected_rows(source)
    if got != expected:
        missing, extra = expected - got, got - expected
        return (
            f"{sum(got.values())} elements, expected {source.count}: "
            f"{sum(missing.values())} missing or different, {sum(extra.values())} unexpected"
        )
    return "ok"


# --------------------------------------------------------------------------- measuring


def count_for(settings: Settings, element: Element) -> int:
    """Elements per dataset: more than any variant delivers in the time; a multiple of the pool."""
    needed = 3_000_000 * (settings.seconds + 1)
    return element.pool_rows * math.ceil(needed / element.pool_rows)


def rate_of(batches: Iterable[Any], settings: Settings) -> float:
    """Elements per second delivered by ``batches`` after warm-up, counted for a fixed time.

    The warm-up is the first batch plus ``settings.warmup_s``, long enough for 16 threads
    that each make a batch to deliver their first wave, which would otherwise arrive at once and
    inflate a short count.

    Counting stops at the first batch after ``settings.seconds`` once ``settings.min_batches``
    batches were counted, so a slow pipeline is timed over several batches, not one.
    """
    from helpers import bench

    iterator = iter(batches)
    next(iterator)  # start-up: tracing, threads
    warm = time.perf_counter() + settings.warmup_s
    while time.perf_counter() < warm:
        next(iterator)
    start = time.perf_counter()
    deadline, count = start + settings.seconds, 0
    for seen, batch in enumerate(iterator, 1):
        count += bench.leading_size(batch)
        if seen >= settings.min_batches and time.perf_counter() >= deadline:
            break
    return count / (time.perf_counter() - start)


def measure_in_child(
    cell: tuple[str, str, str], settings: Settings, checking: bool, pipe: Any
) -> None:
    """Runs in a fresh process: optionally checks one cell, then measures it."""
    variant, element_name, workload = cell
    try:
        _, builder = variants(workload)[variant]
        element = ELEMENTS[element_name]()
        pool = element.make_pool(element.pool_rows)
        work = io_wait if workload == "I/O-like" else None
        verdict = ""
        if checking:
            verdict = check(
                builder(Source(element, pool, CHECK_ELEMENTS, work)),
                Source(element, pool, CHECK_ELEMENTS, work),
            )
        rate = rate_of(builder(Source(element, pool, count_for(settings, element), work)), settings)
        pipe.send((rate, verdict, None))
    except Exception as error:  # reported by the parent, on one line
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        pipe.send((math.nan, "", f"{type(error).__name__}: {message[-300:]}"))
    pipe.close()
    os._exit(0)  # loader threads (Keras, Grain) may still run: this process is done


def run_cell(context: Any, cell: tuple[str, str, str], settings: Settings, checking: bool) -> Any:
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=measure_in_child, args=(cell, settings, checking, sender))
    process.start()
    sender.close()
    if receiver.poll(CHILD_TIMEOUT_S):
        try:
            result = receiver.recv()
        except EOFError:
            result = (math.nan, "", "the process died without a result")
    else:
        process.kill()
        result = (math.nan, "", f"no result within {CHILD_TIMEOUT_S} s")
    process.join()
    return result


def run_all(cells: list[tuple[str, str, str]], settings: Settings) -> dict[Any, Any]:
    """Measures every cell ``settings.rounds`` times, alternating, one process each."""
    context = multiprocessing.get_context("forkserver")
    preload = ["numpy", "tensorflow", "keras", "helpers.bench", "helpers.pipelines"]
    context.set_forkserver_preload(preload + (["grain"] if HAVE_GRAIN else []))
    results: dict[Any, Any] = {cell: {"rates": [], "check": "", "error": ""} for cell in cells}
    started_all, last_round = time.perf_counter(), 0.0
    for round_index in range(settings.rounds):
        round_started = time.perf_counter()
        if round_index and round_started - started_all + last_round > settings.budget_s:
            print(
                f"stopping after {round_index} round(s): another would pass the "
                f"{settings.budget_s:.0f} s budget (--budget to change it)",
                file=sys.stderr,
            )
            break
        for cell in cells:
            started = time.perf_counter()
            rate, verdict, error = run_cell(context, cell, settings, round_index == 0)
            took = time.perf_counter() - started
            results[cell]["rates"].append(rate)
            if verdict:
                results[cell]["check"] = verdict
            if error:
                results[cell]["error"] = error
            status = f"FAILED: {error}" if error else f"{rate:,.0f}/s {verdict} ({took:.1f} s)"
            print(f"  round {round_index + 1}: {' | '.join(cell)}: {status}", file=sys.stderr)
        last_round = time.perf_counter() - round_started
        print(f"round {round_index + 1} of {settings.rounds}: {last_round:.0f} s", file=sys.stderr)
    return results


# --------------------------------------------------------------------------- report


def summarize(results: dict[Any, Any], kinds: dict[str, str]) -> list[dict[str, Any]]:
    """One row per cell: median rate, ratio to the element's bound, check, kind."""
    medians = {
        cell: statistics.median(value["rates"]) if value["rates"] else math.nan
        for cell, value in results.items()
    }
    bounds: dict[str, float] = {}
    for (variant, element, _), rate in medians.items():
        if kinds[variant] == "bound" and not math.isnan(rate):
            bounds[element] = max(rate, bounds.get(element, 0.0))
    return [
        {
            "name": variant,
            "element": element,
            "workload": workload,
            "kind": kinds[variant],
            "elements_per_s": rate,
            "ratio_to_bound": rate / bounds.get(element, math.nan),
            "rates": results[variant, element, workload]["rates"],
            "check": results[variant, element, workload]["check"],
            "error": results[variant, element, workload]["error"],
        }
        for (variant, element, workload), rate in medians.items()
    ]


def _cell_text(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    if row["error"] or math.isnan(row["elements_per_s"]):
        return "failed"
    rate = row["elements_per_s"]
    text = f"{rate / 1000:,.1f}k" if rate < 100_000 else f"{rate / 1000:,.0f}k"
    if not math.isnan(row["ratio_to_bound"]):
        text += f" ({row['ratio_to_bound']:.0%})"
    if row["check"] not in ("", "ok"):
        text += " WRONG"
    return text


def tables(rows: list[dict[str, Any]]) -> str:
    """One Markdown table per workload: a row per variant, a column per element."""
    elements = list(dict.fromkeys(row["element"] for row in rows))
    out = []
    for workload in dict.fromkeys(row["workload"] for row in rows):
        bounds = {(r["name"], r["element"]): r for r in rows if r["kind"] == "bound"}
        cells = {(row["name"], row["element"]): row for row in rows if row["workload"] == workload}
        cells = bounds | cells  # every table starts with the bound its ratios refer to
        names = list(dict.fromkeys(name for name, _ in cells))
        out.append(f"{workload}: elements/s (ratio to the element's in-memory bound)\n")
        out.append("| variant | " + " | ".join(elements) + " |")
        out.append("| --- |" + " ---: |" * len(elements))
        for name in names:
            texts = [_cell_text(cells.get((name, element))) for element in elements]
            out.append(f"| {name} | " + " | ".join(texts) + " |")
        out.append("")
    return "\n".join(out)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """Issue 9's acceptance checks, for the cells that were measured."""
    lines = []
    for row in rows:
        if row["name"].startswith("chunked_from_generator") and row["workload"] == "pure Python":
            if ELEMENTS[row["element"]]().ragged or math.isnan(row["ratio_to_bound"]):
                continue
            ok = row["ratio_to_bound"] >= 0.5
            lines.append(
                f"chunked >= 50 % of the bound, {row['element']}: {row['ratio_to_bound']:.0%} "
                f"{'ok' if ok else 'MISSED'}"
            )
    for element, workload in dict.fromkeys((row["element"], row["workload"]) for row in rows):
        cell = [row for row in rows if (row["element"], row["workload"]) == (element, workload)]
        best = {}
        for kind in ("helper", "peer", "idiom"):
            candidates = [
                r for r in cell if r["kind"] == kind and not math.isnan(r["elements_per_s"])
            ]
            if candidates:
                best[kind] = max(candidates, key=lambda r: r["elements_per_s"])
        if "helper" in best and "peer" in best:
            helper, peer = best["helper"], best["peer"]
            ratio = helper["elements_per_s"] / peer["elements_per_s"]
            lines.append(
                f"{element}, {workload}: best helper / best peer = {ratio:.2f} "
                f"({helper['name']} vs {peer['name']}) {'ok' if ratio >= 1 else 'MISSED'}"
            )
    above = [r for r in rows if r["kind"] != "bound" and r["ratio_to_bound"] > 1.0]
    for row in above:
        lines.append(
            f"above the bound ({row['ratio_to_bound']:.0%}): {row['name']} | {row['element']} | "
            f"{row['workload']}: the in-memory bound is not one for this element"
        )
    failed = [r for r in rows if r["check"] not in ("", "ok") or r["error"]]
    checked = [r for r in rows if r["check"] == "ok"]
    lines.append(f"correctness: {len(checked)} cells checked ok, {len(failed)} wrong or failed")
    for row in failed:
        problem = row["error"] or row["check"]
        lines.append(f"  {row['name']} | {row['element']} | {row['workload']}: {problem}")
    return lines


def machine() -> str:
    """One line describing the machine, the versions and the load."""
    model = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import keras
    import tensorflow as tf

    grain_version = "not installed"
    if HAVE_GRAIN:
        from importlib.metadata import version

        grain_version = version("grain")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, Grain {grain_version}, "
        f"load average {load}"
    )


def _matches(name: str, patterns: list[str] | None) -> bool:
    return not patterns or any(pattern.lower() in name.lower() for pattern in patterns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round (noisier)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--elements", nargs="+", help="only elements whose name contains one")
    parser.add_argument("--workloads", nargs="+", help="only workloads whose name contains one")
    parser.add_argument("--variants", nargs="+", help="only variants whose name contains one")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument("--budget", type=float, help="seconds after which no round starts")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    if args.rounds:
        settings = dataclasses.replace(settings, rounds=args.rounds)
    if args.budget:
        settings = dataclasses.replace(settings, budget_s=args.budget)
    if not HAVE_GRAIN:
        print(
            'grain is not installed: skipping the Grain rows (pip install -e ".[bench]")',
            file=sys.stderr,
        )
    cells, kinds = [], {}
    element_patterns = args.elements or (QUICK_ELEMENTS if args.quick else None)
    for workload in filter(lambda w: _matches(w, args.workloads), WORKLOADS):
        for variant, (kind, _) in variants(workload).items():
            kinds[variant] = kind
            if kind != "bound" and not _matches(variant, args.variants):
                continue
            for element in filter(lambda e: _matches(e, element_patterns), ELEMENTS):
                cells.append((variant, element, workload))
    started = time.perf_counter()
    print(f"settings: {asdict(settings)}, {len(cells)} cells", file=sys.stderr)
    results = run_all(cells, settings)
    rows = summarize(results, kinds)
    rounds_done = max(len(value["rates"]) for value in results.values())
    print(f"machine: {machine()}")
    print(
        f"batches of {BATCH}, consumed by a Python for loop; I/O-like = {IO_SLEEP_S * 1000:g} ms "
        f"sleep per element; median of {rounds_done} process(es) per cell, each counting for at "
        f"least {settings.seconds:g} s and {settings.min_batches} batches after "
        f"{settings.warmup_s:g} s of warm-up; N = {WORKERS}. PyDataset rows iterate "
        "Keras's PyDatasetAdapter.get_tf_dataset() (a private Keras API), as model.fit does on "
        "TensorFlow; Grain rows convert each NumPy batch to tensors in the loop.\n"
    )
    print(tables(rows))
    if args.quick:
        print("quick mode is short and single-round: the verdicts are meant for full mode")
    print("\n".join(verdicts(rows)))
    print(f"\ntotal time: {time.perf_counter() - started:.0f} s")
    if args.json:
        clean = [{k: None if v != v else v for k, v in row.items()} for row in rows]  # NaN
        args.json.write_text(json.dumps(clean, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
