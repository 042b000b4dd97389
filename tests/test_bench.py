from __future__ import annotations

import itertools
import threading

import matplotlib
import numpy as np
import pytest
import tensorflow as tf

from helpers import bench

matplotlib.use("Agg")


class FakeClock:
    """Advances by ``tick`` seconds on every reading, so durations are exact and known."""

    def __init__(self, tick: float = 1.0) -> None:
        self.tick = tick
        self.now = 100.0

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


# --------------------------------------------------------------------------- measure_throughput


def test_per_element_dataset_counts_every_element():
    result = bench.measure_throughput(
        tf.data.Dataset.range(2500), repetitions=3, warmup=0, clock=FakeClock()
    )
    assert result.counts == (2500, 2500, 2500)
    assert result.seconds == (1.0, 1.0, 1.0)  # one tick between start and end readings
    assert result.elements_per_s == 2500.0
    assert result.elements == 2500


def test_batched_dataset_counts_leading_dims_including_partial_batch():
    dataset = tf.data.Dataset.from_tensor_slices((np.zeros((10, 3)), np.arange(10))).batch(4)
    result = bench.measure_throughput(dataset, batched=True, repetitions=2, clock=FakeClock())
    assert result.counts == (10, 10)


def test_batched_dict_and_ragged_batches_are_counted():
    dataset = tf.data.Dataset.from_tensor_slices({"x": tf.ragged.constant([[1], [2, 3], []])})
    result = bench.measure_throughput(dataset.batch(2), batched=True, repetitions=1)
    assert result.counts == (3,)


def test_per_element_variable_shapes_are_counted():
    dataset = tf.data.Dataset.range(1, 50).map(lambda i: (tf.range(i), tf.strings.as_string(i)))
    assert bench.measure_throughput(dataset, repetitions=1).counts == (49,)


def test_per_element_ragged_and_sparse_elements_are_counted():
    ragged = tf.data.Dataset.range(1, 8).map(
        lambda i: tf.RaggedTensor.from_row_lengths(tf.range(i), [i])
    )
    sparse = tf.data.Dataset.range(1, 6).map(lambda i: tf.sparse.from_dense(tf.range(i)))
    assert bench.measure_throughput(ragged, repetitions=1).counts == (7,)
    assert bench.measure_throughput(sparse, repetitions=1).counts == (5,)


def test_per_element_dataset_passed_as_batched_is_refused():
    images = tf.data.Dataset.from_tensor_slices(np.zeros((100, 28, 28, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \(28, 28, 3\) at <root>.*pass batched=False"):
        bench.measure_throughput(images, batched=True, repetitions=1)
    with pytest.raises(ValueError, match="dataset 'images'"):
        bench.compare_throughputs({"images": images}, batched=True)


def test_fixed_size_batches_are_refused_with_a_hint():
    batches = tf.data.Dataset.range(10).batch(2, drop_remainder=True)
    with pytest.raises(ValueError, match="drop_remainder"):
        bench.measure_throughput(batches, batched=True, repetitions=1)


def test_batch_with_a_scalar_component_is_refused_clearly():
    dataset = tf.data.Dataset.range(10).batch(4).map(lambda b: {"a": tf.size(b), "b": b})
    with pytest.raises(ValueError, match=r"scalar at \['a'\].*pass batched=False"):
        bench.measure_throughput(dataset, batched=True, repetitions=1)
    with pytest.raises(ValueError, match="scalar"):
        bench.check_batched((tf.TensorSpec((None, 3)), tf.TensorSpec(())))


def test_check_batched_accepts_batches_of_every_kind():
    bench.check_batched(
        {
            "dense": tf.TensorSpec((None, 3)),
            "ragged": tf.RaggedTensorSpec((None, None), tf.int32),
            "sparse": tf.SparseTensorSpec((None, 4), tf.float32),
            "unknown": tf.TensorSpec(None, tf.float32),
        }
    )


def test_median_of_rates_with_uneven_durations():
    readings = iter([0.0, 1.0, 10.0, 14.0, 20.0, 22.0])  # durations 1, 4, 2
    result = bench.measure_throughput(
        tf.data.Dataset.range(8), repetitions=3, warmup=0, clock=lambda: next(readings)
    )
    assert result.rates == (8.0, 2.0, 4.0)
    assert result.elements_per_s == 4.0


def test_warmup_passes_are_not_timed():
    calls = []

    def gen():
        calls.append(1)
        yield from range(5)

    dataset = tf.data.Dataset.from_generator(gen, output_signature=tf.TensorSpec((), tf.int64))
    clock = FakeClock()
    result = bench.measure_throughput(dataset, repetitions=2, warmup=3, clock=clock)
    assert len(calls) == 5
    assert len(result.seconds) == 2


def test_step_runs_once_per_item_like_a_training_loop():
    seen = []
    dataset = tf.data.Dataset.range(7).batch(3)
    result = bench.measure_throughput(
        dataset, batched=True, repetitions=2, warmup=1, step=seen.append, clock=FakeClock()
    )
    assert result.counts == (7, 7)
    assert len(seen) == 9  # 3 batches x (1 warm-up + 2 timed passes)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"repetitions": 0}, "repetitions >= 1"), ({"warmup": -1}, "warmup >= 0")],
)
def test_bad_repetitions_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bench.measure_throughput(tf.data.Dataset.range(3), **kwargs)


def test_empty_dataset_is_refused():
    with pytest.raises(ValueError, match="yielded no elements"):
        bench.measure_throughput(tf.data.Dataset.range(0), repetitions=1, warmup=0)


def test_compare_throughputs_alternates_and_keeps_order():
    order = []

    def source(name, count):
        def gen():
            order.append(name)
            yield from range(count)

        return tf.data.Dataset.from_generator(gen, output_signature=tf.TensorSpec((), tf.int64))

    datasets = {"b": source("b", 4), "a": source("a", 6)}
    results = bench.compare_throughputs(datasets, rounds=2, warmup=1, clock=FakeClock())
    assert list(results) == ["b", "a"]
    assert order == ["b", "a", "b", "a", "b", "a"]  # warm-ups, then alternating rounds
    assert results["a"].counts == (6, 6)
    assert results["b"].elements_per_s == 4.0


def test_compare_throughputs_refuses_nothing_to_compare():
    with pytest.raises(ValueError, match="at least one dataset"):
        bench.compare_throughputs({})
    with pytest.raises(ValueError, match="rounds=0"):
        bench.compare_throughputs({"a": tf.data.Dataset.range(2)}, rounds=0)


# --------------------------------------------------------------------------- leading_size


def test_leading_size_of_structures():
    assert bench.leading_size((np.zeros((5, 2)), np.zeros(5))) == 5
    assert bench.leading_size({"b": tf.zeros((2, 3)), "a": tf.zeros((4,))}) == 4  # sorted keys
    assert bench.leading_size(tf.ragged.constant([[1], [], [2, 3]])) == 3


def test_leading_size_of_scalar_is_refused():
    with pytest.raises(ValueError, match="pass batched=False"):
        bench.leading_size(tf.constant(3))


# --------------------------------------------------------------------------- Timeline


def test_span_records_relative_start_and_duration():
    timeline = bench.Timeline(clock=FakeClock())  # origin 101
    with timeline.span("step"):  # reads 102 and 103
        pass
    with timeline.span("step"):  # reads 104 and 105
        pass
    assert timeline.events == [("step", 1.0, 1.0), ("step", 3.0, 1.0)]
    assert timeline.busy_seconds("step") == 2.0
    assert timeline.busy_seconds("unknown") == 0.0


def test_span_records_even_when_the_block_raises():
    timeline = bench.Timeline(clock=FakeClock())
    with pytest.raises(RuntimeError), timeline.span("step"):
        raise RuntimeError("boom")
    assert [lane for lane, _, _ in timeline.events] == ["step"]


def test_wrap_generator_records_each_element_and_keeps_them():
    timeline = bench.Timeline(clock=FakeClock())

    def gen(count):
        yield from range(count)

    traced = timeline.wrap_generator(gen, "producer")
    assert list(traced(3)) == [0, 1, 2]
    events = timeline.events
    assert len(events) == 3
    assert {lane for lane, _, _ in events} == {"producer"}
    assert all(duration == 1.0 for _, _, duration in events)


def test_wrap_generator_works_inside_from_generator():
    timeline = bench.Timeline()
    dataset = tf.data.Dataset.from_generator(
        timeline.wrap_generator(lambda: iter(range(4))),
        output_signature=tf.TensorSpec((), tf.int64),
    )
    assert list(dataset.as_numpy_iterator()) == [0, 1, 2, 3]
    assert len(timeline.events) == 4
    assert all(start >= 0 and duration >= 0 for _, start, duration in timeline.events)


def test_events_are_sorted_and_lanes_in_order_of_appearance():
    timeline = bench.Timeline(clock=lambda: 0.0)
    timeline.record("b", 5.0, 6.0)
    timeline.record("a", 1.0, 2.0)
    timeline.record("b", 3.0, 3.5)
    assert [start for _, start, _ in timeline.events] == [1.0, 3.0, 5.0]
    assert timeline.lanes() == ["a", "b"]


def test_overlap_seconds():
    timeline = bench.Timeline(clock=lambda: 0.0)
    for start, end in [(0, 2), (1, 3), (5, 6)]:  # merged: 0-3, 5-6
        timeline.record("producer", start, end)
    for start, end in [(2, 5.5), (7, 8)]:
        timeline.record("step", start, end)
    assert timeline.overlap_seconds("producer", "step") == pytest.approx(1.5)
    assert timeline.overlap_seconds("step", "producer") == pytest.approx(1.5)
    assert timeline.overlap_seconds("producer", "missing") == 0.0


def test_record_refuses_negative_duration():
    timeline = bench.Timeline()
    with pytest.raises(ValueError, match=r"lane 'x' ends at 1\.0 before its start 2\.0"):
        timeline.record("x", 2.0, 1.0)


def test_reset_forgets_events_and_moves_origin():
    clock = FakeClock()
    timeline = bench.Timeline(clock=clock)
    with timeline.span("a"):
        pass
    timeline.reset()
    assert timeline.events == []
    with timeline.span("a"):
        pass
    assert timeline.events == [("a", 1.0, 1.0)]


def test_recording_from_threads_loses_nothing():
    timeline = bench.Timeline(clock=itertools.count().__next__)

    def work(lane):
        for _ in range(200):
            with timeline.span(lane):
                pass

    threads = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(timeline.events) == 800
    assert sorted(timeline.lanes()) == ["t0", "t1", "t2", "t3"]


def test_events_plot_with_plot_timeline():
    plotting = pytest.importorskip("helpers.plotting")
    timeline = bench.Timeline(clock=FakeClock(0.5))
    for lane in ["generator", "training step", "generator"]:
        with timeline.span(lane):
            pass
    ax = plotting.plot_timeline(timeline.events, title="test")
    assert ax.get_title() == "test"
    matplotlib.pyplot.close("all")


# ------------------------------------------------------------- benchmarks/bench_generators.py
# The benchmark script is not part of the package; its correctness check decides whether a row of
# the published table counts, so the check itself is tested here (no timing is involved).


def _load_benchmark():
    import importlib.util
    import pathlib
    import sys

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_generators.py"
    if "bench_generators" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_generators", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_generators"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["bench_generators"]


def _source(element_name, count):
    script = _load_benchmark()
    element = script.ELEMENTS[element_name]()
    return script.Source(element, element.make_pool(element.pool_rows), count, None)


@pytest.mark.parametrize("element_name", ["scalar int", "small dict", "28x28x3 f32", "tokens"])
@pytest.mark.parametrize("variant", ["bound", "naive", "batch_idiom"])
def test_benchmark_check_accepts_every_element_through_correct_pipelines(element_name, variant):
    script = _load_benchmark()
    source = _source(element_name, 2 * script.BATCH + 5)
    assert script.check(getattr(script, variant)(source), source) == "ok"


@pytest.mark.parametrize("accepted", [1, 0])
def test_benchmark_bound_with_kept_memory_sets_mallopt_or_fails(monkeypatch, accepted):
    import ctypes

    script = _load_benchmark()
    calls = []

    class FakeLibc:
        def mallopt(self, option, value):
            calls.append((option, value))
            return accepted

    monkeypatch.setattr(
        ctypes, "CDLL", lambda name: FakeLibc()
    )  # the test process keeps its malloc
    source = _source("small dict", 300)
    if not accepted:
        with pytest.raises(RuntimeError, match="mallopt refused"):
            script.bound_kept_memory(source)
        return
    assert script.check(script.bound_kept_memory(source), source) == "ok"
    assert calls == [(-3, 1 << 30), (-1, 2**31 - 1)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD


def test_benchmark_bound_rows_are_the_in_memory_pipelines(monkeypatch):
    script = _load_benchmark()
    monkeypatch.setattr(script.platform, "libc_ver", lambda: ("glibc", "2.36"))
    bounds = [name for name, (kind, _) in script.variants("pure Python").items() if kind == "bound"]
    assert bounds == [
        script.BOUND,
        f"{script.BOUND} + prefetch",
        f"{script.BOUND}, malloc keeps memory",
    ]
    monkeypatch.setattr(script.platform, "libc_ver", lambda: ("", ""))
    assert f"{script.BOUND}, malloc keeps memory" not in script.variants("pure Python")
    assert all(kind != "bound" for kind, _ in script.variants("I/O-like").values())


def test_benchmark_check_accepts_shards_in_any_order():
    script = _load_benchmark()
    source = _source("tokens", 300)
    assert script.check(script.interleave_idiom(3)(source), source) == "ok"


def test_benchmark_check_finds_a_missing_element():
    script = _load_benchmark()
    source = _source("small dict", 300)
    short = script.Source(source.element, source.pool, 299, None)
    message = script.check(script.bound(short), source)
    assert message == "299 elements, expected 300: 1 missing or different, 0 unexpected"


def test_benchmark_check_finds_a_changed_value_and_a_changed_dtype():
    script = _load_benchmark()
    source = _source("28x28x3 f32", 40)
    batches = [(images, labels + 1) for images, labels in script.bound(source)]
    assert "40 missing or different, 40 unexpected" in script.check(batches, source)
    as_int64 = [(images, tf.cast(labels, tf.int64)) for images, labels in script.bound(source)]
    assert "40 missing or different" in script.check(as_int64, source)


def test_benchmark_check_finds_wrong_batch_sizes():
    script = _load_benchmark()
    source = _source("scalar int", 600)
    batches = tf.data.Dataset.range(600).batch(100)
    assert script.check(batches, source).startswith("batch sizes [100, 100, 100")


def test_benchmark_split_rows_of_ragged_and_dict_batches():
    script = _load_benchmark()
    ragged = tf.ragged.constant([[1, 2], [], [3]], dtype=tf.int32)
    rows = script.split_rows(ragged)
    assert [len(row[0]) for row in rows] == [3 + 8, 3, 3 + 4]  # dtype tag '<i4' + 4 bytes each
    rows = script.split_rows({"b": tf.constant([1.0, 2.0]), "a": tf.constant([7, 8])})
    assert rows[1] == (b"<i4" + np.int32(8).tobytes(), b"<f4" + np.float32(2).tobytes())


def test_benchmark_table_and_verdicts_from_rows():
    script = _load_benchmark()

    def row(name, kind, rate, workload="pure Python", check="ok"):
        return {
            "name": name,
            "element": "small dict",
            "workload": workload,
            "kind": kind,
            "elements_per_s": rate,
            "ratio_to_bound": rate / 200_000,
            "check": check,
            "error": "",
        }

    rows = [
        row(script.BOUND, "bound", 200_000),
        row("chunked_from_generator(batch_size=256)", "helper", 90_000),
        row("Grain, no prefetch", "peer", 60_000, check="1 elements, expected 2"),
        row("sharded_from_generator, 16 shards", "helper", 20_000, workload="I/O-like"),
    ]
    text = script.tables(rows)
    assert "| chunked_from_generator(batch_size=256) | 90.0k (45%) |" in text
    assert "| Grain, no prefetch | 60.0k (30%) WRONG |" in text
    io_table = text.split("I/O-like: ")[1].splitlines()
    assert io_table[4] == f"| {script.BOUND} | 200k (100%) |"  # the first row: the bound
    assert io_table[5] == "| sharded_from_generator, 16 shards | 20.0k (10%) |"
    lines = script.verdicts(rows)
    assert "chunked >= 50 % of the bound, small dict: 45% MISSED" in lines
    assert any("best helper / best peer = 1.50" in line and line.endswith("ok") for line in lines)
    assert "correctness: 3 cells checked ok, 1 wrong or failed" in lines


def test_benchmark_dataset_sizes_are_whole_pools():
    script = _load_benchmark()
    for make in script.ELEMENTS.values():
        element = make()
        assert element.pool_rows % script.BATCH == 0
        count = script.count_for(script.QUICK, element)
        assert count % element.pool_rows == 0
        assert count >= 3_000_000


def test_benchmark_rows_without_grain_installed(monkeypatch):
    script = _load_benchmark()
    monkeypatch.setattr(script, "HAVE_GRAIN", False)
    for workload in script.WORKLOADS:
        names = list(script.variants(workload))
        assert names and not any("Grain" in name for name in names)
    monkeypatch.setattr(script, "HAVE_GRAIN", True)
    assert any("Grain" in name for name in script.variants("I/O-like"))


def test_throughput_is_measured_with_a_python_loop_not_dataset_reduce(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("consume as users do, with an iterator")

    monkeypatch.setattr(tf.data.Dataset, "reduce", refuse)
    elements = tf.data.Dataset.range(10)
    assert bench.measure_throughput(elements, repetitions=1, warmup=0).elements == 10
    batches = tf.data.Dataset.range(10).batch(4)
    assert bench.measure_throughput(batches, batched=True, repetitions=1).elements == 10
