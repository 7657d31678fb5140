"""Checks for the exercises of Chapter 5 (LSTM-PPO)."""
from __future__ import annotations

import torch

from .. import ppo
from . import ExerciseFailed, check_function


def _rollout(seed: int, T: int = 12, B: int = 3):
    """Random rewards and values, with terminations, truncations and one step where both are set."""
    g = torch.Generator().manual_seed(seed)
    r, v, last, final = (torch.randn(T, B, generator=g), torch.randn(T, B, generator=g),
                         torch.randn(B, generator=g), torch.randn(T, B, generator=g))
    term, trunc = torch.zeros(T, B), torch.zeros(T, B)
    for _ in range(2):
        term[torch.randint(T, (1,), generator=g), torch.randint(B, (1,), generator=g)] = 1.0
        trunc[torch.randint(T, (1,), generator=g), torch.randint(B, (1,), generator=g)] = 1.0
    term[T // 2, 0] = trunc[T // 2, 0] = 1.0
    return r, v, term, trunc, last, final


def check_gae_from_bootstraps(fn, seeds=(0,)) -> bool:
    """Exercise 1: ``fn(rewards, values, bootstraps, dones, gamma, lam)`` = GAE written with one ``dones``
    mask and the bootstrap value of every step already chosen (``V(s_t+1)`` while the episode goes on,
    ``V(s_final)`` after a truncation, 0 after a termination); it must give what
    :func:`lstm_rl_lib.ppo.compute_gae` gives on the same rollout written with two flags."""
    cases, two_flags = [], {}
    for seed in seeds:
        r, v, term, trunc, last, final = _rollout(seed)
        done = torch.maximum(term, trunc)
        cut = trunc * (1 - term)
        boot = (1 - done) * torch.cat([v[1:], last[None]]) + cut * final
        for gamma, lam in ((0.99, 0.95), (0.9, 1.0)):
            description = f"seed {seed}, gamma {gamma}, lambda {lam}"
            cases.append((description, (r, v, boot, done, gamma, lam)))
            two_flags[description] = ppo.compute_gae(r, v, term, trunc, last, final, gamma, lam)[0]
    expected = iter(two_flags.values())
    return check_function("GAE from bootstraps", fn, lambda *args: next(expected), cases, atol=1e-5, rtol=1e-5,
                          output_names=("advantages",))


def _clipped_value_loss(values, old_values, returns, clip):
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2).mean()


def check_clipped_value_loss(fn, seed: int = 1, clips=(0.2,)) -> bool:
    """Exercise 2: ``fn(values, old_values, returns, clip)`` = PPO's clipped value loss,
    ``0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2))``."""
    g = torch.Generator().manual_seed(seed)
    old = torch.randn(64, generator=g)
    ret = old + torch.randn(64, generator=g)
    cases = []
    for clip in clips:
        cases += [(f"values unchanged, clip {clip}", (old.clone(), old, ret, clip)),
                  (f"small moves, clip {clip}", (old + 0.05 * torch.randn(64, generator=g), old, ret, clip)),
                  (f"large moves, clip {clip}", (old + 2 * torch.randn(64, generator=g), old, ret, clip))]
    return check_function("clipped value loss", fn, _clipped_value_loss, cases, atol=1e-6, rtol=1e-6,
                          output_names=("loss",))


def check_surrogate_gradient(fn, seed: int = 2, clip: float = 0.2) -> bool:
    """Exercise 3: ``fn(ratio, advantage, clip)`` = the derivative, per step, of PPO's objective
    ``min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)`` with respect to the ratio (compared with autograd)."""
    g = torch.Generator().manual_seed(seed)
    ratio = torch.cat([torch.tensor([0.5, 0.95, 1.0, 1.05, 1.5, 0.5, 0.95, 1.0, 1.05, 1.5]),
                       torch.rand(54, generator=g) * 1.5 + 0.25])
    adv = torch.cat([torch.tensor([1.0] * 5 + [-1.0] * 5), torch.randn(54, generator=g)])
    edge = ((ratio - (1 + clip)).abs() < 1e-3) | ((ratio - (1 - clip)).abs() < 1e-3)    # no kinks in the cases
    ratio, adv = ratio[~edge], adv[~edge]

    def reference(ratio, adv, clip):
        r = ratio.clone().requires_grad_(True)
        torch.min(r * adv, r.clamp(1 - clip, 1 + clip) * adv).sum().backward()
        return r.grad

    try:
        got = fn(ratio[:1], adv[:1], clip)
    except NotImplementedError:
        raise ExerciseFailed("surrogate gradient: not implemented yet (replace `raise NotImplementedError` with your code)") from None
    if not isinstance(got, torch.Tensor):
        raise ExerciseFailed(f"surrogate gradient: return a tensor shaped like ratio; got {type(got).__name__}")
    return check_function("surrogate gradient", fn, reference, [(f"{len(ratio)} steps, clip {clip}", (ratio, adv, clip))],
                          atol=1e-6, rtol=1e-6, output_names=("d objective / d ratio",))
