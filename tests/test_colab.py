"""scripts/add_colab.py: the Colab badge and setup cell, inserted once and kept up to date."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import add_colab as ac  # noqa: E402

URL = "https://github.com/someone/course"


def notebook():
    return new_notebook(cells=[
        new_markdown_cell("# 07 Title\n\n**Time estimate:** 1 h"),
        new_code_cell("import toolkit as tk\ntk.seed_everything(0)"),
        new_markdown_cell("## More"),
    ])


def test_inserts_badge_and_setup_cell_once():
    nb = notebook()
    assert ac.update(nb, "07_title.ipynb", URL) is True
    assert nb.cells[0].source.splitlines()[0] == (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        "(https://colab.research.google.com/github/someone/course/blob/main/notebooks/07_title.ipynb)")
    assert nb.cells[0].source.endswith("# 07 Title\n\n**Time estimate:** 1 h")
    assert nb.cells[1].metadata["tags"] == ["colab-setup"] and nb.cells[2].source.startswith("import toolkit")
    snapshot = nbformat.writes(nb)
    assert ac.update(nb, "07_title.ipynb", URL) is False  # idempotent
    assert nbformat.writes(nb) == snapshot and len(nb.cells) == 4


def test_a_new_url_updates_both_cells_in_place():
    nb = notebook()
    ac.update(nb, "07_title.ipynb", URL)
    assert ac.update(nb, "07_title.ipynb", "https://github.com/other/place") is True
    assert nb.cells[0].source.count("colab-badge") == 1 and "other/place" in nb.cells[0].source
    assert '"https://github.com/other/place"' in nb.cells[1].source and len(nb.cells) == 4


def test_setup_cell_is_plain_python_and_inert_off_colab(monkeypatch, tmp_path):
    source = ac.setup_source(URL)
    ast.parse(source)  # no IPython-only syntax, so nbmake, ast-based tools and exports all read it
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(source, ns)
    assert "REPO_URL" not in ns and Path.cwd() == tmp_path  # nothing ran


def test_cli_check_mode(tmp_path, capsys):
    path = tmp_path / "07_title.ipynb"
    nbformat.write(notebook(), path)
    assert ac.main([str(path), "--check"]) == 1
    assert ac.main([str(path)]) == 0
    assert ac.main([str(path), "--check"]) == 0
    assert "0 of 1 notebooks out of date" in capsys.readouterr().out


def test_repo_url_falls_back_to_the_default(monkeypatch):
    class Done:
        stdout = "git@gitlab.com:x/y.git\n"

    monkeypatch.setattr(ac.subprocess, "run", lambda *a, **k: Done())
    assert ac.repo_url() == ac.DEFAULT_REPO_URL
    Done.stdout = "git@github.com:owner/name.git\n"
    assert ac.repo_url() == "https://github.com/owner/name"
