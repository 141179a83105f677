"""Benchmark: toolkit's vectorized FMS against the plain scikit-learn implementation of the same definition.

Both compute FMS@1 and FMS@5 (p=(1, 5), max_depth=8, 30% stratified held-out split) of one planted concept
on 10,000 samples x 4,096 dense Gaussian latents (continuous values, so no two samples tie on a latent).
The reference (``toolkit.monosemanticity.fms_reference``) fits one ``DecisionTreeClassifier`` per removal and per depth.
Printed: the time of each, the ratio, and whether the accuracy curves agree.

Run: ``.venv/bin/python benchmarks/fms.py`` (add ``--n 2000 --m 512`` for a quick run).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from toolkit.monosemanticity import fms, fms_reference


def planted(n: int, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Latents where latent 7 carries most of a concept and latents 100..104 a little of it."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, m)).astype(np.float32)
    logit = 2.0 * X[:, 7] + 0.5 * X[:, 100:105].sum(axis=1) + rng.standard_normal(n)
    return X, (logit > 0).astype(np.int64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="samples")
    ap.add_argument("--m", type=int, default=4096, help="latents")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    X, y = planted(args.n, args.m, args.seed)
    fms(X[:200, :4], y[:200], p=1, max_depth=2)  # warm-up: scikit-learn's first import takes seconds
    fms_reference(X[:200, :4], y[:200], p=1, max_depth=2)
    kw = dict(p=(1, 5), max_depth=8, test_size=0.3, random_state=0)
    print(f"data: {args.n} samples x {args.m} latents, positives {y.mean():.3f}; p=(1, 5), max_depth=8")

    def timed(fn):  # wall-clock and CPU time of this process (CPU time is steadier on a shared machine)
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn(X, y, **kw)
        return out, time.perf_counter() - w0, time.process_time() - c0

    ours, w_ours, c_ours = timed(fms)
    print(f"tk.fms:             wall {w_ours:8.2f} s  cpu {c_ours:8.2f} s  "
          f"FMS@1={ours.score[1]:.4f} FMS@5={ours.score[5]:.4f}", flush=True)
    ref, w_ref, c_ref = timed(fms_reference)
    print(f"sklearn reference:  wall {w_ref:8.2f} s  cpu {c_ref:8.2f} s  "
          f"FMS@1={ref.score[1]:.4f} FMS@5={ref.score[5]:.4f}")
    print(f"ratio (reference / ours): wall {w_ref / w_ours:.1f}x, cpu {c_ref / c_ours:.1f}x")

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


if __name__ == "__main__":
    main()
