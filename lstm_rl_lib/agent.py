"""A trained agent of any of the library's algorithms: save it, load it, act with it step by step.

Every training function (:func:`lstm_rl_lib.reinforce.train_reinforce`, :func:`lstm_rl_lib.dqn.train_dqn`,
:func:`lstm_rl_lib.ppo.train_ppo`) returns a :class:`TrainResult` of the same shape: ``config``,
``net``, ``history`` (plain lists, one column ``env_steps`` for every algorithm), ``seconds``,
``interrupted``, and ``agent``, an :class:`Agent` that holds everything needed to act:

* the network and its config;
* the observation and action spaces (observations are encoded by
  :func:`lstm_rl_lib.envs.encode_observation`, the one place every agent does that);
* PPO's observation normalisation, frozen (it lives outside the network, so a ``state_dict`` alone
  would silently lose it);
* the frame stack of a stacking DQN.

The caller holds the recurrent state, in the spirit of Stable-Baselines3's ``predict``::

    agent = Agent.load("agent.pt")
    state, start = None, True
    obs, _ = env.reset(seed=0)
    while True:
        action, state = agent.predict(obs, state, episode_start=start)
        obs, reward, terminated, truncated, _ = env.step(action)
        start = terminated or truncated
        if start:
            break

``state`` is whatever the agent needs to remember: the LSTM's ``(h, c)`` (tensors ``(1, B, H)``, or
``(h,)`` for a GRU), the last ``k`` observations of a stacking agent (an array ``(B, k, obs_dim)``), or
``None`` for a memory-less one. ``episode_start`` resets it where a new episode begins.
"""
from __future__ import annotations

import importlib
import time
import types
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from gymnasium import spaces as gspaces

from .envs import describe_env, encode_observation, make_vector_env, play_episodes, spaces_of
from .nets import reset_state
from .runtime import get_device

FORMAT = "lstm_rl_lib.agent/1"


# ----------------------------------------------------------------------------------------------
# What each algorithm contributes: how to build its network and how it turns outputs into actions
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Algorithm:
    """How :class:`Agent` builds and runs one algorithm's network (registered by the algorithm's module).

    ``build(config, spaces) -> nn.Module``; ``act(net, x, state, deterministic, config) -> (actions, state)``
    with ``x`` ``(1, B, obs_dim)``; ``stack(config)`` is the number of observations the agent
    concatenates (0: none); ``continuous_actions`` whether ``Box`` actions are allowed."""
    name: str
    config_class: type
    build: Callable
    act: Callable
    stack: Callable = lambda config: 0
    continuous_actions: bool = False


_ALGORITHMS: dict[str, Algorithm] = {}


def register_algorithm(algorithm: Algorithm) -> None:
    _ALGORITHMS[algorithm.name] = algorithm


def get_algorithm(name: str) -> Algorithm:
    """The registered :class:`Algorithm` ``name`` (``"ppo"``, ``"dqn"``, ``"reinforce"``)."""
    if name not in _ALGORITHMS:
        try:
            importlib.import_module(f"lstm_rl_lib.{name}")   # its module registers it on import
        except ModuleNotFoundError:
            pass
    if name not in _ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; the library's agents are {sorted(_ALGORITHMS) or ['ppo', 'dqn', 'reinforce']}")
    return _ALGORITHMS[name]


def push_frame(frames: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The last k observations ``(B, k, D)`` after ``x`` ``(B, D)`` arrives: oldest dropped, ``x`` last.
    The frame stack of DQN's ``"stack"`` agent, in training (``ObservationStacker``) and in :meth:`Agent.predict`."""
    frames = np.roll(frames, -1, axis=1)
    frames[:, -1] = x
    return frames


def normalize_observation(x: np.ndarray, mean: np.ndarray, var: np.ndarray, clip: float = 10.0) -> np.ndarray:
    """``(x - mean) / sqrt(var + 1e-8)`` clipped to ``[-clip, clip]``, as float32 (Stable-Baselines3's
    ``VecNormalize``); PPO's running normaliser and a loaded agent both call this."""
    return np.clip((x - mean) / np.sqrt(var + 1e-8), -clip, clip).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Spaces as plain data (a saved agent holds no pickled objects)
# ----------------------------------------------------------------------------------------------
def space_to_dict(space: gspaces.Space) -> dict:
    """A Gymnasium space as lists, numbers and strings (see :func:`space_from_dict`)."""
    if isinstance(space, gspaces.Box):
        return {"type": "Box", "low": space.low.tolist(), "high": space.high.tolist(), "shape": list(space.shape),
                "dtype": str(space.dtype)}
    if isinstance(space, gspaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gspaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "start": np.asarray(space.start).tolist()}
    if isinstance(space, gspaces.MultiBinary):
        return {"type": "MultiBinary", "n": space.n if isinstance(space.n, int) else list(space.n)}
    if isinstance(space, gspaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_dict(s) for s in space.spaces]}
    if isinstance(space, gspaces.Dict):
        return {"type": "Dict", "keys": list(space.spaces), "spaces": [space_to_dict(s) for s in space.spaces.values()]}
    raise TypeError(f"cannot save a space of type {type(space).__name__}")


def space_from_dict(d: dict) -> gspaces.Space:
    kind = d["type"]
    if kind == "Box":
        return gspaces.Box(np.array(d["low"], dtype=d["dtype"]), np.array(d["high"], dtype=d["dtype"]),
                           tuple(d["shape"]), dtype=d["dtype"])
    if kind == "Discrete":
        return gspaces.Discrete(d["n"], start=d["start"])
    if kind == "MultiDiscrete":
        return gspaces.MultiDiscrete(np.array(d["nvec"]), start=np.array(d["start"]))
    if kind == "MultiBinary":
        return gspaces.MultiBinary(d["n"] if isinstance(d["n"], int) else tuple(d["n"]))
    if kind == "Tuple":
        return gspaces.Tuple([space_from_dict(s) for s in d["spaces"]])
    if kind == "Dict":
        # a list of pairs keeps the saved key order (a plain dict would be sorted), and the order of the
        # keys is the order in which encode_observation concatenates the parts
        return gspaces.Dict(list(zip(d["keys"], (space_from_dict(s) for s in d["spaces"]))))
    raise ValueError(f"unknown space type {kind!r} in a saved agent")


# ----------------------------------------------------------------------------------------------
# The agent
# ----------------------------------------------------------------------------------------------
class Agent:
    """A trained network with everything it needs to act. Build one with ``result.agent`` or
    :meth:`Agent.load`; act with :meth:`predict`; score it with :meth:`evaluate`; keep it with :meth:`save`.

    Args:
        algorithm: ``"ppo"``, ``"dqn"`` or ``"reinforce"``.
        net: the trained network (its device is the agent's).
        config: the algorithm's config dataclass it was trained with.
        observation_space, action_space: the environment's spaces (one copy, not batched).
        obs_rms: ``(mean, var)`` of PPO's observation normalisation, or None.
    """

    def __init__(self, algorithm: str, net: torch.nn.Module, config, observation_space, action_space,
                 obs_rms: tuple[np.ndarray, np.ndarray] | None = None):
        self.algorithm = algorithm
        self._algo = get_algorithm(algorithm)
        self.net, self.config = net, config
        self.observation_space, self.action_space = observation_space, action_space
        shim = types.SimpleNamespace(observation_space=observation_space, action_space=action_space)
        self.spaces = spaces_of(shim, continuous_actions=self._algo.continuous_actions)
        self.obs_rms = None if obs_rms is None else (np.asarray(obs_rms[0], np.float64), np.asarray(obs_rms[1], np.float64))
        self.stack = int(self._algo.stack(config))

    def __repr__(self) -> str:
        kind = getattr(self.config, "agent", None) or getattr(self.config, "policy", "")
        return (f"Agent({self.algorithm}, {kind}, env={describe_env(self.config.env) if self.config.env else None}, "
                f"obs_dim={self.spaces.obs_dim}, actions={self.action_space}, device={self.device})")

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def recurrent(self) -> bool:
        return bool(getattr(self.net, "recurrent", False))

    def initial_state(self, batch_size: int = 1):
        """The state at an episode's start for ``batch_size`` environments (zeros; None without memory)."""
        if self.stack:
            return np.zeros((batch_size, self.stack, self.spaces.obs_dim), np.float32)
        return self.net.initial_state(batch_size) if self.recurrent else None

    def _reset(self, state, starts: np.ndarray):
        if state is None or not starts.any():
            return state
        if self.stack:
            state = state.copy()
            state[starts] = 0.0
            return state
        return reset_state(state, torch.as_tensor(starts, device=state[0].device))

    @torch.no_grad()
    def predict(self, obs, state=None, episode_start=None, deterministic: bool = True):
        """Actions for one observation or a batch, and the state to pass with the next call.

        Args:
            obs: an observation of the environment (as ``env.step`` returns it), or a batch of them
                (as a vector environment returns them).
            state: what the previous call returned; ``None`` at the very start (zeros).
            episode_start: True (or a boolean array, one per environment) where ``obs`` is the first
                observation of a new episode: the state is reset there before acting.
            deterministic: the most likely action (discrete), the mean (continuous), the greedy
                action (DQN); else a sample (DQN: epsilon-greedy with the final epsilon of training).

        Returns ``(actions, state)``: an action (or an array of ``B`` actions) ready for ``env.step``.
        """
        x = encode_observation(obs, self.spaces)
        single = x.ndim == 1
        x = x[None] if single else x
        if x.ndim != 2:
            raise ValueError(f"obs encodes to shape {x.shape}; expected ({self.spaces.obs_dim},) for one observation "
                             f"or (B, {self.spaces.obs_dim}) for a batch")
        B = x.shape[0]
        if self.obs_rms is not None:
            x = normalize_observation(x, *self.obs_rms)
        if state is None:
            state = self.initial_state(B)
        elif episode_start is not None:
            starts = np.broadcast_to(np.asarray(episode_start, bool).reshape(-1), (B,))
            state = self._reset(state, starts)
        core_state = state
        if self.stack:
            state = push_frame(state, x)
            x, core_state = state.reshape(B, -1).copy(), None
        actions, core_state = self._algo.act(self.net, torch.as_tensor(x, device=self.device)[None], core_state,
                                             deterministic, self.config)
        a = actions.cpu().numpy()
        if self.spaces.continuous_actions:
            a = np.clip(a, np.array(self.spaces.action_low, np.float32), np.array(self.spaces.action_high, np.float32))
        if not self.stack:
            state = core_state
        return (a[0] if single else a), state

    def evaluate(self, env=None, episodes: int = 20, seed: int = 100_000, deterministic: bool = True,
                 env_kwargs: dict | None = None, numpy_env: bool = False) -> dict:
        """Play ``episodes`` episodes, all at once, one per copy of a vector environment (copy k reset
        with seed ``seed + k``); the state is carried within each episode.

        ``env`` defaults to the one the agent was trained on (its ``env_kwargs`` too). ``numpy_env``:
        step the copies at once in NumPy where the task has such a version (see
        :func:`lstm_rl_lib.envs.make_vector_env`; the same episodes up to the last bits of ``sin``).
        Returns ``{"return", "length", "success"}`` lists (success NaN where the task does not report it)."""
        if env is None:
            env = self.config.env
            env_kwargs = self.config.env_kwargs if env_kwargs is None else env_kwargs
            if env is None:
                raise ValueError("this agent was trained on an environment factory, which is not saved with it; "
                                 "pass env=... (the same factory) to evaluate it")
        venv = make_vector_env(env, episodes, continuous_actions=self._algo.continuous_actions,
                               same_step_autoreset=numpy_env, numpy_env=numpy_env, **(env_kwargs or {}))
        got = spaces_of(venv, continuous_actions=self._algo.continuous_actions)
        if (got.obs_dim, got.n_actions) != (self.spaces.obs_dim, self.spaces.n_actions):
            venv.close()
            raise ValueError(f"the environment's observations encode to {got.obs_dim} numbers and it has "
                             f"{got.n_actions} actions; this agent was trained with {self.spaces.obs_dim} and "
                             f"{self.spaces.n_actions}")
        state = None

        def act(raw):
            nonlocal state
            actions, state = self.predict(raw, state, deterministic=deterministic)
            return actions

        return play_episodes(venv, act, seed)

    # -- files ----------------------------------------------------------------------------------
    def save(self, path) -> None:
        """One file with the weights, the config, the spaces and the observation statistics.

        Loadable with :meth:`Agent.load` without any of the training code's objects (it holds only
        tensors, numbers, strings and lists; ``torch.load(..., weights_only=True)`` reads it). An
        environment given as a factory is not saved (only its name): pass it to :meth:`evaluate`."""
        config = asdict(self.config)
        env = config["env"]
        config["env"] = env if isinstance(env, str) else None
        torch.save({"format": FORMAT, "algorithm": self.algorithm, "config": config, "env_name": describe_env(env),
                    "observation_space": space_to_dict(self.observation_space),
                    "action_space": space_to_dict(self.action_space),
                    "obs_rms": None if self.obs_rms is None else [torch.as_tensor(a) for a in self.obs_rms],
                    "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()}}, path)

    @classmethod
    def load(cls, path, device: str | None = None) -> "Agent":
        """The agent saved at ``path``, on ``device`` (default: CUDA when available, else the CPU)."""
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise ValueError(f"{path} is not an agent saved by lstm_rl_lib.agent (expected format {FORMAT!r}); "
                             "world models have their own MDNRNN.load / ConvVAE.load")
        algo = get_algorithm(saved["algorithm"])
        config = algo.config_class(**saved["config"])
        obs_space, act_space = space_from_dict(saved["observation_space"]), space_from_dict(saved["action_space"])
        shim = types.SimpleNamespace(observation_space=obs_space, action_space=act_space)
        net = algo.build(config, spaces_of(shim, continuous_actions=algo.continuous_actions))
        net.load_state_dict(saved["state_dict"])
        obs_rms = None if saved["obs_rms"] is None else tuple(t.numpy() for t in saved["obs_rms"])
        return cls(saved["algorithm"], net.to(get_device(device)), config, obs_space, act_space, obs_rms)


def load_agent(path, device: str | None = None) -> Agent:
    """:meth:`Agent.load`."""
    return Agent.load(path, device)


def evaluate(agent, env=None, episodes: int = 20, seed: int = 100_000, deterministic: bool = True,
             env_kwargs: dict | None = None) -> dict:
    """The evaluation of every algorithm: :meth:`Agent.evaluate` of ``agent`` (an :class:`Agent` or a
    :class:`TrainResult`)."""
    agent = agent.agent if isinstance(agent, TrainResult) else agent
    if not isinstance(agent, Agent):
        raise TypeError(f"evaluate needs an Agent or a training result; got {type(agent).__name__}")
    return agent.evaluate(env, episodes, seed, deterministic, env_kwargs)


# ----------------------------------------------------------------------------------------------
# What every training function returns
# ----------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """The result of a training function, the same shape for every algorithm.

    Attributes:
        config: the config it ran with.
        net: the trained network.
        history: plain lists of equal length; every algorithm has ``env_steps`` (cumulative
            environment steps when the row was written), ``seconds`` (wall time since the start),
            ``return``, ``length`` and ``success`` (NaN where the task does not report it), plus its
            own columns (see the algorithm's result class for what one row is).
        seconds: wall time of the whole training run.
        interrupted: True when Ctrl-C (or a callback) stopped training early.
        observation_space, action_space: the environment's spaces (for :attr:`agent`).
    """
    config: Any
    net: torch.nn.Module
    history: dict
    seconds: float = 0.0
    interrupted: bool = False
    observation_space: Any = field(default=None, repr=False)
    action_space: Any = field(default=None, repr=False)
    algorithm: ClassVar[str] = ""

    def _obs_rms(self):
        return None

    @property
    def agent(self) -> Agent:
        """An :class:`Agent` for acting, evaluating and saving (shares the trained network)."""
        return Agent(self.algorithm, self.net, self.config, self.observation_space, self.action_space, self._obs_rms())

    def save(self, path) -> None:
        """``self.agent.save(path)``."""
        self.agent.save(path)


class BestWeights:
    """Keep the best network seen during training, judged on held-out episodes.

    Every ``every`` environment steps, :meth:`offer` plays ``episodes`` episodes with the current
    network (deterministic actions; env copy k reset with seed ``seed + k``, the same episodes at every
    check) and keeps a copy of the weights if their mean return is at least the best so far (ties go
    to the later network). :meth:`restore` loads the kept weights into the network at the end of
    training and returns the last ones. Stable-Baselines3's ``EvalCallback(best_model_save_path=...)``
    does the same. Acting deterministically draws no random numbers, so the training run itself is
    the one it would be without the checks. The final evaluation must use other episodes than these
    (the library's evaluations start at seed 100,000; training passes ``seed = 900_000 + 1000 * seed``).
    ``checks`` records ``(env_steps, mean return)`` of every check, ``seconds`` their wall time. With
    running observation statistics (PPO), the statistics the kept network was checked with are kept
    with it. ``numpy_env``: play the
    checks in the task's NumPy vector version where it has one (:meth:`Agent.evaluate`)."""

    def __init__(self, every: int, episodes: int, seed: int, numpy_env: bool = False):
        if int(every) < 0 or int(episodes) < 1:
            raise ValueError(f"need select_every >= 0 (0: keep the last weights) and select_episodes >= 1; "
                             f"got {every} and {episodes}")
        self.every, self.episodes, self.seed, self.numpy_env = int(every), int(episodes), int(seed), bool(numpy_env)
        self.checks: list = []
        self.seconds = 0.0                       # wall time spent checking
        self.best: tuple | None = None           # (mean return, env_steps, state_dict)

    def offer(self, result: "TrainResult", env_steps: int) -> None:
        """Check the network of ``result`` if ``env_steps`` has passed the next multiple of ``every``."""
        if not self.every or env_steps < (len(self.checks) + 1) * self.every:
            return
        start = time.perf_counter()
        ev = result.agent.evaluate(episodes=self.episodes, seed=self.seed, numpy_env=self.numpy_env)
        score = float(np.mean(ev["return"]))
        self.checks.append((int(env_steps), score))
        if self.best is None or score >= self.best[0]:
            self.best = (score, int(env_steps),
                         {k: v.detach().clone() for k, v in result.net.state_dict().items()}, result._obs_rms())
        self.seconds += time.perf_counter() - start

    def restore(self, net: torch.nn.Module, rms=None) -> dict | None:
        """Load the kept weights into ``net`` (and the kept observation statistics into ``rms``, a running
        mean and variance with ``.mean`` and ``.var``, when given); returns the weights it had (None if
        nothing was kept)."""
        if self.best is None:
            return None
        last = {k: v.detach().clone() for k, v in net.state_dict().items()}
        net.load_state_dict(self.best[2])
        if rms is not None and self.best[3] is not None:
            rms.mean, rms.var = (a.copy() for a in self.best[3])
        return last


def check_callback(callback) -> None:
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function callback(result) -> bool (True stops training); "
                        f"got {type(callback).__name__}")


# ----------------------------------------------------------------------------------------------
# Save/load for a model built from one config (Chapter 6's VAE and world model)
# ----------------------------------------------------------------------------------------------
class SavedWithConfig:
    """``save(path)`` / ``Class.load(path)`` for a module built from one config dataclass
    (``self.config``, of type ``config_class``): the file holds the config and the weights, so a
    reloaded model has the same shape and gives the same outputs."""
    config_class: type

    def save(self, path) -> None:
        torch.save({"config": asdict(self.config), "state_dict": self.state_dict()}, path)

    @classmethod
    def load(cls, path, map_location=None):
        saved = torch.load(path, map_location=map_location, weights_only=True)
        model = cls(cls.config_class(**saved["config"]))
        model.load_state_dict(saved["state_dict"])
        return model
