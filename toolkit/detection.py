"""Detecting a concept in activations, method against method, on held-out data.

Two comparisons that the evaluation benchmarks make, written so that any representation can enter them:

- :func:`direction_aurocs`: a linear probe, DiffMean (the difference of class means, AxBench's strongest
  detector) and the PCA direction, each fitted on the training rows and scored by AUROC on the test rows.
- :func:`sparse_probing`: SAEBench's sparse probing (Karvonen et al. 2025; Gurnee et al. 2023). The ``k`` latents
  whose class means differ most on the training split are chosen, a logistic probe is fitted on those ``k``
  alone, and its test accuracy is compared with a probe on the full activations. A dictionary whose
  concepts sit in few latents scores well at small ``k``.

Everything is fitted on the training split only, and every random choice takes ``random_state``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .directions import mean_difference, pca_direction
from .evaluate import auroc
from .validation import as_numpy, check_int

__all__ = ["direction_aurocs", "sparse_probing"]


def _split(name: str, X_train: Any, y_train: Any, X_test: Any, y_test: Any) -> tuple[np.ndarray, ...]:
    """Float64 rows and 0/1 labels, checked to agree in shape; both classes on both sides."""
    Xtr = as_numpy(X_train, f"{name}_train").astype(np.float64)
    Xte = as_numpy(X_test, f"{name}_test").astype(np.float64)
    ytr = as_numpy(y_train, "y_train").reshape(-1)
    yte = as_numpy(y_test, "y_test").reshape(-1)
    for split, X, y in (("train", Xtr, ytr), ("test", Xte, yte)):
        if X.ndim != 2:
            raise ValueError(f"{name}_{split} must be 2-D [n_samples, n_features], got shape {X.shape}")
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"{name}_{split} has {X.shape[0]} rows but y_{split} has {y.shape[0]} labels")
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"y_{split} must hold 0/1 labels, got values {sorted(set(np.unique(y).tolist()))[:5]}")
        if len(np.unique(y)) < 2:
            raise ValueError(f"y_{split} has one class only ({int(y[0])}): detection needs both")
        if not np.isfinite(X).all():
            raise ValueError(f"{name}_{split} holds non-finite values")
    if Xtr.shape[1] != Xte.shape[1]:
        raise ValueError(f"{name}_train has {Xtr.shape[1]} features but {name}_test has {Xte.shape[1]}")
    return Xtr, ytr.astype(np.int64), Xte, yte.astype(np.int64)


def _probe(X: np.ndarray, y: np.ndarray, random_state: int):
    """A standardised L2 logistic regression: the scale of a residual dimension or a latent must not decide it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=random_state)).fit(X, y)


def direction_aurocs(X_train: Any, y_train: Any, X_test: Any, y_test: Any, *,
                     random_state: int = 0) -> pd.Series:
    """Held-out AUROC of three linear detectors fitted on ``(X_train, y_train)``: ``"linear probe"``,
    ``"DiffMean"`` (projection on the unit difference of class means) and ``"PCA"`` (projection on the first
    principal direction of the training rows, oriented from the negative to the positive class; unsupervised
    but for that sign)."""
    random_state = check_int("random_state", random_state, minimum=0)
    Xtr, ytr, Xte, yte = _split("X", X_train, y_train, X_test, y_test)
    probe = _probe(Xtr, ytr, random_state)
    diff = mean_difference(Xtr[ytr == 1], Xtr[ytr == 0])
    pc1 = pca_direction(Xtr, random_state=random_state, X_pos=Xtr[ytr == 1], X_neg=Xtr[ytr == 0])
    return pd.Series({"linear probe": auroc(probe.decision_function(Xte), yte),
                      "DiffMean": auroc(Xte @ diff, yte),
                      "PCA": auroc(Xte @ pc1, yte)}, name="test AUROC")


def sparse_probing(latents_train: Any, y_train: Any, latents_test: Any, y_test: Any, *,
                   ks: Sequence[int] = (1, 2, 5), dense: tuple[Any, Any] | None = None,
                   random_state: int = 0) -> pd.DataFrame:
    """SAEBench-style sparse probing: for each ``k``, a probe on the ``k`` latents chosen by class-mean difference.

    The latents are ranked on the training split by ``|mean over positives - mean over negatives|`` divided by
    the latent's training standard deviation (so a latent is not chosen for its scale alone; a constant latent
    scores 0), the top ``k`` are kept, and a standardised logistic regression is fitted on them. ``dense``
    ``(X_train, X_test)`` adds the baseline row: the same probe on the full activations (the residual stream
    the SAE reads). Returns one row per ``k`` (and ``"dense"``) with the test accuracy, the test AUROC and the
    chosen latents.
    """
    random_state = check_int("random_state", random_state, minimum=0)
    Ztr, ytr, Zte, yte = _split("latents", latents_train, y_train, latents_test, y_test)
    ks = list(ks) if not isinstance(ks, (int, np.integer)) else [ks]
    if not ks:
        raise ValueError("ks is empty: give the numbers of latents to probe with, e.g. (1, 2, 5)")
    ks = [check_int("k", k, minimum=1, maximum=Ztr.shape[1]) for k in ks]
    sd = Ztr.std(axis=0)
    gap = np.abs(Ztr[ytr == 1].mean(axis=0) - Ztr[ytr == 0].mean(axis=0))
    score = np.divide(gap, sd, out=np.zeros_like(gap), where=sd > 0)
    ranking = np.argsort(-score, kind="stable")  # ties go to the lower index: deterministic
    rows = []
    for k in ks:
        chosen = np.sort(ranking[:k])
        probe = _probe(Ztr[:, chosen], ytr, random_state)
        rows.append({"probe": f"top {k} latents", "k": k,
                     "test accuracy": float(probe.score(Zte[:, chosen], yte)),
                     "test AUROC": auroc(probe.decision_function(Zte[:, chosen]), yte),
                     "latents": chosen.tolist()})
    if dense is not None:
        if not (isinstance(dense, tuple) and len(dense) == 2):
            raise TypeError("dense must be a pair (X_train, X_test) of the activations the latents were read from")
        Xtr, _, Xte, _ = _split("dense", dense[0], ytr, dense[1], yte)
        probe = _probe(Xtr, ytr, random_state)
        rows.append({"probe": f"dense ({Xtr.shape[1]} dims)", "k": Xtr.shape[1],
                     "test accuracy": float(probe.score(Xte, yte)),
                     "test AUROC": auroc(probe.decision_function(Xte), yte), "latents": None})
    return pd.DataFrame(rows).set_index("probe")
