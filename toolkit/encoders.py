"""Encoders: anything that turns a list of texts into one vector per text.

The protocol is one method, ``encode(list[str]) -> array [n_texts, dim]`` (:class:`Encoder`). The
sentence encoder from :func:`tk.load_encoder` already is one; :class:`ResidualEncoder` makes one of a
language model (its residual stream after a block, pooled per text). Estimators built on embeddings
(:class:`tk.MoralDirection`, :class:`tk.ConceptJudge`) know only this protocol.

Two encoders are the same when they compute the same thing, not when they share a name or a class:
:func:`fingerprint` is an encoder's output on a fixed set of probe sentences, and
:func:`same_encoder` compares two fingerprints numerically. An estimator remembers the fingerprint of
the encoder it was fitted with and refuses to project another encoder's embeddings on its axes (in
another space the axis means nothing, and a score can even flip sign).
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .validation import as_numpy, check_bool, check_choice, check_finite, check_int, check_texts

__all__ = ["Encoder", "ResidualEncoder", "check_encoder", "encode", "accepts_spans", "fingerprint",
           "same_encoder", "describe", "PROBE_TEXTS"]

#: Sentences every encoder is fingerprinted on: short, varied, fixed forever (changing them changes
#: nothing about which encoders match, only the numbers stored with a fitted estimator).
PROBE_TEXTS = (
    "Should I help people?",
    "The cat sat quietly on the warm mat.",
    "Is it ok to steal money from a friend?",
    "Prices rose by 3 percent in March.",
    "thou art a fine fellow",
)

#: Two fingerprints match when their centred difference is this small relative to their size. The
#: centring (subtracting the mean over probes) removes what every text shares, such as a constant
#: offset, so that two encoders that differ only in that shared part still count as different.
#: 1e-3 accepts the same weights run in another batch or on another device (float32 rounding, ~1e-6)
#: and refuses a neighbouring layer or another pooling (differences of several percent at least).
FINGERPRINT_RTOL = 1e-3


@runtime_checkable
class Encoder(Protocol):
    """Anything with ``encode(texts: list[str]) -> array [len(texts), dim]`` (numpy or torch)."""

    def encode(self, texts: list[str]) -> Any:  # pragma: no cover - a protocol has no body
        ...


def check_encoder(encoder: Any, name: str = "encoder") -> Any:
    """``encoder`` if it follows the :class:`Encoder` protocol, else a TypeError saying what would."""
    if isinstance(encoder, (str, bytes)) or not callable(getattr(encoder, "encode", None)):
        raise TypeError(
            f"{name} must be an encoder: an object with .encode(list[str]) -> array [n_texts, dim], such as "
            f"tk.load_encoder() or tk.ResidualEncoder(model, layer); got {type(encoder).__name__}"
            + (" (a language model: wrap it as tk.ResidualEncoder(model, layer))" if _is_model(encoder) else "")
        )
    return encoder


def _is_model(obj: Any) -> bool:
    from .models import Model

    return isinstance(obj, Model)


def accepts_spans(encoder: Any) -> bool:
    """True when ``encoder.encode`` takes ``spans=`` (one character range per text to pool over)."""
    try:
        return "spans" in inspect.signature(encoder.encode).parameters
    except (TypeError, ValueError):
        return False


def encode(encoder: Any, texts: Sequence[str] | str, *, spans: Sequence[tuple[int, int]] | None = None,
           name: str = "texts") -> np.ndarray:
    """``encoder.encode(texts)`` as a checked float64 array ``[n_texts, dim]`` (finite, one row per text).

    ``spans`` is passed on only to encoders that accept it (:func:`accepts_spans`); giving spans to
    one that does not is an error rather than a silent whole-text embedding.
    """
    check_encoder(encoder)
    texts = check_texts(texts, name)
    if spans is not None:
        if not accepts_spans(encoder):
            raise TypeError(f"{describe(encoder)} cannot restrict its pooling to character spans "
                            "(its encode has no spans= keyword); pass spans=None")
        out = encoder.encode(texts, spans=spans)
    else:
        out = encoder.encode(texts)
    X = as_numpy(out, f"{describe(encoder)}.encode(...)", dtype=np.float64)
    if X.ndim != 2 or X.shape[0] != len(texts):
        raise ValueError(f"{describe(encoder)}.encode returned shape {X.shape} for {len(texts)} texts; "
                         "an encoder must return [n_texts, dim]")
    check_finite(f"{describe(encoder)}.encode(...)", X)
    return X


def describe(encoder: Any) -> str:
    """A short human name for an encoder (its repr if it is short, else its toolkit name or class)."""
    if isinstance(encoder, ResidualEncoder):
        return repr(encoder)
    for attr in ("toolkit_name", "name", "name_or_path"):
        value = getattr(encoder, attr, None)
        if isinstance(value, str) and value:
            return f"{type(encoder).__name__}({value!r})"
    return type(encoder).__name__


def fingerprint(encoder: Any) -> np.ndarray:
    """What ``encoder`` computes, in a few numbers: its output on :data:`PROBE_TEXTS` ``[n_probes, dim]``.

    Computed once and cached on the encoder object (an encoder is a fixed function; for
    :class:`ResidualEncoder` its model, layer and pooling are read-only for that reason).
    """
    cached = getattr(encoder, "_toolkit_fingerprint", None)
    if cached is not None:
        return cached
    fp = encode(encoder, list(PROBE_TEXTS), name="PROBE_TEXTS")
    fp.setflags(write=False)
    try:
        encoder._toolkit_fingerprint = fp
    except (AttributeError, TypeError):  # an object that takes no new attributes is fingerprinted each time
        pass
    return fp


def same_encoder(a: np.ndarray | None, b: np.ndarray | None, rtol: float = FINGERPRINT_RTOL) -> bool:
    """True when two fingerprints (from :func:`fingerprint`) come from encoders that compute the same thing."""
    if a is None or b is None or a.shape != b.shape:
        return False
    ca, cb = a - a.mean(0), b - b.mean(0)
    scale = max(float(np.linalg.norm(ca)), float(np.linalg.norm(cb)), 1e-12)
    # Both the centred and the raw difference must be small: the first catches a changed text-dependent
    # part, the second a changed offset.
    return (float(np.linalg.norm(ca - cb)) <= rtol * scale
            and float(np.linalg.norm(a - b)) <= rtol * max(float(np.linalg.norm(a)), 1e-12))


class ResidualEncoder:
    """A language model as an :class:`Encoder`: the residual stream after block ``layer``, pooled per text.

    ``encode(texts)`` returns a float32 numpy array ``[n_texts, d_model]``: the
    :class:`~toolkit.activations.Activations` of ``tk.get_activations(model, texts, layer)`` pooled per
    text, ``"mean"`` (average of a text's tokens), ``"last"`` (its last token) or ``"max"`` (the
    per-dimension maximum). Attention-sink tokens are left out by the Activations sink rule (see
    :mod:`toolkit.activations`) unless ``drop_sinks=False``. ``encode(texts, spans=...)`` pools only the
    tokens that overlap each text's character range (e.g. an action inside a question template).
    ``encode_layers`` reads several blocks from one forward pass.

    ``layer=None`` takes :meth:`default_layer` (the middle block). The model, layer and pooling are
    fixed at construction: to read another layer, make another encoder (a fitted estimator compares
    encoders by what they compute, see :func:`fingerprint`).
    """

    def __init__(self, model: Any, layer: int | None = None, pooling: str = "mean", *, drop_sinks: bool = True,
                 site: str = "resid", batch_size: int = 32) -> None:
        if not _is_model(model):
            raise TypeError(f"model must be a toolkit Model (tk.load_model()); got {type(model).__name__}")
        from .models import SITES

        self._model = model
        self._layer = self.default_layer(model) if layer is None else model.check_layer(layer)
        self._pooling = check_choice("pooling", pooling, ("mean", "last", "max"))
        self._site = check_choice("site", site, SITES)
        self._drop_sinks = check_bool("drop_sinks", drop_sinks)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)

    model = property(lambda self: self._model, doc="The language model read.")
    layer = property(lambda self: self._layer, doc="The block whose output is read.")
    pooling = property(lambda self: self._pooling, doc="How a text's token rows become one vector.")
    site = property(lambda self: self._site, doc='"resid" (block output) or "mlp" (the block\'s MLP output).')
    drop_sinks = property(lambda self: self._drop_sinks, doc="Whether attention-sink rows are left out of the pool.")

    @staticmethod
    def default_layer(model: Any) -> int:
        """The middle block, ``n_layers // 2``: the layer used when none is given.

        Chosen by principle, not by agreement with labels: abstract, sentence-level properties are
        most linearly accessible in the middle of a transformer, after the early token-level blocks
        and before the late blocks that specialise in predicting the next token.
        """
        return int(model.n_layers) // 2

    @property
    def dim(self) -> int:
        return int(self._model.d_model)

    def encode(self, texts: Sequence[str] | str, spans: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
        """Pooled residual stream ``[n_texts, d_model]`` (float32); with ``spans``, pooled inside each span."""
        return self.encode_layers(texts, [self._layer], spans=spans)[self._layer]

    def encode_layers(self, texts: Sequence[str] | str, layers: Sequence[int],
                      spans: Sequence[tuple[int, int]] | None = None) -> dict[int, np.ndarray]:
        """``{layer: [n_texts, d_model]}`` for every block in ``layers``, all from one forward pass per batch,
        pooled as this encoder pools (the input of a layer sweep)."""
        from .tracing import get_activations

        layers = [self._model.check_layer(L) for L in layers]
        if not layers:
            raise ValueError("layers is empty; pass at least one block index")
        acts = get_activations(self._model, texts, layer=list(layers), site=self._site,
                               batch_size=self.batch_size, spans=spans)
        return {L: as_numpy(acts[L].pool(self._pooling, drop_sinks=self._drop_sinks), f"activations at layer {L}",
                            dtype=np.float32) for L in layers}

    def __repr__(self) -> str:
        extra = "" if self._site == "resid" else f", site={self._site!r}"
        extra += "" if self._drop_sinks else ", drop_sinks=False"
        return f"ResidualEncoder({self._model.name!r}, layer={self._layer}, pooling={self._pooling!r}{extra})"
