"""M of World Models: an LSTM over (z_t, a_t) that predicts z_{t+1} (a mixture density) and the episode's end.

Chapter 6 teaches this module (Ha & Schmidhuber, 2018; the mixture density network of Bishop,
1994, on an LSTM as in Graves, 2013). Input at step t: the VAE's latent ``z_t`` and the action
``a_t`` (one-hot). Output: for **each latent dimension** ``i`` a mixture of ``K`` Gaussians,
``p(z_{t+1,i}) = sum_k pi_{k,i} N(mu_{k,i}, sigma_{k,i}^2)`` (World Models' factorisation: one
mixture per dimension), and the logit of "the episode ends after this step". The LSTM's hidden
state ``h_t`` is the memory that the controller reads beside ``z_t``.

Shapes are time-major as everywhere in the library: ``z`` ``(T, B, latent)``, ``actions`` ``(T, B)``,
state ``(h, c)`` each ``(1, B, hidden)``.

Top to bottom: M (config, network, mixture NLL, loss, sampling with a temperature); its data
(:func:`sequences`: random-policy episodes encoded by V) and training (:func:`train_world_model`);
what the controller sees (:func:`memory_features`) and M's imagination (:func:`dream`); then C
(:class:`LinearController`), rollouts of a whole population in the real pixel CartPole
(:func:`rollout`), CMA-ES (:func:`train_controller`) and one picklable run for worker processes
(:func:`run_controller`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import torch
from torch import nn
from torch.nn import functional as F

from .agent import SavedWithConfig
from .runtime import noise

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class MDNRNNConfig:
    """``latent``: size of z; ``n_actions``: discrete actions; ``hidden``: LSTM units (World
    Models: 256); ``mixtures``: Gaussians per latent dimension (World Models: 5); ``residual``: the
    mixture means are ``z_t + delta`` (the LSTM predicts the change; World Models predicts ``z_{t+1}``
    itself). Between two frames 0.02 s apart ``z`` barely moves, so a network that must output
    ``z_{t+1}`` first spends its training learning to copy ``z_t``; predicting the change makes the
    motion, which the memory must carry, the whole of the target."""
    latent: int = 32
    n_actions: int = 2
    hidden: int = 128
    mixtures: int = 5
    residual: bool = True

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

    def step(self, z: torch.Tensor, actions: torch.Tensor, state):
        """The memory alone, one step: the new ``(h, c)`` after reading ``z`` ``(B, latent)`` and
        ``actions`` ``(B,)`` (no mixture is computed: what a controller in the real world needs)."""
        x = torch.cat([z, F.one_hot(actions.long(), self.config.n_actions).to(z.dtype)], dim=-1)
        return self.lstm(x[None], state)[1]

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
        if c.residual:
            mu = mu + z.unsqueeze(-1)
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
    # pick a component per dimension by inverting the cumulative weights at a uniform draw
    u = noise(weights[..., :1], generator, uniform=True)
    k = (weights.cumsum(-1) < u).sum(-1, keepdim=True).clamp(max=weights.shape[-1] - 1)
    mean, log_std = mu.gather(-1, k).squeeze(-1), logsigma.gather(-1, k).squeeze(-1)
    eps = noise(mean, generator)
    return mean + log_std.exp() * math.sqrt(temperature) * eps


def sequences(vae, episodes) -> dict:
    """M's training data from :class:`lstm_rl_lib.vae.Episodes`: every frame encoded (posterior mean),
    episodes padded to the longest, time-major. ``z`` ``(T, N, latent)`` and ``actions`` ``(T, N)`` are the
    inputs, ``next_z`` ``(T, N, latent)`` and ``dones`` ``(T, N)`` (1 at a terminated episode's last step)
    the targets, ``mask`` ``(T, N)`` marks real steps; ``states`` ``(T, N, 4)``: the true CartPole state at
    each step (for probes and plots; M never sees it). ``data["states"][data["mask"].bool()]`` lists the
    real steps in the order of :func:`memory_features`."""
    from .vae import encode_frames

    size = vae.config.size
    mus = encode_frames(vae, episodes.frames(size))
    T, N = max(len(a) for a in episodes.actions), len(episodes)
    latent = mus.shape[1]
    z = np.zeros((T + 1, N, latent), np.float32)
    actions, mask, dones = np.zeros((T, N), np.int64), np.zeros((T, N), np.float32), np.zeros((T, N), np.float32)
    states = np.zeros((T, N, 4), np.float32)
    start = 0
    for i, a in enumerate(episodes.actions):
        L = len(a)
        z[: L + 1, i] = mus[start:start + L + 1]
        actions[:L, i], mask[:L, i], dones[L - 1, i] = a, 1.0, float(episodes.terminated[i])
        states[:L, i] = episodes.states[i][:L]
        start += L + 1
    t = lambda v: torch.as_tensor(v)
    return {"z": t(z[:-1]), "actions": t(actions), "next_z": t(z[1:]), "dones": t(dones), "mask": t(mask),
            "states": t(states)}


def train_world_model(vae, episodes, config: MDNRNNConfig | None = None, epochs: int = 20, batch_size: int = 64,
                      lr: float = 1e-3, holdout: float = 0.1, seed: int = 0, progress: bool = True,
                      device: str | torch.device | None = None) -> dict:
    """Adam on :func:`world_model_loss` over the random-policy ``episodes`` encoded by ``vae`` (which
    stays fixed). A random ``holdout`` fraction of the episodes is scored after every epoch: the next-z
    NLL (nats per latent dimension), the end-of-episode cross-entropy, and the squared error of the
    predicted mean ``E[z_{t+1}]`` beside the error of simply repeating ``z_t`` ("copy"), the baseline
    that any useful model of motion must beat. Returns ``{"model", "history", "interrupted"}``.
    ``device``: where to train (default: CUDA when present)."""
    import time

    from .progress import TrainingProgress
    from .runtime import get_device

    device = torch.device(device) if device is not None else get_device()
    data = {k: v.to(device) for k, v in sequences(vae, episodes).items() if k != "states"}
    config = config or MDNRNNConfig(latent=data["z"].shape[-1])
    if config.latent != data["z"].shape[-1]:
        raise ValueError(f"config.latent = {config.latent} but the VAE's latent has {data['z'].shape[-1]} dimensions")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = MDNRNN(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    N = data["z"].shape[1]
    order = torch.randperm(N, generator=g).to(device)
    n_test = max(1, int(holdout * N))
    test, train = order[:n_test], order[n_test:]
    pick = lambda idx: {k: v[:, idx] for k, v in data.items()}
    history = {k: [] for k in ("epoch", "z_nll", "done_bce", "mse", "copy_mse", "seconds")}
    start = time.perf_counter()
    with TrainingProgress(epochs, desc="MDN-RNN", disable=not progress) as bar:
        for epoch in bar:
            perm = train[torch.randperm(len(train), generator=g).to(device)]
            for i in range(0, len(perm), batch_size):
                b = pick(perm[i:i + batch_size])
                outputs, _ = model(b["z"], b["actions"])
                loss, _ = world_model_loss(outputs, b["next_z"], b["dones"], b["mask"])
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
            scores = evaluate_world_model(model, pick(test))
            for k, v in scores.items():
                history[k].append(v)
            history["epoch"].append(epoch + 1)
            history["seconds"].append(time.perf_counter() - start)
            bar.set_postfix(nll=f"{scores['z_nll']:.3f}", mse=f"{scores['mse']:.4f}")
    return {"model": model, "history": history, "interrupted": bar.interrupted}


@torch.no_grad()
def evaluate_world_model(model: MDNRNN, data: dict) -> dict:
    """On padded ``data`` (as from :func:`sequences`): next-z NLL per latent dimension, end-of-episode
    cross-entropy, and squared errors (per latent dimension) of the mixture's mean and of repeating z_t."""
    outputs, _ = model(data["z"], data["actions"])
    _, parts = world_model_loss(outputs, data["next_z"], data["dones"], data["mask"])
    logpi, mu = outputs[0], outputs[1]
    mean = (logpi.exp() * mu).sum(-1)
    m, steps = data["mask"], data["mask"].sum()
    mse = ((((mean - data["next_z"]) ** 2).mean(-1) * m).sum() / steps).item()
    copy = ((((data["z"] - data["next_z"]) ** 2).mean(-1) * m).sum() / steps).item()
    return {"z_nll": parts["z_nll"].item(), "done_bce": parts["done_bce"].item(), "mse": mse, "copy_mse": copy}


@torch.no_grad()
def memory_features(model: MDNRNN, data: dict) -> np.ndarray:
    """``[z_t, h_t]`` at every real step of padded ``data`` (from :func:`sequences`), ``(steps, latent +
    hidden)``, where ``h_t`` is M's hidden state before it reads ``z_t``: what the controller sees."""
    device = next(model.parameters()).device
    z, actions = data["z"].to(device), data["actions"].to(device)
    x = torch.cat([z, F.one_hot(actions, model.config.n_actions).to(z.dtype)], dim=-1)
    out, _ = model.lstm(x, model.initial_state(x.shape[1]))
    h = torch.cat([torch.zeros_like(out[:1]), out[:-1]])
    keep = data["mask"].to(device).bool()
    return torch.cat([z, h], dim=-1)[keep].cpu().numpy()


@torch.no_grad()
def dream(model: MDNRNN, z0, actions, temperature: float = 1.0, seed: int = 0) -> dict:
    """M imagining an episode: from a real first latent ``z0`` ``(latent,)``, M reads ``(z_t, a_t)`` for the
    given ``actions`` ``(T,)`` and **its own sample** of ``z_{t+1}`` (:func:`sample_next_z` at ``temperature``)
    becomes the next input; no frame is seen after the first. Returns ``{"z": (T + 1, latent),
    "done_prob": (T,)}``: decode ``z`` with the VAE to watch the dream."""
    g = torch.Generator().manual_seed(seed)
    p = next(model.parameters())
    z = torch.as_tensor(np.asarray(z0), dtype=p.dtype, device=p.device).reshape(1, -1)
    state, zs, done = model.initial_state(1), [z[0]], []
    for a in np.asarray(actions).ravel():
        (logpi, mu, logsigma, done_logit), state = model(z[None], torch.tensor([[int(a)]], device=p.device), state)
        z = sample_next_z(logpi[0], mu[0], logsigma[0], temperature, g)
        zs.append(z[0])
        done.append(torch.sigmoid(done_logit[0, 0]).item())
    return {"z": torch.stack(zs).cpu().numpy(), "done_prob": np.array(done)}


# ----------------------------------------------------------------------------------------------
# C: a linear controller on [z_t, h_t], and rollouts in the real (pixel) environment
# ----------------------------------------------------------------------------------------------
class LinearController:
    """World Models' C: a single linear layer on ``[z_t, h_t]`` (or on ``z_t`` alone with
    ``use_memory=False``, the memory-less baseline). With two actions it is one unit,
    ``a_t = 1 if w . [z_t, h_t] + b > 0 else 0``; with more, ``a_t = argmax(W [z_t, h_t] + b)``.
    Its parameters are one flat vector, the search space of CMA-ES.

    ``stack=k`` gives it the last ``k`` codes ``[z_t, z_{t-1}, ..., z_{t-k+1}]`` (zeros before the
    episode's start) instead of ``z_t``: frame stacking in code space, the memory-less control for
    ``[z_t, h_t]``. A linear layer on two codes can form ``z_t - z_{t-1}``, a velocity."""

    def __init__(self, latent: int, hidden: int, n_actions: int, use_memory: bool = True,
                 feature_mean=None, feature_std=None, stack: int = 1):
        if n_actions < 2:
            raise ValueError(f"the controller needs at least 2 discrete actions; got n_actions={n_actions}")
        if int(stack) != stack or stack < 1:
            raise ValueError(f"stack (the number of codes the controller sees) must be a positive integer; got {stack!r}")
        self.latent, self.hidden, self.n_actions, self.use_memory = latent, hidden, n_actions, use_memory
        self.stack = int(stack)
        self.in_dim = self.stack * latent + (hidden if use_memory else 0)
        self.outputs = 1 if n_actions == 2 else n_actions
        self.n_params = self.outputs * (self.in_dim + 1)
        # optional standardisation of [z, h] (fixed numbers, e.g. from the exploration data): every
        # input then starts on the same scale, which CMA-ES's isotropic first search distribution assumes
        self.feature_mean = self._vector(feature_mean, 0.0)
        self.feature_std = self._vector(feature_std, 1.0)

    def _vector(self, value, default: float) -> np.ndarray:
        full = self.latent + self.hidden
        if value is None:
            return np.full(self.in_dim, default, np.float32)
        value = np.asarray(value, np.float32).ravel()
        if value.shape[0] not in (self.in_dim, full):
            raise ValueError(f"feature statistics must have {self.in_dim} numbers (or {full} for [z, h]); "
                             f"got {value.shape[0]}")
        if self.stack > 1 and value.shape[0] != self.in_dim:     # z's statistics, once per stacked code
            value = np.concatenate([np.tile(value[: self.latent], self.stack), value[self.latent:]])
        return value[: self.in_dim].copy()

    def act(self, params, z: torch.Tensor, h: torch.Tensor, which: torch.Tensor | None = None) -> torch.Tensor:
        """Actions ``(B,)`` for latents ``z`` ``(B, stack * latent)`` and M's hidden states ``h`` ``(B, hidden)``.

        ``params``: one vector of ``n_params`` numbers, or a population ``(P, n_params)`` with ``which``
        ``(B,)`` saying which candidate drives each row (CMA-ES scores a whole generation at once)."""
        params = torch.as_tensor(np.asarray(params), dtype=z.dtype, device=z.device)
        if params.shape[-1] != self.n_params or params.dim() > 2:
            raise ValueError(f"the controller has {self.n_params} parameters: expected a vector ({self.n_params},) "
                             f"or a population (P, {self.n_params}); got shape {tuple(params.shape)}")
        if params.dim() == 1:
            params = params[None]
        if which is None:
            which = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
        rows = params[which]                                                   # (B, n_params)
        W = rows[:, : self.outputs * self.in_dim].view(-1, self.outputs, self.in_dim)
        b = rows[:, self.outputs * self.in_dim:]
        x = torch.cat([z, h], dim=-1) if self.use_memory else z
        x = (x - torch.as_tensor(self.feature_mean, device=x.device)) / torch.as_tensor(self.feature_std, device=x.device)
        out = torch.einsum("boi,bi->bo", W, x) + b
        return (out[:, 0] > 0).long() if self.outputs == 1 else out.argmax(-1)


def start_states(episodes: int, seed: int) -> np.ndarray:
    """``(4, episodes)`` CartPole start states drawn as CartPole-v1 draws them (each number uniform in
    ``[-0.05, 0.05]``), reproducible from ``seed``."""
    return np.random.default_rng(seed).uniform(-0.05, 0.05, size=(4, episodes))


@torch.no_grad()
def rollout(vae, model: MDNRNN, controller: LinearController, params, episodes: int = 1, seed: int = 0,
            max_steps: int = 500, size: int | None = None, record: bool = False) -> np.ndarray | dict:
    """Returns ``(P, episodes)`` of every candidate in ``params`` (``(P, n_params)`` or one vector) in the
    real pixel CartPole, all ``P * episodes`` episodes played at once; candidate ``p`` plays the same
    ``episodes`` starts as every other candidate (:func:`start_states` of ``seed``).

    Each step: the frames (:func:`lstm_rl_lib.envs.render_cartpole` of the true state, the observation
    of ``cartpole-pixels``) are encoded to ``z_t`` (the posterior mean), the controller acts on
    ``[z_t, h_t]``, then M reads ``(z_t, a_t)`` to give ``h_{t+1}``: as in World Models, ``h_t`` has seen
    everything before step t. Only episodes still running are drawn, encoded and stepped. The physics
    is Gymnasium's vectorised CartPole-v1 (``CartPoleVectorEnv``). ``record=True`` returns a dict with
    the returns and, for the first episode, its frames, latents, actions and true states."""
    import gymnasium as gym

    from .envs import render_cartpole

    params = np.atleast_2d(np.asarray(params, np.float32))
    P, E = params.shape[0], int(episodes)
    N = P * E
    size = size or vae.config.size
    venv = gym.make_vec("CartPole-v1", num_envs=N, vectorization_mode="vector_entry_point",
                        max_episode_steps=max_steps)
    venv.reset(seed=seed)
    cp = venv.unwrapped
    cp.state[:] = np.tile(start_states(E, seed), (1, P))                 # same starts for every candidate
    device = next(model.parameters()).device
    which_all = torch.arange(P, device=device).repeat_interleave(E)
    h, c = model.initial_state(N)
    codes = torch.zeros(N, controller.stack, model.config.latent, device=device)   # [z_t, z_t-1, ...]
    live = np.ones(N, bool)
    returns = np.zeros(N)
    trace = {"frames": [], "z": [], "actions": [], "states": []}
    for _ in range(max_steps):
        idx = np.flatnonzero(live)
        frames = render_cartpole(cp.state[0, idx], cp.state[2, idx], size)
        if record and live[0]:
            trace["frames"].append(frames[0]); trace["states"].append(cp.state[:, 0].copy())
        z, _ = vae.encode(torch.as_tensor(frames, device=device))
        ti = torch.as_tensor(idx, device=device)
        seen = z
        if controller.stack > 1:
            codes[ti] = torch.cat([z[:, None], codes[ti, :-1]], dim=1)
            seen = codes[ti].flatten(1)
        actions = controller.act(params, seen, h[0, ti], which_all[ti])
        h[:, ti], c[:, ti] = model.step(z, actions, (h[:, ti], c[:, ti]))
        a_all = np.zeros(N, np.int64)
        a_all[idx] = actions.cpu().numpy()
        if record and live[0]:
            trace["z"].append(z[0].cpu().numpy()); trace["actions"].append(int(a_all[0]))
        _, _, term, trunc, _ = venv.step(a_all)
        returns[idx] += 1.0
        live &= ~(term | trunc)
        if not live.any():
            break
    venv.close()
    returns = returns.reshape(P, E)
    if record:
        return {"returns": returns, **{k: np.array(v) for k, v in trace.items()}}
    return returns


def train_controller(vae, model: MDNRNN, controller: LinearController, generations: int = 100, popsize: int = 32,
                     episodes: int = 4, sigma0: float = 0.5, seed: int = 0, stop_return: float | None = None,
                     check_episodes: int = 8, progress: bool = True) -> dict:
    """CMA-ES (Hansen, 2016; the ``cma`` package) on the controller's parameters, as in World Models.

    Each generation samples ``popsize`` parameter vectors; each is scored by its mean return over
    ``episodes`` real episodes (starts that change every generation and are shared by the whole
    population, so that candidates are compared on the same starts; the whole generation is played
    as one batch). With ``stop_return``, once some candidate scores at least that much the search
    mean is played on ``check_episodes`` fresh starts, and the search stops when it too reaches it.

    Returns ``{"params": the mean of the search distribution (CMA-ES's best estimate), "history": per
    generation the population's mean and best score, the environment steps played so far and the
    seconds, "solved_at": the generation that passed the check or None, "interrupted": bool}``;
    Ctrl-C stops after the current generation."""
    import time

    import cma

    from .progress import TrainingProgress

    es = cma.CMAEvolutionStrategy(np.zeros(controller.n_params), sigma0,
                                  {"popsize": popsize, "seed": seed + 1, "verbose": -9})
    history = {"generation": [], "mean_return": [], "best_return": [], "env_steps": [], "seconds": []}
    steps, solved_at, start = 0, None, time.perf_counter()
    with TrainingProgress(generations, desc=f"CMA-ES ({'z, h' if controller.use_memory else 'z'})",
                          disable=not progress) as bar:
        for g in bar:
            candidates = np.array(es.ask())
            returns = rollout(vae, model, controller, candidates, episodes, seed=seed * 1_000_000 + g)
            scores = returns.mean(1)
            es.tell(list(candidates), list(-scores))
            steps += int(returns.sum())                       # one reward per step
            history["generation"].append(g + 1)
            history["mean_return"].append(float(scores.mean()))
            history["best_return"].append(float(scores.max()))
            history["env_steps"].append(steps)
            history["seconds"].append(time.perf_counter() - start)
            bar.set_postfix(mean=f"{scores.mean():.1f}", best=f"{scores.max():.1f}")
            if stop_return is not None and scores.max() >= stop_return:
                check = rollout(vae, model, controller, es.result.xfavorite, check_episodes,
                                seed=seed * 1_000_000 + 500_000 + g)
                steps += int(check.sum())
                if check.mean() >= stop_return:
                    solved_at = g + 1
                    break
    return {"params": np.array(es.result.xfavorite), "history": history, "solved_at": solved_at,
            "interrupted": bar.interrupted}


def run_controller(job: dict) -> dict:
    """Train and evaluate one controller; a picklable job for :func:`lstm_rl_lib.runtime.map_processes`.

    ``job``: ``{"vae": ConvVAE, "model": MDNRNN, "use_memory": bool, "seed": int, "eval_episodes": 20,
    "feature_mean"/"feature_std": optional standardisation of [z, h], "stack": codes seen (default 1),
    **train_controller's keyword arguments}``. Returns the parameters, the search history, the
    evaluation returns (``eval_episodes`` starts never used in training) and the seconds taken."""
    import time

    job = dict(job)
    vae, model = job.pop("vae"), job.pop("model")
    use_memory, eval_episodes = job.pop("use_memory"), job.pop("eval_episodes", 20)
    mean, std = job.pop("feature_mean", None), job.pop("feature_std", None)
    stack = job.pop("stack", 1)
    job.setdefault("progress", False)
    controller = LinearController(model.config.latent, model.config.hidden, model.config.n_actions, use_memory,
                                  mean, std, stack)
    start = time.perf_counter()
    result = train_controller(vae, model, controller, **job)
    seconds = time.perf_counter() - start
    returns = rollout(vae, model, controller, result["params"], eval_episodes, seed=100_000 + job.get("seed", 0))[0]
    return {**result, "use_memory": use_memory, "stack": stack, "n_params": controller.n_params,
            "seed": job.get("seed", 0), "eval": returns, "seconds": seconds}
