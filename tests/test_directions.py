"""Unit tests for toolkit/directions.py (linear algebra), toolkit/moral_direction.py (MoralDirection),
toolkit/moral_data.py (the data/moral loaders) and filter_candidates (toolkit/decoding.py)."""
from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest
import torch

import toolkit as tk
from toolkit.decoding import filter_candidates
from toolkit.directions import mean_difference, orient_sign, pca_direction, project, remove_direction
from toolkit.moral_data import load_moral_actions, load_templates
from toolkit.moral_direction import MoralDirection

GOOD = {"help", "love", "smile", "thank", "comfort", "greet", "hug", "share", "people", "friends"}
BAD = {"kill", "murder", "torture", "steal", "harm", "rob", "lie", "cheat"}


class ToyEncoder:
    """A deterministic bag-of-words encoder: feature 0 counts good minus bad words, the rest is a
    per-word pseudo-random code, so the moral axis is known exactly."""

    def __init__(self, dim: int = 16, name: str = "toy"):
        self.dim = dim
        self.toolkit_name = name

    def encode(self, sentences):
        out = np.zeros((len(sentences), self.dim))
        for i, s in enumerate(sentences):
            for w in s.lower().strip("?!.").split():
                rng = np.random.default_rng(zlib.crc32(w.encode()))
                out[i, 1:] += 0.3 * rng.normal(size=self.dim - 1)
                out[i, 0] += 3.0 * ((w in GOOD) - (w in BAD))
        return out


TOY_ACTIONS = {"help": 1, "love": 1, "smile": 1, "thank": 1, "comfort": 1, "greet": 1,
               "kill": -1, "murder": -1, "torture": -1, "steal": -1, "harm": -1, "rob": -1}


# -- generic helpers ------------------------------------------------------------------------

def test_remove_direction_zeroes_projection_numpy_and_torch():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8))
    d = rng.normal(size=8)
    Y = remove_direction(X, d)
    assert np.abs(project(Y, d)).max() < 1e-10
    # the orthogonal complement is untouched
    u = d / np.linalg.norm(d)
    assert np.allclose(Y, X - np.outer(X @ u, u))
    T = torch.tensor(X, dtype=torch.float32).reshape(5, 8, 8)
    YT = remove_direction(T, d)
    assert isinstance(YT, torch.Tensor) and YT.dtype == torch.float32 and YT.shape == T.shape
    assert project(YT, d).abs().max().item() < 1e-5
    # removing a span removes every direction in it
    D = rng.normal(size=(3, 8))
    Z = remove_direction(X, D)
    assert np.abs(Z @ D.T).max() < 1e-10


def test_pca_direction_sign_rules_and_determinism():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 5))
    X[:, 2] *= 6  # PC1 is (close to) the third axis
    d = pca_direction(X)
    assert abs(abs(d[2]) - 1) < 0.05 and orient_sign(d) == 1  # largest entry positive
    assert np.array_equal(d, pca_direction(X.copy()))
    assert np.allclose(d, pca_direction(-X))  # the rule, not the data's sign, fixes the orientation
    pos, neg = X[X[:, 2] < 0], X[X[:, 2] > 0]
    d2 = pca_direction(X, X_pos=pos, X_neg=neg)
    assert project(pos, d2).mean() > project(neg, d2).mean()


def test_mean_difference_points_to_positive_class():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(30, 4)) + np.array([2.0, 0, 0, 0])
    B = rng.normal(size=(30, 4))
    d = mean_difference(A, B)
    assert np.isclose(np.linalg.norm(d), 1) and d[0] > 0.8
    with pytest.raises(ValueError, match="same width"):
        mean_difference(A, B[:, :3])
    with pytest.raises(ValueError, match="empty"):
        mean_difference(np.zeros((0, 4)), B)


def test_zero_direction_is_refused():
    with pytest.raises(ValueError, match="non-zero"):
        project(np.ones((2, 3)), np.zeros(3))


# -- MoralDirection on a toy encoder (exact expectations) -------------------------------------

def test_sign_convention_and_scaling():
    enc = ToyEncoder()
    md = MoralDirection(enc).fit(actions=TOY_ACTIONS, templates=["Should I {}?", "May I {}?"])
    assert md.sign_ in (1, -1)
    assert md.direction_[0] > 0.9  # oriented towards the good-words axis
    s = md.score(list(TOY_ACTIONS))
    labels = np.array(list(TOY_ACTIONS.values()))
    assert (s[labels > 0] > 0).all() and (s[labels < 0] < 0).all()
    assert np.isclose(np.abs(md.train_scores_).max(), 1.0)  # scaled by the largest |PC1|
    # flipping every label flips the orientation, not the axis
    flipped = MoralDirection(enc).fit(actions={a: -v for a, v in TOY_ACTIONS.items()},
                                      templates=["Should I {}?", "May I {}?"])
    assert flipped.sign_ == -md.sign_
    assert np.allclose(flipped.score(["help people"]), -md.score(["help people"]))
    # unlabeled actions: the anchor rule gives the same orientation as the labels
    unlabeled = MoralDirection(enc).fit(actions=list(TOY_ACTIONS), templates=["Should I {}?", "May I {}?"])
    assert np.allclose(unlabeled.score(["help people", "kill people"]), md.score(["help people", "kill people"]))


def test_fit_returns_self_and_refits_from_scratch():
    enc = ToyEncoder()
    inst = MoralDirection(enc, n_components=3)
    assert inst.fit(actions=TOY_ACTIONS) is inst
    assert inst.components_.shape == (3, enc.dim) and inst.explained_variance_ratio_.shape == (3,)
    assert inst.encoder_ is enc and inst.pooling_ == "sentence"  # a sentence encoder takes no spans
    X = inst.embed(list(TOY_ACTIONS))
    assert inst.fit_embeddings(X, list(TOY_ACTIONS.values())) is inst and inst.encoder_ is None
    assert inst.fit(actions=TOY_ACTIONS).encoder_ is enc


def test_the_estimator_pca_is_pca_direction():
    enc = ToyEncoder()
    md = MoralDirection(enc).fit(actions=TOY_ACTIONS, templates=["Should I {}?"])
    X = md.embed(list(TOY_ACTIONS))
    y = np.array(list(TOY_ACTIONS.values()))
    d = pca_direction(X, n_components=5, X_pos=X[y > 0], X_neg=X[y < 0])
    assert np.allclose(md.direction_, d) and np.allclose(md.direction_, md.sign_ * md.components_[0])
    with pytest.raises(ValueError, match="both X_pos and X_neg"):
        pca_direction(X, X_pos=X[y > 0])


def test_errors_are_clear():
    enc = ToyEncoder()
    with pytest.raises(ValueError, match="empty"):
        MoralDirection(enc).fit(actions=[])
    with pytest.raises(ValueError, match="empty"):
        MoralDirection(enc).fit(actions=TOY_ACTIONS, templates=[])
    with pytest.raises(ValueError, match="slot"):
        MoralDirection(enc).fit(actions=TOY_ACTIONS, templates=["Should I?"])
    with pytest.raises(ValueError, match=r"\+1"):
        MoralDirection(enc).fit(actions={"help": 1, "kill": 0.5})
    with pytest.raises(TypeError, match="encoder"):
        MoralDirection(object())
    with pytest.raises(ValueError, match="n_components"):
        MoralDirection(enc, n_components=0)
    md = MoralDirection(enc).fit(actions=TOY_ACTIONS)
    with pytest.raises(ValueError, match="empty"):
        md.score([])
    with pytest.raises(ValueError, match="empty string"):
        md.score(["help", "  "])
    with pytest.raises(ValueError, match="16-d"):
        md.score_embeddings(np.zeros((2, 8)))
    # encoders are compared by what they compute: another name for the same function is accepted,
    # the same name for another function is refused
    assert np.array_equal(md.score(["help"], encoder=ToyEncoder(dim=16, name="other")), md.score(["help"]))
    with pytest.raises(ValueError, match="fitted with .*'toy'.* computes different embeddings"):
        md.score(["help"], encoder=ToyEncoder(dim=8))  # same name, different width
    with pytest.raises(TypeError, match="encoder"):
        md.score(["help"], encoder="not an encoder")
    with pytest.raises(RuntimeError, match="not fitted"):
        MoralDirection().score(["help"])


# -- MoralDirection on the real embedded encoder ----------------------------------------------

@pytest.fixture(scope="module")
def md_real(encoder):
    # Default action set; two of the ten templates keep the test quick.
    return MoralDirection(encoder).fit(templates=load_templates()[:2])


def test_real_encoder_obvious_orderings(md_real):
    s = md_real.score(["help people", "kill people", "smile at my friend", "torture animals"])
    assert s[0] > s[1] and s[2] > s[3]
    assert s[0] > 0 > s[1]


def test_real_encoder_determinism(encoder, md_real):
    again = MoralDirection(encoder).fit(templates=load_templates()[:2])
    assert again.sign_ == md_real.sign_
    assert np.array_equal(again.components_, md_real.components_)
    phrases = ["eat vegetables", "lie to my friend"]
    assert np.array_equal(again.score(phrases), md_real.score(phrases))


def test_real_encoder_mismatch_refused(md_real):
    with pytest.raises(ValueError, match="fitted with"):
        md_real.score(["help people"], encoder=ToyEncoder(dim=384, name="another-encoder"))


def test_one_line_default_path(md_real):
    # MoralDirection() with no encoder uses tk.load_encoder(), the notebook's common case
    md = tk.MoralDirection().fit(templates=load_templates()[:2])
    assert np.array_equal(md.components_, md_real.components_) and md.encoder_ is md_real.encoder_


def test_moral_data_is_well_formed():
    pca, ev = load_moral_actions("pca"), load_moral_actions("eval")
    assert len(pca) >= 60 and set(pca.label) == {-1, 1}
    assert len(ev) >= 150 and ev.acceptability.between(-1, 1).all()
    assert not set(pca.action.str.lower()) & set(ev.action.str.lower())  # disjoint sets
    assert len(load_templates()) == 10
    judge = load_moral_actions("judge")
    assert set(judge.non_normative) == {0, 1}
    assert isinstance(pca, pd.DataFrame)


def test_filter_candidates_keeps_best_when_all_fail():
    assert filter_candidates([0.9, -0.2, 0.4], 0.0, 1).tolist() == [0, 2]
    assert filter_candidates([-0.9, -0.2, -0.4], 0.5, 2).tolist() == [1, 2]  # the two best, in rank order
    assert filter_candidates([-0.9, -0.2, -0.4], 0.5, 5).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="empty"):
        filter_candidates([], 0.0)


def test_fit_embeddings_matches_fit():
    enc = ToyEncoder()
    md = MoralDirection(enc).fit(actions=TOY_ACTIONS, templates=["Should I {}?"])
    X = md.embed(list(TOY_ACTIONS))
    md2 = MoralDirection().fit_embeddings(X, list(TOY_ACTIONS.values()))
    assert np.allclose(md2.score_embeddings(X), md.train_scores_)
    with pytest.raises(RuntimeError, match="fit_embeddings"):
        md2.score(["help"])


def test_fit_on_language_model(model):
    actions = {"help people": 1, "comfort a friend": 1, "smile": 1, "kill people": -1, "torture": -1, "steal": -1}
    md = MoralDirection(tk.ResidualEncoder(model, layer=2)).fit(actions=actions, templates=["Should I {}?"])
    assert md.encoder_.layer == 2 and md.pooling_ == "action" and md.n_features_in_ == model.d_model
    s = md.score(list(actions))
    assert s[:3].mean() > s[3:].mean()  # the sign rule holds on the fitted actions
    assert np.array_equal(s, md.score(list(actions)))
    assert tk.ResidualEncoder.default_layer(model) == model.n_layers // 2
    with pytest.raises(ValueError, match="fitted with ResidualEncoder"):
        md.score(["help"], encoder=ToyEncoder())  # a sentence encoder cannot score a model-fitted direction


def test_mean_difference_standardize_is_diagonal_lda():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 4)) * np.array([100.0, 1.0, 1.0, 1.0])  # a huge, uninformative dimension
    y = rng.integers(0, 2, 200).astype(bool)
    X[y, 1] += 1.0  # the informative one
    X[y, 0] += 10.0  # a larger shift, but small next to that dimension's spread
    raw, std = mean_difference(X[y], X[~y]), mean_difference(X[y], X[~y], standardize=True)
    assert np.argmax(np.abs(raw)) == 0 and np.argmax(np.abs(std)) == 1
    A, B = X[y], X[~y]
    pooled = (A.var(0, ddof=0) * len(A) + B.var(0, ddof=0) * len(B)) / (len(A) + len(B) - 2)
    want = (A.mean(0) - B.mean(0)) / pooled
    assert np.allclose(std, want / np.linalg.norm(want))
    with pytest.raises(ValueError, match="at least 2 rows per class"):
        mean_difference(X[:1], X[1:], standardize=True)


def test_action_pooling_reads_only_the_action_tokens(model):
    import toolkit as tk

    md = MoralDirection(tk.ResidualEncoder(model, layer=4))  # pooling="action" is the default
    X = md.embed(["kill people"], templates=["Should I {}?"])  # embed works before fit
    want = tk.get_activations(model, ["Should I kill people?"], layer=4, reduce="mean", spans=[(9, 20)])
    assert np.allclose(X, want.numpy(), atol=1e-5)
    layers = md.embed_layers(["kill people", "smile"], [2, 4], templates=["Should I {}?", "May I {}?"])
    assert layers[2].shape == (2, model.d_model) and set(layers) == {2, 4}
    one = md.embed(["kill people", "smile"], templates=["Should I {}?", "May I {}?"])
    assert np.allclose(layers[4], one, atol=1e-4)
    # pooling="sentence" reads the whole question, as the encoder pools it
    whole = MoralDirection(tk.ResidualEncoder(model, layer=4), pooling="sentence").embed(["kill people"],
                                                                                          ["Should I {}?"])
    want = tk.get_activations(model, ["Should I kill people?"], layer=4, reduce="mean")
    assert np.allclose(whole, want.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        MoralDirection(pooling="first")
    with pytest.raises(TypeError, match="encode_layers"):
        MoralDirection(ToyEncoder()).embed_layers(["smile"], [2])
