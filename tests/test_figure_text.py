"""A figure's text form describes it (title, panels, axes, legend): the book's alt text comes from here."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from toolkit import figure_text  # noqa: E402


def test_description_reads_title_panels_axes_and_legend():
    fig, (left, right) = plt.subplots(1, 2)
    left.plot([1, 2], label="clean")
    left.plot([2, 1], label="corrupt")
    left.legend()
    left.set_title("Logit difference")
    left.set_xlabel("layer")
    left.set_ylabel("logit diff")
    right.set_xlabel("position")
    fig.suptitle("Activation patching")
    text = figure_text.describe_figure(fig)
    plt.close(fig)
    assert text == ("Figure: Activation patching. Logit difference; logit diff against layer; "
                    "legend: clean, corrupt | x: position")


def test_an_undescribed_figure_still_says_what_it_is():
    fig, axes = plt.subplots(2, 2)
    text = figure_text.describe_figure(fig)
    plt.close(fig)
    assert text == "Figure: 4 panels"


def test_in_an_ipython_shell_a_figure_displays_as_its_description():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        assert figure_text.register()
        fig, ax = plt.subplots()
        ax.set_title("Residual norm")
        plain = shell.display_formatter.formatters["text/plain"]
        assert plain(fig) == "Figure: a plot. Residual norm"
        plt.close(fig)
    finally:
        InteractiveShell.clear_instance()
