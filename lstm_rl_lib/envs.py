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
any Gymnasium id       passed to ``gymnasium.make`` (e.g. ``"CliffWalking-v1"``; also ``"module:Id"``)
a factory              a callable that returns a new ``gymnasium.Env`` (your own environment)
=====================  =====================================================================

They are also registered with Gymnasium as ``lstm_rl/CartPoleNoVel-v1``,
``lstm_rl/CartPoleFlicker-v1``, ``lstm_rl/TMaze-v0``, ``lstm_rl/PendulumNoVel-v1`` and
``lstm_rl/CartPolePixels-v1``.

The library's agents accept any environment whose observations are a flat ``Box`` (used as it is),
``Discrete``/``MultiDiscrete`` (one-hot encoded), ``MultiBinary``, or a ``Tuple``/``Dict`` of those
(encoded part by part, :func:`encode_observation`), and whose action space is ``Discrete`` (PPO,
Chapter 5, also accepts a flat ``Box``); :func:`spaces_of` checks that and says clearly what is
wrong otherwise. An environment without a time limit is capped at :data:`DEFAULT_EPISODE_CAP` steps.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class UnsupportedSpaceError(ValueError):
    """An environment's observation or action space is one the library cannot handle."""


# ----------------------------------------------------------------------------------------------
# Spaces: what the library accepts, and the one place observations are encoded
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpacesInfo:
    """What a network needs to know about an environment.

    Attributes:
        obs_dim: length of the encoded observation vector (see :func:`encode_observation`).
        n_actions: number of discrete actions, or the length of a continuous (``Box``) action.
        discrete_obs: True when every part of the observation is one-hot or binary encoded (no ``Box``
            part), so that rescaling it would make no sense.
        continuous_actions: True for a ``Box`` action space (then ``action_low``/``action_high``
            hold its bounds as tuples).
        obs_space: the environment's own observation space (what :func:`encode_observation` encodes).
    """
    obs_dim: int
    n_actions: int
    discrete_obs: bool
    continuous_actions: bool = False
    action_low: tuple | None = None
    action_high: tuple | None = None
    obs_space: spaces.Space | None = field(default=None, repr=False, compare=False)


_ACCEPTED_OBS = ("flat Box (n,), Discrete, MultiDiscrete, MultiBinary, or a Tuple/Dict of those")


def _encoded_dim(space: spaces.Space, where: str = "observation space") -> tuple[int, bool]:
    """Length of the encoded vector of ``space`` and whether it holds no ``Box`` part; raises on the rest."""
    if isinstance(space, spaces.Discrete):
        return int(space.n), True
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.sum(space.nvec)), True
    if isinstance(space, spaces.MultiBinary):
        return int(np.prod(space.shape)), True
    if isinstance(space, spaces.Box):
        if len(space.shape) != 1:
            raise UnsupportedSpaceError(
                f"{where} {space} has shape {space.shape}; the library accepts {_ACCEPTED_OBS}. Images are "
                "learned through Chapter 6's VAE encoder (lstm_rl_lib.vae); for other arrays, flatten them first, "
                "e.g. gymnasium.wrappers.FlattenObservation.")
        return int(space.shape[0]), False
    if isinstance(space, (spaces.Tuple, spaces.Dict)):
        parts = space.spaces.items() if isinstance(space, spaces.Dict) else enumerate(space.spaces)
        dims = [_encoded_dim(s, f"{where}[{k!r}]") for k, s in parts]
        if not dims:
            raise UnsupportedSpaceError(f"{where} {space} is empty")
        return sum(d for d, _ in dims), all(b for _, b in dims)
    raise UnsupportedSpaceError(f"{where} {type(space).__name__} ({space}) is not supported; the library accepts "
                                f"{_ACCEPTED_OBS}.")


def spaces_of(env: gym.Env | gym.vector.VectorEnv, continuous_actions: bool = False) -> SpacesInfo:
    """Check ``env``'s spaces and say what a network needs to know about them.

    Observations: a flat ``Box`` is used as it is; ``Discrete`` and ``MultiDiscrete`` are one-hot
    encoded, ``MultiBinary`` is flattened, and a ``Tuple``/``Dict`` of those is encoded part by part
    and concatenated (as Stable-Baselines3 does). Images and other non-flat ``Box`` observations are
    refused. Actions: ``Discrete(n)``; with ``continuous_actions=True`` (an agent that can act in a
    ``Box``, like PPO) a flat, bounded ``Box`` too.

    Accepts a single environment or a vector environment (its per-environment spaces are used).
    Raises :class:`UnsupportedSpaceError` that names the space found and what is accepted.
    """
    obs_space = getattr(env, "single_observation_space", env.observation_space)
    act_space = getattr(env, "single_action_space", env.action_space)
    obs_dim, discrete = _encoded_dim(obs_space)
    if continuous_actions and isinstance(act_space, spaces.Box):
        if len(act_space.shape) != 1 or not (np.all(np.isfinite(act_space.low)) and np.all(np.isfinite(act_space.high))):
            raise UnsupportedSpaceError(f"action space {act_space} must be a flat Box of shape (n,) with finite bounds")
        return SpacesInfo(obs_dim=obs_dim, n_actions=int(act_space.shape[0]), discrete_obs=discrete,
                          continuous_actions=True, action_low=tuple(map(float, act_space.low)),
                          action_high=tuple(map(float, act_space.high)), obs_space=obs_space)
    if not isinstance(act_space, spaces.Discrete):
        if isinstance(act_space, spaces.Box):
            raise UnsupportedSpaceError(
                f"action space {act_space} is continuous; this agent chooses among Discrete(n) actions. "
                "Use PPO (lstm_rl_lib.ppo, Chapter 5), which accepts Box actions, or discretise the Box first.")
        if isinstance(act_space, (spaces.MultiDiscrete, spaces.MultiBinary)):
            raise UnsupportedSpaceError(
                f"action space {act_space} makes several discrete choices at once; the library's agents choose one "
                "action among Discrete(n). Map the combinations onto one Discrete(prod(nvec)) with an ActionWrapper.")
        raise UnsupportedSpaceError(
            f"action space {type(act_space).__name__} ({act_space}) is not supported; the library's agents "
            "choose among Discrete(n) actions (PPO also acts in a flat Box).")
    if getattr(act_space, "start", 0) != 0:
        raise UnsupportedSpaceError(f"action space {act_space} starts at {act_space.start}; actions must be 0..n-1")
    return SpacesInfo(obs_dim=obs_dim, n_actions=int(act_space.n), discrete_obs=discrete, obs_space=obs_space)


def _one_hot(values: np.ndarray, n: int, what: str) -> np.ndarray:
    if np.any((values < 0) | (values >= n)):
        raise ValueError(f"{what} {values} outside 0..{n - 1}")
    return np.eye(n, dtype=np.float32)[values]


def _encode(obs, space: spaces.Space) -> np.ndarray:
    if isinstance(space, spaces.Discrete):
        return _one_hot(np.asarray(obs, dtype=np.int64) - int(space.start), int(space.n), "discrete observation")
    if isinstance(space, spaces.MultiDiscrete):
        a = np.asarray(obs, dtype=np.int64) - np.asarray(space.start, dtype=np.int64)
        nvec = np.asarray(space.nvec).reshape(-1)
        a = a.reshape(a.shape[:a.ndim - space.nvec.ndim] + (len(nvec),))
        return np.concatenate([_one_hot(a[..., i], int(n), f"observation part {i}") for i, n in enumerate(nvec)], -1)
    if isinstance(space, spaces.MultiBinary):
        a = np.asarray(obs, dtype=np.float32)
        return a.reshape(a.shape[:a.ndim - len(space.shape)] + (-1,))
    if isinstance(space, spaces.Box):
        a = np.asarray(obs, dtype=np.float32)
        if a.shape[-1:] != space.shape:
            raise ValueError(f"observation has shape {a.shape}; expected last dimension {space.shape[0]}")
        return a
    if isinstance(space, spaces.Dict):
        return np.concatenate([_encode(obs[k], s) for k, s in space.spaces.items()], -1)
    return np.concatenate([_encode(o, s) for o, s in zip(obs, space.spaces)], -1)


def encode_observation(obs, info: SpacesInfo) -> np.ndarray:
    """Observations as float32 vectors ``(..., obs_dim)``: the one place every agent encodes what it sees.

    One-hot for ``Discrete``/``MultiDiscrete``, flattened ``MultiBinary``, ``Box`` unchanged, and the
    parts of a ``Tuple``/``Dict`` concatenated in order. Works for one observation or a batch (e.g. from
    a vector environment, whose ``Tuple``/``Dict`` observations are tuples/dicts of batched arrays)."""
    if info.obs_space is None:   # a SpacesInfo built by hand: Box or Discrete as its flags say
        space = spaces.Discrete(info.obs_dim) if info.discrete_obs else spaces.Box(-np.inf, np.inf, (info.obs_dim,))
    else:
        space = info.obs_space
    return _encode(obs, space)


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


#: Episodes of an environment that brings no time limit of its own are truncated after this many steps
#: (with a warning): an agent that waits for episodes to end would otherwise wait forever.
DEFAULT_EPISODE_CAP = 1_000

_ACCEPTED_ENVS = ("a book task name " + str(sorted(TASKS)) + ", a registered Gymnasium id (also 'module:Id', "
                  "which imports the module first), or a callable that returns a new gymnasium.Env "
                  "(e.g. lambda: FlattenObservation(gym.make(...)))")


def _has_time_limit(env: gym.Env) -> bool:
    """True when ``env`` ends its episodes by itself: a ``TimeLimit`` wrapper, a spec's
    ``max_episode_steps``, or a book task (their own limits)."""
    e = env
    while True:
        if isinstance(e, gym.wrappers.TimeLimit) or isinstance(e, TMaze):
            return True
        spec = getattr(e, "spec", None)
        if spec is not None and spec.max_episode_steps is not None:
            return True
        if not isinstance(e, gym.Wrapper):
            return False
        e = e.env


def _capped(env: gym.Env, what: str) -> gym.Env:
    if _has_time_limit(env):
        return env
    warnings.warn(f"{what} has no time limit (no TimeLimit wrapper, no max_episode_steps): an episode that has "
                  f"not ended after {DEFAULT_EPISODE_CAP} steps is truncated there (lstm_rl_lib.envs.DEFAULT_EPISODE_CAP). "
                  "Wrap it in gymnasium.wrappers.TimeLimit to choose the limit yourself.", UserWarning, stacklevel=3)
    return gym.wrappers.TimeLimit(env, max_episode_steps=DEFAULT_EPISODE_CAP)


def describe_env(env) -> str:
    """A short name of an environment spec for progress bars and saved agents."""
    if isinstance(env, str):
        return env
    return getattr(env, "__qualname__", None) or getattr(env, "__name__", None) or type(env).__name__


def env_factory(env, **kwargs):
    """A function that builds a new environment from ``env``, whatever form it was given in.

    ``env`` is one of: a book task name (see :data:`TASKS`), a registered Gymnasium id (also
    ``"module:Id"``, which imports ``module`` first, as ``gymnasium.make`` does), or a callable that
    returns a new ``gymnasium.Env`` (a class, a function, a lambda: vector environments need one
    environment per copy, so an instance cannot be shared). ``kwargs`` go to the task, to
    ``gymnasium.make``, or to the callable.

    Raises ``TypeError`` for anything else (an environment instance included) and ``ValueError``
    for an unknown name, each saying what was given and what is accepted. An environment without a
    time limit of its own is truncated after :data:`DEFAULT_EPISODE_CAP` steps, with a warning.
    """
    if isinstance(env, (gym.Env, gym.vector.VectorEnv)):
        raise TypeError(f"env must be {_ACCEPTED_ENVS}; got an environment instance ({type(env).__name__}). Pass a "
                        "function that builds it instead, e.g. env=lambda: MyEnv(...): the agents build one copy per "
                        "vectorised environment.")
    if isinstance(env, str):
        if env in TASKS:
            return lambda: TASKS[env](**kwargs)
        try:
            gym.make(env, **kwargs).close()      # fail now, with the name in the message, not inside a worker
        except (gym.error.Error, ModuleNotFoundError, ImportError) as err:
            raise ValueError(f"unknown task {env!r}: not one of the book's {sorted(TASKS)} and not a Gymnasium id "
                             f"({err}). env must be {_ACCEPTED_ENVS}.") from None
        return lambda: _capped(gym.make(env, **kwargs), f"Gymnasium environment {env!r}")
    if callable(env):
        name = describe_env(env)

        def build():
            made = env(**kwargs)
            if not isinstance(made, gym.Env):
                raise TypeError(f"the environment factory {name} returned {type(made).__name__}; it must return a "
                                "new gymnasium.Env each time it is called")
            return _capped(made, f"the environment built by {name}")
        return build
    raise TypeError(f"env must be {_ACCEPTED_ENVS}; got {type(env).__name__} ({env!r})")


def make_env(name, **kwargs) -> gym.Env:
    """One environment: a task of the book (see :data:`TASKS`), any Gymnasium id, or from a factory.

    Keyword arguments go to the task (``p`` for the flicker, ``length`` for the T-maze), to
    ``gymnasium.make`` or to the factory. Examples: ``make_env("tmaze", length=20)``,
    ``make_env("CliffWalking-v1")``, ``make_env(lambda: FlattenObservation(gym.make("Blackjack-v1")))``.
    See :func:`env_factory` for what is accepted.
    """
    return env_factory(name, **kwargs)()


def make_vector_env(name, num_envs: int, seed: int | None = None, asynchronous: bool = False,
                    same_step_autoreset: bool = False, continuous_actions: bool = False, numpy_env: bool = False,
                    **kwargs) -> gym.vector.VectorEnv:
    """``num_envs`` copies of :func:`make_env` ``(name, **kwargs)`` as a ``gymnasium.vector`` env.

    ``name`` is anything :func:`env_factory` accepts (a task name, a Gymnasium id, a factory).
    Sub-environments reset themselves when an episode ends. By default with Gymnasium's
    "next-step" autoreset (the step *after* a done returns the first observation of the new
    episode); with ``same_step_autoreset=True`` the step that ends an episode already returns
    the new episode's first observation and puts the last one in ``info["final_obs"]`` (what
    PPO needs to bootstrap a truncated episode). ``continuous_actions`` lets ``Box`` action
    spaces through the check of :func:`spaces_of`.
    If ``seed`` is given the vector env is reset once with seeds ``seed, seed+1, ...``.
    ``numpy_env=True`` steps all copies at once in NumPy where the task has such a version
    (``"cartpole-novel"`` and ``"pendulum-novel"`` without keyword arguments, same-step autoreset: see
    :data:`NUMPY_TASKS`) and is ignored elsewhere.
    """
    if int(num_envs) != num_envs or num_envs < 1:
        raise ValueError(f"num_envs must be at least 1; got {num_envs}")
    if numpy_env and isinstance(name, str) and name in NUMPY_TASKS and not kwargs and same_step_autoreset \
            and not asynchronous:
        venv = NUMPY_TASKS[name](num_envs)
        if seed is not None:
            venv.reset(seed=[seed + k for k in range(num_envs)])
        return venv
    build = env_factory(name, **kwargs)
    fns = [build for _ in range(num_envs)]
    mode = gym.vector.AutoresetMode.SAME_STEP if same_step_autoreset else gym.vector.AutoresetMode.NEXT_STEP
    venv = (gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode) if asynchronous
            else gym.vector.SyncVectorEnv(fns, autoreset_mode=mode))
    try:
        spaces_of(venv, continuous_actions)  # fail early, with a clear message, on spaces the library cannot use
    except UnsupportedSpaceError:
        venv.close()
        raise
    if seed is not None:
        venv.reset(seed=[seed + k for k in range(num_envs)])
    return venv


class NumpyVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` copies of one task stepped at once in NumPy, with same-step autoreset and a time limit.

    What the book's NumPy tasks share: copy ``k`` has its own random generator, so ``reset(seed=[s0, s1,
    ...])`` starts every copy where the Gymnasium task reset with the same seed starts; the step that ends
    an episode (terminated, or truncated at ``max_episode_steps``, as Gymnasium's ``TimeLimit``) returns the
    next episode's first observation and puts the last one in ``info["final_obs"]``, as
    ``make_vector_env(..., same_step_autoreset=True)``. A task gives its spaces and ``_start(k)`` (a new
    episode in copy ``k``), ``_advance(actions)`` (all copies one step: rewards, terminated) and ``_obs()``.
    """
    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, max_episode_steps: int, state_dim: int, observation_space: spaces.Box,
                 action_space: spaces.Space):
        if int(num_envs) != num_envs or num_envs < 1:
            raise ValueError(f"num_envs must be at least 1; got {num_envs}")
        if int(max_episode_steps) != max_episode_steps or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be at least 1; got {max_episode_steps}")
        self.num_envs, self.max_episode_steps = int(num_envs), int(max_episode_steps)
        self.single_observation_space, self.single_action_space = observation_space, action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.state = np.zeros((state_dim, self.num_envs))
        self.steps = np.zeros(self.num_envs, np.int64)
        self.rngs = [gym.utils.seeding.np_random(None)[0] for _ in range(self.num_envs)]

    def _begin(self, k: int) -> None:
        self._start(k)
        self.steps[k] = 0

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            seeds = [seed + k for k in range(self.num_envs)] if isinstance(seed, (int, np.integer)) else list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset needs one seed per copy ({self.num_envs}); got {len(seeds)}")
            self.rngs = [gym.utils.seeding.np_random(int(s))[0] for s in seeds]
        for k in range(self.num_envs):
            self._begin(k)
        return self._obs(), {}

    def step(self, actions):
        rewards, terminated = self._advance(actions)
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps
        obs = self._obs()
        done = terminated | truncated
        info = {}
        if done.any():
            final = np.empty(self.num_envs, dtype=object)
            for k in np.nonzero(done)[0]:
                final[k] = obs[k].copy()
                self._begin(k)
            info = {"final_obs": final, "_final_obs": done.copy()}
            obs = self._obs()
        return obs, rewards, terminated, truncated, info


class CartPoleNoVelVectorEnv(NumpyVectorEnv):
    """``"cartpole-novel"`` in NumPy (:class:`NumpyVectorEnv`): the physics, time limit, rewards and
    observations of CartPole-v1 behind :class:`MaskObservation` ``keep=(0, 2)``, on arrays instead of one
    copy at a time (Gymnasium's own ``CartPoleVectorEnv`` does the same but only with next-step autoreset).
    The copies follow Gymnasium's dynamics up to the last bits of NumPy's vectorised ``sin``/``cos``.
    :func:`make_vector_env` builds it with ``numpy_env=True``.
    """
    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    x_threshold, theta_threshold = 2.4, 12 * 2 * np.pi / 360

    def __init__(self, num_envs: int, max_episode_steps: int = 500):
        high = np.array([self.x_threshold * 2, self.theta_threshold * 2], np.float32)
        super().__init__(num_envs, max_episode_steps, 4, spaces.Box(-high, high, dtype=np.float32),
                         spaces.Discrete(2))

    def _start(self, k: int) -> None:
        self.state[:, k] = self.rngs[k].uniform(-0.05, 0.05, size=(4,))

    def _obs(self) -> np.ndarray:
        return self.state[[0, 2]].T.astype(np.float32)

    def _advance(self, actions):
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or not ((actions == 0) | (actions == 1)).all():
            raise ValueError(f"need one action in {{0, 1}} per copy ({self.num_envs}); got {actions!r}")
        x, x_dot, theta, theta_dot = self.state
        force = np.where(actions == 1, self.force_mag, -self.force_mag)
        costheta, sintheta = np.cos(theta), np.sin(theta)
        total_mass, polemass_length = self.masspole + self.masscart, self.masspole * self.length
        temp = (force + polemass_length * np.square(theta_dot) * sintheta) / total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * np.square(costheta) / total_mass))
        xacc = temp - polemass_length * thetaacc * costheta / total_mass
        self.state = np.stack([x + self.tau * x_dot, x_dot + self.tau * xacc,
                               theta + self.tau * theta_dot, theta_dot + self.tau * thetaacc])
        x, theta = self.state[0], self.state[2]
        terminated = (x < -self.x_threshold) | (x > self.x_threshold) | (theta < -self.theta_threshold) | (
            theta > self.theta_threshold)
        return np.ones(self.num_envs), terminated


class PendulumNoVelVectorEnv(NumpyVectorEnv):
    """``"pendulum-novel"`` in NumPy (:class:`NumpyVectorEnv`): the dynamics, 200-step time limit, rewards
    and observations of Pendulum-v1 behind :class:`MaskObservation` ``keep=(0, 1)`` (the cosine and sine of
    the angle; no angular velocity), on arrays. Actions are torques of shape ``(num_envs, 1)``, clipped to
    [-2, 2] as Pendulum-v1 clips them. The copies follow Gymnasium's dynamics up to the last bits of NumPy's
    vectorised ``sin``/``cos``. :func:`make_vector_env` builds it with ``numpy_env=True``.
    """
    g, m, l, dt, max_speed, max_torque = 10.0, 1.0, 1.0, 0.05, 8.0, 2.0

    def __init__(self, num_envs: int, max_episode_steps: int = 200):
        super().__init__(num_envs, max_episode_steps, 2, spaces.Box(-1.0, 1.0, (2,), np.float32),
                         spaces.Box(-self.max_torque, self.max_torque, (1,), np.float32))

    def _start(self, k: int) -> None:
        self.state[:, k] = self.rngs[k].uniform(low=-np.array([np.pi, 1.0]), high=np.array([np.pi, 1.0]))

    def _obs(self) -> np.ndarray:
        th = self.state[0]
        return np.stack([np.cos(th), np.sin(th)], axis=1).astype(np.float32)

    def _advance(self, actions):
        actions = np.asarray(actions, np.float32)
        if actions.shape != (self.num_envs, 1) or not np.isfinite(actions).all():
            raise ValueError(f"need one finite torque per copy, shape ({self.num_envs}, 1); got {actions!r}")
        th, thdot = self.state
        u = np.clip(actions[:, 0], -self.max_torque, self.max_torque)
        costs = (((th + np.pi) % (2 * np.pi)) - np.pi) ** 2 + 0.1 * thdot ** 2 + 0.001 * (u ** 2)
        newthdot = np.clip(thdot + (3 * self.g / (2 * self.l) * np.sin(th) + 3.0 / (self.m * self.l ** 2) * u)
                           * self.dt, -self.max_speed, self.max_speed)
        self.state = np.stack([th + newthdot * self.dt, newthdot])
        return -costs, np.zeros(self.num_envs, bool)


#: The tasks with a NumPy vector version (see :func:`make_vector_env`'s ``numpy_env``).
NUMPY_TASKS = {"cartpole-novel": CartPoleNoVelVectorEnv, "pendulum-novel": PendulumNoVelVectorEnv}


class StackObservations(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Frame stacking: the last ``k`` observations side by side, oldest first, as one flat ``Box``.

    The memory-less baseline SB3's maintainers recommend trying first for a POMDP: a feed-forward
    agent on this wrapper sees ``k`` steps of history and no more. Observations are encoded first
    (:func:`encode_observation`: one-hot, flattened), and zeros stand in for the steps before the
    episode's start, as in DQN's ``"stack"`` agent. Works for every algorithm of the book, since it is
    an environment: ``train_ppo(env=stacked("cartpole-novel", 4), policy="mlp")``.
    """

    def __init__(self, env: gym.Env, k: int):
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k (the number of stacked observations) must be a positive integer; got {k!r}")
        gym.utils.RecordConstructorArgs.__init__(self, k=k)
        gym.ObservationWrapper.__init__(self, env)
        self.k = int(k)
        self._space = env.observation_space
        self.obs_dim, _ = _encoded_dim(env.observation_space)
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.k * self.obs_dim,), np.float32)
        self._frames = np.zeros((1, self.k, self.obs_dim), np.float32)

    def reset(self, **kwargs):
        self._frames = np.zeros((1, self.k, self.obs_dim), np.float32)
        return super().reset(**kwargs)

    def observation(self, observation):
        from .agent import push_frame      # the one frame-stack update of the library

        self._frames = push_frame(self._frames, _encode(observation, self._space).reshape(1, -1))
        return self._frames.reshape(-1).copy()


class stacked:
    """An environment factory: ``env`` (anything :func:`env_factory` takes) with :class:`StackObservations`
    of ``k`` around it. Pass it as ``env`` to any config; it pickles, so it also runs in worker processes
    (for a name or id; a factory given as ``env`` must then be a module-level function)."""

    def __init__(self, env, k: int = 4, **kwargs):
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k (the number of stacked observations) must be a positive integer; got {k!r}")
        self.env, self.k, self.kwargs = env, int(k), kwargs
        env_factory(env, **kwargs)          # a wrong name fails here, in the caller's process

    def __call__(self) -> gym.Env:
        return StackObservations(env_factory(self.env, **self.kwargs)(), self.k)

    def __repr__(self) -> str:
        return f"stacked({describe_env(self.env) if callable(self.env) else repr(self.env)}, k={self.k})"


def with_stack(config, k: int = 4):
    """``config`` with its environment wrapped in :class:`stacked` of ``k``: the frame-stacking baseline of
    any algorithm whose config has ``env`` and ``env_kwargs`` (pair it with ``policy="mlp"``). ``env_kwargs``
    move into the wrapper. ``config`` is a dataclass config (a new one is returned) or a dict of its fields
    (a new dict is returned)."""
    import dataclasses

    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.replace(config, env=stacked(config.env, k, **config.env_kwargs), env_kwargs={})
    if isinstance(config, dict) and "env" in config:
        return {**config, "env": stacked(config["env"], k, **config.get("env_kwargs", {})), "env_kwargs": {}}
    raise TypeError(f"with_stack needs a config dataclass or a dict with an 'env' entry; got {type(config).__name__}")


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
    but no longer counts). Copy k is reset with seed ``seed + k``. Either autoreset mode works (the
    first episode of each copy is the same). Returns ``{"return", "length", "success"}`` lists
    (success NaN where the task does not report it)."""
    n = venv.num_envs
    same_step = venv.metadata.get("autoreset_mode") == gym.vector.AutoresetMode.SAME_STEP
    raw, _ = venv.reset(seed=[seed + k for k in range(n)])
    live = np.ones(n, bool)
    ret, length, success = np.zeros(n), np.zeros(n, np.int64), np.full(n, np.nan)
    while live.any():
        raw, r, term, trunc, info = venv.step(act(raw))
        ret += r * live
        length += live
        ended = live & (term | trunc)
        if same_step:
            got = ended_success(info, ended)
            success[ended] = got[ended]
        elif "success" in info:
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
