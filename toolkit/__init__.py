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
from . import figure_text

figure_text.register()  # in a notebook, a figure's text form describes it (the book's alt text)
from .models import DEFAULT_ENCODER, DEFAULT_MODEL, Model, load_encoder, load_model
from .provenance import provenance, save_results
from .claims import ClaimFailed, claim, claims_table
from .activations import Activations
from .tracing import Edit, format_prompt, generate, get_activations, logit_lens, logits, token_losses

# Topic modules register their public names below (one import line each).
from .setup_check import check_setup
from .data import PII_TYPES, load_concepts, pii_token_labels
from .directions import mean_difference, pca_direction, project, remove_direction
from .encoders import Encoder, ResidualEncoder
from .moral_data import load_moral_actions, load_mort_prompts, load_templates
from .moral_direction import MoralDirection
from .decoding import StepDecoder, filter_candidates, moral_filtered_generate
from .monosemanticity import FMSResult, FMSWarning, fms, fms_report  # module not named fms: tk.fms is the function
from .sae import ReluSAE, SparseAutoencoder, TopKSAE, SCAR, GuidedSAE
from .sae_training import train_sae
from .sae_metrics import ce_loss_recovered, fvu, sae_metrics
from .saelens import export_saelens, load_saelens
from .steering import mlp_activations, steer, steering_edit
from .evaluate import ConceptJudge, alpha_sweep, auroc, best_f1_threshold, best_latent, f1_score, repetition_rate, summarize_sweep
from .evaluate import cost_at_shift, fit_tradeoff, generation_perplexity, latent_aurocs, pearson_ci, pearson_difference_ci
from .data import activation_cache_path, cache_activations, load_corpus
from .detection import direction_aurocs, sparse_probing
from .steering_bench import (PromptSteering, SAESteering, SteeringBench, SteeringMethod, VectorSteering,
                             bucket, harmonic_aggregate, steering_summary)
from . import plots, shortcuts
from .shortcuts import (DecoyDigits, accuracy, add_decoy, input_gradients, load_sentiment, load_taxonomy, make_decoy_digits,
                        make_mlp, predict, rrr_loss, rrr_penalty, saliency_mass, train_classifier)


def __getattr__(name: str):
    # ``tk.FAST`` reads TOOLKIT_FAST when asked, like ``config.fast()``: one source of truth, no
    # import-time snapshot that goes stale when a test or a notebook changes the environment.
    if name == "FAST":
        return config.fast()
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
