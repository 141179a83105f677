"""What a result was computed with: versions, commit, device, seed, model and mode.

Every notebook ends with ``save_results(name, metrics)``, which writes
``build/results/<name>.json`` with the metrics and this provenance, so a paper appendix can say
exactly what produced each number.
"""
from __future__ import annotations

import json
import math
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import config

PACKAGES = ("toolkit", "torch", "transformers", "nnsight", "sentence-transformers", "scikit-learn",
            "numpy", "datasets", "safetensors")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=config.repo_root(), capture_output=True,
                             text=True, timeout=5)
        commit = out.stdout.strip() if out.returncode == 0 else None
        if commit:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                   cwd=config.repo_root(), capture_output=True, text=True, timeout=5).stdout.strip()
            return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return None


def provenance(*, quiet: bool = False) -> dict[str, Any]:
    """Collect (and by default print) the environment that produced a result."""
    dev = config.device()
    info = {
        "versions": {p: _version(p) for p in PACKAGES},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": _git_commit(),
        "device": dev,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "dtype": str(config.dtype(dev)).replace("torch.", ""),
        "seed": config.last_seed() if config.last_seed() is not None else config.seed(),
        "model": config.model_name() or "HuggingFaceTB/SmolLM2-135M-Instruct (embedded)",
        "remote": config.remote(),
        "mode": "fast" if config.fast() else "full",
        "torch_threads": torch.get_num_threads(),
    }
    if not quiet:
        width = max(len(k) for k in info)
        for key, value in info.items():
            if key == "versions":
                value = ", ".join(f"{k} {v}" for k, v in value.items() if v)
            print(f"{key:<{width}}  {value}")
    return info


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise TypeError(f"metric value {value!r} of type {type(value).__name__} is not JSON-serializable; "
                    "use numbers, strings, lists or dicts")


def save_results(notebook: str, metrics: dict[str, Any], *, folder: str | Path | None = None) -> Path:
    """Write ``<folder>/<notebook>.json`` with the metrics and provenance; returns the path.

    Floats are rounded to 6 significant digits so that two identical runs give identical files.
    """
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError(f"metrics must be a non-empty dict, got {metrics!r}")
    clean = _jsonable(metrics)

    def _round(v: Any) -> Any:
        if isinstance(v, float):
            return float(f"{v:.6g}")
        if isinstance(v, list):
            return [_round(x) for x in v]
        if isinstance(v, dict):
            return {k: _round(x) for k, x in v.items()}
        return v

    out_dir = Path(folder) if folder else config.results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{notebook}.json"
    record = {"notebook": notebook, "metrics": _round(clean), "provenance": provenance(quiet=True)}
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path
