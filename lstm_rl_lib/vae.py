"""V of World Models: CartPole drawn as pixels, and a convolutional variational autoencoder.

Chapter 6 teaches this module (Ha & Schmidhuber, 2018, *World Models*; Kingma & Welling, 2014,
*Auto-Encoding Variational Bayes*). What is here, top to bottom: episodes of CartPole played by a
random policy (:func:`explore_cartpole`; their frames are drawn by
:func:`lstm_rl_lib.envs.render_cartpole`, fast enough to draw every frame of a training run; no data
set is downloaded); the VAE (encoder to a Gaussian posterior over a
latent ``z``, the reparameterisation trick, a decoder back to pixel logits); the ELBO with a
``beta`` weight on the KL term; training.

The ELBO of one frame ``x`` (to be maximised; the loss is its negative)::

    ELBO(x) = E_{q(z|x)}[log p(x|z)] - beta * KL(q(z|x) || N(0, I))
    KL(N(mu, sigma^2) || N(0, 1)) = 0.5 * sum(mu^2 + sigma^2 - log sigma^2 - 1)

with ``p(x|z)`` a Bernoulli per pixel (the frames are black and white but for their anti-aliased
edges, and the cross-entropy accepts grey targets), so the reconstruction term is minus the binary
cross-entropy summed over pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .envs import render_cartpole
from .agent import SavedWithConfig
from .runtime import noise

# ----------------------------------------------------------------------------------------------
# Frames (drawn by lstm_rl_lib.envs.render_cartpole)
# ----------------------------------------------------------------------------------------------
@dataclass
class Episodes:
    """Episodes of CartPole: ``states[i]`` ``(L_i + 1, 4)`` (the states seen, the last one after the final
    action), ``actions[i]`` ``(L_i,)``, ``terminated[i]``: the episode ended because the pole fell or the
    cart left the track (``False``: it was cut by the end of the collection)."""
    states: list
    actions: list
    terminated: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def steps(self) -> int:
        return int(sum(len(a) for a in self.actions))

    def all_states(self) -> np.ndarray:
        return np.concatenate(self.states)

    def frames(self, size: int = 64) -> np.ndarray:
        """Every state of every episode drawn as a frame: ``(sum(L_i + 1), size, size)``."""
        s = self.all_states()
        return render_cartpole(s[:, 0], s[:, 2], size)


SPREAD_LOW = np.array([-2.0, -1.0, -0.15, -1.0])    # x, x_dot, theta, theta_dot of spread-out starts
SPREAD_HIGH = -SPREAD_LOW


def explore_cartpole(n_envs: int = 64, steps: int = 400, seed: int = 0, spread: bool = True) -> Episodes:
    """Episodes of CartPole-v1 played by a **random policy** (the data of V and M, as in World Models).

    ``n_envs`` environments for ``steps`` steps each (Gymnasium's vectorised CartPole). With
    ``spread=True`` every episode starts from a state drawn uniformly from ``SPREAD_LOW..SPREAD_HIGH``
    (the cart anywhere on the track, the pole tilted and moving); with ``spread=False`` from CartPole's
    own starts (every number within +-0.05), where a random policy's episodes stay near the centre of
    the track. ``seed`` fixes everything."""
    import gymnasium as gym

    if n_envs < 1 or steps < 1:
        raise ValueError(f"n_envs and steps must be positive; got {n_envs} and {steps}")
    venv = gym.make_vec("CartPole-v1", num_envs=n_envs, vectorization_mode="vector_entry_point")
    venv.reset(seed=seed)
    cp, rng = venv.unwrapped, np.random.default_rng(seed)

    def restart(idx):
        if spread:
            cp.state[:, idx] = rng.uniform(SPREAD_LOW[:, None], SPREAD_HIGH[:, None], (4, len(idx)))
        else:
            cp.state[:, idx] = rng.uniform(-0.05, 0.05, (4, len(idx)))
        cp.steps[idx], cp.prev_done[idx] = 0, False                   # restarted here, not by autoreset

    restart(np.arange(n_envs))
    states = [[cp.state[:, i].copy()] for i in range(n_envs)]
    actions = [[] for _ in range(n_envs)]
    out = Episodes([], [], [])
    for t in range(steps):
        a = rng.integers(2, size=n_envs)
        obs, _, term, trunc, _ = venv.step(a)
        for i in range(n_envs):
            actions[i].append(int(a[i]))
            states[i].append(obs[i].astype(np.float64))
            if term[i] or trunc[i] or t == steps - 1:
                out.states.append(np.array(states[i], np.float32))
                out.actions.append(np.array(actions[i], np.int64))
                out.terminated.append(bool(term[i]))
                actions[i] = []
        done = np.flatnonzero(term | trunc)
        if len(done):
            restart(done)
            for i in done:
                states[i] = [cp.state[:, i].copy()]
    venv.close()
    out.terminated = np.array(out.terminated, bool)
    return out


# ----------------------------------------------------------------------------------------------
# The VAE
# ----------------------------------------------------------------------------------------------
@dataclass
class VAEConfig:
    """``size``: frame side in pixels (a multiple of 16); ``latent``: dimension of ``z`` (World
    Models uses 32); ``channels``: width of the first convolution (doubled at each of 4 layers; World
    Models uses 32, CartPole's two moving shapes need far fewer, and the encoder runs at every step
    of every controller's episode);
    ``beta``: weight of the KL term in the loss."""
    size: int = 64
    latent: int = 32
    channels: int = 8
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
        return mu + torch.exp(0.5 * logvar) * noise(mu, generator)

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


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def train_vae(frames: np.ndarray, config: VAEConfig | None = None, epochs: int = 6, batch_size: int = 128,
              lr: float = 1e-3, holdout: float = 0.1, seed: int = 0, progress: bool = True,
              device: str | torch.device | None = None) -> dict:
    """Adam on the negative beta-ELBO over ``frames`` ``(N, S, S)``; a random ``holdout`` fraction is
    kept aside and scored after every epoch with ``z = mu`` (the posterior mean, as the controller uses
    it). Returns ``{"model", "history": per epoch the held-out "recon" (nats per frame), "kl" (nats),
    "mse" (mean squared pixel error), "seconds", "interrupted"}``; Ctrl-C keeps the model trained so far.
    ``device``: where to train (default: CUDA when present)."""
    import time

    from .progress import TrainingProgress
    from .runtime import get_device

    device = torch.device(device) if device is not None else get_device()

    config = config or VAEConfig()
    x = torch.as_tensor(np.asarray(frames, np.float32))
    if x.dim() != 3 or tuple(x.shape[1:]) != (config.size, config.size):
        raise ValueError(f"frames must have shape (N, {config.size}, {config.size}); got {tuple(x.shape)}")
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be a fraction in (0, 1); got {holdout}")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = ConvVAE(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x = x.to(device)
    order = torch.randperm(len(x), generator=g).to(device)
    n_test = max(1, int(holdout * len(x)))
    test, train = x[order[:n_test]], x[order[n_test:]]
    history = {"epoch": [], "recon": [], "kl": [], "mse": [], "seconds": []}
    start = time.perf_counter()
    with TrainingProgress(epochs, desc="VAE", disable=not progress) as bar:
        for epoch in bar:
            model.train()
            perm = torch.randperm(len(train), generator=g).to(device)
            for i in range(0, len(train), batch_size):
                xb = train[perm[i:i + batch_size]]
                mu, logvar = model.encode(xb)
                logits = model.decode(model.reparameterise(mu, logvar, g))
                loss, _ = vae_loss(xb, logits, mu, logvar, config.beta)
                opt.zero_grad()
                loss.backward()
                opt.step()
            scores = evaluate_vae(model, test)
            for k, v in scores.items():
                history[k].append(v)
            history["epoch"].append(epoch + 1)
            history["seconds"].append(time.perf_counter() - start)
            bar.set_postfix(recon=f"{scores['recon']:.1f}", kl=f"{scores['kl']:.1f}")
    model.eval()
    return {"model": model, "history": history, "interrupted": bar.interrupted}


@torch.no_grad()
def evaluate_vae(model: ConvVAE, frames, batch_size: int = 1024) -> dict:
    """Mean over ``frames`` of the reconstruction loss (nats per frame), the KL (nats) and the squared
    pixel error, decoding the posterior mean."""
    x = torch.as_tensor(np.asarray(frames, np.float32))
    device = next(model.parameters()).device
    totals = {"recon": 0.0, "kl": 0.0, "mse": 0.0}
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device)
        logits, mu, logvar, _ = model(xb, sample=False)
        recon, kl = elbo_terms(xb, logits, mu, logvar)
        totals["recon"] += recon.sum().item()
        totals["kl"] += kl.sum().item()
        totals["mse"] += ((torch.sigmoid(logits).reshape(xb.shape) - xb) ** 2).flatten(1).mean(1).sum().item()
    return {k: v / len(x) for k, v in totals.items()}


@torch.no_grad()
def encode_frames(model: ConvVAE, frames, batch_size: int = 1024) -> np.ndarray:
    """Posterior means ``mu`` ``(N, latent)`` of ``frames`` ``(N, S, S)``."""
    x = torch.as_tensor(np.asarray(frames, np.float32))
    device = next(model.parameters()).device
    return torch.cat([model.encode(x[i:i + batch_size].to(device))[0].cpu()
                      for i in range(0, len(x), batch_size)]).numpy()


@torch.no_grad()
def decode_frames(model: ConvVAE, z, batch_size: int = 1024) -> np.ndarray:
    """Frames ``(N, S, S)`` in ``[0, 1]`` (the decoder's pixel probabilities) for codes ``z`` ``(N, latent)``;
    ``decode_frames(model, encode_frames(model, x))`` is V's reconstruction of ``x``."""
    z = torch.as_tensor(np.asarray(z, np.float32))
    device = next(model.parameters()).device
    return torch.cat([torch.sigmoid(model.decode(z[i:i + batch_size].to(device))).squeeze(1).cpu()
                      for i in range(0, len(z), batch_size)]).numpy()


@torch.no_grad()
def kl_per_dimension(model: ConvVAE, frames, batch_size: int = 1024) -> np.ndarray:
    """Mean over ``frames`` of ``KL(q(z_i|x) || N(0, 1))`` for each latent dimension ``i``: ``(latent,)`` nats.
    A dimension near 0 carries nothing (it has collapsed onto the prior); the sum is the KL term."""
    x = torch.as_tensor(np.asarray(frames, np.float32))
    device = next(model.parameters()).device
    total = 0.0
    for i in range(0, len(x), batch_size):
        mu, logvar = model.encode(x[i:i + batch_size].to(device))
        total = total + gaussian_kl(mu[..., None], logvar[..., None]).sum(0)
    return (total / len(x)).cpu().numpy()

