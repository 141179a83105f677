"""Unit tests for toolkit/shortcuts.py (Decoy Digits, the RRR loss, attribution) and the data of notebook 01.

Everything is reached as ``tk.X``, the way notebook 01 reaches it.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import toolkit as tk
from toolkit import shortcuts


# ---------------------------------------------------------------- Decoy Digits
def test_decoy_shapes_labels_and_masks():
    tr = tk.make_decoy_digits("train", "label")
    te = tk.make_decoy_digits("test", "random", random_state=1)
    assert len(tr) + len(te) == 1797
    assert tr.X.shape == (len(tr), 12, 12) and tr.X.dtype == np.float32
    assert tr.mask.shape == tr.X.shape and tr.mask.dtype == bool
    assert set(np.unique(tr.y)) == set(range(10))
    # Every image has exactly one 4x4 patch, in the corner it says, painted with its label's grey.
    assert (tr.mask.reshape(len(tr), -1).sum(1) == 16).all()
    for i in range(0, len(tr), 97):
        rr, cc = np.nonzero(tr.mask[i])
        top, left = tr.corner[i] in (0, 1), tr.corner[i] in (0, 2)
        assert (rr.min() == 0) == top and (cc.min() == 0) == left
        np.testing.assert_allclose(tr.X[i][tr.mask[i]], 1.0 - 0.1 * tr.y[i], rtol=1e-6)
    # Training patches encode the true label; test patches encode a random one (chance agreement ~10%).
    assert (tr.decoy_label == tr.y).all()
    agree = (te.decoy_label == te.y).mean()
    assert 0.03 < agree < 0.2, agree
    # All four corners are used.
    assert set(np.unique(tr.corner)) == {0, 1, 2, 3}


def test_decoy_splits_are_disjoint_and_clean_has_no_patch():
    clean_tr = tk.make_decoy_digits("train", "none")
    clean_te = tk.make_decoy_digits("test", "none")
    assert not clean_tr.mask.any() and (clean_tr.decoy_label == -1).all()
    # The 2-pixel border of a clean image is black.
    assert clean_tr.X[:, :2, :].max() == 0 and clean_tr.X[:, :, -2:].max() == 0
    rows_tr = {x.tobytes() for x in clean_tr.X}
    rows_te = {x.tobytes() for x in clean_te.X}
    # sklearn's digits contain a handful of exact duplicates; allow those, but not a shared split.
    assert len(rows_tr & rows_te) <= 5


def test_add_decoy_does_not_modify_input_and_validates():
    imgs = np.zeros((3, 6, 6), dtype=np.float32)
    out, mask = tk.add_decoy(imgs, np.array([0, 5, 9]), np.array([0, 1, 3]), patch_size=2)
    assert imgs.sum() == 0
    assert out[0, 0, 0] == pytest.approx(1.0) and out[1, 0, 5] == pytest.approx(0.5)
    assert out[2, 5, 5] == pytest.approx(0.1) and mask[2, 4:, 4:].all() and mask[2].sum() == 4
    with pytest.raises(ValueError, match="corners"):
        tk.add_decoy(imgs, np.array([0, 1, 2]), np.array([0, 1, 4]))
    with pytest.raises(ValueError, match="0..9"):
        tk.add_decoy(imgs, np.array([0, 1, 10]), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="decoy must be"):
        tk.make_decoy_digits("train", "swapped")


# ---------------------------------------------------------------- RRR loss
class _Linear2(nn.Module):
    """logits = [w . x, 0]: small enough to differentiate by hand."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float32))

    def forward(self, x):
        z = x @ self.w
        return torch.stack([z, torch.zeros_like(z)], dim=-1)


def test_rrr_loss_matches_hand_computed_case():
    # Sum of log-probs: z - 2 log(1 + e^z), so d/dx = (1 - 2 sigmoid(z)) w.
    # With w = (2, 4) and x = (ln 3 / 2, 0): z = ln 3, sigmoid = 3/4, gradient = -0.5 w = (-1, -2).
    # Mask (1, 0) keeps the first coordinate: penalty = (-1)^2 = 1.
    # Cross-entropy for label 0 is -log(3/4); with lam = 0.5 the loss is -log(0.75) + 0.5.
    model = _Linear2([2.0, 4.0])
    x = torch.tensor([[math.log(3) / 2, 0.0]])
    y = torch.tensor([0])
    mask = torch.tensor([[1.0, 0.0]])
    assert tk.rrr_penalty(model, x, mask).item() == pytest.approx(1.0, rel=1e-5)
    assert tk.rrr_loss(model, x, y, mask, lam=0.5).item() == pytest.approx(-math.log(0.75) + 0.5, rel=1e-5)
    # The other coordinate alone: (-2)^2 = 4; both: 5. Batches average over examples.
    assert tk.rrr_penalty(model, x, torch.tensor([[0.0, 1.0]])).item() == pytest.approx(4.0, rel=1e-5)
    xb = torch.cat([x, torch.zeros(1, 2)])  # at x = 0 the gradient is 0 (sigmoid(0) = 1/2)
    mb = torch.ones(2, 2)
    assert tk.rrr_penalty(model, xb, mb).item() == pytest.approx(5.0 / 2, rel=1e-5)
    # lam = 0 is plain cross-entropy.
    assert tk.rrr_loss(model, x, y, mask, lam=0.0).item() == pytest.approx(-math.log(0.75), rel=1e-5)


def test_rrr_penalty_is_differentiable_and_validates():
    model = _Linear2([2.0, 4.0])
    x = torch.tensor([[math.log(3) / 2, 0.0]])
    pen = tk.rrr_penalty(model, x, torch.tensor([[1.0, 0.0]]))
    pen.backward()
    # d/dw1 of ((1 - 2 s(z)) w1)^2 is nonzero here; a detached penalty would leave grad None.
    assert model.w.grad is not None and model.w.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="mask shape"):
        tk.rrr_penalty(model, x, torch.ones(1, 3))
    with pytest.raises(ValueError, match="lam"):
        tk.rrr_loss(model, x, torch.tensor([0]), torch.ones(1, 2), lam=-1.0)


def test_input_gradients_and_saliency_mass():
    model = _Linear2([2.0, 4.0])
    x = np.array([[math.log(3) / 2, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(tk.input_gradients(model, x, "sum"), [[-1.0, -2.0]], rtol=1e-5)
    # log p_0 = z - log(1 + e^z): gradient (1 - 3/4) w = (0.5, 1).
    np.testing.assert_allclose(tk.input_gradients(model, x, np.array([0])), [[0.5, 1.0]], rtol=1e-5)
    g = np.array([[1.0, 2.0], [3.0, 0.0]])
    m = np.array([[True, False], [True, False]])
    np.testing.assert_allclose(tk.saliency_mass(g, m), [0.2, 1.0])


def test_rrr_training_removes_patch_reliance_small():
    # A quick version of the notebook's claim on 300 images: RRR drives saliency off the patch.
    tr = tk.make_decoy_digits("train", "label", n=300)
    plain = tk.make_mlp(random_state=0)
    tk.train_classifier(plain, tr.X, tr.y, epochs=10, batch_size=100, lr=1e-2)
    rrr = tk.make_mlp(random_state=0)
    tk.train_classifier(rrr, tr.X, tr.y, mask=tr.mask, lam=1.0, epochs=10, batch_size=100, lr=1e-2)
    s_plain = tk.saliency_mass(tk.input_gradients(plain, tr.X), tr.mask).mean()
    s_rrr = tk.saliency_mass(tk.input_gradients(rrr, tr.X), tr.mask).mean()
    assert s_rrr < 0.5 * s_plain, (s_plain, s_rrr)
    with pytest.raises(ValueError, match="mask"):
        tk.train_classifier(rrr, tr.X, tr.y, lam=1.0, epochs=1)


def test_classifier_helpers_validate():
    model = tk.make_mlp(d_in=4, hidden=3, n_classes=2)
    X, y = np.zeros((5, 2, 2), dtype=np.float32), np.zeros(5, dtype=np.int64)
    assert tk.accuracy(model, X, y) in (0.0, 1.0)
    with pytest.raises(ValueError, match="one label per example"):
        tk.accuracy(model, X, y[:3])
    with pytest.raises(ValueError, match="one label per example"):
        tk.train_classifier(model, X, y[:3], epochs=1)
    with pytest.raises(TypeError, match="epochs must be an integer"):
        tk.train_classifier(model, X, y, epochs=1.5)
    with pytest.raises(ValueError, match="needs an annotation mask"):
        tk.rrr_loss(model, torch.as_tensor(X), torch.as_tensor(y), None, lam=1.0)
    with pytest.raises(ValueError, match="grads shape"):
        tk.saliency_mass(np.ones((2, 3)), np.ones((2, 4), dtype=bool))


# ---------------------------------------------------------------- taxonomy
def test_taxonomy_loads_and_covers_the_required_families():
    tax = tk.load_taxonomy()
    det = {f["family"] for f in tax["detection"]}
    mit = {f["family"] for f in tax["mitigation"]}
    assert {"model-utility based", "perturbation and counterfactual", "XAI (attribution and its clustering)", "causality driven"} <= det
    assert {"dataset level", "model level", "inference time"} <= mit
    assert {k["name"] for k in tax["kinds"]} == {"world-induced", "sampling-induced"}
    assert {"shortcut", "spurious correlation", "confounder", "Clever Hans", "bias", "backdoor"} <= {t["name"] for t in tax["terms"]}
    shorts = {v["short"] for v in tax["references"].values()}
    for s in ("Steinmann et al. 2024", "Ross et al. 2017", "Nam et al. 2020", "Zhang & Sabuncu 2018",
              "Sagawa et al. 2020", "Lapuschkin et al. 2019", "Koh et al. 2020"):
        assert s in shorts
    methods = [m for stage in ("detection", "mitigation") for fam in tax[stage] for m in fam["methods"]]
    assert len(methods) >= 15 and all(m.get("cite") for m in methods)
    assert {b["kind"].split()[0] for b in tax["benchmarks"]} == {"world-induced", "sampling-induced"}


def test_taxonomy_rejects_unknown_citation(tmp_path):
    text = shortcuts.TAXONOMY_PATH.read_text(encoding="utf-8").replace("cite: [ross2017]", "cite: [nobody1999]", 1)
    bad = tmp_path / "taxonomy.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="nobody1999"):
        tk.load_taxonomy(bad)


# ---------------------------------------------------------------- the probe experiment: data and projection
def test_sentiment_data_is_balanced_and_paired():
    df = tk.load_sentiment()
    assert set(df.columns) >= {"text", "label", "split", "pair"}
    assert set(df.split) == {"train", "test"}
    for _, part in df.groupby("split"):
        assert part.label.mean() == 0.5
    # Both sentences of a topic pair sit in the same split, so no topic leaks into the test set.
    assert df.groupby("pair").split.nunique().max() == 1


def test_projection_removes_shortcut_direction():
    rng = np.random.default_rng(0)
    d = rng.normal(size=16)
    X = rng.normal(size=(50, 16)) + 3.0 * np.outer(rng.integers(0, 2, 50), d)
    Xp = tk.remove_direction(X, d)
    np.testing.assert_allclose(Xp @ (d / np.linalg.norm(d)), 0.0, atol=1e-9)
    # Orthogonal components are untouched.
    u = rng.normal(size=16)
    u -= (u @ d) / (d @ d) * d
    np.testing.assert_allclose(Xp @ u, X @ u, rtol=1e-9)
    # The mean-difference direction of a planted shift points along the shift, with its sign.
    with_tok, without = X + d, X
    est = tk.mean_difference(with_tok, without)
    assert est @ d / np.linalg.norm(d) > 0.999


def test_mean_difference_of_counterfactual_pairs_is_the_mean_paired_change():
    # Notebook 01 estimates the tag's direction from pairs (same sentence with and without the tag). The
    # removed counterfactual_direction was unit(mean(A - B)); tk.mean_difference is unit(mean(A) - mean(B)):
    # the same vector, same sign and normalisation, for row-aligned pairs.
    rng = np.random.default_rng(1)
    without = rng.normal(size=(40, 12))
    with_tag = without + rng.normal(size=12) + 0.3 * rng.normal(size=(40, 12))
    paired = (with_tag - without).mean(0)
    est = tk.mean_difference(with_tag, without)
    np.testing.assert_allclose(est, paired / np.linalg.norm(paired), rtol=1e-12, atol=1e-12)
    assert np.linalg.norm(est) == pytest.approx(1.0)
    est_t = tk.mean_difference(torch.tensor(with_tag, dtype=torch.float32), torch.tensor(without, dtype=torch.float32))
    np.testing.assert_allclose(est_t, est, atol=1e-5)
    assert not hasattr(shortcuts, "counterfactual_direction")
