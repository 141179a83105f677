"""The Activations result: pooling, labels per token, the one sink rule, subsets and the cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import toolkit as tk
from toolkit.activations import SINK_FACTOR, Activations, sink_mask, sink_positions

TEXTS = ["The cat sat on the mat.", "Paris is the capital of France.", "Hi", "Call me at 555-0199 tomorrow."]


def synthetic(norms_per_text: list[list[float]], width: int = 4) -> Activations:
    """Rows along the first axis with the given norms, one list per text."""
    text_id = np.concatenate([np.full(len(n), t) for t, n in enumerate(norms_per_text)])
    position = np.concatenate([np.arange(len(n)) for n in norms_per_text])
    rows = torch.zeros(len(text_id), width)
    rows[:, 0] = torch.tensor([v for n in norms_per_text for v in n])
    rows[:, 1] = torch.arange(len(text_id), dtype=torch.float32) * 1e-3  # distinguishable rows
    return Activations.from_rows(rows, text_id, position, np.arange(len(text_id)), len(norms_per_text))


def test_the_sink_rule_flags_massive_rows_wherever_they_are():
    # text 0: a sink first (no BOS); text 1: a massive token mid-text (a BOS model, BOS already dropped);
    # text 2: two tokens, one massive (the lower median is the ordinary one); text 3: one token, never flagged
    acts = synthetic([[100.0, 1.0, 1.2, 0.9], [1.0, 1.1, 80.0, 0.8, 1.0], [50.0, 1.0], [70.0]])
    assert acts.sink.tolist() == [True, False, False, False, False, False, True, False, False, True, False, False]
    # exactly at the factor is not a sink, just above is
    edge = sink_mask(np.array([1.0, 1.0, SINK_FACTOR, SINK_FACTOR * 1.01]), np.array([0, 0, 0, 1]))
    assert edge.tolist() == [False, False, False, False]
    assert sink_mask(np.array([1.0, 1.0, SINK_FACTOR * 1.01]), np.array([0, 0, 0])).tolist() == [False, False, True]
    with pytest.raises(ValueError, match="factor"):
        sink_mask(np.array([1.0]), np.array([0]), factor=0.5)


def test_inside_a_forward_pass_the_same_rule_flags_the_same_positions():
    acts = synthetic([[100.0, 1.0, 1.2, 0.9], [1.0, 1.1, 80.0, 0.8]])
    h = acts.rows.reshape(2, 4, -1)  # the two texts as a batch [batch, pos, d]
    assert sink_positions(h).flatten().tolist() == acts.sink.tolist()


def test_the_sink_rule_depends_on_the_text_only_not_on_its_batch():
    one = synthetic([[100.0, 1.0, 1.2]])
    together = synthetic([[100.0, 1.0, 1.2], [500.0, 499.0, 498.0]])
    assert one.sink.tolist() == together.sink[:3].tolist()


def test_pooling_matches_a_hand_computation_and_leaves_sinks_out():
    acts = synthetic([[100.0, 1.0, 3.0], [2.0, 4.0]])
    mean = acts.pool("mean")
    torch.testing.assert_close(mean[0], acts.rows[1:3].mean(0))
    torch.testing.assert_close(acts.pool("mean", drop_sinks=False)[0], acts.rows[0:3].mean(0))
    torch.testing.assert_close(acts.pool("max")[0], acts.rows[1:3].max(0).values)
    torch.testing.assert_close(acts.pool("last")[1], acts.rows[4])
    latents = np.arange(10, dtype=np.float32).reshape(5, 2)  # any per-row values, e.g. SAE latents
    pooled = acts.pool("mean", latents)
    assert isinstance(pooled, np.ndarray) and pooled.tolist() == [[3.0, 4.0], [7.0, 8.0]]
    with pytest.raises(ValueError, match="n_rows=5"):
        acts.pool("mean", np.zeros((4, 2)))
    with pytest.raises(ValueError, match="how"):
        acts.pool("median")
    with pytest.raises(ValueError, match="text 1 has no rows"):
        acts.select(acts.text_id == 0).pool("mean")


def test_spread_and_subsets_keep_rows_and_labels_together():
    acts = synthetic([[1.0, 2.0], [3.0], [4.0, 5.0, 6.0]])
    assert acts.spread([7, 8, 9]).tolist() == [7, 7, 8, 9, 9, 9]
    with pytest.raises(ValueError, match="got 2 labels for 3 texts"):
        acts.spread([1, 2])
    sub = acts.texts([2, 0])
    assert sub.n_texts == 2 and sub.text_id.tolist() == [0, 0, 0, 1, 1]
    torch.testing.assert_close(sub.rows[:, 0], torch.tensor([4.0, 5.0, 6.0, 1.0, 2.0]))
    with pytest.raises(IndexError, match="0..2"):
        acts.texts([3])
    both = acts.concat(acts)
    assert both.n_texts == 6 and both.text_id.tolist()[6:] == [3, 3, 4, 5, 5, 5]
    assert len(acts.select([0, 5])) == 2 and acts[np.array([True, False, False, False, False, True])].shape == (2, 4)


def test_real_model_activations_carry_the_token_index(model):
    acts = tk.get_activations(model, TEXTS, layer=model.n_layers // 2)
    ids = [model.tokenizer(t).input_ids[(1 if model.adds_bos else 0):] for t in TEXTS]
    assert acts.token_id.tolist() == [i for t in ids for i in t]
    assert acts.n_texts == len(TEXTS) and acts.index.token.notna().all()
    # the middle block of a model without BOS: the first token of each multi-token text is the sink
    if not model.adds_bos:
        first = acts.position == 0
        multi = np.bincount(acts.text_id)[acts.text_id] > 1
        assert acts.sink[first & multi].all()
    # a per-text pooled row equals pooling that text alone (the rule does not depend on the batch)
    alone = tk.get_activations(model, TEXTS[1], layer=model.n_layers // 2).pool("mean")
    torch.testing.assert_close(acts.pool("mean")[1], alone[0], atol=2e-4, rtol=1e-3)


def test_span_labels_agree_with_the_pii_token_labels(model):
    ds = tk.load_concepts("pii").select(range(12))
    acts = tk.get_activations(model, ds["text"], layer=2)
    labels = acts.span_labels(ds["text"], ds["spans"])
    ref = tk.pii_token_labels(model.tokenizer, ds)
    assert labels.tolist() == [v for row in ref["labels"] for v in row]
    assert 0 < labels.mean() < 1
    with pytest.raises(ValueError, match="are these the texts"):
        acts.span_labels(list(reversed(ds["text"])), list(reversed(ds["spans"])))


def test_cache_returns_the_activations_without_sinks(model, tmp_path):
    layer = model.n_layers // 2
    cached = tk.cache_activations(model, TEXTS, layer, cache_dir=tmp_path, progress=False)
    direct = tk.get_activations(model, TEXTS, layer=layer).without_sinks()
    torch.testing.assert_close(cached.rows, direct.rows, atol=2e-4, rtol=1e-3)
    assert cached.text_id.tolist() == direct.text_id.tolist() and cached.position.tolist() == direct.position.tolist()
    assert not cached.sink.any() and cached.n_texts == len(TEXTS)
    # a budget keeps the first rows in order and never runs texts it does not need
    small = tk.cache_activations(model, TEXTS, layer, max_tokens=9, cache_dir=tmp_path, progress=False)
    assert len(small) == 9 and small.position.tolist() == direct.position[:9].tolist()
    # from disk, in a fresh process's view: the in-memory copy is dropped, the file is read
    from toolkit import data
    data._MEMORY.clear()
    again = tk.cache_activations(model, TEXTS, layer, cache_dir=tmp_path, progress=False)
    torch.testing.assert_close(again.rows, cached.rows)
    assert again.sink.dtype == bool and again.index.token.tolist() == cached.index.token.tolist()
