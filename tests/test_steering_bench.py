"""The AxBench-style steering benchmark: scores, buckets, the aggregate, the protocol and the plug-in interface."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import toolkit as tk
from toolkit.steering_bench import CUTS, FluencyScorer, RelevanceScorer


# ---------------------------------------------------------------- buckets and the aggregate
def test_bucket_cut_points_are_inclusive_from_below():
    got = tk.bucket([-1.0, 0.0, 0.999, 1.0, 2.0, 5.0, np.nan], (1.0, 2.0))
    assert got.tolist() == [0, 0, 0, 1, 2, 2, 0]


def test_bucket_refuses_decreasing_cuts():
    with pytest.raises(ValueError, match="increasing"):
        tk.bucket([0.5], (2.0, 1.0))


def test_harmonic_aggregate_matches_hand_values_and_the_zero_rule():
    got = tk.harmonic_aggregate([2, 1, 2, 0, 1], [2, 2, 1, 2, 1], [2, 2, 2, 2, 1])
    assert np.allclose(got, [2.0, 1.5, 1.5, 0.0, 1.0])
    # an arithmetic mean would give 5/3 for (1, 2, 2); the harmonic mean is 1.5
    assert not np.isclose(tk.harmonic_aggregate([1], [2], [2])[0], 5 / 3)


def test_harmonic_aggregate_checks_its_input():
    with pytest.raises(ValueError, match="at least two"):
        tk.harmonic_aggregate([1, 2])
    with pytest.raises(ValueError, match="non-negative"):
        tk.harmonic_aggregate([1, -1], [1, 1])


def test_cut_points_are_the_documented_ones():
    # the notebook's table and data/grades/README.md state these; a silent change must show up here
    assert CUTS["concept"] == (1 / 3, 2 / 3)
    assert CUTS["relevance"] == (2.0, 4.0)
    assert np.isclose(CUTS["fluency"][0], -np.log(4.0)) and CUTS["fluency"][1] == 0.0


# ---------------------------------------------------------------- relevance
class _BagOfWords:
    """A deterministic encoder for tests: word counts over a fixed vocabulary."""

    def __init__(self, vocab):
        self.vocab = {w: i for i, w in enumerate(vocab)}

    def encode(self, texts):
        out = np.zeros((len(texts), len(self.vocab)))
        for r, t in enumerate(texts):
            for w in t.lower().replace(".", "").split():
                if w in self.vocab:
                    out[r, self.vocab[w]] += 1
        return out + 0.01  # no all-zero rows


TOPICS = ["bikes wheels tyres", "plants water soil", "trains tracks stations", "music guitar chords",
          "money bills savings", "sleep night rest"]
VOCAB = sorted({w for t in TOPICS for w in t.split()})


def _pairs():
    instructions = [f"Explain {t}." for t in TOPICS]
    answers = [f"{t} {t.split()[0]}" for t in TOPICS]
    return instructions, answers


def test_relevance_scores_matched_answers_far_above_random_pairings():
    ins, ans = _pairs()
    scorer = RelevanceScorer(_BagOfWords(VOCAB)).fit(ins, ans)
    z = scorer.score(ins, ans)
    shuffled = scorer.score(ins, ans[1:] + ans[:1])
    assert (z > 2).all() and (shuffled < 2).all(), (z, shuffled)
    assert scorer.matched_mean_ > 2
    assert scorer.grade(ins, ans).tolist() == tk.bucket(z, CUTS["relevance"]).tolist()


def test_relevance_scorer_errors_name_the_problem():
    ins, ans = _pairs()
    with pytest.raises(RuntimeError, match="not fitted"):
        RelevanceScorer(_BagOfWords(VOCAB)).score(ins, ans)
    with pytest.raises(ValueError, match="at least 3 matched"):
        RelevanceScorer(_BagOfWords(VOCAB)).fit(ins[:2], ans[:2])
    scorer = RelevanceScorer(_BagOfWords(VOCAB)).fit(ins, ans)
    with pytest.raises(ValueError, match="pair up"):
        scorer.score(ins, ans[:-1])


# ---------------------------------------------------------------- the protocol, on the embedded model
class _WordJudge:
    """A fixed 'judge' for tests: the share of words that are in a set (deterministic, no training)."""

    def __init__(self, words):
        self.words = set(words)

    def score(self, texts):
        return np.array([np.mean([w.strip(".,!?").lower() in self.words for w in t.split()]) if t.split() else 0.0
                         for t in texts])


INSTRUCTIONS = ["Describe your morning routine in two sentences.", "Explain how a library lends books.",
                "Give three tips for staying focused while studying.", "Describe a walk through a quiet park.",
                "Explain why sleep matters for health.", "Suggest an activity for a rainy afternoon with children."]


@pytest.fixture(scope="module")
def bench(model):
    refs = ["The sea was calm.", "Mum is folding towels for the guests.", "We spent the day in town.",
            "I regret to inform you that the meeting has been postponed.", "The train was late again.",
            "She planted tomatoes in the spring."]
    return tk.SteeringBench(model, INSTRUCTIONS, max_new_tokens=4, random_state=3).fit(refs)


@pytest.fixture(scope="module")
def fit_data(model):
    texts = ["The waves crashed on the shore.", "The sea was calm and blue.", "Fish swim in the ocean.",
             "The office was quiet.", "The meeting ran late.", "He paid the bills."]
    return tk.get_activations(model, texts, layer=model.n_layers // 2), np.array([1, 1, 1, 0, 0, 0])


def test_halves_split_the_instructions(bench):
    assert len(bench.select_) == len(bench.report_) == 3
    assert sorted(bench.select_ + bench.report_) == sorted(INSTRUCTIONS)
    assert set(bench.unsteered_) == set(INSTRUCTIONS)  # every instruction's unsteered answer, generated once


def test_batched_settings_equal_each_setting_run_alone(bench, model, fit_data):
    acts, y = fit_data
    layer = model.n_layers // 2
    m = tk.VectorSteering("DiffMean", lambda X, y_: X[y_ == 1].mean(0) - X[y_ == 0].mean(0), layer=layer,
                          factors=[0.0, 0.5])
    m.fit(acts, y, "ocean")
    prompt = tk.PromptSteering({"ocean": "Talk about the sea."}).fit(acts, y, "ocean")
    outs = bench.generate([(m, 0.0), (m, 0.5), (prompt, 1.0)], bench.select_)
    assert outs[0] == [bench.unsteered_[p] for p in bench.select_]  # factor 0 is the cached unsteered answer
    alone = tk.steer(model, bench.select_, vector=m.vector_, layer=layer, alpha=0.5, max_new_tokens=4)
    assert outs[1] == alone
    assert outs[2] == tk.generate(model, [f"{p} Talk about the sea." for p in bench.select_], max_new_tokens=4)


def test_run_chooses_on_the_selection_half_and_reports_on_the_other(bench, model, fit_data):
    acts, y = fit_data
    layer = model.n_layers // 2
    methods = [tk.PromptSteering({"ocean": "Talk about the sea."}),
               tk.VectorSteering("DiffMean", lambda X, y_: X[y_ == 1].mean(0) - X[y_ == 0].mean(0), layer=layer,
                                 factors=[0.0, 0.3])]
    judge = _WordJudge(["sea", "ocean", "waves", "water", "fish", "beach", "shore"])
    rows = bench.run(methods, "ocean", acts, y, judge)
    sel, rep = rows[rows["half"] == "select"], rows[rows["half"] == "report"]
    assert set(sel["instruction"]) == set(bench.select_) and set(rep["instruction"]) == set(bench.report_)
    assert len(sel) == 3 * 3 and len(rep) == 2 * 3  # (1 + 2 factors) x 3, then one factor per method x 3
    means = sel[sel["method"] == "DiffMean"].groupby("factor")["aggregate"].mean()
    best = means[means == means.max()].index.min()  # ties go to the smaller factor
    assert set(rep[rep["method"] == "DiffMean"]["factor"]) == {best}
    assert rows.loc[rows["chosen"], "factor"].groupby(rows["method"]).nunique().eq(1).all()
    assert np.allclose(rows["aggregate"], tk.harmonic_aggregate(rows["concept"], rows["relevance"], rows["fluency"]))
    table = tk.steering_summary(rows)
    assert list(table["method"]) == ["prompting", "DiffMean"] and (table["n"] == 3).all()


def test_a_plugin_method_gets_its_rows(bench, model, fit_data):
    acts, y = fit_data

    class Random(tk.SteeringMethod):
        name = "random direction"
        factors = (0.2,)

        def fit(self, acts_, labels, concept):
            self.v_ = torch.randn(acts_.width, generator=torch.Generator().manual_seed(0))
            return self

        def edit(self, factor):
            return tk.steering_edit(layer=model.n_layers // 2, alpha=factor, vector=self.v_)

    rows = bench.run([Random()], "ocean", acts, y, _WordJudge(["sea"]))
    assert set(rows["method"]) == {"random direction"} and (rows["factor"] == 0.2).all()


def test_run_refuses_bad_methods(bench, fit_data):
    acts, y = fit_data
    a = tk.PromptSteering({"ocean": "x"})
    with pytest.raises(ValueError, match="names repeat"):
        bench.run([a, tk.PromptSteering({"ocean": "y"})], "ocean", acts, y, _WordJudge(["sea"]))
    with pytest.raises(KeyError, match="no request for concept 'cooking'"):
        bench.run([a], "cooking", acts, y, _WordJudge(["sea"]))
    empty = tk.VectorSteering("none", lambda X, y_: X[0], layer=1, factors=[])
    with pytest.raises(ValueError, match="factors is empty"):
        bench.run([empty], "ocean", acts, y, _WordJudge(["sea"]))


def test_bench_checks_its_instructions(model):
    with pytest.raises(ValueError, match="at least 6"):
        tk.SteeringBench(model, INSTRUCTIONS[:4])
    with pytest.raises(ValueError, match="repeat"):
        tk.SteeringBench(model, INSTRUCTIONS[:5] + INSTRUCTIONS[:1])
    with pytest.raises(RuntimeError, match="not fitted"):
        tk.SteeringBench(model, INSTRUCTIONS).score(["a"], ["b"], _WordJudge(["a"]))


def test_fluency_grade_caps_loops(model):
    scorer = FluencyScorer(model)
    scorer.reference_ = 100.0  # every text counts as fluent by perplexity: only the repetition cap can lower it
    texts = ["The park was quiet and the trees were green.", "the sea the sea the sea the sea the sea the sea",
             "I like it a lot a lot and more"]
    g = scorer.grade(["Describe a walk."] * 3, texts)
    assert g.tolist() == [2, 0, 2]
