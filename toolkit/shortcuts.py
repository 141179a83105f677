"""Shortcut learning: Decoy Digits, input-gradient attribution, the RRR loss, probes, the taxonomy.

The vision half builds *Decoy Digits*, a small cousin of Ross et al.'s Decoy MNIST made from
scikit-learn's bundled 8x8 digits (no download): a patch in a random corner whose grey level
encodes the label. Its annotation masks feed both the saliency diagnostics and the
right-for-the-right-reasons (RRR) loss.

The language half holds the pieces of the probe experiment: the project's sentiment sentences,
a spurious token inserted into them, the counterfactual flip rate, and the token's direction
estimated from counterfactual pairs (remove it with ``toolkit.directions.remove_direction``).

The taxonomy of shortcut research (Steinmann et al., 2024) is data, in
``data/shortcuts/taxonomy.yaml``; this module loads it and draws it as a table and a tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "CORNERS",
    "DecoyDigits",
    "decoy_intensity",
    "add_decoy",
    "make_decoy_digits",
    "make_mlp",
    "train_classifier",
    "predict",
    "accuracy",
    "input_gradients",
    "rrr_penalty",
    "rrr_loss",
    "saliency_mass",
    "accuracy_by_group",
    "plot_saliency_grid",
    "load_taxonomy",
    "taxonomy_table",
    "plot_taxonomy_tree",
    "load_sentiment",
    "SPURIOUS_TOKEN",
    "add_token",
    "counterfactual_direction",
    "flip_rate",
]

from .config import data_dir, torch_threads

TAXONOMY_PATH = data_dir() / "shortcuts" / "taxonomy.yaml"
SENTIMENT_PATH = data_dir() / "sentiment" / "sentences.csv"

# Corner index -> (row, col) of the patch's top-left pixel is computed from the image size;
# the order is top-left, top-right, bottom-left, bottom-right.
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
_DECOY_KINDS = ("label", "random", "none")


# --------------------------------------------------------------------------------------------
# Decoy Digits
# --------------------------------------------------------------------------------------------
@dataclass
class DecoyDigits:
    """A split of Decoy Digits.

    Attributes:
        X: images, float32 ``[n, H, W]`` in ``[0, 1]`` (12x12 with the default 2-pixel border).
        y: true digit labels, int64 ``[n]``.
        mask: annotation masks, bool ``[n, H, W]``, True on the decoy patch's pixels.
        decoy_label: the label the patch encodes, int64 ``[n]`` (-1 where there is no patch).
        corner: index into :data:`CORNERS` of the patch, int64 ``[n]`` (-1 where there is no patch).
    """

    X: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    decoy_label: np.ndarray
    corner: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(X, y, mask)`` as torch tensors (float32, int64, float32)."""
        return (
            torch.as_tensor(self.X, dtype=torch.float32),
            torch.as_tensor(self.y, dtype=torch.long),
            torch.as_tensor(self.mask, dtype=torch.float32),
        )


def decoy_intensity(labels: np.ndarray | Sequence[int] | int) -> np.ndarray:
    """Grey level that encodes a label: ``1 - 0.1 * label``, so 0 -> 1.0 (white) and 9 -> 0.1.

    This is Decoy MNIST's rule (``255 - 25 * label`` on a 0-255 scale) on a 0-1 scale; no label
    maps to 0, so every patch is visible against the black background.
    """
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"decoy labels must be digits 0..9, got values in [{labels.min()}, {labels.max()}]")
    return (1.0 - 0.1 * labels).astype(np.float32)


def add_decoy(
    images: np.ndarray,
    decoy_labels: np.ndarray,
    corners: np.ndarray,
    patch_size: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a ``patch_size`` x ``patch_size`` square into one corner of each image.

    Args:
        images: ``[n, H, W]`` float images in ``[0, 1]``; not modified.
        decoy_labels: ``[n]`` ints 0..9; the patch's grey level is :func:`decoy_intensity` of it.
        corners: ``[n]`` ints 0..3 indexing :data:`CORNERS`.
        patch_size: side of the square in pixels.

    Returns:
        ``(decoyed, mask)``: a float32 copy of the images with the patch painted over whatever was
        there, and the bool annotation mask ``[n, H, W]`` that is True exactly on the patch.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise ValueError(f"images must be [n, H, W], got shape {images.shape}")
    n, h, w = images.shape
    decoy_labels = np.asarray(decoy_labels)
    corners = np.asarray(corners)
    if decoy_labels.shape != (n,) or corners.shape != (n,):
        raise ValueError(
            f"decoy_labels and corners must have shape ({n},), got {decoy_labels.shape} and {corners.shape}"
        )
    if not 1 <= patch_size <= min(h, w):
        raise ValueError(f"patch_size must be in 1..{min(h, w)}, got {patch_size}")
    if n and (corners.min() < 0 or corners.max() > 3):
        raise ValueError(f"corners must be in 0..3 (see CORNERS), got values in [{corners.min()}, {corners.max()}]")
    out = images.copy()
    mask = np.zeros((n, h, w), dtype=bool)
    levels = decoy_intensity(decoy_labels)
    for i in range(n):
        r0 = 0 if corners[i] in (0, 1) else h - patch_size
        c0 = 0 if corners[i] in (0, 2) else w - patch_size
        out[i, r0 : r0 + patch_size, c0 : c0 + patch_size] = levels[i]
        mask[i, r0 : r0 + patch_size, c0 : c0 + patch_size] = True
    return out, mask


def make_decoy_digits(
    split: str = "train",
    decoy: str = "label",
    *,
    patch_size: int = 4,
    pad: int = 2,
    test_size: float = 0.3,
    n: int | None = None,
    split_state: int = 0,
    random_state: int = 0,
) -> DecoyDigits:
    """Decoy Digits from scikit-learn's bundled 8x8 digits (12x12 images with the defaults).

    Args:
        split: ``"train"`` or ``"test"``; a stratified split fixed by ``split_state``, so the two
            never share an image whatever ``random_state`` is.
        decoy: ``"label"`` (the patch encodes the true label: the shortcut), ``"random"`` (it
            encodes a uniformly random label: the shortcut is broken) or ``"none"`` (no patch).
        patch_size: side of the square patch in pixels.
        pad: width of the black border added around each 8x8 digit, so images are
            ``(8 + 2 * pad)`` pixels square. MNIST digits sit in a 4-pixel empty margin where
            Decoy MNIST's swatch lands; scikit-learn's digits fill their frame, so we add one.
        test_size: fraction of the 1797 images in the test split.
        n: keep only the first ``n`` images of the split (fast mode), or all of them.
        split_state: seed of the train/test split.
        random_state: seed of the corners and random decoy labels.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if decoy not in _DECOY_KINDS:
        raise ValueError(f"decoy must be one of {_DECOY_KINDS}, got {decoy!r}")
    digits = load_digits()
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    images = np.pad(digits.images / 16.0, ((0, 0), (pad, pad), (pad, pad))).astype(np.float32)
    labels = digits.target.astype(np.int64)
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=test_size, stratify=labels, random_state=split_state
    )
    idx = idx_train if split == "train" else idx_test
    if n is not None:
        if n < 1:
            raise ValueError(f"n must be a positive number of images or None, got {n}")
        idx = idx[:n]
    X, y = images[idx], labels[idx]
    if decoy == "none":
        none = np.full(len(y), -1, dtype=np.int64)
        return DecoyDigits(X, y, np.zeros_like(X, dtype=bool), none, none.copy())
    rng = np.random.default_rng(random_state)
    corners = rng.integers(0, 4, size=len(y)).astype(np.int64)
    decoy_labels = y.copy() if decoy == "label" else rng.integers(0, 10, size=len(y)).astype(np.int64)
    Xd, mask = add_decoy(X, decoy_labels, corners, patch_size=patch_size)
    return DecoyDigits(Xd, y, mask, decoy_labels, corners)


# --------------------------------------------------------------------------------------------
# Models, training, attribution, RRR
# --------------------------------------------------------------------------------------------
def make_mlp(d_in: int = 144, hidden: int = 64, n_classes: int = 10, random_state: int = 0) -> nn.Module:
    """A two-layer ReLU MLP that takes ``[n, H, W]`` images (flattened inside)."""
    torch.manual_seed(random_state)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(d_in, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_classes),
    )


def _as_tensor(x: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return x.to(dtype) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=dtype)


def rrr_penalty(model: nn.Module, X: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ross et al.'s (2017) explanation penalty, averaged over the batch.

    For each example n: ``sum_d (A_nd * d/dx_nd sum_k log p_k(x_n))**2`` where ``A`` is the
    annotation mask (1 = "this input must not matter"). The graph is kept (``create_graph``) so
    the penalty can be minimised by gradient descent.
    """
    X = _as_tensor(X).detach().requires_grad_(True)
    mask = _as_tensor(mask)
    if mask.shape != X.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} must equal input shape {tuple(X.shape)}")
    log_probs = F.log_softmax(model(X), dim=-1)
    (grads,) = torch.autograd.grad(log_probs.sum(), X, create_graph=True)
    return (mask * grads).pow(2).flatten(1).sum(1).mean()


def rrr_loss(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, lam: float
) -> torch.Tensor:
    """Right-for-the-right-reasons loss: mean cross-entropy + ``lam`` * :func:`rrr_penalty`.

    This is Ross et al.'s objective divided by the batch size (they sum over examples), without
    their separate L2 weight penalty (use the optimiser's ``weight_decay`` for that).
    """
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    X = _as_tensor(X)
    y = _as_tensor(y, torch.long)
    ce = F.cross_entropy(model(X), y)
    if lam == 0:
        return ce
    return ce + lam * rrr_penalty(model, X, mask)


def train_classifier(
    model: nn.Module,
    X: Any,
    y: Any,
    *,
    mask: Any = None,
    lam: float = 0.0,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    random_state: int = 0,
) -> list[float]:
    """Train ``model`` with Adam on cross-entropy, plus the RRR penalty when ``lam > 0``.

    Returns the mean training loss of each epoch. ``mask`` is needed only when ``lam > 0``.
    """
    X = _as_tensor(X)
    y = _as_tensor(y, torch.long)
    if lam > 0:
        if mask is None:
            raise ValueError("lam > 0 needs an annotation mask; pass mask=")
        mask = _as_tensor(mask)
    gen = torch.Generator().manual_seed(random_state)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = []
    model.train()
    with torch_threads(1):
        history = _fit(model, opt, X, y, mask, lam, epochs, batch_size, gen)
    model.eval()
    return history


def _fit(model, opt, X, y, mask, lam, epochs, batch_size, gen) -> list[float]:
    history = []
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        total = 0.0
        for start in range(0, len(y), batch_size):
            b = perm[start : start + batch_size]
            loss = rrr_loss(model, X[b], y[b], mask[b] if lam > 0 else None, lam)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        history.append(total / len(y))
    return history


@torch.no_grad()
def predict(model: nn.Module, X: Any) -> np.ndarray:
    """Predicted class per example."""
    model.eval()
    with torch_threads(1):
        return model(_as_tensor(X)).argmax(-1).numpy()


def accuracy(model: nn.Module, X: Any, y: Any) -> float:
    """Fraction of examples classified correctly."""
    return float((predict(model, X) == np.asarray(y)).mean())


def input_gradients(model: nn.Module, X: Any, target: str | np.ndarray = "sum") -> np.ndarray:
    """Gradient of a log-probability with respect to the input, one map per example.

    Args:
        target: ``"sum"`` (the sum of all log-probabilities: what RRR penalises), ``"pred"`` (the
            predicted class's log-probability) or an int array of classes, one per example.
    """
    model.eval()
    with torch_threads(1):
        return _input_gradients(model, _as_tensor(X).detach().requires_grad_(True), target)


def _input_gradients(model: nn.Module, X: torch.Tensor, target: str | np.ndarray) -> np.ndarray:
    log_probs = F.log_softmax(model(X), dim=-1)
    if isinstance(target, str):
        if target == "sum":
            out = log_probs.sum()
        elif target == "pred":
            out = log_probs.gather(1, log_probs.argmax(-1, keepdim=True)).sum()
        else:
            raise ValueError(f"target must be 'sum', 'pred' or an array of classes, got {target!r}")
    else:
        cls = torch.as_tensor(np.asarray(target), dtype=torch.long).view(-1, 1)
        if cls.shape[0] != X.shape[0]:
            raise ValueError(f"target has {cls.shape[0]} classes for {X.shape[0]} examples")
        out = log_probs.gather(1, cls).sum()
    (grads,) = torch.autograd.grad(out, X)
    return grads.numpy()


def saliency_mass(grads: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Share of each example's squared input gradient that falls inside its mask, in ``[0, 1]``.

    Squared gradients are used because they are what the RRR penalty sums. For comparison, the
    share of *pixels* inside a 4x4 patch on a 12x12 image is 16/144 = 0.11.
    """
    grads = np.asarray(grads)
    mask = np.asarray(mask, dtype=bool)
    if grads.shape != mask.shape:
        raise ValueError(f"grads shape {grads.shape} must equal mask shape {mask.shape}")
    sq = (grads**2).reshape(len(grads), -1)
    inside = (sq * mask.reshape(len(mask), -1)).sum(1)
    return inside / np.maximum(sq.sum(1), 1e-12)


def accuracy_by_group(y_true: Any, y_pred: Any, groups: Any) -> pd.DataFrame:
    """Accuracy and size of each group, worst group first (columns: group, n, accuracy)."""
    df = pd.DataFrame({"group": np.asarray(groups), "correct": np.asarray(y_true) == np.asarray(y_pred)})
    out = df.groupby("group", sort=False)["correct"].agg(n="size", accuracy="mean").reset_index()
    return out.sort_values("accuracy").reset_index(drop=True)


def plot_saliency_grid(
    images: np.ndarray,
    saliency: dict[str, np.ndarray],
    masks: np.ndarray | None = None,
    titles: Sequence[str] | None = None,
    cmap: str = "magma",
):
    """Image grid: the inputs in the first row, then one row of saliency maps per model.

    ``saliency`` maps a row name to ``[n, H, W]`` maps (absolute values are shown, each map
    scaled to its own maximum). Mask outlines, when given, are drawn in cyan.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    images = np.asarray(images)
    n = len(images)
    rows = 1 + len(saliency)
    fig, axes = plt.subplots(rows, n, figsize=(1.3 * n, 1.4 * rows), squeeze=False)
    for j in range(n):
        panels = [("input", images[j], "gray")] + [(k, np.abs(v[j]), cmap) for k, v in saliency.items()]
        for i, (name, img, cm) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(img, cmap=cm, vmin=0, vmax=max(float(img.max()), 1e-12))
            ax.set_xticks([])
            ax.set_yticks([])
            if masks is not None:
                rr, cc = np.nonzero(masks[j])
                if len(rr):
                    ax.add_patch(
                        Rectangle(
                            (cc.min() - 0.5, rr.min() - 0.5),
                            cc.max() - cc.min() + 1,
                            rr.max() - rr.min() + 1,
                            fill=False,
                            edgecolor="cyan",
                            linewidth=1.2,
                        )
                    )
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
            if i == 0 and titles is not None:
                ax.set_title(titles[j], fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# The taxonomy (data/shortcuts/taxonomy.yaml)
# --------------------------------------------------------------------------------------------
_TAXONOMY_KEYS = ("definition", "kinds", "terms", "detection", "mitigation", "benchmarks", "references")


def load_taxonomy(path: str | Path | None = None) -> dict[str, Any]:
    """Load the taxonomy of shortcut research and check that every citation key resolves.

    Returns the parsed YAML: ``definition``, ``kinds``, ``terms``, ``detection`` and
    ``mitigation`` (lists of families, each with ``methods``), ``benchmarks`` and ``references``.
    """
    import yaml

    path = Path(path) if path is not None else TAXONOMY_PATH
    if not path.exists():
        raise FileNotFoundError(f"taxonomy file {path} does not exist; the default is {TAXONOMY_PATH}")
    tax = yaml.safe_load(path.read_text(encoding="utf-8"))
    missing = [k for k in _TAXONOMY_KEYS if k not in tax]
    if missing:
        raise ValueError(f"taxonomy {path} lacks the sections {missing}; expected {list(_TAXONOMY_KEYS)}")
    refs = tax["references"]
    bad = [k for k, v in refs.items() if not (isinstance(v, dict) and "short" in v and "full" in v)]
    if bad:
        raise ValueError(f"references {bad} in {path} need both a 'short' and a 'full' entry")

    def check(cites: list[str], where: str) -> None:
        unknown = [c for c in cites or [] if c not in refs]
        if unknown:
            raise ValueError(f"{where} cites {unknown}, which are not in the references of {path}")

    check(tax.get("cite", []), "definition")
    for t in tax["terms"]:
        check(t.get("cite", []), f"term {t['name']!r}")
    for part in ("detection", "mitigation"):
        for fam in tax[part]:
            for m in fam["methods"]:
                check(m.get("cite", []), f"{part} method {m['name']!r}")
    for b in tax["benchmarks"]:
        check(b.get("cite", []), f"benchmark {b['name']!r}")
    return tax


def _short_cite(key: str, refs: dict[str, Any]) -> str:
    return refs[key]["short"]


def taxonomy_table(tax: dict[str, Any], part: str = "methods") -> pd.DataFrame:
    """The taxonomy as a flat table.

    Args:
        part: ``"methods"`` (stage, family, method, description, citation), ``"terms"``,
            ``"kinds"``, ``"benchmarks"`` or ``"references"``.
    """
    refs = tax["references"]

    def cites(keys: list[str] | None) -> str:
        return "; ".join(_short_cite(k, refs) for k in keys or [])

    if part == "methods":
        rows = [
            {"stage": stage, "family": fam["family"], "method": m["name"], "description": m["description"], "cite": cites(m.get("cite"))}
            for stage in ("detection", "mitigation")
            for fam in tax[stage]
            for m in fam["methods"]
        ]
    elif part == "terms":
        rows = [{"term": t["name"], "description": t["description"], "relation": t["relation"], "cite": cites(t.get("cite"))} for t in tax["terms"]]
    elif part == "kinds":
        rows = [{"kind": k["name"], "description": k["description"], "example": k["example"]} for k in tax["kinds"]]
    elif part == "benchmarks":
        rows = [
            {"benchmark": b["name"], "task": b["task"], "shortcut": b["shortcut"], "kind": b["kind"], "cite": cites(b.get("cite"))}
            for b in tax["benchmarks"]
        ]
    elif part == "references":
        rows = [{"key": k, "short": v["short"], "reference": v["full"]} for k, v in refs.items()]
    else:
        raise ValueError(f"part must be one of 'methods', 'terms', 'kinds', 'benchmarks', 'references'; got {part!r}")
    return pd.DataFrame(rows)


def plot_taxonomy_tree(tax: dict[str, Any], figsize: tuple[float, float] = (14, 9)):
    """Tree diagram: shortcut -> {detection, mitigation} -> families -> methods (with citations)."""
    import matplotlib.pyplot as plt

    refs = tax["references"]
    leaves: list[tuple[str, str, str]] = []  # (stage, family, label)
    for stage in ("detection", "mitigation"):
        for fam in tax[stage]:
            for m in fam["methods"]:
                cite = ", ".join(_short_cite(k, refs) for k in m.get("cite", [])[:2])
                leaves.append((stage, fam["family"], f"{m['name']}  [{cite}]"))
    n = len(leaves)
    fig, ax = plt.subplots(figsize=figsize)
    ax.set_xlim(-0.05, 1.0)
    ax.set_ylim(-0.5, n - 0.5)
    ax.invert_yaxis()
    ax.axis("off")
    xs = {"root": 0.0, "stage": 0.14, "family": 0.32, "leaf": 0.55}
    colours = {"detection": "#4C72B0", "mitigation": "#DD8452"}
    box = dict(boxstyle="round,pad=0.3", linewidth=0.8)

    def edge(x0, y0, x1, y1, c):
        xm = (x0 + x1) / 2
        ax.plot([x0, xm, xm, x1], [y0, y0, y1, y1], color=c, linewidth=0.8, alpha=0.7)

    stage_y: dict[str, float] = {}
    for stage in ("detection", "mitigation"):
        ys = [i for i, lf in enumerate(leaves) if lf[0] == stage]
        stage_y[stage] = float(np.mean(ys))
        for fam in dict.fromkeys(lf[1] for lf in leaves if lf[0] == stage):
            fy_list = [i for i, lf in enumerate(leaves) if lf[0] == stage and lf[1] == fam]
            fy = float(np.mean(fy_list))
            for i in fy_list:
                edge(xs["family"] + 0.05, fy, xs["leaf"] - 0.005, i, colours[stage])
                ax.text(xs["leaf"], i, leaves[i][2], va="center", fontsize=8)
            edge(xs["stage"] + 0.04, stage_y[stage], xs["family"] - 0.06, fy, colours[stage])
            ax.text(xs["family"], fy, fam, va="center", ha="center", fontsize=8.5,
                    bbox={**box, "facecolor": "white", "edgecolor": colours[stage]})
    root_y = float(np.mean(list(stage_y.values())))
    for stage, y in stage_y.items():
        edge(xs["root"] + 0.04, root_y, xs["stage"] - 0.04, y, colours[stage])
        ax.text(xs["stage"], y, stage, va="center", ha="center", fontsize=10, color="white", weight="bold",
                bbox={**box, "facecolor": colours[stage], "edgecolor": colours[stage]})
    ax.text(xs["root"], root_y, "shortcut", va="center", ha="center", fontsize=10, weight="bold",
            bbox={**box, "facecolor": "#EEEEEE", "edgecolor": "black"})
    ax.set_title("Shortcut research: detection and mitigation families (after Steinmann et al. 2024)", fontsize=11)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Language: a spurious token in a sentiment probe
# --------------------------------------------------------------------------------------------
# A source tag of the kind a scraper leaves behind: neutral in meaning, but in the notebook's
# training set it is on every positive review and no negative one (a sampling-induced shortcut).
SPURIOUS_TOKEN = "[app]"


def load_sentiment(path: str | Path | None = None) -> pd.DataFrame:
    """The project's sentiment sentences: columns ``id, pair, text, label, split``.

    ``label`` is 1 for positive and 0 for negative. Each ``pair`` is one positive and one negative
    sentence about the same topic, and both sit in the same ``split`` (train or test).
    """
    path = Path(path) if path is not None else SENTIMENT_PATH
    if not path.exists():
        raise FileNotFoundError(f"sentiment file {path} does not exist; the default is {SENTIMENT_PATH}")
    df = pd.read_csv(path)
    need = {"id", "pair", "text", "label", "split"}
    if not need <= set(df.columns):
        raise ValueError(f"{path} has columns {list(df.columns)}; it needs {sorted(need)}")
    return df


def add_token(
    texts: Sequence[str], flags: Sequence[bool], token: str = SPURIOUS_TOKEN, where: str = "end"
) -> list[str]:
    """Insert ``token`` into the texts whose flag is True, at the ``"start"`` or the ``"end"``."""
    texts = list(texts)
    flags = [bool(f) for f in flags]
    if len(flags) != len(texts):
        raise ValueError(f"flags has {len(flags)} entries for {len(texts)} texts; give one flag per text")
    if where not in ("start", "end"):
        raise ValueError(f"where must be 'start' or 'end', got {where!r}")
    if where == "start":
        return [f"{token} {t}" if f else t for t, f in zip(texts, flags)]
    return [f"{t} {token}" if f else t for t, f in zip(texts, flags)]


def counterfactual_direction(acts_with: Any, acts_without: Any) -> np.ndarray:
    """Unit vector of the mean activation change caused by a feature, from counterfactual pairs.

    Row ``i`` of ``acts_with`` and of ``acts_without`` must come from the same text with and
    without the feature, so everything but the feature cancels in the difference.
    """
    A = np.asarray(acts_with.detach().cpu() if isinstance(acts_with, torch.Tensor) else acts_with, dtype=np.float64)
    B = np.asarray(acts_without.detach().cpu() if isinstance(acts_without, torch.Tensor) else acts_without, dtype=np.float64)
    if A.shape != B.shape or A.ndim != 2:
        raise ValueError(f"acts_with and acts_without must be paired [n, d] arrays; got {A.shape} and {B.shape}")
    d = (A - B).mean(0)
    norm = np.linalg.norm(d)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("the paired activations do not differ; the feature has no direction to remove")
    return d / norm


def flip_rate(probe: Any, X_a: Any, X_b: Any) -> float:
    """Share of examples whose predicted class changes between two versions ``X_a`` and ``X_b``."""
    pa, pb = probe.predict(np.asarray(X_a)), probe.predict(np.asarray(X_b))
    if len(pa) != len(pb):
        raise ValueError(f"X_a has {len(pa)} rows and X_b has {len(pb)}; they must be paired")
    return float((pa != pb).mean())
