"""Hostile inputs to the tracing verbs and steering: non-finite edits, non-finite activations, argument checks.

Each test failed on the earlier toolkit.tracing / toolkit.steering: a NaN edit or alpha=1e30 made
``generate`` return '' and ``token_losses`` return nan, ``steer(layer=-1)`` was refused, ``layer=2.0``
failed with "'float' object is not iterable", and ``max_new_tokens=2.5`` / ``alpha="0.5"`` were accepted.
"""
from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

import toolkit as tk
from toolkit.steering import steering_edit
from toolkit.decoding import StepDecoder

PROMPT = ["Name a colour."]
TEXTS = ["The cat sat on the mat.", "A zebra runs across the plain.", "Hello there."]


def make_nan(h):
    return h * float("nan")


def make_inf(h):
    return h + float("inf")


@contextmanager
def poisoned(param: torch.Tensor, index, value: float = float("nan")):
    """Temporarily set one weight entry of the shared model (restored whatever happens)."""
    old = param.data[index].clone()
    param.data[index] = value
    try:
        yield
    finally:
        param.data[index] = old


# --------------------------------------------------------------------------- 1. non-finite edits
def test_nan_edit_in_generate_names_the_edit(model):
    with pytest.raises(ValueError, match=r"tk\.Edit\(layer=5, site='resid', fn=make_nan\) made the activations "
                                         r"non-finite \(NaN\) at decoding step 0"):
        tk.generate(model, PROMPT, max_new_tokens=3, edits=[tk.Edit(5, make_nan)])


def test_nan_edit_in_token_losses_and_inf_in_logits(model):
    with pytest.raises(ValueError, match=r"layer=3, site='mlp', fn=make_nan\) made the activations non-finite \(NaN\)"):
        tk.token_losses(model, TEXTS[:2], edits=[tk.Edit(3, make_nan, site="mlp")])
    with pytest.raises(ValueError, match=r"layer=29, site='resid', fn=make_inf\) made the activations non-finite \(inf\)"):
        tk.logits(model, TEXTS[:1], edits=[tk.Edit(-1, make_inf)])


def test_a_lambda_edit_is_named_by_layer_and_site(model):
    with pytest.raises(ValueError, match=r"tk\.Edit\(layer=4, site='resid'\) made the activations non-finite"):
        tk.token_losses(model, TEXTS[:1], edits=[tk.Edit(4, lambda h: h / 0.0 * 0.0)])


def test_huge_alpha_is_refused_instead_of_generating_nothing(model):
    # alpha=1e30 stays finite in the edit, but the next RMSNorm's x**2 overflows: the logits were all
    # zero and generate returned ''
    v = torch.ones(model.d_model)
    with pytest.raises(ValueError, match=r"fn=steering\(alpha=1e\+30, width 576\)\) made activations as large as .* "
                                         r"at decoding step 0"):
        tk.steer(model, PROMPT, vector=v, layer=5, alpha=1e30, max_new_tokens=3)
    with pytest.raises(ValueError, match=r"made activations as large as"):
        tk.token_losses(model, TEXTS[:1], edits=[steering_edit(layer=5, alpha=1e30, vector=v)])


def test_step_decoder_refuses_a_nan_edit(model):
    with pytest.raises(ValueError, match=r"fn=make_nan\) made the activations non-finite \(NaN\) \(step decoding, step 0\)"):
        StepDecoder(model, ["Hello there", "Hi"], edits=[tk.Edit(4, make_nan)]).logits()


def test_non_finite_logits_are_refused(model):
    # a broken model (NaN in the final norm): the edit itself is fine, the logits are not
    with poisoned(model.hf.model.norm.weight, 0):
        with pytest.raises(ValueError, match=r"logits became non-finite at decoding step 0 .* with edits "
                                             r"tk\.Edit\(layer=5, site='resid'\)"):
            tk.generate(model, PROMPT, max_new_tokens=2, edits=[tk.Edit(5, lambda h: h)])
        with pytest.raises(ValueError, match=r"logits are non-finite at position 0 of row 0 .* without edits"):
            tk.token_losses(model, TEXTS[:1])
    assert torch.isfinite(tk.token_losses(model, TEXTS[:1])).all()  # restored


def test_edit_returning_a_non_tensor_is_named(model):
    with pytest.raises(TypeError, match=r"tk\.Edit\(layer=3, site='resid'\) returned ndarray; fn must return a tensor"):
        tk.logits(model, TEXTS[:1], edits=[tk.Edit(3, lambda h: h.numpy())])


# --------------------------------------------------------------------------- 2. get_activations output
def test_get_activations_names_the_layer_and_text_with_non_finite_values(model):
    zebra = model.tokenizer(" zebra").input_ids
    assert len(zebra) == 1 and all(zebra[0] not in model.tokenizer(t).input_ids for t in (TEXTS[0], TEXTS[2]))
    with poisoned(model.hf.model.embed_tokens.weight, zebra[0]):
        # texts are batched by length, so the error must map back to the caller's index
        with pytest.raises(ValueError, match=r"the resid activations of texts\[1\] at layer 3 has \d+ non-finite value\(s\) \(NaN\)"):
            tk.get_activations(model, TEXTS, layer=3, batch_size=2)
        ok = tk.get_activations(model, [TEXTS[0], TEXTS[2]], layer=3)  # other texts are unaffected
    assert torch.isfinite(ok.rows).all()


# --------------------------------------------------------------------------- 3. argument checks
def test_negative_layer_steers_the_last_blocks(model):
    v = tk.get_activations(model, ["Arr matey, pirates sail the seas!"], layer=-2, reduce="mean")[0]
    kw = dict(vector=v, alpha=1.0, max_new_tokens=4)
    assert tk.steer(model, PROMPT, layer=-2, **kw) == tk.steer(model, PROMPT, layer=model.n_layers - 2, **kw)
    with pytest.raises(IndexError, match=r"valid layers are 0\.\.29 \(or -30\.\.-1\)"):
        tk.steer(model, PROMPT, layer=-31, **kw)


@pytest.mark.parametrize("bad", [2.0, torch.tensor(2.5), "3"])
def test_non_integer_layer_gets_the_same_type_error_everywhere(model, bad):
    v = torch.ones(model.d_model)
    messages = set()
    for call in (lambda: tk.get_activations(model, TEXTS[:1], layer=bad),
                 lambda: tk.get_activations(model, TEXTS[:1], layer=[1, bad]),
                 lambda: tk.logits(model, TEXTS[:1], edits=[tk.Edit(bad, lambda h: h)]),
                 lambda: tk.steer(model, PROMPT, vector=v, layer=bad, alpha=0.1)):
        with pytest.raises(TypeError, match=r"layer must be an integer in \[-30, 29\], got") as info:
            call()
        messages.add(str(info.value))
    assert len(messages) == 1


def test_wrong_width_vector_is_named_before_the_forward_pass(model):
    edit = steering_edit(layer=5, alpha=1.0, vector=torch.ones(7))  # no model here: checked when it runs
    with pytest.raises(ValueError, match=r"the steering direction has 7 entries but the activations it edits are 576 wide"):
        tk.generate(model, PROMPT, max_new_tokens=2, edits=[edit])
    # steer knows the model: a 2-D "vector" of the right total size is no longer flattened silently
    with pytest.raises(ValueError, match=r"steering vector must be 1-D \[d_model\], got shape \(2, 288\)"):
        tk.steer(model, PROMPT, vector=torch.ones(2, 288), layer=5, alpha=1.0)
    with pytest.raises(ValueError, match=r"has 7 entries but .*'s d_model is 576"):
        tk.steer(model, PROMPT, vector=torch.ones(7), layer=5, alpha=1.0)


def test_scalar_arguments_are_refused_by_type(model):
    v = torch.ones(model.d_model)
    with pytest.raises(TypeError, match=r"max_new_tokens must be an integer >= 1, got 2\.5"):
        tk.generate(model, PROMPT, max_new_tokens=2.5)
    with pytest.raises(TypeError, match=r"max_new_tokens must be an integer >= 1, got 2\.5"):
        tk.steer(model, PROMPT, vector=v, layer=5, alpha=0.5, max_new_tokens=2.5)
    with pytest.raises(TypeError, match=r"alpha must be a number, got '0\.5' \(str\)"):
        tk.steer(model, PROMPT, vector=v, layer=5, alpha="0.5")
    with pytest.raises(TypeError, match=r"alpha must be a number"):
        steering_edit(layer=5, alpha="0.5", vector=v)
    with pytest.raises(TypeError, match=r"do_sample must be True or False, got 'yes'"):
        tk.generate(model, PROMPT, do_sample="yes")


@pytest.mark.parametrize("bad, error", [(2.0, TypeError), (True, TypeError), (0, ValueError)])
def test_batch_size_is_checked_the_same_way_everywhere(model, bad, error):
    match = rf"batch_size must be an integer >= 1, got {bad}"
    for call in (lambda: tk.get_activations(model, TEXTS, layer=1, batch_size=bad),
                 lambda: tk.mlp_activations(model, TEXTS, layer=1, batch_size=bad),
                 lambda: tk.generate(model, PROMPT, max_new_tokens=1, batch_size=bad),
                 lambda: tk.token_losses(model, TEXTS, batch_size=bad),
                 lambda: tk.logits(model, TEXTS, batch_size=bad)):
        with pytest.raises(error, match=match):
            call()
