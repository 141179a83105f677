"""Benchmark: scoring continuations that share a prompt (``tk.generation_perplexity``), against a whole pass per text.

A steering benchmark scores every setting's output after the same instruction: in notebook 06's fast mode, 15
(method, factor) settings per instruction on the selection half. ``tk.generation_perplexity`` runs each distinct
prompt once with the key-value cache on and scores its continuations on copies of that cache. The peer is the
general path of the same function, which runs ``prompt + continuation`` whole for every text (what it did before;
it is still used for remote models and for rows whose tokens do not split at the prompt's end). Both give the same
perplexities (checked on the warm-up outputs, to 1e-4 in log-perplexity).

Goal: >= 2x at 6 prompts x 15 continuations of 12 tokens (the chat template makes SmolLM2's prompt about 38
tokens, so most of a whole pass is the prompt). The fraction of the fp32 GEMM peak counts the forward FLOPs of the
tokens each path actually runs (2 x parameters per token, the unembedding included), measured in the same run.

Run: ``.venv/bin/python benchmarks/perplexity.py`` (``--prompts 3 --per-prompt 8`` for a quicker run).
"""
from __future__ import annotations

import argparse

import numpy as np
from harness import MIN_ROUNDS, compare, machine, matmul_peak, peak_line

import toolkit as tk
import toolkit.evaluate as evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=6, help="distinct prompts")
    ap.add_argument("--per-prompt", type=int, default=15, help="continuations scored after each prompt")
    ap.add_argument("--tokens", type=int, default=12, help="new tokens per continuation")
    ap.add_argument("--rounds", type=int, default=MIN_ROUNDS)
    args = ap.parse_args()

    tk.seed_everything(0)
    model = tk.load_model()
    instructions = open(tk.config.repo_root() / "data" / "instructions" / "instructions.txt").read().splitlines()
    prompts = instructions[: args.prompts]
    layer = model.n_layers // 2
    # distinct continuations per prompt: greedy answers steered by a small random push of growing strength
    import torch

    v = torch.randn(model.d_model, generator=torch.Generator().manual_seed(0))
    alphas = [0.02 * i for i in range(args.per_prompt)]
    outs = tk.steer(model, prompts, vector=v, layer=layer, alpha=alphas, max_new_tokens=args.tokens, progress=False)
    texts = [t for a in alphas for t in outs[a]]
    contexts = [p for _ in alphas for p in prompts]

    shared = evaluate._shared_context_perplexity
    ours = lambda: tk.generation_perplexity(model, texts, contexts)  # noqa: E731

    def whole_pass():
        evaluate._shared_context_perplexity = lambda m, c, f, rows, out, bs: rows  # the general path only
        try:
            return tk.generation_perplexity(model, texts, contexts)
        finally:
            evaluate._shared_context_perplexity = shared

    def same(a, b):
        ok = ~np.isnan(b)
        if not (np.isnan(a) == np.isnan(b)).all() or not np.allclose(np.log(a[ok]), np.log(b[ok]), atol=1e-4):
            raise AssertionError("the two paths disagree on the perplexities")

    print(f"model {model.name}: {len(prompts)} prompts x {args.per_prompt} continuations of {args.tokens} tokens")
    print(machine())
    result = compare("shared prompt vs a whole pass per text", ours, whole_pass, goal=2.0, rounds=args.rounds,
                     check=same)
    n_params = sum(p.numel() for p in model.hf.parameters())
    formatted = [tk.format_prompt(model, p) for p in prompts]
    ctx_tokens = sum(len(model.tokenizer(f)["input_ids"]) for f in formatted)
    full_tokens = sum(len(model.tokenizer(tk.format_prompt(model, c) + t)["input_ids"]) for c, t in zip(contexts, texts))
    cont_tokens = full_tokens - args.per_prompt * ctx_tokens
    peak = matmul_peak([(64 * 16, model.d_model, model.d_model * 4), (64 * 16, model.d_model, model.d_model)])
    print(peak_line("shared prompt", 2 * n_params * (ctx_tokens + cont_tokens), result.our_seconds(), peak))
    print(peak_line("whole pass per text", 2 * n_params * full_tokens, float(np.median([t.wall for t in result.peer])), peak))


if __name__ == "__main__":
    main()
