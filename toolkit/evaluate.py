"""Evaluating steered generations: a concept judge, perplexity, repetition, alpha sweeps.

The judge must not be the model we steer, otherwise steering could "fool" its own
detector without changing the text. We use a small sentence encoder (``load_encoder()``)
with a logistic regression on top, trained on the concept's training split, and report its
held-out accuracy so the reader knows how far to trust it.

Quality is measured by the perplexity of the generated text under the *unsteered* model
(a steered model that babbles still finds its own babble likely) and by a repetition rate,
because the first thing heavy steering does to a small model is make it loop.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .validation import as_numpy, check_int, check_number, check_texts

__all__ = [
    "pearson_ci",
    "pearson_difference_ci",
    "ConceptJudge",
    "auroc",
    "latent_aurocs",
    "best_latent",
    "f1_score",
    "best_f1_threshold",
    "repetition_rate",
    "generation_perplexity",
    "alpha_sweep",
    "summarize_sweep",
    "fit_tradeoff",
    "cost_at_shift",
]


# --------------------------------------------------------------------------- detection metrics
def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (ties count one half)."""
    return float(latent_aurocs(np.asarray(scores, dtype=np.float64)[:, None], labels)[0])


def latent_aurocs(latents: np.ndarray, labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """AUROC of every column of ``latents`` [n, m] as a detector of binary ``labels`` [n].

    Uses the Mann-Whitney rank statistic with average ranks for ties, vectorised over columns,
    so a 4096-latent SAE is scored in one pass.
    """
    x = as_numpy(latents, "latents").astype(np.float64)
    if x.ndim != 2:
        raise ValueError(f"latents must be 2-D [n_samples, n_latents], got shape {x.shape}")
    y = _binary_labels(labels, x.shape[0])
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"labels need both classes for an AUROC; got {n_pos} positives and {n_neg} negatives")
    ranks = pd.DataFrame(x).rank(axis=0, method="average").to_numpy()
    rank_sum = ranks[y == 1].sum(axis=0)
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def best_latent(latents: np.ndarray, labels: Sequence[int] | np.ndarray) -> tuple[int, float]:
    """The single latent that best detects ``labels``: returns ``(index, auroc)``.

    Only latents that rise with the concept count (AUROC > 0.5): an SAE latent is read as
    "the concept is present when it fires", and steering adds its decoder direction.
    Choose the latent on training data and report its AUROC on held-out data.
    """
    aucs = latent_aurocs(latents, labels)
    idx = int(np.nanargmax(aucs))
    return idx, float(aucs[idx])


def _pearson_last_axis(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson r along the last axis (any leading axes, as scipy's vectorized bootstrap passes them; it
    always asks for ``axis=-1``)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    return (xc * yc).sum(-1) / np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))


def _paired_columns(name: str, arrays: Sequence[Any]) -> list[np.ndarray]:
    cols = [as_numpy(a, name).astype(np.float64).reshape(-1) for a in arrays]
    n = len(cols[0])
    if any(len(c) != n for c in cols):
        raise ValueError(f"{name}: got lengths {[len(c) for c in cols]}; every array needs one value per item")
    if n < 4:
        raise ValueError(f"{name}: a correlation interval needs at least 4 paired items, got {n}")
    if any(not np.isfinite(c).all() for c in cols):
        raise ValueError(f"{name}: the values must be finite")
    return cols


def _paired_bootstrap(data: tuple[np.ndarray, ...], statistic: Any, confidence_level: float, n_resamples: int,
                      random_state: int) -> tuple[float, float, float]:
    """``statistic`` on the items and its BCa interval, resampling whole items (``scipy.stats.bootstrap``)."""
    from scipy.stats import bootstrap

    check_number("confidence_level", confidence_level, minimum=0.0, maximum=1.0)
    res = bootstrap(data, statistic, paired=True, vectorized=True, confidence_level=confidence_level,
                    n_resamples=check_int("n_resamples", n_resamples, minimum=100),
                    rng=np.random.default_rng(check_int("random_state", random_state)))
    return float(statistic(*data)), float(res.confidence_interval.low), float(res.confidence_interval.high)


def pearson_ci(scores: Any, labels: Any, *, confidence_level: float = 0.95, n_resamples: int = 2000,
               random_state: int = 0) -> tuple[float, float, float]:
    """Pearson r of ``scores`` with ``labels`` and its bootstrap confidence interval: ``(r, low, high)``.

    The items (pairs of score and label) are resampled with replacement (``scipy.stats.bootstrap``,
    BCa interval), so the interval says how much r depends on which items happened to be in the set.
    """
    data = tuple(_paired_columns("pearson_ci", [scores, labels]))
    return _paired_bootstrap(data, _pearson_last_axis, confidence_level, n_resamples, random_state)


def pearson_difference_ci(scores_a: Any, scores_b: Any, labels: Any, *, confidence_level: float = 0.95,
                          n_resamples: int = 2000, random_state: int = 0) -> tuple[float, float, float]:
    """``r(a, labels) - r(b, labels)`` with a paired bootstrap interval: ``(difference, low, high)``.

    Both scores are of the same items, so each resample draws items once and recomputes both
    correlations on them: the interval of the *difference* is then much narrower than the two
    separate intervals suggest. A claim "a agrees better than b" is supported when ``low > 0``.
    """
    def difference(a, b, y, axis=-1):
        return _pearson_last_axis(a, y) - _pearson_last_axis(b, y)

    data = tuple(_paired_columns("pearson_difference_ci", [scores_a, scores_b, labels]))
    return _paired_bootstrap(data, difference, confidence_level, n_resamples, random_state)


def f1_score(predicted: Sequence[bool] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """F1 of binary ``predicted`` against binary ``labels`` (0 when there is nothing to find or predict)."""
    from sklearn.metrics import f1_score as sklearn_f1

    p = np.asarray(predicted).reshape(-1).astype(bool)
    y = _binary_labels(labels, len(p)).astype(bool)  # checks length and values, with our error messages
    return float(sklearn_f1(y, p, zero_division=0.0))


def best_f1_threshold(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> tuple[float, float]:
    """The threshold ``t`` that maximises the F1 of ``scores > t``: returns ``(t, f1)``.

    Every cut between two distinct score values is tried (``t`` is their midpoint; below the
    lowest score, everything is predicted positive). Choose ``t`` on training data and report
    ``f1_score(test_scores > t, test_labels)``: a detector's F1 depends on its threshold, and a
    sparse latent that is zero on most tokens needs a cut just above zero, not at 0.5.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = _binary_labels(labels, len(s))
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    n_pos = int(y.sum())
    if n_pos == 0:
        raise ValueError("labels have no positives; F1 is undefined")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(1 - y_sorted)
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # cut only after the last of a run of ties
    f1 = 2 * tp / (2 * tp + fp + (n_pos - tp))
    f1 = np.where(last, f1, -1.0)
    i = int(np.argmax(f1))
    t = (s_sorted[i] + s_sorted[i + 1]) / 2 if i + 1 < len(s_sorted) else s_sorted[i] - 1.0
    return float(t), float(f1[i])


# --------------------------------------------------------------------------- the concept judge
class ConceptJudge:
    """Logistic regression on the embeddings of an encoder: ``P(concept | text)``.

    >>> judge = ConceptJudge(tk.load_encoder()).fit(train_texts, train_labels)
    >>> judge.evaluate(test_texts, test_labels)      # held-out accuracy, also in judge.accuracy_
    >>> judge.score(generations)                     # np.ndarray of probabilities in [0, 1]

    ``encoder`` is any :class:`~toolkit.encoders.Encoder` (``.encode(list[str]) -> [n, dim]``);
    ``None`` uses ``tk.load_encoder()``, the small sentence encoder, at fit. Fitted attributes:
    ``encoder_`` (the encoder used; ``score`` embeds with it), ``classifier_``, ``train_accuracy_``,
    and after :meth:`evaluate`, ``accuracy_`` and ``auroc_``.
    """

    def __init__(self, encoder: Any = None, C: float = 1.0, random_state: int = 0) -> None:
        from .encoders import check_encoder

        if encoder is not None:
            check_encoder(encoder)
        self.encoder = encoder
        self.C = C
        self.random_state = random_state

    def _embed(self, encoder: Any, texts: list[str]) -> np.ndarray:
        from .encoders import encode

        # float32, as the sentence encoder returns it: the classifier sees the encoder's own numbers
        return encode(encoder, texts).astype(np.float32)

    def fit(self, texts: Sequence[str], labels: Sequence[int] | np.ndarray) -> "ConceptJudge":
        """Train on the concept's training split; returns self."""
        from sklearn.linear_model import LogisticRegression

        from .models import load_encoder

        texts = check_texts(texts, "texts", allow_single=False)
        encoder = self.encoder if self.encoder is not None else load_encoder()
        emb = self._embed(encoder, texts)
        y = _binary_labels(labels, len(emb))
        if y.min() == y.max():
            raise ValueError("the judge needs both classes in its training labels; got only one")
        C = check_number("C", self.C, minimum=0.0)
        if C == 0.0:
            raise ValueError("C must be a number > 0 (the inverse regularisation strength), got 0.0")
        self.classifier_ = LogisticRegression(C=C, max_iter=2000, random_state=self.random_state)
        self.classifier_.fit(emb, y)
        self.encoder_ = encoder
        self.train_accuracy_ = float(self.classifier_.score(emb, y))
        return self

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Probability that each text shows the concept (an empty list gives an empty array)."""
        self._check_fitted()
        if isinstance(texts, str):
            check_texts(texts, "texts", allow_single=False)  # refuses, naming the fix
        texts = list(texts)
        if len(texts) == 0:
            return np.zeros(0)
        # an empty generation has no concept; the encoder would still embed it somewhere
        texts = check_texts([t if not isinstance(t, str) or t.strip() else "." for t in texts], "texts",
                            allow_single=False)
        return self.classifier_.predict_proba(self._embed(self.encoder_, texts))[:, 1]

    def evaluate(self, texts: Sequence[str], labels: Sequence[int] | np.ndarray) -> float:
        """Held-out accuracy (stored as ``accuracy_``); also sets ``auroc_``."""
        p = self.score(texts)
        y = _binary_labels(labels, len(p))
        self.accuracy_ = float(((p > 0.5).astype(int) == y).mean())
        self.auroc_ = auroc(p, y) if 0 < y.sum() < len(y) else float("nan")
        return self.accuracy_

    def _check_fitted(self) -> None:
        if not hasattr(self, "classifier_"):
            raise RuntimeError("ConceptJudge is not fitted yet; call .fit(train_texts, train_labels) first")


# --------------------------------------------------------------------------- quality metrics
def repetition_rate(texts: Sequence[str] | str, n: int = 3) -> np.ndarray | float:
    """Share of word n-grams that repeat an earlier n-gram of the same text (0 = no loops).

    ``"a b c a b c a b c"`` with n=3 has 7 trigrams of which 4 are repeats: 0.571.
    Texts shorter than n words score 0. A single string returns a float.
    """
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    single = isinstance(texts, str)
    items = [texts] if single else check_texts(texts, allow_single=False, allow_empty=True, allow_blank=True)
    out = np.zeros(len(items))
    for j, text in enumerate(items):
        words = text.lower().split()
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        if grams:
            out[j] = 1.0 - len(set(grams)) / len(grams)
    return float(out[0]) if single else out


def generation_perplexity(model: Any, texts: Sequence[str], prompts: Sequence[str] | None = None,
                          batch_size: int = 16, chat: bool | None = None) -> np.ndarray:
    """Perplexity of each generated text under the unsteered ``model``: ``exp`` of its mean token loss.

    With ``prompts``, each continuation is scored in the context that produced it: the prompt as
    ``tk.generate`` formatted it (the chat template for an instruct model, as there; ``chat`` as in
    ``tk.generate``), followed directly by the text. Only the continuation's own tokens are averaged:
    the prompt's tokens are context, not something the method wrote (the G-SAE authors' evaluation
    masks the prompt the same way). Without ``prompts`` the whole text is scored on its own.
    Empty texts get NaN.
    """
    from .tracing import format_prompt, token_losses

    texts = check_texts(texts, allow_single=False, allow_empty=True, allow_blank=True)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if prompts is not None:
        prompts = check_texts(prompts, "prompts", allow_single=False, allow_empty=True, allow_blank=True)
        if len(prompts) != len(texts):
            raise ValueError(f"got {len(prompts)} prompts for {len(texts)} texts; they must pair up")
        contexts = [format_prompt(model, p, chat=chat) for p in prompts]
    else:
        contexts = [""] * len(texts)
    full = [c + t for c, t in zip(contexts, texts)]
    out = np.full(len(full), np.nan)
    keep = [i for i, t in enumerate(texts) if t.strip()]
    if prompts is not None and not getattr(model, "remote", False):
        # Many continuations share one prompt (a steering sweep scores every alpha after the same instruction):
        # run each context once and score its continuations on top of its cache. Rows whose tokens do not split
        # cleanly at the context's end take the general path below.
        keep = _shared_context_perplexity(model, contexts, full, keep, out, batch_size)
    for start in range(0, len(keep), batch_size):
        idx = keep[start : start + batch_size]
        losses = token_losses(model, [full[i] for i in idx], per_token=True)
        offsets = model.tokenizer([full[i] for i in idx], return_offsets_mapping=True)["offset_mapping"]
        for i, loss, spans in zip(idx, losses, offsets):
            # token j's loss is losses[j - 1]; a continuation token starts at or after the context's end
            # (a special token such as BOS has the empty span (0, 0) and is never one)
            cont = [j for j, (a, b) in enumerate(spans) if j >= 1 and b > a and a >= len(contexts[i])]
            if cont:
                out[i] = float(np.exp(loss[[j - 1 for j in cont]].double().mean()))
    return out


def _shared_context_perplexity(model: Any, contexts: list[str], full: list[str], rows: list[int], out: np.ndarray,
                               batch_size: int) -> list[int]:
    """Perplexity of ``full[i]``'s continuation after ``contexts[i]``, one forward pass per distinct context.

    The context is run once with the key-value cache on; each batch of its continuations then runs on a copy of
    that cache, so the context's tokens are not recomputed for every row. A row qualifies when tokenizing the
    whole text starts with exactly the context's tokens (the continuation's tokens are then the rest, as the
    general path counts them). Fills ``out`` for those rows and returns the rows left for the general path.
    """
    import copy

    import torch

    tok, hf = model.tokenizer, model.hf
    groups: dict[str, list[int]] = {}
    for i in rows:
        groups.setdefault(contexts[i], []).append(i)
    rest = []
    for context, idx in groups.items():
        ctx_ids = tok(context)["input_ids"]
        conts = {}
        for i in idx:
            ids = tok(full[i])["input_ids"]
            if len(ids) > model.max_length or ids[:len(ctx_ids)] != ctx_ids or len(ids) == len(ctx_ids) or not ctx_ids:
                rest.append(i)  # too long (the general path names it), or no clean split at the context's end
            else:
                conts[i] = ids[len(ctx_ids):]
        if not conts:
            continue
        with torch.no_grad():
            head = hf(input_ids=torch.tensor([ctx_ids], device=model.device), use_cache=True)
            last = head.logits[:, -1:].float()
            order = sorted(conts, key=lambda i: len(conts[i]))  # similar lengths together: little padding
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                width = max(len(conts[i]) for i in chunk)
                pad = tok.pad_token_id if tok.pad_token_id is not None else 0
                ids = torch.tensor([conts[i] + [pad] * (width - len(conts[i])) for i in chunk], device=model.device)
                real = torch.tensor([[1] * len(conts[i]) + [0] * (width - len(conts[i])) for i in chunk],
                                    device=model.device)
                cache = copy.deepcopy(head.past_key_values)
                cache.batch_repeat_interleave(len(chunk))
                mask = torch.cat([torch.ones(len(chunk), len(ctx_ids), dtype=real.dtype, device=model.device), real], 1)
                logits = hf(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True).logits.float()
                # token j of a continuation is predicted at position j - 1; the first one at the context's end
                pred = torch.cat([last.expand(len(chunk), 1, -1), logits[:, :-1]], dim=1)
                nll = -torch.log_softmax(pred, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
                if not torch.isfinite(nll[real.bool()]).all():
                    rest.extend(chunk)  # let the general path raise its error, naming the row
                    continue
                mean = (nll * real).sum(1).double() / real.sum(1)
                for r, i in enumerate(chunk):
                    out[i] = float(torch.exp(mean[r]))
    return sorted(rest)


# --------------------------------------------------------------------------- alpha sweeps
def alpha_sweep(
    generate_fn: Callable[[Sequence[str], float], list[str]],
    prompts: Sequence[str],
    alphas: Sequence[float],
    judge: ConceptJudge | None = None,
    model: Any = None,
    method: str = "steer",
    concept: str | None = None,
    perplexity_with_prompt: bool = True,
) -> pd.DataFrame:
    """Generate at each alpha and score every generation: one row per (alpha, prompt).

    ``generate_fn(prompts, alpha) -> list[str]`` does the steering, e.g.
    ``lambda p, a: tk.steer(model, p, sae=gsae, latent=0, layer=L, alpha=a)``.
    Columns: method, concept, alpha, prompt_id, prompt, text, concept_score (if a judge is
    given), perplexity (if a model is given), repetition, n_words.
    """
    prompts = check_texts(prompts, "prompts", allow_single=False)
    rows = []
    for alpha in alphas:
        texts = list(generate_fn(prompts, float(alpha)))
        if len(texts) != len(prompts):
            raise ValueError(f"generate_fn returned {len(texts)} texts for {len(prompts)} prompts at alpha={alpha}")
        frame = pd.DataFrame({
            "method": method,
            "concept": concept,
            "alpha": float(alpha),
            "prompt_id": np.arange(len(prompts)),
            "prompt": prompts,
            "text": texts,
        })
        if judge is not None:
            frame["concept_score"] = judge.score(texts)
        if model is not None:
            frame["perplexity"] = generation_perplexity(model, texts, prompts if perplexity_with_prompt else None)
        frame["repetition"] = repetition_rate(texts)
        frame["n_words"] = [len(t.split()) for t in texts]
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def summarize_sweep(df: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric per (method, concept, alpha); perplexity is averaged in log space."""
    metrics = [c for c in ("concept_score", "perplexity", "repetition", "n_words") if c in df.columns]
    keys = [k for k in ("method", "concept", "alpha") if k in df.columns and df[k].notna().any()]
    work = df.copy()
    if "perplexity" in work:
        work["perplexity"] = np.log(work["perplexity"])
    out = work.groupby(keys, sort=True)[metrics].mean().reset_index()
    if "perplexity" in out:
        out["perplexity"] = np.exp(out["perplexity"])
    return out


def fit_tradeoff(alphas: Sequence[float], concept: Sequence[float], quality: Sequence[float]) -> dict[str, float]:
    """Fit the RepE trade-off shape: concept ~ a + b*|alpha| (linear), quality ~ c + d*alpha^2.

    "Tradeoffs Between Alignment and Helpfulness in Language Models with Representation
    Engineering" predicts alignment growing about linearly with the steering norm and
    helpfulness falling about quadratically. Returns the coefficients and the R^2 of each fit
    (R^2 near 1 means the relation holds on this curve).
    """
    a = np.abs(np.asarray(alphas, dtype=np.float64))
    c = np.asarray(concept, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if not (len(a) == len(c) == len(q)):
        raise ValueError(f"alphas, concept and quality must have the same length; got {len(a)}, {len(c)}, {len(q)}")
    if len(np.unique(a)) < 3:
        raise ValueError(f"need at least 3 distinct |alpha| values to fit the trade-off, got {sorted(set(a))}")
    lin = np.polyfit(a, c, 1)
    quad = np.polyfit(a ** 2, q, 1)
    return {
        "concept_slope": float(lin[0]),
        "concept_intercept": float(lin[1]),
        "concept_r2": _r2(c, np.polyval(lin, a)),
        "quality_curvature": float(quad[0]),
        "quality_intercept": float(quad[1]),
        "quality_r2": _r2(q, np.polyval(quad, a ** 2)),
    }


def cost_at_shift(alphas: Sequence[float], concept: Sequence[float], quality: Sequence[float],
                  shift: float) -> float:
    """Quality at the alpha where the concept score first moves by ``shift`` from its alpha=0 value.

    The shift is signed: ``shift > 0`` asks where the score first *rises* by ``shift``, ``shift < 0``
    where it first *falls* by ``|shift|``; a move the other way does not count (a method that lowers
    the score has not raised it, however far it moved). Interpolates linearly between sweep points
    along increasing |alpha|; returns NaN when the sweep never reaches that shift (the method cannot
    move the concept that far in that direction).
    """
    a = np.asarray(alphas, dtype=np.float64)
    c = np.asarray(concept, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    order = np.argsort(np.abs(a))
    a, c, q = a[order], c[order], q[order]
    if not np.isclose(a[0], 0.0):
        raise ValueError("the sweep must include alpha=0 as the unsteered reference")
    shift = check_number("shift", shift)
    if shift == 0:
        raise ValueError("shift must be non-zero: positive for a rise of the concept score, negative for a fall")
    moved = (c - c[0]) * np.sign(shift)  # progress in the asked direction; a move the other way is negative
    target = abs(shift)
    for i in range(1, len(a)):
        if moved[i] >= target:
            lo, hi = moved[i - 1], moved[i]
            t = 1.0 if hi == lo else (target - lo) / (hi - lo)
            return float(q[i - 1] + t * (q[i] - q[i - 1]))
    return float("nan")


# --------------------------------------------------------------------------- helpers
def _r2(y: np.ndarray, fit: np.ndarray) -> float:
    ss_res = float(((y - fit) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


def _binary_labels(labels: Any, n: int) -> np.ndarray:
    y = as_numpy(labels, "labels").reshape(-1)
    if len(y) != n:
        raise ValueError(f"got {len(y)} labels for {n} samples; they must match")
    values = set(np.unique(y).tolist())
    if not values <= {0, 1, True, False, 0.0, 1.0}:
        raise ValueError(f"labels must be binary 0/1, got values {sorted(values)[:5]}")
    return y.astype(int)
