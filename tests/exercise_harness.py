"""The exercise convention of the masters in notebooks/, and a harness that runs one exercise on its own.

Student copies are made by nbgrader (`make exercises`, configured in nbgrader_config.py). This module is the
tests' side of it:

* ``find_exercises`` validates a master: each exercise is a markdown cell tagged ``exercise`` with the line
  ``**Difficulty:** ●●○○○ · **Importance:** 🔵🔵🔵⚪⚪ · **Time:** ~10 min`` and at least one collapsed hint
  (``<details><summary>Hint…``), then a code cell that nbgrader marks as a solution (the body of one function
  between ``### BEGIN SOLUTION`` and ``### END SOLUTION``), then a locked cell defining ``check_<name>`` and
  an autograded cell calling ``check_<name>(<name>)``.
* ``student_copy`` applies nbgrader's own ClearSolutions and ClearOutput preprocessors, with the project's
  configuration, to one notebook in memory.
* ``run_exercise`` executes only what one check needs (the notebook's imports, the solution cell or a
  replacement for it, the check cells), so a wrong answer can be tried in a second, without the notebook.
  Checks build their own inputs (synthetic data, or the embedded model via ``tk.load_model()``), which is what
  makes them runnable here and gradable by nbgrader's autograder.

Every problem (a missing difficulty line, a solution cell without markers, a solution without a check) is
reported with the notebook and cell number.
"""
from __future__ import annotations

import ast
import linecache
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

# Five dots each: difficulty (● filled) and importance (🔵 filled, ⚪ empty); the time in minutes (~10, 10-15).
HEADER_RE = re.compile(
    r"\*\*Difficulty:\*\*\s*(?P<dots>[●○]{5})\s*[·|]\s*"
    r"\*\*Importance:\*\*\s*(?P<importance>[🔵⚪]{5})\s*[·|]\s*"
    r"\*\*Time:\*\*\s*~?\s*(?P<minutes>\d+(?:\s*[-–]\s*\d+)?)\s*min",
)
HINT_RE = re.compile(r"<details>\s*<summary>\s*Hint", re.I)
SOLUTION_DOC_RE = re.compile(r"<details>\s*<summary>\s*Solution", re.I)
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


class ExerciseError(ValueError):
    """A notebook breaks the exercise/solution/check convention."""


@dataclass
class Exercise:
    """One solution function found in a master notebook."""

    notebook: str
    cell_index: int  # index of the solution cell in the notebook
    name: str  # the function the learner implements
    check: str  # the check function that tests it ("check_<name>")
    check_def_cells: list[int] = field(default_factory=list)  # cells defining check_<name>
    check_call_cells: list[int] = field(default_factory=list)  # cells calling check_<name>(...)
    difficulty: int | None = None  # filled dots of the exercise cell above
    importance: int | None = None
    minutes: str | None = None
    hints: int = 0  # collapsed hints in the exercise cell


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []) or [])


def nbgrader_meta(cell) -> dict:
    return dict(cell.get("metadata", {}).get("nbgrader", {}) or {})


def is_solution(cell) -> bool:
    return cell.cell_type == "code" and bool(nbgrader_meta(cell).get("solution"))


def is_check(cell) -> bool:
    return cell.cell_type == "code" and "check" in tags(cell)


def _where(nb_name: str, index: int, cell) -> str:
    first = (cell.source.strip().splitlines() or [""])[0][:60]
    return f"{nb_name} cell {index} ({cell.cell_type}, starts {first!r})"


def parse_header(text: str) -> tuple[int, int, str] | None:
    """(difficulty, importance, minutes) from an exercise cell's text, or None when the line is missing."""
    m = HEADER_RE.search(text)
    if not m:
        return None
    return m.group("dots").count("●"), m.group("importance").count("🔵"), re.sub(r"\s+", "", m.group("minutes"))


def top_level_functions(source: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(source)
    return [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _defines(source: str) -> set[str]:
    try:
        return {f.name for f in top_level_functions(source)}
    except SyntaxError:
        return set()


def _calls(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set(re.findall(r"\b(check_\w+)\s*\(", source))
    return {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def _marked_functions(source: str) -> list[str]:
    """The top-level functions whose body holds a BEGIN/END SOLUTION region."""
    lines = source.split("\n")
    out = []
    funcs = top_level_functions(source)
    for fn, nxt in zip(funcs, funcs[1:] + [None]):
        # The END marker is a comment after the last statement, so it lies past fn.end_lineno.
        stop = nxt.lineno - 1 if nxt is not None else len(lines)
        body = "\n".join(lines[fn.lineno - 1: stop])
        if BEGIN in body and END in body:
            out.append(fn.name)
    return out


def find_exercises(nb, nb_name: str) -> list[Exercise]:
    """Validate the exercise cells of one master notebook and list its exercises.

    Raises ExerciseError naming every offending cell at once.
    """
    problems: list[str] = []
    exercises: list[Exercise] = []
    header: tuple[int, int, str] | None = None
    hints = 0
    cells = nb.cells
    for i, cell in enumerate(cells):
        if "exercise" in tags(cell):
            if cell.cell_type != "markdown":
                problems.append(f"{_where(nb_name, i, cell)}: tagged 'exercise' but is not a markdown cell")
                continue
            header = parse_header(cell.source)
            hints = len(HINT_RE.findall(cell.source))
            if header is None:
                problems.append(
                    f"{_where(nb_name, i, cell)}: exercise cell lacks the line '**Difficulty:** ●●○○○ · "
                    "**Importance:** 🔵🔵🔵⚪⚪ · **Time:** ~10 min' (five dots each, time in minutes)"
                )
            if not hints:
                problems.append(f"{_where(nb_name, i, cell)}: exercise cell has no collapsed hint "
                                "('<details><summary>Hint 1</summary> ... </details>')")
        if "solution" in tags(cell) and not is_solution(cell):
            problems.append(f"{_where(nb_name, i, cell)}: tagged 'solution' but nbgrader does not mark it as one "
                            "(metadata.nbgrader.solution)")
        if not is_solution(cell):
            continue
        try:
            funcs = _marked_functions(cell.source)
        except SyntaxError as e:
            problems.append(f"{_where(nb_name, i, cell)}: solution cell is not plain Python ({e.msg}, line {e.lineno})")
            continue
        if not funcs:
            problems.append(f"{_where(nb_name, i, cell)}: solution cell has no function whose body is "
                            f"between '{BEGIN}' and '{END}'")
            continue
        later = [(j, c) for j, c in enumerate(cells) if j > i and is_check(c)]
        every = [(j, c) for j, c in enumerate(cells) if is_check(c)]
        found_any = False
        for name in funcs:
            check = f"check_{name}"
            calls = [j for j, c in later if check in _calls(c.source)]
            defs = [j for j, c in every if check in _defines(c.source)]
            if not calls:
                continue
            found_any = True
            ex = Exercise(nb_name, i, name, check, defs, calls, hints=hints)
            if header:
                ex.difficulty, ex.importance, ex.minutes = header
            exercises.append(ex)
            if not defs:
                problems.append(f"{_where(nb_name, i, cell)}: {check} is called but no cell tagged 'check' defines it")
            graded = [j for j in calls if nbgrader_meta(cells[j]).get("grade")]
            if not graded:
                problems.append(f"{_where(nb_name, i, cell)}: no cell calling {check} is an nbgrader test "
                                "(metadata.nbgrader.grade with points), so the autograder would not score it")
        if not found_any:
            problems.append(
                f"{_where(nb_name, i, cell)}: no later cell tagged 'check' calls check_<name>(...) "
                f"for the solution function(s) {', '.join(funcs)}"
            )
    if problems:
        raise ExerciseError("exercise convention broken:\n  " + "\n  ".join(problems))
    return exercises


def student_copy(nb):
    """The student copy nbgrader makes of ``nb``: its ClearSolutions and ClearOutput, configured as the project is."""
    from nbgrader.preprocessors import ClearOutput, ClearSolutions
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    student = nbformat.reads(nbformat.writes(nb), as_version=4)
    resources: dict = {}
    student, resources = ClearSolutions(config=config).preprocess(student, resources)
    student, resources = ClearOutput(config=config).preprocess(student, resources)
    return student


# ---------------------------------------------------------------------------------------------
# Verification: does each check fail when the learner has filled in nothing?
# Running whole notebooks is slow (model loads, training), so only the pieces an exercise needs
# run: the notebook's import statements, the (stubbed) solution cell, the cells that define the
# check and the cells that call it. Names the notebook would have computed earlier (a model,
# activations) are stood in for by an inert placeholder, so the check can reach the stub.


class NotComputed(Exception):
    """A check needed a notebook variable that the extracted cells do not compute."""


class _Placeholder:
    """Stands in for a notebook variable the extracted cells do not compute."""

    def __init__(self, name: str):
        self._name = name

    def __repr__(self) -> str:
        return f"<not computed: {self._name}>"

    def __getattr__(self, attr: str) -> "_Placeholder":
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Placeholder(f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs) -> "_Placeholder":
        return _Placeholder(f"{self._name}(...)")

    def __getitem__(self, key) -> "_Placeholder":
        return _Placeholder(f"{self._name}[...]")

    # Iterating, sizing or testing a value the notebook never computed must not let a check pass
    # vacuously (an empty loop asserts nothing), so these stop the run as "inconclusive".
    def __iter__(self):
        raise NotComputed(self._name)

    def __len__(self) -> int:
        raise NotComputed(self._name)

    def __bool__(self) -> bool:
        raise NotComputed(self._name)


class _Namespace(dict):
    """Globals for exec: builtins first, then a placeholder for anything never assigned."""

    def __missing__(self, key: str):
        import builtins

        if hasattr(builtins, key):
            return getattr(builtins, key)
        return _Placeholder(key)


def _python_source(cell_source: str) -> str:
    """Turn IPython syntax (magics, !shell) into plain Python so ast can read the cell."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(cell_source)


def notebook_imports(nb) -> str:
    """All top-level import statements of a notebook's code cells, as one block of source."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(_python_source(cell.source))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import) or (
                isinstance(node, ast.ImportFrom) and node.module != "__future__"
            ):
                out.append(ast.unparse(node))
    return "\n".join(dict.fromkeys(out))


def _calls_its_argument(check_source: str, check: str) -> bool:
    """Static fallback: does ``check`` call its first parameter outside a swallowing try/except?"""
    for node in ast.walk(ast.parse(_python_source(check_source))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == check:
            if not node.args.args:
                return False
            param = node.args.args[0].arg
            swallowed: set[int] = set()
            for t in ast.walk(node):
                if isinstance(t, ast.Try) and any(
                    h.type is None or (isinstance(h.type, ast.Name) and h.type.id in {"Exception", "BaseException", "NotImplementedError"})
                    for h in t.handlers
                ):
                    swallowed.update(id(n) for b in t.body for n in ast.walk(b))
            return any(
                isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id == param and id(c) not in swallowed
                for c in ast.walk(node)
            )
    return False


def _only_definitions(source: str) -> bool:
    try:
        tree = ast.parse(_python_source(source))
    except SyntaxError:
        return False
    allowed = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    return all(isinstance(node, allowed) for node in tree.body)


def _helper_cells(nb, ex: Exercise) -> set[int]:
    """Earlier check cells that only define things (helpers a check may call), cheap to run."""
    last = max(ex.check_call_cells)
    return {
        j for j, c in enumerate(nb.cells[:last])
        if c.cell_type == "code" and "check" in tags(c) and _only_definitions(c.source)
    }


@dataclass
class Verdict:
    ok: bool
    how: str  # "stub reached", "static", or why it failed


def run_exercise(nb, ex: Exercise, solution_source: str | None = None) -> BaseException | None:
    """Exec the exercise's cells of ``nb`` (imports, solution, check definitions, check calls).

    ``solution_source`` replaces the solution cell (a stub or a deliberately wrong version).
    Returns the exception the check raised, or None if it passed.
    """
    ns = _Namespace(__name__="__exercise__")
    _exec(notebook_imports(nb), f"<{ex.notebook} imports>", ns)
    source = nb.cells[ex.cell_index].source if solution_source is None else solution_source
    try:
        _exec(_python_source(source), f"<{ex.notebook} cell {ex.cell_index}>", ns)
        for j in sorted(set(ex.check_def_cells) | set(ex.check_call_cells) | _helper_cells(nb, ex)):
            _exec(_python_source(nb.cells[j].source), f"<{ex.notebook} cell {j}>", ns)
    except Exception as e:  # the check failing is the point
        return e
    return None


def _exec(source: str, filename: str, ns: dict) -> None:
    """exec ``source`` with its text registered under ``filename``, as IPython does for a cell.

    nnsight finds the body of a `with model.nn.trace(...)` block by reading the caller's source, so code
    without a file behind it (plain exec) could not trace; registering it in linecache lets it.
    """
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), ns)


def verify_stub_fails(master, student, ex: Exercise) -> Verdict:
    """The student copy's check must fail: the stub's NotImplementedError must reach the learner."""
    err = run_exercise(student, ex)
    if err is None:
        return Verdict(False, f"{ex.notebook}: {ex.check} passed with the stubbed {ex.name}: this check cannot fail")
    if isinstance(err, NotImplementedError) and "Exercise:" in str(err):
        return Verdict(True, "stub reached")
    # The check tripped over notebook state it needs before calling the stub: fall back to reading it.
    sources = "\n".join(master.cells[j].source for j in ex.check_def_cells)
    if _calls_its_argument(sources, ex.check):
        return Verdict(True, f"static (dynamic run stopped early: {type(err).__name__}: {err})")
    return Verdict(
        False,
        f"{ex.notebook}: {ex.check} raised {type(err).__name__}: {err} before calling the implementation, "
        f"and it does not visibly call its first argument",
    )
