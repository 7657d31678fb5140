"""Benchmark: how fast Chapter 6 makes, encodes and plays frames of pixel CartPole.

    python3 book.py bench world_model        # about 10 seconds

One thread (as the chapter's worker processes run). Rows:

- ``render_cartpole`` on batches of 1, 32 and 256 states (NumPy; Gymnasium's own renderer needs
  pygame, which the book does not install);
- the ``cartpole-pixels`` environment stepped one frame at a time (physics + drawing);
- the VAE encoder (``VAEConfig()``: 8 channels, 64 x 64 frames) on batches of 1, 32 and 256;
- a whole CMA-ES generation played by ``world_model.rollout``: 32 candidates x 4 episodes of random
  linear controllers on [z, h], physics, drawing, encoding, M's step and the controller together.

Prints a markdown table and writes ``build/bench/world_model.json``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lstm_rl_lib import vae as V, world_model as W  # noqa: E402
from lstm_rl_lib.envs import make_env, render_cartpole  # noqa: E402


def timed(fn, repeat: int) -> float:
    fn()                                        # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    rows = []
    for batch in (1, 32, 256):
        x, th = rng.uniform(-2.4, 2.4, batch), rng.uniform(-0.2, 0.2, batch)
        sec = timed(lambda: render_cartpole(x, th), max(5, 4000 // batch))
        rows.append((f"render_cartpole, batch {batch}", batch / sec))

    env = make_env("cartpole-pixels")
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while steps < 5000:
        _, _, term, trunc, _ = env.step(steps % 2)
        steps += 1
        if term or trunc:
            env.reset()
    rows.append(("cartpole-pixels env, one step at a time", steps / (time.perf_counter() - start)))

    torch.manual_seed(0)
    vae = V.ConvVAE(V.VAEConfig()).eval()
    for batch in (1, 32, 256):
        frames = torch.as_tensor(render_cartpole(rng.uniform(-2, 2, batch), rng.uniform(-0.2, 0.2, batch)))
        with torch.no_grad():
            sec = timed(lambda: vae.encode(frames), max(5, 4000 // batch))
        rows.append((f"VAE encoder (8 channels), batch {batch}", batch / sec))

    model = W.MDNRNN(W.MDNRNNConfig(hidden=64))
    controller = W.LinearController(32, 64, 2)
    population = np.random.default_rng(1).normal(size=(32, controller.n_params)) * 0.1
    start = time.perf_counter()
    returns = W.rollout(vae, model, controller, population, episodes=4, seed=0)
    sec = time.perf_counter() - start
    rows.append((f"CMA-ES generation (32 x 4 episodes, {int(returns.sum()):,} steps) via rollout", returns.sum() / sec))

    print("| what (one thread) | frames per second |")
    print("|---|---|")
    for name, fps in rows:
        print(f"| {name} | {fps:,.0f} |")
    out = ROOT / "build" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "world_model.json").write_text(json.dumps({name: fps for name, fps in rows}, indent=1))


if __name__ == "__main__":
    main()
