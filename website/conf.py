"""Sphinx configuration of the book's website (python3 book.py site builds it into build/site/).

The pages are the committed chapters, rendered as they are (myst-nb, no execution), and the landing
page ``intro.md``. Everything the site needs is in it: MathJax is copied from the
``jupyter-server-mathjax`` package, the theme from ``sphinx-book-theme``; nothing is fetched from outside
when the site is built or read.
"""
import json
import os

# written by notebooks.prepare_site_source: the repository's address (pyproject.toml's [project.urls])
BOOK = json.loads(open(os.path.join(os.path.dirname(__file__), "book.json")).read())

project = "LSTMs in Reinforcement Learning"
author = "the lstm_rl_lib authors"
copyright = "2026, the lstm_rl_lib authors (MIT License)"
root_doc = "index"
extensions = ["myst_nb", "sphinx.ext.mathjax"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "book.json"]

nb_execution_mode = "off"                    # the committed outputs are the book; a site build runs nothing
nb_output_stderr = "show"                    # a progress bar in its final state (its redraws were dropped when committed)
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "html_image"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type", "misc.highlighting_failure"]

html_theme = "sphinx_book_theme"
html_title = "LSTMs in Reinforcement Learning — an executable textbook"
html_static_path = ["_static"]
html_css_files = ["book.css"]
html_last_updated_fmt = None
html_theme_options = {
    "repository_url": BOOK["repository"],
    "repository_branch": BOOK["branch"],
    "path_to_docs": "",
    "use_repository_button": True,
    "use_download_button": True,
    "launch_buttons": {"binderhub_url": "https://mybinder.org", "colab_url": "https://colab.research.google.com",
                       "notebook_interface": "jupyterlab"},
    "show_toc_level": 2,
    "home_page_in_toc": True,
}

# MathJax 2 from the site itself (jupyter-server-mathjax ships it, with its STIX web fonts)
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]], "processEscapes": True,
                # myst-nb wraps each page in an ignored container and marks every formula with class "math"
                "processClass": "math|output_area", "ignoreClass": "tex2jax_ignore|mathjax_ignore|document"},
    "HTML-CSS": {"availableFonts": ["STIX-Web"], "preferredFont": "STIX-Web", "webFont": "STIX-Web",
                 "imageFont": None},
    "showMathMenu": False,
    "messageStyle": "none",
}
