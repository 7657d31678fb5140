"""Policy and value networks with an explicit hidden-state API, shared by Chapters 3-6.

Every network here maps a *time-major* batch of observations to action logits and state values:

    logits, values, state = net(obs, state, starts)

* ``obs``: ``(T, B, obs_dim)`` float tensor (one-hot encode ``Discrete`` observations first, see
  :func:`lstm_rl_lib.envs.encode_observation`);
* ``state``: the recurrent state carried *into* step 0, ``(h, c)`` each ``(1, B, H)``; ``None``
  means zeros (:meth:`RecurrentPolicy.initial_state`);
* ``starts``: optional ``(T, B)`` 0/1 tensor; ``starts[t, b] = 1`` means "a new episode begins at step
  t in column b": the state is **reset to zeros before** step t is processed. This is how one
  rollout can hold several episodes per column without information leaking between them
  (CleanRL's ``ppo_atari_lstm.py`` does the same with its ``done`` flags);
* ``logits``: ``(T, B, n_actions)``; ``values``: ``(T, B)``; the returned ``state`` is the one after
  step T-1, to be carried into the next call (``detach_state`` it between updates).

:class:`FeedForwardPolicy` has the same interface and ignores the state, so that an algorithm can
swap the memory out and nothing else.
"""
from __future__ import annotations

import torch
from torch import nn

State = tuple[torch.Tensor, torch.Tensor]


def _check_obs(obs: torch.Tensor, obs_dim: int) -> None:
    if obs.dim() != 3 or obs.shape[-1] != obs_dim:
        raise ValueError(f"obs must have shape (T, B, obs_dim={obs_dim}); got {tuple(obs.shape)}. "
                         "For one step of a batch use obs[None]; for one sequence use obs[:, None].")


def reset_state(state: State, starts: torch.Tensor) -> State:
    """Zero the state of the columns where ``starts`` (shape ``(B,)``) is 1."""
    keep = (1.0 - starts.float()).view(1, -1, 1)
    return state[0] * keep, state[1] * keep


def detach_state(state: State | None) -> State | None:
    """Cut the graph at the state (truncated BPTT: gradients stop at the start of the next update)."""
    return None if state is None else (state[0].detach(), state[1].detach())


class RecurrentPolicy(nn.Module):
    """Encoder -> LSTM -> policy head (and value head).

    Args:
        obs_dim: length of an observation vector.
        n_actions: number of discrete actions.
        hidden_size: H, the LSTM's state size.
        encoder_size: width of the one-layer tanh encoder in front of the LSTM (0: none).
        forget_bias: initial forget-gate bias (Chapter 1: 1.0 keeps the cell state alive for a few
            steps from the first update; raise it for longer time lags).
    """

    recurrent = True

    def __init__(self, obs_dim: int, n_actions: int, hidden_size: int = 64, encoder_size: int = 64,
                 forget_bias: float = 1.0):
        super().__init__()
        self.obs_dim, self.n_actions, self.hidden_size = obs_dim, n_actions, hidden_size
        self.encoder = nn.Sequential(nn.Linear(obs_dim, encoder_size), nn.Tanh()) if encoder_size else nn.Identity()
        self.lstm = nn.LSTM(encoder_size or obs_dim, hidden_size)
        with torch.no_grad():   # PyTorch's gate order is (i, f, g, o); two biases add up
            self.lstm.bias_ih_l0[hidden_size:2 * hidden_size].fill_(forget_bias)
            self.lstm.bias_hh_l0[hidden_size:2 * hidden_size].zero_()
        self.policy_head = nn.Linear(hidden_size, n_actions)
        self.value_head = nn.Linear(hidden_size, 1)
        with torch.no_grad():   # small initial logits: the first policy is close to uniform
            self.policy_head.weight.mul_(0.01)
            self.policy_head.bias.zero_()

    def initial_state(self, batch_size: int) -> State:
        """Zeros, ``(1, B, H)`` each, on the model's device."""
        p = next(self.parameters())
        z = torch.zeros(1, batch_size, self.hidden_size, device=p.device, dtype=p.dtype)
        return z, z.clone()

    def forward(self, obs: torch.Tensor, state: State | None = None, starts: torch.Tensor | None = None):
        _check_obs(obs, self.obs_dim)
        T, B, _ = obs.shape
        state = self.initial_state(B) if state is None else state
        if state[0].shape != (1, B, self.hidden_size):
            raise ValueError(f"state must be (h, c) of shape (1, B={B}, H={self.hidden_size}); got {tuple(state[0].shape)}")
        x = self.encoder(obs)
        if starts is None:          # no episode boundary inside: one fused call over the whole sequence
            out, state = self.lstm(x, state)
        else:                       # reset the state before every step where an episode starts
            if starts.shape != (T, B):
                raise ValueError(f"starts must have shape (T, B) = {(T, B)}; got {tuple(starts.shape)}")
            outs = []
            for t in range(T):
                state = reset_state(state, starts[t])
                o, state = self.lstm(x[t:t + 1], state)
                outs.append(o)
            out = torch.cat(outs)
        return self.policy_head(out), self.value_head(out).squeeze(-1), state


class FeedForwardPolicy(nn.Module):
    """A memory-less baseline with the recurrent interface: two tanh layers, policy and value heads.

    ``state`` is accepted and returned unchanged (``None``); each step sees only its own observation.
    """

    recurrent = False

    def __init__(self, obs_dim: int, n_actions: int, hidden_size: int = 64, encoder_size: int = 64, **_ignored):
        super().__init__()
        self.obs_dim, self.n_actions, self.hidden_size = obs_dim, n_actions, hidden_size
        self.body = nn.Sequential(nn.Linear(obs_dim, encoder_size), nn.Tanh(), nn.Linear(encoder_size, hidden_size), nn.Tanh())
        self.policy_head = nn.Linear(hidden_size, n_actions)
        self.value_head = nn.Linear(hidden_size, 1)
        with torch.no_grad():
            self.policy_head.weight.mul_(0.01)
            self.policy_head.bias.zero_()

    def initial_state(self, batch_size: int) -> None:
        return None

    def forward(self, obs: torch.Tensor, state=None, starts: torch.Tensor | None = None):
        _check_obs(obs, self.obs_dim)
        z = self.body(obs)
        return self.policy_head(z), self.value_head(z).squeeze(-1), state


def make_policy(kind: str, obs_dim: int, n_actions: int, **kwargs) -> nn.Module:
    """``"lstm"`` -> :class:`RecurrentPolicy`, ``"mlp"`` -> :class:`FeedForwardPolicy`."""
    kinds = {"lstm": RecurrentPolicy, "mlp": FeedForwardPolicy}
    if kind not in kinds:
        raise ValueError(f"policy kind must be one of {sorted(kinds)}; got {kind!r}")
    return kinds[kind](obs_dim, n_actions, **kwargs)
