"""The figures several notebooks share, drawn one way everywhere.

- :func:`top_contexts_html`: the contexts where one latent fires hardest, each token shaded by its
  activation (notebook 03; any per-token values, e.g. SAE latents or a probe's scores);
- :func:`norm_histogram`: the log10 residual-norm histogram with marked rows such as attention sinks
  (notebook 03);
- :func:`heatmap`: a labelled table of numbers, e.g. FMS per concept and representation (notebook 04);
- :func:`tradeoff_curve`: a concept score against a quality score across steering strengths, one line
  per method (notebook 05);
- :func:`plot_saliency_grid` and :func:`plot_taxonomy_tree`: input-gradient maps over their images, and
  the map of shortcut research (notebook 01).

Every figure function returns what it drew on (an ``Axes`` or a ``Figure``), sets a title and axis
labels, and takes ``alt``: a one-sentence description for readers who cannot see the figure. Matplotlib
has no alt-text field, so it is kept as the ``alt_text`` attribute of the returned object and of its
figure, where an exporter can read it; without ``alt`` a description is generated from the data.
matplotlib and seaborn are imported inside the functions, so ``import toolkit`` stays fast.
"""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from .validation import as_numpy, check_bool, check_finite, check_int

__all__ = ["top_contexts_html", "norm_histogram", "heatmap", "tradeoff_curve", "plot_saliency_grid",
           "plot_taxonomy_tree", "HTMLString"]


def _set_alt(obj: Any, alt: str) -> Any:
    """Keep ``alt`` on the returned Axes/Figure and on its figure (joined, when several axes share one)."""
    obj.alt_text = alt
    fig = getattr(obj, "figure", None)
    if fig is not None and fig is not obj:
        texts = [getattr(a, "alt_text", "") for a in fig.axes if getattr(a, "alt_text", "")]
        fig.alt_text = " ".join(texts)
    return obj


def _new_ax(ax: Any, figsize: tuple[float, float]) -> Any:
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


# --------------------------------------------------------------------------------------------
# Top-activating contexts
# --------------------------------------------------------------------------------------------
class HTMLString(str):
    """A string of HTML that Jupyter renders as HTML when it is a cell's value; joins like any string."""

    def _repr_html_(self) -> str:
        return str(self)


def _token_index(acts: Any) -> tuple[np.ndarray, np.ndarray, Any, Any, Any]:
    """``(text_id, position, tokens or None, token_ids or None, tokenizer)`` from Activations or an index DataFrame."""
    if isinstance(acts, pd.DataFrame):
        missing = [c for c in ("text_id", "position") if c not in acts.columns]
        if missing or not ({"token", "token_id"} & set(acts.columns)):
            raise ValueError(f"the token index needs columns text_id, position and token or token_id; "
                             f"got {list(acts.columns)}")
        tokens = acts["token"].to_numpy() if "token" in acts.columns and acts["token"].notna().all() else None
        ids = acts["token_id"].to_numpy() if "token_id" in acts.columns else None
        if tokens is None and ids is None:
            raise ValueError("the token index's token column is empty and it has no token_id column")
        return acts["text_id"].to_numpy(), acts["position"].to_numpy(), tokens, ids, None
    if all(hasattr(acts, a) for a in ("text_id", "position", "token_id")):  # a tk.Activations
        return (np.asarray(acts.text_id), np.asarray(acts.position), None, np.asarray(acts.token_id),
                getattr(acts, "tokenizer", None))
    raise TypeError(f"acts must be a tk.Activations or a token-index DataFrame (text_id, position, token), "
                    f"got {type(acts).__name__}")


def _token_text(tokenizer: Any, token: Any, token_id: Any) -> str:
    # A byte-level BPE token such as "Ġthe" reads as " the" only after the tokenizer converts it.
    if tokenizer is not None:
        if token is None:
            token = tokenizer.convert_ids_to_tokens([int(token_id)])[0]
        text = tokenizer.convert_tokens_to_string([token])
    else:
        text = str(token) if token is not None else f"[{int(token_id)}]"
    return text.replace("\n", "↵").replace("\t", "⇥")


def top_contexts_html(acts: Any, values: Any, latent: int | None = None, *, tokenizer: Any = None,
                      n: int = 6, window: int = 10, after: int = 0, title: str | None = None) -> HTMLString:
    """The ``n`` rows where ``values`` is largest, each shown in its context with tokens shaded by value.

    Args:
        acts: a :class:`tk.Activations` (its ``text_id``, ``position`` and ``token_id``), or a token
            index DataFrame with columns ``text_id``, ``position`` and ``token`` (or ``token_id``),
            one row per row of ``values``.
        values: ``[n_rows, n_latents]`` (then ``latent`` picks the column) or ``[n_rows]`` per-token values.
        latent: the column of ``values`` to show, and the name in the header.
        tokenizer: turns tokens into text (``model.tokenizer``); defaults to ``acts.tokenizer``.
        n: how many contexts, strongest first (ties: the earlier row first).
        window: tokens of the same text shown before the peak token; ``after``: shown after it.
        title: the header; default ``"latent {latent} (fires on x% of tokens)"``.

    Returns:
        An HTML string: Jupyter renders it when it is a cell's value, and several join with ``"".join``.
        Each token is shaded by its value relative to the column's maximum and the peak token is
        underlined. Token text is HTML-escaped, so a token such as ``<script>`` shows as text.
    """
    text_id, position, tokens, token_ids, own_tokenizer = _token_index(acts)
    tokenizer = tokenizer if tokenizer is not None else own_tokenizer
    n = check_int("n", n, minimum=1)
    window = check_int("window", window, minimum=0)
    after = check_int("after", after, minimum=0)
    if isinstance(values, torch.Tensor) and values.ndim == 2 and latent is not None:
        values = values[:, check_int("latent", latent, minimum=0, maximum=values.shape[1] - 1)]  # one column only
    v = as_numpy(values, "values")
    if v.ndim == 2:
        if latent is None:
            raise ValueError(f"values has shape {v.shape} ([n_rows, n_latents]); pass latent= to pick a column")
        v = v[:, check_int("latent", latent, minimum=0, maximum=v.shape[1] - 1)]
    if v.ndim != 1:
        raise ValueError(f"values must be [n_rows] or [n_rows, n_latents], got shape {v.shape}")
    if len(v) != len(text_id):
        raise ValueError(f"values has {len(v)} rows but the token index has {len(text_id)}; pass the values "
                         "of exactly these activation rows")
    if len(v) == 0:
        raise ValueError("values is empty: there are no tokens to show")
    v = v.astype(np.float64)
    check_finite("values", v)
    top = np.argsort(-v, kind="stable")[:n]
    vmax = float(v.max()) if v.max() > 0 else 1.0
    lines = []
    for row in top:
        tid, pos = text_id[row], position[row]
        ctx = np.flatnonzero((text_id == tid) & (position >= pos - window) & (position <= pos + after))
        ctx = ctx[np.argsort(position[ctx], kind="stable")]
        spans = []
        for r in ctx:
            shade = min(max(v[r] / vmax, 0.0), 1.0)
            text = html.escape(_token_text(tokenizer, None if tokens is None else tokens[r],
                                           None if token_ids is None else token_ids[r]))
            peak = "border-bottom:2px solid black;" if r == row else ""
            spans.append(f'<span title="{v[r]:.3f}" style="background:rgba(255,80,0,{shade:.2f});{peak}">{text}</span>')
        lines.append(f"<div style='font-family:monospace;white-space:pre;margin:2px 0'>{v[row]:7.2f} │ "
                     f"{''.join(spans)}</div>")
    if title is None:
        name = f"latent {latent}" if latent is not None else "values"
        title = f"{name} (fires on {float((v > 0).mean()):.2%} of tokens)"
    return HTMLString(f"<h4>{html.escape(str(title))}</h4>" + "".join(lines))


# --------------------------------------------------------------------------------------------
# Residual norms
# --------------------------------------------------------------------------------------------
def _norms(x: Any, name: str) -> np.ndarray:
    """Row norms of ``[n, d]`` rows (a tensor, array or Activations), or ``[n]`` norms as given."""
    if hasattr(x, "rows") and hasattr(x, "sink"):
        x = x.rows
    a = as_numpy(x, name, dtype=np.float64)
    if a.ndim == 2:
        a = np.linalg.norm(a, axis=1)
    if a.ndim != 1:
        raise ValueError(f"{name} must be rows [n, d] or norms [n], got shape {a.shape}")
    check_finite(name, a)
    return a


def norm_histogram(rows: Any, marked: Any = None, *, bins: int = 60, label: str = "tokens",
                   marked_label: str = "marked", title: str = "Residual norms", ax: Any = None,
                   alt: str | None = None) -> Any:
    """Histogram of log10 row norms, with a vertical red line at each marked row's norm.

    Args:
        rows: activation rows ``[n, d]`` (a tensor, array or :class:`tk.Activations`) or their norms ``[n]``.
        marked: a boolean mask ``[n]`` over ``rows`` (the histogram then shows the other rows), or other
            rows or norms to mark (e.g. position 0 of a few texts). For an Activations, ``None`` marks its
            sink rows; for anything else ``None`` marks nothing.
        bins: histogram bins.

    Returns the Axes. Norms must be positive (a log scale has no place for 0).
    """
    import seaborn as sns

    bins = check_int("bins", bins, minimum=1)
    if marked is None and hasattr(rows, "sink"):
        marked = np.asarray(rows.sink, dtype=bool)
    norms = _norms(rows, "rows")
    if len(norms) == 0:
        raise ValueError("rows is empty: there are no norms to plot")
    lines = np.array([])
    if marked is not None:
        m = marked.numpy() if isinstance(marked, torch.Tensor) else np.asarray(marked)
        if m.dtype == bool:
            if m.shape != norms.shape:
                raise ValueError(f"a boolean marked mask needs shape {norms.shape} (one flag per row), got {m.shape}")
            norms, lines = norms[~m], norms[m]
        else:
            lines = _norms(marked, "marked")
    bad = np.concatenate([norms, lines]) <= 0
    if bad.any():
        raise ValueError(f"{int(bad.sum())} norm(s) are 0 or negative; a log10 histogram needs positive norms "
                         "(drop all-zero rows first)")
    ax = _new_ax(ax, (7, 3))
    sns.histplot(np.log10(norms), bins=bins, ax=ax, label=label)
    if len(lines):
        ax.vlines(np.log10(lines), 0, 1, transform=ax.get_xaxis_transform(), color="crimson", lw=1, alpha=0.6,
                  label=f"{marked_label} ({len(lines)})")
    ax.set(xlabel="log10 ‖residual‖", ylabel="tokens", title=title)
    ax.legend(fontsize=8)
    if alt is None:
        alt = (f"Histogram of log10 residual norms of {len(norms)} {label}, median {np.median(norms):.3g}"
               + (f"; {len(lines)} {marked_label} rows marked in red, median norm {np.median(lines):.3g}."
                  if len(lines) else "."))
    return _set_alt(ax, alt)


# --------------------------------------------------------------------------------------------
# Heatmap
# --------------------------------------------------------------------------------------------
def heatmap(table: Any, *, title: str, xlabel: str, ylabel: str, row_labels: Sequence[Any] | None = None,
            col_labels: Sequence[Any] | None = None, annot: bool = True, fmt: str = ".2f",
            vmin: float | None = None, vmax: float | None = None, cmap: str = "viridis", cbar: bool = True,
            cbar_label: str | None = None, ax: Any = None, alt: str | None = None) -> Any:
    """A labelled heatmap of a 2-D table (e.g. FMS per concept x representation, or an agreement matrix).

    ``table`` is a DataFrame (its index and columns label the rows and columns) or a 2-D array with
    ``row_labels`` and ``col_labels``. NaN cells are left blank. Returns the Axes.
    """
    import seaborn as sns

    annot, cbar = check_bool("annot", annot), check_bool("cbar", cbar)
    if isinstance(table, pd.DataFrame):
        rows_, cols_ = list(table.index), list(table.columns)
        try:
            data = table.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"table must hold numbers; its dtypes are {dict(table.dtypes.astype(str))}") from None
    else:
        data = as_numpy(table, "table", dtype=np.float64)
        if data.ndim != 2:
            raise ValueError(f"table must be 2-D [rows, columns], got shape {data.shape}")
        rows_ = list(range(data.shape[0])) if row_labels is None else list(row_labels)
        cols_ = list(range(data.shape[1])) if col_labels is None else list(col_labels)
    rows_ = rows_ if row_labels is None else list(row_labels)
    cols_ = cols_ if col_labels is None else list(col_labels)
    if data.size == 0:
        raise ValueError(f"table is empty (shape {data.shape}); a heatmap needs at least one cell")
    if len(rows_) != data.shape[0] or len(cols_) != data.shape[1]:
        raise ValueError(f"table has shape {data.shape} but {len(rows_)} row labels and {len(cols_)} column labels")
    if np.isinf(data).any():
        raise ValueError("table holds infinite values; a colour scale needs finite numbers (NaN leaves a cell blank)")
    ax = _new_ax(ax, (1.2 + 1.1 * data.shape[1], 0.8 + 0.5 * data.shape[0]))
    frame = pd.DataFrame(data, index=[str(r) for r in rows_], columns=[str(c) for c in cols_])
    sns.heatmap(frame, annot=annot, fmt=fmt, vmin=vmin, vmax=vmax, cmap=cmap, cbar=cbar, ax=ax,
                cbar_kws={"label": cbar_label} if cbar and cbar_label else None)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if alt is None:
        finite = data[np.isfinite(data)]
        span = f"values from {finite.min():.3g} to {finite.max():.3g}" if finite.size else "no finite values"
        alt = (f"Heatmap '{title}': {data.shape[0]} {ylabel} rows ({', '.join(map(str, rows_[:6]))}"
               f"{', ...' if len(rows_) > 6 else ''}) by {data.shape[1]} {xlabel} columns; {span}.")
    return _set_alt(ax, alt)


# --------------------------------------------------------------------------------------------
# Steering trade-off
# --------------------------------------------------------------------------------------------
def tradeoff_curve(data: pd.DataFrame, *, x: str = "perplexity", y: str = "concept_score",
                   method: str = "method", strength: str = "alpha", xscale: str = "log",
                   title: str = "Steering trade-off", xlabel: str | None = None, ylabel: str | None = None,
                   annotate: bool = True, ax: Any = None, alt: str | None = None) -> Any:
    """A concept score (``y``) against a quality score (``x``) across steering strengths, one line per method.

    ``data`` has one row per (method, strength), e.g. ``tk.summarize_sweep(...)`` filtered to one concept.
    Each method's points are joined in order of ``strength`` and, with ``annotate``, labelled with it, so
    methods whose strengths are different knobs (an additive α, SCAR's multiplier) compare on the same
    axes. Returns the Axes.
    """
    import matplotlib.pyplot as plt

    annotate = check_bool("annotate", annotate)
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a DataFrame with columns {x!r}, {y!r}, {method!r}, {strength!r}; "
                        f"got {type(data).__name__}")
    missing = [c for c in (x, y, method, strength) if c not in data.columns]
    if missing:
        raise ValueError(f"data lacks the columns {missing}; it has {list(data.columns)}")
    if data.empty:
        raise ValueError("data has no rows: nothing to plot")
    for col in (x, y, strength):
        vals = pd.to_numeric(data[col], errors="coerce").to_numpy(dtype=np.float64)
        if not np.isfinite(vals).all():
            raise ValueError(f"column {col!r} must hold finite numbers; row {int(np.flatnonzero(~np.isfinite(vals))[0])} "
                             f"is {data[col].iloc[int(np.flatnonzero(~np.isfinite(vals))[0])]!r}")
    if xscale == "log" and (data[x].to_numpy(dtype=np.float64) <= 0).any():
        raise ValueError(f"xscale='log' needs positive {x!r} values; pass xscale='linear' for these data")
    ax = _new_ax(ax, (6, 4))
    markers = "osD^vP*Xph"
    colours = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    for i, (name, part) in enumerate(data.groupby(method, sort=False)):
        part = part.sort_values(strength)
        c = colours[i % len(colours)]
        ax.plot(part[x], part[y], color=c, alpha=0.45, lw=1.2)
        ax.scatter(part[x], part[y], color=c, marker=markers[i % len(markers)], s=50, label=str(name), zorder=3)
        if annotate:
            for xv, yv, s in zip(part[x], part[y], part[strength]):
                ax.annotate(f"{s:g}", (xv, yv), textcoords="offset points", xytext=(4, 4), fontsize=7, color=c)
    ax.set(xscale=xscale, title=title, xlabel=xlabel or x, ylabel=ylabel or y)
    ax.legend(title=method, fontsize=8)
    if alt is None:
        alt = (f"Trade-off plot '{title}': {y} against {x} for {data[method].nunique()} methods "
               f"({', '.join(map(str, data[method].unique()))}), each a line through its {strength} values.")
    return _set_alt(ax, alt)


# --------------------------------------------------------------------------------------------
# Saliency maps (notebook 01)
# --------------------------------------------------------------------------------------------
def plot_saliency_grid(images: Any, saliency: Mapping[str, Any], masks: Any = None,
                       titles: Sequence[str] | None = None, cmap: str = "magma", *,
                       title: str = "Input-gradient saliency (|gradient|, each map scaled to its maximum)",
                       alt: str | None = None) -> Any:
    """Image grid: the inputs in the first row, then one row of saliency maps per model.

    ``saliency`` maps a row name to ``[n, H, W]`` maps (absolute values are shown, each map scaled to its
    own maximum). Mask outlines, when given (``[n, H, W]`` bool), are drawn in cyan. Returns the Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    images = as_numpy(images, "images", dtype=np.float64)
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"images must be a non-empty [n, H, W] array, got shape {images.shape}")
    if not isinstance(saliency, Mapping):
        raise TypeError(f"saliency must map a row name to [n, H, W] maps, got {type(saliency).__name__}")
    maps = {}
    for name, v in saliency.items():
        maps[name] = np.abs(as_numpy(v, f"saliency[{name!r}]", dtype=np.float64))
        if maps[name].shape != images.shape:
            raise ValueError(f"saliency[{name!r}] has shape {maps[name].shape}; it must match images {images.shape}")
    if masks is not None:
        masks = as_numpy(masks, "masks", dtype=bool)
        if masks.shape != images.shape:
            raise ValueError(f"masks has shape {masks.shape}; it must match images {images.shape}")
    n = len(images)
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles has {len(titles)} entries for {n} images; give one per image")
    rows = 1 + len(maps)
    fig, axes = plt.subplots(rows, n, figsize=(1.3 * n, 1.4 * rows + 0.4), squeeze=False)
    for j in range(n):
        panels = [("input", images[j], "gray")] + [(k, v[j], cmap) for k, v in maps.items()]
        for i, (name, img, cm) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(img, cmap=cm, vmin=0, vmax=max(float(img.max()), 1e-12))
            ax.set_xticks([])
            ax.set_yticks([])
            if masks is not None:
                rr, cc = np.nonzero(masks[j])
                if len(rr):
                    ax.add_patch(Rectangle((cc.min() - 0.5, rr.min() - 0.5), cc.max() - cc.min() + 1,
                                           rr.max() - rr.min() + 1, fill=False, edgecolor="cyan", linewidth=1.2))
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
            if i == 0 and titles is not None:
                ax.set_title(titles[j], fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.supxlabel("example", fontsize=8)
    fig.tight_layout()
    if alt is None:
        alt = (f"Grid of {n} input images (top row) and their input-gradient saliency maps for "
               f"{', '.join(map(str, maps))}" + (", with the annotation mask outlined in cyan." if masks is not None else "."))
    return _set_alt(fig, alt)


# --------------------------------------------------------------------------------------------
# The taxonomy of shortcut research (notebook 01)
# --------------------------------------------------------------------------------------------
def plot_taxonomy_tree(tax: Mapping[str, Any], figsize: tuple[float, float] = (14, 9), *,
                       title: str = "Shortcut research: detection and mitigation families (after Steinmann et al. 2024)",
                       alt: str | None = None) -> Any:
    """Tree diagram: shortcut -> {detection, mitigation} -> families -> methods (with citations).

    ``tax`` is the taxonomy as ``tk.load_taxonomy()`` returns it. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    missing = [k for k in ("detection", "mitigation", "references") if k not in tax]
    if missing:
        raise ValueError(f"tax lacks the sections {missing}; pass the taxonomy that tk.load_taxonomy() returns")
    refs = tax["references"]
    leaves: list[tuple[str, str, str]] = []  # (stage, family, label)
    for stage in ("detection", "mitigation"):
        for fam in tax[stage]:
            for m in fam["methods"]:
                cite = ", ".join(refs[k]["short"] for k in m.get("cite", [])[:2])
                leaves.append((stage, fam["family"], f"{m['name']}  [{cite}]"))
    if not leaves:
        raise ValueError("the taxonomy lists no methods under detection or mitigation; nothing to draw")
    n = len(leaves)
    fig, ax = plt.subplots(figsize=figsize)
    ax.set_xlim(-0.05, 1.0)
    ax.set_ylim(-0.5, n - 0.5)
    ax.invert_yaxis()
    ax.axis("off")  # a diagram: the axes carry no scale, so the columns are named in the title instead
    xs = {"root": 0.0, "stage": 0.14, "family": 0.32, "leaf": 0.55}
    colours = {"detection": "#4C72B0", "mitigation": "#DD8452"}
    box = dict(boxstyle="round,pad=0.3", linewidth=0.8)

    def edge(x0, y0, x1, y1, c):
        xm = (x0 + x1) / 2
        ax.plot([x0, xm, xm, x1], [y0, y0, y1, y1], color=c, linewidth=0.8, alpha=0.7)

    stage_y: dict[str, float] = {}
    for stage in ("detection", "mitigation"):
        ys = [i for i, lf in enumerate(leaves) if lf[0] == stage]
        if not ys:
            continue
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
    ax.set_title(f"{title}\nshortcut → stage → family → method [citations]", fontsize=11)
    fig.tight_layout()
    if alt is None:
        fams = {s: len(tax[s]) for s in ("detection", "mitigation")}
        alt = (f"Tree of shortcut research: {fams['detection']} detection families and {fams['mitigation']} "
               f"mitigation families, with {n} methods and their citations as leaves.")
    return _set_alt(fig, alt)
