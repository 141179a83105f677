"""Exercise generation, tested both ways.

* The masters pass their checks (here on a synthetic notebook; the real masters run under nbmake).
* The generated student copies fail every check while nothing is filled in, and a deliberately
  wrong implementation fails too, so a check that cannot fail is caught.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_exercises as mx  # noqa: E402

DIFF = "**Difficulty:** ●●○○○ · **Time:** ~10 min"

SOLUTION = '''\
import functools


@functools.lru_cache(maxsize=None)
def scaled_sum(
    values: tuple,          # the numbers to add
    scale: float = 2.0,
) -> float:
    """Return scale * sum(values)."""
    def _add(a, b):
        return a + b
    total = 0.0
    for v in values:
        total = _add(total, v)
    return scale * total
'''

CHECK_DEF = '''\
def check_scaled_sum(fn):
    assert fn((1.0, 2.0, 3.0)) == 12.0, "scaled_sum((1, 2, 3)) should be 12 with the default scale 2"
    assert fn((1.0,), scale=0.5) == 0.5
    print("check_scaled_sum passed")
'''

SOLUTION_2 = 'def double(x): return [2 * v for v in x]\n'
CHECK_2 = '''\
def check_double(fn):
    assert fn([1, 2]) == [2, 4]

check_double(double)
'''


def tagged(cell, *tags):
    cell.metadata["tags"] = list(tags)
    return cell


def synthetic_notebook(difficulty_line: str = DIFF, with_check_call: bool = True) -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell("# 99 Synthetic\n\n**Prerequisites:** none\n\n**Time estimate:** 5 min"),
        new_code_cell("import math\nimport numpy as np"),
        tagged(new_markdown_cell(f"## Exercise: scaled sum\n\nAdd, then scale.\n\n{difficulty_line}"), "exercise"),
        tagged(new_code_cell(SOLUTION), "solution"),
        tagged(new_code_cell(CHECK_DEF), "check"),
    ]
    if with_check_call:
        cells.append(tagged(new_code_cell("check_scaled_sum(scaled_sum)"), "check"))
    cells += [
        tagged(new_markdown_cell(f"## Exercise: double\n\n**Difficulty:** ●○○○○ · **Time:** ~5 min"), "exercise"),
        tagged(new_code_cell(SOLUTION_2), "solution"),
        tagged(new_code_cell(CHECK_2), "check"),
        new_code_cell("result = scaled_sum((1.0,))"),
    ]
    return new_notebook(cells=cells)


def _function(source: str, name: str) -> ast.FunctionDef:
    return next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name)


def test_stub_keeps_decorators_signature_and_docstring():
    stub = mx.stub_source(SOLUTION)
    master_fn, stub_fn = _function(SOLUTION, "scaled_sum"), _function(stub, "scaled_sum")
    assert ast.dump(master_fn.args) == ast.dump(stub_fn.args)
    assert [ast.dump(d) for d in master_fn.decorator_list] == [ast.dump(d) for d in stub_fn.decorator_list]
    assert ast.dump(master_fn.returns) == ast.dump(stub_fn.returns)
    assert ast.get_docstring(stub_fn) == "Return scale * sum(values)."
    # body = docstring + one raise; the nested helper and the solution code are gone
    assert len(stub_fn.body) == 2 and isinstance(stub_fn.body[1], ast.Raise)
    assert "_add" not in stub and "total" not in stub
    assert "# the numbers to add" in stub  # comments inside the signature survive
    assert stub.startswith("import functools")  # code outside the function is kept


def test_stub_handles_one_line_defs_and_hint_comments():
    src = "def f(a,\n      b=lambda y: {'k': y}):\n    # hint: the answer is a + b\n    return a + b\n\ndef g(x): return x\n"
    stub = mx.stub_source(src)
    assert "hint" not in stub and "return" not in stub
    ns = {}
    exec(stub, ns)
    for name in ("f", "g"):
        with pytest.raises(NotImplementedError, match=f"implement {name}, then run the check cell below \\(check_{name}\\)"):
            ns[name](1) if name == "g" else ns[name](1, 2)


def test_student_notebook_only_changes_solution_cells():
    master = synthetic_notebook()
    student, exercises = mx.make_student_notebook(master, "99_synthetic.ipynb")
    assert [e.name for e in exercises] == ["scaled_sum", "double"]
    assert [(e.difficulty, e.minutes) for e in exercises] == [(2, "10"), (1, "5")]
    for m, s in zip(master.cells, student.cells):
        if "solution" in m.metadata.get("tags", []):
            assert m.source != s.source and "NotImplementedError" in s.source
        else:
            assert m.source == s.source


def test_master_checks_pass():
    master = synthetic_notebook()
    for ex in mx.find_exercises(master, "99_synthetic.ipynb"):
        assert mx.run_exercise(master, ex) is None, ex.check


def test_student_checks_fail_on_the_stub():
    master = synthetic_notebook()
    student, exercises = mx.make_student_notebook(master, "99_synthetic.ipynb")
    for ex in exercises:
        err = mx.run_exercise(student, ex)
        assert isinstance(err, NotImplementedError), (ex.check, err)
        assert mx.verify_stub_fails(master, student, ex).how == "stub reached"


def test_wrong_implementation_fails_the_check():
    master = synthetic_notebook()
    ex = mx.find_exercises(master, "99_synthetic.ipynb")[0]
    wrong = 'def scaled_sum(values, scale=2.0):\n    """Forgets the scale."""\n    return float(sum(values))\n'
    err = mx.run_exercise(master, ex, solution_source=wrong)
    assert isinstance(err, AssertionError) and "should be 12" in str(err)


def test_a_check_that_cannot_fail_is_caught():
    master = synthetic_notebook()
    # Replace the check with one that never calls the implementation.
    master.cells[4].source = "def check_scaled_sum(fn):\n    print('looks fine')\n"
    student, exercises = mx.make_student_notebook(master, "99_synthetic.ipynb")
    verdict = mx.verify_stub_fails(master, student, exercises[0])
    assert not verdict.ok and "cannot fail" in verdict.how


def test_checks_that_need_notebook_state_fall_back_to_reading_the_check():
    """A loop over a variable the extracted cells never compute must not pass vacuously."""
    master = synthetic_notebook()
    master.cells[4].source = ("def check_scaled_sum(fn):\n    for case in CASES:\n"
                              "        assert fn(case) == EXPECTED[case]\n")
    student, exercises = mx.make_student_notebook(master, "99_synthetic.ipynb")
    verdict = mx.verify_stub_fails(master, student, exercises[0])
    assert verdict.ok and verdict.how.startswith("static") and "NotComputed: CASES" in verdict.how
    master.cells[4].source = "def check_scaled_sum(fn):\n    for case in CASES:\n        assert case in EXPECTED\n"
    student, exercises = mx.make_student_notebook(master, "99_synthetic.ipynb")
    assert not mx.verify_stub_fails(master, student, exercises[0]).ok  # never calls fn: caught


def test_missing_difficulty_fails_loudly_naming_notebook_and_cell():
    nb = synthetic_notebook(difficulty_line="**Time:** ~10 min")
    with pytest.raises(mx.ExerciseError, match=r"99_synthetic\.ipynb cell 2 .*Difficulty"):
        mx.find_exercises(nb, "99_synthetic.ipynb")


def test_solution_without_check_call_fails_loudly():
    nb = synthetic_notebook(with_check_call=False)
    with pytest.raises(mx.ExerciseError, match=r"cell 3 .*scaled_sum"):
        mx.find_exercises(nb, "99_synthetic.ipynb")


def test_cli_writes_student_copies_and_exits_nonzero_on_a_broken_master(tmp_path, capsys):
    src, out = tmp_path / "nb", tmp_path / "out"
    src.mkdir()
    nbformat.write(synthetic_notebook(), src / "99_synthetic.ipynb")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_exercises.py"), str(src), str(out), "--verify"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "ok   99_synthetic.ipynb check_scaled_sum: stub reached" in done.stdout
    student = nbformat.read(out / "99_synthetic.ipynb", as_version=4)
    assert "raise NotImplementedError" in student.cells[3].source
    nbformat.write(synthetic_notebook(difficulty_line="no difficulty here"), src / "98_broken.ipynb")
    assert mx.main([str(src), str(out)]) == 1
    assert "98_broken.ipynb cell 2" in capsys.readouterr().err


# ---- the real masters in notebooks/ -----------------------------------------------------------

MASTERS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


@pytest.mark.parametrize("path", MASTERS, ids=[p.stem for p in MASTERS])
def test_real_master_follows_the_convention(path):
    nb = nbformat.read(path, as_version=4)
    exercises = mx.find_exercises(nb, path.name)  # raises, naming the cell, if a tag is malformed
    assert len(exercises) >= 3, f"{path.name} has {len(exercises)} exercises; CONTRIBUTING.md asks for at least 3"


def _real_exercises():
    for path in MASTERS:
        nb = nbformat.read(path, as_version=4)
        try:
            exercises = mx.find_exercises(nb, path.name)
        except mx.ExerciseError:
            continue  # reported by test_real_master_follows_the_convention
        for ex in exercises:
            yield pytest.param(path, ex.name, id=f"{path.stem}:{ex.name}")


@pytest.mark.parametrize("path,name", list(_real_exercises()))
def test_real_student_check_fails_when_nothing_is_filled_in(path, name):
    master = nbformat.read(path, as_version=4)
    student, exercises = mx.make_student_notebook(master, path.name)
    ex = next(e for e in exercises if e.name == name)
    verdict = mx.verify_stub_fails(master, student, ex)
    assert verdict.ok, verdict.how
