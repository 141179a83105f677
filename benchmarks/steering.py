"""Benchmark: steered against unsteered generation speed (tokens per second; goal: ratio >= 0.9).

Three runs generate the same number of new tokens for the same prompts with the default model:

* unsteered: ``tk.generate(model, prompts)``;
* vector steering: ``tk.steer(model, prompts, vector=v, layer=L, alpha=a)`` (one add per step);
* G-SAE balanced steering: ``tk.steer(..., sae=gsae, latent=0, gamma="balanced")``, which also
  encodes every new position with the SAE to get ``f_i`` (an untrained G-SAE of the notebook's size;
  speed does not depend on the weights).

Steering changes the text, and a run that hits EOS early would produce fewer tokens, so throughput
is counted in *generated tokens* (``max_new_tokens`` per prompt; SmolLM2's greedy continuations of
these prompts do not stop early at this length). Each configuration runs ``--repeats`` times in an
interleaved order (so a burst of load from other processes hits all of them alike) and the median is
reported, both wall-clock and CPU time of this process (CPU time is steadier on a shared machine).

Run: ``.venv/bin/python benchmarks/steering.py`` (``--tokens 16 --repeats 3`` for a quick run).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import toolkit as tk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=32, help="new tokens per prompt")
    ap.add_argument("--prompts", type=int, default=4, help="prompts per batch")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--latents", type=int, default=2304, help="G-SAE dictionary size")
    args = ap.parse_args()

    tk.seed_everything(0)
    model = tk.load_model()
    layer = model.n_layers // 2
    base_prompts = ["Describe your morning in two sentences.", "Write a note to a neighbour about the noise.",
                    "Explain how a bicycle works.", "Tell a friend about a book you like.",
                    "Give three tips for cooking rice.", "Say something about the weather."]
    prompts = (base_prompts * (args.prompts // len(base_prompts) + 1))[: args.prompts]
    vector = torch.randn(model.d_model)
    gsae = tk.GuidedSAE(model.d_model, args.latents, k=32, n_concepts=1)
    gsae.initialized.fill_(True)

    runs = {
        "unsteered": lambda: tk.generate(model, prompts, max_new_tokens=args.tokens),
        "vector": lambda: tk.steer(model, prompts, vector=vector, layer=layer, alpha=0.1,
                                   max_new_tokens=args.tokens),
        "gsae_balanced": lambda: tk.steer(model, prompts, sae=gsae, latent=0, layer=layer, alpha=0.1,
                                          gamma="balanced", max_new_tokens=args.tokens),
    }
    n_tokens = args.tokens * len(prompts)
    runs["unsteered"]()  # warm-up: first calls pay for lazy imports and allocator growth
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)

    print(f"model {model.name}, layer {layer}, {len(prompts)} prompts x {args.tokens} new tokens, "
          f"median of {args.repeats} interleaved repeats, {torch.get_num_threads()} torch threads")
    w_base, c_base = statistics.median(wall["unsteered"]), statistics.median(cpu["unsteered"])
    for name in runs:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"{name:14s} wall {w:7.2f} s ({n_tokens / w:6.1f} tok/s)  cpu {c:7.2f} s ({n_tokens / c:6.1f} tok/cpu-s)"
              f"  ratio vs unsteered: wall {w_base / w:.3f}, cpu {c_base / c:.3f}")
    goal = min(c_base / statistics.median(cpu[k]) for k in runs if k != "unsteered")
    print(f"lowest steered/unsteered throughput ratio (cpu): {goal:.3f}  (goal >= 0.9: {'met' if goal >= 0.9 else 'NOT met'})")


if __name__ == "__main__":
    main()
