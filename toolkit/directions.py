"""Directions in representation space: PCA and mean-difference directions,
projection onto a direction and removal of it.

These helpers accept numpy arrays or torch tensors (and return the same kind),
so they can be used on sentence-encoder embeddings as well as on residual-stream
activations inside an ``Edit`` function.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "pca_direction",
    "mean_difference",
    "project",
    "remove_direction",
    "orient_sign",
    "MoralDirection",
    "load_templates",
    "load_moral_actions",
    "load_mort_prompts",
    "filter_candidates",
    "moral_filtered_generate",
]


def _is_torch(x: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency of the toolkit
        return False
    return isinstance(x, torch.Tensor)


def _as_2d_array(X: Any, name: str = "X") -> np.ndarray:
    """Float64 2-D numpy copy of X with a clear error for bad shapes."""
    if _is_torch(X):
        X = X.detach().to("cpu").double().numpy()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [n_samples, n_features]; got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {X.shape}); pass at least one row")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or inf values")
    return X


def _unit(d: Any, name: str = "d") -> np.ndarray:
    if _is_torch(d):
        d = d.detach().to("cpu").double().numpy()
    d = np.asarray(d, dtype=np.float64).reshape(-1)
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
) -> np.ndarray:
    """First principal direction of X, as a unit vector with a deterministic sign.

    Sign rule: if ``X_pos`` and ``X_neg`` are given, the direction points from
    the negative examples to the positive ones (mean projection of X_pos above
    that of X_neg). Otherwise the largest-magnitude entry is made positive
    (:func:`orient_sign`).

    ``n_components`` is passed to the PCA (more components change nothing about
    PC1 with the full SVD solver; it is here so callers can mirror a paper's setup).
    Returns a float64 array of shape [n_features].
    """
    from sklearn.decomposition import PCA

    X = _as_2d_array(X)
    if X.shape[0] < 2:
        raise ValueError(f"pca_direction needs at least 2 rows; got {X.shape[0]}")
    n_components = int(min(n_components, X.shape[0], X.shape[1]))
    pca = PCA(n_components=n_components, svd_solver="full", random_state=random_state).fit(X)
    d = pca.components_[0].astype(np.float64)
    if X_pos is not None and X_neg is not None:
        sign = 1 if (project(X_pos, d).mean() - project(X_neg, d).mean()) >= 0 else -1
    else:
        sign = orient_sign(d)
    return sign * d


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
    A = _as_2d_array(X_pos, "X_pos")
    B = _as_2d_array(X_neg, "X_neg")
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
    if _is_torch(X):
        import torch

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
    D = np.asarray(d.detach().cpu().double().numpy() if _is_torch(d) else d, dtype=np.float64)
    if D.ndim == 1:
        D = _unit(D)[None, :]
    elif D.ndim == 2:
        if D.shape[0] == 0:
            raise ValueError("d has no directions (shape (0, n)); pass at least one")
        Q, _ = np.linalg.qr(D.T)  # columns: orthonormal basis of the span
        D = Q.T
    else:
        raise ValueError(f"d must be a vector or a [k, n_features] array; got shape {D.shape}")
    if _is_torch(X):
        import torch

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


# ----------------------------------------------------------------------------------------------
# The moral direction (Schramowski et al., Nature Machine Intelligence 2022)
# ----------------------------------------------------------------------------------------------

MORAL_DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "moral"
POOLINGS = ("action", "mean", "last")

# Used only to orient PC1 when ``fit`` gets actions without labels: a handful of unambiguous
# actions whose mean score must come out positive (normative) minus negative.
_ANCHOR_POS = ("help", "love", "smile", "thank", "comfort")
_ANCHOR_NEG = ("kill", "murder", "torture", "steal", "harm")


def load_templates(path: str | Path | None = None) -> list[str]:
    """The question templates (one per line, each with a single ``{}``); default data/moral/templates.txt."""
    path = Path(path) if path is not None else MORAL_DATA_DIR / "templates.txt"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load_moral_actions(which: str = "pca"):
    """A moral data table from data/moral as a DataFrame.

    ``"pca"``: the clearly positive/negative actions (columns action, label in {+1, -1}, form);
    ``"eval"``: the evaluation actions with context (action, acceptability in [-1, 1], category);
    ``"judge"``: sentences for the continuation judge (text, non_normative in {0, 1}).
    """
    import pandas as pd

    files = {"pca": "pca_actions.csv", "eval": "eval_actions.csv", "judge": "judge_sentences.csv"}
    if which not in files:
        raise ValueError(f"which={which!r} is not a moral data table; use one of {sorted(files)}")
    return pd.read_csv(MORAL_DATA_DIR / files[which])


def load_mort_prompts() -> list[str]:
    """The provocative sentence openings of data/moral/mort_prompts.txt (one per line)."""
    return [line.strip() for line in (MORAL_DATA_DIR / "mort_prompts.txt").read_text().splitlines() if line.strip()]


def _check_templates(templates: Sequence[str] | None) -> list[str]:
    templates = load_templates() if templates is None else ([templates] if isinstance(templates, str) else list(templates))
    if not templates:
        raise ValueError("templates is empty: pass at least one template such as 'Should I {}?'")
    for t in templates:
        if not isinstance(t, str) or t.count("{}") != 1:
            raise ValueError(f"template {t!r} must be a string with exactly one '{{}}' slot, e.g. 'Should I {{}}?'")
    return templates


def _check_phrases(phrases: Sequence[str] | str, what: str = "phrases") -> list[str]:
    if isinstance(phrases, str):
        phrases = [phrases]
    if isinstance(phrases, np.ndarray):
        phrases = phrases.tolist()
    phrases = list(phrases)
    if not phrases:
        raise ValueError(f"{what} is empty: pass at least one phrase, e.g. ['help people']")
    for i, p in enumerate(phrases):
        if not isinstance(p, str):
            raise TypeError(f"{what}[{i}] must be a string, got {type(p).__name__} ({p!r})")
        if not p.strip():
            raise ValueError(f"{what}[{i}] is an empty string; every phrase needs some text")
    return phrases


def _fill_templates(phrases: list[str], templates: list[str]) -> tuple[list[str], list[tuple[int, int]]]:
    """Every phrase in every template (phrase-major order) and the character range of the phrase in each."""
    sentences, spans = [], []
    for p in phrases:
        for t in templates:
            start = t.index("{}")
            sentences.append(t.format(p))
            spans.append((start, start + len(p)))
    return sentences, spans


def _labeled_actions(actions: Any) -> tuple[list[str], np.ndarray | None]:
    """Normalise the ``actions`` argument of MoralDirection.fit to (phrases, labels or None)."""
    import pandas as pd

    if actions is None:
        table = load_moral_actions("pca")
        return table["action"].tolist(), table["label"].to_numpy(dtype=float)
    if isinstance(actions, pd.DataFrame):
        if "action" not in actions.columns:
            raise ValueError(f"an actions DataFrame needs an 'action' column; got columns {list(actions.columns)}")
        labels = actions["label"].to_numpy(dtype=float) if "label" in actions.columns else None
        return _check_phrases(actions["action"].tolist(), "actions"), labels
    if isinstance(actions, dict):
        phrases = _check_phrases(list(actions.keys()), "actions")
        return phrases, np.asarray(list(actions.values()), dtype=float)
    if isinstance(actions, str):
        return _check_phrases([actions], "actions"), None
    actions = list(actions)
    if actions and all(isinstance(a, (tuple, list)) and len(a) == 2 for a in actions):
        phrases = _check_phrases([a[0] for a in actions], "actions")
        return phrases, np.asarray([a[1] for a in actions], dtype=float)
    return _check_phrases(actions, "actions"), None


def _backend_kind(obj: Any) -> str:
    from .models import Model

    if isinstance(obj, Model):
        return "model"
    if not isinstance(obj, (str, bytes)) and callable(getattr(obj, "encode", None)):
        return "encoder"
    raise TypeError(
        f"expected a sentence encoder (an object with .encode(list[str]) -> array, e.g. tk.load_encoder()) "
        f"or a toolkit Model (tk.load_model()); got {type(obj).__name__}"
    )


def _backend_name(obj: Any) -> str:
    for attr in ("toolkit_name", "name", "name_or_path"):
        value = getattr(obj, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(obj).__name__


class _fit_from_class:
    """Lets ``MoralDirection.fit(enc)`` (as the DESIGN writes it) and ``MoralDirection().fit(enc)`` both work."""

    def __init__(self, func):
        self.func = func
        functools.update_wrapper(self, func)

    def __get__(self, obj, cls):
        target = obj if obj is not None else cls()
        return functools.partial(self.func, target)


class MoralDirection:
    """The moral direction: PC1 of template-averaged embeddings of clearly good and bad actions.

    Usage::

        md = tk.MoralDirection.fit(tk.load_encoder())          # or .fit(model, layer=L)
        md.score(["help people", "kill people"])                # about [-1, 1]; positive = normative

    Procedure (Schramowski et al. 2022): every action is put into each question template
    ("Should I {}?", ...), the embeddings are averaged over templates, a PCA (``n_components``) is
    fitted on the actions, and a phrase's score is its centred projection on PC1.

    Sign rule: PC1 is oriented so that the labeled positive actions project above the negative ones
    (for unlabeled actions, a fixed anchor list decides). Scaling: scores are divided by the largest
    |projection| among the fitted actions, so the reference set lies in [-1, 1]. Both are
    deterministic, and ``svd_solver="full"`` makes the PCA itself deterministic.

    For a language model the embedding of a sentence is the residual stream after block ``layer``,
    pooled over tokens. ``pooling="action"`` (default) averages only the tokens of the action inside
    each template: the template's own tokens are shared by every action and carry no information
    about it, and averaging them in mixes a length-dependent share of them (and of position 0,
    which in SmolLM2 is an attention sink with a few huge dimensions) into every embedding.
    ``"mean"`` averages all tokens (BOS excluded) and ``"last"`` takes the last one. Raw text
    scored with ``use_templates=False`` counts as one action (all its tokens). A sentence encoder
    pools by itself, so ``pooling`` does not apply to it.
    Fitted attributes: ``components_``, ``explained_variance_ratio_``, ``mean_``, ``sign_``,
    ``scale_``, ``direction_`` (unit vector, oriented), ``layer_``, ``templates_``, ``actions_``,
    ``labels_``, ``n_features_in_``, ``backend_`` ("encoder" or "model"), ``backend_name_``.
    """

    def __init__(self, n_components: int = 5, pooling: str = "action", batch_size: int = 64):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r} is not valid; use one of {POOLINGS}")
        if int(n_components) < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.n_components = int(n_components)
        self.pooling = pooling
        self.batch_size = int(batch_size)

    # -- embedding -------------------------------------------------------------------------
    @staticmethod
    def default_layer(model: Any) -> int:
        """The layer used when ``fit(model)`` gets none: the middle block, ``n_layers // 2``.

        Chosen by principle, not by agreement with labels: abstract, sentence-level properties are
        most linearly accessible in the middle of a transformer, after the early token-level blocks
        and before the late blocks that specialise in predicting the next token.
        """
        return int(model.n_layers) // 2

    def _embed_sentences(self, backend: Any, sentences: list[str], layer: Any,
                         spans: list[tuple[int, int]] | None = None) -> Any:
        """Embeddings ``[n, dim]``; for a model, ``layer`` may be a list (then a dict {layer: [n, dim]}).
        ``spans`` are the character ranges of the action in each sentence (used by ``pooling="action"``)."""
        kind = _backend_kind(backend)
        if kind == "encoder":
            X = backend.encode(sentences, batch_size=self.batch_size, show_progress_bar=False) \
                if _accepts_kwargs(backend.encode) else backend.encode(sentences)
        else:
            from .tracing import get_activations

            if self.pooling == "action" and spans is None:
                spans = [(0, len(s)) for s in sentences]
            X = get_activations(backend, sentences, layer=layer, reduce="last" if self.pooling == "last" else "mean",
                                batch_size=min(self.batch_size, 32),
                                spans=spans if self.pooling == "action" else None)
            if isinstance(X, dict):
                return {L: self._check_embedded(backend, sentences, v) for L, v in X.items()}
        return self._check_embedded(backend, sentences, X)

    @staticmethod
    def _check_embedded(backend: Any, sentences: list[str], X: Any) -> np.ndarray:
        X = np.asarray(X.detach().cpu().numpy() if _is_torch(X) else X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] != len(sentences):
            raise ValueError(f"{type(backend).__name__}.encode returned shape {X.shape} for {len(sentences)} "
                             "sentences; expected [n_sentences, dim]")
        return X

    def embed(self, phrases: Sequence[str] | str, encoder_or_model: Any | None = None,
              templates: Sequence[str] | None = None, use_templates: bool = True) -> np.ndarray:
        """Template-averaged embeddings ``[n_phrases, dim]`` (the raw phrase embeddings with ``use_templates=False``)."""
        phrases = _check_phrases(phrases)
        backend, layer = self._resolve_backend(encoder_or_model)
        if not use_templates:
            return self._embed_sentences(backend, phrases, layer)
        templates = _check_templates(templates if templates is not None else getattr(self, "templates_", None))
        sentences, spans = _fill_templates(phrases, templates)
        X = self._embed_sentences(backend, sentences, layer, spans)
        return X.reshape(len(phrases), len(templates), -1).mean(axis=1)

    def embed_layers(self, phrases: Sequence[str] | str, model: Any, layers: Sequence[int],
                     templates: Sequence[str] | None = None) -> dict[int, np.ndarray]:
        """Template-averaged embeddings of ``phrases`` at every block in ``layers``, ``{layer: [n, d_model]}``.

        All layers come from one forward pass per batch (``tk.get_activations`` with a list of
        layers), with this direction's pooling: the input of a layer sweep, which then fits one
        direction per layer with :meth:`fit_embeddings`. Works before fitting.
        """
        phrases = _check_phrases(phrases)
        if _backend_kind(model) != "model":
            raise TypeError(f"embed_layers needs a language model (tk.load_model()); got {type(model).__name__}")
        layers = [model.check_layer(L) for L in layers]
        if not layers:
            raise ValueError("layers is empty; pass at least one block index")
        templates = _check_templates(templates if templates is not None else getattr(self, "templates_", None))
        sentences, spans = _fill_templates(phrases, templates)
        per_layer = self._embed_sentences(model, sentences, layers, spans)
        return {L: per_layer[L].reshape(len(phrases), len(templates), -1).mean(axis=1) for L in layers}

    def _resolve_backend(self, encoder_or_model: Any | None) -> tuple[Any, int | None]:
        fitted = hasattr(self, "components_")
        if encoder_or_model is None:
            if not fitted:
                raise RuntimeError("this MoralDirection is not fitted yet: call .fit(encoder_or_model) first")
            if self.backend_obj_ is None:
                raise RuntimeError("this MoralDirection was fitted on embeddings (fit_embeddings) and knows no "
                                   "encoder or layer; use score_embeddings, or fit it with .fit(encoder_or_model)")
            return self.backend_obj_, self.layer_
        kind = _backend_kind(encoder_or_model)
        if not fitted:  # inside fit: the layer chosen there (None for an encoder)
            return encoder_or_model, getattr(self, "layer_", None)
        if self.backend_ is None:
            raise RuntimeError("this MoralDirection was fitted on embeddings (fit_embeddings) and knows no "
                               "encoder or layer; use score_embeddings, or fit it with .fit(encoder_or_model)")
        if kind != self.backend_:
            raise ValueError(f"this MoralDirection was fitted on a {self.backend_} ({self.backend_name_!r}); "
                             f"it cannot score with a {kind} ({_backend_name(encoder_or_model)!r})")
        if kind == "model" and int(encoder_or_model.d_model) != self.n_features_in_:
            raise ValueError(f"model {_backend_name(encoder_or_model)!r} has d_model={encoder_or_model.d_model}, "
                             f"but this direction was fitted on {self.n_features_in_}-d activations of "
                             f"{self.backend_name_!r}")
        if _backend_name(encoder_or_model) != self.backend_name_:
            raise ValueError(f"this MoralDirection was fitted with {self.backend_name_!r}; scoring with "
                             f"{_backend_name(encoder_or_model)!r} would project onto a meaningless axis. "
                             "Fit a new MoralDirection for that encoder or model.")
        return encoder_or_model, self.layer_

    # -- fitting -----------------------------------------------------------------------------
    @_fit_from_class
    def fit(self, encoder_or_model: Any, actions: Any = None, templates: Sequence[str] | None = None,
            layer: int | None = None, random_state: int = 0) -> "MoralDirection":
        """Fit the direction. ``actions``: None (data/moral/pca_actions.csv), a dict
        {action: +1/-1}, (action, label) pairs, a DataFrame with ``action`` and ``label`` columns, or
        a plain list of actions (then the sign comes from a fixed anchor list). ``layer`` is used
        only for a language model (default :meth:`default_layer`). Returns self.
        """
        kind = _backend_kind(encoder_or_model)
        for attr in [a for a in vars(self) if a.endswith("_")]:
            delattr(self, attr)  # refitting starts from scratch
        if kind == "model":
            layer = self.default_layer(encoder_or_model) if layer is None else encoder_or_model.check_layer(layer)
        elif layer is not None:
            raise ValueError(f"layer={layer!r} applies only to a language model; a sentence encoder has no layers "
                             "(pass layer=None)")
        phrases, labels = _labeled_actions(actions)
        templates = _check_templates(templates)
        if labels is not None:
            if len(labels) != len(phrases):
                raise ValueError(f"got {len(phrases)} actions but {len(labels)} labels")
            bad = sorted({float(v) for v in labels if v not in (-1.0, 1.0)})
            if bad:
                raise ValueError(f"action labels must be +1 (normative) or -1 (non-normative); got {bad}")
            if (labels > 0).sum() < 1 or (labels < 0).sum() < 1:
                raise ValueError("the labeled actions need at least one positive (+1) and one negative (-1) action")
        if len(phrases) < 2:
            raise ValueError(f"fit needs at least 2 actions for a PCA; got {len(phrases)}")

        self.backend_ = kind
        self.backend_name_ = _backend_name(encoder_or_model)
        self.backend_obj_ = encoder_or_model
        self.layer_ = layer
        self.templates_ = templates
        self.actions_ = phrases
        self.labels_ = labels
        X = self.embed(phrases, encoder_or_model, templates)
        anchors = None
        if labels is None:
            anchors = self.embed(list(_ANCHOR_POS + _ANCHOR_NEG), encoder_or_model, templates)
        return self._fit_pca(X, labels, anchors, random_state)

    def fit_embeddings(self, X: Any, labels: Any, random_state: int = 0) -> "MoralDirection":
        """Fit on already-embedded (template-averaged) actions ``X`` [n, dim] with labels +1/-1.

        For sweeps that embed once and fit many times (e.g. one fit per LLM layer). The result
        scores embeddings (``score_embeddings``) but not phrases, since it knows no encoder.
        """
        X = _as_2d_array(X)
        labels = np.asarray(labels, dtype=float).reshape(-1)
        if len(labels) != X.shape[0]:
            raise ValueError(f"got {X.shape[0]} embeddings but {len(labels)} labels")
        if not set(np.unique(labels)) <= {-1.0, 1.0} or (labels > 0).sum() < 1 or (labels < 0).sum() < 1:
            raise ValueError("labels must be +1 (normative) or -1 (non-normative), with at least one of each")
        for attr in [a for a in vars(self) if a.endswith("_")]:
            delattr(self, attr)
        self.backend_, self.backend_name_, self.backend_obj_, self.layer_ = None, None, None, None
        self.labels_ = labels
        return self._fit_pca(X, labels, None, random_state)

    def _fit_pca(self, X: np.ndarray, labels: np.ndarray | None, anchors: np.ndarray | None,
                 random_state: int) -> "MoralDirection":
        from sklearn.decomposition import PCA

        self.n_features_in_ = int(X.shape[1])
        n_components = min(self.n_components, X.shape[0], X.shape[1])
        pca = PCA(n_components=n_components, svd_solver="full", random_state=random_state).fit(X)
        self.components_ = pca.components_.copy()
        self.explained_variance_ratio_ = pca.explained_variance_ratio_.copy()
        self.mean_ = pca.mean_.copy()
        self.random_state_ = random_state

        proj = (X - self.mean_) @ self.components_[0]
        if labels is not None:
            gap = proj[labels > 0].mean() - proj[labels < 0].mean()
        else:
            a = (anchors - self.mean_) @ self.components_[0]
            gap = a[: len(_ANCHOR_POS)].mean() - a[len(_ANCHOR_POS):].mean()
        # gap == 0 is a degenerate fit; +1 keeps the rule total and deterministic.
        self.sign_ = 1 if gap >= 0 else -1
        self.scale_ = float(np.abs(proj).max())
        if self.scale_ == 0.0:
            raise ValueError("all actions have the same embedding; the PCA found no direction")
        self.direction_ = self.sign_ * self.components_[0]
        self.train_scores_ = self.sign_ * proj / self.scale_
        return self

    # -- scoring -----------------------------------------------------------------------------
    def score_embeddings(self, X: Any) -> np.ndarray:
        """Scores of already-embedded (template-averaged) rows ``[n, n_features_in_]``."""
        if not hasattr(self, "components_"):
            raise RuntimeError("this MoralDirection is not fitted yet: call .fit(encoder_or_model) first")
        X = _as_2d_array(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"embeddings have {X.shape[1]} features but this direction was fitted on "
                             f"{self.n_features_in_}-d embeddings of {self.backend_name_!r}")
        return self.sign_ * ((X - self.mean_) @ self.components_[0]) / self.scale_

    def score(self, phrases: Sequence[str] | str, encoder_or_model: Any | None = None,
              use_templates: bool = True) -> np.ndarray:
        """Moral score of each phrase: roughly in [-1, 1], positive = normative (acceptable).

        The phrase is put into the fitted templates and averaged, exactly as in ``fit``; with
        ``use_templates=False`` the raw text is embedded (for whole sentences, e.g. in MoRT filtering).
        ``encoder_or_model`` defaults to the one used in ``fit``; another one must be the same encoder.
        """
        X = self.embed(phrases, encoder_or_model, use_templates=use_templates)
        return self.score_embeddings(X)

    def __repr__(self) -> str:
        if not hasattr(self, "components_"):
            return f"MoralDirection(n_components={self.n_components}, pooling={self.pooling!r}, unfitted)"
        where = f", layer={self.layer_}" if self.layer_ is not None else ""
        return (f"MoralDirection({self.backend_name_!r}{where}, n_actions={len(self.actions_)}, "
                f"n_templates={len(self.templates_)}, pc1_var={self.explained_variance_ratio_[0]:.3f})")


def _accepts_kwargs(fn: Any) -> bool:
    """True for sentence-transformers' encode (batch_size / show_progress_bar keywords)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "batch_size" in params and "show_progress_bar" in params


# ----------------------------------------------------------------------------------------------
# Moral-guided decoding (MoRT, Schramowski et al. 2022): filter the top-k candidates at each step
# ----------------------------------------------------------------------------------------------

def filter_candidates(scores: Any, threshold: float, min_keep: int = 2) -> np.ndarray:
    """Indices of the candidates that survive the moral filter, in their original (probability) order.

    ``scores[i]`` is the moral score of the text with candidate i appended; candidates are ordered
    from most to least likely. Candidates with a score below ``threshold`` are dropped, but the
    ``min_keep`` best-scoring ones always survive, so decoding never runs out of options.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.size == 0:
        raise ValueError("scores is empty: there must be at least one candidate")
    if min_keep < 1:
        raise ValueError(f"min_keep must be >= 1, got {min_keep}")
    keep = s >= threshold
    if keep.sum() < min_keep:
        best = np.argsort(-s, kind="stable")[: min(min_keep, s.size)]
        keep[best] = True
    return np.flatnonzero(keep)


def moral_filtered_generate(model: Any, direction: MoralDirection, prompts: Sequence[str] | str,
                            max_new_tokens: int = 16, k: int = 10, threshold: float | None = 0.0,
                            min_keep: int = 2, progress: bool | None = None) -> list[str]:
    """Greedy decoding of ``model`` where each step keeps only morally acceptable top-k candidates.

    At every step the next-token logits of all prompts + text so far are read in one batch through
    :class:`toolkit.tracing.StepDecoder` (key-value cached for a local model, a full re-read for a
    remote one); the ``k`` most likely tokens are appended one at a time and the resulting texts are
    scored by ``direction`` on the raw text (no templates: these are running sentences, not actions
    to put in a template); the most likely candidate among the survivors of
    :func:`filter_candidates` is chosen. ``threshold=None`` turns filtering off (plain greedy
    decoding over the same loop). The prompts are continued as plain text (no chat template); a
    sequence stops at the end-of-sequence token. Returns the new text only.
    """
    import torch
    from .progress import progress_bar as tqdm

    from .tracing import StepDecoder

    prompts = _check_phrases(prompts, "prompts")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    tok = model.tokenizer
    eos = tok.eos_token_id
    decoder = StepDecoder(model, prompts)
    done = [False] * len(prompts)
    kept: list[list[int]] = [[] for _ in prompts]  # tokens up to and including EOS
    for _ in tqdm(range(max_new_tokens), desc="moral-filtered decoding", leave=False,
                  disable=not (progress if progress is not None else max_new_tokens * len(prompts) > 64)):
        active = [i for i in range(len(prompts)) if not done[i]]
        if not active:
            break
        top = torch.topk(decoder.logits(), k=k, dim=-1).indices.tolist()
        if threshold is not None:
            ids = decoder.ids
            flat = [tok.decode(ids[i] + [c], skip_special_tokens=True) for i in active for c in top[i]]
            flat = [c if c.strip() else "." for c in flat]
            scores = direction.score(flat, use_templates=False).reshape(len(active), k)
        choice = [top[i][0] for i in range(len(prompts))]  # finished sequences are fed, then ignored
        for j, i in enumerate(active):
            if threshold is not None:
                choice[i] = top[i][int(filter_candidates(scores[j], threshold, min_keep)[0])]
            kept[i].append(int(choice[i]))
            if choice[i] == eos:
                done[i] = True
        decoder.append(choice)
    return [tok.decode(ids, skip_special_tokens=True) for ids in kept]
