"""The two install routes (pip via pyproject.toml, conda via environment.yml) must not drift apart."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _normalize(req: str) -> tuple[str, str]:
    name, _, version = req.partition("==")
    return re.sub(r"[-_.]+", "-", name.strip().lower()), version.strip()


def test_environment_yml_lists_the_same_pinned_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_deps = {_normalize(r) for r in project["dependencies"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_deps = {_normalize(r) for r in pip_section if not r.startswith("-e")}
    assert pip_deps == conda_deps, (
        f"only in pyproject.toml: {sorted(pip_deps - conda_deps)}; only in environment.yml: {sorted(conda_deps - pip_deps)}"
    )


def test_every_dependency_is_pinned_and_torch_is_exact():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    loose = [d for d in deps if "==" not in d]
    assert not loose, f"unpinned dependencies (pin them with ==): {loose}"
    assert "torch==2.13.0" in deps, "torch must stay pinned to 2.13.0: a looser pin downloads a CUDA build"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make curriculum" in readme
    # a line that runs `make test`, alone or through the script's timed `stage "name" make test`
    assert re.search(r'^(?:stage\s+"[^"]*"\s+)?make test\s*$', ci, re.M), \
        ".ci/run must call `make test`, the README's test command"


def test_installed_kernel_name_matches_the_notebooks():
    # Jupyter rewrites a notebook's kernelspec to the installed kernel's on save: if the Makefile
    # installed another display name, merely opening and saving a notebook would change the file.
    import json

    make = (ROOT / "Makefile").read_text()
    installed = re.search(r'ipykernel install .*--name (\S+) --display-name "([^"]+)"', make)
    assert installed, "the Makefile must install the course kernel with an explicit --name and --display-name"
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        spec = json.loads(nb.read_text())["metadata"]["kernelspec"]
        assert (spec["name"], spec["display_name"]) == installed.groups(), (
            f"{nb.name}: kernelspec {spec['name']!r}/{spec['display_name']!r} differs from the installed "
            f"kernel {installed.group(1)!r}/{installed.group(2)!r} in the Makefile"
        )


def test_import_toolkit_defers_the_heavy_libraries():
    """``import toolkit`` stays fast: nnsight, transformers, datasets, sentence-transformers, scikit-learn and
    scipy are imported on first use (benchmarks/first_activation.py times it)."""
    import subprocess
    import sys

    heavy = ["nnsight", "transformers", "datasets", "sentence_transformers", "sklearn", "scipy"]
    code = ("import sys, toolkit as tk; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"import toolkit loaded {out.stdout.strip()}"
