"""tk.steer and the steering edits: the maths without a model, then real generations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import toolkit as tk
from toolkit.sae import SCAR, GuidedSAE, TopKSAE
from toolkit.steering import decoder_direction, steering_edit

D = 16


@pytest.fixture(scope="module")
def small_gsae():
    torch.manual_seed(0)
    return GuidedSAE(D, 32, k=4, n_concepts=2)


# --------------------------------------------------------------------------- maths, no model
def test_vector_edit_is_norm_relative():
    torch.manual_seed(0)
    h = torch.randn(2, 5, D) * torch.tensor([1.0, 100.0])[:, None, None]
    v = torch.randn(D) * 7
    out = steering_edit(layer=0, alpha=0.3, vector=v).fn(h)
    added = out - h
    # beta normalisation: the added vector has norm alpha * ||x|| at every position, along v
    assert torch.allclose(added.norm(dim=-1), 0.3 * h.norm(dim=-1), rtol=1e-5)
    cos = torch.nn.functional.cosine_similarity(added, v.expand_as(added), dim=-1)
    assert torch.allclose(cos, torch.ones_like(cos), atol=1e-5)


def test_sae_edit_adds_alpha_beta_decoder_column(small_gsae):
    torch.manual_seed(1)
    h = torch.randn(3, 4, D)
    d1 = small_gsae.W_dec[1].detach()
    out = steering_edit(layer=0, alpha=-0.5, sae=small_gsae, latent=1).fn(h)
    beta = h.norm(dim=-1, keepdim=True) / d1.norm()
    assert torch.allclose(out, h - 0.5 * beta * d1, atol=1e-5)


def test_balanced_gamma(small_gsae):
    """Toward: gamma = 1 - f_i (only push tokens that lack the concept); away: gamma = f_i."""
    torch.manual_seed(2)
    h = torch.randn(2, 6, D)
    d0 = small_gsae.W_dec[0].detach()
    beta = h.norm(dim=-1, keepdim=True) / d0.norm()
    with torch.no_grad():
        f0 = small_gsae.encode(h.reshape(-1, D))[:, 0].reshape(2, 6, 1)
    toward = steering_edit(layer=0, alpha=0.4, sae=small_gsae, latent=0, gamma="balanced").fn(h)
    away = steering_edit(layer=0, alpha=-0.4, sae=small_gsae, latent=0, gamma="balanced").fn(h)
    assert torch.allclose(toward, h + 0.4 * beta * (1 - f0) * d0, atol=1e-5)
    assert torch.allclose(away, h - 0.4 * beta * f0 * d0, atol=1e-5)


def test_alpha_zero_edit_is_identity(small_gsae):
    h = torch.randn(2, 3, D)
    for edit in (steering_edit(layer=0, alpha=0.0, vector=torch.ones(D)),
                 steering_edit(layer=0, alpha=0.0, sae=small_gsae, latent=0, gamma="balanced")):
        assert torch.equal(edit.fn(h), h)


def test_scar_edit_is_on_mlp_site():
    scar = SCAR(D, 32, k=4)
    scar.initialized.fill_(True)
    edit = steering_edit(layer=3, alpha=2.0, sae=scar)
    assert edit.site == "mlp" and edit.layer == 3
    m = torch.randn(2, 5, D)
    with torch.no_grad():
        assert torch.allclose(edit.fn(m), scar.steer_reconstruct(m.reshape(-1, D), 0, 2.0).reshape(2, 5, D))


def test_steering_errors(small_gsae):
    with pytest.raises(IndexError, match="out of range"):
        steering_edit(layer=0, alpha=1.0, sae=small_gsae, latent=32)
    with pytest.raises(IndexError, match="out of range"):
        steering_edit(layer=0, alpha=1.0, sae=small_gsae, latent=-1)
    with pytest.raises(TypeError, match="integer"):
        steering_edit(layer=0, alpha=1.0, sae=small_gsae, latent=1.5)
    with pytest.raises(ValueError, match="exactly one"):
        steering_edit(layer=0, alpha=1.0)
    with pytest.raises(ValueError, match="exactly one"):
        steering_edit(layer=0, alpha=1.0, vector=torch.ones(D), sae=small_gsae)
    with pytest.raises(ValueError, match="gamma"):
        steering_edit(layer=0, alpha=1.0, sae=small_gsae, gamma="half")
    with pytest.raises(ValueError, match="GuidedSAE"):
        steering_edit(layer=0, alpha=1.0, sae=TopKSAE(D, 32, 4), latent=3, gamma="balanced")
    with pytest.raises(ValueError, match="non-zero"):
        steering_edit(layer=0, alpha=1.0, vector=torch.zeros(D))
    with pytest.raises(ValueError, match="finite"):
        steering_edit(layer=0, alpha=float("nan"), vector=torch.ones(D))


def test_scar_and_balanced_steering_follow_the_sae_types():
    """SCAR is recognized by its type (not by a method name), and gamma='balanced' by what the SAE declares."""
    scar = SCAR(D, 32, k=4)
    assert steering_edit(layer=0, alpha=2.0, sae=scar).site == "mlp"
    with pytest.raises(ValueError, match="SCAR steers by scaling its conditioned latent; gamma must be 'one'"):
        steering_edit(layer=0, alpha=1.0, sae=scar, gamma="balanced")

    class LooksLikeScar(TopKSAE):  # a look-alike method does not make an SAE a SCAR
        def steer_reconstruct(self, x, latent=0, alpha=1.0):
            raise AssertionError("not a SCAR")

    assert steering_edit(layer=0, alpha=1.0, sae=LooksLikeScar(D, 32, 4), latent=1).site == "resid"


def test_decoder_direction_of_vanilla_sae():
    sae = TopKSAE(D, 32, 4)
    assert torch.equal(decoder_direction(sae, 5), sae.W_dec[5].detach())


# --------------------------------------------------------------------------- with the model
PROMPTS = ["Write one sentence about the sea.", "Tell me about your morning."]
LAYER = 10


@pytest.fixture(scope="module")
def model():
    return tk.load_model()


@pytest.fixture(scope="module")
def unsteered(model):
    return tk.generate(model, PROMPTS, max_new_tokens=8)


@pytest.fixture(scope="module")
def direction(model):
    # a direction the model reads strongly: the mean residual of a pirate-talk text, a content
    # shift the next tokens cannot ignore at alpha = 1
    acts = tk.get_activations(model, ["Arr matey, ye scurvy pirates sail the seven seas for treasure!"], layer=LAYER)
    return acts.rows.mean(dim=0)


def test_alpha_zero_equals_unsteered(model, unsteered, direction):
    gsae = GuidedSAE(model.d_model, 64, k=4, n_concepts=1)
    gsae.initialized.fill_(True)
    assert tk.steer(model, PROMPTS, vector=direction, layer=LAYER, alpha=0.0, max_new_tokens=8) == unsteered
    assert tk.steer(model, PROMPTS, sae=gsae, latent=0, layer=LAYER, alpha=0.0, gamma="balanced",
                    max_new_tokens=8) == unsteered


def test_steering_changes_outputs(model, unsteered, direction):
    out = tk.steer(model, PROMPTS, vector=direction, layer=LAYER, alpha=1.0, max_new_tokens=8)
    assert len(out) == len(PROMPTS)
    assert all(a != b for a, b in zip(out, unsteered))


def test_steer_checks_model_shapes(model, direction):
    with pytest.raises(IndexError, match="out of range"):
        tk.steer(model, PROMPTS, vector=direction, layer=model.n_layers, alpha=1.0)
    with pytest.raises(ValueError, match="d_model"):
        tk.steer(model, PROMPTS, vector=torch.ones(7), layer=LAYER, alpha=1.0)
    with pytest.raises(IndexError, match="out of range"):
        tk.steer(model, PROMPTS, sae=GuidedSAE(model.d_model, 64, k=4), latent=64, layer=LAYER, alpha=1.0)


def test_steer_layer_is_read_like_get_activations(model, direction):
    """steer takes the layers get_activations takes: -1 is the last block, a numpy integer is an integer."""
    kw = dict(vector=direction, alpha=1.0, max_new_tokens=4)
    last = tk.steer(model, PROMPTS, layer=model.n_layers - 1, **kw)
    assert tk.steer(model, PROMPTS, layer=-1, **kw) == last
    assert tk.steer(model, PROMPTS, layer=np.int64(LAYER), **kw) == tk.steer(model, PROMPTS, layer=LAYER, **kw)
    assert tk.steer(model, PROMPTS, layer=np.int64(-1), **kw) == last
    # the same layers give the same activations, so the two verbs agree on what a layer is
    text = PROMPTS[:1]
    assert torch.equal(tk.get_activations(model, text, layer=-1).rows,
                       tk.get_activations(model, text, layer=model.n_layers - 1).rows)
    assert torch.equal(tk.get_activations(model, text, layer=np.int64(LAYER)).rows,
                       tk.get_activations(model, text, layer=LAYER).rows)


def test_mlp_activations_align_with_tokens(model):
    texts = ["A short one.", "A somewhat longer sentence with more tokens in it.", "Mid length text here."]
    mlp = tk.mlp_activations(model, texts, layer=LAYER, batch_size=2)
    resid = tk.get_activations(model, texts, layer=LAYER)
    assert mlp.shape == resid.shape
    # per-text MLP outputs equal those of the text run on its own (no padding leaks in)
    alone = tk.mlp_activations(model, texts[1:2], layer=LAYER)
    n0 = len(tk.get_activations(model, texts[:1], layer=LAYER))
    assert torch.allclose(mlp[n0:n0 + len(alone)], alone.rows, atol=1e-3)


def test_alpha_list_runs_every_alpha_in_one_batch(model, unsteered, direction):
    """steer(alpha=[...]) gives each (prompt, alpha) row its own edit: the same texts as one call per alpha."""
    gsae = GuidedSAE(model.d_model, 64, k=4, n_concepts=1)
    gsae.initialized.fill_(True)
    scar = SCAR(model.d_model, 64, k=4)
    scar.initialized.fill_(True)
    for kw, alphas in ((dict(vector=direction), [-1.0, 0.0, 1.0]),
                       (dict(sae=gsae, latent=0, gamma="balanced"), [-2.0, 2.0]),
                       (dict(sae=scar), [0.0, 1.0, 3.0])):
        swept = tk.steer(model, PROMPTS, layer=LAYER, alpha=alphas, max_new_tokens=8, **kw)
        assert list(swept) == alphas
        for a in alphas:
            assert swept[a] == tk.steer(model, PROMPTS, layer=LAYER, alpha=a, max_new_tokens=8, **kw), (kw, a)
    # the rows really differ: alpha 0 is the unsteered text, alpha 1 is not
    swept = tk.steer(model, PROMPTS, vector=direction, layer=LAYER, alpha=[0.0, 1.0], max_new_tokens=8)
    assert swept[0.0] == unsteered and all(a != b for a, b in zip(swept[1.0], unsteered))


def test_alpha_list_is_checked(model, direction):
    with pytest.raises(ValueError, match="repeat"):
        tk.steer(model, PROMPTS, vector=direction, layer=LAYER, alpha=[0.5, 0.5])
    with pytest.raises(ValueError, match="empty"):
        tk.steer(model, PROMPTS, vector=direction, layer=LAYER, alpha=[])
    with pytest.raises((TypeError, ValueError), match=r"alpha\[1\]"):
        tk.steer(model, PROMPTS, vector=direction, layer=LAYER, alpha=[0.5, float("nan")])


def test_per_text_edit_outside_a_verb_is_refused(direction):
    from toolkit.steering import _PerText

    fn = _PerText([steering_edit(layer=0, alpha=1.0, vector=torch.ones(D)).fn], 2)
    with pytest.raises(RuntimeError, match="text indices"):
        fn(torch.zeros(2, 3, D))
    # rows 0-1 take block 0, rows 2-3 block 1, whatever order the batch holds them in
    add = _PerText([lambda h: h + 1, lambda h: h - 1], 2).for_texts(np.array([3, 0, 2, 1]))
    assert add(torch.zeros(4, 1, 1)).flatten().tolist() == [-1.0, 1.0, -1.0, 1.0]
