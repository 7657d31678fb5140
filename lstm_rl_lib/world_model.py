"""M of World Models: an LSTM over (z_t, a_t) that predicts z_{t+1} (a mixture density) and the episode's end.

Chapter 6 teaches this module (Ha & Schmidhuber, 2018; the mixture density network of Bishop,
1994, on an LSTM as in Graves, 2013). Input at step t: the VAE's latent ``z_t`` and the action
``a_t`` (one-hot). Output: for **each latent dimension** ``i`` a mixture of ``K`` Gaussians,
``p(z_{t+1,i}) = sum_k pi_{k,i} N(mu_{k,i}, sigma_{k,i}^2)`` (World Models' factorisation: one
mixture per dimension), and the logit of "the episode ends after this step". The LSTM's hidden
state ``h_t`` is the memory that the controller reads beside ``z_t``.

Shapes are time-major as everywhere in the library: ``z`` ``(T, B, latent)``, ``actions`` ``(T, B)``,
state ``(h, c)`` each ``(1, B, hidden)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import torch
from torch import nn
from torch.nn import functional as F

from .nets import SavedWithConfig

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class MDNRNNConfig:
    """``latent``: size of z; ``n_actions``: discrete actions; ``hidden``: LSTM units (World
    Models: 256); ``mixtures``: Gaussians per latent dimension (World Models: 5)."""
    latent: int = 32
    n_actions: int = 2
    hidden: int = 128
    mixtures: int = 5

    def __post_init__(self):
        for name in ("latent", "n_actions", "hidden", "mixtures"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)}")


class MDNRNN(SavedWithConfig, nn.Module):
    """``(logpi, mu, logsigma, done_logit), state = model(z, actions, state)``.

    ``logpi``, ``mu``, ``logsigma``: ``(T, B, latent, K)`` (``logpi`` normalised over K);
    ``done_logit``: ``(T, B)``."""
    config_class = MDNRNNConfig


    def __init__(self, config: MDNRNNConfig | None = None):
        super().__init__()
        self.config = c = config or MDNRNNConfig()
        self.lstm = nn.LSTM(c.latent + c.n_actions, c.hidden)
        self.mdn = nn.Linear(c.hidden, 3 * c.latent * c.mixtures)
        self.done = nn.Linear(c.hidden, 1)

    def initial_state(self, batch_size: int):
        p = next(self.parameters())
        z = torch.zeros(1, batch_size, self.config.hidden, device=p.device, dtype=p.dtype)
        return z, z.clone()

    def forward(self, z: torch.Tensor, actions: torch.Tensor, state=None):
        c = self.config
        if z.dim() != 3 or z.shape[-1] != c.latent:
            raise ValueError(f"z must have shape (T, B, latent={c.latent}); got {tuple(z.shape)}")
        if tuple(actions.shape) != tuple(z.shape[:2]):
            raise ValueError(f"actions must have shape (T, B) = {tuple(z.shape[:2])}; got {tuple(actions.shape)}")
        x = torch.cat([z, F.one_hot(actions.long(), c.n_actions).to(z.dtype)], dim=-1)
        out, state = self.lstm(x, state if state is not None else self.initial_state(z.shape[1]))
        T, B = z.shape[:2]
        params = self.mdn(out).view(T, B, c.latent, 3, c.mixtures)
        logpi = F.log_softmax(params[..., 0, :], dim=-1)
        mu, logsigma = params[..., 1, :], params[..., 2, :].clamp(-7.0, 5.0)
        return (logpi, mu, logsigma, self.done(out).squeeze(-1)), state



def mdn_nll(logpi: torch.Tensor, mu: torch.Tensor, logsigma: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-log p(target)`` under the per-dimension mixtures, summed over latent dimensions: ``(T, B)``.

    ``log p(z_i) = logsumexp_k [log pi_k + log N(z_i; mu_k, sigma_k)]``, computed in log space so
    that a sharp component does not underflow."""
    log_normal = -0.5 * ((target.unsqueeze(-1) - mu) / logsigma.exp()) ** 2 - logsigma - LOG_SQRT_2PI
    return -torch.logsumexp(logpi + log_normal, dim=-1).sum(-1)


def world_model_loss(outputs, next_z: torch.Tensor, dones: torch.Tensor, mask: torch.Tensor,
                     done_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """Mean over real steps (``mask`` ``(T, B)``, 1 = real) of the next-z NLL (per latent dimension,
    so that the number is comparable across latent sizes) plus ``done_weight`` times the end-of-episode
    binary cross-entropy. ``next_z`` ``(T, B, latent)``, ``dones`` ``(T, B)`` in {0, 1}."""
    logpi, mu, logsigma, done_logit = outputs
    steps = mask.sum().clamp(min=1.0)
    nll = (mdn_nll(logpi, mu, logsigma, next_z) * mask).sum() / steps / next_z.shape[-1]
    bce = (F.binary_cross_entropy_with_logits(done_logit, dones.to(done_logit.dtype), reduction="none") * mask).sum() / steps
    return nll + done_weight * bce, {"z_nll": nll.detach(), "done_bce": bce.detach()}


def sample_next_z(logpi: torch.Tensor, mu: torch.Tensor, logsigma: torch.Tensor, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``z_{t+1}`` from the mixtures with World Models' **temperature** ``tau``: mixture weights
    ``softmax(log pi / tau)`` and standard deviations ``sigma * sqrt(tau)``. ``tau > 1`` makes the dream
    noisier (harder to exploit), ``tau -> 0`` returns the mean of the most likely component."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0; got {temperature}")
    if temperature == 0:
        best = logpi.argmax(-1, keepdim=True)
        return mu.gather(-1, best).squeeze(-1)
    weights = F.softmax(logpi / temperature, dim=-1)
    flat = weights.reshape(-1, weights.shape[-1])
    k = torch.multinomial(flat, 1, generator=generator).view(*weights.shape[:-1], 1)
    mean, log_std = mu.gather(-1, k).squeeze(-1), logsigma.gather(-1, k).squeeze(-1)
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + log_std.exp() * math.sqrt(temperature) * eps


# ----------------------------------------------------------------------------------------------
# C: a linear controller on [z_t, h_t], and rollouts in the real (pixel) environment
# ----------------------------------------------------------------------------------------------
class LinearController:
    """``a_t = argmax(W [z_t, h_t] + b)`` (World Models' C: a single linear layer), or on ``z_t``
    alone with ``use_memory=False`` (the memory-less baseline). Its parameters are one flat vector,
    the search space of CMA-ES: ``n_actions * (in_dim + 1)`` numbers."""

    def __init__(self, latent: int, hidden: int, n_actions: int, use_memory: bool = True):
        self.latent, self.hidden, self.n_actions, self.use_memory = latent, hidden, n_actions, use_memory
        self.in_dim = latent + (hidden if use_memory else 0)
        self.n_params = n_actions * (self.in_dim + 1)

    def act(self, params, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Actions ``(B,)`` for latents ``z`` ``(B, latent)`` and M's hidden states ``h`` ``(B, hidden)``."""
        params = torch.as_tensor(params, dtype=z.dtype, device=z.device)
        if params.numel() != self.n_params:
            raise ValueError(f"the controller has {self.n_params} parameters; got a vector of {params.numel()}")
        W = params[: self.n_actions * self.in_dim].view(self.n_actions, self.in_dim)
        b = params[self.n_actions * self.in_dim:]
        x = torch.cat([z, h], dim=-1) if self.use_memory else z
        return (x @ W.T + b).argmax(-1)


@torch.no_grad()
def rollout(vae, model: MDNRNN, controller: LinearController, params, seeds, env_name: str = "cartpole-pixels",
            max_steps: int = 500) -> np.ndarray:
    """Returns of one episode per seed in the real environment, all played at once.

    Each step: the frame is encoded to ``z_t`` (the posterior mean), the controller acts on
    ``[z_t, h_t]``, then M reads ``(z_t, a_t)`` to give ``h_{t+1}`` (as in World Models: ``h_t`` has
    seen everything before step t). An environment whose episode ended is no longer stepped; its
    last frame stays in the batch and its actions are ignored."""
    from .envs import make_env

    envs = [make_env(env_name) for _ in seeds]
    frames = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, seeds)])
    device = next(model.parameters()).device
    state = model.initial_state(len(envs))
    live = np.ones(len(envs), bool)
    returns = np.zeros(len(envs))
    for _ in range(max_steps):
        z, _ = vae.encode(torch.as_tensor(frames, device=device))
        actions = controller.act(params, z, state[0][0])
        _, state = model(z[None], actions[None], state)
        for i, (env, a) in enumerate(zip(envs, actions.tolist())):
            if not live[i]:
                continue
            frames[i], r, term, trunc, _ = env.step(a)
            returns[i] += r
            live[i] = not (term or trunc)
        if not live.any():
            break
    for env in envs:
        env.close()
    return returns


def train_controller(vae, model: MDNRNN, controller: LinearController, generations: int = 20, popsize: int = 16,
                     episodes: int = 4, sigma0: float = 0.5, seed: int = 0, progress: bool = True) -> dict:
    """CMA-ES (Hansen, 2016; the ``cma`` package) on the controller's parameters, as in World Models.

    Each generation samples ``popsize`` parameter vectors; each is scored by its mean return over
    ``episodes`` real episodes (seeds that change every generation and are shared by the whole
    population, so that candidates are compared on the same starts). Returns ``{"params": the best
    mean of the search distribution, "history": per generation the population's mean and best
    fitness, "interrupted": bool}``; Ctrl-C stops after the current generation's scores."""
    import cma

    from .progress import TrainingProgress

    es = cma.CMAEvolutionStrategy(np.zeros(controller.n_params), sigma0,
                                  {"popsize": popsize, "seed": seed + 1, "verbose": -9})
    history = {"generation": [], "mean_return": [], "best_return": []}
    with TrainingProgress(generations, desc=f"CMA-ES ({'z, h' if controller.use_memory else 'z'})",
                          disable=not progress) as bar:
        for g in bar:
            candidates = es.ask()
            seeds = [seed * 1_000_000 + g * episodes + k for k in range(episodes)]
            scores = [rollout(vae, model, controller, p, seeds).mean() for p in candidates]
            es.tell(candidates, [-s for s in scores])
            history["generation"].append(g)
            history["mean_return"].append(float(np.mean(scores)))
            history["best_return"].append(float(np.max(scores)))
            bar.set_postfix(mean=f"{np.mean(scores):.1f}", best=f"{np.max(scores):.1f}")
    return {"params": np.array(es.result.xfavorite), "history": history, "interrupted": bar.interrupted}
