"""REINFORCE: returns-to-go, masking of padded steps, truncation, and learning the T-maze."""
import numpy as np
import pytest
import torch

from lstm_rl_lib import nets
from lstm_rl_lib import reinforce as rf
from lstm_rl_lib.envs import UnsupportedSpaceError, make_vector_env


def slow_returns(rewards, lengths, gamma, bootstrap):
    T, B = len(rewards), len(lengths)
    out = np.zeros((T, B))
    for b in range(B):
        for t in range(lengths[b]):
            out[t, b] = sum(gamma ** (k - t) * rewards[k][b] for k in range(t, lengths[b])) \
                + gamma ** (lengths[b] - t) * bootstrap[b]
    return out


def test_returns_to_go_match_a_slow_reference():
    g = torch.Generator().manual_seed(0)
    lengths = [5, 2, 1, 4]
    mask = torch.tensor([[1.0 if t < n else 0.0 for n in lengths] for t in range(5)])
    rewards = torch.randn(5, 4, generator=g) * mask
    bootstrap = torch.tensor([0.0, 3.0, 0.0, -1.0])
    fast = rf.returns_to_go(rewards, mask, 0.9, bootstrap)
    np.testing.assert_allclose(fast.numpy(), slow_returns(rewards.numpy(), lengths, 0.9, bootstrap.numpy()), atol=1e-6)
    assert torch.all(fast[mask == 0] == 0)


def test_returns_to_go_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(T, B\)"):
        rf.returns_to_go(torch.zeros(3, 2), torch.ones(3, 3), 0.9)


@pytest.mark.parametrize("baseline", rf.BASELINES)
def test_padded_steps_contribute_nothing_to_the_loss_or_the_gradient(baseline):
    torch.manual_seed(0)
    net = nets.RecurrentPolicy(3, 2, hidden_size=6)
    T, B = 6, 3
    mask = torch.tensor([[1.0 if t < n else 0.0 for n in (6, 3, 1)] for t in range(T)])
    obs, actions = torch.randn(T, B, 3), torch.randint(0, 2, (T, B))
    returns = torch.randn(T, B) * mask

    def loss_and_grads(obs, actions, returns):
        net.zero_grad()
        logits, values, _ = net(obs)
        loss, _ = rf.reinforce_loss(logits, values, actions, returns, mask, baseline, normalize_advantages=True)
        loss.backward()
        return loss.item(), [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()]

    loss_a, grads_a = loss_and_grads(obs, actions, returns)
    pad = mask == 0   # change everything on the padded steps
    obs2, actions2, returns2 = obs.clone(), actions.clone(), returns.clone()
    obs2[pad] = 100.0
    actions2[pad] = 1 - actions2[pad]
    returns2[pad] = -50.0
    loss_b, grads_b = loss_and_grads(obs2, actions2, returns2)
    assert loss_a == pytest.approx(loss_b, abs=1e-6)
    for ga, gb in zip(grads_a, grads_b):
        assert torch.allclose(ga, gb, atol=1e-6)


def test_loss_rejects_unknown_baseline():
    with pytest.raises(ValueError, match="baseline must be one of"):
        rf.reinforce_loss(torch.zeros(1, 1, 2), torch.zeros(1, 1), torch.zeros(1, 1, dtype=torch.long),
                          torch.zeros(1, 1), torch.ones(1, 1), baseline="median")


def test_collect_episodes_records_each_episode_once_with_a_zero_state():
    torch.manual_seed(0)
    venv = make_vector_env("tmaze", 6, length=3)
    net = nets.RecurrentPolicy(4, 4, hidden_size=8)
    batch = rf.collect_episodes(venv, net, torch.device("cpu"), seed=list(range(6)))
    lengths = batch.mask.sum(0).numpy().astype(int)
    np.testing.assert_array_equal(lengths, batch.lengths)
    # masks are prefixes: once an episode has ended, nothing more is recorded for it
    assert torch.all(batch.mask[1:] <= batch.mask[:-1])
    np.testing.assert_allclose(batch.rewards.sum(0).numpy(), batch.returns, atol=1e-6)
    assert set(np.unique(batch.success)) <= {0.0, 1.0}
    # the first observation of every episode is the cue (observation 0 or 1)
    assert torch.all(batch.obs[0, :, :2].sum(-1) == 1)
    assert batch.obs.shape[:2] == batch.mask.shape


def test_truncated_episodes_are_bootstrapped_terminated_are_not():
    torch.manual_seed(0)
    venv = make_vector_env("CartPole-v1", 4)
    net = nets.RecurrentPolicy(4, 2, hidden_size=8)
    with torch.no_grad():
        net.value_head.bias.fill_(7.0)          # every value estimate is about 7
        net.value_head.weight.zero_()
    capped = rf.collect_episodes(venv, net, torch.device("cpu"), max_steps=3, seed=[0, 1, 2, 3])
    assert torch.allclose(capped.bootstrap, torch.full((4,), 7.0))
    ended = rf.collect_episodes(venv, net, torch.device("cpu"), seed=[0, 1, 2, 3])
    assert torch.all(ended.bootstrap == 0)   # random CartPole episodes end by termination, long before 500 steps


def test_training_is_reproducible_and_interruptible(monkeypatch):
    kw = dict(env="tmaze", env_kwargs={"length": 2}, updates=3, num_envs=4, progress=False)
    a, b = rf.train_reinforce(seed=1, **kw), rf.train_reinforce(seed=1, **kw)
    assert a.history["return"] == b.history["return"] and a.history["loss"] == b.history["loss"]
    calls = {"n": 0}
    real = rf.collect_episodes

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(rf, "collect_episodes", interrupting)
    c = rf.train_reinforce(seed=1, **{**kw, "updates": 10})
    assert c.interrupted and len(c.history["return"]) == 2 and c.policy is not None


def test_lstm_learns_the_short_tmaze_and_feed_forward_does_not():
    kw = dict(env="tmaze", env_kwargs={"length": 3}, updates=150, num_envs=32, lr=5e-3, seed=0, progress=False)
    lstm = rf.train_reinforce(policy="lstm", **kw)
    mlp = rf.train_reinforce(policy="mlp", **kw)
    s_lstm = np.nanmean(rf.evaluate_policy(lstm.policy, "tmaze", 200, env_kwargs={"length": 3})["success"])
    s_mlp = np.nanmean(rf.evaluate_policy(mlp.policy, "tmaze", 200, env_kwargs={"length": 3})["success"])
    assert s_lstm >= 0.9 and s_mlp <= 0.65, (s_lstm, s_mlp)


@pytest.mark.parametrize("bad, match", [(dict(baseline="median"), "baseline must be one of"),
                                        (dict(policy="gru"), "policy must be"), (dict(num_envs=0), "num_envs"),
                                        (dict(gamma=2.0), "gamma"), (dict(env_steps=0), "env_steps"),
                                        (dict(env_steps=2.5), "env_steps")])
def test_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        rf.ReinforceConfig(**bad)


def test_a_budget_of_env_steps_stops_at_the_first_update_that_reaches_it():
    kw = dict(env="cartpole-novel", num_envs=4, seed=0, progress=False)
    for policy in ("lstm", "mlp"):
        run = rf.train_reinforce(policy=policy, env_steps=1000, updates=1, **kw)   # updates is ignored
        steps = run.history["env_steps"]
        assert steps[-1] >= 1000 and (len(steps) == 1 or steps[-2] < 1000), steps
        assert len(steps) > 1                      # random CartPole episodes are short: more than one update
    # the same seed, counted in updates, replays exactly the same updates
    by_updates = rf.train_reinforce(policy="mlp", updates=len(steps), **kw)
    assert by_updates.history["env_steps"] == steps


def test_a_baseline_lowers_the_gradient_spread_and_keeps_its_mean():
    torch.manual_seed(0)
    policy = nets.make_policy("mlp", obs_dim=2, n_actions=2, hidden_size=16)
    spread = rf.gradient_spread(policy, "cartpole-novel", batches=30, num_envs=8, baselines=("none", "mean"), seed=0)
    none, mean = spread["none"], spread["mean"]
    assert mean["variance"] < 0.8 * none["variance"], (mean["variance"], none["variance"])
    # the same expected gradient: the two averages agree far better than one batch's noise
    assert (none["mean"] - mean["mean"]).norm() < none["variance"] ** 0.5
    with pytest.raises(ValueError, match="batches"):
        rf.gradient_spread(policy, "cartpole-novel", batches=1)
    with pytest.raises(ValueError, match="baselines"):
        rf.gradient_spread(policy, "cartpole-novel", baselines=("median",))


def test_unsupported_env_fails_clearly():
    with pytest.raises(UnsupportedSpaceError, match="action space Box"):
        rf.train_reinforce(env="Pendulum-v1", updates=1, progress=False)


@pytest.mark.parametrize("baseline, bootstraps", [("value", True), ("mean", False), ("none", False)])
def test_only_a_trained_critic_bootstraps_truncated_episodes(baseline, bootstraps, monkeypatch):
    """The value head is trained only with the "value" baseline; an untrained head must not leak into returns."""
    torch.manual_seed(0)
    venv = make_vector_env("CartPole-v1", 2)
    net = nets.RecurrentPolicy(4, 2, hidden_size=8)
    with torch.no_grad():
        net.value_head.bias.fill_(7.0)
        net.value_head.weight.zero_()
    off = rf.collect_episodes(venv, net, torch.device("cpu"), max_steps=3, seed=[0, 1], bootstrap_truncated=False)
    assert torch.all(off.bootstrap == 0)
    on = rf.collect_episodes(venv, net, torch.device("cpu"), max_steps=3, seed=[0, 1], bootstrap_truncated=True)
    assert torch.allclose(on.bootstrap, torch.full((2,), 7.0))     # capped at 3 steps: both truncated
    seen = []
    real = rf.collect_episodes
    monkeypatch.setattr(rf, "collect_episodes", lambda *a, **k: seen.append(k["bootstrap_truncated"]) or real(*a, **k))
    res = rf.train_reinforce(env="cartpole-novel", updates=2, num_envs=2, max_episode_steps=4, baseline=baseline,
                             hidden_size=4, progress=False)
    assert seen == [bootstraps, bootstraps] and len(res.history["return"]) == 2
