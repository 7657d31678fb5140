"""The book as a whole: structure of the chapters, freshness of their outputs, Binder's environment."""
import json
import re
from pathlib import Path

import pytest

import notebooks

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = notebooks.chapter_paths()
HEADINGS = ["Goal", "Background", "Implementation", "Experiment", "Results", "Pitfalls", "Exercises", "Summary"]


def test_there_are_chapters():
    assert CHAPTERS and CHAPTERS[0].name == "01_lstm_numpy.ipynb"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_follows_the_template(path):
    nb = notebooks.read(path)
    headings = [line[3:].strip() for c in nb.cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("## ")]
    found = [h for h in HEADINGS if any(x.startswith(h) for x in headings)]
    assert found == HEADINGS, f"{path.name} headings {headings}"
    names = notebooks.parameter_names(nb)
    assert names, "the parameters cell assigns nothing"
    smoke = notebooks.smoke_parameters(path)
    assert set(smoke) <= set(names), f"smoke settings {set(smoke) - set(names)} are not parameters of {path.name}"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_committed_outputs_are_fresh(path):
    """Fails when a chapter's code changed after the run that produced its committed outputs."""
    assert notebooks.freshness_problems(path) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_claim_in_a_committed_chapter_holds(path):
    """A full run whose claim fails must change the prose (and the claim), not this check."""
    failing = [c for c in notebooks.find_claims(notebooks.read(path)) if not c["holds"]]
    assert failing == [], f"{path.name}: claims that do not hold: {failing}"


def test_claims_are_found_in_an_executed_notebook():
    from lstm_rl_lib.claims import CLAIMS_KEY

    nb = notebooks.nbformat.v4.new_notebook()
    cell = notebooks.nbformat.v4.new_code_cell("claims.show()")
    cell.outputs = [notebooks.nbformat.v4.new_output("display_data", data={"application/json": {"claims": [
        {"claim": "A solves it", "measured": "1.00 ± 0.00 [1, 1, 1]", "holds": True, "rule": "every seed ≥ 0.95"},
        {"claim": "A beats B", "measured": "...", "holds": False, "rule": "every seed of A > every seed of B"}]}},
        metadata={CLAIMS_KEY: True})]
    nb.cells = [cell]
    found = notebooks.find_claims(nb)
    assert [c["holds"] for c in found] == [True, False]
    report = notebooks.RunReport("03_x", "full", 1.0, None, {}, [], None, found)
    assert "claims: 1 of 2 hold" in report.line()


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_committed_outputs_show_no_local_path_or_warning(path):
    assert notebooks.local_leaks(path) == []


def test_freshness_detects_a_code_change(tmp_path):
    nb = notebooks.read(CHAPTERS[0])
    nb.metadata[notebooks.META_KEY] = {"code_hash": notebooks.code_hash(nb), "smoke": False, "parameters": {}}
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.source += "\nx = 1"
    p = tmp_path / CHAPTERS[0].name
    notebooks.nbformat.write(nb, str(p))
    assert any("code changed" in msg for msg in notebooks.freshness_problems(p))
    code.source = code.source[: -len("\nx = 1")] + "   \n"  # trailing whitespace alone is no change
    notebooks.nbformat.write(nb, str(p))
    assert not any("code changed" in msg for msg in notebooks.freshness_problems(p))


def _pins(path: Path) -> dict:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        assert m, f"{path.name}: '{line}' is not pinned as name==version"
        pins[m.group(1).lower()] = m.group(2).split("+")[0]  # torch==2.13.0+cpu is torch 2.13.0
    return pins


#: Left to Binder's base image (its notebook 7.4.7 needs jupyterlab<4.5; pinning ours breaks the build).
BINDER_FROM_BASE_IMAGE = {"jupyterlab", "ipykernel"}


def test_binder_and_requirements_name_the_same_packages_and_versions():
    ours, binder = _pins(ROOT / "requirements.txt"), _pins(ROOT / "binder" / "requirements.txt")
    assert {k: v for k, v in ours.items() if k not in BINDER_FROM_BASE_IMAGE} == binder
    assert not BINDER_FROM_BASE_IMAGE & set(binder)
    assert "torch" in ours
    assert "download.pytorch.org/whl/cpu" in (ROOT / "binder" / "requirements.txt").read_text()
    assert "pip install" in (ROOT / "binder" / "postBuild").read_text()


def test_book_py_uses_binders_python_instead_of_creating_a_venv(tmp_path):
    import os
    import subprocess
    import sys

    start = (ROOT / "binder" / "start").read_text()
    assert "export BOOK_NO_VENV=1" in start and 'exec "$@"' in start
    assert os.access(ROOT / "binder" / "start", os.X_OK)
    # a copy of book.py in an empty folder: with a Binder variable set it must not create .venv/ there
    (tmp_path / "book.py").write_text((ROOT / "book.py").read_text())
    (tmp_path / "requirements.txt").write_text("")
    env = {k: v for k, v in os.environ.items() if k != "BOOK_NO_VENV"}
    env["BINDER_LAUNCH_HOST"] = "https://mybinder.org/"
    proc = subprocess.run([sys.executable, str(tmp_path / "book.py"), "bench", "nothing"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert not (tmp_path / ".venv").exists(), proc.stdout + proc.stderr
    assert "no benchmark named" in proc.stdout + proc.stderr


def test_committed_chapters_stay_within_their_size_budget():
    sizes = {p.name: p.stat().st_size for p in CHAPTERS}
    assert all(size <= 1_000_000 for size in sizes.values()), sizes
    assert sum(sizes.values()) <= 4_000_000, sizes


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_committed_chapters_carry_no_run_timestamps_or_progress_redraws(path):
    nb = notebooks.read(path)
    assert "papermill" not in nb.metadata
    for cell in nb.cells:
        assert not {"execution", "papermill"} & set(cell.metadata), cell.metadata
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                assert "\r" not in out["text"], f"{path.name}: a progress bar's redraws are still there"


def test_clean_outputs_keeps_a_progress_bar_once_in_its_final_state():
    nb = notebooks.nbformat.v4.new_notebook()
    cell = notebooks.nbformat.v4.new_code_cell("x")
    cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
    cell.outputs = [notebooks.nbformat.v4.new_output("stream", name="stderr", text="\rruns:   0%| 0/2"),
                    notebooks.nbformat.v4.new_output("stream", name="stderr", text="\rruns:  50%| 1/2"),
                    notebooks.nbformat.v4.new_output("stream", name="stderr", text="\rruns: 100%| 2/2\n"),
                    notebooks.nbformat.v4.new_output("stream", name="stdout", text="done\n")]
    nb.cells = [cell]
    nb.metadata["papermill"] = {"start_time": "2026-01-01", "input_path": "/somewhere"}
    clean = notebooks.clean_outputs(nb)
    assert "papermill" not in clean.metadata and "execution" not in clean.cells[0].metadata
    assert [(o["name"], o["text"]) for o in clean.cells[0].outputs] == [("stderr", "runs: 100%| 2/2\n"), ("stdout", "done\n")]


def test_smoke_settings_name_only_chapters():
    table = json.loads(notebooks.SMOKE_FILE.read_text())
    assert set(table) == {p.stem for p in CHAPTERS}


def test_packaging_declares_license_urls_citation_and_every_runtime_dependency():
    import ast
    import sys

    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license = "MIT"$', text, re.M) and 'license-files = ["LICENSE"]' in text   # PEP 639
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    cff = (ROOT / "CITATION.cff").read_text()
    assert cff.startswith("cff-version: 1.2.0") and notebooks.repository()["repository"] in cff
    deps = re.search(r"^dependencies = \[(.*?)\]", text, re.M | re.S).group(1)
    declared = {re.match(r"[A-Za-z0-9_\-]+", d.strip().strip('"')).group(0).lower() for d in deps.split(",") if d.strip()}
    imported = set()
    for module in (ROOT / "lstm_rl_lib").rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != "lstm_rl_lib"}
    optional = {"IPython", "pygments"}     # present wherever a notebook runs; the library works without them
    assert third_party - optional <= declared, f"imported but not declared: {third_party - optional - declared}"


def test_figures_are_recompressed_to_the_same_pixels_and_no_more_bytes():
    import base64
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = np.kron(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))   # blocks compress
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    b64 = base64.b64encode(buf.getvalue()).decode()
    smaller = notebooks.smaller_png(b64)
    assert len(base64.b64decode(smaller)) < len(buf.getvalue())
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(smaller)))), pixels)
    assert notebooks.smaller_png(base64.b64encode(b"not a png").decode()) == base64.b64encode(b"not a png").decode()
