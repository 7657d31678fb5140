"""REINFORCE with a recurrent policy: whole episodes, returns-to-go, a baseline, masking.

Chapter 3 teaches this module top to bottom: the config, the returns, the loss, the rollout,
the training loop. The algorithm is Williams (1992) with the policy conditioned on the history
through the LSTM state h_t (Wierstra et al. 2007, "recurrent policy gradients"):

    grad J = E[ sum_t grad log pi(a_t | h_t) * (G_t - b_t) ],   G_t = sum_{k >= t} gamma^(k-t) r_k

Because h_t depends on every earlier observation through the LSTM, ``grad log pi(a_t | h_t)``
flows back through the state into every earlier step: this is backpropagation through time
inside a policy gradient.

Shapes are time-major: ``(T, B)`` where B is the number of episodes in a batch and T the length
of the longest one; shorter episodes are padded and a ``mask`` (1 = real step, 0 = padding)
keeps the padding out of every sum.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch.distributions import Categorical

from .agent import Algorithm, TrainResult, check_callback, register_algorithm
from .agent import evaluate as evaluate_agent
from .envs import describe_env, encode_observation, make_env, make_vector_env, spaces_of
from .nets import CORES, make_policy
from .progress import TrainingProgress
from .runtime import get_device, seed_everything

BASELINES = ("none", "mean", "value")


# ----------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------
@dataclass
class ReinforceConfig:
    """Settings of :func:`train_reinforce`.

    Attributes:
        env: the environment, as anything :func:`lstm_rl_lib.envs.env_factory` accepts: a book task
            (``"tmaze"``, ``"cartpole-novel"``), a Gymnasium id or ``"module:Id"``, or a callable that
            returns a new ``gymnasium.Env``.
        env_kwargs: keyword arguments for it (e.g. ``{"length": 10}``).
        policy: ``"lstm"`` (recurrent) or ``"mlp"`` (feed-forward baseline, same interface).
        core: ``"lstm"`` or ``"gru"``, the recurrent core of ``policy="lstm"`` (:func:`lstm_rl_lib.nets.make_rnn`).
        hidden_size: LSTM state size (or width of the feed-forward net).
        forget_bias: initial forget-gate bias of the LSTM.
        num_envs: episodes per update; acting is batched over this many environments.
        updates: number of gradient updates (so ``updates * num_envs`` episodes in all).
        env_steps: a budget in environment steps instead: when set, training runs until the episodes
            played add up to at least this many steps, and ``updates`` is ignored. Use it to compare
            agents at the same experience: an agent whose episodes are short plays far fewer steps
            in the same number of updates.
        lr: Adam's learning rate.
        gamma: discount factor of the returns.
        baseline: ``"value"`` (a learned V(h_t), the value head), ``"mean"`` (the batch's mean return)
            or ``"none"``. A baseline does not change the expected gradient, only its variance. Only
            with ``"value"`` is the value head trained, and so only then is a truncated episode's
            return bootstrapped from it; otherwise the return stops at the time limit.
        value_coef: weight of the value head's squared error in the loss.
        entropy_coef: weight of the entropy bonus (keeps the policy exploring early on).
        normalize_advantages: rescale the advantages of a batch to mean 0, std 1 (over real steps).
            The gradient keeps its direction per batch but no longer scales with the size of the
            rewards, so one learning rate serves tasks whose returns are 4 (T-maze) or 500 (CartPole).
        max_grad_norm: global gradient-norm clip.
        max_episode_steps: cap on the length of a collected episode (the environment's own time
            limit applies first); None = no cap beyond the environment's.
        seed: seeds the environments, the weights and the action sampling.
        device: ``"cpu"``/``"cuda"``; None picks CUDA when available.
    """
    env: Any = "tmaze"
    env_kwargs: dict = field(default_factory=dict)
    policy: str = "lstm"
    core: str = "lstm"
    hidden_size: int = 32
    forget_bias: float = 1.0
    num_envs: int = 16
    updates: int = 500
    env_steps: int | None = None
    lr: float = 3e-3
    gamma: float = 0.99
    baseline: str = "value"
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    normalize_advantages: bool = True
    max_grad_norm: float = 1.0
    max_episode_steps: int | None = None
    seed: int = 0
    device: str | None = None

    def __post_init__(self):
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}; got {self.baseline!r}")
        if self.policy not in ("lstm", "mlp"):
            raise ValueError(f"policy must be 'lstm' or 'mlp'; got {self.policy!r}")
        if self.core not in CORES:
            raise ValueError(f"core must be one of {CORES}; got {self.core!r}")
        if self.num_envs < 1 or self.updates < 0:
            raise ValueError(f"num_envs must be >= 1 and updates >= 0; got {self.num_envs}, {self.updates}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1]; got {self.gamma}")
        if self.env_steps is not None and (int(self.env_steps) != self.env_steps or self.env_steps < 1):
            raise ValueError(f"env_steps must be None (a budget of updates) or a positive number of "
                             f"environment steps; got {self.env_steps!r}")


# ----------------------------------------------------------------------------------------------
# Returns and the loss
# ----------------------------------------------------------------------------------------------
def returns_to_go(rewards: torch.Tensor, mask: torch.Tensor, gamma: float,
                  bootstrap: torch.Tensor | None = None) -> torch.Tensor:
    """``G_t = r_t + gamma * G_{t+1}`` within each episode; 0 on padded steps.

    Args:
        rewards, mask: ``(T, B)``; ``mask[t, b] = 1`` for the real steps of episode b (a prefix).
        gamma: discount factor.
        bootstrap: ``(B,)`` value of the state after the last real step: 0 for an episode that
            *terminated*, an estimate V(s_T) for one that was *truncated* (a time limit). None = zeros.

    The return of step t is the reward *to go* from t: the reward of earlier steps is not
    something action a_t could have changed, and including it only adds variance.
    """
    if rewards.shape != mask.shape or rewards.dim() != 2:
        raise ValueError(f"rewards and mask must both be (T, B); got {tuple(rewards.shape)} and {tuple(mask.shape)}")
    T, B = rewards.shape
    future = torch.zeros(B, dtype=rewards.dtype, device=rewards.device) if bootstrap is None else bootstrap.to(rewards.dtype)
    out = torch.zeros_like(rewards)
    for t in reversed(range(T)):
        # on padded steps future stays the bootstrap value, ready for the last real step
        g = rewards[t] + gamma * future
        out[t] = g * mask[t]
        future = torch.where(mask[t] > 0, g, future)
    return out


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the real steps only (``mask`` = 1); padded steps count for nothing."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


def reinforce_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor,
                   mask: torch.Tensor, baseline: str = "value", value_coef: float = 0.5,
                   entropy_coef: float = 0.01, normalize_advantages: bool = False) -> tuple[torch.Tensor, dict]:
    """The REINFORCE loss of a padded batch of episodes.

    Args:
        logits: ``(T, B, A)``; values: ``(T, B)``; actions, returns, mask: ``(T, B)``.

    Returns the scalar loss and a dict of its parts (floats) for logging. Every term is a
    :func:`masked_mean`, so padded steps contribute nothing to the loss or its gradient.
    """
    dist = Categorical(logits=logits)
    logp = dist.log_prob(actions)
    if baseline == "value":
        b = values.detach()               # the baseline must not carry the policy's gradient
    elif baseline == "mean":
        b = masked_mean(returns, mask)
    elif baseline == "none":
        b = torch.zeros((), device=returns.device)
    else:
        raise ValueError(f"baseline must be one of {BASELINES}; got {baseline!r}")
    advantages = returns - b
    advantage_std = float(advantages[mask > 0].std()) if mask.sum() > 1 else 0.0   # before rescaling
    if normalize_advantages:
        real = advantages[mask > 0]
        advantages = (advantages - real.mean()) / (real.std() + 1e-8) if real.numel() > 1 else advantages
    policy_loss = -masked_mean(logp * advantages, mask)
    value_loss = masked_mean((values - returns) ** 2, mask) if baseline == "value" else torch.zeros((), device=returns.device)
    entropy = masked_mean(dist.entropy(), mask)
    loss = policy_loss + value_coef * value_loss - entropy_coef * entropy
    return loss, {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": entropy.item(),
                  "advantage_std": advantage_std}


# ----------------------------------------------------------------------------------------------
# Acting: one episode in each of B environments, batched
# ----------------------------------------------------------------------------------------------
@dataclass
class EpisodeBatch:
    """B whole episodes, padded to the longest. All tensors ``(T, B)`` unless noted.

    ``obs`` is ``(T, B, obs_dim)``; ``bootstrap`` is ``(B,)`` (V of the final state of truncated
    episodes, 0 otherwise); ``returns`` (B,) are the undiscounted episode returns; ``success``
    (B,) is ``info["success"]`` where the environment reports it, else NaN.
    """
    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor
    bootstrap: torch.Tensor
    returns: np.ndarray
    lengths: np.ndarray
    success: np.ndarray


@torch.no_grad()
def collect_episodes(venv, policy, device, max_steps: int | None = None, seed: int | None = None,
                     bootstrap_truncated: bool = True) -> EpisodeBatch:
    """Run exactly one episode in each sub-environment of ``venv``, all B in lockstep.

    The policy's state starts at zeros for every episode. A sub-environment whose episode has
    ended keeps stepping (Gymnasium's vector envs reset it on the next step) but nothing it
    does is recorded. For a truncated episode (and with ``bootstrap_truncated``, which only makes sense when
    the value head is trained) the value head's estimate of the final observation, with the state
    at that point, is stored as ``bootstrap``; otherwise ``bootstrap`` stays 0.
    """
    info_spaces = spaces_of(venv)
    B = venv.num_envs
    obs, _ = venv.reset(seed=seed)
    state = policy.initial_state(B)
    done = np.zeros(B, dtype=bool)
    steps = {k: [] for k in ("obs", "actions", "rewards", "mask")}
    bootstrap = torch.zeros(B, device=device)
    returns, lengths, success = np.zeros(B), np.zeros(B, dtype=int), np.full(B, np.nan)
    t = 0
    while not done.all() and (max_steps is None or t < max_steps):
        x = torch.as_tensor(encode_observation(obs, info_spaces), device=device)[None]
        logits, _, state = policy(x, state)
        actions = Categorical(logits=logits[0]).sample()
        next_obs, rewards, terminated, truncated, infos = venv.step(actions.cpu().numpy())
        live = ~done
        steps["obs"].append(x[0])
        steps["actions"].append(actions)
        steps["rewards"].append(torch.as_tensor(rewards, dtype=torch.float32, device=device))
        steps["mask"].append(torch.as_tensor(live, dtype=torch.float32, device=device))
        returns += rewards * live
        lengths += live
        t += 1
        capped = max_steps is not None and t >= max_steps
        ended = live & (terminated | truncated | capped)
        cut = ended & ~terminated                     # time limit, not the end of the task: bootstrap
        if bootstrap_truncated and cut.any():
            x_next = torch.as_tensor(encode_observation(next_obs, info_spaces), device=device)[None]
            _, v_next, _ = policy(x_next, state)
            bootstrap[torch.as_tensor(cut, device=device)] = v_next[0][torch.as_tensor(cut, device=device)]
        if "success" in infos:
            has = infos.get("_success", np.ones(B, dtype=bool))
            success[ended & has] = infos["success"][ended & has].astype(float)
        done |= ended
        obs = next_obs
    stack = {k: torch.stack(v) for k, v in steps.items()}
    return EpisodeBatch(obs=stack["obs"], actions=stack["actions"], rewards=stack["rewards"], mask=stack["mask"],
                        bootstrap=bootstrap, returns=returns, lengths=lengths, success=success)


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
@dataclass
class ReinforceResult(TrainResult):
    """What :func:`train_reinforce` returns (:class:`lstm_rl_lib.agent.TrainResult`).

    ``history`` has one row per update: ``update``, ``env_steps`` (cumulative), ``return``
    (mean undiscounted return of the batch's episodes), ``success`` (mean success, NaN if the
    task does not report it), ``length``, ``loss``, ``entropy``, ``advantage_std``, ``seconds``.
    ``policy`` is the trained network (the same object as ``net``).
    """
    algorithm = "reinforce"

    @property
    def policy(self) -> torch.nn.Module:
        return self.net


def build_policy(config: ReinforceConfig, spaces) -> torch.nn.Module:
    """The network of ``config`` for an environment with ``spaces`` (:class:`lstm_rl_lib.envs.SpacesInfo`)."""
    return make_policy(config.policy, spaces.obs_dim, spaces.n_actions, hidden_size=config.hidden_size,
                       forget_bias=config.forget_bias, core=config.core)


def train_reinforce(config: ReinforceConfig | None = None, progress: bool = True, callback=None,
                    **overrides) -> ReinforceResult:
    """Train a recurrent (or feed-forward) policy with REINFORCE on whole episodes.

    Each update: collect ``num_envs`` episodes with the current policy (batched acting), compute
    returns-to-go (bootstrapped at truncation with the value head when it is trained, i.e. with the
    ``"value"`` baseline), run the policy over the padded episodes from a zero state in one call,
    and take one Adam step on :func:`reinforce_loss`. ``callback(result_so_far)`` is called after
    every update (every row of the history); if it returns True training stops.
    Ctrl-C stops training and returns the policy and history so far.
    """
    config = ReinforceConfig(**{**(asdict(config) if config else {}), **overrides})
    check_callback(callback)
    seed_everything(config.seed)
    device = get_device(config.device)
    venv = make_vector_env(config.env, config.num_envs, **config.env_kwargs)
    spaces = spaces_of(venv)
    policy = build_policy(config, spaces).to(device)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    history = {k: [] for k in ("update", "env_steps", "return", "success", "length", "loss", "entropy",
                               "advantage_std", "seconds")}
    result = ReinforceResult(config=config, net=policy, history=history,
                             observation_space=venv.single_observation_space, action_space=venv.single_action_space)
    env_steps, start, stopped = 0, time.perf_counter(), False
    desc = f"REINFORCE {config.policy} {describe_env(config.env)} seed={config.seed}"
    budget = config.env_steps
    with TrainingProgress(config.updates if budget is None else budget, desc=desc, disable=not progress,
                          unit="update" if budget is None else "step") as bar:
        update = 0
        while (update < config.updates) if budget is None else (env_steps < budget):
            batch = collect_episodes(venv, policy, device, config.max_episode_steps,
                                     seed=[config.seed * 10_000 + k for k in range(config.num_envs)] if update == 0 else None,
                                     bootstrap_truncated=config.baseline == "value")
            returns = returns_to_go(batch.rewards, batch.mask, config.gamma, batch.bootstrap)
            logits, values, _ = policy(batch.obs, None)      # whole episodes, from a zero state
            loss, parts = reinforce_loss(logits, values, batch.actions, returns, batch.mask, config.baseline,
                                         config.value_coef, config.entropy_coef, config.normalize_advantages)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            optimizer.step()
            env_steps += int(batch.lengths.sum())
            update += 1
            bar.advance(1 if budget is None else int(batch.lengths.sum()))
            history["update"].append(update)
            history["env_steps"].append(env_steps)
            history["return"].append(float(batch.returns.mean()))
            history["success"].append(float(np.nanmean(batch.success)) if np.isfinite(batch.success).any() else float("nan"))
            history["length"].append(float(batch.lengths.mean()))
            history["loss"].append(loss.item())
            history["entropy"].append(parts["entropy"])
            history["advantage_std"].append(parts["advantage_std"])
            history["seconds"].append(time.perf_counter() - start)
            result.seconds = history["seconds"][-1]
            bar.set_postfix(ret=f"{history['return'][-1]:.1f}")
            if callback is not None and callback(result):
                stopped = True
                break
    venv.close()
    result.seconds, result.interrupted = time.perf_counter() - start, bar.interrupted or stopped
    return result


def gradient_spread(policy, env, batches: int = 50, num_envs: int = 32, baselines=BASELINES, gamma: float = 0.99,
                    seed: int = 0, env_kwargs: dict | None = None) -> dict:
    """What a baseline is for: the spread of the REINFORCE gradient estimate over repeated batches.

    Collects ``batches`` independent batches of ``num_envs`` episodes with ``policy`` (not trained
    here), and on each computes the policy-gradient estimate of :func:`reinforce_loss`'s policy term
    with each of ``baselines`` (no advantage normalisation, no entropy or value term), on the *same*
    episodes, so that the baseline is the only difference. For each baseline it returns
    ``{"mean": the average gradient (a flat tensor), "variance": the mean squared distance of a
    batch's gradient from that average, "relative": variance / |average|^2}``. A baseline that does
    not depend on the action leaves the average unchanged (up to sampling noise) and can only lower
    the variance; ``"value"`` needs the policy's value head to have been trained.
    """
    if batches < 2:
        raise ValueError(f"batches must be at least 2 to measure a spread; got {batches}")
    for b in baselines:
        if b not in BASELINES:
            raise ValueError(f"baselines must be among {BASELINES}; got {b!r}")
    device = next(policy.parameters()).device
    venv = make_vector_env(env, num_envs, **(env_kwargs or {}))
    params = [p for p in policy.parameters() if p.requires_grad]
    grads = {b: [] for b in baselines}
    try:
        for k in range(batches):
            batch = collect_episodes(venv, policy, device, seed=[seed * 100_000 + k * num_envs + j for j in range(num_envs)]
                                     if k == 0 else None, bootstrap_truncated=False)
            returns = returns_to_go(batch.rewards, batch.mask, gamma)
            logits, values, _ = policy(batch.obs, None)
            for b in baselines:
                loss, _ = reinforce_loss(logits, values, batch.actions, returns, batch.mask, b,
                                         value_coef=0.0, entropy_coef=0.0, normalize_advantages=False)
                g = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
                grads[b].append(torch.cat([(x if x is not None else torch.zeros_like(p)).flatten()
                                           for x, p in zip(g, params)]).detach().cpu())
    finally:
        venv.close()
    out = {}
    for b, gs in grads.items():
        g = torch.stack(gs)
        mean = g.mean(0)
        variance = float(((g - mean) ** 2).sum(1).mean())
        out[b] = {"mean": mean, "variance": variance, "relative": variance / max(float(mean.pow(2).sum()), 1e-30)}
    return out


#: The evaluation of every algorithm (:func:`lstm_rl_lib.agent.evaluate`): ``evaluate(result or agent,
#: env=None, episodes=20, seed=100_000, deterministic=True, env_kwargs=None)``; all episodes at once.
#: :func:`evaluate_policy` below plays them one after another and can carry the state across episodes
#: (the bug of Chapter 3's pitfalls).
evaluate = evaluate_agent


@torch.no_grad()
def evaluate_policy(policy, env: str, episodes: int = 100, env_kwargs: dict | None = None, seed: int = 12_345,
                    greedy: bool = False, reset_state: bool = True) -> dict:
    """Run ``episodes`` episodes one after another in one environment.

    ``greedy`` takes the most likely action instead of sampling. ``reset_state=False`` carries the
    LSTM state from one episode into the next: the bug Chapter 3's pitfalls demonstrate.
    Returns ``{"return": [...], "length": [...], "success": [...]}`` (success NaN when not reported).
    """
    device = next(policy.parameters()).device
    e = make_env(env, **(env_kwargs or {}))
    spaces = spaces_of(e)
    out = {"return": [], "length": [], "success": []}
    state = policy.initial_state(1)
    for k in range(episodes):
        obs, info = e.reset(seed=seed if k == 0 else None)
        if reset_state:
            state = policy.initial_state(1)
        total, length, done = 0.0, 0, False
        while not done:
            x = torch.as_tensor(encode_observation(obs, spaces), device=device)[None, None]
            logits, _, state = policy(x, state)
            action = int(logits[0, 0].argmax()) if greedy else int(Categorical(logits=logits[0, 0]).sample())
            obs, reward, terminated, truncated, info = e.step(action)
            total, length, done = total + reward, length + 1, terminated or truncated
        out["return"].append(total)
        out["length"].append(length)
        out["success"].append(float(info["success"]) if "success" in info else float("nan"))
    e.close()
    return out


def run_experiment(job: dict) -> dict:
    """Train and evaluate one configuration; a picklable job for :func:`lstm_rl_lib.runtime.map_processes`,
    the same shape as ``dqn.run_experiment`` and ``ppo.run_experiment`` (which add their own keys: DQN's
    ``losses`` and ``q_discrepancy``, PPO's ``obs_rms``).

    ``job``: ``{"config": {...ReinforceConfig fields...}, "eval_episodes": 20}``, and optionally
    ``"snapshot_at": k``: also keep the weights as they were after update k. Returns the config, the
    history, the greedy evaluation (:func:`evaluate`, seeds ``100_000 + 1000 * seed`` on), the
    training wall time, the trained weights (``state_dict``) and ``snapshot`` (None without
    ``snapshot_at``); :func:`policy_from` turns either back into a policy."""
    config = ReinforceConfig(**job["config"])
    at, snapshot = job.get("snapshot_at"), {}

    def keep(result):
        if result.history["update"][-1] == at:
            snapshot.update({k: v.detach().cpu().clone() for k, v in result.net.state_dict().items()})

    result = train_reinforce(config, progress=job.get("progress", False), callback=keep if at else None)
    ev = result.agent.evaluate(episodes=job.get("eval_episodes", 20), seed=100_000 + 1000 * config.seed)
    return {"config": asdict(config), "history": result.history, "eval": ev, "seconds": result.seconds,
            "interrupted": result.interrupted, "snapshot": snapshot or None,
            "state_dict": {k: v.detach().cpu() for k, v in result.net.state_dict().items()}}


def policy_from(run: dict, weights: str = "state_dict", device: str | None = None) -> torch.nn.Module:
    """The policy of a :func:`run_experiment` result, with its final weights (``weights="state_dict"``)
    or those kept at ``snapshot_at`` (``weights="snapshot"``), on ``device``."""
    if run.get(weights) is None:
        raise ValueError(f"this run has no {weights!r} weights (a snapshot exists only for jobs with 'snapshot_at' "
                         f"that reached that update); use 'state_dict' or 'snapshot'")
    config = ReinforceConfig(**run["config"])
    env = make_env(config.env, **config.env_kwargs)
    policy = build_policy(config, spaces_of(env))
    env.close()
    policy.load_state_dict(run[weights])
    return policy.to(get_device(device))


def _act(net, x: torch.Tensor, state, deterministic: bool, config: ReinforceConfig):
    logits, _, state = net(x, state)
    return (logits[0].argmax(-1) if deterministic else Categorical(logits=logits[0]).sample()), state


register_algorithm(Algorithm("reinforce", ReinforceConfig, build_policy, _act))
