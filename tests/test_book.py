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
def test_committed_outputs_show_no_local_path_or_tqdm_warning(path):
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


def test_binder_and_requirements_name_the_same_packages_and_versions():
    ours, binder = _pins(ROOT / "requirements.txt"), _pins(ROOT / "binder" / "requirements.txt")
    assert ours == binder
    assert "torch" in ours
    assert "download.pytorch.org/whl/cpu" in (ROOT / "binder" / "requirements.txt").read_text()
    assert "pip install" in (ROOT / "binder" / "postBuild").read_text()


def test_smoke_settings_name_only_chapters():
    table = json.loads(notebooks.SMOKE_FILE.read_text())
    assert set(table) == {p.stem for p in CHAPTERS}
