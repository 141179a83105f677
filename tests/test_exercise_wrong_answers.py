"""Each exercise check must reject plausible wrong answers, not only the empty stub.

For every exercise whose check runs on its own (without the notebook's earlier state), this file keeps known-wrong
implementations (off by one, wrong sign, missing normalisation, wrong axis, a missing rule) and asserts that the
check raises on each. The checks that need the notebook's state (a model, a data set built earlier) are exercised
by the notebooks themselves and by the stub test in test_exercises.py.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_exercises as mx  # noqa: E402

WRONG = {
    ("01_shortcuts", "add_decoy"): {
        "rows and columns of the corner swapped": '''
def add_decoy(images, decoy_labels, corners, patch_size=4):
    out = np.array(images, dtype=np.float32, copy=True)
    n, h, w = out.shape
    mask = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        r0 = 0 if corners[i] in (0, 2) else h - patch_size
        c0 = 0 if corners[i] in (0, 1) else w - patch_size
        out[i, r0:r0 + patch_size, c0:c0 + patch_size] = 1.0 - 0.1 * decoy_labels[i]
        mask[i, r0:r0 + patch_size, c0:c0 + patch_size] = True
    return out, mask
''',
        "patch one pixel too small": '''
def add_decoy(images, decoy_labels, corners, patch_size=4):
    out = np.array(images, dtype=np.float32, copy=True)
    n, h, w = out.shape
    mask = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        r0 = 0 if corners[i] in (0, 1) else h - patch_size
        c0 = 0 if corners[i] in (0, 2) else w - patch_size
        out[i, r0:r0 + patch_size - 1, c0:c0 + patch_size - 1] = 1.0 - 0.1 * decoy_labels[i]
        mask[i, r0:r0 + patch_size - 1, c0:c0 + patch_size - 1] = True
    return out, mask
''',
    },
    ("01_shortcuts", "project_out"): {
        "direction not normalised": '''
def project_out(X, direction):
    u = np.asarray(direction, dtype=np.float64)
    return np.asarray(X, dtype=np.float64) - np.outer(X @ u, u)
''',
    },
    ("02_moral_direction", "filter_step"): {
        "no min_keep fallback": '''
def filter_step(candidate_ids, scores, threshold, min_keep):
    scores = np.asarray(scores, dtype=float)
    passing = np.flatnonzero(scores >= threshold)
    return candidate_ids[int(passing[0])] if len(passing) else candidate_ids[0]
''',
        "the best-scoring candidate instead of the most likely passing one": '''
def filter_step(candidate_ids, scores, threshold, min_keep):
    return candidate_ids[int(np.argmax(scores))]
''',
    },
    ("03_sae_training", "topk_activation"): {
        "no ReLU on the kept values": '''
def topk_activation(pre, k):
    values, indices = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, values)
''',
        "top k over the wrong axis": '''
def topk_activation(pre, k):
    values, indices = pre.topk(k, dim=0)
    return torch.zeros_like(pre).scatter(0, indices, torch.relu(values))
''',
    },
    ("03_sae_training", "normalize_decoder_rows"): {
        "columns normalised instead of rows": '''
def normalize_decoder_rows(W_dec):
    return W_dec / W_dec.norm(dim=0, keepdim=True).clamp_min(1e-8)
''',
    },
    ("05_guided_sae_steering", "gsae_loss"): {
        "reconstruction error not normalised by ||x||^2": '''
def gsae_loss(x, x_hat, h_concepts, labels, weight):
    recon = (x_hat - x).pow(2).sum(dim=-1).mean()
    return recon + weight * torch.nn.functional.binary_cross_entropy_with_logits(h_concepts, labels.float())
''',
        "BCE on sigmoid(h) treated as logits": '''
def gsae_loss(x, x_hat, h_concepts, labels, weight):
    recon = ((x_hat - x).pow(2).sum(dim=-1) / x.pow(2).sum(dim=-1)).mean()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(torch.sigmoid(h_concepts), labels.float())
    return recon + weight * bce
''',
    },
    ("05_guided_sae_steering", "beta_scaled_direction"): {
        "beta without dividing by ||d_i||": '''
def beta_scaled_direction(h, d_i, alpha):
    return alpha * h.norm(dim=-1, keepdim=True) * d_i
''',
    },
    ("05_guided_sae_steering", "balanced_gamma"): {
        "toward and away swapped": '''
def balanced_gamma(f_i, alpha):
    return f_i if alpha > 0 else 1.0 - f_i
''',
    },
    ("06_evaluation", "rank_latents"): {
        "not divided by the standard deviation": '''
def rank_latents(Z, y):
    return np.argsort(-np.abs(Z[y == 1].mean(0) - Z[y == 0].mean(0)), kind="stable")
''',
        "signed difference instead of its size": '''
def rank_latents(Z, y):
    sd = Z.std(axis=0)
    gap = Z[y == 1].mean(0) - Z[y == 0].mean(0)
    return np.argsort(-np.divide(gap, sd, out=np.zeros_like(gap), where=sd > 0), kind="stable")
''',
    },
    ("06_evaluation", "aggregate"): {
        "arithmetic mean with the zero rule": '''
def aggregate(concept, relevance, fluency):
    S = np.stack([np.asarray(s, dtype=float) for s in (concept, relevance, fluency)])
    return np.where((S > 0).all(0), S.mean(0), 0.0)
''',
        "harmonic mean without the zero rule (zeros counted as tiny)": '''
def aggregate(concept, relevance, fluency):
    S = np.stack([np.asarray(s, dtype=float) for s in (concept, relevance, fluency)]).clip(0.5)
    return 3.0 / (1.0 / S).sum(0)
''',
    },
    ("06_evaluation", "diffmean_orthogonal"): {
        "common direction not removed": '''
def diffmean_orthogonal(X, y):
    d = X[y == 1].mean(0) - X[y == 0].mean(0)
    return d / np.linalg.norm(d)
''',
        "wrong sign": '''
def diffmean_orthogonal(X, y):
    d = X[y == 0].mean(0) - X[y == 1].mean(0)
    mu = X.mean(0) / np.linalg.norm(X.mean(0))
    d = d - (d @ mu) * mu
    return d / np.linalg.norm(d)
''',
        "not a unit vector": '''
def diffmean_orthogonal(X, y):
    d = X[y == 1].mean(0) - X[y == 0].mean(0)
    mu = X.mean(0) / np.linalg.norm(X.mean(0))
    return d - (d @ mu) * mu
''',
    },
}


def _exercise(stem: str, name: str):
    path = ROOT / "notebooks" / f"{stem}.ipynb"
    nb = nbformat.read(path, as_version=4)
    ex = next((e for e in mx.find_exercises(nb, path.name) if e.name == name), None)
    assert ex is not None, f"{path.name} has no exercise {name!r}; update WRONG in this test"
    return nb, ex


CASES = [pytest.param(stem, name, why, src, id=f"{stem}:{name}:{why}")
         for (stem, name), wrongs in WRONG.items() for why, src in wrongs.items()]


@pytest.mark.parametrize("stem,name", sorted(WRONG), ids=[f"{s}:{n}" for s, n in sorted(WRONG)])
def test_master_passes_its_standalone_check(stem, name):
    nb, ex = _exercise(stem, name)
    err = mx.run_exercise(nb, ex)
    assert err is None, f"the master solution of {name} fails its own check: {type(err).__name__}: {err}"


@pytest.mark.parametrize("stem,name,why,source", CASES)
def test_check_rejects_a_plausible_wrong_answer(stem, name, why, source):
    nb, ex = _exercise(stem, name)
    err = mx.run_exercise(nb, ex, solution_source=source)
    assert err is not None, f"check_{name} accepted a wrong {name} ({why})"
    assert not isinstance(err, (NameError, SyntaxError)), f"the wrong answer itself is broken: {err!r}"
