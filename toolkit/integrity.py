"""Verified files on disk: checksums and atomic replacement.

Tensors carry a SHA-256 each in their safetensors metadata (SAE checkpoints, the activation cache);
a folder of files carries a manifest of sizes and SHA-256s (the model cache). A folder is replaced by
renames alone, so a reader or a parallel process sees the old folder or the new one, never a mix.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import torch

from .validation import check_finite

#: metadata key prefix of a recorded digest: ``sha256:<tensor name>`` and ``sha256:config``
DIGEST = "sha256:"
_HEAD_BYTES = 1 << 20  # a safetensors header (every tensor's name, shape and offset) fits in the first MiB
_SAMPLE_BLOCKS = 16
_SAMPLE_BYTES = 1 << 16


# --------------------------------------------------------------------------- tensors in safetensors files
def tensor_sha256(tensor: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and raw bytes (so a reinterpretation or reshape also differs)."""
    t = tensor.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy())  # the buffer itself: no bytes copy
    return h.hexdigest()


def config_sha256(cfg: Mapping[str, Any]) -> str:
    """SHA-256 of a config in canonical JSON, so reformatting the file is harmless but any value edit is not."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def digests(tensors: Mapping[str, torch.Tensor], cfg: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The metadata entries to save with ``tensors``: what :func:`verify_tensors` (and a config check) compare."""
    out = {f"{DIGEST}{name}": tensor_sha256(t) for name, t in sorted(tensors.items())}
    if cfg is not None:
        out[f"{DIGEST}config"] = config_sha256(cfg)
    return out


def has_digests(meta: Mapping[str, str]) -> bool:
    return any(key.startswith(DIGEST) for key in meta)


def read_safetensors(path: Path, remedy: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of ``path``; a truncated or garbled file is an error naming it and ``remedy``."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as err:  # safetensors raises its own SafetensorError (or OSError) on a damaged file
        raise ValueError(f"{path} is truncated or corrupt and cannot be read ({type(err).__name__}: {err}); "
                         f"{remedy}") from err
    return tensors, meta


def read_json(path: Path, remedy: str) -> dict[str, Any]:
    """A JSON object from ``path``; a truncated file or one holding no object is an error naming ``remedy``."""
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is truncated or corrupt: not valid JSON ({err}); {remedy}") from err
    if not isinstance(cfg, dict):
        raise ValueError(f"{path} holds a JSON {type(cfg).__name__}, not a config object; {remedy}")
    return cfg


def verify_tensors(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], remedy: str) -> None:
    """Every tensor must match the digest recorded when it was written (and none may be missing or extra)."""
    recorded = {key[len(DIGEST):] for key in meta if key.startswith(DIGEST)} - {"config"}
    if recorded != set(tensors):
        raise ValueError(f"{path} holds tensors {sorted(tensors)} but checksums were recorded for "
                         f"{sorted(recorded)}: the file is corrupt; {remedy}")
    for name in sorted(tensors):
        if tensor_sha256(tensors[name]) != meta[f"{DIGEST}{name}"]:
            raise ValueError(f"{path}: tensor {name!r} does not match the SHA-256 recorded when it was saved, "
                             f"so the file is corrupt; {remedy}")


def check_finite_tensors(tensors: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse NaN/inf in any floating tensor, naming it: digests prove a file intact, not its values sane."""
    for name in sorted(tensors):
        check_finite(f"tensor {name!r}", tensors[name], where=where)


# --------------------------------------------------------------------------- whole files in a folder
def sample_digest(path: Path) -> str:
    """SHA-256 of a file's first MiB and of 16 blocks spread evenly over the rest (the whole file if small).

    About 2 MiB of reading, cheap enough for every load. It catches a damaged header and most
    overwrites; :func:`full_digest` catches the rest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        digest.update(f.read(_HEAD_BYTES))
        span = max(size - _HEAD_BYTES - _SAMPLE_BYTES, 0)
        if size > _HEAD_BYTES:
            for i in range(_SAMPLE_BLOCKS):
                f.seek(_HEAD_BYTES + span * i // (_SAMPLE_BLOCKS - 1))
                digest.update(f.read(_SAMPLE_BYTES))
    return digest.hexdigest()


def full_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"size", "sha256", "sample_sha256"}}`` for every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": full_digest(p),
                                                "sample_sha256": sample_digest(p)}
            for p in sorted(folder.rglob("*")) if p.is_file()}


def check_file(path: Path, record: Mapping[str, Any], *, full: bool) -> str | None:
    """Why ``path`` does not match its manifest ``record`` (a phrase: "is missing" ...), or None.

    ``full=False`` checks the size and the sampled digest (cheap enough for every use); ``full=True``
    the size and every byte (for a first use, or after a change)."""
    if not path.is_file():
        return "is missing"
    size = path.stat().st_size
    if size != record.get("size"):
        return f"is {size:,} bytes, expected {record['size']:,}"
    if (full_digest(path) if full else sample_digest(path)) != record.get("sha256" if full else "sample_sha256"):
        return "does not match its checksum"
    return None


# --------------------------------------------------------------------------- atomic replacement
def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def replace_folder(new: Path, target: Path, *, keep_existing: Callable[[Path], bool] | None = None) -> bool:
    """Rename the finished folder ``new`` (a sibling of ``target``) to ``target``; True once it is there.

    A rename onto an existing folder fails ("Directory not empty"), so an existing ``target`` is renamed
    aside and deleted once ``new`` is in (put back if ``new`` cannot be). If ``keep_existing(target)``
    approves it (say a parallel process installed a good one), both stay put and the result is False.
    A parallel process can move or install ``target`` between two renames, so this retries."""
    for _ in range(3):
        aside = None
        if os.path.lexists(target):
            if keep_existing is not None and keep_existing(target):
                return False
            aside = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            try:
                target.rename(aside)
            except FileNotFoundError:
                continue  # a parallel process moved it meanwhile: look again
        try:
            new.rename(target)
            return True
        except OSError:
            if not os.path.lexists(target):  # a real failure: put the old folder back, let the error speak
                if aside is not None:
                    aside.rename(target)
                    aside = None
                raise
            # else a parallel process put its folder in first: decide again, about that one
        finally:
            if aside is not None:
                _remove(aside)
    new.rename(target)  # a third race in a row is not a race: let its own error speak
    return True
