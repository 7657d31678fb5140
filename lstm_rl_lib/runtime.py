"""Device choice and reproducibility: the two helpers every chapter calls first."""
from __future__ import annotations

import os
import random

import numpy as np


def get_device(prefer: str | None = None):
    """The ``torch.device`` to train on: CUDA when available, else the CPU.

    Args:
        prefer: ``"cpu"`` or ``"cuda"`` to force a choice (``"cuda"`` fails clearly without a GPU).
            The environment variable ``LSTM_RL_DEVICE`` does the same for a whole run.
    """
    import torch

    prefer = prefer or os.environ.get("LSTM_RL_DEVICE")
    if prefer is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if prefer not in ("cpu", "cuda") and not prefer.startswith("cuda:"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N'; got {prefer!r}")
    if prefer.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {prefer!r} was asked for, but torch sees no CUDA GPU on this machine")
    return torch.device(prefer)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's ``random``, NumPy's global generator and PyTorch (CPU and every GPU).

    Returns a fresh ``np.random.Generator(seed)`` for code that prefers an explicit generator.
    The same seed gives the same numbers on the same machine; across machines (or CPU vs GPU)
    floating-point results may differ in the last bits.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:  # NumPy-only chapters work without torch
        return np.random.default_rng(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return np.random.default_rng(seed)
