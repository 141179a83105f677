"""toolkit.evaluate: detection metrics, the concept judge, repetition, sweeps and trade-off fits."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import toolkit as tk
from sklearn.metrics import roc_auc_score

from toolkit.evaluate import (
    ConceptJudge,
    alpha_sweep,
    auroc,
    best_f1_threshold,
    best_latent,
    cost_at_shift,
    f1_score,
    fit_tradeoff,
    latent_aurocs,
    repetition_rate,
    summarize_sweep,
)


class WordEncoder:
    """A deterministic stand-in for the sentence encoder: counts of a few marker words."""

    vocab = ("thou", "thee", "hath", "doth", "you", "the", "idiot", "please")

    def encode(self, texts):
        return np.array([[t.lower().split().count(w) for w in self.vocab] for t in texts], dtype=np.float32)


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    x = np.round(rng.normal(size=(300, 5)) + y[:, None] * np.array([0, 0.5, 1, -1, 2]), 1)
    ours = latent_aurocs(x, y)
    ref = [roc_auc_score(y, x[:, j]) for j in range(5)]
    assert np.allclose(ours, ref)
    assert auroc(x[:, 4], y) == pytest.approx(ref[4])


def test_best_latent_prefers_rising_latents():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    x = rng.normal(size=(400, 6))
    x[:, 2] += 1.5 * y  # rises with the concept
    x[:, 4] -= 3.0 * y  # falls with it: a better separator, but not a detector of presence
    idx, score = best_latent(x, y)
    assert idx == 2 and score > 0.8


def test_auroc_errors():
    with pytest.raises(ValueError, match="both classes"):
        auroc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="binary"):
        auroc([0.1, 0.2, 0.3], [0, 1, 2])
    with pytest.raises(ValueError, match="labels"):
        latent_aurocs(np.zeros((3, 2)), [0, 1])


def test_repetition_rate():
    assert repetition_rate("a b c a b c a b c", n=3) == pytest.approx(4 / 7)
    assert repetition_rate("the cat sat on the mat", n=3) == 0.0
    assert repetition_rate("short", n=3) == 0.0
    out = repetition_rate(["x y x y x y", "one two three four"], n=2)
    assert out[0] == pytest.approx(3 / 5) and out[1] == 0.0
    with pytest.raises(ValueError):
        repetition_rate(["a"], n=0)


def test_judge_fits_scores_and_reports_accuracy():
    train = ["thou hath", "thee doth thou", "hath thee", "doth thou"] * 5 + ["you the", "please you", "the you the", "you please"] * 5
    y = [1] * 20 + [0] * 20
    judge = ConceptJudge(encoder=WordEncoder()).fit(train, y)
    acc = judge.evaluate(["thou doth", "you please the"], [1, 0])
    assert acc == 1.0 and judge.accuracy_ == 1.0
    p = judge.score(["thee thou hath", "please the you", ""])
    assert p[0] > 0.5 > p[1]
    with pytest.raises(RuntimeError, match="fit"):
        ConceptJudge(encoder=WordEncoder()).score(["x"])
    with pytest.raises(ValueError, match="both classes"):
        ConceptJudge(encoder=WordEncoder()).fit(["a", "b"], [1, 1])
    with pytest.raises(TypeError, match="single string"):
        judge.score("thou")
    assert judge.score([]).shape == (0,)
    assert isinstance(judge.encoder_, WordEncoder)  # fitted attribute: the encoder score embeds with
    with pytest.raises(TypeError, match="encoder"):
        ConceptJudge(encoder="all-MiniLM-L6-v2")
    with pytest.raises(ValueError, match="C must be"):
        ConceptJudge(encoder=WordEncoder(), C=0).fit(train, y)


def test_judge_default_encoder_is_the_sentence_encoder(encoder):
    texts = ["I love this, thank you so much", "what a wonderful day",
             "I hate you, get lost", "this is awful garbage"] * 3
    judge = ConceptJudge(random_state=0).fit(texts, [1, 1, 0, 0] * 3)
    assert judge.encoder is None and judge.encoder_ is encoder  # the constructor argument is left as given
    assert judge.score(["thank you, lovely"])[0] > 0.5


def test_alpha_sweep_is_tidy():
    judge = ConceptJudge(encoder=WordEncoder()).fit(["thou thee"] * 5 + ["you the"] * 5, [1] * 5 + [0] * 5)

    def fake_generate(prompts, alpha):
        n = max(0, int(round(alpha * 4)))
        return [" ".join(["thou"] * n + ["you", "the"]) for _ in prompts]

    df = alpha_sweep(fake_generate, ["p1", "p2", "p3"], [0.0, 0.5, 1.0], judge=judge, method="fake", concept="sp")
    assert list(df.columns[:6]) == ["method", "concept", "alpha", "prompt_id", "prompt", "text"]
    assert len(df) == 9 and set(df["alpha"]) == {0.0, 0.5, 1.0}
    summary = summarize_sweep(df)
    assert summary["concept_score"].is_monotonic_increasing
    assert len(summary) == 3


def test_alpha_sweep_checks_generate_fn():
    with pytest.raises(ValueError, match="returned 1 texts for 2 prompts"):
        alpha_sweep(lambda p, a: ["x"], ["a", "b"], [0.0])


def test_fit_tradeoff_recovers_planted_shape():
    a = np.array([0.0, 0.5, 1.0, 1.5, 2.0, -0.5, -1.0])
    concept = 0.1 + 0.3 * np.abs(a)
    quality = 5.0 - 0.8 * a ** 2
    fit = fit_tradeoff(a, concept, quality)
    assert fit["concept_slope"] == pytest.approx(0.3)
    assert fit["quality_curvature"] == pytest.approx(-0.8)
    assert fit["concept_r2"] == pytest.approx(1.0) and fit["quality_r2"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="3 distinct"):
        fit_tradeoff([0, 1, -1], [0, 1, 1], [1, 0, 0])


def test_cost_at_shift_interpolates():
    a = [0.0, 1.0, 2.0]
    c = [0.2, 0.4, 0.8]
    q = [10.0, 12.0, 20.0]
    assert cost_at_shift(a, c, q, 0.2) == pytest.approx(12.0)
    assert cost_at_shift(a, c, q, 0.4) == pytest.approx(16.0)
    assert np.isnan(cost_at_shift(a, c, q, 0.9))
    with pytest.raises(ValueError, match="alpha=0"):
        cost_at_shift([1.0, 2.0, 3.0], c, q, 0.1)


def test_summarize_averages_perplexity_in_log_space():
    df = pd.DataFrame({"method": "m", "alpha": [0.0, 0.0], "perplexity": [10.0, 1000.0], "concept_score": [0, 1]})
    out = summarize_sweep(df)
    assert out["perplexity"].iloc[0] == pytest.approx(100.0)


def test_f1_score_matches_sklearn():
    from sklearn.metrics import f1_score as sk_f1

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = rng.random(200) < 0.4
    assert f1_score(p, y) == pytest.approx(sk_f1(y, p))
    assert f1_score([0, 0], [0, 0]) == 0.0
    with pytest.raises(ValueError, match="labels"):
        f1_score([1, 0], [1, 0, 1])


def test_best_f1_threshold_is_optimal_and_handles_ties():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    scores = np.where(rng.random(300) < 0.5, 0.0, rng.random(300) + y)  # a sparse latent: many exact zeros
    t, f1 = best_f1_threshold(scores, y)
    assert f1 == pytest.approx(f1_score(scores > t, y))
    brute = max(f1_score(scores > c, y) for c in np.r_[np.unique(scores), -1.0])
    assert f1 == pytest.approx(brute)
    t, f1 = best_f1_threshold([0, 0, 0, 0.3, 0.9, 0.8], [0, 0, 1, 1, 1, 1])
    assert 0.0 < t < 0.3 and f1 == pytest.approx(6 / 7)  # the cut goes just above the zeros
    with pytest.raises(ValueError, match="no positives"):
        best_f1_threshold([0.1, 0.2], [0, 0])


def test_cost_at_shift_is_signed():
    """A rise is asked with a positive shift, a fall with a negative one; a move the other way does not count."""
    a = [0.0, 1.0, 2.0]
    falling = [0.8, 0.5, 0.1]
    q = [10.0, 12.0, 20.0]
    assert np.isnan(cost_at_shift(a, falling, q, 0.2))  # the score fell: it never rose by 0.2
    assert cost_at_shift(a, falling, q, -0.3) == pytest.approx(12.0)
    assert cost_at_shift(a, falling, q, -0.5) == pytest.approx(16.0)  # halfway from a fall of 0.3 to 0.7
    with pytest.raises(ValueError, match="non-zero"):
        cost_at_shift(a, falling, q, 0.0)


def test_generation_perplexity_scores_only_the_continuation_in_its_generation_context(model):
    """The continuation is scored after the prompt exactly as tk.generate formatted it (the chat template for
    an instruct model), and only the continuation's tokens are averaged."""
    import toolkit as tk

    prompt, text = "Describe your morning in two sentences.", " I woke up early and made some coffee."
    from toolkit.tracing import format_prompt

    context = format_prompt(model, prompt)
    losses = tk.token_losses(model, [context + text], per_token=True)[0].double()
    n_ctx = len(model.tokenizer(context).input_ids)
    n_full = len(model.tokenizer(context + text).input_ids)
    expected = float(np.exp(losses[n_ctx - 1:].mean()))
    assert n_full - n_ctx == len(losses[n_ctx - 1:]) > 3
    got = tk.generation_perplexity(model, [text], [prompt])[0]
    # rel 1e-4: a continuation scored on the prompt's key-value cache differs from a whole pass by float32 rounding
    assert got == pytest.approx(expected, rel=1e-4)
    # the plausible wrong answers: averaging the prompt's tokens too, or scoring without the generation context
    assert got != pytest.approx(float(np.exp(losses.mean())), rel=1e-3)
    plain = tk.generation_perplexity(model, [f"{prompt}{text}"], None)[0]
    assert got != pytest.approx(plain, rel=1e-3)
    # empty continuations get NaN, and the prompts must pair with the texts
    assert np.isnan(tk.generation_perplexity(model, ["", text], [prompt, prompt])[0])
    with pytest.raises(ValueError, match="pair up"):
        tk.generation_perplexity(model, [text, text], [prompt])


def test_pearson_ci_covers_the_population_value():
    """Across repeated samples from a population with rho = 0.5, the 95% interval covers 0.5 most of the time,
    and it narrows as the sample grows."""
    rng = np.random.default_rng(0)
    cov = [[1.0, 0.5], [0.5, 1.0]]
    covered, widths = 0, {}
    for trial in range(40):
        x, y = rng.multivariate_normal([0, 0], cov, size=80).T
        r, lo, hi = tk.pearson_ci(x, y, n_resamples=500, random_state=trial)
        assert lo <= r <= hi
        covered += lo <= 0.5 <= hi
        widths.setdefault(80, []).append(hi - lo)
    assert covered >= 34  # 95% nominal; 34/40 leaves room for BCa's small-sample error and chance
    x, y = rng.multivariate_normal([0, 0], cov, size=640).T
    _, lo, hi = tk.pearson_ci(x, y, n_resamples=500)
    assert hi - lo < np.mean(widths[80]) / 2  # 8x the items: about a third of the width


def test_pearson_difference_ci_is_paired_and_signed():
    rng = np.random.default_rng(1)
    y = rng.normal(size=150)
    good, worse = y + 0.7 * rng.normal(size=150), y + 2.0 * rng.normal(size=150)
    d, lo, hi = tk.pearson_difference_ci(good, worse, y)
    assert lo > 0 and d > 0
    d2, lo2, hi2 = tk.pearson_difference_ci(worse, good, y)
    assert d2 == pytest.approx(-d) and hi2 < 0
    with pytest.raises(ValueError, match="one value per item"):
        tk.pearson_difference_ci(good, worse[:-1], y)
    with pytest.raises(ValueError, match="at least 4"):
        tk.pearson_ci([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])


def test_generation_perplexity_shared_context_path_matches_the_general_one(model, monkeypatch):
    # Continuations that share a prompt are scored on the prompt's cache; the numbers must be those of the plain
    # path, which runs every (prompt + continuation) whole.
    import toolkit.evaluate as ev

    prompts = ["Describe a walk through a quiet park.", "Explain how a library lends books."] * 3 + ["Say hi."]
    texts = ["The trees were tall and green", "A library keeps", "We walked and walked and walked",
             "Books go out on loan for three weeks.", "", "  ", "Hello there!"]
    fast = tk.generation_perplexity(model, texts, prompts)
    monkeypatch.setattr(ev, "_shared_context_perplexity", lambda m, c, f, rows, out, bs: rows)
    slow = tk.generation_perplexity(model, texts, prompts)
    assert np.isnan(fast[[4, 5]]).all() and np.isnan(slow[[4, 5]]).all()  # empty continuations have no perplexity
    ok = ~np.isnan(slow)
    assert np.allclose(np.log(fast[ok]), np.log(slow[ok]), atol=1e-4), (fast, slow)
