"""Run-time settings, all read from environment variables.

Notebooks never hard-code a model, a device or a workload size: they ask this module, so the
same notebook runs as a 2-minute CPU test (``TOOLKIT_FAST=1``) or as a full GPU run.

=====================  =========================================================  ==============
variable               meaning                                                    default
=====================  =========================================================  ==============
``TOOLKIT_FAST``       ``1`` shrinks workloads (the test suite sets it)            ``0``
``TOOLKIT_MODEL``      Hugging Face id or local path for ``load_model()``          embedded SmolLM2
``TOOLKIT_REMOTE``     ``1`` runs ``load_model()`` on NDIF                         ``0``
``TOOLKIT_DEVICE``     ``cpu``, ``cuda``, ``cuda:1``, ``mps``                      cuda if present
``TOOLKIT_DTYPE``      ``float32``, ``bfloat16``, ``float16``                      fp32 on CPU, bf16 on GPU
``TOOLKIT_CACHE``      folder for converted models and cached activations         ~/.cache/toolkit
``TOOLKIT_SEED``       the seed ``seed_everything()`` uses                         ``0``
``TOOLKIT_RESULTS``    where notebooks write their metrics JSON                    ``build/results``
``TOOLKIT_THREADS``    torch CPU threads, set when ``toolkit`` is imported         1 if fast, else torch's
=====================  =========================================================  ==============
"""
from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean; use one of {sorted(_TRUE | _FALSE - {''})}")


def fast() -> bool:
    """True when ``TOOLKIT_FAST`` asks for small workloads (tests, quick previews)."""
    return _flag("TOOLKIT_FAST")


def apply_threads() -> int:
    """Set torch's CPU thread count from ``TOOLKIT_THREADS``; returns the count in effect.

    Fast mode defaults to one thread. The test path makes many small CPU passes on shared 2-core
    machines, where a second OpenMP thread mostly spin-waits for the first: measured on the course
    notebooks, two threads cost about 3x the CPU time of one and ran slower, not faster. Full runs keep
    torch's own default (all cores).
    """
    raw = os.environ.get("TOOLKIT_THREADS", "").strip()
    if raw:
        try:
            n = int(raw)
        except ValueError:
            raise ValueError(f"TOOLKIT_THREADS={raw!r} is not an integer; use a positive thread count") from None
        if n < 1:
            raise ValueError(f"TOOLKIT_THREADS={n} must be at least 1")
        torch.set_num_threads(n)
    elif fast():
        torch.set_num_threads(1)
    return torch.get_num_threads()


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run a block with ``n`` torch CPU threads, restoring the previous count afterwards.

    For tiny models (toy MLPs, a 5x2 superposition model): their ops are too small to split, and on a
    loaded machine OpenMP's spin-waiting made them up to 100x slower with two threads than with one.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"thread count must be a positive integer, got {n!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pick(*, fast: T, full: T) -> T:  # noqa: A002 - reads well at call sites
    """Choose a workload size: ``tk.pick(fast=200, full=5000)``."""
    return fast if globals()["fast"]() else full


def remote() -> bool:
    """True when ``TOOLKIT_REMOTE`` asks for NDIF execution."""
    return _flag("TOOLKIT_REMOTE")


def model_name() -> str | None:
    """The model requested through ``TOOLKIT_MODEL``, or None for the embedded default."""
    value = os.environ.get("TOOLKIT_MODEL", "").strip()
    return value or None


def device() -> str:
    """The torch device: ``TOOLKIT_DEVICE`` or the first GPU, else the CPU."""
    requested = os.environ.get("TOOLKIT_DEVICE", "").strip()
    if not requested:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return check_device(requested, "TOOLKIT_DEVICE")


def check_device(requested: object, name: str = "device") -> str:
    """``requested`` as a device string if this machine has it; else an error naming ``name`` and what is valid.

    ``TOOLKIT_DEVICE`` and every ``device=`` argument go through here, so a value gets the same answer
    wherever it is given, before anything loads.
    """
    if isinstance(requested, torch.device):
        requested = str(requested)
    if not isinstance(requested, str):
        raise TypeError(f"{name} must be a device string such as 'cpu' or 'cuda:0', got {requested!r}")
    kind, _, index = requested.partition(":")
    valid = ("cpu", "cuda", "mps")
    instead = "unset it or use 'cpu'" if name.isupper() else "use 'cpu' (or leave device=None)"
    if kind not in valid or (index and not index.isdigit()):
        raise ValueError(f"{name}={requested!r} is not a device; use one of {valid} (e.g. 'cuda:0')")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={requested!r} but torch sees no CUDA GPU; {instead}")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"{name}={requested!r} but torch sees {torch.cuda.device_count()} CUDA GPU(s): "
                         f"use 'cuda:0'..'cuda:{torch.cuda.device_count() - 1}', 'cuda' or 'cpu'")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={requested!r} but MPS is not available; {instead}")
    return requested


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def dtype(for_device: str | None = None) -> torch.dtype:
    """Model dtype: ``TOOLKIT_DTYPE``, else float32 on CPU (bf16 matmuls are slow there) and bf16 on GPU."""
    requested = os.environ.get("TOOLKIT_DTYPE", "").strip()
    if requested:
        if requested not in _DTYPES:
            raise ValueError(f"TOOLKIT_DTYPE={requested!r} is not supported; use one of {sorted(_DTYPES)}")
        return _DTYPES[requested]
    dev = for_device or device()
    return torch.float32 if dev == "cpu" else torch.bfloat16


def cache_dir() -> Path:
    """Folder for converted models and cached activations (created on demand)."""
    raw = os.environ.get("TOOLKIT_CACHE", "").strip()
    if raw:
        path = Path(raw).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache"
        path = Path(base).expanduser() / "toolkit"
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    """Where notebooks write ``<notebook>.json`` metrics (``TOOLKIT_RESULTS``, default ``build/results``).

    A relative ``TOOLKIT_RESULTS`` is taken from the repository root, like the default: notebooks run with
    ``notebooks/`` as their working directory, so the same setting must not mean another folder there.
    """
    raw = os.environ.get("TOOLKIT_RESULTS", "").strip()
    path = Path(raw).expanduser() if raw else Path("build") / "results"
    if not path.is_absolute():
        path = repo_root() / path
    path.mkdir(parents=True, exist_ok=True)
    return path


def repo_root() -> Path:
    """The checkout this package lives in (notebooks run with ``notebooks/`` as cwd)."""
    return Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The project's ``data/`` folder."""
    return repo_root() / "data"


def seed() -> int:
    """The seed from ``TOOLKIT_SEED`` (default 0)."""
    raw = os.environ.get("TOOLKIT_SEED", "0").strip() or "0"
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"TOOLKIT_SEED={raw!r} is not an integer") from None


_LAST_SEED: int | None = None


def seed_everything(value: int | None = None) -> int:
    """Seed python, numpy and torch (CPU and CUDA) so reruns give the same numbers; returns the seed."""
    global _LAST_SEED
    s = seed() if value is None else int(value)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(s)
    _LAST_SEED = s
    return s


def last_seed() -> int | None:
    """The seed most recently passed to :func:`seed_everything` (recorded in provenance)."""
    return _LAST_SEED
