"""The recurrent core (LSTM, or GRU as a switch) and the policy network of Chapter 3.

:func:`make_rnn` builds the recurrent core every agent of the library uses (Chapter 3's
:class:`RecurrentPolicy`, Chapter 4's DRQN, Chapter 5's PPO); :func:`rnn_forward` calls it with
the state as a tuple, ``(h, c)`` for an LSTM and ``(h,)`` for a GRU, so that the rest of the code
never asks which one it runs. :func:`reset_state` and :func:`detach_state` work on either.

Every network here maps a *time-major* batch of observations to action logits and state values:

    logits, values, state = net(obs, state, starts)

* ``obs``: ``(T, B, obs_dim)`` float tensor (one-hot encode ``Discrete`` observations first, see
  :func:`lstm_rl_lib.envs.encode_observation`);
* ``state``: the recurrent state carried *into* step 0, ``(h, c)`` each ``(1, B, H)`` (``(h,)`` for a
  GRU); ``None`` means zeros (:meth:`RecurrentPolicy.initial_state`);
* ``starts``: optional ``(T, B)`` 0/1 tensor; ``starts[t, b] = 1`` means "a new episode begins at step
  t in column b": the state is **reset to zeros before** step t is processed. This is how one
  rollout can hold several episodes per column without information leaking between them
  (CleanRL's ``ppo_atari_lstm.py`` does the same with its ``done`` flags);
* ``logits``: ``(T, B, n_actions)``; ``values``: ``(T, B)``; the returned ``state`` is the one after
  step T-1, to be carried into the next call (``detach_state`` it between updates).

:class:`FeedForwardPolicy` has the same interface and ignores the state, so that an algorithm can
swap the memory out and nothing else.

The reset itself lives in one place, :func:`run_lstm`: a loop over steps (which returns the state
after step T-1), or one fused call over the pieces of each column between episode starts
(:class:`SegmentLayout`), which is what PPO's update (Chapter 5) uses. DRQN (Chapter 4) replays
windows that never contain an episode start and runs them as packed sequences instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

State = tuple[torch.Tensor, ...]
CORES = ("lstm", "gru")


def make_rnn(kind: str, input_size: int, hidden_size: int, forget_bias: float = 1.0) -> nn.Module:
    """One recurrent layer: ``"lstm"`` (``nn.LSTM``, the book's default) or ``"gru"`` (``nn.GRU``).

    ``forget_bias`` is the initial bias of the gate that keeps the old state: the LSTM's forget
    gate f (Chapter 1), or the GRU's update gate z (``h' = (1 - z) * n + z * h``). Both biases of
    that gate add up, so the input one is set and the hidden one zeroed."""
    if kind not in CORES:
        raise ValueError(f"core must be one of {CORES}; got {kind!r}")
    rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(input_size, hidden_size)
    with torch.no_grad():   # gate order: LSTM (i, f, g, o), GRU (r, z, n); the second block keeps the state
        rnn.bias_ih_l0[hidden_size:2 * hidden_size].fill_(forget_bias)
        rnn.bias_hh_l0[hidden_size:2 * hidden_size].zero_()
    return rnn


def state_arity(rnn: nn.Module) -> int:
    """How many tensors the state of ``rnn`` has: 2 for an LSTM, 1 for a GRU."""
    return 2 if isinstance(rnn, nn.LSTM) else 1


def rnn_forward(rnn: nn.Module, x, state: State):
    """``rnn(x, state)`` with the state as a tuple whatever the core (``x`` a tensor or a PackedSequence)."""
    if isinstance(rnn, nn.LSTM):
        return rnn(x, tuple(state))
    out, h = rnn(x, state[0])
    return out, (h,)


def rnn_step(rnn: nn.Module, x: torch.Tensor, state: State):
    """One step of :func:`make_rnn`'s core: ``rnn_forward(rnn, x, state)`` for ``x`` of shape ``(1, B, D)``.

    The same equations through ``torch.lstm_cell`` / ``torch.gru_cell``: on a CPU, one step costs
    about half of what a one-step ``nn.LSTM`` call does (equal up to float rounding). Acting calls it
    once per environment step."""
    args = (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
    if isinstance(rnn, nn.LSTM):
        h, c = torch.lstm_cell(x[0], (state[0][0], state[1][0]), *args)
        return h[None], (h[None], c[None])
    h = torch.gru_cell(x[0], state[0][0], *args)
    return h[None], (h[None],)


def zero_state(rnn: nn.Module, batch_size: int) -> State:
    """Zeros, ``(1, B, H)`` each, on the device and dtype of ``rnn``'s weights."""
    p = next(rnn.parameters())
    return tuple(torch.zeros(1, batch_size, rnn.hidden_size, device=p.device, dtype=p.dtype)
                 for _ in range(state_arity(rnn)))


def _check_obs(obs: torch.Tensor, obs_dim: int) -> None:
    if obs.dim() != 3 or obs.shape[-1] != obs_dim:
        raise ValueError(f"obs must have shape (T, B, obs_dim={obs_dim}); got {tuple(obs.shape)}. "
                         "For one step of a batch use obs[None]; for one sequence use obs[:, None].")


def reset_state(state: State, starts: torch.Tensor) -> State:
    """Zero the state of the columns where ``starts`` (shape ``(B,)``) is 1."""
    keep = (1.0 - starts.float()).view(1, -1, 1)
    return tuple(s * keep for s in state)


def detach_state(state: State | None) -> State | None:
    """Cut the graph at the state (truncated BPTT: gradients stop at the start of the next update)."""
    return None if state is None else tuple(s.detach() for s in state)


# ----------------------------------------------------------------------------------------------
# Running an LSTM over sequences that contain episode starts
# ----------------------------------------------------------------------------------------------
@dataclass
class SegmentLayout:
    """How to run an LSTM over a ``(T, B)`` block whose columns contain episode starts, in one call.

    Each column is cut before every step where an episode starts; the ``N`` pieces ("segments")
    become the columns of a padded ``(L, N)`` batch, where ``L`` is the longest piece. Padding
    sits at the *end* of a segment, so it never influences a real step (an LSTM only looks back).

    Attributes:
        gather: ``(L * N,)`` index into the flattened ``(T * B)`` input for each padded slot
            (padding slots point at slot 0; their outputs are never read).
        scatter: ``(T * B,)`` index into the flattened ``(L * N)`` output for each real step.
        first_col: ``(N,)`` the column each segment comes from.
        keep_state0: ``(N,)`` 1.0 where the segment starts the column *and* no episode starts
            there, so it continues from the stored initial state; 0.0 where it starts from zeros.
        shape: ``(L, N)``.
        first_step, lengths: ``(N,)`` NumPy arrays (host): the step where each segment begins in its
            column, and its number of real steps.
    """
    gather: torch.Tensor
    scatter: torch.Tensor
    first_col: torch.Tensor
    keep_state0: torch.Tensor
    shape: tuple[int, int]
    first_step: np.ndarray
    lengths: np.ndarray

    @staticmethod
    def from_starts(starts: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> "SegmentLayout":
        """Build the layout on the host from ``starts`` (``(T, B)``, 1 = an episode starts at t)."""
        starts = starts.detach().cpu().numpy() if isinstance(starts, torch.Tensor) else np.asarray(starts)
        if starts.ndim != 2:
            raise ValueError(f"starts must have shape (T, B); got {starts.shape}")
        T, B = starts.shape
        cut = starts.astype(bool).T.copy()          # (B, T): a segment begins where cut is True
        cut[:, 0] = True
        col, t0 = np.nonzero(cut)                   # row-major: segments in column order, then time order
        ends = np.append(t0[1:], T)
        ends[np.append(col[1:] != col[:-1], True)] = T   # the last segment of a column runs to T
        lengths = ends - t0
        N, L = len(t0), int(lengths.max())
        steps = np.arange(L)[:, None]               # (L, 1)
        valid = steps < lengths[None, :]            # (L, N)
        t = np.where(valid, t0[None, :] + steps, 0)
        gather = np.where(valid, t * B + col[None, :], 0).reshape(-1)
        seg_of = np.repeat(np.arange(N), lengths)   # segments are contiguous in (column, time) order
        t_of = np.concatenate([np.arange(a, b) for a, b in zip(t0, ends)])
        scatter_bt = (t_of - t0[seg_of]) * N + seg_of          # for (b, t) in column-major order
        scatter = np.empty(T * B, np.int64)
        scatter[t_of * B + col[seg_of]] = scatter_bt
        keep = ((t0 == 0) & ~starts.astype(bool)[0, col]).astype(np.float32)

        def dev(a, dtype=torch.long):
            return torch.as_tensor(a, dtype=dtype).to(device, non_blocking=True)

        return SegmentLayout(dev(gather), dev(scatter), dev(col), dev(keep, torch.float32), (L, N), t0, lengths)


def run_lstm(lstm: nn.Module, x: torch.Tensor, state: State, starts: torch.Tensor | None = None,
             layout: SegmentLayout | None = None, fused: bool = True,
             cell: bool = False) -> tuple[torch.Tensor, State | None]:
    """Run ``lstm`` (an ``nn.LSTM`` or ``nn.GRU``, see :func:`make_rnn`) over ``x`` (``(T, B, D)``) from
    ``state``, resetting it to zeros where ``starts`` is 1.

    Returns the outputs ``(T, B, H)`` and the state after step T-1. ``fused=False`` is the
    reference: a Python loop over steps. ``fused=True`` with episode starts inside the block runs
    one padded call (see :class:`SegmentLayout`; pass ``layout`` precomputed to avoid rebuilding it)
    and then returns ``None`` for the final state, which the PPO update never needs. ``cell=True``
    runs a one-step block (``T == 1``) through :func:`rnn_step`.
    """
    T, B, _ = x.shape
    if cell and T == 1 and layout is None:
        if starts is not None:
            state = reset_state(state, starts[0])
        return rnn_step(lstm, x, state)
    if starts is None and layout is None:
        return rnn_forward(lstm, x, state)
    if not fused:
        outs = []
        for t in range(T):
            state = reset_state(state, starts[t])
            o, state = rnn_forward(lstm, x[t:t + 1], state)
            outs.append(o)
        return torch.cat(outs), state
    if layout is None:
        if T == 1 or not bool(starts[1:].any()):   # no start after step 0: reset, then one call
            return rnn_forward(lstm, x, reset_state(state, starts[0]))
        layout = SegmentLayout.from_starts(starts, x.device)
    L, N = layout.shape
    keep = layout.keep_state0.view(1, N, 1)
    s0 = tuple(s[:, layout.first_col] * keep for s in state)
    padded = x.reshape(T * B, -1)[layout.gather].view(L, N, -1)
    out, _ = rnn_forward(lstm, padded, s0)
    return out.reshape(L * N, -1)[layout.scatter].view(T, B, -1), None


class RecurrentPolicy(nn.Module):
    """Encoder -> LSTM -> policy head (and value head).

    Args:
        obs_dim: length of an observation vector.
        n_actions: number of discrete actions.
        hidden_size: H, the LSTM's state size.
        encoder_size: width of the one-layer tanh encoder in front of the LSTM (0: none).
        forget_bias: initial forget-gate bias (Chapter 1: 1.0 keeps the cell state alive for a few
            steps from the first update; raise it for longer time lags).
        core: ``"lstm"`` or ``"gru"`` (:func:`make_rnn`); the attribute keeps the name ``lstm``.
    """

    recurrent = True

    def __init__(self, obs_dim: int, n_actions: int, hidden_size: int = 64, encoder_size: int = 64,
                 forget_bias: float = 1.0, core: str = "lstm"):
        super().__init__()
        self.obs_dim, self.n_actions, self.hidden_size = obs_dim, n_actions, hidden_size
        self.encoder = nn.Sequential(nn.Linear(obs_dim, encoder_size), nn.Tanh()) if encoder_size else nn.Identity()
        self.lstm = make_rnn(core, encoder_size or obs_dim, hidden_size, forget_bias)
        self.policy_head = nn.Linear(hidden_size, n_actions)
        self.value_head = nn.Linear(hidden_size, 1)
        with torch.no_grad():   # small initial logits: the first policy is close to uniform
            self.policy_head.weight.mul_(0.01)
            self.policy_head.bias.zero_()

    def initial_state(self, batch_size: int) -> State:
        """Zeros, ``(1, B, H)`` each, on the model's device."""
        return zero_state(self.lstm, batch_size)

    def forward(self, obs: torch.Tensor, state: State | None = None, starts: torch.Tensor | None = None):
        _check_obs(obs, self.obs_dim)
        T, B, _ = obs.shape
        state = self.initial_state(B) if state is None else state
        if state[0].shape != (1, B, self.hidden_size):
            raise ValueError(f"state must be a tuple of tensors of shape (1, B={B}, H={self.hidden_size}); "
                             f"got {tuple(state[0].shape)}")
        if starts is not None and starts.shape != (T, B):
            raise ValueError(f"starts must have shape (T, B) = {(T, B)}; got {tuple(starts.shape)}")
        # the step loop where episodes start inside the block: this API promises the state after step T-1
        out, state = run_lstm(self.lstm, self.encoder(obs), state, starts, fused=False)
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
