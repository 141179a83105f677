"""Token activations with their bookkeeping: which text and position each row came from, and which rows are sinks.

:func:`tk.get_activations` and :func:`tk.cache_activations` return an :class:`Activations`. It holds the
rows (``[n_rows, width]``, one per kept token) beside the token index, and answers the questions every
notebook used to answer by hand, each a little differently:

- pooling per text (``acts.pool("mean")``, ``"last"``, ``"max"``), of the rows or of any per-row values
  such as SAE latents;
- labels per token, from labels per text (``acts.spread``) or from character spans (``acts.span_labels``);
- which tokens are attention sinks (``acts.sink``): one rule, whether or not the tokenizer adds BOS.

The sink rule
-------------
BOS is never a row: :func:`tk.get_activations` drops it where the tokenizer adds one. Without BOS
(SmolLM2) the first token takes the attention-sink role instead, and a few tokens of some models carry
"massive activations" (Sun et al. 2024, *Massive Activations in Large Language Models*): residual
norms tens to hundreds of times the others', in a few fixed dimensions. Such a row dominates every mean
and every reconstruction loss it enters. A row is flagged as a sink when its norm exceeds
:data:`SINK_FACTOR` times the *lower median* of its own text's row norms. The lower median (the middle
value, or the smaller of the two middle ones) is used so that a two-token text with one sink still
compares the sink with the ordinary token; a one-token text is never flagged, so pooling never empties
a text. The rule depends only on the text itself, so the same text gets the same flags in any batch.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from .validation import as_numpy, check_bool, check_choice, check_number, check_texts

#: A row whose norm is above this many times its text's lower-median row norm is an attention sink.
#: Massive-activation tokens sit one to two orders of magnitude above (about 100x for SmolLM2's first
#: token at its middle block); ordinary tokens stay within about 2x of the median.
SINK_FACTOR = 5.0
POOLINGS = ("mean", "last", "max")


def sink_mask(norms: np.ndarray | torch.Tensor, text_id: np.ndarray, factor: float = SINK_FACTOR) -> np.ndarray:
    """Boolean ``[n_rows]``: rows whose norm exceeds ``factor`` x the lower median of their text's norms."""
    factor = check_number("factor", factor, minimum=1.0)
    norms = as_numpy(norms, "norms", dtype=np.float64).reshape(-1)
    text_id = np.asarray(text_id)
    out = np.zeros(len(norms), dtype=bool)
    if len(norms) == 0:
        return out
    order = np.argsort(text_id, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(text_id[order]) != 0])
    for a, b in zip(starts, np.r_[starts[1:], len(order)]):
        rows = order[a:b]
        vals = np.sort(norms[rows])
        lower_median = vals[(len(vals) - 1) // 2]
        out[rows] = norms[rows] > factor * lower_median
    return out


@dataclass(eq=False)
class Activations:
    """Rows of token activations and the index that says where each came from.

    Attributes:
        rows: float32 tensor ``[n_rows, width]``, one per kept token (padding and BOS never appear).
        text_id, position, token_id: int64 arrays ``[n_rows]``: the text (0-based, in input order), the
            position in that text's tokenization, and the token id.
        sink: bool array ``[n_rows]``: massive-norm rows (see the module docstring).
        n_texts: how many texts the rows come from (a text always has at least one row).
        meta: where the rows were read (``model``, ``layer``, ``site``), for repr and provenance.

    ``acts.rows`` (or ``acts[mask]``) gives a plain tensor; ``acts.select`` keeps the bookkeeping.
    """

    rows: torch.Tensor
    text_id: np.ndarray
    position: np.ndarray
    token_id: np.ndarray
    sink: np.ndarray
    n_texts: int
    meta: dict[str, Any] = field(default_factory=dict)
    tokenizer: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = self.rows.shape[0]
        for name in ("text_id", "position", "token_id", "sink"):
            value = np.asarray(getattr(self, name))
            if value.shape != (n,):
                raise ValueError(f"Activations.{name} has shape {value.shape}; it needs one entry per row ({n},)")
            setattr(self, name, value)

    @classmethod
    def from_rows(cls, rows: torch.Tensor, text_id: Any, position: Any, token_id: Any, n_texts: int, *,
                  meta: dict[str, Any] | None = None, tokenizer: Any = None) -> "Activations":
        """Build from rows and their index, flagging sinks by the module's one rule."""
        text_id = np.asarray(text_id, dtype=np.int64)
        return cls(rows, text_id, np.asarray(position, dtype=np.int64), np.asarray(token_id, dtype=np.int64),
                   sink_mask(rows.norm(dim=-1), text_id), int(n_texts), dict(meta or {}), tokenizer)

    # ---------------------------------------------------------------- plain-tensor access
    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, key: Any) -> torch.Tensor:
        if isinstance(key, np.ndarray):
            key = torch.from_numpy(key)
        return self.rows[key]

    @property
    def shape(self) -> torch.Size:
        return self.rows.shape

    @property
    def width(self) -> int:
        return int(self.rows.shape[1])

    @property
    def index(self) -> pd.DataFrame:
        """One row per activation row: ``text_id``, ``position``, ``token_id``, ``token`` and ``sink``."""
        tokens = (self.tokenizer.convert_ids_to_tokens(self.token_id.tolist()) if self.tokenizer is not None
                  else [None] * len(self))
        return pd.DataFrame({"text_id": self.text_id, "position": self.position, "token_id": self.token_id,
                             "token": tokens, "sink": self.sink})

    def __repr__(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.meta.items())
        return (f"Activations({len(self)} rows x {self.width} from {self.n_texts} texts, "
                f"{int(self.sink.sum())} sink rows{', ' + where if where else ''})")

    # ---------------------------------------------------------------- subsets
    def select(self, rows: Any) -> "Activations":
        """The rows picked by a boolean mask or integer indices, with their bookkeeping (texts keep their ids)."""
        pick = as_numpy(rows, "rows")
        if pick.dtype == bool:
            if pick.shape != (len(self),):
                raise ValueError(f"a boolean row mask needs shape ({len(self)},), got {pick.shape}")
            pick = np.flatnonzero(pick)
        pick = pick.astype(np.int64)
        return Activations(self.rows[torch.from_numpy(pick)], self.text_id[pick], self.position[pick],
                           self.token_id[pick], self.sink[pick], self.n_texts, dict(self.meta), self.tokenizer)

    def without_sinks(self) -> "Activations":
        """The same rows minus the sink rows (every text keeps at least one row, see the module docstring)."""
        return self.select(~self.sink)

    def texts(self, ids: Sequence[int] | np.ndarray) -> "Activations":
        """The rows of texts ``ids``, renumbered 0..len(ids)-1 in the order given."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        bad = ids[(ids < 0) | (ids >= self.n_texts)]
        if len(bad):
            raise IndexError(f"text id {int(bad[0])} is out of range; these activations hold texts 0..{self.n_texts - 1}")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("text ids must be distinct")
        new_id = np.full(self.n_texts, -1, dtype=np.int64)
        new_id[ids] = np.arange(len(ids))
        keep = np.flatnonzero(new_id[self.text_id] >= 0)
        keep = keep[np.argsort(new_id[self.text_id[keep]], kind="stable")]
        out = self.select(keep)
        out.text_id = new_id[out.text_id]
        out.n_texts = len(ids)
        return out

    def concat(self, other: "Activations") -> "Activations":
        """These rows followed by ``other``'s, whose texts are numbered after these."""
        if other.width != self.width:
            raise ValueError(f"cannot concatenate activations of width {self.width} and {other.width}")
        return Activations(torch.cat([self.rows, other.rows]), np.r_[self.text_id, other.text_id + self.n_texts],
                           np.r_[self.position, other.position], np.r_[self.token_id, other.token_id],
                           np.r_[self.sink, other.sink], self.n_texts + other.n_texts, dict(self.meta),
                           self.tokenizer)

    # ---------------------------------------------------------------- per text <-> per token
    def pool(self, how: str = "mean", values: Any = None, *, drop_sinks: bool = True) -> Any:
        """One row per text: ``"mean"``, ``"last"`` (the text's last row) or ``"max"`` of ``values``.

        ``values`` defaults to the rows; pass any per-row array (e.g. SAE latents ``[n_rows, n_latents]``)
        to pool it with the same bookkeeping. Returns a tensor, or a numpy array when ``values`` is one.
        Sink rows are left out unless ``drop_sinks=False`` (a text's single row is never a sink).
        """
        check_choice("how", how, POOLINGS)
        drop_sinks = check_bool("drop_sinks", drop_sinks)
        as_np = isinstance(values, np.ndarray)
        v = self.rows if values is None else torch.as_tensor(values)
        if v.ndim != 2 or v.shape[0] != len(self):
            raise ValueError(f"values must be [n_rows={len(self)}, width], got shape {tuple(v.shape)}")
        keep = ~self.sink if drop_sinks else np.ones(len(self), dtype=bool)
        ids = torch.from_numpy(self.text_id[keep])
        v = v[torch.from_numpy(keep)]
        present = np.bincount(self.text_id[keep], minlength=self.n_texts)
        if (present == 0).any():
            missing = int(np.flatnonzero(present == 0)[0])
            raise ValueError(f"text {missing} has no rows to pool (of {self.n_texts} texts); "
                             "was it removed with select()? Pool before selecting, or select whole texts with texts()")
        if how == "mean":
            out = torch.zeros(self.n_texts, v.shape[1], dtype=v.dtype).index_add_(0, ids, v)
            out = out / torch.from_numpy(present).to(v.dtype).unsqueeze(1)
        elif how == "max":
            out = torch.full((self.n_texts, v.shape[1]), -torch.inf, dtype=v.dtype)
            out = out.scatter_reduce(0, ids.unsqueeze(1).expand_as(v), v, reduce="amax", include_self=True)
        else:  # last: the row with the highest position in each text
            pos = self.position[keep]
            order = np.lexsort((pos, self.text_id[keep]))
            last = order[np.r_[np.flatnonzero(np.diff(self.text_id[keep][order]) != 0), len(order) - 1]]
            out = v[torch.from_numpy(last)]
        return out.numpy() if as_np else out

    def spread(self, labels_per_text: Any) -> np.ndarray:
        """Each text's label on every one of its rows: ``labels_per_text[text_id]``, shape ``[n_rows, ...]``."""
        labels = as_numpy(labels_per_text, "labels_per_text")
        if labels.shape[0] != self.n_texts:
            raise ValueError(f"got {labels.shape[0]} labels for {self.n_texts} texts; pass one label per text")
        return labels[self.text_id]

    def span_labels(self, texts: Sequence[str], spans: Sequence[Sequence[Any]], *, values: Any = None) -> np.ndarray:
        """Per-row labels from character spans: 1 where a row's token overlaps a span of its text, else 0.

        ``spans[i]`` lists text ``i``'s spans, each a ``(start, end)`` pair or a dict with ``start`` and
        ``end`` (the PII data's format, whose ``type`` is used when ``values`` maps types to label values).
        The texts are re-tokenized with offsets, and each row's token id is checked against that
        tokenization, so labels can never be shifted by one against the rows.
        """
        if self.tokenizer is None:
            raise ValueError("span_labels needs the tokenizer; these activations were built without one")
        texts = check_texts(texts, allow_single=False)
        if len(texts) != self.n_texts or len(spans) != self.n_texts:
            raise ValueError(f"got {len(texts)} texts and {len(spans)} span lists for {self.n_texts} texts; "
                             "pass the same texts, in the same order, with one span list each")
        enc = self.tokenizer(texts, return_offsets_mapping=True)
        out = np.zeros(len(self), dtype=np.int64)
        for r, (t, p, tok) in enumerate(zip(self.text_id, self.position, self.token_id)):
            ids = enc["input_ids"][t]
            if p >= len(ids) or ids[p] != tok:
                raise ValueError(f"row {r} (text {t}, position {p}) holds token {tok}, but text {t} tokenizes to "
                                 f"{ids[p] if p < len(ids) else 'nothing'} there: are these the texts the "
                                 "activations were read from?")
            a, b = enc["offset_mapping"][t][p]
            if b <= a:
                continue  # special tokens have empty offsets
            for span in spans[t]:
                start, end, kind = ((span["start"], span["end"], span.get("type")) if isinstance(span, dict)
                                    else (span[0], span[1], None))
                if b > start and a < end:
                    out[r] = 1 if values is None else values[kind]
                    break
        return out


def sink_positions(h: torch.Tensor, factor: float = SINK_FACTOR) -> torch.Tensor:
    """The same rule inside a forward pass: ``[batch, pos]`` True where a position of ``h`` (``[batch, pos, d]``)
    has a norm above ``factor`` x the lower median of its sequence's norms.

    Edits that replace the residual stream (an SAE splice, a mean ablation) use it to leave the sink
    positions as they were, the rows an SAE never trained on. Inside a batch the median also sees the
    padded positions of shorter sequences; their norms are ordinary, so a sink stays far above it.
    """
    factor = check_number("factor", factor, minimum=1.0)
    norms = h.detach().float().norm(dim=-1)
    lower_median = norms.sort(dim=-1).values[..., (norms.shape[-1] - 1) // 2]
    return norms > factor * lower_median.unsqueeze(-1)
