"""nbgrader, for real, on a chapter: the committed chapter is the source notebook; nbgrader makes the student
version and grades three submissions (everything solved, nothing solved, one exercise solved) at the
chapter's smoke settings. Needs requirements-instructor.txt (python3 book.py test installs it)."""
import csv
import shutil

import pytest

import notebooks

pytest.importorskip("nbgrader", reason="nbgrader is in requirements-instructor.txt (python3 book.py test installs it)")
GRADED = [p for p in notebooks.chapter_paths() if notebooks.check_cells(notebooks.read(p))]


def _answers(nb):
    return [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]


@pytest.mark.skipif(not GRADED, reason="no chapter has graded check cells yet")
def test_nbgrader_grades_a_chapter_end_to_end(tmp_path):
    path = GRADED[0]
    course = notebooks._course(tmp_path, [path], parameters={path.stem: notebooks.smoke_parameters(path)})
    notebooks.nbgrader(course, "generate_assignment", path.stem, "--force")
    release = course / "release" / path.stem / path.name
    handed_out = notebooks.read(release)
    text = release.read_text()
    assert notebooks.BEGIN not in text and notebooks.HIDDEN_BEGIN not in text, "solutions or hidden tests handed out"
    assert text.count("raise NotImplementedError") >= len(notebooks.exercise_cells(notebooks.read(path)))

    source = notebooks.read(course / "source" / path.stem / path.name)
    solved = [notebooks.strip_hidden_tests(c.source) for c in _answers(source)]   # marker lines are dropped below
    checks = notebooks.check_cells(source)
    max_points = sum(notebooks.points(c) for c in checks)

    def submit(student, solve):
        nb = notebooks.read(release)
        for k, cell in enumerate(_answers(nb)):
            if k in solve:
                cell.source = "\n".join(line for line in solved[k].splitlines() if "### " not in line)
        folder = course / "submitted" / student / path.stem
        folder.mkdir(parents=True)
        notebooks.nbformat.write(nb, str(folder / path.name))

    partial = len(checks) - 1                                  # the last exercise only
    submit("all", set(range(len(checks))))
    submit("none", set())
    submit("one", {partial})
    notebooks.nbgrader(course, "autograde", path.stem, "--create", "--force")
    notebooks.nbgrader(course, "export")
    scores = {row["student_id"]: (float(row["score"]), float(row["max_score"]))
              for row in csv.DictReader(open(course / "grades.csv"))}
    assert scores["all"] == (max_points, max_points), scores
    assert scores["none"] == (0.0, max_points), scores
    assert scores["one"] == (notebooks.points(checks[partial]), max_points), scores
    assert 0 < scores["one"][0] < max_points
    shutil.rmtree(course / "autograded", ignore_errors=True)


def test_book_student_writes_what_nbgrader_generates(tmp_path):
    written = notebooks.write_student_versions(tmp_path, ["02"])
    nb = notebooks.read(written[0])
    assert not any(notebooks.BEGIN in c.source or notebooks.HIDDEN_BEGIN in c.source for c in nb.cells)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    locked = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("locked")]
    assert len(locked) >= len(notebooks.check_cells(notebooks.read(notebooks.chapter_paths(["02"])[0])))
