"""Decoding one token at a time with your own rule: :class:`StepDecoder` and MoRT moral filtering.

:func:`tk.generate` decodes greedily or by sampling inside one nnsight call. A custom rule needs the
logits of every step in Python, to choose the next token itself: :class:`StepDecoder` is that loop
(key-value cached for a local model), and :func:`moral_filtered_generate` is one rule built on it,
the Moral Reasoning Tool (MoRT, Schramowski et al. 2022), which drops candidate tokens whose text a
:class:`tk.MoralDirection` scores as non-normative (:func:`filter_candidates`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

# The module, not its names: tracing re-exports StepDecoder from here, so it is only partly
# initialised while this module loads; its helpers are looked up when a decoder runs.
from . import tracing as _tracing
from .validation import check_int, check_number, check_texts

if TYPE_CHECKING:  # imported for annotations only
    from .models import Model
    from .moral_direction import MoralDirection
    from .tracing import Edit

__all__ = ["StepDecoder", "filter_candidates", "moral_filtered_generate"]


class StepDecoder:
    """Decode a batch of prompts one token at a time, choosing each token yourself, through nnsight.

    ``logits()`` gives the next-token logits ``[n_prompts, vocab]`` (float32, CPU) of every sequence
    so far; ``append(tokens)`` adds one chosen token id per sequence; ``new_ids`` holds what was
    appended. This is the loop under custom decoding rules (e.g. filtering candidates, MoRT).
    A local model keeps a key-value cache, so each step runs only the new tokens (the batch is
    left-padded, with position ids counted from each prompt's first real token, which gives the same
    tokens as :func:`tk.generate`); a remote model re-reads every whole sequence at each step. ``edits``
    apply at every step, as in :func:`tk.generate`. Prompts are used as plain text (no chat template)
    or as lists of token ids.
    """

    def __init__(self, model: Model, prompts: Sequence[str] | str | Sequence[Sequence[int]], *,
                 edits: Sequence[Edit] | Edit | None = None) -> None:
        if isinstance(prompts, str) or (prompts and all(isinstance(p, str) for p in prompts)):
            texts = check_texts(prompts, "prompts")
            self.prompt_ids = [list(model.tokenizer(t).input_ids) for t in texts]
        else:
            self.prompt_ids = [[int(t) for t in p] for p in prompts]
            if not self.prompt_ids or any(len(p) == 0 for p in self.prompt_ids):
                raise ValueError("prompts must be non-empty strings or non-empty lists of token ids")
        too_long = [i for i, p in enumerate(self.prompt_ids) if len(p) > model.max_length]
        if too_long:
            raise ValueError(f"prompt {too_long[0]} has {len(self.prompt_ids[too_long[0]])} tokens, more than "
                             f"{model.name}'s context of {model.max_length}")
        self.model = model
        self.edits = _tracing._check_edits(model, edits)
        self.new_ids: list[list[int]] = [[] for _ in self.prompt_ids]
        self._cache: Any = None
        self._mask: torch.Tensor | None = None
        self._positions: torch.Tensor | None = None
        self._logits: torch.Tensor | None = None

    @property
    def ids(self) -> list[list[int]]:
        """Prompt plus appended token ids of every sequence."""
        return [p + n for p, n in zip(self.prompt_ids, self.new_ids)]

    def append(self, tokens: Sequence[int]) -> None:
        """Add one token id to every sequence (in prompt order)."""
        tokens = [int(t) for t in tokens]
        if len(tokens) != len(self.prompt_ids):
            raise ValueError(f"append needs one token per sequence ({len(self.prompt_ids)}); got {len(tokens)}")
        if self._logits is None:
            raise RuntimeError("call logits() before append(): a token is chosen from the current logits")
        for seq, t in zip(self.new_ids, tokens):
            seq.append(t)
        self._logits = None

    def logits(self) -> torch.Tensor:
        """Next-token logits ``[n_sequences, vocab]`` for the sequences as they stand."""
        if self._logits is None:
            self._logits = self._remote_step() if self.model.remote else self._cached_step()
        return self._logits

    def _run(self, **inputs: Any) -> Any:
        with torch.no_grad(), self.model.nn.trace(**inputs, remote=self.model.remote):
            stats = _tracing._nnsight().save([])
            _tracing._apply_edits(self.model, self.edits, stats, inputs["attention_mask"][:, -inputs["input_ids"].shape[1]:].bool(),
                                  rows=np.arange(len(self.prompt_ids)))  # the batch is the prompts, in order
            out = self.model.nn.output.save()
        _tracing._check_edit_stats(self.model, self.edits, stats, f"(step decoding, step {len(self.new_ids[0])})")
        return out

    def _cached_step(self) -> torch.Tensor:
        device = self.model.device
        if self._cache is None:  # the first step reads the (left-padded) prompts, later ones a single new token
            pad = self._pad_id()
            width = max(len(p) for p in self.ids)
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in self.ids], device=device)
            self._mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in self.ids], device=device)
            self._positions = (self._mask.cumsum(1) - 1).clamp(min=0)
            feed_ids, feed_pos = ids, self._positions
        else:
            feed_ids = torch.tensor([[seq[-1]] for seq in self.new_ids], device=device)
            self._mask = torch.cat([self._mask, torch.ones_like(self._mask[:, :1])], 1)
            self._positions = feed_pos = self._positions[:, -1:] + 1
        out = self._run(input_ids=feed_ids, attention_mask=self._mask, position_ids=feed_pos,
                        past_key_values=self._cache, use_cache=True)
        self._cache = out.past_key_values
        logits = out.logits[:, -1].detach().float().cpu()
        bad = ~torch.isfinite(logits.sum(-1))
        if bool(bad.any()):  # a custom decoding rule would otherwise pick from NaN scores
            raise ValueError(f"the model's next-token logits are non-finite for prompt {int(bad.nonzero()[0])} at step "
                             f"{len(self.new_ids[0])}{_tracing._with_edits(self.edits)}")
        return logits

    def _pad_id(self) -> int:
        pad = self.model.tokenizer.pad_token_id
        return pad if pad is not None else 0  # padded positions are masked out, so any id will do

    def _remote_step(self) -> torch.Tensor:
        pad = self._pad_id()
        seqs = self.ids
        width = max(len(p) for p in seqs)
        enc = {"input_ids": torch.tensor([p + [pad] * (width - len(p)) for p in seqs]),
               "attention_mask": torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in seqs])}
        full = _tracing._forward_logits(self.model, enc, self.edits, f"(step decoding, step {len(self.new_ids[0])})",
                                       rows=np.arange(len(seqs)))
        return torch.stack([full[row, len(p) - 1] for row, p in enumerate(seqs)])


# ----------------------------------------------------------------------------------------------
# Moral-guided decoding (MoRT, Schramowski et al. 2022): filter the top-k candidates at each step
# ----------------------------------------------------------------------------------------------

def filter_candidates(scores: Any, threshold: float, min_keep: int = 2) -> np.ndarray:
    """Indices of the candidates that survive the moral filter, in their original (probability) order.

    ``scores[i]`` is the moral score of the text with candidate i appended; candidates are ordered
    from most to least likely. Candidates with a score below ``threshold`` are dropped, but the
    ``min_keep`` best-scoring ones always survive, so decoding never runs out of options.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.size == 0:
        raise ValueError("scores is empty: there must be at least one candidate")
    threshold = check_number("threshold", threshold, finite=False)
    min_keep = check_int("min_keep", min_keep, minimum=1)
    keep = s >= threshold
    if keep.sum() < min_keep:
        best = np.argsort(-s, kind="stable")[: min(min_keep, s.size)]
        keep[best] = True
    return np.flatnonzero(keep)


def moral_filtered_generate(model: Model, direction: MoralDirection, prompts: Sequence[str] | str,
                            max_new_tokens: int = 16, k: int = 10, threshold: float | None = 0.0,
                            min_keep: int = 2, progress: bool | None = None) -> list[str]:
    """Greedy decoding of ``model`` where each step keeps only morally acceptable top-k candidates.

    At every step the next-token logits of all prompts + text so far are read in one batch through
    :class:`StepDecoder` (key-value cached for a local model, a full re-read for a remote one); the
    ``k`` most likely tokens are appended one at a time and the resulting texts are scored by
    ``direction`` on the raw text (no templates: these are running sentences, not actions to put in a
    template); the most likely candidate among the survivors of :func:`filter_candidates` is chosen.
    ``threshold=None`` turns filtering off (plain greedy decoding over the same loop). The prompts are
    continued as plain text (no chat template); a sequence stops at the end-of-sequence token.
    Returns the new text only.
    """
    from .progress import progress_bar as tqdm

    prompts = check_texts(prompts, "prompts")
    k = check_int("k", k, minimum=1)
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
    if threshold is not None:
        threshold = check_number("threshold", threshold)
    min_keep = check_int("min_keep", min_keep, minimum=1)
    tok = model.tokenizer
    eos = tok.eos_token_id
    decoder = StepDecoder(model, prompts)
    done = [False] * len(prompts)
    kept: list[list[int]] = [[] for _ in prompts]  # tokens up to and including EOS
    for _ in tqdm(range(max_new_tokens), desc="moral-filtered decoding", leave=False,
                  disable=not (progress if progress is not None else max_new_tokens * len(prompts) > 64)):
        active = [i for i in range(len(prompts)) if not done[i]]
        if not active:
            break
        top = torch.topk(decoder.logits(), k=k, dim=-1).indices.tolist()
        if threshold is not None:
            ids = decoder.ids
            flat = [tok.decode(ids[i] + [c], skip_special_tokens=True) for i in active for c in top[i]]
            flat = [c if c.strip() else "." for c in flat]
            scores = direction.score(flat, use_templates=False).reshape(len(active), k)
        choice = [top[i][0] for i in range(len(prompts))]  # finished sequences are fed, then ignored
        for j, i in enumerate(active):
            if threshold is not None:
                choice[i] = top[i][int(filter_candidates(scores[j], threshold, min_keep)[0])]
            kept[i].append(int(choice[i]))
            if choice[i] == eos:
                done[i] = True
        decoder.append(choice)
    return [tok.decode(ids, skip_special_tokens=True) for ids in kept]
