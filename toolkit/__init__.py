"""toolkit: the reusable parts of the interpretability and steering curriculum.

A few verbs that compose (see ``../shared/DESIGN.md`` for the full public API)::

    import toolkit as tk
    model = tk.load_model()                                  # embedded SmolLM2-135M-Instruct, offline
    acts = tk.get_activations(model, texts, layer=10)        # [n_tokens, d_model]
    outs = tk.generate(model, prompts, edits=[tk.Edit(10, lambda h: h + v)])
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import config
from .config import pick, seed_everything

config.apply_threads()  # TOOLKIT_THREADS, or one thread in fast mode (see config.apply_threads)
from .models import DEFAULT_ENCODER, DEFAULT_MODEL, Model, load_encoder, load_model
from .provenance import provenance, save_results
from .tracing import Edit, format_prompt, generate, get_activations, logits, token_losses

# Topic modules register their public names below (one import line each).
from .setup_check import check_setup
from .data import PII_TYPES, load_concepts, pii_token_labels
from .directions import MoralDirection, mean_difference, pca_direction, project, remove_direction
from .fms import FMSResult, FMSWarning, fms, fms_report
from .sae import ReluSAE, SparseAutoencoder, TopKSAE, ce_loss_recovered, export_saelens, fvu, load_saelens, sae_metrics, train_sae
from .sae import SCAR, GuidedSAE
from .steering import mlp_activations, steer, steering_edit
from .evaluate import ConceptJudge, alpha_sweep, auroc, best_f1_threshold, best_latent, f1_score, repetition_rate, summarize_sweep
from .data import activation_cache_path, cache_activations, load_corpus
from . import shortcuts


def __getattr__(name: str):
    # ``tk.FAST`` reads TOOLKIT_FAST when asked, like ``config.fast()``: one source of truth, no
    # import-time snapshot that goes stale when a test or a notebook changes the environment.
    if name == "FAST":
        return config.fast()
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
