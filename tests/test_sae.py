"""Unit tests for the SAE modules (toolkit/sae.py, sae_training.py, sae_metrics.py, saelens.py) and the
corpus/activation-cache parts of toolkit/data.py."""
from __future__ import annotations

import json

import pytest
import torch

import toolkit as tk


def planted(n: int = 6000, d: int = 24, m: int = 48, k: int = 3, seed: int = 0):
    """Synthetic activations: each row is a sum of k of m random unit directions with magnitudes in [0.5, 2.5]."""
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(m, d, generator=g)
    dictionary /= dictionary.norm(dim=1, keepdim=True)
    idx = torch.rand(n, m, generator=g).argsort(dim=1)[:, :k]
    mags = torch.rand(n, k, generator=g) * 2 + 0.5
    codes = torch.zeros(n, m).scatter(1, idx, mags)
    return codes @ dictionary, dictionary


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # These SAEs are tiny: one thread avoids the cost of syncing two (large on a busy machine).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained_topk(one_thread):
    torch.manual_seed(0)
    x, dictionary = planted()
    sae = tk.TopKSAE(24, 96, k=3)
    history = tk.train_sae(sae, x[:5000], random_state=0, progress=False)  # defaults otherwise
    return sae, x, dictionary, history


@pytest.mark.parametrize("cls,kw", [(tk.TopKSAE, {"k": 4}), (tk.ReluSAE, {"l1_coeff": 0.5})])
def test_shapes(cls, kw):
    sae = cls(16, 64, **kw)
    x = torch.randn(10, 16)
    f = sae.encode(x)
    assert f.shape == (10, 64) and (f >= 0).all()
    assert sae.decode(f).shape == (10, 16)
    assert sae(x).shape == (10, 16)
    assert sae(torch.randn(2, 5, 16)).shape == (2, 5, 16)  # [batch, pos, d] works too
    with pytest.raises(ValueError, match="d_in=16"):
        sae.encode(torch.randn(3, 15))


def test_topk_l0_equals_k():
    sae = tk.TopKSAE(16, 64, k=5)
    with torch.no_grad():
        sae.b_enc.fill_(100.0)  # every pre-activation positive: exactly k survive
    f = sae.encode(torch.randn(50, 16))
    assert ((f > 0).sum(dim=1) == 5).all()
    with torch.no_grad():
        sae.b_enc.fill_(0.0)
    f = sae.encode(torch.randn(50, 16))
    assert ((f > 0).sum(dim=1) <= 5).all()  # ReLU may zero some of the k, never add more
    for bad in (0, 65, 2.5):
        with pytest.raises(ValueError, match="k must be"):
            tk.TopKSAE(16, 64, k=bad)


def test_planted_dictionary_recovered_with_defaults(trained_topk):
    sae, x, dictionary, history = trained_topk
    m = tk.sae_metrics(sae, x[5000:])
    # A 3-sparse signal is reconstructable exactly by a 3-sparse code; FVU 0.1 leaves room for the
    # magnitude shrinkage of a finite run but fails a code that only learned the mean (FVU ~1).
    assert m["fvu"] < 0.1, m
    assert m["l0"] == pytest.approx(3.0, abs=0.05)
    # most true directions have a decoder row within ~25 degrees (cos > 0.9)
    w = sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True)
    best = (dictionary @ w.T).max(dim=1).values
    assert (best > 0.9).float().mean() > 0.8
    assert {"step", "loss", "mse", "fvu", "l0", "dead_frac", "lr"} <= set(history.columns)
    assert history["fvu"].iloc[-1] < history["fvu"].iloc[0]


# Planted problems that differ from the fixture's in size, sparsity, width and sample count: the
# defaults must stop on a held-out plateau, not on a step count chosen for one problem. "Converged"
# is measured, not assumed: a fixed run twice as long must not do clearly better on unseen rows.
@pytest.mark.parametrize("n,d,m,k,width", [
    (3000, 16, 64, 2, 128),    # few rows, a dictionary 4x overcomplete in d
    (6000, 32, 96, 5, 192),    # more rows, denser codes
    (1500, 32, 32, 1, 64),     # one active direction per row, few rows
    (4000, 24, 96, 3, 384),    # a wider SAE
])
def test_defaults_converge_on_other_planted_dictionaries(n, d, m, k, width):
    x, _ = planted(n=n + 2000, d=d, m=m, k=k, seed=d)
    sae = tk.TopKSAE(d, width, k=k)
    # batch_size is the one argument given: the stopping rule is under test, and smaller batches keep it quick
    history = tk.train_sae(sae, x[:n], batch_size=256, random_state=0, progress=False)
    assert history.attrs["stopped"].startswith("plateau"), history.attrs["stopped"]
    steps = int(history["step"].iloc[-1])
    longer = tk.TopKSAE(d, width, k=k)
    tk.train_sae(longer, x[:n], steps=2 * steps, batch_size=256, random_state=0, progress=False)
    fvu, fvu_longer = (tk.sae_metrics(s, x[n:])["fvu"] for s in (sae, longer))  # rows neither run saw
    assert fvu <= 1.1 * fvu_longer + 0.005, (fvu, fvu_longer, history.attrs["stopped"])
    assert fvu < 0.5  # and it learned the planted structure, not just the mean (FVU ~1)


def test_a_budget_too_small_to_converge_says_so():
    x, _ = planted(n=3000)
    with pytest.warns(RuntimeWarning, match="max_steps: the held-out loss was still improving"):
        history = tk.train_sae(tk.TopKSAE(24, 96, k=3), x, max_steps=100, random_state=0, progress=False)
    assert history.attrs["stopped"].startswith("max_steps") and history["step"].iloc[-1] == 100
    # A fixed budget says that it was fixed; so does the fallback for data too small to hold out.
    fixed = tk.train_sae(tk.TopKSAE(24, 96, k=3), x, steps=20, random_state=0, progress=False)
    assert fixed.attrs["stopped"] == "fixed budget: steps=20"
    small = tk.train_sae(tk.TopKSAE(24, 96, k=3), x[:150], random_state=0, progress=False)
    assert "too few to hold out" in small.attrs["stopped"] and small["step"].iloc[-1] == 500
    with pytest.raises(ValueError, match="max_steps bounds a run that stops on a plateau"):
        tk.train_sae(tk.TopKSAE(24, 96, k=3), x, steps=20, max_steps=50, progress=False)


@pytest.mark.filterwarnings("ignore:train_sae. max_steps")
def test_plateau_stop_trains_supervised_saes_with_their_labels():
    """The held-out split takes its labels along: a G-SAE trained to a plateau still learns its concept."""
    x, _ = planted(n=4000, seed=5)
    y = (x[:, 0] > 0).float()
    g = tk.GuidedSAE(24, 96, k=3, n_concepts=1)
    history = tk.train_sae(g, x[:3000], labels=y[:3000], max_steps=600, random_state=0, progress=False)
    assert history["val_loss"].notna().sum() >= 10 and history.attrs["val_loss"] > 0
    acc = ((g.pre_acts(x[3000:])[:, 0] > 0).float() == y[3000:]).float().mean()
    assert acc > 0.8, acc  # labels shuffled against their rows would leave it at chance, 0.5


def test_decoder_rows_unit_norm_after_training(trained_topk):
    sae = trained_topk[0]
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(sae.n_latents), atol=1e-5)


def test_relu_sae_learns_sparse_code():
    torch.manual_seed(0)
    x, _ = planted(n=4000)
    sae = tk.ReluSAE(24, 96, l1_coeff=1.0)
    tk.train_sae(sae, x[:3500], steps=250, random_state=0, progress=False)
    m = tk.sae_metrics(sae, x[3500:])
    assert m["fvu"] < 0.3 and m["l0"] < 24, m  # sparser than the input dimension, most variance kept
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(96), atol=1e-5)


def test_fvu_definition():
    x = torch.randn(100, 8)
    assert float(tk.fvu(x, x)) == 0.0
    assert float(tk.fvu(x, x.mean(0).expand_as(x))) == pytest.approx(1.0)
    assert float(tk.fvu(x, torch.zeros_like(x))) > 1.0 - 1e-6
    with pytest.raises(ValueError, match="shape"):
        tk.fvu(x, x[:, :4])


def test_sae_verbs_take_an_activations_result():
    """train_sae, sae_metrics and initialize read a tk.Activations as its rows: the same numbers as the tensor."""
    from toolkit.activations import Activations

    x, _ = planted(n=400, d=8, m=16, k=2)
    acts = Activations.from_rows(x, [i // 10 for i in range(400)], [i % 10 for i in range(400)], [0] * 400, 40)
    saes = []
    for data in (acts, acts.rows):
        torch.manual_seed(0)
        sae = tk.TopKSAE(8, 16, k=2)
        saes.append((sae, tk.train_sae(sae, data, steps=5, batch_size=64, progress=False, log_every=1)))
    (a, hist_a), (b, hist_b) = saes
    assert hist_a.equals(hist_b) and all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert tk.sae_metrics(a, acts) == tk.sae_metrics(a, acts.rows)


def test_auxk_gives_dead_latents_gradient():
    torch.manual_seed(0)
    x = torch.randn(64, 16)
    grads = {}
    for coeff in (1 / 32, 0.0):
        sae = tk.TopKSAE(16, 64, k=2, aux_coeff=coeff, dead_tokens=10)
        sae.initialize(x)
        dead = torch.zeros(64, dtype=torch.bool)
        dead[32:] = True
        sae.tokens_since_fired[dead] = 1000  # pretend half the latents never fired
        with torch.no_grad():
            sae.b_enc[:32] = 50.0  # live latents always win the top-k, so the others never fire
            sae.b_enc[32:] = 1.0
        loss, info = sae.loss(x)
        loss.backward()
        grads[coeff] = sae.W_enc.grad[:, 32:].abs().sum().item()
        assert info["aux"] >= 0
    assert grads[1 / 32] > 0 and grads[0.0] == 0.0


def test_train_sae_validates_inputs():
    sae = tk.TopKSAE(8, 16, k=2)
    x = torch.randn(100, 8)
    with pytest.raises(ValueError, match="unsupervised"):
        tk.train_sae(sae, x, steps=2, labels=torch.zeros(100), progress=False)
    with pytest.raises(ValueError, match="align"):
        tk.train_sae(sae, x, steps=2, labels=torch.zeros(99), progress=False)
    with pytest.raises(ValueError, match="d_in=8"):
        tk.train_sae(sae, torch.randn(100, 9), steps=2, progress=False)
    with pytest.raises(ValueError, match="not both"):
        tk.train_sae(sae, x, steps=2, epochs=1, progress=False)


def test_train_sae_passes_labels_to_loss():
    seen = []

    class Probe(tk.TopKSAE):
        def loss(self, x, labels=None):
            seen.append(labels.clone())
            return super().loss(x)

    x = torch.randn(40, 8)
    y = torch.arange(40)
    tk.train_sae(Probe(8, 16, k=2), x, steps=3, batch_size=10, labels=y, progress=False)
    assert len(seen) == 3 and all(s.shape == (10,) for s in seen)
    assert len(torch.unique(torch.cat(seen))) == 30  # one shuffled epoch: no repeats


def test_train_sae_is_seeded():
    x = torch.randn(500, 8)
    outs = []
    for _ in range(2):
        torch.manual_seed(1)
        sae = tk.TopKSAE(8, 16, k=2)
        tk.train_sae(sae, x, steps=30, batch_size=50, random_state=3, progress=False)
        outs.append(sae.W_dec.detach().clone())
    assert torch.equal(outs[0], outs[1])


def test_save_load_round_trip(tmp_path, trained_topk):
    sae, x, _, _ = trained_topk
    sae.save(tmp_path / "topk")
    cfg = json.loads((tmp_path / "topk" / "config.json").read_text())
    assert cfg["kind"] == "TopKSAE" and cfg["k"] == 3 and cfg["d_in"] == 24
    again = tk.TopKSAE.load(tmp_path / "topk")
    assert again.config() == sae.config()
    assert torch.equal(again(x[:50]), sae(x[:50]))
    any_kind = tk.SparseAutoencoder.load(tmp_path / "topk", k=3)
    assert isinstance(any_kind, tk.TopKSAE)
    relu = tk.ReluSAE(24, 32, l1_coeff=0.3)
    relu.save(tmp_path / "relu")
    assert tk.ReluSAE.load(tmp_path / "relu").l1_coeff == 0.3


def test_mismatched_checkpoints_are_refused(tmp_path):
    sae = tk.TopKSAE(16, 32, k=4)
    folder = sae.save(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="holds a TopKSAE, not a ReluSAE"):
        tk.ReluSAE.load(folder)
    with pytest.raises(ValueError, match=r"k=4 .*expected 8"):
        tk.TopKSAE.load(folder, k=8)
    with pytest.raises(ValueError, match="k=4 .* this SAE has k=2"):
        tk.TopKSAE(16, 32, k=2).load_weights(folder)
    with pytest.raises(ValueError, match="n_latents=32 .* n_latents=64"):
        tk.TopKSAE(16, 64, k=4).load_weights(folder)
    # a config edited to claim another width no longer matches its tensors
    cfg = json.loads((folder / "config.json").read_text())
    cfg["d_in"] = 20
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"'W_dec' has shape \(32, 16\)"):
        tk.TopKSAE.load(folder)
    cfg["kind"] = "NoSuchSAE"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unknown SAE kind 'NoSuchSAE'"):
        tk.SparseAutoencoder.load(folder)
    with pytest.raises(FileNotFoundError, match="config.json"):
        tk.TopKSAE.load(tmp_path / "empty")


def _saelens_forward(folder, x, arch):
    """SAELens's inference math, written out from its format: no toolkit code involved."""
    from safetensors.torch import load_file

    cfg = json.loads((folder / "cfg.json").read_text())
    w = load_file(str(folder / "sae_weights.safetensors"))
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    if arch == "topk":
        vals, idx = pre.topk(cfg["activation_fn_kwargs"]["k"], dim=-1)
        f = torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))
    else:
        f = torch.relu(pre)
    return f @ w["W_dec"] + w["b_dec"], cfg


@pytest.mark.parametrize("cls,kw,arch", [(tk.TopKSAE, {"k": 3}, "topk"), (tk.ReluSAE, {"l1_coeff": 1.0}, "standard")])
def test_saelens_export(tmp_path, cls, kw, arch):
    torch.manual_seed(0)
    x = torch.randn(200, 12) * 7 + 3  # far from unit scale, so the folded scale matters
    sae = cls(12, 40, **kw)
    tk.train_sae(sae, x, steps=20, batch_size=50, progress=False)
    assert float(sae.scale) != pytest.approx(1.0, abs=0.5)
    folder = tk.export_saelens(sae, tmp_path / "lens", hook_name="blocks.6.hook_resid_post", hook_layer=6)
    assert {p.name for p in folder.iterdir()} == {"cfg.json", "sae_weights.safetensors"}
    x_hat, cfg = _saelens_forward(folder, x[:20], arch)
    assert cfg["architecture"] == arch and cfg["d_in"] == 12 and cfg["d_sae"] == 40
    assert cfg["hook_name"] == "blocks.6.hook_resid_post"
    with torch.no_grad():
        assert torch.allclose(x_hat, sae(x[:20]), atol=1e-4)
        back = tk.load_saelens(folder)
        assert type(back) is cls
        assert torch.allclose(back(x[:20]), sae(x[:20]), atol=1e-4)


# ----------------------------------------------------------------------------- corpus and cache
def test_load_corpus_default():
    ds = tk.load_corpus()
    assert {"text", "source", "title", "n_tokens"} <= set(ds.column_names)
    assert sum(ds["n_tokens"]) >= 300_000
    assert set(ds["source"]) == {"web_bible", "python_docs"}


def test_load_corpus_local_file_and_dir(tmp_path):
    rows = [{"body": f"sentence number {i}", "n": i} for i in range(5)]
    folder = tmp_path / "mycorpus"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ds = tk.load_corpus(str(folder), text_column="body")  # the hub-id path: datasets.load_dataset(name)
    assert ds["text"] == [r["body"] for r in rows]
    ds = tk.load_corpus(str(folder / "train.jsonl"), text_column="body")
    assert len(ds) == 5
    with pytest.raises(ValueError, match="no column 'text'"):
        tk.load_corpus(str(folder))


def test_load_corpus_offline_hub_id_fails_fast(monkeypatch):
    import toolkit.models

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(toolkit.models, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(OSError, match="load_corpus()"):
        tk.load_corpus("someone/some-dataset")


@pytest.fixture(scope="module")
def model():
    return tk.load_model()


def test_cache_activations_bounded_and_reused(model, tmp_path):
    texts = ["The cat sat on the mat and looked at the door.", "In the beginning was the word.",
             "Python lists are mutable sequences.", "A fourth text that the budget never reaches."]
    acts = tk.cache_activations(model, texts, 2, max_tokens=15, cache_dir=tmp_path, chunk_texts=1, progress=False)
    assert acts.shape == (15, model.d_model)
    assert (acts.position > 0).all() and not acts.sink.any()  # position 0 (attention sink / BOS) is never cached
    assert acts.text_id.max() <= 1  # the budget ran out inside text 1: later texts never ran
    ref = tk.get_activations(model, texts[:2], layer=2)
    # the cached rows are the model's non-sink rows, in order (at layer 2 SmolLM2 has massive-norm tokens
    # besides position 0, so this is not the same as dropping position 0)
    assert torch.allclose(acts.rows, ref.without_sinks().rows[:15], atol=1e-4)
    files = list(tmp_path.rglob("*.safetensors"))
    assert len(files) == 1 and "resid02" in files[0].name  # site and layer name the file
    stamp = files[0].stat().st_mtime_ns
    again = tk.cache_activations(model, texts, 2, max_tokens=15, cache_dir=tmp_path, progress=False)
    assert torch.equal(again.rows, acts.rows) and files[0].stat().st_mtime_ns == stamp  # read back, not recomputed
    other = tk.cache_activations(model, texts[:1], 2, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.rglob("*.safetensors"))) == 2 and other.shape[0] < 15


class _IdentitySAE(tk.TopKSAE):
    """A stand-in whose reconstruction is exact, so CE loss recovered must be exactly 1."""

    def forward(self, x):
        return x


def test_ce_loss_recovered_exact_and_shared_baselines(model):
    texts = ["The cat sat on the mat and looked at the door.", "In the beginning was the word."]
    layer = 3
    mean_act = torch.zeros(model.d_model)
    perfect = _IdentitySAE(model.d_model, 2 * model.d_model, k=4)
    crude = tk.TopKSAE(model.d_model, 2 * model.d_model, k=1)  # untrained: a poor reconstruction
    crude.initialize(tk.get_activations(model, texts, layer=layer))
    both = tk.ce_loss_recovered(model, {"perfect": perfect, "crude": crude}, texts, layer, mean_act=mean_act)
    assert set(both) == {"perfect", "crude"}
    assert both["perfect"]["recovered_zero"] == pytest.approx(1.0, abs=1e-5)
    assert both["perfect"]["ce_sae"] == pytest.approx(both["perfect"]["ce_clean"], abs=1e-5)
    assert both["crude"]["ce_sae"] > both["crude"]["ce_clean"] + 0.05
    assert both["crude"]["ce_zero"] == both["perfect"]["ce_zero"]  # one shared baseline pass
    single = tk.ce_loss_recovered(model, crude, texts, layer, mean_act=mean_act)
    assert single == pytest.approx(both["crude"])
    # layers are checked as get_activations checks them: negatives count from the end
    assert tk.ce_loss_recovered(model, crude, texts, layer - model.n_layers, mean_act=mean_act) == pytest.approx(single)
    with pytest.raises(IndexError, match=rf"0\.\.{model.n_layers - 1}"):
        tk.ce_loss_recovered(model, crude, texts, model.n_layers)
    with pytest.raises(TypeError, match="not a toolkit SparseAutoencoder"):
        tk.ce_loss_recovered(model, {"bad": torch.nn.Linear(2, 2)}, texts, layer)
