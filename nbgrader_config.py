"""nbgrader's configuration: `make exercises` turns the masters in notebooks/ into student copies.

The masters are nbgrader source notebooks. A solution is the code between `### BEGIN SOLUTION` and
`### END SOLUTION` in a cell that nbgrader marks as a solution (the function's signature and docstring stay);
each `check_<name>(<name>)` cell is an autograded test worth one point, and the cells that define the checks
are locked. `nbgrader generate_assignment notebooks` writes build/exercises/notebooks/, with solutions and
outputs cleared. An instructor can go on to nbgrader's release, collect and autograde steps from here.
"""
import os

c = get_config()  # noqa: F821 (nbgrader provides it)

# Course layout: {root}/{source_directory}/{assignment_id}/ is notebooks/ itself, so the masters stay where
# the curriculum runs them; everything nbgrader writes (student copies, its gradebook) goes under build/.
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.source_directory = "."
c.CourseDirectory.release_directory = "build/exercises"
c.CourseDirectory.db_url = f"sqlite:///{c.CourseDirectory.root}/build/nbgrader/gradebook.db"
c.CourseDirectory.notebook_id = "[0-9][0-9]_*"

# The stub a student sees in place of each solution: it names what to do next.
c.ClearSolutions.code_stub = {
    "python": 'raise NotImplementedError("Exercise: replace this line with your code, then run the check cell below")'
}
