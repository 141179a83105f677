"""The benchmarks' shared timing (benchmarks/harness.py): ratios, their spread, the goal and the rotation of sides."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import harness  # noqa: E402


def fixed(seconds: list[float], calls: list[str], name: str):
    """A side that reports the given times in turn (its own timing, as a worker in another venv does)."""
    it = iter(seconds)

    def fn():
        calls.append(name)
        s = next(it)
        return harness.Timed(name, harness.Timing(s, s / 2))
    return fn


def test_compare_reports_median_iqr_and_judges_the_goal_by_the_lower_quartile(capsys):
    calls: list[str] = []
    ours = fixed([1.0] * 8, calls, "ours")
    peer = fixed([9.0, 1.5, 1.8, 2.0, 2.2, 2.4, 2.6, 9.0], calls, "peer")  # warm-up first, then 7 rounds
    result = harness.compare("x", ours, peer, goal=2.0)
    assert result.wall == [1.5, 1.8, 2.0, 2.2, 2.4, 2.6, 9.0] and result.cpu == result.wall
    assert result.median == pytest.approx(2.2) and result.lower_quartile == pytest.approx(1.9)
    assert not result.met  # the median meets 2.0x, the lower quartile does not
    assert "2.20x (IQR 1.90-2.50) wall" in capsys.readouterr().out
    # alternating order: ours first in even rounds, the peer first in odd ones
    assert calls[:2] == ["ours", "peer"] and calls[2:6] == ["ours", "peer", "peer", "ours"]
    assert result.outputs == ("ours", "peer")


def test_compare_many_rotates_every_side_and_pairs_each_round():
    calls: list[str] = []
    ours = fixed([2.0] * 8, calls, "ours")
    peers = {"a": fixed([4.0] * 8, calls, "a"), "b": fixed([1.0] * 8, calls, "b")}
    results = harness.compare_many("y", ours, peers, goals={"a": 1.5, "b": 1.0})
    assert results["a"].median == 2.0 and results["a"].met
    assert results["b"].median == 0.5 and not results["b"].met
    rounds = [calls[i:i + 3] for i in range(3, len(calls), 3)]
    assert [r[0] for r in rounds[:3]] == ["ours", "a", "b"]  # each side leads a round in turn


def test_bad_arguments_are_refused():
    side = lambda: None  # noqa: E731
    with pytest.raises(ValueError, match="at least 7 rounds"):
        harness.compare("z", side, side, goal=1.0, rounds=3)
    with pytest.raises(ValueError, match="one goal per peer"):
        harness.compare_many("z", side, {"a": side}, goals={"b": 1.0})


def test_fraction_of_peak_and_the_lines_that_report_it():
    assert harness.fraction_of_peak(2e9, 1.0, 4.0) == pytest.approx(0.5)
    assert "50% of this machine's measured fp32 GEMM peak" in harness.peak_line("p", 2e9, 1.0, 4.0)
    assert "under 30%" in harness.peak_line("p", 1e9, 1.0, 4.0)
    assert "25% of this machine's measured memory bandwidth" in harness.decode_line("d", 1e9, 2, 1.0, 8.0)
