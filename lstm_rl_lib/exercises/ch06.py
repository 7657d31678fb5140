"""Checks for the exercises of Chapter 6 (VAE + world model)."""
from __future__ import annotations

import math

import torch

from .. import world_model
from . import check_function


def _gaussian_recon(x, mean, log_sigma):
    z = (x - mean) / log_sigma.exp()
    return (0.5 * z ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)).flatten(1).sum(-1)


def check_gaussian_recon(fn, seed: int = 0) -> bool:
    """Exercise 1: ``fn(x, mean, log_sigma)`` = ``-log N(x; mean, sigma^2)`` summed over every dimension
    but the first (one number per frame), ``log_sigma`` a tensor broadcastable to ``x``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(4, 1, 8, 8, generator=g)
    mean = torch.rand(4, 1, 8, 8, generator=g)
    cases = [("sigma = 1: half the squared error plus a constant", (x, mean, torch.zeros(()))),
             ("one sigma per pixel", (x, mean, 0.5 * torch.randn(4, 1, 8, 8, generator=g))),
             ("a small shared sigma", (x, mean, torch.full((), -3.0)))]
    return check_function("Gaussian reconstruction loss", fn, _gaussian_recon, cases, atol=1e-4, rtol=1e-5,
                          output_names=("nll per frame",))


def _mixture_moments(logpi, mu, logsigma):
    pi = logpi.exp()
    mean = (pi * mu).sum(-1)
    return mean, (pi * (torch.exp(2 * logsigma) + mu ** 2)).sum(-1) - mean ** 2


def check_mixture_moments(fn, seed: int = 1, K=(1, 5)) -> bool:
    """Exercise 2: ``fn(logpi, mu, logsigma)`` (``(..., K)``, ``logpi`` normalised over K) = the mean and
    the variance of the mixture of Gaussians, each ``(...)``."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for k in K:
        logpi = torch.log_softmax(torch.randn(3, 2, 4, k, generator=g), -1)
        cases.append((f"K = {k}", (logpi, torch.randn(3, 2, 4, k, generator=g), 0.5 * torch.randn(3, 2, 4, k, generator=g))))
    return check_function("mixture moments", fn, _mixture_moments, cases, atol=1e-5, rtol=1e-5,
                          output_names=("mean", "variance"))


def check_mdn_nll(fn, seed: int = 2) -> bool:
    """Exercise 3: ``fn(logpi, mu, logsigma, target)`` = minus the log-density of ``target`` ``(T, B, D)``
    under one mixture of ``K`` Gaussians per dimension (parameters ``(T, B, D, K)``, ``logpi``
    normalised over K), summed over ``D``: ``(T, B)``."""
    g = torch.Generator().manual_seed(seed)

    def make(T, B, D, K, spread=0.3):
        logpi = torch.log_softmax(torch.randn(T, B, D, K, generator=g), -1)
        return (logpi, torch.randn(T, B, D, K, generator=g), spread * torch.randn(T, B, D, K, generator=g),
                torch.randn(T, B, D, generator=g))

    cases = [("one component (a Gaussian)", make(3, 2, 4, 1)), ("five components", make(3, 2, 4, 5)),
             ("sharp components (small sigmas: work in log space)", make(2, 2, 3, 5, spread=4.0))]
    return check_function("mixture density NLL", fn, world_model.mdn_nll, cases, atol=1e-4, rtol=1e-5,
                          output_names=("nll",))
