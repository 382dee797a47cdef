import numpy as np
import pytest
from matplotlib.figure import Figure

from tlcourse.viz import plot_digit_grid, plot_history, plot_matrix


def test_plot_digit_grid():
    X = np.random.default_rng(0).random((13, 28, 28))
    fig = plot_digit_grid(X, np.arange(13) % 10, ncols=5, title="t", row_labels=["a", "b", "c"])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 15  # 3 rows x 5 columns, two left empty
    assert fig.axes[0].get_title() == "0"
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        plot_digit_grid(X[0])


def test_plot_history_draws_train_and_validation_curves():
    history = {
        "loss": [1.0, 0.5],
        "accuracy": [0.5, 0.8],
        "val_loss": [1.1, 0.7],
        "val_accuracy": [0.4, 0.7],
    }
    fig = plot_history({"run": history})
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 2
    assert fig.axes[1].get_ylabel() == "accuracy"


def test_plot_matrix_annotates_every_cell():
    fig = plot_matrix(
        np.array([[0.9, 0.5], [0.4, 0.95]]), ["a", "b"], ["x", "y"], xlabel="test", ylabel="train"
    )
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["90.0%", "50.0%", "40.0%", "95.0%"]
    with pytest.raises(ValueError, match="labels need"):
        plot_matrix(np.zeros((2, 3)), ["a", "b"], ["x", "y"], xlabel="", ylabel="")


def test_figures_render_as_png_without_pyplot():
    fig = plot_matrix(np.eye(2), ["a", "b"], ["x", "y"], xlabel="", ylabel="")
    png = fig._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
