"""Which claims held, from results folders written by the notebooks.

    python scripts/claims.py [--strict] [FOLDER]                  the ledger of one run
    python scripts/claims.py --compare [--numbers] FOLDER ...     a markdown table, one column per run

FOLDER defaults to ``TOOLKIT_RESULTS`` (``build/results``). With ``--strict`` the exit status is 1 when any
asserted claim did not hold, for runs on the embedded models, where each is expected to hold. ``--numbers``
lists the numbers behind each claim in every run, with their spread (e.g. across seeds: make test-seeds).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit.claims import compare, summarize  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("folders", nargs="*", help="results folders (default: TOOLKIT_RESULTS)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if an asserted claim did not hold")
    parser.add_argument("--compare", action="store_true", help="set several runs side by side")
    parser.add_argument("--numbers", action="store_true", help="with --compare: the numbers and their spread")
    args = parser.parse_args(argv)
    if args.compare:
        if not args.folders:
            parser.error("--compare needs at least one results folder")
        print(compare(args.folders, numbers=args.numbers))
        return 0
    if args.numbers:
        parser.error("--numbers goes with --compare")
    if len(args.folders) > 1:
        parser.error(f"one results folder at a time (got {len(args.folders)}); use --compare for several")
    failed = summarize(args.folders[0] if args.folders else None)
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
