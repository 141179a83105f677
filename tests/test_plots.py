"""Tests for toolkit/plots.py: each figure on small synthetic input, the HTML viewer's escaping and ranking, bad input."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display in tests

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

import toolkit as tk
from toolkit import plots


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _labelled(ax):
    return ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


# ---------------------------------------------------------------- top-activating contexts
def _index(tokens_per_text):
    rows = [(t, p, tok) for t, toks in enumerate(tokens_per_text) for p, tok in enumerate(toks)]
    return pd.DataFrame(rows, columns=["text_id", "position", "token"])


class _Tokenizer:
    """Ids are positions in a small vocabulary; tokens read as themselves."""

    vocab = ["the", " cat", " sat", "<script>alert(1)</script>", " & ", "\n", " dog"]

    def convert_ids_to_tokens(self, ids):
        return [self.vocab[i] for i in ids]

    def convert_tokens_to_string(self, tokens):
        return "".join(tokens)


def test_top_contexts_rank_escape_and_underline_the_peak():
    index = _index([["the", " cat", " sat"], ["the", "<script>alert(1)</script>", " dog"], ["the", " & ", " dog"]])
    values = np.zeros((len(index), 3))
    values[4, 1] = 9.0   # planted maximum: text 1, the <script> token
    values[8, 1] = 2.0   # runner-up: text 2, " dog"
    values[1, 1] = 1.0
    out = tk.plots.top_contexts_html(index, values, 1, n=2, window=5)
    assert isinstance(out, str) and out._repr_html_() == out
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert " &amp; " in out
    lines = out.split("<div")[1:]
    assert len(lines) == 2                      # n=2: only the two strongest contexts
    assert "9.00" in lines[0] and "2.00" in lines[1]   # strongest first
    peak = [s for s in lines[0].split("<span")[1:] if "border-bottom" in s]
    assert len(peak) == 1 and "&lt;script&gt;" in peak[0]
    assert "fires on 33.33% of tokens" in out and out.startswith("<h4>latent 1")
    # the window: the context ends at the peak and reaches back `window` tokens of the same text only
    assert "cat" not in lines[0] and "the" in lines[0]
    short = tk.plots.top_contexts_html(index, values[:, 1], n=1, window=0)
    assert short.count("<span") == 1


def test_top_contexts_accept_activations_and_a_torch_column():
    acts = tk.Activations.from_rows(torch.ones(6, 4), text_id=[0, 0, 0, 1, 1, 1], position=[0, 1, 2, 0, 1, 2],
                                    token_id=[0, 1, 2, 0, 6, 3], n_texts=2, tokenizer=_Tokenizer())
    codes = torch.zeros(6, 5)
    codes[4, 2] = 3.0   # " dog" in text 1
    codes[2, 2] = 1.0
    html_ = tk.plots.top_contexts_html(acts, codes, 2, n=2, after=1, title="my <latent>")
    assert html_.startswith("<h4>my &lt;latent&gt;</h4>")
    first, second = html_.split("<div")[1:]
    assert "3.00" in first and " dog" in first and "&lt;script&gt;" in first   # after=1 shows the next token
    assert "1.00" in second and " sat" in second
    # several latents join into one page, as notebook 03 shows four
    both = "".join(tk.plots.top_contexts_html(acts, codes, i, n=1) for i in (2, 3))
    assert both.count("<h4>") == 2


def test_top_contexts_reject_bad_input():
    index = _index([["a", "b", "c"]])
    with pytest.raises(ValueError, match="values has 2 rows but the token index has 3"):
        tk.plots.top_contexts_html(index, np.ones(2))
    with pytest.raises(ValueError, match="pass latent="):
        tk.plots.top_contexts_html(index, np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"latent must be an integer in \[0, 3\], got 4"):
        tk.plots.top_contexts_html(index, np.ones((3, 4)), 4)
    with pytest.raises(ValueError, match="non-finite"):
        tk.plots.top_contexts_html(index, np.array([1.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="needs columns text_id, position and token"):
        tk.plots.top_contexts_html(index.drop(columns="position"), np.ones(3))
    with pytest.raises(TypeError, match="tk.Activations or a token-index DataFrame"):
        tk.plots.top_contexts_html(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        tk.plots.top_contexts_html(index, np.ones(3), n=0)


# ---------------------------------------------------------------- residual norms
def test_norm_histogram_marks_rows_by_mask_or_by_values():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(200, 8))
    rows[:5] *= 100                              # five massive-norm rows
    mask = np.zeros(200, dtype=bool)
    mask[:5] = True
    ax = tk.plots.norm_histogram(rows, mask, title="Residual norms at layer 6", marked_label="sinks")
    assert _labelled(ax) and ax.get_xlabel() == "log10 ‖residual‖"
    assert len(ax.collections) == 1 and len(ax.collections[0].get_segments()) == 5
    assert sum(p.get_height() for p in ax.patches) == 195   # the histogram holds the unmarked rows
    assert "5 sinks rows marked" in ax.alt_text and ax.figure.alt_text == ax.alt_text
    # marked as other rows (e.g. position 0 of a few texts read separately), norms as given
    ax2 = tk.plots.norm_histogram(np.linalg.norm(rows, axis=1), torch.tensor(rows[:3]), alt="custom")
    assert len(ax2.collections[0].get_segments()) == 3 and ax2.alt_text == "custom"


def test_norm_histogram_on_activations_marks_sinks_by_default():
    rows = torch.ones(6, 4)
    rows[0] *= 50
    acts = tk.Activations.from_rows(rows, text_id=[0, 0, 0, 1, 1, 1], position=[0, 1, 2, 0, 1, 2],
                                    token_id=[0] * 6, n_texts=2)
    assert acts.sink.tolist() == [True, False, False, False, False, False]
    ax = tk.plots.norm_histogram(acts)
    assert len(ax.collections[0].get_segments()) == 1


def test_norm_histogram_rejects_bad_input():
    with pytest.raises(ValueError, match="0 or negative"):
        tk.plots.norm_histogram(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"boolean marked mask needs shape \(4,\)"):
        tk.plots.norm_histogram(np.ones((4, 3)), np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="rows is empty"):
        tk.plots.norm_histogram(np.ones((0, 3)))
    with pytest.raises(ValueError, match=r"rows must be rows \[n, d\] or norms \[n\]"):
        tk.plots.norm_histogram(np.ones((2, 3, 4)))


# ---------------------------------------------------------------- heatmap
def test_heatmap_labels_cells_and_axes():
    table = pd.DataFrame({"SAE latents": [0.9, 0.4], "residual": [0.5, 0.3]}, index=["shakespeare", "legal"])
    ax = tk.plots.heatmap(table, title="FMS@1", xlabel="representation", ylabel="concept", vmin=0.25, vmax=1)
    assert _labelled(ax)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["SAE latents", "residual"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["shakespeare", "legal"]
    assert sorted(t.get_text() for t in ax.texts) == ["0.30", "0.40", "0.50", "0.90"]
    assert "2 concept rows" in ax.alt_text and "0.3 to 0.9" in ax.alt_text
    ax2 = tk.plots.heatmap(np.eye(3), title="agreement", xlabel="judge", ylabel="judge", row_labels="abc",
                           col_labels="abc", annot=False, cbar_label="agreement")
    assert not ax2.texts and [t.get_text() for t in ax2.get_xticklabels()] == ["a", "b", "c"]


def test_heatmap_rejects_bad_input():
    kw = dict(title="t", xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match="must be 2-D"):
        tk.plots.heatmap(np.ones(3), **kw)
    with pytest.raises(ValueError, match="2 row labels"):
        tk.plots.heatmap(np.ones((3, 2)), row_labels=["a", "b"], **kw)
    with pytest.raises(TypeError, match="must hold numbers"):
        tk.plots.heatmap(pd.DataFrame({"a": ["x", "y"]}), **kw)
    with pytest.raises(ValueError, match="infinite"):
        tk.plots.heatmap(np.array([[1.0, np.inf]]), **kw)
    with pytest.raises(TypeError, match="title"):
        tk.plots.heatmap(np.ones((2, 2)))   # a title and axis labels are required


# ---------------------------------------------------------------- steering trade-off
def _summary():
    rows = []
    for method, alphas in (("G-SAE", [0.0, 0.1, 0.2]), ("mean difference", [0.0, 0.05]), ("SCAR", [1.0, 8.0])):
        for a in alphas:
            rows.append({"method": method, "alpha": a, "perplexity": 10 + 100 * a, "concept_score": 0.2 + a})
    return pd.DataFrame(rows)


def test_tradeoff_curve_draws_one_line_per_method_in_strength_order():
    data = _summary().sample(frac=1.0, random_state=0)   # shuffled: the lines must be sorted by alpha
    ax = tk.plots.tradeoff_curve(data, title="shakespeare: trade-off", xlabel="perplexity", ylabel="judge score")
    assert _labelled(ax) and ax.get_xscale() == "log"
    assert len(ax.lines) == 3
    gsae = ax.lines[[t.get_text() for t in ax.get_legend().get_texts()].index("G-SAE")]
    assert list(gsae.get_xdata()) == [10.0, 20.0, 30.0]
    assert {t.get_text() for t in ax.texts} >= {"0", "0.1", "0.2", "8"}    # points labelled with alpha
    assert "3 methods" in ax.alt_text
    ax2 = tk.plots.tradeoff_curve(_summary(), annotate=False, xscale="linear")
    assert not ax2.texts and ax2.get_xlabel() == "perplexity" and ax2.get_ylabel() == "concept_score"


def test_tradeoff_curve_rejects_bad_input():
    with pytest.raises(ValueError, match=r"lacks the columns \['method'\]"):
        tk.plots.tradeoff_curve(_summary().drop(columns="method"))
    bad = _summary()
    bad.loc[0, "perplexity"] = 0.0
    with pytest.raises(ValueError, match="xscale='log' needs positive 'perplexity'"):
        tk.plots.tradeoff_curve(bad)
    bad.loc[0, "perplexity"] = np.nan
    with pytest.raises(ValueError, match="'perplexity' must hold finite numbers; row 0"):
        tk.plots.tradeoff_curve(bad)
    with pytest.raises(TypeError, match="must be a DataFrame"):
        tk.plots.tradeoff_curve(_summary().to_numpy())
    with pytest.raises(ValueError, match="no rows"):
        tk.plots.tradeoff_curve(_summary().iloc[:0])


# ---------------------------------------------------------------- notebook 01: saliency grid and taxonomy tree
def test_saliency_grid_layout_and_validation():
    rng = np.random.default_rng(0)
    images = rng.random((4, 6, 6))
    masks = np.zeros((4, 6, 6), dtype=bool)
    masks[:, :2, :2] = True
    sal = {"shortcut": rng.normal(size=(4, 6, 6)), "clean": torch.randn(4, 6, 6)}
    fig = tk.plots.plot_saliency_grid(images, sal, masks=masks, titles=list("abcd"))
    assert len(fig.axes) == 12 and fig.get_suptitle()
    assert [fig.axes[i * 4].get_ylabel() for i in range(3)] == ["input", "shortcut", "clean"]
    assert all(len(ax.patches) == 1 for ax in fig.axes)   # the mask outline on every panel
    assert "4 input images" in fig.alt_text
    with pytest.raises(ValueError, match=r"saliency\['clean'\] has shape \(4, 5, 6\)"):
        tk.plots.plot_saliency_grid(images, {"clean": np.ones((4, 5, 6))})
    with pytest.raises(ValueError, match="images must be a non-empty"):
        tk.plots.plot_saliency_grid(np.ones((6, 6)), {})
    with pytest.raises(ValueError, match="titles has 2 entries for 4 images"):
        tk.plots.plot_saliency_grid(images, sal, titles=["a", "b"])


def test_taxonomy_tree_draws_every_method():
    tax = tk.load_taxonomy()
    fig = tk.plots.plot_taxonomy_tree(tax)
    n_methods = sum(len(f["methods"]) for s in ("detection", "mitigation") for f in tax[s])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == n_methods + len(tax["detection"]) + len(tax["mitigation"]) + 2 + 1
    assert "shortcut" in texts and fig.axes[0].get_title() and "Tree of shortcut research" in fig.alt_text
    with pytest.raises(ValueError, match=r"lacks the sections \['references'\]"):
        tk.plots.plot_taxonomy_tree({"detection": [], "mitigation": []})


def test_plots_module_is_public_and_names_its_functions():
    assert tk.plots is plots
    for name in plots.__all__:
        assert hasattr(plots, name)
