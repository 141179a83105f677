"""tk.fms on degenerate inputs: refuse what cannot be scored, warn where the 0.5 chance floor is wrong.

Each test here failed on the earlier tk.fms, which scored constant latents at 0.283 with
best_latent=-1, scored 5 random samples at 1.0 and said nothing about imbalanced classes.
"""
from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest

from toolkit.monosemanticity import fms, fms_reference, fms_report

# FMSWarning is read when a test runs (not imported at the top) so that each test can also be run, and
# seen failing one by one, against a tk.fms that predates it.
fms_module = importlib.import_module("toolkit.monosemanticity")  # `toolkit.fms` is the function, not the module
MIN_HELD_OUT = 20  # the minimum the docstring of tk.fms states and justifies


def balanced_noise(n: int, m: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, m)), np.arange(n) % 2


def planted(n: int = 600, share: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Latent 3 carries a concept whose positive class is ``share`` of the samples."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) < round(share * n)).astype(int)
    X = rng.standard_normal((n, 8))
    X[:, 3] += 4.0 * y
    return X, y


@pytest.mark.parametrize("score", [fms, fms_reference])
def test_all_constant_latents_are_refused(score):
    with pytest.raises(ValueError, match=r"every one of the 5 latents is constant over the 100 samples"):
        score(np.ones((100, 5)), np.arange(100) % 2)


def test_latents_constant_on_the_training_part_are_refused():
    X, y = np.zeros((200, 6)), np.arange(200) % 2
    test_index = fms(*balanced_noise(200)).test_index  # the split depends only on the labels and the seed
    X[test_index, 1] = 1.0  # varies, but only on held-out samples: no tree can be fitted
    with pytest.raises(ValueError, match=r"no latent takes two values .* 140 training samples"):
        fms(X, y)


def test_some_dead_latents_are_fine_and_silent():
    # dead SAE latents are normal: they can never be chosen, and the score is that of the live ones
    X, y = planted()
    with_dead = np.hstack([X, np.zeros((len(X), 5))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a, b = fms(X, y, p=(1, 5)), fms(with_dead, y, p=(1, 5))
    assert a.score == b.score and a.best_latent == b.best_latent == 3


@pytest.mark.parametrize("score", [fms, fms_reference])
def test_five_random_samples_are_refused(score):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=rf"holds out 2; FMS needs at least {MIN_HELD_OUT} held-out samples"):
        score(rng.standard_normal((5, 8)), np.array([0, 1, 0, 1, 1]))


def test_held_out_minimum_boundary():
    # test_size=0.3 holds out ceil(0.3 n): 66 samples hold out 20 (accepted), 63 hold out 19 (refused)
    assert len(fms(*balanced_noise(66)).test_index) == MIN_HELD_OUT
    with pytest.raises(ValueError, match=r"holds out 19"):
        fms(*balanced_noise(63))
    with pytest.raises(ValueError, match=r"test_size=10 of 200 samples holds out 10"):
        fms(*balanced_noise(200), test_size=10)
    assert fms_module.MIN_HELD_OUT == MIN_HELD_OUT


def test_imbalanced_classes_warn_with_the_share_and_keep_the_score():
    X, y = planted(share=0.2)
    with pytest.warns(fms_module.FMSWarning, match=r"minority class is 20\.0% .* capped near 2 \(1 - 0\.800\) = 0\.40"):
        r = fms(X, y, p=1)
    # FMS's definition is unchanged: a perfect latent loses local because the floor is 0.8, not 0.5
    assert r.capacity > 0.95 and r.best_latent == 3
    assert r.local == pytest.approx(np.clip(2 * (r.acc_by_removals[0] - r.acc_by_removals[1]), 0, 1))
    assert r.local < 0.5


def test_mildly_unbalanced_labels_do_not_warn():
    # a random draw from a balanced dataset (notebook 05 draws 45.8% positives) stays silent
    X, y = planted(share=0.45)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fms(X, y)


def test_report_names_the_imbalanced_concept():
    X, y_rare = planted(share=0.25)
    y_bal = np.arange(len(X)) % 2
    with pytest.warns(fms_module.FMSWarning, match=r"^concept 'rare': labels are imbalanced") as caught:
        df = fms_report(X, {"balanced": y_bal, "rare": y_rare}, p=(1, 5))
    assert [str(w.message).split(":")[0] for w in caught if w.category is fms_module.FMSWarning] == ["concept 'rare'"]
    assert list(df.index) == ["balanced", "rare", "mean"]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"p": 1.0}, TypeError, r"p must be an integer, got 1\.0"),
        ({"p": (1, 2.5)}, TypeError, r"p must be an integer, got 2\.5"),
        ({"max_depth": 2.0}, TypeError, r"max_depth must be an integer, got 2\.0"),
        ({"stop_at": "0.9"}, TypeError, r"stop_at must be a number in \[0\.0, 1\.0\], got '0\.9'"),
        ({"stop_at": 1.5}, ValueError, r"stop_at must be a number in \[0\.0, 1\.0\], got 1\.5"),
        ({"random_state": 1.5}, TypeError, r"random_state must be an integer, got 1\.5"),
    ],
)
def test_parameter_types_go_through_the_shared_checks(kwargs, error, match):
    with pytest.raises(error, match=match):
        fms(*planted(), **kwargs)
