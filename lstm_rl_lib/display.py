"""Showing library code and results inside a notebook."""
from __future__ import annotations

import html
import inspect
import json
import os

#: Metadata key that marks a chapter's summary output; the book's run command reads it.
SUMMARY_KEY = "lstm_rl_summary"


class SourceView:
    """The real source of a library object, rendered as a highlighted code block.

    Renders as highlighted HTML in JupyterLab and on the book's website (inline styles, so no
    stylesheet is needed), as a Markdown code block where HTML is not shown, and as plain text elsewhere.
    """

    def __init__(self, obj):
        # a function wrapped by a decorator (e.g. @torch.no_grad) is shown, and located, as written
        obj = inspect.unwrap(obj) if callable(obj) else obj
        try:
            lines, start = inspect.getsourcelines(obj)
        except (TypeError, OSError) as err:
            raise TypeError(f"show() needs a module, class, function or method defined in Python source; "
                            f"got {type(obj).__name__} ({err})") from None
        self.source = "".join(lines).rstrip()
        path = inspect.getsourcefile(obj) or "?"
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.where = f"{os.path.relpath(path, package_root)}, lines {start or 1}-{(start or 1) + len(lines) - 1}"

    def _repr_markdown_(self) -> str:
        return f"`{self.where}`\n\n```python\n{self.source}\n```"

    def _repr_html_(self) -> str:
        try:    # Pygments comes with IPython, so it is there wherever a notebook is
            from pygments import highlight
            from pygments.formatters import HtmlFormatter
            from pygments.lexers import PythonLexer
            code = highlight(self.source, PythonLexer(), HtmlFormatter(noclasses=True, nowrap=True, style="default"))
        except ImportError:
            code = html.escape(self.source)
        return (f'<div class="lstm-rl-source"><div style="font-family:monospace;font-size:85%;color:#555">'
                f'{html.escape(self.where)}</div>'
                f'<pre style="line-height:125%;padding:0.5em;background:#f8f8f8;overflow-x:auto">'
                f'<code class="language-python">{code}</code></pre></div>')

    def __repr__(self) -> str:
        return f"# {self.where}\n{self.source}"


def show(obj) -> SourceView:
    """Display the source of ``obj`` (function, class, method or module) exactly as the library ships it.

    The book never copies library code into a notebook: it shows it with this function, so the
    text a reader studies is the code that runs.
    """
    return SourceView(obj)


def summary(**results) -> None:
    """Display a chapter's key results as a table, marked so that the book's run command finds them.

    Values should be short (numbers or strings). They are also written to the notebook's output
    as JSON, so that ``python3 book.py run`` can print a one-line summary per chapter.
    """
    from IPython.display import display

    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in results.items())
    text = "\n".join(f"{k}: {v}" for k, v in results.items())
    display({"text/plain": text, "text/html": f"<table>{rows}</table>",
             # a list of pairs, not an object: notebook JSON is written with sorted keys
             "application/json": {"summary": json.loads(json.dumps(list(results.items()), default=str))}},
            raw=True, metadata={SUMMARY_KEY: True})
