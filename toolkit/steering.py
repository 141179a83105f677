"""Activation steering: additive vectors and SAE latents, all through ``tk.Edit``.

Three ways to push a model toward (alpha > 0) or away from (alpha < 0) a concept:

* **a plain vector** ``v`` (e.g. a mean difference of activations): at every position add
  ``alpha * ||x|| * v / ||v||``. Scaling by the residual norm ``||x||`` makes alpha mean the
  same thing at every layer and every token ("move 10% of the way"), whatever the raw scale.
* **an SAE latent** ``i`` (G-SAE or a vanilla SAE): add ``alpha * beta * gamma * D[:, i]``
  with ``beta = ||x|| / ||D[:, i]||``, as in "Measuring and Guiding Monosemanticity".
  ``gamma="one"`` adds it everywhere. ``gamma="balanced"`` (G-SAE only, whose latents are
  probabilities in [0, 1]) weighs each position by how much steering it needs: ``1 - f_i``
  when steering toward the concept (do not push tokens that already carry it) and ``f_i``
  when steering away (only remove the concept where it is present).
* **SCAR**: the block's MLP output is replaced by its SCAR reconstruction with the
  conditioned latent scaled by alpha (alpha=1 keeps it, 0 removes it, >1 amplifies it).

The edits are built by :func:`steering_edit`, so the same intervention can go to
``tk.generate``, ``tk.token_losses`` or ``tk.logits``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .sae import SCAR, SparseAutoencoder
from .validation import as_tensor, check_choice, check_int, check_number, check_texts

__all__ = ["steer", "steering_edit", "decoder_direction", "mlp_activations", "GAMMAS"]

GAMMAS = ("one", "balanced")


def decoder_direction(sae: Any, latent: int) -> torch.Tensor:
    """Column ``D[:, latent]`` of an SAE's decoder as a float32 vector [d_in]."""
    n = _n_latents(sae)
    latent = check_int("latent", latent)
    if not 0 <= latent < n:
        raise IndexError(f"latent={latent} is out of range for an SAE with {n} latents (valid: 0..{n - 1})")
    if hasattr(sae, "decoder_direction"):
        return sae.decoder_direction(latent).detach().float()
    w = _decoder_matrix(sae)
    return w[:, latent].detach().float()


def steering_edit(
    *,
    layer: int,
    alpha: float,
    vector: torch.Tensor | Any = None,
    sae: Any = None,
    latent: int | None = None,
    gamma: str = "one",
) -> Any:
    """The ``tk.Edit`` that ``steer`` applies; pass it to ``tk.generate/token_losses/logits``.

    Exactly one of ``vector`` or ``sae`` must be given. For an SAE, ``latent`` picks the
    decoder column (default 0, the first concept latent of a G-SAE or SCAR's conditioned one).
    ``layer`` may be negative (counted from the last block, as in ``tk.get_activations``); the model
    that runs the edit checks its range. Without a model here, the vector's width is checked against
    the activations when the edit runs.
    """
    from .tracing import Edit

    alpha = check_number("alpha", alpha)
    check_choice("gamma", gamma, GAMMAS)
    if (vector is None) == (sae is None):
        raise ValueError("pass exactly one of vector=... or sae=... to steer with")
    layer = check_int("layer", layer)

    if vector is not None:
        if latent is not None:
            raise ValueError("latent= only applies to SAE steering; drop it when steering with vector=")
        if gamma != "one":
            raise ValueError("gamma='balanced' needs an SAE's latent activations; a plain vector supports gamma='one'")
        v = _check_vector(vector)
        return Edit(layer=layer, fn=_AddScaled(v / v.norm(), alpha), site="resid")

    latent = 0 if latent is None else latent
    if isinstance(sae, SCAR):
        if gamma != "one":
            raise ValueError("SCAR steers by scaling its conditioned latent; gamma must be 'one'")
        decoder_direction(sae, latent)  # validates the index
        return Edit(layer=layer, fn=_ScarScale(sae, latent, alpha), site="mlp")

    direction = decoder_direction(sae, latent)
    if gamma == "balanced":
        if not _latents_are_probabilities(sae):
            raise ValueError(
                "gamma='balanced' needs latents that are probabilities in [0, 1] (a GuidedSAE); "
                f"got {type(sae).__name__}; use gamma='one'"
            )
        return Edit(layer=layer, fn=_AddScaled(direction / direction.norm(), alpha, sae=sae, latent=latent), site="resid")
    return Edit(layer=layer, fn=_AddScaled(direction / direction.norm(), alpha), site="resid")


def steer(
    model: Any,
    prompts: Sequence[str] | str,
    vector: torch.Tensor | Any = None,
    *,
    sae: Any = None,
    latent: int | None = None,
    layer: int,
    alpha: float | Sequence[float] = 1.0,
    gamma: str = "one",
    max_new_tokens: int = 32,
    **generate_kwargs: Any,
) -> list[str] | dict[float, list[str]]:
    """Generate from ``prompts`` while steering at block ``layer``; returns the continuations.

    ``tk.steer(model, prompts, vector=v, layer=L, alpha=0.2)`` adds ``alpha * ||x|| * v/||v||``.
    ``tk.steer(model, prompts, sae=gsae, latent=0, layer=L, alpha=0.5, gamma="balanced")``
    adds ``alpha * beta * gamma * D[:, 0]`` with ``beta = ||x|| / ||D[:, 0]||``.
    ``tk.steer(model, prompts, sae=scar, layer=L, alpha=3.0)`` scales SCAR's latent.
    alpha=0 (vector or G-SAE) reproduces unsteered generation exactly.
    ``layer`` may be negative (``-1`` is the last block), as everywhere in the toolkit. A vector must be
    ``[model.d_model]``; an alpha so large that the activations overflow raises (see ``tk.Edit``).

    A list of alphas gives ``{alpha: continuations}`` from one batched run: every (prompt, alpha) pair
    is a row of the same generation, each row with its own alpha. Decoding is memory-bound on a CPU
    (each step reads every weight once, whatever the batch), so a sweep costs about one generation
    instead of one per alpha.
    """
    from .tracing import Edit, _check_layer, generate

    prompts = check_texts(prompts, "prompts")
    # the same layer answer as tk.get_activations and tk.Edit: negatives count from the last block
    layer = _check_layer(model, layer)
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
    if isinstance(alpha, (list, tuple, np.ndarray, torch.Tensor)) and np.ndim(alpha) == 1:
        alphas = [check_number(f"alpha[{i}]", a) for i, a in enumerate(np.asarray(alpha).tolist())]
        if not alphas:
            raise ValueError("alpha is an empty list; pass a number or a non-empty list of them")
        if len(set(alphas)) != len(alphas):
            raise ValueError(f"alpha lists {alphas}, with a repeat; each alpha must appear once (it keys the result)")
        edits = [steering_edit(layer=layer, alpha=a, vector=vector, sae=sae, latent=latent, gamma=gamma) for a in alphas]
        _check_model_width(model, edits[0], sae)
        per_text = Edit(layer=layer, fn=_PerText([e.fn for e in edits], len(prompts)), site=edits[0].site)
        texts = generate(model, [p for _ in alphas for p in prompts], max_new_tokens=max_new_tokens,
                         edits=[per_text], **generate_kwargs)
        return {a: texts[i * len(prompts):(i + 1) * len(prompts)] for i, a in enumerate(alphas)}
    edit = steering_edit(layer=layer, alpha=alpha, vector=vector, sae=sae, latent=latent, gamma=gamma)
    _check_model_width(model, edit, sae)
    return generate(model, prompts, max_new_tokens=max_new_tokens, edits=[edit], **generate_kwargs)


def _check_model_width(model: Any, edit: Any, sae: Any) -> None:
    d_model = model.d_model
    if sae is not None:
        d_in = _d_in(sae)
        if d_in is not None and d_in != d_model:
            raise ValueError(f"the SAE's input size d_in={d_in} does not match {_model_name(model)}'s d_model "
                             f"{d_model}; train the SAE on this model's activations (d_in={d_model})")
    elif edit.fn.width != d_model:
        raise ValueError(f"the steering vector has {edit.fn.width} entries but {_model_name(model)}'s d_model is "
                         f"{d_model}; pass a [{d_model}] vector (e.g. a difference of tk.get_activations means)")


def _model_name(model: Any) -> str:
    return str(getattr(model, "name", "the model"))


def mlp_activations(model: Any, texts: Sequence[str], layer: int, *, batch_size: int = 16) -> Any:
    """MLP outputs of block ``layer`` for every token: a ``tk.Activations`` (``.rows`` is ``[n_tokens, d_model]``).

    The same tokens, index and sink rule as ``tk.get_activations(model, texts, layer)`` (padding and
    BOS removed), read at the MLP output, which is what SCAR reconstructs.
    """
    from .tracing import get_activations

    return get_activations(model, texts, layer, site="mlp", batch_size=batch_size)


# --------------------------------------------------------------------------- edit functions
class _AddScaled:
    """h -> h + alpha * ||h|| * gamma * u, with u a unit vector (so beta*D = ||h|| * u)."""

    def __init__(self, unit: torch.Tensor, alpha: float, sae: Any = None, latent: int = 0) -> None:
        self.unit = unit
        self.alpha = alpha
        self.sae = sae
        self.latent = latent
        self._cache: dict[tuple[Any, Any], torch.Tensor] = {}

    def _unit_like(self, h: torch.Tensor) -> torch.Tensor:
        key = (h.device, h.dtype)
        if key not in self._cache:
            self._cache[key] = self.unit.to(device=h.device, dtype=h.dtype)
        return self._cache[key]

    @property
    def width(self) -> int:
        return int(self.unit.shape[0])

    def __repr__(self) -> str:
        what = f"SAE latent {self.latent}, gamma='balanced'" if self.sae is not None else f"width {self.width}"
        return f"steering(alpha={self.alpha:g}, {what})"

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        _check_width(h, self.width, "the steering direction")
        u = self._unit_like(h)
        scale = h.norm(dim=-1, keepdim=True) * self.alpha
        if self.sae is not None:
            scale = scale * _balanced_gamma(self.sae, h, self.latent, self.alpha).to(h.dtype)
        return h + scale * u


class _PerText:
    """One edit function per block of texts: texts ``[i * n, (i + 1) * n)`` get ``fns[i]``.

    The verbs batch texts by length, so a batch mixes blocks; :meth:`for_texts` receives the batch's
    input indices (see ``tk.Edit``) and returns a function that edits each row with its own block's
    function.
    """

    def __init__(self, fns: Sequence[Any], block: int) -> None:
        self.fns = list(fns)
        self.block = block

    def __repr__(self) -> str:
        return f"per-text[{', '.join(repr(f) for f in self.fns)}]"

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("a per-text edit needs the batch's text indices: run it through tk.generate, "
                           "tk.token_losses or tk.logits")

    def for_texts(self, idx: Any) -> Any:
        which = torch.as_tensor(np.asarray(idx) // self.block)

        def edit(h: torch.Tensor) -> torch.Tensor:
            out = h.clone()
            for i in which.unique().tolist():
                rows = (which == i).nonzero().flatten().to(h.device)
                out[rows] = self.fns[i](h[rows])
            return out

        return edit


class _ScarScale:
    """MLP output m -> SCAR reconstruction of m with the conditioned latent scaled by alpha."""

    def __init__(self, scar: Any, latent: int, alpha: float) -> None:
        self.scar = scar
        self.latent = latent
        self.alpha = alpha

    def __repr__(self) -> str:
        return f"SCAR(latent {self.latent}, alpha={self.alpha:g})"

    def __call__(self, m: torch.Tensor) -> torch.Tensor:
        d_in = _d_in(self.scar)
        if d_in is not None:
            _check_width(m, d_in, "the SCAR's input size d_in")
        shape = m.shape
        p = next(self.scar.parameters())
        with torch.no_grad():
            out = self.scar.steer_reconstruct(
                m.reshape(-1, shape[-1]).to(device=p.device, dtype=p.dtype), self.latent, self.alpha
            )
        return out.to(device=m.device, dtype=m.dtype).reshape(shape)


def _balanced_gamma(sae: Any, h: torch.Tensor, latent: int, alpha: float) -> torch.Tensor:
    """gamma per position: 1 - f_i toward the concept (alpha > 0), f_i away from it."""
    p = next(sae.parameters())
    flat = h.reshape(-1, h.shape[-1]).to(device=p.device, dtype=p.dtype)
    with torch.no_grad():
        f = sae.encode(flat)[:, latent].clamp(0.0, 1.0)
    gamma = 1.0 - f if alpha > 0 else f
    return gamma.reshape(*h.shape[:-1], 1).to(h.device)


# --------------------------------------------------------------------------- introspection
def _latents_are_probabilities(sae: Any) -> bool:
    # a toolkit SAE declares it (GuidedSAE does; SCAR, whose conditioned latent is a ReLU, does not)
    return isinstance(sae, SparseAutoencoder) and sae.latents_are_probabilities


def _decoder_matrix(sae: Any) -> torch.Tensor:
    """The decoder as [d_in, n_latents], whatever the SAE calls it."""
    n = _n_latents(sae)
    for name in ("W_dec", "decoder_weight"):
        w = getattr(sae, name, None)
        if isinstance(w, torch.Tensor):
            return w if w.shape[-1] == n and w.shape[0] != n else w.T
    dec = getattr(sae, "decoder", None)
    if dec is not None and isinstance(getattr(dec, "weight", None), torch.Tensor):
        return dec.weight  # nn.Linear(n_latents, d_in).weight is [d_in, n_latents]
    raise TypeError(f"cannot find a decoder matrix on {type(sae).__name__}; give it W_dec or decoder_direction(i)")


def _n_latents(sae: Any) -> int:
    n = getattr(sae, "n_latents", None)
    if n is None:
        raise TypeError(f"expected an SAE with an n_latents attribute, got {type(sae).__name__}")
    return int(n)


def _d_in(sae: Any) -> int | None:
    d = getattr(sae, "d_in", None)
    return None if d is None else int(d)


def _check_vector(vector: Any) -> torch.Tensor:
    """A steering vector as float32 [d]: one row ([d] or [1, d]), finite and non-zero."""
    v = as_tensor(vector, "vector")
    shape = tuple(v.shape)
    if v.dim() > 1:
        v = v.squeeze()  # a [1, d] mean over one text is still one direction
    if v.dim() != 1:
        raise ValueError(f"the steering vector must be 1-D [d_model], got shape {shape}; "
                         "pass one direction, e.g. acts.rows.mean(0)")
    if not torch.isfinite(v).all() or float(v.norm()) == 0.0:
        raise ValueError("the steering vector must be finite and non-zero")
    return v


def _check_width(h: torch.Tensor, width: int, what: str) -> None:
    # Without this the mismatch surfaces inside the forward pass as a bare broadcasting error.
    if h.shape[-1] != width:
        raise ValueError(f"{what} has {width} entries but the activations it edits are {h.shape[-1]} wide "
                         f"(shape {tuple(h.shape)}); steer with a [{h.shape[-1]}] vector or an SAE trained on "
                         f"this model's activations")
