"""Render the executed curriculum as a small offline website: ``build/site/index.html``.

Inputs (all produced by ``make curriculum``):

* ``notebooks/NN_name.ipynb``        the masters; the first markdown cell gives title, objectives,
                                     prerequisites and time estimate for the course map;
* ``build/executed/NN_name.ipynb``   the executed copies (figures live in their outputs);
* ``build/results/NN_name.json``     the metrics each notebook saves with ``tk.save_results``.

Output: ``build/site/index.html`` (course map, key metrics, figure thumbnails) and
``build/site/notebooks/NN_name.html`` (each executed notebook rendered by nbconvert, figures
embedded as data URIs). Nothing is fetched from the network: CDN scripts that nbconvert would
reference are dropped, and external images (e.g. the Colab badge) become plain links.

    python scripts/build_site.py [--notebooks DIR] [--executed DIR] [--results DIR] [--out DIR]
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import nbformat

ROOT = Path(__file__).resolve().parents[1]
IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg"}
MAX_THUMBS = 3
MAX_METRICS = 24  # the rest stay in the JSON; the card is a summary


@dataclass
class Entry:
    """One notebook as the course map shows it."""

    stem: str
    title: str
    order: str
    objectives: list[str] = field(default_factory=list)
    prerequisites: str = ""
    time: str = ""
    page: str | None = None  # relative link to the rendered notebook, None if not executed
    n_figures: int = 0
    thumbs: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    claims: list[dict[str, Any]] = field(default_factory=list)


# ---- parsing the first markdown cell ---------------------------------------------------------

_LABELS = {
    "learning objectives": "objectives",
    "objectives": "objectives",
    "prerequisites": "prerequisites",
    "prerequisite": "prerequisites",
    "time estimate": "time",
    "time": "time",
    "estimated time": "time",
}
_BOLD_LABEL_RE = re.compile(  # **Label:** rest   or   **Label**: rest
    r"^\s*(?:[-*+]\s+)?(?:\*\*|__)(?P<label>[^*_:]+?)\s*(?::\s*(?:\*\*|__)|(?:\*\*|__)\s*:?)\s*(?P<rest>.*)$"
)
_HEADING_LABEL_RE = re.compile(r"^\s*#{1,6}\s+(?P<label>[^:#]+?)\s*:?\s*(?P<rest>)$")


def _label(line: str) -> tuple[str, str] | None:
    for regex in (_BOLD_LABEL_RE, _HEADING_LABEL_RE):
        m = regex.match(line)
        if m and m.group("label").strip().lower() in _LABELS:
            return _LABELS[m.group("label").strip().lower()], m.group("rest").strip()
    return None


_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


def parse_header(markdown: str) -> dict[str, Any]:
    """Title, learning objectives, prerequisites and time from a notebook's first markdown cell.

    A labelled section (``**Prerequisites:** ...``, ``## Learning objectives``) runs until a blank
    line after its text, another label or a heading; a list may have blank lines between its items.
    Lines that continue a list item or a sentence are joined to it.
    """
    out: dict[str, list[str]] = {"objectives": [], "prerequisites": [], "time": []}
    title = ""
    section: str | None = None
    blank_after_text = False
    for line in markdown.splitlines():
        if "colab-badge" in line or "colab.research.google.com" in line:
            continue
        if not title and re.match(r"^#\s+\S", line):
            title = line.lstrip("#").strip()
            continue
        found = _label(line)
        if found:
            section, rest = found
            out[section] += [rest] if rest else []
            blank_after_text = False
            continue
        if re.match(r"^\s*#", line):  # another heading ends the section
            section = None
            continue
        if section is None:
            continue
        if not line.strip():
            blank_after_text = bool(out[section])
            continue
        items = out[section]
        bullet = bool(_BULLET.match(line))
        if blank_after_text and not bullet:
            section = None  # a paragraph after the section's text is not part of it
            continue
        blank_after_text = False
        text = _BULLET.sub("", line).strip()
        if bullet or not items:
            items.append(text)
        else:
            items[-1] = f"{items[-1]} {text}"
    return {
        "title": title,
        "objectives": out["objectives"],
        "prerequisites": "; ".join(out["prerequisites"]),
        "time": " ".join(out["time"]),
    }


def short_title(title: str, order: str) -> str:
    """``"00 · Tracing"`` -> ``"Tracing"`` when the course map already shows the number."""
    return re.sub(rf"^\s*(?:notebook\s+)?{re.escape(order)}\s*[·:.\-–—|]?\s*", "", title, flags=re.I) or title


def inline_markdown(text: str) -> str:
    """Escape HTML, then render the inline markdown used in headers: code, bold, italics, links."""
    s = html.escape(text, quote=False)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"(?<![*\w])\*([^*]+)\*(?!\w)", r"<em>\1</em>", s)

    def link(m: re.Match) -> str:
        return f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>'

    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", link, s)


# ---- rendering notebooks ---------------------------------------------------------------------

_EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\ssrc=[\"']https?://[^\"']*[\"'][^>]*>\s*</script>", re.I)
_EXTERNAL_LINK = re.compile(r"<link[^>]*\shref=[\"']https?://[^\"']*[\"'][^>]*>", re.I)
_SCRIPT_BLOCK = re.compile(r"<script\b[^>]*>.*?</script>", re.I | re.S)
_CDN = re.compile(r"https?://(?:cdnjs\.cloudflare\.com|cdn\.jsdelivr\.net|unpkg\.com)", re.I)
_EXTERNAL_IMG = re.compile(r"<img[^>]*\ssrc=[\"'](https?://[^\"']*)[\"'][^>]*>", re.I)


def _offline(page: str) -> str:
    """Drop CDN scripts/stylesheets and turn external images into text links."""
    page = _EXTERNAL_SCRIPT.sub("", page)
    # Inline loaders that import from a CDN at run time (nbconvert's mermaid and widget loaders).
    page = _SCRIPT_BLOCK.sub(lambda m: "" if _CDN.search(m.group(0)) else m.group(0), page)
    page = _EXTERNAL_LINK.sub("", page)

    def img(m: re.Match) -> str:
        alt = re.search(r"\salt=[\"']([^\"']*)[\"']", m.group(0))
        label = alt.group(1) if alt and alt.group(1) else "external image"
        return f'<span class="offline-img">[{html.escape(label)}]</span>'

    return _EXTERNAL_IMG.sub(img, page)


class LinkFixer:
    """Point relative links of a notebook at what the site has.

    ``other.ipynb`` becomes ``other.html`` (the rendered page); a link to a repository file such
    as ``../data/moral/README.md`` gets that file copied under ``site/files/`` so it still resolves.
    Links that resolve to nothing are left alone (the site test reports them).
    """

    def __init__(self, notebooks: Path, out: Path, stems: set[str], repo: Path = ROOT):
        self.notebooks, self.out, self.stems, self.repo = notebooks.resolve(), out, stems, repo.resolve()

    def href(self, href: str, page_dir: str) -> str:
        """The fixed ``href`` for a page written in ``out/page_dir`` ("" or "notebooks")."""
        if re.match(r"^(?:[a-z][a-z0-9+.-]*:|#|//)", href, re.I):
            return href
        path, _, frag = href.partition("#")
        if not path:
            return href
        to_root = "../" if page_dir else ""
        frag = f"#{frag}" if frag else ""
        stem = Path(unquote(path)).stem
        if path.endswith(".ipynb") and stem in self.stems:
            return f"{to_root}notebooks/{stem}.html{frag}"
        target = (self.notebooks / unquote(path)).resolve()
        if target.is_dir() and (target / "README.md").is_file():
            target = target / "README.md"
        if target.is_file() and self.repo in target.parents:
            rel = target.relative_to(self.repo)
            dest = self.out / "files" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target, dest)
            return f"{to_root}files/{rel.as_posix()}{frag}"
        return href

    def page(self, text: str, page_dir: str) -> str:
        return re.sub(r'(<a\s[^>]*?href=")([^"]*)(")',
                      lambda m: m.group(1) + html.escape(self.href(html.unescape(m.group(2)), page_dir)) + m.group(3),
                      text)


NAV_CSS = """
<style>
.site-nav{position:sticky;top:0;z-index:100;display:flex;gap:1.5em;align-items:center;
  padding:.55em 1.2em;background:#1f2d3d;color:#fff;font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif}
.site-nav a{color:#cfe3ff;text-decoration:none}.site-nav a:hover{text-decoration:underline}
.site-nav .spacer{flex:1}
.offline-img{color:#666;font-style:italic}
</style>
"""


def _nav(prev: Entry | None, nxt: Entry | None, title: str) -> str:
    parts = ['<nav class="site-nav"><a href="../index.html">&#8962; Course map</a>']
    parts.append(f"<strong>{html.escape(title)}</strong><span class=\"spacer\"></span>")
    if prev and prev.page:
        parts.append(f'<a href="{Path(prev.page).name}">&larr; {html.escape(prev.title)}</a>')
    if nxt and nxt.page:
        parts.append(f'<a href="{Path(nxt.page).name}">{html.escape(nxt.title)} &rarr;</a>')
    parts.append("</nav>")
    return "".join(parts)


def render_notebook(nb, title: str) -> str:
    """HTML for one executed notebook (nbconvert's lab template; images embedded as data URIs)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    return _offline(body)


def figures(nb) -> list[tuple[str, bytes]]:
    """(extension, bytes) of every image output, in notebook order."""
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = output.get("data", {})
            for mime, ext in IMAGE_TYPES.items():
                if mime in data:
                    raw = data[mime]
                    raw = "".join(raw) if isinstance(raw, list) else raw
                    found.append((ext, base64.b64decode(raw)))
                    break
    return found


_PLOT_CALL = re.compile(r"\b(?:plt\.show|plt\.plot|sns\.\w+|tk\.plots\.\w+|\.plot)\s*\(")


def plots(nb) -> bool:
    """Does any code cell draw a figure (matplotlib, seaborn, toolkit.plots)?"""
    return any(c.cell_type == "code" and _PLOT_CALL.search(c.source) for c in nb.cells)


# ---- metrics ---------------------------------------------------------------------------------

def load_results(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, provenance) from a results JSON written by ``tk.save_results``."""
    record = json.loads(path.read_text())
    if "metrics" in record and isinstance(record["metrics"], dict):
        return record["metrics"], record.get("provenance", {}) or {}
    metrics = {k: v for k, v in record.items() if k not in {"provenance", "notebook"}}
    return metrics, record.get("provenance", {}) or {}


def load_claims(path: Path) -> list[dict[str, Any]]:
    """The claims ledger a results JSON holds (``tk.claim``); older files have none."""
    claims = json.loads(path.read_text()).get("claims", [])
    return claims if isinstance(claims, list) else []


def _claims_table(claims: list[dict[str, Any]]) -> str:
    """Which claims held in this run, with the numbers and the baseline: what a paper's appendix cites."""
    if not claims:
        return ""
    asserted = [c for c in claims if c.get("asserted", True)]
    rows = []
    for c in claims:
        if c.get("asserted", True):
            verdict = '<span class="badge held">held</span>' if c["held"] else '<span class="badge failed">did not hold</span>'
        else:
            why = html.escape(c.get("reported", "not asserted"), quote=True)
            verdict = (f'<span class="badge reported" title="{why}">{"held" if c["held"] else "did not hold"} '
                       "(reported)</span>")
        nums = ", ".join(f"{html.escape(str(k))} = {format_value(v)}" for k, v in (c.get("numbers") or {}).items())
        rows.append(f"<tr><td>{verdict}</td><td>{html.escape(c['name'])}</td><td>{nums}</td>"
                    f"<td>{html.escape(c.get('against', ''))}</td></tr>")
    held = sum(c["held"] for c in asserted)
    return (f"<details class=\"claims\" open><summary><strong>Claims: {held} of {len(asserted)} held</strong>"
            + (f" ({len(claims) - len(asserted)} more reported, not asserted)" if len(claims) > len(asserted) else "")
            + "</summary><table class=\"metrics\"><thead><tr><th>outcome</th><th>claim</th><th>numbers</th>"
              "<th>against</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></details>")


def flatten(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += flatten(value, name + ".")
        else:
            rows.append((name, value))
    return rows


def format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return html.escape(str(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        if len(value) <= 6 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return "[" + ", ".join(format_value(v) for v in value) + "]"
        return f"<span class=\"muted\">list of {len(value)}</span>"
    return html.escape(str(value))


# ---- the index page --------------------------------------------------------------------------

CSS = """
:root{--ink:#1d232b;--muted:#5d6b7a;--line:#dde3ea;--accent:#2a62b8;--bg:#f6f8fa;--card:#fff}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
  font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{background:#1f2d3d;color:#fff;padding:2.2em 1.5em 1.6em}
header h1{margin:0 0 .3em;font-size:1.9em}header p{margin:0;color:#c9d6e4;max-width:52em}
main{max-width:1040px;margin:0 auto;padding:1.5em}
h2{margin:1.6em 0 .6em;font-size:1.35em}
a{color:var(--accent)}
table{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line)}
th,td{text-align:left;padding:.5em .7em;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#eef2f6;font-weight:600;font-size:.92em}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
table.map td.time{min-width:7em;max-width:16em}
table.map td:nth-child(2){min-width:12em}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1.1em 1.3em;margin:1.1em 0}
.card h3{margin:0 0 .4em;font-size:1.2em}
.meta{color:var(--muted);font-size:.92em;margin:.2em 0 .6em}
.muted{color:var(--muted)}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:1.2em}
@media (max-width:760px){.cols{grid-template-columns:1fr}}
.metrics td{font-size:.92em;padding:.3em .6em}
.badge.held{background:#dcfce7;color:#166534}.badge.failed{background:#fee2e2;color:#991b1b}
.badge.reported{background:#f3f4f6;color:#374151}
.thumbs{display:flex;gap:.6em;flex-wrap:wrap;margin-top:.8em}
.thumbs img{height:130px;width:auto;border:1px solid var(--line);border-radius:4px;background:#fff}
.badge{display:inline-block;font-size:.78em;padding:.1em .55em;border-radius:999px;background:#e7eef8;color:#2a4a7a}
.badge.missing{background:#fbe9e7;color:#8a2b1d}
footer{color:var(--muted);font-size:.85em;padding:2em 1.5em;text-align:center}
code{background:#eef2f6;padding:.05em .3em;border-radius:3px;font-size:.92em}
"""


def _course_map(entries: list[Entry]) -> str:
    rows = []
    for e in entries:
        title = (f'<a href="{e.page}">{html.escape(e.title)}</a>' if e.page
                 else f'{html.escape(e.title)} <span class="badge missing">not executed</span>')
        rows.append(
            f"<tr><td class=\"num\">{html.escape(e.order)}</td><td>{title}</td>"
            f"<td>{inline_markdown(e.prerequisites) or '<span class=muted>none</span>'}</td>"
            f"<td class=\"time\">{inline_markdown(e.time) or '&ndash;'}</td>"
            f"<td class=\"num\">{e.n_figures}</td></tr>"
        )
    return ("<table class=\"map\"><thead><tr><th>#</th><th>Notebook</th><th>Prerequisites</th>"
            "<th>Time</th><th>Figures</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _card(e: Entry) -> str:
    objectives = "".join(f"<li>{inline_markdown(o)}</li>" for o in e.objectives)
    if e.metrics:
        rows = flatten(e.metrics)
        metric_rows = "".join(
            f"<tr><td><code>{html.escape(k)}</code></td><td class=\"num\">{format_value(v)}</td></tr>"
            for k, v in rows[:MAX_METRICS]
        )
        more = (f'<p class="muted">and {len(rows) - MAX_METRICS} more in <code>build/results/{html.escape(e.stem)}.json</code></p>'
                if len(rows) > MAX_METRICS else "")
        metrics = f"<table class=\"metrics\"><tbody>{metric_rows}</tbody></table>{more}"
    else:
        metrics = '<p class="muted">No results file yet (<code>build/results/' + html.escape(e.stem) + '.json</code>).</p>'
    p = e.provenance
    prov_bits = [f"{k}: {html.escape(str(p[k]))}" for k in ("mode", "device", "model", "seed", "commit") if p.get(k) is not None]
    prov = f'<p class="meta">{" · ".join(prov_bits)}</p>' if prov_bits else ""
    thumbs = "".join(
        f'<a href="{e.page}"><img src="{t}" alt="figure {i + 1} of {html.escape(e.title)}"></a>'
        for i, t in enumerate(e.thumbs)
    )
    link = f'<a href="{e.page}">Open the executed notebook &rarr;</a>' if e.page else '<span class="badge missing">not executed</span>'
    return f"""<section class="card" id="{html.escape(e.stem)}">
<h3>{html.escape(e.order)} &middot; {html.escape(e.title)}</h3>
<p class="meta">Time: {inline_markdown(e.time) or '&ndash;'} &middot; Prerequisites: {inline_markdown(e.prerequisites) or 'none'} &middot; {link}</p>
<div class="cols"><div><strong>Learning objectives</strong><ul>{objectives or '<li class="muted">not stated</li>'}</ul></div>
<div><strong>Key metrics</strong>{metrics}{prov}</div></div>
{_claims_table(e.claims)}
<div class="thumbs">{thumbs}</div>
</section>"""


def index_page(entries: list[Entry], title: str) -> str:
    # The page says what it was built from (the commits in the results' provenance), not when: the same
    # results give the same bytes on any day.
    commits = sorted({str(e.provenance["commit"]) for e in entries if e.provenance.get("commit")})
    stamp = f"from commit {', '.join(html.escape(c) for c in commits)}" if commits else "from results without a recorded commit"
    cards = "\n".join(_card(e) for e in entries)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{CSS}</style></head>
<body>
<header><h1>{html.escape(title)}</h1>
<p>Executed notebooks of the interpretability and steering curriculum, in course order, with the metrics each one
asserts and saves. Every page works offline.</p></header>
<main>
<h2>Course map</h2>
{_course_map(entries)}
<h2>Notebooks</h2>
{cards}
</main>
<footer>Built {stamp} by <code>scripts/build_site.py</code>.</footer>
</body></html>
"""


# ---- driver ----------------------------------------------------------------------------------

def _stems(*folders: Path, pattern: str) -> list[str]:
    stems: set[str] = set()
    for folder in folders:
        if folder.is_dir():
            stems |= {p.stem for p in folder.glob(pattern) if re.match(r"^\d", p.stem)}
    return sorted(stems)


def build_site(notebooks: Path, executed: Path, results: Path, out: Path,
               title: str = "Interpretability & steering curriculum") -> Path:
    """Write the site into ``out`` and return the path of ``index.html``."""
    stems = _stems(notebooks, executed, pattern="*.ipynb")
    if not stems:
        raise SystemExit(f"build_site: no notebooks found in {notebooks} or {executed}")
    if out.exists():
        shutil.rmtree(out)
    (out / "notebooks").mkdir(parents=True)
    (out / "figures").mkdir()

    fixer = LinkFixer(notebooks, out, set(stems), repo=notebooks.parent)  # notebooks/ sits in the repo root
    entries: list[Entry] = []
    executed_nbs: dict[str, Any] = {}
    for stem in stems:
        master_path, exec_path = notebooks / f"{stem}.ipynb", executed / f"{stem}.ipynb"
        source_nb = nbformat.read(master_path if master_path.exists() else exec_path, as_version=4)
        first_md = next((c.source for c in source_nb.cells if c.cell_type == "markdown"), "")
        head = parse_header(first_md)
        order = stem.split("_", 1)[0]
        entry = Entry(stem=stem, title=short_title(head["title"], order) if head["title"] else stem, order=order,
                      objectives=head["objectives"], prerequisites=head["prerequisites"], time=head["time"])
        if exec_path.exists():
            nb = nbformat.read(exec_path, as_version=4)
            executed_nbs[stem] = nb
            entry.page = f"notebooks/{stem}.html"
            figs = figures(nb)
            entry.n_figures = len(figs)
            if not figs and plots(source_nb):
                print(f"build_site: warning: {exec_path} has no figures although {stem} plots; was it executed "
                      "with MPLBACKEND=Agg? Execute with the inline backend (leave MPLBACKEND unset).", file=sys.stderr)
            for i, (ext, data) in enumerate(figs[:MAX_THUMBS]):
                name = f"figures/{stem}-{i + 1}.{ext}"
                (out / name).write_bytes(data)
                entry.thumbs.append(name)
        res = results / f"{stem}.json"
        if res.exists():
            entry.metrics, entry.provenance = load_results(res)
            entry.claims = load_claims(res)
        entries.append(entry)

    for i, entry in enumerate(entries):
        if entry.stem not in executed_nbs:
            continue
        page = render_notebook(executed_nbs[entry.stem], entry.title)
        prev = next((e for e in reversed(entries[:i]) if e.page), None)
        nxt = next((e for e in entries[i + 1:] if e.page), None)
        page = page.replace("</head>", NAV_CSS + "</head>", 1)
        page = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + _nav(prev, nxt, entry.title), page, count=1)
        (out / entry.page).write_text(fixer.page(page, "notebooks"), encoding="utf-8")

    index = out / "index.html"
    index.write_text(fixer.page(index_page(entries, title), ""), encoding="utf-8")
    return index


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    ap.add_argument("--executed", type=Path, default=ROOT / "build" / "executed")
    ap.add_argument("--results", type=Path, default=ROOT / "build" / "results")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    args = ap.parse_args(argv)
    index = build_site(args.notebooks, args.executed, args.results, args.out)
    pages = sorted((args.out / "notebooks").glob("*.html"))
    print(f"wrote {index} and {len(pages)} notebook pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
