"""Sparse autoencoder architectures in plain, readable torch, and their checkpoints.

An SAE rewrites an activation vector ``x`` (``d_in`` numbers) as a sparse, non-negative code ``f``
(``n_latents`` numbers, most of them zero) and reconstructs ``x_hat = f @ W_dec + b_dec``. Each row of
``W_dec`` is a *feature direction*; the hope is that each one means one thing.

- :class:`SparseAutoencoder` is the small base every SAE here shares: the encoder and decoder weights,
  input scaling, dead-latent bookkeeping, the unit-norm decoder constraint, ``loss(x, labels=None) ->
  (loss, info)`` and save/load. A new SAE kind overrides ``encode`` (and usually ``loss``) and nothing else.
- :class:`ReluSAE`: ReLU code with an L1 penalty and unit-norm decoder rows (Anthropic, "Towards
  Monosemanticity", 2023).
- :class:`TopKSAE`: keep the k largest pre-activations (Gao et al., "Scaling and evaluating sparse
  autoencoders", 2024), with the AuxK loss that revives dead latents.
- :class:`GuidedSAE` (G-SAE) and :class:`SCAR`: supervised TopK SAEs on standardized tokens whose first
  latents are tied to concept labels. They share TopK's code path (``_TopKCode``); what differs is
  declared, not patched: the activation of the survivors, and ``unit_norm_decoder``.

Training lives in :mod:`toolkit.sae_training`, metrics in :mod:`toolkit.sae_metrics` and the SAELens
format in :mod:`toolkit.saelens`.

Conventions: ``W_enc`` is ``[d_in, n_latents]``, ``W_dec`` is ``[n_latents, d_in]`` (the same layout as
SAELens). Inputs are divided by a scalar ``scale`` fitted once from the training data so that
``E||x/scale||^2 = d_in``: this makes one L1 coefficient or learning rate work for every layer and
model. ``decode`` multiplies it back, so callers always see raw activations.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import nn

from .integrity import (DIGEST, check_finite_tensors, config_sha256, digests, has_digests, read_json, read_safetensors,
                        replace_folder, verify_tensors)
from .sae_metrics import fvu
from .validation import as_tensor, check_bool

__all__ = ["SparseAutoencoder", "ReluSAE", "TopKSAE", "GuidedSAE", "SCAR", "activation_rows"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "sae.safetensors"
#: 2 records SHA-256 digests of every tensor and of the config in the safetensors metadata; 1 did not.
FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)


def activation_rows(acts: Any, name: str = "acts") -> torch.Tensor:
    """Activation rows ``[n, d]`` as float32 torch: a tensor, a numpy array, or a ``tk.Activations`` (its ``rows``)."""
    x = as_tensor(getattr(acts, "rows", acts), name)
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape [n, d]; got shape {tuple(x.shape)}")
    return x


# Checkpoints (ours and the SAELens export) are written with a SHA-256 per tensor and of the config
# (toolkit/integrity.py) and read back only if every digest matches, so a flipped byte or an edited
# config is an error, not a silent load.
def verify_config_digest(cfg_path: Path, cfg: Mapping[str, Any], w_path: Path, meta: Mapping[str, str], remedy: str) -> None:
    """The config must be the one saved with the tensors: a value edit that changes no tensor shape
    (``k``, ``l1_coeff`` ...) would otherwise load silently and change what the SAE computes."""
    want = meta.get(f"{DIGEST}config")
    if want is None:
        raise ValueError(f"{w_path} records no checksum of {cfg_path.name}: the file is corrupt; {remedy}")
    if config_sha256(cfg) != want:
        raise ValueError(f"{cfg_path} does not match the config saved with {w_path.name} (SHA-256 differs): "
                         f"it was edited or corrupted after saving, so the weights may not fit these settings. "
                         f"Re-save the SAE, or restore the original {cfg_path.name}")


def write_checkpoint_folder(folder: Path, own: tuple[str, ...], overwrite: bool, write: Callable[[Path], None],
                            what: str) -> Path:
    """Write ``own`` files into ``folder`` atomically, via a temporary sibling folder and a rename.

    Shared by :meth:`SparseAutoencoder.save` and :func:`toolkit.saelens.export_saelens`, so both formats
    refuse and replace folders by the same rule.

    A folder that holds only ``own`` files (an earlier save in the same format, e.g. a re-run notebook)
    is replaced. Any other file means the folder belongs to something else (another format, other
    data), so it is refused unless ``overwrite=True``, which replaces the whole folder: nothing stale
    stays behind to be mixed with the new files later.
    """
    overwrite = check_bool("overwrite", overwrite)
    given = Path(folder)
    folder = given.expanduser().absolute()  # absolute: "." has no name and no parent to rename within
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file, not a folder; pass a folder path for the {what}")
    existing = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    foreign = [name for name in existing if name not in own]
    if foreign and not overwrite:
        raise FileExistsError(f"{folder} already holds other files {foreign[:5]}{' ...' if len(foreign) > 5 else ''}; "
                              f"the {what} ({', '.join(own)}) needs an empty or new folder. Pick another folder, "
                              f"or pass overwrite=True to replace the folder's contents")
    subdirs = [name for name in existing if (folder / name).is_dir()]
    if subdirs:
        # overwrite replaces a folder of files; deleting a tree of sub-folders is left to the user
        raise FileExistsError(f"{folder} holds sub-folders {subdirs[:5]}, so it is not a checkpoint folder; "
                              f"even with overwrite=True it is not replaced. Pick another folder or delete it yourself")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        write(tmp)
        replace_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return given


def _checkpoint_remedy(folder: Path) -> str:
    return f"re-save the SAE with sae.save({str(folder)!r}, overwrite=True), or delete {folder} and train it again"


class SparseAutoencoder(nn.Module):
    """Base class: encoder/decoder weights, scaling, dead-latent stats, loss, save/load.

    Subclasses implement :meth:`encode` (pre-activations -> sparse code) and may override
    :meth:`loss` (return ``(loss, info)``; ``info`` holds python floats for logging plus, optionally,
    tensors) and :meth:`config` (extra constructor arguments, so save/load can rebuild them). Class
    attributes declare the rest: ``unit_norm_decoder`` (the constraint ``train_sae`` keeps) and
    ``latents_are_probabilities`` (codes in [0, 1], which balanced steering needs).

    Args:
        d_in: width of the activations (``model.d_model`` for the residual stream).
        n_latents: dictionary size.
        dead_tokens: a latent that has not fired on any of the last ``dead_tokens`` training tokens
            counts as dead (Gao et al. use 10M tokens on large runs; small runs need a smaller window).
    """

    #: registry of subclasses by class name, so ``SparseAutoencoder.load`` can rebuild any kind
    _registry: ClassVar[dict[str, type["SparseAutoencoder"]]] = {}
    #: keep every decoder row at unit norm during training (see :meth:`before_step` / :meth:`after_step`)
    unit_norm_decoder: ClassVar[bool] = True
    #: the code is bounded in [0, 1] (G-SAE's sigmoid), which ``tk.steer(..., gamma="balanced")`` relies on
    latents_are_probabilities: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):  # shared building blocks are not checkpoint kinds
            SparseAutoencoder._registry[cls.__name__] = cls

    def __init__(self, d_in: int, n_latents: int, *, dead_tokens: int = 100_000) -> None:
        super().__init__()
        for name, value in (("d_in", d_in), ("n_latents", n_latents), ("dead_tokens", dead_tokens)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.d_in = int(d_in)
        self.n_latents = int(n_latents)
        self.dead_tokens = int(dead_tokens)
        # Tied initialisation (Gao et al. 2024): unit-norm random decoder rows, encoder = decoder^T.
        w_dec = torch.randn(self.n_latents, self.d_in)
        w_dec = w_dec / w_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)
        self.W_enc = nn.Parameter(w_dec.t().clone())
        self.b_enc = nn.Parameter(torch.zeros(self.n_latents))
        self.b_dec = nn.Parameter(torch.zeros(self.d_in))
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("initialized", torch.tensor(False))
        # tokens seen since each latent last fired (training only): the dead-latent clock
        self.register_buffer("tokens_since_fired", torch.zeros(self.n_latents, dtype=torch.long))

    # ----------------------------------------------------------------- configuration
    def config(self) -> dict[str, Any]:
        """Constructor arguments; subclasses extend it with their own (``k``, ``l1_coeff`` ...)."""
        return {"d_in": self.d_in, "n_latents": self.n_latents, "dead_tokens": self.dead_tokens}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items())

    # ----------------------------------------------------------------- forward pass
    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder pre-activations ``(x/scale - b_dec) @ W_enc + b_enc``, shape ``[..., n_latents]``."""
        if x.shape[-1] != self.d_in:
            raise ValueError(f"input has last dimension {x.shape[-1]}, this SAE expects d_in={self.d_in}")
        x = x.to(self.W_enc.dtype)
        # Same value as (x/scale - b_dec) @ W_enc + b_enc, but b_dec's gradient is then a mat-vec
        # instead of a [batch, n_latents] @ [n_latents, d_in] matmul: ~20% off a training step on CPU.
        return (x / self.scale) @ self.W_enc + (self.b_enc - self.b_dec @ self.W_enc)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Sparse non-negative code ``f`` of shape ``[..., n_latents]``."""
        raise NotImplementedError(f"{type(self).__name__} must implement encode()")

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Reconstruction in raw activation units: ``(f @ W_dec + b_dec) * scale``."""
        return (f @ self.W_dec + self.b_dec) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x`` (same shape)."""
        return self.decode(self.encode(x))

    # ----------------------------------------------------------------- training hooks
    def _initialization_sample(self, acts: torch.Tensor) -> torch.Tensor:
        """Up to 65,536 rows of ``acts`` (width checked) on this SAE's device, for data-dependent init."""
        acts = activation_rows(acts)
        if acts.shape[1] != self.d_in:
            raise ValueError(f"acts have width {acts.shape[1]}, this SAE expects d_in={self.d_in}")
        return acts[: 65_536].to(self.W_enc.device, self.W_enc.dtype)

    @torch.no_grad()
    def initialize(self, acts: torch.Tensor) -> None:
        """Fit the input scale and set ``b_dec`` to the (scaled) data mean. Called once by ``train_sae``."""
        sample = self._initialization_sample(acts)
        # float64: squares of large (but finite) float32 activations overflow to inf, and an infinite
        # scale would zero every input; the point of the scale is to make any magnitude trainable.
        mean_sq = sample.double().pow(2).sum(dim=1).mean()
        self.scale.copy_(torch.sqrt(mean_sq / self.d_in).clamp_min(1e-8).to(self.scale.dtype))
        self.b_dec.copy_((sample / self.scale).mean(dim=0))
        self.initialized.fill_(True)

    @torch.no_grad()
    def record_firing(self, f: torch.Tensor) -> None:
        """Advance the dead-latent clock with a batch of codes ``f`` ``[batch, n_latents]``."""
        fired = (f.reshape(-1, self.n_latents) > 0).any(dim=0)
        self.tokens_since_fired += f.reshape(-1, self.n_latents).shape[0]
        self.tokens_since_fired[fired] = 0

    def dead_mask(self) -> torch.Tensor:
        """Boolean ``[n_latents]``: latents that have not fired in the last ``dead_tokens`` tokens."""
        return self.tokens_since_fired >= self.dead_tokens

    def reconstruction_loss(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """Squared error summed over features, averaged over tokens, in scaled units."""
        return ((x_hat - x) / self.scale).pow(2).sum(dim=-1).mean()

    def loss(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Training loss on a batch; returns ``(loss, info)``.

        The base loss is the reconstruction error alone. ``info`` holds floats that ``train_sae`` logs
        (``loss``, ``mse``, ``fvu``, ``l0``) and ``latents`` (the detached code, for dead-latent stats).
        Supervised subclasses use ``labels``; unsupervised ones refuse them.
        """
        if labels is not None:
            raise ValueError(f"{type(self).__name__} is unsupervised; train it with labels=None")
        f = self.encode(x)
        x_hat = self.decode(f)
        mse = self.reconstruction_loss(x, x_hat)
        return mse, self._info(x, x_hat, f, mse, mse)

    @torch.no_grad()
    def _info(self, x: torch.Tensor, x_hat: torch.Tensor, f: torch.Tensor, total: torch.Tensor,
              mse: torch.Tensor, **extra: float) -> dict[str, Any]:
        return {
            "loss": float(total),
            "mse": float(mse),
            "fvu": float(fvu(x, x_hat)),
            "l0": float((f > 0).sum(dim=-1).float().mean()),
            **{k: float(v) for k, v in extra.items()},
            "latents": f.detach(),
        }

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale each decoder row to unit norm (the encoder is left alone)."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Project out the gradient component along each decoder row, so the unit-norm constraint
        and Adam do not fight (the update then only rotates the row)."""
        if self.W_dec.grad is None:
            return
        w = self.W_dec
        parallel = (self.W_dec.grad * w).sum(dim=1, keepdim=True) * w
        self.W_dec.grad.sub_(parallel)

    def before_step(self) -> None:
        """Called by ``train_sae`` between ``backward`` and ``optimizer.step``."""
        if self.unit_norm_decoder:
            self.remove_parallel_grad()

    def after_step(self) -> None:
        """Called by ``train_sae`` after ``optimizer.step``."""
        if self.unit_norm_decoder:
            self.normalize_decoder()

    # ----------------------------------------------------------------- save / load
    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``config.json`` and ``sae.safetensors`` into ``folder``; returns the folder.

        The safetensors metadata records a SHA-256 of every tensor and of the config, which
        :meth:`load` verifies. The folder is written atomically (a temporary sibling, then a rename).
        A new, empty or earlier-checkpoint folder is fine; a folder holding any other file is refused
        unless ``overwrite=True``, which replaces the folder's contents. An SAE with NaN/inf weights
        is refused: :meth:`load` would refuse the checkpoint anyway.
        """
        cfg = {"kind": type(self).__name__, "format_version": FORMAT_VERSION, **self.config()}
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        check_finite_tensors(state, where=f"of the {type(self).__name__} being saved to {folder}; "
                                           "a diverged SAE is not saved (retrain it, e.g. with a lower lr)")
        meta = {"kind": cfg["kind"], "format_version": str(FORMAT_VERSION), **digests(state, cfg)}

        def write(tmp: Path) -> None:
            from safetensors.torch import save_file

            (tmp / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            save_file(state, str(tmp / WEIGHTS_FILE), metadata=meta)

        return write_checkpoint_folder(Path(folder), (CONFIG_FILE, WEIGHTS_FILE), overwrite, write, "SAE checkpoint")

    @staticmethod
    def _read_checkpoint(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, str]]:
        """Config, tensors and metadata of a checkpoint folder, verified as far as the folder alone allows:
        readable files, tensors matching their recorded SHA-256, no NaN/inf. The config digest is checked
        by the caller *after* the shape checks, so a config that contradicts a tensor shape is reported
        as that shape."""
        cfg_path, w_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        for path in (cfg_path, w_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found; an SAE folder holds {CONFIG_FILE} and {WEIGHTS_FILE} "
                                        f"(written by sae.save(folder))")
        remedy = _checkpoint_remedy(folder)
        cfg = read_json(cfg_path, remedy)
        version = cfg.get("format_version")
        if version not in _READABLE_VERSIONS:
            raise ValueError(f"{cfg_path}: format_version {version!r}, this toolkit reads {list(_READABLE_VERSIONS)}")
        state, meta = read_safetensors(w_path, remedy)
        if has_digests(meta):
            verify_tensors(w_path, state, meta, remedy)
        elif version == FORMAT_VERSION:
            raise ValueError(f"{w_path} records no checksums, though format_version {version} always writes them: "
                             f"the file was replaced or corrupted; {remedy}")
        else:
            # An older checkpoint cannot be verified; say so rather than trusting it silently.
            warnings.warn(f"{folder} was saved by an older toolkit (format_version {version}) without checksums, "
                          f"so corruption or an edited {CONFIG_FILE} cannot be detected; re-save it with "
                          f"sae.save(folder, overwrite=True) to record them", UserWarning, stacklevel=3)
        check_finite_tensors(state, where=f"in {w_path}: a checkpoint of a diverged SAE is refused; "
                                           f"retrain it (lower lr) and save again, or delete {folder}")
        return cfg, state, meta

    @staticmethod
    def _check_config_digest(folder: Path, cfg: dict[str, Any], meta: dict[str, str]) -> None:
        if has_digests(meta):
            verify_config_digest(folder / CONFIG_FILE, cfg, folder / WEIGHTS_FILE, meta, _checkpoint_remedy(folder))

    @classmethod
    def load(cls, folder: str | Path, *, device: str | torch.device = "cpu", **expected: Any) -> "SparseAutoencoder":
        """Rebuild an SAE from ``folder``; refuses a mismatched or corrupt checkpoint, naming the problem.

        ``TopKSAE.load(f)`` refuses a checkpoint of another kind; ``SparseAutoencoder.load(f)`` accepts
        any registered kind. Keyword arguments (``d_in=576, k=32`` ...) are expected config values:
        a checkpoint that disagrees is refused. So is a truncated file, a tensor or config that no longer
        matches the SHA-256 recorded at save time, and a tensor holding NaN/inf.
        """
        folder = Path(folder)
        cfg_path, w_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        full_cfg, state, meta = cls._read_checkpoint(folder)
        cfg = dict(full_cfg)
        kind = cfg.pop("kind", None)
        cfg.pop("format_version", None)
        if kind not in cls._registry:
            raise ValueError(f"{cfg_path}: unknown SAE kind {kind!r}; known kinds: {sorted(cls._registry)}")
        target = cls._registry[kind]
        if cls is not SparseAutoencoder and not issubclass(target, cls):
            raise ValueError(f"{folder} holds a {kind}, not a {cls.__name__}; load it with tk.{kind}.load "
                             f"or SparseAutoencoder.load")
        for key, want in expected.items():
            if key not in cfg:
                raise ValueError(f"expected config {key}={want!r}, but the {kind} checkpoint has no {key!r} "
                                 f"(it has {sorted(cfg)})")
            if cfg[key] != want:
                raise ValueError(f"checkpoint config mismatch: {key}={cfg[key]!r} in {cfg_path}, expected {want!r}")
        try:
            sae = target(**cfg)
        except (TypeError, ValueError) as err:
            cls._check_config_digest(folder, full_cfg, meta)  # an edited config: say so first
            raise ValueError(f"{cfg_path} does not describe a valid {kind}: {err}") from err
        sae._check_state(state, source=str(w_path))  # a config contradicting a tensor shape is named as such
        cls._check_config_digest(folder, full_cfg, meta)  # any other config edit (k, l1_coeff ...) is caught here
        sae.load_state_dict(state)
        return sae.to(device)

    def load_checked_state(self, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """``load_state_dict`` that names any missing, unexpected or mis-shaped tensor."""
        self._check_state(state, source)
        self.load_state_dict(state)

    def _check_state(self, state: Mapping[str, torch.Tensor], source: str) -> None:
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"{source} does not match {type(self).__name__}: missing {missing}, unexpected {unexpected}")
        for name, tensor in own.items():
            if tuple(state[name].shape) != tuple(tensor.shape):
                raise ValueError(f"{source}: tensor {name!r} has shape {tuple(state[name].shape)}, "
                                 f"{type(self).__name__}({self.extra_repr()}) needs {tuple(tensor.shape)}")

    def load_weights(self, folder: str | Path) -> "SparseAutoencoder":
        """Load weights from ``folder`` into this instance; refuses a checkpoint whose kind or config
        differs from this SAE's, naming the first differing value, and a corrupt one as :meth:`load` does."""
        folder = Path(folder)
        full_cfg, state, meta = self._read_checkpoint(folder)
        cfg = dict(full_cfg)
        kind = cfg.pop("kind", None)
        cfg.pop("format_version", None)
        if kind != type(self).__name__:
            raise ValueError(f"{folder} holds a {kind}, this is a {type(self).__name__}")
        mine = self.config()
        for key in sorted(set(cfg) | set(mine)):
            if cfg.get(key) != mine.get(key):
                raise ValueError(f"checkpoint config mismatch: {key}={cfg.get(key)!r} in {folder}, "
                                 f"this SAE has {key}={mine.get(key)!r}")
        # Every check before the first write: a refused load leaves this instance as it was.
        self._check_state(state, source=str(folder / WEIGHTS_FILE))
        self._check_config_digest(folder, full_cfg, meta)
        self.load_state_dict(state)
        return self

    # ----------------------------------------------------------------- SAELens export
    def saelens_arch(self) -> tuple[str, dict[str, Any]]:
        """SAELens architecture name and activation kwargs for :func:`toolkit.saelens.export_saelens`."""
        raise NotImplementedError(f"{type(self).__name__} has no SAELens equivalent")


class ReluSAE(SparseAutoencoder):
    """ReLU SAE with an L1 sparsity penalty and unit-norm decoder rows ("Towards Monosemanticity").

    ``f = ReLU((x/scale - b_dec) @ W_enc + b_enc)``; loss ``= ||x - x_hat||^2 + l1_coeff * sum_i f_i``
    (in scaled units). Because every decoder row has norm 1, the L1 penalty on ``f`` cannot be dodged by
    shrinking ``f`` and growing the decoder.
    """

    def __init__(self, d_in: int, n_latents: int, l1_coeff: float = 1.0, *, dead_tokens: int = 100_000) -> None:
        super().__init__(d_in, n_latents, dead_tokens=dead_tokens)
        if not (isinstance(l1_coeff, (int, float)) and math.isfinite(l1_coeff) and l1_coeff >= 0):
            raise ValueError(f"l1_coeff must be a finite number >= 0, got {l1_coeff!r}")
        self.l1_coeff = float(l1_coeff)
        # Tied init with unit rows gives pre-activations of unit scale; a small encoder start keeps
        # the initial code from being dense and huge.
        with torch.no_grad():
            self.W_enc.mul_(0.1)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "l1_coeff": self.l1_coeff}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.pre_acts(x))

    def loss(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        if labels is not None:
            raise ValueError("ReluSAE is unsupervised; train it with labels=None")
        f = self.encode(x)
        x_hat = self.decode(f)
        mse = self.reconstruction_loss(x, x_hat)
        # decoder rows are unit norm, so this equals Anthropic's sum_i f_i * ||W_dec_i||
        l1 = (f * self.W_dec.norm(dim=1)).sum(dim=-1).mean()
        total = mse + self.l1_coeff * l1
        return total, self._info(x, x_hat, f, total, mse, l1=l1)

    def saelens_arch(self) -> tuple[str, dict[str, Any]]:
        return "standard", {}


class _TopKCode(SparseAutoencoder):
    """The TopK code path that TopKSAE, GuidedSAE and SCAR share: ``encode(x) = code(pre_acts(x))``,
    where :meth:`code` keeps the ``k`` largest pre-activations, applies :meth:`activation` to them and
    zeroes the rest. Subclasses choose the activation (ReLU here) and, for SCAR, what stays outside the
    race. Not a checkpoint kind of its own (the leading underscore keeps it out of the registry)."""

    k: int

    def _set_k(self, k: Any, maximum: int, bound: str) -> None:
        """Store ``k``, an integer in [1, maximum]; ``bound`` names the maximum in the error."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= maximum:
            raise ValueError(f"k must be an integer in [1, {bound}], got {k!r}")
        self.k = int(k)

    def activation(self, values: torch.Tensor) -> torch.Tensor:
        """What the top-k survivors become: ReLU, so L0 may fall below k but never exceeds it."""
        return torch.relu(values)

    def topk_code(self, pre: torch.Tensor, k: int) -> torch.Tensor:
        """Zero all but the ``k`` largest entries of ``pre`` (last dim), apply :meth:`activation` to the survivors."""
        return self.dense_code(*self.topk_parts(pre, k), like=pre)

    def topk_parts(self, pre: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` largest entries of ``pre`` as ``(activated values, latent indices)``, each ``[..., k]``."""
        # Order is irrelevant (each value goes with its index) and unsorted is cheaper; CPU topk
        # picks the same k entries either way, so the code does not depend on the flag.
        values, indices = pre.topk(k, dim=-1, sorted=False)
        return self.activation(values), indices

    def sparse_code(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The code of pre-activations ``pre`` as ``(values, indices)``: the top ``k``, activated."""
        return self.topk_parts(pre, self.k)

    @staticmethod
    def dense_code(values: torch.Tensor, indices: torch.Tensor, *, like: torch.Tensor) -> torch.Tensor:
        """The ``[..., n_latents]`` code (shaped like ``like``) holding ``values`` at ``indices``, zero elsewhere."""
        return torch.zeros_like(like).scatter(-1, indices, values)

    def code(self, pre: torch.Tensor) -> torch.Tensor:
        """The sparse code of pre-activations ``pre``: the top ``k``, activated (zero elsewhere)."""
        return self.dense_code(*self.sparse_code(pre), like=pre)

    def decode_rows(self, values: torch.Tensor, indices: torch.Tensor, *, bias: bool = True) -> torch.Tensor:
        """``f @ W_dec (+ b_dec)`` for the code ``f`` given as ``(values, indices)``, in scaled units.

        Training decodes this way: summing the k chosen decoder rows costs ``k * d_in`` per token where
        the dense product costs ``n_latents * d_in``, and its backward touches only those rows. With
        k = 32 of 2,304 latents that made the decoder's forward and backward ~6x cheaper on a CPU
        (the whole training step ~2x). The result equals the dense product up to float summation order.
        """
        lead = values.shape[:-1]
        rows = nn.functional.embedding_bag(indices.reshape(-1, indices.shape[-1]), self.W_dec,
                                           per_sample_weights=values.reshape(-1, values.shape[-1]).to(self.W_dec.dtype),
                                           mode="sum").reshape(*lead, self.d_in)
        return rows + self.b_dec if bias else rows

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.code(self.pre_acts(x))


class TopKSAE(_TopKCode):
    """TopK SAE (Gao et al. 2024): keep the ``k`` largest pre-activations per token, ReLU them.

    L0 is exactly ``k`` or less by construction, so there is no sparsity penalty to tune. The AuxK loss
    (weight ``aux_coeff``, default 1/32 as in the paper) asks the ``aux_k`` largest *dead* latents to
    reconstruct the residual error ``x - x_hat``; that gives dead latents a gradient again. Set
    ``aux_coeff=0`` to switch it off.
    """

    def __init__(self, d_in: int, n_latents: int, k: int = 32, *, aux_k: int | None = None,
                 aux_coeff: float = 1 / 32, dead_tokens: int = 100_000) -> None:
        super().__init__(d_in, n_latents, dead_tokens=dead_tokens)
        self._set_k(k, n_latents, f"n_latents={n_latents}")
        if aux_k is None:
            aux_k = min(n_latents, max(2 * int(k), d_in // 2))
        if not isinstance(aux_k, (int, np.integer)) or not 1 <= aux_k <= n_latents:
            raise ValueError(f"aux_k must be an integer in [1, n_latents={n_latents}], got {aux_k!r}")
        if not (isinstance(aux_coeff, (int, float)) and math.isfinite(aux_coeff) and aux_coeff >= 0):
            raise ValueError(f"aux_coeff must be a finite number >= 0, got {aux_coeff!r}")
        self.aux_k = int(aux_k)
        self.aux_coeff = float(aux_coeff)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "k": self.k, "aux_k": self.aux_k, "aux_coeff": self.aux_coeff}

    def loss(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        if labels is not None:
            raise ValueError("TopKSAE is unsupervised; train it with labels=None")
        pre = self.pre_acts(x)
        values, indices = self.sparse_code(pre)
        x_hat = self.decode_rows(values, indices) * self.scale
        mse = self.reconstruction_loss(x, x_hat)
        aux = self.aux_loss(x, x_hat, pre)
        total = mse + self.aux_coeff * aux
        with torch.no_grad():  # the dense code only feeds the logged stats and the dead-latent clock
            f = self.dense_code(values, indices, like=pre)
        return total, self._info(x, x_hat, f, total, mse, aux=aux)

    def aux_loss(self, x: torch.Tensor, x_hat: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        """AuxK: reconstruct the (detached) residual with the top ``aux_k`` dead latents, no bias.

        Measured in the same units as the main reconstruction loss (squared error summed over
        features, scaled inputs), so ``aux_coeff`` = 1/32 weighs it as in Gao et al.; zero when no
        latent is dead.
        """
        dead = self.dead_mask()
        n_dead = int(dead.sum())
        if n_dead == 0 or self.aux_coeff == 0:
            return pre.new_zeros(())
        residual = ((x - x_hat) / self.scale).detach()
        dead_pre = pre.masked_fill(~dead, float("-inf"))
        residual_hat = self.decode_rows(*self.topk_parts(dead_pre, min(self.aux_k, n_dead)), bias=False)
        return (residual_hat - residual).pow(2).sum(dim=-1).mean()

    def saelens_arch(self) -> tuple[str, dict[str, Any]]:
        return "topk", {"k": self.k}


# --------------------------------------------------------------------------- supervised SAEs: G-SAE and SCAR
def _standardize(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Per-token standardization: zero mean and unit std across features; returns ``z, (mu, sigma)``."""
    mu = x.mean(dim=-1, keepdim=True)
    sigma = x.std(dim=-1, keepdim=True) + eps
    return (x - mu) / sigma, (mu, sigma)


class GuidedSAE(_TopKCode):
    """Guided SAE (G-SAE, Härle et al., "Measuring and Guiding Monosemanticity", NeurIPS 2025).

    A TopK SAE whose first ``n_concepts`` latents are *reserved*: a binary cross-entropy term
    ties latent ``c`` to the label of concept ``c``, so each concept lives in one known latent
    instead of being smeared over many (or sharing one with something else).

    - Each token is standardized (zero mean, unit std over its features) before encoding; the
      standardization is undone after decoding, so the SAE works on the *direction* of ``x``.
    - ``h = (z - b_dec) @ W_enc + b_enc``; ``f = sigmoid(TopK(h))`` (zero outside the top k), so
      every active latent is a probability-like value in (0, 1).
    - ``x_hat = (f @ W_dec + b_dec) * sigma + mu``.
    - ``loss = mean ||x_hat - x||^2 / ||x||^2 + concept_weight * BCE(sigmoid(h[:, :C]), labels)``.
      The BCE reads ``h`` before TopK, so a concept latent that lost the TopK race still gets a
      gradient telling it to fire.

    Train with ``tk.train_sae(gsae, acts, labels=Y)``, ``Y`` of shape ``[n_tokens]`` (one concept)
    or ``[n_tokens, n_concepts]`` holding 0/1 per token. Decoder rows are left unnormalized
    (``unit_norm_decoder = False``: the sigmoid bounds the code, so the decoder carries the scale);
    steering normalizes them anyway.

    ``encode`` remembers the per-token statistics of its last input, so ``decode(encode(x))``
    returns raw activations as for every other SAE; to decode other codes pass ``stats=``.
    """

    unit_norm_decoder: ClassVar[bool] = False  # the bounded code needs a free decoder scale
    latents_are_probabilities: ClassVar[bool] = True  # sigmoid codes, for gamma="balanced" steering

    def __init__(self, d_in: int, n_latents: int, k: int = 32, n_concepts: int = 1, *,
                 concept_weight: float = 1.0, dead_tokens: int = 100_000) -> None:
        super().__init__(d_in, n_latents, dead_tokens=dead_tokens)
        if not isinstance(n_concepts, (int, np.integer)) or isinstance(n_concepts, bool) or not 1 <= n_concepts < n_latents:
            raise ValueError(f"n_concepts must be an integer in [1, n_latents={n_latents}), got {n_concepts!r}")
        self._set_k(k, n_latents, f"n_latents={n_latents}")
        if not (isinstance(concept_weight, (int, float)) and math.isfinite(concept_weight) and concept_weight >= 0):
            raise ValueError(f"concept_weight must be a finite number >= 0, got {concept_weight!r}")
        self.n_concepts = int(n_concepts)
        self.concept_weight = float(concept_weight)
        self._last_stats: tuple[torch.Tensor, torch.Tensor] | None = None
        with torch.no_grad():
            # Standardized tokens have norm sqrt(d_in) and the code is bounded by 1, so start the
            # decoder rows at the norm that lets k half-active latents span that length.
            self.W_dec.mul_(math.sqrt(self.d_in / self.k))
            if self.unit_norm_decoder:
                # SCAR's ReLU code carries the scale, so its rows start on the constraint it trains under.
                # Normalizing the scaled rows (rather than skipping the scaling) keeps its initial
                # weights bit-identical to earlier toolkit versions.
                self.normalize_decoder()

    def config(self) -> dict[str, Any]:
        return {**super().config(), "k": self.k, "n_concepts": self.n_concepts,
                "concept_weight": self.concept_weight}

    # ----------------------------------------------------------------- forward pass
    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations ``h`` of the standardized input, shape ``[..., n_latents]``."""
        if x.shape[-1] != self.d_in:
            raise ValueError(f"input has last dimension {x.shape[-1]}, this SAE expects d_in={self.d_in}")
        z, stats = _standardize(x.to(self.W_enc.dtype))
        self._last_stats = (stats[0].detach(), stats[1].detach())
        return (z - self.b_dec) @ self.W_enc + self.b_enc

    def activation(self, values: torch.Tensor) -> torch.Tensor:
        """What the top-k survivors become: sigmoid for G-SAE."""
        return torch.sigmoid(values)

    def concept_probs(self, x: torch.Tensor) -> torch.Tensor:
        """``sigmoid(h[..., :n_concepts])``: each concept's probability, before TopK ``[..., C]``."""
        return torch.sigmoid(self.pre_acts(x)[..., : self.n_concepts])

    def decode(self, f: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Reconstruction in raw units: ``(f @ W_dec + b_dec) * sigma + mu``.

        ``stats=(mu, sigma)`` are the per-token mean and std of the input; by default those of the
        last input to :meth:`encode` (which must then have the same number of tokens as ``f``).
        """
        z_hat = f @ self.W_dec + self.b_dec
        if stats is None:
            stats = self._last_stats
            if stats is None or stats[0].shape[:-1] != f.shape[:-1]:
                raise ValueError(
                    f"{type(self).__name__}.decode needs the per-token statistics of the input: call encode(x) "
                    f"on the same {tuple(f.shape[:-1])} tokens first, or pass stats=sae.token_stats(x)"
                )
        mu, sigma = stats
        return z_hat * sigma + mu

    def token_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token ``(mu, sigma)`` of raw activations ``x``, as :meth:`decode` wants them."""
        return _standardize(x.to(self.W_enc.dtype))[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.encode(x)
        return self.decode(f, self._last_stats)

    def decoder_direction(self, latent: int) -> torch.Tensor:
        """Decoder row ``D[:, latent]`` (standardized units; steering rescales it by ``||x||``)."""
        if not 0 <= int(latent) < self.n_latents:
            raise IndexError(f"latent={latent} is out of range for an SAE with {self.n_latents} latents "
                             f"(valid: 0..{self.n_latents - 1})")
        return self.W_dec[int(latent)]

    # ----------------------------------------------------------------- training
    @torch.no_grad()
    def initialize(self, acts: torch.Tensor) -> None:
        """Set ``b_dec`` to the mean standardized token; the scalar ``scale`` stays 1 (unused)."""
        sample = self._initialization_sample(acts)
        self.scale.fill_(1.0)
        self.b_dec.copy_(_standardize(sample)[0].mean(dim=0))
        self.initialized.fill_(True)

    def check_labels(self, labels: Any, n_tokens: int | None = None) -> torch.Tensor:
        """Validate concept labels and return them as float ``[n_tokens, n_concepts]``."""
        if labels is None:
            raise ValueError(
                f"{type(self).__name__} is supervised: train it with tk.train_sae(sae, acts, labels=Y), "
                f"Y of shape [n_tokens] or [n_tokens, {self.n_concepts}] with 0/1 per token"
            )
        y = as_tensor(labels, "labels")
        shape = tuple(y.shape)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[1] != self.n_concepts:
            raise ValueError(f"labels must have shape [n_tokens] or [n_tokens, n_concepts={self.n_concepts}], "
                             f"got {shape}")
        if n_tokens is not None and y.shape[0] != n_tokens:
            raise ValueError(f"got labels for {y.shape[0]} tokens but {n_tokens} activations; they must align")
        if not torch.isfinite(y).all() or (y < 0).any() or (y > 1).any():
            raise ValueError("labels must be 0/1 (or probabilities in [0, 1]) per token and concept")
        return y

    def loss(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        y = self.check_labels(labels, x.shape[0]).to(x.device)
        pre = self.pre_acts(x)
        mu, sigma = self._last_stats
        values, indices = self.sparse_code(pre)
        x_hat = self.decode_rows(values, indices) * sigma + mu  # = decode(code(pre)), k rows per token
        with torch.no_grad():  # the dense code only feeds the logged stats and the dead-latent clock
            f = self.dense_code(values, indices, like=pre)
        x = x.to(x_hat.dtype)
        recon = ((x_hat - x).pow(2).sum(dim=-1) / x.pow(2).sum(dim=-1).clamp_min(1e-8)).mean()
        bce = nn.functional.binary_cross_entropy_with_logits(pre[:, : self.n_concepts], y)
        total = recon + self.concept_weight * bce
        with torch.no_grad():
            acc = ((pre[:, : self.n_concepts] > 0).float() == (y > 0.5).float()).float().mean()
        info = self._info(x, x_hat, f, total, ((x_hat - x).pow(2).sum(dim=-1)).mean(),
                          recon=recon, bce=bce, concept_acc=acc)
        return total, info


class SCAR(GuidedSAE):
    """Sparse Conditioned Autoencoder (Härle et al., "SCAR", 2024) on a block's MLP output.

    One conditioned latent (index 0) is tied to a concept by a BCE on ``sigmoid(h_0)``; the other
    latents are a TopK-then-ReLU SAE. Decoder rows have unit norm (the ReLU code carries the scale).

    Where this follows or departs from the paper (Härle et al. 2024, arXiv:2411.07122):

    - **Per-token standardization** (zero mean, unit std over features, undone after decoding), as in
      G-SAE. The paper's text does not dwell on it, but the authors' released autoencoder standardizes
      each token the same way; we follow the released code.
    - **The conditioned latent sits outside the TopK race** (a deliberate departure): it is read as
      ``ReLU(h_0)`` on every token and the other latents compete for ``k`` places, so L0 is at most
      ``k + 1``. In the authors' TopK variant the conditioned latent competes like any other, so on a
      token where it loses it reads 0: detection then sees nothing and scaling it steers nothing. (Their
      JumpReLU variant likewise reads that latent's pre-activation past the threshold.)

    SCAR is meant to sit *inside* the model: the MLP output of its block is replaced by the
    reconstruction (``tk.Edit(layer, fn, site="mlp")``), and steering scales the conditioned
    latent by alpha before decoding (:meth:`steer_reconstruct`): alpha=1 leaves it, 0 removes
    the concept, alpha>1 amplifies it. Scaling cannot create the concept where ``h_0 <= 0``.
    """

    unit_norm_decoder: ClassVar[bool] = True  # the ReLU code carries the scale, as in a TopK SAE
    latents_are_probabilities: ClassVar[bool] = False

    def __init__(self, d_in: int, n_latents: int, k: int = 32, *, concept_weight: float = 1.0,
                 dead_tokens: int = 100_000) -> None:
        # k latents compete besides the conditioned one, so k < n_latents (G-SAE allows k = n_latents)
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k < n_latents:
            raise ValueError(f"k must be an integer in [1, n_latents - 1 = {n_latents - 1}], got {k!r}")
        super().__init__(d_in, n_latents, k, 1, concept_weight=concept_weight, dead_tokens=dead_tokens)

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg.pop("n_concepts")
        return cfg

    def activation(self, values: torch.Tensor) -> torch.Tensor:
        return torch.relu(values)

    def sparse_code(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ReLU of the conditioned latent (index 0), outside the race; the top ``k`` of the others."""
        values, indices = self.topk_parts(pre[..., 1:], self.k)
        return (torch.cat([self.activation(pre[..., :1]), values], dim=-1),
                torch.cat([torch.zeros_like(indices[..., :1]), indices + 1], dim=-1))

    def steer_reconstruct(self, x: torch.Tensor, latent: int = 0, alpha: float = 1.0) -> torch.Tensor:
        """Reconstruction of ``x`` with latent ``latent`` multiplied by ``alpha``."""
        if not 0 <= int(latent) < self.n_latents:
            raise IndexError(f"latent={latent} is out of range for an SAE with {self.n_latents} latents "
                             f"(valid: 0..{self.n_latents - 1})")
        f = self.encode(x)
        stats = self._last_stats
        f = f.clone()
        f[..., int(latent)] = f[..., int(latent)] * float(alpha)
        return self.decode(f, stats)
