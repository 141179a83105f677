"""What a result was computed with: versions, commit, device, seed, model and mode.

Every notebook ends with ``save_results(name, metrics)``, which writes
``build/results/<name>.json`` with the metrics and this provenance, so a paper appendix can say
exactly what produced each number. Metrics are a function of the code, the pinned packages, the seed and
the documented environment variables; wall-clock timings, which are not, live in a separate field.
"""
from __future__ import annotations

import hashlib
import json
import math
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import claims, config

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


class Provenance(dict):
    """The provenance record: a plain dict that shows itself as a table.

    It is displayed, not printed, so a notebook's last cell ``tk.provenance()`` shows it exactly once
    (``print(tk.provenance())`` works too).
    """

    def __str__(self) -> str:
        width = max(len(k) for k in self)
        lines = []
        for key, value in self.items():
            if key == "versions":
                value = ", ".join(f"{k} {v}" for k, v in value.items() if v)
            lines.append(f"{key:<{width}}  {value}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's display hook
        printer.text(str(self))


def _model_label() -> str:
    """The model, named so that the record holds no machine-specific path.

    A local folder is recorded by its folder name and a hash of its ``config.json`` (what it is),
    not by its absolute path (where one user keeps it).
    """
    name = config.model_name()
    if name is None:
        return "HuggingFaceTB/SmolLM2-135M-Instruct (embedded)"
    path = Path(name).expanduser()
    if path.exists():
        cfg = path / "config.json"
        digest = hashlib.sha256(cfg.read_bytes()).hexdigest()[:12] if cfg.is_file() else "no config.json"
        return f"local folder {path.name!r} (config.json sha256 {digest})"
    return name


def provenance() -> Provenance:
    """The environment that produced a result: versions, commit, device, dtype, seed, model, mode, threads."""
    dev = config.device()
    return Provenance({
        "versions": {p: _version(p) for p in PACKAGES},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": _git_commit(),
        "device": dev,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "dtype": str(config.dtype(dev)).replace("torch.", ""),
        "seed": config.last_seed() if config.last_seed() is not None else config.seed(),
        "model": _model_label(),
        "remote": config.remote(),
        "mode": "fast" if config.fast() else "full",
        # CPU kernels reduce in a different order with a different thread count, so the last digits of
        # a result can depend on it: it is part of what produced the numbers.
        "torch_threads": torch.get_num_threads(),
    })


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


def _lookup(metrics: dict[str, Any], key: str) -> Any:
    """The value at a dotted key ("sae.fvu") of nested metrics; KeyError naming what exists."""
    node: Any = metrics
    for i, part in enumerate(key.split(".")):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(key.split(".")[:i]) or "metrics"
            have = sorted(node) if isinstance(node, dict) else type(node).__name__
            raise KeyError(f"headline metric {key!r}: {where} has no {part!r}; it has {have}")
        node = node[part]
    return node


def headline_rows(metrics: dict[str, Any], headline: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """Rows ``{key, label, meaning, value}`` for the metrics a notebook chose to lead with, in its order.

    ``headline`` maps a (dotted) metric key to ``(label with unit, one-line meaning)``, e.g.
    ``{"fvu": ("FVU (fraction)", "share of activation variance the SAE fails to reconstruct; lower is better")}``.
    """
    if not isinstance(headline, dict) or not headline:
        raise ValueError(f"headline must be a non-empty dict of key -> (label, meaning), got {headline!r}")
    rows = []
    for key, spec in headline.items():
        if not (isinstance(spec, (tuple, list)) and len(spec) == 2 and all(isinstance(x, str) and x for x in spec)):
            raise ValueError(f"headline[{key!r}] must be (label with unit, one-line meaning), got {spec!r}")
        value = _lookup(metrics, key)
        if not isinstance(value, (int, float, str, bool)):
            raise ValueError(f"headline metric {key!r} must be one number or string, got {type(value).__name__}")
        rows.append({"key": key, "label": spec[0], "meaning": spec[1], "value": value})
    return rows


def claim_counts(found: list[dict[str, Any]]) -> tuple[int, int]:
    """(asserted claims that held, asserted claims) of a results file's ``claims`` list."""
    asserted = [c for c in found if c.get("asserted", True)]
    return sum(bool(c.get("held")) for c in asserted), len(asserted)


def markdown_cell(value: Any) -> str:
    """A value as a markdown table cell: numbers to 3 significant digits, pipes escaped."""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.3g}"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def results_markdown(record: dict[str, Any]) -> str:
    """A results file as markdown: what produced it, the headline metrics, then every claim and whether it held.

    The notebook shows this under its last cell (see ``ResultsFile``) and the book renders it there, so a reader
    sees the chapter's numbers with their meaning rather than raw keys.
    """
    prov = record.get("provenance", {})
    lines = [f"**Results of `{record.get('notebook', '?')}`**: {prov.get('model', '?')}, "
             f"{prov.get('mode', '?')} mode, seed {prov.get('seed', '?')}, {prov.get('device', '?')}", ""]
    if record.get("headline"):
        lines += ["| headline metric | value | what it means |", "|---|---|---|"]
        lines += [f"| {markdown_cell(r['label'])} | {markdown_cell(r['value'])} | {markdown_cell(r['meaning'])} |" for r in record["headline"]]
        lines.append("")
    found = record.get("claims") or []
    held, asserted = claim_counts(found)
    if found:
        lines += [f"**Claims: {held} of {asserted} asserted held**"
                  + (f"; {len(found) - asserted} more reported, not asserted" if len(found) > asserted else ""),
                  "", "| claim | held | against | numbers |", "|---|---|---|---|"]
        for c in found:
            verdict = ("held" if c.get("held") else "did not hold") + ("" if c.get("asserted", True) else " (reported)")
            numbers = ", ".join(f"{k} = {markdown_cell(v)}" for k, v in (c.get("numbers") or {}).items())
            lines.append(f"| {markdown_cell(c.get('name', ''))} | {verdict} | {markdown_cell(c.get('against', ''))} | {numbers} |")
    return "\n".join(lines) + "\n"


class ResultsFile(type(Path())):
    """The path ``save_results`` wrote; in a notebook it displays as the results card (``results_markdown``)."""

    def _repr_markdown_(self) -> str | None:
        try:
            record = json.loads(self.read_text())
        except (OSError, ValueError):
            return None  # a derived path (a parent folder, say) has no card
        return results_markdown(record) if isinstance(record, dict) and "metrics" in record else None


def save_results(notebook: str, metrics: dict[str, Any], *, timings: dict[str, float] | None = None,
                 headline: dict[str, tuple[str, str]] | None = None,
                 folder: str | Path | None = None) -> ResultsFile:
    """Write ``<folder>/<notebook>.json`` with the metrics, the claims ledger and provenance; returns the path.

    ``metrics`` must depend only on the code, the pins, the seed and the documented environment
    variables: two runs with the same settings write identical metrics. Wall-clock measurements go in
    ``timings`` (seconds), a separate field that is declared machine-dependent and left out of that
    comparison. Floats are rounded to 6 significant digits. ``headline`` names the few metrics the notebook leads
    with, each with a label (and unit) and a one-line meaning (see ``headline_rows``); the book shows them
    beside the claims.
    """
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError(f"metrics must be a non-empty dict, got {metrics!r}")
    if timings is not None and (not isinstance(timings, dict)
                                or not all(isinstance(v, (int, float)) for v in timings.values())):
        raise ValueError(f"timings must be a dict of seconds, e.g. {{'runtime_s': 12.3}}; got {timings!r}")
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
    record = {"notebook": notebook, "metrics": _round(clean), "provenance": dict(provenance()),
              "claims": _round(_jsonable(claims.ledger()))}
    if headline is not None:
        record["headline"] = headline_rows(record["metrics"], headline)
    if timings:
        record["timings"] = _round(_jsonable(timings))
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return ResultsFile(path)
