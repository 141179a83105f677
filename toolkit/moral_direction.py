"""The moral direction (Schramowski et al., Nature Machine Intelligence 2022) as an estimator.

:class:`MoralDirection` puts actions into question templates, embeds them with any
:class:`~toolkit.encoders.Encoder`, averages over templates, and keeps PC1 of a PCA
(:func:`toolkit.directions.pca_direction`) with a deterministic sign and scale. The data it reads by
default live in :mod:`toolkit.moral_data`; decoding with it (MoRT) is :mod:`toolkit.decoding`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .directions import pca_direction
from .encoders import accepts_spans, check_encoder, describe, encode, fingerprint, same_encoder
from .moral_data import load_moral_actions, load_templates
from .validation import as_numpy, check_choice, check_finite, check_int, check_texts

__all__ = ["MoralDirection"]

POOLINGS = ("action", "sentence")

# Used only to orient PC1 when ``fit`` gets actions without labels: a handful of unambiguous
# actions whose mean score must come out positive (normative) minus negative.
_ANCHOR_POS = ("help", "love", "smile", "thank", "comfort")
_ANCHOR_NEG = ("kill", "murder", "torture", "steal", "harm")


def _check_templates(templates: Sequence[str] | str | None) -> list[str]:
    if templates is None:
        templates = load_templates()
    templates = [templates] if isinstance(templates, str) else list(templates)
    if not templates:
        raise ValueError("templates is empty: pass at least one template such as 'Should I {}?'")
    for t in templates:
        if not isinstance(t, str) or t.count("{}") != 1:
            raise ValueError(f"template {t!r} must be a string with exactly one '{{}}' slot, e.g. 'Should I {{}}?'")
    return templates


def _fill_templates(phrases: list[str], templates: list[str]) -> tuple[list[str], list[tuple[int, int]]]:
    """Every phrase in every template (phrase-major order) and the character range of the phrase in each."""
    sentences, spans = [], []
    for p in phrases:
        for t in templates:
            start = t.index("{}")
            sentences.append(t.format(p))
            spans.append((start, start + len(p)))
    return sentences, spans


def _phrases(phrases: Any, name: str = "phrases") -> list[str]:
    if isinstance(phrases, np.ndarray):
        phrases = phrases.tolist()
    return check_texts(phrases, name)


def _labeled_actions(actions: Any) -> tuple[list[str], np.ndarray | None]:
    """Normalise the ``actions`` argument of :meth:`MoralDirection.fit` to (phrases, labels or None)."""
    import pandas as pd

    if actions is None:
        table = load_moral_actions("pca")
        return table["action"].tolist(), table["label"].to_numpy(dtype=float)
    if isinstance(actions, pd.DataFrame):
        if "action" not in actions.columns:
            raise ValueError(f"an actions DataFrame needs an 'action' column; got columns {list(actions.columns)}")
        labels = actions["label"].to_numpy(dtype=float) if "label" in actions.columns else None
        return _phrases(actions["action"].tolist(), "actions"), labels
    if isinstance(actions, dict):
        return _phrases(list(actions.keys()), "actions"), np.asarray(list(actions.values()), dtype=float)
    if isinstance(actions, str):
        return _phrases([actions], "actions"), None
    actions = list(actions)
    if actions and all(isinstance(a, (tuple, list)) and len(a) == 2 for a in actions):
        return _phrases([a[0] for a in actions], "actions"), np.asarray([a[1] for a in actions], dtype=float)
    return _phrases(actions, "actions"), None


def _check_labels(labels: np.ndarray, n: int) -> np.ndarray:
    if len(labels) != n:
        raise ValueError(f"got {n} actions but {len(labels)} labels")
    bad = sorted({float(v) for v in labels if v not in (-1.0, 1.0)})
    if bad:
        raise ValueError(f"action labels must be +1 (normative) or -1 (non-normative); got {bad}")
    if (labels > 0).sum() < 1 or (labels < 0).sum() < 1:
        raise ValueError("the labeled actions need at least one positive (+1) and one negative (-1) action")
    return labels


class MoralDirection:
    """The moral direction: PC1 of template-averaged embeddings of clearly good and bad actions.

    Usage::

        md = tk.MoralDirection(tk.load_encoder()).fit()       # default actions and templates
        md.score(["help people", "kill people"])               # about [-1, 1]; positive = normative
        md_llm = tk.MoralDirection(tk.ResidualEncoder(model, layer=15)).fit()

    Procedure (Schramowski et al. 2022): every action is put into each question template
    ("Should I {}?", ...), the embeddings are averaged over templates, a PCA (``n_components``) is
    fitted on the actions, and a phrase's score is its centred projection on PC1.

    Parameters:
        encoder: any :class:`~toolkit.encoders.Encoder`; ``None`` uses ``tk.load_encoder()`` at fit.
        n_components: components of the PCA (PC1 is the direction; the rest are for inspection).
        pooling: ``"action"`` (default) embeds only the action's tokens inside each template when the
            encoder can pool over character spans (a :class:`~toolkit.encoders.ResidualEncoder`): the
            template's own tokens are shared by every action and carry nothing about it, and averaging
            them in mixes a length-dependent share of template into every embedding. A sentence
            encoder pools the whole sentence by itself, so for it ``"action"`` means the whole
            sentence. ``"sentence"`` embeds the whole sentence with any encoder. ``pooling_`` records
            which one was used.
        random_state: passed to the PCA (the full SVD solver is deterministic anyway).

    Sign rule: PC1 is oriented so that the labeled positive actions project above the negative ones
    (for unlabeled actions, a fixed anchor list decides). Scaling: scores are divided by the largest
    |projection| among the fitted actions, so the reference set lies in [-1, 1].

    Encoders are compared by what they compute: ``fit`` stores the encoder's
    :func:`~toolkit.encoders.fingerprint`, and :meth:`score` / :meth:`embed` with another encoder
    refuse one that computes something else (its embeddings live in another space).

    Fitted attributes: ``encoder_``, ``encoder_fingerprint_``, ``pooling_``, ``components_``,
    ``explained_variance_ratio_``, ``mean_``, ``sign_``, ``scale_``, ``direction_`` (unit vector,
    oriented), ``templates_``, ``actions_``, ``labels_``, ``train_scores_``, ``n_features_in_``.
    """

    def __init__(self, encoder: Any = None, n_components: int = 5, pooling: str = "action",
                 random_state: int = 0) -> None:
        self.encoder = encoder
        self.n_components = n_components
        self.pooling = pooling
        self.random_state = random_state
        self._check_params()

    def _check_params(self) -> None:
        if self.encoder is not None:
            check_encoder(self.encoder)
        check_int("n_components", self.n_components, minimum=1)
        check_choice("pooling", self.pooling, POOLINGS)

    # -- embedding -------------------------------------------------------------------------
    def _encoder(self, encoder: Any | None) -> Any:
        """The encoder to embed with: ``encoder`` if given (checked against the fitted one), else the fitted
        encoder, else (before fit) the constructor's or the default sentence encoder."""
        fitted = hasattr(self, "components_")
        if fitted and self.encoder_ is None and encoder is None:
            raise RuntimeError("this MoralDirection was fitted on embeddings (fit_embeddings) and knows no "
                               "encoder; use score_embeddings, or fit it with .fit()")
        if encoder is None:
            if fitted:
                return self.encoder_
            if self.encoder is None:  # the default sentence encoder (loaded once per process)
                from .models import load_encoder

                return load_encoder()
            return check_encoder(self.encoder)
        check_encoder(encoder)
        if fitted:
            if self.encoder_ is None:
                raise RuntimeError("this MoralDirection was fitted on embeddings (fit_embeddings) and knows no "
                                   f"encoder, so it cannot check that {describe(encoder)} computes those "
                                   "embeddings; use score_embeddings, or fit it with .fit()")
            if encoder is not self.encoder_ and not same_encoder(fingerprint(encoder), self.encoder_fingerprint_):
                raise ValueError(
                    f"this MoralDirection was fitted with {describe(self.encoder_)}; {describe(encoder)} computes "
                    "different embeddings (its fingerprint on the probe sentences differs), so scores would "
                    "project onto a meaningless axis. Fit a new MoralDirection with that encoder.")
        return encoder

    def _embed_sentences(self, encoder: Any, sentences: list[str], spans: list[tuple[int, int]] | None,
                         pooling: str) -> np.ndarray:
        use_spans = spans is not None and pooling == "action" and accepts_spans(encoder)
        return encode(encoder, sentences, spans=spans if use_spans else None, name="sentences")

    def embed(self, phrases: Sequence[str] | str, templates: Sequence[str] | None = None, *,
              use_templates: bool = True, encoder: Any | None = None) -> np.ndarray:
        """Template-averaged embeddings ``[n_phrases, dim]`` (the raw phrase embeddings with ``use_templates=False``).

        Uses the fitted encoder and templates (before fit: the constructor's encoder and ``templates``
        or the default ones). Raw text counts as one action: all its tokens are pooled.
        """
        phrases = _phrases(phrases)
        enc = self._encoder(encoder)
        pooling = getattr(self, "pooling_", self.pooling)
        if not use_templates:
            return self._embed_sentences(enc, phrases, None, pooling)
        templates = _check_templates(templates if templates is not None else getattr(self, "templates_", None))
        sentences, spans = _fill_templates(phrases, templates)
        X = self._embed_sentences(enc, sentences, spans, pooling)
        return X.reshape(len(phrases), len(templates), -1).mean(axis=1)

    def embed_layers(self, phrases: Sequence[str] | str, layers: Sequence[int],
                     templates: Sequence[str] | None = None) -> dict[int, np.ndarray]:
        """Template-averaged embeddings of ``phrases`` at every block in ``layers``, ``{layer: [n, d_model]}``.

        Needs an encoder that reads several layers at once (``encode_layers``, as
        :class:`~toolkit.encoders.ResidualEncoder` does): all layers come from one forward pass per batch,
        pooled as the encoder pools and restricted to the action's tokens as this direction's
        ``pooling`` says. The input of a layer sweep, which then fits one direction per layer with
        :meth:`fit_embeddings`. Works before fitting.
        """
        phrases = _phrases(phrases)
        enc = self._encoder(None)
        if not callable(getattr(enc, "encode_layers", None)):
            raise TypeError(f"embed_layers needs an encoder with encode_layers, such as "
                            f"tk.ResidualEncoder(model, layer); got {describe(enc)}")
        templates = _check_templates(templates if templates is not None else getattr(self, "templates_", None))
        sentences, spans = _fill_templates(phrases, templates)
        pooling = getattr(self, "pooling_", self.pooling)
        per_layer = enc.encode_layers(sentences, layers, spans=spans if pooling == "action" else None)
        out = {}
        for L, X in per_layer.items():
            X = as_numpy(X, f"embeddings at layer {L}", dtype=np.float64, ndim=2)
            out[L] = X.reshape(len(phrases), len(templates), -1).mean(axis=1)
        return out

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, actions: Any = None, templates: Sequence[str] | None = None) -> "MoralDirection":
        """Fit the direction with the constructor's encoder; returns self.

        ``actions``: None (data/moral/pca_actions.csv), a dict {action: +1/-1}, (action, label)
        pairs, a DataFrame with ``action`` and ``label`` columns, or a plain list of actions (then the
        sign comes from a fixed anchor list). ``templates``: None (data/moral/templates.txt) or a list
        of strings with one ``{}`` each.
        """
        self._check_params()
        self._reset()
        phrases, labels = _labeled_actions(actions)
        templates = _check_templates(templates)
        if labels is not None:
            labels = _check_labels(labels, len(phrases))
        if len(phrases) < 2:
            raise ValueError(f"fit needs at least 2 actions for a PCA; got {len(phrases)}")
        enc = self._encoder(None)
        # ``pooling_`` is what the encoder can do: "action" only when it takes spans.
        pooling = self.pooling if accepts_spans(enc) else "sentence"
        self.pooling_ = pooling
        X = self.embed(phrases, templates, encoder=enc)
        anchors = None
        if labels is None:
            anchors = self.embed(list(_ANCHOR_POS + _ANCHOR_NEG), templates, encoder=enc)
        self._fit_pca(X, labels, anchors)
        self.encoder_ = enc
        self.encoder_fingerprint_ = fingerprint(enc)
        self.templates_ = templates
        self.actions_ = phrases
        self.labels_ = labels
        return self

    def fit_embeddings(self, X: Any, labels: Any) -> "MoralDirection":
        """Fit on already-embedded (template-averaged) actions ``X`` [n, dim] with labels +1/-1.

        For sweeps that embed once and fit many times (e.g. one fit per LLM layer). The result
        scores embeddings (``score_embeddings``) but not phrases, since it knows no encoder.
        """
        self._check_params()
        X = as_numpy(X, "X", dtype=np.float64, ndim=2)
        labels = as_numpy(labels, "labels", dtype=float).reshape(-1)
        if len(labels) != X.shape[0]:
            raise ValueError(f"got {X.shape[0]} embeddings but {len(labels)} labels")
        labels = _check_labels(labels, X.shape[0])
        self._reset()
        self._fit_pca(X, labels, None)
        self.encoder_, self.encoder_fingerprint_, self.pooling_ = None, None, None
        self.templates_, self.actions_ = None, None
        self.labels_ = labels
        return self

    def _reset(self) -> None:
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)  # refitting starts from scratch

    def _fit_pca(self, X: np.ndarray, labels: np.ndarray | None, anchors: np.ndarray | None) -> None:
        if labels is not None:
            pos, neg = X[labels > 0], X[labels < 0]
        else:
            pos, neg = anchors[: len(_ANCHOR_POS)], anchors[len(_ANCHOR_POS):]
        direction, pca = pca_direction(X, random_state=self.random_state, n_components=self.n_components,
                                       X_pos=pos, X_neg=neg, return_pca=True)
        self.n_features_in_ = int(X.shape[1])
        self.components_ = pca.components_.copy()
        self.explained_variance_ratio_ = pca.explained_variance_ratio_.copy()
        self.mean_ = pca.mean_.copy()
        self.sign_ = 1 if float(direction @ self.components_[0]) > 0 else -1
        proj = (X - self.mean_) @ self.components_[0]
        self.scale_ = float(np.abs(proj).max())
        if self.scale_ == 0.0:
            raise ValueError("all actions have the same embedding; the PCA found no direction")
        self.direction_ = direction
        self.train_scores_ = self.sign_ * proj / self.scale_

    # -- scoring -----------------------------------------------------------------------------
    def score_embeddings(self, X: Any) -> np.ndarray:
        """Scores of already-embedded (template-averaged) rows ``[n, n_features_in_]``."""
        if not hasattr(self, "components_"):
            raise RuntimeError("this MoralDirection is not fitted yet: call .fit() first")
        X = as_numpy(X, "X", dtype=np.float64, ndim=2)
        check_finite("X", X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"embeddings have {X.shape[1]} features but this direction was fitted on "
                             f"{self.n_features_in_}-d embeddings")
        return self.sign_ * ((X - self.mean_) @ self.components_[0]) / self.scale_

    def score(self, phrases: Sequence[str] | str, *, use_templates: bool = True,
              encoder: Any | None = None) -> np.ndarray:
        """Moral score of each phrase: roughly in [-1, 1], positive = normative (acceptable).

        The phrase is put into the fitted templates and averaged, exactly as in ``fit``; with
        ``use_templates=False`` the raw text is embedded (for whole sentences, e.g. in MoRT filtering).
        ``encoder`` defaults to the fitted one; another one must compute the same embeddings.
        """
        if not hasattr(self, "components_"):
            raise RuntimeError("this MoralDirection is not fitted yet: call .fit() first")
        return self.score_embeddings(self.embed(phrases, use_templates=use_templates, encoder=encoder))

    def __repr__(self) -> str:
        if not hasattr(self, "components_"):
            enc = "default encoder" if self.encoder is None else describe(self.encoder)
            return f"MoralDirection({enc}, n_components={self.n_components}, pooling={self.pooling!r}, unfitted)"
        if self.encoder_ is None:
            return (f"MoralDirection(fitted on embeddings, n_actions={len(self.labels_)}, "
                    f"pc1_var={self.explained_variance_ratio_[0]:.3f})")
        return (f"MoralDirection({describe(self.encoder_)}, pooling={self.pooling_!r}, n_actions={len(self.actions_)}, "
                f"n_templates={len(self.templates_)}, pc1_var={self.explained_variance_ratio_[0]:.3f})")
