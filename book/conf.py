"""Sphinx configuration of the course book: `make book` renders the executed notebooks of `make curriculum`.

MyST-NB renders the notebooks as they are (nothing is executed again); sphinx-book-theme gives navigation and
search; sphinx-mathjax-offline ships MathJax inside the site, so the book builds and reads without a network.
The local `course` extension (book/_ext/course.py) gathers the chapters, the course map and the claims.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))

project = "Interpretability and steering: a re-runnable course"
author = "the toolkit authors"
copyright = "the toolkit authors (MIT)"

extensions = ["myst_nb", "sphinx-mathjax-offline", "course"]

# Where `make curriculum` left its outputs, relative to this folder; each can be overridden, e.g.
# `sphinx-build -D course_executed=/elsewhere book build/site`.
course_masters = "../notebooks"
course_executed = "../build/executed"
course_results = "../build/results"
course_repo_pages = ["docs/*.md", "data/**/README.md", "notebooks/README.md"]

nb_ipywidgets_js = {}  # no widget JavaScript from a CDN (course.py keeps each widget's text instead)
nb_execution_mode = "off"  # the notebooks were executed by `make curriculum`; never twice
nb_render_markdown_format = "myst"  # the results card under each chapter's last cell is markdown
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "html_image"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "**.ipynb_checkpoints", "README.md"]
# tqdm widgets have no static rendering; repository pages (data cards) are linked from chapters, not listed.
suppress_warnings = ["mystnb.unknown_mime_type", "toc.not_included"]

html_theme = "sphinx_book_theme"
html_title = "Interpretability & steering"
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "home_page_in_toc": True,
}
html_last_updated_fmt = None  # the same inputs give the same pages, whatever the day
# A fixed colour mode: the theme reads it from the page (file:// pages keep no stored preference).
html_context = {"default_mode": "light"}
