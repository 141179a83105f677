"""Shortcut learning: Decoy Digits, input-gradient attribution and the right-for-the-right-reasons loss.

*Decoy Digits* is a small cousin of Ross et al.'s Decoy MNIST made from scikit-learn's bundled 8x8
digits (no download): a patch in a random corner whose grey level encodes the label. Its annotation
masks feed both the attribution diagnostics (input gradients, the saliency mass on the patch) and the
right-for-the-right-reasons (RRR) loss, which trains a classifier to ignore the masked pixels.

The module also loads the two data files of notebook 01, because the tests check them: the taxonomy of
shortcut research (Steinmann et al., 2024, ``data/shortcuts/taxonomy.yaml``, every citation resolved)
and the project's sentiment sentences (``data/sentiment/sentences.csv``). Drawing the taxonomy and the
saliency maps is :mod:`toolkit.plots`'s job; the probe experiment's small helpers live in the notebook.
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
    "load_taxonomy",
    "load_sentiment",
]

from .config import data_dir, torch_threads
from .validation import as_numpy, as_tensor, check_int, check_number


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


def rrr_penalty(model: nn.Module, X: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ross et al.'s (2017) explanation penalty, averaged over the batch.

    For each example n: ``sum_d (A_nd * d/dx_nd sum_k log p_k(x_n))**2`` where ``A`` is the
    annotation mask (1 = "this input must not matter"). The graph is kept (``create_graph``) so
    the penalty can be minimised by gradient descent.
    """
    X = as_tensor(X, "X").requires_grad_(True)  # as_tensor detaches: the graph starts at the input
    mask = as_tensor(mask, "mask")
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
    lam = check_number("lam", lam, minimum=0.0)
    X = as_tensor(X, "X")
    y = as_tensor(y, "y", dtype=torch.long)
    ce = F.cross_entropy(model(X), y)
    if lam == 0:
        return ce
    if mask is None:
        raise ValueError(f"lam={lam} > 0 needs an annotation mask (1 where the input must not matter); pass mask=")
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
    X = as_tensor(X, "X")
    y = as_tensor(y, "y", dtype=torch.long)
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} examples but y has {len(y)} labels; give one label per example")
    lam = check_number("lam", lam, minimum=0.0)
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if lam > 0:
        if mask is None:
            raise ValueError("lam > 0 needs an annotation mask; pass mask=")
        mask = as_tensor(mask, "mask")
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
        return model(as_tensor(X, "X")).argmax(-1).numpy()


def accuracy(model: nn.Module, X: Any, y: Any) -> float:
    """Fraction of examples classified correctly."""
    pred, y = predict(model, X), as_numpy(y, "y")
    if pred.shape != y.shape:
        raise ValueError(f"y has shape {y.shape} but there are {len(pred)} examples; give one label per example")
    return float((pred == y).mean())


def input_gradients(model: nn.Module, X: Any, target: str | np.ndarray = "sum") -> np.ndarray:
    """Gradient of a log-probability with respect to the input, one map per example.

    Args:
        target: ``"sum"`` (the sum of all log-probabilities: what RRR penalises), ``"pred"`` (the
            predicted class's log-probability) or an int array of classes, one per example.
    """
    model.eval()
    with torch_threads(1):
        return _input_gradients(model, as_tensor(X, "X").requires_grad_(True), target)


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
        cls = as_tensor(target, "target", dtype=torch.long).view(-1, 1)
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
    grads = as_numpy(grads, "grads")
    mask = as_numpy(mask, "mask", dtype=bool)
    if grads.shape != mask.shape:
        raise ValueError(f"grads shape {grads.shape} must equal mask shape {mask.shape}")
    sq = (grads**2).reshape(len(grads), -1)
    inside = (sq * mask.reshape(len(mask), -1)).sum(1)
    return inside / np.maximum(sq.sum(1), 1e-12)


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


# --------------------------------------------------------------------------------------------
# The sentiment sentences of the probe experiment (data/sentiment/sentences.csv)
# --------------------------------------------------------------------------------------------
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

