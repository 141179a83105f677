"""The course book's own Sphinx extension: chapters from `make curriculum`, the course map and the claims.

* At ``builder-inited`` the executed notebooks (``course_executed``) and the repository pages they link to
  (``course_repo_pages``: docs, data cards) are copied into the book's source folder, mirroring the
  repository's layout so that every relative link in a notebook resolves in the book too. Each figure gets
  alt text: the description ``toolkit`` gives a figure in a kernel (its title, panels, axes and legend).
* ``{course-map}`` is the table of chapters: order, prerequisites, time, exercises and claims held, read
  from each master notebook's first cell and its results file.
* ``{claims-summary}`` shows every results file found under ``course_results`` (one folder per model or
  seed), each as the card the notebook itself shows (``toolkit.provenance.results_markdown``).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)
CHAPTER = re.compile(r"^\d\d_.+\.ipynb$")
REMOTE_IMAGE = re.compile(r"!\[([^\]]*)\]\((?:https?:)?//[^)]+\)")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
GENERATED = ("notebooks", "docs", "data")  # folders of the source tree that the build writes


def _path(app, value: str) -> Path:
    return (Path(app.confdir) / value).resolve()


def _alt_texts(cell, chapter: str, index: int) -> list[str]:
    """One alt text per figure of a cell: the figure's own description, else what drew it."""
    first = next((line for line in cell.source.splitlines() if line.strip() and not line.startswith("#")), "")
    out = []
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if any(k.startswith("image/") for k in data):
            text = str(data.get("text/plain", ""))
            out.append(text.removeprefix("Figure: ").strip() if text.startswith("Figure: ")
                       else f"Figure from {chapter}, cell {index}, drawn by {first.strip()[:80]!r}")
    return out


def copy_chapter(source: Path, target: Path) -> int:
    """Copy one executed notebook, noting each figure's alt text; returns how many figures it has."""
    nb = nbformat.read(source, as_version=4)
    # Progress-bar widgets have no static rendering, and their JavaScript would come from a CDN: keep each
    # bar's plain-text form (its final state) instead, and drop the saved widget state.
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_MIME in data and "text/plain" in data:
                del data[WIDGET_MIME]
            elif WIDGET_MIME in data:
                output["data"] = {"text/plain": ""}
    figures = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            # A remote image (the Colab badge) would load from the network: keep its text, as a link if it was one.
            cell.source = REMOTE_IMAGE.sub(r"\1", cell.source)
        elif cell.cell_type == "code":
            alts = _alt_texts(cell, source.stem, i)
            if alts:
                figures += len(alts)
                cell.metadata["course_alt"] = alts
    nbformat.write(nb, target)
    return figures


def set_alt_text(app, doctree) -> None:
    """Give each figure of a chapter its own alt text (MyST-NB itself offers one text per cell)."""
    from docutils import nodes

    for cell in doctree.findall(lambda n: isinstance(n, nodes.container) and n.get("nb_element") == "cell_code"):
        alts = (cell.get("cell_metadata") or {}).get("course_alt") or []
        for image, alt in zip(cell.findall(nodes.image), alts):
            image["alt"] = alt


def assemble(app) -> None:
    src = Path(app.srcdir)
    repo = _path(app, "..")
    for name in GENERATED:
        shutil.rmtree(src / name, ignore_errors=True)
    executed = _path(app, app.config.course_executed)
    chapters = sorted(p for p in executed.glob("*.ipynb") if CHAPTER.match(p.name)) if executed.is_dir() else []
    if not chapters:
        logger.warning(f"no executed notebooks in {executed}: run `make curriculum` first (the book has no chapters)")
    (src / "notebooks").mkdir(parents=True)
    for nb_path in chapters:
        copy_chapter(nb_path, src / "notebooks" / nb_path.name)
    for pattern in app.config.course_repo_pages:
        for page in sorted(repo.glob(pattern)):
            target = src / page.relative_to(repo)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(page, target)


# ---- the course map ---------------------------------------------------------------------------------------

def _labelled(text: str, label: str) -> str:
    """The text after ``**Label:**`` up to the next blank line, on one line."""
    m = re.search(rf"\*\*{label}:?\*\*:?\s*(.+?)(?:\n\s*\n|$)", text, re.S | re.I)
    return " ".join(m.group(1).split()) if m else ""


def chapter_header(nb) -> dict[str, str]:
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    title = next((line.lstrip("#").strip() for line in first.splitlines() if re.match(r"^#\s", line)), "")
    # The map keeps the estimate itself; the asides after it ("(fast mode runs in …)") stay in the chapter.
    time = re.split(r"\s*[(;]|\.\s", _labelled(first, "Time estimate"))[0].rstrip(".")
    return {"title": title, "prerequisites": _labelled(first, "Prerequisites"), "time": time}


def _claims_held(path: Path) -> str:
    from toolkit.provenance import claim_counts

    try:
        claims = json.loads(path.read_text()).get("claims") or []
    except (OSError, ValueError):
        return "not run yet"
    return "{} of {}".format(*claim_counts(claims))


class CourseMap(SphinxDirective):
    """The chapters in order, with prerequisites, time, exercises and claims held."""

    def run(self):
        from toolkit.provenance import markdown_cell

        masters = _path(self.env.app, self.config.course_masters)
        results = _path(self.env.app, self.config.course_results)
        rows = ["| # | chapter | prerequisites | time | exercises | claims held |", "|---|---|---|---|---|---|"]
        for path in sorted(p for p in masters.glob("*.ipynb") if CHAPTER.match(p.name)):
            nb = nbformat.read(path, as_version=4)
            head = chapter_header(nb)
            self.env.note_dependency(str(path))
            built = (Path(self.env.srcdir) / "notebooks" / path.name).exists()
            title = markdown_cell(re.sub(r"^\d\d\s*[·:.\-–—]\s*", "", head["title"]) or path.stem)
            chapter = f"[{title}](notebooks/{path.name})" if built else f"{title} (not in this build)"
            n_ex = sum("exercise" in c.get("metadata", {}).get("tags", []) for c in nb.cells)
            # Links in a master's first cell are relative to notebooks/; the map lives one folder up.
            prereq = re.sub(r"\]\((?![a-z]+:|/|#)([^)]+)\)", r"](notebooks/\1)", head["prerequisites"])
            rows.append(f"| {path.name[:2]} | {chapter} | {markdown_cell(prereq)} | {markdown_cell(head['time'])} "
                        f"| {n_ex} | {_claims_held(results / (path.stem + '.json'))} |")
        return self._parse(rows)

    def _parse(self, lines: list[str]):
        from docutils import nodes

        box = nodes.container()
        self.state.nested_parse(StringList(lines, source="course-map"), self.content_offset, box)
        return box.children


class ClaimsSummary(CourseMap):
    """Every results file under course_results, grouped by folder (model, seed), as results cards."""

    def run(self):
        from toolkit.provenance import results_markdown

        root = _path(self.env.app, self.config.course_results)
        lines: list[str] = []
        folders = sorted({p.parent for p in root.rglob("*.json")}) if root.is_dir() else []
        for folder in folders:
            records = []
            for path in sorted(folder.glob("*.json")):
                try:
                    record = json.loads(path.read_text())
                except ValueError:
                    logger.warning(f"{path} is not valid JSON; left out of the claims page")
                    continue
                if isinstance(record, dict) and "metrics" in record:
                    records.append(record)
            if records:
                name = folder.relative_to(root).as_posix()
                lines += [f"## Results in `build/results/{'' if name == '.' else name + '/'}`", ""]
                for record in records:
                    lines += [f"### {record.get('notebook', '?')}", "", results_markdown(record), ""]
        if not lines:
            lines = ["No results yet: run `make curriculum` (or `make test`) first."]
        return self._parse(lines)


def setup(app):
    app.add_config_value("course_masters", "../notebooks", "env")
    app.add_config_value("course_executed", "../build/executed", "env")
    app.add_config_value("course_results", "../build/results", "env")
    app.add_config_value("course_repo_pages", ["docs/*.md"], "env")
    app.connect("builder-inited", assemble)
    app.connect("doctree-read", set_alt_text)
    app.add_directive("course-map", CourseMap)
    app.add_directive("claims-summary", ClaimsSummary)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
