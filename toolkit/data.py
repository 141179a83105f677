"""Datasets the notebooks use, loaded from ``data/`` with the ``datasets`` library.

Concept datasets (``load_concepts``) are small labelled sentence sets for probing, FMS and
guided SAEs; each lives in ``data/concepts/<name>.jsonl`` with a README in that folder.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for annotations; the library itself is imported on first use (import toolkit stays fast)
    import datasets

from .validation import check_bool, check_int, check_texts

#: Folder holding the concept JSONL files (the repository's ``data/concepts``).
CONCEPTS_DIR = Path(__file__).resolve().parents[1] / "data" / "concepts"

#: The matched-pair sets of the evaluation chapter (topical and stylistic concepts of the AxBench kind).
MATCHED_CONCEPTS: tuple[str, ...] = ("ocean", "cooking", "formal", "question", "sadness", "french")

#: Concept datasets and the column that groups rows which must stay in the same split.
CONCEPT_GROUPS: dict[str, str] = {"toxicity": "pair_id", "shakespeare": "pair_id", "pii": "template_id",
                                  **{name: "pair_id" for name in MATCHED_CONCEPTS}}

#: PII entity types, in the order of their type ids (0 means "not PII").
PII_TYPES: tuple[str, ...] = (
    "NAME", "EMAIL", "PHONE", "ADDRESS", "DATE", "IBAN", "CREDIT_CARD", "IP_ADDRESS",
)

_SPLITS = ("train", "test")


def _datasets():
    """The ``datasets`` library, imported on first use (about 0.5 s that ``import toolkit`` need not pay)."""
    import datasets

    return datasets


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
    - ``"ocean"``, ``"cooking"`` (topical), ``"formal"``, ``"question"``, ``"sadness"``, ``"french"``
      (stylistic): a sentence with the concept (1) and a matched sentence without it (0), same topic,
      shape and length; extra columns ``pair_id``, ``topic``. ``data/concepts/README.md`` says how each
      pair is matched.

    ``split=None`` returns all rows (filter on the ``split`` column yourself);
    ``split="train"`` or ``"test"`` returns only that split.
    """
    if not isinstance(name, str) or name not in CONCEPT_GROUPS:
        hint = ""
        if isinstance(name, (str, os.PathLike)) and _looks_like_path(name):
            where = _resolved(name)
            hint = (f" ({name!r} looks like a path{'' if where.exists() else f', and {where} does not exist'}: "
                    "load_concepts reads only the bundled datasets in data/concepts; for a labelled file of your "
                    "own use datasets.load_dataset('json', data_files=...))")
        raise ValueError(f"unknown concept dataset {name!r}; valid names: {sorted(CONCEPT_GROUPS)}{hint}")
    if split is not None and split not in _SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: None, 'train', 'test'")
    path = CONCEPTS_DIR / f"{name}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; rebuild it with scripts/make_concepts.py "
                                "(every set but pii) or scripts/make_pii.py (pii)")
    with path.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if split is not None:
        rows = [r for r in rows if r["split"] == split]
    return _datasets().Dataset.from_list(rows, features=_features(name, rows))


def _features(name: str, rows: list[dict]) -> datasets.Features:
    # Explicit types: pyarrow cannot infer the span struct from a split with no PII rows.
    string, int64 = _datasets().Value("string"), _datasets().Value("int64")
    feats: dict[str, Any] = {"text": string, "label": int64, "split": string}
    if name == "pii":
        span = {"start": int64, "end": int64, "type": string, "value": string}
        feats["spans"] = _datasets().List(span)
    for key, value in (rows[0] if rows else {}).items():
        feats.setdefault(key, int64 if isinstance(value, int) else string)
    return _datasets().Features(feats)


def _columns(obj: Any) -> list[str]:
    loaded = sys.modules.get("datasets")  # a Dataset can only exist once the library is imported
    if loaded is not None and isinstance(obj, loaded.Dataset):
        return list(obj.column_names)
    return list(obj.keys()) if isinstance(obj, Mapping) else []


def pii_token_labels(
    tokenizer: Any,
    texts: str | Sequence[str] | Mapping[str, Any] | datasets.Dataset,
    spans: Sequence[Mapping[str, Any]] | Sequence[Sequence[Mapping[str, Any]]] | None = None,
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
    A single text with its span list may be passed instead of lists, and with ``spans=None``
    ``texts`` may be a row, a batch (``ds[:8]``) or a whole ``Dataset`` from ``load_concepts("pii")``.
    """
    if spans is None:
        if isinstance(texts, str) or not all(k in _columns(texts) for k in ("text", "spans")):
            raise ValueError("spans=None needs a pii row, batch or Dataset with 'text' and 'spans'; "
                             "otherwise pass spans explicitly")
        texts, spans = texts["text"], texts["spans"]  # type: ignore[index]
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


# --------------------------------------------------------------------------- general-text corpus
#: Folder holding the project's general-English corpus (see data/corpus/README.md).
CORPUS_DIR = Path(__file__).resolve().parents[1] / "data" / "corpus"


#: File suffixes load_corpus reads, and the datasets builder for each (.gz means gzipped JSON lines).
_CORPUS_BUILDERS = {".json": "json", ".jsonl": "json", ".gz": "json", ".csv": "csv", ".parquet": "parquet",
                    ".txt": "text"}


def _resolved(name: str | os.PathLike) -> Path:
    """``name`` as the absolute path it names from the current working directory."""
    return Path(name).expanduser().absolute()


def _looks_like_path(name: str | os.PathLike) -> bool:
    """True when ``name`` can only be a file-system path, never a Hugging Face dataset id.

    Hub ids are ``name`` or ``owner/name``: no leading ``.``, ``~`` or ``/``, at most one slash, no
    backslash and no data-file suffix. Anything else is reported as a missing path, not a Hub failure.
    """
    text = os.fspath(name)
    return (isinstance(name, os.PathLike) or os.path.isabs(text) or text.startswith((".", "~"))
            or "\\" in text or text.count("/") > 1 or Path(text).suffix.lower() in _CORPUS_BUILDERS)


def _corpus_choices() -> str:
    return ("valid: load_corpus() for the embedded offline corpus, a path to an existing local file "
            f"({', '.join(sorted(_CORPUS_BUILDERS))}) or folder, or a Hugging Face dataset id such as "
            "'roneneldan/TinyStories' when the hub is reachable")


def load_corpus(name: str | None = None, *, split: str = "train", text_column: str = "text") -> datasets.Dataset:
    """Load a text corpus as a ``datasets.Dataset`` with a ``text`` column.

    - ``name=None``: the project's offline corpus ``data/corpus/corpus.jsonl.gz`` (~322k SmolLM2
      tokens of World English Bible passages and Python reference prose; columns ``id``, ``text``,
      ``source``, ``title``, ``n_tokens``).
    - a local file or folder: handed to ``datasets.load_dataset`` (json/jsonl/csv/parquet/txt).
    - a Hugging Face dataset id (``"roneneldan/TinyStories"``): ``datasets.load_dataset(name, split=split)``
      for users who are online; without a network it fails within seconds instead of hanging.

    ``text_column`` names the column holding the text when it is not ``text``; it is renamed to ``text``.
    """
    if name is not None and not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"name must be None, a path or a Hugging Face dataset id (str), got {type(name).__name__}; "
                        + _corpus_choices())
    if name is None:
        path = CORPUS_DIR / "corpus.jsonl.gz"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; rebuild it with scripts/make_corpus.py")
        ds = _datasets().load_dataset("json", data_files=str(path), split="train")
    elif Path(name).expanduser().exists():
        local = Path(name).expanduser()
        if local.is_file():
            builder = _CORPUS_BUILDERS.get(local.suffix.lower())
            if builder is None:
                raise ValueError(f"cannot tell the format of {local}; use one of {sorted(_CORPUS_BUILDERS)} "
                                 "(.gz means gzipped JSON lines)")
            ds = _datasets().load_dataset(builder, data_files=str(local), split=split)
        else:
            ds = _datasets().load_dataset(str(local), split=split)
    elif _looks_like_path(name):
        # Without this, datasets treats a mistyped path as a Hub id: "Couldn't reach ... on the Hub".
        raise FileNotFoundError(f"corpus path {os.fspath(name)!r} does not exist (resolved against the working "
                                f"directory: {_resolved(name)}); " + _corpus_choices())
    else:
        offline = any(os.environ.get(v, "").strip() in ("1", "true", "yes") for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))
        if not offline:
            from .models import hub_reachable

            if not hub_reachable():
                raise OSError(f"corpus {name!r} is not a local path (no {_resolved(name)}) and the Hugging Face "
                              "hub is not reachable; use load_corpus() for the embedded offline corpus, pass a "
                              "local file or folder, or set HF_DATASETS_OFFLINE=1 to read a copy already in the "
                              "datasets cache")
        try:
            ds = _datasets().load_dataset(name, split=split)
        except (ConnectionError, FileNotFoundError) as err:
            # datasets says "Couldn't reach 'x' on the Hub" even when the user meant a local path.
            raise FileNotFoundError(f"corpus {name!r} is neither a local path (no {_resolved(name)}) nor a dataset "
                                    f"that could be loaded from the Hugging Face hub or its cache ({err}); "
                                    + _corpus_choices()) from err
    if text_column not in ds.column_names:
        raise ValueError(f"corpus has no column {text_column!r}; its columns are {ds.column_names} "
                         "(pass text_column=...)")
    if text_column != "text":
        if "text" in ds.column_names:
            ds = ds.remove_columns("text")
        ds = ds.rename_column(text_column, "text")
    return ds


# --------------------------------------------------------------------------- activation cache
#: What a cache file must hold; a file missing one is stale or damaged.
_CACHE_TENSORS = ("acts", "position", "text_id", "token_id", "sink")
#: Version 3 stores the Activations result (with its sink flags); older files are treated as stale.
_CACHE_FORMAT = "3"


def _read_activation_cache(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(tensors, None)`` for a sound cache file, ``(None, why)`` for one that must be recomputed."""
    from .integrity import DIGEST, read_safetensors, tensor_sha256

    # A cache is disposable: every problem is answered by recomputing it, so the remedy text is unused.
    try:
        tensors, meta = read_safetensors(path, remedy="")
    except ValueError as err:
        return None, f"is truncated or corrupt ({str(err.__cause__ or err).strip()})"
    if meta.get("cache_format") != _CACHE_FORMAT:
        return None, "was written by an older toolkit (other format or no checksums), so it is treated as stale"
    if set(tensors) != set(_CACHE_TENSORS):
        return None, f"holds tensors {sorted(tensors)}, not {list(_CACHE_TENSORS)}, so it is corrupt"
    for name in _CACHE_TENSORS:
        if meta.get(f"{DIGEST}{name}") != tensor_sha256(tensors[name]):
            return None, f"fails its SHA-256 check on tensor {name!r}, so it is corrupt"
    return tensors, None


def _write_activation_cache(path: Path, tensors: dict[str, Any], meta: dict[str, str]) -> None:
    """Write atomically: a temporary file in the same folder, then a rename, so a crash or a parallel
    run never leaves (or reads) half a file. The temporary name is unique per writer."""
    import tempfile

    from safetensors.torch import save_file

    from .integrity import digests

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        save_file(tensors, str(tmp), metadata={**meta, "cache_format": _CACHE_FORMAT, **digests(tensors)})
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _activation_cache_key(model_name: str, layer: int, texts: Sequence[str], max_tokens: int | None,
                          drop_sinks: bool, site: str) -> str:
    import hashlib

    from .activations import SINK_FACTOR

    h = hashlib.sha256()
    # the token rule (BOS dropped, sinks by SINK_FACTOR) is part of the key: a new rule is a new file
    h.update(f"v3|{model_name}|{layer}|{site}|{max_tokens}|{drop_sinks}|{SINK_FACTOR}|{len(texts)}".encode())
    for t in texts:
        h.update(b"\0" + t.encode("utf-8"))
    return h.hexdigest()


def activation_cache_path(model: Any, texts: Sequence[str], layer: int, *, max_tokens: int | None = None,
                          drop_sinks: bool = True, site: str = "resid", cache_dir: str | Path | None = None) -> Path:
    """Where :func:`cache_activations` stores (or finds) these activations."""
    import re

    from . import config

    root = Path(cache_dir) if cache_dir is not None else config.cache_dir() / "activations"
    key = _activation_cache_key(model.name, layer, list(texts), max_tokens, drop_sinks, site)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "--", model.name)
    return root / safe / f"{site}{layer:02d}-{key[:20]}.safetensors"


#: Activations computed in this process, by cache file: a notebook (or several in one kernel) that asks
#: for the same rows twice reads them once.
_MEMORY: dict[Path, Any] = {}


def cache_activations(
    model: Any,
    texts: Sequence[str],
    layer: int,
    *,
    max_tokens: int | None = None,
    cache_dir: str | Path | None = None,
    drop_sinks: bool = True,
    site: str = "resid",
    chunk_texts: int = 64,
    batch_size: int = 16,
    refresh: bool = False,
    progress: bool = True,
):
    """:func:`tk.get_activations` over ``texts``, cached on disk: an :class:`~toolkit.activations.Activations`.

    The first call runs the model in chunks of ``chunk_texts`` texts and writes one safetensors file
    keyed by model name, layer, site, ``max_tokens``, the token rule and a hash of the texts (under
    ``<toolkit cache>/activations`` or ``cache_dir``); later calls with the same inputs read it back,
    and within one process the same request is served from memory. Memory stays bounded: at most
    ``max_tokens`` rows are kept, texts beyond the budget are never run, and one chunk is in flight
    at a time.

    ``drop_sinks`` (default) leaves out the sink rows flagged by the one rule in
    :mod:`toolkit.activations` before the budget is counted: a sink's residual norm is ~100x the
    others' and would dominate an SAE's loss. The texts of the result are the input texts that were
    run (text ``i`` is ``texts[i]``); with a budget, the last of them may be cut short.

    The file records a SHA-256 of each tensor and is written atomically (a temporary file, then a
    rename). A cache file that is truncated, corrupt, or from an older toolkit is never read as
    data: it is recomputed, with one printed line saying so.
    """
    import numpy as np
    import torch

    from .activations import Activations
    from .progress import progress_bar as tqdm
    from .tracing import _check_layer, get_activations

    texts = check_texts(texts)
    layer = _check_layer(model, layer)
    if max_tokens is not None:
        max_tokens = check_int("max_tokens", max_tokens, minimum=1)
    chunk_texts = check_int("chunk_texts", chunk_texts, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    refresh = check_bool("refresh", refresh)
    drop_sinks = check_bool("drop_sinks", drop_sinks)
    path = activation_cache_path(model, texts, layer, max_tokens=max_tokens, drop_sinks=drop_sinks, site=site,
                                 cache_dir=cache_dir)

    def result(stored: dict[str, Any]) -> Activations:
        text_id = stored["text_id"].numpy()
        return Activations(stored["acts"], text_id, stored["position"].numpy(), stored["token_id"].numpy(),
                           stored["sink"].numpy().astype(bool), int(text_id.max()) + 1 if len(text_id) else 0,
                           {"model": model.name, "layer": layer, "site": site}, model.tokenizer)

    if not refresh and path in _MEMORY and path.exists():
        return _MEMORY[path]
    stored = None
    if not refresh and path.exists():
        stored, problem = _read_activation_cache(path)
        if problem is not None:
            print(f"[toolkit] activation cache {path} {problem}; recomputing it")
        elif stored["acts"].shape[1] != model.d_model:
            raise ValueError(f"cached activations in {path} have width {stored['acts'].shape[1]}, "
                             f"{model.name} has d_model={model.d_model}; delete the file or pass refresh=True")
    if stored is None:
        # Upper bound on rows per text from the tokenizer (get_activations drops BOS; sinks are found later).
        ids = model.tokenizer(texts).input_ids
        drop_bos = 1 if getattr(model, "adds_bos", False) else 0
        bound = [max(1, len(t) - drop_bos) for t in ids]
        total = sum(bound) if max_tokens is None else min(sum(bound), max_tokens)
        parts: list[Activations] = []
        filled = 0
        bar = tqdm(total=total, desc=f"caching {site} {layer}", unit="tok", disable=not progress, leave=False)
        start = 0
        while start < len(texts) and filled < total:
            # only run as many texts as the budget still needs (by the upper bound, then exactly)
            stop, need = start, 0
            while stop < min(start + chunk_texts, len(texts)) and need < total - filled:
                need += bound[stop]
                stop += 1
            a = get_activations(model, texts[start:stop], layer=layer, batch_size=batch_size, site=site,
                                progress=False)
            if drop_sinks:
                a = a.without_sinks()
            take = min(len(a), total - filled)
            parts.append(a.select(np.arange(take)))
            filled += take
            bar.update(take)
            start = stop
        bar.close()
        acts = parts[0]
        for p in parts[1:]:
            acts = acts.concat(p)
        stored = {"acts": acts.rows.contiguous(), "text_id": torch.from_numpy(acts.text_id),
                  "position": torch.from_numpy(acts.position), "token_id": torch.from_numpy(acts.token_id),
                  "sink": torch.from_numpy(acts.sink.astype(np.uint8))}
        meta = {"model": model.name, "layer": str(layer), "site": site, "n_texts": str(len(texts)),
                "drop_sinks": str(drop_sinks), "max_tokens": str(max_tokens)}
        _write_activation_cache(path, stored, meta)
    out = result(stored)
    _MEMORY[path] = out
    return out
