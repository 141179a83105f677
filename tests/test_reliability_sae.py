"""Hostile-input tests for SAE checkpoints, the SAELens export, the activation cache, train_sae's inputs
and arguments, and corpus paths: corrupt or mismatched data is refused or rebuilt, never used silently."""
from __future__ import annotations

import json
import struct
from types import SimpleNamespace

import pytest
import torch

import toolkit as tk
import toolkit.data
import toolkit.tracing
from toolkit import integrity
from toolkit.activations import Activations


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny SAEs: a second thread only costs
    yield
    torch.set_num_threads(before)


def _trained(d_in: int = 8, n_latents: int = 16, k: int = 2) -> tk.TopKSAE:
    torch.manual_seed(0)
    sae = tk.TopKSAE(d_in, n_latents, k=k)
    tk.train_sae(sae, torch.randn(200, d_in) * 3 + 1, steps=5, batch_size=50, progress=False)
    return sae


def _flip_byte(path, tensor: str) -> None:
    """Flip one bit inside ``tensor``'s bytes in a safetensors file, leaving the header intact
    (the damage a bad disk or copy does: the file still parses, one value changes)."""
    raw = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    begin, _ = json.loads(raw[8: 8 + n])[tensor]["data_offsets"]
    raw[8 + n + begin + 1] ^= 0x01
    path.write_bytes(bytes(raw))


def _truncate(path, keep: float = 0.6) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


# ----------------------------------------------------------------------------- SAE checkpoints
def test_save_records_checksums_and_round_trips(tmp_path):
    from safetensors import safe_open

    sae = _trained()
    folder = sae.save(tmp_path / "ckpt")
    with safe_open(str(folder / "sae.safetensors"), framework="pt") as f:
        meta = f.metadata()
    assert {f"sha256:{name}" for name in sae.state_dict()} | {"sha256:config"} <= set(meta)
    again = tk.TopKSAE.load(folder)
    x = torch.randn(5, 8)
    assert torch.equal(again(x), sae(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folder left behind


def test_flipped_byte_in_weights_is_refused(tmp_path):
    folder = _trained().save(tmp_path / "ckpt")
    _flip_byte(folder / "sae.safetensors", "W_dec")
    with pytest.raises(ValueError, match=r"sae\.safetensors: tensor 'W_dec' does not match the SHA-256.*re-save"):
        tk.TopKSAE.load(folder)
    with pytest.raises(ValueError, match="'W_dec' does not match the SHA-256"):
        tk.TopKSAE(8, 16, k=2).load_weights(folder)


def test_edited_k_in_config_is_refused(tmp_path):
    # k changes no tensor shape, so only the recorded config digest can catch this edit
    folder = _trained().save(tmp_path / "ckpt")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["k"] = 5
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    with pytest.raises(ValueError, match=r"config\.json does not match the config saved with sae\.safetensors"):
        tk.TopKSAE.load(folder)
    fresh = tk.TopKSAE(8, 16, k=5, aux_k=4)  # matches the edited config in every value
    before = fresh.W_dec.detach().clone()
    with pytest.raises(ValueError, match="does not match the config saved"):
        fresh.load_weights(folder)
    assert torch.equal(fresh.W_dec, before)  # a refused load leaves the instance untouched
    # reformatting the JSON without changing a value is harmless
    cfg["k"] = 2
    (folder / "config.json").write_text(json.dumps(cfg))
    assert tk.TopKSAE.load(folder).k == 2


def test_truncated_or_garbled_checkpoint_names_the_file_and_the_remedy(tmp_path):
    folder = _trained().save(tmp_path / "ckpt")
    good = (folder / "sae.safetensors").read_bytes()
    _truncate(folder / "sae.safetensors")
    with pytest.raises(ValueError, match=r"ckpt/sae\.safetensors is truncated or corrupt.*re-save the SAE.*delete"):
        tk.TopKSAE.load(folder)
    (folder / "sae.safetensors").write_bytes(good)
    _truncate(folder / "config.json", keep=0.5)
    with pytest.raises(ValueError, match=r"config\.json is truncated or corrupt: not valid JSON.*re-save the SAE"):
        tk.TopKSAE.load(folder)


def test_checkpoint_with_nan_weights_is_refused(tmp_path):
    from safetensors.torch import save_file

    sae = _trained()
    folder = sae.save(tmp_path / "ckpt")
    # a checkpoint that is internally consistent (digests match) but holds NaN: e.g. written by another tool
    state = {k: v.detach().clone().contiguous() for k, v in sae.state_dict().items()}
    state["W_dec"][3, 1] = float("nan")
    cfg = json.loads((folder / "config.json").read_text())
    digests = integrity.digests(state, cfg)
    save_file(state, str(folder / "sae.safetensors"), metadata={"kind": "TopKSAE", **digests})
    with pytest.raises(ValueError, match=r"tensor 'W_dec' has 1 non-finite value\(s\) \(NaN\).*ckpt"):
        tk.TopKSAE.load(folder)
    # saving a diverged SAE is refused up front, rather than writing a checkpoint load() would refuse
    with torch.no_grad():
        sae.b_enc[0] = float("inf")
    with pytest.raises(ValueError, match=r"tensor 'b_enc' has 1 non-finite value\(s\) \(inf\).*being saved"):
        sae.save(tmp_path / "diverged")
    assert not (tmp_path / "diverged").exists()


def test_checkpoint_without_checksums(tmp_path):
    from safetensors.torch import save_file

    sae = _trained()
    folder = sae.save(tmp_path / "ckpt")
    state = {k: v.detach().clone().contiguous() for k, v in sae.state_dict().items()}
    # format_version 2 always records checksums: a v2 file without them was replaced or damaged
    save_file(state, str(folder / "sae.safetensors"), metadata={"kind": "TopKSAE"})
    with pytest.raises(ValueError, match="records no checksums"):
        tk.TopKSAE.load(folder)
    # a format_version 1 checkpoint (older toolkit) loads, but not silently
    cfg = json.loads((folder / "config.json").read_text())
    cfg["format_version"] = 1
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.warns(UserWarning, match="without checksums"):
        assert torch.equal(tk.TopKSAE.load(folder).W_dec, sae.W_dec)
    state["W_enc"][0, 0] = float("nan")  # and its tensors are still checked for NaN/inf
    save_file(state, str(folder / "sae.safetensors"), metadata={"kind": "TopKSAE"})
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="tensor 'W_enc' has 1 non-finite"):
        tk.TopKSAE.load(folder)


# ----------------------------------------------------------------------------- destructive writes
def test_save_and_export_refuse_a_folder_holding_other_files(tmp_path):
    sae = _trained()
    folder = sae.save(tmp_path / "sae")
    # another format on top of a checkpoint would leave a folder holding two SAEs
    with pytest.raises(FileExistsError, match=r"already holds other files \['config\.json', 'sae\.safetensors'\]"):
        tk.export_saelens(sae, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "sae.safetensors"]
    tk.export_saelens(sae, folder, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        sae.save(folder)
    sae.save(folder, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "sae.safetensors"]
    # re-saving over an earlier checkpoint (a re-run notebook) needs no flag
    other = tk.TopKSAE(8, 16, k=3)
    other.save(folder)
    assert tk.TopKSAE.load(folder).k == 3
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"\['todo\.txt'\]"):
        sae.save(notes)
    assert (notes / "todo.txt").read_text() == "mine"
    (notes / "sub").mkdir()
    with pytest.raises(FileExistsError, match="sub-folders"):
        sae.save(notes, overwrite=True)  # never deletes a tree
    with pytest.raises(TypeError, match="overwrite must be True or False"):
        sae.save(tmp_path / "x", overwrite="yes")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "sae"]  # no temporary folders left


def test_saelens_export_is_verified_on_load(tmp_path):
    sae = _trained()
    folder = tk.export_saelens(sae, tmp_path / "lens")
    assert type(tk.load_saelens(folder)) is tk.TopKSAE
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["k"] = 4
    cfg["activation_fn_kwargs"]["k"] = 4
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"cfg\.json does not match the config saved"):
        tk.load_saelens(folder)
    tk.export_saelens(sae, folder)  # same format: replaced in place
    _flip_byte(folder / "sae_weights.safetensors", "W_enc")
    with pytest.raises(ValueError, match="tensor 'W_enc' does not match the SHA-256.*export the SAE again"):
        tk.load_saelens(folder)
    tk.export_saelens(sae, folder)
    _truncate(folder / "sae_weights.safetensors")
    with pytest.raises(ValueError, match=r"sae_weights\.safetensors is truncated or corrupt"):
        tk.load_saelens(folder)


# ----------------------------------------------------------------------------- train_sae inputs and arguments
def test_train_sae_names_non_finite_inputs():
    x = torch.randn(100, 8)
    x[7, 2] = float("nan")
    x[40, 0] = float("inf")
    with pytest.raises(ValueError, match=r"acts has 2 non-finite value\(s\) \(NaN/inf\) of 800, first at index "
                                         r"\(7, 2\).*2 of 100 rows are affected \(rows \[7, 40\]\)"):
        tk.train_sae(tk.TopKSAE(8, 16, k=2), x, steps=3, progress=False)
    g = tk.GuidedSAE(8, 16, k=2, n_concepts=1)
    y = torch.ones(100)
    y[12] = float("nan")
    with pytest.raises(ValueError, match=r"labels has 1 non-finite value\(s\) \(NaN\) of 100, first at index \(12,\)"):
        tk.train_sae(g, torch.randn(100, 8), labels=y, steps=3, progress=False)


def test_large_finite_activations_train_without_a_false_lr_diagnosis():
    # |x| ~ 1e19: x**2 overflows float32, which made the fitted scale inf and the first loss NaN
    # ("lower lr" at step 0, before any update). The scale is fitted in float64 now.
    torch.manual_seed(0)
    sae = tk.TopKSAE(8, 16, k=2)
    history = tk.train_sae(sae, torch.randn(200, 8) * 1e19, steps=5, batch_size=50, progress=False)
    assert torch.isfinite(sae.scale) and history["loss"].notna().all()


def test_train_sae_keeps_the_lr_message_for_a_real_divergence():
    torch.manual_seed(0)
    sae = tk.ReluSAE(8, 16, l1_coeff=1.0)
    with pytest.raises(FloatingPointError, match=r"at step [1-9]\d*; lower lr \(now 1e\+30\)"):
        tk.train_sae(sae, torch.randn(200, 8), steps=50, batch_size=50, lr=1e30, warmup_steps=0, progress=False)


@pytest.mark.parametrize("kwargs,error,message", [
    ({"epochs": 0}, ValueError, r"epochs must be a finite number > 0, got 0"),
    ({"epochs": -1}, ValueError, r"epochs must be .*got -1"),
    ({"epochs": 0.001}, ValueError, r"epochs=0.001 is less than one training step \(2 steps per epoch"),
    ({"steps": 0}, ValueError, r"steps must be an integer >= 1, got 0"),
    ({"steps": 2.5}, TypeError, r"steps must be an integer >= 1, got 2.5"),
    ({"batch_size": 0}, ValueError, r"batch_size must be an integer >= 1, got 0"),
    ({"batch_size": 64.0}, TypeError, r"batch_size must be an integer"),
    ({"lr": 0}, ValueError, r"lr must be a finite number > 0, got 0"),
    ({"lr": -1e-3}, ValueError, r"lr must be .*got -0.001"),
    ({"lr": float("nan")}, ValueError, r"lr must be a finite number"),
    ({"lr": "1e-3"}, TypeError, r"lr must be a number .*'1e-3' \(str\)"),
    ({"log_every": 0}, ValueError, r"log_every must be an integer >= 1, got 0"),
])
def test_train_sae_argument_checks(kwargs, error, message):
    sae = tk.TopKSAE(8, 16, k=2)
    before = sae.W_dec.detach().clone()
    with pytest.raises(error, match=message):
        tk.train_sae(sae, torch.randn(100, 8), **{"batch_size": 64, **kwargs}, progress=False)
    assert torch.equal(sae.W_dec, before)  # refused before any step


def test_train_sae_fractional_epochs_still_work():
    history = tk.train_sae(tk.TopKSAE(8, 16, k=2), torch.randn(100, 8), epochs=1.5, batch_size=25,
                           log_every=1, progress=False)
    assert history["step"].iloc[-1] == 6


# ----------------------------------------------------------------------------- corpus and concept paths
def _offline_datasets(monkeypatch):
    """What datasets does for an unknown name offline, without touching the network."""
    import datasets

    def load_dataset(path, *args, **kwargs):
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)


def test_load_corpus_missing_relative_path_is_named(tmp_path, monkeypatch):
    _offline_datasets(monkeypatch)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        tk.load_corpus("data/my_corpus.jsonl")
    text = str(err.value)
    assert "does not exist" in text and str(tmp_path / "data" / "my_corpus.jsonl") in text
    assert "load_corpus()" in text and "local file" in text and "Hugging Face dataset id" in text
    assert "Couldn't reach" not in text
    # a bare name that is neither local nor loadable: both possibilities are named
    with pytest.raises(FileNotFoundError, match=r"neither a local path \(no .*my_corpus\).*load_corpus\(\)"):
        tk.load_corpus("my_corpus")


def test_load_concepts_path_is_explained(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"valid names: \['cooking', .*'toxicity'\].*looks like a path.*"
                                         r"does not exist"):
        tk.load_concepts("data/concepts/mine.jsonl")


# ----------------------------------------------------------------------------- activation cache
class _Tokenizer:
    def __call__(self, texts):
        return SimpleNamespace(input_ids=[[len(w) for w in t.split()] for t in texts])

    def convert_ids_to_tokens(self, ids):
        return [str(i) for i in ids]


class _FakeModel:
    """Just enough of tk.Model for cache_activations; get_activations is replaced below."""
    name = "fake/model"
    d_model = 4
    n_layers = 4
    adds_bos = False
    tokenizer = _Tokenizer()

    def check_layer(self, layer):
        return layer


@pytest.fixture()
def fake_acts(monkeypatch):
    calls = []

    def get_activations(model, texts, layer, batch_size=16, site="resid", progress=True):
        calls.append(list(texts))
        rows, index = [], []
        for t_id, text in enumerate(texts):
            for pos, word in enumerate(text.split()):
                rows.append([float(len(word)), float(pos), float(layer), float(t_id)])
                index.append((t_id, pos, len(word)))
        text_id, position, token_id = (list(col) for col in zip(*index))
        return Activations.from_rows(torch.tensor(rows), text_id, position, token_id, len(texts),
                                     tokenizer=model.tokenizer)

    monkeypatch.setattr(toolkit.tracing, "get_activations", get_activations)
    return calls


TEXTS = ["the cat sat on the mat", "in the beginning was the word", "lists are mutable"]


@pytest.mark.parametrize("damage,why", [
    (lambda p: _flip_byte(p, "acts"), "fails its SHA-256 check on tensor 'acts'"),
    (lambda p: _truncate(p), "is truncated or corrupt"),
    (lambda p: p.write_bytes(b"\0" * 3), "is truncated or corrupt"),
])
def test_damaged_activation_cache_is_rebuilt(tmp_path, fake_acts, capsys, damage, why):
    model = _FakeModel()
    first = tk.cache_activations(model, TEXTS, 1, cache_dir=tmp_path, progress=False)
    assert len(fake_acts) == 1
    (path,) = tmp_path.rglob("*.safetensors")
    damage(path)
    toolkit.data._MEMORY.clear()  # a new session: the file is all there is
    capsys.readouterr()
    again = tk.cache_activations(model, TEXTS, 1, cache_dir=tmp_path, progress=False)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and why in out[0] and "recomputing" in out[0] and path.name in out[0]
    assert len(fake_acts) == 2 and torch.equal(again.rows, first.rows)  # recomputed, not read
    toolkit.data._MEMORY.clear()
    third = tk.cache_activations(model, TEXTS, 1, cache_dir=tmp_path, progress=False)  # the rebuilt file is sound
    assert len(fake_acts) == 2 and torch.equal(third.rows, first.rows) and capsys.readouterr().out == ""
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary files left behind


def test_activation_cache_without_checksums_is_stale(tmp_path, fake_acts, capsys):
    from safetensors.torch import save_file

    model = _FakeModel()
    path = tk.activation_cache_path(model, TEXTS, 1, cache_dir=tmp_path)
    path.parent.mkdir(parents=True)
    # what the previous toolkit wrote: the right tensors, no checksums (here with wrong values)
    n = 13
    save_file({"acts": torch.full((n, 4), 7.0), "text_id": torch.zeros(n, dtype=torch.int64),
               "position": torch.ones(n, dtype=torch.int64), "token_id": torch.ones(n, dtype=torch.int64)},
              str(path), metadata={"model": model.name})
    acts = tk.cache_activations(model, TEXTS, 1, cache_dir=tmp_path, progress=False)
    assert len(fake_acts) == 1 and not torch.all(acts.rows == 7.0)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "no checksums" in out and "recomputing" in out
