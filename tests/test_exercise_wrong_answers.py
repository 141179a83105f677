"""Each exercise check must reject plausible wrong answers, not only the empty stub.

tests/wrong_answers/<notebook>.py keeps, for every exercise of that notebook, known-wrong implementations (off by
one, wrong sign, missing normalisation, wrong axis, a missing rule). Each check runs on its own, without the rest
of its notebook (see exercise_harness.run_exercise): the master must pass it and every wrong answer must fail it.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
import exercise_harness as h  # noqa: E402

MASTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def wrong_answers(stem: str) -> dict[str, dict[str, str]]:
    path = Path(__file__).parent / "wrong_answers" / f"{stem}.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location(f"wrong_answers_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.WRONG


def exercises(path: Path):
    nb = nbformat.read(path, as_version=4)
    return nb, h.find_exercises(nb, path.name)


def _names(path: Path) -> list[str]:
    try:
        return [ex.name for ex in exercises(path)[1]]
    except h.ExerciseError:
        return []  # a broken convention is reported by test_exercises.py


ALL = [(p, name) for p in MASTERS for name in _names(p)]


@pytest.mark.parametrize("path,name", ALL, ids=[f"{p.stem}:{n}" for p, n in ALL])
def test_every_exercise_keeps_a_wrong_answer(path, name):
    assert wrong_answers(path.stem).get(name), (
        f"tests/wrong_answers/{path.stem}.py has no known-wrong {name}: add at least one plausible mistake")


@pytest.mark.parametrize("path,name", ALL, ids=[f"{p.stem}:{n}" for p, n in ALL])
def test_master_passes_its_check_on_its_own(path, name):
    nb, found = exercises(path)
    ex = next(e for e in found if e.name == name)
    err = h.run_exercise(nb, ex)
    assert err is None, (f"the master {name} fails its check when run without the rest of the notebook: "
                         f"{type(err).__name__}: {err} (a check must build its own inputs)")


CASES = [pytest.param(p, name, why, src, id=f"{p.stem}:{name}:{why}")
         for p in MASTERS for name, wrongs in wrong_answers(p.stem).items() for why, src in wrongs.items()]


@pytest.mark.parametrize("path,name,why,source", CASES)
def test_check_rejects_a_plausible_wrong_answer(path, name, why, source):
    nb, found = exercises(path)
    ex = next((e for e in found if e.name == name), None)
    assert ex is not None, f"{path.name} has no exercise {name!r}; update tests/wrong_answers/{path.stem}.py"
    err = h.run_exercise(nb, ex, solution_source=source)
    assert err is not None, f"check_{name} accepted a wrong {name} ({why})"
    assert not isinstance(err, (NameError, SyntaxError, h.NotComputed)), f"the wrong answer itself is broken: {err!r}"
