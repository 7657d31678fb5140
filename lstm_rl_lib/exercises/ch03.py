"""Checks for the exercises of Chapter 3 (LSTM-REINFORCE)."""
from __future__ import annotations

import torch

from .. import reinforce
from . import check_function


def _masks():
    return torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 0, 0]], dtype=torch.float32)


def check_returns_to_go(fn) -> bool:
    """Exercise 1: ``fn(rewards (T, B), mask (T, B), gamma) -> (T, B)``, zero on padded steps."""
    g = torch.Generator().manual_seed(0)
    cases = [("one episode, gamma 1", (torch.tensor([[1.0], [2.0], [3.0]]), torch.ones(3, 1), 1.0)),
             ("T-maze: reward only at the end", (torch.tensor([[0.0], [0.0], [4.0]]), torch.ones(3, 1), 0.9)),
             ("three episodes of lengths 4, 2, 1, padded", (torch.randn(4, 3, generator=g) * _masks(), _masks(), 0.95))]
    return check_function("returns-to-go", fn, lambda r, m, gamma: reinforce.returns_to_go(r, m, gamma), cases,
                          atol=1e-6, rtol=1e-6, output_names=("returns",))


def check_policy_gradient_loss(fn) -> bool:
    """Exercise 2: ``fn(logp, returns, values, mask)`` = ``-mean over real steps of logp * (returns - values)``."""
    g = torch.Generator().manual_seed(1)
    logp, returns, values = (torch.randn(4, 3, generator=g) for _ in range(3))

    def reference(logp, returns, values, mask):
        return reinforce.masked_mean(-logp * (returns - values), mask)

    cases = [("no padding", (logp, returns, values, torch.ones(4, 3))),
             ("with padding (the padded steps must not count)", (logp, returns, values, _masks()))]
    return check_function("policy-gradient loss with a baseline", fn, reference, cases, atol=1e-6, rtol=1e-6,
                          output_names=("loss",))


def check_entropy(fn) -> bool:
    """Exercise 3: ``fn(logits (..., A)) -> (...)``, the entropy of the categorical distribution, in nats."""
    g = torch.Generator().manual_seed(2)
    cases = [("uniform over 4 actions", (torch.zeros(4),)), ("a batch", (torch.randn(5, 3, generator=g),)),
             ("nearly deterministic (large logits)", (torch.tensor([[50.0, 0.0, -50.0]]),))]
    return check_function("categorical entropy", fn, lambda logits: torch.distributions.Categorical(logits=logits).entropy(),
                          cases, atol=1e-6, rtol=1e-5, output_names=("entropy",))
