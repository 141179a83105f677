"""Progress bars: a widget or live bar on screen, a line every LOG_INTERVAL_S seconds in a log."""
from __future__ import annotations

import io

from toolkit import progress


def test_a_log_gets_few_updates(monkeypatch):
    log = io.StringIO()  # not a terminal, as in CI
    monkeypatch.setattr(progress.sys, "stderr", log)
    bar = progress.progress_bar(range(500), desc="work", file=log)
    # tqdm's own default redraws every 0.1 s; a log gets at most one line per LOG_INTERVAL_S.
    assert bar.mininterval == progress.LOG_INTERVAL_S
    for _ in bar:
        pass
    bar.close()
    assert "500/500" in log.getvalue()  # the final count is still written


def test_a_terminal_keeps_the_live_bar(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    term = Tty()
    monkeypatch.setattr(progress.sys, "stderr", term)
    bar = progress.progress_bar(range(3), file=term)
    assert bar.mininterval < progress.LOG_INTERVAL_S
    bar.close()
