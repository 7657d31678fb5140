"""The README's 'Use the library on your own environment' code is executed, as a reader would paste it."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _section_code(heading: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {heading}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], re.S)


@pytest.mark.filterwarnings("ignore:.*has no time limit")
def test_the_readme_example_on_your_own_environment_runs(tmp_path, monkeypatch, capsys):
    blocks = _section_code("Use the library on your own environment")
    assert len(blocks) == 2, "the section shows training/saving/acting and a sweep"
    monkeypatch.chdir(tmp_path)                   # my_agent.pt lands in a temporary folder
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "one episode:" in out and (tmp_path / "my_agent.pt").exists()
    assert namespace["agent"].algorithm == "ppo" and namespace["result"].history["env_steps"][-1] >= 4_096
    # the sweep example, made small (the same code, fewer steps), on a thread-free local pool of one
    sweep = blocks[1].replace('ppo.preset("cartpole-novel", seed=s)', 'ppo.preset("cartpole-novel", seed=s, total_steps=512)')
    sweep = sweep.replace("range(5)", "range(2)").replace("map_processes(ppo.run_experiment, jobs)",
                                                         "map_processes(ppo.run_experiment, jobs, workers=1, progress=False)")
    exec(compile(sweep, "README.md", "exec"), namespace)
    assert len(namespace["runs"]) == 2 and all(r["eval"]["return"] for r in namespace["runs"])
