"""Exercises, tested both ways, with nbgrader making the student copies (`make exercises`).

* The masters follow the convention (exercise_harness.find_exercises): graded header, hints, nbgrader markers.
* Masters pass their checks; student copies fail every check while nothing is filled in; a wrong
  implementation fails too, and a check that cannot fail is caught.
* Student copies leak nothing: no solution line appears anywhere else in the copy, and the toolkit exports
  nothing under an exercise's name.
"""
from __future__ import annotations

import ast
import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
import exercise_harness as h  # noqa: E402

HEADER = "**Difficulty:** ●●○○○ · **Importance:** 🔵🔵🔵⚪⚪ · **Time:** ~10 min"
HINT = "<details><summary>Hint 1</summary>\n\nAdd first.\n</details>"

SOLUTION = '''\
import functools


@functools.lru_cache(maxsize=None)
def scaled_sum(
    values: tuple,          # the numbers to add
    scale: float = 2.0,
) -> float:
    """Return scale * sum(values)."""
    ### BEGIN SOLUTION
    def _add(a, b):
        return a + b
    total = 0.0
    for v in values:
        total = _add(total, v)
    return scale * total
    ### END SOLUTION
'''

CHECK_DEF = '''\
def check_scaled_sum(fn):
    assert fn((1.0, 2.0, 3.0)) == 12.0, "scaled_sum((1, 2, 3)) should be 12 with the default scale 2"
    assert fn((1.0,), scale=0.5) == 0.5
    print("check_scaled_sum passed")
'''

SOLUTION_2 = 'def double(x):\n    ### BEGIN SOLUTION\n    return [2 * v for v in x]\n    ### END SOLUTION\n'
CHECK_2 = '''\
def check_double(fn):
    assert fn([1, 2]) == [2, 4]

check_double(double)
'''


def cell(c, *tags, **nbgrader):
    c.metadata["tags"] = list(tags)
    if nbgrader:
        c.metadata["nbgrader"] = dict(schema_version=3, **nbgrader)
    return c


def solution(source, grade_id):
    return cell(new_code_cell(source), "solution", solution=True, grade=False, locked=False, grade_id=grade_id)


def check_def(source, grade_id):
    return cell(new_code_cell(source), "check", solution=False, grade=False, locked=True, grade_id=grade_id)


def check_call(source, grade_id):
    return cell(new_code_cell(source), "check", solution=False, grade=True, locked=True, points=1, grade_id=grade_id)


def synthetic_notebook(header: str = HEADER, hint: str = HINT, with_check_call: bool = True):
    cells = [
        new_markdown_cell("# 99 Synthetic\n\n**Prerequisites:** none\n\n**Time estimate:** 5 min"),
        new_code_cell("import math\nimport numpy as np"),
        cell(new_markdown_cell(f"## Exercise: scaled sum\n\nAdd, then scale.\n\n{header}\n\n{hint}"), "exercise"),
        solution(SOLUTION, "scaled_sum"),
        check_def(CHECK_DEF, "check_scaled_sum_definition"),
    ]
    if with_check_call:
        cells.append(check_call("check_scaled_sum(scaled_sum)", "check_scaled_sum"))
    cells += [
        cell(new_markdown_cell("## Exercise: double\n\n**Difficulty:** ●○○○○ · **Importance:** 🔵⚪⚪⚪⚪ · "
                               f"**Time:** ~5 min\n\n{HINT}"), "exercise"),
        solution(SOLUTION_2, "double"),
        check_call(CHECK_2, "check_double"),
        new_code_cell("result = scaled_sum((1.0,))"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _function(source: str, name: str) -> ast.FunctionDef:
    return next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name)


def test_convention_is_read_from_the_header_and_the_markers():
    exercises = h.find_exercises(synthetic_notebook(), "99_synthetic.ipynb")
    assert [e.name for e in exercises] == ["scaled_sum", "double"]
    assert [(e.difficulty, e.importance, e.minutes, e.hints) for e in exercises] == [(2, 3, "10", 1), (1, 1, "5", 1)]


def test_student_copy_keeps_signature_and_docstring_and_drops_the_solution():
    student = h.student_copy(synthetic_notebook())
    stub = student.cells[3].source
    master_fn, stub_fn = _function(SOLUTION, "scaled_sum"), _function(stub, "scaled_sum")
    assert ast.dump(master_fn.args) == ast.dump(stub_fn.args)
    assert [ast.dump(d) for d in master_fn.decorator_list] == [ast.dump(d) for d in stub_fn.decorator_list]
    assert ast.get_docstring(stub_fn) == "Return scale * sum(values)."
    assert len(stub_fn.body) == 2 and isinstance(stub_fn.body[1], ast.Raise)
    assert "_add" not in stub and "total" not in stub and "SOLUTION" not in stub
    assert "# the numbers to add" in stub and stub.startswith("import functools")


def test_student_copy_only_changes_solution_cells():
    master = synthetic_notebook()
    student = h.student_copy(master)
    for m, s in zip(master.cells, student.cells):
        if h.is_solution(m):
            assert m.source != s.source and "NotImplementedError" in s.source
        else:
            assert m.source == s.source


def test_master_checks_pass_and_student_checks_fail_on_the_stub():
    master = synthetic_notebook()
    student = h.student_copy(master)
    for ex in h.find_exercises(master, "99_synthetic.ipynb"):
        assert h.run_exercise(master, ex) is None, ex.check
        err = h.run_exercise(student, ex)
        assert isinstance(err, NotImplementedError), (ex.check, err)
        assert h.verify_stub_fails(master, student, ex).how == "stub reached"


def test_wrong_implementation_fails_the_check():
    master = synthetic_notebook()
    ex = h.find_exercises(master, "99_synthetic.ipynb")[0]
    wrong = 'def scaled_sum(values, scale=2.0):\n    """Forgets the scale."""\n    return float(sum(values))\n'
    err = h.run_exercise(master, ex, solution_source=wrong)
    assert isinstance(err, AssertionError) and "should be 12" in str(err)


def test_a_check_that_cannot_fail_is_caught():
    master = synthetic_notebook()
    master.cells[4].source = "def check_scaled_sum(fn):\n    print('looks fine')\n"
    student = h.student_copy(master)
    verdict = h.verify_stub_fails(master, student, h.find_exercises(master, "99_synthetic.ipynb")[0])
    assert not verdict.ok and "cannot fail" in verdict.how


def test_checks_that_need_notebook_state_fall_back_to_reading_the_check():
    """A loop over a variable the extracted cells never compute must not pass vacuously."""
    master = synthetic_notebook()
    master.cells[4].source = "def check_scaled_sum(fn):\n    for case in CASES:\n        assert fn(case) == EXPECTED[case]\n"
    student = h.student_copy(master)
    verdict = h.verify_stub_fails(master, student, h.find_exercises(master, "99_synthetic.ipynb")[0])
    assert verdict.ok and verdict.how.startswith("static") and "NotComputed: CASES" in verdict.how
    master.cells[4].source = "def check_scaled_sum(fn):\n    for case in CASES:\n        assert case in EXPECTED\n"
    student = h.student_copy(master)
    assert not h.verify_stub_fails(master, student, h.find_exercises(master, "99_synthetic.ipynb")[0]).ok


@pytest.mark.parametrize("broken,match", [
    (dict(header="**Difficulty:** ●●○○○ · **Time:** ~10 min"), r"cell 2 .*Importance"),
    (dict(hint="no hint here"), r"cell 2 .*hint"),
    (dict(with_check_call=False), r"cell 3 .*scaled_sum"),
])
def test_a_broken_convention_fails_loudly_naming_the_cell(broken, match):
    with pytest.raises(h.ExerciseError, match=match):
        h.find_exercises(synthetic_notebook(**broken), "99_synthetic.ipynb")


def test_solution_without_markers_or_grading_fails_loudly():
    nb = synthetic_notebook()
    nb.cells[3].source = SOLUTION.replace("    ### BEGIN SOLUTION\n", "").replace("    ### END SOLUTION\n", "")
    with pytest.raises(h.ExerciseError, match=r"cell 3 .*BEGIN SOLUTION"):
        h.find_exercises(nb, "99_synthetic.ipynb")
    nb = synthetic_notebook()
    nb.cells[5].metadata["nbgrader"]["grade"] = False
    with pytest.raises(h.ExerciseError, match=r"autograder"):
        h.find_exercises(nb, "99_synthetic.ipynb")


def _generate(course: Path) -> subprocess.CompletedProcess:
    """Run `nbgrader generate_assignment` exactly as `make exercises` does, on the course rooted at ``course``."""
    bin_dir = Path(sys.executable).parent
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(course)}
    (course / "build" / "nbgrader").mkdir(parents=True, exist_ok=True)
    return subprocess.run([str(bin_dir / "nbgrader"), "generate_assignment", "notebooks", "--force"],
                          cwd=course, env=env, capture_output=True, text=True, timeout=300)


def test_nbgrader_writes_student_copies_of_a_synthetic_course(tmp_path):
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    nbformat.write(synthetic_notebook(), tmp_path / "notebooks" / "99_synthetic.ipynb")
    done = _generate(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    student = nbformat.read(tmp_path / "build" / "exercises" / "notebooks" / "99_synthetic.ipynb", as_version=4)
    assert "raise NotImplementedError" in student.cells[3].source and "total" not in student.cells[3].source
    assert student.cells[3].source == h.student_copy(synthetic_notebook()).cells[3].source


# ---- the real masters in notebooks/ -----------------------------------------------------------

MASTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", MASTERS, ids=[p.stem for p in MASTERS])
def test_real_master_follows_the_convention(path):
    nb = nbformat.read(path, as_version=4)
    exercises = h.find_exercises(nb, path.name)  # raises, naming the cell, if the convention is broken
    assert len(exercises) >= 6, f"{path.name} has {len(exercises)} exercises; CONTRIBUTING.md asks for at least 6"


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    """The student copies `make exercises` writes, made by nbgrader from the real masters in a scratch course."""
    course = tmp_path_factory.mktemp("course")
    shutil.copytree(ROOT / "notebooks", course / "notebooks")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    done = _generate(course)
    assert done.returncode == 0, done.stderr[-3000:]
    return course / "build" / "exercises" / "notebooks"


def _real_exercises():
    for path in MASTERS:
        try:
            exercises = h.find_exercises(nbformat.read(path, as_version=4), path.name)
        except h.ExerciseError:
            continue  # reported by test_real_master_follows_the_convention
        for ex in exercises:
            yield pytest.param(path, ex.name, id=f"{path.stem}:{ex.name}")


@pytest.mark.parametrize("path,name", list(_real_exercises()))
def test_real_student_check_fails_when_nothing_is_filled_in(path, name, released):
    master = nbformat.read(path, as_version=4)
    student = nbformat.read(released / path.name, as_version=4)
    ex = next(e for e in h.find_exercises(master, path.name) if e.name == name)
    verdict = h.verify_stub_fails(master, student, ex)
    assert verdict.ok, verdict.how


def _solution_lines(source: str) -> list[str]:
    out, inside = [], False
    for line in source.splitlines():
        if h.BEGIN in line:
            inside = True
        elif h.END in line:
            inside = False
        elif inside and len(line.strip()) >= 20 and not line.strip().startswith("#"):
            out.append(line.strip())
    return out


@pytest.mark.parametrize("path", MASTERS, ids=[p.stem for p in MASTERS])
def test_student_copy_leaks_no_solution(path, released):
    """No cell of the student copy holds half or more of a solution's lines (of 20 characters or more).

    One shared idiom (`with model.nn.trace(prompt):`) is not a leak; most of the answer, shown a few cells
    earlier, is.
    """
    master = nbformat.read(path, as_version=4)
    student = nbformat.read(released / path.name, as_version=4)
    leaks = []
    for c in master.cells:
        lines = _solution_lines(c.source) if h.is_solution(c) else []
        for i, other in enumerate(student.cells):
            shown = [line for line in lines if line in other.source]
            if len(lines) and len(shown) >= max(2, len(lines) / 2):
                leaks.append(f"cell {i} shows {len(shown)} of {len(lines)} lines of the solution in "
                             f"{c.source.split('(')[0].replace('def ', '')!r}: {shown[:2]}")
    assert not leaks, "the student copy gives answers away: " + "; ".join(leaks)


def _toolkit_names() -> set[str]:
    import toolkit

    names = {n for n in dir(toolkit) if not n.startswith("_")}
    for module in pkgutil.iter_modules(toolkit.__path__):
        names |= {n for n in dir(importlib.import_module(f"toolkit.{module.name}")) if not n.startswith("_")}
    return names


@pytest.mark.parametrize("path", MASTERS, ids=[p.stem for p in MASTERS])
def test_no_exercise_is_importable_from_the_toolkit_under_its_own_name(path):
    try:
        names = [ex.name for ex in h.find_exercises(nbformat.read(path, as_version=4), path.name)]
    except h.ExerciseError as e:
        pytest.skip(f"convention broken (reported elsewhere): {e}")
    clash = sorted(set(names) & _toolkit_names())
    assert not clash, f"the toolkit exports {clash}: a student could call the reference instead of writing it"
