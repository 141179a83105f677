"""What every benchmark here shares: interleaved A/B rounds, a median ratio with its spread, and the machine's peak.

A ratio from one pair of runs on a shared machine means little: another job can slow either run by 2x or more.
So :func:`compare` runs a warm-up of each side (first calls pay for imports and allocator growth), then at
least 7 rounds in alternating order (A then B, B then A, ...), so drift hits both sides alike, and reports the
median ratio with its interquartile range, in wall time and in this process's CPU time. A loaded machine shows
as a gap between the two, and its load average is printed with the figures (:func:`machine`). The goal is judged
by the lower quartile, so that a goal is met in most rounds, not in a lucky median.

:func:`matmul_peak` measures the machine's sustained fp32 matrix-multiply throughput on the shapes a hot path
uses, in the same run, so a hot path can be reported as a fraction of what this machine can do at all
(:func:`fraction_of_peak`). Decoding is bound by memory, not arithmetic: :func:`memory_bandwidth` and
:func:`decode_line` report it as a fraction of the machine's measured bandwidth.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

MIN_ROUNDS = 7


@dataclass
class Timing:
    """Wall-clock and process CPU seconds of one call."""

    wall: float
    cpu: float


@dataclass
class Timed:
    """What a benchmarked function returns when it times itself (e.g. a worker in another virtual environment
    that reports the seconds of its training loop alone, leaving out its interpreter start and imports)."""

    output: Any
    timing: Timing


def timed(fn: Callable[[], Any]) -> tuple[Any, Timing]:
    """Call ``fn()``; return its output and its timing (its own, when it returns a :class:`Timed`)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    outer = Timing(time.perf_counter() - w, time.process_time() - c)
    if isinstance(out, Timed):
        return out.output, out.timing
    return out, outer


def machine() -> str:
    """One line on the machine: cores, torch threads, load average, platform."""
    import torch

    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"machine: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, load average {load}, "
            f"{platform.machine()} {platform.system()}, torch {torch.__version__}")


@dataclass
class Comparison:
    """The result of :func:`compare`: per-round speed-ups of ``ours`` over ``peer`` (peer time / our time)."""

    name: str
    goal: float
    wall: list[float]
    cpu: list[float]
    ours: list[Timing] = field(default_factory=list)
    peer: list[Timing] = field(default_factory=list)
    outputs: tuple[Any, Any] = (None, None)

    @staticmethod
    def _q(values: list[float]) -> tuple[float, float, float]:
        lo, med, hi = np.percentile(values, [25, 50, 75])
        return float(lo), float(med), float(hi)

    @property
    def median(self) -> float:
        return self._q(self.wall)[1]

    @property
    def lower_quartile(self) -> float:
        return self._q(self.wall)[0]

    @property
    def met(self) -> bool:
        return self.lower_quartile >= self.goal

    def our_seconds(self) -> float:
        """The median wall time of our side, for throughput and fraction-of-peak figures."""
        return float(np.median([t.wall for t in self.ours]))

    def report(self) -> str:
        (wl, wm, wh), (cl, cm, ch) = self._q(self.wall), self._q(self.cpu)
        verdict = "met" if self.met else "NOT met"
        return (f"{self.name}: {wm:.2f}x (IQR {wl:.2f}-{wh:.2f}) wall, {cm:.2f}x (IQR {cl:.2f}-{ch:.2f}) CPU, "
                f"{len(self.wall)} rounds; goal >= {self.goal}x by the lower quartile: {verdict}")


def compare(name: str, ours: Callable[[], Any], peer: Callable[[], Any], *, goal: float,
            rounds: int = MIN_ROUNDS, check: Callable[[Any, Any], None] | None = None,
            verbose: bool = False) -> Comparison:
    """Time ``ours`` against ``peer``: a warm-up of each, then ``rounds`` interleaved rounds.

    The ratio is the peer's time over ours (above 1: ours is faster). ``check(ours_output, peer_output)`` runs
    on the warm-up outputs and should raise if the two did not do the same work. Prints and returns a
    :class:`Comparison`.
    """
    return compare_many(name, ours, {"": peer}, goals={"": goal}, rounds=rounds,
                        check=check, verbose=verbose)[""]


def compare_many(name: str, ours: Callable[[], Any], peers: dict[str, Callable[[], Any]], *,
                 goals: dict[str, float], rounds: int = MIN_ROUNDS,
                 check: Callable[[Any, Any], None] | None = None, verbose: bool = False) -> dict[str, Comparison]:
    """:func:`compare` against several peers at once: each round runs ours and every peer, in an order that
    rotates from round to round, so each ratio comes from runs made side by side."""
    if rounds < MIN_ROUNDS:
        raise ValueError(f"rounds={rounds}: a spread needs at least {MIN_ROUNDS} rounds")
    if set(goals) != set(peers):
        raise ValueError(f"goals name {sorted(goals)}, peers are {sorted(peers)}: give one goal per peer")
    sides = [("ours", ours)] + [(p, fn) for p, fn in peers.items()]
    warm = {side: timed(fn)[0] for side, fn in sides}
    if check is not None:
        for p in peers:
            check(warm["ours"], warm[p])
    results = {p: Comparison(f"{name}{' vs ' + p if p else ''}", goals[p], [], [], outputs=(warm["ours"], warm[p]))
               for p in peers}
    for r in range(rounds):
        shift = r % len(sides)
        t: dict[str, Timing] = {}
        for side, fn in sides[shift:] + sides[:shift]:
            _, t[side] = timed(fn)
        for p, res in results.items():
            res.ours.append(t["ours"])
            res.peer.append(t[p])
            res.wall.append(t[p].wall / t["ours"].wall)
            res.cpu.append(t[p].cpu / max(t["ours"].cpu, 1e-9))
        if verbose:
            print(f"  round {r + 1}: " + ", ".join(f"{p or 'peer'} {res.wall[-1]:.2f}x wall" for p, res in results.items()),
                  flush=True)
    for res in results.values():
        print(res.report(), flush=True)
    return results


def matmul_peak(shapes: list[tuple[int, int, int]], *, seconds: float = 0.5) -> float:
    """Sustained fp32 GEMM throughput in GFLOP/s: the best over ``shapes`` (m, k, n) of ``torch.mm`` on
    ``[m, k] @ [k, n]``, each run repeatedly for about ``seconds`` after a warm-up, on this process's threads."""
    import torch

    gen = torch.Generator().manual_seed(0)
    best = 0.0
    for m, k, n in shapes:
        a = torch.randn(m, k, generator=gen)
        b = torch.randn(k, n, generator=gen)
        torch.mm(a, b)  # warm-up
        reps, start = 0, time.perf_counter()
        while True:
            torch.mm(a, b)
            reps += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds and reps >= 3:
                break
        best = max(best, 2.0 * m * k * n * reps / elapsed / 1e9)
    return best


def memory_bandwidth(megabytes: int = 256, *, seconds: float = 0.5) -> float:
    """Sustained memory bandwidth in GB/s: ``copy_`` between two float32 buffers of ``megabytes`` each (far larger
    than the caches), counting the bytes read and the bytes written, best of repeated copies for ``seconds``."""
    import torch

    n = megabytes * 2**20 // 4
    src, dst = torch.ones(n), torch.empty(n)
    dst.copy_(src)  # warm-up: pages touched
    best, start = 0.0, time.perf_counter()
    while True:
        t = time.perf_counter()
        dst.copy_(src)
        best = max(best, 2 * 4 * n / (time.perf_counter() - t) / 1e9)
        if time.perf_counter() - start >= seconds:
            return best


def decode_line(what: str, weight_bytes: float, steps: int, seconds: float, bandwidth_gbs: float) -> str:
    """A decoding loop as a fraction of the memory bandwidth: each step of a batch reads every weight once (on a
    CPU a small model's decoding is bound by that read, not by arithmetic). Prefill, the KV cache and the
    activations are left out, so the fraction is a lower bound."""
    rate = weight_bytes * steps / seconds / 1e9
    note = "" if rate / bandwidth_gbs >= 0.3 else "  (under 30%: see the note in this script on why)"
    return (f"{what}: weights read at {rate:.1f} GB/s = {rate / bandwidth_gbs:.0%} of this machine's measured memory "
            f"bandwidth ({bandwidth_gbs:.1f} GB/s){note}")


def fraction_of_peak(flops: float, seconds: float, peak_gflops: float) -> float:
    """The share of the measured peak that ``flops`` of work in ``seconds`` reached."""
    return flops / seconds / 1e9 / peak_gflops


def peak_line(what: str, flops: float, seconds: float, peak_gflops: float) -> str:
    frac = fraction_of_peak(flops, seconds, peak_gflops)
    note = "" if frac >= 0.3 else "  (under 30% of peak: see the note in this script on why)"
    return (f"{what}: {flops / seconds / 1e9:.1f} GFLOP/s = {frac:.0%} of this machine's measured fp32 GEMM peak "
            f"({peak_gflops:.1f} GFLOP/s){note}")
