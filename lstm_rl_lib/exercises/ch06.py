"""Checks for the exercises of Chapter 6 (VAE + world model)."""
from __future__ import annotations

import torch

from .. import vae, world_model
from . import ExerciseFailed, check_function


def check_gaussian_kl(fn) -> bool:
    """Exercise 1: ``fn(mu, logvar)`` = ``KL(N(mu, exp(logvar)) || N(0, I))`` per row, ``(N,)``."""
    g = torch.Generator().manual_seed(0)
    cases = [("the prior itself (KL = 0)", (torch.zeros(3, 4), torch.zeros(3, 4))),
             ("unit variances, shifted means", (torch.randn(5, 2, generator=g), torch.zeros(5, 2))),
             ("random means and variances", (torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g))),
             ("one latent dimension", (torch.randn(4, 1, generator=g), 2 * torch.randn(4, 1, generator=g)))]
    return check_function("KL to the standard normal", fn, lambda m, lv: vae.gaussian_kl(m, lv), cases,
                          atol=1e-5, rtol=1e-5, output_names=("kl",))


def check_reparameterise(fn) -> bool:
    """Exercise 2: ``fn(mu, logvar, eps)`` = the reparameterised sample ``mu + sigma * eps``; the check also
    asks that the gradient of the sample reaches ``mu`` and ``logvar``."""
    g = torch.Generator().manual_seed(1)
    mu, logvar, eps = (torch.randn(4, 3, generator=g) for _ in range(3))
    cases = [("random", (mu, logvar, eps)), ("zero noise gives the mean", (mu, logvar, torch.zeros_like(eps))),
             ("very small variance", (mu, torch.full_like(logvar, -8.0), eps))]
    check_function("reparameterisation", lambda m, lv, e: torch.as_tensor(fn(m, lv, e)).detach(),
                   lambda m, lv, e: m + torch.exp(0.5 * lv) * e, cases, atol=1e-6, rtol=1e-6, output_names=("z",))
    a, b = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    out = fn(a, b, eps)
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        raise ExerciseFailed("reparameterisation: right values, but the sample carries no gradient; build it from "
                             "mu and logvar with torch operations (no .detach(), no NumPy)")
    out.sum().backward()
    if a.grad is None or b.grad is None or not torch.allclose(b.grad, 0.5 * torch.exp(0.5 * logvar) * eps, atol=1e-6):
        raise ExerciseFailed("reparameterisation: the gradient does not reach both mu and logvar as it should")
    print("PASS  reparameterisation: gradients reach mu and logvar")
    return True


def check_mdn_nll(fn) -> bool:
    """Exercise 3: ``fn(logpi, mu, logsigma, target)`` = minus the log-density of ``target`` ``(T, B, D)``
    under one mixture of ``K`` Gaussians per dimension (parameters ``(T, B, D, K)``, ``logpi``
    normalised over K), summed over ``D``: ``(T, B)``."""
    g = torch.Generator().manual_seed(2)

    def make(T, B, D, K, spread=0.3):
        logpi = torch.log_softmax(torch.randn(T, B, D, K, generator=g), -1)
        return (logpi, torch.randn(T, B, D, K, generator=g), spread * torch.randn(T, B, D, K, generator=g),
                torch.randn(T, B, D, generator=g))

    cases = [("one component (a Gaussian)", make(3, 2, 4, 1)), ("five components", make(3, 2, 4, 5)),
             ("sharp components (small sigmas: work in log space)", make(2, 2, 3, 5, spread=4.0))]
    return check_function("mixture density NLL", fn, world_model.mdn_nll, cases, atol=1e-4, rtol=1e-5,
                          output_names=("nll",))
