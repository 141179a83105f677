"""Text that says what a figure shows, for readers who cannot see it.

In a notebook, a matplotlib figure's plain-text form is normally ``<Figure size 640x480 with 1 Axes>``. Once
``toolkit`` is imported in a kernel, it is instead a description built from what the figure already states:
its title, each panel's title and axis labels, and its legend entries. The book uses that text as the image's
alt text, so every chapter's figures are described without anyone writing the description twice.
"""
from __future__ import annotations

import os
import sys
from typing import Any

PREFIX = "Figure: "


def _panel(ax: Any) -> str:
    parts = []
    title = ax.get_title() or ax.get_title(loc="left") or ax.get_title(loc="right")
    if title:
        parts.append(title.strip())
    x, y = ax.get_xlabel().strip(), ax.get_ylabel().strip()
    if x or y:
        parts.append(f"{y or 'values'} against {x or 'index'}" if y else f"x: {x}")
    legend = ax.get_legend()
    if legend is not None:
        labels = [t.get_text() for t in legend.get_texts() if t.get_text()]
        if labels:
            parts.append("legend: " + ", ".join(labels[:8]) + (" …" if len(labels) > 8 else ""))
    return "; ".join(parts)


def describe_figure(fig: Any) -> str:
    """One sentence for ``fig``: its title, then each described panel (colour bars and empty axes skipped)."""
    suptitle = fig._suptitle.get_text().strip() if getattr(fig, "_suptitle", None) is not None else ""
    panels = [p for p in (_panel(ax) for ax in fig.axes if ax.get_label() != "<colorbar>") if p]
    n = len([ax for ax in fig.axes if ax.get_label() != "<colorbar>"])
    text = suptitle or (f"{n} panels" if n > 1 else "a plot")
    if panels:
        text += ". " + " | ".join(panels)
    return PREFIX + text


def _describe(fig: Any, printer: Any, cycle: bool) -> None:
    printer.text(describe_figure(fig))


def _install(shell: Any) -> None:
    shell.display_formatter.formatters["text/plain"].for_type_by_name("matplotlib.figure", "Figure", _describe)


_HOOKED: set[int] = set()


def register() -> bool:
    """Make figures' plain-text form their description in the running IPython kernel; False outside one.

    The inline backend drops every formatter for figures when it loads, so in a kernel that uses it the
    backend is loaded first. The formatter is also put back before each cell and before the backend shows a
    cell's figures, in case something switches backends later.
    """
    if "IPython" not in sys.modules:
        return False
    shell = sys.modules["IPython"].get_ipython()
    if shell is None:
        return False
    if "matplotlib_inline" in os.environ.get("MPLBACKEND", ""):
        # A kernel's inline backend: configure it now, so its one-off reset of figure formatters is behind us.
        import matplotlib_inline.backend_inline  # noqa: F401
    _install(shell)
    if id(shell) not in _HOOKED:
        _HOOKED.add(id(shell))
        shell.events.register("pre_run_cell", lambda *info: _install(shell))
        shell.events.register("post_execute", lambda: _install(shell))
    return True
