"""M of the world model: shapes, the mixture NLL against hand computations, masking, temperature, save/load."""
import math

import numpy as np
import pytest
import torch

from lstm_rl_lib.world_model import MDNRNN, MDNRNNConfig, mdn_nll, sample_next_z, world_model_loss


def test_shapes_and_bad_input():
    m = MDNRNN(MDNRNNConfig(latent=6, n_actions=3, hidden=16, mixtures=4))
    (logpi, mu, logsigma, done), (h, c) = m(torch.randn(7, 2, 6), torch.randint(3, (7, 2)))
    assert logpi.shape == mu.shape == logsigma.shape == (7, 2, 6, 4) and done.shape == (7, 2)
    assert h.shape == c.shape == (1, 2, 16)
    torch.testing.assert_close(logpi.exp().sum(-1), torch.ones(7, 2, 6))
    with pytest.raises(ValueError, match="z must have shape"):
        m(torch.randn(7, 2, 5), torch.randint(3, (7, 2)))
    with pytest.raises(ValueError, match="actions must have shape"):
        m(torch.randn(7, 2, 6), torch.randint(3, (7, 3)))


def test_one_component_nll_is_the_gaussian_nll_and_mixtures_match_a_hand_sum():
    rng = np.random.default_rng(0)
    target, mu, ls = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4, 1)), rng.normal(size=(2, 3, 4, 1)) * 0.3
    hand = (0.5 * ((target - mu[..., 0]) / np.exp(ls[..., 0])) ** 2 + ls[..., 0] + 0.5 * np.log(2 * np.pi)).sum(-1)
    got = mdn_nll(torch.zeros(2, 3, 4, 1, dtype=torch.float64), *map(torch.as_tensor, (mu, ls, target)))
    np.testing.assert_allclose(got.numpy(), hand, rtol=1e-10)
    # two components, one dimension: -log(0.3 N(x; 0, 1) + 0.7 N(x; 2, 0.5^2))
    x = 0.8
    pdf = lambda x, m, s: math.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    expected = -math.log(0.3 * pdf(x, 0, 1) + 0.7 * pdf(x, 2, 0.5))
    got = mdn_nll(torch.log(torch.tensor([[[[0.3, 0.7]]]])), torch.tensor([[[[0.0, 2.0]]]]),
                  torch.log(torch.tensor([[[[1.0, 0.5]]]])), torch.tensor([[[x]]]))
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_padded_steps_carry_no_loss():
    torch.manual_seed(0)
    m = MDNRNN(MDNRNNConfig(latent=3, hidden=8, mixtures=2))
    z, a = torch.randn(5, 2, 3), torch.randint(2, (5, 2))
    out, _ = m(z, a)
    mask = torch.ones(5, 2)
    mask[3:, 1] = 0
    next_z, dones = torch.randn(5, 2, 3), torch.zeros(5, 2)
    loss, _ = world_model_loss(out, next_z, dones, mask)
    garbage = next_z.clone()
    garbage[3:, 1] = 1e3                                    # padding may hold anything
    loss2, _ = world_model_loss(out, garbage, dones, mask)
    torch.testing.assert_close(loss, loss2)


def test_temperature_zero_gives_the_most_likely_mean_and_higher_temperature_spreads():
    logpi = torch.log(torch.tensor([0.2, 0.8])).expand(4000, 1, 2)
    mu = torch.tensor([-3.0, 1.0]).expand(4000, 1, 2)
    logsigma = torch.log(torch.tensor([0.1, 0.1])).expand(4000, 1, 2)
    assert torch.all(sample_next_z(logpi, mu, logsigma, 0.0) == 1.0)
    g = torch.Generator().manual_seed(0)
    cold, hot = sample_next_z(logpi, mu, logsigma, 0.5, g), sample_next_z(logpi, mu, logsigma, 2.0, g)
    frac = lambda s: (s < -1).float().mean().item()          # share drawn from the unlikely component
    assert frac(cold) < 0.2 < frac(hot)
    assert abs(frac(sample_next_z(logpi, mu, logsigma, 1.0, g)) - 0.2) < 0.03
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        sample_next_z(logpi, mu, logsigma, -1.0)


def test_saved_and_reloaded_model_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    m = MDNRNN(MDNRNNConfig(latent=4, hidden=8, mixtures=3))
    z, a = torch.randn(6, 2, 4), torch.randint(2, (6, 2))
    m.save(tmp_path / "m.pt")
    again = MDNRNN.load(tmp_path / "m.pt")
    (o1, s1), (o2, s2) = m(z, a), again(z, a)
    for x, y in zip(o1 + s1, o2 + s2):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_controller_reads_h_only_with_memory_and_checks_its_parameters():
    from lstm_rl_lib.world_model import LinearController
    z, h1, h2 = torch.zeros(3, 4), torch.randn(3, 5), -torch.randn(3, 5)
    with_memory, without = LinearController(4, 5, 2), LinearController(4, 5, 2, use_memory=False)
    assert with_memory.n_params == 10 and without.n_params == 5          # two actions: one unit
    assert LinearController(4, 5, 3).n_params == 3 * 10                 # more: one unit per action
    params = np.zeros(with_memory.n_params)
    params[4:9] = 1.0                       # the weights on h
    assert not torch.equal(with_memory.act(params, z, h1), with_memory.act(params, z, -h1))
    p = np.random.default_rng(0).normal(size=without.n_params)
    assert torch.equal(without.act(p, z + 1, h1), without.act(p, z + 1, h2))
    with pytest.raises(ValueError, match="has 5 parameters"):
        without.act(np.zeros(3), z, h1)
    with pytest.raises(ValueError, match="feature statistics must have 9 numbers"):
        LinearController(4, 5, 2, feature_mean=np.zeros(7))


def test_a_population_is_scored_row_by_row_and_standardisation_is_applied():
    from lstm_rl_lib.world_model import LinearController
    g = torch.Generator().manual_seed(0)
    z, h = torch.randn(6, 4, generator=g), torch.randn(6, 5, generator=g)
    c = LinearController(4, 5, 3)
    pop = np.random.default_rng(1).normal(size=(3, c.n_params))
    which = torch.tensor([0, 1, 2, 2, 1, 0])
    together = c.act(pop, z, h, which)
    one_by_one = torch.stack([c.act(pop[k], z[i:i + 1], h[i:i + 1])[0] for i, k in enumerate(which.tolist())])
    assert torch.equal(together, one_by_one)
    mean, std = np.random.default_rng(2).normal(size=9), np.full(9, 2.0)
    scaled = LinearController(4, 5, 3, feature_mean=mean, feature_std=std)
    x = (torch.cat([z, h], -1) - torch.as_tensor(mean, dtype=torch.float32)) / 2.0
    assert torch.equal(scaled.act(pop, z, h, which), c.act(pop, x[:, :4], x[:, 4:], which))


def _tiny():
    from lstm_rl_lib import vae
    torch.manual_seed(0)
    return vae.ConvVAE(vae.VAEConfig(size=64, latent=4, channels=4)), MDNRNN(MDNRNNConfig(latent=4, hidden=8))


def test_rollout_plays_the_real_environment():
    """A controller that always pushes right (bias only) must score what CartPole-v1 gives for that,
    from the same start states; every candidate of a population plays the same starts."""
    import gymnasium as gym
    from lstm_rl_lib.world_model import LinearController, rollout, start_states
    v, m = _tiny()
    c = LinearController(4, 8, 2)
    right, left = np.zeros(c.n_params), np.zeros(c.n_params)
    right[-1], left[-1] = 1.0, -1.0          # the bias of the one unit: > 0 pushes right
    got = rollout(v, m, c, np.stack([right, left, right]), episodes=3, seed=7)
    expected = {}
    for action in (0, 1):
        expected[action] = []
        for start in start_states(3, 7).T:
            env, n = gym.make("CartPole-v1"), 0
            env.reset(seed=0)
            env.unwrapped.state = start.copy()
            while True:
                _, r, term, trunc, _ = env.step(action)
                n += r
                if term or trunc:
                    break
            expected[action].append(n)
    np.testing.assert_array_equal(got, [expected[1], expected[0], expected[1]])
    rec = rollout(v, m, c, right, episodes=2, seed=7, record=True)
    L = int(rec["returns"][0, 0])
    assert rec["frames"].shape == (L, 64, 64) and rec["z"].shape == (L, 4) and (rec["actions"] == 1).all()
    np.testing.assert_allclose(rec["states"][0], start_states(2, 7)[:, 0], rtol=0, atol=1e-6)


def test_sequences_align_inputs_and_targets_and_memory_features_start_empty():
    from lstm_rl_lib import vae
    from lstm_rl_lib.world_model import memory_features, sequences
    v, m = _tiny()
    eps = vae.explore_cartpole(4, 30, seed=0)
    d = sequences(v, eps)
    mus = vae.encode_frames(v, eps.frames())
    L0 = len(eps.actions[0])
    torch.testing.assert_close(d["z"][:L0, 0], torch.as_tensor(mus[:L0]))
    torch.testing.assert_close(d["next_z"][:L0, 0], torch.as_tensor(mus[1:L0 + 1]))
    assert d["mask"][:, 0].sum() == L0 and d["dones"][L0 - 1, 0] == float(eps.terminated[0])
    assert d["dones"].sum() == eps.terminated.sum() and d["mask"].sum() == eps.steps
    np.testing.assert_array_equal(d["states"][:L0, 0].numpy(), eps.states[0][:L0])
    f = memory_features(m, d)
    N = len(eps)                            # rows are time-major: first every episode's step 0, then step 1 ...
    assert f.shape == (eps.steps, 4 + 8) and np.all(f[:N, 4:] == 0)               # h_0 = 0
    with torch.no_grad():
        h = m.step(d["z"][0, :1], d["actions"][0, :1], m.initial_state(1))[0]       # h_1 of episode 0 by hand
    np.testing.assert_allclose(f[N, 4:], h[0, 0].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(f[N, :4], d["z"][1, 0].numpy())


def test_train_world_model_runs_and_is_deterministic():
    from lstm_rl_lib import vae
    from lstm_rl_lib.world_model import train_world_model
    v, _ = _tiny()
    eps = vae.explore_cartpole(4, 30, seed=0)
    runs = [train_world_model(v, eps, MDNRNNConfig(latent=4, hidden=8), epochs=2, batch_size=4, progress=False)
            for _ in range(2)]
    h = runs[0]["history"]
    assert h["epoch"] == [1, 2] and h["z_nll"] == runs[1]["history"]["z_nll"]
    assert h["copy_mse"][0] == h["copy_mse"][1] > 0
    with pytest.raises(ValueError, match="latent"):
        train_world_model(v, eps, MDNRNNConfig(latent=5), epochs=1, progress=False)


def test_cma_es_runs_is_deterministic_and_returns_the_search_mean():
    from lstm_rl_lib.world_model import LinearController, train_controller
    v, m = _tiny()
    c = LinearController(4, 8, 2)
    runs = [train_controller(v, m, c, generations=2, popsize=4, episodes=2, progress=False) for _ in range(2)]
    assert runs[0]["params"].shape == (c.n_params,) and len(runs[0]["history"]["mean_return"]) == 2
    np.testing.assert_array_equal(runs[0]["params"], runs[1]["params"])
    assert runs[0]["history"]["mean_return"] == runs[1]["history"]["mean_return"]
    assert runs[0]["history"]["env_steps"][-1] > 0 and runs[0]["solved_at"] is None


def test_a_stack_of_codes_feeds_the_controller_the_last_k_codes_newest_first():
    """stack=2 with weights (w, -w) acts on z_t - z_{t-1} (z_{-1} = 0); recomputing that from the
    recorded codes must give the recorded actions, and the parameter count is 2 * latent + 1."""
    from lstm_rl_lib.world_model import LinearController, rollout
    v, m = _tiny()
    c = LinearController(4, 8, 2, use_memory=False, stack=2)
    assert c.n_params == 2 * 4 + 1 and c.in_dim == 8
    w = np.array([3.0, -2.0, 1.0, 4.0])
    params = np.concatenate([w, -w, [0.01]])
    rec = rollout(v, m, c, params, episodes=1, seed=3, record=True)
    z = rec["z"]
    previous = np.vstack([np.zeros((1, 4)), z[:-1]])
    expected = ((z - previous) @ w + 0.01 > 0).astype(int)
    np.testing.assert_array_equal(rec["actions"], expected)
    with pytest.raises(ValueError, match="stack"):
        LinearController(4, 8, 2, stack=0)
    # statistics of [z, h] are spread over the stacked codes: z's once per code, then h's
    s = LinearController(4, 8, 2, use_memory=True, stack=3, feature_mean=np.arange(12.0))
    np.testing.assert_array_equal(s.feature_mean, list(range(4)) * 3 + list(range(4, 12)))
