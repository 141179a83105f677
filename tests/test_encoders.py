"""toolkit/encoders.py: the encoder protocol, ResidualEncoder, and comparing encoders by what they compute."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import toolkit as tk
from toolkit.encoders import check_encoder, encode, fingerprint, same_encoder

ACTIONS = {"help people": 1, "comfort a friend": 1, "smile": 1, "kill people": -1, "torture": -1, "steal": -1}


class HashEncoder:
    """A deterministic bag-of-words encoder whose word codes depend on ``seed``: two seeds are two
    different encoders of the same class and the same name (the case a name check cannot tell apart)."""

    toolkit_name = "hash"

    def __init__(self, seed: int = 0, dim: int = 8):
        self.seed, self.dim, self.calls = seed, dim, 0

    def encode(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), self.dim))
        for i, t in enumerate(texts):
            for w in t.lower().strip("?!.").split():
                out[i] += np.random.default_rng(zlib.crc32(w.encode()) + self.seed).normal(size=self.dim)
        return out


def test_protocol_and_checks():
    assert isinstance(HashEncoder(), tk.Encoder)
    assert not isinstance(object(), tk.Encoder)
    with pytest.raises(TypeError, match="encode"):
        check_encoder(object())
    with pytest.raises(TypeError, match="encode"):
        check_encoder("all-MiniLM-L6-v2")
    X = encode(HashEncoder(), ["a b", "c"])
    assert X.shape == (2, 8) and X.dtype == np.float64

    class Bad:
        def encode(self, texts):
            return np.zeros((len(texts) + 1, 3))

    with pytest.raises(ValueError, match=r"\[n_texts, dim\]"):
        encode(Bad(), ["a", "b"])
    with pytest.raises(TypeError, match="spans"):
        encode(HashEncoder(), ["a b"], spans=[(0, 1)])


def test_fingerprint_is_cached_and_compares_by_computation():
    enc = HashEncoder(seed=0)
    fp = fingerprint(enc)
    assert fingerprint(enc) is fp and enc.calls == 1  # computed once, cached on the encoder
    assert same_encoder(fp, fingerprint(HashEncoder(seed=0)))  # another object computing the same
    assert not same_encoder(fp, fingerprint(HashEncoder(seed=1)))  # same class and name, other function
    assert not same_encoder(fp, fingerprint(HashEncoder(seed=0, dim=4)))
    assert not same_encoder(fp, None)


def test_same_class_and_name_but_different_encoder_is_refused():
    # The review's case: before, two encoders of one class and one name passed the check, and the
    # score could flip sign.
    md = tk.MoralDirection(HashEncoder(seed=0)).fit(actions=ACTIONS, templates=["Should I {}?"])
    with pytest.raises(ValueError, match="computes different embeddings"):
        md.score(["help people"], encoder=HashEncoder(seed=1))
    same = md.score(["help people", "kill people"], encoder=HashEncoder(seed=0))
    assert np.array_equal(same, md.score(["help people", "kill people"]))


def test_minilm_loaded_twice_is_accepted(encoder):
    from sentence_transformers import SentenceTransformer

    from toolkit.models import DEFAULT_ENCODER, EMBEDDED_ENCODERS, embedded_file

    md = tk.MoralDirection(encoder).fit(actions=ACTIONS, templates=["Should I {}?"])
    by_alias = tk.load_encoder("minilm")  # another load call, another object
    by_path = SentenceTransformer(str(embedded_file(EMBEDDED_ENCODERS[DEFAULT_ENCODER])), device="cpu")
    want = md.score(["help people", "kill people"])
    for other in (by_alias, by_path):
        assert np.allclose(md.score(["help people", "kill people"], encoder=other), want, atol=1e-5)


def test_residual_encoder_matches_get_activations(model):
    enc = tk.ResidualEncoder(model, layer=3)
    texts = ["Should I kill people?", "Is it ok to smile?"]
    X = enc.encode(texts)
    assert isinstance(X, np.ndarray) and X.dtype == np.float32 and X.shape == (2, model.d_model)
    want = tk.get_activations(model, texts, layer=3, reduce="mean")
    assert np.allclose(X, want.numpy(), atol=1e-5)
    spans = [(9, 20), (12, 17)]
    want_span = tk.get_activations(model, texts, layer=3, reduce="mean", spans=spans)
    assert np.allclose(enc.encode(texts, spans=spans), want_span.numpy(), atol=1e-5)
    last = tk.ResidualEncoder(model, layer=3, pooling="last").encode(texts)
    assert np.allclose(last, tk.get_activations(model, texts, layer=3, reduce="last").numpy(), atol=1e-5)
    keep_sinks = tk.ResidualEncoder(model, layer=3, drop_sinks=False).encode(texts)
    assert np.allclose(keep_sinks, tk.get_activations(model, texts, layer=3).pool("mean", drop_sinks=False).numpy(),
                       atol=1e-5)
    layers = enc.encode_layers(texts, [1, 3], spans=spans)
    assert set(layers) == {1, 3} and np.allclose(layers[3], enc.encode(texts, spans=spans), atol=1e-4)
    assert tk.ResidualEncoder(model).layer == model.n_layers // 2 == tk.ResidualEncoder.default_layer(model)
    assert tk.ResidualEncoder(model, layer=-1).layer == model.n_layers - 1
    assert "layer=3" in repr(enc)
    with pytest.raises(AttributeError):
        enc.layer = 4  # an encoder is a fixed function: make another one to read another layer
    with pytest.raises(ValueError, match="pooling"):
        tk.ResidualEncoder(model, layer=3, pooling="first")
    with pytest.raises(IndexError, match="out of range"):
        tk.ResidualEncoder(model, layer=model.n_layers)
    with pytest.raises(TypeError, match="toolkit Model"):
        tk.ResidualEncoder(HashEncoder(), layer=3)


def test_residual_encoders_compared_by_layer_and_pooling(model):
    md = tk.MoralDirection(tk.ResidualEncoder(model, layer=2)).fit(actions=ACTIONS, templates=["Should I {}?"])
    assert md.pooling_ == "action" and md.n_features_in_ == model.d_model
    # the same model and layer wrapped twice computes the same thing
    again = md.score(list(ACTIONS), encoder=tk.ResidualEncoder(model, layer=2))
    assert np.allclose(again, md.score(list(ACTIONS)), atol=1e-6)
    # another layer or another pooling of the same model does not
    with pytest.raises(ValueError, match="computes different embeddings"):
        md.score(["help"], encoder=tk.ResidualEncoder(model, layer=3))
    with pytest.raises(ValueError, match="computes different embeddings"):
        md.score(["help"], encoder=tk.ResidualEncoder(model, layer=2, pooling="last"))
    with pytest.raises(ValueError, match="computes different embeddings"):
        md.score(["help"], encoder=HashEncoder())  # and a sentence encoder of another width


def test_model_is_not_an_encoder(model):
    with pytest.raises(TypeError, match="ResidualEncoder"):
        tk.MoralDirection(model)
    with pytest.raises(TypeError, match="ResidualEncoder"):
        tk.ConceptJudge(model)
