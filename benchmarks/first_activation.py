"""Benchmark: time to first activation in a fresh process, the toolkit against plain transformers.

Each round starts two fresh interpreters on a warm model cache (the embedded model already converted):

* **toolkit:** ``import toolkit as tk``, ``tk.load_model()``, then ``tk.get_activations`` of one sentence at the
  middle block;
* **plain:** ``import torch, transformers``, ``AutoTokenizer`` and ``AutoModelForCausalLM.from_pretrained`` of
  the same folder in float32, then one forward pass with ``output_hidden_states=True``.

Each child times its own phases (import, load, first activation) with ``perf_counter`` and reports its CPU
time; the interpreter's own start-up (the same for both) is left out. ``harness.compare`` interleaves the two
for at least 7 rounds and reports the median ratio of the whole (plain time over toolkit time) with its
interquartile range; the phases are printed as medians with their interquartile ranges.

Goals (issue 19): ``import toolkit`` <= 2.5 s, by importing nnsight, transformers, datasets and
sentence-transformers only when first used; the first ``load_model()`` <= 1.5 s after the import; and the
whole no slower than plain transformers (ratio >= 1.0 by the lower quartile). The load phase includes
importing transformers, which the plain path pays in its import phase instead.

    .venv/bin/python benchmarks/first_activation.py [--rounds 7]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from harness import MIN_ROUNDS, Timed, Timing, compare, machine

REPO = Path(__file__).resolve().parents[1]
TEXT = "The committee postponed its decision until the spring meeting."

TOOLKIT = r'''
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import toolkit as tk
t1 = time.perf_counter()
model = tk.load_model()
t2 = time.perf_counter()
acts = tk.get_activations(model, [sys.argv[1]], layer=model.n_layers // 2, progress=False)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "first": t3 - t2, "total": t3 - t0,
                  "cpu": time.process_time() - c0, "rows": int(acts.rows.shape[0])}))
'''

PLAIN = r'''
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
t1 = time.perf_counter()
tok = AutoTokenizer.from_pretrained(sys.argv[2])
model = AutoModelForCausalLM.from_pretrained(sys.argv[2], dtype=torch.float32).eval()
t2 = time.perf_counter()
with torch.no_grad():
    out = model(**tok([sys.argv[1]], return_tensors="pt"), output_hidden_states=True)
h = out.hidden_states[model.config.num_hidden_layers // 2 + 1]
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "first": t3 - t2, "total": t3 - t0,
                  "cpu": time.process_time() - c0, "rows": int(h.shape[1])}))
'''


def run_child(source: str, *args: str) -> Timed:
    proc = subprocess.run([sys.executable, "-c", source, TEXT, *args], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return Timed(out, Timing(out["total"], out["cpu"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=MIN_ROUNDS)
    args = ap.parse_args()

    sys.path.insert(0, str(REPO))
    from toolkit import models

    spec = models._resolve_embedded(None, models.EMBEDDED_MODELS, models.DEFAULT_MODEL)
    folder = models.embedded_model_dir(spec)  # converts the model once if the cache is cold
    print(f"model folder {folder}")
    print(machine())
    phases: dict[str, dict[str, list[float]]] = {"toolkit": {}, "plain": {}}

    def side(name: str, source: str, *extra: str):
        def fn() -> Timed:
            timed = run_child(source, *extra)
            for k in ("import", "load", "first", "total"):
                phases[name].setdefault(k, []).append(timed.output[k])
            return timed
        return fn

    compare("time to first activation, toolkit vs plain transformers", side("toolkit", TOOLKIT),
            side("plain", PLAIN, str(folder)), goal=1.0, rounds=args.rounds)
    for name, got in phases.items():
        cells = []
        for k in ("import", "load", "first", "total"):
            lo, med, hi = np.percentile(got[k][1:], [25, 50, 75])  # the warm-up round left out
            cells.append(f"{k} {med:.2f} s (IQR {lo:.2f}-{hi:.2f})")
        print(f"{name:8s} " + ", ".join(cells))
    imp = float(np.median(phases["toolkit"]["import"][1:]))
    load = float(np.median(phases["toolkit"]["load"][1:]))
    print(f"goal: import toolkit <= 2.5 s: {'met' if imp <= 2.5 else 'NOT met'} ({imp:.2f} s); "
          f"first load_model() <= 1.5 s after it: {'met' if load <= 1.5 else 'NOT met'} ({load:.2f} s)")


if __name__ == "__main__":
    main()
