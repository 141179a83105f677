"""Which claims held, from results folders written by the notebooks.

    python scripts/claims.py [--strict] [FOLDER]           the ledger of one run
    python scripts/claims.py --compare FOLDER FOLDER ...     a markdown table, one column per run

FOLDER defaults to ``TOOLKIT_RESULTS`` (``build/results``). With ``--strict`` the exit status is 1 when any
asserted claim did not hold, for runs on the embedded models, where each is expected to hold.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit.claims import compare, summarize  # noqa: E402


def main(argv: list[str]) -> int:
    if argv[:1] == ["--compare"]:
        if len(argv) < 2:
            print(__doc__.strip(), file=sys.stderr)
            return 2
        print(compare(argv[1:]))
        return 0
    strict = "--strict" in argv
    rest = [a for a in argv if a != "--strict"]
    if len(rest) > 1 or any(a.startswith("-") for a in rest):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    failed = summarize(rest[0] if rest else None)
    return 1 if strict and failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
