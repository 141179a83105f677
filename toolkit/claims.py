"""The claims ledger: every scientific claim a notebook makes, with its outcome and the numbers behind it.

A notebook states each claim once, against a baseline measured in the same run::

    tk.claim("patching the subject restores the answer", restored > control,
             against="patching a position that does not hold the subject", restored=restored, control=control)

A claim is asserted only where it held on every embedded model at seeds 0, 1 and 2 (``make test-seeds``).
One that did not is stated with ``reported="why"`` (``model_specific=True`` is short for "it differs between
models"): it is recorded like any other, with its reason, but never asserted, since no test can expect it
everywhere (the curriculum's claims are checked on models and seeds the authors do not have). The ledger
keeps it, so a paper's claim that did not carry over is reported, not deleted.

What happens when any other claim does not hold depends on the run (``TOOLKIT_CLAIMS``):

- ``assert`` (the default in fast mode, which is what the tests run): it raises :class:`ClaimFailed`, an
  ``AssertionError``, so the notebook fails as a test, exactly like a bare ``assert``.
- ``record`` (the default in full mode, which is what ``make curriculum`` runs, on any model): it prints
  one line, records the outcome and lets the run go on, so a researcher on their own model still gets the
  whole book, with a table of the claims that held and those that did not. Errors still stop the run.

:func:`save_results` writes the ledger into ``build/results/<notebook>.json``; :func:`claims_table` shows it.
Sanity checks (shapes, determinism, a file round trip) are not claims: they stay plain ``assert``s.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
import numbers as numbers_
from typing import Any

from . import config

MODES = ("assert", "record")


class ClaimFailed(AssertionError):
    """A scientific claim that did not hold in a run where claims are asserted."""


@dataclass
class Claim:
    name: str
    held: bool
    against: str
    numbers: dict[str, Any] = field(default_factory=dict)
    reported: str = ""  # why it is reported and not asserted; empty for an asserted claim

    @property
    def asserted(self) -> bool:
        return not self.reported

    def __bool__(self) -> bool:  # `if tk.claim(...)` reads as whether it held
        return self.held

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # A cell that ends with tk.claim(...) shows the claim in words, not a bare True.
        printer.text(self.describe())

    def describe(self) -> str:
        nums = ", ".join(f"{k}={_fmt(v)}" for k, v in self.numbers.items())
        verdict = "held" if self.held else "did NOT hold"
        kind = f" (reported, not asserted: {self.reported})" if self.reported else ""
        return f"claim {verdict}{kind}: {self.name} [{nums}] (against: {self.against})"

    def as_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "held": self.held, "against": self.against, "numbers": dict(self.numbers),
               "asserted": self.asserted}
        if self.reported:
            out["reported"] = self.reported
        return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


#: This process's claims in the order they were first stated. Re-running a cell replaces its claim.
_LEDGER: dict[str, Claim] = {}


def mode() -> str:
    """``assert`` or ``record``: ``TOOLKIT_CLAIMS``, else ``assert`` in fast mode and ``record`` in full mode."""
    raw = os.environ.get("TOOLKIT_CLAIMS", "").strip().lower()
    if not raw:
        return "assert" if config.fast() else "record"
    if raw not in MODES:
        raise ValueError(f"TOOLKIT_CLAIMS={raw!r} is not valid: use one of {MODES} (or leave it unset: "
                         "assert in fast mode, record in full mode)")
    return raw


def _number(name: str, value: Any) -> Any:
    """A JSON-ready number or short string; anything else is refused so the ledger stays readable."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy or torch scalar
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    try:
        # Whole numbers stay whole (a list of k values reads [8, 64], not [8.0, 64.0]).
        as_list = [int(x) if isinstance(x, numbers_.Integral) or (hasattr(x, "dtype") and x.dtype.kind in "iu")
                   else float(x) for x in value]
    except TypeError:
        raise TypeError(f"claim number {name}={value!r} must be a number, a string or a short list of numbers") from None
    return as_list


MODEL_SPECIFIC = "it holds on some models and not on others"


def claim(name: str, held: Any, *, against: str, reported: str | None = None, model_specific: bool = False,
          **numbers: Any) -> Claim:
    """State a scientific claim; return it (true when it held; in a notebook it shows as a sentence).

    Args:
        name: what is claimed, as a sentence a reader can cite ("the G-SAE latent detects the concept
            better than the best vanilla latent").
        held: the outcome, a bool (a numpy or torch scalar is accepted).
        against: the baseline it was measured against in the same run, in words.
        reported: why this claim is recorded and printed but never asserted, e.g. that it did not hold at
            every seed in fast mode. Give it for any claim that is not expected to hold everywhere.
        model_specific: short for ``reported=MODEL_SPECIFIC``: a claim known to hold on some models and
            not on others.
        **numbers: the numbers behind the outcome (the measured value, the baseline, the margin).

    In ``assert`` mode a claim that does not hold raises :class:`ClaimFailed`; in ``record`` mode it
    prints one line and the run goes on. Either way the outcome goes into the ledger.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a claim needs a name (the sentence it claims), got {name!r}")
    if not isinstance(against, str) or not against.strip():
        raise ValueError(f"claim {name!r} needs `against`: the baseline it is compared with, in words")
    try:
        outcome = bool(held)
    except (TypeError, ValueError, RuntimeError) as e:  # an array of several values is ambiguous
        raise TypeError(f"claim {name!r}: `held` must be one True/False value, got {held!r}") from e
    if reported is not None and (not isinstance(reported, str) or not reported.strip()):
        raise ValueError(f"claim {name!r}: `reported` must say why the claim is not asserted, got {reported!r}")
    if reported and model_specific:
        raise ValueError(f"claim {name!r}: give `reported` or `model_specific`, not both")
    why = reported.strip() if reported else (MODEL_SPECIFIC if model_specific else "")
    how = mode()  # checked before recording, so a bad setting fails at the first claim
    record = Claim(name.strip(), outcome, against.strip(), {k: _number(k, v) for k, v in numbers.items()},
                   reported=why)
    _LEDGER.pop(record.name, None)
    _LEDGER[record.name] = record
    if why:
        print(f"[toolkit] {record.describe()}")
    elif not outcome:
        if how == "assert":
            raise ClaimFailed(record.describe())
        print(f"[toolkit] {record.describe()}; recorded, and the run goes on (TOOLKIT_CLAIMS=record)")
    return record


def ledger() -> list[dict[str, Any]]:
    """The claims stated so far in this process, as dicts (name, held, against, numbers)."""
    return [c.as_dict() for c in _LEDGER.values()]


def reset() -> None:
    """Forget every claim (a new notebook in the same process starts a new ledger)."""
    _LEDGER.clear()


def claims_table():
    """The ledger as a DataFrame: one row per claim, whether it held, the numbers and the baseline."""
    import pandas as pd

    rows = [{"claim": c.name, "held": c.held, "asserted": c.asserted,
             "numbers": ", ".join(f"{k}={_fmt(v)}" for k, v in c.numbers.items()), "against": c.against}
            for c in _LEDGER.values()]
    return pd.DataFrame(rows, columns=["claim", "held", "asserted", "numbers", "against"])


def summarize(folder: str | os.PathLike | None = None) -> int:
    """Print every notebook's claims from the results files in ``folder`` (default: ``TOOLKIT_RESULTS``).

    Returns the number of asserted claims that did not hold; ``python scripts/claims.py [--strict] [folder]``
    exits with 1 when ``--strict`` is given and any did (a run on an embedded model, where every asserted
    claim is expected to hold).
    """
    import json
    from pathlib import Path

    root = Path(folder) if folder is not None else config.results_dir()
    files = sorted(root.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no results files in {root}: run the notebooks first (make curriculum)")
    failed = total = 0
    for path in files:
        record = json.loads(path.read_text(encoding="utf-8"))
        rows = record.get("claims", [])
        model = record.get("provenance", {}).get("model", "?")
        asserted = [c for c in rows if c.get("asserted", True)]
        held = sum(c["held"] for c in asserted)
        reported = len(rows) - len(asserted)
        print(f"{record.get('notebook', path.stem)} ({model}): {held}/{len(asserted)} claims held"
              + (f", {reported} reported ({sum(c['held'] for c in rows) - held} held)" if reported else ""))
        for c in rows:
            if not c["held"]:
                kind = "did NOT hold" if c.get("asserted", True) else "did not hold (reported)"
                print(f"  {kind}: {c['name']}  {c['numbers']}  (against: {c['against']})")
        failed += len(asserted) - held
        total += len(asserted)
    print(f"{total - failed}/{total} claims held in {len(files)} notebooks")
    return failed



def compare(folders: list[str | os.PathLike], numbers: bool = False) -> str:
    """A markdown table of every claim across results folders (one column per run, e.g. per model or seed).

    Each cell is "held" or "did not hold", with "(reported)" for a claim not asserted, or "–" where that run
    did not state the claim. This is the side-by-side a paper appendix or ``docs/scaling.md`` cites.

    With ``numbers=True`` each claim gets one row per number behind it (its value in each run) and a last
    column with the spread, min to max over the runs: how far a measured value moves across seeds or models.
    """
    import json
    from pathlib import Path

    runs: list[tuple[str, dict[tuple[str, str], dict[str, Any]]]] = []
    order: list[tuple[str, str]] = []
    for folder in folders:
        files = sorted(Path(folder).glob("*.json"))
        if not files:
            raise FileNotFoundError(f"no results files in {folder}")
        found: dict[tuple[str, str], dict[str, Any]] = {}
        label = str(folder)
        for path in files:
            record = json.loads(path.read_text(encoding="utf-8"))
            prov = record.get("provenance", {})
            label = f"{prov.get('model', '?')} (seed {prov.get('seed', '?')})"
            for c in record.get("claims", []):
                key = (record.get("notebook", path.stem), c["name"])
                found[key] = c
                if key not in order:
                    order.append(key)
        runs.append((label, found))

    def cell(c: dict[str, Any] | None) -> str:
        if c is None:
            return "–"
        return ("held" if c["held"] else "**did not hold**") + ("" if c.get("asserted", True) else " (reported)")

    if numbers:
        return _compare_numbers(runs, order)
    lines = ["| notebook | claim | " + " | ".join(label for label, _ in runs) + " |",
             "|---|---|" + "---|" * len(runs)]
    for nb, name in order:
        lines.append(f"| {nb[:2]} | {name} | " + " | ".join(cell(found.get((nb, name))) for _, found in runs) + " |")
    return "\n".join(lines)


def _compare_numbers(runs: list[tuple[str, dict[tuple[str, str], dict[str, Any]]]],
                     order: list[tuple[str, str]]) -> str:
    lines = ["| notebook | claim | number | " + " | ".join(label for label, _ in runs) + " | spread (min to max) |",
             "|---|---|---|" + "---|" * (len(runs) + 1)]
    for nb, name in order:
        keys: list[str] = []
        for _, found in runs:
            for k in (found.get((nb, name)) or {}).get("numbers", {}):
                if k not in keys:
                    keys.append(k)
        for k in keys:
            values = [(found.get((nb, name)) or {}).get("numbers", {}).get(k) for _, found in runs]
            numeric = [float(v) for v in values
                       if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
            spread = f"{_fmt(min(numeric))} to {_fmt(max(numeric))}" if len(numeric) > 1 else "–"
            cells = ["–" if v is None else _fmt(v) for v in values]
            lines.append(f"| {nb[:2]} | {name} | {k} | " + " | ".join(cells) + f" | {spread} |")
    return "\n".join(lines)
