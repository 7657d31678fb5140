"""DRQN: sequence replay never crosses episodes, burn-in carries no loss, targets along the same sequence."""
import numpy as np
import pytest
import torch

from lstm_rl_lib import dqn
from lstm_rl_lib.dqn import DQNConfig, EpisodeReplay, QNetwork, sequence_loss


def fake_episode(ep_id: int, n: int, terminated: bool = True, H: int = 3) -> dict:
    """Observations encode (episode, step) so that a sampled sequence can be traced back."""
    steps = np.arange(n + 1, dtype=np.float32)
    obs = np.stack([np.full(n + 1, ep_id, np.float32), steps], axis=1)
    states = np.stack([np.full((n, H), ep_id + 0.01 * t, np.float32) for t in range(2)], axis=1)
    states[:, 0] += np.arange(n)[:, None]
    return {"obs": obs, "actions": np.arange(n) % 2, "rewards": np.ones(n, np.float32), "terminated": terminated,
            "states": states}


def filled_replay(seed=0):
    replay = EpisodeReplay(capacity=10_000, rng=np.random.default_rng(seed))
    for ep_id, n in enumerate([3, 17, 1, 40, 8, 25]):
        replay.add(fake_episode(ep_id + 1, n, terminated=ep_id % 2 == 0))
    return replay


@pytest.mark.parametrize("burn_in, seq_len", [(0, 5), (4, 6), (10, 10)])
def test_sampled_sequences_never_cross_an_episode_boundary(burn_in, seq_len):
    replay = filled_replay()
    lengths = {e["obs"][0, 0]: len(e["actions"]) for e in replay.episodes}
    batch = replay.sample(256, seq_len, burn_in, "stored", "cpu")
    burn, obs = batch.burn_obs.numpy(), batch.obs.numpy()
    for b in range(256):
        k = int(batch.mask[:, b].sum())
        assert k >= 1 and batch.mask[:k, b].all()                          # real loss steps first, then padding
        rows = np.concatenate([burn[:batch.burn_len[b], b], obs[:k + 1, b]])
        assert len(set(rows[:, 0])) == 1                                   # one episode per sequence
        assert np.all(np.diff(rows[:, 1]) == 1)                            # consecutive steps, in order
        assert rows[-1, 1] <= lengths[rows[0, 0]]                          # ends at most at the final observation
        assert batch.burn_len[b] == min(burn_in, obs[0, b, 1])            # full burn-in unless the episode began later
        assert np.all(burn[batch.burn_len[b]:, b] == 0) and np.all(obs[k + 1:, b] == 0)
    assert batch.obs.shape == (seq_len + 1, 256, 2) and batch.burn_obs.shape == (burn_in, 256, 2)


def test_terminated_flag_only_on_the_last_step_of_a_terminated_episode():
    replay = filled_replay(1)
    batch = replay.sample(512, 8, 2, "stored", "cpu")
    obs = batch.obs.numpy()
    for b in range(512):
        for t in np.nonzero(batch.terminated[:, b].numpy())[0]:
            ep_id, step = obs[t, b]
            episode = [e for e in replay.episodes if e["obs"][0, 0] == ep_id][0]
            assert episode["terminated"] and step == len(episode["actions"]) - 1


def test_stored_state_is_the_actors_state_at_the_window_start_and_zero_state_is_zero():
    replay = filled_replay(2)
    stored = replay.sample(64, 5, 3, "stored", "cpu")
    for b in range(64):
        ep = replay.episodes[stored.episode[b]]
        np.testing.assert_allclose(stored.state[0][0, b].numpy(), ep["states"][stored.first[b], 0])
        np.testing.assert_allclose(stored.state[1][0, b].numpy(), ep["states"][stored.first[b], 1])
    replay.rng = np.random.default_rng(2)
    zero = replay.sample(64, 5, 3, "zero", "cpu")
    assert zero.state[0].abs().sum() == 0 and zero.state[1].abs().sum() == 0


def test_replay_drops_whole_old_episodes_and_checks_its_input():
    replay = EpisodeReplay(capacity=30, rng=np.random.default_rng(0))
    for k in range(5):
        replay.add(fake_episode(k + 1, 10))
    assert len(replay) == 30 and [e["obs"][0, 0] for e in replay.episodes] == [3, 4, 5]
    bad = fake_episode(9, 4)
    bad["obs"] = bad["obs"][:-1]
    with pytest.raises(ValueError, match="needs 5 observations"):
        replay.add(bad)


def test_windows_match_the_stored_episodes_after_many_evictions_and_moves():
    """The flat rows the batch is cut from stay those of replay.episodes while old episodes leave and
    the arrays are compacted or grown (a small capacity forces both many times)."""
    rng = np.random.default_rng(4)
    replay = EpisodeReplay(capacity=50, rng=np.random.default_rng(4))
    for ep_id in range(1, 200):
        replay.add(fake_episode(ep_id, int(rng.integers(1, 60)), terminated=bool(ep_id % 3)))
        if ep_id % 5:
            continue
        batch = replay.sample(32, 6, 3, "stored", "cpu")
        for b in range(32):
            ep = replay.episodes[batch.episode[b]]
            w0, k = batch.first[b], int(batch.mask[:, b].sum())
            u = w0 + batch.burn_len[b]
            np.testing.assert_array_equal(batch.burn_obs[:batch.burn_len[b], b].numpy(), ep["obs"][w0:u])
            np.testing.assert_array_equal(batch.obs[:k + 1, b].numpy(), ep["obs"][u:u + k + 1])
            np.testing.assert_array_equal(batch.actions[:k, b].numpy(), ep["actions"][u:u + k])
            np.testing.assert_array_equal(batch.state[0][0, b].numpy(), ep["states"][w0, 0])
            assert batch.terminated[:, b].sum() == float(ep["terminated"] and u + k == len(ep["actions"]))
    assert replay.steps <= 50 + 60 and len(replay) == sum(len(e["actions"]) for e in replay.episodes)


def _batch(burn_in=3, seq_len=4, seed=0):
    replay = EpisodeReplay(10_000, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    for k, n in enumerate([9, 12, 6]):
        ep = fake_episode(k + 1, n, terminated=k != 1, H=8)
        ep["obs"] = rng.normal(size=ep["obs"].shape).astype(np.float32)
        ep["states"] = rng.normal(size=ep["states"].shape).astype(np.float32) * 0.1
        replay.add(ep)
    return replay.sample(16, seq_len, burn_in, "stored", "cpu")


def test_burn_in_steps_carry_no_loss_and_no_gradient():
    torch.manual_seed(0)
    online, target = QNetwork(2, 2, hidden_size=8), QNetwork(2, 2, hidden_size=8)
    batch = _batch()
    assert (batch.burn_len > 0).any()
    batch.burn_obs.requires_grad_(True)
    batch.obs.requires_grad_(True)
    loss, _ = sequence_loss(online, target, batch, gamma=0.9)
    g_burn, g_obs = torch.autograd.grad(loss, [batch.burn_obs, batch.obs], allow_unused=True)
    assert g_burn is None or g_burn.abs().sum() == 0          # burn-in: no gradient at all
    assert g_obs.abs().sum() > 0
    # ... but the burn-in does warm the state up: other burn-in observations, another loss
    batch2 = _batch()
    batch2.burn_obs += 1.0
    assert not torch.allclose(sequence_loss(online, target, batch2, gamma=0.9)[0], loss.detach())


def _step_by_step(net, batch):
    """Q-values along each sequence the slow way: one step at a time, burn-in rows first."""
    qs = []
    for b in range(batch.obs.shape[1]):
        state = (batch.state[0][:, b:b + 1], batch.state[1][:, b:b + 1])
        for t in range(int(batch.burn_len[b])):
            _, state = net(batch.burn_obs[t:t + 1, b:b + 1], state)
        col = []
        for t in range(batch.obs.shape[0]):
            q, state = net(batch.obs[t:t + 1, b:b + 1], state)
            col.append(q[0, 0])
        qs.append(torch.stack(col))
    return torch.stack(qs, dim=1)


def test_target_runs_the_target_network_along_the_same_sequence_from_the_same_state():
    torch.manual_seed(1)
    online, target = QNetwork(2, 3, hidden_size=8), QNetwork(2, 3, hidden_size=8)
    batch = _batch(burn_in=2, seq_len=5, seed=3)
    loss, _ = sequence_loss(online, target, batch, gamma=0.9, double=True, huber=False)
    with torch.no_grad():
        q_on, q_tg = _step_by_step(online, batch), _step_by_step(target, batch)
        a_next = q_on[1:].argmax(-1, keepdim=True)
        y = batch.rewards + 0.9 * (1 - batch.terminated) * q_tg[1:].gather(-1, a_next).squeeze(-1)
        q_taken = q_on[:-1].gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        expected = (0.5 * (q_taken - y) ** 2 * batch.mask).sum() / batch.mask.sum()
    torch.testing.assert_close(loss, expected)
    # and it matters: the target network's state is not the online network's
    wrong, _ = sequence_loss(online, online, batch, gamma=0.9, double=True, huber=False)
    assert not torch.allclose(wrong, loss)


def test_truncated_last_step_bootstraps_and_terminated_does_not():
    net = QNetwork(2, 2, recurrent=False, hidden_size=4)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.head.bias.fill_(10.0)                     # Q = 10 everywhere
    for terminated, expected_y in ((True, 1.0), (False, 1.0 + 0.5 * 10.0)):
        replay = EpisodeReplay(100, np.random.default_rng(0))
        ep = fake_episode(1, 1, terminated=terminated)
        del ep["states"]
        replay.add(ep)
        batch = replay.sample(1, 1, 0, "zero", "cpu")
        loss, _ = sequence_loss(net, net, batch, gamma=0.5, huber=False)
        assert loss.item() == pytest.approx(0.5 * (10.0 - expected_y) ** 2)


def test_epsilon_schedule_and_config_errors():
    cfg = DQNConfig(total_steps=1000, eps_start=1.0, eps_end=0.1, eps_fraction=0.5)
    assert cfg.epsilon(0) == 1.0 and cfg.epsilon(250) == pytest.approx(0.55) and cfg.epsilon(900) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="agent must be one of"):
        DQNConfig(agent="gru")
    with pytest.raises(ValueError, match="init_state must be one of"):
        DQNConfig(init_state="random")
    with pytest.raises(ValueError, match="burn_in must be >= 0"):
        DQNConfig(burn_in=-1)


def test_frame_stacker_keeps_the_last_k_and_clears_at_episode_start():
    s = dqn.ObservationStacker(2, 1, 3)
    s.push(np.array([[1.0], [5.0]]))
    out = s.push(np.array([[2.0], [6.0]]))
    np.testing.assert_array_equal(out, [[0, 1, 2], [0, 5, 6]])
    np.testing.assert_array_equal(s.peek_with(0, np.array([3.0])), [1, 2, 3])
    s.reset([1])
    np.testing.assert_array_equal(s.push(np.array([[3.0], [7.0]])), [[1, 2, 3], [0, 0, 7]])


@pytest.mark.parametrize("agent", ["lstm", "stack", "mlp"])
def test_training_runs_for_every_agent_and_evaluates(agent):
    res = dqn.train_dqn(progress=False, agent=agent, env="tmaze", env_kwargs={"length": 2}, total_steps=1000,
                        num_envs=2, learning_starts=100, train_every=4, batch_size=4, seq_len=4, burn_in=2)
    # 1000 / 4 = 250 gradient steps (the steps before learning_starts are trained at once when it starts):
    # two loss records (one every 100), finite
    assert [s for s, _ in res.losses] and len(res.losses) == 2 and all(np.isfinite(l) for _, l in res.losses)
    torch.manual_seed(0)
    fresh = dqn.make_q_network(res.config, 4, 4)      # same seed: the weights training started from
    assert res.history["env_steps"][-1] <= 1000 and res.history["env_steps"] == sorted(res.history["env_steps"])
    assert any(not torch.equal(p, q) for p, q in zip(res.net.state_dict().values(), fresh.state_dict().values()))
    ev = dqn.evaluate(res, episodes=3)
    assert len(ev["success"]) == 3 and all(s in (0.0, 1.0) for s in ev["success"])


def _n_step_reference(rewards, terminated, mask, values, gamma, n):
    """The n-step target the slow way: walk forward from each step until n rewards or the sequence's end."""
    L, N = rewards.shape
    y = np.zeros((L, N))
    for b in range(N):
        k = int(mask[:, b].sum())
        for t in range(k):
            g, j = 0.0, 0
            while j < n and t + j < k:
                g += gamma ** j * rewards[t + j, b]
                j += 1
            if not terminated[t + j - 1, b]:
                g += gamma ** j * values[t + j, b]
            y[t, b] = g
    return y


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_n_step_targets_match_a_step_by_step_reference(n):
    rng = np.random.default_rng(n)
    L, N = 6, 9
    lengths = rng.integers(1, L + 1, size=N)
    lengths[:2] = [L, 1]
    mask = (np.arange(L)[:, None] < lengths).astype(np.float32)
    rewards = rng.normal(size=(L, N)).astype(np.float32) * mask
    terminated = np.zeros((L, N), np.float32)
    for b in range(N):                                 # some sequences end with their episode's termination
        if b % 2:
            terminated[lengths[b] - 1, b] = 1.0
    values = rng.normal(size=(L + 1, N)).astype(np.float32)
    got = dqn.n_step_targets(*map(torch.as_tensor, (rewards, terminated, mask, values)), gamma=0.9, n=n)
    np.testing.assert_allclose(got.numpy() * mask, _n_step_reference(rewards, terminated, mask, values, 0.9, n),
                               rtol=1e-5, atol=1e-5)


def test_drqn_learns_a_short_t_maze_and_memoryless_dqn_cannot():
    """The point of the chapter, small and deterministic: the cue is 5 steps back at the junction."""
    success = {}
    for agent in ("lstm", "mlp"):
        cfg = dqn.preset("tmaze", agent=agent, env_kwargs={"length": 4}, total_steps=4_000, seed=0)
        res = dqn.train_dqn(cfg, progress=False)
        success[agent] = np.mean(dqn.evaluate(res, episodes=40)["success"])
    assert success["lstm"] >= 0.95, success
    assert success["mlp"] <= 0.65, success


def test_presets_and_their_errors():
    cfg = dqn.preset("tmaze", env_kwargs={"length": 3})
    assert cfg.env_kwargs == {"length": 3} and cfg.norm_obs is False
    assert dqn.preset("cartpole-novel") == DQNConfig()
    with pytest.raises(ValueError, match="no preset for 'pong'"):
        dqn.preset("pong")
    with pytest.raises(ValueError, match="n_step must be a positive integer"):
        DQNConfig(n_step=0)


def test_observation_scaling_is_set_when_learning_starts_and_saved_with_the_weights():
    res = dqn.train_dqn(progress=False, total_steps=600, learning_starts=300, num_envs=2, batch_size=4)
    net = res.net
    assert not torch.allclose(net.obs_scale, torch.ones_like(net.obs_scale))
    assert "obs_mean" in net.state_dict() and "obs_scale" in net.state_dict()
    copy = dqn.make_q_network(res.config, 2, 2)
    copy.load_state_dict(net.state_dict())
    x = torch.randn(5, 3, 2)
    torch.testing.assert_close(copy(x)[0], net(x)[0])


def test_value_rescaling_is_inverted_exactly_and_used_in_the_target():
    x = torch.linspace(-500, 500, 2001, dtype=torch.float64)
    np.testing.assert_allclose(dqn.value_rescale_inverse(dqn.value_rescale(x)).numpy(), x.numpy(), atol=1e-6)
    assert float(dqn.value_rescale(torch.tensor(99.0))) == pytest.approx(9.0 + 0.099)   # sqrt(100) - 1 + 0.001 * 99
    # with rescaling the loss regresses h(Q) onto h(r + gamma * h^-1(Q_target)): a network whose output is
    # h(true value) has zero TD error on a deterministic chain, and the same network without rescaling does not
    torch.manual_seed(0)
    cfg = DQNConfig(env="tmaze", env_kwargs={"length": 2}, agent="mlp", n_step=1, double=False)
    online = dqn.make_q_network(cfg, 4, 4)
    batch_obs = torch.zeros(3, 1, 4)
    batch = dqn.SequenceBatch(burn_obs=torch.zeros(0, 1, 4), burn_len=np.zeros(1, np.int64), obs=batch_obs,
                              actions=torch.zeros(2, 1, dtype=torch.long), rewards=torch.ones(2, 1),
                              terminated=torch.zeros(2, 1), mask=torch.ones(2, 1), state=None,
                              episode=np.zeros(1), first=np.zeros(1))
    v = 1 / (1 - 0.9)                                       # the fixed point of Q = 1 + 0.9 Q
    with torch.no_grad():
        for p in online.parameters():
            p.zero_()
        online.head.bias.fill_(float(dqn.value_rescale(torch.tensor(v))))
    loss_h, _ = dqn.sequence_loss(online, online, batch, 0.9, double=False, n_step=1, rescale=True)
    loss_plain, _ = dqn.sequence_loss(online, online, batch, 0.9, double=False, n_step=1, rescale=False)
    assert float(loss_h) < 1e-8 and float(loss_plain) > 0.1     # float32 rounding of h and its inverse only


def test_q_discrepancy_is_zero_for_fresh_stored_states_and_burn_in_repairs_a_zero_start():
    # no gradient step (learning never starts): the stored states were recorded by the very parameters
    # measured, so a stored start is exact; a zero start is wrong and burn-in shrinks the error
    res = dqn.train_dqn(env="cartpole-novel", total_steps=2_000, learning_starts=10**9, progress=False, seed=0)
    dq = dqn.q_discrepancy(res.net, res.replay, burn_ins=(0, 2, 8), seq_len=5, windows=64)
    for K in (0, 2, 8):
        assert dq[("stored", K)]["first"] < 1e-5 and dq[("stored", K)]["last"] < 1e-5
    zero = [dq[("zero", K)]["first"] for K in (0, 2, 8)]
    assert zero[0] > 1e-3 and zero[0] > zero[1] > zero[2]
    assert dq == dqn.q_discrepancy(res.net, res.replay, burn_ins=(0, 2, 8), seq_len=5, windows=64)   # deterministic
    with pytest.raises(ValueError, match="recurrent"):
        dqn.q_discrepancy(dqn.make_q_network(DQNConfig(agent="mlp"), 2, 2), res.replay)


@pytest.mark.parametrize("anneal", [False, True])
def test_anneal_lr_decays_the_learning_rate_linearly_to_zero(monkeypatch, anneal):
    seen = []
    real = dqn.gradient_step

    def recording(online, target, optimizer, *args):
        seen.append(optimizer.param_groups[0]["lr"])
        return real(online, target, optimizer, *args)

    monkeypatch.setattr(dqn, "gradient_step", recording)
    dqn.train_dqn(progress=False, env="tmaze", env_kwargs={"length": 2}, total_steps=800, num_envs=2, learning_starts=100,
                  train_every=4, batch_size=4, seq_len=4, burn_in=2, lr=1e-3, anneal_lr=anneal)
    assert len(seen) > 100
    if anneal:
        assert seen == sorted(seen, reverse=True) and seen[0] < 1e-3 and 0 <= seen[-1] < 0.02e-3
    else:
        assert set(seen) == {1e-3}


def test_select_every_keeps_best_checked_network_and_leaves_the_run_unchanged():
    from lstm_rl_lib.agent import evaluate
    kw = dict(env="tmaze", env_kwargs={"length": 3}, total_steps=1_200, num_envs=4, learning_starts=200,
              batch_size=8, seq_len=4, burn_in=2, seed=3)
    plain = dqn.train_dqn(progress=False, select_every=0, **kw)
    picked = dqn.train_dqn(progress=False, select_every=300, select_episodes=4, **kw)
    # the checks act greedily and draw no random numbers: the same training run
    assert plain.history["return"] == picked.history["return"]
    assert plain.selected is None and plain.last_state_dict is None and plain.checks == []
    assert [c[0] for c in picked.checks] == sorted(c[0] for c in picked.checks) and len(picked.checks) >= 3
    best = max(c[1] for c in picked.checks)
    assert picked.selected == max(s for s, v in picked.checks if v == best)      # ties go to the later network
    # the network returned is the one that scored best; the last one is kept aside
    score = np.mean(evaluate(picked, episodes=4, seed=900_000 + 1000 * 3)["return"])
    assert score == pytest.approx(best)
    for k, v in plain.net.state_dict().items():
        assert torch.equal(v, picked.last_state_dict[k])


def test_select_settings_are_checked():
    with pytest.raises(ValueError, match="select_every"):
        dqn.DQNConfig(select_every=-1)
    with pytest.raises(ValueError, match="select_episodes"):
        dqn.DQNConfig(select_episodes=0)
