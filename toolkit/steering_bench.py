"""Steering methods compared the way AxBench does it (Wu et al. 2025), offline and on a CPU.

The protocol, adapted so that no LLM judge is needed:

- **Instructions** are split in two halves. Each method's steering factor is chosen on the *selection* half and
  its scores are reported on the *report* half, so a method is not rewarded for a factor that happened to suit
  the prompts it is scored on.
- **Three scores per output**, each bucketed to 0, 1 or 2 at fixed, documented cut points (:data:`CUTS`):

  * *concept*: an independent judge's probability that the output shows the concept. The judge is a logistic
    regression on a sentence encoder's embeddings (``tk.ConceptJudge``), trained on the concept's labelled
    sentences. It never sees the language model's activations, so it is not the direction being steered.
  * *relevance*: the encoder's cosine between the instruction and the output, as a z-score against random
    pairings of instructions and unsteered outputs (how far above an unrelated answer the output sits).
  * *fluency*: the output's log-perplexity under the *unsteered* model after its instruction, measured against
    fluent reference sentences scored the same way; outputs that loop (repeated word trigrams) are capped.

- **Aggregate**: the harmonic mean of the three buckets per output, 0 if any of them is 0 (AxBench's rule: an
  output that ignores the instruction, or is not fluent, or lacks the concept, has failed).

A method is a :class:`SteeringMethod`: ``fit`` on a concept's labelled activations, then ``edit(factor)`` gives the
intervention (a ``tk.Edit``) or ``prompt(instruction)`` rewrites the prompt. Everything the benchmark needs is in
those three methods, so a new method gets its row in the same tables with one call to :meth:`SteeringBench.run`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from .validation import check_int, check_texts

__all__ = ["CUTS", "bucket", "harmonic_aggregate", "RelevanceScorer", "FluencyScorer", "SteeringMethod",
           "VectorSteering", "SAESteering", "PromptSteering", "SteeringBench", "steering_summary"]

#: Cut points of the three scores (fixed before any steering was run, and kept the same on every model):
#: a value below the first cut is bucket 0, from the first to the second is 1, at or above the second is 2.
CUTS: dict[str, tuple[float, float]] = {
    # the judge's probability, in thirds: "no", "unsure", "yes"
    "concept": (1 / 3, 2 / 3),
    # z-score of the instruction-output cosine against random pairings: below 2 an unrelated answer reaches it
    # in about 1 case in 40; 4 is far outside what chance gives
    "relevance": (2.0, 4.0),
    # nats of log-perplexity below the 90th percentile of fluent reference sentences (0 = as predictable as
    # them; -log 4 = four times as perplexing)
    "fluency": (-math.log(4.0), 0.0),
}
#: Share of repeated word trigrams above which an output is capped at fluency 1, and above which it is 0.
REPETITION_CAPS = (0.25, 0.5)


def bucket(values: Any, cuts: tuple[float, float]) -> np.ndarray:
    """0, 1 or 2 per value: below ``cuts[0]``, from ``cuts[0]`` to ``cuts[1]``, at or above ``cuts[1]``. NaN is 0."""
    lo, hi = (float(c) for c in cuts)
    if not lo <= hi:
        raise ValueError(f"cuts must be increasing (low, high), got {cuts!r}")
    v = np.asarray(values, dtype=np.float64)
    out = (v >= lo).astype(np.int64) + (v >= hi).astype(np.int64)
    out[np.isnan(v)] = 0
    return out


def harmonic_aggregate(*scores: Any) -> np.ndarray:
    """Per-row harmonic mean of several non-negative scores, 0 where any of them is 0 (AxBench's aggregate)."""
    if len(scores) < 2:
        raise ValueError(f"give at least two score arrays to aggregate, got {len(scores)}")
    S = np.stack([np.asarray(s, dtype=np.float64).reshape(-1) for s in scores])
    if (S < 0).any() or np.isnan(S).any():
        raise ValueError("scores must be non-negative numbers (NaN is not a score)")
    out = np.zeros(S.shape[1])
    ok = (S > 0).all(axis=0)
    out[ok] = S.shape[0] / (1.0 / S[:, ok]).sum(axis=0)
    return out


def _cosines(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    A = A / np.linalg.norm(A, axis=1, keepdims=True).clip(1e-12)
    B = B / np.linalg.norm(B, axis=1, keepdims=True).clip(1e-12)
    return A @ B.T


class RelevanceScorer:
    """Instruction-output similarity in a sentence encoder, calibrated against random pairings.

    ``fit(instructions, outputs)`` takes matched pairs (the unsteered model's answers) and builds the null: every
    *mismatched* pair (instruction ``i`` with the answer to instruction ``j != i``). :meth:`score` gives the
    z-score of a pair's cosine against that null, :meth:`grade` its bucket. Fitted: ``null_mean_``,
    ``null_std_``, ``matched_mean_`` (the z of the matched unsteered pairs, a sanity check: far above 0).
    """

    def __init__(self, encoder: Any = None, cuts: tuple[float, float] = CUTS["relevance"]) -> None:
        self.encoder = encoder
        self.cuts = cuts

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        from .encoders import encode

        texts = [t if t.strip() else "." for t in texts]  # an empty answer is unrelated, not an error
        return np.asarray(encode(self.encoder_, texts), dtype=np.float64)

    def fit(self, instructions: Sequence[str], outputs: Sequence[str]) -> "RelevanceScorer":
        from .models import load_encoder

        instructions = check_texts(instructions, "instructions", allow_single=False)
        outputs = check_texts(outputs, "outputs", allow_single=False, allow_empty=True, allow_blank=True)
        if len(instructions) != len(outputs) or len(instructions) < 3:
            raise ValueError(f"fit needs at least 3 matched (instruction, output) pairs, got {len(instructions)} "
                             f"instructions and {len(outputs)} outputs")
        self.encoder_ = self.encoder if self.encoder is not None else load_encoder()
        C = _cosines(self._embed(instructions), self._embed(outputs))
        off = C[~np.eye(len(C), dtype=bool)]
        self.null_mean_, self.null_std_ = float(off.mean()), float(off.std(ddof=1))
        if not self.null_std_ > 0:
            raise ValueError("every mismatched pair has the same cosine: the null has no spread to calibrate against")
        self.matched_mean_ = float(((np.diag(C) - self.null_mean_) / self.null_std_).mean())
        return self

    def score(self, instructions: Sequence[str], outputs: Sequence[str]) -> np.ndarray:
        if not hasattr(self, "null_mean_"):
            raise RuntimeError("RelevanceScorer is not fitted yet; call .fit(instructions, unsteered_outputs) first")
        instructions = check_texts(instructions, "instructions", allow_single=False)
        outputs = check_texts(outputs, "outputs", allow_single=False, allow_empty=True, allow_blank=True)
        if len(instructions) != len(outputs):
            raise ValueError(f"got {len(instructions)} instructions for {len(outputs)} outputs; they must pair up")
        a, b = self._embed(instructions), self._embed(outputs)
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)).clip(1e-12)
        return (cos - self.null_mean_) / self.null_std_

    def grade(self, instructions: Sequence[str], outputs: Sequence[str]) -> np.ndarray:
        return bucket(self.score(instructions, outputs), self.cuts)


class FluencyScorer:
    """Log-perplexity under the unsteered model, in the output's own context, against fluent reference text.

    ``fit(instructions, references)`` scores fluent, human-written sentences (e.g. a concept data set's test
    sentences) as answers to the given instructions and keeps the 90th percentile of their log-perplexity,
    ``reference_``. :meth:`score` is ``reference_ - log ppl`` (nats; 0 or more reads as fluent as those
    sentences, higher is better), :meth:`grade` buckets it and caps outputs that loop (:data:`REPETITION_CAPS`).
    """

    def __init__(self, model: Any, cuts: tuple[float, float] = CUTS["fluency"],
                 repetition_caps: tuple[float, float] = REPETITION_CAPS) -> None:
        self.model = model
        self.cuts = cuts
        self.repetition_caps = repetition_caps

    def log_perplexity(self, instructions: Sequence[str], outputs: Sequence[str]) -> np.ndarray:
        from .evaluate import generation_perplexity

        return np.log(generation_perplexity(self.model, list(outputs), list(instructions)))

    def fit(self, instructions: Sequence[str], references: Sequence[str]) -> "FluencyScorer":
        references = check_texts(references, "references", allow_single=False)
        instructions = check_texts(instructions, "instructions", allow_single=False)
        if len(instructions) != len(references) or len(references) < 5:
            raise ValueError(f"fit needs at least 5 (instruction, reference) pairs, got {len(instructions)} and "
                             f"{len(references)}")
        lp = self.log_perplexity(instructions, references)
        self.reference_ = float(np.quantile(lp[np.isfinite(lp)], 0.9, method="inverted_cdf"))
        return self

    def score(self, instructions: Sequence[str], outputs: Sequence[str]) -> np.ndarray:
        if not hasattr(self, "reference_"):
            raise RuntimeError("FluencyScorer is not fitted yet; call .fit(instructions, reference_sentences) first")
        return self.reference_ - self.log_perplexity(instructions, outputs)  # an empty output is NaN: bucket 0

    def grade(self, instructions: Sequence[str], outputs: Sequence[str], score: np.ndarray | None = None) -> np.ndarray:
        from .evaluate import repetition_rate

        g = bucket(self.score(instructions, outputs) if score is None else score, self.cuts)
        rep = repetition_rate(list(outputs))
        g = np.where(rep >= self.repetition_caps[0], np.minimum(g, 1), g)
        return np.where(rep >= self.repetition_caps[1], 0, g)


# --------------------------------------------------------------------------- methods
class SteeringMethod:
    """One steering method: ``fit`` on labelled activations, then an intervention per steering factor.

    Subclass it and override what your method needs:

    - ``fit(acts, labels, concept)``: ``acts`` is a ``tk.Activations`` of the concept's training sentences at
      the steering layer, ``labels`` one 0/1 per sentence, ``concept`` its name. Store what you learn in
      attributes ending in ``_`` and return ``self``.
    - ``edit(factor)``: the ``tk.Edit`` that steers with this strength, or ``None`` for no edit.
    - ``prompt(instruction)``: the prompt the model sees (default: the instruction itself).

    ``name`` labels the method's rows, ``factors`` are the steering strengths the benchmark chooses from.
    """

    name: str = "steering method"
    factors: Sequence[float] = (1.0,)

    def fit(self, acts: Any, labels: Any, concept: str) -> "SteeringMethod":
        return self

    def edit(self, factor: float) -> Any:
        return None

    def prompt(self, instruction: str) -> str:
        return instruction

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, factors={list(self.factors)})"


def _pooled(acts: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    X = acts.pool("mean")
    X = X.numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    y = np.asarray(labels).reshape(-1)
    if len(y) != len(X):
        raise ValueError(f"got {len(y)} labels for {len(X)} sentences; give one 0/1 label per sentence")
    if not np.isin(y, (0, 1)).all() or len(np.unique(y)) < 2:
        raise ValueError("labels must be 0/1 with both classes present")
    return X.astype(np.float64), y.astype(np.int64)


def _per_concept(value: Any, concept: str, what: str) -> Any:
    if isinstance(value, Mapping):
        if concept not in value:
            raise KeyError(f"no {what} for concept {concept!r}; this method has one for {sorted(value)}")
        return value[concept]
    return value


class VectorSteering(SteeringMethod):
    """Add a direction computed from the sentence-mean activations: ``direction(X, y) -> vector [d_model]``.

    The edit is ``tk.steering_edit(vector=..., alpha=factor)``: ``factor * ||x|| * v / ||v||`` at every position.
    """

    def __init__(self, name: str, direction: Callable[[np.ndarray, np.ndarray], Any], *, layer: int,
                 factors: Sequence[float]) -> None:
        self.name, self.direction, self.layer, self.factors = name, direction, layer, tuple(factors)

    def fit(self, acts: Any, labels: Any, concept: str) -> "VectorSteering":
        X, y = _pooled(acts, labels)
        v = torch.as_tensor(np.asarray(self.direction(X, y), dtype=np.float32)).reshape(-1)
        if v.numel() != X.shape[1] or not torch.isfinite(v).all() or float(v.norm()) == 0.0:
            raise ValueError(f"{self.name}: direction() must return a finite, non-zero vector of length {X.shape[1]}")
        self.vector_ = v
        return self

    def edit(self, factor: float) -> Any:
        from .steering import steering_edit

        return steering_edit(layer=self.layer, alpha=factor, vector=self.vector_)


class SAESteering(SteeringMethod):
    """Steer with an SAE latent: ``tk.steering_edit(sae=..., latent=..., alpha=factor, gamma=...)``.

    ``sae`` and ``latent`` may be mappings from concept name to value (a SCAR per concept, a G-SAE's reserved
    latent per concept). ``latent=None`` searches: the latent whose sentence mean has the best AUROC on the
    training sentences (``tk.best_latent``), stored in ``latent_``.
    """

    def __init__(self, name: str, sae: Any, *, layer: int, factors: Sequence[float], latent: Any = None,
                 gamma: str = "one") -> None:
        self.name, self.sae, self.layer, self.factors = name, sae, layer, tuple(factors)
        self.latent, self.gamma = latent, gamma

    def fit(self, acts: Any, labels: Any, concept: str) -> "SAESteering":
        from .evaluate import best_latent

        self.sae_ = _per_concept(self.sae, concept, "SAE")
        latent = _per_concept(self.latent, concept, "latent")
        if latent is None:
            _, y = _pooled(acts, labels)
            with torch.no_grad():
                codes = acts.pool("mean", self.sae_.encode(acts.rows).numpy())
            latent, _ = best_latent(np.asarray(codes), y)
        self.latent_ = int(latent)
        return self

    def edit(self, factor: float) -> Any:
        from .steering import steering_edit

        return steering_edit(layer=self.layer, alpha=factor, sae=self.sae_, latent=self.latent_, gamma=self.gamma)


class PromptSteering(SteeringMethod):
    """Ask for the concept in the prompt: ``"{instruction} {request}"``; no edit (AxBench's prompting baseline)."""

    factors = (1.0,)

    def __init__(self, requests: Mapping[str, str], name: str = "prompting") -> None:
        self.requests, self.name = dict(requests), name

    def fit(self, acts: Any, labels: Any, concept: str) -> "PromptSteering":
        self.request_ = _per_concept(self.requests, concept, "request")
        return self

    def prompt(self, instruction: str) -> str:
        return f"{instruction} {self.request_}"


# --------------------------------------------------------------------------- the benchmark
def _identity(h: torch.Tensor) -> torch.Tensor:
    return h


class SteeringBench:
    """Run steering methods on one model with AxBench's protocol: choose the factor on one half, report on the other.

    >>> bench = tk.SteeringBench(model, instructions, max_new_tokens=24).fit(reference_sentences)
    >>> rows = bench.run([tk.VectorSteering("DiffMean", diffmean, layer=L, factors=[0.1, 0.2])],
    ...                  "ocean", acts, labels, judge)
    >>> tk.steering_summary(rows)

    ``fit`` generates the unsteered answers to every instruction once (they calibrate the relevance score and are
    reused), and fits the fluency reference. Fitted: ``select_`` and ``report_`` (the two halves of the
    instructions, split by ``random_state``), ``unsteered_``, ``relevance_``, ``fluency_``.
    """

    def __init__(self, model: Any, instructions: Sequence[str], *, max_new_tokens: int = 32, encoder: Any = None,
                 random_state: int = 0, batch_size: int = 64) -> None:
        self.model = model
        self.instructions = check_texts(instructions, "instructions", allow_single=False)
        if len(self.instructions) < 6:
            raise ValueError(f"need at least 6 instructions (two halves of 3), got {len(self.instructions)}")
        if len(set(self.instructions)) != len(self.instructions):
            raise ValueError("instructions repeat; each must appear once (a repeat would sit in both halves)")
        self.max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
        self.encoder = encoder
        self.random_state = check_int("random_state", random_state, minimum=0)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)

    def fit(self, references: Sequence[str]) -> "SteeringBench":
        from .tracing import generate

        order = np.random.default_rng(self.random_state).permutation(len(self.instructions))
        half = len(order) // 2
        self.select_ = [self.instructions[i] for i in sorted(order[:half])]
        self.report_ = [self.instructions[i] for i in sorted(order[half:2 * half])]
        outs = generate(self.model, self.instructions, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size)
        self.unsteered_ = dict(zip(self.instructions, outs))
        self.relevance_ = RelevanceScorer(self.encoder).fit(self.instructions, outs)
        references = check_texts(references, "references", allow_single=False)
        paired = [self.instructions[i % len(self.instructions)] for i in range(len(references))]
        self.fluency_ = FluencyScorer(self.model).fit(paired, references)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "unsteered_"):
            raise RuntimeError("SteeringBench is not fitted yet; call .fit(reference_sentences) first")

    def generate(self, settings: Sequence[tuple[SteeringMethod, float]], instructions: Sequence[str]) -> list[list[str]]:
        """The outputs of every (method, factor) on ``instructions``, from one batched generation.

        Rows without an edit or prompt change are the cached unsteered answers. Edits are grouped by (layer, site):
        each group is one per-text edit that applies a setting's function to its rows and leaves the rest alone.
        """
        from .steering import _PerText
        from .tracing import Edit, generate

        self._check_fitted()
        n = len(instructions)
        plans = []
        for method, factor in settings:
            edit = method.edit(factor)
            prompts = [method.prompt(p) for p in instructions]
            plans.append((edit, prompts))
        todo = [j for j, (edit, prompts) in enumerate(plans) if edit is not None or prompts != list(instructions)]
        results: list[list[str]] = [[self.unsteered_[p] for p in instructions] for _ in plans]
        if not todo:
            return results
        groups: dict[tuple[int, str], list[Any]] = {}
        for b, j in enumerate(todo):
            edit = plans[j][0]
            if edit is not None:
                groups.setdefault((edit.layer, edit.site), [_identity] * len(todo))[b] = edit.fn
        edits = [Edit(layer=layer, fn=_PerText(fns, n), site=site) for (layer, site), fns in groups.items()]
        texts = generate(self.model, [p for j in todo for p in plans[j][1]], max_new_tokens=self.max_new_tokens,
                         edits=edits or None, batch_size=self.batch_size)
        for b, j in enumerate(todo):
            results[j] = texts[b * n:(b + 1) * n]
        return results

    def score(self, instructions: Sequence[str], outputs: Sequence[str], judge: Any) -> pd.DataFrame:
        """The three scores, their buckets and the aggregate, one row per output (instructions are the neutral ones)."""
        self._check_fitted()
        p = judge.score(list(outputs))
        rel = self.relevance_.score(instructions, outputs)
        flu = self.fluency_.score(instructions, outputs)
        frame = pd.DataFrame({"instruction": list(instructions), "output": list(outputs), "judge": p,
                              "relevance_z": rel, "fluency_nats": flu,
                              "concept": bucket(p, CUTS["concept"]), "relevance": bucket(rel, CUTS["relevance"]),
                              "fluency": self.fluency_.grade(instructions, outputs, score=flu)})
        frame["aggregate"] = harmonic_aggregate(frame["concept"], frame["relevance"], frame["fluency"])
        return frame

    def _scored(self, settings: Sequence[tuple[SteeringMethod, float]], instructions: list[str], judge: Any) -> pd.DataFrame:
        """Generate every setting on ``instructions`` and score all outputs in one call: the perplexity pass then
        runs each instruction's context once for all of its settings."""
        outs = self.generate(settings, instructions)
        frame = self.score([p for _ in settings for p in instructions], [t for o in outs for t in o], judge)
        frame["method"] = [m.name for m, _ in settings for _ in instructions]
        frame["factor"] = [f for _, f in settings for _ in instructions]
        return frame

    def run(self, methods: Sequence[SteeringMethod], concept: str, acts: Any, labels: Any, judge: Any) -> pd.DataFrame:
        """Fit every method on ``(acts, labels)``, choose each one's factor on the selection half (best mean
        aggregate; a tie goes to the smaller factor), and score it at that factor on the report half.

        Returns one row per output: ``half`` ("select" or "report"), ``method``, ``target`` (the concept),
        ``factor``, ``chosen`` and the columns of :meth:`score`.
        """
        self._check_fitted()
        names = [m.name for m in methods]
        if len(set(names)) != len(names):
            raise ValueError(f"method names repeat ({names}); each labels its own rows")
        for m in methods:
            if not list(m.factors):
                raise ValueError(f"{m.name}: factors is empty; give at least one steering strength")
            m.fit(acts, labels, concept)
        settings = [(m, float(f)) for m in methods for f in m.factors]
        select = self._scored(settings, self.select_, judge).assign(half="select")
        means = select.groupby(["method", "factor"])["aggregate"].mean().reset_index()
        means["size"] = means["factor"].abs()
        best = (means.sort_values(["method", "aggregate", "size"], ascending=[True, False, True])
                .groupby("method").head(1).set_index("method")["factor"])
        chosen = [(m, float(best[m.name])) for m in methods]
        out = pd.concat([select, self._scored(chosen, self.report_, judge).assign(half="report")], ignore_index=True)
        out["chosen"] = out["factor"] == out["method"].map(best)
        out.insert(0, "target", concept)
        return out


def steering_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Report-half means per (target, method): chosen factor, the three buckets and the aggregate."""
    rep = rows[rows["half"] == "report"]
    if rep.empty:
        raise ValueError("no report-half rows: pass the frame SteeringBench.run returned")
    return (rep.groupby(["target", "method"], sort=False)
            .agg(factor=("factor", "first"), concept=("concept", "mean"), relevance=("relevance", "mean"),
                 fluency=("fluency", "mean"), aggregate=("aggregate", "mean"), judge=("judge", "mean"),
                 n=("aggregate", "size"))
            .reset_index())
