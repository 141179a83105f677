"""Build the hand-written concept datasets in data/concepts/ from their sources.

    .venv/bin/python scripts/make_concepts.py            # every hand-written set (all but pii)
    .venv/bin/python scripts/make_concepts.py toxicity   # just one
    .venv/bin/python scripts/make_concepts.py --out dir  # somewhere else (the tests do this)

Sources are plain text files in data/concepts/source/, one pair per line:
``[style] first side => second side`` (toxicity), ``early-modern line => modern paraphrase``
(shakespeare), or ``concept sentence => matched sentence without it`` (ocean, cooking, formal, question,
sadness, french), grouped under ``## topic`` headings. This script parses them, drops any pair
that would repeat a text already seen (so every text is unique), and assigns whole pairs
to train or test (about 70/30, stratified by topic, seeded) so that no pair crosses the
split. The PII dataset has its own generator, scripts/make_pii.py.
"""
from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from toolkit.data import MATCHED_CONCEPTS  # noqa: E402  (one list of the matched-pair sets)

CONCEPTS = ROOT / "data" / "concepts"
SEED = 0
TEST_FRACTION = 0.3
LINE = re.compile(r"^(?:\[(?P<style>[a-z]+)\]\s*)?(?P<a>.+?)\s+=>\s+(?P<b>.+)$")


def parse_pairs(path: Path) -> list[dict]:
    """Parse a source file into dicts with topic, style, first (label 1) and second (label 0) text."""
    pairs, topic = [], None
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or (line.startswith("#") and not line.startswith("##")):
            continue
        if line.startswith("##"):
            topic = line[2:].strip()
            continue
        m = LINE.match(line)
        if m is None or topic is None:
            raise ValueError(f"{path.name}:{lineno}: cannot parse {raw!r}")
        pairs.append({"topic": topic, "style": m["style"], "a": m["a"].strip(), "b": m["b"].strip()})
    return pairs


def dedupe(pairs: list[dict]) -> list[dict]:
    """Keep the first pair that uses a text; drop later pairs that would repeat one (either side)."""
    seen, kept = set(), []
    for p in pairs:
        keys = (p["a"].casefold(), p["b"].casefold())
        if keys[0] == keys[1] or keys[0] in seen or keys[1] in seen:
            print(f"  dropped duplicate pair: {p['a']!r} / {p['b']!r}")
            continue
        seen.update(keys)
        kept.append(p)
    return kept


def assign_splits(pairs: list[dict], seed: int = SEED) -> None:
    """Give each pair a split, ~TEST_FRACTION of every topic's pairs going to test."""
    by_topic: dict[str, list[dict]] = {}
    for p in pairs:
        by_topic.setdefault(p["topic"], []).append(p)
    for topic in sorted(by_topic):
        # One generator per topic (string seeds hash with SHA-512, stable across runs), so
        # adding a topic to the source file leaves the other topics' splits unchanged.
        rng = random.Random(f"{seed}/{topic}")
        group = by_topic[topic]
        order = list(range(len(group)))
        rng.shuffle(order)
        n_test = round(TEST_FRACTION * len(group))
        for rank, i in enumerate(order):
            group[i]["split"] = "test" if rank < n_test else "train"


def write_jsonl(rows: list[dict], path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def paired_rows(name: str, before: Callable[[dict, int], dict] = lambda p, label: {},
                after: Callable[[dict, int], dict] = lambda p, label: {}) -> list[dict]:
    """The rows of ``source/<name>_pairs.txt``: each pair's first side (label 1) and second side (label 0),
    with the pair's split, id and topic. ``before``/``after`` add a set's own columns around those, in the
    column order its file has always had."""
    pairs = dedupe(parse_pairs(CONCEPTS / "source" / f"{name}_pairs.txt"))
    assign_splits(pairs)
    rows = []
    for pid, p in enumerate(pairs):
        for text, label in ((p["a"], 1), (p["b"], 0)):
            rows.append({"text": text, "label": label, **before(p, label), "split": p["split"], "pair_id": pid,
                         "topic": p["topic"], **after(p, label)})
    return rows


def toxicity_rows() -> list[dict]:
    return paired_rows("toxicity", after=lambda p, label: {"style": p["style"] if label else "civil"})


def shakespeare_rows() -> list[dict]:
    return paired_rows("shakespeare", before=lambda p, label: {"register": "early_modern" if label else "modern"},
                       after=lambda p, label: {"source": p["style"] or "original"})


BUILDERS = {"toxicity": toxicity_rows, "shakespeare": shakespeare_rows,
            **{name: (lambda n=name: paired_rows(n)) for name in MATCHED_CONCEPTS}}

def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Build the hand-written concept datasets from data/concepts/source/.")
    ap.add_argument("names", nargs="*", help=f"datasets to build (default: all of {sorted(BUILDERS)})")
    ap.add_argument("--out", type=Path, default=CONCEPTS, help="output folder (default: data/concepts)")
    args = ap.parse_args()
    for name in args.names or list(BUILDERS):
        if name not in BUILDERS:
            raise SystemExit(f"unknown dataset {name!r}; valid: {sorted(BUILDERS)}")
        rows = BUILDERS[name]()
        args.out.mkdir(parents=True, exist_ok=True)
        write_jsonl(rows, args.out / f"{name}.jsonl")
        print(f"{name}: {len(rows) // 2} pairs, {len(rows)} texts")


if __name__ == "__main__":
    main()
