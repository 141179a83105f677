"""Benchmark: ``tk.get_activations`` against a plain transformers forward with a hook at the same layer.

Both paths see the same model, the same texts, the same batch size and the same right padding, and
both return the same rows (padding removed). The ratio is toolkit tokens/s divided by plain tokens/s,
measured in one process with the two paths interleaved round by round, so drift on a shared machine
hits both alike; we report the median over rounds.

Two layers are measured: a middle one, where the toolkit stops the forward pass after the block it
needs (the plain hook path still runs the whole model), and the last block, where both do the same
work and the ratio isolates nnsight's overhead.

    .venv/bin/python benchmarks/activations.py [--rounds 5] [--texts 64] [--batch-size 16]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import toolkit as tk

SENTENCES = [
    "The committee postponed its decision until the spring meeting.",
    "A cold front will bring rain to the coast by Thursday evening.",
    "She rewrote the opening chapter three times before sending it to her editor.",
    "Photosynthesis converts light energy into chemical energy stored in sugars.",
    "The museum's new wing displays textiles from the fifteenth century.",
    "He forgot his umbrella, so he waited under the bridge for the storm to pass.",
    "Interest rates rose for the fourth consecutive quarter.",
    "The recipe calls for two cups of flour and a pinch of salt.",
]


def plain_activations(model: tk.Model, texts: list[str], layer: int, batch_size: int) -> torch.Tensor:
    """The reference: a forward hook on the block, full forward pass, padding removed."""
    captured: dict[str, torch.Tensor] = {}

    def hook(module, inputs, output):
        captured["h"] = output[0] if isinstance(output, tuple) else output

    block = model.hf.get_submodule(model.layout.blocks)[layer]
    handle = block.register_forward_hook(hook)
    tok = model.tokenizer
    tok.padding_side = "right"
    rows = []
    try:
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], return_tensors="pt", padding=True)
            with torch.no_grad():
                model.hf(**enc)
            mask = enc["attention_mask"].bool()
            if model.adds_bos:
                mask[:, 0] = False
            rows.append(captured["h"][mask].float())
    finally:
        handle.remove()
    return torch.cat(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    tk.seed_everything(0)
    model = tk.load_model()
    # Same-length texts within a batch, so neither path gains from the toolkit's length sorting.
    texts = [SENTENCES[i % len(SENTENCES)] + f" (item {i})" for i in range(args.texts)]
    n_tokens = sum(len(ids) for ids in model.tokenizer(texts).input_ids) - (len(texts) if model.adds_bos else 0)
    print(f"model {model.name} on {model.device}, {len(texts)} texts, {n_tokens} tokens, "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads")

    for layer in (model.n_layers // 2, model.n_layers - 1):
        ours = tk.get_activations(model, texts, layer=layer, batch_size=args.batch_size, progress=False).rows
        ref = plain_activations(model, texts, layer, args.batch_size)
        assert ours.shape == ref.shape, (ours.shape, ref.shape)
        # Rows come back in text order from both paths; the values agree up to float noise.
        assert torch.allclose(ours, ref, atol=1e-3, rtol=1e-3), "the two paths disagree"
        ratios, tk_rates, plain_rates = [], [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            tk.get_activations(model, texts, layer=layer, batch_size=args.batch_size, progress=False)
            t1 = time.perf_counter()
            plain_activations(model, texts, layer, args.batch_size)
            t2 = time.perf_counter()
            tk_rates.append(n_tokens / (t1 - t0))
            plain_rates.append(n_tokens / (t2 - t1))
            ratios.append(tk_rates[-1] / plain_rates[-1])
        print(f"layer {layer:>2}: toolkit {statistics.median(tk_rates):8.0f} tok/s | plain forward+hook "
              f"{statistics.median(plain_rates):8.0f} tok/s | ratio (toolkit / plain) "
              f"{statistics.median(ratios):.2f}x  [per-round: {', '.join(f'{r:.2f}' for r in ratios)}]")
    print("goal: ratio >= 0.90 at every layer")


if __name__ == "__main__":
    main()
