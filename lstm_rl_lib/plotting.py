"""Learning curves with mean and spread over seeds."""
from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import numpy as np


def mean_and_spread(runs: Sequence[Sequence[float]], spread: str = "std"):
    """Stack runs of equal length into ``(seeds, steps)`` and return ``mean, low, high`` per step.

    ``spread`` is ``"std"`` (mean +- one standard deviation), ``"minmax"`` (range over seeds) or
    ``"sem"`` (standard error of the mean).
    """
    arr = np.asarray(runs, dtype=float)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        raise ValueError(f"runs must be a list of equally long curves, shape (seeds, steps); got shape {arr.shape}")
    if spread not in ("std", "sem", "minmax"):
        raise ValueError(f"spread must be 'std', 'sem' or 'minmax'; got {spread!r}")
    with warnings.catch_warnings():     # a step where every run is NaN (nothing measured yet) stays NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(arr, axis=0)
        if spread == "minmax":
            return mean, np.nanmin(arr, axis=0), np.nanmax(arr, axis=0)
        s = np.nanstd(arr, axis=0) / (np.sqrt(arr.shape[0]) if spread == "sem" else 1.0)
    return mean, mean - s, mean + s


def bin_by_steps(env_steps: Sequence[float], values: Sequence[float], total_steps: int, bins: int = 50):
    """Average per-episode ``values`` over ``bins`` equal windows of environment steps.

    Episodes end at different steps in different runs; binning puts every run of a task on the
    same x axis (the bin ends, returned first) so that :func:`plot_curves` can average over seeds.
    A window in which no episode ended repeats the previous window's value (NaN before the first).
    Returns ``(bin_ends, means)``, each of length ``bins``."""
    steps, vals = np.asarray(env_steps, dtype=float), np.asarray(values, dtype=float)
    if steps.shape != vals.shape:
        raise ValueError(f"env_steps and values must have the same length; got {steps.shape} and {vals.shape}")
    edges = np.linspace(0, total_steps, bins + 1)
    which = np.clip(np.searchsorted(edges, steps, side="left") - 1, 0, bins - 1)
    out, last = np.full(bins, np.nan), np.nan
    for k in range(bins):
        here = vals[(which == k) & ~np.isnan(vals)]
        last = here.mean() if len(here) else last
        out[k] = last
    return edges[1:], out


def first_reached(history: Mapping[str, Sequence[float]], key: str, level: float, window: int = 10):
    """When a training curve first reached ``level``: ``(env_steps, seconds)`` of the episode at which
    the mean of the last ``window`` episodes' ``history[key]`` was first ``>= level``; ``None`` if never.

    ``history`` holds per-episode lists ``env_steps``, ``seconds`` and ``key`` (as
    :func:`lstm_rl_lib.dqn.train_dqn` returns)."""
    values = np.asarray(history[key], dtype=float)
    if len(values) < window:
        return None
    hit = np.nonzero(np.convolve(values, np.ones(window) / window, mode="valid") >= level)[0]
    if not len(hit):
        return None
    k = hit[0] + window - 1
    return history["env_steps"][k], history["seconds"][k]


def pad_runs(runs: Sequence[Sequence[float]], length: int | None = None) -> np.ndarray:
    """Right-pad curves of different lengths with their last value (a run that stopped early,
    e.g. because it solved the task, keeps its final score)."""
    length = length or max(len(r) for r in runs)
    out = np.empty((len(runs), length))
    for k, r in enumerate(runs):
        r = list(r) or [np.nan]
        out[k] = list(r[:length]) + [r[-1]] * max(0, length - len(r))
    return out


def steps_formatter():
    """A tick formatter that writes large step counts short (``25k``, ``1.5M``), so that ticks do not overlap."""
    from matplotlib.ticker import FuncFormatter

    def short(v, _pos=None):
        a = abs(v)
        if a >= 1e6:
            return f"{v / 1e6:g}M"
        if a >= 1e3:
            return f"{v / 1e3:g}k"
        return f"{v:g}"
    return FuncFormatter(short)


def plot_curves(curves: Mapping[str, Sequence[Sequence[float]]], x: Sequence[float] | None = None, ax=None,
                spread: str = "std", xlabel: str = "", ylabel: str = "", title: str = "",
                limits: tuple[float, float] | None = None, legend: str = "best", **plot_kwargs):
    """Plot one line per label (the mean over seeds) with a shaded band (the spread over seeds).

    Args:
        curves: ``{label: runs}`` where ``runs`` has shape ``(seeds, steps)``; runs of unequal
            length are padded with :func:`pad_runs`.
        x: the x values shared by all curves (default ``0..steps-1``).
        ax: a Matplotlib axes (a new figure when omitted).
        spread: see :func:`mean_and_spread`.
        limits: the range the values can take, e.g. ``(0, 1)`` for a success rate: the shaded band
            is clipped to it (mean +- std of rates near 1 would otherwise reach above 1).
        legend: a Matplotlib legend location, ``"below"`` (under the axes, where it covers no curve)
            or ``"none"``.

    Large x values (environment steps) are written short: ``25k``, not ``25000``.
    Returns the axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for label, runs in curves.items():
        runs = pad_runs(runs) if len({len(r) for r in runs}) > 1 else np.asarray(runs, dtype=float)
        mean, low, high = mean_and_spread(runs, spread)
        if limits is not None:
            low, high = np.clip(low, *limits), np.clip(high, *limits)
        xs = np.arange(len(mean)) if x is None else np.asarray(x)[: len(mean)]
        n = runs.shape[0] if runs.ndim == 2 else 1
        line, = ax.plot(xs, mean, label=f"{label} (n={n})", **plot_kwargs)
        ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if np.nanmax(np.abs(ax.get_xlim())) >= 1e4:
        ax.xaxis.set_major_formatter(steps_formatter())
    if legend == "below":
        ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    elif legend != "none":
        ax.legend(frameon=False, loc=legend)
    return ax
