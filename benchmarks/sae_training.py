"""Benchmark: toolkit's TopKSAE training against two peers on the same cached activations: SAELens's TopK
trainer and EleutherAI's sparsify.

All three train a TopK SAE of the same size (d_in -> n_latents), the same k, batch size, number of steps, Adam
learning rate and schedule (warm-up, then linear decay to zero over the last 20%), AuxK weight (1/32) and dead
window, on the same residual-stream activations of the embedded model (layer 6, cached by
``tk.cache_activations`` from ``tk.load_corpus()``; 90% train, 10% held out).

- **SAELens** (``sae-lens==6.54.12``) is driven through its own ``SAETrainer`` with input normalisation
  ``expected_average_only_in`` (scale so that E||x||^2 = d_in, as the toolkit does).
- **sparsify** (``eai-sparsify==1.3.3``): its ``Trainer`` hooks a model and streams a dataset through it; it has
  no entry point for cached activations. So, as the issue that added it allows, its ``SparseCoder`` is
  trained by a loop that takes the steps its trainer takes (decoder bias set to the first batch's mean, unit-norm
  decoder, AuxK on latents dead for the window, gradient parallel to the decoder rows removed, Adam), on the
  same tensors, scaled as for the other two. The loop is the peer's update step, not its data pipeline.

Each peer runs in its own virtual environment (``.venv-saelens``, ``.venv-sparsify``, created on first run with
``torch==2.13.0`` pinned, so pip takes the CPU wheel), as a long-lived worker that warms up once and then
trains a fresh SAE on request, timing its own training loop (wall and CPU). ``harness.compare_many`` then
runs the toolkit and both workers in rotating order for at least 7 rounds and reports steps/s as a median
speed-up with its interquartile range. Goals: >= 1.5x SAELens and >= 1.0x sparsify by the lower quartile,
each with held-out FVU no worse (within 0.01).

The physical limit: a TopK step does about 4·B·d·m useful FLOPs in the encoder (forward, and the weight
gradient; the input needs none) and 4·B·k·d in the sparse decoder, where B is the batch, d the input width,
m the number of latents. The toolkit's step is reported as a fraction of this machine's fp32 GEMM peak on
those shapes, measured in the same run. The top-k selection, the AuxK pass and Adam's update are not
counted, so the fraction is a lower bound on how busy the machine is.

Also checked: SAELens loads the toolkit's SAELens-format export (``tk.export_saelens``) and reproduces its
reconstructions. Run from the repo root:

    .venv/bin/python benchmarks/sae_training.py                 # defaults: 150 steps, batch 1024, 7 rounds
    .venv/bin/python benchmarks/sae_training.py --steps 500 --n-latents 4608
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import MIN_ROUNDS, Timed, Timing, compare_many, machine, matmul_peak, peak_line

REPO = Path(__file__).resolve().parents[1]
TORCH_PIN = "torch==2.13.0"
PEERS = {
    "SAELens": (REPO / ".venv-saelens", "sae-lens==6.54.12", "sae_lens"),
    "sparsify": (REPO / ".venv-sparsify", "eai-sparsify==1.3.3", "sparsify"),
}

# The start of both workers: read the job, load the tensors, then serve "train" / "export PATH" / "quit"
# lines on stdin, answering each with one "RESULT {json}" line on stdout.
WORKER_COMMON = r'''
import json, sys, time
import torch
from safetensors.torch import load_file

args = json.loads(sys.argv[1])
data = load_file(args["acts"])
train, test = data["train"], data["test"]

def fvu(x, x_hat):
    return float(((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())

def reply(**out):
    print("RESULT " + json.dumps(out), flush=True)

def serve(train_once, export_check=None):
    train_once(3)  # warm-up: one-off costs (lazy imports, first-call allocations) stay out of the timing
    reply(ready=True, torch_version=torch.__version__, threads=torch.get_num_threads(), **VERSION)
    for line in sys.stdin:
        cmd = line.split()
        if cmd == ["train"]:
            w, c = time.perf_counter(), time.process_time()
            encode_decode = train_once(args["steps"])
            wall, cpu = time.perf_counter() - w, time.process_time() - c
            with torch.no_grad():
                recon = encode_decode(test)
                l0 = float(LAST_L0[0])
            reply(wall=wall, cpu=cpu, fvu=fvu(test, recon), l0=l0)
        elif cmd[:1] == ["export"] and export_check is not None:
            reply(**export_check(cmd[1], cmd[2]))
        elif cmd == ["quit"]:
            return
        else:
            reply(error=f"unknown command {line!r}")
'''

# Runs inside .venv-saelens: SAELens's TopKTrainingSAE trained by its own SAETrainer.
SAELENS_WORKER = WORKER_COMMON + r'''
from sae_lens import SAE
from sae_lens.config import SAETrainerConfig, LoggingConfig
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.training.sae_trainer import SAETrainer
import sae_lens
VERSION = {"version": sae_lens.__version__}
LAST_L0 = [0.0]

def batches(batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(train.shape[0], generator=g)
        for i in range(0, train.shape[0] - batch_size + 1, batch_size):
            yield train[order[i:i + batch_size]]

def train_once(steps):
    torch.manual_seed(args["seed"])
    cfg = TopKTrainingSAEConfig(
        d_in=train.shape[1], d_sae=args["n_latents"], k=args["k"],
        aux_loss_coefficient=args["aux_coeff"], normalize_activations="expected_average_only_in",
        dtype="float32", device="cpu",
    )
    sae = TopKTrainingSAE(cfg)
    tcfg = SAETrainerConfig(
        total_training_samples=steps * args["batch"], train_batch_size_samples=args["batch"],
        lr=args["lr"], lr_end=0.0, lr_scheduler_name="constant",
        lr_warm_up_steps=min(args["warmup"], steps), lr_decay_steps=int(0.2 * steps),
        dead_feature_window=args["dead_window_steps"], feature_sampling_window=10 ** 9,
        device="cpu", logger=LoggingConfig(log_to_wandb=False), n_batches_for_norm_estimate=20,
    )
    SAETrainer(cfg=tcfg, sae=sae, data_provider=batches(args["batch"], args["seed"])).fit()
    sae.eval()
    def encode_decode(x):
        feats = sae.encode(x)
        LAST_L0[0] = (feats > 0).sum(-1).float().mean()
        return sae.decode(feats)
    return encode_decode

def export_check(path, recon_path):
    lens = SAE.load_from_disk(path, device="cpu")
    with torch.no_grad():
        recon = lens.decode(lens.encode(test[:256]))
    ours = load_file(recon_path)["recon"]
    return {"arch": type(lens).__name__, "max_abs_diff": float((recon - ours).abs().max()),
            "rel_diff": float((recon - ours).norm() / ours.norm())}

serve(train_once, export_check)
'''

# Runs inside .venv-sparsify: sparsify's SparseCoder, with the update its Trainer makes, on cached tensors.
SPARSIFY_WORKER = WORKER_COMMON + r'''
import math
import sparsify
from sparsify import SparseCoder, SparseCoderConfig
from importlib.metadata import version
VERSION = {"version": version("eai-sparsify")}
LAST_L0 = [0.0]
# the same input scale as the toolkit and SAELens: E||x||^2 = d_in over the training rows
scale = math.sqrt(train.shape[1] / float(train.pow(2).sum(-1).mean()))

def train_once(steps):
    torch.manual_seed(args["seed"])
    sae = SparseCoder(train.shape[1], SparseCoderConfig(num_latents=args["n_latents"], k=args["k"]), device="cpu")
    opt = torch.optim.Adam(sae.parameters(), lr=args["lr"])
    warmup, decay_start = min(args["warmup"], steps), int(0.8 * steps)
    lr_at = lambda s: (s + 1) / warmup if s < warmup else (1.0 if s < decay_start else (steps - s) / (steps - decay_start))
    since_fired = torch.zeros(args["n_latents"], dtype=torch.long)
    window = args["dead_window_steps"] * args["batch"]
    g = torch.Generator().manual_seed(args["seed"])
    order, cursor = torch.randperm(train.shape[0], generator=g), 0
    for step in range(steps):
        if cursor + args["batch"] > train.shape[0]:
            order, cursor = torch.randperm(train.shape[0], generator=g), 0
        x = train[order[cursor:cursor + args["batch"]]] * scale
        cursor += args["batch"]
        if step == 0:
            sae.b_dec.data = x.mean(0)
        sae.set_decoder_norm_to_unit_norm()
        for group in opt.param_groups:
            group["lr"] = args["lr"] * lr_at(step)
        out = sae(x, dead_mask=since_fired > window)
        (out.fvu + args["aux_coeff"] * out.auxk_loss).backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            fired = torch.zeros_like(since_fired, dtype=torch.bool)
            fired[out.latent_indices.flatten()] = True
            since_fired += x.shape[0]
            since_fired[fired] = 0
    sae.set_decoder_norm_to_unit_norm()
    def encode_decode(x):
        enc = sae.encode(x * scale)
        LAST_L0[0] = (enc.top_acts > 0).sum(-1).float().mean()
        return sae.decode(enc.top_acts, enc.top_indices) / scale
    return encode_decode

serve(train_once)
'''


def ensure_venv(name: str) -> Path:
    """The peer's virtual environment, created on first use with torch pinned to the CPU wheel."""
    venv, pin, module = PEERS[name]
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", f"import {module}"], capture_output=True).returncode == 0:
        return py
    print(f"creating {venv} with {TORCH_PIN} and {pin} (one-off, a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # torch first and exactly pinned: a looser request would make pip fetch a CUDA build
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", TORCH_PIN], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", TORCH_PIN, pin], check=True)
    return py


class Worker:
    """A peer trainer in its own interpreter, answering one JSON line per command."""

    def __init__(self, name: str, python: Path, source: str, payload: dict) -> None:
        self.name = name
        env = {**os.environ, "SPARSIFY_DISABLE_TRITON": "1"}  # no Triton on a CPU: sparsify's eager decoder
        self.proc = subprocess.Popen([str(python), "-c", source, json.dumps(payload)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.info = self._read()

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("RESULT "):
                out = json.loads(line[len("RESULT "):])
                if "error" in out:
                    raise RuntimeError(f"{self.name} worker: {out['error']}")
                return out
        raise RuntimeError(f"{self.name} worker exited ({self.proc.wait()}):\n{self.proc.stderr.read()[-3000:]}")

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def train(self) -> Timed:
        out = self.ask("train")
        return Timed(out, Timing(out["wall"], out["cpu"]))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--n-latents", type=int, default=2304)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=40_000, help="cached activations (90%% train, 10%% test)")
    ap.add_argument("--layer", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=MIN_ROUNDS)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    sys.path.insert(0, str(REPO))
    import torch
    from safetensors.torch import save_file

    import toolkit as tk

    pythons = {name: ensure_venv(name) for name in PEERS}
    model = tk.load_model()
    texts = tk.load_corpus().shuffle(seed=0)["text"]
    acts = tk.cache_activations(model, texts, args.layer, max_tokens=args.tokens).rows  # [n_tokens, d_model]
    n_test = acts.shape[0] // 10
    train, test = acts[:-n_test].contiguous(), acts[-n_test:].contiguous()
    warmup = 50
    dead_window_steps = 100  # SAELens counts forward passes; the toolkit and sparsify count tokens
    d, m, b = acts.shape[1], args.n_latents, args.batch
    print(f"activations: {model.name} layer {args.layer}, train {tuple(train.shape)}, test {tuple(test.shape)}; "
          f"TopK d_in={d} n_latents={m} k={args.k} batch={b} steps={args.steps} lr={args.lr}")
    print(machine())
    peak = matmul_peak([(b, d, m), (m, b, d)])

    state: dict = {}  # the last SAE we trained, for the SAELens export check

    def ours() -> Timed:
        torch.manual_seed(args.seed)
        sae = tk.TopKSAE(d, m, k=args.k, dead_tokens=dead_window_steps * b)
        w, c = time.perf_counter(), time.process_time()
        tk.train_sae(sae, train, steps=args.steps, batch_size=b, lr=args.lr,
                     random_state=args.seed, warmup_steps=warmup, decay_frac=0.2, progress=False)
        timing = Timing(time.perf_counter() - w, time.process_time() - c)
        state["sae"] = sae
        return Timed(tk.sae_metrics(sae, test), timing)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_file({"train": train, "test": test}, str(tmp / "acts.safetensors"))
        payload = {"acts": str(tmp / "acts.safetensors"), "n_latents": m, "k": args.k, "batch": b,
                   "steps": args.steps, "lr": args.lr, "warmup": warmup, "aux_coeff": 1 / 32,
                   "dead_window_steps": dead_window_steps, "seed": args.seed}
        workers = {}
        try:
            for name, source in (("SAELens", SAELENS_WORKER), ("sparsify", SPARSIFY_WORKER)):
                workers[name] = Worker(name, pythons[name], source, payload)
                info = workers[name].info
                print(f"{name} {info['version']} (torch {info['torch_version']}, {info['threads']} threads) ready",
                      flush=True)
            results = compare_many("toolkit TopKSAE steps/s", ours, {n: w.train for n, w in workers.items()},
                                   goals={"SAELens": 1.5, "sparsify": 1.0}, rounds=args.rounds, verbose=True)
            export = tk.export_saelens(state["sae"], tmp / "export", hook_name=f"blocks.{args.layer}.hook_resid_post",
                                       model_name=model.name, hook_layer=args.layer)
            with torch.no_grad():
                save_file({"recon": state["sae"](test[:256]).contiguous()}, str(tmp / "recon.safetensors"))
            loaded = workers["SAELens"].ask(f"export {export} {tmp / 'recon.safetensors'}")
        finally:
            for w in workers.values():
                w.close()

    ours_fvu = results["SAELens"].outputs[0]["fvu"]
    print()
    print(f"{'trainer':10s} {'steps/s (median)':>17s} {'held-out FVU':>13s} {'L0':>6s}")
    print(f"{'toolkit':10s} {args.steps / results['SAELens'].our_seconds():17.2f} {ours_fvu:13.4f} "
          f"{results['SAELens'].outputs[0]['l0']:6.1f}")
    for name, res in results.items():
        peer_s = float(sorted(t.wall for t in res.peer)[len(res.peer) // 2])
        out = res.outputs[1]
        verdict = "no worse" if ours_fvu <= out["fvu"] + 0.01 else "WORSE"
        print(f"{name:10s} {args.steps / peer_s:17.2f} {out['fvu']:13.4f} {out['l0']:6.1f}   "
              f"(toolkit FVU {verdict} than {name}'s, within 0.01)")
    flops = args.steps * (4 * b * d * m + 4 * b * args.k * d)
    print(peak_line("toolkit training step", flops, results["SAELens"].our_seconds(), peak))
    print(f"SAELens loads tk.export_saelens output as {loaded['arch']}: max |diff| of reconstructions "
          f"{loaded['max_abs_diff']:.2e} (relative {loaded['rel_diff']:.2e})")


if __name__ == "__main__":
    main()
