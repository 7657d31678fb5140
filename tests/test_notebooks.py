"""Every chapter executed with papermill at its smoke settings (the outputs go to build/smoke,
where the test command's second step re-runs them under nbval)."""
import pytest

import notebooks

CHAPTERS = notebooks.chapter_paths()


@pytest.mark.notebooks
@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_at_smoke_settings(path):
    report = notebooks.execute_chapter(path, smoke=True, out_dir=notebooks.BUILD / "smoke")
    assert report.error is None, f"{path.name} failed: {report.error} (see {report.output})"
    assert report.summary, f"{path.name} reported no summary (call lstm_rl_lib.summary in the Results section)"
    assert report.figures, f"{path.name} drew no figure"
