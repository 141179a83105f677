"""Benchmark: ``tk.get_activations`` against a plain transformers forward with a hook at the same layer.

Both paths see the same model, the same texts, the same batch size and the same right padding, and
both return the same rows (padding removed). The ratio is the plain path's time over the toolkit's
(above 1: the toolkit is faster), from interleaved rounds after a warm-up (``harness.compare``): the
median with its interquartile range, in wall and CPU time. Goal: >= 0.90x by the lower quartile.

Two layers are measured: a middle one, where the toolkit stops the forward pass after the block it
needs (the plain hook path still runs the whole model), and the last block, where both run every block
and the plain path also pays the final norm and the unembedding (576 x 49,152 for SmolLM2, about a
fifth of the model's FLOPs per token), which the toolkit skips because nothing reads it.

The physical limit: a forward pass up to block L costs about 2 x (parameters of blocks 0..L) FLOPs per
token (attention's sequence-length term is small for these short texts and is left out), so the toolkit's
throughput is also printed as a fraction of this machine's fp32 GEMM peak, measured in the same run on the
shapes of a block's MLP. With short texts in batches of 16, each matmul has a few hundred rows, the block's
small operations (norms, rotary embeddings, softmax) and nnsight's bookkeeping are not GEMMs at all, so a
fraction well under 1 is expected; the figure says how far from the machine's limit the path is.

    .venv/bin/python benchmarks/activations.py [--rounds 7] [--texts 64] [--batch-size 16]
"""
from __future__ import annotations

import argparse

import torch
from harness import MIN_ROUNDS, compare, machine, matmul_peak, peak_line

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


def block_parameters(model: tk.Model, last_block: int) -> int:
    """Parameters of blocks 0..last_block: the weights a forward pass up to that block multiplies by."""
    blocks = model.hf.get_submodule(model.layout.blocks)
    return sum(p.numel() for block in list(blocks)[: last_block + 1] for p in block.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS)
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    tk.seed_everything(0)
    model = tk.load_model()
    # Same-length texts within a batch, so neither path gains from the toolkit's length sorting.
    texts = [SENTENCES[i % len(SENTENCES)] + f" (item {i})" for i in range(args.texts)]
    lengths = [len(ids) for ids in model.tokenizer(texts).input_ids]
    n_tokens = sum(lengths) - (len(texts) if model.adds_bos else 0)
    print(f"model {model.name} on {model.device}, {len(texts)} texts, {n_tokens} tokens, batch {args.batch_size}")
    print(machine())
    rows_per_batch = args.batch_size * max(lengths)
    d_ff = model.hf.config.intermediate_size if hasattr(model.hf.config, "intermediate_size") else 4 * model.d_model
    peak = matmul_peak([(rows_per_batch, model.d_model, d_ff), (rows_per_batch, d_ff, model.d_model),
                        (1024, 1024, 1024)])

    def same_rows(ours, ref):
        assert ours.shape == ref.shape, (ours.shape, ref.shape)
        # Rows come back in text order from both paths; the values agree up to float noise.
        assert torch.allclose(ours, ref, atol=1e-3, rtol=1e-3), "the two paths disagree"

    for layer in (model.n_layers // 2, model.n_layers - 1):
        result = compare(
            f"layer {layer:>2}, toolkit vs plain forward+hook",
            lambda: tk.get_activations(model, texts, layer=layer, batch_size=args.batch_size, progress=False).rows,
            lambda: plain_activations(model, texts, layer, args.batch_size),
            goal=0.9, rounds=args.rounds, check=same_rows)
        seconds = result.our_seconds()
        print(f"  toolkit {n_tokens / seconds:8.0f} tok/s; " +
              peak_line("forward to the block", 2 * block_parameters(model, layer) * n_tokens, seconds, peak))


if __name__ == "__main__":
    main()
