"""Checks for the exercises of Chapter 1 (the LSTM in NumPy)."""
from __future__ import annotations

import numpy as np

from . import check_function


def _gru_reference(x, h, params):
    """torch.nn.GRUCell, loaded with ``params`` (PyTorch's layout: gates r, z, n)."""
    import torch

    D, H = x.shape[1], h.shape[1]
    cell = torch.nn.GRUCell(D, H).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(torch.from_numpy(params[name]))
        return cell(torch.from_numpy(x), torch.from_numpy(h)).numpy()


def gru_cases(seed: int = 0, sizes=((1, 1, 1), (3, 4, 5), (8, 2, 16))):
    rng = np.random.default_rng(seed)
    for B, D, H in sizes:
        params = {"weight_ih": rng.normal(size=(3 * H, D)), "weight_hh": rng.normal(size=(3 * H, H)),
                  "bias_ih": rng.normal(size=3 * H), "bias_hh": rng.normal(size=3 * H)}
        yield f"B={B}, D={D}, H={H}", (rng.normal(size=(B, D)), rng.normal(size=(B, H)), params)


def check_gru_cell(gru_cell, seed: int = 0, sizes=((1, 1, 1), (3, 4, 5), (8, 2, 16))) -> bool:
    """Exercise 1: ``gru_cell(x (B, D), h (B, H), params) -> h_new (B, H)`` against ``torch.nn.GRUCell``
    (random weights and inputs from ``seed``, one case per ``(B, D, H)`` in ``sizes``)."""
    return check_function("GRU cell", gru_cell, _gru_reference, gru_cases(seed, sizes), atol=1e-10, rtol=1e-8,
                          output_names=("h_new",))


def _count_reference(input_size, hidden_size, num_layers):
    import torch

    return sum(p.numel() for p in torch.nn.LSTM(input_size, hidden_size, num_layers).parameters())


def check_lstm_parameter_count(count_fn, sizes=((1, 1, 1), (10, 32, 1), (3, 64, 2))) -> bool:
    """Exercise 2: ``count_fn(input_size, hidden_size, num_layers)`` = parameters of ``torch.nn.LSTM``."""
    cases = [(f"D={d}, H={h}, layers={n}", (d, h, n)) for d, h, n in sizes]
    return check_function("LSTM parameter count", count_fn, _count_reference, cases, atol=0, rtol=0,
                          output_names=("count",))


def _survival_reference(f):
    # dc_T / dc_t along the cell path = prod_{s=t+1}^{T} f_s; survival[t] for t = 0..T-1
    T = f.shape[0]
    out = np.ones_like(f)
    for t in range(T - 2, -1, -1):
        out[t] = out[t + 1] * f[t + 1]
    return out


def check_cell_survival(survival_fn, seed: int = 1) -> bool:
    """Exercise 3: ``survival_fn(f (T, B, H)) -> (T, B, H)``, how much of c_t reaches c_{T-1} along the carousel."""
    rng = np.random.default_rng(seed)
    cases = [("T=1", (rng.uniform(size=(1, 1, 1)),)), ("T=5, B=2, H=3", (rng.uniform(size=(5, 2, 3)),)),
             ("T=40 with f near 1", (rng.uniform(0.9, 1.0, size=(40, 4, 8)),))]
    return check_function("cell-state survival", survival_fn, _survival_reference, cases, atol=1e-12, rtol=1e-10,
                          output_names=("survival",))


def check_smallest_forget_bias(bias_fn, cases=((60, 0.01),)) -> bool:
    """Exercise 4: ``bias_fn(lag, fraction)`` = the smallest forget-gate bias ``b`` for which a gate held at
    ``sigmoid(b)`` (inputs contributing nothing) keeps at least ``fraction`` of the cell state over ``lag``
    steps: ``sigmoid(b) ** lag = fraction``."""
    def reference(lag, fraction):
        f = fraction ** (1.0 / lag)
        return float(np.log(f / (1.0 - f)))

    return check_function("smallest forget bias", bias_fn, reference,
                          [(f"lag {n}, fraction {q:g}", (n, q)) for n, q in cases], atol=1e-9, rtol=1e-9,
                          output_names=("bias",))
