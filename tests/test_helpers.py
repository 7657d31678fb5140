"""The helpers every chapter uses: device, seeding, show, progress, plotting, summary."""
import numpy as np
import pytest
import torch

import lstm_rl_lib
from lstm_rl_lib import TrainingProgress, get_device, plot_curves, seed_everything, show
from lstm_rl_lib.plotting import bin_by_steps, first_reached, mean_and_spread, pad_runs


def test_device_is_cuda_exactly_when_available(monkeypatch):
    monkeypatch.delenv("LSTM_RL_DEVICE", raising=False)
    assert get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert get_device("cpu").type == "cpu"


def test_device_errors_are_clear(monkeypatch):
    with pytest.raises(ValueError, match="'cpu', 'cuda' or 'cuda:N'"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            get_device("cuda")
    monkeypatch.setenv("LSTM_RL_DEVICE", "cpu")
    assert get_device().type == "cpu"


def test_seed_everything_reproduces_numpy_torch_and_python():
    import random

    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    seed_everything(3)
    first = draw()
    seed_everything(3)
    assert draw() == first
    seed_everything(4)
    assert draw() != first
    with pytest.raises(ValueError, match="non-negative integer"):
        seed_everything(-1)


def test_show_renders_the_real_source():
    view = show(seed_everything)
    md = view._repr_markdown_()
    assert "def seed_everything" in md and md.count("```") == 2
    assert "lstm_rl_lib/runtime.py" in view.where
    with pytest.raises(TypeError, match="needs a module, class, function"):
        show(3)


def test_show_renders_highlighted_html_and_names_the_file_of_a_decorated_function():
    from lstm_rl_lib import dqn

    view = show(dqn.q_discrepancy)              # decorated with @torch.no_grad
    assert view.where.startswith("lstm_rl_lib/dqn.py, lines ")
    assert "_contextlib" not in view.where and view.source.lstrip().startswith(("@", "def q_discrepancy"))
    html = view._repr_html_()
    assert "<pre" in html and "```" not in html and "lstm_rl_lib/dqn.py" in html
    assert 'style="color' in html               # highlighted: tokens carry colours


def test_training_progress_turns_ctrl_c_into_a_clean_stop():
    done = []
    with TrainingProgress(100, disable=True) as bar:
        for step in bar:
            if step == 5:
                raise KeyboardInterrupt
            done.append(step)
    assert bar.interrupted and done == [0, 1, 2, 3, 4] and bar.completed == 5


def test_training_progress_lets_other_errors_through():
    with pytest.raises(ZeroDivisionError):
        with TrainingProgress(3, disable=True) as bar:
            for _ in bar:
                1 / 0
    assert not bar.interrupted
    with pytest.raises(ValueError, match="non-negative"):
        TrainingProgress(-1)


def test_mean_and_spread_and_padding():
    runs = [[0.0, 1.0], [2.0, 3.0]]
    mean, low, high = mean_and_spread(runs)
    np.testing.assert_allclose(mean, [1, 2]) and np.testing.assert_allclose(high - mean, [1, 1])
    _, low, high = mean_and_spread(runs, "minmax")
    np.testing.assert_allclose(low, [0, 1])
    np.testing.assert_array_equal(pad_runs([[1], [1, 2, 3]]), [[1, 1, 1], [1, 2, 3]])
    with pytest.raises(ValueError, match="'std', 'sem' or 'minmax'"):
        mean_and_spread(runs, "iqr")
    with pytest.raises(ValueError, match=r"\(seeds, steps\)"):
        mean_and_spread(np.zeros((2, 2, 2)))


def test_plot_curves_draws_mean_and_band():
    ax = plot_curves({"a": [[0, 1, 2], [0, 1]], "b": [[1, 1, 1]]}, xlabel="x")
    assert [line.get_label() for line in ax.get_lines()] == ["a (n=2)", "b (n=1)"]
    assert len(ax.collections) == 2  # one band per curve


def test_summary_is_found_by_the_run_command(capsys):
    import nbformat
    from IPython.core.interactiveshell import InteractiveShell

    from notebooks import find_summary

    outputs = []
    shell = InteractiveShell.instance()
    shell.display_pub.publish = lambda data, metadata=None, **kw: outputs.append((data, metadata))
    lstm_rl_lib.summary(b=2, a="x")
    data, metadata = outputs[-1]
    cell = nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output("display_data", data=data, metadata=metadata)])
    assert list(find_summary(nbformat.v4.new_notebook(cells=[cell])).items()) == [("b", 2), ("a", "x")]


def _square(x):
    return x * x


def test_map_processes_keeps_the_order_of_the_jobs():
    from lstm_rl_lib.runtime import map_processes

    assert map_processes(_square, [3, 1, 2], workers=2, progress=False) == [9, 1, 4]
    assert map_processes(_square, [5], workers=4, progress=False) == [25]


def test_bin_by_steps_averages_episodes_per_window_and_carries_empty_windows():
    ends, means = bin_by_steps([10, 20, 60, 61, 95], [1.0, 3.0, 5.0, 7.0, 9.0], total_steps=100, bins=4)
    np.testing.assert_array_equal(ends, [25, 50, 75, 100])
    np.testing.assert_array_equal(means, [2.0, 2.0, 6.0, 9.0])     # window 2 has no episode: carried
    _, means = bin_by_steps([80], [4.0], total_steps=100, bins=2)
    assert np.isnan(means[0]) and means[1] == 4.0
    with pytest.raises(ValueError, match="same length"):
        bin_by_steps([1, 2], [1.0], total_steps=10)


def test_first_reached_reads_a_rolling_mean():
    h = {"env_steps": [10, 20, 30, 40, 50], "seconds": [1.0, 2.0, 3.0, 4.0, 5.0], "return": [0, 10, 10, 20, 0]}
    assert first_reached(h, "return", 10, window=2) == (30, 3.0)      # mean of (10, 10) at the 3rd episode
    assert first_reached(h, "return", 15, window=2) == (40, 4.0)
    assert first_reached(h, "return", 16, window=2) is None
    assert first_reached(h, "return", 0, window=6) is None            # fewer episodes than the window


def test_noise_follows_the_tensor_and_the_generator():
    import torch
    from lstm_rl_lib.runtime import noise
    like = torch.zeros(3, 4, dtype=torch.float64)
    a = noise(like, torch.Generator().manual_seed(1))
    assert a.shape == (3, 4) and a.dtype == torch.float64 and a.device == like.device
    torch.testing.assert_close(a, torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    u = noise(like, torch.Generator().manual_seed(2), uniform=True)
    assert (u >= 0).all() and (u < 1).all() and not torch.equal(u, noise(like, torch.Generator().manual_seed(3), uniform=True))


def test_worker_count_comes_from_cpu_quota_and_memory_not_the_machine(monkeypatch):
    """As on Binder: a host with many cores, a cgroup that allows 1 CPU and 2 GB."""
    import io

    from lstm_rl_lib import runtime

    files = {"/sys/fs/cgroup/cpu.max": "100000 100000\n", "/sys/fs/cgroup/memory.max": str(2 * 2**30),
             "/sys/fs/cgroup/memory.current": str(600 * 2**20)}

    def fake_open(path, *args, **kwargs):
        if path in files:
            return io.StringIO(files[path])
        raise FileNotFoundError(path)

    monkeypatch.setattr(runtime, "open", fake_open, raising=False)
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert runtime.available_cpus() == 1
    assert runtime.available_memory() == 2 * 2**30 - 600 * 2**20
    assert runtime.default_workers() == 1
    files["/sys/fs/cgroup/cpu.max"] = "max 100000\n"            # no CPU quota: the memory decides
    assert runtime.available_cpus() == 16
    assert runtime.default_workers() == (2 * 2**30 - 600 * 2**20) // runtime.WORKER_MEMORY == 4
    files["/sys/fs/cgroup/memory.current"] = str(2 * 2**30)     # nothing left: still one worker
    assert runtime.default_workers() == 1
