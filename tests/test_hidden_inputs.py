"""No hidden inputs: every environment variable the toolkit reads is named in the README.

Results may depend only on the code, the pins, the seed and the documented environment variables
(docs/CONTRIBUTING.md, "Reproducibility"). A variable read somewhere in ``toolkit/`` but missing from
the README would be an input nobody knows to record or to set.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READS = re.compile(r"""(?:os\.environ(?:\.get)?|os\.getenv)\s*[\(\[]\s*["']([A-Z0-9_]+)["']""")


def environment_reads(source: str) -> set[str]:
    return set(READS.findall(source))


def test_the_scan_finds_reads_in_every_form():
    src = 'os.environ.get("A_1", "")\nos.environ["B"]\nos.getenv(\'C\')\nx = "os.environ"'
    assert environment_reads(src) == {"A_1", "B", "C"}


def test_every_environment_variable_the_toolkit_reads_is_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    read = {name: path.name for path in sorted((ROOT / "toolkit").glob("*.py"))
            for name in environment_reads(path.read_text(encoding="utf-8"))}
    assert read, "found no environment reads at all: the scan is broken"
    # _flag(name) reads a boolean variable by name; those names appear as string literals passed to it
    for path in sorted((ROOT / "toolkit").glob("*.py")):
        for name in re.findall(r"""_flag\(\s*["']([A-Z0-9_]+)["']""", path.read_text(encoding="utf-8")):
            read[name] = path.name
    missing = sorted(f"{name} (read in toolkit/{where})" for name, where in read.items()
                     if not re.search(rf"\b{name}\b", readme))
    assert not missing, f"environment variables the README does not name: {missing}"
