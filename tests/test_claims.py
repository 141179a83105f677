"""The claims ledger: asserted in tests, recorded (and the run goes on) in full runs on any model."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import toolkit as tk
from toolkit import claims


@pytest.fixture(autouse=True)
def fresh_ledger(monkeypatch):
    claims.reset()
    monkeypatch.delenv("TOOLKIT_CLAIMS", raising=False)
    yield
    claims.reset()


def test_a_claim_that_holds_is_recorded_with_its_numbers():
    assert tk.claim("a beats b", np.float64(0.7) > 0.5, against="chance", a=np.float32(0.7), b=0.5).held is True
    (c,) = claims.ledger()
    assert c["name"] == "a beats b" and c["held"] is True and c["against"] == "chance"
    assert c["numbers"]["b"] == 0.5 and abs(c["numbers"]["a"] - 0.7) < 1e-6


def test_in_fast_mode_a_claim_that_fails_fails_like_an_assert(monkeypatch):
    monkeypatch.setenv("TOOLKIT_FAST", "1")
    with pytest.raises(AssertionError, match=r"did NOT hold: a beats b \[a=0.3, b=0.5\] \(against: chance\)"):
        tk.claim("a beats b", 0.3 > 0.5, against="chance", a=0.3, b=0.5)
    assert claims.ledger()[0]["held"] is False  # recorded before raising


def test_in_full_mode_a_failed_claim_is_recorded_and_the_run_goes_on(monkeypatch, capsys):
    monkeypatch.setenv("TOOLKIT_FAST", "0")
    assert tk.claim("a beats b", torch.tensor(False), against="chance", a=0.3).held is False
    assert "did NOT hold" in capsys.readouterr().out
    tk.claim("c beats d", True, against="chance")
    table = tk.claims_table()
    assert table["held"].tolist() == [False, True] and table["claim"].tolist() == ["a beats b", "c beats d"]


def test_the_mode_variable_overrides_and_is_checked(monkeypatch):
    monkeypatch.setenv("TOOLKIT_FAST", "0")
    monkeypatch.setenv("TOOLKIT_CLAIMS", "assert")
    with pytest.raises(tk.ClaimFailed):
        tk.claim("x", False, against="y")
    monkeypatch.setenv("TOOLKIT_CLAIMS", "warn")
    with pytest.raises(ValueError, match="TOOLKIT_CLAIMS='warn'.*'assert', 'record'"):
        tk.claim("x", True, against="y")


def test_restating_a_claim_replaces_it_so_rerunning_a_cell_does_not_duplicate():
    tk.claim("x", True, against="y", v=1)
    tk.claim("z", True, against="y")
    tk.claim("x", True, against="y", v=2)
    assert [c["name"] for c in claims.ledger()] == ["z", "x"] and claims.ledger()[1]["numbers"] == {"v": 2}


@pytest.mark.parametrize("bad, match", [
    (dict(name="", held=True, against="y"), "needs a name"),
    (dict(name="x", held=True, against=" "), "needs `against`"),
    (dict(name="x", held=np.array([True, False]), against="y"), "one True/False value"),
])
def test_bad_claims_are_refused(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tk.claim(bad.pop("name"), bad.pop("held"), **bad)


def test_a_number_that_is_not_a_number_is_refused():
    with pytest.raises(TypeError, match="claim number m=.*must be a number"):
        tk.claim("x", True, against="y", m=object())


def test_save_results_writes_the_ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_FAST", "0")
    tk.claim("held one", True, against="base", v=0.123456789)
    tk.claim("failed one", False, against="base", v=[1, 2])
    path = tk.save_results("nb", {"m": 1}, folder=tmp_path)
    record = json.loads(path.read_text())
    assert [(c["name"], c["held"]) for c in record["claims"]] == [("held one", True), ("failed one", False)]
    assert record["claims"][0]["numbers"]["v"] == 0.123457 and record["claims"][1]["numbers"]["v"] == [1.0, 2.0]


def test_the_summary_lists_what_did_not_hold_and_strict_mode_fails(tmp_path, monkeypatch, capsys):
    import subprocess
    import sys

    monkeypatch.setenv("TOOLKIT_FAST", "0")
    tk.claim("held one", True, against="base")
    tk.claim("failed one", False, against="base", v=1)
    tk.save_results("nb", {"m": 1}, folder=tmp_path)
    capsys.readouterr()
    assert claims.summarize(tmp_path) == 1
    out = capsys.readouterr().out
    assert "nb (" in out and "1/2 claims held" in out and "did NOT hold: failed one" in out
    script = Path(__file__).resolve().parents[1] / "scripts" / "claims.py"
    run = lambda *a: subprocess.run([sys.executable, str(script), *a, str(tmp_path)], capture_output=True)
    assert run().returncode == 0 and run("--strict").returncode == 1
    with pytest.raises(FileNotFoundError, match="no results files"):
        claims.summarize(tmp_path / "empty")


def test_a_model_specific_claim_is_recorded_and_never_asserted(monkeypatch, capsys):
    monkeypatch.setenv("TOOLKIT_FAST", "1")
    assert tk.claim("peaks on the toward side", False, against="alpha 0", model_specific=True, peak=0.0).held is False
    assert "some models and not on others" in capsys.readouterr().out
    # any other reason works the same way, and is kept with the claim
    assert tk.claim("rises at every seed", False, against="alpha 0", reported="seed 2 fell short").held is False
    assert "reported, not asserted: seed 2 fell short" in capsys.readouterr().out
    first, second = claims.ledger()
    assert first["held"] is False and first["asserted"] is False and first["reported"] == claims.MODEL_SPECIFIC
    assert second["asserted"] is False and second["reported"] == "seed 2 fell short"
    assert tk.claims_table()["asserted"].tolist() == [False, False]
    for bad in ("", "  ", 3):
        with pytest.raises(ValueError, match="`reported` must say why"):
            tk.claim("x", True, against="y", reported=bad)
    with pytest.raises(ValueError, match="not both"):
        tk.claim("x", True, against="y", reported="why", model_specific=True)


def test_compare_puts_runs_side_by_side(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_FAST", "0")
    for run, outcome in (("a", True), ("b", False)):
        claims.reset()
        tk.claim("x beats y", outcome, against="y")
        if run == "a":
            tk.claim("only in a", True, against="z", model_specific=True)
        tk.save_results("nb", {"m": 1}, folder=tmp_path / run)
    table = claims.compare([tmp_path / "a", tmp_path / "b"]).splitlines()
    assert table[2].endswith("| x beats y | held | **did not hold** |")
    assert table[3].endswith("| only in a | held (reported) | – |")


def test_compare_numbers_gives_each_value_and_its_spread(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_FAST", "0")
    for run, (auc, n) in {"s0": (0.9, 10), "s1": (0.7, 12), "s2": (0.8, 11)}.items():
        claims.reset()
        tk.claim("probe beats chance", True, against="0.5", auroc=auc, n=n)
        if run == "s0":
            tk.claim("only at seed 0", True, against="z", peak=float("nan"))
        tk.save_results("nb", {"m": 1}, folder=tmp_path / run)
    rows = claims.compare([tmp_path / r for r in ("s0", "s1", "s2")], numbers=True).splitlines()
    assert rows[0].endswith("| spread (min to max) |")
    assert rows[2].endswith("| probe beats chance | auroc | 0.9 | 0.7 | 0.8 | 0.7 to 0.9 |")
    assert rows[3].endswith("| probe beats chance | n | 10 | 12 | 11 | 10 to 12 |")
    assert rows[4].endswith("| only at seed 0 | peak | nan | – | – | – |")  # a non-finite value has no spread
    script = Path(__file__).resolve().parents[1] / "scripts" / "claims.py"
    out = subprocess.run([sys.executable, str(script), "--compare", "--numbers", str(tmp_path / "s0"),
                          str(tmp_path / "s1")], capture_output=True, text=True)
    assert out.returncode == 0 and "0.7 to 0.9" in out.stdout
    bad = subprocess.run([sys.executable, str(script), "--numbers", str(tmp_path / "s0")], capture_output=True, text=True)
    assert bad.returncode == 2 and "--numbers goes with --compare" in bad.stderr


def test_a_claim_reads_as_a_sentence_and_lists_keep_whole_numbers():
    from IPython.lib.pretty import pretty

    c = tk.claim("k matters", True, against="k = 8", ks=np.array([8, 64]), fvu=[0.50929862, 0.1])
    assert bool(c) and c.numbers["ks"] == [8, 64] and isinstance(c.numbers["ks"][0], int)
    assert pretty(c) == "claim held: k matters [ks=[8, 64], fvu=[0.5093, 0.1]] (against: k = 8)"
