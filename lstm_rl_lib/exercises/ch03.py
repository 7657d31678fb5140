"""Checks for the exercises of Chapter 3 (LSTM-REINFORCE)."""
from __future__ import annotations

import torch

from .. import reinforce
from . import check_function


def _masks():
    return torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 0, 0]], dtype=torch.float32)


def check_score(fn, seed: int = 0, actions: int = 3) -> bool:
    """Exercise 1: ``fn(logits (N, A), actions (N,))`` = the gradient of ``log pi(a | logits)`` with respect to
    the logits, one row per sample, ``(N, A)`` (compared with autograd)."""
    g = torch.Generator().manual_seed(seed)

    def reference(logits, a):
        x = logits.clone().requires_grad_(True)
        torch.log_softmax(x, -1).gather(-1, a[:, None]).sum().backward()
        return x.grad

    logits = torch.randn(8, actions, generator=g)
    cases = [("uniform policy", (torch.zeros(4, actions), torch.arange(4) % actions)),
             ("random logits", (logits, torch.randint(actions, (8,), generator=g))),
             ("nearly deterministic", (30 * logits, torch.randint(actions, (8,), generator=g)))]
    return check_function("score function", fn, reference, cases, atol=1e-6, rtol=1e-5, output_names=("gradient",))


def check_leaked_value_gradient(fn, seed: int = 1) -> bool:
    """Exercise 2: ``fn(logp, mask)`` = the gradient of the policy loss ``-masked_mean(logp * (G - V))`` with
    respect to ``V`` when ``V`` is *not* detached, ``(T, B)`` (compared with autograd)."""
    g = torch.Generator().manual_seed(seed)

    def reference(logp, mask):
        values = torch.randn(logp.shape, generator=g).requires_grad_(True)
        returns = torch.randn(logp.shape, generator=g)
        reinforce.masked_mean(-logp * (returns - values), mask).backward()
        return values.grad

    logp = -torch.rand(4, 3, generator=g) * 2
    cases = [("no padding", (logp, torch.ones(4, 3))), ("with padding", (logp, _masks()))]
    return check_function("gradient into the values", fn, reference, cases, atol=1e-6, rtol=1e-6,
                          output_names=("dloss/dV",))


def check_entropy(fn, seed: int = 2) -> bool:
    """Exercise 3: ``fn(logits (..., A)) -> (...)``, the entropy of the categorical distribution, in nats."""
    g = torch.Generator().manual_seed(seed)
    cases = [("uniform over 4 actions", (torch.zeros(4),)), ("a batch", (torch.randn(5, 3, generator=g),)),
             ("nearly deterministic (large logits)", (torch.tensor([[50.0, 0.0, -50.0]]),))]
    return check_function("categorical entropy", fn, lambda logits: torch.distributions.Categorical(logits=logits).entropy(),
                          cases, atol=1e-6, rtol=1e-5, output_names=("entropy",))
