"""Tests for tk.fms (toolkit/monosemanticity.py): known answers on planted latents, agreement with the scikit-learn oracle, errors.

The oracle is ``toolkit.monosemanticity.fms_reference``: the same definition written with one plain
``sklearn.tree.DecisionTreeClassifier`` per tree (refit after every removal, one tree per depth).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from toolkit.monosemanticity import FMSResult, fms, fms_reference, fms_report

N, M = 1500, 32


def noise(n: int = N, m: int = M, seed: int = 0) -> tuple[np.random.Generator, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng, rng.standard_normal((n, m))


def clean(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Latent 5 carries the concept: classes 8 noise-SDs apart, so one threshold separates them."""
    rng, X = noise(seed=seed)
    y = rng.integers(0, 2, N)
    X[:, 5] = 4.0 * y + 0.5 * rng.standard_normal(N)
    return X, y


def shared(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The concept is the sign of latent 3 + latent 9: either latent alone is right 75% of the time."""
    rng, X = noise(seed=seed)
    return X, (X[:, 3] + X[:, 9] > 0).astype(int)


def test_clean_latent_scores_above_0_9():
    r = fms(*clean(), p=1)
    assert r.best_latent == 5
    assert r.capacity > 0.99
    assert r.local > 0.8  # removing latent 5 leaves only noise: accuracy falls to about 0.5
    assert r.global_ == 1.0  # the depth-1 tree already reaches 0.999, so the depth sweep stops at 1
    assert r.score > 0.9


def test_shared_concept_is_clearly_lower():
    # Expected: acc_0 ~ 0.75 (one of two iid Gaussians predicts the sign of their sum 3/4 of the time),
    # local@1 ~ 0 (the other latent is as good), global ~ 0.9 (deeper trees gain ~0.1) -> FMS ~ 0.34.
    c, s = fms(*clean(), p=1), fms(*shared(), p=(1, 2))
    assert set(s.removed_latents) == {3, 9}
    assert 0.68 < s.capacity < 0.82
    assert s.local[1] < 0.15
    assert s.local[2] > 0.3  # with both removed only noise is left
    assert s.score[1] < 0.5
    assert s.score[1] < c.score - 0.4


def test_random_labels_about_a_quarter_or_less():
    # No latent carries the labels: acc_0 ~ 0.5, local ~ 0 and global ~ 1 (deeper trees gain nothing),
    # so FMS ~ 0.5 * (0 + 1) / 2 = 0.25. With 450 held-out samples acc_0 has SD ~0.024, and local adds at
    # most a few points, so 0.30 bounds it with margin while still failing if local or capacity were
    # computed on training data (both would then be far above chance).
    for seed in range(3):
        rng, X = noise(seed=seed)
        r = fms(X, rng.integers(0, 2, N), p=(1, 5))
        assert r.score[1] <= 0.30 and r.score[5] <= 0.30, r
        assert abs(r.capacity - 0.5) < 0.08


def test_duplicated_latent_hides_from_local_at_1_but_not_at_2():
    X, y = clean()
    X[:, 20] = X[:, 5] + 1e-3 * np.random.default_rng(1).standard_normal(N)  # a near-copy of latent 5
    r = fms(X, y, p=(1, 2))
    assert set(r.removed_latents) == {5, 20}
    assert r.local[1] < 0.05  # the copy takes over after one removal
    assert r.local[2] > 0.8
    assert r.score[1] < 0.6 < 0.9 < r.score[2]


def test_components_follow_the_formula():
    r = fms(*shared(seed=2), p=(1, 3), max_depth=5)
    a0 = r.acc_by_removals[0]
    assert r.capacity == a0 == r.acc_by_depth[0]
    for p in (1, 3):
        assert r.local[p] == pytest.approx(np.clip(2 * (a0 - r.acc_by_removals[p]), 0, 1))
    n = len(r.acc_by_depth)
    assert r.global_ == pytest.approx(np.clip(1 - np.sum(r.acc_by_depth - a0) / n, 0, 1))
    assert r.score[3] == pytest.approx(a0 * (r.local[3] + r.global_) / 2)
    assert r.score_at(3) == r.score[3] and r.local_at(1) == r.local[1]
    assert len(r.removed_latents) == 3 and len(r.acc_by_removals) == 4
    assert np.all(r.acc_by_depth[:-1] < 0.999)  # the sweep only stops early at 0.999


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_sklearn_oracle(seed):
    # Continuous random latents (no value ties), varied sizes and noise. Depth <= 2 keeps every node large
    # (hundreds of samples) so no two latents split it equally well. Deeper, small nodes often have such
    # ties (e.g. several latents each isolate the same lone positive sample); scikit-learn breaks them at
    # random and tk.fms takes the lowest index, so deep trees are compared on one latent below.
    rng = np.random.default_rng(100 + seed)
    n, m = int(rng.integers(400, 1500)), int(rng.integers(6, 40))
    X = rng.standard_normal((n, m))
    w = rng.standard_normal(m) * (rng.random(m) < 0.3)
    y = (X @ w + rng.uniform(0.2, 2.0) * rng.standard_normal(n) > 0).astype(int)
    kw = dict(p=(1, 5), max_depth=2, random_state=seed)
    ours, ref = fms(X, y, **kw), fms_reference(X, y, **kw)
    np.testing.assert_array_equal(ours.acc_by_removals, ref.acc_by_removals)
    np.testing.assert_array_equal(ours.removed_latents, ref.removed_latents)
    np.testing.assert_array_equal(ours.acc_by_depth, ref.acc_by_depth)
    assert ours.threshold == ref.threshold
    assert ours.score == ref.score and ours.global_ == ref.global_


@pytest.mark.parametrize("seed", range(4))
def test_deep_trees_agree_with_sklearn_on_one_latent(seed):
    # With a single latent there is no tie between latents to break, so trees of depth up to 8 must match
    # scikit-learn exactly; odd seeds round the values, which exercises ties between feature values.
    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(300, 2000))
    x = rng.standard_normal(n)
    if seed % 2:
        x = np.round(3 * x)
    y = (np.sin(3 * x) + 0.5 * rng.standard_normal(n) > 0).astype(int)
    X = np.stack([x, np.zeros(n)], axis=1)  # p=1 needs a second latent; a constant one can never split
    from sklearn.tree import DecisionTreeClassifier

    ours = fms(X, y, p=1, max_depth=8)
    tr, te = ours.train_index, ours.test_index
    Xf = X[:, :1].astype(np.float32)
    ref = []
    for d in range(1, 9):
        tree = DecisionTreeClassifier(max_depth=d, random_state=0).fit(Xf[tr], y[tr])
        ref.append(float(np.mean(tree.predict(Xf[te]) == y[te])))
        if ref[-1] >= 0.999:
            break
    np.testing.assert_array_equal(ours.acc_by_depth, ref)


def test_split_is_stratified_and_seeded():
    X, y = shared()
    r = fms(X, y)
    assert len(r.test_index) == round(0.3 * N)
    assert abs(y[r.test_index].mean() - y.mean()) < 0.01
    assert np.intersect1d(r.train_index, r.test_index).size == 0
    r2 = fms(X, y)
    np.testing.assert_array_equal(r.acc_by_depth, r2.acc_by_depth)
    assert r.score == r2.score
    r3 = fms(X, y, random_state=1)
    assert not np.array_equal(r.test_index, r3.test_index)


def test_torch_and_numpy_inputs_agree():
    X, y = shared()
    a = fms(X, y, p=(1, 5))
    b = fms(torch.tensor(X, dtype=torch.float32), torch.tensor(y), p=(1, 5))
    assert a.score == b.score and a.best_latent == b.best_latent


def test_label_encodings():
    X, y = clean()
    base = fms(X, y).score
    assert fms(X, y.astype(bool)).score == base
    assert fms(X, np.where(y == 1, 1, -1)).score == base
    assert fms(X, y.astype(float)).score == base


def test_fms_report_table_and_mean():
    X, y_clean = clean()
    y_shared = (X[:, 3] + X[:, 9] > 0).astype(int)
    df = fms_report(X, {"clean": y_clean, "shared": y_shared}, p=(1, 5))
    assert isinstance(df, pd.DataFrame)
    assert list(df.index) == ["clean", "shared", "mean"]
    assert list(df.columns) == ["capacity", "local@1", "local@5", "global", "FMS@1", "FMS@5", "best_latent"]
    assert df.loc["mean", "FMS@1"] == pytest.approx(df.loc[["clean", "shared"], "FMS@1"].mean())
    assert df.loc["clean", "best_latent"] == 5
    assert df.loc["clean", "FMS@1"] > df.loc["shared", "FMS@1"]
    assert isinstance(df.attrs["results"]["clean"], FMSResult)
    # one latent matrix per concept
    df2 = fms_report({"clean": X, "shared": X}, {"clean": y_clean, "shared": y_shared})
    pd.testing.assert_frame_equal(df, df2)


@pytest.mark.parametrize(
    "latents, labels, kwargs, match",
    [
        (np.zeros((10, 3)), np.arange(10) % 3, {}, r"binary.*3 distinct values: 0, 1, 2"),
        (np.zeros((10, 3)), np.ones(10), {}, r"single class \(1\.0\)"),
        (np.zeros((10, 3)), np.arange(9) % 2, {}, r"length mismatch: latents has 10 samples, labels has 9"),
        (np.where(np.eye(10, 3) > 0, np.nan, 0.0), np.arange(10) % 2, {}, r"3 NaN/infinite.*row 0, latent 0"),
        (np.zeros((10, 3)), np.array([0, 1] * 4 + [np.nan, 1]), {}, r"labels contain 1 NaN"),
        (np.zeros(10), np.arange(10) % 2, {}, r"2-D"),
        (np.zeros((10, 3)), np.arange(10) % 2, {"p": 3}, r"p=3 .*valid: 1\.\.2"),
        (np.zeros((10, 3)), np.arange(10) % 2, {"p": 0}, r"p=0 is not valid"),
        (np.zeros((10, 3)), np.arange(10) % 2, {"max_depth": 0}, r"max_depth=0"),
        (np.zeros((10, 3)), np.array([0] * 9 + [1]), {}, r"label 1 occurs 1 time"),
    ],
)
def test_errors_name_the_bad_value(latents, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fms(latents, labels, **kwargs)


def test_report_errors_name_the_concept():
    X, y = clean()
    with pytest.raises(ValueError, match=r"concept 'bad': .*single class"):
        fms_report(X, {"ok": y, "bad": np.zeros(N)})
    with pytest.raises(ValueError, match=r"no entry for concepts \['b'\]"):
        fms_report({"a": X}, {"a": y, "b": y})


def test_fms_attribute_is_the_function_and_the_module_has_its_own_name():
    # `from .monosemanticity import fms` in toolkit/__init__.py: with a module named fms, that line made
    # `toolkit.fms` the function while `import toolkit.fms` still meant the module.
    import importlib
    import importlib.util

    import toolkit
    import toolkit.monosemanticity as module

    assert toolkit.fms is module.fms and callable(toolkit.fms)
    for name in ("fms", "fms_report", "FMSResult", "FMSWarning", "fms_reference"):
        assert hasattr(module, name), name
    assert toolkit.fms_report is module.fms_report and toolkit.FMSResult is module.FMSResult
    assert toolkit.FMSWarning is module.FMSWarning
    assert importlib.util.find_spec("toolkit.fms") is None  # no module left for the name to shadow
    assert importlib.import_module("toolkit.monosemanticity") is module


def test_torch_and_bfloat16_inputs_score_like_numpy():
    # The converter is the shared as_numpy: tensors (bfloat16 widened to float32) give numpy's answer.
    rng, X = noise(400, 6, seed=5)
    y = (X[:, 2] > 0).astype(int)
    ref = fms(X.astype(np.float32), y)
    assert fms(torch.from_numpy(X).float(), torch.from_numpy(y)).score == ref.score
    Xb = torch.from_numpy(X).to(torch.bfloat16)
    assert fms(Xb, y).score == fms(Xb.float().numpy(), y).score
    with pytest.raises(TypeError, match="latents must be a numpy array or torch tensor"):
        fms([[0.0, 1.0], [2.0]], y[:2])  # a ragged list is no array


# --------------------------------------------------------------------------- imbalance and groups
def _imbalanced(seed: int, n: int = 1000, share: float = 0.2):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < share).astype(int)
    noise = rng.normal(size=(n, 20)).astype(np.float32)          # latents that know nothing
    signal = noise.copy()
    signal[:, 0] = y + 0.3 * rng.normal(size=n)                   # latent 0 carries the concept
    return noise, signal, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balanced_accuracy_restores_the_chance_floor_on_an_imbalanced_concept(seed):
    noise, signal, y = _imbalanced(seed)
    with pytest.warns(UserWarning, match="balanced=True"):
        plain = fms(noise, y)
    balanced = fms(noise, y, balanced=True)
    # plain accuracy of a latent that knows nothing sits near the 80% majority share; balanced near 0.5
    assert plain.capacity > 0.7
    assert abs(balanced.capacity - 0.5) < 0.1
    # an informative latent is still found, and scores near 1 either way
    assert fms(signal, y, balanced=True).capacity > 0.9
    assert fms(signal, y, balanced=True).best_latent == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_balanced_fms_agrees_with_sklearn_oracle(seed):
    _, signal, y = _imbalanced(seed, n=400, share=0.3)
    fast = fms(signal, y, p=(1, 3), balanced=True)
    slow = fms_reference(signal, y, p=(1, 3), balanced=True)
    assert fast.capacity == slow.capacity
    assert np.array_equal(fast.acc_by_removals, slow.acc_by_removals)
    assert np.allclose(fast.acc_by_depth[:2], slow.acc_by_depth[:2])


def test_groups_keep_every_group_on_one_side():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), 7)                          # 60 sentences of 7 tokens
    y = rng.integers(0, 2, len(groups))
    X = rng.normal(size=(len(groups), 5)).astype(np.float32)
    X[:, 0] += 2 * y
    res = fms(X, y, groups=groups)
    assert not set(groups[res.train_index]) & set(groups[res.test_index])
    assert 0.2 < len(res.test_index) / len(y) < 0.45                # about a third, whole groups only
    plain = fms(X, y)
    assert set(groups[plain.train_index]) & set(groups[plain.test_index])  # without groups, sentences straddle
    with pytest.raises(ValueError, match="one group id per sample"):
        fms(X, y, groups=groups[:-1])
    with pytest.raises(ValueError, match="whole groups"):
        fms(X, y, groups=np.zeros(len(y), dtype=int))
