"""The tracing verbs on the embedded model: shapes, padding, BOS, edits and error messages."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import toolkit as tk

TEXTS = ["The Eiffel Tower is in Paris.", "Hi", "A much longer sentence, with commas, that pads the others."]


def test_token_rows_match_the_index_and_exclude_padding(model):
    acts = tk.get_activations(model, TEXTS, layer=3)
    index = acts.index
    lengths = [len(model.tokenizer(t).input_ids) for t in TEXTS]
    assert acts.shape == (sum(lengths), model.d_model)
    assert list(index.groupby("text_id").size()) == lengths
    assert index.token_id.tolist() == [i for t in TEXTS for i in model.tokenizer(t).input_ids]


def test_batching_and_padding_do_not_change_activations(model):
    batched = tk.get_activations(model, TEXTS, layer=5, batch_size=3).rows
    alone = torch.cat([tk.get_activations(model, [t], layer=5).rows for t in TEXTS])
    torch.testing.assert_close(batched, alone, atol=2e-4, rtol=1e-3)


def test_reductions(model):
    acts = tk.get_activations(model, TEXTS, layer=2)
    mean = tk.get_activations(model, TEXTS, layer=2, reduce="mean")
    last = tk.get_activations(model, TEXTS, layer=2, reduce="last")
    biggest = tk.get_activations(model, TEXTS, layer=2, reduce="max")
    assert mean.shape == last.shape == biggest.shape == (3, model.d_model)
    for t in range(3):
        rows = torch.tensor((acts.text_id == t) & ~acts.sink)  # sinks stay out of the mean and max
        torch.testing.assert_close(mean[t], acts.rows[rows].mean(0))
        torch.testing.assert_close(biggest[t], acts.rows[rows].max(0).values)
        torch.testing.assert_close(last[t], acts.rows[rows][-1])


def test_activations_equal_the_plain_transformers_hidden_states(model):
    enc = model.tokenizer(TEXTS[0], return_tensors="pt")
    with torch.no_grad():
        ref = model.hf(**enc, output_hidden_states=True).hidden_states[8][0]
    torch.testing.assert_close(tk.get_activations(model, TEXTS[0], layer=7).rows, ref, atol=1e-4, rtol=1e-4)


def test_generate_is_greedy_and_answers_paris(model):
    out = tk.generate(model, ["What is the capital of France? Answer in one word."], max_new_tokens=8)
    assert "Paris" in out[0]
    assert out == tk.generate(model, ["What is the capital of France? Answer in one word."], max_new_tokens=8)


def test_identity_edit_changes_nothing_and_a_zeroing_edit_does(model):
    prompt = ["Name a colour."]
    plain = tk.generate(model, prompt, max_new_tokens=6)
    assert tk.generate(model, prompt, max_new_tokens=6, edits=[tk.Edit(10, lambda h: h)]) == plain
    assert tk.generate(model, prompt, max_new_tokens=6, edits=[tk.Edit(10, lambda h: 0 * h)]) != plain


def test_token_losses_and_logits(model):
    losses = tk.token_losses(model, ["The cat sat on the mat.", "mat the on sat cat The."])
    assert losses.shape == (2,) and losses[0] < losses[1]
    ablated = tk.token_losses(model, ["The cat sat on the mat."], edits=[tk.Edit(15, lambda h: torch.zeros_like(h))])
    assert ablated[0] > losses[0] + 1.0
    top = tk.logits(model, ["The capital of France is"]).argmax(-1)
    assert model.tokenizer.decode(top).strip() == "Paris"


def test_logit_lens_at_the_last_layer_equals_the_model_logits(model):
    text = "The capital of France is"
    resid = tk.get_activations(model, text, layer=model.n_layers - 1, reduce="last")
    lens = model.unembed(resid)
    torch.testing.assert_close(lens[0], tk.logits(model, text)[0], atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("layer", [30, -31, 100])
def test_layer_out_of_range_names_the_valid_range(model, layer):
    with pytest.raises(IndexError, match=r"0\.\.29"):
        tk.get_activations(model, ["hello"], layer=layer)


def test_empty_and_bad_inputs(model):
    with pytest.raises(ValueError, match="empty"):
        tk.get_activations(model, [], layer=0)
    with pytest.raises(ValueError, match="empty"):
        tk.generate(model, [])
    with pytest.raises(ValueError, match="reduce"):
        tk.get_activations(model, ["a"], layer=0, reduce="sum")
    with pytest.raises(TypeError, match="strings"):
        tk.get_activations(model, ["a", 3], layer=0)
    with pytest.raises(ValueError, match="site"):
        tk.Edit(0, lambda h: h, site="attn")
    with pytest.raises(ValueError, match="site"):
        tk.get_activations(model, ["a"], layer=0, site="attn")
    with pytest.raises(ValueError, match="context"):
        tk.get_activations(model, ["word " * (model.max_length + 10)], layer=0)


# -- several layers in one pass, token spans, and step-by-step decoding (used by toolkit.decoding) --

def test_get_activations_many_layers_equal_single_layer_calls(model):
    texts = ["Should I kill people?", "Is it ok to smile at my friend?", "May I eat?"]
    many = tk.get_activations(model, texts, layer=[7, 2], reduce="mean")
    assert set(many) == {2, 7}
    for L in (2, 7):
        torch.testing.assert_close(many[L], tk.get_activations(model, texts, layer=L, reduce="mean"))


def test_get_activations_spans_keep_only_the_action_tokens(model):
    texts = ["Should I kill people?", "Is it ok to smile?"]
    spans = [(9, 20), (12, 17)]  # "kill people", "smile"
    rows = tk.get_activations(model, texts, layer=3, spans=spans)
    assert [t.strip("Ġ") for t in rows.index.token] == ["kill", "people", "smile"]
    full = tk.get_activations(model, texts, layer=3)
    keep = (full.text_id == 0) & np.isin(full.position, [2, 3])
    torch.testing.assert_close(rows[:2], full[keep])
    with pytest.raises(ValueError, match="spans has 1 entries"):
        tk.get_activations(model, texts, layer=3, spans=[(0, 3)])
    with pytest.raises(ValueError, match=r"spans\[1\]"):
        tk.get_activations(model, texts, layer=3, spans=[(0, 3), (5, 99)])


def test_step_decoder_greedy_equals_generate_and_the_uncached_path(model):
    from toolkit.decoding import StepDecoder

    prompts = ["I hate my neighbor, so tonight I am going to", "The weather today"]
    cached, full = StepDecoder(model, prompts), StepDecoder(model, prompts)
    for _ in range(6):
        logits = cached.logits()
        full._logits = full._remote_step()  # the path a remote model takes: re-read every sequence
        torch.testing.assert_close(logits, full.logits(), atol=1e-3, rtol=1e-3)
        nxt = logits.argmax(-1).tolist()
        cached.append(nxt)
        full.append(nxt)
    assert [model.tokenizer.decode(n) for n in cached.new_ids] == tk.generate(model, prompts, max_new_tokens=6, chat=False)
    cached.logits()
    with pytest.raises(ValueError, match="one token per sequence"):
        cached.append([1])
