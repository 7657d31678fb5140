"""Recurrent DQN (DRQN) with sequence replay, stored states and burn-in.

Chapter 4 teaches this module. DQN (Mnih et al. 2015) learns Q(s, a) from a replay buffer of single
transitions. With an LSTM, Q depends on the history through h_t, and a single transition has no
history: Hausknecht & Stone (2015, DRQN) replay *sequences* instead; Kapturowski et al. (2019, R2D2)
start each replayed sequence from the hidden state the actor had there ("stored state") and run
the first ``burn_in`` steps only to warm that state up, without loss.

What is here, top to bottom: the config; the Q-network (LSTM, or a memory-less MLP on the current
observation or on a stack of the last ``k``); the episode replay buffer whose sampled sequences
never cross an episode boundary; the double-DQN sequence loss with a Huber penalty; the training
loop with an epsilon schedule and a target network (hard copies or Polyak averaging).
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .agent import Algorithm, BestWeights, TrainResult, check_callback, push_frame, register_algorithm
from .agent import evaluate as evaluate_agent
from .envs import describe_env, encode_observation, ended_success, make_vector_env, spaces_of
from .nets import CORES, State, make_rnn, rnn_forward, run_lstm, zero_state
from .progress import TrainingProgress
from .runtime import config_from_preset, get_device, seed_everything

AGENTS = ("lstm", "mlp", "stack")
INIT_STATES = ("zero", "stored")


# ----------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------
@dataclass
class DQNConfig:
    """Settings of :func:`train_dqn`.

    Attributes:
        env, env_kwargs: the environment, as anything :func:`lstm_rl_lib.envs.env_factory` accepts (a
            book task name, a Gymnasium id or ``"module:Id"``, or a callable that returns a new
            ``gymnasium.Env``), and keyword arguments for it.
        agent: ``"lstm"`` (DRQN), ``"mlp"`` (DQN on the current observation) or ``"stack"`` (DQN on
            the last ``stack`` observations concatenated, zeros before the episode start).
        total_steps: environment steps in all (summed over the ``num_envs`` acting environments).
        buffer_steps: replay capacity in steps; whole episodes leave the buffer oldest first.
        seq_len: L, the steps of a replayed sequence that carry a loss.
        burn_in: K, steps before them that only warm up the state (no loss, no gradient). (The book
            writes K for the burn-in length and B for a batch, as everywhere else in the library.)
        init_state: where a replayed sequence's state comes from: ``"zero"`` (DRQN's "random
            updates") or ``"stored"`` (the state the actor had there, R2D2).
        batch_size: sequences per gradient step.
        learning_starts: environment steps before the first gradient step.
        train_every: environment steps per gradient step.
        gamma, lr: discount and Adam's learning rate.
        anneal_lr: decay the learning rate linearly to 0 at ``total_steps`` (as PPO's ``anneal_lr``).
        n_step: steps of real rewards before bootstrapping (R2D2 uses 5; 1 is the classic DQN target).
        value_rescale: learn ``h(Q)`` instead of ``Q``, with R2D2's invertible rescaling
            ``h(x) = sign(x)(sqrt(|x| + 1) - 1) + 0.001 x`` (Kapturowski et al. 2019, after Pohlen et al.
            2018): targets are ``h(r + ... + gamma^n h^-1(Q_target))``, so that a long horizon (gamma 0.99,
            returns of 100) does not mean regressing onto large numbers.
        double: double-DQN targets (the online net picks the next action, the target net scores it).
        huber: Huber loss (else squared error).
        target_update: gradient steps between hard copies of the online net into the target net;
            ignored when ``tau > 0`` (then Polyak averaging ``target += tau * (online - target)`` every step).
        max_grad_norm: global gradient-norm clip.
        eps_start, eps_end, eps_fraction: epsilon decays linearly from ``eps_start`` to ``eps_end``
            over the first ``eps_fraction`` of ``total_steps``.
        norm_obs: scale observations by the mean and standard deviation of the replay buffer's
            observations when learning starts (random play), frozen afterwards and stored in the network.
        hidden_size: LSTM size (width of the MLP's layers).
        forget_bias: initial forget-gate bias of the LSTM.
        core: ``"lstm"`` or ``"gru"``, the recurrent core of ``agent="lstm"`` (:func:`lstm_rl_lib.nets.make_rnn`).
        select_every, select_episodes: every ``select_every`` environment steps, play ``select_episodes``
            greedy episodes (seeds ``900_000 + 1000 * seed`` on, none of which the final evaluation uses)
            and end training with the network that scored best (:class:`lstm_rl_lib.agent.BestWeights`);
            ``0`` keeps the last network. The checks change nothing else in the run.
        seed, device: as everywhere in the library.
    """
    env: Any = "cartpole-novel"
    env_kwargs: dict = field(default_factory=dict)
    agent: str = "lstm"
    stack: int = 4
    total_steps: int = 50_000
    num_envs: int = 8
    buffer_steps: int = 50_000
    seq_len: int = 10
    burn_in: int = 5
    init_state: str = "stored"
    batch_size: int = 96
    learning_starts: int = 1_000
    train_every: int = 12
    gamma: float = 0.99
    lr: float = 1e-3
    anneal_lr: bool = False
    n_step: int = 5
    value_rescale: bool = True
    norm_obs: bool = True
    double: bool = True
    huber: bool = True
    target_update: int = 250
    tau: float = 0.02
    max_grad_norm: float = 10.0
    eps_start: float = 1.0
    eps_end: float = 0.02
    eps_fraction: float = 0.2
    hidden_size: int = 64
    forget_bias: float = 1.0
    core: str = "lstm"
    select_every: int = 2_500
    select_episodes: int = 10
    seed: int = 0
    device: str | None = None

    def __post_init__(self):
        if self.agent not in AGENTS:
            raise ValueError(f"agent must be one of {AGENTS}; got {self.agent!r}")
        if self.core not in CORES:
            raise ValueError(f"core must be one of {CORES}; got {self.core!r}")
        if self.init_state not in INIT_STATES:
            raise ValueError(f"init_state must be one of {INIT_STATES}; got {self.init_state!r}")
        for name in ("total_steps", "num_envs", "buffer_steps", "seq_len", "batch_size", "train_every",
                     "target_update", "hidden_size", "stack", "n_step"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)}")
        if self.select_every < 0 or self.select_episodes < 1:
            raise ValueError(f"need select_every >= 0 (0: keep the last network) and select_episodes >= 1; "
                             f"got {self.select_every} and {self.select_episodes}")
        if self.burn_in < 0:
            raise ValueError(f"burn_in must be >= 0; got {self.burn_in}")
        if not 0 <= self.tau <= 1:
            raise ValueError(f"tau must be in [0, 1]; got {self.tau}")
        if not (0 <= self.eps_end <= self.eps_start <= 1 and 0 < self.eps_fraction <= 1):
            raise ValueError("need 0 <= eps_end <= eps_start <= 1 and 0 < eps_fraction <= 1")

    def epsilon(self, step: int) -> float:
        """The exploration rate after ``step`` environment steps (linear decay, then flat)."""
        frac = min(1.0, step / (self.eps_fraction * self.total_steps))
        return self.eps_start + frac * (self.eps_end - self.eps_start)


# Settings per task. ``DQNConfig``'s defaults are the velocity-free CartPole ones, chosen by a sweep
# (``benchmarks/bench_dqn.py --sweep``) for 50,000 steps on a CPU: gamma 0.99 with R2D2's
# value rescaling and 5-step targets, lr 1e-3, a batch of 96 windows of 5 + 10 steps every 12
# environment steps (8 acting environments), Polyak averaging with tau 0.02. A gradient step every 8
# environment steps ended at 450 or more on 4 of seeds 0-4 on one machine and on none of seeds 0-2 on
# another; every 12 steps on 4 of seeds 5-9 on the second, with two thirds of the gradient steps. A run's floating-point
# path differs between CPUs, and a DQN run is chaotic in it: the same seed is not the same run on another
# machine. The others change only what differs. Every run ends with the best of its greedy checks every
# 2,500 steps on 10 held-out episodes (``select_every``): on seeds 5-9 the kept networks scored 490-500 over
# 20 other episodes, the last ones 450-497. The T-maze keeps its last network: ten check episodes of a task
# whose return is +-1 reward a memory-less agent's lucky guesses as much as a remembered cue.
# The T-maze keeps the settings it was tuned with (4 environments, a batch of 64 windows of 8 + 16
# steps, which cover a whole episode, every 8 steps, 3-step targets, gamma 0.98, no rescaling: its
# returns are +-1) and its one-hot observations are not rescaled.
PRESETS: dict[str, dict] = {
    "cartpole-novel": dict(env="cartpole-novel"),
    "cartpole-flicker": dict(env="cartpole-flicker"),
    "tmaze": dict(env="tmaze", env_kwargs={"length": 10}, total_steps=15_000, num_envs=4, batch_size=64, seq_len=16,
                  burn_in=8, train_every=8, gamma=0.98, n_step=3, value_rescale=False, lr=2e-3, eps_fraction=0.5,
                  norm_obs=False, select_every=0),
}


def preset(task: str, **overrides) -> DQNConfig:
    """``DQNConfig`` with the settings of :data:`PRESETS` for ``task``, then ``overrides``."""
    return config_from_preset(DQNConfig, PRESETS, task, overrides)


# ----------------------------------------------------------------------------------------------
# Q-networks
# ----------------------------------------------------------------------------------------------
class QNetwork(nn.Module):
    """Encoder -> LSTM -> Q-values per action (``recurrent=True``), or encoder -> MLP -> Q-values.

    ``q, state = net(obs, state, starts)`` with ``obs`` ``(T, B, obs_dim)`` and ``q`` ``(T, B, n_actions)``;
    the hidden-state API of :mod:`lstm_rl_lib.nets` (``state`` ``(h, c)`` each ``(1, B, H)``, ``None`` =
    zeros; ``starts[t, b] = 1`` zeroes the state before step t). The MLP ignores state and starts.
    """

    def __init__(self, obs_dim: int, n_actions: int, recurrent: bool = True, hidden_size: int = 64,
                 forget_bias: float = 1.0, core: str = "lstm"):
        super().__init__()
        self.obs_dim, self.n_actions, self.recurrent, self.hidden_size = obs_dim, n_actions, recurrent, hidden_size
        # input scaling, (obs - obs_mean) * obs_scale; identity until set_obs_stats (buffers: saved with the weights)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_scale", torch.ones(obs_dim))
        self.encoder = nn.Sequential(nn.Linear(obs_dim, hidden_size), nn.ReLU())
        if recurrent:
            self.core = make_rnn(core, hidden_size, hidden_size, forget_bias)
        else:
            self.core = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.ReLU())
        self.head = nn.Linear(hidden_size, n_actions)

    def set_obs_stats(self, observations: np.ndarray, min_std: float = 1e-2) -> None:
        """Scale inputs to zero mean and unit variance by the statistics of ``observations`` ``(n, obs_dim)``."""
        obs = torch.as_tensor(np.asarray(observations, np.float32))
        self.obs_mean.copy_(obs.mean(0))
        self.obs_scale.copy_(1.0 / obs.std(0).clamp(min=min_std))

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        """The encoder's output for scaled observations."""
        return self.encoder((obs - self.obs_mean) * self.obs_scale)

    def initial_state(self, batch_size: int) -> State | None:
        return zero_state(self.core, batch_size) if self.recurrent else None

    def forward(self, obs: torch.Tensor, state: State | None = None, starts: torch.Tensor | None = None):
        if obs.dim() != 3 or obs.shape[-1] != self.obs_dim:
            raise ValueError(f"obs must have shape (T, B, obs_dim={self.obs_dim}); got {tuple(obs.shape)}")
        x = self.embed(obs)
        if not self.recurrent:
            return self.head(self.core(x)), None
        state = self.initial_state(obs.shape[1]) if state is None else state
        out, state = run_lstm(self.core, x, state, starts)
        return self.head(out), state

    def warm_up(self, obs: torch.Tensor, state: State, lengths: np.ndarray) -> State:
        """The state after the first ``lengths[b]`` rows of column b of ``obs`` (``(K, N, D)``), in one call.

        The burn-in of R2D2: columns have different lengths (a sequence near an episode's start has a
        shorter one, possibly none), so they are packed (``pack_padded_sequence``), which also returns
        each column's state after its own last real row. Columns of length 0 keep ``state``."""
        lengths = np.asarray(lengths)
        idx = np.nonzero(lengths > 0)[0]
        if len(idx) == 0:
            return state
        cols = torch.as_tensor(idx, device=obs.device)
        x = self.embed(obs[:, cols])
        packed = nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(lengths[idx], dtype=torch.long),
                                                   enforce_sorted=False)
        _, warmed = rnn_forward(self.core, packed, tuple(s[:, cols].contiguous() for s in state))
        out = tuple(s.clone() for s in state)
        for o, w in zip(out, warmed):
            o[:, cols] = w
        return out


class ObservationStacker:
    """The last ``k`` encoded observations of each environment, concatenated (oldest first).

    Zeros stand in for the steps before an episode's start; :meth:`reset` clears an environment."""

    def __init__(self, num_envs: int, obs_dim: int, k: int):
        self.k, self.obs_dim = k, obs_dim
        self.frames = np.zeros((num_envs, k, obs_dim), np.float32)

    def reset(self, env_ids) -> None:
        self.frames[env_ids] = 0.0

    def push(self, obs: np.ndarray) -> np.ndarray:
        self.frames = push_frame(self.frames, obs)
        return self.frames.reshape(len(obs), -1).copy()

    def peek_with(self, env_id: int, obs: np.ndarray) -> np.ndarray:
        """What :meth:`push` would give for one environment, without changing the stack (final observations)."""
        frames = np.concatenate([self.frames[env_id, 1:], obs[None]], axis=0)
        return frames.reshape(-1)


# ----------------------------------------------------------------------------------------------
# Replay of whole episodes, sampled as sequences
# ----------------------------------------------------------------------------------------------
@dataclass
class SequenceBatch:
    """A batch of ``N`` replayed sequences, time-major.

    ``burn_obs``: ``(K, N, D)``, the burn-in observations of each sequence (K = ``burn_in``),
    left-aligned: column b holds ``burn_len[b]`` real rows (fewer than K near an episode's start), then zeros.
    ``obs``: ``(L + 1, N, D)``, the observations of the loss steps and the one after the last of them
    (for the target); ``actions``, ``rewards``, ``terminated``, ``mask``: ``(L, N)``; ``mask`` is 1 on
    real steps (a sequence cut by its episode's end is padded). ``state``: the state carried into
    the first burn-in row (the stored one, or zeros). ``episode``/``first``: where each came from.
    """
    burn_obs: torch.Tensor
    burn_len: np.ndarray
    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    mask: torch.Tensor
    state: State | None
    episode: np.ndarray
    first: np.ndarray


class EpisodeReplay:
    """A FIFO of whole episodes (up to ``capacity`` steps) that samples fixed-length sequences.

    Each stored episode has ``n`` steps: observations ``(n + 1, D)`` (the last one is the final
    observation), actions, rewards, ``terminated`` (True if the episode ended by termination, False
    if truncated) and, for recurrent agents, the actor's state *before* each step ``(n, k, H)`` (``k = 2``
    tensors for an LSTM, ``(h, c)``; 1 for a GRU).

    :meth:`sample` picks a step ``u`` uniformly over all stored steps; the sequence's loss steps are
    ``u .. u + L - 1`` cut at the episode's end (padding masked), and its burn-in the ``K`` steps
    before ``u``, cut at the episode's start. A sequence therefore never crosses an episode boundary.

    ``episodes`` keeps the episodes as they were added (for reading and diagnostics); the same rows
    also sit end to end in flat arrays (``n + 1`` rows per episode), so that a batch is cut out by
    index arithmetic in a few NumPy calls instead of a Python loop over its sequences.
    """

    def __init__(self, capacity: int, rng: np.random.Generator):
        self.capacity, self.rng = capacity, rng
        self.episodes: deque[dict] = deque()
        self.steps = 0
        self._flat: dict[str, np.ndarray] = {}     # obs, actions, rewards (and states): rows of all episodes
        self._begin = self._end = 0                 # live rows of the flat arrays
        self._row0: deque[int] = deque()            # each stored episode's first flat row

    def add(self, episode: dict) -> None:
        n = len(episode["actions"])
        if n == 0:
            return
        if episode["obs"].shape[0] != n + 1:
            raise ValueError(f"an episode of {n} steps needs {n + 1} observations; got {episode['obs'].shape[0]}")
        if self.episodes and (("states" in episode) != ("states" in self.episodes[0])
                              or episode["obs"].shape[1:] != self.episodes[0]["obs"].shape[1:]):
            raise ValueError("every episode in one replay needs the same observation shape, and states in all or none")
        rows = {"obs": episode["obs"], "actions": episode["actions"], "rewards": episode["rewards"]}
        if "states" in episode:
            rows["states"] = episode["states"]
        self._reserve(n + 1, rows)
        for key, value in rows.items():             # actions, rewards, states: n rows, then one unused row
            self._flat[key][self._end:self._end + len(value)] = value
        self._row0.append(self._end)
        self._end += n + 1
        self.episodes.append(episode)
        self.steps += n
        while self.steps > self.capacity and len(self.episodes) > 1:
            self.steps -= len(self.episodes.popleft()["actions"])
            self._row0.popleft()
            self._begin = self._row0[0]

    def _reserve(self, rows: int, like: dict) -> None:
        """Room for ``rows`` more flat rows: move the live rows to the front, or grow the arrays."""
        if not self._flat:
            size = 2 * (self.capacity + rows)
            self._flat = {k: np.zeros((size,) + np.shape(v)[1:], np.float32 if k != "actions" else np.int64)
                          for k, v in like.items()}
        size = len(self._flat["obs"])
        if self._end + rows <= size:
            return
        live = self._end - self._begin
        if live + rows > size // 2:
            size = 2 * (live + rows)
        for key, arr in self._flat.items():
            new = np.zeros((size,) + arr.shape[1:], arr.dtype)
            new[:live] = arr[self._begin:self._end]
            self._flat[key] = new
        shift = self._begin
        self._row0 = deque(r - shift for r in self._row0)
        self._begin, self._end = 0, live

    def __len__(self) -> int:
        return self.steps

    def sample(self, batch_size: int, seq_len: int, burn_in: int, init_state: str, device) -> SequenceBatch:
        if self.steps == 0:
            raise ValueError("the replay buffer is empty")
        lengths = np.array([len(e["actions"]) for e in self.episodes])
        ends = np.cumsum(lengths)
        flat = self.rng.integers(self.steps, size=batch_size)
        ep_idx = np.searchsorted(ends, flat, side="right")
        u = flat - (ends - lengths)[ep_idx]                 # the window's first loss step in its episode
        n = lengths[ep_idx]
        base = np.asarray(self._row0)[ep_idx] + u           # its flat row
        burn_len = np.minimum(burn_in, u)                   # the burn-in never reaches before the episode's start
        k = np.minimum(seq_len, n - u)                      # ... and the loss steps never past its end
        F = self._flat

        def rows(offsets, valid, key):                       # F[key] at base + offsets, zeros where not valid
            idx = np.where(valid, base[None, :] + offsets, self._begin)
            out = F[key][idx]
            out[~valid] = 0
            return out

        j_burn = np.arange(burn_in)[:, None]
        burn_obs = rows(j_burn - burn_len[None, :], j_burn < burn_len[None, :], "obs")   # left-aligned
        j = np.arange(seq_len + 1)[:, None]
        obs = rows(j, j <= k[None, :], "obs")
        step = j[:-1] < k[None, :]
        actions = rows(j[:-1], step, "actions")
        rewards = rows(j[:-1], step, "rewards")
        mask = step.astype(np.float32)
        terminated = np.zeros((seq_len, batch_size), np.float32)
        ended = np.array([self.episodes[e]["terminated"] for e in ep_idx], bool) & (u + k == n)
        terminated[k - 1, np.arange(batch_size)] = ended
        first = u - burn_len
        t = lambda a: torch.as_tensor(a).to(device)
        state = None
        if "states" in F:
            state0 = F["states"][base - burn_len] if init_state == "stored" else \
                np.zeros((batch_size,) + F["states"].shape[1:], np.float32)               # (N, k, H)
            state = tuple(t(np.ascontiguousarray(state0[:, i]))[None] for i in range(state0.shape[1]))
        return SequenceBatch(t(burn_obs), burn_len.astype(np.int64), t(obs), t(actions), t(rewards), t(terminated),
                             t(mask), state, ep_idx, first)


# ----------------------------------------------------------------------------------------------
# The loss
# ----------------------------------------------------------------------------------------------
def sequence_q_values(net: QNetwork, batch: SequenceBatch, grad: bool) -> torch.Tensor:
    """Q-values ``(L + 1, N, A)`` along the batch's sequences, after a burn-in without gradient.

    With a gradient (the online network) the burn-in is one packed call under ``no_grad`` and the
    sequence another. Without (the target network) both are one plain LSTM call: each column's
    burn-in rows and sequence rows are laid end to end (a short burn-in leaves no gap, the column's
    spare rows go after its sequence, where they cannot change it: the LSTM only looks back) and the
    sequence's outputs are read back from row ``burn_len[b]`` on."""
    state = batch.state
    K = batch.burn_obs.shape[0]            # burn-in rows
    if not net.recurrent or K == 0:
        with torch.set_grad_enabled(grad):
            return net(batch.obs, state)[0]
    if grad:
        with torch.no_grad():
            state = net.warm_up(batch.burn_obs, state, batch.burn_len)
        return net(batch.obs, state)[0]
    rows, N = K + batch.obs.shape[0], batch.obs.shape[1]
    j = np.arange(rows)[:, None]
    idx = np.where(j < batch.burn_len, j, np.minimum(K + j - batch.burn_len, rows - 1))   # (rows, N)
    device = batch.obs.device
    both = torch.cat([batch.burn_obs, batch.obs]).gather(
        0, torch.as_tensor(idx, device=device)[..., None].expand(rows, N, batch.obs.shape[2]))
    out, _ = run_lstm(net.core, net.embed(both), state)
    take = torch.as_tensor(batch.burn_len[None, :] + np.arange(batch.obs.shape[0])[:, None], device=device)
    return net.head(out.gather(0, take[..., None].expand(-1, -1, out.shape[2])))


def n_step_targets(rewards: torch.Tensor, terminated: torch.Tensor, mask: torch.Tensor, values: torch.Tensor,
                   gamma: float, n: int) -> torch.Tensor:
    """``y_t = r_t + ... + gamma^(h-1) r_{t+h-1} + gamma^h (1 - terminated_{t+h-1}) V_{t+h}``, ``h = min(n, steps left)``.

    ``rewards``, ``terminated``, ``mask``: ``(L, N)``; ``values``: ``(L + 1, N)``, the bootstrap value of
    each observation of the sequence (row ``t`` = the observation before step ``t``; row 0 is unused).
    Near a sequence's real end (``mask``) the horizon shrinks, so every target bootstraps from an
    observation of the same sequence, and a terminated episode's last step never bootstraps.
    ``n = 1`` is the ordinary one-step target."""
    L, N = rewards.shape
    pad = lambda x: torch.cat([x, x.new_zeros(n - 1, N)]) if n > 1 else x
    r, m = pad(rewards * mask), pad(mask)
    ret, horizon = torch.zeros_like(rewards), torch.zeros_like(rewards)
    for j in range(n):
        ret = ret + gamma ** j * r[j:j + L]
        horizon = horizon + m[j:j + L]
    t = torch.arange(L, device=rewards.device).unsqueeze(1)
    last = (t + horizon).long()                                        # the observation to bootstrap from
    done = terminated.gather(0, (last - 1).clamp(min=0))
    return ret + gamma ** horizon * (1.0 - done) * values.gather(0, last)


def value_rescale(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """R2D2's ``h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x``: squashes large returns, invertible."""
    return torch.sign(x) * (torch.sqrt(x.abs() + 1) - 1) + eps * x


def value_rescale_inverse(y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``h^-1(y) = sign(y) (((sqrt(1 + 4 eps (|y| + 1 + eps)) - 1) / (2 eps))^2 - 1)``, the exact inverse of :func:`value_rescale`."""
    return torch.sign(y) * (((torch.sqrt(1 + 4 * eps * (y.abs() + 1 + eps)) - 1) / (2 * eps)) ** 2 - 1)


def sequence_loss(online: QNetwork, target: QNetwork, batch: SequenceBatch, gamma: float,
                  double: bool = True, huber: bool = True, n_step: int = 1,
                  rescale: bool = False) -> tuple[torch.Tensor, dict]:
    """The (double) DQN loss over the loss steps of a batch of sequences.

    Both networks run along the same sequence from the same initial state (stored or zero) and the
    same burn-in; the target for step t bootstraps from the Q-values ``n_step`` observations later
    (fewer near the sequence's end, see :func:`n_step_targets`), so a truncated episode's last step
    bootstraps from its final observation and a terminated one does not. With ``n_step = 1``::

        y_t = r_t + gamma * (1 - terminated_t) * Q_target(h_{t+1}, argmax_a Q_online(h_{t+1}, a))
    """
    q = sequence_q_values(online, batch, grad=True)                              # (L + 1, N, A)
    q_taken = q[:-1].gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        q_target = sequence_q_values(target, batch, grad=False)
        next_action = (q if double else q_target).argmax(-1, keepdim=True)
        values = q_target.gather(-1, next_action).squeeze(-1)          # (L + 1, N)
        if rescale:      # the networks output h(Q): undo it for the bootstrap, redo it for the target
            values = value_rescale_inverse(values)
        y = n_step_targets(batch.rewards, batch.terminated, batch.mask, values, gamma, n_step)
        if rescale:
            y = value_rescale(y)
    err = q_taken - y
    per_step = nn.functional.smooth_l1_loss(q_taken, y, reduction="none") if huber else 0.5 * err ** 2
    mask = batch.mask
    loss = (per_step * mask).sum() / mask.sum().clamp(min=1.0)
    return loss, {"q": (q_taken.detach() * mask).sum() / mask.sum().clamp(min=1.0)}


# ----------------------------------------------------------------------------------------------
# What burn-in buys, measured directly (R2D2's Q-value discrepancy)
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def q_discrepancy(net: QNetwork, replay: EpisodeReplay, burn_ins=(0, 2, 5, 10), seq_len: int = 10,
                  windows: int = 256, seed: int = 0) -> dict:
    """R2D2's Q-value discrepancy between a replayed state and the true one, for zero and stored starts.

    For ``windows`` windows of ``seq_len`` steps drawn from ``replay`` (episodes long enough to hold
    the longest burn-in before the window), the *true* state at the window's first step is the one
    ``net`` reaches by running over the whole episode so far from its start. The *replayed* state
    starts ``K`` steps earlier, from zeros (``"zero"``) or from the state the actor stored there
    (``"stored"``: recorded by older parameters, so stale), and runs the ``K`` burn-in steps. Both run
    on along the window; as in Kapturowski et al. (2019, eq. 2),

        dQ_t = || q(s^_t) - q(s_t) ||_2 / max_{a, j} | q(s_j, a) |

    (R2D2 divides by ``|max q|``; the largest magnitude is the same for positive values, as CartPole's, and
    never zero for others)

    at the window's first (``"first"``) and last (``"last"``) step, averaged over the windows.
    Deterministic for a ``seed``; needs no training. Returns ``{(init, K): {"first": ..., "last": ...}}``.
    """
    if not net.recurrent:
        raise ValueError("q_discrepancy needs a recurrent Q-network")
    K_max = max(burn_ins)
    eps = [e for e in replay.episodes if len(e["actions"]) >= K_max + seq_len and "states" in e]
    if not eps:
        raise ValueError(f"no stored episode holds {K_max} + {seq_len} steps with stored states")
    rng = np.random.default_rng(seed)
    lengths = np.array([len(e["actions"]) for e in eps])
    picks = rng.choice(len(eps), size=windows, p=lengths / lengths.sum())
    starts = np.array([rng.integers(K_max, lengths[e] - seq_len + 1) for e in picks])
    device = next(net.parameters()).device
    D = eps[0]["obs"].shape[1]
    t = lambda a: torch.as_tensor(a, device=device)

    history = np.zeros((starts.max(), windows, D), np.float32)     # each episode from its start to u (left-aligned)
    window = np.zeros((seq_len, windows, D), np.float32)
    for b, (e, u) in enumerate(zip(picks, starts)):
        history[:u, b] = eps[e]["obs"][:u]
        window[:, b] = eps[e]["obs"][u:u + seq_len]
    true_state = net.warm_up(t(history), net.initial_state(windows), starts)
    q_true, _ = net(t(window), true_state)                          # (L, N, A)
    scale = q_true.abs().amax(dim=(0, 2)).clamp(min=1e-8)          # per window
    out = {}
    for init in INIT_STATES:
        for K in burn_ins:
            if init == "stored":
                stored = np.stack([eps[e]["states"][u - K] for e, u in zip(picks, starts)])   # (N, k, H)
                state = tuple(t(stored[:, j])[None] for j in range(stored.shape[1]))
            else:
                state = net.initial_state(windows)
            if K:
                burn = np.stack([eps[e]["obs"][u - K:u] for e, u in zip(picks, starts)], axis=1)   # (K, N, D)
                state = net.warm_up(t(burn), state, np.full(windows, K))
            q_hat, _ = net(t(window), state)
            dq = (q_hat - q_true).norm(dim=2) / scale                  # (L, N)
            out[(init, K)] = {"first": float(dq[0].mean()), "last": float(dq[-1].mean())}
    return out


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
@dataclass
class DQNResult(TrainResult):
    """What :func:`train_dqn` returns (:class:`lstm_rl_lib.agent.TrainResult`). ``history`` has one row per
    finished episode: ``env_steps`` and ``seconds`` (when it finished), ``return``, ``length``, ``success``
    (NaN if not reported), ``epsilon``; ``losses`` holds ``(env_steps, loss)`` every 100 gradient steps.
    With ``select_every``: ``checks`` holds ``(env_steps, mean greedy return)`` of every check, ``selected``
    the ``env_steps`` of the network kept (``net``), ``last_state_dict`` the weights training ended with."""
    losses: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    selected: int | None = None
    last_state_dict: dict | None = field(default=None, repr=False)
    replay: Any = field(default=None, repr=False)     # the replay buffer (for diagnostics such as q_discrepancy)
    algorithm = "dqn"


def gradient_step(online: QNetwork, target: QNetwork, optimizer, replay: EpisodeReplay, config: DQNConfig,
                  device, step: int) -> torch.Tensor:
    """One gradient step of :func:`train_dqn`: sample ``config.batch_size`` windows (with burn-in for a
    recurrent network), the double-DQN sequence loss, backward, clip the gradient norm, Adam, then
    update the target network (Polyak averaging with ``config.tau``, or with ``tau = 0`` a copy every
    ``config.target_update`` steps; ``step`` is this step's number, from 1). Returns the loss."""
    batch = replay.sample(config.batch_size, config.seq_len, config.burn_in if online.recurrent else 0,
                          config.init_state, device)
    loss, _ = sequence_loss(online, target, batch, config.gamma, config.double, config.huber, config.n_step,
                            config.value_rescale)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(online.parameters(), config.max_grad_norm)
    optimizer.step()
    with torch.no_grad():
        if config.tau > 0:
            torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), config.tau)
        elif step % config.target_update == 0:
            target.load_state_dict(online.state_dict())
    return loss


def make_q_network(config: DQNConfig, obs_dim: int, n_actions: int) -> QNetwork:
    in_dim = obs_dim * config.stack if config.agent == "stack" else obs_dim
    return QNetwork(in_dim, n_actions, config.agent == "lstm", config.hidden_size, config.forget_bias, config.core)


def train_dqn(config: DQNConfig | None = None, progress: bool = True, callback=None, **overrides) -> DQNResult:
    """Train a DRQN (or a memory-less DQN) with sequence replay; Ctrl-C keeps what was learned.

    ``callback(result_so_far)`` is called after every finished episode, that is after every row of
    the history; if it returns True training stops (``interrupted`` is then True) at the end of that
    environment step (other copies' episodes that end in the same step are still recorded)."""
    config = DQNConfig(**{**(asdict(config) if config else {}), **overrides})
    check_callback(callback)
    rng = seed_everything(config.seed)
    device = get_device(config.device)
    venv = make_vector_env(config.env, config.num_envs, same_step_autoreset=True, **config.env_kwargs)
    spaces = spaces_of(venv)
    online = make_q_network(config, spaces.obs_dim, spaces.n_actions).to(device)
    target = make_q_network(config, spaces.obs_dim, spaces.n_actions).to(device)
    target.load_state_dict(online.state_dict())
    target.requires_grad_(False)
    optimizer = torch.optim.Adam(online.parameters(), lr=config.lr)
    replay = EpisodeReplay(config.buffer_steps, rng)
    stacker = ObservationStacker(config.num_envs, spaces.obs_dim, config.stack) if config.agent == "stack" else None
    best = BestWeights(config.select_every, config.select_episodes, 900_000 + 1000 * config.seed)

    def encode(raw, fresh=None):
        x = encode_observation(raw, spaces)
        if stacker is not None:
            if fresh is not None:
                stacker.reset(fresh)
            x = stacker.push(x)
        return x

    raw, _ = venv.reset(seed=[config.seed * 1000 + k for k in range(config.num_envs)])
    obs = encode(raw, np.arange(config.num_envs))
    state = online.initial_state(config.num_envs)
    current = [{"obs": [], "actions": [], "rewards": [], "states": []} for _ in range(config.num_envs)]
    ep_return, ep_len = np.zeros(config.num_envs), np.zeros(config.num_envs, np.int64)
    history = {k: [] for k in ("env_steps", "seconds", "return", "length", "success", "epsilon")}
    losses, env_steps, grad_steps, since_train = [], 0, 0, 0
    result = DQNResult(config=config, net=online, history=history, losses=losses, replay=replay, checks=best.checks,
                       observation_space=venv.single_observation_space, action_space=venv.single_action_space)
    start, stopped = time.perf_counter(), False
    vector_steps = -(-config.total_steps // config.num_envs)
    desc = f"DQN {config.agent} {describe_env(config.env)} seed={config.seed}"
    with TrainingProgress(vector_steps, desc=desc, disable=not progress) as bar:
        for _ in bar:
            eps = config.epsilon(env_steps)
            with torch.no_grad():
                x = torch.as_tensor(obs, device=device)[None]
                q, new_state = online(x, state)
            greedy = q[0].argmax(-1).cpu().numpy()
            explore = rng.random(config.num_envs) < eps
            actions = np.where(explore, rng.integers(spaces.n_actions, size=config.num_envs), greedy)
            raw, rewards, term, trunc, info = venv.step(actions)
            done = term | trunc
            if state is not None:   # the state each environment's step started from, (num_envs, k, H)
                states_np = torch.stack([s[0] for s in state], dim=1).cpu().numpy()
            for i in range(config.num_envs):
                ep = current[i]
                ep["obs"].append(obs[i])
                ep["actions"].append(actions[i])
                ep["rewards"].append(rewards[i])
                if state is not None:
                    ep["states"].append(states_np[i])
            ep_return += rewards
            ep_len += 1
            env_steps += config.num_envs
            since_train += config.num_envs
            next_obs = encode(raw, None) if stacker is None else None
            success = ended_success(info, done)
            for i in np.nonzero(done)[0]:
                final = encode_observation(info["final_obs"][i], spaces)
                if stacker is not None:
                    final = stacker.peek_with(i, final)
                ep = current[i]
                episode = {"obs": np.stack(ep["obs"] + [final]).astype(np.float32),
                           "actions": np.array(ep["actions"], np.int64),
                           "rewards": np.array(ep["rewards"], np.float32), "terminated": bool(term[i])}
                if state is not None:
                    episode["states"] = np.stack(ep["states"]).astype(np.float32)
                replay.add(episode)
                history["env_steps"].append(env_steps)
                history["seconds"].append(time.perf_counter() - start)
                history["return"].append(float(ep_return[i]))
                history["length"].append(int(ep_len[i]))
                history["success"].append(float(success[i]))
                history["epsilon"].append(eps)
                current[i] = {"obs": [], "actions": [], "rewards": [], "states": []}
                ep_return[i], ep_len[i] = 0.0, 0
                if callback is not None and not stopped:
                    result.seconds = history["seconds"][-1]
                    stopped = bool(callback(result))
            obs = next_obs if stacker is None else encode(raw, np.nonzero(done)[0])
            if new_state is not None:   # carry the state; zero it where a new episode begins
                keep = torch.as_tensor(1.0 - done.astype(np.float32), device=device).view(1, -1, 1)
                state = tuple(s * keep for s in new_state)
            while env_steps >= config.learning_starts and since_train >= config.train_every and len(replay):
                since_train -= config.train_every
                if grad_steps == 0 and config.norm_obs:    # first gradient step: fix the input scaling
                    seen = np.concatenate([e["obs"] for e in replay.episodes])
                    for net in (online, target):
                        net.set_obs_stats(seen)
                grad_steps += 1
                if config.anneal_lr:
                    for group in optimizer.param_groups:
                        group["lr"] = config.lr * max(0.0, 1.0 - env_steps / config.total_steps)
                loss = gradient_step(online, target, optimizer, replay, config, device, grad_steps)
                if grad_steps % 100 == 0:
                    losses.append((env_steps, loss.item()))
            if grad_steps:
                best.offer(result, env_steps)
            if history["return"]:
                bar.set_postfix(ret=f"{np.mean(history['return'][-10:]):.1f}", eps=f"{eps:.2f}")
            if stopped:
                break
    venv.close()
    result.last_state_dict = best.restore(online)
    result.selected = best.best[1] if best.best else None
    result.seconds, result.interrupted = time.perf_counter() - start, bar.interrupted or stopped
    return result


#: The evaluation of every algorithm (:func:`lstm_rl_lib.agent.evaluate`): ``evaluate(result or agent,
#: env=None, episodes=20, seed=100_000, deterministic=True, env_kwargs=None)``; deterministic = greedy.
evaluate = evaluate_agent


def run_experiment(job: dict) -> dict:
    """Train and evaluate one configuration; a picklable job for :func:`lstm_rl_lib.runtime.map_processes`.

    ``job``: ``{"config": {...DQNConfig fields...}, "eval_episodes": 20, "q_discrepancy_every": None}``
    (every that many environment steps, :func:`q_discrepancy` of the network being trained on its own
    replay, returned as ``"q_discrepancy"``). Returns the config, the training history, the greedy evaluation (:func:`evaluate`, seeds ``100_000 + 1000 * seed`` on;
    with ``select_every`` also ``"eval_last"``, the same evaluation of the last network, ``"checks"`` and ``"selected"``),
    the training wall time and the trained weights (to rebuild the agent in the notebook)."""
    config = DQNConfig(**job["config"])
    every, measured = job.get("q_discrepancy_every"), []

    def measure(result):      # R2D2's dQ along training, on the states the actor stored so far
        steps = result.history["env_steps"][-1]
        if every and steps >= (len(measured) + 1) * every and config.agent == "lstm":
            try:
                measured.append({"env_steps": steps, **{f"{i} {k}": v for (i, k), v in
                                                        q_discrepancy(result.net, result.replay, seed=len(measured)).items()}})
            except ValueError:   # no episode long enough yet
                pass
        return False

    result = train_dqn(config, progress=job.get("progress", False), callback=measure if every else None)
    episodes, seed = job.get("eval_episodes", 20), 100_000 + 1000 * config.seed
    ev, ev_last = result.agent.evaluate(episodes=episodes, seed=seed), None
    if result.last_state_dict is not None:      # the same evaluation of the network training ended with
        kept = {k: v.clone() for k, v in result.net.state_dict().items()}
        result.net.load_state_dict(result.last_state_dict)
        ev_last = result.agent.evaluate(episodes=episodes, seed=seed)
        result.net.load_state_dict(kept)
    return {"config": asdict(config), "history": result.history, "losses": result.losses, "eval": ev,
            "eval_last": ev_last, "checks": result.checks, "selected": result.selected,
            "q_discrepancy": measured,
            "seconds": result.seconds, "interrupted": result.interrupted,
            "state_dict": {k: v.detach().cpu() for k, v in result.net.state_dict().items()}}


def _act(net: QNetwork, x: torch.Tensor, state, deterministic: bool, config: DQNConfig):
    """Greedy, or (``deterministic=False``) epsilon-greedy with the final epsilon of training."""
    q, state = net(x, state)
    actions = q[0].argmax(-1)
    if not deterministic and config.eps_end > 0:
        explore = torch.rand(actions.shape, device=actions.device) < config.eps_end
        actions = torch.where(explore, torch.randint_like(actions, net.n_actions), actions)
    return actions, state


register_algorithm(Algorithm(
    "dqn", DQNConfig, lambda config, spaces: make_q_network(config, spaces.obs_dim, spaces.n_actions),
    _act,
    stack=lambda config: config.stack if config.agent == "stack" else 0))
