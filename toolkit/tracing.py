"""Reading and editing a model's residual stream: the toolkit's few verbs.

``get_activations`` reads, ``generate`` / ``token_losses`` / ``logits`` run the model, and an
:class:`Edit` (a layer, a site and a function of the activation) composes with all three, which
is how patching, steering, ablation and SAE splicing are all expressed. Every call goes through
nnsight, so the same code runs locally or on NDIF (``model.remote``).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from .progress import progress_bar as tqdm

from .models import SITES, Model
from .activations import POOLINGS, Activations
from .validation import check_bool, check_choice, check_finite, check_int, check_number, check_texts


def _nnsight():
    """nnsight, imported on first use: it pulls in transformers (about 1.5 s), which ``import toolkit`` defers."""
    import nnsight

    return nnsight


@dataclass(frozen=True)
class Edit:
    """Replace a site's activation by ``fn(activation)`` during a run.

    ``site="resid"`` edits the residual stream after block ``layer`` (shape ``[batch, pos, d_model]``);
    ``site="mlp"`` edits that block's MLP output. During generation the function is applied at every
    decoding step (on the new position only, since earlier ones are cached). ``layer`` may be negative
    (counted from the last block).

    ``fn`` may also define ``for_texts(idx)``: the verbs then call it once per batch with the input
    indices of the texts in that batch (batches are ordered by length, so rows are not in input order)
    and apply the function it returns. That is how one batch carries a different edit per text, e.g.
    ``tk.steer`` with several alphas at once.

    ``fn`` must return a tensor shaped like its input. A result holding NaN or inf, or values too large
    for the next layer norm to square in float32 (``|x| > sqrt(float32 max / d_model)``, about 7.7e17 for
    d_model 576), makes ``generate`` / ``token_losses`` / ``logits`` / ``StepDecoder`` raise a
    ``ValueError`` naming the edit, instead of returning '' or NaN.
    """

    layer: int
    fn: Callable[[torch.Tensor], torch.Tensor]
    site: str = "resid"

    def __post_init__(self) -> None:
        if self.site not in SITES:
            raise ValueError(f"Edit site {self.site!r} is not supported; use one of {SITES}")
        if not callable(self.fn):
            raise TypeError(f"Edit fn must be callable, got {type(self.fn).__name__}")


def _check_layer(model: Model, layer: Any) -> int:
    """A block index through the shared helpers: an int (never a float or bool), negatives counted from the end."""
    n = model.n_layers
    try:
        value = check_int("layer", layer, minimum=-n, maximum=n - 1)  # a TypeError names the valid range
    except ValueError:
        value = layer  # an out-of-range int: Model.check_layer's IndexError names the blocks
    return model.check_layer(value)


def _check_edits(model: Model, edits: Sequence[Edit] | Edit | None) -> list[Edit]:
    if edits is None:
        return []
    if isinstance(edits, Edit):
        edits = [edits]
    out = []
    for e in edits:
        if not isinstance(e, Edit):
            raise TypeError(f"edits must be tk.Edit objects, got {type(e).__name__}")
        out.append(Edit(_check_layer(model, e.layer), e.fn, e.site))
    # nnsight serves module outputs in execution order: earlier blocks first, and a block's MLP
    # runs before the block returns.
    return sorted(out, key=lambda e: (e.layer, SITES.index(e.site) == 0))


def _output_tensor(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, tuple) else value


def _apply_edits(model: Model, edits: list[Edit], stats: list | None = None,
                 mask: torch.Tensor | None = None, rows: np.ndarray | None = None) -> None:
    """Inside a trace: replace each edited site's output by ``fn(output)``.

    With ``stats``, append the largest ``|value|`` each edit produced (one 0-d tensor per edit and step),
    so :func:`_check_edit_stats` can refuse a non-finite or overflowing edit after the trace. The check is
    read from saved values rather than raised inside the trace so that it works the same on NDIF.
    ``mask`` (``[batch, pos]``, True at real tokens) keeps padded positions out of that maximum: they
    are never read, and some attention implementations leave them NaN. ``rows`` are the input indices
    of the batch's texts, for edit functions that define ``for_texts`` (see :class:`Edit`).
    """
    for e in edits:
        envoy = model.site(e.layer, e.site)
        value = envoy.output
        hidden = value[0] if isinstance(value, tuple) else value  # older blocks return (hidden, *extras)
        fn = e.fn.for_texts(rows) if rows is not None and hasattr(e.fn, "for_texts") else e.fn
        new = fn(hidden)
        if not isinstance(new, torch.Tensor):
            raise TypeError(f"{_describe_edit(e)} returned {type(new).__name__}; fn must return a tensor "
                            f"shaped like its input {tuple(hidden.shape)}")
        envoy.output = (new, *value[1:]) if isinstance(value, tuple) else new
        if stats is not None:
            real = new.detach()
            if mask is not None and real.dim() == 3 and tuple(real.shape[:2]) == tuple(mask.shape):
                real = real[mask]
            # one reduction per application; NaN propagates through it, so it also flags NaN and inf
            stats.append(torch.linalg.vector_norm(real.float(), ord=float("inf")))


def _fn_name(fn: Any) -> str | None:
    """A name worth printing for an edit function: a def's name or a short custom repr, never '<lambda>'."""
    name = getattr(fn, "__name__", None)
    if isinstance(name, str):
        return None if name == "<lambda>" else name
    if type(fn).__repr__ is not object.__repr__:
        text = repr(fn)
        if "\n" not in text and len(text) <= 80:  # a torch module's repr spans many lines: use its class
            return text
    return type(fn).__name__


def _describe_edit(e: Edit) -> str:
    name = _fn_name(e.fn)
    return f"tk.Edit(layer={e.layer}, site={e.site!r}{f', fn={name}' if name else ''})"


def _magnitude_limit(model: Model) -> float:
    # The next block's RMSNorm/LayerNorm averages x**2 over d_model in float32. Beyond this |x| that sum
    # can overflow to inf: the norm then returns zeros (or NaN) and the output no longer depends on the
    # input: steering with alpha=1e30 gave all-zero logits and empty generations, with no NaN anywhere.
    return math.sqrt(float(torch.finfo(torch.float32).max) / model.d_model)


def _check_edit_stats(model: Model, edits: list[Edit], stats: Sequence[torch.Tensor], where: str = "",
                      steps: bool = False) -> None:
    """Raise on the first edit application whose output was NaN, inf or too large to normalize."""
    if not edits:
        return
    limit = _magnitude_limit(model)
    for k, stat in enumerate(stats):
        value = float(stat)
        if math.isfinite(value) and value <= limit:
            continue
        e = edits[k % len(edits)]
        at = f" at decoding step {k // len(edits)}" if steps else ""
        at += f" {where}" if where else ""
        if math.isfinite(value):
            raise ValueError(
                f"{_describe_edit(e)} made activations as large as {value:.3g}{at}; beyond {limit:.3g} "
                f"(sqrt(float32 max / d_model={model.d_model})) the next layer norm overflows and the model's "
                "output stops depending on its input. Scale the edit down (steering alphas are usually 0.1-20)")
        kind = "NaN" if math.isnan(value) else "inf"
        raise ValueError(f"{_describe_edit(e)} made the activations non-finite ({kind}){at}; an edit must "
                         "return finite values (check fn, e.g. a division by a zero norm, or its scale)")


def _with_edits(edits: list[Edit]) -> str:
    return " with edits " + ", ".join(_describe_edit(e) for e in edits) if edits else " without edits"


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


def _batched(model: Model, texts: list[str], batch_size: int, *, desc: str, progress: bool | None = None,
             padding_side: str = "right"):
    """The one batching loop of every verb: yields ``(idx, enc)`` per batch.

    Texts are ordered by token count so that a batch wastes little compute on padding (``idx`` says
    which input texts a batch holds, so callers put results back in input order); each batch is
    tokenized with ``padding_side`` and checked against the context length. A progress bar shows when
    there is more than one batch, unless ``progress`` says otherwise.
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    lengths = [len(ids) for ids in model.tokenizer(texts).input_ids]
    order = np.argsort(lengths, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(texts), batch_size)]
    show = progress if progress is not None else len(batches) > 1
    for idx in tqdm(batches, desc=desc, disable=not show, leave=False):
        yield idx, _tokenize(model, [texts[i] for i in idx], padding_side=padding_side)


def _token_mask(model: Model, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    """Real tokens of right-padded batches, without the BOS token the tokenizer prepends."""
    mask = enc["attention_mask"].bool().clone()
    if model.adds_bos:
        mask[:, 0] &= enc["input_ids"][:, 0] != model.bos_token_id
    return mask


REDUCTIONS = (None, *POOLINGS)


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
                    batch_size: int = 16, progress: bool | None = None, site: str = "resid",
                    spans: Sequence[tuple[int, int]] | None = None):
    """Residual-stream activations after block ``layer`` (or, with ``site="mlp"``, that block's MLP output).

    Args:
        texts: strings (a single string is treated as one text).
        layer: a block index, or a list of them: then every listed layer is read from the same
            forward pass and the result is a dict ``{layer: result}`` (the pass stops after the
            deepest one).
        reduce: ``None`` gives an :class:`~toolkit.activations.Activations`: one row per token
            (padding and BOS removed) with the token index and sink flags. ``"mean"``, ``"last"``
            or ``"max"`` give ``acts.pool(reduce)``, a tensor ``[n_texts, d_model]`` (sink rows left
            out of the mean and max, see :mod:`toolkit.activations`).
        progress: tqdm bar; default shows one when there is more than one batch.
        spans: optional ``(start, end)`` character range per text: only the tokens overlapping
            ``text[start:end]`` are kept (e.g. the words of an action inside a question template).

    Rows are float32 on the CPU.
    """
    texts = check_texts(texts)
    # Only a real sequence means "several layers"; anything else (2.0, "3", a 0-d tensor) is one index,
    # so a float gets the shared TypeError instead of "'float' object is not iterable".
    many = isinstance(layer, (list, tuple, range)) or (isinstance(layer, (np.ndarray, torch.Tensor)) and layer.ndim == 1)
    if many:
        layers = [_check_layer(model, L) for L in layer]
        if not layers:
            raise ValueError("layer is an empty list; pass a block index or a non-empty list of them")
    else:
        layers = [_check_layer(model, layer)]
    check_choice("site", site, SITES)
    check_choice("reduce", reduce, REDUCTIONS)
    spans = _check_spans(texts, spans) if spans is not None else None
    unique = sorted(set(layers))  # nnsight serves module outputs in execution order
    per_text: dict[int, list[torch.Tensor | None]] = {L: [None] * len(texts) for L in unique}
    positions: list[np.ndarray | None] = [None] * len(texts)
    token_ids: list[np.ndarray | None] = [None] * len(texts)
    desc = f"activations @ layer {unique[0]}" if len(unique) == 1 else f"activations @ {len(unique)} layers"
    for idx, enc in _batched(model, texts, batch_size, desc=desc, progress=progress):
        with torch.no_grad(), model.nn.trace(enc, remote=model.remote) as tracer:
            saved = _nnsight().save([])  # only saved objects leave the trace
            for L in unique:
                saved.append(_output_tensor(model.site(L, site).output))
            tracer.stop()  # nothing after the deepest block is needed: skip the rest of the forward pass
        hidden = {L: h.detach().float().cpu() for L, h in zip(unique, saved)}
        mask = _token_mask(model, enc).cpu()
        if spans is not None:
            mask &= _span_mask(model, [texts[i] for i in idx], [spans[i] for i in idx], mask.shape[1])
        ids = enc["input_ids"].cpu()
        _check_activations_finite(model, hidden, mask, idx, texts, site)
        for row, i in enumerate(idx):
            keep = mask[row]
            if not keep.any():
                what = f"no tokens inside spans[{i}] = {spans[i]}" if spans is not None else "no tokens besides BOS"
                raise ValueError(f"texts[{i}] = {texts[i]!r} has {what}")
            for L in unique:
                per_text[L][i] = hidden[L][row][keep]
            positions[i] = keep.nonzero().flatten().numpy()
            token_ids[i] = ids[row][keep].numpy()

    text_id = np.concatenate([np.full(len(p), i) for i, p in enumerate(positions)])
    position, tok_ids = np.concatenate(positions), np.concatenate(token_ids)
    result = {}
    for L in layers:
        acts = Activations.from_rows(torch.cat(per_text[L]), text_id, position, tok_ids, len(texts),
                                     meta={"model": model.name, "layer": L, "site": site},
                                     tokenizer=model.tokenizer)
        result[L] = acts if reduce is None else acts.pool(reduce)
    return result if many else result[layers[0]]


def _check_activations_finite(model: Model, hidden: dict[int, torch.Tensor], mask: torch.Tensor, idx: np.ndarray,
                              texts: list[str], site: str) -> None:
    """Refuse NaN/inf activations at the kept tokens, naming the layer and the text (a broken model or an
    overflowing float16 run would otherwise flow into PCA, SAEs and FMS as NaN)."""
    for L, h in hidden.items():
        bad = ~torch.isfinite(h).all(-1) & mask  # one cheap pass; padded positions are never returned
        if bool(bad.any()):
            row = int(bad.any(1).nonzero()[0])
            i = int(idx[row])
            check_finite(f"the {site} activations of texts[{i}] at layer {L}", h[row][mask[row]],
                         where=f"(token rows of that text, {model.name}); the model itself produced them: "
                               "check its dtype (float16 overflows) and its weights")


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
             batch_size: int = 32, random_state: int | None = 0, progress: bool | None = None) -> list[str]:
    """Generate a completion for each prompt; returns the new text only.

    Greedy by default. Instruct models get their chat template (``chat=False`` turns it off).
    ``edits`` are applied at every decoding step, which is how steering works; an edit that makes
    NaN/inf (or overflowing) activations, or non-finite logits, raises a ValueError naming it.

    ``batch_size`` prompts decode together. On a CPU a decoding step is bound by reading the weights,
    not by arithmetic, so 32 rows cost little more than 8: batch 20 ran 2x faster than batches of 8
    for SmolLM2 (``benchmarks/generation.py``).
    """
    prompts = check_texts(prompts, "prompts")
    edits = _check_edits(model, edits)
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    do_sample = check_bool("do_sample", do_sample)
    # temperature and top_p only matter when sampling, but a string or NaN is refused either way
    temperature = check_number("temperature", temperature, minimum=0.0)
    if do_sample and temperature == 0.0:
        raise ValueError("temperature must be > 0 when do_sample=True, got 0.0; use do_sample=False for greedy decoding")
    if top_p is not None:
        top_p = check_number("top_p", top_p, minimum=0.0, maximum=1.0)
    if random_state is not None:
        random_state = check_int("random_state", random_state)
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
    outputs: list[str | None] = [None] * len(texts)
    for idx, enc in _batched(model, texts, batch_size, desc="generate", progress=progress, padding_side="left"):
        real = enc["attention_mask"].bool()  # the prompt's real tokens, for the edit check's first step
        with warnings.catch_warnings():
            # An open-ended `tracer.iter[:]` ends on a step the run never makes; nnsight warns by design.
            warnings.filterwarnings("ignore", message=".*was never reached.*")
            with torch.no_grad(), model.nn.generate(remote=model.remote, **gen_kwargs) as tracer:
                with tracer.invoke(enc):
                    if edits:
                        stats, logits_ok = _nnsight().save([]), _nnsight().save([])
                        for _ in tracer.iter[:]:
                            _apply_edits(model, edits, stats, real, rows=idx)
                            # the next token is chosen from the last position's logits: argmax of NaN logits
                            # picks token 0, which decodes to '' for SmolLM2
                            logits_ok.append(torch.isfinite(_output_tensor(model.lm_head.output)[:, -1].sum(-1)).all())
                with tracer.invoke():
                    ids = tracer.result.save()
        if edits:
            where = f"(generating prompts {[int(i) for i in idx]})"
            _check_edit_stats(model, edits, stats, where, steps=True)
            bad_steps = [k for k, ok in enumerate(logits_ok) if not bool(ok)]
            if bad_steps:
                raise ValueError(f"the model's logits became non-finite at decoding step {bad_steps[0]} {where}"
                                 f"{_with_edits(edits)}; the edited activations were finite and in range, so "
                                 "either an edit pushed a later layer into overflow or the model itself makes "
                                 "non-finite values (run it without edits to tell)")
        new = ids[:, enc["input_ids"].shape[1]:].cpu()
        decoded = model.tokenizer.batch_decode(new, skip_special_tokens=True)
        for row, i in enumerate(idx):
            outputs[i] = decoded[row]
    return outputs  # type: ignore[return-value]


def _forward_logits(model: Model, enc: dict[str, torch.Tensor], edits: list[Edit], where: str = "",
                    rows: np.ndarray | None = None) -> torch.Tensor:
    """Logits of a right-padded batch, refusing NaN/inf at real positions (and non-finite edits first)."""
    with torch.no_grad(), model.nn.trace(enc, remote=model.remote):
        stats = _nnsight().save([])
        _apply_edits(model, edits, stats, enc["attention_mask"].bool(), rows=rows)
        logits = _output_tensor(model.lm_head.output).save()
    _check_edit_stats(model, edits, stats, where)
    logits = model.cap_logits(logits.detach().float().cpu())
    # a row sum is NaN/inf iff the row holds one (finite logits are far too small to overflow it), and
    # it avoids a vocab-sized boolean copy (262k columns for Gemma)
    bad = ~torch.isfinite(logits.sum(-1)) & enc["attention_mask"].cpu().bool()
    if bool(bad.any()):
        row, pos = (int(v) for v in bad.nonzero()[0])
        raise ValueError(f"the model's logits are non-finite at position {pos} of row {row} {where}{_with_edits(edits)}"
                         + ("; the edited activations were finite and in range, so either an edit pushed a later "
                            "layer into overflow or the model itself makes non-finite values (run it without edits "
                            "to tell)" if edits else
                            "; check the model's dtype (float16 overflows) and its weights"))
    return logits


def _rows_are(idx: np.ndarray) -> str:
    return f"(batch rows are texts {[int(i) for i in idx]})"


def token_losses(model: Model, texts: Sequence[str] | str, *, edits: Sequence[Edit] | Edit | None = None,
                 batch_size: int = 16, per_token: bool = False, progress: bool | None = None):
    """Next-token cross-entropy of each text under the model (with optional edits).

    Returns a float tensor ``[n_texts]`` of mean loss per text, or with ``per_token=True`` a list of
    per-token loss tensors. ``exp`` of the mean is the text's perplexity.
    """
    texts = check_texts(texts)
    edits = _check_edits(model, edits)
    per_token = check_bool("per_token", per_token)
    results: list[torch.Tensor | None] = [None] * len(texts)
    for idx, enc in _batched(model, texts, batch_size, desc="losses", progress=progress):
        logits = _forward_logits(model, enc, edits, _rows_are(idx), rows=idx)
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
    texts = check_texts(texts)
    edits = _check_edits(model, edits)
    chat = check_bool("chat", chat)
    texts = [format_prompt(model, t, chat=chat) for t in texts] if chat else texts
    out: list[torch.Tensor | None] = [None] * len(texts)
    for idx, enc in _batched(model, texts, batch_size, desc="logits", progress=False):
        full = _forward_logits(model, enc, edits, _rows_are(idx), rows=idx)
        last = enc["attention_mask"].cpu().sum(1) - 1
        for row, i in enumerate(idx):
            out[i] = full[row, last[row]]
    return torch.stack(out)


def logit_lens(model: Model, texts: Sequence[str] | str, *, layers: Sequence[int] | None = None,
               batch_size: int = 8) -> torch.Tensor:
    """The logit lens at each text's last position: what the final read-out makes of every block's output.

    Returns ``[n_texts, n_layers, vocab]`` float32 logits (``layers`` picks blocks; default all). At the
    last block they equal ``tk.logits``. The read-out (final norm, then unembedding) runs inside the trace
    through the model's own envoys, so it works on NDIF too and never reads local weights; Gemma 2's final
    soft cap is applied to what comes back, as the model applies it.
    """
    texts = check_texts(texts)
    layers = [model.check_layer(L) for L in (range(model.n_layers) if layers is None else layers)]
    if not layers:
        raise ValueError("layers is empty: pass the blocks to read, e.g. range(model.n_layers), or None for all")
    out: list[torch.Tensor | None] = [None] * len(texts)
    for idx, enc in _batched(model, texts, batch_size, desc="logit lens", progress=False):
        last = enc["attention_mask"].sum(1) - 1
        rows = torch.arange(len(idx), device=last.device)
        with torch.no_grad(), model.nn.trace(enc, remote=model.remote):
            read = _nnsight().save([])
            for layer in layers:
                hidden = _output_tensor(model.block(layer).output)[rows, last]
                read.append(model.lm_head(model.final_norm(hidden)).save())
        lens = model.cap_logits(torch.stack([r.detach().float().cpu() for r in read], dim=1))
        for row, i in enumerate(idx):
            out[i] = lens[row]
    return torch.stack(out)
