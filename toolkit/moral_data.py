"""The moral data of ``data/moral``: question templates, labeled actions, judge sentences, MoRT prompts.

Project-authored tables (see ``data/moral/README.md``) read by :class:`tk.MoralDirection` and
notebook 02. Loading is all this module does; the estimator lives in :mod:`toolkit.moral_direction`.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["MORAL_DATA_DIR", "load_templates", "load_moral_actions", "load_mort_prompts"]

MORAL_DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "moral"
_TABLES = {"pca": "pca_actions.csv", "eval": "eval_actions.csv", "judge": "judge_sentences.csv"}


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load_templates(path: str | Path | None = None) -> list[str]:
    """The question templates (one per line, each with a single ``{}``); default data/moral/templates.txt."""
    return _lines(Path(path) if path is not None else MORAL_DATA_DIR / "templates.txt")


def load_moral_actions(which: str = "pca"):
    """A moral data table from data/moral as a DataFrame.

    ``"pca"``: the clearly positive/negative actions (columns action, label in {+1, -1}, form);
    ``"eval"``: the evaluation actions with context (action, acceptability in [-1, 1], category);
    ``"judge"``: sentences for the continuation judge (text, non_normative in {0, 1}).
    """
    import pandas as pd

    if which not in _TABLES:
        raise ValueError(f"which={which!r} is not a moral data table; use one of {sorted(_TABLES)}")
    return pd.read_csv(MORAL_DATA_DIR / _TABLES[which])


def load_mort_prompts() -> list[str]:
    """The provocative sentence openings of data/moral/mort_prompts.txt (one per line)."""
    return _lines(MORAL_DATA_DIR / "mort_prompts.txt")
