"""Reading and editing a model's residual stream: the toolkit's few verbs.

``get_activations`` reads, ``generate`` / ``token_losses`` / ``logits`` run the model, and an
:class:`Edit` (a layer, a site and a function of the activation) composes with all three, which
is how patching, steering, ablation and SAE splicing are all expressed. Every call goes through
nnsight, so the same code runs locally or on NDIF (``model.remote``).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nnsight
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .models import SITES, Model


@dataclass(frozen=True)
class Edit:
    """Replace a site's activation by ``fn(activation)`` during a run.

    ``site="resid"`` edits the residual stream after block ``layer`` (shape ``[batch, pos, d_model]``);
    ``site="mlp"`` edits that block's MLP output. During generation the function is applied at every
    decoding step (on the new position only, since earlier ones are cached).
    """

    layer: int
    fn: Callable[[torch.Tensor], torch.Tensor]
    site: str = "resid"

    def __post_init__(self) -> None:
        if self.site not in SITES:
            raise ValueError(f"Edit site {self.site!r} is not supported; use one of {SITES}")
        if not callable(self.fn):
            raise TypeError(f"Edit fn must be callable, got {type(self.fn).__name__}")


def _check_texts(texts: Sequence[str] | str, what: str = "texts") -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError(f"{what} is empty: pass at least one string")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"{what} must be strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise ValueError(f"{what}[{empty[0]}] is an empty string; every text needs at least one token")
    return texts


def _check_edits(model: Model, edits: Sequence[Edit] | Edit | None) -> list[Edit]:
    if edits is None:
        return []
    if isinstance(edits, Edit):
        edits = [edits]
    out = []
    for e in edits:
        if not isinstance(e, Edit):
            raise TypeError(f"edits must be tk.Edit objects, got {type(e).__name__}")
        out.append(Edit(model.check_layer(e.layer), e.fn, e.site))
    # nnsight serves module outputs in execution order: earlier blocks first, and a block's MLP
    # runs before the block returns.
    return sorted(out, key=lambda e: (e.layer, SITES.index(e.site) == 0))


def _output_tensor(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, tuple) else value


def _apply_edits(model: Model, edits: list[Edit]) -> None:
    """Inside a trace: replace each edited site's output by ``fn(output)``."""
    for e in edits:
        envoy = model.site(e.layer, e.site)
        value = envoy.output
        if isinstance(value, tuple):  # older block implementations return (hidden, *extras)
            envoy.output = (e.fn(value[0]), *value[1:])
        else:
            envoy.output = e.fn(value)


def _tokenize(model: Model, texts: list[str], padding_side: str) -> dict[str, torch.Tensor]:
    tok = model.tokenizer
    old = tok.padding_side
    tok.padding_side = padding_side
    try:
        enc = tok(texts, return_tensors="pt", padding=True, truncation=False)
    finally:
        tok.padding_side = old
    lengths = enc["attention_mask"].sum(1)
    too_long = (lengths > model.max_length).nonzero().flatten().tolist()
    if too_long:
        i = too_long[0]
        raise ValueError(
            f"text {i} has {int(lengths[i])} tokens, more than {model.name}'s context of {model.max_length}; "
            "split it into shorter texts (nothing is truncated silently)"
        )
    if model.device not in ("remote",):
        enc = {k: v.to(model.device) for k, v in enc.items()}
    return dict(enc)


def _batches(n: int, batch_size: int, order: np.ndarray) -> list[np.ndarray]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _length_order(model: Model, texts: list[str]) -> np.ndarray:
    # Batching texts of similar length wastes less compute on padding; results are put back in order.
    lengths = [len(ids) for ids in model.tokenizer(texts).input_ids]
    return np.argsort(lengths, kind="stable")


def _token_mask(model: Model, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    """Real tokens of right-padded batches, without the BOS token the tokenizer prepends."""
    mask = enc["attention_mask"].bool().clone()
    if model.adds_bos:
        mask[:, 0] &= enc["input_ids"][:, 0] != model.bos_token_id
    return mask


REDUCTIONS = (None, "mean", "last")


def _span_mask(model: Model, texts: list[str], spans: Sequence[tuple[int, int]], width: int) -> torch.Tensor:
    """``[len(texts), width]``: True at the tokens whose characters overlap ``texts[i][start:end]``
    (right-padded positions, the same tokenization as :func:`_tokenize`)."""
    enc = model.tokenizer(texts, return_offsets_mapping=True)
    mask = torch.zeros(len(texts), width, dtype=torch.bool)
    for row, (offsets, (start, end)) in enumerate(zip(enc["offset_mapping"], spans)):
        for pos, (a, b) in enumerate(offsets):
            if b > a and b > start and a < end:
                mask[row, pos] = True
    return mask


def _check_spans(texts: list[str], spans: Any) -> list[tuple[int, int]]:
    spans = list(spans)
    if len(spans) != len(texts):
        raise ValueError(f"spans has {len(spans)} entries but there are {len(texts)} texts; pass one (start, end) per text")
    out = []
    for i, span in enumerate(spans):
        try:
            start, end = (int(v) for v in span)
        except (TypeError, ValueError):
            raise ValueError(f"spans[{i}] = {span!r} must be a (start, end) pair of character offsets") from None
        if not 0 <= start < end <= len(texts[i]):
            raise ValueError(f"spans[{i}] = {span!r} is not a non-empty character range of texts[{i}] "
                             f"(length {len(texts[i])}); need 0 <= start < end <= {len(texts[i])}")
        out.append((start, end))
    return out


def get_activations(model: Model, texts: Sequence[str] | str, layer: int | Sequence[int], *, reduce: str | None = None,
                    batch_size: int = 16, return_index: bool = False, progress: bool | None = None,
                    site: str = "resid", spans: Sequence[tuple[int, int]] | None = None):
    """Residual-stream activations after block ``layer`` (or, with ``site="mlp"``, that block's MLP output).

    Args:
        texts: strings (a single string is treated as one text).
        layer: a block index, or a list of them: then every listed layer is read from the same
            forward pass and the result is a dict ``{layer: activations}`` (the pass stops after the
            deepest one).
        reduce: ``None`` gives one row per token, ``[n_tokens, d_model]``, padding and BOS removed;
            ``"mean"`` averages each text's tokens and ``"last"`` takes its last token, ``[n_texts, d_model]``.
        return_index: with ``reduce=None`` also return a DataFrame mapping each row to
            ``text_id``, ``position`` (in the tokenized text), ``token_id`` and ``token``.
        progress: tqdm bar; default shows one when there is more than one batch.
        spans: optional ``(start, end)`` character range per text: only the tokens overlapping
            ``text[start:end]`` are kept (e.g. the words of an action inside a question template).

    Returns a float32 CPU tensor (and the index DataFrame if asked), or a dict of them for a list of layers.
    """
    texts = _check_texts(texts)
    many = not isinstance(layer, (int, np.integer))
    if many:
        layers = [model.check_layer(L) for L in layer]
        if not layers:
            raise ValueError("layer is an empty list; pass a block index or a non-empty list of them")
    else:
        layers = [model.check_layer(layer)]
    if site not in SITES:
        raise ValueError(f"site {site!r} is not supported; use one of {SITES}")
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce={reduce!r} is not valid; use one of {REDUCTIONS}")
    if return_index and reduce is not None:
        raise ValueError("return_index=True needs reduce=None (the index maps token rows to texts)")
    spans = _check_spans(texts, spans) if spans is not None else None
    unique = sorted(set(layers))  # nnsight serves module outputs in execution order
    order = _length_order(model, texts)
    batches = _batches(len(texts), batch_size, order)
    show = progress if progress is not None else len(batches) > 1
    per_text: dict[int, list[torch.Tensor | None]] = {L: [None] * len(texts) for L in unique}
    positions: list[np.ndarray | None] = [None] * len(texts)
    token_ids: list[np.ndarray | None] = [None] * len(texts)
    desc = f"activations @ layer {unique[0]}" if len(unique) == 1 else f"activations @ {len(unique)} layers"
    for idx in tqdm(batches, desc=desc, disable=not show, leave=False):
        batch_texts = [texts[i] for i in idx]
        enc = _tokenize(model, batch_texts, padding_side="right")
        with torch.no_grad(), model.nn.trace(enc, remote=model.remote) as tracer:
            saved = nnsight.save([])  # only saved objects leave the trace
            for L in unique:
                saved.append(_output_tensor(model.site(L, site).output))
            tracer.stop()  # nothing after the deepest block is needed: skip the rest of the forward pass
        hidden = {L: h.detach().float().cpu() for L, h in zip(unique, saved)}
        mask = _token_mask(model, enc).cpu()
        if spans is not None:
            mask &= _span_mask(model, batch_texts, [spans[i] for i in idx], mask.shape[1])
        ids = enc["input_ids"].cpu()
        for row, i in enumerate(idx):
            keep = mask[row]
            if not keep.any():
                what = f"no tokens inside spans[{i}] = {spans[i]}" if spans is not None else "no tokens besides BOS"
                raise ValueError(f"texts[{i}] = {texts[i]!r} has {what}")
            for L in unique:
                per_text[L][i] = hidden[L][row][keep]
            positions[i] = keep.nonzero().flatten().numpy()
            token_ids[i] = ids[row][keep].numpy()

    def reduced(rows: list[torch.Tensor | None]) -> torch.Tensor:
        if reduce == "mean":
            return torch.stack([h.mean(0) for h in rows])
        if reduce == "last":
            return torch.stack([h[-1] for h in rows])
        return torch.cat(rows)

    acts = {L: reduced(per_text[L]) for L in layers}
    result = acts if many else acts[layers[0]]
    if not return_index:
        return result
    text_id = np.concatenate([np.full(len(p), i) for i, p in enumerate(positions)])
    tok_ids = np.concatenate(token_ids)
    index = pd.DataFrame({
        "text_id": text_id,
        "position": np.concatenate(positions),
        "token_id": tok_ids,
        "token": model.tokenizer.convert_ids_to_tokens(tok_ids.tolist()),
    })
    return result, index


def format_prompt(model: Model, prompt: str, *, chat: bool | None = None, system: str | None = None) -> str:
    """The text the model actually sees: the chat template for instruct models, else the prompt."""
    use_chat = model.is_chat if chat is None else chat
    if not use_chat:
        return prompt
    if not model.is_chat:
        raise ValueError(f"chat=True but {model.name}'s tokenizer has no chat template; use chat=False")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return model.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def generate(model: Model, prompts: Sequence[str] | str, max_new_tokens: int = 32, *,
             edits: Sequence[Edit] | Edit | None = None, do_sample: bool = False, temperature: float = 1.0,
             top_p: float | None = None, chat: bool | None = None, system: str | None = None,
             batch_size: int = 8, random_state: int | None = 0, progress: bool | None = None) -> list[str]:
    """Generate a completion for each prompt; returns the new text only.

    Greedy by default. Instruct models get their chat template (``chat=False`` turns it off).
    ``edits`` are applied at every decoding step, which is how steering works.
    """
    prompts = _check_texts(prompts, "prompts")
    edits = _check_edits(model, edits)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    texts = [format_prompt(model, p, chat=chat, system=system) for p in prompts]
    gen_kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample,
                                  "pad_token_id": model.tokenizer.pad_token_id}
    if do_sample:
        gen_kwargs["temperature"] = temperature
        if top_p is not None:
            gen_kwargs["top_p"] = top_p
    else:  # silence transformers' warnings about sampling settings in the checkpoint's config
        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
    if random_state is not None and do_sample:
        torch.manual_seed(random_state)
    order = _length_order(model, texts)
    batches = _batches(len(texts), batch_size, order)
    show = progress if progress is not None else len(batches) > 1
    outputs: list[str | None] = [None] * len(texts)
    for idx in tqdm(batches, desc="generate", disable=not show, leave=False):
        enc = _tokenize(model, [texts[i] for i in idx], padding_side="left")
        if model.adds_bos and not model.is_chat:
            pass  # the tokenizer already prepended BOS
        with warnings.catch_warnings():
            # An open-ended `tracer.iter[:]` ends on a step the run never makes; nnsight warns by design.
            warnings.filterwarnings("ignore", message=".*was never reached.*")
            with torch.no_grad(), model.nn.generate(remote=model.remote, **gen_kwargs) as tracer:
                with tracer.invoke(enc):
                    if edits:
                        for _ in tracer.iter[:]:
                            _apply_edits(model, edits)
                with tracer.invoke():
                    ids = tracer.result.save()
        new = ids[:, enc["input_ids"].shape[1]:].cpu()
        decoded = model.tokenizer.batch_decode(new, skip_special_tokens=True)
        for row, i in enumerate(idx):
            outputs[i] = decoded[row]
    return outputs  # type: ignore[return-value]


def _forward_logits(model: Model, enc: dict[str, torch.Tensor], edits: list[Edit]) -> torch.Tensor:
    with torch.no_grad(), model.nn.trace(enc, remote=model.remote):
        _apply_edits(model, edits)
        logits = _output_tensor(model.lm_head.output).save()
    return logits.detach().float().cpu()


def token_losses(model: Model, texts: Sequence[str] | str, *, edits: Sequence[Edit] | Edit | None = None,
                 batch_size: int = 16, per_token: bool = False, progress: bool | None = None):
    """Next-token cross-entropy of each text under the model (with optional edits).

    Returns a float tensor ``[n_texts]`` of mean loss per text, or with ``per_token=True`` a list of
    per-token loss tensors. ``exp`` of the mean is the text's perplexity.
    """
    texts = _check_texts(texts)
    edits = _check_edits(model, edits)
    order = _length_order(model, texts)
    batches = _batches(len(texts), batch_size, order)
    show = progress if progress is not None else len(batches) > 1
    results: list[torch.Tensor | None] = [None] * len(texts)
    for idx in tqdm(batches, desc="losses", disable=not show, leave=False):
        enc = _tokenize(model, [texts[i] for i in idx], padding_side="right")
        logits = _forward_logits(model, enc, edits)
        ids = enc["input_ids"].cpu()
        mask = enc["attention_mask"].cpu().bool()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        nll = -logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
        target_ok = mask[:, 1:]
        for row, i in enumerate(idx):
            values = nll[row][target_ok[row]]
            if values.numel() == 0:
                raise ValueError(f"texts[{i}] = {texts[i]!r} has a single token; a loss needs at least two")
            results[i] = values
    if per_token:
        return results
    return torch.stack([r.mean() for r in results])


def logits(model: Model, texts: Sequence[str] | str, *, edits: Sequence[Edit] | Edit | None = None,
           batch_size: int = 16, chat: bool = False) -> torch.Tensor:
    """Next-token logits at each text's last position, ``[n_texts, vocab]`` (float32, CPU)."""
    texts = _check_texts(texts)
    edits = _check_edits(model, edits)
    texts = [format_prompt(model, t, chat=chat) for t in texts] if chat else texts
    order = _length_order(model, texts)
    out: list[torch.Tensor | None] = [None] * len(texts)
    for idx in _batches(len(texts), batch_size, order):
        enc = _tokenize(model, [texts[i] for i in idx], padding_side="right")
        full = _forward_logits(model, enc, edits)
        last = enc["attention_mask"].cpu().sum(1) - 1
        for row, i in enumerate(idx):
            out[i] = full[row, last[row]]
    return torch.stack(out)


class StepDecoder:
    """Decode a batch of prompts one token at a time, choosing each token yourself, through nnsight.

    ``logits()`` gives the next-token logits ``[n_prompts, vocab]`` (float32, CPU) of every sequence
    so far; ``append(tokens)`` adds one chosen token id per sequence; ``new_ids`` holds what was
    appended. This is the loop under custom decoding rules (e.g. filtering candidates, MoRT).
    A local model keeps a key-value cache, so each step runs only the new tokens (the batch is
    left-padded, with position ids counted from each prompt's first real token, which gives the same
    tokens as :func:`generate`); a remote model re-reads every whole sequence at each step. ``edits``
    apply at every step, as in :func:`generate`. Prompts are used as plain text (no chat template)
    or as lists of token ids.
    """

    def __init__(self, model: Model, prompts: Sequence[str] | str | Sequence[Sequence[int]], *,
                 edits: Sequence[Edit] | Edit | None = None) -> None:
        if isinstance(prompts, str) or (prompts and all(isinstance(p, str) for p in prompts)):
            texts = _check_texts(prompts, "prompts")
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
        self.edits = _check_edits(model, edits)
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
            _apply_edits(self.model, self.edits)
            out = self.model.nn.output.save()
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
        return out.logits[:, -1].detach().float().cpu()

    def _pad_id(self) -> int:
        pad = self.model.tokenizer.pad_token_id
        return pad if pad is not None else 0  # padded positions are masked out, so any id will do

    def _remote_step(self) -> torch.Tensor:
        pad = self._pad_id()
        seqs = self.ids
        width = max(len(p) for p in seqs)
        enc = {"input_ids": torch.tensor([p + [pad] * (width - len(p)) for p in seqs]),
               "attention_mask": torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in seqs])}
        full = _forward_logits(self.model, enc, self.edits)
        return torch.stack([full[row, len(p) - 1] for row, p in enumerate(seqs)])
