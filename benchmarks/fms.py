"""Benchmark: toolkit's vectorized FMS against the plain scikit-learn implementation of the same definition.

Both compute FMS@1 and FMS@5 (p=(1, 5), max_depth=8, 30% stratified held-out split) of one planted concept
on dense Gaussian latents (continuous values, so no two samples tie on a latent); the default, 4,000 samples x
1,024 latents, keeps the 7 interleaved rounds of ``harness.compare`` to a few minutes (``--n 10000 --m 4096``
is the size quoted in notebook 04). The reference (``toolkit.monosemanticity.fms_reference``) fits one
``DecisionTreeClassifier`` per removal and per depth. Printed: the median speed-up with its interquartile
range (wall and CPU), and whether the accuracy curves agree.

The physical limit: ``tk.fms`` scores every threshold of every latent after sorting each latent column once,
so its depth-1 search cannot be faster than one sort of the training latents. That sort (``np.argsort`` of
each latent's column, laid out latent-major as ``tk.fms`` does, with numpy's default sort) is timed in the
same run, and the depth-1 search (``tk.fms`` with p=1 and
max_depth=1, which also scores the root's removal) is reported as a fraction of that bound.

Run: ``.venv/bin/python benchmarks/fms.py`` (add ``--n 2000 --m 512`` for a quick run).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from harness import MIN_ROUNDS, compare, machine

from toolkit.monosemanticity import fms, fms_reference


def planted(n: int, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Latents where latent 7 carries most of a concept and latents 100..104 a little of it."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, m)).astype(np.float32)
    logit = 2.0 * X[:, 7] + 0.5 * X[:, 100:105].sum(axis=1) + rng.standard_normal(n)
    return X, (logit > 0).astype(np.int64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000, help="samples")
    ap.add_argument("--m", type=int, default=1024, help="latents")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=MIN_ROUNDS)
    args = ap.parse_args()
    X, y = planted(args.n, args.m, args.seed)
    kw = dict(p=(1, 5), max_depth=8, test_size=0.3, random_state=0)
    print(f"data: {args.n} samples x {args.m} latents, positives {y.mean():.3f}; p=(1, 5), max_depth=8")
    print(machine())

    result = compare("tk.fms vs the scikit-learn reference", lambda: fms(X, y, **kw), lambda: fms_reference(X, y, **kw),
                     goal=5.0, rounds=args.rounds)
    ours, ref = result.outputs
    same_removals = (np.array_equal(ours.acc_by_removals, ref.acc_by_removals)
                     and np.array_equal(ours.removed_latents, ref.removed_latents))
    print(f"capacity and removal curve identical: {same_removals} "
          f"(removed latents {ours.removed_latents.tolist()}, acc {np.round(ours.acc_by_removals, 4).tolist()})")
    n_depth = min(len(ours.acc_by_depth), len(ref.acc_by_depth))
    diff = np.abs(ours.acc_by_depth[:n_depth] - ref.acc_by_depth[:n_depth])
    same_depth = len(ours.acc_by_depth) == len(ref.acc_by_depth) and not diff.any()
    print(f"accuracy by depth identical: {same_depth}; max |diff| {diff.max():.5f} "
          f"(ours {np.round(ours.acc_by_depth, 4).tolist()}, reference {np.round(ref.acc_by_depth, 4).tolist()})")
    print(f"|global diff| {abs(ours.global_ - ref.global_):.5f}, "
          f"|FMS@5 diff| {abs(ours.score[5] - ref.score[5]):.5f}")
    if not same_depth:
        print("note: deep trees differ only where two latents split a small node equally well; scikit-learn "
              "breaks such ties at random (random_state), tk.fms takes the lowest latent index")

    # The sort bound: one argsort of the training latents, against the depth-1 search on the same data.
    train = X[: int(round(0.7 * len(X)))]
    depth1, sort = [], []
    for _ in range(args.rounds):
        t0 = time.process_time()
        fms(X, y, p=1, max_depth=1, test_size=0.3, random_state=0)
        t1 = time.process_time()
        np.argsort(np.ascontiguousarray(train.T), axis=1)  # latent-major, as tk.fms lays them out
        t2 = time.process_time()
        depth1.append(t1 - t0)
        sort.append(t2 - t1)
    d, b = float(np.median(depth1)), float(np.median(sort))
    print(f"depth-1 search {d:.3f} CPU-s against one sort of the {train.shape[0]} x {train.shape[1]} training latents "
          f"{b:.3f} CPU-s: {b / d:.0%} of the sort bound (medians of {args.rounds})")


if __name__ == "__main__":
    main()
