"""Benchmark: steered against unsteered generation speed (tokens per second; goal: ratio >= 0.9).

Three runs generate the same number of new tokens for the same prompts with the default model:

* unsteered: ``tk.generate(model, prompts)``;
* vector steering: ``tk.steer(model, prompts, vector=v, layer=L, alpha=a)`` (one add per step);
* G-SAE balanced steering: ``tk.steer(..., sae=gsae, latent=0, gamma="balanced")``, which also
  encodes every new position with the SAE to get ``f_i`` (an untrained G-SAE of the notebook's size;
  speed does not depend on the weights).

Steering changes the text, and a run that hits EOS early would produce fewer tokens, so throughput
is counted in *generated tokens* (``max_new_tokens`` per prompt; SmolLM2's greedy continuations of
these prompts do not stop early at this length), so the ratio of times is the ratio of throughputs. Each
steered configuration is compared with the unsteered run by ``harness.compare``: interleaved rounds after
a warm-up, the median ratio (unsteered time over steered time) with its interquartile range, in wall and
CPU time; the goal is judged by the lower quartile.

The physical limit: one batch of 4 prompts decodes one token per step, and each step reads every weight of
the model once, so decoding is bound by memory bandwidth, not arithmetic. The steered run's weight traffic is
reported as a fraction of the machine's copy bandwidth, measured in the same run (``harness.decode_line``;
prefill, KV cache and activations are left out, so it is a lower bound).

Why it is low (measured 2026-12-05 on the 2-core course machine: 15% of a 34.8 GB/s copy bandwidth): the
toolkit adds nothing here (``tk.generate`` and a plain ``hf.generate`` of the same 4 prompts both take 99-100 ms
per step, and one bare forward pass of 4 tokens takes 96 ms). The time is torch's own CPU kernels at batch 4:
a ``linear`` of that shape streams its weights at 6-12 GB/s, not 35 (the 576 x 49,152 unembedding alone takes
19 ms), and each of the 30 blocks adds a dozen small elementwise kernels. Batching more rows per step is the
remedy within reach, which ``benchmarks/generation.py`` measures.

Run: ``.venv/bin/python benchmarks/steering.py`` (``--tokens 16`` for a quicker run).
"""
from __future__ import annotations

import argparse

import torch
from harness import MIN_ROUNDS, compare, decode_line, machine, memory_bandwidth

import toolkit as tk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=32, help="new tokens per prompt")
    ap.add_argument("--prompts", type=int, default=4, help="prompts per batch")
    ap.add_argument("--rounds", type=int, default=MIN_ROUNDS)
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

    unsteered = lambda: tk.generate(model, prompts, max_new_tokens=args.tokens, progress=False)
    steered = {
        "vector steering": lambda: tk.steer(model, prompts, vector=vector, layer=layer, alpha=0.1,
                                            max_new_tokens=args.tokens, progress=False),
        "G-SAE balanced steering": lambda: tk.steer(model, prompts, sae=gsae, latent=0, layer=layer, alpha=0.1,
                                                    gamma="balanced", max_new_tokens=args.tokens, progress=False),
    }
    print(f"model {model.name}, layer {layer}, {len(prompts)} prompts x {args.tokens} new tokens")
    print(machine())
    bandwidth = memory_bandwidth()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.hf.parameters())
    for name, fn in steered.items():
        result = compare(f"{name} vs unsteered (throughput ratio)", fn, unsteered, goal=0.9, rounds=args.rounds)
        print(f"  steered: {args.tokens * len(prompts) / result.our_seconds():.1f} tok/s; "
              + decode_line("decoding", weight_bytes, args.tokens, result.our_seconds(), bandwidth))


if __name__ == "__main__":
    main()
