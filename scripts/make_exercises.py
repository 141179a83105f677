"""Generate student exercise notebooks from the solution masters.

The notebooks in ``notebooks/`` are the solution masters. Cells carry Jupyter tags
(``cell.metadata.tags``):

* ``exercise`` (markdown): the task, with a line ``**Difficulty:** ●●○○○ · **Time:** ~10 min``;
* ``solution`` (code): one function definition; the student copy keeps its decorators,
  signature and docstring and replaces the body with ``raise NotImplementedError(...)``;
* ``check`` (code): defines ``check_<name>`` or calls ``check_<name>(<name>)``.

Usage::

    python scripts/make_exercises.py                     # notebooks/ -> build/exercises/
    python scripts/make_exercises.py --check-only        # validate the tags, write nothing
    python scripts/make_exercises.py --verify            # also prove each check fails on its stub
    python scripts/make_exercises.py SRC_DIR OUT_DIR

Every problem (a missing difficulty line, a solution cell without a function, a solution
without a check) is reported with the notebook and cell number, and the script exits 1.
"""
from __future__ import annotations

import argparse
import ast
import io
import re
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

# Five dots, filled (●) for the difficulty and empty (○) for the rest; the time in minutes (~10, 10-15).
DIFFICULTY_RE = re.compile(
    r"\*\*Difficulty:\*\*\s*(?P<dots>[●○]{5})\s*[·|]\s*"
    r"\*\*Time:\*\*\s*~?\s*(?P<minutes>\d+(?:\s*[-–]\s*\d+)?)\s*min",
)
STUB_TEMPLATE = 'raise NotImplementedError("Exercise: implement {name}, then run the check cell below ({check})")'


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
    difficulty: int | None = None  # number of filled dots of the nearest exercise cell above
    minutes: str | None = None


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []) or [])


def _where(nb_name: str, index: int, cell) -> str:
    first = (cell.source.strip().splitlines() or [""])[0][:60]
    return f"{nb_name} cell {index} ({cell.cell_type}, starts {first!r})"


def _lines(source: str) -> list[str]:
    """Split like the tokenizer does (\\n, \\r\\n, \\r), keeping the line ends."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", source)


def _char_offset(lines: list[str], lineno: int, col_bytes: int) -> int:
    """Convert ast's (1-based line, UTF-8 byte column) into a character offset."""
    before = sum(len(line) for line in lines[: lineno - 1])
    col_chars = len(lines[lineno - 1].encode("utf-8")[:col_bytes].decode("utf-8", errors="ignore"))
    return before + col_chars


def parse_difficulty(text: str) -> tuple[int, str] | None:
    """Return (filled dots, minutes) from an exercise cell's text, or None when the line is missing."""
    m = DIFFICULTY_RE.search(text)
    if not m:
        return None
    return m.group("dots").count("●"), re.sub(r"\s+", "", m.group("minutes"))


def _signature_end(source: str, lines: list[str], fn) -> int:
    """Character offset just past the colon that closes ``fn``'s signature."""
    start = _char_offset(lines, fn.lineno, fn.col_offset)
    depth = 0
    reader = io.StringIO(source[start:]).readline
    for tok in tokenize.generate_tokens(reader):
        if tok.type == tokenize.OP:
            if tok.string in "([{":
                depth += 1
            elif tok.string in ")]}":
                depth -= 1
            elif tok.string == ":" and depth == 0:
                row, col = tok.end
                rel_lines = _lines(source[start:])
                return start + sum(len(x) for x in rel_lines[: row - 1]) + col
    raise ExerciseError(f"could not find the end of the signature of {fn.name}")


def top_level_functions(source: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(source)
    return [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def stub_source(source: str, check_for: dict[str, str] | None = None) -> str:
    """Replace the body of every top-level function in ``source`` by a NotImplementedError stub.

    Decorators, the (possibly multi-line) signature, the docstring and any code outside the
    functions are kept; nested functions disappear with the body they belong to.
    ``check_for`` maps a function name to the check that tests it (default ``check_<name>``).
    """
    check_for = check_for or {}
    funcs = top_level_functions(source)
    if not funcs:
        raise ExerciseError("no top-level function definition to stub")
    lines = _lines(source)
    out = source
    # Edit from the last function up so earlier offsets stay valid.
    for fn in sorted(funcs, key=lambda f: f.lineno, reverse=True):
        body = fn.body
        has_doc = (
            isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        )
        same_line = body[0].lineno == fn.lineno  # e.g. `def f(x): return x`
        indent = " " * (fn.col_offset + 4) if same_line else " " * body[0].col_offset
        if has_doc:
            keep_to = _char_offset(lines, body[0].end_lineno, body[0].end_col_offset)
        else:
            # Cut right after the signature's colon, so comments that open the body (hints) go too.
            keep_to = _signature_end(source, lines, fn)
        end = _char_offset(lines, fn.end_lineno, fn.end_col_offset)
        head = out[:keep_to].rstrip()
        name = fn.name
        stub = STUB_TEMPLATE.format(name=name, check=check_for.get(name, f"check_{name}"))
        out = head + "\n" + indent + stub + out[end:]
    ast.parse(out)  # the stub must still be valid Python
    return out


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
    return {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }


def find_exercises(nb, nb_name: str) -> list[Exercise]:
    """Validate the tags of one master notebook and list its exercises.

    Raises ExerciseError naming every offending cell at once.
    """
    problems: list[str] = []
    exercises: list[Exercise] = []
    last_difficulty: tuple[int, str] | None = None
    cells = nb.cells
    for i, cell in enumerate(cells):
        t = tags(cell)
        if "exercise" in t:
            if cell.cell_type != "markdown":
                problems.append(f"{_where(nb_name, i, cell)}: tagged 'exercise' but is not a markdown cell")
                continue
            parsed = parse_difficulty(cell.source)
            if parsed is None:
                problems.append(
                    f"{_where(nb_name, i, cell)}: exercise cell lacks the line "
                    "'**Difficulty:** ●●○○○ · **Time:** ~10 min' (five ●/○ dots, time in minutes)"
                )
            last_difficulty = parsed
        if "solution" in t:
            if cell.cell_type != "code":
                problems.append(f"{_where(nb_name, i, cell)}: tagged 'solution' but is not a code cell")
                continue
            try:
                funcs = top_level_functions(cell.source)
            except SyntaxError as e:
                problems.append(f"{_where(nb_name, i, cell)}: solution cell is not plain Python ({e.msg}, line {e.lineno})")
                continue
            if not funcs:
                problems.append(f"{_where(nb_name, i, cell)}: solution cell has no top-level function definition")
                continue
            later_checks = [
                (j, c) for j, c in enumerate(cells) if j > i and c.cell_type == "code" and "check" in tags(c)
            ]
            all_checks = [(j, c) for j, c in enumerate(cells) if c.cell_type == "code" and "check" in tags(c)]
            found_any = False
            for fn in funcs:
                check = f"check_{fn.name}"
                calls = [j for j, c in later_checks if check in _calls(c.source)]
                defs = [j for j, c in all_checks if check in _defines(c.source)]
                if calls:
                    found_any = True
                    ex = Exercise(nb_name, i, fn.name, check, defs, calls)
                    if last_difficulty:
                        ex.difficulty, ex.minutes = last_difficulty
                    exercises.append(ex)
                    if not defs:
                        problems.append(
                            f"{_where(nb_name, i, cell)}: {check} is called but no cell tagged 'check' defines it"
                        )
            if not found_any:
                names = ", ".join(f.name for f in funcs)
                problems.append(
                    f"{_where(nb_name, i, cell)}: no later cell tagged 'check' calls check_<name>(...) "
                    f"for the solution function(s) {names}"
                )
    if problems:
        raise ExerciseError("exercise convention broken:\n  " + "\n  ".join(problems))
    return exercises


def make_student_notebook(nb, nb_name: str):
    """Return (student notebook, exercises). Outputs are cleared; only solution cells change."""
    exercises = find_exercises(nb, nb_name)
    student = nbformat.reads(nbformat.writes(nb), as_version=4)
    by_cell: dict[int, dict[str, str]] = {}
    for ex in exercises:
        by_cell.setdefault(ex.cell_index, {})[ex.name] = ex.check
    for i, cell in enumerate(student.cells):
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if i in by_cell:
            # A helper defined beside the exercise function points to the exercise's check.
            checks = dict(by_cell[i])
            default = next(iter(checks.values()))
            for fn in top_level_functions(cell.source):
                checks.setdefault(fn.name, default)
            cell.source = stub_source(cell.source, checks)
    student.metadata.setdefault("toolkit", {})["student_version"] = True
    return student, exercises


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
    exec(compile(notebook_imports(nb), f"<{ex.notebook} imports>", "exec"), ns)
    source = nb.cells[ex.cell_index].source if solution_source is None else solution_source
    try:
        exec(compile(_python_source(source), f"<{ex.notebook} cell {ex.cell_index}>", "exec"), ns)
        for j in sorted(set(ex.check_def_cells) | set(ex.check_call_cells) | _helper_cells(nb, ex)):
            exec(compile(_python_source(nb.cells[j].source), f"<{ex.notebook} cell {j}>", "exec"), ns)
    except Exception as e:  # the check failing is the point
        return e
    return None


def verify_stub_fails(master, student, ex: Exercise) -> Verdict:
    """The student copy's check must fail: the stub's NotImplementedError must reach the learner."""
    err = run_exercise(student, ex)
    if err is None:
        return Verdict(False, f"{ex.notebook}: {ex.check} passed with the stubbed {ex.name}: this check cannot fail")
    if isinstance(err, NotImplementedError) and f"implement {ex.name}" in str(err):
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


def build(src: Path, out: Path, write: bool = True) -> dict[str, list[Exercise]]:
    """Validate every notebook in ``src`` and (if ``write``) write the student copies to ``out``."""
    notebooks = sorted(p for p in Path(src).glob("*.ipynb") if not p.name.startswith("."))
    errors: list[str] = []
    result: dict[str, list[Exercise]] = {}
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        try:
            student, exercises = make_student_notebook(nb, path.name)
        except ExerciseError as e:
            errors.append(str(e))
            continue
        result[path.name] = exercises
        if write:
            Path(out).mkdir(parents=True, exist_ok=True)
            nbformat.write(student, Path(out) / path.name)
    if errors:
        raise ExerciseError("\n".join(errors))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", nargs="?", default=str(ROOT / "notebooks"))
    ap.add_argument("out", nargs="?", default=str(ROOT / "build" / "exercises"))
    ap.add_argument("--check-only", action="store_true", help="validate the tags; write nothing")
    ap.add_argument("--verify", action="store_true", help="also check that every student check fails on its stub")
    args = ap.parse_args(argv)
    try:
        result = build(Path(args.src), Path(args.out), write=not args.check_only)
    except ExerciseError as e:
        print(f"make_exercises: {e}", file=sys.stderr)
        return 1
    for name, exercises in result.items():
        listed = ", ".join(f"{e.name} ({'●' * (e.difficulty or 0)}{'○' * (5 - (e.difficulty or 0))}, ~{e.minutes} min)" for e in exercises)
        print(f"{name}: {len(exercises)} exercises: {listed}")
    if args.verify:
        failed = 0
        for name, exercises in result.items():
            master = nbformat.read(Path(args.src) / name, as_version=4)
            student, _ = make_student_notebook(master, name)
            for ex in exercises:
                v = verify_stub_fails(master, student, ex)
                failed += not v.ok
                print(f"  {'ok  ' if v.ok else 'FAIL'} {name} {ex.check}: {v.how}")
        if failed:
            print(f"make_exercises: {failed} checks do not fail on an empty exercise", file=sys.stderr)
            return 1
    if not args.check_only:
        print(f"wrote {len(result)} student notebooks to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
