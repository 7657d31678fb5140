"""Checks for the exercises of Chapter 4 (LSTM-DQN / DRQN)."""
from __future__ import annotations

import numpy as np
import torch

from .. import dqn
from ..claims import MIN_SEEDS
from . import ExerciseFailed, check_function

#: The answers Exercise 3 accepts.
HALVES = ("single transitions", "target copied every step", "neither")


def check_h_inverse(fn, values=(0.0, 1.0, 20.0), eps=(1e-3,)) -> bool:
    """Exercise 1: ``fn(y, eps)`` = the inverse of R2D2's ``h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps x``,
    compared with :func:`lstm_rl_lib.dqn.value_rescale_inverse`, and ``fn(h(x), eps) == x`` on returns."""
    cases = [(f"y = {list(values)}, eps = {e:g}", (torch.tensor(values, dtype=torch.float64), e)) for e in eps]
    check_function("h inverse", fn, lambda y, e: dqn.value_rescale_inverse(y, e), cases, atol=1e-6, rtol=1e-8,
                   output_names=("h^-1(y)",))
    x = torch.tensor([-500.0, -1.0, 0.0, 3.0, 99.0, 500.0], dtype=torch.float64)
    for e in eps:
        back = fn(dqn.value_rescale(x, e), e)
        if not torch.allclose(back, x, atol=1e-6, rtol=1e-8):
            raise ExerciseFailed(f"h inverse: h^-1(h(x)) should give x back; for x = {x.tolist()} and eps = {e:g} "
                                 f"got {[round(v, 4) for v in back.tolist()]}")
    print(f"PASS  h inverse: undoes h on returns from -500 to 500 (eps {', '.join(f'{e:g}' for e in eps)})")
    return True


def check_loss_probability(fn, cases=((100, 0, 10), (100, 50, 10))) -> bool:
    """Exercise 2: ``fn(n, t, L)`` = the probability that a window drawn from an episode of ``n`` steps
    (first loss step ``u`` uniform over ``0 .. n - 1``, ``L`` loss steps cut at the episode's end)
    puts a loss on step ``t``."""
    def reference(n, t, L):
        return sum(u <= t < u + L for u in range(n)) / n    # count the windows, one per possible u

    return check_function("loss probability", fn, reference,
                          [(f"n = {n}, t = {t}, L = {L}", (n, t, L)) for n, t, L in cases], atol=1e-12, rtol=1e-9,
                          output_names=("probability",))


def check_worse_half(answer, returns: dict) -> bool:
    """Exercise 3: ``answer`` names the half of the mistake whose every seed ends below every seed of
    the other (``returns``: per-seed greedy returns of each half), or ``"neither"``."""
    a, b = (np.asarray(returns[h], float) for h in HALVES[:2])
    if min(len(a), len(b)) < MIN_SEEDS:
        raise ExerciseFailed(f"worse half: the pitfalls ran on {min(len(a), len(b))} seed(s); the comparison needs {MIN_SEEDS}")
    expected = HALVES[0] if a.max() < b.min() else HALVES[1] if b.max() < a.min() else HALVES[2]
    if answer != expected:
        raise ExerciseFailed(f"worse half: {answer!r} does not match the table: single transitions "
                             f"{np.round(a, 1).tolist()}, target copied every step {np.round(b, 1).tolist()}")
    print(f"PASS  worse half: {answer}")
    return True


def check_half_named(answer) -> bool:
    """Exercise 3, the visible part: ``answer`` is one of :data:`HALVES` (the graded part compares it
    with the chapter's own table, :func:`check_worse_half`)."""
    if answer not in HALVES:
        raise ExerciseFailed(f"worse half: the answer must be one of {HALVES}; got {answer!r}")
    print(f"PASS  worse half: {answer!r} is one of the accepted answers (the graded check compares it with the table)")
    return True
