"""Unit tests for helpers.plotting (Agg backend, no display needed)."""

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from helpers import plotting


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


class _FakeTensor:
    """Stands in for a tf.Tensor: only has .numpy()."""

    def __init__(self, array):
        self._array = array

    def numpy(self):
        return self._array


class _FakeHistory:
    """Stands in for keras.callbacks.History: only has .history."""

    def __init__(self, history):
        self.history = history


def _visible(axes):
    return [ax for ax in np.ravel(axes) if ax.get_visible()]


# show_images ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(5, 8, 8), (5, 8, 8, 1), (5, 8, 8, 3)], ids=["gray", "gray1", "rgb"]
)
def test_show_images_grid_shapes(shape):
    images = np.random.default_rng(0).random(shape)
    axes = plotting.show_images(images, ncols=2)
    assert axes.shape == (3, 2)
    assert len(_visible(axes)) == 5
    for ax in _visible(axes):
        assert ax.get_xticks().size == 0 and ax.get_yticks().size == 0


def test_show_images_titles_from_class_names_int_labels():
    images = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    axes = plotting.show_images(
        images, np.array([2, 0, 1]), class_names={0: "circle", 1: "square", 2: "cross"}
    )
    assert [ax.get_title() for ax in _visible(axes)] == ["cross", "circle", "square"]
    assert axes.shape == (1, 3)


def test_show_images_one_hot_labels_sequence_names_and_tensor_like():
    one_hot = np.eye(3, dtype=np.float32)[[1, 2]]
    axes = plotting.show_images(
        _FakeTensor(np.full((2, 4, 4), 0.5, dtype=np.float32)),
        _FakeTensor(one_hot),
        class_names=["a", "b", "c"],
    )
    assert [ax.get_title() for ax in _visible(axes)] == ["b", "c"]


def test_show_images_without_names_uses_index_and_figure_title():
    axes = plotting.show_images(np.zeros((2, 4, 4)), [7, 3], title="A batch")
    assert [ax.get_title() for ax in _visible(axes)] == ["7", "3"]
    assert axes[0, 0].figure.get_suptitle() == "A batch"


def test_show_images_accepts_nested_lists_and_no_labels():
    axes = plotting.show_images([[[0, 255], [128, 64]]])
    assert axes.shape == (1, 1)
    assert axes[0, 0].get_title() == ""


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((4, 4)), r"expected a batch shaped .* got shape \(4, 4\)"),
        (np.zeros((2, 4, 4, 2)), r"got shape \(2, 4, 4, 2\)"),
        (np.zeros((1, 2, 4, 4, 3)), r"got shape \(1, 2, 4, 4, 3\)"),
        (np.zeros((0, 4, 4)), "empty batch"),
        (np.full((1, 4, 4), 2.0), r"expected float values in \[0, 1\], got values in \[2, 2\]"),
        (np.full((1, 4, 4), -0.5), r"got values in \[-0.5, -0.5\]"),
        (np.full((1, 4, 4), 300), r"expected integer values in \[0, 255\], got .*300"),
    ],
)
def test_show_images_bad_images(images, message):
    with pytest.raises(ValueError, match=message):
        plotting.show_images(images)


def test_show_images_non_numeric_images():
    with pytest.raises(TypeError, match="images: expected a numeric array"):
        plotting.show_images(np.array([["a"]]))


def test_show_images_label_count_mismatch():
    with pytest.raises(ValueError, match=r"expected 3 labels .* got 2"):
        plotting.show_images(np.zeros((3, 4, 4)), [0, 1])


def test_show_images_bad_label_rank_and_fraction():
    with pytest.raises(ValueError, match=r"labels: .* got shape \(3, 1, 1\)"):
        plotting.show_images(np.zeros((3, 4, 4)), np.zeros((3, 1, 1)))
    with pytest.raises(ValueError, match="fractional value"):
        plotting.show_images(np.zeros((2, 4, 4)), [0.5, 1.0])


@pytest.mark.parametrize("ncols", [0, -1, np.int64(0)])
def test_show_images_bad_ncols(ncols):
    with pytest.raises(ValueError, match=re.escape(f"ncols: expected an int >= 1, got {ncols!r}")):
        plotting.show_images(np.zeros((2, 4, 4)), ncols=ncols)


# plot_history --------------------------------------------------------------------------------

HISTORY = {
    "accuracy": [0.3, 0.6, 0.8],
    "loss": [1.2, 0.8, 0.5],
    "val_accuracy": [0.35, 0.55, 0.75],
    "val_loss": [1.1, 0.9, 0.6],
}


def test_plot_history_one_panel_per_metric_train_and_val():
    axes = plotting.plot_history(HISTORY)
    assert len(axes) == 2
    assert [ax.get_title() for ax in axes] == ["accuracy", "loss"]
    for ax in axes:
        assert ax.get_xlabel() == "epoch"
        assert ax.get_ylabel() == ax.get_title()
        labels = [line.get_label() for line in ax.get_lines()]
        assert labels == ["train", "validation"]
        np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(axes[1].get_lines()[1].get_ydata(), HISTORY["val_loss"])


def test_plot_history_accepts_history_object_and_metric_selection():
    axes = plotting.plot_history(_FakeHistory(HISTORY), metrics=["loss"])
    assert len(axes) == 1
    assert axes[0].get_title() == "loss"


def test_plot_history_without_validation():
    axes = plotting.plot_history({"loss": np.array([3.0, 2.0])})
    assert [line.get_label() for line in axes[0].get_lines()] == ["train"]


def test_plot_history_bad_inputs():
    with pytest.raises(TypeError, match=r"expected a keras History .* got list"):
        plotting.plot_history([1, 2, 3])
    with pytest.raises(ValueError, match="at least one metric"):
        plotting.plot_history({})
    with pytest.raises(ValueError, match="at least one metric"):
        plotting.plot_history({"loss": []})
    with pytest.raises(ValueError, match=r"expected one of \['accuracy', 'loss'\], got 'auc'"):
        plotting.plot_history(HISTORY, metrics=["auc"])
    with pytest.raises(ValueError, match="expected at least one metric name"):
        plotting.plot_history(HISTORY, metrics=[])
    with pytest.raises(ValueError, match=r"history\['val_loss'\]: expected 2 values .* got 1"):
        plotting.plot_history({"loss": [1.0, 0.5], "val_loss": [1.0]})


# plot_throughput -----------------------------------------------------------------------------


def _bar_texts(ax):
    return [text.get_text() for text in ax.texts]


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (850, "850/s"),
        (12_345, "12.3k/s"),
        (4_560_000, "4.56M/s"),
        (2.5e9, "2.5G/s"),
        (0.5, "0.5/s"),
    ],
)
def test_format_rate(rate, text):
    assert plotting.format_rate(rate) == text


def test_plot_throughput_bars_labels_and_bound_ratio():
    rates = {"from_tensor_slices": 1_000_000.0, "generator": 41_000.0, "chunked": 250_000.0}
    ax = plotting.plot_throughput(rates, bound_name="from_tensor_slices", title="Pipelines")
    assert len(ax.patches) == 3
    assert ax.get_title() == "Pipelines"
    assert ax.get_xlabel() == "elements / s"
    assert ax.get_ylabel() == "pipeline"
    assert _bar_texts(ax) == [
        "1M/s (bound)",
        "41k/s · 4.1 % of bound",
        "250k/s · 25.0 % of bound",
    ]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(rates)
    widths = [patch.get_width() for patch in ax.patches]
    assert widths == list(rates.values())


def test_plot_throughput_log_scale_without_bound_on_given_axes():
    _, given = plt.subplots()
    ax = plotting.plot_throughput({"a": 10.0, "b": 1e6}, ax=given, log=True)
    assert ax is given
    assert ax.get_xscale() == "log"
    assert "log" in ax.get_xlabel()
    assert _bar_texts(ax) == ["10/s", "1M/s"]


def test_plot_throughput_ratio_above_bound():
    ax = plotting.plot_throughput({"bound": 100.0, "faster": 250.0}, bound_name="bound")
    assert _bar_texts(ax)[1] == "250/s · 250 % of bound"


def test_plot_throughput_bad_inputs():
    with pytest.raises(TypeError, match=r"expected a mapping .* got list"):
        plotting.plot_throughput([1.0, 2.0])
    with pytest.raises(ValueError, match="got an empty mapping"):
        plotting.plot_throughput({})
    with pytest.raises(ValueError, match=r"rates\['a'\]: expected a finite, non-negative .* -1"):
        plotting.plot_throughput({"a": -1.0})
    with pytest.raises(ValueError, match=r"rates\['a'\]: expected a finite"):
        plotting.plot_throughput({"a": float("nan")})
    with pytest.raises(ValueError, match=r"rates\['a'\]: expected a positive"):
        plotting.plot_throughput({"a": 0.0}, log=True)
    with pytest.raises(ValueError, match=r"bound_name: expected one of \['a'\], got 'b'"):
        plotting.plot_throughput({"a": 1.0}, bound_name="b")
    with pytest.raises(ValueError, match="expected a positive bound"):
        plotting.plot_throughput({"a": 0.0, "b": 1.0}, bound_name="a")


# plot_timeline -------------------------------------------------------------------------------


def test_plot_timeline_lanes_in_first_seen_order():
    events = [
        ("generator", 0.0, 0.5),
        ("model", 0.5, 0.2),
        ("generator", 0.5, 0.5),
        ("map", 0.1, 0.05),
    ]
    ax = plotting.plot_timeline(events, title="Steps")
    assert ax.get_title() == "Steps"
    assert ax.get_xlabel() == "time (s)"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["generator", "model", "map"]
    assert len(ax.patches) == 4
    generator_bars = [p for p in ax.patches if abs(p.get_y() + p.get_height() / 2) < 1e-9]
    assert sorted((p.get_x(), p.get_width()) for p in generator_bars) == [(0.0, 0.5), (0.5, 0.5)]
    low, high = ax.get_xlim()
    assert low == 0.0 and high >= 1.0


def test_plot_timeline_on_given_axes_and_zero_duration():
    _, given = plt.subplots()
    ax = plotting.plot_timeline([("a", 2.0, 0.0)], ax=given)
    assert ax is given
    assert len(ax.patches) == 1


def test_plot_timeline_bad_inputs():
    with pytest.raises(ValueError, match="expected at least one"):
        plotting.plot_timeline([])
    with pytest.raises(TypeError, match=r"events: expected a sequence .* got str"):
        plotting.plot_timeline("abc")
    with pytest.raises(TypeError, match=r"events\[1\]: expected \(lane, start_s, duration_s\)"):
        plotting.plot_timeline([("a", 0.0, 1.0), ("b", 1.0)])
    with pytest.raises(ValueError, match=r"events\[0\]: expected duration_s >= 0, got -0.1"):
        plotting.plot_timeline([("a", 0.0, -0.1)])
    with pytest.raises(ValueError, match=r"events\[0\]: expected finite times"):
        plotting.plot_timeline([("a", float("inf"), 1.0)])


def test_module_does_not_import_tensorflow(run_python):
    result = run_python("import sys, helpers.plotting; print('tensorflow' in sys.modules)")
    assert (result.returncode, result.stdout.strip()) == (0, "False"), result.stderr


# regressions from the review ---------------------------------------------------------------


def test_plot_history_draws_validation_at_its_epochs():
    history = {"loss": [4.0, 3.0, 2.0, 1.5, 1.0, 0.8], "val_loss": [3.5, 1.8, 1.1]}
    axes = plotting.plot_history(history, validation_freq=2)
    val_line = axes[0].get_lines()[1]
    np.testing.assert_array_equal(val_line.get_xdata(), [2, 4, 6])
    np.testing.assert_allclose(val_line.get_ydata(), history["val_loss"])
    axes = plotting.plot_history(history, validation_freq=[1, 5, 6, 9])
    np.testing.assert_array_equal(axes[0].get_lines()[1].get_xdata(), [1, 5, 6])


def test_plot_history_shorter_validation_without_frequency_says_what_to_do():
    history = {"loss": [4.0, 3.0, 2.0, 1.5], "val_loss": [3.5, 1.8]}
    with pytest.raises(ValueError, match=r"expected 4 values .* got 2; if model.fit ran with"):
        plotting.plot_history(history)
    with pytest.raises(ValueError, match=r"validation_freq=3\), got 2$"):
        plotting.plot_history(history, validation_freq=3)
    with pytest.raises(ValueError, match="validation_freq: expected an int >= 1, got 0"):
        plotting.plot_history(history, validation_freq=0)
    for bad in (True, "2", 1.5, None):
        with pytest.raises(TypeError, match="validation_freq: expected a positive int or a seq"):
            plotting.plot_history(history, validation_freq=bad)
    assert len(plotting.plot_history(history, validation_freq=np.int64(2))) == 1


@pytest.mark.parametrize("ncols", [True, False, None, "4", 2.5])
def test_show_images_refuses_bool_and_non_int_ncols(ncols):
    got = f"{type(ncols).__name__} {ncols!r}"
    with pytest.raises(TypeError, match=f"ncols: expected an int, got {re.escape(got)}"):
        plotting.show_images(np.zeros((2, 4, 4)), ncols=ncols)


def test_show_images_accepts_numpy_int_ncols():
    assert plotting.show_images(np.zeros((4, 4, 4)), ncols=np.int64(2)).shape == (2, 2)


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ([0.0, np.nan], r"got NaN \(nan\) at index 1"),
        ([np.inf, 1.0], r"got an infinite value \(inf\) at index 0"),
        ([0.0, 1.5], r"got a fractional value \(1.5\) at index 1"),
    ],
)
def test_show_images_names_nan_inf_and_fractional_labels(labels, problem):
    with pytest.raises(ValueError, match=f"labels: expected whole-number class indices, {problem}"):
        plotting.show_images(np.zeros((2, 4, 4)), labels)
