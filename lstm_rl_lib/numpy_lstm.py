"""The LSTM from its equations, in NumPy: forward, backpropagation through time, and training.

Chapter 1 of the book teaches this module top to bottom. Everything is written for a *batch*
of sequences laid out time-major, as ``torch.nn.LSTM`` does by default:

* inputs ``xs``: ``(T, B, D)`` -- T time steps, B sequences, D input features;
* hidden and cell states ``h``, ``c``: ``(B, H)``; the outputs ``hs``: ``(T, B, H)``.

Parameters are a plain ``dict`` of arrays, so that the optimiser, the gradient check and the
import from PyTorch can walk over them by name:

* ``W``: ``(4H, D)`` input weights, ``U``: ``(4H, H)`` recurrent weights, ``b``: ``(4H,)`` bias.

The four row blocks of ``W``, ``U`` and ``b`` are the gates in the order of the equations
(Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000 for the forget gate)::

    f_t = sigmoid(W_f x_t + U_f h_{t-1} + b_f)      forget gate     rows [0H, 1H)
    i_t = sigmoid(W_i x_t + U_i h_{t-1} + b_i)      input gate      rows [1H, 2H)
    g_t = tanh   (W_g x_t + U_g h_{t-1} + b_g)      candidate       rows [2H, 3H)
    o_t = sigmoid(W_o x_t + U_o h_{t-1} + b_o)      output gate     rows [3H, 4H)
    c_t = f_t * c_{t-1} + i_t * g_t                 cell state
    h_t = o_t * tanh(c_t)                           hidden state

PyTorch stores the same blocks in the order (i, f, g, o) and keeps *two* bias vectors
(``bias_ih`` and ``bias_hh``) that are simply added; :func:`from_torch` and :func:`to_torch`
convert between the two conventions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .progress import TrainingProgress

#: The order of the gate blocks in this module's ``W``, ``U`` and ``b``.
GATES = ("f", "i", "g", "o")
#: The order PyTorch uses in ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``.
TORCH_GATES = ("i", "f", "g", "o")


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function, written so that it never overflows for large negative ``z``."""
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _check_inputs(xs: np.ndarray, params: dict, name: str = "xs") -> tuple[int, int, int, int]:
    """Validate shapes and return (T, B, D, H); the errors say what was expected."""
    xs = np.asarray(xs)
    if xs.ndim != 3:
        raise ValueError(
            f"{name} must be a time-major array of shape (T, B, D); got an array with shape {xs.shape}. "
            "For a single sequence use xs[:, None, :]."
        )
    for key in ("W", "U", "b"):
        if key not in params:
            raise KeyError(f"params is missing {key!r}; expected keys 'W', 'U', 'b' (see init_lstm_params)")
    T, B, D = xs.shape
    rows, D_w = params["W"].shape
    H = params["U"].shape[1]
    if D_w != D:
        raise ValueError(f"{name} has D={D} input features but params['W'] expects D={D_w} (W has shape {params['W'].shape})")
    return T, B, D, H


# ----------------------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------------------
def init_lstm_params(input_size: int, hidden_size: int, rng: np.random.Generator | int = 0,
                     forget_bias: float = 1.0, dtype=np.float64) -> dict:
    """Initial LSTM parameters ``{"W": (4H, D), "U": (4H, H), "b": (4H,)}``.

    Weights are uniform in ``[-1/sqrt(H), 1/sqrt(H)]`` like ``torch.nn.LSTM``. The forget-gate
    bias starts at ``forget_bias`` (1.0, as recommended by Gers et al. 2000 and Jozefowicz et al.
    2015): with ``f ~ sigmoid(1) = 0.73`` the cell state, and its gradient, survive for several
    steps from the very first update, instead of being halved at every step.
    """
    rng = np.random.default_rng(rng)
    k = 1.0 / np.sqrt(hidden_size)
    H = hidden_size
    params = {
        "W": rng.uniform(-k, k, size=(4 * H, input_size)),
        "U": rng.uniform(-k, k, size=(4 * H, H)),
        "b": rng.uniform(-k, k, size=(4 * H,)),
    }
    params["b"][0:H] = forget_bias
    return {name: value.astype(dtype) for name, value in params.items()}


def init_rnn_params(input_size: int, hidden_size: int, rng: np.random.Generator | int = 0,
                    dtype=np.float64) -> dict:
    """Initial vanilla-RNN parameters ``{"W": (H, D), "U": (H, H), "b": (H,)}`` (torch.nn.RNN's init)."""
    rng = np.random.default_rng(rng)
    k = 1.0 / np.sqrt(hidden_size)
    shapes = {"W": (hidden_size, input_size), "U": (hidden_size, hidden_size), "b": (hidden_size,)}
    return {name: rng.uniform(-k, k, size=shape).astype(dtype) for name, shape in shapes.items()}


# ----------------------------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------------------------
@dataclass
class LSTMCache:
    """What the forward pass keeps for the backward pass; every array is ``(T, B, ·)``.

    ``gates`` maps ``"f"``, ``"i"``, ``"g"``, ``"o"`` to the gate activations (handy for plots).
    """
    xs: np.ndarray
    h_prev: np.ndarray
    c_prev: np.ndarray
    c: np.ndarray
    tanh_c: np.ndarray
    gates: dict = field(default_factory=dict)


def lstm_step(x: np.ndarray, h: np.ndarray, c: np.ndarray, params: dict):
    """One LSTM step for a batch: ``x`` (B, D), ``h``, ``c`` (B, H) -> ``h_new, c_new, gates``.

    ``gates`` is a dict of the four activations, each (B, H).
    """
    H = h.shape[1]
    z = x @ params["W"].T + h @ params["U"].T + params["b"]          # (B, 4H) pre-activations
    f = sigmoid(z[:, 0 * H:1 * H])
    i = sigmoid(z[:, 1 * H:2 * H])
    g = np.tanh(z[:, 2 * H:3 * H])
    o = sigmoid(z[:, 3 * H:4 * H])
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)
    return h_new, c_new, {"f": f, "i": i, "g": g, "o": o}


def lstm_forward(xs: np.ndarray, params: dict, h0: np.ndarray | None = None,
                 c0: np.ndarray | None = None):
    """Run the LSTM over a whole sequence.

    Args:
        xs: inputs, ``(T, B, D)``.
        params: ``{"W", "U", "b"}`` as made by :func:`init_lstm_params`.
        h0, c0: initial states ``(B, H)``; zeros when omitted.

    Returns:
        ``hs`` (T, B, H), the final state ``(h_T, c_T)``, and an :class:`LSTMCache` for
        :func:`lstm_backward`.
    """
    T, B, D, H = _check_inputs(xs, params)
    h = np.zeros((B, H), dtype=xs.dtype) if h0 is None else h0
    c = np.zeros((B, H), dtype=xs.dtype) if c0 is None else c0
    if h.shape != (B, H) or c.shape != (B, H):
        raise ValueError(f"h0 and c0 must have shape (B, H) = {(B, H)}; got {h.shape} and {c.shape}")
    new = lambda: np.empty((T, B, H), dtype=xs.dtype)  # noqa: E731
    cache = LSTMCache(xs=xs, h_prev=new(), c_prev=new(), c=new(), tanh_c=new(), gates={name: new() for name in GATES})
    hs = np.empty((T, B, H), dtype=xs.dtype)
    for t in range(T):
        cache.h_prev[t], cache.c_prev[t] = h, c
        h, c, gates = lstm_step(xs[t], h, c, params)
        for name in GATES:
            cache.gates[name][t] = gates[name]
        cache.c[t] = c
        cache.tanh_c[t] = np.tanh(c)
        hs[t] = h
    return hs, (h, c), cache


# ----------------------------------------------------------------------------------------------
# Backward: backpropagation through time, by hand
# ----------------------------------------------------------------------------------------------
@dataclass
class Gradients:
    """Result of a backward pass.

    Attributes:
        params: gradients with the same keys and shapes as the parameters.
        xs: gradient with respect to the inputs, ``(T, B, D)``.
        h0, c0: gradients with respect to the initial state, ``(B, H)``.
        h_total: the *total* gradient dL/dh_t, ``(T, B, H)``: what reaches step t from the loss
            at every later step, through the recurrence. Its norm against the distance in time is
            the picture of vanishing gradients.
    """
    params: dict
    xs: np.ndarray
    h0: np.ndarray
    c0: np.ndarray
    h_total: np.ndarray


def lstm_backward(dhs: np.ndarray, cache: LSTMCache, params: dict,
                  dh_T: np.ndarray | None = None, dc_T: np.ndarray | None = None) -> Gradients:
    """Backpropagation through time for :func:`lstm_forward`.

    Args:
        dhs: dL/dh_t from the loss *directly* at every step, ``(T, B, H)`` (zeros where the loss
            does not look at h_t, e.g. everywhere but the last step for a sequence classifier).
        cache: the cache returned by :func:`lstm_forward`.
        params: the parameters used in the forward pass.
        dh_T, dc_T: dL/dh_T and dL/dc_T from whatever used the final state, ``(B, H)`` or None.

    Walking backwards, the gradient that reaches c_{t-1} is ``dc_t * f_t``: the cell state is a
    path on which the gradient is only scaled by the forget gate (the "constant error carousel").
    """
    T, B, H = dhs.shape
    W, U = params["W"], params["U"]
    dW, dU, db = np.zeros_like(W), np.zeros_like(U), np.zeros_like(params["b"])
    dxs = np.empty_like(cache.xs)
    h_total = np.empty_like(dhs)
    dh_next = np.zeros((B, H), dhs.dtype) if dh_T is None else dh_T.copy()   # from step t+1 (or the final state)
    dc_next = np.zeros((B, H), dhs.dtype) if dc_T is None else dc_T.copy()
    for t in reversed(range(T)):
        f, i, g, o = (cache.gates[name][t] for name in GATES)
        dh = dhs[t] + dh_next                                     # total dL/dh_t
        h_total[t] = dh
        do = dh * cache.tanh_c[t]
        dc = dc_next + dh * o * (1.0 - cache.tanh_c[t] ** 2)     # total dL/dc_t
        df, di, dg = dc * cache.c_prev[t], dc * g, dc * i
        dz = np.concatenate([df * f * (1 - f), di * i * (1 - i), dg * (1 - g ** 2), do * o * (1 - o)], axis=1)
        dW += dz.T @ cache.xs[t]
        dU += dz.T @ cache.h_prev[t]
        db += dz.sum(axis=0)
        dxs[t] = dz @ W
        dh_next = dz @ U
        dc_next = dc * f                                          # the carousel: scaled by f only
    return Gradients(params={"W": dW, "U": dU, "b": db}, xs=dxs, h0=dh_next, c0=dc_next, h_total=h_total)


# ----------------------------------------------------------------------------------------------
# The vanilla RNN, for comparison
# ----------------------------------------------------------------------------------------------
def rnn_forward(xs: np.ndarray, params: dict, h0: np.ndarray | None = None):
    """Elman RNN ``h_t = tanh(W x_t + U h_{t-1} + b)``; returns ``hs`` (T, B, H), ``h_T``, cache."""
    T, B, D, H = _check_inputs(xs, params)
    h = np.zeros((B, H), dtype=xs.dtype) if h0 is None else h0
    hs = np.empty((T, B, H), dtype=xs.dtype)
    h_prev = np.empty((T, B, H), dtype=xs.dtype)
    for t in range(T):
        h_prev[t] = h
        h = np.tanh(xs[t] @ params["W"].T + h @ params["U"].T + params["b"])
        hs[t] = h
    return hs, h, {"xs": xs, "h_prev": h_prev, "hs": hs}


def rnn_backward(dhs: np.ndarray, cache: dict, params: dict, dh_T: np.ndarray | None = None) -> Gradients:
    """BPTT for :func:`rnn_forward`. Every step multiplies the gradient by ``U^T diag(1 - h_t^2)``:
    unless that product has norm close to 1, the gradient vanishes or explodes geometrically."""
    T, B, H = dhs.shape
    dW, dU, db = np.zeros_like(params["W"]), np.zeros_like(params["U"]), np.zeros_like(params["b"])
    dxs = np.empty_like(cache["xs"])
    h_total = np.empty_like(dhs)
    dh_next = np.zeros((B, H), dhs.dtype) if dh_T is None else dh_T.copy()
    for t in reversed(range(T)):
        dh = dhs[t] + dh_next
        h_total[t] = dh
        dz = dh * (1.0 - cache["hs"][t] ** 2)
        dW += dz.T @ cache["xs"][t]
        dU += dz.T @ cache["h_prev"][t]
        db += dz.sum(axis=0)
        dxs[t] = dz @ params["W"]
        dh_next = dz @ params["U"]
    return Gradients(params={"W": dW, "U": dU, "b": db}, xs=dxs, h0=dh_next, c0=np.zeros_like(dh_next),
                     h_total=h_total)


# ----------------------------------------------------------------------------------------------
# Gradient check
# ----------------------------------------------------------------------------------------------
def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / (||a|| + ||b||)``, 0 when both are 0. Scale-free, unlike a per-entry ratio,
    which blows up on entries that are both ~1e-12."""
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def numerical_gradient(loss_fn, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences ``(L(p + eps) - L(p - eps)) / 2 eps`` for every entry of ``array``.

    ``loss_fn()`` must read ``array`` (which is perturbed in place and restored)."""
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        plus = loss_fn()
        flat[k] = old - eps
        minus = loss_fn()
        flat[k] = old
        gflat[k] = (plus - minus) / (2 * eps)
    return grad


def gradient_check(input_size: int = 3, hidden_size: int = 4, T: int = 6, batch: int = 2,
                   seed: int = 0, dtype=np.float64, eps: float = 1e-6) -> dict:
    """Compare :func:`lstm_backward` with finite differences on *every* entry of every array.

    The loss touches every output of the forward pass: ``L = sum(R * hs) + sum(r_h * h_T) +
    sum(r_c * c_T)`` with fixed random ``R, r_h, r_c``, so that the check covers the per-step
    gradients and the final-state gradients. Returns ``{name: relative error}`` for ``W``, ``U``,
    ``b``, the inputs ``xs`` and the initial states ``h0``, ``c0``.
    """
    rng = np.random.default_rng(seed)
    params = init_lstm_params(input_size, hidden_size, rng, dtype=dtype)
    arrays = dict(params)
    arrays["xs"] = rng.normal(size=(T, batch, input_size)).astype(dtype)
    arrays["h0"] = rng.normal(size=(batch, hidden_size)).astype(dtype)
    arrays["c0"] = rng.normal(size=(batch, hidden_size)).astype(dtype)
    R = rng.normal(size=(T, batch, hidden_size))
    r_h, r_c = rng.normal(size=(batch, hidden_size)), rng.normal(size=(batch, hidden_size))

    def loss():
        hs, (h_T, c_T), _ = lstm_forward(arrays["xs"], params, arrays["h0"], arrays["c0"])
        return float(np.sum(R * hs) + np.sum(r_h * h_T) + np.sum(r_c * c_T))

    _, _, cache = lstm_forward(arrays["xs"], params, arrays["h0"], arrays["c0"])
    grads = lstm_backward(R.astype(dtype), cache, params, dh_T=r_h, dc_T=r_c)
    analytic = {**grads.params, "xs": grads.xs, "h0": grads.h0, "c0": grads.c0}
    return {name: relative_error(analytic[name], numerical_gradient(loss, arrays[name], eps))
            for name in analytic}


# ----------------------------------------------------------------------------------------------
# PyTorch interoperability
# ----------------------------------------------------------------------------------------------
def reorder_gates(blocks: np.ndarray, src: tuple, dst: tuple) -> np.ndarray:
    """Permute the four gate blocks along axis 0 from order ``src`` to order ``dst``."""
    H = blocks.shape[0] // 4
    parts = {name: blocks[k * H:(k + 1) * H] for k, name in enumerate(src)}
    return np.concatenate([parts[name] for name in dst], axis=0)


def from_torch(lstm) -> dict:
    """Parameters of a one-layer, unidirectional ``torch.nn.LSTM`` (or ``LSTMCell``) in this module's convention.

    PyTorch's blocks are ordered (i, f, g, o); ours (f, i, g, o). PyTorch adds two biases,
    ``b_ih + b_hh``; they always appear as a sum, so one bias vector is the same model.
    """
    import torch

    if isinstance(lstm, torch.nn.LSTM):
        if lstm.num_layers != 1 or lstm.bidirectional or lstm.proj_size or not lstm.bias:
            raise ValueError("from_torch supports a one-layer, unidirectional nn.LSTM with bias=True and "
                             f"proj_size=0; got num_layers={lstm.num_layers}, bidirectional={lstm.bidirectional}, "
                             f"proj_size={lstm.proj_size}, bias={lstm.bias}")
        if lstm.batch_first:
            raise ValueError("from_torch expects batch_first=False (time-major), the layout of this module")
        names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    elif isinstance(lstm, torch.nn.LSTMCell):
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    else:
        raise TypeError(f"from_torch expects torch.nn.LSTM or torch.nn.LSTMCell; got {type(lstm).__name__}")
    w_ih, w_hh, b_ih, b_hh = (getattr(lstm, n).detach().cpu().double().numpy() for n in names)
    return {"W": reorder_gates(w_ih, TORCH_GATES, GATES), "U": reorder_gates(w_hh, TORCH_GATES, GATES),
            "b": reorder_gates(b_ih + b_hh, TORCH_GATES, GATES)}


def to_torch(params: dict, dtype=None):
    """A ``torch.nn.LSTM`` holding ``params`` (bias put entirely in ``bias_ih``; ``bias_hh`` = 0)."""
    import torch

    H4, D = params["W"].shape
    dtype = dtype or torch.float64
    lstm = torch.nn.LSTM(D, H4 // 4).to(dtype)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(reorder_gates(params["W"], GATES, TORCH_GATES)))
        lstm.weight_hh_l0.copy_(torch.from_numpy(reorder_gates(params["U"], GATES, TORCH_GATES)))
        lstm.bias_ih_l0.copy_(torch.from_numpy(reorder_gates(params["b"], GATES, TORCH_GATES)))
        lstm.bias_hh_l0.zero_()
    return lstm


def torch_grads_in_our_order(lstm) -> dict:
    """The gradients stored on a ``torch.nn.LSTM`` after ``backward()``, in this module's convention.

    The bias gradient is that of ``b_ih`` (equal to that of ``b_hh``: both enter as a sum)."""
    g = lambda name: getattr(lstm, name).grad.detach().cpu().double().numpy()  # noqa: E731
    return {"W": reorder_gates(g("weight_ih_l0"), TORCH_GATES, GATES), "U": reorder_gates(g("weight_hh_l0"), TORCH_GATES, GATES),
            "b": reorder_gates(g("bias_ih_l0"), TORCH_GATES, GATES)}


def torch_equivalence(input_size: int = 5, hidden_size: int = 7, T: int = 9, batch: int = 3, seed: int = 0) -> dict:
    """Run ``torch.nn.LSTM`` and this module on the same inputs and weights, in float64.

    Returns the largest absolute difference of the outputs, the final states and every gradient
    (weights, biases, inputs, initial states), keyed by name.
    """
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    lstm = torch.nn.LSTM(input_size, hidden_size).double()
    params = from_torch(lstm)
    xs = rng.normal(size=(T, batch, input_size))
    h0, c0 = rng.normal(size=(2, batch, hidden_size))
    R = rng.normal(size=(T, batch, hidden_size))
    r_h, r_c = rng.normal(size=(2, batch, hidden_size))

    x_t, h0_t, c0_t = (torch.tensor(a, requires_grad=True) for a in (xs, h0, c0))
    out_t, (hT_t, cT_t) = lstm(x_t, (h0_t[None], c0_t[None]))
    loss = (out_t * torch.from_numpy(R)).sum() + (hT_t[0] * torch.from_numpy(r_h)).sum() + (cT_t[0] * torch.from_numpy(r_c)).sum()
    loss.backward()
    torch_grads = torch_grads_in_our_order(lstm)

    hs, (h_T, c_T), cache = lstm_forward(xs, params, h0, c0)
    ours = lstm_backward(R, cache, params, dh_T=r_h, dc_T=r_c)
    diff = lambda a, b: float(np.max(np.abs(a - b)))  # noqa: E731
    return {
        "outputs": diff(hs, out_t.detach().numpy()),
        "h_T": diff(h_T, hT_t[0].detach().numpy()),
        "c_T": diff(c_T, cT_t[0].detach().numpy()),
        **{f"grad {name}": diff(ours.params[name], torch_grads[name]) for name in ("W", "U", "b")},
        "grad b_hh (= grad b_ih)": diff(ours.params["b"], reorder_gates(lstm.bias_hh_l0.grad.numpy(), TORCH_GATES, GATES)),
        "grad xs": diff(ours.xs, x_t.grad.numpy()),
        "grad h0": diff(ours.h0, h0_t.grad.numpy()),
        "grad c0": diff(ours.c0, c0_t.grad.numpy()),
    }


# ----------------------------------------------------------------------------------------------
# Training: a sequence classifier, softmax cross-entropy and a hand-written Adam
# ----------------------------------------------------------------------------------------------
class Adam:
    """Adam (Kingma & Ba 2015, Algorithm 1) over a dict of NumPy arrays, updated in place.

    ``m <- b1 m + (1-b1) g``; ``v <- b2 v + (1-b2) g^2``; ``p <- p - lr * m_hat / (sqrt(v_hat) + eps)``
    with the bias corrections ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``.
    """

    def __init__(self, params: dict, lr: float = 1e-2, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, grads: dict) -> None:
        b1, b2 = self.betas
        self.t += 1
        for k, g in grads.items():
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            m_hat = self.m[k] / (1 - b1 ** self.t)
            v_hat = self.v[k] / (1 - b2 ** self.t)
            self.params[k] -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def clip_by_global_norm(grads: dict, max_norm: float) -> float:
    """Scale all gradients together so that their joint L2 norm is at most ``max_norm``; returns the norm before."""
    norm = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
    if norm > max_norm:
        for g in grads.values():
            g *= max_norm / norm
    return norm


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray):
    """Mean cross-entropy of ``logits`` (B, C) against integer ``labels`` (B,); returns loss and dL/dlogits."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    B = len(labels)
    loss = -np.mean(np.log(p[np.arange(B), labels] + 1e-300))
    dlogits = p.copy()
    dlogits[np.arange(B), labels] -= 1.0
    return float(loss), dlogits / B


def recall_task(T: int, batch: int, rng: np.random.Generator):
    """The "remember the first bit" task: a batch of inputs ``(T, B, 2)`` and labels ``(B,)``.

    At t = 0, channel 0 holds the bit to remember (+1 or -1) and channel 1 holds a marker 1.
    At every later step channel 0 holds a random +-1 distractor and the marker is 0. The label is
    the first bit (0 for -1, 1 for +1), asked for after the last step: the answer lies T-1 steps
    back, under T-1 distractors that look exactly like it. A model that remembers nothing scores 50%.
    """
    if T < 1:
        raise ValueError(f"the time lag T must be at least 1; got {T}")
    bits = rng.integers(0, 2, size=batch)
    xs = np.zeros((T, batch, 2))
    xs[:, :, 0] = rng.choice([-1.0, 1.0], size=(T, batch))
    xs[0, :, 0] = 2.0 * bits - 1.0
    xs[0, :, 1] = 1.0
    return xs, bits


@dataclass
class MemoryTaskConfig:
    """Settings of :func:`train_memory_task`.

    Attributes:
        cell: ``"lstm"`` or ``"rnn"``.
        T: the time lag (sequence length) of the recall task.
        hidden_size: H.
        forget_bias: initial forget-gate bias of the LSTM (ignored by the RNN).
        batch_size: sequences per update.
        max_updates: the budget of Adam updates.
        lr: Adam's learning rate.
        clip: global gradient-norm clip (both models get the same).
        eval_every: updates between evaluations on a fixed held-out batch.
        eval_size: sequences in that held-out batch.
        solved_at: accuracy at which training stops early (the task counts as solved).
        seed: seeds the weights and the data.
    """
    cell: str = "lstm"
    T: int = 20
    hidden_size: int = 16
    forget_bias: float = 1.0
    batch_size: int = 64
    max_updates: int = 1000
    lr: float = 1e-2
    clip: float = 5.0
    eval_every: int = 25
    eval_size: int = 512
    solved_at: float = 0.99
    seed: int = 0


@dataclass
class MemoryTaskResult:
    """What :func:`train_memory_task` returns: the learning history, the trained parameters, the config."""
    config: MemoryTaskConfig
    params: dict
    history: dict
    interrupted: bool = False

    @property
    def final_accuracy(self) -> float:
        return self.history["accuracy"][-1] if self.history["accuracy"] else float("nan")

    @property
    def solved(self) -> bool:
        return self.final_accuracy >= self.config.solved_at


def memory_model_forward(params: dict, xs: np.ndarray, cell: str):
    """Recurrent layer, then a linear read-out of the last hidden state: logits (B, 2) and a cache."""
    if cell == "lstm":
        hs, _, cache = lstm_forward(xs, params)
    elif cell == "rnn":
        hs, _, cache = rnn_forward(xs, params)
    else:
        raise ValueError(f"cell must be 'lstm' or 'rnn'; got {cell!r}")
    logits = hs[-1] @ params["V"].T + params["v"]
    return logits, (hs, cache)


def memory_model_backward(params: dict, dlogits: np.ndarray, fwd_cache, cell: str) -> Gradients:
    """Gradients of every parameter (recurrent and read-out) from dL/dlogits."""
    hs, cache = fwd_cache
    dhs = np.zeros_like(hs)
    dhs[-1] = dlogits @ params["V"]
    rec = {k: params[k] for k in ("W", "U", "b")}
    grads = lstm_backward(dhs, cache, rec) if cell == "lstm" else rnn_backward(dhs, cache, rec)
    grads.params["V"] = dlogits.T @ hs[-1]
    grads.params["v"] = dlogits.sum(axis=0)
    return grads


def init_memory_model(config: MemoryTaskConfig, rng: np.random.Generator) -> dict:
    if config.cell == "lstm":
        params = init_lstm_params(2, config.hidden_size, rng, forget_bias=config.forget_bias)
    else:
        params = init_rnn_params(2, config.hidden_size, rng)
    k = 1.0 / np.sqrt(config.hidden_size)
    params["V"] = rng.uniform(-k, k, size=(2, config.hidden_size))
    params["v"] = np.zeros(2)
    return params


def memory_accuracy(params: dict, xs: np.ndarray, labels: np.ndarray, cell: str) -> float:
    logits, _ = memory_model_forward(params, xs, cell)
    return float(np.mean(logits.argmax(axis=1) == labels))


def train_memory_task(config: MemoryTaskConfig | None = None, progress: bool = True, **overrides) -> MemoryTaskResult:
    """Train an LSTM or a vanilla RNN on :func:`recall_task` with the hand-written BPTT and Adam.

    Stops early once held-out accuracy reaches ``config.solved_at``. Ctrl-C stops training and
    returns what was learned so far (``result.interrupted`` is then True).

    Returns a :class:`MemoryTaskResult`; ``history`` holds lists ``update``, ``accuracy``
    (held-out, every ``eval_every`` updates) and ``loss``, ``grad_norm`` (every update).
    """
    config = MemoryTaskConfig(**{**(config.__dict__ if config else {}), **overrides})
    if config.cell not in ("lstm", "rnn"):
        raise ValueError(f"cell must be 'lstm' or 'rnn'; got {config.cell!r}")
    rng = np.random.default_rng(config.seed)
    params = init_memory_model(config, rng)
    eval_xs, eval_labels = recall_task(config.T, config.eval_size, np.random.default_rng(10_000 + config.seed))
    opt = Adam(params, lr=config.lr)
    history = {"update": [], "accuracy": [], "loss": [], "grad_norm": []}
    desc = f"{config.cell.upper()} T={config.T} seed={config.seed}"
    with TrainingProgress(config.max_updates, desc=desc, disable=not progress) as bar:
        for update in bar:
            xs, labels = recall_task(config.T, config.batch_size, rng)
            logits, cache = memory_model_forward(params, xs, config.cell)
            loss, dlogits = softmax_cross_entropy(logits, labels)
            grads = memory_model_backward(params, dlogits, cache, config.cell).params
            history["grad_norm"].append(clip_by_global_norm(grads, config.clip))
            history["loss"].append(loss)
            opt.step(grads)
            if (update + 1) % config.eval_every == 0 or update + 1 == config.max_updates:
                acc = memory_accuracy(params, eval_xs, eval_labels, config.cell)
                history["update"].append(update + 1)
                history["accuracy"].append(acc)
                bar.set_postfix(acc=f"{acc:.2f}")
                if acc >= config.solved_at:
                    break
    if bar.interrupted and (not history["update"] or history["update"][-1] != len(history["loss"])):
        history["update"].append(len(history["loss"]))
        history["accuracy"].append(memory_accuracy(params, eval_xs, eval_labels, config.cell))
    return MemoryTaskResult(config=config, params=params, history=history, interrupted=bar.interrupted)


def gradient_flow(params: dict, cell: str, T: int, batch: int = 256, seed: int = 0) -> np.ndarray:
    """Mean norm of dL/dh_t for a loss at the *last* step, as a function of the distance T-1-t.

    Returns an array of length T whose entry k is the mean (over the batch) of ``||dL/dh_{T-1-k}||``,
    divided by entry 0, so that 1.0 is "as strong as at the loss" and 1e-6 is "vanished".
    """
    xs, labels = recall_task(T, batch, np.random.default_rng(seed))
    logits, cache = memory_model_forward(params, xs, cell)
    _, dlogits = softmax_cross_entropy(logits, labels)
    grads = memory_model_backward(params, dlogits, cache, cell)
    norms = np.linalg.norm(grads.h_total, axis=2).mean(axis=1)     # (T,)
    norms = norms[::-1]                                             # index = distance from the loss
    return norms / norms[0]
