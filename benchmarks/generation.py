"""Benchmark: batched decoding against the same work done in smaller calls (goal: ratio >= 2x for each).

On a CPU, one decoding step of a small model is bound by reading every weight from memory once, not by
arithmetic, so rows added to a batch are almost free. Two comparisons, both on the default model:

* ``generate``: 20 prompts with ``tk.generate(batch_size=32)`` (one batch, the default) against
  ``batch_size=8`` (three batches, the old default). Same prompts, same new tokens.
* ``sweep``: a steering sweep over 9 alphas for 8 prompts, as one ``tk.steer(alpha=[...])`` call (72 rows
  in three batches) against one ``tk.steer(alpha=a)`` call per alpha (nine batches of 8 rows). The
  texts are checked to be identical, so the comparison is of the same work.

``harness.compare`` runs A and B back to back in alternating order, after one warm-up round; the ratio is
the split run's time over the batched run's per round, reported as the median with its interquartile range,
in wall time and in this process's CPU time (a loaded machine shows as a gap between the two). The torch
thread count and the load average are printed with the figures.

The physical limit: decoding reads every weight once per step and batch, so the batched run's weight traffic
is reported as a fraction of the machine's memory bandwidth, measured in the same run (``harness.decode_line``).

Run: ``.venv/bin/python benchmarks/generation.py`` (``--rounds 3 --tokens 8`` for a quick run).
"""
from __future__ import annotations

import argparse

import torch
from harness import MIN_ROUNDS, compare, decode_line, machine, memory_bandwidth

import toolkit as tk

PROMPTS = ["Write a short reply to a neighbour who parks in front of your garage.",
           "Describe your morning in two sentences.", "Tell a friend what you think of their new haircut.",
           "Write a note to a colleague who was late to the meeting.", "Say something about the weather today.",
           "Give a short review of the restaurant you visited yesterday.",
           "Reply to a customer who asks why their order is late.", "Write a message inviting your friends to dinner.",
           "Explain how a bicycle works.", "Give three tips for cooking rice."]


def same_texts(a, b) -> None:
    if a != b:
        raise AssertionError("the batched and split runs produced different texts")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=16, help="new tokens per prompt")
    ap.add_argument("--rounds", type=int, default=MIN_ROUNDS)
    args = ap.parse_args()

    tk.seed_everything(0)
    model = tk.load_model()
    layer = model.n_layers // 2
    prompts20 = (PROMPTS * 2)[:20]
    print(f"model {model.name}, {args.tokens} new tokens")
    print(machine())

    bandwidth = memory_bandwidth()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.hf.parameters())
    result = compare("generate, 32 vs 8 prompts per batch",
            lambda: tk.generate(model, prompts20, max_new_tokens=args.tokens, batch_size=32, progress=False),
            lambda: tk.generate(model, prompts20, max_new_tokens=args.tokens, batch_size=8, progress=False),
            goal=2.0, rounds=args.rounds, check=same_texts)
    # one batch of 20 prompts: every step reads the weights once for all of them
    print("  batched: " + decode_line("decoding", weight_bytes, args.tokens, result.our_seconds(), bandwidth))

    gen = torch.Generator().manual_seed(0)
    vector = torch.randn(model.d_model, generator=gen)
    alphas = [-0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4]
    kw = dict(vector=vector, layer=layer, max_new_tokens=args.tokens, batch_size=32, progress=False)
    compare("sweep, one call vs one call per alpha",
            lambda: tk.steer(model, PROMPTS[:8], alpha=alphas, **kw),
            lambda: {a: tk.steer(model, PROMPTS[:8], alpha=a, **kw) for a in alphas},
            goal=2.0, rounds=args.rounds, check=same_texts)
    print(f"after: {machine()}")


if __name__ == "__main__":
    main()
