"""Forward+backward throughput of the NumPy LSTM (Chapter 1) against torch.nn.LSTM on the CPU.

    python3 benchmarks/bench_numpy_lstm.py [--batch 32] [--T 50] [--hidden 64] [--input 64] [--repeats 20]

Prints a table (milliseconds per forward+backward pass, sequences per second) and the ratio
NumPy time / torch time for each dtype. Both run the same shapes on the same inputs; torch uses
its default intra-op threads (all cores).
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from lstm_rl_lib import numpy_lstm as nl


def timeit(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, torch's kernel selection)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--T", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--input", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    a = parser.parse_args()
    B, T, H, D = a.batch, a.T, a.hidden, a.input
    print(f"NumPy LSTM vs torch.nn.LSTM, forward+backward, B={B} T={T} H={H} D={D}, CPU "
          f"({platform.processor() or platform.machine()}, torch threads={torch.get_num_threads()}), "
          f"median of {a.repeats}")
    rows = []
    for np_dtype, t_dtype in [(np.float64, torch.float64), (np.float32, torch.float32)]:
        rng = np.random.default_rng(0)
        lstm = torch.nn.LSTM(D, H).to(t_dtype)
        params = {k: v.astype(np_dtype) for k, v in nl.from_torch(lstm).items()}
        xs = rng.normal(size=(T, B, D)).astype(np_dtype)
        dhs = rng.normal(size=(T, B, H)).astype(np_dtype)

        def numpy_pass():
            hs, _, cache = nl.lstm_forward(xs, params)
            nl.lstm_backward(dhs, cache, params)

        x_t, dh_t = torch.from_numpy(xs), torch.from_numpy(dhs)

        def torch_pass():
            lstm.zero_grad(set_to_none=True)
            out, _ = lstm(x_t)
            out.backward(dh_t)

        t_np, t_torch = timeit(numpy_pass, a.repeats), timeit(torch_pass, a.repeats)
        rows.append((np.dtype(np_dtype).name, t_np, t_torch))
    print(f"{'dtype':<9}{'NumPy ms':>10}{'torch ms':>10}{'NumPy seq/s':>13}{'torch seq/s':>13}{'NumPy/torch time':>18}")
    for name, t_np, t_torch in rows:
        print(f"{name:<9}{1e3 * t_np:>10.2f}{1e3 * t_torch:>10.2f}{B / t_np:>13.0f}{B / t_torch:>13.0f}{t_np / t_torch:>17.2f}x")


if __name__ == "__main__":
    main()
