"""lstm_rl_lib: the library behind the executable textbook on LSTMs in reinforcement learning.

Chapters import what they need from its modules; the helpers every chapter uses are re-exported here,
and so is what a reader needs to use the library on their own environment: the three training
functions, :class:`Agent` (save, load, ``predict`` step by step) and one :func:`evaluate`; and
:class:`Claims`, the book's rule for "A solves it" and "A beats B" (:mod:`lstm_rl_lib.claims`).
"""
from .claims import Claims
from .display import show, summary
from .plotting import plot_curves
from .progress import TrainingProgress
from .runtime import get_device, seed_everything

__all__ = ["Claims", "show", "summary", "plot_curves", "TrainingProgress", "get_device", "seed_everything",
           "Agent", "evaluate", "load_agent", "train_reinforce", "train_dqn", "train_ppo"]
__version__ = "0.1.0"


def __getattr__(name):
    # the algorithms and the agent import torch and Gymnasium; load them when first asked for, so that
    # the NumPy-only chapters import the package without torch
    if name in ("Agent", "evaluate", "load_agent"):
        from . import agent

        return getattr(agent, name)
    if name in ("train_reinforce", "train_dqn", "train_ppo"):
        import importlib

        module = importlib.import_module(f".{name.split('_', 1)[1]}", __name__)
        return getattr(module, name)
    if name in ("reinforce", "dqn", "ppo"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'lstm_rl_lib' has no attribute {name!r}")
