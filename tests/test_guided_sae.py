"""GuidedSAE (G-SAE) and SCAR on planted data: the concept latent must find the planted concept."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import toolkit as tk
from toolkit.evaluate import auroc
from toolkit.sae import SCAR, GuidedSAE, SparseAutoencoder
from toolkit.sae_training import train_sae

D, N_LAT, K = 32, 64, 6


def planted(n: int = 3000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse random features plus, on a random 30% of tokens, a planted concept direction.

    The concept direction is as strong as a typical feature, so an SAE has no reason to give it
    a latent of its own at index 0 unless it is told to.
    """
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(24, D, generator=g)
    codes = (torch.rand(n, 24, generator=g) < 0.15).float() * torch.rand(n, 24, generator=g) * 2
    y = (torch.rand(n, generator=g) < 0.3).float()
    concept = torch.randn(D, generator=g)
    x = codes @ feats + y[:, None] * 1.5 * concept + 0.2 * torch.randn(n, D, generator=g) + 0.5
    return x, y


@pytest.fixture(scope="module")
def data():
    torch.manual_seed(0)
    x, y = planted()
    return x[:2400], y[:2400], x[2400:], y[2400:]


@pytest.fixture(scope="module")
def gsae(data):
    x, y, _, _ = data
    torch.manual_seed(0)
    sae = GuidedSAE(D, N_LAT, k=K, n_concepts=1)
    train_sae(sae, x, labels=y, steps=400, batch_size=256, progress=False, random_state=0)
    return sae


def test_concept_latent_detects_planted_concept(gsae, data):
    _, _, x_te, y_te = data
    with torch.no_grad():
        f0 = gsae.encode(x_te)[:, 0].numpy()
        p0 = gsae.concept_probs(x_te)[:, 0].numpy()
    # 0.95: the concept is linearly separable by construction (a 1.5x direction on top of noise
    # of std ~0.2 per dim); a latent that only half-learned it sits near 0.8.
    assert auroc(f0, y_te.numpy()) > 0.95
    assert auroc(p0, y_te.numpy()) > 0.95


def test_without_guidance_latent_zero_is_arbitrary(data):
    """Control: with concept_weight=0 nothing ties latent 0 to the concept."""
    x, y, x_te, y_te = data
    torch.manual_seed(0)
    sae = GuidedSAE(D, N_LAT, k=K, n_concepts=1, concept_weight=0.0)
    train_sae(sae, x, labels=y, steps=400, batch_size=256, progress=False, random_state=0)
    with torch.no_grad():
        p0 = sae.concept_probs(x_te)[:, 0].numpy()
    assert abs(auroc(p0, y_te.numpy()) - 0.5) < 0.3


def test_code_is_sigmoid_topk_and_reconstructs(gsae, data):
    _, _, x_te, _ = data
    with torch.no_grad():
        f = gsae.encode(x_te)
        x_hat = gsae.decode(f)
    assert ((f > 0).sum(dim=1) == K).all()
    assert float(f.max()) <= 1.0 and float(f.min()) >= 0.0
    assert float(tk.fvu(x_te, x_hat)) < 0.5  # far better than the mean (FVU 1)
    assert torch.allclose(gsae(x_te), x_hat)


def test_standardization_is_undone(gsae, data):
    """Shifting and scaling a token leaves the code unchanged and moves the reconstruction with it."""
    _, _, x_te, _ = data
    x = x_te[:50]
    with torch.no_grad():
        f1, r1 = gsae.encode(x), gsae(x)
        f2, r2 = gsae.encode(3.0 * x + 2.0), gsae(3.0 * x + 2.0)
    assert torch.allclose(f1, f2, atol=1e-5)
    assert torch.allclose(r2, 3.0 * r1 + 2.0, atol=1e-3)


def test_loss_matches_definition(gsae, data):
    x, y, _, _ = data
    xb, yb = x[:128], y[:128]
    with torch.no_grad():
        loss, info = gsae.loss(xb, labels=yb)
        x_hat = gsae(xb)
        recon = ((x_hat - xb).pow(2).sum(1) / xb.pow(2).sum(1)).mean()
        h0 = gsae.pre_acts(xb)[:, 0]
        bce = torch.nn.functional.binary_cross_entropy(torch.sigmoid(h0), yb)
    assert float(loss) == pytest.approx(float(recon + gsae.concept_weight * bce), rel=1e-4)
    assert info["recon"] == pytest.approx(float(recon), rel=1e-4)


@pytest.mark.parametrize(
    "labels, match",
    [
        (None, "supervised"),
        ("wide", "shape"),
        ("values", "0/1"),
        ("short", "rows|align"),
    ],
)
def test_label_errors(data, labels, match):
    x, y, _, _ = data
    bad = {"wide": y[:, None].repeat(1, 2), "values": y * 3, "short": y[:100]}.get(labels) if labels else None
    sae = GuidedSAE(D, N_LAT, k=K, n_concepts=1)
    with pytest.raises(ValueError, match=match):
        train_sae(sae, x, labels=bad, steps=2, progress=False)


def test_multi_concept_labels_accepted(data):
    x, y, _, _ = data
    y2 = torch.stack([y, 1 - y], dim=1)
    sae = GuidedSAE(D, N_LAT, k=K, n_concepts=2)
    hist = train_sae(sae, x, labels=y2, steps=5, progress=False, log_every=5)
    assert np.isfinite(hist["bce"]).all()


def test_constructor_errors():
    with pytest.raises(ValueError, match="n_concepts"):
        GuidedSAE(D, N_LAT, k=K, n_concepts=0)
    with pytest.raises(ValueError, match="k must be"):
        GuidedSAE(D, N_LAT, k=N_LAT + 1)
    with pytest.raises(ValueError, match="concept_weight"):
        GuidedSAE(D, N_LAT, k=K, concept_weight=-1.0)


def test_decode_without_stats_is_refused(gsae):
    f = torch.zeros(7, N_LAT)
    with pytest.raises(ValueError, match="statistics"):
        gsae.decode(f)


def test_latent_index_errors(gsae):
    with pytest.raises(IndexError, match="out of range"):
        gsae.decoder_direction(N_LAT)


def test_save_load_roundtrip(gsae, data, tmp_path):
    _, _, x_te, _ = data
    gsae.save(tmp_path / "g")
    again = GuidedSAE.load(tmp_path / "g")
    assert again.config() == gsae.config()
    with torch.no_grad():
        assert torch.allclose(again(x_te), gsae(x_te))
    with pytest.raises(ValueError, match="n_concepts"):
        GuidedSAE.load(tmp_path / "g", n_concepts=2)


def test_scar_detects_and_steers(data, tmp_path):
    x, y, x_te, y_te = data
    torch.manual_seed(0)
    scar = SCAR(D, N_LAT, k=K)
    train_sae(scar, x, labels=y, steps=400, batch_size=256, progress=False, random_state=0)
    with torch.no_grad():
        f = scar.encode(x_te)
        assert auroc(f[:, 0].numpy(), y_te.numpy()) > 0.95
        assert ((f[:, 1:] > 0).sum(dim=1) <= K).all()
        base = scar.steer_reconstruct(x_te, 0, 1.0)
        assert torch.allclose(base, scar(x_te), atol=1e-5)
        off = scar.steer_reconstruct(x_te, 0, 0.0)
        up = scar.steer_reconstruct(x_te, 0, 3.0)
        d0 = scar.W_dec[0] / scar.W_dec[0].norm()
        pos = y_te == 1
        # removing the latent moves concept tokens against the latent's own direction (in
        # standardized units), amplifying moves them along it
        z = lambda r: (r - r.mean(1, keepdim=True)) / r.std(1, keepdim=True)  # noqa: E731
        assert float(((z(off) - z(base))[pos] @ d0).mean()) < 0
        assert float(((z(up) - z(base))[pos] @ d0).mean()) > 0
    scar.save(tmp_path / "s")
    assert isinstance(SparseAutoencoder.load(tmp_path / "s"), SCAR)
    with pytest.raises(IndexError):
        scar.steer_reconstruct(x_te, N_LAT, 1.0)


def test_decoder_constraint_is_declared_not_patched(gsae, data):
    """G-SAE trains a free decoder scale, SCAR unit-norm rows; both through TopK's one code path."""
    x, y, _, _ = data
    assert not GuidedSAE.unit_norm_decoder and SCAR.unit_norm_decoder and tk.TopKSAE.unit_norm_decoder
    for cls in (GuidedSAE, SCAR):  # the top-k selection is TopK's, not a copy
        assert cls.topk_code is tk.TopKSAE.topk_code
    assert not torch.allclose(gsae.W_dec.norm(dim=1), torch.ones(N_LAT), atol=1e-3)
    torch.manual_seed(0)
    scar = SCAR(D, N_LAT, k=K)
    train_sae(scar, x, labels=y, steps=20, batch_size=256, progress=False, random_state=0)
    assert torch.allclose(scar.W_dec.norm(dim=1), torch.ones(N_LAT), atol=1e-5)
    with torch.no_grad():  # SCAR's code: ReLU(h_0) outside the race, then TopK-ReLU of the rest
        pre = scar.pre_acts(x[:50])
        f = scar.code(pre)
    assert torch.equal(f[:, 0], torch.relu(pre[:, 0]))
    assert torch.equal(f[:, 1:], tk.TopKSAE.topk_code(scar, pre[:, 1:], K))
    assert "_TopKCode" not in SparseAutoencoder._registry  # a building block, not a checkpoint kind


@pytest.mark.parametrize("kind", ["topk", "gsae", "scar"])
def test_training_decodes_only_the_chosen_rows_and_matches_the_dense_product(kind):
    """The training loss sums the k chosen decoder rows; it must equal decode(encode(x)) and give the
    same gradients as the dense [n_latents] product, up to float summation order."""
    torch.manual_seed(0)
    x = torch.randn(64, 24) * 3 + 1
    sae = {"topk": lambda: tk.TopKSAE(24, 96, k=5), "gsae": lambda: tk.GuidedSAE(24, 96, k=5, n_concepts=2),
           "scar": lambda: tk.SCAR(24, 96, k=5)}[kind]()
    sae.initialize(x)
    labels = None if kind == "topk" else (torch.rand(64, 1 if kind == "scar" else 2) > 0.5).float()
    if kind == "topk":
        sae.tokens_since_fired[:40] = sae.dead_tokens  # some dead latents, so AuxK runs too
    loss, info = sae.loss(x, labels=labels)
    loss.backward()
    sparse_grads = {n: p.grad.clone() for n, p in sae.named_parameters()}
    with torch.no_grad():
        dense = sae(x)  # the public path: dense code, then f @ W_dec
    sae.zero_grad()
    pre = sae.pre_acts(x)
    f = sae.code(pre)
    assert torch.equal(f, info["latents"])  # the logged code is the dense code
    x_hat = sae.decode(f) if kind == "topk" else sae.decode(f, sae._last_stats)
    torch.testing.assert_close(x_hat.detach(), dense)
    if kind == "topk":
        dead = sae.dead_mask()  # AuxK by hand, with the dense product
        f_aux = sae.topk_code(pre.masked_fill(~dead, float("-inf")), min(sae.aux_k, int(dead.sum())))
        residual = ((x - x_hat) / sae.scale).detach()
        aux = (f_aux @ sae.W_dec - residual).pow(2).sum(-1).mean()
        assert aux > 0
        ref = sae.reconstruction_loss(x, x_hat) + sae.aux_coeff * aux
    else:
        ref = ((x_hat - x).pow(2).sum(-1) / x.pow(2).sum(-1)).mean() + sae.concept_weight * \
            torch.nn.functional.binary_cross_entropy_with_logits(pre[:, : sae.n_concepts], labels)
    torch.testing.assert_close(loss.detach(), ref.detach(), rtol=1e-5, atol=1e-6)
    ref.backward()
    for n, p in sae.named_parameters():
        torch.testing.assert_close(sparse_grads[n], p.grad, rtol=1e-4, atol=1e-5, msg=f"gradient of {n}")
