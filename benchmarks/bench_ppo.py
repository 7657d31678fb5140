"""Benchmark: the book's LSTM-PPO against Stable-Baselines3-contrib's RecurrentPPO on velocity-free CartPole.

    python3 book.py bench ppo                       # everything, 5 seeds (about 55 to 90 minutes on 2 CPU cores)
    .venv/bin/python benchmarks/bench_ppo.py --budgets 50000 --seeds 0 --no-sb3   # ours only, quick
    .venv/bin/python benchmarks/bench_ppo.py --tasks pendulum                      # the Pendulum target only
    .venv/bin/python benchmarks/bench_ppo.py --tasks tmaze                         # the T-maze (corridor 50) only

Each training run is its own process, one after another on the same machine: ours in the book's
``.venv``, the reference in ``.venv-sb3`` (created on first use from ``benchmarks/requirements-sb3.txt``;
sb3-contrib is never a dependency of the book). Wall time is building the agent and training it
(``train_ppo``; the model's constructor and ``learn``), after the same warm-up of PyTorch in both
(:func:`warm_up_torch`), with no imports and no final evaluation; ours includes its deterministic checks
every 5,000 steps, which pick the network it ends with. Evaluation: 20 deterministic episodes with the observation statistics frozen, on other
episodes than the checks'.

The reference settings are rl-baselines3-zoo's tuned ``CartPoleNoVel-v1`` hyperparameters for
RecurrentPPO: 8 envs, n_steps 32, batch 256, 20 epochs, gamma 0.98, lambda 0.8, linear lr 1e-3 and
clip 0.2 (schedules ending at the budget), LSTM 64, separate critic LSTM, pi/vf [64] ReLU, no
orthogonal init, VecNormalize (observations and rewards). The memory-less reference is SB3's PPO
with the same settings. On velocity-free Pendulum the reference is RecurrentPPO at the zoo's tuned
``PendulumNoVel-v1`` settings (:func:`_sb3_pendulum`), on the same seeds and evaluation episodes as ours.

Prints a markdown table and writes ``build/bench/ppo.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SB3_VENV = ROOT / ".venv-sb3"
TARGET = 475.0


# ----------------------------------------------------------------------------------------------
# Workers: one training run each, printing one JSON line
# ----------------------------------------------------------------------------------------------
def warm_up_torch() -> None:
    """Pay PyTorch's one-time costs of a process before the clock starts, the same for both agents:
    building the first optimizer imports ``torch._dynamo`` (about 1-2 s here) and the first LSTM
    call initialises oneDNN."""
    import torch

    lstm = torch.nn.LSTM(2, 4)
    optimizer = torch.optim.Adam(lstm.parameters())
    lstm(torch.zeros(3, 1, 2))[0].sum().backward()
    optimizer.step()


def worker_ours(policy: str, seed: int, budget: int, episodes: int, task: str = "cartpole-novel",
                device: str = "cpu", env: str | None = None) -> dict:
    """One run of ours with ``task``'s preset (``env``: another environment, the preset's settings kept)."""
    import numpy as np

    from lstm_rl_lib.envs import with_stack
    from lstm_rl_lib.ppo import evaluate, preset, train_ppo

    stack = policy == "stack"            # the feed-forward policy on the last 4 observations
    config = preset(task, policy="mlp" if stack else policy, total_steps=budget, seed=seed, device=device,
                    **({"env": env} if env else {}))
    if stack:
        config = with_stack(config, 4)
    warm_up_torch()
    start = time.perf_counter()
    result = train_ppo(config, progress=False)
    seconds = time.perf_counter() - start
    ev = evaluate(result, episodes=episodes, seed=100_000 + seed)
    h = result.history
    tail = max(1, len(h["return"]) // 10)
    name = "ours stack-4-PPO" if stack else f"ours {policy}-PPO"
    where = env or task
    return {"agent": name + ("" if where == "cartpole-novel" else f" ({where})"), "seed": seed, "budget": budget,
            "env_steps": h["env_steps"][-1], "seconds": seconds, "device": device,
            "collect_seconds": float(np.sum(h["collect_seconds"])), "env_seconds": float(np.sum(h["env_seconds"])),
            "update_seconds": float(np.sum(h["update_seconds"])), "check_seconds": result.check_seconds,
            "last10": float(np.nanmean(h["return"][-tail:])),
            "selected": result.selected, "return": float(np.mean(ev["return"])), "return_std": float(np.std(ev["return"])),
            "success": float(np.mean(ev["success"]))}


def worker_sb3(recurrent: bool, seed: int, budget: int, episodes: int, task: str = "cartpole") -> dict:
    """One run of the reference on ``task``: ``"cartpole"`` (the settings above) or ``"pendulum"``."""
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize
    from torch import nn

    import lstm_rl_lib.envs  # noqa: F401  (registers the lstm_rl/ tasks: the same as ours)

    if task == "pendulum":
        return _sb3_pendulum(seed, budget, episodes)
    env_id = "lstm_rl/CartPoleNoVel-v1"
    venv = VecNormalize(make_vec_env(env_id, n_envs=8, seed=seed), norm_obs=True, norm_reward=True, gamma=0.98)

    def linear(value):
        return lambda progress_remaining: progress_remaining * value

    warm_up_torch()
    start = time.perf_counter()              # building the model (its networks, optimizer) and training it
    common = dict(n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8, ent_coef=0.0,
                  learning_rate=linear(1e-3), clip_range=linear(0.2), seed=seed, device="cpu", verbose=0)
    kwargs = dict(ortho_init=False, activation_fn=nn.ReLU, net_arch=dict(pi=[64], vf=[64]))
    if recurrent:
        model = RecurrentPPO("MlpLstmPolicy", venv, policy_kwargs=dict(**kwargs, lstm_hidden_size=64,
                                                                        enable_critic_lstm=True), **common)
    else:
        model = PPO("MlpPolicy", venv, policy_kwargs=kwargs, **common)
    model.learn(total_timesteps=budget)
    seconds = time.perf_counter() - start
    name = "SB3-contrib RecurrentPPO" if recurrent else "SB3 PPO (memory-less)"
    return _sb3_report(name, model, venv, env_id, 1, seed, budget, episodes, seconds)


def _sb3_pendulum(seed: int, budget: int, episodes: int) -> dict:
    """RecurrentPPO with rl-baselines3-zoo's tuned ``PendulumNoVel-v1`` settings (``hyperparams/ppo_lstm.yml``,
    100k steps there too): observations and rewards normalised, 4 envs x 1,024 steps, 10 epochs, gamma 0.9,
    lambda 0.95, lr 1e-3, clip 0.2, gSDE redrawn every 4 steps, LSTM 64 with a separate critic LSTM, [64] ReLU
    layers without orthogonal init, and RecurrentPPO's default minibatch of 128."""
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize
    from torch import nn

    env_id = "lstm_rl/PendulumNoVel-v1"
    venv = VecNormalize(make_vec_env(env_id, n_envs=4, seed=seed), norm_obs=True, norm_reward=True, gamma=0.9)
    warm_up_torch()
    start = time.perf_counter()
    model = RecurrentPPO("MlpLstmPolicy", venv, n_steps=1024, n_epochs=10, gamma=0.9, gae_lambda=0.95, ent_coef=0.0,
                         learning_rate=1e-3, clip_range=0.2, use_sde=True, sde_sample_freq=4, seed=seed,
                         policy_kwargs=dict(ortho_init=False, activation_fn=nn.ReLU, lstm_hidden_size=64,
                                            enable_critic_lstm=True, net_arch=dict(pi=[64], vf=[64])),
                         device="cpu", verbose=0)
    model.learn(total_timesteps=budget)
    seconds = time.perf_counter() - start
    # one copy per episode, copy k reset with seed 100,000 + seed + k: the same starts as ours (agent.evaluate)
    return _sb3_report("SB3-contrib RecurrentPPO (zoo)", model, venv, env_id, episodes, seed, budget, episodes, seconds)


def _sb3_report(name: str, model, venv, env_id: str, copies: int, seed: int, budget: int, episodes: int,
                seconds: float) -> dict:
    """The reference's row: ``episodes`` deterministic episodes on ``copies`` copies of ``env_id`` seeded from
    100,000 + ``seed``, with the training normalisation's observation statistics frozen (rewards raw)."""
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    eval_env = VecNormalize(make_vec_env(env_id, n_envs=copies, seed=100_000 + seed), training=False, norm_reward=False)
    eval_env.obs_rms = venv.obs_rms
    returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=episodes, deterministic=True,
                                 return_episode_rewards=True)
    return {"agent": name, "seed": seed, "budget": budget, "env_steps": int(model.num_timesteps), "seconds": seconds,
            "return": float(np.mean(returns)), "return_std": float(np.std(returns))}


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------
def sb3_python() -> Path:
    python = SB3_VENV / "bin" / "python"
    if not python.exists():
        print("[bench] creating .venv-sb3 with sb3-contrib (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(SB3_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r",
                        str(ROOT / "benchmarks" / "requirements-sb3.txt"), "-e", str(ROOT)], check=True)
    return python


def run_worker(python, kind: str, seed: int, budget: int, episodes: int) -> dict:
    cmd = [str(python), __file__, "--worker", kind, "--seed", str(seed), "--budget", str(budget),
           "--episodes", str(episodes)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{kind} seed {seed} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def update_speed_table() -> list[dict]:
    """Time of one PPO update of the CartPole settings: fused padded LSTM vs a loop over steps."""
    from lstm_rl_lib.ppo import PPOConfig, time_update

    return [{"update": "fused padded nn.LSTM" if fused else "Python loop over steps",
             "ms_per_update": time_update(PPOConfig(fused=fused, device="cpu"), "cpu", rollouts=6)}
            for fused in (True, False)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", type=int, nargs="+", default=[50_000, 100_000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--no-sb3", action="store_true", help="only the book's agents")
    parser.add_argument("--tasks", nargs="+", default=["cartpole", "pendulum", "tmaze"],
                        choices=["cartpole", "pendulum", "tmaze"],
                        help="cartpole: the comparison with RecurrentPPO; pendulum: ours on velocity-free Pendulum; "
                             "tmaze: ours on the T-maze with a corridor of 50")
    parser.add_argument("--pendulum-budget", type=int, default=100_000)
    parser.add_argument("--tmaze-budget", type=int, default=300_000)
    parser.add_argument("--task-seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the Pendulum and T-maze runs")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="where ours trains (cuda: the LSTM-PPO also runs on the CPU, for steps/s side by side)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        fn = {"ours-lstm": lambda: worker_ours("lstm", args.seed, args.budget, args.episodes),
              "ours-lstm-cuda": lambda: worker_ours("lstm", args.seed, args.budget, args.episodes, device="cuda"),
              "ours-mlp": lambda: worker_ours("mlp", args.seed, args.budget, args.episodes),
              "ours-stack": lambda: worker_ours("stack", args.seed, args.budget, args.episodes),
              "sb3-lstm": lambda: worker_sb3(True, args.seed, args.budget, args.episodes),
              "sb3-mlp": lambda: worker_sb3(False, args.seed, args.budget, args.episodes),
              "sb3-pendulum": lambda: worker_sb3(True, args.seed, args.budget, args.episodes, "pendulum"),
              "ours-pendulum": lambda: worker_ours("lstm", args.seed, args.budget, args.episodes, "pendulum-novel"),
              "ours-pendulum-full": lambda: worker_ours("mlp", args.seed, args.budget, args.episodes, "pendulum-novel",
                                                        env="Pendulum-v1"),
              "ours-tmaze": lambda: worker_ours("lstm", args.seed, args.budget, args.episodes, "tmaze"),
              }[args.worker]
        print(json.dumps(fn()))
        return 0

    import torch
    print(f"[bench] machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} intra-op threads, device cpu", flush=True)
    ours_python = Path(sys.executable)
    ref_python = None if args.no_sb3 or not {"cartpole", "pendulum"} & set(args.tasks) else sb3_python()
    rows = []
    for budget in (args.budgets if "cartpole" in args.tasks else []):
        for seed in args.seeds:
            jobs = [(ours_python, "ours-lstm")] + ([(ref_python, "sb3-lstm")] if ref_python else [])
            if args.device == "cuda":
                jobs.append((ours_python, "ours-lstm-cuda"))
            jobs += [(ours_python, "ours-stack"), (ours_python, "ours-mlp")]    # the memory-less baselines, every budget
            if budget == min(args.budgets) and ref_python:
                jobs.append((ref_python, "sb3-mlp"))
            for python, kind in jobs:
                row = run_worker(python, kind, seed, budget, args.episodes)
                rows.append(row)
                print(f"[bench] {row['agent']:<26} budget {budget:>7,} seed {seed}: {row['return']:6.1f} "
                      f"in {row['seconds']:6.1f} s", flush=True)

    def task_runs(task: str, budget: int, kind: str | None = None, python: Path | None = None) -> list[dict]:
        """One run of worker ``kind`` (by default ours, ``ours-<task>``) on ``task`` per seed of
        ``--task-seeds``, each printed as it ends."""
        runs = []
        for seed in (args.task_seeds if task in args.tasks else []):
            row = run_worker(python or ours_python, kind or f"ours-{task}", seed, budget, args.episodes)
            runs.append(row)
            has_success = "success" in row and row["success"] == row["success"]   # NaN: the task has no goal
            success = f", success {row['success']:.2f}" if has_success else ""
            print(f"[bench] {row['agent']:<26} budget {budget:>7,} seed {seed}: return {row['return']:7.2f}"
                  f"{success} in {row['seconds']:6.1f} s", flush=True)
        return runs

    pendulum = task_runs("pendulum", args.pendulum_budget)
    # a reference, not a baseline: the same settings with the velocity observed (Gymnasium's Pendulum-v1),
    # feed-forward; what this PPO reaches on the same evaluation episodes when nothing has to be remembered
    pendulum_full = task_runs("pendulum", args.pendulum_budget, "ours-pendulum-full")
    # the reference on the same task, seeds and evaluation episodes, at the zoo's tuned settings
    pendulum_ref = task_runs("pendulum", args.pendulum_budget, "sb3-pendulum", ref_python) if ref_python else []
    if pendulum:
        print(f"\n| Pendulum, {args.pendulum_budget:,} steps | seed | env steps | wall time (s) | eval return (20 ep.) |")
        print("|---|---|---|---|---|")
        for r in pendulum + pendulum_full + pendulum_ref:
            print(f"| {r['agent']} | {r['seed']} | {r['env_steps']:,} | {r['seconds']:.1f} | {r['return']:.1f} ± {r['return_std']:.1f} |")
        mean = sum(r["return"] for r in pendulum) / len(pendulum)
        print(f"\nvelocity-free Pendulum, LSTM: mean return {mean:.1f} over {len(pendulum)} seeds; seeds >= -200: "
              f"{sum(r['return'] >= -200 for r in pendulum)}/{len(pendulum)} (target: mean >= -200; "
              "rl-baselines3-zoo reports -218 +- 140 for RecurrentPPO)")
        full = sum(r["return"] for r in pendulum_full) / len(pendulum_full)
        print(f"reference, the velocity observed (Pendulum-v1), feed-forward, same settings and episodes: mean return "
              f"{full:.1f}")
        if pendulum_ref:
            ref = sum(r["return"] for r in pendulum_ref) / len(pendulum_ref)
            print(f"SB3-contrib RecurrentPPO, the zoo's settings, same task, seeds and episodes: mean return {ref:.1f}; "
                  f"seeds >= -200: {sum(r['return'] >= -200 for r in pendulum_ref)}/{len(pendulum_ref)}; mean time "
                  f"{sum(r['seconds'] for r in pendulum_ref) / len(pendulum_ref):.1f} s against "
                  f"{sum(r['seconds'] for r in pendulum) / len(pendulum):.1f} s for ours")
    tmaze = task_runs("tmaze", args.tmaze_budget)
    if tmaze:
        print("\n| T-maze, corridor 50 (ours, LSTM-PPO) | seed | env steps | wall time (s) | eval success (20 ep.) | eval return |")
        print("|---|---|---|---|---|---|")
        for r in tmaze:
            print(f"| {r['agent']} | {r['seed']} | {r['env_steps']:,} | {r['seconds']:.1f} | {r['success']:.2f} "
                  f"| {r['return']:.2f} ± {r['return_std']:.2f} |")
        print(f"\nT-maze: seeds with success >= 0.95: {sum(r['success'] >= 0.95 for r in tmaze)}/{len(tmaze)} "
              "(target: every seed)")
    out = ROOT / "build" / "bench" / "ppo.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        out.write_text(json.dumps({"pendulum": pendulum, "pendulum_full_state": pendulum_full,
                                   "pendulum_reference": pendulum_ref, "tmaze": tmaze}, indent=1))
        print(f"\n[bench] wrote {out.relative_to(ROOT)}")
        return 0
    print("\n| agent | budget | seed | env steps | wall time (s) | acting (s) | env (s) | update (s) | checks (s) "
          "| steps/s | return, last 10% of training | eval return (20 ep.) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ours = "collect_seconds" in r                     # the reference's rows have no time split
        device = f" ({r['device']})" if r.get("device") == "cuda" else ""
        split = (f"{r['collect_seconds'] - r['env_seconds']:.1f} | {r['env_seconds']:.1f} | {r['update_seconds']:.1f} "
                 f"| {r['check_seconds']:.1f}" if ours else "- | - | - | -")
        last10 = f"{r['last10']:.1f}" if ours else "-"
        print(f"| {r['agent']}{device} | {r['budget']:,} | {r['seed']} | {r['env_steps']:,} | {r['seconds']:.1f} | {split} "
              f"| {r['env_steps'] / r['seconds']:,.0f} | {last10} | {r['return']:.1f} ± {r['return_std']:.1f} |")
    print("\n| budget | ours: seeds >= 475 | ours: mean time (s) | RecurrentPPO: seeds >= 475 "
          "| RecurrentPPO: mean time (s) | time ratio ours / RecurrentPPO |")
    print("|---|---|---|---|---|---|")
    summary = []
    for budget in args.budgets:
        ours = [r for r in rows if r["agent"] == "ours lstm-PPO" and r["budget"] == budget]
        ref = [r for r in rows if r["agent"] == "SB3-contrib RecurrentPPO" and r["budget"] == budget]
        t_ours = sum(r["seconds"] for r in ours) / len(ours)
        solved = sum(r["return"] >= TARGET for r in ours)
        line = {"budget": budget, "ours_solved": solved, "seeds": len(ours), "ours_seconds": t_ours}
        if ref:
            t_ref = sum(r["seconds"] for r in ref) / len(ref)
            line.update(ref_solved=sum(r["return"] >= TARGET for r in ref), ref_seconds=t_ref, ratio=t_ours / t_ref)
            print(f"| {budget:,} | {solved}/{len(ours)} | {t_ours:.1f} | {line['ref_solved']}/{len(ref)} | "
                  f"{t_ref:.1f} | {line['ratio']:.2f} |")
        else:
            print(f"| {budget:,} | {solved}/{len(ours)} | {t_ours:.1f} | - | - | - |")
        summary.append(line)

    speed = update_speed_table()
    from lstm_rl_lib.ppo import PPOConfig
    c = PPOConfig()
    print(f"\n| PPO update ({c.epochs} epochs, {c.num_envs} x {c.num_steps} rollout, LSTM {c.hidden_size}, CPU) | ms per update |")
    print("|---|---|")
    for r in speed:
        print(f"| {r['update']} | {r['ms_per_update']:.1f} |")
    out.write_text(json.dumps({"runs": rows, "summary": summary, "update_speed": speed, "pendulum": pendulum,
                               "pendulum_full_state": pendulum_full, "pendulum_reference": pendulum_ref,
                               "tmaze": tmaze}, indent=1))
    print(f"\n[bench] wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
