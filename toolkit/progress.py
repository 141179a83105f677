"""Progress bars that suit where they are shown.

In a notebook, ``tqdm.auto`` draws a widget. In a terminal, a live bar. In a log file or CI (stderr
is not a terminal), a live bar would write one carriage-return update per step, hundreds of them per
call; there the bar prints at most one line every ``LOG_INTERVAL_S`` seconds instead.
"""
from __future__ import annotations

import sys
from typing import Any

#: Seconds between updates when the bar goes to a log rather than a terminal or a notebook.
LOG_INTERVAL_S = 30.0


def _to_log() -> bool:
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None and "IPKernelApp" in shell.config:
            return False  # a notebook kernel: tqdm.auto draws a widget
    except ImportError:
        pass
    stream = sys.stderr
    return not (hasattr(stream, "isatty") and stream.isatty())


def progress_bar(iterable: Any = None, **kwargs: Any):
    """``tqdm.auto.tqdm`` with a modest update interval when the output is a log, not a screen."""
    from tqdm.auto import tqdm

    if _to_log():
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs.setdefault("maxinterval", LOG_INTERVAL_S)
    return tqdm(iterable, **kwargs)
