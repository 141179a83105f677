"""Directions in representation space: linear algebra on rows of activations or embeddings.

PCA and mean-difference directions, the scalar projection on a direction and the removal of it. These
helpers accept numpy arrays or torch tensors (``project`` and ``remove_direction`` return the same
kind), so they work on sentence-encoder embeddings as well as on residual-stream activations inside an
``Edit`` function. The moral-direction estimator built on them is :mod:`toolkit.moral_direction`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .validation import as_numpy, check_finite, check_int

__all__ = ["pca_direction", "mean_difference", "project", "remove_direction", "orient_sign"]


def _rows(X: Any, name: str = "X") -> np.ndarray:
    """Float64 2-D numpy copy of X ``[n_samples, n_features]``: at least one row, all finite."""
    X = as_numpy(X, name, dtype=np.float64, ndim=2)
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {X.shape}); pass at least one row")
    check_finite(name, X)
    return X


def _unit(d: Any, name: str = "d") -> np.ndarray:
    d = as_numpy(d, name, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(d))
    if d.size == 0 or not np.isfinite(norm) or norm == 0.0:
        raise ValueError(f"direction {name} must be a non-zero finite vector; got norm {norm}")
    return d / norm


def orient_sign(d: np.ndarray) -> int:
    """The default deterministic sign rule for an unlabeled direction.

    Returns +1 or -1 such that ``sign * d`` has its largest-magnitude entry
    positive (ties go to the lowest index). This is the same convention as
    scikit-learn's ``svd_flip`` and makes the output independent of which
    sign the SVD solver happened to return.
    """
    d = np.asarray(d).reshape(-1)
    i = int(np.argmax(np.abs(d)))
    return 1 if d[i] >= 0 else -1


def pca_direction(
    X: Any,
    random_state: int = 0,
    n_components: int = 1,
    X_pos: Any | None = None,
    X_neg: Any | None = None,
    *,
    return_pca: bool = False,
) -> Any:
    """First principal direction of X, as a unit vector with a deterministic sign.

    Sign rule: if ``X_pos`` and ``X_neg`` are given, the direction points from
    the negative examples to the positive ones (mean projection of X_pos at or above
    that of X_neg; a tie counts as +1, so the rule is total). Otherwise the
    largest-magnitude entry is made positive (:func:`orient_sign`).

    ``n_components`` components are fitted (capped at the data's rank bound; more components
    change nothing about PC1 with the full SVD solver, which also makes the fit deterministic).
    Returns a float64 array of shape [n_features]; with ``return_pca=True``, the pair
    ``(direction, pca)`` where ``pca`` is the fitted ``sklearn.decomposition.PCA`` (its other
    components, ``explained_variance_ratio_`` and ``mean_``): the estimator
    :class:`tk.MoralDirection` is built on this one function.
    """
    from sklearn.decomposition import PCA

    X = _rows(X)
    if X.shape[0] < 2:
        raise ValueError(f"pca_direction needs at least 2 rows; got {X.shape[0]}")
    n_components = min(check_int("n_components", n_components, minimum=1), X.shape[0], X.shape[1])
    pca = PCA(n_components=n_components, svd_solver="full", random_state=random_state).fit(X)
    d = pca.components_[0].astype(np.float64)
    if (X_pos is None) != (X_neg is None):
        raise ValueError("pass both X_pos and X_neg (to orient the direction from negative to positive), or neither")
    if X_pos is not None:
        sign = 1 if (project(_rows(X_pos, "X_pos"), d).mean() - project(_rows(X_neg, "X_neg"), d).mean()) >= 0 else -1
    else:
        sign = orient_sign(d)
    return (sign * d, pca) if return_pca else sign * d


def mean_difference(X_pos: Any, X_neg: Any, normalize: bool = True, standardize: bool = False) -> np.ndarray:
    """``mean(X_pos) - mean(X_neg)``, a unit vector by default.

    The difference of class means is the simplest linear concept direction; it
    points from the negative class to the positive one.

    ``standardize=True`` divides each feature's difference by that feature's pooled within-class
    variance: the discriminant direction of diagonal LDA (Gaussian naive Bayes with a shared
    variance). It still lives in the original space (project raw rows on it), but a feature with a
    huge spread no longer dominates just because of its scale, which matters for residual streams
    with a few "massive activation" dimensions (Sun et al. 2024). Needs at least 2 rows per class.
    """
    A = _rows(X_pos, "X_pos")
    B = _rows(X_neg, "X_neg")
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"X_pos and X_neg must have the same width; got {A.shape[1]} and {B.shape[1]}")
    d = A.mean(0) - B.mean(0)
    if standardize:
        if A.shape[0] < 2 or B.shape[0] < 2:
            raise ValueError(f"standardize=True needs at least 2 rows per class; got {A.shape[0]} and {B.shape[0]}")
        pooled = (((A - A.mean(0)) ** 2).sum(0) + ((B - B.mean(0)) ** 2).sum(0)) / (A.shape[0] + B.shape[0] - 2)
        # A feature that is constant within both classes would divide by zero; a floor relative to
        # the typical variance keeps the direction finite and deterministic.
        d = d / np.maximum(pooled, 1e-6 * float(np.median(pooled)) + 1e-12)
    if normalize:
        d = _unit(d, "mean(X_pos) - mean(X_neg)")
    return d


def project(X: Any, d: Any) -> Any:
    """Scalar projection of each row of X on the unit vector along d: ``X @ d / |d|``.

    numpy in, numpy out ([n]); torch in, torch out (same dtype and device, shape X.shape[:-1]).
    """
    if isinstance(X, torch.Tensor):
        u = torch.as_tensor(_unit(d), dtype=X.dtype, device=X.device)
        if X.shape[-1] != u.shape[0]:
            raise ValueError(f"X has width {X.shape[-1]} but the direction has {u.shape[0]} entries")
        return X @ u
    u = _unit(d)
    X = np.asarray(X, dtype=np.float64)
    if X.shape[-1] != u.shape[0]:
        raise ValueError(f"X has width {X.shape[-1]} but the direction has {u.shape[0]} entries")
    return X @ u


def remove_direction(X: Any, d: Any) -> Any:
    """Remove the component along d from every row: ``X - (X @ u) u^T`` with ``u = d / |d|``.

    After removal, ``project(result, d)`` is zero (to rounding). Works on numpy
    arrays and on torch tensors of any leading shape ([..., n_features]); the
    result keeps the input's type, dtype and device. ``d`` may also be a 2-D
    array [k, n_features] of directions: then the whole span is removed
    (orthonormalised with a QR decomposition first).
    """
    D = as_numpy(d, "d", dtype=np.float64)
    if D.ndim == 1:
        D = _unit(D)[None, :]
    elif D.ndim == 2:
        if D.shape[0] == 0:
            raise ValueError("d has no directions (shape (0, n)); pass at least one")
        Q, _ = np.linalg.qr(D.T)  # columns: orthonormal basis of the span
        D = Q.T
    else:
        raise ValueError(f"d must be a vector or a [k, n_features] array; got shape {D.shape}")
    if isinstance(X, torch.Tensor):
        if X.shape[-1] != D.shape[1]:
            raise ValueError(f"X has width {X.shape[-1]} but the direction has {D.shape[1]} entries")
        U = torch.as_tensor(D, dtype=X.dtype, device=X.device)
        return X - (X @ U.T) @ U
    Xn = np.asarray(X)
    out_dtype = Xn.dtype if np.issubdtype(Xn.dtype, np.floating) else np.float64
    Xf = Xn.astype(np.float64)
    if Xf.shape[-1] != D.shape[1]:
        raise ValueError(f"X has width {Xf.shape[-1]} but the direction has {D.shape[1]} entries")
    return (Xf - (Xf @ D.T) @ D).astype(out_dtype)
