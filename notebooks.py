"""The book's own machinery: execute chapters, stamp them, check their freshness, write student versions.

Used by ``book.py`` (the run, test and student commands) and by ``tests/``. It sits beside
``book.py``, not in ``lstm_rl_lib``: nothing here is needed to read a chapter or to use the library.
"""
from __future__ import annotations

import ast
import base64
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent
CHAPTERS = ROOT / "chapters"
BUILD = ROOT / "build"
SMOKE_FILE = CHAPTERS / "smoke_parameters.json"
META_KEY = "lstm_rl_book"

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)", re.M | re.S)


def chapter_paths(names: list[str] | None = None) -> list[Path]:
    """The chapter notebooks, in order; ``names`` filters by prefix or stem (``"01"``, ``"01_lstm_numpy"``)."""
    paths = sorted(CHAPTERS.glob("[0-9][0-9]_*.ipynb"))
    if names:
        chosen = [p for p in paths if any(p.stem == n or p.stem.startswith(n) or p.name == n for n in names)]
        unknown = [n for n in names if not any(p.stem == n or p.stem.startswith(n) or p.name == n for p in paths)]
        if unknown:
            raise SystemExit(f"unknown chapter(s) {unknown}; chapters are: {[p.stem for p in paths]}")
        return chosen
    return paths


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def is_injected(cell) -> bool:
    return "injected-parameters" in cell.get("metadata", {}).get("tags", [])


def code_hash(nb) -> str:
    """SHA-256 of the notebook's code, cell by cell (papermill's injected cell excluded).

    Stored in the metadata of an executed chapter: when a chapter's code changes after its
    outputs were produced, the stored hash no longer matches and the freshness test fails."""
    h = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code" and not is_injected(cell):
            h.update("\n".join(line.rstrip() for line in cell.source.strip().splitlines()).encode())
            h.update(b"\0")
    return h.hexdigest()


def parameters_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"a chapter needs exactly one cell tagged 'parameters'; found {len(cells)}")
    return cells[0]


def parameter_names(nb) -> list[str]:
    """Names assigned in the parameters cell."""
    tree = ast.parse(parameters_cell(nb).source)
    return [t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)]


def smoke_parameters(path: Path) -> dict:
    """The small settings that tests inject into chapter ``path`` (from ``chapters/smoke_parameters.json``)."""
    table = json.loads(SMOKE_FILE.read_text())
    if path.stem not in table:
        raise KeyError(f"{SMOKE_FILE.name} has no entry for {path.stem}; every chapter needs smoke settings")
    return table[path.stem]


# ----------------------------------------------------------------------------------------------
# Execution
# ----------------------------------------------------------------------------------------------
@dataclass
class RunReport:
    chapter: str
    mode: str
    seconds: float
    output: Path
    summary: dict = field(default_factory=dict)
    figures: list = field(default_factory=list)
    error: str | None = None
    claims: list = field(default_factory=list)

    def line(self) -> str:
        key = "; ".join(f"{k}: {v}" for k, v in self.summary.items()) or "(no summary)"
        if self.claims:
            key = f"claims: {sum(c['holds'] for c in self.claims)} of {len(self.claims)} hold; " + key
        status = "FAILED " + self.error if self.error else key
        return f"{self.chapter:<24} {self.mode:<5} {self.seconds:7.1f} s  {status}"


def execute_chapter(path: Path, smoke: bool, out_dir: Path, extra_parameters: dict | None = None) -> RunReport:
    """Execute one chapter with papermill; write the executed notebook and its figures to ``out_dir``.

    At smoke settings the parameters in ``chapters/smoke_parameters.json`` are injected; at full
    settings nothing is injected, so the notebook runs with the defaults of its parameters cell.
    The executed notebook is stamped with the hash of its code (see :func:`code_hash`).
    """
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / path.name
    parameters = dict(smoke_parameters(path)) if smoke else {}
    parameters.update(extra_parameters or {})
    source = read(path)     # hashed as it is now: the code that runs, even if the file is edited meanwhile
    unknown = set(parameters) - set(parameter_names(source))
    if unknown:
        raise ValueError(f"{path.name}: parameters {sorted(unknown)} are not in its parameters cell")
    start = time.perf_counter()
    error = None
    try:
        papermill.execute_notebook(str(path), str(output), parameters=parameters, kernel_name="python3",
                                   progress_bar=False, cwd=str(out_dir))
    except Exception as err:  # papermill still writes the notebook up to the failing cell
        error = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
    seconds = time.perf_counter() - start
    nb = read(output)
    nb.metadata[META_KEY] = {"code_hash": code_hash(source), "smoke": smoke, "parameters": parameters,
                             "seconds": round(seconds, 1)}
    nbformat.write(nb, str(output))
    figures = extract_figures(nb, out_dir / "figures" / path.stem)
    return RunReport(path.stem, "smoke" if smoke else "full", seconds, output, find_summary(nb), figures, error,
                     find_claims(nb))


def find_summary(nb) -> dict:
    """The values a chapter reported with :func:`lstm_rl_lib.summary` (the last such output)."""
    from lstm_rl_lib.display import SUMMARY_KEY

    found = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("metadata", {}).get(SUMMARY_KEY):
                found = dict(out["data"].get("application/json", {}).get("summary", []))
    return found


def find_claims(nb) -> list[dict]:
    """The claims a chapter checked with :class:`lstm_rl_lib.claims.Claims` (``claim``, ``measured``,
    ``holds``, ``rule`` each), from every claims table in its outputs."""
    from lstm_rl_lib.claims import CLAIMS_KEY

    return [c for cell in nb.cells for out in cell.get("outputs", []) if out.get("metadata", {}).get(CLAIMS_KEY)
            for c in out["data"].get("application/json", {}).get("claims", [])]


def extract_figures(nb, folder: Path) -> list[Path]:
    """Write every PNG in the notebook's outputs to ``folder`` as ``cell{NN}_{k}.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    paths = []
    for n, cell in enumerate(nb.cells):
        k = 0
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                p = folder / f"cell{n:02d}_{k}.png"
                p.write_bytes(base64.b64decode(png))
                paths.append(p)
                k += 1
    return paths


def onto_current_source(executed, path: Path):
    """The executed notebook's outputs on the chapter's *current* cells: its prose may have been edited
    while it ran (a full run takes minutes), and those edits are kept. The code must be what ran:
    if it changed meanwhile, this raises instead of pairing outputs with code that did not produce them."""
    current = read(path)
    ran = [c for c in executed.cells if c.cell_type == "code" and not is_injected(c)]
    now = [c for c in current.cells if c.cell_type == "code"]
    if code_hash(current) != executed.metadata.get(META_KEY, {}).get("code_hash") or len(ran) != len(now):
        raise RuntimeError(f"{path.name}: its code changed while it ran; run it again")
    for new, old in zip(now, ran):
        new.outputs, new.execution_count = old.outputs, old.execution_count
        kept = {k: new.metadata[k] for k in ("nbgrader", "tags") if k in new.metadata}   # set while it ran
        new.metadata = {**old.metadata, **kept}
    current.metadata = executed.metadata
    return current


def strip_injected(nb):
    """Remove papermill's injected-parameters cell (used before a full run is copied into chapters/)."""
    nb.cells = [c for c in nb.cells if not is_injected(c)]
    return nb


_WARNING_LINE = re.compile(r"^.*(TqdmWarning|IProgress not found|from \.autonotebook import tqdm).*\n?", re.M)
#: Per-cell and per-notebook metadata that only says when a run happened: dropped, so that re-running a
#: chapter changes only what its outputs changed (the stamp keeps the run's total seconds).
_TIMING_KEYS = ("execution", "papermill")


def final_screen(text: str) -> str:
    """What a terminal shows for ``text``: each line's last carriage-return redraw (a progress bar once,
    in its final state, instead of every redraw)."""
    lines = text.split("\n")
    return "\n".join(next((seg for seg in reversed(line.split("\r")) if seg.strip()), "") for line in lines)


def clean_outputs(nb):
    """What a reader should not see in a committed chapter, and what would make its diff noisy:
    this machine's paths and the run's timestamps in papermill's metadata, per-cell execution
    timestamps, the "IProgress not found" warning of ``tqdm.auto``, and every redraw of a progress bar
    but its last (consecutive stream outputs are merged first). Figures are re-compressed losslessly
    (the same pixels, a smaller PNG: :func:`smaller_png`). Every other output is kept as it is."""
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        for key in _TIMING_KEYS:
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        merged = []
        for out in cell.get("outputs", []):
            if (out.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                    and merged[-1].get("name") == out.get("name")):
                merged[-1]["text"] += out["text"]
            else:
                merged.append(out)
        outputs = []
        for out in merged:
            if out.get("output_type") == "stream":
                out["text"] = final_screen(out["text"])
                if out.get("name") == "stderr":
                    out["text"] = _WARNING_LINE.sub("", out["text"])
                if not out["text"].strip():
                    continue
            if "image/png" in out.get("data", {}):
                out["data"]["image/png"] = smaller_png(out["data"]["image/png"])
            outputs.append(out)
        cell.outputs = outputs
    return nb


def smaller_png(b64: str) -> str:
    """The base64 PNG ``b64`` re-saved with zlib's best effort (Pillow's ``optimize``), when that is smaller:
    the same pixels, fewer bytes in a committed chapter. Anything Pillow cannot read is returned as it is."""
    import base64
    import io

    from PIL import Image

    raw = base64.b64decode(b64)
    try:
        image = Image.open(io.BytesIO(raw))
        buf = io.BytesIO()
        image.save(buf, format="PNG", optimize=True)
    except Exception:           # not a PNG Pillow can read: keep it
        return b64
    return base64.b64encode(buf.getvalue()).decode("ascii") + "\n" if len(buf.getvalue()) < len(raw) else b64


def local_leaks(path: Path) -> list[str]:
    """This machine's paths, tqdm's widget warning, or any Python warning (``RuntimeWarning: ...``) in the
    outputs of a committed chapter (empty when clean)."""
    text = path.read_text()
    found = [f"{path.name}: {what}" for what, hit in (("a local path", str(ROOT) in text),
                                                      ("a tqdm warning", "TqdmWarning" in text)) if hit]
    for n, cell in enumerate(read(path).cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                found += [f"{path.name}: cell {n} prints a warning: {m.strip()}"
                          for m in re.findall(r"^.*\b\w*Warning: .*$", out["text"], re.M)]
    return found


# ----------------------------------------------------------------------------------------------
# Freshness
# ----------------------------------------------------------------------------------------------
def freshness_problems(path: Path) -> list[str]:
    """Why the committed outputs of chapter ``path`` cannot be trusted; empty when they can."""
    nb = read(path)
    meta = nb.metadata.get(META_KEY)
    problems = []
    if not meta:
        return [f"{path.name} carries no '{META_KEY}' stamp: run `python3 book.py run --update-chapters {path.stem[:2]}`"]
    if meta.get("code_hash") != code_hash(nb):
        problems.append(f"{path.name}: its code changed after its outputs were produced "
                        f"(re-run `python3 book.py run --update-chapters {path.stem[:2]}`)")
    if meta.get("smoke") or meta.get("parameters"):
        problems.append(f"{path.name}: committed outputs come from a run with injected parameters "
                        f"{meta.get('parameters')}; they must come from a full-settings run")
    for n, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if cell.get("execution_count") is None:
            problems.append(f"{path.name}: code cell {n} was not executed")
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            problems.append(f"{path.name}: code cell {n} has an error output")
    return problems


# ----------------------------------------------------------------------------------------------
# Exercises: nbgrader source notebooks, student versions, grading
# ----------------------------------------------------------------------------------------------
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n.*?^[ \t]*### END HIDDEN TESTS[^\n]*(\n|$)", re.M | re.S)
NBGRADER_SCHEMA = 3


def exercise_cells(nb) -> list:
    """The answer cells: code cells holding a ``### BEGIN SOLUTION`` block."""
    return [c for c in nb.cells if c.cell_type == "code" and BEGIN in c.source]


def check_cells(nb) -> list:
    """The graded check cells (tagged ``exercise-check``): a visible check, then hidden cases."""
    return [c for c in nb.cells if c.cell_type == "code" and "exercise-check" in c.metadata.get("tags", [])]


def points(cell) -> int:
    """A check cell's points: its ``points-N`` tag (1 without one)."""
    tags = [t for t in cell.metadata.get("tags", []) if re.fullmatch(r"points-\d+", t)]
    return int(tags[0].split("-")[1]) if tags else 1


def nbgrader_metadata(nb, chapter: str):
    """Give the exercise cells nbgrader's cell metadata, from their tags, so that the chapter is an
    nbgrader source notebook: answer cells (tagged ``exercise``) are solution cells, check cells
    (tagged ``exercise-check``) are locked, graded test cells worth :func:`points`. Idempotent."""
    k = 0
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type != "code":
            continue
        if "exercise" in tags:
            k += 1
            cell.metadata["nbgrader"] = {"grade": False, "grade_id": f"ch{chapter[:2]}-ex{k}-answer", "locked": False,
                                         "schema_version": NBGRADER_SCHEMA, "solution": True, "task": False}
        elif "exercise-check" in tags:
            cell.metadata["nbgrader"] = {"grade": True, "grade_id": f"ch{chapter[:2]}-ex{k}-check", "locked": True,
                                         "points": points(cell), "schema_version": NBGRADER_SCHEMA, "solution": False,
                                         "task": False}
    return nb


def strip_solutions(source: str) -> str:
    """Replace every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block by ``raise NotImplementedError``."""
    if source.count(BEGIN) != source.count(END):
        raise ValueError("unbalanced solution markers: every '### BEGIN SOLUTION' needs its '### END SOLUTION'")
    return _SOLUTION.sub(lambda m: f"{m.group(1)}raise NotImplementedError  # your code here{m.group(2)}", source)


def strip_hidden_tests(source: str) -> str:
    """Remove every ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` block (what nbgrader keeps back)."""
    if source.count(HIDDEN_BEGIN) != source.count(HIDDEN_END):
        raise ValueError("unbalanced hidden-test markers: every '### BEGIN HIDDEN TESTS' needs its '### END HIDDEN TESTS'")
    return _HIDDEN.sub("", source)


def student_version(nb):
    """A copy of ``nb`` as a student gets it: solutions and hidden tests removed, outputs cleared, stamp dropped.
    (``python3 book.py student`` lets nbgrader make it; this is the same transformation, for tests and readers
    without nbgrader.)"""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.metadata.pop(META_KEY, None)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = strip_hidden_tests(strip_solutions(cell.source))
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("papermill", None)
            cell.metadata.pop("execution", None)
    return nb


def _course(root: Path, chapters: list[Path], parameters: dict | None = None) -> Path:
    """An nbgrader course folder in ``root`` with one assignment per chapter (``source/<stem>/<stem>.ipynb``).
    ``parameters``: ``{stem: {name: value}}`` written into each chapter's parameters cell (e.g. smoke settings,
    so that autograding runs the chapter small)."""
    (root / "source").mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'lstm-rl-book'\n"
        "c.ExecutePreprocessor.timeout = 600\nc.Execute.timeout = 600\n")
    for path in chapters:
        nb = nbgrader_metadata(read(path), path.stem)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        settings = (parameters or {}).get(path.stem)
        if settings:
            cell = parameters_cell(nb)
            cell.source += "\n# injected for grading\n" + "\n".join(f"{k} = {v!r}" for k, v in settings.items())
        nb.metadata.pop(META_KEY, None)
        folder = root / "source" / path.stem
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(folder / path.name))
    return root


def nbgrader(root: Path, *args: str) -> None:
    """Run one nbgrader command in course folder ``root``; raise with its output if it fails."""
    import subprocess
    import sys

    import os

    # nbgrader runs `alembic` (its database migrations) by name: the environment's scripts must be on PATH
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def write_student_versions(out_dir: Path, names: list[str] | None = None) -> list[Path]:
    """The student versions of the chapters, made by ``nbgrader generate_assignment`` (solutions replaced by
    ``raise NotImplementedError()``, hidden tests removed, check cells locked), in ``out_dir``."""
    import shutil
    import tempfile

    out_dir.mkdir(parents=True, exist_ok=True)
    paths, written = chapter_paths(names), []
    with tempfile.TemporaryDirectory() as tmp:
        course = _course(Path(tmp), paths)
        for path in paths:
            nbgrader(course, "generate_assignment", path.stem, "--force")
            target = out_dir / path.name
            shutil.copy(course / "release" / path.stem / path.name, target)
            written.append(target)
    return written


# ----------------------------------------------------------------------------------------------
# The website: the committed chapters rendered by Sphinx + myst-nb, without executing them
# ----------------------------------------------------------------------------------------------
WEBSITE = ROOT / "website"
#: The parts of jupyter-server-mathjax's MathJax 2 that the site uses: its combined TeX -> HTML-CSS
#: configuration (the package ships the output code only in there), and the STIX web fonts.
MATHJAX_PARTS = ("MathJax.js", "config", "extensions", "jax/input/TeX", "jax/element", "jax/output/HTML-CSS",
                 "fonts/HTML-CSS/STIX-Web")


def repository() -> dict:
    """The book's repository (``[project.urls] Repository`` in pyproject.toml, the one place it is written)
    and the links derived from it: Binder, and Colab for one chapter via :func:`colab_url`."""
    text = (ROOT / "pyproject.toml").read_text()
    m = re.search(r'^\[project\.urls\][^\[]*?^Repository\s*=\s*"([^"]+)"', text, re.M | re.S)
    if not m:
        raise ValueError("pyproject.toml needs [project.urls] Repository = \"https://github.com/OWNER/NAME\"")
    url = m.group(1).rstrip("/")
    owner_name = url.split("github.com/", 1)[1]
    return {"repository": url, "owner_name": owner_name, "branch": "main",
            "binder": f"https://mybinder.org/v2/gh/{owner_name}/HEAD"}


def is_colab_setup(cell) -> bool:
    return cell.cell_type == "code" and "colab-setup" in cell.get("metadata", {}).get("tags", [])


def colab_ready(path: Path) -> bool:
    """Whether a chapter opens on Colab as it is: its first code cell installs the library there."""
    return is_colab_setup(next(c for c in read(path).cells if c.cell_type == "code"))


def colab_url(path: Path) -> str:
    repo = repository()
    return f"https://colab.research.google.com/github/{repo['owner_name']}/blob/{repo['branch']}/chapters/{path.name}"


def binder_url(path: Path) -> str:
    return f"{repository()['binder']}?labpath=chapters%2F{path.name}"


def reading_minutes(nb, words_per_minute: int = 200) -> int:
    """Minutes to read a chapter's prose and code (not its outputs) at ``words_per_minute``."""
    words = sum(len(c.source.split()) for c in nb.cells if c.cell_type in ("markdown", "code")
                and not is_colab_setup(c))
    return max(1, round(words / words_per_minute))


def _minutes(seconds) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def chapter_map() -> str:
    """The landing page's table of chapters: title, reading time, full and smoke run times (from each
    committed chapter's stamp), and where to open it."""
    rows = ["| chapter | reading | full run | smoke run | open |", "|---|---|---|---|---|"]
    for path in chapter_paths():
        nb = read(path)
        title = nb.cells[0].source.splitlines()[0].lstrip("# ").strip()
        stamp = nb.metadata.get(META_KEY, {})
        rows.append(f"| [{title}](chapters/{path.name}) | {reading_minutes(nb)} min | {_minutes(stamp.get('seconds'))} "
                    f"| {_minutes(stamp.get('smoke_seconds'))} | [Binder]({binder_url(path)})"
                    + (f" · [Colab]({colab_url(path)}) |" if colab_ready(path) else " |"))
    return "\n".join(rows)


def prepare_site_source(src: Path) -> Path:
    """Lay out the site's sources in ``src``: Sphinx's configuration, the landing page with its chapter map
    and table of contents, the committed chapters (and the diagrams they show), and MathJax."""
    import shutil

    import jupyter_server_mathjax

    if src.exists():
        shutil.rmtree(src)
    (src / "chapters").mkdir(parents=True)
    shutil.copy(WEBSITE / "conf.py", src / "conf.py")
    shutil.copytree(WEBSITE / "_static", src / "_static")
    mathjax = Path(jupyter_server_mathjax.__file__).parent / "static"
    for part in MATHJAX_PARTS:
        target = src / "_static" / "mathjax" / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if (mathjax / part).is_dir():
            shutil.copytree(mathjax / part, target)
        else:
            shutil.copy(mathjax / part, target)
    (src / "book.json").write_text(json.dumps(repository()))
    for path in chapter_paths():
        shutil.copy(path, src / "chapters" / path.name)
    if (CHAPTERS / "diagrams").is_dir():
        shutil.copytree(CHAPTERS / "diagrams", src / "chapters" / "diagrams", ignore=shutil.ignore_patterns("*.py"))
    intro = (WEBSITE / "intro.md").read_text()
    if "<!-- chapter map -->" not in intro:
        raise ValueError("website/intro.md lost its '<!-- chapter map -->' line")
    toc = "\n".join(["", "```{toctree}", ":maxdepth: 1", ":caption: Chapters", ":hidden:", "",
                     *(f"chapters/{p.stem}" for p in chapter_paths()), "```", ""])
    (src / "index.md").write_text(intro.replace("<!-- chapter map -->", chapter_map()) + toc)
    return src


def build_site(out: Path | None = None, quiet: bool = True) -> tuple[Path, list[str]]:
    """Build the website into ``out`` (default ``build/site``) from the committed chapters; nothing is executed.
    Returns the folder and Sphinx's warnings."""
    import subprocess
    import sys

    out = out or BUILD / "site"
    src = prepare_site_source(BUILD / "site-src")
    log = BUILD / "site-warnings.txt"
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-E", "-w", str(log), *(["-q"] if quiet else []),
           str(src), str(out)]
    proc = subprocess.run(cmd, cwd=ROOT)
    warnings = [w for w in log.read_text().splitlines() if w.strip()] if log.exists() else []
    if proc.returncode:
        raise RuntimeError(f"sphinx-build failed (exit {proc.returncode}); see {log}")
    return out, warnings
