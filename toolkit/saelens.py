"""The SAELens on-disk format: export a toolkit SAE so SAELens (and tools built on it) can load it, and read one back.

A SAELens folder holds ``cfg.json`` and ``sae_weights.safetensors``. Only the architectures SAELens
shares with the toolkit travel: ``standard`` (:class:`~toolkit.sae.ReluSAE`) and ``topk``
(:class:`~toolkit.sae.TopKSAE`); each SAE names its own with ``saelens_arch()``. The toolkit's own
checkpoints (``sae.save`` / ``SparseAutoencoder.load``) live with the architectures in :mod:`toolkit.sae`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .integrity import check_finite_tensors, digests, has_digests, read_json, read_safetensors, verify_tensors
from .sae import ReluSAE, SparseAutoencoder, TopKSAE, verify_config_digest, write_checkpoint_folder
from .validation import check_int

__all__ = ["export_saelens", "load_saelens", "SAELENS_CONFIG", "SAELENS_WEIGHTS"]

SAELENS_CONFIG = "cfg.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"


def export_saelens(sae: SparseAutoencoder, folder: str | Path, *, hook_name: str = "", model_name: str = "",
                   hook_layer: int | None = None, overwrite: bool = False) -> Path:
    """Write ``sae`` in SAELens's on-disk format: ``cfg.json`` + ``sae_weights.safetensors``.

    SAELens computes ``f = act((x - b_dec) @ W_enc + b_enc)`` and ``x_hat = f @ W_dec + b_dec`` on raw
    activations, so our input ``scale`` is folded into the weights: ``W_enc / scale``,
    ``W_dec * scale`` and ``b_dec * scale`` give exactly the same codes and reconstructions.

    As with :meth:`SparseAutoencoder.save`, the folder is written atomically, a folder holding other
    files (a toolkit checkpoint, say) is refused unless ``overwrite=True`` (which replaces its contents),
    and the safetensors metadata records SHA-256 digests that :func:`load_saelens` verifies (SAELens
    ignores the metadata).
    """
    if not isinstance(sae, SparseAutoencoder):
        raise TypeError(f"sae must be a toolkit SparseAutoencoder, got {type(sae).__name__}")
    arch, act_kwargs = sae.saelens_arch()
    s = sae.scale.detach().float().cpu()
    tensors = {
        "W_enc": (sae.W_enc.detach().float().cpu() / s).contiguous(),
        "b_enc": sae.b_enc.detach().float().cpu().contiguous(),
        "W_dec": (sae.W_dec.detach().float().cpu() * s).contiguous(),
        "b_dec": (sae.b_dec.detach().float().cpu() * s).contiguous(),
    }
    cfg: dict[str, Any] = {
        "architecture": arch,
        "d_in": sae.d_in,
        "d_sae": sae.n_latents,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "activation_fn": "topk" if arch == "topk" else "relu",
        "activation_fn_kwargs": act_kwargs,
        "model_name": model_name,
        "hook_name": hook_name,
        "hook_layer": -1 if hook_layer is None else int(hook_layer),
        "hook_head_index": None,
        "prepend_bos": True,
        "dataset_path": "",
        "context_size": 0,
        "finetuning_scaling_factor": False,
        "sae_lens_training_version": None,
        "metadata": {
            "model_name": model_name,
            "hook_name": hook_name,
            "exported_by": "toolkit.saelens.export_saelens",
            "toolkit_kind": type(sae).__name__,
        },
    }
    if arch == "topk":
        cfg["k"] = sae.k  # newer SAELens reads k at the top level of a TopK config
    check_finite_tensors(tensors, where=f"of the {type(sae).__name__} being exported to {folder}; "
                                         "a diverged SAE is not exported (retrain it, e.g. with a lower lr)")
    meta = {"format": "pt", **digests(tensors, cfg)}

    def write(tmp: Path) -> None:
        from safetensors.torch import save_file

        (tmp / SAELENS_CONFIG).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        save_file(tensors, str(tmp / SAELENS_WEIGHTS), metadata=meta)

    return write_checkpoint_folder(Path(folder), (SAELENS_CONFIG, SAELENS_WEIGHTS), overwrite, write, "SAELens export")


def load_saelens(folder: str | Path) -> SparseAutoencoder:
    """Read a SAELens-format folder (``standard``/ReLU or ``topk``) back into a toolkit SAE.

    A folder written by :func:`export_saelens` is verified against its recorded SHA-256 digests; one
    written by SAELens itself has none, so only its shapes and finiteness are checked.
    """
    folder = Path(folder)
    cfg_path, w_path = folder / SAELENS_CONFIG, folder / SAELENS_WEIGHTS
    for path in (cfg_path, w_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; a SAELens folder holds {SAELENS_CONFIG} and {SAELENS_WEIGHTS}")
    remedy = f"export the SAE again with tk.export_saelens(sae, {str(folder)!r}, overwrite=True), or delete {folder}"
    cfg = read_json(cfg_path, remedy)
    w, meta = read_safetensors(w_path, remedy)
    if has_digests(meta):
        verify_tensors(w_path, w, meta, remedy)
        verify_config_digest(cfg_path, cfg, w_path, meta, remedy)
    check_finite_tensors(w, where=f"in {w_path}: an SAE with NaN/inf weights is refused")
    arch = cfg.get("architecture")
    try:
        d_in, d_sae = check_int("d_in", cfg.get("d_in"), minimum=1), check_int("d_sae", cfg.get("d_sae"), minimum=1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{cfg_path}: {err}") from err
    if arch == "topk":
        k = cfg.get("k", (cfg.get("activation_fn_kwargs") or {}).get("k"))
        try:
            sae: SparseAutoencoder = TopKSAE(d_in, d_sae, k)
        except ValueError as err:
            raise ValueError(f"{cfg_path}: {err}") from err
    elif arch == "standard":
        sae = ReluSAE(d_in, d_sae, 0.0)
    else:
        raise ValueError(f"{folder}: SAELens architecture {arch!r} is not supported; use 'standard' or 'topk'")
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        want = tuple(getattr(sae, name).shape)
        if name not in w or tuple(w[name].shape) != want:
            got = tuple(w[name].shape) if name in w else "missing"
            raise ValueError(f"{folder}: {name} is {got}, expected {want} for d_in={d_in}, d_sae={d_sae}")
    with torch.no_grad():
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            getattr(sae, name).copy_(w[name].float())
        sae.scale.fill_(1.0)
        sae.initialized.fill_(True)
    return sae
