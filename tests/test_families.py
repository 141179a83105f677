"""Every verb on tiny random models of six architecture families, built from configs with no download.

The curriculum promises that the same notebook runs on any Hugging Face causal LM. These 2-block models
differ where the toolkit could go wrong: module paths (Llama/Qwen/Gemma vs GPT-2 vs GPT-NeoX), BOS, tied
embeddings, and Gemma 2's final-logit soft-capping, which the logit lens must apply too.
"""
from __future__ import annotations

import pytest
import torch

import toolkit as tk

FAMILIES = ["llama", "qwen2", "gemma2", "gemma3", "gpt2", "gpt_neox"]
TEXTS = ["The quick brown fox jumps", "A cat", "Tell me a short story about the sea"]


def _config(family: str, vocab: int):
    import transformers as tf

    common = dict(vocab_size=vocab, num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                  max_position_embeddings=128)
    return {
        "llama": lambda: tf.LlamaConfig(num_key_value_heads=2, **common),
        "qwen2": lambda: tf.Qwen2Config(num_key_value_heads=2, **common),
        # soft-capping small enough to bite on random logits, so a lens that forgot it would differ
        "gemma2": lambda: tf.Gemma2Config(num_key_value_heads=2, head_dim=8, final_logit_softcapping=0.5,
                                          sliding_window=16, **common),
        "gemma3": lambda: tf.Gemma3TextConfig(num_key_value_heads=2, head_dim=8, sliding_window=16, **common),
        "gpt2": lambda: tf.GPT2Config(vocab_size=vocab, n_layer=2, n_embd=32, n_head=4, n_positions=128),
        "gpt_neox": lambda: tf.GPTNeoXConfig(**common),
    }[family]()


@pytest.fixture(scope="module")
def tokenizer():
    """The embedded SmolLM2 tokenizer (no download), with and without a BOS token in front."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tk.models.embedded_model_dir())


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request, tokenizer, tmp_path_factory):
    import transformers as tf

    family = request.param
    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(_config(family, len(tokenizer)))
    folder = tmp_path_factory.mktemp(family)
    hf.save_pretrained(folder)
    tok = tokenizer
    if family in ("gemma2", "gemma3"):  # these families add BOS, as the real ones do
        tok = _with_bos(tokenizer)
    tok.save_pretrained(folder)
    model = tk.load_model(str(folder), device="cpu", dtype="float32")
    assert (model.n_layers, model.d_model) == (2, 32)
    assert model.adds_bos == (family in ("gemma2", "gemma3"))
    return family, model


def _with_bos(tokenizer):
    """A copy of ``tokenizer`` that puts a BOS token in front of every text, as Gemma's tokenizer does."""
    import copy

    from tokenizers import processors

    tok = copy.deepcopy(tokenizer)
    tok.bos_token = tokenizer.eos_token
    bos = (tok.bos_token, tok.bos_token_id)
    tok._tokenizer.post_processor = processors.TemplateProcessing(single=f"{bos[0]} $A", pair=f"{bos[0]} $A $B",
                                                                  special_tokens=[bos])
    return tok


def test_activations_one_layer_several_layers_every_reduce(tiny):
    family, model = tiny
    acts = tk.get_activations(model, TEXTS, layer=1)
    n_tokens = sum(len(model.tokenizer(t).input_ids) - int(model.adds_bos) for t in TEXTS)
    assert acts.rows.shape == (n_tokens, 32) and acts.n_texts == 3
    assert sorted(set(acts.text_id.tolist())) == [0, 1, 2]
    both = tk.get_activations(model, TEXTS, layer=[0, 1])
    torch.testing.assert_close(both[1].rows, acts.rows)
    for reduce in ("mean", "last", "max"):
        pooled = tk.get_activations(model, TEXTS, layer=1, reduce=reduce)
        assert pooled.shape == (3, 32), (family, reduce)
        assert torch.isfinite(pooled).all()


def test_final_block_logit_lens_equals_the_logits(tiny):
    family, model = tiny
    text = TEXTS[0]
    with model.nn.trace(text):
        last = model.block(model.n_layers - 1).output.save()
    hidden = last[0] if isinstance(last, tuple) else last
    lens = model.unembed(hidden[0, -1:].float())[0]
    torch.testing.assert_close(lens, tk.logits(model, [text])[0].float(), atol=1e-4, rtol=1e-4)
    if family == "gemma2":
        assert lens.abs().max() <= 0.5 + 1e-6  # the soft cap was applied


def test_token_losses_and_generation(tiny):
    family, model = tiny
    losses = tk.token_losses(model, TEXTS[:2])
    assert all(torch.isfinite(torch.as_tensor(l)).all() for l in losses)
    outs = tk.generate(model, TEXTS[:2], max_new_tokens=4, chat=False)
    assert len(outs) == 2 and all(isinstance(o, str) for o in outs)


def test_steering_alpha_zero_is_identity_and_alpha_changes_generation(tiny):
    family, model = tiny
    g = torch.Generator().manual_seed(1)
    v = torch.randn(32, generator=g)
    plain = tk.generate(model, TEXTS, max_new_tokens=6, chat=False)
    swept = tk.steer(model, TEXTS, v, layer=0, alpha=[0.0, 50.0], max_new_tokens=6, chat=False)
    assert swept[0.0] == plain
    assert swept[50.0] != plain, family


def test_sae_training_and_ce_recovered(tiny):
    family, model = tiny
    acts = tk.get_activations(model, TEXTS * 20, layer=0).rows
    sae = tk.TopKSAE(32, 64, k=4)
    history = tk.train_sae(sae, acts, steps=30, batch_size=32, random_state=0, progress=False)
    assert history["fvu"].iloc[-1] < history["fvu"].iloc[0]
    ce = tk.ce_loss_recovered(model, sae, TEXTS, 0, mean_act=acts.mean(0))
    assert set(ce) >= {"recovered_mean"} and torch.isfinite(torch.tensor(float(ce["recovered_mean"])))


def test_the_logit_lens_runs_inside_the_trace_and_ends_at_the_logits(tiny):
    family, model = tiny
    lens = tk.logit_lens(model, TEXTS)
    assert lens.shape == (3, 2, model.hf.config.vocab_size) or lens.shape[:2] == (3, 2)
    torch.testing.assert_close(lens[:, -1], tk.logits(model, TEXTS), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(tk.logit_lens(model, TEXTS[1], layers=[0])[0, 0], lens[1, 0], atol=1e-4, rtol=1e-4)


def test_every_verb_works_without_reading_local_weights(tiny, monkeypatch):
    """What NDIF needs: no verb touches the local module outside nnsight's trace (on NDIF there is none)."""
    family, model = tiny
    acts = tk.get_activations(model, TEXTS * 10, layer=0).rows  # computed first: the SAE below trains on them
    sae = tk.TopKSAE(32, 64, k=4)
    tk.train_sae(sae, acts, steps=5, batch_size=32, random_state=0, progress=False)

    def no_local_weights(self):
        raise AssertionError("a verb read the local module (Model.hf), which a remote model does not have")

    monkeypatch.setattr(type(model), "hf", property(no_local_weights))
    monkeypatch.setattr(type(model), "unembed", lambda self, resid: no_local_weights(self))
    tk.get_activations(model, TEXTS, layer=[0, 1], reduce="mean")
    tk.logits(model, TEXTS)
    tk.token_losses(model, TEXTS)
    tk.generate(model, TEXTS[:1], max_new_tokens=2, chat=False)
    tk.steer(model, TEXTS[:1], torch.ones(32), layer=0, alpha=[0.0, 1.0], max_new_tokens=2, chat=False)
    tk.logit_lens(model, TEXTS[:1])
    tk.ce_loss_recovered(model, sae, TEXTS, 0, mean_act=acts.mean(0))
    good = ["help people", "tell the truth", "share food", "thank a friend"]
    bad = ["hurt people", "tell lies", "steal food", "insult a friend"]
    md = tk.MoralDirection(tk.ResidualEncoder(model, layer=1), pooling="action").fit(
        actions={**{a: 1 for a in good}, **{a: -1 for a in bad}}, templates=["Should I {}?"])
    assert md.score(["help a child"]).shape == (1,)
