"""Tabular Q-learning, SARSA and expected SARSA, with an optional window of past observations as the state.

Chapter 2 teaches this module. The algorithms are Sutton & Barto (2018), sections 6.4-6.6:

* **SARSA** (on-policy): ``Q(s,a) += alpha * (r + gamma * Q(s',a') - Q(s,a))`` where ``a'`` is the
  action the epsilon-greedy policy actually takes next;
* **Q-learning** (off-policy, Watkins 1989): the target uses ``max_a' Q(s',a')``, the greedy action,
  whatever the behaviour policy does next;
* **expected SARSA**: the target uses ``sum_a' pi(a'|s') Q(s',a')`` under the epsilon-greedy policy.

Termination vs truncation (Gymnasium 1.x): when an episode *terminates* (the task ended: the cliff
walker reached the goal, the T-maze agent turned) the next state has no future and the target is
just ``r``. When it is *truncated* (a time limit ran out) the future exists but is not observed:
the target still bootstraps, ``r + gamma * V(s')``.

The "state" the table is indexed by is built by :class:`HistoryState` from the observations: the
last ``window`` observations (``window=1`` is the usual memory-less agent; ``window=None`` the
whole history of the episode). This is how Chapter 2 measures what a memory-less agent cannot do.
"""
from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from .progress import TrainingProgress

ALGORITHMS = ("q_learning", "sarsa", "expected_sarsa")


@dataclass
class TabularConfig:
    """Settings of :func:`train_tabular`.

    Attributes:
        algorithm: ``"q_learning"``, ``"sarsa"`` or ``"expected_sarsa"``.
        episodes: number of training episodes.
        alpha: step size (learning rate) of the TD update, in (0, 1].
        gamma: discount factor in [0, 1]; 1 is fine for tasks that always end (CliffWalking).
        epsilon: exploration rate of the epsilon-greedy behaviour policy (at the start).
        epsilon_final: if set, epsilon decays linearly to this value over the episodes.
        window: how many recent observations make the state; 1 = memory-less, None = whole history.
        q_init: initial value of every Q(s, a).
        seed: seeds the environment (first reset) and the agent's random choices.
    """
    algorithm: str = "q_learning"
    episodes: int = 500
    alpha: float = 0.5
    gamma: float = 0.99
    epsilon: float = 0.1
    epsilon_final: float | None = None
    window: int | None = 1
    q_init: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}; got {self.algorithm!r}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1]; got {self.alpha}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1]; got {self.gamma}")
        for name in ("epsilon", "epsilon_final"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1]; got {value}")
        if self.window is not None and (int(self.window) != self.window or self.window < 1):
            raise ValueError(f"window must be a positive integer or None (whole history); got {self.window}")


class HistoryState:
    """Turns the stream of observations of an episode into a hashable table key.

    ``window=k`` keeps the last k observations (padded with -1 before the episode started);
    ``window=None`` keeps all of them. Observations must be integers (a ``Discrete`` space).
    """

    PAD = -1

    def __init__(self, window: int | None = 1):
        self.window = window
        self._obs: deque = deque(maxlen=window)

    def reset(self, obs) -> tuple:
        self._obs.clear()
        if self.window is not None:
            self._obs.extend([self.PAD] * (self.window - 1))
        return self.push(obs)

    def push(self, obs) -> tuple:
        self._obs.append(int(obs))
        return tuple(self._obs)


def epsilon_greedy_probs(q_row: np.ndarray, epsilon: float) -> np.ndarray:
    """Action probabilities of the epsilon-greedy policy for one state's action values ``q_row`` (A,).

    With probability epsilon a uniformly random action, otherwise a greedy one; ties between
    greedy actions are split evenly (never "the first one": see the chapter's pitfalls).
    """
    q_row = np.asarray(q_row, dtype=float)
    greedy = q_row == q_row.max()
    return epsilon / len(q_row) + (1 - epsilon) * greedy / greedy.sum()


def td_target(algorithm: str, reward: float, q_next: np.ndarray, next_action: int | None, gamma: float,
              epsilon: float, terminated: bool) -> float:
    """The TD target of one transition (Sutton & Barto eqs. 6.7, 6.8, 6.9).

    Args:
        q_next: Q(s', ·), the action values of the next state, shape (A,).
        next_action: the action taken in s' (used by SARSA only).
        terminated: True when s' ends the task; then there is no future and the target is ``reward``.
            A *truncated* transition is not terminated: it bootstraps like any other.
    """
    if terminated:
        return float(reward)
    if algorithm == "q_learning":
        future = np.max(q_next)
    elif algorithm == "sarsa":
        future = q_next[next_action]
    elif algorithm == "expected_sarsa":
        future = epsilon_greedy_probs(q_next, epsilon) @ q_next
    else:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}; got {algorithm!r}")
    return float(reward + gamma * future)


@dataclass
class TabularResult:
    """What :func:`train_tabular` returns.

    ``history`` has one entry per episode: ``return`` (undiscounted, of the behaviour policy),
    ``length``, ``success`` (from ``info["success"]`` when the environment reports it, else None),
    ``epsilon``. ``Q`` maps a state key (a tuple of observations) to an array of action values.
    """
    config: TabularConfig
    Q: dict
    history: dict = field(default_factory=dict)
    interrupted: bool = False

    def greedy_action(self, state: tuple, rng: np.random.Generator | None = None) -> int:
        q = self.Q.get(state)
        if q is None:
            q = np.full(self.n_actions, self.config.q_init)
        best = np.flatnonzero(q == q.max())
        return int(best[0] if rng is None else rng.choice(best))

    @property
    def n_actions(self) -> int:
        return len(next(iter(self.Q.values()))) if self.Q else 0


def _check_discrete(env: gym.Env) -> int:
    if not isinstance(env.observation_space, gym.spaces.Discrete):
        raise ValueError(f"tabular methods need a Discrete observation space (one table row per observation); "
                         f"got {env.observation_space}. Use the neural agents of Chapters 3-5 for Box observations.")
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise ValueError(f"tabular methods need a Discrete action space; got {env.action_space}")
    return int(env.action_space.n)


def train_tabular(env: gym.Env, config: TabularConfig | None = None, progress: bool = True,
                  **overrides) -> TabularResult:
    """Train a tabular agent on ``env`` (Discrete observations and actions) with epsilon-greedy exploration.

    The state is :class:`HistoryState` ``(config.window)`` of the observations. The environment is
    reset with ``seed=config.seed`` once, then without a seed (Gymnasium's convention: one seeded
    reset starts a reproducible stream of episodes). Ctrl-C stops training and returns the
    table and history so far (``result.interrupted``).
    """
    config = TabularConfig(**{**(config.__dict__ if config else {}), **overrides})
    n_actions = _check_discrete(env)
    rng = np.random.default_rng(config.seed)
    Q: dict = defaultdict(lambda: np.full(n_actions, config.q_init, dtype=float))
    history = {"return": [], "length": [], "success": [], "epsilon": []}
    state_of = HistoryState(config.window)

    def act(state, eps):
        return int(rng.choice(n_actions, p=epsilon_greedy_probs(Q[state], eps)))

    desc = f"{config.algorithm} window={config.window}"
    with TrainingProgress(config.episodes, desc=desc, disable=not progress) as bar:
        for episode in bar:
            eps = config.epsilon
            if config.epsilon_final is not None and config.episodes > 1:
                eps += (config.epsilon_final - config.epsilon) * episode / (config.episodes - 1)
            obs, info = env.reset(seed=config.seed if episode == 0 else None)
            state = state_of.reset(obs)
            action = act(state, eps)
            total, length = 0.0, 0
            while True:
                obs, reward, terminated, truncated, info = env.step(action)
                next_state = state_of.push(obs)
                # SARSA's target needs the next action before the update; the others choose it after,
                # so that it sees the updated values when s' == s.
                next_action = act(next_state, eps) if config.algorithm == "sarsa" else None
                target = td_target(config.algorithm, reward, Q[next_state], next_action, config.gamma, eps, terminated)
                Q[state][action] += config.alpha * (target - Q[state][action])
                total, length = total + reward, length + 1
                if terminated or truncated:
                    break
                state = next_state
                action = next_action if next_action is not None else act(next_state, eps)
            history["return"].append(total)
            history["length"].append(length)
            history["success"].append(info.get("success"))
            history["epsilon"].append(eps)
            if episode % 50 == 0:
                bar.set_postfix(ret=f"{np.mean(history['return'][-50:]):.1f}")
    return TabularResult(config=config, Q=dict(Q), history=history, interrupted=bar.interrupted)


def evaluate_greedy(env: gym.Env, result: TabularResult, episodes: int = 100, seed: int = 10_000,
                    max_steps: int = 1000) -> dict:
    """Run the greedy policy of ``result`` (ties broken at random) for ``episodes`` episodes.

    Returns lists, one entry per episode: ``return``, ``length``, ``success`` (``info["success"]``,
    False when the environment does not report it) and ``terminated`` (the episode ended by the
    task, not by a time limit). ``max_steps`` guards against a greedy policy that walks into a wall
    forever in an environment without a time limit.
    """
    _check_discrete(env)
    rng = np.random.default_rng(seed)
    state_of = HistoryState(result.config.window)
    out = {"return": [], "length": [], "success": [], "terminated": []}
    for episode in range(episodes):
        obs, info = env.reset(seed=seed if episode == 0 else None)
        state, total, length = state_of.reset(obs), 0.0, 0
        while True:
            obs, reward, terminated, truncated, info = env.step(result.greedy_action(state, rng))
            state = state_of.push(obs)
            total, length = total + reward, length + 1
            if terminated or truncated or length >= max_steps:
                break
        out["return"].append(total)
        out["length"].append(length)
        out["success"].append(bool(info.get("success", False)) if (terminated or truncated) else False)
        out["terminated"].append(bool(terminated))
    return out


def discounted_return(rewards, gamma: float) -> float:
    """``sum_t gamma^t r_t`` of one episode's rewards."""
    g = 0.0
    for r in reversed(list(rewards)):
        g = r + gamma * g
    return g
