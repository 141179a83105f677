"""The Feature Monosemanticity Score (FMS).

Härle, Friedrich et al., "Measuring and Guiding Monosemanticity" (NeurIPS 2025). FMS asks whether one
latent cleanly carries one binary concept, using decision trees on latent activations:

* **capacity** ``acc_0``: held-out accuracy of a depth-1 tree (the best single latent);
* **local disentanglement** ``local@p = clip(2 (acc_0 - acc_p), 0, 1)``, where ``acc_p`` is the accuracy of
  the depth-1 tree refitted after removing the root latent ``p`` times, cumulatively;
* **global disentanglement** ``global = clip(1 - sum_d (acc_d - acc_0) / n, 0, 1)`` over trees of depth
  ``d = 1..n``; the depths stop once a tree reaches ``stop_at`` (0.999) accuracy and are capped at
  ``max_depth``;
* ``FMS@p = acc_0 (local@p + global) / 2``.

Trees are fitted on a stratified, seeded split and scored on the held-out part. ``groups`` (e.g. the
sentence of each token) keeps every group on one side of the split, so tokens of one sentence are never
both trained on and scored. ``balanced=True`` scores every held-out accuracy as *balanced* accuracy (the
mean of the two classes' recalls): a latent that knows nothing then scores 0.5 whatever the class shares,
which is the chance floor the definition assumes (plain accuracy puts it at the majority share).

Degenerate inputs are refused or flagged rather than scored (see :func:`fms`): every latent constant
(``ValueError``), fewer than ``MIN_HELD_OUT`` held-out samples (``ValueError``) and a minority class below
``MIN_CLASS_SHARE`` of the samples (an :class:`FMSWarning`, because the 0.5 chance floor the definition
assumes no longer holds).

Speed: the trees here are grown with vectorized numpy instead of scikit-learn. Every latent column is
sorted once; a level of the tree then evaluates every candidate threshold of every latent in every node
with cumulative class counts, and the sorted order is regrouped by node (a stable radix sort on node ids)
instead of being re-sorted. The depth-1 search gives the best split of *every* latent at once, so the
cumulative removals need no refit: removing the root latent and refitting simply picks the next latent in
that ranking. Splits follow scikit-learn's ``DecisionTreeClassifier`` exactly (Gini proxy computed with the
same floating-point operations, float32 features, the same tie tolerance between feature values, midpoint
thresholds, class-0 on tied leaves). The one difference: when two latents give exactly the same impurity,
scikit-learn picks one at random (``random_state``) and this module picks the lowest index. Such ties are
rare at the root but common in small, deep nodes (several latents each isolate the same lone sample), so
depth-1 results (capacity, local) match scikit-learn exactly on data without value ties, while deep-tree
accuracies can differ by a few held-out samples, as scikit-learn's own do across ``random_state``s; :func:`fms_reference` is the plain scikit-learn
implementation kept as the slow oracle for tests and benchmarks.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .validation import as_numpy, check_int, check_number

__all__ = ["FMSResult", "FMSWarning", "fms", "fms_report", "fms_reference"]

STOP_AT = 0.999
# Capacity is a held-out accuracy: it moves in steps of 1/n_test and, for a latent that knows nothing,
# has standard error 0.5/sqrt(n_test). At 20 samples that is 0.11 and such a latent still reaches
# capacity >= 0.75 in 2% of splits; at 10 samples it reaches >= 0.8 in 5.5%, and 5 samples (2 held out)
# scored random latents at FMS 1.0. Below 20 the score measures which samples were held out.
MIN_HELD_OUT = 20
# local@p = clip(2 (acc_0 - acc_p), 0, 1) assumes acc_p falls to a 0.5 chance floor; with a majority class
# of share q a useless latent already scores ~q, so local@p is capped near 2 (1 - q): 0.8 at a 60/40 split.
MIN_CLASS_SHARE = 0.4
_FEATURE_THRESHOLD = np.float32(1e-7)  # scikit-learn's tolerance between "different" feature values
_EPSILON = np.finfo(np.float64).eps  # scikit-learn's tolerance on a split's impurity improvement
_CHUNK_ELEMS = 1 << 17  # latents x positions per vectorized block: ~1 MB arrays stay in cache


class FMSWarning(UserWarning):
    """An FMS that is computed but not comparable to others (e.g. imbalanced classes)."""


@dataclass(frozen=True)
class FMSResult:
    """FMS of one concept in one representation.

    ``local`` and ``score`` are floats when ``fms`` was called with an int ``p`` and dicts ``{p: value}``
    when it was called with a sequence; ``local_at(p)`` / ``score_at(p)`` work for any computed ``p``.
    """

    capacity: float
    local: float | dict[int, float]
    global_: float
    score: float | dict[int, float]
    best_latent: int
    p: int | tuple[int, ...]
    acc_by_depth: np.ndarray  # held-out accuracy of the trees of depth 1..n
    acc_by_removals: np.ndarray  # [max p + 1]; entry r: depth-1 accuracy after removing r root latents
    removed_latents: np.ndarray  # the root latents, in the order they were removed
    threshold: float  # the depth-1 tree's threshold on best_latent (go left if latent <= threshold)
    train_index: np.ndarray = field(repr=False)
    test_index: np.ndarray = field(repr=False)

    @property
    def depths(self) -> np.ndarray:
        return np.arange(1, len(self.acc_by_depth) + 1)

    def local_at(self, p: int) -> float:
        """``clip(2 (acc_0 - acc_p), 0, 1)``."""
        if not 0 <= p < len(self.acc_by_removals):
            raise ValueError(f"p={p!r} was not computed; valid: 0..{len(self.acc_by_removals) - 1}")
        return _local(self.acc_by_removals[0], self.acc_by_removals[p])

    def score_at(self, p: int) -> float:
        """``acc_0 (local@p + global) / 2``."""
        return _score(self.capacity, self.local_at(p), self.global_)

    def as_dict(self, ps: Sequence[int] | None = None) -> dict[str, Any]:
        """Flat summary (capacity, local@p, global, FMS@p, best_latent) for tables and JSON."""
        ps = _as_tuple(self.p) if ps is None else tuple(ps)
        out: dict[str, Any] = {"capacity": self.capacity}
        out.update({f"local@{q}": self.local_at(q) for q in ps})
        out["global"] = self.global_
        out.update({f"FMS@{q}": self.score_at(q) for q in ps})
        out["best_latent"] = self.best_latent
        return out


def _local(acc0: float, accp: float) -> float:
    return float(np.clip(2.0 * (acc0 - accp), 0.0, 1.0))


def _accuracy(pred: np.ndarray, y: np.ndarray, balanced: bool) -> float:
    """Held-out accuracy, or with ``balanced`` the mean of the two classes' recalls (chance = 0.5 always)."""
    hit = pred == y
    if not balanced:
        return float(np.mean(hit))
    return float(0.5 * (np.mean(hit[y == 1]) + np.mean(hit[y == 0])))


def _global(acc0: float, acc_by_depth: np.ndarray) -> float:
    n = len(acc_by_depth)
    return float(np.clip(1.0 - np.sum(np.asarray(acc_by_depth) - acc0) / n, 0.0, 1.0))


def _score(acc0: float, local: float, glob: float) -> float:
    return float(acc0 * (local + glob) / 2.0)


def _as_tuple(p: int | Sequence[int]) -> tuple[int, ...]:
    # anything that is not a real sequence (1.0, "1") is one value, so _check_params can name it
    many = (isinstance(p, Sequence) and not isinstance(p, (str, bytes))) or (isinstance(p, np.ndarray) and p.ndim == 1)
    return tuple(p) if many else (p,)


# ----------------------------------------------------------------------------------------------------
# input checks


def _check_inputs(latents: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Latents as float32 [n, m] (what scikit-learn's trees use) and labels as int8 0/1."""
    X = as_numpy(latents, "latents")
    if X.ndim != 2:
        raise ValueError(f"latents must be 2-D [n_samples, n_latents], got shape {X.shape}")
    if X.shape[1] < 1:
        raise ValueError(f"latents has shape {X.shape}: need at least 1 latent")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise TypeError(f"latents must be numeric, got dtype {X.dtype}")
    X = X.astype(np.float32)
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        kind = "NaN" if np.isnan(X[r, c]) else "infinite"
        raise ValueError(f"latents contain {int(bad.sum())} NaN/infinite values (first: {kind} at row {r}, "
                         f"latent {c}); FMS needs finite activations")
    y = as_numpy(labels, "labels")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D (one binary label per sample), got shape {y.shape}")
    if len(y) != len(X):
        raise ValueError(f"length mismatch: latents has {len(X)} samples, labels has {len(y)}")
    if np.issubdtype(y.dtype, np.floating) and np.isnan(y).any():
        raise ValueError(f"labels contain {int(np.isnan(y).sum())} NaN values; valid labels are two classes "
                         f"such as 0/1 or False/True")
    classes, y01 = np.unique(y, return_inverse=True)
    classes = classes.tolist()  # plain Python values, so messages read 1 rather than np.int64(1)
    if len(classes) == 1:
        raise ValueError(f"labels have a single class ({classes[0]!r}); FMS needs both classes of a "
                         f"binary concept")
    if len(classes) > 2:
        shown = ", ".join(repr(c) for c in classes[:10]) + (", ..." if len(classes) > 10 else "")
        raise ValueError(f"labels must be binary (two classes such as 0/1), got {len(classes)} distinct "
                         f"values: {shown}")
    counts = np.bincount(y01, minlength=2)
    if counts.min() < 2:
        raise ValueError(f"label {classes[int(counts.argmin())]!r} occurs {counts.min()} time(s); the stratified "
                         f"held-out split needs at least 2 samples of each class")
    return X, y01.astype(np.int8)


def _check_params(p: int | Sequence[int], n_latents: int, max_depth: int) -> tuple[int, ...]:
    ps = _as_tuple(p)
    if len(ps) == 0:
        raise ValueError("p must be a positive int or a non-empty sequence of them, got an empty sequence")
    for q in ps:
        check_int("p", q)  # a float or bool is a TypeError, as everywhere else
        if q < 1:
            raise ValueError(f"p={q!r} is not valid: p counts removed latents and must be an int >= 1")
        if q >= n_latents:
            raise ValueError(f"p={q} removals need more than {q} latents, but latents has {n_latents}; "
                             f"valid: 1..{n_latents - 1}")
    check_int("max_depth", max_depth)
    if max_depth < 1:
        raise ValueError(f"max_depth={max_depth!r} is not valid; use an int >= 1 (default 8)")
    return tuple(int(q) for q in ps)


def _check_options(random_state: Any, stop_at: Any) -> None:
    if random_state is not None:
        check_int("random_state", random_state)
    check_number("stop_at", stop_at, minimum=0.0, maximum=1.0)


def _check_degenerate(X: np.ndarray, y: np.ndarray, balanced: bool = False) -> None:
    """Refuse latents that can never split; warn when the classes are too imbalanced for the 0.5 floor."""
    # Constant latents cannot be chosen by any tree. Some constant ones are normal (dead SAE latents)
    # and are simply never picked; when all are, the "score" would be the majority-class rate.
    if not (X.max(axis=0) > X.min(axis=0)).any():
        raise ValueError(f"every one of the {X.shape[1]} latents is constant over the {X.shape[0]} samples, so no "
                         "threshold can separate the classes and FMS is undefined; pass activations that vary "
                         "(e.g. an SAE's latents on these texts, not an all-dead or zeroed representation)")
    share = float(np.mean(y))
    minority = min(share, 1.0 - share)
    if minority < MIN_CLASS_SHARE and not balanced:  # balanced accuracy keeps the 0.5 floor
        majority = 1.0 - minority
        warnings.warn(
            f"labels are imbalanced: the minority class is {minority:.1%} of the {len(y)} samples (warned below "
            f"{MIN_CLASS_SHARE:.0%}). FMS assumes a 0.5 chance floor: a latent that knows nothing already has "
            f"capacity ~{majority:.2f}, and local@p is capped near 2 (1 - {majority:.3f}) = {2 * minority:.2f}, so "
            "this score is not comparable with those of balanced concepts; pass balanced=True (balanced accuracy) "
            "or subsample to balance the classes",
            FMSWarning, stacklevel=3)


def _check_held_out(te: np.ndarray, test_size: Any, n: int) -> None:
    if len(te) < MIN_HELD_OUT:
        raise ValueError(
            f"test_size={test_size!r} of {n} samples holds out {len(te)}; FMS needs at least {MIN_HELD_OUT} held-out "
            f"samples (below that a held-out accuracy moves in steps of over 5 points and a latent that knows "
            f"nothing scores capacity >= 0.75 in more than 2% of splits); pass more samples or a larger test_size")


def _check_splits(best_latent: int, n_train: int) -> None:
    if best_latent < 0:
        raise ValueError(f"no latent takes two values (more than {float(_FEATURE_THRESHOLD):g} apart) across the "
                         f"{n_train} training samples of the split, so no tree can split them and FMS is undefined; "
                         "pass latents that vary on more samples, or another random_state")


def _split(y: np.ndarray, test_size: float | int, random_state: int | None,
           groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    idx = np.arange(len(y))
    if groups is not None:
        # whole groups on each side, classes kept as even as the groups allow: the first fold of a
        # stratified group k-fold, k = round(1 / test fraction)
        n_groups = len(np.unique(groups))
        frac = test_size if isinstance(test_size, float) else test_size / len(y)
        k = int(round(1.0 / frac)) if 0 < frac < 1 else 0
        if k < 2 or k > n_groups:
            raise ValueError(f"test_size={test_size!r} with {n_groups} groups cannot hold out whole groups "
                             f"(needs 2 <= round(1 / test fraction) <= number of groups)")
        folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=random_state)
        tr, te = next(folds.split(idx, y, groups))
        if len(np.unique(y[te])) < 2 or len(np.unique(y[tr])) < 2:
            raise ValueError(f"the group split (test_size={test_size!r}, {n_groups} groups) left one class out of "
                             "a side; pass more groups or another random_state")
        return np.sort(tr), np.sort(te)
    try:
        tr, te = train_test_split(idx, test_size=test_size, stratify=y, random_state=random_state)
    except ValueError as err:
        raise ValueError(f"cannot make a stratified held-out split with test_size={test_size!r} of "
                         f"{len(y)} samples: {err}") from err
    return np.sort(tr), np.sort(te)


# ----------------------------------------------------------------------------------------------------
# vectorized tree growing


def _gini_proxy(nL, nR, nLnL, nRnR, posL, totpos):
    """scikit-learn's ``proxy_impurity_improvement`` for Gini, with the same float64 operations
    (``-nR * giniR - nL * giniL``); computed in place to keep the memory traffic down."""
    negL = nL - posL
    sqL = np.multiply(negL, negL, out=negL)
    sqL += posL * posL
    sqL /= nLnL
    giniL = np.subtract(1.0, sqL, out=sqL)
    posR = np.subtract(totpos, posL, out=posL)
    negR = nR - posR
    sqR = np.multiply(negR, negR, out=negR)
    sqR += posR * posR
    sqR /= nRnR
    giniR = np.subtract(1.0, sqR, out=sqR)
    giniR *= -nR
    giniL *= nL
    giniR -= giniL
    return giniR


def _split_search(xs: np.ndarray, ys: np.ndarray, starts: np.ndarray, sizes: np.ndarray,
                  npos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best Gini split of every node in every latent.

    ``xs``/``ys`` [m, L]: each row holds the training samples of all open nodes, grouped by node (node k
    occupies columns ``starts[k]:starts[k]+sizes[k]`` in every row) and sorted by that latent within the node.
    Returns ``best`` [m, K] (Gini proxy, -inf where the latent cannot split the node), ``pos`` [m, K] (column
    of the last left sample) and ``posl`` [m, K] (positives on the left).
    """
    m, L = xs.shape
    K = len(starts)
    seg = np.repeat(np.arange(K), sizes)
    segb = seg[:-1]  # boundary after column i belongs to the node of column i
    cols = np.arange(L - 1)
    nL = (cols - starts[segb] + 1).astype(np.float64)
    nR = sizes[segb].astype(np.float64) - nL
    nLnL, nRnR = nL * nL, nR * nR
    inside = seg[1:] == segb
    totpos = npos[segb].astype(np.float64)
    first_col = starts  # reduceat indices; every node has >= 2 samples so starts < L - 1
    best = np.empty((m, K))
    pos = np.empty((m, K), dtype=np.int64)
    posl = np.empty((m, K), dtype=np.int64)
    rows = max(1, _CHUNK_ELEMS // L)
    for r0 in range(0, m, rows):
        r1 = min(m, r0 + rows)
        cum = np.cumsum(ys[r0:r1], axis=1, dtype=np.int32)
        base = np.zeros((r1 - r0, K), dtype=np.int32)
        base[:, 1:] = cum[:, starts[1:] - 1]
        pl = cum[:, :-1] - base[:, segb]
        with np.errstate(divide="ignore", invalid="ignore"):  # nR = 0 across node ends; masked below
            proxy = _gini_proxy(nL, nR, nLnL, nRnR, pl.astype(np.float64), totpos)
        x = xs[r0:r1]
        # a split needs distinct neighbours (float32 test, like scikit-learn) inside one node
        proxy[~(inside & (x[:, 1:] > x[:, :-1] + _FEATURE_THRESHOLD))] = -np.inf
        b = np.maximum.reduceat(proxy, first_col, axis=1)
        cand = np.where(proxy == b[:, segb], cols, L)
        p = np.minimum.reduceat(cand, first_col, axis=1)
        p = np.minimum(p, L - 2)  # rows without a valid split: any in-range column, masked by best=-inf
        best[r0:r1] = b
        pos[r0:r1] = p
        posl[r0:r1] = np.take_along_axis(pl, p, axis=1)
    return best, pos, posl


def _gini(n: float, npos: float) -> float:
    neg = n - npos
    return 1.0 - (neg * neg + npos * npos) / (n * n)


def _improvement(n_total: float, n: float, npos: float, nl: float, posl: float) -> float:
    """scikit-learn's ``impurity_improvement`` (a split whose improvement is below -eps makes a leaf)."""
    nr, posr = n - nl, npos - posl
    return (n / n_total) * (_gini(n, npos) - (nr / n * _gini(nr, posr)) - (nl / n * _gini(nl, posl)))


def _majority(n: float, npos: float) -> int:
    return int(npos > n - npos)  # a tie predicts class 0, as argmax does in scikit-learn


@dataclass
class _Curves:
    acc_by_removals: np.ndarray
    removed: np.ndarray
    acc_by_depth: np.ndarray
    threshold: float


def _checked_split(latents: Any, labels: Any, p: Any, max_depth: Any, test_size: Any, random_state: Any,
                   stop_at: Any, balanced: Any = False, groups: Any = None
                   ) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], np.ndarray, np.ndarray]:
    """Every argument check :func:`fms` and :func:`fms_reference` share, then the stratified split:
    ``(X, y, ps, train rows, test rows)``, so the fast path and its reference see the same samples."""
    X, y = _check_inputs(latents, labels)
    ps = _check_params(p, X.shape[1], max_depth)
    _check_options(random_state, stop_at)
    if not isinstance(balanced, (bool, np.bool_)):
        raise TypeError(f"balanced must be True or False, got {balanced!r}")
    if groups is not None:
        groups = as_numpy(groups, "groups").reshape(-1)
        if len(groups) != len(y):
            raise ValueError(f"groups has {len(groups)} entries for {len(y)} samples; pass one group id per sample")
    _check_degenerate(X, y, bool(balanced))
    tr, te = _split(y, test_size, random_state, groups)
    _check_held_out(te, test_size, len(y))
    return X, y, ps, tr, te


def _fms_curves(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, yte: np.ndarray, n_removals: int,
                max_depth: int, stop_at: float, balanced: bool = False) -> _Curves:
    n, m = Xtr.shape
    XT = np.ascontiguousarray(Xtr.T)
    order = np.argsort(XT, axis=1).astype(np.int32)  # the only sort of the feature values
    xs = np.take_along_axis(XT, order, axis=1)
    ys = ytr[order]
    n_total = float(n)
    npos_root = int(ytr.sum())
    starts = np.array([0])
    sizes = np.array([n])
    npos = np.array([npos_root])
    best, pos, posl = _split_search(xs, ys, starts, sizes, npos)

    # --- depth-1 trees with cumulative removal: the ranking of the per-latent best splits ---
    def stump(f: int) -> tuple[bool, float, int, int, int]:
        if best[f, 0] == -np.inf:
            return False, np.nan, 0, 0, 0
        nl, pl_ = int(pos[f, 0]) + 1, int(posl[f, 0])
        if _improvement(n_total, n_total, npos_root, nl, pl_) + _EPSILON < 0:
            return False, np.nan, 0, 0, 0
        thr = float(np.float64(xs[f, nl - 1]) / 2.0 + np.float64(xs[f, nl]) / 2.0)
        return True, thr, nl, _majority(nl, pl_), _majority(n - nl, npos_root - pl_)

    leaf_acc = _accuracy(np.full(len(yte), _majority(n, npos_root)), yte, balanced)
    ranking = np.argsort(-best[:, 0], kind="stable")
    acc_rem, removed = [], []
    threshold = np.nan
    for r in range(n_removals + 1):
        f = int(ranking[r])
        ok, thr, _, left, right = stump(f)
        if not ok:  # no latent left that splits: the tree is a single leaf from here on
            acc_rem += [leaf_acc] * (n_removals + 1 - r)
            break
        if r == 0:
            threshold = thr
        pred = np.where(Xte[:, f].astype(np.float64) <= thr, left, right)
        acc_rem.append(_accuracy(pred, yte, balanced))
        if r < n_removals:
            removed.append(f)

    # --- trees of depth 1..max_depth, grown one level at a time ---
    nt = len(yte)
    te_seg = np.zeros(nt, dtype=np.int64)  # open node of each test sample, -1 once it sits in a leaf
    te_pred = np.full(nt, _majority(n, npos_root), dtype=np.int8)
    acc_depth: list[float] = []
    for depth in range(1, max_depth + 1):
        if depth > 1:
            best, pos, posl = _split_search(xs, ys, starts, sizes, npos)
        K = len(starts)
        key_dtype = np.uint16 if 2 * K < np.iinfo(np.uint16).max else np.int64
        drop = np.iinfo(key_dtype).max
        new_key = np.full(n, drop, dtype=key_dtype)
        new_te_seg = np.full(nt, -1, dtype=np.int64)
        new_sizes, new_npos = [], []
        for k in range(K):
            in_node = np.nonzero(te_seg == k)[0]
            f = int(np.argmax(best[:, k]))
            if best[f, k] == -np.inf:
                continue  # no latent splits this node: it stays a leaf
            size, p_k, s = int(sizes[k]), int(npos[k]), int(starts[k])
            nl = int(pos[f, k]) - s + 1
            pl_ = int(posl[f, k])
            if _improvement(n_total, size, p_k, nl, pl_) + _EPSILON < 0:
                continue
            thr = np.float64(xs[f, s + nl - 1]) / 2.0 + np.float64(xs[f, s + nl]) / 2.0
            samples = order[f, s:s + size]
            go_left = Xte[in_node, f].astype(np.float64) <= thr
            for child, (cn, cp, members, te_members) in enumerate(
                    [(nl, pl_, samples[:nl], in_node[go_left]),
                     (size - nl, p_k - pl_, samples[nl:], in_node[~go_left])]):
                te_pred[te_members] = _majority(cn, cp)
                if cn >= 2 and 0 < cp < cn:  # impure and big enough: split again at the next level
                    new_key[members] = len(new_sizes)
                    new_te_seg[te_members] = len(new_sizes)
                    new_sizes.append(cn)
                    new_npos.append(cp)
        acc = _accuracy(te_pred, yte, balanced)
        acc_depth.append(acc)
        if acc >= stop_at or depth == max_depth:
            break
        if not new_sizes:  # every leaf is pure or unsplittable: deeper trees are this same tree
            acc_depth += [acc] * (max_depth - depth)
            break
        # regroup the sorted rows by child node; the stable sort keeps value order inside each child
        keep = int(sum(new_sizes))
        perm = np.argsort(new_key[order], axis=1, kind="stable")[:, :keep]
        order = np.take_along_axis(order, perm, axis=1)
        xs = np.take_along_axis(xs, perm, axis=1)
        ys = ytr[order]
        sizes = np.array(new_sizes)
        npos = np.array(new_npos)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        te_seg = new_te_seg
    return _Curves(np.array(acc_rem), np.array(removed, dtype=np.int64), np.array(acc_depth), float(threshold))


def _result(curves: _Curves, ps: tuple[int, ...], p: int | Sequence[int], tr: np.ndarray, te: np.ndarray,
            best_latent: int) -> FMSResult:
    acc0 = float(curves.acc_by_removals[0])
    glob = _global(acc0, curves.acc_by_depth)
    locs = {q: _local(acc0, curves.acc_by_removals[q]) for q in ps}
    scores = {q: _score(acc0, locs[q], glob) for q in ps}
    single = isinstance(p, (int, np.integer))
    return FMSResult(
        capacity=acc0,
        local=locs[ps[0]] if single else locs,
        global_=glob,
        score=scores[ps[0]] if single else scores,
        best_latent=best_latent,
        p=ps[0] if single else ps,
        acc_by_depth=curves.acc_by_depth,
        acc_by_removals=curves.acc_by_removals,
        removed_latents=curves.removed,
        threshold=curves.threshold,
        train_index=tr,
        test_index=te,
    )


def fms(latents: Any, labels: Any, p: int | Sequence[int] = 1, max_depth: int = 8,
        test_size: float | int = 0.3, random_state: int | None = 0, stop_at: float = STOP_AT, *,
        balanced: bool = False, groups: Any = None) -> FMSResult:
    """Feature Monosemanticity Score of one binary concept.

    Args:
        latents: activations ``[n_samples, n_latents]`` (numpy or torch; used as float32).
        labels: one binary label per sample (any two distinct values; the larger one is the concept).
        p: number of root latents removed for ``local@p``; an int, or a sequence such as ``(1, 5)``.
        max_depth: deepest tree for global disentanglement.
        test_size: held-out fraction (or count) of the stratified split the accuracies are measured on.
        random_state: seed of the split.
        stop_at: the depth sweep stops at the first tree whose held-out accuracy reaches this.
        balanced: score every held-out accuracy (capacity, the removal and depth curves) as balanced
            accuracy, the mean recall of the two classes. Use it for imbalanced concepts, e.g. token labels
            where a third of the tokens are positive: a latent that knows nothing then scores 0.5 instead
            of the majority share, so capacity, local@p and FMS keep the meaning the definition gives them.
            The trees are grown as before (plain Gini); only their scoring changes.
        groups: one group id per sample (e.g. the sentence of each token): the split keeps each group on one
            side, stratified as far as the groups allow (the first fold of a stratified group k-fold with
            k = round(1 / test fraction), so the held-out share is close to, not exactly, ``test_size``).
            Without it, tokens of one sentence land on both sides and the held-out score is optimistic.

    Returns:
        :class:`FMSResult` with ``.capacity``, ``.local``, ``.global_``, ``.score``, ``.best_latent`` and the
        curves ``.acc_by_depth`` and ``.acc_by_removals``.

    Raises:
        ValueError: besides malformed inputs, when no score can mean anything: every latent is constant
            (or none varies across the training part of the split), or the held-out part has fewer than
            ``MIN_HELD_OUT`` = 20 samples. Capacity is a held-out accuracy with standard error
            0.5/sqrt(n_test) for a latent at chance; at 20 samples a latent that knows nothing still reaches
            capacity >= 0.75 in 2% of splits, and below that (5 samples hold out 2) random latents score 1.0.

    Warns:
        FMSWarning: when the minority class is below ``MIN_CLASS_SHARE`` = 40% of the samples and ``balanced`` is
            False. The definition
            assumes a 0.5 chance floor: with a majority share q a latent that knows nothing already has
            capacity ~q and local@p is capped near 2 (1 - q), so the score is not comparable with that of a
            balanced concept. The score itself is unchanged. Some (not all) constant latents, such as dead SAE
            latents, are fine: no tree can choose them, and they raise no warning.
    """
    X, y, ps, tr, te = _checked_split(latents, labels, p, max_depth, test_size, random_state, stop_at,
                                      balanced, groups)
    curves = _fms_curves(X[tr], y[tr], X[te], y[te], max(ps), int(max_depth), stop_at, bool(balanced))
    ranking_first = int(curves.removed[0]) if len(curves.removed) else -1
    _check_splits(ranking_first, len(tr))
    return _result(curves, ps, p, tr, te, ranking_first)


def fms_report(latents: Any, labels: Mapping[str, Any], p: int | Sequence[int] = (1, 5), **kwargs: Any
               ) -> pd.DataFrame:
    """Per-concept FMS table with a final ``"mean"`` row.

    Args:
        latents: one ``[n_samples, n_latents]`` array for all concepts, or a dict ``{concept: latents}``
            with the same keys as ``labels`` (concepts measured on different sentences).
        labels: ``{concept: binary labels}``.
        p: removal counts reported as ``local@p`` and ``FMS@p`` columns.
        **kwargs: passed to :func:`fms` (``max_depth``, ``test_size``, ``random_state``, ``stop_at``,
            ``balanced``). ``groups`` may be a dict ``{concept: group ids}`` (concepts on different samples).

    Each concept is checked as in :func:`fms`; its errors and :class:`FMSWarning`s name the concept.

    Returns:
        DataFrame indexed by concept (plus ``"mean"``) with columns capacity, local@p..., global, FMS@p...,
        best_latent; ``df.attrs["results"]`` holds the :class:`FMSResult` of each concept (curves included).
    """
    if not isinstance(labels, Mapping) or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty dict {{concept: binary labels}}, got {type(labels).__name__}")
    if "mean" in labels:
        raise ValueError("'mean' is reserved for the summary row; rename that concept")
    if isinstance(latents, Mapping):
        missing = set(labels) - set(latents)
        if missing:
            raise ValueError(f"latents dict has no entry for concepts {sorted(missing)}; "
                             f"it has {sorted(latents)}")
    ps = _as_tuple(p)
    results, rows = {}, {}
    for concept, y in labels.items():
        X = latents[concept] if isinstance(latents, Mapping) else latents
        kw = dict(kwargs)
        if isinstance(kw.get("groups"), Mapping):
            kw["groups"] = kw["groups"].get(concept)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", FMSWarning)
                res = fms(X, y, p=ps, **kw)
        except ValueError as err:
            raise ValueError(f"concept {concept!r}: {err}") from err
        for w in caught:  # re-issued with the concept's name, pointing at the caller of fms_report
            if issubclass(w.category, FMSWarning):
                warnings.warn(f"concept {concept!r}: {w.message}", FMSWarning, stacklevel=2)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        results[concept] = res
        rows[concept] = res.as_dict(ps)
    df = pd.DataFrame.from_dict(rows, orient="index")
    mean = df.drop(columns="best_latent").mean()
    df["best_latent"] = df["best_latent"].astype("Int64")
    df.loc["mean"] = mean
    df.attrs["results"] = results
    return df


# ----------------------------------------------------------------------------------------------------
# the slow oracle


def fms_reference(latents: Any, labels: Any, p: int | Sequence[int] = 1, max_depth: int = 8,
                  test_size: float | int = 0.3, random_state: int | None = 0,
                  stop_at: float = STOP_AT, *, balanced: bool = False, groups: Any = None) -> FMSResult:
    """Slow oracle: the same definition with one plain scikit-learn ``DecisionTreeClassifier`` per tree.

    Every removal refits a depth-1 tree on the remaining latents; every depth d = 1..n fits its own tree.
    Used by the tests and ``benchmarks/fms.py`` to check :func:`fms`; not meant for real workloads.
    """
    from sklearn.tree import DecisionTreeClassifier

    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    X, y, ps, tr, te = _checked_split(latents, labels, p, max_depth, test_size, random_state, stop_at,
                                      balanced, groups)
    Xtr, ytr, Xte, yte = X[tr], y[tr], X[te], y[te]
    score = balanced_accuracy_score if balanced else accuracy_score

    def acc(tree: DecisionTreeClassifier, cols: np.ndarray) -> float:
        return float(score(yte, tree.predict(Xte[:, cols])))

    remaining = np.arange(X.shape[1])
    acc_rem, removed = [], []
    threshold = np.nan
    for r in range(max(ps) + 1):
        tree = DecisionTreeClassifier(max_depth=1, random_state=random_state).fit(Xtr[:, remaining], ytr)
        acc_rem.append(acc(tree, remaining))
        root = int(tree.tree_.feature[0])
        if root < 0:  # the tree is a leaf: nothing left to remove
            acc_rem += [acc_rem[-1]] * (max(ps) - r)
            break
        if r == 0:
            threshold = float(tree.tree_.threshold[0])
        if r < max(ps):
            removed.append(int(remaining[root]))
            remaining = np.delete(remaining, root)
    all_cols = np.arange(X.shape[1])
    acc_depth = []
    for d in range(1, max_depth + 1):
        tree = DecisionTreeClassifier(max_depth=d, random_state=random_state).fit(Xtr, ytr)
        acc_depth.append(acc(tree, all_cols))
        if acc_depth[-1] >= stop_at:
            break
    curves = _Curves(np.array(acc_rem), np.array(removed, dtype=np.int64), np.array(acc_depth), threshold)
    best_latent = removed[0] if removed else -1
    _check_splits(best_latent, len(tr))
    return _result(curves, ps, p, tr, te, best_latent)
