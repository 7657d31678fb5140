"""The exercise mechanism: checks that pass right answers, fail wrong ones, and student versions that fail."""
import numpy as np
import pytest

import notebooks
from lstm_rl_lib.exercises import ExerciseFailed, check_function

CHAPTERS = notebooks.chapter_paths()


def test_check_function_passes_and_reports_what_differed(capsys):
    cases = [("small", (np.arange(3.0),))]
    assert check_function("double", lambda x: 2 * x, lambda x: 2 * x, cases)
    assert "PASS" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match=r"largest difference 2 at index \(2,\)"):
        check_function("double", lambda x: 3 * x, lambda x: 2 * x, cases)
    with pytest.raises(ExerciseFailed, match=r"expected shape \(3,\), got shape \(2,\)"):
        check_function("double", lambda x: x[:2], lambda x: 2 * x, cases)
    with pytest.raises(ExerciseFailed, match="not implemented yet"):
        check_function("double", lambda x: (_ for _ in ()).throw(NotImplementedError), lambda x: 2 * x, cases)
    with pytest.raises(ExerciseFailed, match="raised ZeroDivisionError"):
        check_function("double", lambda x: 1 / 0, lambda x: 2 * x, cases)
    with pytest.raises(ExerciseFailed, match="expected a tuple of 2 outputs"):
        check_function("pair", lambda x: x, lambda x: (x, x), cases)


def test_strip_solutions_keeps_indentation_and_code_around():
    source = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n\ncheck(f)"
    assert notebooks.strip_solutions(source) == (
        "def f(x):\n    y = 1\n    raise NotImplementedError  # your code here\n\ncheck(f)")
    with pytest.raises(ValueError, match="unbalanced"):
        notebooks.strip_solutions("### BEGIN SOLUTION\nx = 1\n")


def _run_cell(source: str, namespace=None):
    exec(compile(source, "<exercise cell>", "exec"), namespace if namespace is not None else {"__name__": "__exercise__"})


def _check_after(nb, answer):
    """The check cell that follows an answer cell, or None where the check is the answer cell's last line."""
    cells = [c for c in nb.cells if c.cell_type == "code"]
    k = next(i for i, c in enumerate(cells) if c is answer)
    nxt = cells[k + 1] if k + 1 < len(cells) else None
    return nxt if nxt is not None and "exercise-check" in nxt.metadata.get("tags", []) else None


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_committed_solutions_pass_and_student_versions_fail(path, capsys):
    nb = notebooks.read(path)
    cells = notebooks.exercise_cells(nb)
    assert 2 <= len(cells) <= 4, f"{path.name} should have 2-4 exercises, has {len(cells)}"
    student_nb = notebooks.student_version(nb)
    assert len(notebooks.exercise_cells(student_nb)) == 0, "the student version still contains solution markers"
    assert not any(notebooks.HIDDEN_BEGIN in c.source for c in student_nb.cells), "hidden tests left in"
    student_cells = [c for c in student_nb.cells if "exercise" in c.metadata.get("tags", [])]
    assert len(student_cells) == len(cells), "every exercise cell must be tagged 'exercise'"
    for committed, handed_out in zip(cells, student_cells):
        check = _check_after(nb, committed)
        visible = notebooks.strip_hidden_tests(check.source) if check is not None else ""
        namespace = {"__name__": "__exercise__"}
        _run_cell(committed.source, namespace)   # raises ExerciseFailed if the reference solution is wrong
        _run_cell(visible, namespace)
        assert "PASS" in capsys.readouterr().out
        assert "NotImplementedError" in handed_out.source
        namespace = {"__name__": "__exercise__"}
        with pytest.raises(ExerciseFailed, match="not implemented yet"):
            try:
                _run_cell(handed_out.source, namespace)
            except NotImplementedError:        # a bare answer (SARSA_ROWS = ...): the check never got to run
                raise ExerciseFailed("not implemented yet") from None
            _run_cell(visible, namespace)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_exercise_cells_carry_nbgrader_metadata(path):
    nb = notebooks.read(path)
    expected = notebooks.nbgrader_metadata(notebooks.read(path), path.stem)
    for have, want in zip(nb.cells, expected.cells):
        assert have.metadata.get("nbgrader") == want.metadata.get("nbgrader"), \
            f"{path.name}: nbgrader metadata out of date; apply notebooks.nbgrader_metadata"
    for cell in notebooks.check_cells(nb):
        assert cell.source.count(notebooks.HIDDEN_BEGIN) == 1, f"{path.name}: a check cell without hidden tests"


def test_student_command_writes_clean_notebooks(tmp_path):
    written = notebooks.write_student_versions(tmp_path)
    assert [p.name for p in written] == [p.name for p in CHAPTERS]
    for p in written:
        nb = notebooks.read(p)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
        assert not any(notebooks.BEGIN in c.source for c in nb.cells if c.cell_type == "code")
