"""Recurrent PPO: GAE, the hidden state across dones, recomputation, sequence minibatches, no host syncs."""
import numpy as np
import pytest
import torch

from lstm_rl_lib import ppo
from lstm_rl_lib.agent import normalize_observation
from lstm_rl_lib.envs import make_env, make_vector_env, spaces_of
from lstm_rl_lib.nets import reset_state
from lstm_rl_lib.ppo import (ActorCritic, PPOConfig, RolloutCollector, SegmentLayout, compute_gae, evaluate,
                             evaluate_actions, run_lstm, train_ppo)


# ----------------------------------------------------------------------------------------------
# GAE against a slow reference written differently: explicit sums over each episode's remaining steps
# ----------------------------------------------------------------------------------------------
def slow_gae(r, v, term, trunc, last_v, final_v, gamma, lam, bootstrap_truncation=True):
    T, B = r.shape
    adv = np.zeros((T, B))
    for b in range(B):
        def delta(t):
            if term[t, b]:
                return r[t, b] - v[t, b]
            if trunc[t, b]:
                return r[t, b] + (gamma * final_v[t, b] if bootstrap_truncation else 0.0) - v[t, b]
            nxt = last_v[b] if t == T - 1 else v[t + 1, b]
            return r[t, b] + gamma * nxt - v[t, b]
        for t in range(T):
            total, k = 0.0, t
            while True:
                total += (gamma * lam) ** (k - t) * delta(k)
                if term[k, b] or trunc[k, b] or k == T - 1:
                    break
                k += 1
            adv[t, b] = total
    return adv, adv + v


@pytest.mark.parametrize("bootstrap", [True, False])
def test_gae_matches_slow_reference_with_terminations_and_truncations_mixed(bootstrap):
    rng = np.random.default_rng(0)
    T, B = 40, 6
    r, v = rng.normal(size=(T, B)), rng.normal(size=(T, B))
    ends = rng.random((T, B))
    term, trunc = ends < 0.1, (ends >= 0.1) & (ends < 0.2)
    term[5, 0] = trunc[6, 0] = True                 # back-to-back ends, and one at the last step
    trunc[-1, 1] = True
    term[9, 2] = trunc[9, 2] = True                 # both flags: a termination, not bootstrapped
    last_v, final_v = rng.normal(size=B), rng.normal(size=(T, B))
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)
    adv, ret = compute_gae(t(r), t(v), t(term), t(trunc), t(last_v), t(final_v), 0.97, 0.9, bootstrap)
    ref_adv, ref_ret = slow_gae(r, v, term, trunc, last_v, final_v, 0.97, 0.9, bootstrap)
    np.testing.assert_allclose(adv.numpy(), ref_adv, atol=1e-12)
    np.testing.assert_allclose(ret.numpy(), ref_ret, atol=1e-12)
    # truncation is bootstrapped and termination is not: they differ by exactly gamma * V(s_final)
    one = lambda te, tr: compute_gae(t([[1.0]]), t([[0.0]]), t([[te]]), t([[tr]]), t([5.0]), t([[2.0]]), 0.5, 1.0,
                                     bootstrap)[0].item()
    assert one(1, 0) == 1.0
    assert one(0, 1) == (1.0 + 0.5 * 2.0 if bootstrap else 1.0)
    assert one(0, 0) == 1.0 + 0.5 * 5.0


# ----------------------------------------------------------------------------------------------
# Running the LSTM over sequences with episode starts
# ----------------------------------------------------------------------------------------------
def random_starts(T, B, seed):
    rng = np.random.default_rng(seed)
    starts = (rng.random((T, B)) < 0.15).astype(np.float32)
    starts[:, 0] = 0                     # one column without any episode start
    starts[0, 1] = 1                     # an episode starting at step 0 (the stored state is dropped)
    starts[3, 2] = starts[4, 2] = 1      # two starts in a row: a segment of length 1
    starts[-1, 3] = 1                    # a start at the last step
    return starts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_padded_lstm_equals_the_step_loop_outputs_and_gradients(seed):
    torch.manual_seed(seed)
    T, B, D, H = 17, 6, 3, 5
    lstm = torch.nn.LSTM(D, H).double()
    x = torch.randn(T, B, D, dtype=torch.float64, requires_grad=True)
    s0 = (torch.randn(1, B, H, dtype=torch.float64), torch.randn(1, B, H, dtype=torch.float64))
    starts = torch.as_tensor(random_starts(T, B, seed), dtype=torch.float64)
    out_loop, _ = run_lstm(lstm, x, s0, starts, fused=False)
    layout = SegmentLayout.from_starts(starts)
    out_fused, _ = run_lstm(lstm, x, s0, starts, layout=layout)
    torch.testing.assert_close(out_fused, out_loop, atol=1e-12, rtol=0)
    g_loop = torch.autograd.grad(out_loop.square().sum(), [x, *lstm.parameters()])
    out_fused, _ = run_lstm(lstm, x, s0, starts, layout=layout)
    g_fused = torch.autograd.grad(out_fused.square().sum(), [x, *lstm.parameters()])
    for a, b in zip(g_fused, g_loop):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    L, N = layout.shape
    assert N == B + int(starts[1:].sum()) and L <= T


def test_state_is_zero_after_a_done_and_carried_otherwise():
    torch.manual_seed(0)
    net = ActorCritic(2, 2, hidden_size=4)
    x = torch.randn(1, 3, 2)
    carried = (torch.randn(1, 3, 8), torch.randn(1, 3, 8))
    starts = torch.tensor([[1.0, 0.0, 1.0]])
    out, values, state = net(x, carried, starts)
    out_zero, values_zero, state_zero = net(x, None)
    out_carry, values_carry, state_carry = net(x, carried)
    for col, ref in ((0, (out_zero, values_zero)), (1, (out_carry, values_carry)), (2, (out_zero, values_zero))):
        torch.testing.assert_close(out[0, col], ref[0][0, col])
        torch.testing.assert_close(values[0, col], ref[1][0, col])
    assert not torch.allclose(out_zero[0, 1], out_carry[0, 1])   # the state matters, so the test can fail


def test_collector_resets_the_state_at_episode_starts_and_carries_it_between_rollouts():
    cfg = PPOConfig(env="tmaze", env_kwargs={"length": 2}, num_envs=3, num_steps=20, seed=0)
    net = ActorCritic(4, 4, hidden_size=8)
    c = RolloutCollector(cfg, net, torch.device("cpu"))
    first = c.collect()
    assert first.starts[0].eq(1).all()             # every environment starts an episode at step 0
    ended = (first.terminated + first.truncated)[:-1]
    torch.testing.assert_close(first.starts[1:], ended)   # a start exactly after every done
    second = c.collect()
    torch.testing.assert_close(second.state0[0], first.final_state[0])   # carried across the rollout boundary
    torch.testing.assert_close(second.starts[0], (first.terminated + first.truncated)[-1])
    assert first.state0[0].abs().sum() == 0 and second.state0[0].abs().sum() > 0
    c.close()


# ----------------------------------------------------------------------------------------------
# Recomputation: the first epoch sees what acting saw
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env, kwargs, shared", [("cartpole-novel", {}, False), ("cartpole-novel", {}, True),
                                                 ("pendulum-novel", {"max_episode_steps": 25}, False),
                                                 ("tmaze", {"length": 3}, False)])
def test_recomputed_logprobs_and_values_equal_the_stored_ones(env, kwargs, shared):
    torch.manual_seed(0)
    cfg = PPOConfig(env=env, env_kwargs=kwargs, num_envs=4, num_steps=60, shared_lstm=shared, seed=1)
    spaces = spaces_of(make_env(env, **kwargs), continuous_actions=True)
    net = ppo.make_actor_critic(cfg, spaces)
    c = RolloutCollector(cfg, net, torch.device("cpu"))
    c.collect()                                    # so that the next rollout starts from a non-zero state
    rollout = c.collect()
    assert rollout.starts[1:].sum() > 0, "the test needs episode ends inside the rollout"
    cols = torch.tensor([2, 0, 3, 1])
    layout = SegmentLayout.from_starts(rollout.starts_host[:, cols.numpy()])
    with torch.no_grad():
        logp, _, values = evaluate_actions(net, rollout, cols, layout)
        logp_loop, _, _ = evaluate_actions(net, rollout, cols, None, fused=False)
        wrong, _, _ = evaluate_actions(net, rollout, cols, layout, state0=rollout.final_state)
    torch.testing.assert_close(logp, rollout.logprobs[:, cols], atol=1e-5, rtol=0)
    torch.testing.assert_close(values, rollout.values[:, cols], atol=1e-5, rtol=0)
    torch.testing.assert_close(logp_loop, logp, atol=1e-5, rtol=0)
    assert (wrong - rollout.logprobs[:, cols]).abs().max() > 1e-4   # the "final-state" mistake breaks it
    c.close()


def test_truncated_episodes_get_the_value_of_their_last_observation():
    cfg = PPOConfig(env="cartpole-novel", env_kwargs={"max_episode_steps": 7}, num_envs=2, num_steps=16)
    net = ActorCritic(2, 2, hidden_size=4)
    c = RolloutCollector(cfg, net, torch.device("cpu"))
    r = c.collect()
    assert r.truncated.sum() > 0
    assert torch.all((r.final_values != 0) == (r.truncated == 1))
    c.close()


# ----------------------------------------------------------------------------------------------
# The update
# ----------------------------------------------------------------------------------------------
def test_minibatches_are_whole_sequences_in_time_order():
    cfg = PPOConfig(num_envs=6, num_steps=12, num_minibatches=3, epochs=2, seed=0)
    net = ActorCritic(2, 2, hidden_size=4)
    c = RolloutCollector(cfg, net, torch.device("cpu"))
    rollout = c.collect()
    seen = []
    hook = net.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    opt = torch.optim.Adam(net.parameters())
    ppo.ppo_update(net, opt, rollout, cfg, 0.2, np.random.default_rng(0))
    hook.remove()
    assert len(seen) == cfg.epochs * cfg.num_minibatches
    for epoch in range(cfg.epochs):
        cols = []
        for obs in seen[epoch * 3:(epoch + 1) * 3]:
            assert obs.shape == (12, 2, 2)          # all 12 steps of 2 columns
            # each column is exactly one environment's column of the rollout, steps in order
            for k in range(2):
                match = [b for b in range(6) if torch.equal(obs[:, k], rollout.obs[:, b])]
                assert len(match) == 1
                cols += match
        assert sorted(cols) == list(range(6))       # a partition of the environments
    c.close()


def test_update_never_waits_for_the_device(monkeypatch):
    """No .item(), .cpu(), .numpy() or bool(tensor) inside the epoch loop (each would sync a GPU)."""
    cfg = PPOConfig(num_envs=4, num_steps=16, num_minibatches=2, epochs=2)
    net = ActorCritic(2, 2, hidden_size=4)
    c = RolloutCollector(cfg, net, torch.device("cpu"))
    rollout = c.collect()
    c.close()

    opt = torch.optim.Adam(net.parameters())

    def guard(name):
        original = getattr(torch.Tensor, name)

        def forbidden(self, *args, **kwargs):
            # Adam keeps its step counters on the CPU even for GPU parameters: reading them is free
            if any(self is s.get("step") for s in opt.state.values()):
                return original(self, *args, **kwargs)
            raise AssertionError(f"host-device synchronisation inside the PPO update (Tensor.{name})")
        return forbidden

    for name in ("item", "cpu", "numpy", "__bool__"):
        monkeypatch.setattr(torch.Tensor, name, guard(name))
    stats = ppo.ppo_update(net, opt, rollout, cfg, 0.2, np.random.default_rng(0))
    monkeypatch.undo()
    assert set(stats) == set(ppo.UPDATE_STATS) and np.isfinite(list(stats.values())).all()
    with pytest.raises(AssertionError, match="synchronisation"):   # the check itself works
        monkeypatch.setattr(torch.Tensor, "item", guard("item"))
        torch.zeros(1).item()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_update_never_waits_for_a_cuda_device(monkeypatch):
    """On a GPU, CUDA's own sync detector raises on any synchronising call inside the update's loop;
    only the one read-back of the statistics at its end is let through."""
    device = torch.device("cuda")
    cfg = PPOConfig(num_envs=4, num_steps=16, num_minibatches=2, epochs=2, device="cuda")
    net = ActorCritic(2, 2, hidden_size=4).to(device)
    c = RolloutCollector(cfg, net, device)
    rollout = c.collect()
    c.close()
    opt = torch.optim.Adam(net.parameters(), fused=True)
    tolist = torch.Tensor.tolist

    def read_back(self):
        torch.cuda.set_sync_debug_mode(0)
        return tolist(self)

    monkeypatch.setattr(torch.Tensor, "tolist", read_back)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        stats = ppo.ppo_update(net, opt, rollout, cfg, 0.2, np.random.default_rng(0))
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert set(stats) == set(ppo.UPDATE_STATS)


def test_first_minibatch_step_has_ratio_one():
    """Before any gradient step the ratio is exactly 1: no clipping, approx-KL 0."""
    cfg = PPOConfig(num_envs=4, num_steps=32, epochs=1, seed=3)
    net = ActorCritic(2, 2)
    c = RolloutCollector(cfg, net, torch.device("cpu"))
    rollout = c.collect()
    c.close()
    adv, ret = compute_gae(rollout.rewards, rollout.values, rollout.terminated, rollout.truncated,
                           rollout.last_values, rollout.final_values, cfg.gamma, cfg.gae_lambda)
    cols = torch.arange(4)
    logp, ent, values = evaluate_actions(net, rollout, cols, SegmentLayout.from_starts(rollout.starts_host))
    _, stats = ppo.ppo_loss(logp, ent, values, rollout.logprobs, adv, ret, 0.2, 0.5, 0.0)
    assert abs(stats[3].item()) < 1e-6 and stats[4].item() == 0.0


# ----------------------------------------------------------------------------------------------
# Training end to end (small, deterministic)
# ----------------------------------------------------------------------------------------------
def test_lstm_ppo_learns_the_tmaze_and_the_feedforward_policy_cannot():
    common = dict(env="tmaze", env_kwargs={"length": 4}, total_steps=12_000, num_envs=8, num_steps=32,
                  epochs=4, gamma=0.99, gae_lambda=0.95, lr=3e-3, ent_coef=0.01, norm_reward=False, seed=0,
                  shared_lstm=False)
    lstm = train_ppo(progress=False, policy="lstm", **common)
    mlp = train_ppo(progress=False, policy="mlp", **common)
    s_lstm = np.mean(evaluate(lstm, "tmaze", 40, env_kwargs={"length": 4})["success"])
    s_mlp = np.mean(evaluate(mlp, "tmaze", 40, env_kwargs={"length": 4})["success"])
    assert s_lstm >= 0.95, s_lstm
    assert s_mlp <= 0.75, s_mlp


def test_continuous_actions_train_and_evaluate():
    res = train_ppo(progress=False, env="pendulum-novel", total_steps=1024, num_envs=4, num_steps=64, epochs=2)
    assert res.net.continuous and res.net.log_std.shape == (1,)
    ev = evaluate(res, episodes=3)
    assert len(ev["return"]) == 3 and all(-2000 < r <= 0 for r in ev["return"])
    assert all(length == 200 for length in ev["length"])


def test_interrupt_keeps_what_was_learned():
    def stop(result):
        if len(result.history["env_steps"]) == 2:
            raise KeyboardInterrupt
    res = train_ppo(progress=False, total_steps=4096, num_envs=2, num_steps=16, epochs=1, callback=stop)
    assert res.interrupted and len(res.history["env_steps"]) == 2


def test_training_is_deterministic_for_a_seed():
    a = train_ppo(progress=False, total_steps=1024, num_envs=4, num_steps=32, epochs=2, seed=5)
    b = train_ppo(progress=False, total_steps=1024, num_envs=4, num_steps=32, epochs=2, seed=5)
    assert a.history["policy_loss"] == b.history["policy_loss"]


# ----------------------------------------------------------------------------------------------
# Clear errors
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [({"policy": "gru"}, "policy must be 'lstm' or 'mlp'"),
                                           ({"mistake": "oops"}, "mistake must be one of"),
                                           ({"num_envs": 6, "num_minibatches": 4}, "must divide num_envs"),
                                           ({"epochs": 0}, "epochs must be a positive integer")])
def test_bad_config_fails_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PPOConfig(**kwargs)


def test_bad_shapes_fail_clearly():
    net = ActorCritic(2, 2, hidden_size=4)
    with pytest.raises(ValueError, match=r"obs must have shape \(T, B, obs_dim=2\)"):
        net(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="state must be"):
        net(torch.zeros(1, 3, 2), net.initial_state(2))
    with pytest.raises(ValueError, match="starts must have shape"):
        net(torch.zeros(4, 3, 2), None, torch.zeros(4, 2))


def test_presets_merge_overrides_and_fail_clearly():
    cfg = ppo.preset("tmaze", total_steps=10)
    assert cfg.env_kwargs == {"length": 50, "move_penalty": 0.1} and cfg.total_steps == 10
    assert ppo.preset("tmaze", env_kwargs={"length": 5}).env_kwargs == {"length": 5, "move_penalty": 0.1}
    assert ppo.preset("cartpole-novel") == PPOConfig()
    with pytest.raises(ValueError, match="no preset for 'acrobot'"):
        ppo.preset("acrobot")


def test_run_experiment_returns_a_rebuildable_agent():
    out = ppo.run_experiment({"config": {"total_steps": 256, "num_envs": 2, "num_steps": 64, "epochs": 1},
                              "eval_episodes": 2})
    assert out["history"]["env_steps"] == [128, 256] and len(out["eval"]["return"]) == 2
    net = ActorCritic(2, 2, shared_lstm=out["config"]["shared_lstm"])
    net.load_state_dict(out["state_dict"])


# ----------------------------------------------------------------------------------------------
# Truncation bootstrap, recomputed independently; the mistake switches the chapter demonstrates
# ----------------------------------------------------------------------------------------------
def test_truncation_bootstrap_values_equal_an_independent_recomputation():
    """final_values[t, i] = V(final observation, state after step t), rebuilt by replaying the same
    environments with the same actions through the network step by step."""
    cfg = PPOConfig(env="cartpole-novel", env_kwargs={"max_episode_steps": 5}, num_envs=2, num_steps=12,
                    norm_obs=False, norm_reward=False, seed=0)
    torch.manual_seed(0)
    net = ActorCritic(2, 2, hidden_size=4, shared_lstm=False)
    c = RolloutCollector(cfg, net, torch.device("cpu"))
    r = c.collect()
    c.close()
    venv = make_vector_env("cartpole-novel", 2, same_step_autoreset=True, max_episode_steps=5)
    venv.reset(seed=[cfg.seed * 1000 + k for k in range(2)])
    state, checked = r.state0, 0
    with torch.no_grad():
        for t in range(cfg.num_steps):
            state = reset_state(state, r.starts[t])
            _, _, state = net(r.obs[t][None], state)                     # the state after step t
            _, _, term, trunc, info = venv.step(r.actions[t].numpy())
            for i in range(2):
                if trunc[i] and not term[i]:
                    final = torch.as_tensor(info["final_obs"][i], dtype=torch.float32)[None, None]
                    _, v_final, _ = net(final, tuple(s[:, i:i + 1] for s in state))
                    assert r.final_values[t, i] == pytest.approx(float(v_final[0, 0]), abs=1e-6)
                    checked += 1
                else:
                    assert r.final_values[t, i] == 0
    venv.close()
    assert checked >= 2


def _captured_update(mistake, monkeypatch):
    cfg = PPOConfig(env="cartpole-novel", env_kwargs={"max_episode_steps": 6}, num_envs=4, num_steps=16,
                    num_minibatches=2, epochs=1, mistake=mistake, seed=0)
    torch.manual_seed(0)
    net = ActorCritic(2, 2, hidden_size=4, shared_lstm=True)
    c = RolloutCollector(cfg, net, torch.device("cpu"))
    c.collect()                                   # a first rollout, so that the next one's state0 is not zeros
    rollout = c.collect()
    c.close()
    assert rollout.state0[0].abs().sum() > 0
    calls, gae_flags = [], []
    hook = net.register_forward_pre_hook(lambda m, args: calls.append(args), with_kwargs=False)
    real_gae = ppo.compute_gae
    monkeypatch.setattr(ppo, "compute_gae", lambda *a, **k: gae_flags.append(k.get("bootstrap_truncation", True))
                        or real_gae(*a, **k))
    ppo.ppo_update(net, torch.optim.Adam(net.parameters()), rollout, cfg, 0.2, np.random.default_rng(0))
    hook.remove()
    return rollout, calls, gae_flags


@pytest.mark.parametrize("mistake", [None, "shuffle-time", "final-state", "no-truncation-bootstrap"])
def test_each_mistake_switch_makes_exactly_its_mistake(mistake, monkeypatch):
    rollout, calls, gae_flags = _captured_update(mistake, monkeypatch)
    assert gae_flags == [mistake != "no-truncation-bootstrap"]           # truncations bootstrapped unless that mistake
    for obs, state, *rest in calls:
        if mistake == "shuffle-time":
            assert obs.shape[0] == 1 and state is None                    # single steps, zero state
        else:
            assert obs.shape[0] == 16                                     # whole columns in time order
            start = rollout.final_state if mistake == "final-state" else rollout.state0
            # the state each column starts from is the stored one (or, by mistake, the final one)
            assert any(torch.equal(state[0][0, 0], start[0][0, b]) for b in range(4))
            other = rollout.state0 if mistake == "final-state" else rollout.final_state
            assert not any(torch.equal(state[0][0, 0], other[0][0, b]) for b in range(4))


def test_the_history_splits_each_rollout_into_collection_and_update_time():
    from lstm_rl_lib import ppo as P
    res = P.train_ppo(P.PPOConfig(total_steps=512, num_envs=2, num_steps=64, epochs=1, seed=0, device="cpu"), progress=False)
    h = res.history
    assert len(h["collect_seconds"]) == len(h["update_seconds"]) == len(h["env_steps"]) == 4
    assert all(c > 0 for c in h["collect_seconds"]) and all(u > 0 for u in h["update_seconds"])
    assert sum(h["collect_seconds"]) + sum(h["update_seconds"]) <= h["seconds"][-1] + 1e-6


# ----------------------------------------------------------------------------------------------
# gSDE: state-dependent exploration for continuous actions
# ----------------------------------------------------------------------------------------------
def test_gsde_action_log_prob_and_recomputation():
    """The action is mean + z @ theta; its log-probability and entropy are the Gaussian's with variance
    (z^2) @ sigma^2 (checked against torch.distributions); the update recomputes what acting recorded;
    theta is redrawn every sde_sample_freq steps."""
    torch.manual_seed(0)
    cfg = PPOConfig(env="pendulum-novel", env_kwargs={"max_episode_steps": 25}, num_envs=4, num_steps=60, sde=True,
                    sde_sample_freq=4, log_std_init=-1.0, seed=1)
    spaces = spaces_of(make_env("pendulum-novel"), continuous_actions=True)
    net = ppo.make_actor_critic(cfg, spaces)
    assert net.log_std.shape == (cfg.head_size, 1)
    with torch.no_grad():
        out, _, _ = net(torch.randn(5, 3, spaces.obs_dim))
        mean, z = out[..., :1], out[..., 1:]
        std = ((z ** 2) @ net.log_std.exp() ** 2 + 1e-6).sqrt()
        actions = torch.randn(5, 3, 1)
        logp, ent = net.log_prob_entropy(out, actions)
        ref = torch.distributions.Normal(mean, std)
        torch.testing.assert_close(logp, ref.log_prob(actions).sum(-1))
        torch.testing.assert_close(ent, ref.entropy().sum(-1))
        net.resample_noise(3)
        a, _ = net.act(out[0])
        torch.testing.assert_close(a, mean[0] + (z[0].unsqueeze(1) @ net.sde_noise).squeeze(1))
        assert torch.equal(net.act(out[0], deterministic=True)[0], mean[0])
    draws = []
    original = net.resample_noise
    net.resample_noise = lambda b: (draws.append(b), original(b))
    c = RolloutCollector(cfg, net, torch.device("cpu"))
    c.collect()
    rollout = c.collect()
    c.close()
    assert draws == [4] * (2 * 60 // 4)
    cols = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        logp, _, _ = evaluate_actions(net, rollout, cols, SegmentLayout.from_starts(rollout.starts_host[:, cols.numpy()]))
    torch.testing.assert_close(logp, rollout.logprobs[:, cols], atol=1e-5, rtol=0)


def test_gsde_trains_evaluates_and_refuses_discrete_actions():
    res = train_ppo(progress=False, env="pendulum-novel", total_steps=1024, num_envs=4, num_steps=64, epochs=2, sde=True,
                    log_std_init=-2.0)
    assert res.net.sde and res.net.log_std.shape == (64, 1)
    ev = evaluate(res, episodes=2)
    assert len(ev["return"]) == 2 and all(-2000 < r <= 0 for r in ev["return"])
    with pytest.raises(ValueError, match="needs continuous actions"):
        train_ppo(progress=False, sde=True, total_steps=256)
    with pytest.raises(ValueError, match="sde_sample_freq must be a positive integer"):
        PPOConfig(sde=True, sde_sample_freq=0)


def test_squash_sends_the_tanh_of_the_sample_scaled_to_the_bounds_and_keeps_the_sample():
    """With squash, the environment gets low + (tanh(u) + 1) (high - low) / 2 of the sample u (of the mean
    when deterministic), the rollout keeps u and its Gaussian log-probability, and the update recomputes it."""
    cfg = PPOConfig(env="pendulum-novel", num_envs=3, num_steps=40, squash=True, log_std_init=1.0, seed=2)
    spaces = spaces_of(make_env("pendulum-novel"), continuous_actions=True)
    net = ppo.make_actor_critic(cfg, spaces)
    u = torch.tensor([[-3.0], [0.0], [0.5]])
    torch.testing.assert_close(net.env_action(u), 2.0 * torch.tanh(u))      # Pendulum's torque is in [-2, 2]
    assert not ppo.make_actor_critic(PPOConfig(env="pendulum-novel"), spaces).squash
    sent = []
    c = RolloutCollector(cfg, net, torch.device("cpu"))
    step = c.venv.step
    c.venv.step = lambda a: (sent.append(np.array(a)), step(a))[1]
    rollout = c.collect()
    c.close()
    sent = np.stack(sent)
    np.testing.assert_allclose(sent, 2.0 * np.tanh(rollout.actions.numpy()), rtol=1e-6, atol=1e-6)
    assert np.abs(rollout.actions.numpy()).max() > 2.0       # with sigma e^1 some samples lie beyond the bounds
    cols = torch.arange(3)
    with torch.no_grad():
        logp, _, _ = evaluate_actions(net, rollout, cols, SegmentLayout.from_starts(rollout.starts_host))
    torch.testing.assert_close(logp, rollout.logprobs, atol=1e-5, rtol=0)
    res = train_ppo(progress=False, env="pendulum-novel", total_steps=512, num_envs=4, num_steps=64, epochs=1,
                    squash=True, sde=True, select_every=0)
    obs = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    a, _ = res.agent.predict(obs, deterministic=True)
    with torch.no_grad():
        x = torch.as_tensor(normalize_observation(obs, *res.agent.obs_rms))[None]
        mean = res.net(x, value=False)[0][0, :, :1]
    np.testing.assert_allclose(a, 2.0 * np.tanh(mean.numpy()), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="squash needs continuous actions"):
        train_ppo(progress=False, squash=True, total_steps=256)


def test_select_every_keeps_best_checked_network_and_its_statistics_and_leaves_the_run_unchanged():
    kw = dict(total_steps=3_072, num_envs=4, num_steps=32, epochs=2, seed=3, device="cpu")
    plain = train_ppo(progress=False, **kw)
    picked = train_ppo(progress=False, select_every=512, select_episodes=4, **kw)
    # the checks act deterministically and draw no random numbers: the same training run
    assert plain.history["return"] == picked.history["return"]
    assert plain.selected is None and plain.last_state_dict is None and plain.checks == []
    assert [c[0] for c in picked.checks] == [512 * k for k in range(1, 7)]
    best = max(c[1] for c in picked.checks)
    assert picked.selected == max(s for s, v in picked.checks if v == best)      # ties go to the later network
    # the network returned, with the observation statistics it was checked with, is the one that scored best
    assert np.mean(evaluate(picked, episodes=4, seed=900_000 + 1000 * 3)["return"]) == pytest.approx(best)
    # the last network and statistics are kept aside, and evaluate as the plain run's
    for k, v in plain.net.state_dict().items():
        assert torch.equal(v, picked.last_state_dict[k])
    assert np.array_equal(picked.last_obs_rms[0], plain.obs_norm.rms.mean)
    if picked.selected != 3_072:
        assert not np.array_equal(picked.obs_norm.rms.mean, plain.obs_norm.rms.mean)
    assert (ppo.last_agent(picked).evaluate(episodes=3, seed=7)["return"]
            == evaluate(plain, episodes=3, seed=7)["return"])


def test_select_settings_are_checked():
    with pytest.raises(ValueError, match="select_every"):
        PPOConfig(select_every=-1)
    with pytest.raises(ValueError, match="select_episodes"):
        PPOConfig(select_episodes=0)


@pytest.mark.parametrize("task", ["cartpole-novel", "pendulum-novel"])
def test_numpy_task_follows_gymnasium_step_for_step(task):
    """The NumPy vector tasks the PPO trains on: the same starts, dynamics, rewards, flags and final
    observations as Gymnasium's CartPole-v1 / Pendulum-v1 behind the velocity mask, with same-step autoreset."""
    from lstm_rl_lib.envs import NUMPY_TASKS
    cls = NUMPY_TASKS[task]
    gym_env = make_vector_env(task, 6, same_step_autoreset=True, continuous_actions=True)
    np_env = make_vector_env(task, 6, same_step_autoreset=True, continuous_actions=True, numpy_env=True)
    assert isinstance(np_env, cls) and not isinstance(gym_env, cls)
    assert spaces_of(np_env, True) == spaces_of(gym_env, True)
    assert np_env.single_observation_space == gym_env.single_observation_space
    assert np_env.single_action_space == gym_env.single_action_space
    a, _ = gym_env.reset(seed=list(range(10, 16)))
    b, _ = np_env.reset(seed=list(range(10, 16)))
    np.testing.assert_allclose(a, b, atol=1e-6)
    rng, ends = np.random.default_rng(0), 0
    for _ in range(1_500):
        act = (rng.integers(2, size=6) if task == "cartpole-novel"
               else rng.uniform(-3, 3, size=(6, 1)).astype(np.float32))      # beyond the torque limit too
        ga, gb = gym_env.step(act), np_env.step(act)
        np.testing.assert_allclose(ga[0], gb[0], atol=1e-5)
        np.testing.assert_allclose(ga[1], gb[1], rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(ga[2], gb[2])
        np.testing.assert_array_equal(ga[3], gb[3])
        for k in np.nonzero(ga[2] | ga[3])[0]:
            ends += 1
            np.testing.assert_allclose(ga[4]["final_obs"][k], gb[4]["final_obs"][k], atol=1e-5)
    assert ends > (100 if task == "cartpole-novel" else 40)
    bad, message = (np.full(6, 2), "one action in") if task == "cartpole-novel" else (np.zeros(6), "finite torque")
    with pytest.raises(ValueError, match=message):
        np_env.step(bad)
    if task == "pendulum-novel":
        with pytest.raises(ValueError, match="finite torque"):
            np_env.step(np.full((6, 1), np.nan, np.float32))
    # only where it is the same task: other tasks, keyword arguments or next-step autoreset get Gymnasium's
    assert not isinstance(make_vector_env(task, 2, numpy_env=True, continuous_actions=True), cls)
    assert not isinstance(make_vector_env(task, 2, same_step_autoreset=True, numpy_env=True, continuous_actions=True,
                                          max_episode_steps=50), cls)
    assert not isinstance(make_vector_env("cartpole-flicker", 2, same_step_autoreset=True, numpy_env=True), cls)


def test_truncated_cartpole_episode_is_bootstrapped_with_the_numpy_env():
    """A 500-step episode ends truncated, not terminated, in the NumPy env too (its value is bootstrapped)."""
    from lstm_rl_lib.envs import CartPoleNoVelVectorEnv
    env = CartPoleNoVelVectorEnv(1, max_episode_steps=5)
    env.reset(seed=0)
    flags = [env.step(np.array([t % 2]))[2:4] for t in range(5)]
    assert [bool(tr[0]) for _, tr in flags] == [False] * 4 + [True]
    assert not any(bool(te[0]) for te, _ in flags)


@pytest.mark.parametrize("shared", [True, False])
def test_the_policy_alone_acts_as_the_whole_network(shared):
    """The policy alone (value=False, what acting calls: no critic) gives the whole pass's output and actor state;
    with separate LSTMs the critic's half of the state is passed on unchanged."""
    torch.manual_seed(0)
    net = ActorCritic(2, 2, recurrent=True, hidden_size=8, head_size=8, shared_lstm=shared)
    state = tuple(torch.randn(1, 3, net.state_size) for _ in range(2))
    obs = torch.randn(1, 3, 2)
    out, _, full = net(obs, state)
    pout, no_values, pstate = net(obs, state, value=False)
    assert no_values is None
    torch.testing.assert_close(pout, out, atol=1e-6, rtol=0)
    H = net.hidden_size if shared else net.state_size // 2
    for p, f, s in zip(pstate, full, state):
        torch.testing.assert_close(p[..., :H], f[..., :H], atol=1e-6, rtol=0)
        if not shared:
            torch.testing.assert_close(p[..., H:], s[..., H:])
    with pytest.raises(ValueError, match="obs must have shape"):
        net(torch.randn(3, 2), value=False)


def test_checks_in_the_numpy_cartpole_score_what_gymnasiums_does():
    """The checks of select_every run in the NumPy CartPole where training does: the same episodes."""
    result = train_ppo(PPOConfig(total_steps=2_048, select_every=0), progress=False)
    agent = result.agent
    slow = agent.evaluate(episodes=6, seed=900_000)
    fast = agent.evaluate(episodes=6, seed=900_000, numpy_env=True)
    assert fast["length"] == slow["length"] and fast["return"] == slow["return"]
    assert len(set(slow["length"])) > 1          # different episodes, so the comparison can fail


def test_success_is_read_in_either_autoreset_mode():
    """play_episodes reads a task's success whether the ended episode's info comes in info or final_info."""
    result = train_ppo(ppo.preset("tmaze", env_kwargs={"length": 3}, total_steps=512, num_steps=16,
                                  select_every=0), progress=False)
    a = result.agent.evaluate(episodes=8, seed=5)
    b = result.agent.evaluate(episodes=8, seed=5, numpy_env=True)     # no NumPy T-maze: same-step Gymnasium
    assert a == b and all(s in (0.0, 1.0) for s in a["success"])
