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

import operator
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["steer", "steering_edit", "decoder_direction", "mlp_activations", "GAMMAS"]

GAMMAS = ("one", "balanced")


def decoder_direction(sae: Any, latent: int) -> torch.Tensor:
    """Column ``D[:, latent]`` of an SAE's decoder as a float32 vector [d_in]."""
    n = _n_latents(sae)
    if isinstance(latent, bool):
        raise TypeError(f"latent must be an integer index, got {latent!r}")
    try:
        latent = operator.index(latent)
    except TypeError:
        raise TypeError(f"latent must be an integer index, got {latent!r}") from None
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
    """
    from .tracing import Edit

    alpha = _check_alpha(alpha)
    if gamma not in GAMMAS:
        raise ValueError(f"gamma={gamma!r} is not supported; use one of {GAMMAS}")
    if (vector is None) == (sae is None):
        raise ValueError("pass exactly one of vector=... or sae=... to steer with")
    if not isinstance(layer, int) or isinstance(layer, bool):
        raise TypeError(f"layer must be an integer block index, got {layer!r}")

    if vector is not None:
        if latent is not None:
            raise ValueError("latent= only applies to SAE steering; drop it when steering with vector=")
        if gamma != "one":
            raise ValueError("gamma='balanced' needs an SAE's latent activations; a plain vector supports gamma='one'")
        v = torch.as_tensor(vector).detach().float().reshape(-1)
        if not torch.isfinite(v).all() or float(v.norm()) == 0.0:
            raise ValueError("the steering vector must be finite and non-zero")
        return Edit(layer=layer, fn=_AddScaled(v / v.norm(), alpha), site="resid")

    latent = 0 if latent is None else latent
    if _is_scar(sae):
        if gamma != "one":
            raise ValueError("SCAR steers by scaling its conditioned latent; gamma must be 'one'")
        direction = decoder_direction(sae, latent)  # validates the index
        del direction
        return Edit(layer=layer, fn=_ScarScale(sae, latent, alpha), site="mlp")

    direction = decoder_direction(sae, latent)
    if gamma == "balanced":
        if not _is_guided(sae):
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
    alpha: float = 1.0,
    gamma: str = "one",
    max_new_tokens: int = 32,
    **generate_kwargs: Any,
) -> list[str]:
    """Generate from ``prompts`` while steering at block ``layer``; returns the continuations.

    ``tk.steer(model, prompts, vector=v, layer=L, alpha=0.2)`` adds ``alpha * ||x|| * v/||v||``.
    ``tk.steer(model, prompts, sae=gsae, latent=0, layer=L, alpha=0.5, gamma="balanced")``
    adds ``alpha * beta * gamma * D[:, 0]`` with ``beta = ||x|| / ||D[:, 0]||``.
    ``tk.steer(model, prompts, sae=scar, layer=L, alpha=3.0)`` scales SCAR's latent.
    alpha=0 (vector or G-SAE) reproduces unsteered generation exactly.
    """
    from .tracing import generate

    if isinstance(prompts, str):
        prompts = [prompts]
    n_layers = getattr(model, "n_layers", None)
    if n_layers is not None and isinstance(layer, int) and not 0 <= layer < n_layers:
        raise IndexError(f"layer={layer} is out of range for a model with {n_layers} blocks (valid: 0..{n_layers - 1})")
    edit = steering_edit(layer=layer, alpha=alpha, vector=vector, sae=sae, latent=latent, gamma=gamma)
    d_model = getattr(model, "d_model", None)
    d_in = _d_in(sae) if sae is not None else int(torch.as_tensor(vector).numel())
    if d_model is not None and d_in is not None and d_in != d_model:
        what = "SAE input size" if sae is not None else "vector length"
        raise ValueError(f"{what} {d_in} does not match the model's d_model {d_model}")
    return generate(model, list(prompts), max_new_tokens=max_new_tokens, edits=[edit], **generate_kwargs)


def mlp_activations(model: Any, texts: Sequence[str], layer: int, *, batch_size: int = 16) -> torch.Tensor:
    """MLP outputs of block ``layer`` for every token, ``[n_tokens, d_model]`` (float32, CPU).

    The same rows as ``tk.get_activations(model, texts, layer)`` (padding and BOS removed), read at
    the MLP output, which is what SCAR reconstructs.
    """
    from .tracing import get_activations

    return get_activations(model, texts, layer, site="mlp", batch_size=batch_size)


def _edit(layer: int, fn: Any, site: str) -> Any:
    from .tracing import Edit

    return Edit(layer=layer, fn=fn, site=site)


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

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        u = self._unit_like(h)
        scale = h.norm(dim=-1, keepdim=True) * self.alpha
        if self.sae is not None:
            scale = scale * _balanced_gamma(self.sae, h, self.latent, self.alpha).to(h.dtype)
        return h + scale * u


class _ScarScale:
    """MLP output m -> SCAR reconstruction of m with the conditioned latent scaled by alpha."""

    def __init__(self, scar: Any, latent: int, alpha: float) -> None:
        self.scar = scar
        self.latent = latent
        self.alpha = alpha

    def __call__(self, m: torch.Tensor) -> torch.Tensor:
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
def _is_guided(sae: Any) -> bool:
    return type(sae).__name__ == "GuidedSAE" or getattr(sae, "latents_are_probabilities", False)


def _is_scar(sae: Any) -> bool:
    return hasattr(sae, "steer_reconstruct")


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


def _check_alpha(alpha: Any) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise TypeError(f"alpha must be a number, got {alpha!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"alpha must be finite, got {alpha!r}")
    return value
