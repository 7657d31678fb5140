"""The partially observable tasks of the book, as Gymnasium 1.x environments and wrappers.

Every later chapter names its tasks through :func:`make_env` (one environment) or
:func:`make_vector_env` (a ``gymnasium.vector`` batch):

=====================  =====================================================================
name                   what it is
=====================  =====================================================================
``"cartpole-novel"``   CartPole-v1 without the two velocities (:class:`MaskObservation`)
``"cartpole-flicker"`` CartPole-v1 whose whole observation is zeroed with probability ``p``
                       (:class:`FlickerObservation`, Hausknecht & Stone 2015)
``"tmaze"``            the T-maze of Bakker (2001) with a corridor of ``length`` cells (:class:`TMaze`)
``"pendulum-novel"``   Pendulum-v1 without the angular velocity: (cos, sin) of the angle only
                       (continuous actions; Chapter 5)
``"cartpole-pixels"``  CartPole-v1 seen as one 64 x 64 grey-scale frame (:class:`PixelCartPole`;
                       Chapter 6's world model)
any Gymnasium id       passed to ``gymnasium.make`` (e.g. ``"CliffWalking-v1"``)
=====================  =====================================================================

They are also registered with Gymnasium as ``lstm_rl/CartPoleNoVel-v1``,
``lstm_rl/CartPoleFlicker-v1``, ``lstm_rl/TMaze-v0``, ``lstm_rl/PendulumNoVel-v1`` and
``lstm_rl/CartPolePixels-v1``.

The library's agents accept any environment whose observation space is a ``Box`` (used as it is)
or ``Discrete`` (one-hot encoded) and whose action space is ``Discrete`` (PPO, Chapter 5, also
accepts a flat ``Box``); :func:`spaces_of` checks that and says clearly what is wrong otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class UnsupportedSpaceError(ValueError):
    """An environment's observation or action space is one the library cannot handle."""


# ----------------------------------------------------------------------------------------------
# Spaces: what the library accepts
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpacesInfo:
    """What a network needs to know about an environment.

    Attributes:
        obs_dim: length of the encoded observation vector (``n`` for ``Discrete(n)``).
        n_actions: number of discrete actions, or the length of a continuous (``Box``) action.
        discrete_obs: True when observations are integers to be one-hot encoded.
        continuous_actions: True for a ``Box`` action space (then ``action_low``/``action_high``
            hold its bounds as tuples).
    """
    obs_dim: int
    n_actions: int
    discrete_obs: bool
    continuous_actions: bool = False
    action_low: tuple | None = None
    action_high: tuple | None = None


def spaces_of(env: gym.Env | gym.vector.VectorEnv, continuous_actions: bool = False) -> SpacesInfo:
    """Check that ``env`` has ``Box``/``Discrete`` observations and ``Discrete`` actions.

    Accepts a single environment or a vector environment (its per-environment spaces are used).
    With ``continuous_actions=True`` (an agent that can act in a ``Box``, like PPO) a flat,
    bounded ``Box`` action space is accepted too.
    Raises :class:`UnsupportedSpaceError` that names the space found and what is accepted.
    """
    obs_space = getattr(env, "single_observation_space", env.observation_space)
    act_space = getattr(env, "single_action_space", env.action_space)
    if isinstance(obs_space, spaces.Discrete):
        obs_dim, discrete = int(obs_space.n), True
    elif isinstance(obs_space, spaces.Box) and len(obs_space.shape) == 1:
        obs_dim, discrete = int(obs_space.shape[0]), False
    elif isinstance(obs_space, spaces.Box):
        raise UnsupportedSpaceError(
            f"observation space {obs_space} has shape {obs_space.shape}; the library accepts flat Box "
            "observations of shape (n,) or Discrete(n). Flatten it first, e.g. gymnasium.wrappers.FlattenObservation "
            "(images are handled by Chapter 6's VAE encoder).")
    else:
        raise UnsupportedSpaceError(
            f"observation space {type(obs_space).__name__} ({obs_space}) is not supported; the library accepts "
            "Box of shape (n,) or Discrete(n). For Dict/Tuple spaces use gymnasium.wrappers.FlattenObservation.")
    if continuous_actions and isinstance(act_space, spaces.Box):
        if len(act_space.shape) != 1 or not (np.all(np.isfinite(act_space.low)) and np.all(np.isfinite(act_space.high))):
            raise UnsupportedSpaceError(f"action space {act_space} must be a flat Box of shape (n,) with finite bounds")
        return SpacesInfo(obs_dim=obs_dim, n_actions=int(act_space.shape[0]), discrete_obs=discrete,
                          continuous_actions=True, action_low=tuple(map(float, act_space.low)),
                          action_high=tuple(map(float, act_space.high)))
    if not isinstance(act_space, spaces.Discrete):
        if isinstance(act_space, spaces.Box) and not continuous_actions:
            raise UnsupportedSpaceError(
                f"action space {act_space} is continuous; this agent chooses among Discrete(n) actions. "
                "Use PPO (lstm_rl_lib.ppo, Chapter 5), which accepts Box actions, or discretise the Box first.")
        raise UnsupportedSpaceError(
            f"action space {type(act_space).__name__} ({act_space}) is not supported; the library's agents "
            "choose among Discrete(n) actions. Discretise continuous actions first, e.g. with a wrapper that "
            "maps k choices onto the Box.")
    if getattr(act_space, "start", 0) != 0:
        raise UnsupportedSpaceError(f"action space {act_space} starts at {act_space.start}; actions must be 0..n-1")
    return SpacesInfo(obs_dim=obs_dim, n_actions=int(act_space.n), discrete_obs=discrete)


def encode_observation(obs, info: SpacesInfo) -> np.ndarray:
    """Observations as float32 vectors: one-hot for ``Discrete`` (shape ``(..., n)``), unchanged for ``Box``.

    Works for one observation or a batch (e.g. from a vector environment)."""
    if info.discrete_obs:
        obs = np.asarray(obs, dtype=np.int64)
        if np.any((obs < 0) | (obs >= info.obs_dim)):
            raise ValueError(f"discrete observation {obs} outside 0..{info.obs_dim - 1}")
        return np.eye(info.obs_dim, dtype=np.float32)[obs]
    obs = np.asarray(obs, dtype=np.float32)
    if obs.shape[-1] != info.obs_dim:
        raise ValueError(f"observation has shape {obs.shape}; expected last dimension {info.obs_dim}")
    return obs


# ----------------------------------------------------------------------------------------------
# Wrappers that hide information
# ----------------------------------------------------------------------------------------------
class MaskObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Keep only some entries of a flat ``Box`` observation.

    With CartPole-v1 and ``keep=(0, 2)`` this is the "NoVel" benchmark: the agent sees the cart
    position and the pole angle, but not their velocities. One observation cannot tell a pole
    that is falling from one that is rising; two consecutive ones can. A memory-less policy is
    known to stay around 50 return; a recurrent one can reach the maximum, 500.
    """

    def __init__(self, env: gym.Env, keep: tuple[int, ...]):
        gym.utils.RecordConstructorArgs.__init__(self, keep=keep)
        gym.ObservationWrapper.__init__(self, env)
        box = env.observation_space
        if not isinstance(box, spaces.Box) or len(box.shape) != 1:
            raise UnsupportedSpaceError(f"MaskObservation needs a flat Box observation space; got {box}")
        keep = tuple(int(k) for k in keep)
        if not keep or min(keep) < 0 or max(keep) >= box.shape[0]:
            raise ValueError(f"keep={keep} must be indices into an observation of length {box.shape[0]}")
        self.keep = np.array(keep)
        self.observation_space = spaces.Box(box.low[self.keep], box.high[self.keep], dtype=box.dtype)

    def observation(self, observation):
        return observation[self.keep]


class FlickerObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """With probability ``p`` the whole observation is replaced by zeros (Hausknecht & Stone 2015, DRQN).

    The agent cannot tell a blank frame from a real observation of all zeros, and on a blank
    step it must act on what it remembers. The flicker has its own random generator, seeded
    by ``reset(seed=...)``, so it is reproducible and does not disturb the environment's own.
    ``info["flickered"]`` says whether the current observation was blanked.
    """

    def __init__(self, env: gym.Env, p: float = 0.5):
        gym.utils.RecordConstructorArgs.__init__(self, p=p)
        gym.ObservationWrapper.__init__(self, env)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"flicker probability p must be in [0, 1]; got {p}")
        box = env.observation_space
        if not isinstance(box, spaces.Box):
            raise UnsupportedSpaceError(f"FlickerObservation needs a Box observation space; got {box}")
        self.p = float(p)
        low = np.minimum(box.low, 0).astype(box.dtype)
        high = np.maximum(box.high, 0).astype(box.dtype)
        self.observation_space = spaces.Box(low, high, dtype=box.dtype)   # zeros must be inside the space
        self._rng: np.random.Generator | None = None
        self._flickered = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._rng = np.random.default_rng([seed, 0xF11C])
        elif self._rng is None:
            self._rng = np.random.default_rng(int(self.env.np_random.integers(2**63)))
        obs = self.observation(obs)
        return obs, {**info, "flickered": self._flickered}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs = self.observation(obs)
        return obs, reward, terminated, truncated, {**info, "flickered": self._flickered}

    def observation(self, observation):
        self._flickered = bool(self._rng.random() < self.p)
        return np.zeros_like(observation) if self._flickered else observation


# ----------------------------------------------------------------------------------------------
# CartPole seen as pixels (Chapter 6)
# ----------------------------------------------------------------------------------------------
# CartPole-v1's geometry (gymnasium.envs.classic_control.cartpole)
X_THRESHOLD = 2.4
POLE_HALF_LENGTH = 0.5


def render_cartpole(x: np.ndarray, theta: np.ndarray, size: int = 64, pole_scale: float = 2.5) -> np.ndarray:
    """Frames ``(N, size, size)`` in ``[0, 1]`` (float32) of carts at ``x`` with poles at angle ``theta``.

    The track spans the frame's width (``x`` in ``[-2.4, 2.4]`` plus a margin); the cart is a
    filled rectangle on a fixed row, the pole a thick segment from the cart's top, tilted by
    ``theta`` (radians, clockwise positive as in CartPole). The pole is drawn ``pole_scale`` times
    CartPole's length (1.0 m) so that small angles are visible at 64 x 64 (with 2.5, a tilt of 0.05 rad
    moves the tip by about 1.3 pixels). Edges are anti-aliased (grey over one pixel), so that motion by a
    fraction of a pixel, a typical single step, still changes the frame. Everything is computed on the
    whole batch at once: one distance-to-segment per pixel."""
    x, theta = np.atleast_1d(np.asarray(x, np.float32)), np.atleast_1d(np.asarray(theta, np.float32))
    if x.shape != theta.shape or x.ndim != 1:
        raise ValueError(f"x and theta must be 1-d arrays of the same length; got shapes {x.shape} and {theta.shape}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels; got {size}")
    world_width = 2 * X_THRESHOLD + 1.2                         # metres shown across the frame
    scale = size / world_width                                  # pixels per metre
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    cart_y = 0.8 * size                                         # the cart's top edge, in pixels from the top
    cart_x = (x + world_width / 2) * scale                      # (N,)
    half_w, height = 0.25 * scale, 0.15 * scale
    # anti-aliased: a pixel's brightness falls off linearly over the last pixel of an edge, so that a
    # motion of a fraction of a pixel changes the frame (hard 0/1 edges would hide most single steps)
    inside_x = np.clip(half_w + 0.5 - np.abs(cols[None] - cart_x[:, None, None]), 0.0, 1.0)
    cart = inside_x * ((rows[None] >= cart_y) & (rows[None] <= cart_y + height))
    # pole: segment from (cart_x, cart_y) to its tip, 2 * POLE_HALF_LENGTH metres long
    length = 2 * POLE_HALF_LENGTH * scale * pole_scale
    tip_x, tip_y = cart_x + length * np.sin(theta), cart_y - length * np.cos(theta)
    dx, dy = (tip_x - cart_x)[:, None, None], (tip_y - cart_y)[:, None, None]
    px, py = cols[None] - cart_x[:, None, None], rows[None] - cart_y
    t = np.clip((px * dx + py * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    dist = np.hypot(px - t * dx, py - t * dy)
    pole = np.clip(max(1.0, 0.06 * scale) + 0.5 - dist, 0.0, 1.0)
    track = np.abs(rows - (cart_y + height + 1.0)) <= 0.5
    frames = np.maximum(cart, pole).astype(np.float32)
    frames = np.maximum(frames, 0.5 * track[None].astype(np.float32))
    return frames


class PixelCartPole(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """CartPole-v1 whose observation is one grey-scale frame ``(size, size)`` in ``[0, 1]`` (float32),
    drawn by :func:`render_cartpole` from the cart position and pole angle. A single frame shows
    where the cart and pole are but not how fast they move: partially observable, like
    ``cartpole-novel``, but the agent must also learn to see. ``info["state"]`` holds the hidden
    4-d state (for plots and checks, not for the agent)."""

    def __init__(self, env: gym.Env, size: int = 64):
        gym.utils.RecordConstructorArgs.__init__(self, size=size)
        gym.ObservationWrapper.__init__(self, env)
        self.size = int(size)
        self.observation_space = spaces.Box(0.0, 1.0, (self.size, self.size), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self.observation(obs), {**info, "state": np.asarray(obs, np.float32)}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self.observation(obs), reward, terminated, truncated, {**info, "state": np.asarray(obs, np.float32)}

    def observation(self, observation):
        return render_cartpole([observation[0]], [observation[2]], self.size)[0]


# ----------------------------------------------------------------------------------------------
# The T-maze
# ----------------------------------------------------------------------------------------------
class TMaze(gym.Env):
    """The T-maze of Bakker (2001), *Reinforcement Learning with Long Short-Term Memory*.

    ::

                                    [ up   ]
        [start] [ ] [ ] ... [ ] [junction]
                                    [ down ]
        position 0   1 ...  length-1  length

    The agent starts at position 0, where it sees a **cue** (``up`` or ``down``, drawn at random
    each episode). It walks a corridor of ``length`` steps east to the junction, then must turn
    ``up`` or ``down``: the correct turn is the one the cue named. Every corridor cell looks
    the same and the junction does not repeat the cue, so **at the junction the cue is
    ``length`` steps in the past**: a memory-less agent can do no better than chance (50%).

    Observations, ``Discrete(4)``: 0 = start with cue up, 1 = start with cue down, 2 = corridor,
    3 = junction. Actions, ``Discrete(4)``: 0 = east, 1 = west, 2 = up, 3 = down.

    Rewards (Bakker's): +4 for the correct turn, -0.1 for the wrong turn (both end the episode:
    ``terminated``); -0.1 for bumping into a wall (up/down in the corridor, west at the start);
    0 otherwise. The episode is ``truncated`` after ``max_episode_steps`` steps (default
    ``4 * (length + 1)``). At the end of an episode ``info["success"]`` is True or False
    (False when truncated); ``info["cue"]`` is the cue (0 up, 1 down) at every step.

    ``move_penalty`` (default 0: Bakker's rewards) is subtracted on every step that does not move
    the agent east before the junction. With a long corridor a random walk almost never reaches the
    junction, so an agent never gets to find out that it must remember the cue; a small cost for
    dawdling (the "passive T-maze" of Ni et al. 2023 does the same) removes that exploration
    problem and leaves the memory problem alone. Chapter 5 uses it for its 50-cell corridor.
    """

    metadata = {"render_modes": ["ansi"]}
    EAST, WEST, UP, DOWN = 0, 1, 2, 3
    OBS_CUE_UP, OBS_CUE_DOWN, OBS_CORRIDOR, OBS_JUNCTION = 0, 1, 2, 3
    REWARD_CORRECT, REWARD_WRONG, REWARD_BUMP = 4.0, -0.1, -0.1

    def __init__(self, length: int = 10, max_episode_steps: int | None = None, render_mode: str | None = None,
                 move_penalty: float = 0.0):
        if int(length) != length or length < 1:
            raise ValueError(f"corridor length must be an integer >= 1; got {length}")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi'; got {render_mode!r}")
        self.length = int(length)
        self.max_episode_steps = int(max_episode_steps or 4 * (self.length + 1))
        self.render_mode = render_mode
        if move_penalty < 0:
            raise ValueError(f"move_penalty is a cost and must be >= 0; got {move_penalty}")
        self.move_penalty = float(move_penalty)
        self.observation_space = spaces.Discrete(4)
        self.action_space = spaces.Discrete(4)
        self.position, self.cue, self.steps = 0, 0, 0

    def _obs(self) -> int:
        if self.position == 0:
            return self.OBS_CUE_UP if self.cue == 0 else self.OBS_CUE_DOWN
        return self.OBS_JUNCTION if self.position == self.length else self.OBS_CORRIDOR

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.cue = int(self.np_random.integers(2)) if not options or "cue" not in options else int(options["cue"])
        if self.cue not in (0, 1):
            raise ValueError(f"options['cue'] must be 0 (up) or 1 (down); got {self.cue}")
        self.position, self.steps = 0, 0
        return self._obs(), {"cue": self.cue}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space} (0 east, 1 west, 2 up, 3 down)")
        action = int(action)
        self.steps += 1
        reward, terminated, info = 0.0, False, {"cue": self.cue}
        if self.position < self.length and action != self.EAST:
            reward -= self.move_penalty
        if self.position == self.length and action in (self.UP, self.DOWN):
            success = (action == self.UP) == (self.cue == 0)
            reward = self.REWARD_CORRECT if success else self.REWARD_WRONG
            terminated, info["success"] = True, success
        elif action == self.EAST:
            if self.position == self.length:
                reward += self.REWARD_BUMP
            self.position = min(self.position + 1, self.length)
        elif action == self.WEST:
            if self.position == 0:
                reward += self.REWARD_BUMP
            self.position = max(self.position - 1, 0)
        else:  # up or down anywhere but the junction: a wall
            reward += self.REWARD_BUMP
        truncated = not terminated and self.steps >= self.max_episode_steps
        if truncated:
            info["success"] = False
        return self._obs(), reward, terminated, truncated, info

    def render(self):
        if self.render_mode == "ansi":
            cells = ["S"] + ["."] * (self.length - 1) + ["J"]
            cells[self.position] = "@"
            return f"cue={'up' if self.cue == 0 else 'down'} " + "".join(cells)
        return None


# ----------------------------------------------------------------------------------------------
# One way to name tasks
# ----------------------------------------------------------------------------------------------
def _cartpole_novel(**kwargs) -> gym.Env:
    return MaskObservation(gym.make("CartPole-v1", **kwargs), keep=(0, 2))


def _cartpole_flicker(p: float = 0.5, **kwargs) -> gym.Env:
    return FlickerObservation(gym.make("CartPole-v1", **kwargs), p=p)


def _cartpole_pixels(size: int = 64, **kwargs) -> gym.Env:
    return PixelCartPole(gym.make("CartPole-v1", **kwargs), size=size)


def _pendulum_novel(**kwargs) -> gym.Env:
    return MaskObservation(gym.make("Pendulum-v1", **kwargs), keep=(0, 1))


TASKS = {
    "cartpole-novel": _cartpole_novel,
    "cartpole-flicker": _cartpole_flicker,
    "tmaze": TMaze,
    "pendulum-novel": _pendulum_novel,
    "cartpole-pixels": _cartpole_pixels,
}


def make_env(name: str, **kwargs) -> gym.Env:
    """One environment by name: a task of the book (see :data:`TASKS`) or any Gymnasium id.

    Keyword arguments go to the task (``p`` for the flicker, ``length`` for the T-maze) or to
    ``gymnasium.make``. Examples: ``make_env("tmaze", length=20)``, ``make_env("CliffWalking-v1")``.
    """
    if name in TASKS:
        return TASKS[name](**kwargs)
    try:
        return gym.make(name, **kwargs)
    except gym.error.Error as err:
        raise ValueError(f"unknown task {name!r}: not one of the book's {sorted(TASKS)} "
                         f"and not a Gymnasium id ({err})") from None


def make_vector_env(name: str, num_envs: int, seed: int | None = None, asynchronous: bool = False,
                    same_step_autoreset: bool = False, continuous_actions: bool = False,
                    **kwargs) -> gym.vector.VectorEnv:
    """``num_envs`` copies of :func:`make_env` ``(name, **kwargs)`` as a ``gymnasium.vector`` env.

    Sub-environments reset themselves when an episode ends. By default with Gymnasium's
    "next-step" autoreset (the step *after* a done returns the first observation of the new
    episode); with ``same_step_autoreset=True`` the step that ends an episode already returns
    the new episode's first observation and puts the last one in ``info["final_obs"]`` (what
    PPO needs to bootstrap a truncated episode). ``continuous_actions`` lets ``Box`` action
    spaces through the check of :func:`spaces_of`.
    If ``seed`` is given the vector env is reset once with seeds ``seed, seed+1, ...``.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1; got {num_envs}")
    fns = [lambda: make_env(name, **kwargs) for _ in range(num_envs)]
    mode = gym.vector.AutoresetMode.SAME_STEP if same_step_autoreset else gym.vector.AutoresetMode.NEXT_STEP
    venv = (gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode) if asynchronous
            else gym.vector.SyncVectorEnv(fns, autoreset_mode=mode))
    spaces_of(venv, continuous_actions)  # fail early, with a clear message, on spaces the library cannot use
    if seed is not None:
        venv.reset(seed=[seed + k for k in range(num_envs)])
    return venv


def ended_success(info: dict, done: np.ndarray) -> np.ndarray:
    """``info["success"]`` of the episodes that ended at this step of a same-step-autoreset vector env.

    With same-step autoreset the ended episode's info moves to ``info["final_info"]``; returns a
    float array over the environments, NaN where no episode ended or the task reports no success."""
    out = np.full(len(done), np.nan)
    final_info = info.get("final_info", {})
    if "success" in final_info:
        has = np.asarray(final_info.get("_success", done), bool) & done
        out[has] = np.asarray(final_info["success"], float)[has]
    return out


def play_episodes(venv: gym.vector.VectorEnv, act, seed: int = 100_000) -> dict:
    """One episode in each copy of ``venv``, all at once: the evaluation loop of every agent.

    ``act(raw_observations) -> actions`` is called once per step with the batch of raw
    observations (it keeps its own recurrent state; a copy whose episode ended keeps stepping
    but no longer counts). Copy k is reset with seed ``seed + k``. Returns ``{"return", "length",
    "success"}`` lists (success NaN where the task does not report it)."""
    n = venv.num_envs
    raw, _ = venv.reset(seed=[seed + k for k in range(n)])
    live = np.ones(n, bool)
    ret, length, success = np.zeros(n), np.zeros(n, np.int64), np.full(n, np.nan)
    while live.any():
        raw, r, term, trunc, info = venv.step(act(raw))
        ret += r * live
        length += live
        ended = live & (term | trunc)
        if "success" in info:
            has = np.asarray(info.get("_success", ended), bool) & ended
            success[has] = np.asarray(info["success"], float)[has]
        live &= ~ended
    venv.close()
    return {"return": ret.tolist(), "length": length.tolist(), "success": success.tolist()}


def _register() -> None:
    ids = {"lstm_rl/CartPoleNoVel-v1": "lstm_rl_lib.envs:_cartpole_novel",
           "lstm_rl/CartPoleFlicker-v1": "lstm_rl_lib.envs:_cartpole_flicker",
           "lstm_rl/TMaze-v0": "lstm_rl_lib.envs:TMaze",
           "lstm_rl/PendulumNoVel-v1": "lstm_rl_lib.envs:_pendulum_novel",
           "lstm_rl/CartPolePixels-v1": "lstm_rl_lib.envs:_cartpole_pixels"}
    for env_id, entry_point in ids.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point)


_register()
