"""V of World Models: CartPole drawn as pixels, and a convolutional variational autoencoder.

Chapter 6 teaches this module (Ha & Schmidhuber, 2018, *World Models*; Kingma & Welling, 2014,
*Auto-Encoding Variational Bayes*). What is here, top to bottom: frames of CartPole visited by a
random policy (drawn by :func:`lstm_rl_lib.envs.render_cartpole`, fast enough to make every frame
of a training run; no data set is downloaded); the VAE (encoder to a Gaussian posterior over a
latent ``z``, the reparameterisation trick, a decoder back to pixel logits); the ELBO with a
``beta`` weight on the KL term; saving and loading.

The ELBO of one frame ``x`` (to be maximised; the loss is its negative)::

    ELBO(x) = E_{q(z|x)}[log p(x|z)] - beta * KL(q(z|x) || N(0, I))
    KL(N(mu, sigma^2) || N(0, 1)) = 0.5 * sum(mu^2 + sigma^2 - log sigma^2 - 1)

with ``p(x|z)`` a Bernoulli per pixel (the frames are nearly black and white), so the
reconstruction term is minus the binary cross-entropy summed over pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .envs import render_cartpole
from .nets import SavedWithConfig

# ----------------------------------------------------------------------------------------------
# Frames (drawn by lstm_rl_lib.envs.render_cartpole)
# ----------------------------------------------------------------------------------------------
def random_cartpole_frames(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` frames of CartPole states seen by a random policy (``(n, size, size)``, float32).

    Episodes of CartPole-v1 with uniformly random actions, all steps kept, so the frames show the
    positions and angles the random policy visits (Chapter 6's training set for V)."""
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(seed)
    xs, thetas = [], []
    obs, _ = env.reset(seed=seed)
    while len(xs) < n:
        xs.append(obs[0]); thetas.append(obs[2])
        obs, _, term, trunc, _ = env.step(int(rng.integers(2)))
        if term or trunc:
            obs, _ = env.reset(seed=int(rng.integers(1 << 31)))
    env.close()
    return render_cartpole(np.array(xs), np.array(thetas), size)


# ----------------------------------------------------------------------------------------------
# The VAE
# ----------------------------------------------------------------------------------------------
@dataclass
class VAEConfig:
    """``size``: frame side in pixels (a multiple of 16); ``latent``: dimension of ``z`` (World
    Models uses 32); ``channels``: width of the first convolution (doubled at each of 4 layers);
    ``beta``: weight of the KL term in the loss."""
    size: int = 64
    latent: int = 32
    channels: int = 16
    beta: float = 1.0

    def __post_init__(self):
        if self.size % 16 or self.size < 16:
            raise ValueError(f"size must be a multiple of 16 (four stride-2 convolutions); got {self.size}")
        if self.latent < 1 or self.channels < 1:
            raise ValueError(f"latent and channels must be positive; got {self.latent} and {self.channels}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0; got {self.beta}")


class ConvVAE(SavedWithConfig, nn.Module):
    """Frames ``(N, 1, S, S)`` -> ``q(z|x) = N(mu, diag(exp(logvar)))`` -> ``z`` -> pixel logits ``(N, 1, S, S)``."""
    config_class = VAEConfig


    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = config = config or VAEConfig()
        c, s = config.channels, config.size // 16
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c, 4, 2, 1), nn.ReLU(), nn.Conv2d(c, 2 * c, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1), nn.ReLU(), nn.Conv2d(4 * c, 8 * c, 4, 2, 1), nn.ReLU(), nn.Flatten())
        self.to_stats = nn.Linear(8 * c * s * s, 2 * config.latent)
        self.from_z = nn.Linear(config.latent, 8 * c * s * s)
        self.decoder = nn.Sequential(
            nn.Unflatten(1, (8 * c, s, s)), nn.ReLU(),
            nn.ConvTranspose2d(8 * c, 4 * c, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(c, 1, 4, 2, 1))

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        S = self.config.size
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, S, S):
            raise ValueError(f"frames must have shape (N, {S}, {S}) or (N, 1, {S}, {S}); got {tuple(x.shape)}")
        return x

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mu, logvar`` of ``q(z|x)``, each ``(N, latent)``."""
        mu, logvar = self.to_stats(self.encoder(self._check(x))).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 10.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel logits ``(N, 1, S, S)`` of ``p(x|z)``; ``torch.sigmoid`` gives the frame."""
        return self.decoder(self.from_z(z))

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``z = mu + sigma * eps`` with ``eps ~ N(0, I)``: a sample whose gradient reaches ``mu`` and ``logvar``."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(self, x: torch.Tensor, sample: bool = True):
        """``logits, mu, logvar, z``; ``sample=False`` decodes the mean ``z = mu``."""
        mu, logvar = self.encode(x)
        z = self.reparameterise(mu, logvar) if sample else mu
        return self.decode(z), mu, logvar, z



# ----------------------------------------------------------------------------------------------
# The loss
# ----------------------------------------------------------------------------------------------
def gaussian_kl(mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor | None = None,
                logvar2: torch.Tensor | None = None) -> torch.Tensor:
    """``KL(N(mu1, e^logvar1) || N(mu2, e^logvar2))`` for diagonal Gaussians, summed over the last dim.

    Without ``mu2, logvar2``: against the standard normal, ``0.5 * sum(mu^2 + sigma^2 - log sigma^2 - 1)``."""
    if mu2 is None:
        mu2, logvar2 = torch.zeros_like(mu1), torch.zeros_like(logvar1)
    return 0.5 * (logvar2 - logvar1 + (torch.exp(logvar1) + (mu1 - mu2) ** 2) / torch.exp(logvar2) - 1.0).sum(-1)


def elbo_terms(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per frame: the reconstruction loss ``-log p(x|z)`` (Bernoulli: binary cross-entropy summed over
    pixels) and ``KL(q(z|x) || N(0, I))``; each ``(N,)``. The ELBO is ``-(recon + kl)``."""
    x = x.reshape(logits.shape)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(-1)
    return recon, gaussian_kl(mu, logvar)


def vae_loss(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float = 1.0):
    """``mean(recon + beta * kl)`` over the batch (the negative beta-ELBO), and the two terms' means."""
    recon, kl = elbo_terms(x, logits, mu, logvar)
    return (recon + beta * kl).mean(), {"recon": recon.mean().detach(), "kl": kl.mean().detach()}
