"""Checks for the exercises of Chapter 5 (LSTM-PPO)."""
from __future__ import annotations

import numpy as np
import torch

from .. import ppo
from . import ExerciseFailed, check_function


def check_gae(fn) -> bool:
    """Exercise 1: ``fn(rewards, values, terminated, truncated, last_values, final_values, gamma, lam)``
    returns the GAE advantages ``(T, B)``: nothing flows across an episode end, a truncation is
    bootstrapped with ``gamma * final_values[t]``, a termination is not."""
    g = torch.Generator().manual_seed(0)
    T, B = 12, 3
    r, v, last, final = (torch.randn(T, B, generator=g), torch.randn(T, B, generator=g),
                         torch.randn(B, generator=g), torch.randn(T, B, generator=g))
    term, trunc = torch.zeros(T, B), torch.zeros(T, B)
    term[4, 0] = term[10, 1] = 1.0
    trunc[7, 0] = trunc[2, 2] = trunc[11, 1] = 1.0
    none = torch.zeros(T, B)

    def reference(*args):
        return ppo.compute_gae(*args)[0]

    cases = [("no episode end (bootstrap from last_values)", (r, v, none, none, last, final, 0.99, 0.95)),
             ("terminations only", (r, v, term, none, last, final, 0.99, 0.95)),
             ("terminations and truncations mixed", (r, v, term, trunc, last, final, 0.97, 0.8)),
             ("lambda = 1 (Monte Carlo returns minus values)", (r, v, term, trunc, last, final, 0.9, 1.0))]
    return check_function("GAE(lambda)", fn, reference, cases, atol=1e-5, rtol=1e-5, output_names=("advantages",))


def check_clipped_surrogate(fn) -> bool:
    """Exercise 2: ``fn(new_logp, old_logp, advantages, clip)`` = PPO's clipped policy loss (a scalar to minimise)."""
    g = torch.Generator().manual_seed(1)
    old = torch.randn(64, generator=g)
    adv = torch.randn(64, generator=g)

    def reference(new, old, adv, clip):
        ratio = (new - old).exp()
        return torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)).mean()

    cases = [("ratio exactly 1 (first minibatch)", (old.clone(), old, adv, 0.2)),
             ("small changes, inside the clip range", (old + 0.05 * torch.randn(64, generator=g), old, adv, 0.2)),
             ("large changes: clipping must act", (old + torch.randn(64, generator=g), old, adv, 0.2)),
             ("another clip range", (old + torch.randn(64, generator=g), old, adv, 0.1))]
    return check_function("clipped surrogate", fn, reference, cases, atol=1e-6, rtol=1e-6, output_names=("loss",))


def check_segments(fn) -> bool:
    """Exercise 3: ``fn(starts)`` for one column (a 0/1 array of length T) returns the list of
    ``(first_step, length)`` of the pieces the column is cut into: a new piece begins at step 0
    and at every later step where an episode starts."""
    def reference(starts):
        layout = ppo.SegmentLayout.from_starts(np.asarray(starts, dtype=np.float32)[:, None])
        return [(int(f), int(n)) for f, n in zip(layout.first_step, layout.lengths)]

    cases = [[0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 1, 0], [0, 1, 1, 0, 1], [1, 0, 0, 0, 0, 0, 0, 1]]
    for starts in cases:
        expected = reference(starts)
        try:
            got = fn(np.array(starts))
        except NotImplementedError:
            raise ExerciseFailed("segments: not implemented yet (replace `raise NotImplementedError` with your code)") from None
        got = [tuple(int(x) for x in piece) for piece in got]
        if got != expected:
            raise ExerciseFailed(f"segments: for starts {starts} expected {expected}, got {got}")
    print(f"PASS  segments: matches the reference on all {len(cases)} cases")
    return True
