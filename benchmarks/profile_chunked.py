"""Where the time of ``chunked_from_generator(..., batch_size=256)`` goes, stage by stage.

Usage (from the repository root)::

    python benchmarks/profile_chunked.py                 # both elements, staged timings

The processes import ``helpers`` from the current directory first. To profile another version of
the helpers, run from a directory holding that version (e.g. ``git archive <commit> helpers``).
    python benchmarks/profile_chunked.py --cprofile      # plus cProfile of the helper's Python part
    python benchmarks/profile_chunked.py --stage chunked --element small --seconds 20
        # just the full pipeline for 20 s, to attach ``py-spy record --pid ...`` to

Each stage adds one layer to the previous one, so the differences are the cost of that layer.
All stages consume batches of 256 with a Python ``for`` loop, as training would:

1. ``generator``: the user's per-element generator alone, in plain Python (no TensorFlow).
2. ``plain copy``: a hand-written loop copying each leaf into its chunk's memory the cheapest
   way the helper knows, with no checks (the least Python must do per element), without
   TensorFlow.
3. ``helper python``: the helper's chunk iterator (copying into chunk arrays, checks), in
   plain Python, without TensorFlow.
4. ``ready chunks``: ``from_generator`` over chunks that already exist (a list of NumPy tuples,
   of the size the helper picks for the element: 4096 small dicts, 1024 images), then the helper's
   ``map(pack)`` and ``rebatch(256)``: TensorFlow's per-chunk hand-over and its per-batch work,
   with no per-element Python at all.
5. ``ready chunks, no rebatch``: the same without ``rebatch`` (chunks are already 256 long),
   and ``..., prefetch``: the same with ``prefetch(1)`` instead of ``rebatch``;
   ``ready chunks of 1024``: chunks of 1024 elements, ``rebatch(256)`` (for images the same as
   ``ready chunks``).
6. ``chunked``: the real ``chunked_from_generator(gen, output_signature=..., batch_size=256)``.
7. ``bound``: ``from_tensor_slices(arrays).batch(256)``, the in-memory bound.
8. ``ready batches``: ``from_tensor_slices`` of arrays already shaped as batches: only the
   consumer's Python loop and the iterator's per-batch cost, no copying into batches.

Stages run each in a fresh process (the allocator change of the first ``from_generator``
iteration slows later native pipelines in the same process). The numbers are medians of a few
passes; the machine's load changes them, the differences between stages matter.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import multiprocessing
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BATCH = 256
ELEMENTS = 40_960  # a multiple of BATCH: every batch is full


def make_element(kind: str) -> tuple[Any, Any, Callable[[int], Any]]:
    """(signature, column arrays, element_at(i)) for the "small" and "large" elements."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    labels = np.arange(ELEMENTS, dtype=np.int32)
    if kind == "small":  # a dict of two small float32 arrays and an int label: 292 bytes
        a = rng.random((ELEMENTS, 36), dtype=np.float32)
        b = rng.random((ELEMENTS, 36), dtype=np.float32)
        signature: Any = {
            "a": tf.TensorSpec((36,), tf.float32),
            "b": tf.TensorSpec((36,), tf.float32),
            "label": tf.TensorSpec((), tf.int32),
        }
        columns: Any = {"a": a, "b": b, "label": labels}
        int_labels = labels.tolist()
        return signature, columns, lambda i: {"a": a[i], "b": b[i], "label": int_labels[i]}
    images = rng.random((ELEMENTS, 28, 28, 3), dtype=np.float32)
    signature = (tf.TensorSpec((28, 28, 3), tf.float32), tf.TensorSpec((), tf.int32))
    return signature, (images, labels), lambda i: (images[i], labels[i])


def generator_fn(element_at: Callable[[int], Any]) -> Callable[[], Iterator[Any]]:
    def generate() -> Iterator[Any]:
        for index in range(ELEMENTS):
            yield element_at(index)

    return generate


def helper_chunks(
    signature: Any, generate: Callable[[], Iterator[Any]], size: int | None = None
) -> Callable[[], Any]:
    """The helper's Python chunk iterator (private ``helpers._chunks``), as a function to call.

    ``size`` defaults to the chunk size ``chunked_from_generator(batch_size=256)`` picks.
    """
    from helpers import _chunks

    chunk_size = size or _chunks.auto_chunk_size(signature, BATCH)
    plan = _chunks.Plan(signature, chunk_size)
    return lambda: _chunks.ChunkIterator(plan, iter(generate()))


def timed(passes: int, run: Callable[[], int]) -> tuple[float, float]:
    """Median wall-clock and CPU (all threads) µs per element over ``passes`` runs, after a warm-up.

    CPU time counts what the work costs whatever else runs on the machine; wall-clock time is
    what a user waits, and on a loaded machine it includes waiting for a core.
    """
    run()
    wall, cpu = [], []
    for _ in range(passes):
        start, start_cpu = time.perf_counter(), time.process_time()
        count = run()
        cpu.append((time.process_time() - start_cpu) / count * 1e6)
        wall.append((time.perf_counter() - start) / count * 1e6)
    return statistics.median(wall), statistics.median(cpu)


def consume(dataset: Any) -> int:
    count = 0
    for batch in dataset:
        count += len(next(iter(batch.values())) if isinstance(batch, dict) else batch[0])
    return count


def consume_python(make_iterable: Callable[[], Any], per_item: int) -> int:
    count = 0
    for _ in make_iterable():
        count += per_item
    return count


def stage(name: str, kind: str, passes: int, seconds: float) -> tuple[float, float]:
    """Runs one stage: (wall, CPU) µs per element, or just runs for ``seconds`` if given."""
    import tensorflow as tf

    from helpers import _chunks, pipelines

    signature, columns, element_at = make_element(kind)
    generate = generator_fn(element_at)
    if name == "generator":
        return timed(passes, lambda: consume_python(generate, 1))
    if name == "plain copy":
        return timed(passes, lambda: plain_copy(signature, generate))
    if name == "helper python":
        chunks = helper_chunks(signature, generate)
        return timed(passes, lambda: sum(len(chunk[0]) for chunk in chunks()))
    if name.startswith("ready chunks"):
        size = 4 * BATCH if name.startswith("ready chunks of 1024") else BATCH
        if name == "ready chunks":  # the size the helper picks for this element
            size = _chunks.auto_chunk_size(signature, BATCH)
        ready = list(helper_chunks(signature, generate, size)())
        plan = _chunks.Plan(signature, size)
        dataset = tf.data.Dataset.from_generator(
            lambda: iter(ready), output_signature=plan.chunk_signature
        ).map(plan.pack)
        if name in ("ready chunks", "ready chunks of 1024"):
            dataset = dataset.rebatch(BATCH)
        elif name.endswith("prefetch"):
            dataset = dataset.prefetch(1)
    elif name == "chunked":
        dataset = pipelines.chunked_from_generator(
            generate, output_signature=signature, batch_size=BATCH
        )
    elif name == "bound":
        dataset = tf.data.Dataset.from_tensor_slices(columns).batch(BATCH)
    elif name == "ready batches":
        batches = tf.nest.map_structure(lambda x: x.reshape(-1, BATCH, *x.shape[1:]), columns)
        dataset = tf.data.Dataset.from_tensor_slices(batches)
    else:
        raise ValueError(f"unknown stage {name!r}")
    if seconds:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            consume(dataset)
        return (0.0, 0.0)
    return timed(passes, lambda: consume(dataset))


def stage_in_child(name: str, kind: str, passes: int, connection: Any) -> None:
    try:
        connection.send(stage(name, kind, passes, 0.0))
    except AttributeError as error:  # private helper API changed
        print(f"{name}, {kind}: skipped ({error})", file=sys.stderr)
        connection.send((math.nan, math.nan))
    connection.close()


STAGES = ["generator", "plain copy", "helper python", "ready chunks", "ready chunks, no rebatch"]
STAGES += ["ready chunks, no rebatch, prefetch", "ready chunks of 1024", "chunked", "bound"]
STAGES += ["ready batches"]


def plain_copy(signature: Any, generate: Callable[[], Iterator[Any]]) -> int:
    """The least Python can do per element: copy each leaf into its chunk's memory, unchecked.

    Each leaf is copied the cheapest way the helper knows: scalars appended to a list (converted
    once per chunk), small arrays (up to 1 KB) written to a reused byte stream (copied into the
    chunk array once per chunk), larger ones assigned to their row of the chunk array. The chunk
    has as many rows as the helper's (a smaller one would stay in the CPU's cache and look
    faster than the helper could ever be: 0.3 µs per 28x28x3 element, 256 rows vs 1,024).
    """
    import tensorflow as tf

    from helpers import _chunks

    size = _chunks.auto_chunk_size(signature, BATCH)
    specs = tf.nest.flatten(signature)
    keys = sorted(signature) if isinstance(signature, dict) else range(len(specs))
    columns = [(key, *_plain_column(spec, size)) for key, spec in zip(keys, specs, strict=True)]
    count = row = 0
    for element in generate():
        for key, buffer, write, _ in columns:
            if write is None:
                buffer[row] = element[key]
            else:
                write(element[key])
        row += 1
        if row == size:  # a chunk is full: TensorFlow would take it here
            for _, _, _, hand_over in columns:
                hand_over()
            count += row
            row = 0
    return count + row


def _plain_column(spec: Any, size: int) -> tuple[Any, Any, Callable[[], None]]:
    """A leaf's chunk array, its per-element write (None: assign the row) and its hand-over."""
    import io

    import numpy as np

    from helpers import _chunks

    dtype = np.dtype(spec.dtype.as_numpy_dtype)
    buffer = np.empty((size, *spec.shape), dtype)
    if spec.shape.rank == 0:
        values: list[Any] = []

        def convert() -> None:
            buffer[:] = np.array(values, dtype)
            values.clear()

        return buffer, values.append, convert
    if buffer[0].nbytes > _chunks._SMALL_ROW_BYTES:
        return buffer, None, lambda: None
    stream = io.BytesIO()

    def copy_out() -> None:
        with stream.getbuffer() as view:
            np.copyto(buffer.reshape(-1).view(np.uint8), np.frombuffer(view, np.uint8))
        stream.seek(0)

    return buffer, stream.write, copy_out


def profile_helper(kind: str) -> str:
    """cProfile of the helper's Python chunk generator (no TensorFlow), top functions."""
    signature, _, element_at = make_element(kind)
    chunks = helper_chunks(signature, generator_fn(element_at))
    consume_python(chunks, BATCH)  # warm-up
    profiler = cProfile.Profile()
    profiler.enable()
    consume_python(chunks, BATCH)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--element", choices=["small", "large"], nargs="+")
    parser.add_argument("--stage", choices=STAGES, nargs="+")
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per stage")
    parser.add_argument("--seconds", type=float, default=0.0, help="loop one stage this long")
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, os.getcwd())  # as the forkserver's processes do: helpers from here first
    kinds = args.element or ["small", "large"]
    names = args.stage or STAGES
    if args.seconds:
        print(f"pid {os.getpid()}", file=sys.stderr, flush=True)
        stage(names[0], kinds[0], 1, args.seconds)
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["numpy", "tensorflow", "helpers.pipelines"])
    print(f"load average before {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    cells = [(name, kind) for name in names for kind in kinds]
    values: dict[tuple[str, str], list[tuple[float, float]]] = {cell: [] for cell in cells}
    for _ in range(args.rounds):  # rounds alternate the stages: load changes hit them all
        for name, kind in cells:
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=stage_in_child, args=(name, kind, args.passes, sender))
            process.start()
            sender.close()
            values[name, kind].append(receiver.recv())
            process.join()
    print(f"load average after {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    header = " | ".join(f"{kind}: wall µs/el | {kind}: CPU µs/el" for kind in kinds)
    print(f"| stage | {header} |")
    print("| --- |" + " ---: |" * 2 * len(kinds))
    for name in names:
        row = []
        for kind in kinds:
            walls, cpus = zip(*values[name, kind], strict=True)
            row += [f"{statistics.median(walls):.2f}", f"{statistics.median(cpus):.2f}"]
        print(f"| {name} | " + " | ".join(row) + " |")
    if args.cprofile:
        for kind in kinds:
            print(f"\ncProfile of the helper's chunk generator, {kind} element:")
            print(profile_helper(kind))


if __name__ == "__main__":
    main()
