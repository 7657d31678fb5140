"""Checks for the exercises of Chapter 4 (LSTM-DQN / DRQN)."""
from __future__ import annotations

import numpy as np
import torch

from .. import dqn
from . import ExerciseFailed, check_function


def check_window(fn) -> bool:
    """Exercise 1: ``fn(n, u, seq_len, burn_in)`` for an episode of ``n`` steps and a sampled step ``u``
    returns ``(burn_start, loss_end)``: the burn-in covers steps ``burn_start .. u - 1`` and the loss
    steps ``u .. loss_end - 1``; neither may leave the episode."""
    def reference(n, u, seq_len, burn_in):
        return max(0, u - burn_in), min(u + seq_len, n)

    cases = [(50, 20, 10, 5), (50, 2, 10, 5), (50, 0, 10, 5), (50, 45, 10, 5), (50, 49, 10, 0), (1, 0, 8, 4),
             (12, 6, 6, 6), (30, 29, 1, 0)]
    for case in cases:
        expected = reference(*case)
        try:
            got = fn(*case)
        except NotImplementedError:
            raise ExerciseFailed("window: not implemented yet (replace `raise NotImplementedError` with your code)") from None
        got = tuple(int(x) for x in got)
        if got != expected:
            n, u, L, B = case
            raise ExerciseFailed(f"window: for an episode of {n} steps, u = {u}, seq_len = {L}, burn_in = {B} "
                                 f"expected (burn_start, loss_end) = {expected}, got {got}")
    print(f"PASS  window: matches the reference on all {len(cases)} cases")
    return True


def check_n_step_targets(fn) -> bool:
    """Exercise 2: ``fn(rewards, terminated, mask, values, gamma, n)`` returns the ``(L, N)`` n-step
    targets of :func:`lstm_rl_lib.dqn.n_step_targets` (compared on real steps, ``mask == 1``)."""
    g = torch.Generator().manual_seed(4)
    L, N = 7, 6
    lengths = torch.tensor([7, 1, 3, 7, 5, 2])
    mask = (torch.arange(L)[:, None] < lengths).float()
    rewards = torch.randn(L, N, generator=g) * mask
    values = torch.randn(L + 1, N, generator=g)
    terminated = torch.zeros(L, N)
    terminated[lengths[2] - 1, 2] = terminated[lengths[3] - 1, 3] = terminated[0, 1] = 1.0

    def masked(f):
        return lambda *args: f(*args) * args[2]

    cases = [("n = 1, the one-step target", (rewards, terminated, mask, values, 0.9, 1)),
             ("n = 3", (rewards, terminated, mask, values, 0.9, 3)),
             ("n = 5, another discount", (rewards, terminated, mask, values, 0.5, 5)),
             ("n longer than every sequence", (rewards, terminated, mask, values, 0.99, 10))]
    return check_function("n-step targets", masked(fn), masked(dqn.n_step_targets), cases, atol=1e-5, rtol=1e-5,
                          output_names=("targets",))


def check_double_dqn_target(fn) -> bool:
    """Exercise 3: ``fn(q_online_next, q_target_next, rewards, terminated, gamma)`` returns the
    one-step double-DQN target: the online network picks the next action, the target network
    scores it, and a terminated step does not bootstrap. Q tensors ``(L, N, A)``, others ``(L, N)``."""
    g = torch.Generator().manual_seed(5)
    L, N, A = 5, 4, 3
    q_on, q_tg = torch.randn(L, N, A, generator=g), torch.randn(L, N, A, generator=g)
    r = torch.randn(L, N, generator=g)
    term = torch.zeros(L, N)
    term[4, 0] = term[2, 3] = 1.0

    def reference(q_online_next, q_target_next, rewards, terminated, gamma):
        a = q_online_next.argmax(-1, keepdim=True)
        return rewards + gamma * (1 - terminated) * q_target_next.gather(-1, a).squeeze(-1)

    cases = [("no terminations", (q_on, q_tg, r, torch.zeros(L, N), 0.99)),
             ("with terminations", (q_on, q_tg, r, term, 0.9)),
             ("networks that disagree", (q_on, -q_on + 0.1 * q_tg, r, term, 0.5))]
    return check_function("double-DQN target", fn, reference, cases, atol=1e-6, rtol=1e-6, output_names=("targets",))
