"""Environment-driven settings and the metrics/provenance record every notebook writes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import toolkit as tk
from toolkit import config


def test_pick_follows_fast_mode(monkeypatch):
    monkeypatch.setenv("TOOLKIT_FAST", "1")
    assert tk.pick(fast=1, full=2) == 1
    monkeypatch.setenv("TOOLKIT_FAST", "0")
    assert tk.pick(fast=1, full=2) == 2


def test_seed_everything_makes_torch_and_numpy_repeat():
    tk.seed_everything(123)
    a = (torch.rand(3), np.random.rand(3))
    tk.seed_everything(123)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert tk.config.last_seed() == 123


def test_cache_dir_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TOOLKIT_CACHE", str(tmp_path / "c"))
    assert tk.config.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


def test_save_results_is_deterministic_and_carries_provenance(tmp_path):
    metrics = {"acc": np.float32(0.912345678), "curve": torch.tensor([1.0, 2.0]), "n": np.int64(3), "ok": True}
    first = tk.save_results("demo", metrics, folder=tmp_path).read_text()
    second = tk.save_results("demo", metrics, folder=tmp_path).read_text()
    assert first == second
    record = json.loads(first)
    assert record["metrics"] == {"acc": 0.912346, "curve": [1.0, 2.0], "n": 3, "ok": True}
    prov = record["provenance"]
    for key in ("versions", "commit", "device", "dtype", "seed", "model", "mode"):
        assert key in prov
    assert prov["versions"]["torch"].startswith("2.13.0")


def test_save_results_refuses_what_json_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match="not JSON-serializable"):
        tk.save_results("demo", {"model": object()}, folder=tmp_path)
    with pytest.raises(ValueError, match="non-empty"):
        tk.save_results("demo", {}, folder=tmp_path)


def test_threads_follow_the_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("TOOLKIT_THREADS", "2")
        assert config.apply_threads() == 2
        monkeypatch.delenv("TOOLKIT_THREADS")
        monkeypatch.setenv("TOOLKIT_FAST", "1")
        assert config.apply_threads() == 1  # fast mode: one thread unless told otherwise
        for bad in ("two", "0"):
            monkeypatch.setenv("TOOLKIT_THREADS", bad)
            with pytest.raises(ValueError, match="TOOLKIT_THREADS"):
                config.apply_threads()
    finally:
        torch.set_num_threads(before)


def test_torch_threads_context_restores():
    before = torch.get_num_threads()
    with config.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="positive integer"):
        with config.torch_threads(0):
            pass


def test_provenance_is_displayed_once_not_printed(capsys):
    info = tk.provenance()
    assert capsys.readouterr().out == "", "provenance() printed; a bare last cell would then show it twice"
    assert isinstance(info, dict) and info["seed"] is not None
    text = str(info)
    assert text.splitlines()[0].startswith("versions") and "torch 2.13.0" in text

    class Printer:  # IPython's pretty printer calls _repr_pretty_ with one of these
        def __init__(self):
            self.out = []

        def text(self, s):
            self.out.append(s)

    p = Printer()
    info._repr_pretty_(p, False)
    assert p.out == [text]


def test_provenance_names_a_local_model_folder_without_its_path(monkeypatch, tmp_path):
    folder = tmp_path / "someone" / "models" / "my-model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    monkeypatch.setenv("TOOLKIT_MODEL", str(folder))
    model = tk.provenance()["model"]
    assert "my-model" in model and str(tmp_path) not in model and "someone" not in model
    other = tmp_path / "elsewhere" / "my-model"
    other.mkdir(parents=True)
    (other / "config.json").write_text('{"model_type": "llama"}')
    monkeypatch.setenv("TOOLKIT_MODEL", str(other))
    assert tk.provenance()["model"] == model, "the same model in another folder must be recorded the same way"
    (other / "config.json").write_text('{"model_type": "gemma3"}')
    assert tk.provenance()["model"] != model, "a different model must be recorded differently"


def test_timings_are_a_separate_declared_field(tmp_path):
    path = tk.save_results("demo", {"acc": 0.5}, timings={"runtime_s": 12.34567891}, folder=tmp_path)
    record = json.loads(path.read_text())
    assert record["metrics"] == {"acc": 0.5} and record["timings"] == {"runtime_s": 12.3457}
    assert "timings" not in json.loads(tk.save_results("demo", {"acc": 0.5}, folder=tmp_path).read_text())
    with pytest.raises(ValueError, match="timings must be a dict of seconds"):
        tk.save_results("demo", {"acc": 0.5}, timings={"runtime": "slow"}, folder=tmp_path)


def test_fast_flag_is_read_live(monkeypatch):
    # tk.FAST and config.fast() are one value, read when asked (no stale import-time snapshot).
    monkeypatch.setenv("TOOLKIT_FAST", "1")
    assert tk.FAST is True and config.fast() is True
    monkeypatch.setenv("TOOLKIT_FAST", "0")
    assert tk.FAST is False and config.fast() is False


def test_a_relative_results_folder_is_taken_from_the_repository_root(monkeypatch, tmp_path):
    # notebooks run in notebooks/, so a relative setting must not land in notebooks/build/...
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOOLKIT_RESULTS", "build/results/test-relative-xyz")
    got = tk.config.results_dir()
    try:
        assert got == tk.config.repo_root() / "build" / "results" / "test-relative-xyz"
    finally:
        got.rmdir()
    monkeypatch.setenv("TOOLKIT_RESULTS", str(tmp_path / "abs"))
    assert tk.config.results_dir() == tmp_path / "abs"


def test_headline_metrics_are_stored_with_label_and_meaning_and_shown_in_the_card(tmp_path):
    metrics = {"probe": {"auroc": 0.91234567}, "n": 12}
    path = tk.save_results("demo", metrics, folder=tmp_path,
                           headline={"probe.auroc": ("probe AUROC (0.5 = chance)", "held-out separation"),
                                     "n": ("sentences", "how many")})
    record = json.loads(path.read_text())
    assert [(r["key"], r["value"]) for r in record["headline"]] == [("probe.auroc", 0.912346), ("n", 12)]
    card = path._repr_markdown_()
    assert card.index("probe AUROC (0.5 = chance) | 0.912 | held-out separation") < card.index("sentences | 12")
    assert "demo" in card and path.parent._repr_markdown_() is None


@pytest.mark.parametrize("headline,error,match", [
    ({"probe.aurc": ("a", "b")}, KeyError, r"probe has no 'aurc'; it has \['auroc'\]"),
    ({"probe": ("a", "b")}, ValueError, "one number or string"),
    ({"n": ("only a label",)}, ValueError, r"\(label with unit, one-line meaning\)"),
    ({}, ValueError, "non-empty dict"),
])
def test_a_bad_headline_names_what_is_wrong(tmp_path, headline, error, match):
    with pytest.raises(error, match=match):
        tk.save_results("demo", {"probe": {"auroc": 0.9}, "n": 3}, folder=tmp_path, headline=headline)
