"""How good is a sparse autoencoder: reconstruction, sparsity, dead latents, and the model's loss with it spliced in.

- :func:`fvu`: fraction of variance unexplained of one reconstruction.
- :func:`sae_metrics`: L0, MSE, FVU and dead fraction on held-out activations, in batches.
- :func:`ce_loss_recovered`: splice the reconstruction into the model through :class:`toolkit.Edit` and
  compare its next-token loss with the clean, zero-ablated and mean-ablated model.

The architectures (:mod:`toolkit.sae`) log :func:`fvu` while training, so this module imports nothing
from them at import time; functions that take an SAE import the types when called.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

import torch

from .activations import sink_positions
from .validation import as_tensor, check_int, check_texts

if TYPE_CHECKING:
    from .sae import SparseAutoencoder

__all__ = ["fvu", "sae_metrics", "ce_loss_recovered"]


def fvu(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Fraction of variance unexplained: ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2``.

    0 is a perfect reconstruction; 1 is no better than predicting the mean activation.
    """
    if x.shape != x_hat.shape:
        raise ValueError(f"x has shape {tuple(x.shape)} but x_hat has {tuple(x_hat.shape)}")
    x = x.reshape(-1, x.shape[-1]).float()
    x_hat = x_hat.reshape(-1, x_hat.shape[-1]).float()
    resid = (x - x_hat).pow(2).sum()
    total = (x - x.mean(dim=0)).pow(2).sum()
    return resid / total.clamp_min(1e-12)


@torch.no_grad()
def sae_metrics(sae: SparseAutoencoder, acts: Any, *, batch_size: int = 4096) -> dict[str, float]:
    """Evaluate on held-out activations: ``l0``, ``mse`` (per token, raw units), ``fvu``,
    ``dead_frac`` (latents that never fire on ``acts``) and ``n_tokens``.

    ``acts`` is a tensor, a numpy array or a ``tk.Activations`` (all of its rows)."""
    from .sae import activation_rows

    acts = activation_rows(acts)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    dev = sae.W_enc.device
    fired = torch.zeros(sae.n_latents, dtype=torch.bool, device=dev)
    sq_err = 0.0
    l0_sum = 0.0
    sum_x = torch.zeros(acts.shape[1], dtype=torch.float64)
    sum_sq = 0.0
    for start in range(0, acts.shape[0], batch_size):
        x = acts[start: start + batch_size].to(dev)
        f = sae.encode(x)
        x_hat = sae.decode(f)
        sq_err += float((x - x_hat).double().pow(2).sum())
        l0_sum += float((f > 0).sum())
        fired |= (f > 0).any(dim=0)
        sum_x += x.double().sum(dim=0).cpu()
        sum_sq += float(x.double().pow(2).sum())
    n = acts.shape[0]
    total_var = sum_sq - float((sum_x ** 2).sum()) / n  # sum ||x - mean||^2
    return {
        "l0": l0_sum / n,
        "mse": sq_err / n,
        "fvu": sq_err / max(total_var, 1e-12),
        "dead_frac": float((~fired).float().mean()),
        "n_tokens": float(n),
    }


def ce_loss_recovered(
    model: Any,
    sae: SparseAutoencoder | Mapping[str, SparseAutoencoder],
    texts: list[str],
    layer: int,
    *,
    mean_act: torch.Tensor | None = None,
) -> dict[str, Any]:
    """How much of the model's next-token loss survives replacing layer ``layer``'s residual stream
    by the SAE reconstruction.

    Runs ``tk.token_losses`` clean, with the layer zero-ablated, with it mean-ablated (``mean_act``,
    default: the mean activation over ``texts``) and once more per SAE with the SAE splice. Returns
    the mean CE of each and ``recovered_zero = (L_zero - L_sae) / (L_zero - L_clean)`` (1 = lossless,
    0 = as bad as deleting the layer's output), likewise ``recovered_mean``.

    ``sae`` may be a mapping ``{name: sae}``: the three baseline passes are then shared and the result
    is ``{name: metrics}``, which saves forward passes when comparing SAEs on the same texts.

    Sink positions keep their clean value: BOS where the tokenizer adds one, and the massive-norm
    positions flagged by the rule of :mod:`toolkit.activations` (for SmolLM2, which has no BOS, the
    first token). SAEs are not trained on them, so splicing them would measure those outliers rather
    than the SAE. ``mean_act`` defaults to the mean of the non-sink rows, the rows an SAE trains on.
    """
    from . import tracing
    from .sae import SparseAutoencoder

    saes = dict(sae) if isinstance(sae, Mapping) else {"": sae}
    if not saes:
        raise ValueError("sae is an empty mapping; give one SAE or {name: sae}")
    for name, one in saes.items():
        if not isinstance(one, SparseAutoencoder):
            raise TypeError(f"sae {name!r} is a {type(one).__name__}, not a toolkit SparseAutoencoder")
    texts = check_texts(texts)
    layer = tracing._check_layer(model, layer)  # the same answer as get_activations: negatives from the end
    if mean_act is None:  # the mean of the rows an SAE trains on: sinks left out (see tk.Activations)
        mean_act = tracing.get_activations(model, texts, layer=layer).without_sinks().rows.mean(dim=0)
    mean_act = as_tensor(mean_act, "mean_act")

    def splice(replace: Callable[[torch.Tensor], torch.Tensor]) -> list[Any]:
        def fn(h: torch.Tensor) -> torch.Tensor:
            out = replace(h).to(h.dtype)
            # The sinks stay clean: the BOS position where the tokenizer adds one (never a row), and the
            # massive-norm positions by the one rule of toolkit.activations (rows an SAE never saw)
            keep = sink_positions(h)
            if getattr(model, "adds_bos", False):
                keep[:, 0] = True
            return torch.where(keep.unsqueeze(-1), h, out)
        return [tracing.Edit(layer=layer, fn=fn)]

    def recon(one: SparseAutoencoder) -> Callable[[torch.Tensor], torch.Tensor]:
        def fn(h: torch.Tensor) -> torch.Tensor:
            x = h.reshape(-1, h.shape[-1]).to(one.W_enc.device, torch.float32)
            return one(x).reshape(h.shape).to(h.device)
        return fn

    def mean_ce(edits: list[Any] | None = None) -> float:
        return float(torch.as_tensor(tracing.token_losses(model, texts, edits=edits)).float().mean())

    with torch.no_grad():
        c = mean_ce()
        z = mean_ce(splice(torch.zeros_like))
        m = mean_ce(splice(lambda h: mean_act.to(h.device, h.dtype).expand_as(h).clone()))
        out = {}
        for name, one in saes.items():
            s = mean_ce(splice(recon(one)))
            out[name] = {
                "ce_clean": c,
                "ce_sae": s,
                "ce_zero": z,
                "ce_mean": m,
                "recovered_zero": (z - s) / (z - c) if z != c else float("nan"),
                "recovered_mean": (m - s) / (m - c) if m != c else float("nan"),
            }
    return out if isinstance(sae, Mapping) else out[""]
