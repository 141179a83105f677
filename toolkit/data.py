"""Datasets the notebooks use, loaded from ``data/`` with the ``datasets`` library.

Concept datasets (``load_concepts``) are small labelled sentence sets for probing, FMS and
guided SAEs; each lives in ``data/concepts/<name>.jsonl`` with a README in that folder.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets

#: Folder holding the concept JSONL files (the repository's ``data/concepts``).
CONCEPTS_DIR = Path(__file__).resolve().parents[1] / "data" / "concepts"

#: Concept datasets and the column that groups rows which must stay in the same split.
CONCEPT_GROUPS: dict[str, str] = {"toxicity": "pair_id", "shakespeare": "pair_id", "pii": "template_id"}

#: PII entity types, in the order of their type ids (0 means "not PII").
PII_TYPES: tuple[str, ...] = (
    "NAME", "EMAIL", "PHONE", "ADDRESS", "DATE", "IBAN", "CREDIT_CARD", "IP_ADDRESS",
)

_SPLITS = ("train", "test")


def load_concepts(name: str, split: str | None = None) -> datasets.Dataset:
    """Load a concept dataset as a ``datasets.Dataset``.

    Every dataset has the columns ``text`` (str), ``label`` (int, 1 = the concept is present)
    and ``split`` ("train"/"test"), plus a grouping column (see ``CONCEPT_GROUPS``) that keeps
    a pair or template wholly inside one split:

    - ``"toxicity"``: hostile (1) vs civil (0) sentences in topic-matched pairs;
      extra columns ``pair_id``, ``topic``, ``style``.
    - ``"shakespeare"``: early-modern English (1) vs a modern paraphrase (0);
      extra columns ``pair_id``, ``topic``, ``register``, ``source``.
    - ``"pii"``: synthetic sentences with (1) or without (0) personal data; ``spans`` is a list
      of ``{"start", "end", "type", "value"}`` (character offsets, one of ``PII_TYPES``, and
      ``text[start:end]``), plus ``template_id``. Use ``pii_token_labels`` for token labels.

    ``split=None`` returns all rows (filter on the ``split`` column yourself);
    ``split="train"`` or ``"test"`` returns only that split.
    """
    if name not in CONCEPT_GROUPS:
        raise ValueError(f"unknown concept dataset {name!r}; valid names: {sorted(CONCEPT_GROUPS)}")
    if split is not None and split not in _SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: None, 'train', 'test'")
    path = CONCEPTS_DIR / f"{name}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; rebuild it with scripts/make_concepts.py "
                                "(toxicity, shakespeare) or scripts/make_pii.py (pii)")
    with path.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if split is not None:
        rows = [r for r in rows if r["split"] == split]
    return datasets.Dataset.from_list(rows, features=_features(name, rows))


def _features(name: str, rows: list[dict]) -> datasets.Features:
    # Explicit types: pyarrow cannot infer the span struct from a split with no PII rows.
    string, int64 = datasets.Value("string"), datasets.Value("int64")
    feats: dict[str, Any] = {"text": string, "label": int64, "split": string}
    if name == "pii":
        span = {"start": int64, "end": int64, "type": string, "value": string}
        feats["spans"] = datasets.List(span)
    for key, value in (rows[0] if rows else {}).items():
        feats.setdefault(key, int64 if isinstance(value, int) else string)
    return datasets.Features(feats)


def pii_token_labels(
    tokenizer: Any,
    texts: str | Sequence[str],
    spans: Sequence[Mapping[str, Any]] | Sequence[Sequence[Mapping[str, Any]]],
    *,
    add_special_tokens: bool = False,
) -> dict[str, list[list[int]]]:
    """Per-token PII labels for ``texts`` from character-offset ``spans``.

    ``tokenizer`` must be a Hugging Face *fast* tokenizer (it needs ``return_offsets_mapping``).
    A token is labelled 1 when its character range overlaps an entity span; its type id is
    ``PII_TYPES.index(type) + 1`` (0 = not PII; if a token touches two spans, the larger overlap
    wins). Special tokens (empty offsets) are always 0. With ``add_special_tokens=False`` (the
    default) the tokens line up with ``tk.get_activations`` output, which drops BOS and padding.

    Returns ``{"input_ids", "labels", "type_ids"}``, each a list (one per text) of int lists.
    A single text with its span list may be passed instead of lists.
    """
    if isinstance(texts, str):
        texts, spans = [texts], [spans]  # type: ignore[list-item]
    texts, spans = list(texts), list(spans)
    if len(texts) != len(spans):
        raise ValueError(f"got {len(texts)} texts but {len(spans)} span lists; pass one span list per text")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} has no offset mapping; pass a fast tokenizer "
                         "(AutoTokenizer.from_pretrained(..., use_fast=True))")
    enc = tokenizer(texts, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    out: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "type_ids": []}
    for i, (text, row_spans) in enumerate(zip(texts, spans)):
        checked = []
        for s in row_spans:
            start, end, kind = int(s["start"]), int(s["end"]), s["type"]
            if kind not in PII_TYPES:
                raise ValueError(f"unknown PII type {kind!r} in text {i}; valid: {list(PII_TYPES)}")
            if not 0 <= start < end <= len(text):
                raise ValueError(f"span {dict(s)} is outside text {i} (length {len(text)})")
            checked.append((start, end, PII_TYPES.index(kind) + 1))
        labels, type_ids = [], []
        for tok_start, tok_end in enc["offset_mapping"][i]:
            best, best_overlap = 0, 0
            if tok_end > tok_start:
                for start, end, type_id in checked:
                    overlap = min(end, tok_end) - max(start, tok_start)
                    if overlap > best_overlap:
                        best, best_overlap = type_id, overlap
            labels.append(int(best > 0))
            type_ids.append(best)
        out["input_ids"].append(list(enc["input_ids"][i]))
        out["labels"].append(labels)
        out["type_ids"].append(type_ids)
    return out
