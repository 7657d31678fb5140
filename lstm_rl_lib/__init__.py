"""lstm_rl_lib: the library behind the executable textbook on LSTMs in reinforcement learning.

Chapters import what they need from its modules; the helpers every chapter uses are re-exported here.
"""
from .display import show, summary
from .plotting import plot_curves
from .progress import TrainingProgress
from .runtime import get_device, seed_everything

__all__ = ["show", "summary", "plot_curves", "TrainingProgress", "get_device", "seed_everything"]
__version__ = "0.1.0"
